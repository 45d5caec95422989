//! [`ScanExec`]: the engine scan behind a [`super::QuipuTable`], split into
//! partitions once, each decoded on its own blocking thread.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

use super::table::QuipuTable;
use super::telemetry::QueryTelemetry;
use crate::error::{Error, Result};
use crate::time_range::TimeRange;
use crate::{Engine, ScanRequest, ScanStats};

/// Batches decoded ahead of the query.
pub(super) const SCAN_AHEAD: usize = 4;

/// The engine scan behind a [`QuipuTable`]: up to `target_partitions`
/// partitions (the engine deals out the blocks of files that need no
/// merge; otherwise one partition merges), each decoded on a blocking
/// thread and handed over a short queue. The split is made once, at the
/// first `execute`, so every partition reads the same version.
#[derive(Debug)]
pub(super) struct ScanExec {
    schema: SchemaRef,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
    statistics: Arc<Statistics>,
    splitter: Arc<Splitter>,
}

/// Makes a [`ScanExec`]'s split into partitions once, on the first
/// partition's blocking thread, and hands each partition its iterator.
#[derive(Debug)]
pub(super) struct Splitter {
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
    pub(super) fn new(
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

pub(super) fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// `batch`'s columns named by `schema`, in its order (the scan adds `time`
/// and orders columns its own way).
pub(super) fn project(batch: &RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
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
