//! The real Python clients of InfluxDB write to a quipu server, and the
//! export comes back equal in pyarrow and duckdb
//! (tests/python/clients_roundtrip.py). The peers are installed by
//! scripts/test; a missing one fails this test rather than skipping it.

use crate::server_support;

use std::process::Command;

use server_support::{TOKEN, TestServer};

fn python(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients_roundtrip.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed (scripts/test installs the peers): {e}"));
    assert!(
        out.status.success(),
        "clients_roundtrip.py {}: {}\n{}",
        args[0],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn influxdb_python_clients_write_and_the_export_reads_back_equal() {
    let server = TestServer::start();
    let host = server.host();
    python(&["write", &host, TOKEN]);
    assert_eq!(server.rows("py3", "weather"), 200, "influxdb3-python (v3 write_lp)");
    assert_eq!(server.rows("py2", "weather"), 200, "influxdb-client (v2 write)");
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    python(&["check", &host, TOKEN]);
}
