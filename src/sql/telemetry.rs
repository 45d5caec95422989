//! [`QueryTelemetry`]: what one query read, per table scan, while it runs
//! and once it is done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::time_range::TimeRange;
use crate::{Engine, ScanFigures, ScanRequest, ScanStats};

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
pub(super) struct Chunk {
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

    pub(super) fn add_chunk(&self, table: &str, req: &ScanRequest, stats: Arc<ScanStats>) {
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
