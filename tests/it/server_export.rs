//! The export endpoints on a real server: listings, the tar of Parquet files
//! (read back with the parquet crate and compared with a scan), and every
//! documented error status.

use crate::common;
use crate::server_support;

use arrow::datatypes::{DataType, TimeUnit};
use common::{read_parquet, table_of, untar};
use quipu::{Precision, ScanRequest, WriteOptions};
use server_support::{TestServer, bearer, client, json};

const DAY: i64 = 86_400 * 1_000_000_000;

/// Three days of `m` in `db` (types of every kind, a series without one of
/// the tags, a field in an explicit family), compacted; plus `late`, only
/// buffered.
fn loaded() -> TestServer {
    let server = TestServer::start();
    let mut lp = String::new();
    for day in 0..3 {
        for i in 0..50i64 {
            let t = day * DAY + i * 1_000_000_000;
            lp.push_str(&format!(
                "m,host=h{},dc=d{} f={}.5,i={}i,u={}u,s=\"v{}\",b={},hot::temp={} {t}\n",
                i % 3,
                i % 2,
                i,
                -i,
                i,
                i % 4,
                i % 2 == 0,
                i * 10
            ));
        }
        lp.push_str(&format!("m,host=lonely f=1 {}\n", day * DAY + 7));
    }
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    server.engine.write_lp("db", "late v=1 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    server
}

fn get(server: &TestServer, path: &str) -> reqwest::blocking::Response {
    client().get(server.url(path)).header("Authorization", bearer()).send().unwrap()
}

fn get_json(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = get(server, path);
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().unwrap()
}

#[test]
fn lists_only_what_is_compacted() {
    let server = loaded();
    assert_eq!(get_json(&server, "/api/v3/export/databases"), serde_json::json!({"databases": ["db"]}));
    assert_eq!(get_json(&server, "/api/v3/export/tables?db=db"), serde_json::json!({"tables": ["m"]}));
    let windows = get_json(&server, "/api/v3/export/windows?db=db&table=m");
    let windows = windows["windows"].as_array().unwrap();
    let names: Vec<&str> = windows.iter().map(|w| w["window"].as_str().unwrap()).collect();
    assert_eq!(names, ["1970-01-01", "1970-01-02", "1970-01-03"]);
    assert_eq!(windows[1]["start_ns"], DAY);
    assert_eq!(windows[1]["end_ns"], 2 * DAY);
    assert_eq!(windows[1]["rows"], 51);
    assert_eq!(windows[1]["time_min_ns"], DAY);
    assert!(windows[1]["segment_bytes"].as_u64().unwrap() > 0);
    // `late` exists but has nothing compacted.
    assert_eq!(get_json(&server, "/api/v3/export/windows?db=db&table=late"), serde_json::json!({"windows": []}));
}

#[test]
fn window_data_is_a_tar_of_parquet_equal_to_a_scan() {
    let server = loaded();
    let resp = get(&server, "/api/v3/export/window_data?db=db&table=m");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"m.tar\"");
    let entries = untar(&resp.bytes().unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["m/1970-01-01.parquet", "m/1970-01-02.parquet", "m/1970-01-03.parquet"]);
    for (day, (_, bytes)) in entries.into_iter().enumerate() {
        let batches = read_parquet(bytes);
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["dc", "host", "b", "f", "i", "s", "temp", "u", "time"]);
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(schema.field_with_name("host").unwrap().data_type(), &dict);
        assert_eq!(schema.field_with_name("f").unwrap().data_type(), &DataType::Float64);
        assert_eq!(schema.field_with_name("i").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("u").unwrap().data_type(), &DataType::UInt64);
        assert_eq!(schema.field_with_name("s").unwrap().data_type(), &DataType::Utf8);
        assert_eq!(schema.field_with_name("b").unwrap().data_type(), &DataType::Boolean);
        assert_eq!(
            schema.field_with_name("time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
        );
        assert_eq!(schema.field_with_name("host").unwrap().metadata()["iox::column::type"], "iox::column_type::tag");
        assert_eq!(schema.field_with_name("temp").unwrap().metadata()["quipu::family"], "hot");

        let day = day as i64;
        let scan = server.scan("db", "m", &ScanRequest::all().time_range(day * DAY, (day + 1) * DAY));
        let expected = table_of(&scan);
        assert_eq!(expected.len(), 51);
        assert_eq!(table_of(&batches), expected, "day {day}");
    }
}

#[test]
fn windows_parameter_picks_windows_in_time_order() {
    let server = loaded();
    let resp = get(&server, "/api/v3/export/window_data?db=db&table=m&windows=1970-01-03,1970-01-01,1970-01-03");
    assert_eq!(resp.status().as_u16(), 200);
    let names: Vec<String> = untar(&resp.bytes().unwrap()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["m/1970-01-01.parquet", "m/1970-01-03.parquet"]);
}

#[test]
fn errors_have_the_documented_statuses_and_json_bodies() {
    let server = loaded();
    let cases: &[(&str, u16)] = &[
        ("/api/v3/export/tables", 400),
        ("/api/v3/export/tables?db=", 400),
        ("/api/v3/export/tables?db=nope", 404),
        ("/api/v3/export/windows?db=db", 400),
        ("/api/v3/export/windows?table=m", 400),
        ("/api/v3/export/windows?db=nope&table=m", 404),
        ("/api/v3/export/windows?db=db&table=nope", 404),
        ("/api/v3/export/window_data?db=db", 400),
        ("/api/v3/export/window_data?db=nope&table=m", 404),
        ("/api/v3/export/window_data?db=db&table=nope", 404),
        ("/api/v3/export/window_data?db=db&table=m&windows=1970-01-09", 404),
        ("/api/v3/export/window_data?db=db&table=m&windows=1970-01-01,1999-12-31", 404),
        ("/api/v3/export/window_data?db=db&table=m&windows=yesterday", 400),
        ("/api/v3/export/window_data?db=db&table=m&windows=1970-1-1", 400),
        ("/api/v3/export/window_data?db=db&table=late", 404),
        ("/api/v3/export/window_data?db=db&db=db&table=m", 400),
    ];
    for (path, status) in cases {
        let (got, body) = json(get(&server, path));
        assert_eq!(got, *status, "{path}: {body}");
    }
    for path in ["/api/v3/export/databases", "/api/v3/export/tables?db=db", "/api/v3/export/window_data?db=db&table=m"]
    {
        let (got, _) = json(client().get(server.url(path)).send().unwrap());
        assert_eq!(got, 401, "{path} without a token");
        let (got, _) = json(client().get(server.url(path)).header("Authorization", "Bearer wrong").send().unwrap());
        assert_eq!(got, 401, "{path} with a wrong token");
    }
    // Nothing stored changed.
    assert_eq!(server.rows("db", "m"), 153);
    assert_eq!(server.rows("db", "late"), 1);
}

#[test]
fn odd_table_names_cannot_escape_the_archive_folder() {
    let server = TestServer::start();
    server.engine.write_lp("db", "../etc\\ x v=1 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    let resp = get(&server, "/api/v3/export/window_data?db=db&table=..%2Fetc%20x");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"%2E%2E%2Fetc%20x.tar\"");
    let entries = untar(&resp.bytes().unwrap());
    assert_eq!(entries[0].0, "%2E%2E%2Fetc%20x/1970-01-01.parquet");
    assert_eq!(read_parquet(entries[0].1.clone())[0].num_rows(), 1);
}

#[test]
fn a_corrupt_block_cuts_the_stream_off_instead_of_ending_it() {
    let server = loaded();
    let files = server.engine.live_files();
    let file = files.iter().find(|f| f.meta.window_start_ns == Some(DAY)).unwrap();
    // A byte inside the first block (the header is 16 bytes): the footer
    // still validates, the block's crc32 does not.
    let mut bytes = std::fs::read(&file.path).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(&file.path, &bytes).unwrap();

    let resp = get(&server, "/api/v3/export/window_data?db=db&table=m");
    assert_eq!(resp.status().as_u16(), 200, "the first window streams before the corruption is met");
    assert!(resp.bytes().is_err(), "the body must end in an error, not a complete-looking tar");
    // The windows before and after still export on their own.
    for day in ["1970-01-01", "1970-01-03"] {
        let resp = get(&server, &format!("/api/v3/export/window_data?db=db&table=m&windows={day}"));
        assert_eq!(untar(&resp.bytes().unwrap()).len(), 1);
    }
}
