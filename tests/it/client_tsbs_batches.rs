//! A 50,000-line TSBS file sent in batches arrives complete.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use quipu::ScanRequest;
use quipu::client::WriteBatchOptions;
use quipu::tsbs::{TsbsConfig, write_tsbs};
use support::{TestServer, no_progress};

/// `(hostname, usage_user, timestamp)` of a TSBS line.
fn key_values(line: &str) -> (String, i64, i64) {
    let (series, rest) = line.split_once(' ').unwrap();
    let host = series.split(',').find_map(|t| t.strip_prefix("hostname=")).unwrap().to_owned();
    let (fields, ts) = rest.rsplit_once(' ').unwrap();
    let user = fields.split(',').find_map(|f| f.strip_prefix("usage_user=")).unwrap();
    (host, user.strip_suffix('i').unwrap().parse().unwrap(), ts.parse().unwrap())
}

#[test]
fn fifty_thousand_tsbs_lines_arrive_complete() {
    let cfg = TsbsConfig { hosts: 50, duration: Duration::from_secs(10_000), ..TsbsConfig::default() };
    let mut input = Vec::new();
    assert_eq!(write_tsbs(&cfg, &mut input).unwrap(), 50_000);
    let server = TestServer::start();

    let started = Instant::now();
    let report =
        server.client().write_lp("bench", "ns", &input[..], &WriteBatchOptions::default(), &no_progress).unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "50,000 TSBS lines ({} bytes) in {elapsed:?}: {:.0} lines/s",
        input.len(),
        50_000.0 / elapsed.as_secs_f64()
    );

    assert_eq!(report.lines_sent, 50_000);
    assert_eq!(report.batches, 5);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(server.rows("bench", "cpu"), 50_000);

    let text = std::str::from_utf8(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for index in [0, 9_999, 10_000, 31_337, 49_999] {
        let (host, user, ts) = key_values(lines[index]);
        let req = ScanRequest::all().time_range(ts, ts + 1).tag_eq("hostname", host.as_str()).columns(["usage_user"]);
        let batches = server.scan("bench", "cpu", &req);
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("usage_user").unwrap().as_primitive::<Int64Type>().clone();
                (0..c.len()).map(move |i| c.value(i))
            })
            .collect();
        assert_eq!(values, vec![user], "line {}", index + 1);
    }
}
