//! SQL over quipu tables through DataFusion (cargo feature `sql`): a
//! [`QuipuTable`] `TableProvider` per table and [`query`], which plans a
//! statement against every table of one database and streams the result.
//!
//! What the provider pushes into the engine's scan:
//! - **projection**: only the columns a query reads are decoded (whole
//!   column families are skipped when none of their columns is read);
//! - **time ranges**: comparisons of `time` with a literal (`<`, `<=`, `>`,
//!   `>=`, `=`, `BETWEEN`) become the scan's inclusive range, so files and
//!   blocks outside it are never read;
//! - **tag equality**: `tag = 'literal'` becomes the scan's tag filter,
//!   applied to the series directory before any block is decoded.
//!
//! Pushed filters are reported `Inexact`: DataFusion still applies them to
//! the rows, so a predicate the scan reads more broadly (a strict `>` on a
//! nanosecond boundary, say) stays exact in the result.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ParamValues, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;

use crate::Engine;
use crate::error::{Error, Result};

mod limits;
mod scan;
mod session;
mod table;
mod telemetry;

use limits::{BoundedStream, Bounds};
pub use limits::{
    DEFAULT_QUERY_MEMORY_BYTES, DEFAULT_QUERY_MEMORY_POOL_BYTES, DEFAULT_QUERY_SPILL_BYTES, DEFAULT_QUERY_TIMEOUT,
    QueryLimits, QueryRuntime,
};
use session::session_with;
pub use session::{DatabaseSchema, session};
pub use table::QuipuTable;
pub use telemetry::{CacheReport, ChunkReport, HitsMisses, PushedRange, QueryTelemetry, TelemetryReport};

/// Plans `sql` against the tables of `db` and streams its result.
/// [`Error::Query`] with the planner's message for bad SQL, an unknown
/// table or column; [`Error::DatabaseNotFound`].
pub async fn query(engine: &Engine, db: &str, sql: &str) -> Result<SendableRecordBatchStream> {
    query_with(engine, db, sql, QueryOptions::default()).await
}

/// What a query may carry besides its SQL.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Values for `$name` (or `$1`, `$2`, ...) placeholders.
    pub params: Option<ParamValues>,
    /// Where the query's scans report what they read.
    pub telemetry: Option<Arc<QueryTelemetry>>,
    /// The memory, spill and time limits to run within; `None` for none.
    pub runtime: Option<Arc<QueryRuntime>>,
}

/// [`query`] with bind parameters, telemetry and limits.
///
/// ```no_run
/// # async fn run(engine: &quipu::Engine) -> quipu::Result<()> {
/// use futures::StreamExt;
/// use quipu::sql::{QueryLimits, QueryOptions, QueryRuntime, params_from_json};
///
/// let params = params_from_json(&serde_json::json!({"host": "h1"}))?;
/// let runtime = QueryRuntime::new(QueryLimits::default())?;
/// let options = QueryOptions { params: Some(params), runtime: Some(runtime), ..Default::default() };
/// let mut rows = quipu::sql::query_with(engine, "db", "SELECT max(usage) FROM cpu WHERE host = $host", options).await?;
/// while let Some(batch) = rows.next().await {
///     println!("{} rows", batch.map_err(quipu::sql::query_error)?.num_rows());
/// }
/// # Ok(()) }
/// ```
pub async fn query_with(
    engine: &Engine,
    db: &str,
    sql: &str,
    options: QueryOptions,
) -> Result<SendableRecordBatchStream> {
    prepare(engine, db, sql, options).await?.execute().await
}

/// A planned query, not started yet.
pub struct Prepared {
    frame: datafusion::dataframe::DataFrame,
    bounds: Option<Bounds>,
}

/// Plans `sql` against the tables of `db`: [`Error::Query`] for bad SQL, an
/// unknown table or column, DDL, DML or a parameter that does not fit;
/// [`Error::DatabaseNotFound`]. With a [`QueryOptions::runtime`], its
/// timeout counts from here.
pub async fn prepare(engine: &Engine, db: &str, sql: &str, options: QueryOptions) -> Result<Prepared> {
    let started = Instant::now();
    let (runtime, bounds) = match &options.runtime {
        Some(shared) => {
            let (runtime, pool) = shared.for_query()?;
            let deadline = shared.limits.timeout.and_then(|t| started.checked_add(t));
            (runtime, Some(Bounds { runtime: shared.clone(), pool, deadline }))
        }
        None => (Arc::new(RuntimeEnv::default()), None),
    };
    let ctx = session_with(engine, db, options.telemetry.as_ref(), runtime)?;
    let sql_options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let plan = async { ctx.sql_with_options(sql, sql_options).await.map_err(query_error) };
    let mut frame = match &bounds {
        Some(b) => b.within(plan).await?,
        None => plan.await?,
    };
    if let Some(params) = options.params {
        frame = frame.with_param_values(params).map_err(query_error)?;
    }
    Ok(Prepared { frame, bounds })
}

impl Prepared {
    /// The tables the query reads, in plan order, each once.
    pub fn tables(&self) -> Vec<String> {
        use datafusion::common::tree_node::TreeNode;
        let mut names: Vec<String> = Vec::new();
        let _ = self.frame.logical_plan().apply(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                let name = scan.table_name.table().to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        names
    }

    /// The result's schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.frame.schema().as_arrow().clone())
    }

    /// Starts the query: its result as a stream of batches.
    pub async fn execute(self) -> Result<SendableRecordBatchStream> {
        let Some(bounds) = self.bounds else {
            return self.frame.execute_stream().await.map_err(query_error);
        };
        let frame = self.frame;
        let stream =
            bounds.within(async { frame.execute_stream().await.map_err(|e| query_error(bounds.error(e))) }).await?;
        let schema = stream.schema();
        Ok(Box::pin(BoundedStream { inner: Some(stream), schema, bounds, sleep: None }))
    }
}

/// An error of planning or running a query: the engine's own error when a
/// scan failed (a corrupt file stays [`Error::Corrupt`]) or a limit stopped
/// it ([`Error::QueryLimit`], [`Error::QueryBusy`]), else [`Error::Query`]
/// with DataFusion's message.
pub fn query_error(e: DataFusionError) -> Error {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<Error>() {
            Ok(engine_error) => *engine_error,
            Err(other) => Error::Query(other.to_string()),
        },
        DataFusionError::Context(_, inner) => query_error(*inner),
        other => Error::Query(other.to_string()),
    }
}

/// Bind parameters from a JSON object: `{"host": "h1", "limit": 10}` fills
/// `$host` and `$limit`; keys `"1"`, `"2"`, ... fill `$1`, `$2`, ...
/// Strings, numbers, booleans and null are accepted; anything else is
/// [`Error::Query`].
pub fn params_from_json(value: &serde_json::Value) -> Result<ParamValues> {
    let serde_json::Value::Object(map) = value else {
        return Err(Error::Query("params must be a JSON object of name: value".into()));
    };
    let mut named = Vec::with_capacity(map.len());
    for (name, v) in map {
        let scalar = match v {
            serde_json::Value::Null => ScalarValue::Null,
            serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
            serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => ScalarValue::Int64(Some(i)),
                (None, Some(u), _) => ScalarValue::UInt64(Some(u)),
                (None, None, Some(f)) => ScalarValue::Float64(Some(f)),
                _ => return Err(Error::Query(format!("parameter {name}: number {n} is out of range"))),
            },
            other => {
                return Err(Error::Query(format!(
                    "parameter {name}: {} values are not supported; use a string, number, boolean or null",
                    json_kind(other)
                )));
            }
        };
        let name = name.strip_prefix('$').unwrap_or(name).to_string();
        if name.is_empty() {
            return Err(Error::Query("a parameter name is empty".into()));
        }
        named.push((name, scalar));
    }
    // Keys 1..=n are positional placeholders.
    let positional: Option<Vec<usize>> = named.iter().map(|(k, _)| k.parse::<usize>().ok()).collect();
    if let Some(mut idx) = positional.filter(|p| !p.is_empty()) {
        idx.sort_unstable();
        if idx.iter().enumerate().all(|(i, &k)| k == i + 1) {
            named.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
            return Ok(ParamValues::from(named.into_iter().map(|(_, v)| v).collect::<Vec<_>>()));
        }
        return Err(Error::Query("numbered parameters must be 1, 2, ... without gaps".into()));
    }
    Ok(ParamValues::from(named))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        _ => "scalar",
    }
}
