//! Rejected lines are reported with their input line numbers, across batches.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::WriteBatchOptions;
use support::{TestServer, no_progress, numbered_lines};

#[test]
fn rejected_lines_carry_input_line_numbers() {
    let mut lines: Vec<String> = numbered_lines(30).lines().map(str::to_owned).collect();
    // Batches of 10 lines: 1..=10, 11..=20, 21..=30.
    lines[14] = "m,k=v i=oops 15".to_owned();
    lines[26] = "m,k=v i=27i,i=28i 27".to_owned();
    let input = lines.join("\n") + "\n";
    let server = TestServer::start();
    let opts = WriteBatchOptions { batch_lines: 10, ..WriteBatchOptions::default() };

    let report = server.client().write_lp("db", "ns", input.as_bytes(), &opts, &no_progress).unwrap();

    assert_eq!(report.batches, 3);
    assert_eq!(report.lines_sent, 30);
    assert!(!report.rejected_incomplete);
    let got: Vec<(u64, &str)> = report.rejected.iter().map(|r| (r.line, r.text.as_str())).collect();
    assert_eq!(got, vec![(15, lines[14].as_str()), (27, lines[26].as_str())]);
    assert!(report.rejected.iter().all(|r| !r.error.is_empty()));
    assert_eq!(server.rows("db", "m"), 28);
}

#[test]
fn blank_and_comment_lines_count_in_line_numbers_but_not_in_batches() {
    let input = "# header\n\nm,k=v i=1i 1\nm,k=v i=2i 2\n  # note\nm,k=v i=x 3\nm,k=v i=4i 4\n";
    let server = TestServer::start();
    let opts = WriteBatchOptions { batch_lines: 2, ..WriteBatchOptions::default() };

    let report = server.client().write_lp("db", "ns", input.as_bytes(), &opts, &no_progress).unwrap();

    assert_eq!(report.lines_sent, 4);
    assert_eq!(report.batches, 2);
    assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), vec![6]);
    assert_eq!(server.rows("db", "m"), 3);
}

#[test]
fn a_batch_with_only_bad_lines_is_flagged_incomplete() {
    let input = "m,k=v i=1i 1\nbad\nbad too\n";
    let server = TestServer::start();
    let opts = WriteBatchOptions { batch_lines: 1, ..WriteBatchOptions::default() };
    let report = server.client().write_lp("db", "ns", input.as_bytes(), &opts, &no_progress).unwrap();
    assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    // One line per batch: the server named every rejected line.
    assert!(!report.rejected_incomplete);

    let opts = WriteBatchOptions { batch_lines: 10, ..WriteBatchOptions::default() };
    let report = server.client().write_lp("db", "ns", "bad\nbad too\n".as_bytes(), &opts, &no_progress).unwrap();
    assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1]);
    assert!(report.rejected_incomplete);
}
