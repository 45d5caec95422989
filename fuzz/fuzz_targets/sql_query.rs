//! Fuzzes the SQL path of `/api/v3/query_sql` (`quipu::sql`): any text as
//! the query and any JSON as its parameters gives rows or a typed error,
//! never a panic; the filter translation that pushes time ranges and tag
//! equalities into the engine's scan sees every expression the planner
//! can make of the input. Input: the first line is the `params` JSON (may
//! be empty), the rest the SQL.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quipu::sql::{QueryOptions, params_from_json, prepare, query_error};
use quipu::{Engine, Precision, WriteOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::builder(dir.path()).background(false).open().expect("open");
        let mut lp = String::new();
        for i in 0..200i64 {
            lp.push_str(&format!(
                "cpu,host=h{},dc=d{} usage={}.5,n={i}i,s=\"x{}\",ok={},disk::free={} {}\n",
                i % 4,
                i % 2,
                i % 97,
                i % 3,
                i % 2 == 0,
                i * 3,
                i * 600_000_000_000
            ));
        }
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).expect("write");
        engine.flush().expect("flush");
        engine.compact().expect("compact");
        engine.write_lp("db", "cpu,host=h9 usage=1 5\nmem,host=h0 used=3i 7\n", Precision::Nanosecond, WriteOptions::default()).expect("write");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        Fixture { _dir: dir, engine, runtime }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (params, sql) = text.split_once('\n').unwrap_or(("", text));
    let f = fixture();
    let params = if params.trim().is_empty() {
        None
    } else {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(params) else { return };
        match params_from_json(&value) {
            Ok(p) => Some(p),
            Err(quipu::Error::Query(_)) => return,
            Err(other) => panic!("params: unexpected {other:?}"),
        }
    };
    f.runtime.block_on(async {
        use futures::StreamExt;
        let options = QueryOptions { params, ..QueryOptions::default() };
        let prepared = match prepare(&f.engine, "db", sql, options).await {
            Ok(p) => p,
            Err(quipu::Error::Query(_)) => return,
            Err(other) => panic!("plan: unexpected {other:?}"),
        };
        let _ = prepared.tables();
        let Ok(mut stream) = prepared.execute().await else { return };
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(b) => rows += b.num_rows(),
                Err(e) => match query_error(e) {
                    quipu::Error::Query(_) => return,
                    other => panic!("run: unexpected {other:?}"),
                },
            }
            // Cross joins of the fixture can be large; enough is enough.
            if rows > 1_000_000 {
                return;
            }
        }
    });
});
