//! What queries run within: [`QueryLimits`], the shared [`QueryRuntime`]
//! (memory pool and spill files), each query's own memory pool and its
//! deadline.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;

use super::query_error;
use super::scan::external;
use crate::error::{Error, Result};

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
    pub(super) limits: QueryLimits,
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
    pub(super) fn for_query(self: &Arc<Self>) -> Result<(Arc<RuntimeEnv>, Arc<QueryPool>)> {
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

pub(super) const NOT_REFUSED: u8 = 0;
pub(super) const REFUSED_OWN: u8 = 1;
pub(super) const REFUSED_SHARED: u8 = 2;

/// One query's memory: its own limit, inside the pool all queries share.
/// Records which of the two refused memory last, so that a query that
/// fails for memory can say whether it is too big or the server is busy.
#[derive(Debug)]
pub(super) struct QueryPool {
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
pub(super) struct Bounds {
    pub(super) runtime: Arc<QueryRuntime>,
    pub(super) pool: Arc<QueryPool>,
    pub(super) deadline: Option<Instant>,
}

impl Bounds {
    /// `e` as [`Error::QueryLimit`] or [`Error::QueryBusy`] when a limit
    /// caused it; else `e`.
    pub(super) fn error(&self, e: DataFusionError) -> DataFusionError {
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
    pub(super) async fn within<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match self.deadline {
            Some(at) => tokio::time::timeout_at(at.into(), fut).await.unwrap_or_else(|_| Err(self.timed_out())),
            None => fut.await,
        }
    }
}

/// A query's batches under its [`Bounds`]: at the deadline the plan is
/// dropped (its tasks aborted, its scans stopped) and the stream ends with
/// [`Error::QueryLimit`]; a memory error says which limit it met.
pub(super) struct BoundedStream {
    pub(super) inner: Option<SendableRecordBatchStream>,
    pub(super) schema: SchemaRef,
    pub(super) bounds: Bounds,
    /// Made at the first poll, inside the runtime that polls.
    pub(super) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
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
