//! `quipu serve` converts each window into the export cache when it
//! compacts it (its default), so the first export of the window streams a
//! file; with `--export-warm false` the first export converts instead. A real
//! process, writes over HTTP, the background flush and compaction, and the
//! cache counters of `/metrics`.
#![cfg(all(feature = "server", unix))]

use crate::process_support;

use std::time::{Duration, Instant};

use process_support::{Serve, http};

const TOKEN: &str = "apiv3_export-warm";

fn metric(base: &str, name: &str) -> u64 {
    let text = http().get(format!("{base}/metrics")).bearer_auth(TOKEN).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

/// Starts a server with `extra`, writes a day's worth of rows and waits
/// until the background compaction has written the window.
fn serve_compacted(dir: &std::path::Path, extra: &[&str]) -> Serve {
    let mut args = vec!["--flush-age", "100ms", "--compact-age", "200ms"];
    args.extend_from_slice(extra);
    let serve =
        Serve::start_with(&dir.join("data"), &dir.join("repo"), "auto", TOKEN, &dir.join("serve.log"), &"serve", &args);
    let lp: String = (0..500).map(|i| format!("cpu,host=h{} usage={i}.5 {}\n", i % 7, i * 60_000_000_000i64)).collect();
    let resp = http()
        .post(format!("{}/api/v3/write_lp?db=db&precision=nanosecond", serve.base))
        .bearer_auth(TOKEN)
        .body(lp)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    // A liveness bound, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&serve.base, "quipu_file_rows{level=\"compacted\"}") < 500 {
        assert!(Instant::now() < deadline, "the window was never compacted");
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

fn export(serve: &Serve) -> usize {
    let resp = http()
        .get(format!("{}/api/v3/export/window_data?db=db&table=cpu", serve.base))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().unwrap().len()
}

#[test]
fn serve_warms_by_default_and_not_when_told() {
    let warm = tempfile::tempdir().unwrap();
    let serve = serve_compacted(warm.path(), &[]);
    // The conversion follows the compaction in the same thread.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&serve.base, "quipu_export_cache_entries") < 1 {
        assert!(Instant::now() < deadline, "the compacted window was never converted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let warm_bytes = export(&serve);
    assert_eq!(metric(&serve.base, "quipu_export_cache_hits_total"), 1);
    assert_eq!(metric(&serve.base, "quipu_export_cache_misses_total"), 0);

    let cold = tempfile::tempdir().unwrap();
    let serve = serve_compacted(cold.path(), &["--export-warm", "false"]);
    assert_eq!(metric(&serve.base, "quipu_export_cache_entries"), 0);
    assert_eq!(export(&serve), warm_bytes);
    assert_eq!(metric(&serve.base, "quipu_export_cache_misses_total"), 1);
    assert_eq!(metric(&serve.base, "quipu_export_cache_entries"), 1);
    assert_eq!(export(&serve), warm_bytes);
    assert_eq!(metric(&serve.base, "quipu_export_cache_hits_total"), 1);
}
