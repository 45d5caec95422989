//! A child process writes batches that each add a column (and now and then
//! a table), so every acknowledged write appended a catalog log record
//! first, with a small checkpoint bound so that the log is also folded into
//! snapshots; it is killed with SIGKILL at a random moment, over and over on
//! the same folder. After each kill the folder must open, its catalog must
//! hold the column of every acknowledged batch, and the batch's row must be
//! there with its value.
//!
//! QUIPU_CATALOG_CRASH_RUNS sets the number of kills (default 30),
//! QUIPU_CATALOG_CRASH_SEED the seed (hex); see `crash_support`.

use crate::common;
use crate::crash_support::{self, Campaign};

use std::time::Duration;

use quipu::{Engine, Precision, ScanRequest, WriteOptions};

/// Columns per table before the child moves to the next table.
const COLUMNS_PER_TABLE: i64 = 40;

fn engine(dir: &str) -> Engine {
    Engine::builder(dir).flush_bytes(16 * 1024).catalog_checkpoint_bytes(512).open().unwrap()
}

fn table(k: i64) -> String {
    format!("t{}", k / COLUMNS_PER_TABLE)
}

/// The child: batch k adds field `f<k>` to its table; prints "ack K" after each.
#[test]
fn catalog_crash_child() {
    let (Some(dir), Some(first)) =
        (crash_support::child_env("QUIPU_CATALOG_CRASH_DIR"), crash_support::child_env("QUIPU_CATALOG_CRASH_FIRST"))
    else {
        return;
    };
    let first: i64 = first.parse().unwrap();
    let e = engine(&dir);
    for k in first.. {
        let body = format!("{},host=h f{k}={k}i {k}\n", table(k));
        e.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
        crash_support::ack(k);
    }
}

#[test]
fn killed_catalog_changes_keep_every_acknowledged_column() {
    let mut campaign = Campaign::from_env("CATALOG", 30, 0xca7a);
    let dir = campaign.path("data");
    let dir_s = crash_support::env_path(&dir);
    let mut next_first = 0i64;
    let mut acked_all = Vec::new();
    for run in 0..campaign.runs {
        let ctx = campaign.ctx(run);
        let acked = crash_support::kill_child_after(
            &common::test_name(module_path!(), "catalog_crash_child"),
            &[("QUIPU_CATALOG_CRASH_DIR", dir_s.clone()), ("QUIPU_CATALOG_CRASH_FIRST", next_first.to_string())],
            Duration::from_millis(30 + campaign.rng.below(300)),
        );
        // The next child starts past anything this one may have begun.
        next_first = acked.last().map_or(next_first, |k| k + 1) + 1_000;
        acked_all.extend(acked);

        let e = Engine::builder(&dir_s).background(false).open().expect("the folder must open cleanly after a kill");
        let catalog = e.catalog();
        for &k in &acked_all {
            let db = catalog.database("db").unwrap_or_else(|| panic!("{ctx}: database lost"));
            let t = db.table(&table(k)).unwrap_or_else(|| panic!("{ctx}: table of batch {k} lost"));
            assert!(t.column(&format!("f{k}")).is_some(), "{ctx}: column of acknowledged batch {k} lost");
        }
        for &k in acked_all.iter().rev().take(5) {
            let batches = e.scan("db", &table(k), &ScanRequest::all().columns([format!("f{k}")])).unwrap();
            let rows = common::table_of(&batches);
            let value = rows.iter().find(|((_, t), _)| *t == k).and_then(|(_, r)| r.get(&format!("f{k}")));
            assert_eq!(value.map(String::as_str), Some(k.to_string().as_str()), "{ctx}: batch {k}");
        }
    }
    assert!(!acked_all.is_empty(), "the children acknowledged nothing: the test tested nothing");
    let catalog_files: Vec<String> = std::fs::read_dir(dir.join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(catalog_files.iter().filter(|n| n.ends_with(".cat")).count() <= 2, "{catalog_files:?}");
    campaign.passed();
}
