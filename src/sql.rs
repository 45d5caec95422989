//! SQL over quipu tables through DataFusion (cargo feature `sql`): a
//! [`QuipuTable`] `TableProvider` per table and [`query`], which plans a
//! statement against every table of one database and streams the result.
//!
//! What the provider pushes into the engine's scan:
//! - **projection**: only the columns a query reads are decoded (whole
//!   column families are skipped when none of their columns is read);
//! - **time ranges**: comparisons of `time` with a literal (`<`, `<=`, `>`,
//!   `>=`, `=`, `BETWEEN`) become the scan's half-open range, so files and
//!   blocks outside it are never read;
//! - **tag equality**: `tag = 'literal'` becomes the scan's tag filter,
//!   applied to the series directory before any block is decoded.
//!
//! Pushed filters are reported `Inexact`: DataFusion still applies them to
//! the rows, so a predicate the scan reads more broadly (a strict `>` on a
//! nanosecond boundary, say) stays exact in the result.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::{ColumnKind, TIME_COLUMN};
use crate::error::{Error, Result};
use crate::query::{self, Plan};
use crate::{Engine, ScanRequest};

/// Batches decoded ahead of the query.
const SCAN_AHEAD: usize = 4;

/// One quipu table as a DataFusion table.
#[derive(Debug)]
pub struct QuipuTable {
    engine: Engine,
    db: String,
    table: String,
    schema: SchemaRef,
    /// Tag column names: the columns an equality filter can be pushed on.
    tags: Vec<String>,
}

impl QuipuTable {
    /// The table `db`.`table` of `engine`, with the columns the catalog
    /// knows now. [`Error::DatabaseNotFound`] / [`Error::TableNotFound`].
    pub fn new(engine: &Engine, db: &str, table: &str) -> Result<QuipuTable> {
        let catalog = engine.catalog();
        let database = catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
        let def = database
            .table(table)
            .ok_or_else(|| Error::TableNotFound { db: db.to_string(), table: table.to_string() })?;
        let plan = Plan::new(db, def, &ScanRequest::all())?;
        let tags = def.columns.iter().filter(|c| c.kind == ColumnKind::Tag).map(|c| c.name.clone()).collect();
        Ok(QuipuTable {
            engine: engine.clone(),
            db: db.to_string(),
            table: table.to_string(),
            schema: query::schema(&plan, def),
            tags,
        })
    }

    /// The scan request `filters` allow: a time range and tag equalities.
    fn scan_request(&self, filters: &[Expr]) -> ScanRequest {
        let mut req = ScanRequest::all();
        let (mut start, mut end) = (i64::MIN, i64::MAX);
        for filter in filters {
            for conjunct in split_and(filter) {
                if let Some((lo, hi)) = time_bounds(conjunct) {
                    start = start.max(lo);
                    end = end.min(hi);
                } else if let Some((tag, value)) = self.tag_equality(conjunct) {
                    req = req.tag_eq(tag, value);
                }
            }
        }
        if start > i64::MIN || end < i64::MAX {
            req = req.time_range(start, end.max(start));
        }
        req
    }

    fn tag_equality(&self, expr: &Expr) -> Option<(String, String)> {
        let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = expr else { return None };
        let (column, value) = match (column_name(left), column_name(right)) {
            (Some(c), None) => (c, string_literal(right)?),
            (None, Some(c)) => (c, string_literal(left)?),
            _ => return None,
        };
        self.tags.contains(&column).then_some((column, value))
    }

    fn pushable(&self, expr: &Expr) -> bool {
        split_and(expr).iter().all(|c| time_bounds(c).is_some() || self.tag_equality(c).is_some())
    }
}

#[async_trait]
impl TableProvider for QuipuTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&indices)?);
        let mut req = self.scan_request(filters);
        // The scan always returns `time`; other columns only when asked.
        let columns: Vec<String> =
            projected.fields().iter().map(|f| f.name().clone()).filter(|n| n != TIME_COLUMN).collect();
        req = req.columns(columns);
        Ok(Arc::new(ScanExec::new(self, req, projected, limit)))
    }
}

/// The engine scan behind a [`QuipuTable`]: one partition, batches decoded
/// on a blocking thread and handed over a short queue.
#[derive(Debug)]
struct ScanExec {
    engine: Engine,
    db: String,
    table: String,
    req: ScanRequest,
    schema: SchemaRef,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl ScanExec {
    fn new(table: &QuipuTable, req: ScanRequest, schema: SchemaRef, limit: Option<usize>) -> ScanExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ScanExec {
            engine: table.engine.clone(),
            db: table.db.clone(),
            table: table.table.clone(),
            req,
            schema,
            limit,
            properties,
        }
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "QuipuScan: {}.{}, time={:?}, tags={:?}",
            self.db, self.table, self.req.time_range, self.req.tag_equals
        )?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ScanExec {
    fn name(&self) -> &str {
        "QuipuScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), SCAN_AHEAD);
        let tx = builder.tx();
        let (engine, db, table, req, schema, limit) = (
            self.engine.clone(),
            self.db.clone(),
            self.table.clone(),
            self.req.clone(),
            self.schema.clone(),
            self.limit,
        );
        builder.spawn_blocking(move || {
            let mut left = limit.unwrap_or(usize::MAX);
            let batches = engine.scan_iter(&db, &table, &req).map_err(external)?;
            for batch in batches {
                if left == 0 {
                    break;
                }
                let batch = project(&batch.map_err(external)?, &schema)?;
                let batch = if batch.num_rows() > left { batch.slice(0, left) } else { batch };
                left -= batch.num_rows();
                if tx.blocking_send(Ok(batch)).is_err() {
                    // The query was dropped (a limit reached, the client gone).
                    break;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `batch`'s columns named by `schema`, in its order (the scan adds `time`
/// and orders columns its own way).
fn project(batch: &RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    let indices = schema
        .fields()
        .iter()
        .map(|f| batch.schema().index_of(f.name()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let projected = batch.project(&indices)?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        projected.columns().to_vec(),
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The conjuncts of `expr` (`a AND b AND c` -> `[a, b, c]`).
fn split_and(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = split_and(left);
            out.extend(split_and(right));
            out
        }
        other => vec![other],
    }
}

fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(v, _) => scalar_string(v),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

fn scalar_string(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Some(s.clone())
        }
        ScalarValue::Dictionary(_, inner) => scalar_string(inner),
        _ => None,
    }
}

/// A timestamp literal in ns.
fn time_literal(expr: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = expr else {
        return match expr {
            Expr::Cast(c) => time_literal(&c.expr),
            _ => None,
        };
    };
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

/// The half-open ns range a comparison of `time` with a literal allows.
fn time_bounds(expr: &Expr) -> Option<(i64, i64)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, t) = match (column_name(left).as_deref(), column_name(right).as_deref()) {
                (Some(TIME_COLUMN), None) => (*op, time_literal(right)?),
                (None, Some(TIME_COLUMN)) => (op.swap()?, time_literal(left)?),
                _ => return None,
            };
            match op {
                Operator::Gt => Some((t.saturating_add(1), i64::MAX)),
                Operator::GtEq => Some((t, i64::MAX)),
                Operator::Lt => Some((i64::MIN, t)),
                Operator::LtEq => Some((i64::MIN, t.saturating_add(1))),
                Operator::Eq => Some((t, t.saturating_add(1))),
                _ => None,
            }
        }
        Expr::Between(Between { expr, negated: false, low, high })
            if column_name(expr).as_deref() == Some(TIME_COLUMN) =>
        {
            Some((time_literal(low)?, time_literal(high)?.saturating_add(1)))
        }
        _ => None,
    }
}

/// A DataFusion session with every table of `db` registered under its name.
/// [`Error::DatabaseNotFound`] when `db` does not exist.
pub fn session(engine: &Engine, db: &str) -> Result<SessionContext> {
    let catalog = engine.catalog();
    let database = catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    for table in database.tables() {
        let provider = QuipuTable::new(engine, db, &table.name)?;
        ctx.register_table(table.name.as_str(), Arc::new(provider)).map_err(|e| Error::Query(e.to_string()))?;
    }
    Ok(ctx)
}

/// Plans `sql` against the tables of `db` and streams its result.
/// [`Error::Query`] with the planner's message for bad SQL, an unknown
/// table or column; [`Error::DatabaseNotFound`].
pub async fn query(engine: &Engine, db: &str, sql: &str) -> Result<SendableRecordBatchStream> {
    let ctx = session(engine, db)?;
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, options).await.map_err(|e| Error::Query(e.to_string()))?;
    frame.execute_stream().await.map_err(|e| Error::Query(e.to_string()))
}
