//! The TSBS data sets of the comparative suite (`backup_set gen-tsbs` and
//! `append-tsbs`, examples/backup_set.rs) hold what the suite says they
//! hold: one compacted segment per day, and exactly the rows `quipu gen tsbs`
//! prints for the same arguments.

use std::time::Duration;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use quipu::tsbs::{self, TsbsConfig};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

#[path = "../../examples/backup_set.rs"]
#[allow(dead_code)]
mod backup_set;

fn all_rows(engine: &Engine) -> RecordBatch {
    let batches = engine.scan(backup_set::TSBS_DB, "cpu", &ScanRequest::all()).unwrap();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn a_tsbs_set_holds_the_rows_of_quipu_gen_tsbs_one_segment_per_day() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("set");
    let interval = Duration::from_secs(3600);
    let summary = backup_set::generate_tsbs(&set, 3, 4, interval, 2).unwrap();
    assert_eq!(summary.files, 3, "one segment per day, also across a two-day round");
    assert_eq!(summary.rows, 3 * 24 * 4);

    // The same rows through `quipu gen tsbs`'s writer and write_lp.
    let cfg = TsbsConfig { hosts: 4, duration: Duration::from_secs(3 * 86_400), interval, ..TsbsConfig::default() };
    let mut lp = Vec::new();
    assert_eq!(tsbs::write_tsbs(&cfg, &mut lp).unwrap(), 3 * 24 * 4);
    let reference = Engine::builder(tmp.path().join("reference")).background(false).open().unwrap();
    let opts = WriteOptions { accept_partial: false, no_sync: true };
    reference.write_lp(backup_set::TSBS_DB, std::str::from_utf8(&lp).unwrap(), Precision::Nanosecond, opts).unwrap();

    let engine = Engine::builder(&set).background(false).open().unwrap();
    assert_eq!(all_rows(&engine), all_rows(&reference));
    let last_day = engine.live_files().iter().map(|f| f.meta.time_max).max().unwrap();
    drop(engine);

    // One more day: one more segment, after the last, with new values.
    let appended = backup_set::append_tsbs(&set, 2, interval).unwrap();
    assert_eq!(appended.files, 4);
    assert_eq!(appended.rows, summary.rows + 24 * 2);
    let engine = Engine::builder(&set).background(false).open().unwrap();
    let new =
        engine.live_files().into_iter().find(|f| f.meta.time_min > last_day).expect("a segment after the last day");
    assert_eq!(new.meta.rows, 24 * 2);
}

#[test]
fn a_tsbs_set_refuses_an_interval_that_does_not_divide_a_day_and_a_folder_with_data() {
    let tmp = tempfile::tempdir().unwrap();
    let err = backup_set::generate_tsbs(&tmp.path().join("a"), 1, 1, Duration::from_secs(7), 1).unwrap_err();
    assert!(err.to_string().contains("must divide a day"), "{err}");
    let set = tmp.path().join("b");
    backup_set::generate_tsbs(&set, 1, 1, Duration::from_secs(3600), 1).unwrap();
    let err = backup_set::generate_tsbs(&set, 1, 1, Duration::from_secs(3600), 1).unwrap_err();
    assert!(err.to_string().contains("already holds data"), "{err}");
}
