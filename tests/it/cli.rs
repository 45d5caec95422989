//! The `quipu` binary's offline tools, run as a user would.

use std::process::Command;

use quipu::{Engine, Precision, WriteOptions};

fn quipu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quipu")).args(args).output().unwrap()
}

#[test]
fn gen_tsbs_is_deterministic_line_protocol_that_the_engine_accepts() {
    let args = ["gen", "tsbs", "--hosts", "3", "--duration", "1m", "--interval", "10s", "--seed", "9"];
    let a = quipu(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, quipu(&args).stdout, "same seed, same bytes");
    let text = String::from_utf8(a.stdout).unwrap();
    assert_eq!(text.lines().count(), 3 * 6);
    assert!(text.starts_with("cpu,hostname=host_0,region="));
    assert!(text.lines().next().unwrap().ends_with(" 1451606400000000000"), "default start 2016-01-01");

    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder(dir.path()).background(false).open().unwrap();
    let s = e.write_lp("db", &text, Precision::Nanosecond, WriteOptions::default()).unwrap();
    assert_eq!(s.lines_written, 18);
}

#[test]
fn gen_rejects_bad_arguments_with_a_message() {
    for args in [
        ["gen", "tsbs", "--duration", "soon"],
        ["gen", "tsbs", "--start", "yesterday"],
        ["gen", "tsbs", "--interval", "0s"],
    ] {
        let out = quipu(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{args:?}");
    }
}

#[test]
fn inspect_describes_a_folder_and_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::builder(dir.path()).background(false).open().unwrap();
        e.write_lp(
            "db",
            "cpu,host=a usage=1.5,n=3i 1\ncpu,host=b usage=2.5 2",
            Precision::Nanosecond,
            WriteOptions::default(),
        )
        .unwrap();
        e.flush().unwrap();
    }
    let out = quipu(&["inspect", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("database db"), "{text}");
    assert!(text.contains("table cpu"), "{text}");
    assert!(text.contains("gen0"), "{text}");

    let seg = std::fs::read_dir(dir.path().join("segments")).unwrap().next().unwrap().unwrap().path();
    let out = quipu(&["inspect", seg.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("format version 1"), "{text}");
    assert!(text.contains("usage (float field)"), "{text}");
    assert!(text.contains("rows 2"), "{text}");

    // A corrupt file is a clear error, not a panic.
    std::fs::write(dir.path().join("bad.seg"), b"not a segment").unwrap();
    let out = quipu(&["inspect", dir.path().join("bad.seg").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
}

/// `quipu gen tsbs | head` closes the pipe early: the generator stops
/// quietly with success, as `yes | head` does, while other write errors
/// still fail it.
#[test]
fn gen_stops_quietly_when_its_reader_goes_away() {
    use std::io::Read;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["gen", "tsbs", "--hosts", "1000", "--duration", "30d"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4096];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here: the next writes get EPIPE.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("error"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(first.starts_with(b"cpu,hostname=host_0"));
}
