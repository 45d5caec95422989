//! A child process ingests (with background flushes and streaming
//! compactions over several windows) and is killed with SIGKILL at a random
//! moment, over and over on the same folder.
//! After each kill the folder must open cleanly and hold every acknowledged
//! write; a write is one WAL record, so it is there entirely or not at all.
//!
//! QUIPU_INGEST_CRASH_RUNS sets the number of kills (default 50),
//! QUIPU_INGEST_CRASH_SEED the seed (hex); see `crash_support`.

use crate::common;
use crate::crash_support::{self, Campaign};

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const LINES_PER_BATCH: i64 = 5;

fn engine(dir: &str) -> Engine {
    Engine::builder(dir).flush_bytes(8 * 1024).compact_after_gen0_files(3).block_rows(64).open().unwrap()
}

/// The child: write batches forever, printing "ack K" after each acknowledged one.
#[test]
fn crash_child() {
    let (Some(dir), Some(first)) =
        (crash_support::child_env("QUIPU_CRASH_DIR"), crash_support::child_env("QUIPU_CRASH_FIRST"))
    else {
        return;
    };
    let first: i64 = first.parse().unwrap();
    let e = engine(&dir);
    for k in first.. {
        let mut body = String::new();
        // Batches hop over four 24h windows, so every flush writes several
        // files and every compaction merges several windows. Distinct
        // times per batch (86,400 is a multiple of 4): batch k overwrites nothing.
        let t = k * 1_000_000_000 + (k % 4) * 86_400 * 1_000_000_000;
        for line in 0..LINES_PER_BATCH {
            body.push_str(&format!("m,host=h{line} k={k}i,v={}i {t}\n", k * 10 + line));
        }
        e.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
        crash_support::ack(k);
    }
}

/// Batch number -> lines present.
fn batches_present(dir: &str) -> BTreeMap<i64, i64> {
    let e = Engine::builder(dir).background(false).open().expect("the folder must open cleanly after a kill");
    // A compaction's outputs replace its inputs in one version: never two
    // compacted files of one window (old and new) side by side.
    let mut windows = std::collections::BTreeSet::new();
    for f in e.version().files.iter().filter(|f| f.meta.level == quipu::tree::LEVEL_COMPACTED) {
        assert!(windows.insert((f.meta.table_id, f.meta.window_start_ns)), "two compacted files of one window");
    }
    let mut present = BTreeMap::new();
    if e.catalog().database("db").is_none() {
        return present;
    }
    for b in e.scan("db", "m", &ScanRequest::all().columns(["k", "v"])).unwrap() {
        let k = b.column(0).as_primitive::<Int64Type>();
        let v = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(k.is_valid(i) && v.is_valid(i));
            assert_eq!(v.value(i) / 10, k.value(i), "values belong to their batch");
            *present.entry(k.value(i)).or_insert(0) += 1;
        }
    }
    present
}

#[test]
fn killed_ingest_keeps_every_acknowledged_write() {
    let mut campaign = Campaign::from_env("INGEST", 50, 0x5eed);
    let dir_s = crash_support::env_path(&campaign.path("data"));
    let mut acked_total = 0usize;
    for run in 0..campaign.runs {
        let ctx = campaign.ctx(run);
        let first = (run as i64) * 1_000_000;
        let acked = crash_support::kill_child_after(
            &common::test_name(module_path!(), "crash_child"),
            &[("QUIPU_CRASH_DIR", dir_s.clone()), ("QUIPU_CRASH_FIRST", first.to_string())],
            Duration::from_millis(20 + campaign.rng.below(400)),
        );
        acked_total += acked.len();

        let present = batches_present(&dir_s);
        for k in &acked {
            assert_eq!(present.get(k), Some(&LINES_PER_BATCH), "{ctx}: acknowledged batch {k} lost or torn");
        }
        for (k, n) in &present {
            assert_eq!(*n, LINES_PER_BATCH, "{ctx}: batch {k} is torn");
        }
    }
    assert!(acked_total > 0, "the children acknowledged nothing: the test tested nothing");
    campaign.passed();
}
