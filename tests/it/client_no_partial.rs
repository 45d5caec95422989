//! `accept_partial = false` stops at the first bad batch; earlier batches stay.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::{ClientError, WriteBatchOptions};
use support::{TestServer, no_progress, numbered_lines};

#[test]
fn first_bad_batch_stops_the_upload_naming_the_input_line() {
    let mut lines: Vec<String> = numbered_lines(50).lines().map(str::to_owned).collect();
    lines[24] = "m,k=v i=bad 25".to_owned();
    lines[44] = "m,k=v i=bad 45".to_owned();
    let input = lines.join("\n") + "\n";
    let server = TestServer::start();
    let opts = WriteBatchOptions { batch_lines: 10, accept_partial: false, ..WriteBatchOptions::default() };

    let err = server.client().write_lp("db", "ns", input.as_bytes(), &opts, &no_progress).unwrap_err();

    match &err {
        ClientError::BatchRejected { first_line: 21, last_line: 30, rejected } => {
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].line, 25);
            assert_eq!(rejected[0].text, lines[24]);
        }
        other => panic!("expected BatchRejected for lines 21..=30, got {other:?}"),
    }
    assert!(err.to_string().contains("line 25"), "{err}");
    // Batches 1..=10 and 11..=20 were written; nothing after.
    assert_eq!(server.ints("db", "m", "i"), (1..=20).collect::<Vec<i64>>());
}
