//! A file replaced by compaction stays on disk while a pinned version lists
//! it, and is deleted when the last pin goes; orphans of a crash are removed
//! at open.

use quipu::{Engine, Precision, ScanRequest, WriteOptions};

#[test]
fn replaced_files_live_until_unpinned() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder(dir.path()).background(false).open().unwrap();
    for i in 0..3 {
        e.write_lp("db", &format!("m,host=a v={i}i {i}"), Precision::Nanosecond, WriteOptions::default()).unwrap();
        e.flush().unwrap();
    }
    let pinned = e.version();
    let gen0: Vec<_> = pinned.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(gen0.len(), 3);
    e.compact().unwrap();
    assert_eq!(e.live_files().len(), 1);
    assert!(gen0.iter().all(|p| p.exists()), "pinned files must stay");
    // The pinned version still reads.
    for f in &pinned.files {
        assert_eq!(f.reader.read_all().unwrap().len(), 1);
    }
    drop(pinned);
    assert!(gen0.iter().all(|p| !p.exists()), "unpinned replaced files are deleted");
    assert_eq!(e.scan("db", "m", &ScanRequest::all()).unwrap()[0].num_rows(), 3);
}

#[test]
fn orphan_segments_and_temp_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::builder(dir.path()).background(false).open().unwrap();
        e.write_lp("db", "m v=1 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
        e.flush().unwrap();
    }
    let segs = dir.path().join("segments");
    std::fs::write(segs.join("00000000000000009999.seg"), b"orphan").unwrap();
    std::fs::write(segs.join("00000000000000009998.seg.tmp"), b"half").unwrap();
    let e = Engine::open(dir.path()).unwrap();
    assert!(!segs.join("00000000000000009999.seg").exists());
    assert!(!segs.join("00000000000000009998.seg.tmp").exists());
    assert_eq!(e.live_files().len(), 1);
}
