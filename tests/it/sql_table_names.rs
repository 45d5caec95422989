//! Table names are registered for SQL by their exact text, never parsed
//! as SQL: a table named `system.cpu`, tables `CPU` and `cpu` side by
//! side, `Mem`, and a name with spaces, quotes, a comma and unicode each
//! read back by its quoted name with its own rows, and none of them breaks
//! the queries of its database (`SELECT 1`, the other tables,
//! `information_schema`).
#![cfg(feature = "server")]

use crate::server_support;

use server_support::{TestServer, bearer, client};

/// (line protocol measurement, exact table name, value of its one row).
const TABLES: &[(&str, &str, i64)] = &[
    ("system.cpu", "system.cpu", 2),
    ("CPU", "CPU", 3),
    ("cpu", "cpu", 4),
    ("Mem", "Mem", 5),
    (r#"my\ table\,"q"\ ✓"#, r#"my table,"q" ✓"#, 6),
    ("public.cpu", "public.cpu", 7),
    ("information_schema", "information_schema", 8),
];

/// `name` as a SQL quoted identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql(server: &TestServer, q: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .get(server.url("/api/v3/query_sql"))
        .query(&[("db", "db"), ("q", q)])
        .header("Authorization", bearer())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap())
}

fn loaded() -> TestServer {
    let server = TestServer::start();
    let lp: String = TABLES.iter().map(|(m, _, v)| format!("{m} v={v}i {v}\n")).collect();
    let resp = client()
        .post(server.url("/api/v3/write_lp?db=db&precision=nanosecond"))
        .header("Authorization", bearer())
        .body(lp)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", resp.text().unwrap());
    server
}

#[test]
fn every_table_reads_back_by_its_exact_name() {
    let server = loaded();
    let (status, body) = sql(&server, "SELECT 1 AS one");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["one"], 1);

    for (_, name, v) in TABLES {
        let (status, body) = sql(&server, &format!("SELECT v, time FROM {} ", quoted(name)));
        assert_eq!(status, 200, "{name}: {body}");
        let rows = body["results"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{name}: {body}");
        assert_eq!(rows[0]["v"], *v, "{name}: {body}");
    }
    // An unquoted name is folded to lower case, as SQL does: `CPU` is `cpu`.
    let (status, body) = sql(&server, "SELECT v FROM CPU");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["v"], 4);
    // A join of two tables whose names differ only in case.
    let (status, body) = sql(&server, r#"SELECT a.v AS upper, b.v AS lower FROM "CPU" a CROSS JOIN cpu b"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["upper"], 3);
    assert_eq!(body["results"][0]["lower"], 4);
}

#[test]
fn information_schema_lists_the_exact_names() {
    let server = loaded();
    let (status, body) = sql(
        &server,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["table_name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expect: Vec<&str> = TABLES.iter().map(|(_, n, _)| *n).collect();
    expect.sort_unstable();
    assert_eq!(names, expect);
}

#[test]
fn an_unknown_quoted_name_is_a_400_naming_it() {
    let server = loaded();
    let (status, body) = sql(&server, r#"SELECT * FROM "MEM""#);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("MEM"), "{body}");
    // `Mem` unquoted is `mem`, which does not exist either.
    let (status, _) = sql(&server, "SELECT * FROM Mem");
    assert_eq!(status, 400);
}
