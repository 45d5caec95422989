//! `GET /metrics`: the engine's counters and the files on disk in the
//! Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::tree::LEVEL_COMPACTED;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The exposition text for `engine` and its export cache.
pub fn render(engine: &crate::Engine, cache: &crate::export::cache::ExportCache) -> String {
    let stats = engine.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    metric(&mut out, "quipu_write_requests_total", "counter", "Write requests applied.", &[("", load(&stats.writes))]);
    metric(
        &mut out,
        "quipu_rows_written_total",
        "counter",
        "Rows applied by writes.",
        &[("", load(&stats.rows_written))],
    );
    metric(
        &mut out,
        "quipu_lines_rejected_total",
        "counter",
        "Lines rejected by writes.",
        &[("", load(&stats.lines_rejected))],
    );
    metric(&mut out, "quipu_flushes_total", "counter", "Buffer flushes to gen0 files.", &[("", load(&stats.flushes))]);
    metric(&mut out, "quipu_compactions_total", "counter", "Table compactions.", &[("", load(&stats.compactions))]);
    metric(
        &mut out,
        "quipu_write_stalls_total",
        "counter",
        "Writes that waited for a flush.",
        &[("", load(&stats.write_stalls))],
    );

    let buffer = engine.buffer_usage();
    metric(&mut out, "quipu_buffer_rows", "gauge", "Rows in the write buffer, not yet in files.", &[("", buffer.rows)]);
    metric(&mut out, "quipu_buffer_bytes", "gauge", "Approximate memory of the write buffer.", &[("", buffer.bytes)]);

    let (mut files, mut bytes, mut rows) = ([0u64; 2], [0u64; 2], [0u64; 2]);
    for f in engine.version().files.iter() {
        let i = usize::from(f.meta.level == LEVEL_COMPACTED);
        files[i] += 1;
        bytes[i] += f.meta.size;
        rows[i] += f.meta.rows;
    }
    let counts = cache.stats();
    metric(
        &mut out,
        "quipu_export_cache_hits_total",
        "counter",
        "Exported windows streamed from the export cache.",
        &[("", load(&counts.hits))],
    );
    metric(
        &mut out,
        "quipu_export_cache_misses_total",
        "counter",
        "Exported windows converted because the export cache lacked them.",
        &[("", load(&counts.misses))],
    );
    metric(
        &mut out,
        "quipu_export_cache_evictions_total",
        "counter",
        "Export cache entries removed to stay under the size limit.",
        &[("", load(&counts.evictions))],
    );
    metric(
        &mut out,
        "quipu_export_cache_damaged_total",
        "counter",
        "Export cache entries found damaged or unreadable (removed).",
        &[("", load(&counts.damaged))],
    );
    let usage = cache.usage();
    metric(
        &mut out,
        "quipu_export_cache_entries",
        "gauge",
        "Parquet files in the export cache.",
        &[("", usage.entries)],
    );
    metric(
        &mut out,
        "quipu_export_cache_bytes",
        "gauge",
        "Bytes of Parquet in the export cache.",
        &[("", usage.bytes)],
    );

    let levels = |v: [u64; 2]| [("level=\"gen0\"", v[0]), ("level=\"compacted\"", v[1])];
    metric(&mut out, "quipu_files", "gauge", "Segment files on disk, by level.", &levels(files));
    metric(&mut out, "quipu_file_bytes", "gauge", "Bytes of segment files on disk, by level.", &levels(bytes));
    metric(&mut out, "quipu_file_rows", "gauge", "Rows in segment files, by level.", &levels(rows));
    out
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || render(state.engine(), state.export_cache())).await {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response(),
        Err(e) => super::error::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics task failed: {e}"),
        )
        .into_response(),
    }
}
