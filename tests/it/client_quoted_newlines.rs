//! Quoted strings spanning lines are never split across batches.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use arrow::array::{Array, AsArray};
use quipu::ScanRequest;
use quipu::client::WriteBatchOptions;
use support::{TestServer, no_progress};

const TEXT: &str = "first\nsecond, \\\"x=1\\\"\nthird";
const VALUE: &str = "first\nsecond, \"x=1\"\nthird";

#[test]
fn multi_line_strings_stay_in_one_batch() {
    // 100 logical lines of 3 physical lines each, then a bad one at physical line 301.
    let mut input: String = (1..=100).map(|i| format!("s,k=v t=\"{TEXT}\",i={i}i {i}\n")).collect();
    input.push_str("s,k=v t=\"ok\",i=oops 101\n");
    let server = TestServer::start();
    for (batch_lines, batch_bytes) in [(1, 1 << 20), (7, 1 << 20), (1000, 150), (3, 100)] {
        let db = format!("d{batch_lines}x{batch_bytes}");
        let opts = WriteBatchOptions { batch_lines, batch_bytes, ..WriteBatchOptions::default() };
        let report = server.client().write_lp(&db, "ns", input.as_bytes(), &opts, &no_progress).unwrap();
        assert_eq!(report.lines_sent, 101);
        assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), vec![301], "{db}");
        assert_eq!(server.ints(&db, "s", "i"), (1..=100).collect::<Vec<i64>>(), "{db}");
        for b in server.scan(&db, "s", &ScanRequest::all().columns(["t"])) {
            let t = b.column_by_name("t").unwrap().as_string::<i32>();
            assert!((0..t.len()).all(|i| t.value(i) == VALUE), "{db}");
        }
    }
}
