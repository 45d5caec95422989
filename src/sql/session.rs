//! The DataFusion session over one database: [`DatabaseSchema`] answers
//! table names exactly.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::query_error;
use super::scan::external;
use super::table::QuipuTable;
use super::telemetry::QueryTelemetry;
use crate::Engine;
use crate::error::{Error, Result};

/// A DataFusion session over the tables of `db`, each known by its exact
/// name (see [`DatabaseSchema`]). [`Error::DatabaseNotFound`] when `db` does
/// not exist.
pub fn session(engine: &Engine, db: &str) -> Result<SessionContext> {
    session_with(engine, db, None, Arc::new(RuntimeEnv::default()))
}

pub(super) fn session_with(
    engine: &Engine,
    db: &str,
    telemetry: Option<&Arc<QueryTelemetry>>,
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionContext> {
    if engine.catalog().database(db).is_none() {
        return Err(Error::DatabaseNotFound { db: db.to_string() });
    }
    let config = SessionConfig::new().with_information_schema(true);
    let (catalog, schema) =
        (config.options().catalog.default_catalog.clone(), config.options().catalog.default_schema.clone());
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let tables = DatabaseSchema { engine: engine.clone(), db: db.to_string(), telemetry: telemetry.cloned() };
    ctx.catalog(&catalog)
        .ok_or_else(|| Error::Query(format!("no catalog {catalog}")))?
        .register_schema(&schema, Arc::new(tables))
        .map_err(query_error)?;
    Ok(ctx)
}

/// The tables of one database as DataFusion's default schema, answered by
/// exact name when a query names them. A table name is never parsed as SQL:
/// `system.cpu` is one table (read as `"system.cpu"`), `CPU` and `cpu` are
/// two (`"CPU"` and `cpu`), and a name no query reads costs nothing.
#[derive(Debug)]
pub struct DatabaseSchema {
    engine: Engine,
    db: String,
    telemetry: Option<Arc<QueryTelemetry>>,
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        let catalog = self.engine.catalog();
        catalog.database(&self.db).map(|d| d.tables().map(|t| t.name.clone()).collect()).unwrap_or_default()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        match QuipuTable::new(&self.engine, &self.db, name) {
            Ok(table) => {
                let table = match &self.telemetry {
                    Some(t) => table.with_telemetry(t.clone()),
                    None => table,
                };
                Ok(Some(Arc::new(table)))
            }
            Err(Error::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(external(e)),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.engine.catalog().database(&self.db).is_some_and(|d| d.table(name).is_some())
    }
}
