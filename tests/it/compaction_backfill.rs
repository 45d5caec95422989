//! A series-ordered backfill, as a migration exports data: one series after
//! another, each covering many days, flushed every few series, so that
//! every flush holds rows of every window. Compaction then leaves exactly
//! one compacted file per table per 24h window, each holding only its
//! window's rows, no flushed file, and every row as written: the same rows
//! a time-ordered ingest of the same data gives.
//!
//! Late and duplicate data after that: rows written again into compacted
//! windows (older timestamps, some fields only, duplicates within one
//! body), compacted again, read back with the newest value winning per
//! field while the row's other fields keep their values.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Table, apply, table_of};
use quipu::tree::{LEVEL_COMPACTED, LEVEL_GEN0, window_end, window_start};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SECOND;
/// 2024-01-01T05:00:00Z: the points start and end mid-window, so the
/// first and last windows are partial.
const START: i64 = 1_704_067_200 * SECOND + 5 * 3_600 * SECOND;
const STEP: i64 = 600 * SECOND;
const HOSTS: i64 = 40;
const DAYS: i64 = 12;
/// Points per series: 12 days, one every 10 minutes.
const POINTS: i64 = DAYS * DAY / STEP;
/// Lines per write.
const BATCH: usize = 500;
/// Series written between two flushes.
const SERIES_PER_FLUSH: i64 = 5;
const TABLES: [&str; 2] = ["cpu", "mem"];

fn time(i: i64) -> i64 {
    START + i * STEP
}

/// The line of point `i` of host `h` in `table`, and what it writes.
fn point(table: &str, h: i64, i: i64) -> (String, Vec<(&'static str, String)>) {
    let t = time(i);
    if table == "cpu" {
        let usage = format!("{}.5", (h * 7 + i * 13) % 1000);
        let n = (h * 100_000 + i).to_string();
        let state = format!("s{}", (h + i) % 5);
        let up = if (h + i) % 3 == 0 { "false" } else { "true" };
        let line = format!("cpu,host=h{h} usage={usage},n={n}i,state=\"{state}\",up={up} {t}\n");
        (line, vec![("usage", usage), ("n", n), ("state", state), ("up", up.to_string())])
    } else {
        let free = ((h + 1) * 1_000_003 + i * 17).to_string();
        (format!("mem,host=h{h} free={free}i {t}\n"), vec![("free", free)])
    }
}

fn write(engine: &Engine, body: &str) {
    engine.write_lp("db", body, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

/// Writes `lines` in bodies of [`BATCH`] lines.
fn write_batched(engine: &Engine, lines: &[String]) {
    for chunk in lines.chunks(BATCH) {
        write(engine, &chunk.concat());
    }
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::builder(dir).background(false).block_rows(256).open().unwrap()
}

/// Series by series, each series' 12 days before the next, a flush every
/// [`SERIES_PER_FLUSH`] series. Returns the model of each table.
fn backfill_series_ordered(engine: &Engine) -> BTreeMap<&'static str, Table> {
    let mut models: BTreeMap<&str, Table> = TABLES.iter().map(|t| (*t, Table::new())).collect();
    for h in 0..HOSTS {
        for table in TABLES {
            let mut lines = Vec::new();
            for i in 0..POINTS {
                let (line, fields) = point(table, h, i);
                apply(models.get_mut(table).unwrap(), &[("host", format!("h{h}"))], time(i), &fields);
                lines.push(line);
            }
            write_batched(engine, &lines);
        }
        if (h + 1) % SERIES_PER_FLUSH == 0 {
            engine.flush().unwrap();
        }
    }
    engine.flush().unwrap();
    models
}

/// The same points in time order (every host at one time before the next
/// time), a flush per day.
fn ingest_time_ordered(engine: &Engine) {
    let per_day = DAY / STEP;
    for day in 0..DAYS {
        let mut lines = Vec::new();
        for i in day * per_day..(day + 1) * per_day {
            for h in 0..HOSTS {
                for table in TABLES {
                    lines.push(point(table, h, i).0);
                }
            }
        }
        write_batched(engine, &lines);
        engine.flush().unwrap();
    }
}

/// No flushed file is left, and each table has exactly one compacted file
/// per window its rows reach, holding only that window's times and, in
/// all, the table's rows.
fn assert_one_file_per_window(engine: &Engine, models: &BTreeMap<&str, Table>, context: &str) {
    let catalog = engine.catalog();
    let db = catalog.database("db").unwrap();
    let version = engine.version();
    let gen0 = version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0).count();
    assert_eq!(gen0, 0, "{context}: flushed files left after compaction");
    for (name, model) in models {
        let table_id = db.table(name).unwrap().id;
        let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
        for f in version.files.iter().filter(|f| f.meta.db_id == db.id && f.meta.table_id == table_id) {
            let m = &f.meta;
            assert_eq!(m.level, LEVEL_COMPACTED, "{context}: {name}: file {} level", m.id);
            let w = m.window_start_ns.unwrap_or_else(|| panic!("{context}: {name}: file {} has no window", m.id));
            assert_eq!(window_start(w), w, "{context}: {name}: file {} window {w} is not a window start", m.id);
            assert!(
                w <= m.time_min && m.time_min <= m.time_max && m.time_max < window_end(w),
                "{context}: {name}: file {} holds {}..={} outside its window [{w}, {})",
                m.id,
                m.time_min,
                m.time_max,
                window_end(w)
            );
            let prev = windows.insert(w, m.rows);
            assert!(prev.is_none(), "{context}: {name}: two compacted files for window {w}");
        }
        let expected: BTreeSet<i64> = model.keys().map(|(_, t)| window_start(*t)).collect();
        assert_eq!(windows.keys().copied().collect::<BTreeSet<_>>(), expected, "{context}: {name}: windows");
        let mut rows_per_window: BTreeMap<i64, u64> = BTreeMap::new();
        for (_, t) in model.keys() {
            *rows_per_window.entry(window_start(*t)).or_default() += 1;
        }
        assert_eq!(windows, rows_per_window, "{context}: {name}: rows per window");
    }
}

/// Every table reads back exactly as its model.
fn assert_reads_back(engine: &Engine, models: &BTreeMap<&str, Table>, context: &str) {
    for (name, model) in models {
        let got = table_of(&engine.scan("db", name, &ScanRequest::all()).unwrap());
        if &got != model {
            let missing = model.keys().filter(|k| !got.contains_key(*k)).count();
            let extra = got.keys().filter(|k| !model.contains_key(*k)).count();
            let first_diff = model.iter().find(|(k, v)| got.get(*k) != Some(*v));
            panic!(
                "{context}: {name}: {} rows read, {} written; {missing} missing, {extra} extra; \
                 first differing row {first_diff:?}, read as {:?}",
                got.len(),
                model.len(),
                first_diff.and_then(|(k, _)| got.get(k)),
            );
        }
    }
}

#[test]
fn a_series_ordered_backfill_compacts_to_one_file_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let models = backfill_series_ordered(&engine);
    assert_eq!(models["cpu"].len() as i64, HOSTS * POINTS);

    // Every flush wrote rows into every window, the shape under test:
    // whether a flush writes one file spanning them all or one file per
    // window, the windows its files reach add up to flushes x windows.
    let windows = models["cpu"].keys().map(|(_, t)| window_start(*t)).collect::<BTreeSet<_>>().len() as i64;
    assert_eq!(windows, DAYS + 1, "the first and last windows are partial");
    let flushes = HOSTS / SERIES_PER_FLUSH;
    let version = engine.version();
    let mut reached = 0;
    for f in version.files.iter() {
        let m = &f.meta;
        assert_eq!(m.level, LEVEL_GEN0, "file {}: nothing is compacted yet", m.id);
        assert!(
            time(0) <= m.time_min && m.time_max <= time(POINTS - 1),
            "file {}: {}..={}",
            m.id,
            m.time_min,
            m.time_max
        );
        reached += (window_start(m.time_max) - window_start(m.time_min)) / DAY + 1;
    }
    assert_eq!(reached, TABLES.len() as i64 * flushes * windows, "windows reached by the flushed files");
    drop(version);
    assert_reads_back(&engine, &models, "flushed");

    engine.compact().unwrap();
    assert_one_file_per_window(&engine, &models, "compacted");
    assert_reads_back(&engine, &models, "compacted");

    // The same data ingested in time order reads back the same.
    let ordered_dir = tempfile::tempdir().unwrap();
    let ordered = open(ordered_dir.path());
    ingest_time_ordered(&ordered);
    ordered.compact().unwrap();
    assert_one_file_per_window(&ordered, &models, "time-ordered, compacted");
    for table in TABLES {
        let a = table_of(&engine.scan("db", table, &ScanRequest::all()).unwrap());
        let b = table_of(&ordered.scan("db", table, &ScanRequest::all()).unwrap());
        assert!(a == b, "{table}: series-ordered and time-ordered ingests read back differently");
    }

    drop(engine);
    let engine = open(dir.path());
    assert_one_file_per_window(&engine, &models, "reopened");
    assert_reads_back(&engine, &models, "reopened");
}

#[test]
fn late_and_duplicate_writes_win_per_field_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut models = backfill_series_ordered(&engine);
    engine.compact().unwrap();
    assert_one_file_per_window(&engine, &models, "backfill compacted");

    // The example: a row written whole, compacted, then one field of it again.
    write(&engine, "m a=1i,b=1i 1000\nm a=5i 2000");
    engine.flush().unwrap();
    engine.compact().unwrap();
    write(&engine, "m b=2i 1000");
    engine.flush().unwrap();
    engine.compact().unwrap();
    let m = table_of(&engine.scan("db", "m", &ScanRequest::all()).unwrap());
    let row = |t: i64| m.get(&(String::new(), t)).cloned().unwrap_or_default();
    let fields = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert_eq!(row(1000), fields(&[("a", "1"), ("b", "2")]), "field-level last write wins");
    assert_eq!(row(2000), fields(&[("a", "5")]));
    assert_eq!(m.len(), 2);

    // Late rewrites into compacted windows: three hosts, three days, every
    // third point; some rewrite one field, some two, some all; the same
    // body also writes some rows twice (the later line wins) and adds rows
    // at new times inside old windows.
    let cpu = models.get_mut("cpu").unwrap();
    let mut lines = Vec::new();
    for h in [5, 22, 39] {
        let host = [("host", format!("h{h}"))];
        for day in [0, 6, 11] {
            for i in (day * DAY / STEP..(day + 1) * DAY / STEP).step_by(3) {
                let t = time(i);
                let fields: Vec<(&str, String)> = match i % 4 {
                    0 => vec![("n", format!("{}", -i))],
                    1 => vec![("usage", format!("{}.25", i % 97)), ("state", "late".to_string())],
                    2 => vec![("n", format!("{}", -i)), ("up", "false".to_string())],
                    _ => vec![
                        ("usage", "0.75".to_string()),
                        ("n", "7".to_string()),
                        ("state", "all".to_string()),
                        ("up", "true".to_string()),
                    ],
                };
                lines.push(line("cpu", h, t, &fields));
                apply(cpu, &host, t, &fields);
                if i % 5 == 0 {
                    // A duplicate in the same body: the later line wins.
                    let again = vec![("n", format!("{}", 1_000_000 + i))];
                    lines.push(line("cpu", h, t, &again));
                    apply(cpu, &host, t, &again);
                }
                if i % 6 == 0 {
                    // A row at a new time, between two existing points.
                    let fresh = vec![("usage", "1.5".to_string()), ("n", "1".to_string())];
                    lines.push(line("cpu", h, t + 7 * SECOND, &fresh));
                    apply(cpu, &host, t + 7 * SECOND, &fresh);
                }
            }
        }
    }
    write_batched(&engine, &lines);
    engine.flush().unwrap();
    // A second round over some of the same rows, in another flushed file:
    // it is newer than the first and wins where both wrote.
    let mut again = Vec::new();
    for i in (0..DAY / STEP).step_by(9) {
        let fields = vec![("n", format!("{}", 2_000_000 + i))];
        again.push(line("cpu", 22, time(i), &fields));
        apply(cpu, &[("host", "h22".to_string())], time(i), &fields);
    }
    write_batched(&engine, &again);
    engine.flush().unwrap();
    assert_reads_back(&engine, &models, "late writes, flushed");

    engine.compact().unwrap();
    models.insert("m", m);
    assert_one_file_per_window(&engine, &models, "late writes compacted");
    assert_reads_back(&engine, &models, "late writes compacted");

    // Spot checks of the rule, independent of the model.
    let got = table_of(&engine.scan("db", "cpu", &ScanRequest::all()).unwrap());
    let at = |h: i64, i: i64| got.get(&(format!("host=h{h}"), time(i))).cloned().unwrap_or_default();
    // Point 0 of h22: `n` rewritten twice (the later file wins), the other fields as backfilled.
    let (_, original) = point("cpu", 22, 0);
    let mut expected: BTreeMap<String, String> = original.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    expected.insert("n".into(), "2000000".into());
    assert_eq!(at(22, 0), expected);
    // An untouched host keeps every value.
    let (_, original) = point("cpu", 6, 3);
    assert_eq!(at(6, 3), original.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());

    drop(engine);
    let engine = open(dir.path());
    assert_reads_back(&engine, &models, "late writes, reopened");
}

/// A line of `table` for host `h` at `t` writing `fields` (given as the model holds them).
fn line(table: &str, h: i64, t: i64, fields: &[(&str, String)]) -> String {
    let rendered: Vec<String> = fields
        .iter()
        .map(|(k, v)| match *k {
            "n" => format!("{k}={v}i"),
            "state" => format!("{k}=\"{v}\""),
            _ => format!("{k}={v}"),
        })
        .collect();
    format!("{table},host=h{h} {} {t}\n", rendered.join(","))
}
