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

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ParamValues, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::Stream;

use crate::catalog::{ColumnKind, TIME_COLUMN};
use crate::error::{Error, Result};
use crate::query::{self, Plan};
use crate::time_range::TimeRange;
use crate::{Engine, ScanFigures, ScanRequest, ScanStats};

/// Batches decoded ahead of the query.
const SCAN_AHEAD: usize = 4;

/// One quipu table as a DataFusion table.
#[derive(Debug)]
pub struct QuipuTable {
    engine: Engine,
    db: String,
    table: String,
    db_id: u32,
    table_id: u32,
    schema: SchemaRef,
    /// Tag column names: the columns an equality filter can be pushed on.
    tags: Vec<String>,
    /// Where the scans of this table report what they read.
    telemetry: Option<Arc<QueryTelemetry>>,
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
            db_id: database.id,
            table_id: def.id,
            schema: query::schema(&plan, def),
            tags,
            telemetry: None,
        })
    }

    /// Reports every scan of this table to `telemetry`.
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: Arc<QueryTelemetry>) -> QuipuTable {
        self.telemetry = Some(telemetry);
        self
    }

    /// Row count and time bounds of the files a scan of `req` reads, from
    /// their metadata. Inexact: rows still in the write buffer are not
    /// counted, a row rewritten in a newer file is counted twice, and
    /// rows outside the range within a file are counted.
    fn statistics(&self, req: &ScanRequest) -> Statistics {
        let range = req.time_range.unwrap_or(TimeRange::ALL);
        let version = self.engine.version();
        let files: Vec<_> = version
            .table_files(self.db_id, self.table_id)
            .into_iter()
            .filter(|f| range.overlaps(f.meta.time_min, f.meta.time_max))
            .collect();
        let rows: u64 = files.iter().map(|f| f.meta.rows).sum();
        let bytes: u64 = files.iter().map(|f| f.meta.size).sum();
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Inexact(rows as usize);
        stats.total_byte_size = Precision::Inexact(bytes as usize);
        if let (Some(lo), Some(hi), Ok(i)) = (
            files.iter().map(|f| f.meta.time_min.max(range.min())).min(),
            files.iter().map(|f| f.meta.time_max.min(range.max())).max(),
            self.schema.index_of(TIME_COLUMN),
        ) && lo <= hi
        {
            let column = &mut stats.column_statistics[i];
            column.min_value = Precision::Inexact(ScalarValue::TimestampNanosecond(Some(lo), None));
            column.max_value = Precision::Inexact(ScalarValue::TimestampNanosecond(Some(hi), None));
            column.null_count = Precision::Exact(0);
        }
        stats
    }

    /// The scan request `filters` allow: a time range and tag equalities.
    fn scan_request(&self, filters: &[Expr]) -> ScanRequest {
        let mut req = ScanRequest::all();
        let mut range = TimeRange::ALL;
        for filter in filters {
            for conjunct in split_and(filter) {
                if let Some(bounds) = time_bounds(conjunct) {
                    range = range.intersect(bounds);
                } else if let Some((tag, value)) = self.tag_equality(conjunct) {
                    req = req.tag_eq(tag, value);
                }
            }
        }
        if !range.is_all() {
            req.time_range = Some(range);
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
        state: &dyn Session,
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
        // SQL sees every row of the table, also one whose selected fields
        // are all null.
        req = req.columns(columns).keep_null_rows();
        let statistics = self.statistics(&req).project(Some(&indices));
        // A limit is met soonest by one reader in order.
        let partitions = if limit.is_some() { 1 } else { state.config().target_partitions().max(1) };
        Ok(Arc::new(ScanExec::new(self, req, projected, limit, Arc::new(statistics), partitions)))
    }
}

/// The engine scan behind a [`QuipuTable`]: up to `target_partitions`
/// partitions (the engine deals out the blocks of files that need no
/// merge; otherwise one partition merges), each decoded on a blocking
/// thread and handed over a short queue. The split is made once, at the
/// first `execute`, so every partition reads the same version.
#[derive(Debug)]
struct ScanExec {
    schema: SchemaRef,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
    statistics: Arc<Statistics>,
    splitter: Arc<Splitter>,
}

/// Makes a [`ScanExec`]'s split into partitions once, on the first
/// partition's blocking thread, and hands each partition its iterator.
#[derive(Debug)]
struct Splitter {
    engine: Engine,
    db: String,
    table: String,
    req: ScanRequest,
    partitions: usize,
    telemetry: Option<Arc<QueryTelemetry>>,
    split: Mutex<Option<Vec<Option<crate::engine::ScanIter>>>>,
}

impl Splitter {
    /// The iterator of `partition`, `None` when the split has fewer parts.
    /// A partition run a second time (a plan executed again) gets a fresh
    /// split, counted as a new table scan.
    fn take(&self, partition: usize) -> Result<Option<crate::engine::ScanIter>> {
        let mut split = self.split.lock().unwrap_or_else(|p| p.into_inner());
        if split.as_ref().is_none_or(|s| s.get(partition).is_some_and(Option::is_none)) {
            let stats =
                Arc::new(if self.telemetry.is_some() { ScanStats::probing_cache() } else { ScanStats::default() });
            if let Some(telemetry) = &self.telemetry {
                telemetry.add_chunk(&self.table, &self.req, stats.clone());
            }
            let iters = self.engine.scan_partitions(&self.db, &self.table, &self.req, self.partitions, stats)?;
            *split = Some(iters.into_iter().map(Some).collect());
        }
        Ok(split.as_mut().and_then(|s| s.get_mut(partition)).and_then(Option::take))
    }
}

impl ScanExec {
    fn new(
        table: &QuipuTable,
        req: ScanRequest,
        schema: SchemaRef,
        limit: Option<usize>,
        statistics: Arc<Statistics>,
        partitions: usize,
    ) -> ScanExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ScanExec {
            schema,
            limit,
            properties,
            statistics,
            splitter: Arc::new(Splitter {
                engine: table.engine.clone(),
                db: table.db.clone(),
                table: table.table.clone(),
                req,
                partitions,
                telemetry: table.telemetry.clone(),
                split: Mutex::new(None),
            }),
        }
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "QuipuScan: {}.{}, time={}, tags={:?}",
            self.splitter.db,
            self.splitter.table,
            self.splitter.req.time_range.unwrap_or(TimeRange::ALL),
            self.splitter.req.tag_equals
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

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> datafusion::error::Result<Arc<Statistics>> {
        Ok(self.statistics.clone())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), SCAN_AHEAD);
        let tx = builder.tx();
        let (schema, limit) = (self.schema.clone(), self.limit);
        let splitter = self.splitter.clone();
        builder.spawn_blocking(move || {
            let mut left = limit.unwrap_or(usize::MAX);
            let iter = splitter.take(partition).map_err(external)?;
            let Some(batches) = iter else { return Ok(()) };
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

/// The ns range a comparison of `time` with a literal allows.
fn time_bounds(expr: &Expr) -> Option<TimeRange> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, t) = match (column_name(left).as_deref(), column_name(right).as_deref()) {
                (Some(TIME_COLUMN), None) => (*op, time_literal(right)?),
                (None, Some(TIME_COLUMN)) => (op.swap()?, time_literal(left)?),
                _ => return None,
            };
            match op {
                Operator::Gt => Some(t.checked_add(1).map_or(TimeRange::EMPTY, TimeRange::from)),
                Operator::GtEq => Some(TimeRange::from(t)),
                Operator::Lt => Some(t.checked_sub(1).map_or(TimeRange::EMPTY, TimeRange::until)),
                Operator::LtEq => Some(TimeRange::until(t)),
                Operator::Eq => Some(TimeRange::inclusive(t, t)),
                _ => None,
            }
        }
        Expr::Between(Between { expr, negated: false, low, high })
            if column_name(expr).as_deref() == Some(TIME_COLUMN) =>
        {
            Some(TimeRange::inclusive(time_literal(low)?, time_literal(high)?))
        }
        _ => None,
    }
}

/// A DataFusion session over the tables of `db`, each known by its exact
/// name (see [`DatabaseSchema`]). [`Error::DatabaseNotFound`] when `db` does
/// not exist.
pub fn session(engine: &Engine, db: &str) -> Result<SessionContext> {
    session_with(engine, db, None, Arc::new(RuntimeEnv::default()))
}

fn session_with(
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

/// Default of [`QueryLimits::memory_bytes`]: 512 MiB.
pub const DEFAULT_QUERY_MEMORY_BYTES: usize = 512 << 20;
/// Default of [`QueryLimits::memory_pool_bytes`]: 2 GiB.
pub const DEFAULT_QUERY_MEMORY_POOL_BYTES: usize = 2 << 30;
/// Default of [`QueryLimits::timeout`]: 5 minutes.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`QueryLimits::spill_bytes`]: 16 GiB.
pub const DEFAULT_QUERY_SPILL_BYTES: u64 = 16 << 30;

/// What queries may use (the `quipu serve --query-*` flags).
///
/// Memory is what DataFusion's operators reserve: hash tables, sort
/// buffers, aggregate state, a join's build side. An operator that can
/// spill (sort, grouped aggregation) writes to disk when refused memory;
/// one that cannot stops the query. Rows streamed through are not counted.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Bytes one query may reserve. Past it (after spilling what can
    /// spill) the query fails with [`Error::QueryLimit`].
    pub memory_bytes: usize,
    /// Bytes all running queries together may reserve. A query refused
    /// memory because the others hold it fails with [`Error::QueryBusy`].
    pub memory_pool_bytes: usize,
    /// How long a query may run, from planning to its last row
    /// ([`Error::QueryLimit`] past it, also in the middle of its rows);
    /// `None` for no limit.
    pub timeout: Option<Duration>,
    /// The folder spill files go in (a temporary folder inside it, removed
    /// when the [`QueryRuntime`] is dropped); `None` for the OS's.
    pub spill_dir: Option<PathBuf>,
    /// Bytes of spill files all queries together may hold; 0 turns spilling off.
    pub spill_bytes: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: DEFAULT_QUERY_MEMORY_BYTES,
            memory_pool_bytes: DEFAULT_QUERY_MEMORY_POOL_BYTES,
            timeout: Some(DEFAULT_QUERY_TIMEOUT),
            spill_dir: None,
            spill_bytes: DEFAULT_QUERY_SPILL_BYTES,
        }
    }
}

/// The memory pool and spill files queries share under [`QueryLimits`]:
/// one per server, handed to each query in [`QueryOptions::runtime`].
#[derive(Debug)]
pub struct QueryRuntime {
    limits: QueryLimits,
    /// The spill files and DataFusion's caches, shared by every query.
    base: Arc<RuntimeEnv>,
    /// All queries' memory.
    shared: Arc<dyn MemoryPool>,
}

impl QueryRuntime {
    /// The runtime of `limits`; creates the spill folder if missing.
    pub fn new(limits: QueryLimits) -> Result<Arc<QueryRuntime>> {
        let mode = match &limits.spill_dir {
            _ if limits.spill_bytes == 0 => DiskManagerMode::Disabled,
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
                DiskManagerMode::Directories(vec![dir.clone()])
            }
            None => DiskManagerMode::OsTmpDirectory,
        };
        let disk = DiskManagerBuilder::default().with_mode(mode).with_max_temp_directory_size(limits.spill_bytes);
        let base = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(disk)
            .build_arc()
            .map_err(|e| Error::InvalidArgument(format!("query spill folder: {e}")))?;
        let shared: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(limits.memory_pool_bytes));
        Ok(Arc::new(QueryRuntime { limits, base, shared }))
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Bytes the running queries hold now.
    pub fn memory_reserved(&self) -> usize {
        self.shared.reserved()
    }

    /// A runtime for one query: its own pool inside the shared one.
    fn for_query(self: &Arc<Self>) -> Result<(Arc<RuntimeEnv>, Arc<QueryPool>)> {
        let pool = Arc::new(QueryPool {
            own: FairSpillPool::new(self.limits.memory_bytes),
            shared: self.shared.clone(),
            refused: AtomicU8::new(NOT_REFUSED),
        });
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.base)
            .with_memory_pool(pool.clone())
            .build_arc()
            .map_err(query_error)?;
        Ok((runtime, pool))
    }
}

const NOT_REFUSED: u8 = 0;
const REFUSED_OWN: u8 = 1;
const REFUSED_SHARED: u8 = 2;

/// One query's memory: its own limit, inside the pool all queries share.
/// Records which of the two refused memory last, so that a query that
/// fails for memory can say whether it is too big or the server is busy.
#[derive(Debug)]
struct QueryPool {
    own: FairSpillPool,
    shared: Arc<dyn MemoryPool>,
    refused: AtomicU8,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool ({} of the shared {})", self.own, self.shared)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "quipu-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.own.register(consumer);
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.own.unregister(consumer);
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> datafusion::error::Result<()> {
        if let Err(e) = self.own.try_grow(reservation, additional) {
            self.refused.store(REFUSED_OWN, Ordering::Relaxed);
            return Err(e);
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.own.shrink(reservation, additional);
            self.refused.store(REFUSED_SHARED, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.own.memory_limit()
    }
}

/// What a query runs within when it has a [`QueryRuntime`].
struct Bounds {
    runtime: Arc<QueryRuntime>,
    pool: Arc<QueryPool>,
    deadline: Option<Instant>,
}

impl Bounds {
    /// `e` as [`Error::QueryLimit`] or [`Error::QueryBusy`] when a limit
    /// caused it; else `e`.
    fn error(&self, e: DataFusionError) -> DataFusionError {
        let root = e.find_root();
        if !matches!(root, DataFusionError::ResourcesExhausted(_)) {
            return e;
        }
        let limits = &self.runtime.limits;
        let detail = root.to_string();
        external(match self.pool.refused.load(Ordering::Relaxed) {
            REFUSED_SHARED => Error::QueryBusy(format!(
                "the queries running now hold the memory all queries share ({} bytes); retry later ({detail})",
                limits.memory_pool_bytes
            )),
            _ => Error::QueryLimit(format!(
                "the query needs more memory than one query may use ({} bytes){} ({detail})",
                limits.memory_bytes,
                if limits.spill_bytes == 0 { "" } else { ", also after spilling what can spill" }
            )),
        })
    }

    fn timed_out(&self) -> Error {
        let timeout = self.runtime.limits.timeout.unwrap_or_default();
        Error::QueryLimit(format!(
            "the query ran longer than the query timeout ({})",
            humantime::format_duration(timeout)
        ))
    }

    /// `fut`, cut off at the deadline.
    async fn within<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match self.deadline {
            Some(at) => tokio::time::timeout_at(at.into(), fut).await.unwrap_or_else(|_| Err(self.timed_out())),
            None => fut.await,
        }
    }
}

/// A query's batches under its [`Bounds`]: at the deadline the plan is
/// dropped (its tasks aborted, its scans stopped) and the stream ends with
/// [`Error::QueryLimit`]; a memory error says which limit it met.
struct BoundedStream {
    inner: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    bounds: Bounds,
    /// Made at the first poll, inside the runtime that polls.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for BoundedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Some(at) = this.bounds.deadline {
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
            if sleep.as_mut().poll(cx).is_ready() {
                this.inner = None;
                return Poll::Ready(Some(Err(external(this.bounds.timed_out()))));
            }
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(this.bounds.error(e))))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl RecordBatchStream for BoundedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

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

/// What one query read, per table scan (a "chunk"), while it runs and once
/// it is done: `/api/v3/query_sql_telemetry` reports the last one.
#[derive(Debug)]
pub struct QueryTelemetry {
    id: String,
    db: String,
    sql: String,
    started_ns: i64,
    started: Instant,
    chunks: Mutex<Vec<Chunk>>,
    end: Mutex<Option<(Duration, Option<String>)>>,
}

#[derive(Debug)]
struct Chunk {
    table: String,
    time_range: Option<TimeRange>,
    tags: Vec<(String, String)>,
    stats: Arc<ScanStats>,
}

/// A [`QueryTelemetry`] read at one moment, as `/api/v3/query_sql_telemetry`
/// answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TelemetryReport {
    pub query_id: String,
    pub database: String,
    pub query: String,
    /// `running`, `finished` or `failed`.
    pub state: &'static str,
    pub error: Option<String>,
    /// RFC 3339, by the engine's clock.
    pub started_at: String,
    pub duration_ms: Option<f64>,
    /// One entry per table scan, in the order the scans started.
    pub chunks: Vec<ChunkReport>,
    /// The chunks' figures added up.
    pub totals: ScanFigures,
    /// Blocks found in (hits) or missing from (misses) the OS page cache,
    /// for gen0 (flushed) and compacted files.
    pub cache: CacheReport,
}

/// One table scan of a [`TelemetryReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChunkReport {
    pub table: String,
    /// The pushed-down range `[start_ns, end_ns)`, if any.
    pub time_range: Option<PushedRange>,
    /// Pushed-down tag equalities.
    pub tag_filters: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    pub figures: ScanFigures,
}

/// A pushed-down time range as telemetry reports it, half-open. `end_ns` is
/// an `i128` so that a range holding `i64::MAX` can say so (its end is
/// 2^63); an empty range has `end_ns == start_ns`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PushedRange {
    pub start_ns: i64,
    pub end_ns: i128,
}

impl From<TimeRange> for PushedRange {
    fn from(r: TimeRange) -> Self {
        if r.is_empty() {
            PushedRange { start_ns: r.min(), end_ns: i128::from(r.min()) }
        } else {
            PushedRange { start_ns: r.min(), end_ns: i128::from(r.max()) + 1 }
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CacheReport {
    pub gen0: HitsMisses,
    pub compacted: HitsMisses,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct HitsMisses {
    pub hits: u64,
    pub misses: u64,
}

impl QueryTelemetry {
    /// Telemetry for a query starting now; `id` names it.
    pub fn new(engine: &Engine, id: impl Into<String>, db: &str, sql: &str) -> Arc<QueryTelemetry> {
        Arc::new(QueryTelemetry {
            id: id.into(),
            db: db.to_string(),
            sql: sql.to_string(),
            started_ns: engine.now_ns(),
            started: Instant::now(),
            chunks: Mutex::new(Vec::new()),
            end: Mutex::new(None),
        })
    }

    /// The query's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn add_chunk(&self, table: &str, req: &ScanRequest, stats: Arc<ScanStats>) {
        let chunk = Chunk { table: table.to_string(), time_range: req.time_range, tags: req.tag_equals.clone(), stats };
        self.chunks.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
    }

    /// Marks the query done; `error` says why it failed. The first call counts.
    pub fn finish(&self, error: Option<String>) {
        let mut end = self.end.lock().unwrap_or_else(|p| p.into_inner());
        if end.is_none() {
            *end = Some((self.started.elapsed(), error));
        }
    }

    /// The figures now.
    pub fn report(&self) -> TelemetryReport {
        let chunks: Vec<ChunkReport> = self
            .chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|c| ChunkReport {
                table: c.table.clone(),
                time_range: c.time_range.map(PushedRange::from),
                tag_filters: c.tags.iter().cloned().collect(),
                figures: c.stats.figures(),
            })
            .collect();
        let totals = chunks.iter().fold(ScanFigures::default(), |acc, c| acc.plus(c.figures));
        let end = self.end.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (state, error, duration) = match end {
            None => ("running", None, None),
            Some((d, None)) => ("finished", None, Some(d)),
            Some((d, Some(e))) => ("failed", Some(e), Some(d)),
        };
        TelemetryReport {
            query_id: self.id.clone(),
            database: self.db.clone(),
            query: self.sql.clone(),
            state,
            error,
            started_at: chrono::DateTime::from_timestamp_nanos(self.started_ns)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            duration_ms: duration.map(|d| d.as_secs_f64() * 1e3),
            cache: CacheReport {
                gen0: HitsMisses { hits: totals.gen0_hits, misses: totals.gen0_misses },
                compacted: HitsMisses { hits: totals.compacted_hits, misses: totals.compacted_misses },
            },
            chunks,
            totals,
        }
    }
}
