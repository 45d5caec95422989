//! The progress callback counts input bytes up to the total.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use std::cell::RefCell;

use quipu::client::WriteBatchOptions;
use support::{TestServer, numbered_lines};

#[test]
fn progress_reaches_the_total_byte_count() {
    // Trailing comment and a last line without a newline.
    let input = numbered_lines(1_000) + "# done\nm,k=v i=0i 5";
    let server = TestServer::start();
    let seen = RefCell::new(Vec::new());
    let opts = WriteBatchOptions { batch_lines: 100, ..WriteBatchOptions::default() };

    let report = server.client().write_lp("db", "ns", input.as_bytes(), &opts, &|n| seen.borrow_mut().push(n)).unwrap();

    assert_eq!(report.lines_sent, 1_001);
    let seen = seen.into_inner();
    assert!(seen.len() >= 10, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(input.len() as u64));
    assert_eq!(server.rows("db", "m"), 1_001);
}
