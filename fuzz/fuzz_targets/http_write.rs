//! The HTTP write path as a whole: query parameters (`db`, `bucket`,
//! `precision`, `accept_partial`, `no_sync`, anything else), an optional
//! gzip coding and a line protocol body, through
//! `quipu::server::write_body`, the function the three write handlers run
//! once the body has arrived, into a real engine. Every outcome is a 204
//! or a client error (4xx) with its JSON body; a 5xx or a panic is a
//! finding.
//!
//! Input: one mode byte (bits 0-1: the endpoint, v3, v2 or v1; bits 2-3:
//! plain body, body gzipped here, or the bytes sent as they are with
//! `Content-Encoding: gzip`), then the query string up to the first
//! newline, then the body.
#![no_main]

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use quipu::server::{WriteEndpoint, write_body};
use quipu::{Durability, Engine};

/// Small, so that gzip bodies cross it both ways.
const MAX_BODY_BYTES: usize = 64 << 10;

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    writes: u64,
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::builder(dir.path()).background(false).durability(Durability::Buffer).open().expect("open");
        Mutex::new(Fixture { _dir: dir, engine, writes: 0 })
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let endpoint = match mode & 3 {
        0 | 3 => WriteEndpoint::V3,
        1 => WriteEndpoint::V2,
        _ => WriteEndpoint::V1,
    };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    // A request target's query is text (`Uri::query`); an empty one is absent.
    let Ok(query) = std::str::from_utf8(query) else { return };
    let query = (!query.is_empty()).then_some(query);
    let (gzipped, body) = match (mode >> 2) & 3 {
        2 => (true, gzip(body)),
        3 => (true, body.to_vec()),
        _ => (false, body.to_vec()),
    };
    let mut f = fixture().lock().expect("lock");
    if let Err(e) = write_body(&f.engine, endpoint, query, gzipped, body, MAX_BODY_BYTES) {
        assert!(e.status.is_client_error(), "{endpoint:?} {query:?}: {} {} {}", e.status, e.error, e.data);
    }
    f.writes += 1;
    if f.writes % 500 == 0 {
        f.engine.flush().expect("flush");
        f.engine.compact().expect("compact");
    }
});
