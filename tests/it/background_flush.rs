//! The background thread flushes by buffer size and by age (on the injected
//! clock), and compacts once enough gen0 files exist. Where a test checks
//! that nothing happened yet, it first waits until the thread has looked
//! (its round counter moved twice: one whole round saw the state), so it
//! cannot pass because the thread never woke.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quipu::clock::ManualClock;
use quipu::{Engine, Precision, WriteOptions};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    // A liveness bound, not a timing assertion: the work takes milliseconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a background thread's round counter moved by two: at least
/// one round started after this call and ended.
fn wait_rounds(what: &str, counter: &AtomicU64) {
    let start = counter.load(Ordering::SeqCst);
    wait_for(what, || counter.load(Ordering::SeqCst) >= start + 2);
}

#[test]
fn flushes_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder(dir.path()).flush_bytes(10_000).compaction(false).open().unwrap();
    let mut body = String::new();
    for i in 0..1000 {
        body.push_str(&format!("m,host=h{} v={i}i {i}\n", i % 10));
    }
    e.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
    wait_for("a size-triggered flush", || !e.live_files().is_empty());
}

#[test]
fn flushes_by_age_on_the_injected_clock_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let e = Engine::builder(dir.path())
        .clock(clock.clone())
        .flush_age(Duration::from_secs(60))
        .compact_after_gen0_files(2)
        .open()
        .unwrap();
    e.write_lp("db", "m v=1 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    wait_rounds("the flush thread to look at the buffer", &e.stats().flush_checks);
    assert!(e.live_files().is_empty(), "not old enough yet");
    assert_eq!(e.stats().flushes.load(Ordering::SeqCst), 0);
    clock.advance(61_000_000_000);
    wait_for("an age-triggered flush", || e.stats().flushes.load(Ordering::SeqCst) == 1);
    e.write_lp("db", "m v=2 2", Precision::Nanosecond, WriteOptions::default()).unwrap();
    clock.advance(61_000_000_000);
    wait_for("a compaction of two gen0 files", || {
        let files = e.live_files();
        files.len() == 1 && files[0].meta.level == 1
    });
}

#[test]
fn writers_wait_for_flushes_instead_of_growing_the_buffer_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Every write is far above 4 x flush_bytes, so each later write must wait
    // for a flush (the buffer limit, not under test here, is set above them).
    let e = Engine::builder(dir.path()).flush_bytes(64).max_buffer_bytes(1 << 20).compaction(false).open().unwrap();
    for i in 0..20 {
        let body: String = (0..50).map(|j| format!("m,host=h v={i}i {}\n", i * 50 + j)).collect();
        e.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
    }
    assert!(e.stats().write_stalls.load(Ordering::SeqCst) > 0);
    wait_for("the last flush", || e.live_files().iter().map(|f| f.meta.rows).sum::<u64>() == 1000);
    let rows: usize = e.scan("db", "m", &quipu::ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1000);
}

#[test]
fn a_lone_gen0_file_is_compacted_once_it_has_waited_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000_000));
    let e = Engine::builder(dir.path())
        .clock(clock.clone())
        .flush_age(Duration::from_secs(3600))
        .compact_after_age(Duration::from_secs(600))
        .open()
        .unwrap();
    e.write_lp("db", "m v=1i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    e.flush().unwrap();
    let level = |e: &Engine| e.live_files().iter().map(|f| f.meta.level).collect::<Vec<_>>();
    assert_eq!(level(&e), [0]);
    // Let the compactor see the file at this time, then just before its age.
    wait_rounds("the compactor to see the file", &e.stats().compaction_checks);
    clock.advance(599 * 1_000_000_000);
    wait_rounds("the compactor to look again", &e.stats().compaction_checks);
    assert_eq!(level(&e), [0], "one file younger than the age is left alone");
    assert_eq!(e.stats().compactions.load(Ordering::SeqCst), 0);
    clock.advance(2 * 1_000_000_000);
    wait_for("an age-triggered compaction", || level(&e) == [1]);
    assert_eq!(quipu::export::windows(&e, "db", "m").unwrap().len(), 1);
}
