//! A full disk (a real ENOSPC on a 2 MiB tmpfs) refuses writes without
//! acknowledging them and without poisoning the engine: once space is freed,
//! writes are accepted again without a restart, and every acknowledged row
//! is read back after a flush and after a reopen.
//!
//! Mounting needs root, as CI runs the tests.
#![cfg(feature = "server")]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use quipu::server::{AdminToken, AppState, BackgroundServer, DEFAULT_MAX_BODY_BYTES};
use quipu::{Engine, ScanRequest};

const TOKEN: &str = "apiv3_test-token";

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let c = |s: &[u8]| CString::new(s).unwrap();
        let (source, target, fstype, data) =
            (c(b"tmpfs"), c(path.as_os_str().as_bytes()), c(b"tmpfs"), c(format!("size={size}").as_bytes()));
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
        assert_eq!(
            rc,
            0,
            "mount -t tmpfs on {} (the test needs root): {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path. Lazy, so that a failed assertion
        // with files still open does not leave the mount behind.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

fn values(engine: &Engine) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for b in engine.scan("db", "m", &ScanRequest::all().columns(["v"])).unwrap() {
        out.extend(b.column_by_name("v").unwrap().as_primitive::<Int64Type>().values().iter().copied());
    }
    out
}

/// One line of about 2 KiB, so that a few of them need a new page.
fn line(i: i64) -> String {
    format!("m pad=\"{}\",v={i}i {i}", "x".repeat(2000))
}

#[test]
fn a_full_disk_refuses_writes_until_space_is_freed_and_loses_nothing() {
    let fs = Tmpfs::mount("2m");
    let data = fs.path.join("data");
    let filler = fs.path.join("filler");
    let engine = Engine::builder(&data).background(false).open().unwrap();
    let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), DEFAULT_MAX_BODY_BYTES);
    let server = BackgroundServer::start(state, "127.0.0.1:0".parse().unwrap()).unwrap();
    let http = reqwest::blocking::Client::new();
    let url = format!("http://{}/api/v3/write_lp?db=db&precision=nanosecond", server.addr());
    let write = |i: i64| http.post(&url).bearer_auth(TOKEN).body(line(i)).send().unwrap();

    let mut acknowledged = BTreeSet::new();
    for i in 0..10 {
        assert_eq!(write(i).status(), 204);
        acknowledged.insert(i);
    }

    fill(&filler);
    // The WAL file's last page may still hold a record or two.
    let mut refused = None;
    for i in 10..100 {
        let resp = write(i);
        match resp.status().as_u16() {
            204 => {
                acknowledged.insert(i);
            }
            status => {
                refused = Some((i, status, resp.json::<serde_json::Value>().unwrap()));
                break;
            }
        }
    }
    let (first_refused, status, body) = refused.expect("a write on a full disk was refused");
    assert_eq!(status, 507, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("No space left on device") && message.contains("retry"), "{message}");

    // Still full: refused the same way, not poisoned.
    assert_eq!(write(first_refused).status(), 507);
    // A flush cannot write either; the rows stay in memory and in the WAL.
    let err = engine.flush().unwrap_err();
    assert!(!matches!(err, quipu::Error::Poisoned { .. }), "{err}");
    assert_eq!(write(first_refused).status(), 507);
    assert_eq!(values(&engine), acknowledged);

    // Space returns: writes are accepted again without a restart.
    std::fs::remove_file(&filler).unwrap();
    for i in 100..110 {
        assert_eq!(write(i).status(), 204);
        acknowledged.insert(i);
    }
    engine.flush().unwrap();
    assert_eq!(values(&engine), acknowledged);
    assert_eq!(write(110).status(), 204);
    acknowledged.insert(110);

    server.stop().unwrap();
    drop(engine);
    let engine = Engine::builder(&data).background(false).open().unwrap();
    assert_eq!(values(&engine), acknowledged);
    engine.flush().unwrap();
    drop(engine);
    let engine = Engine::builder(&data).background(false).open().unwrap();
    assert_eq!(values(&engine), acknowledged);
}

#[test]
fn a_full_disk_while_a_write_adds_a_table_refuses_it_and_recovers() {
    let fs = Tmpfs::mount("2m");
    let data = fs.path.join("data");
    let filler = fs.path.join("filler");
    let engine = Engine::builder(&data).background(false).open().unwrap();
    let lp = |table: &str, i: i64| format!("{table} v={i}i {i}");
    let write = |body: &str| engine.write_lp("db", body, quipu::Precision::Nanosecond, Default::default());
    write(&lp("m", 1)).unwrap();

    fill(&filler);
    // The catalog change of a new table cannot be persisted.
    match write(&lp("other", 2)) {
        Err(quipu::Error::WriteNotStored { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::ENOSPC)),
        other => panic!("expected WriteNotStored, got {other:?}"),
    }
    std::fs::remove_file(&filler).unwrap();
    write(&lp("other", 2)).unwrap();
    write(&lp("m", 3)).unwrap();
    drop(engine);
    let engine = Engine::builder(&data).background(false).open().unwrap();
    assert_eq!(values(&engine), BTreeSet::from([1, 3]));
    let rows: usize = engine.scan("db", "other", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1);
}
