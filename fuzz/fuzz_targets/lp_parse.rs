//! Fuzzes `quipu::lp`: never a panic, every content line accounted for once,
//! and every line we accept is accepted by the `influxdb-line-protocol`
//! crate with the same measurement, tags, fields and timestamp (our parser
//! only ever rejects more, see the module doc).
#![no_main]

use influxdb_line_protocol as ilp;
use libfuzzer_sys::fuzz_target;
use quipu::lp::{FieldValue, LpError, MAX_ERROR_TEXT, Parsed, ParsedLine, Precision, parse_bytes};

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let parsed = match parse_bytes(data, Precision::Nanosecond, 0) {
        Ok(parsed) => parsed,
        Err(LpError::NotUtf8 { line, offset }) => {
            assert!(std::str::from_utf8(data).is_err());
            assert!(offset < data.len());
            assert_eq!(line, 1 + data[..offset].iter().filter(|&&b| b == b'\n').count());
            return;
        }
        Err(other) => panic!("unexpected {other:?}"),
    };
    let Ok(body) = std::str::from_utf8(data) else {
        panic!("parse_bytes accepted non-UTF-8");
    };
    check_accounting(body, &parsed);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(body.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    for row in &parsed.lines {
        compare_with_crate(&body[starts[row.line - 1]..], row);
    }
}

/// Every non-blank, non-comment physical line is reported at most once, in
/// order, the first one always; without quotes or backslashes, exactly once.
fn check_accounting(body: &str, parsed: &Parsed<'_>) {
    let is_content = |l: &str| {
        let l = l.strip_suffix('\r').unwrap_or(l).trim_start_matches([' ', '\t']);
        !l.is_empty() && !l.starts_with('#')
    };
    let content: Vec<usize> = body
        .split('\n')
        .enumerate()
        .filter(|(_, l)| is_content(l))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(parsed.lines.windows(2).all(|w| w[0].line < w[1].line));
    assert!(parsed.errors.windows(2).all(|w| w[0].line < w[1].line));
    let mut reported: Vec<usize> = parsed
        .lines
        .iter()
        .map(|l| l.line)
        .chain(parsed.errors.iter().map(|e| e.line))
        .collect();
    reported.sort_unstable();
    assert!(reported.windows(2).all(|w| w[0] < w[1]), "a line reported twice");
    assert!(reported.iter().all(|n| content.binary_search(n).is_ok()));
    assert_eq!(reported.first(), content.first());
    if body.contains(['"', '\\']) {
        assert!(reported.len() <= content.len());
    } else {
        assert_eq!(reported, content);
    }
    for e in &parsed.errors {
        assert!(e.text.len() <= MAX_ERROR_TEXT);
        assert!(!e.message.is_empty());
    }
    for row in &parsed.lines {
        assert!(!row.fields.is_empty());
        assert!(row.tags.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

/// `from_line` starts at the physical line where `row` starts; the crate
/// splits off the same logical line and must parse it to the same row.
fn compare_with_crate(from_line: &str, row: &ParsedLine<'_>) {
    let from_text = from_line.trim_start_matches([' ', '\t']);
    let logical = ilp::split_lines(from_text).next().unwrap_or(from_text);
    let logical = logical.strip_suffix('\r').unwrap_or(logical);
    let theirs = match ilp::parse_lines(logical).next() {
        Some(Ok(theirs)) => theirs,
        other => panic!("we accept {logical:?}, the crate: {other:?}"),
    };
    assert_eq!(row.measurement, theirs.series.measurement.as_str());
    let mut their_tags: Vec<(String, String)> = theirs
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    their_tags.sort();
    let our_tags: Vec<(String, String)> = row
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(our_tags, their_tags, "{logical:?}");
    assert_eq!(row.fields.len(), theirs.field_set.len(), "{logical:?}");
    for (ours, (key, value)) in row.fields.iter().zip(&theirs.field_set) {
        let our_key = match &ours.family {
            Some(family) => format!("{family}::{}", ours.name),
            None => ours.name.to_string(),
        };
        assert_eq!(our_key, key.as_str(), "{logical:?}");
        let same = match (&ours.value, value) {
            (FieldValue::F64(a), ilp::FieldValue::F64(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::I64(a), ilp::FieldValue::I64(b)) => a == b,
            (FieldValue::U64(a), ilp::FieldValue::U64(b)) => a == b,
            (FieldValue::Str(a), ilp::FieldValue::String(b)) => a == b.as_str(),
            (FieldValue::Bool(a), ilp::FieldValue::Boolean(b)) => a == b,
            _ => false,
        };
        assert!(same, "{logical:?}: {:?} vs {value:?}", ours.value);
    }
    // Nanosecond precision and a default time of 0.
    assert_eq!(row.time_ns, theirs.timestamp.unwrap_or(0), "{logical:?}");
}
