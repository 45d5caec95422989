//! A batch over the server's body limit is halved until it fits.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::{ClientError, WriteBatchOptions};
use support::{TestServer, no_progress, numbered_lines};

const LIMIT: usize = 64 << 10;

#[test]
fn batches_over_the_limit_are_split_and_arrive() {
    let input = numbered_lines(20_000);
    assert!(input.len() > 8 * LIMIT);
    let server = TestServer::with_limit(LIMIT);
    for gzip in [true, false] {
        let db = if gzip { "gz" } else { "plain" };
        let opts = WriteBatchOptions { gzip, ..WriteBatchOptions::default() };
        let report = server.client().write_lp(db, "ns", input.as_bytes(), &opts, &no_progress).unwrap();
        assert_eq!(report.lines_sent, 20_000);
        assert!(report.batches >= (input.len() / LIMIT) as u64, "{} batches", report.batches);
        assert!(report.rejected.is_empty());
        assert_eq!(server.ints(db, "m", "i"), (1..=20_000).collect::<Vec<i64>>());
    }
}

#[test]
fn a_single_line_over_the_limit_is_an_error_naming_it() {
    let input = format!("m,k=v i=1i 1\nm,k=v i=2i 2\nm,k=v s=\"{}\" 3\nm,k=v i=4i 4\n", "x".repeat(LIMIT + 1));
    let server = TestServer::with_limit(LIMIT);
    let err = server
        .client()
        .write_lp("db", "ns", input.as_bytes(), &WriteBatchOptions::default(), &no_progress)
        .unwrap_err();
    assert!(matches!(err, ClientError::LineTooLarge { line: 3, .. }), "{err:?}");
    // The halves before the big line went through.
    assert_eq!(server.ints("db", "m", "i"), vec![1, 2]);
}
