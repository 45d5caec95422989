//! Line protocol -> parsed rows: no I/O, no catalog.
//!
//! The syntax itself is parsed by the `influxdb-line-protocol` crate (the
//! InfluxDB IOx parser). This module owns what the crate does not:
//!
//! - **line numbering**: each row and each error carries the 1-based number of
//!   the physical line where its logical line starts, counting blank and
//!   comment lines. A logical line spans several physical lines only when a
//!   quoted string field value (or a trailing backslash escape) contains a
//!   newline, exactly as the crate's `split_lines` (a port of Go's `scanLine`)
//!   decides.
//! - **blank and comment lines**: a physical line that is empty or only spaces
//!   and tabs, or whose first non-blank character is `#`, is skipped. Comments
//!   are judged per physical line, so a quote inside a comment never swallows
//!   the lines after it. `\r\n` line endings are accepted: one `\r` before the
//!   line's final `\n` is dropped.
//! - **precision**: [`Precision`] converts timestamps to nanoseconds with
//!   overflow checks; `Auto` guesses the unit from the magnitude as InfluxDB 3
//!   does. A line without a timestamp gets the caller's `default_time_ns`.
//! - **column families**: a field key `family::field` is split at the first
//!   `::` only.
//! - **per-line validation** the crate leaves out: duplicate tag keys,
//!   duplicate field keys, a tag key that is also a field's key or name, the
//!   reserved name `time`, empty names, non-finite floats (the crate turns
//!   `1e999` into infinity; InfluxDB rejects it) and timestamp overflow.
//!
//! A bad line never stops the others: [`parse`] returns every good row and one
//! [`LineError`] per bad line, so the caller can implement `accept_partial`.
//!
//! Names and string values borrow from the body; a [`Cow::Owned`] appears only
//! where the crate had to unescape.
//!
//! Leniencies inherited from the crate (kept, as InfluxDB's Rust parser has
//! them too): a trailing comma after the field set (`m f=1,`) is accepted, an
//! unescaped comma may start a field key (`m f=1,,g=2` has a field `,g`), and
//! an unknown escape keeps its backslash (`a\b` is the name `a\b`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use influxdb_line_protocol as ilp;

/// The column name every table reserves for the timestamp.
pub const TIME_COLUMN: &str = "time";

/// The separator between a column family and a field name in a field key.
pub const FAMILY_SEPARATOR: &str = "::";

/// At most this many bytes of a bad line are echoed back in [`LineError::text`].
pub const MAX_ERROR_TEXT: usize = 200;

/// The precision names accepted by [`Precision::from_str`], for error messages.
const ACCEPTED_PRECISIONS: &str = "auto, second, millisecond, microsecond, nanosecond, s, ms, us, u, µ, ns, n";

/// Unit of the timestamps in a line protocol body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Guess the unit from the magnitude (the InfluxDB 3 `write_lp` default);
    /// see [`Precision::to_nanos`].
    #[default]
    Auto,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

impl Precision {
    /// Converts a timestamp in this precision to nanoseconds since the epoch,
    /// or `None` if the result does not fit in an `i64`.
    ///
    /// `Auto` judges the unit by the absolute value, so a timestamp before
    /// 1970 gets the same unit as its mirror image after 1970:
    /// `|ts| < 5e9` seconds, `< 5e12` milliseconds, `< 5e15` microseconds,
    /// otherwise nanoseconds. `Auto` never overflows: the largest value of each
    /// band scaled up is below 5e18.
    pub fn to_nanos(self, ts: i64) -> Option<i64> {
        let nanos_per_unit: i64 = match self {
            Self::Auto => {
                let magnitude = ts.unsigned_abs();
                if magnitude < 5_000_000_000 {
                    1_000_000_000
                } else if magnitude < 5_000_000_000_000 {
                    1_000_000
                } else if magnitude < 5_000_000_000_000_000 {
                    1_000
                } else {
                    1
                }
            }
            Self::Second => 1_000_000_000,
            Self::Millisecond => 1_000_000,
            Self::Microsecond => 1_000,
            Self::Nanosecond => 1,
        };
        ts.checked_mul(nanos_per_unit)
    }

    /// The InfluxDB 3 (`/api/v3/write_lp`) name of this precision.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Second => "second",
            Self::Millisecond => "millisecond",
            Self::Microsecond => "microsecond",
            Self::Nanosecond => "nanosecond",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = LpError;

    /// Accepts the v3 names and the v1/v2 abbreviations, case-sensitively as
    /// InfluxDB does. `µ` is accepted both as U+00B5 MICRO SIGN (what the
    /// InfluxDB docs use) and U+03BC GREEK SMALL LETTER MU (what a Greek
    /// keyboard types); they look identical, so rejecting one would only
    /// confuse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "second" | "s" => Ok(Self::Second),
            "millisecond" | "ms" => Ok(Self::Millisecond),
            "microsecond" | "us" | "u" | "\u{b5}" | "\u{3bc}" => Ok(Self::Microsecond),
            "nanosecond" | "ns" | "n" => Ok(Self::Nanosecond),
            other => Err(LpError::BadPrecision(other.to_owned())),
        }
    }
}

/// Errors about a request as a whole; errors about single lines are
/// [`LineError`]s inside [`Parsed`].
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum LpError {
    #[error("invalid precision {0:?}: expected one of {ACCEPTED_PRECISIONS}")]
    BadPrecision(String),
    /// The body is rejected whole, like InfluxDB 3 does: `offset` is the
    /// first byte that is not UTF-8, `line` its 1-based line.
    #[error("line protocol body is not valid UTF-8 at line {line} (byte offset {offset})")]
    NotUtf8 { line: usize, offset: usize },
}

/// A field value, typed as line protocol types it (`1i`, `1u`, `1`, `"s"`, `t`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    F64(f64),
    I64(i64),
    U64(u64),
    Str(Cow<'a, str>),
    Bool(bool),
}

impl FieldValue<'_> {
    pub fn into_owned(self) -> FieldValue<'static> {
        match self {
            Self::F64(v) => FieldValue::F64(v),
            Self::I64(v) => FieldValue::I64(v),
            Self::U64(v) => FieldValue::U64(v),
            Self::Str(v) => FieldValue::Str(Cow::Owned(v.into_owned())),
            Self::Bool(v) => FieldValue::Bool(v),
        }
    }
}

/// One field of a line, its key split into column family and field name.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedField<'a> {
    /// `Some` for a key `family::name`; `None` for a plain key, whose family
    /// the engine assigns.
    pub family: Option<Cow<'a, str>>,
    pub name: Cow<'a, str>,
    pub value: FieldValue<'a>,
}

impl ParsedField<'_> {
    pub fn into_owned(self) -> ParsedField<'static> {
        ParsedField {
            family: self.family.map(|f| Cow::Owned(f.into_owned())),
            name: Cow::Owned(self.name.into_owned()),
            value: self.value.into_owned(),
        }
    }
}

/// One valid line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// 1-based physical line number where this line starts.
    pub line: usize,
    pub measurement: Cow<'a, str>,
    /// Sorted by key, keys unique.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// In line order, at least one.
    pub fields: Vec<ParsedField<'a>>,
    /// Nanoseconds since the epoch.
    pub time_ns: i64,
}

impl ParsedLine<'_> {
    pub fn into_owned(self) -> ParsedLine<'static> {
        ParsedLine {
            line: self.line,
            measurement: Cow::Owned(self.measurement.into_owned()),
            tags: self
                .tags
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            fields: self.fields.into_iter().map(ParsedField::into_owned).collect(),
            time_ns: self.time_ns,
        }
    }
}

/// Why one line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    /// 1-based physical line number where the bad line starts.
    pub line: usize,
    pub message: String,
    /// The line, cut to at most [`MAX_ERROR_TEXT`] bytes on a char boundary.
    pub text: String,
}

/// The outcome of parsing a body: every good line and every bad one, each in
/// body order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed<'a> {
    pub lines: Vec<ParsedLine<'a>>,
    pub errors: Vec<LineError>,
}

/// Parses a line protocol body. Never fails as a whole: bad lines end up in
/// [`Parsed::errors`], the rest in [`Parsed::lines`].
pub fn parse(body: &str, precision: Precision, default_time_ns: i64) -> Parsed<'_> {
    let mut parsed = Parsed {
        // One row per newline is the common case; reserving avoids regrowing
        // a vector of wide rows several times over a large body.
        lines: Vec::with_capacity(memchr::memchr_iter(b'\n', body.as_bytes()).count() + 1),
        errors: Vec::new(),
    };
    for result in parse_iter(body, precision, default_time_ns) {
        match result {
            Ok(line) => parsed.lines.push(line),
            Err(e) => parsed.errors.push(e),
        }
    }
    parsed
}

/// [`parse`] one line at a time, in body order, for a caller that consumes
/// rows as they come (say, appending them to column builders): the rows never
/// pile up in memory, which keeps the working set in cache.
pub fn parse_iter(
    body: &str,
    precision: Precision,
    default_time_ns: i64,
) -> impl Iterator<Item = Result<ParsedLine<'_>, LineError>> {
    let mut scratch = Vec::new();
    LogicalLines::new(body).map(move |logical| {
        match parse_line(logical.text, precision, default_time_ns, &mut scratch) {
            Ok(mut row) => {
                row.line = logical.line;
                Ok(row)
            }
            Err(message) => Err(LineError {
                line: logical.line,
                message,
                text: truncate_on_char_boundary(logical.text, MAX_ERROR_TEXT).to_owned(),
            }),
        }
    })
}

/// [`parse`] for a body that has not been checked for UTF-8 yet.
///
/// A body that is not UTF-8 is rejected whole rather than line by line:
/// validation runs at memory speed, a client sending non-UTF-8 is broken as a
/// whole rather than on one line, and a per-line check would have to guess
/// where lines end in bytes that are not text.
pub fn parse_bytes(body: &[u8], precision: Precision, default_time_ns: i64) -> Result<Parsed<'_>, LpError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let offset = e.valid_up_to();
        let line = 1 + memchr::memchr_iter(b'\n', &body[..offset]).count();
        LpError::NotUtf8 { line, offset }
    })?;
    Ok(parse(text, precision, default_time_ns))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One non-blank, non-comment logical line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogicalLine<'a> {
    /// 1-based physical line where it starts.
    line: usize,
    /// Without leading spaces/tabs and without a final `\r`.
    text: &'a str,
}

/// Splits a body into logical lines, skipping blank and comment lines and
/// numbering what is left by physical line.
struct LogicalLines<'a> {
    rest: &'a str,
    next_line: usize,
}

impl<'a> LogicalLines<'a> {
    fn new(body: &'a str) -> Self {
        Self { rest: body, next_line: 1 }
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = LogicalLine<'a>;

    fn next(&mut self) -> Option<LogicalLine<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let line = self.next_line;
            let (physical, after) = match memchr::memchr(b'\n', self.rest.as_bytes()) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, ""),
            };
            let content = physical.strip_suffix('\r').unwrap_or(physical);
            let start = content.len() - content.trim_start_matches([' ', '\t']).len();
            let content = &content[start..];
            if content.is_empty() || content.starts_with('#') {
                self.rest = after;
                self.next_line += 1;
                continue;
            }
            // Only a quote or a backslash can carry a line past its newline;
            // without either the physical line is the logical line, and the
            // char-by-char scan of `split_lines` can be skipped.
            if memchr::memchr2(b'"', b'\\', content.as_bytes()).is_none() {
                self.rest = after;
                self.next_line += 1;
                return Some(LogicalLine { line, text: content });
            }
            let from_start = &self.rest[start..];
            let logical = ilp::split_lines(from_start).next().unwrap_or(from_start);
            // `split_lines` consumes exactly one `\n` between lines.
            self.rest = from_start.get(logical.len() + 1..).unwrap_or("");
            self.next_line += 1 + memchr::memchr_iter(b'\n', logical.as_bytes()).count();
            return Some(LogicalLine { line, text: logical.strip_suffix('\r').unwrap_or(logical) });
        }
    }
}

fn cow(s: ilp::EscapedStr<'_>) -> Cow<'_, str> {
    match s {
        ilp::EscapedStr::SingleSlice(s) => Cow::Borrowed(s),
        ilp::EscapedStr::CopiedValue(s) => Cow::Owned(s),
    }
}

/// Byte offset of the first `::` in `key`.
fn family_separator_at(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    memchr::memchr_iter(b':', bytes).find(|&i| bytes.get(i + 1) == Some(&b':'))
}

/// Splits `family::name` at the first `::`; the family is `None` without one.
fn split_family(key: ilp::EscapedStr<'_>) -> (Option<Cow<'_, str>>, Cow<'_, str>) {
    let Some(at) = family_separator_at(&key) else {
        return (None, cow(key));
    };
    let name_at = at + FAMILY_SEPARATOR.len();
    match key {
        ilp::EscapedStr::SingleSlice(s) => (Some(Cow::Borrowed(&s[..at])), Cow::Borrowed(&s[name_at..])),
        ilp::EscapedStr::CopiedValue(mut family) => {
            // Reuses the unescaped key's buffer for the family.
            let name = family.split_off(name_at);
            family.truncate(at);
            (Some(Cow::Owned(family)), Cow::Owned(name))
        }
    }
}

fn syntax_error_message(e: ilp::Error) -> String {
    match e {
        // The crate's own text for this one is "A generic parsing error
        // occurred: <nom error kind>", which tells a user nothing.
        ilp::Error::GenericParsingError { .. } => {
            format!("invalid line protocol: expected {LINE_SHAPE}")
        }
        other => other.to_string(),
    }
}

const LINE_SHAPE: &str =
    "'measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]'";

/// A one-word Bloom filter over a line's tag keys: most field keys are ruled
/// out as tag keys without a string comparison.
#[derive(Debug, Clone, Copy, Default)]
struct KeyFilter(u64);

impl KeyFilter {
    fn bit(key: &str) -> u64 {
        let bytes = key.as_bytes();
        let first = u32::from(bytes.first().copied().unwrap_or(0));
        let last = u32::from(bytes.last().copied().unwrap_or(0));
        // Lengths beyond 255 share a bit pattern with shorter ones; that only
        // costs a comparison, never a wrong answer.
        let mixed = (bytes.len() as u32 & 0xff) | (first << 8) | (last << 16);
        1 << (mixed.wrapping_mul(0x9E37_79B1) >> 26)
    }

    fn insert(&mut self, key: &str) {
        self.0 |= Self::bit(key);
    }

    fn may_contain(self, key: &str) -> bool {
        self.0 & Self::bit(key) != 0
    }
}

/// Parses and validates one logical line; the error is the message for its
/// [`LineError`].
fn parse_line<'a>(
    text: &'a str,
    precision: Precision,
    default_time_ns: i64,
    scratch: &mut Vec<usize>,
) -> Result<ParsedLine<'a>, String> {
    let ilp::ParsedLine { series, field_set, timestamp } = match ilp::parse_lines(text).next() {
        Some(Ok(parsed)) => parsed,
        Some(Err(e)) => return Err(syntax_error_message(e)),
        // `LogicalLines` yields no blank or comment line, so this is unreachable.
        None => return Err("no line protocol on this line".to_owned()),
    };

    let measurement = cow(series.measurement);
    if measurement.is_empty() {
        return Err("empty measurement name".to_owned());
    }

    let mut tags = Vec::with_capacity(series.tag_set.as_ref().map_or(0, |t| t.len()));
    let mut tag_filter = KeyFilter::default();
    for (key, value) in series.tag_set.into_iter().flatten() {
        if key.is_empty() {
            return Err("empty tag key".to_owned());
        }
        if key.as_str() == TIME_COLUMN {
            return Err(format!("tag key {TIME_COLUMN:?} is reserved for the timestamp"));
        }
        if value.is_empty() {
            return Err(format!("tag {:?} has an empty value", key.as_str()));
        }
        tag_filter.insert(&key);
        tags.push((cow(key), cow(value)));
    }
    tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = tags.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(format!("duplicate tag key {:?}", pair[0].0));
    }
    let is_tag_key =
        |key: &str| tag_filter.may_contain(key) && tags.binary_search_by(|(t, _)| t.as_ref().cmp(key)).is_ok();

    find_duplicate_field_key(&field_set, scratch)?;

    let mut fields = Vec::with_capacity(field_set.len());
    for (key, value) in field_set {
        if key.is_empty() {
            return Err("empty field key".to_owned());
        }
        if is_tag_key(&key) {
            return Err(format!("{:?} is both a tag key and a field key", key.as_str()));
        }
        let value = match value {
            ilp::FieldValue::F64(v) if !v.is_finite() => {
                return Err(format!(
                    "field {:?}: float value out of range (InfluxDB stores only finite floats)",
                    key.as_str()
                ));
            }
            ilp::FieldValue::F64(v) => FieldValue::F64(v),
            ilp::FieldValue::I64(v) => FieldValue::I64(v),
            ilp::FieldValue::U64(v) => FieldValue::U64(v),
            ilp::FieldValue::String(v) => FieldValue::Str(cow(v)),
            ilp::FieldValue::Boolean(v) => FieldValue::Bool(v),
        };
        let (family, name) = split_family(key);
        let key_error = |what: String| match &family {
            Some(family) => format!("field key \"{family}::{name}\": {what}"),
            None => format!("field key {name:?}: {what}"),
        };
        if family.as_deref() == Some("") {
            return Err(key_error("empty column family name before \"::\"".to_owned()));
        }
        if name.is_empty() {
            return Err(key_error("empty field name after \"::\"".to_owned()));
        }
        if name == TIME_COLUMN {
            return Err(key_error(format!("field name {TIME_COLUMN:?} is reserved for the timestamp")));
        }
        if family.is_some() && is_tag_key(&name) {
            return Err(key_error(format!("field name {name:?} is also a tag key")));
        }
        fields.push(ParsedField { family, name, value });
    }

    let time_ns = match timestamp {
        None => default_time_ns,
        Some(ts) => precision
            .to_nanos(ts)
            .ok_or_else(|| format!("timestamp {ts} at precision {precision} is out of range for i64 nanoseconds"))?,
    };

    Ok(ParsedLine { line: 0, measurement, tags, fields, time_ns })
}

/// Up to this many fields, duplicates are found by comparing every pair;
/// wider lines sort key indices instead.
const PAIRWISE_DUPLICATE_LIMIT: usize = 16;

/// Duplicates are judged on the key as written (after unescaping), so
/// `a::x` and `b::x` are two different fields.
fn find_duplicate_field_key(
    fields: &[(ilp::EscapedStr<'_>, ilp::FieldValue<'_>)],
    scratch: &mut Vec<usize>,
) -> Result<(), String> {
    let duplicate = if fields.len() <= PAIRWISE_DUPLICATE_LIMIT {
        (1..fields.len()).find(|&i| fields[..i].iter().any(|(earlier, _)| *earlier == fields[i].0))
    } else {
        scratch.clear();
        scratch.extend(0..fields.len());
        scratch.sort_unstable_by(|&a, &b| fields[a].0.cmp(&fields[b].0));
        scratch.windows(2).find(|pair| fields[pair[0]].0 == fields[pair[1]].0).map(|pair| pair[1])
    };
    match duplicate {
        Some(i) => Err(format!("duplicate field key {:?}", fields[i].0.as_str())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT_NS: i64 = 1_700_000_000_123_456_789;

    fn ok_line(body: &str) -> ParsedLine<'_> {
        let parsed = parse(body, Precision::Nanosecond, DEFAULT_NS);
        assert!(parsed.errors.is_empty(), "unexpected errors: {:?}", parsed.errors);
        assert_eq!(parsed.lines.len(), 1, "{body:?}");
        parsed.lines.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    fn bad_line(body: &str) -> LineError {
        let parsed = parse(body, Precision::Nanosecond, DEFAULT_NS);
        assert!(parsed.lines.is_empty(), "unexpected rows: {:?}", parsed.lines);
        assert_eq!(parsed.errors.len(), 1, "{body:?}");
        parsed.errors.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    fn assert_rejected(body: &str, message_part: &str) {
        let e = bad_line(body);
        assert!(e.message.contains(message_part), "{body:?}: message {:?} lacks {message_part:?}", e.message);
        assert_eq!(e.line, 1);
        assert_eq!(e.text, truncate_on_char_boundary(body.trim_end_matches(['\r', '\n']), MAX_ERROR_TEXT));
    }

    #[expect(clippy::ptr_arg, reason = "the Cow variant is what is checked")]
    fn is_borrowed(c: &Cow<'_, str>) -> bool {
        matches!(c, Cow::Borrowed(_))
    }

    #[test]
    fn every_precision_spelling() {
        let cases = [
            ("auto", Precision::Auto),
            ("second", Precision::Second),
            ("s", Precision::Second),
            ("millisecond", Precision::Millisecond),
            ("ms", Precision::Millisecond),
            ("microsecond", Precision::Microsecond),
            ("us", Precision::Microsecond),
            ("u", Precision::Microsecond),
            ("\u{b5}", Precision::Microsecond),
            ("\u{3bc}", Precision::Microsecond),
            ("nanosecond", Precision::Nanosecond),
            ("ns", Precision::Nanosecond),
            ("n", Precision::Nanosecond),
        ];
        for (text, precision) in cases {
            assert_eq!(text.parse::<Precision>(), Ok(precision), "{text}");
        }
        for p in
            [Precision::Auto, Precision::Second, Precision::Millisecond, Precision::Microsecond, Precision::Nanosecond]
        {
            assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(Precision::default(), Precision::Auto);
    }

    #[test]
    fn bad_precision_is_rejected_case_sensitively_and_lists_the_accepted_values() {
        for bad in ["", "S", "NS", "Second", "nanoseconds", "h", "m", " s", "s "] {
            let err = bad.parse::<Precision>();
            assert_eq!(err, Err(LpError::BadPrecision(bad.to_owned())), "{bad:?}");
        }
        let message = "x".parse::<Precision>().err().map(|e| e.to_string()).unwrap_or_default();
        for accepted in
            ["auto", "second", "millisecond", "microsecond", "nanosecond", "s,", "ms", "us", "u,", "µ", "ns", " n"]
        {
            assert!(message.contains(accepted), "{message:?} lacks {accepted:?}");
        }
    }

    #[test]
    fn explicit_precisions_scale() {
        assert_eq!(Precision::Second.to_nanos(3), Some(3_000_000_000));
        assert_eq!(Precision::Millisecond.to_nanos(3), Some(3_000_000));
        assert_eq!(Precision::Microsecond.to_nanos(-3), Some(-3_000));
        assert_eq!(Precision::Nanosecond.to_nanos(i64::MIN), Some(i64::MIN));
        assert_eq!(Precision::Nanosecond.to_nanos(i64::MAX), Some(i64::MAX));
    }

    #[test]
    fn explicit_precisions_overflow_to_none() {
        assert_eq!(Precision::Second.to_nanos(9_223_372_036), Some(9_223_372_036_000_000_000));
        assert_eq!(Precision::Second.to_nanos(9_223_372_037), None);
        assert_eq!(Precision::Second.to_nanos(-9_223_372_036), Some(-9_223_372_036_000_000_000));
        assert_eq!(Precision::Second.to_nanos(-9_223_372_037), None);
        assert_eq!(Precision::Millisecond.to_nanos(9_223_372_036_854), Some(9_223_372_036_854_000_000));
        assert_eq!(Precision::Millisecond.to_nanos(9_223_372_036_855), None);
        assert_eq!(Precision::Microsecond.to_nanos(9_223_372_036_854_775), Some(9_223_372_036_854_775_000));
        assert_eq!(Precision::Microsecond.to_nanos(9_223_372_036_854_776), None);
        assert_eq!(Precision::Microsecond.to_nanos(i64::MIN), None);
    }

    #[test]
    fn auto_precision_thresholds() {
        let auto = |ts| Precision::Auto.to_nanos(ts);
        assert_eq!(auto(0), Some(0));
        assert_eq!(auto(1), Some(1_000_000_000));
        assert_eq!(auto(4_999_999_999), Some(4_999_999_999_000_000_000));
        assert_eq!(auto(5_000_000_000), Some(5_000_000_000_000_000));
        assert_eq!(auto(4_999_999_999_999), Some(4_999_999_999_999_000_000));
        assert_eq!(auto(5_000_000_000_000), Some(5_000_000_000_000_000));
        assert_eq!(auto(4_999_999_999_999_999), Some(4_999_999_999_999_999_000));
        assert_eq!(auto(5_000_000_000_000_000), Some(5_000_000_000_000_000));
        assert_eq!(auto(i64::MAX), Some(i64::MAX));
    }

    #[test]
    fn auto_precision_judges_negative_timestamps_by_absolute_value() {
        let auto = |ts| Precision::Auto.to_nanos(ts);
        assert_eq!(auto(-1), Some(-1_000_000_000));
        assert_eq!(auto(-4_999_999_999), Some(-4_999_999_999_000_000_000));
        assert_eq!(auto(-5_000_000_000), Some(-5_000_000_000_000_000));
        assert_eq!(auto(-4_999_999_999_999), Some(-4_999_999_999_999_000_000));
        assert_eq!(auto(-5_000_000_000_000), Some(-5_000_000_000_000_000));
        assert_eq!(auto(-4_999_999_999_999_999), Some(-4_999_999_999_999_999_000));
        assert_eq!(auto(-5_000_000_000_000_000), Some(-5_000_000_000_000_000));
        assert_eq!(auto(i64::MIN), Some(i64::MIN));
    }

    #[test]
    fn precision_is_applied_to_lines() {
        let body = "m f=1 1700000000\nm f=1 1700000000000\nm f=1 1700000000000000\nm f=1 1700000000000000000\nm f=1";
        let parsed = parse(body, Precision::Auto, DEFAULT_NS);
        assert!(parsed.errors.is_empty());
        let times: Vec<i64> = parsed.lines.iter().map(|l| l.time_ns).collect();
        assert_eq!(
            times,
            [
                1_700_000_000_000_000_000,
                1_700_000_000_000_000_000,
                1_700_000_000_000_000_000,
                1_700_000_000_000_000_000,
                DEFAULT_NS
            ]
        );
        let parsed = parse("m f=1 2", Precision::Millisecond, DEFAULT_NS);
        assert_eq!(parsed.lines[0].time_ns, 2_000_000);
    }

    #[test]
    fn a_line_without_timestamp_gets_the_default_time() {
        assert_eq!(ok_line("m f=1").time_ns, DEFAULT_NS);
        assert_eq!(ok_line("m,t=a f=1i").time_ns, DEFAULT_NS);
    }

    #[test]
    fn timestamp_overflow_is_a_line_error() {
        let parsed = parse("m f=1 9223372037\nm f=1 9223372036", Precision::Second, 0);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 1);
        assert!(parsed.errors[0].message.contains("9223372037"), "{:?}", parsed.errors[0]);
        assert!(parsed.errors[0].message.contains("out of range"), "{:?}", parsed.errors[0]);
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].line, 2);
        // Beyond i64 itself: the crate's own error.
        assert_rejected("m f=1 9223372036854775808", "timestamp");
    }

    #[test]
    fn parses_all_value_types() {
        let line = ok_line(r#"m i=-1i,u=18446744073709551615u,f=1.5,g=-2,e=1e3,s="hi",t=t,b=FALSE 5"#);
        let values: Vec<_> = line.fields.iter().map(|f| (f.name.as_ref(), f.value.clone())).collect();
        assert_eq!(
            values,
            [
                ("i", FieldValue::I64(-1)),
                ("u", FieldValue::U64(u64::MAX)),
                ("f", FieldValue::F64(1.5)),
                ("g", FieldValue::F64(-2.0)),
                ("e", FieldValue::F64(1000.0)),
                ("s", FieldValue::Str(Cow::Borrowed("hi"))),
                ("t", FieldValue::Bool(true)),
                ("b", FieldValue::Bool(false)),
            ]
        );
        assert_eq!(line.time_ns, 5);
    }

    #[test]
    fn tags_are_sorted_and_fields_keep_line_order() {
        let line = ok_line("cpu,zone=z,host=h,arch=x z=1i,a=2i,m=3i 1");
        let tags: Vec<_> = line.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        assert_eq!(tags, [("arch", "x"), ("host", "h"), ("zone", "z")]);
        let names: Vec<_> = line.fields.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(names, ["z", "a", "m"]);
        assert_eq!(line.measurement, "cpu");
        assert!(is_borrowed(&line.measurement));
        assert!(line.tags.iter().all(|(k, v)| is_borrowed(k) && is_borrowed(v)));
    }

    #[test]
    fn family_split_rules() {
        let line = ok_line("m cpu::usage=1,plain=2,a::b::c=3,x:y=4,a:::b=5 1");
        let split: Vec<_> = line.fields.iter().map(|f| (f.family.as_deref(), f.name.as_ref())).collect();
        assert_eq!(
            split,
            [(Some("cpu"), "usage"), (None, "plain"), (Some("a"), "b::c"), (None, "x:y"), (Some("a"), ":b"),]
        );
        for f in &line.fields {
            assert!(is_borrowed(&f.name));
            assert!(f.family.as_ref().is_none_or(is_borrowed));
        }
    }

    #[test]
    fn family_split_of_an_escaped_key_is_owned_and_unescaped() {
        let line = ok_line(r"m my\ fam::my\,field=1 1");
        assert_eq!(line.fields[0].family.as_deref(), Some("my fam"));
        assert_eq!(line.fields[0].name, "my,field");
        assert!(!is_borrowed(&line.fields[0].name));
    }

    #[test]
    fn empty_family_or_field_name_is_rejected() {
        assert_rejected("m ::x=1", "empty column family name");
        assert_rejected("m x::=1", "empty field name");
        assert_rejected("m ::=1", "empty column family name");
        assert_rejected("m ok=1,fam::=2", "\"fam::\"");
    }

    #[test]
    fn escapes_are_unescaped_and_only_then_owned() {
        let line = ok_line(r#"my\ meas\,x,t\=k\ 1=v\,a\ b\=c f\ k\=\,=" q\"uote \\ back ",plain="p" 1"#);
        assert_eq!(line.measurement, "my meas,x");
        assert!(!is_borrowed(&line.measurement));
        assert_eq!(line.tags.len(), 1);
        assert_eq!(line.tags[0].0, "t=k 1");
        assert_eq!(line.tags[0].1, "v,a b=c");
        assert_eq!(line.fields[0].name, "f k=,");
        assert_eq!(line.fields[0].value, FieldValue::Str(Cow::Borrowed(r#" q"uote \ back "#)));
        assert!(matches!(&line.fields[0].value, FieldValue::Str(Cow::Owned(_))));
        assert!(matches!(&line.fields[1].value, FieldValue::Str(Cow::Borrowed("p"))));
        // An unknown escape keeps its backslash (Go compatibility).
        assert_eq!(ok_line(r"a\b f=1").measurement, r"a\b");
        // '=' needs no escape in a measurement.
        assert_eq!(ok_line("a=b f=1").measurement, "a=b");
        // Unicode passes through.
        let line = ok_line("温度,地点=東京 値=1 1");
        assert_eq!(line.measurement, "温度");
        assert_eq!(line.tags[0], (Cow::Borrowed("地点"), Cow::Borrowed("東京")));
    }

    #[test]
    fn line_numbers_count_blank_and_comment_lines() {
        let body = "# header\n\nm f=1 1\n   \n\t# indented comment\nm f=2 2\nbad\n\r\nm f=3 3\n";
        let parsed = parse(body, Precision::Nanosecond, 0);
        let rows: Vec<_> = parsed.lines.iter().map(|l| l.line).collect();
        assert_eq!(rows, [3, 6, 9]);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 7);
        assert_eq!(parsed.errors[0].text, "bad");
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let parsed = parse("m,t=a f=1 1\r\nm g=2i\r\n\r\n# c\r\nm s=\"x\" 3\r\n", Precision::Nanosecond, 7);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let rows: Vec<_> = parsed.lines.iter().map(|l| (l.line, l.time_ns)).collect();
        assert_eq!(rows, [(1, 1), (2, 7), (5, 3)]);
        assert_eq!(parsed.lines[1].fields[0].value, FieldValue::I64(2));
    }

    #[test]
    fn a_newline_inside_a_string_value_continues_the_line() {
        let body = "m s=\"one\ntwo\",n=1i 1\nm f=2 2\n";
        let parsed = parse(body, Precision::Nanosecond, 0);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.lines.len(), 2);
        assert_eq!(parsed.lines[0].fields[0].value, FieldValue::Str(Cow::Borrowed("one\ntwo")));
        assert_eq!(parsed.lines[0].line, 1);
        assert_eq!(parsed.lines[1].line, 3);
    }

    #[test]
    fn a_quote_in_a_comment_does_not_swallow_the_next_line() {
        let parsed = parse("# a b=\"unterminated\nm f=1 1\n", Precision::Nanosecond, 0);
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].line, 2);
    }

    #[test]
    fn an_unterminated_string_swallows_the_rest_of_the_body_as_one_bad_line() {
        let parsed = parse("m f=1 1\nm s=\"open 2\nm f=3 3\n", Precision::Nanosecond, 0);
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 2);
    }

    #[test]
    fn a_bad_line_does_not_stop_the_others() {
        let parsed = parse("m f=1 1\nm f= 2\nm f=3 3", Precision::Nanosecond, 0);
        assert_eq!(parsed.lines.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn syntax_errors_carry_the_crate_message() {
        assert_rejected("m", "invalid line protocol: expected 'measurement[,tag_key=tag_value...]");
        assert_rejected("m,t=a", "invalid line protocol: expected");
        assert_rejected("m,t=a, f=1", "invalid line protocol: expected");
        assert_rejected("m f=", "No fields were provided");
        assert_rejected("m f=\"open", "No fields were provided");
        assert_rejected("m f=1 1 extra", "trailing content");
        assert_rejected("m f=1 abc", "trailing content");
        assert_rejected("m f=9223372036854775808i", "Unable to parse integer value");
        assert_rejected("m f=-1u", "trailing content: 'u'");
        assert_rejected("m f=1 1.5", "trailing content: '.5'");
        assert_rejected("m,t= f=1", "Tag Set Malformed");
        assert_rejected("m, f=1", "Tag Set Malformed");
        assert_rejected(r"m\ f=1", "invalid line protocol: expected");
        assert_rejected(r"m,t=a\", "may not end with a backslash");
        assert_rejected("m =1", "No fields were provided");
        assert_rejected(",t=a f=1", "Invalid measurement");
    }

    #[test]
    fn non_finite_floats_are_rejected() {
        assert_rejected("m f=1e999", "float value out of range");
        assert_rejected("m f=-1e999 1", "float value out of range");
        let huge = format!("m f={} 1", "9".repeat(400));
        assert_rejected(&huge, "float value out of range");
        // The crate has no NaN or infinity literals.
        assert_rejected("m f=NaN", "No fields were provided");
        assert_rejected("m f=inf", "No fields were provided");
        assert_rejected("m f=+Inf", "No fields were provided");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert_rejected("m,a=1,b=2,a=3 f=1", "duplicate tag key \"a\"");
        assert_rejected("m f=1,g=2,f=3", "duplicate field key \"f\"");
        assert_rejected("m c::f=1,c::f=2", "duplicate field key \"c::f\"");
        // Judged on the full key: different families may share a name.
        let line = ok_line("m a::x=1,b::x=2,x=3");
        assert_eq!(line.fields.len(), 3);
    }

    #[test]
    fn duplicate_field_keys_are_found_on_wide_lines() {
        let fields: Vec<String> = (0..40).map(|i| format!("f{i}={i}i")).collect();
        let body = format!("m {}", fields.join(","));
        assert_eq!(ok_line(&body).fields.len(), 40);
        let body = format!("m {},f17=0i", fields.join(","));
        assert_rejected(&body, "duplicate field key \"f17\"");
    }

    #[test]
    fn a_tag_key_that_is_also_a_field_is_rejected() {
        assert_rejected("m,host=a host=1", "\"host\" is both a tag key and a field key");
        assert_rejected("m,host=a cpu::host=1", "field name \"host\" is also a tag key");
        assert_rejected("m,a::b=x a::b=1", "\"a::b\" is both a tag key and a field key");
    }

    #[test]
    fn time_is_reserved() {
        assert_rejected("m,time=1 f=1", "tag key \"time\" is reserved");
        assert_rejected("m time=1", "field name \"time\" is reserved");
        assert_rejected("m fam::time=1", "field name \"time\" is reserved");
        // Only the exact name is reserved.
        assert_eq!(ok_line("m,Time=a time2=1").fields[0].name, "time2");
    }

    #[test]
    fn error_text_is_truncated_on_a_char_boundary() {
        let long = format!("m {}", "é".repeat(300));
        let e = bad_line(&long);
        assert!(e.text.len() <= MAX_ERROR_TEXT);
        assert!(e.text.len() >= MAX_ERROR_TEXT - 1);
        assert!(long.starts_with(&e.text));
        assert_eq!(truncate_on_char_boundary("abc", 2), "ab");
        assert_eq!(truncate_on_char_boundary("aé", 2), "a");
        assert_eq!(truncate_on_char_boundary("", 2), "");
    }

    #[test]
    fn line_error_displays_its_line() {
        let e = bad_line("m");
        assert_eq!(e.to_string(), format!("line 1: {}", e.message));
    }

    #[test]
    fn parse_bytes_rejects_non_utf8_with_its_position() {
        let body = b"m f=1 1\nm s=\"\xff\" 2\n";
        assert_eq!(parse_bytes(body, Precision::Auto, 0), Err(LpError::NotUtf8 { line: 2, offset: 13 }));
        let ok = parse_bytes(b"m f=1 1\n", Precision::Nanosecond, 0);
        assert_eq!(ok, Ok(parse("m f=1 1\n", Precision::Nanosecond, 0)));
    }

    #[test]
    fn leading_whitespace_is_ignored() {
        let parsed = parse("  m f=1 1\n\tm f=2 2", Precision::Nanosecond, 0);
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.lines.len(), 2);
    }

    #[test]
    fn empty_and_comment_only_bodies_parse_to_nothing() {
        for body in ["", "\n", "\r\n", "# only\n#\n", "  \t \n\n"] {
            assert_eq!(parse(body, Precision::Auto, 0), Parsed::default(), "{body:?}");
        }
    }

    #[test]
    fn into_owned_keeps_the_content() {
        let body = String::from(r#"m\ x,t=a c::f="s",g=1i 5"#);
        let owned = parse(&body, Precision::Nanosecond, 0).lines[0].clone().into_owned();
        drop(body);
        assert_eq!(owned.measurement, "m x");
        assert_eq!(owned.fields[0].family.as_deref(), Some("c"));
        assert_eq!(owned.fields[0].value, FieldValue::Str(Cow::Borrowed("s")));
    }

    // ---- properties ----

    /// Checks that every non-blank, non-comment line is accounted for once.
    fn check_accounting(body: &str, parsed: &Parsed<'_>) {
        let physical: Vec<&str> = body.split('\n').collect();
        let is_content = |l: &str| {
            let l = l.strip_suffix('\r').unwrap_or(l).trim_start_matches([' ', '\t']);
            !l.is_empty() && !l.starts_with('#')
        };
        let content: Vec<usize> = (1..=physical.len()).filter(|&n| is_content(physical[n - 1])).collect();
        assert!(parsed.lines.windows(2).all(|w| w[0].line < w[1].line));
        assert!(parsed.errors.windows(2).all(|w| w[0].line < w[1].line));
        let mut reported: Vec<usize> =
            parsed.lines.iter().map(|l| l.line).chain(parsed.errors.iter().map(|e| e.line)).collect();
        reported.sort_unstable();
        assert!(reported.windows(2).all(|w| w[0] < w[1]), "a line reported twice");
        assert!(reported.iter().all(|n| content.binary_search(n).is_ok()));
        assert_eq!(reported.first(), content.first(), "the first line is always reported");
        if body.contains(['"', '\\']) {
            // Quotes and escapes can join physical lines into one.
            assert!(reported.len() <= content.len());
        } else {
            assert_eq!(reported, content);
        }
        for e in &parsed.errors {
            assert!(e.text.len() <= MAX_ERROR_TEXT);
            assert!(!e.message.is_empty());
        }
    }

    fn name_chars(colons: bool) -> impl Strategy<Value = String> {
        let mut chars =
            vec!['a', 'b', 'z', 'A', 'Z', '0', '9', '_', '-', '.', ',', ' ', '=', '"', '\\', '#', 'é', '日', '🦀'];
        if colons {
            chars.push(':');
        }
        prop::collection::vec(prop::sample::select(chars), 0..6).prop_map(String::from_iter)
    }

    /// Escapes a measurement: comma, space and backslash.
    fn escape_measurement(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if matches!(c, ',' | ' ' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// Escapes a tag key, tag value or field key: comma, equals, space, backslash.
    fn escape_key(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if matches!(c, ',' | '=' | ' ' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    fn escape_string_value(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    #[derive(Debug, Clone)]
    enum GenValue {
        F64(f64),
        I64(i64),
        U64(u64),
        Str(String),
        Bool(bool, &'static str),
    }

    fn gen_value() -> impl Strategy<Value = GenValue> {
        let string_chars = prop::sample::select(vec!['a', ' ', ',', '=', '"', '\\', '\n', '\r', '#', 'é', '🦀', ':']);
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(GenValue::F64),
            any::<i64>().prop_map(GenValue::I64),
            any::<u64>().prop_map(GenValue::U64),
            prop::collection::vec(string_chars, 0..8).prop_map(|c| GenValue::Str(String::from_iter(c))),
            prop::sample::select(vec![
                (true, "t"),
                (true, "T"),
                (true, "true"),
                (true, "True"),
                (true, "TRUE"),
                (false, "f"),
                (false, "F"),
                (false, "false"),
                (false, "False"),
                (false, "FALSE"),
            ])
            .prop_map(|(b, s)| GenValue::Bool(b, s)),
        ]
    }

    #[derive(Debug, Clone)]
    struct GenLine {
        measurement: String,
        tags: Vec<(String, String)>,
        fields: Vec<(Option<String>, String, GenValue)>,
        timestamp: Option<i64>,
    }

    impl GenLine {
        fn to_lp(&self) -> String {
            let mut out = escape_measurement(&self.measurement);
            for (k, v) in &self.tags {
                out.push(',');
                out.push_str(&escape_key(k));
                out.push('=');
                out.push_str(&escape_key(v));
            }
            for (i, (family, name, value)) in self.fields.iter().enumerate() {
                out.push(if i == 0 { ' ' } else { ',' });
                let key = match family {
                    Some(f) => format!("{f}::{name}"),
                    None => name.clone(),
                };
                out.push_str(&escape_key(&key));
                out.push('=');
                match value {
                    GenValue::F64(v) => out.push_str(&format!("{v:?}")),
                    GenValue::I64(v) => out.push_str(&format!("{v}i")),
                    GenValue::U64(v) => out.push_str(&format!("{v}u")),
                    GenValue::Str(s) => out.push_str(&escape_string_value(s)),
                    GenValue::Bool(_, spelling) => out.push_str(spelling),
                }
            }
            if let Some(ts) = self.timestamp {
                out.push_str(&format!(" {ts}"));
            }
            out
        }

        fn expected(&self, line: usize) -> ParsedLine<'static> {
            let mut tags: Vec<_> =
                self.tags.iter().map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone()))).collect();
            tags.sort();
            ParsedLine {
                line,
                measurement: Cow::Owned(self.measurement.clone()),
                tags,
                fields: self
                    .fields
                    .iter()
                    .map(|(family, name, value)| ParsedField {
                        family: family.clone().map(Cow::Owned),
                        name: Cow::Owned(name.clone()),
                        value: match value {
                            GenValue::F64(v) => FieldValue::F64(*v),
                            GenValue::I64(v) => FieldValue::I64(*v),
                            GenValue::U64(v) => FieldValue::U64(*v),
                            GenValue::Str(s) => FieldValue::Str(Cow::Owned(s.clone())),
                            GenValue::Bool(b, _) => FieldValue::Bool(*b),
                        },
                    })
                    .collect(),
                time_ns: self.timestamp.unwrap_or(DEFAULT_NS),
            }
        }
    }

    fn gen_line() -> impl Strategy<Value = GenLine> {
        // Suffixes keep names unique, non-empty, distinct between tags and
        // fields, free of a trailing backslash (which the crate rejects even
        // escaped) and of `::` in the name part.
        let tags = prop::collection::vec((name_chars(true), name_chars(true)), 0..5).prop_map(|tags| {
            tags.into_iter().enumerate().map(|(i, (k, v))| (format!("{k}~t{i}"), format!("{v}v"))).collect::<Vec<_>>()
        });
        let fields = prop::collection::vec((prop::option::of(name_chars(false)), name_chars(false), gen_value()), 1..6)
            .prop_map(|fields| {
                fields
                    .into_iter()
                    .enumerate()
                    .map(|(i, (family, name, value))| (family.map(|f| format!("{f}c")), format!("{name}~f{i}"), value))
                    .collect::<Vec<_>>()
            });
        (name_chars(true), tags, fields, prop::option::of(any::<i64>())).prop_map(
            |(measurement, tags, fields, timestamp)| {
                let measurement =
                    if measurement.starts_with('#') { format!("x{measurement}m") } else { format!("{measurement}m") };
                GenLine { measurement, tags, fields, timestamp }
            },
        )
    }

    /// Blank and comment lines to interleave; the last has an unmatched quote.
    fn gen_filler() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "  ", "\t", "#", "# comment", "  # a b=\"c"])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn generated_lines_parse_to_what_was_generated(
            lines in prop::collection::vec((gen_line(), prop::collection::vec(gen_filler(), 0..2), any::<bool>()), 1..6),
            final_newline in any::<bool>(),
        ) {
            let mut body = String::new();
            let mut expected = Vec::new();
            let mut next_line = 1;
            for (i, (line, fillers, crlf)) in lines.iter().enumerate() {
                let eol = if *crlf { "\r\n" } else { "\n" };
                for filler in fillers {
                    body.push_str(filler);
                    body.push_str(eol);
                    next_line += 1;
                }
                let text = line.to_lp();
                expected.push(line.expected(next_line));
                next_line += 1 + text.matches('\n').count();
                body.push_str(&text);
                if i + 1 < lines.len() || final_newline {
                    body.push_str(eol);
                }
            }
            let parsed = parse(&body, Precision::Nanosecond, DEFAULT_NS);
            prop_assert!(parsed.errors.is_empty(), "errors {:?} in {:?}", parsed.errors, body);
            prop_assert_eq!(&parsed.lines, &expected, "body {:?}", body);
            check_accounting(&body, &parsed);
        }

        #[test]
        fn arbitrary_text_never_panics_and_every_line_is_accounted_for(
            body in prop_oneof![
                any::<String>(),
                "[a-z0-9 ,=\"\\\\#:.\r\n\t-]{0,200}",
                "(m(,t=[a-z\\\\ ]{0,3})? [a-z:]{0,4}=[0-9tfiu\".e-]{0,6}( -?[0-9]{1,20})?[\r\n]{1,2}){0,8}",
            ],
            precision in prop::sample::select(vec![
                Precision::Auto, Precision::Second, Precision::Millisecond,
                Precision::Microsecond, Precision::Nanosecond,
            ]),
            default_time_ns in any::<i64>(),
        ) {
            let parsed = parse(&body, precision, default_time_ns);
            check_accounting(&body, &parsed);
            for line in &parsed.lines {
                prop_assert!(!line.fields.is_empty());
                prop_assert!(line.tags.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
            match parse_bytes(&body, Precision::Auto, 0) {
                Ok(parsed) => {
                    let text = std::str::from_utf8(&body).unwrap_or_else(|_| unreachable!());
                    check_accounting(text, &parsed);
                }
                Err(LpError::NotUtf8 { line, offset }) => {
                    prop_assert!(std::str::from_utf8(&body).is_err());
                    prop_assert!(offset < body.len());
                    prop_assert_eq!(line, 1 + body[..offset].iter().filter(|&&b| b == b'\n').count());
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn explicit_precision_either_scales_exactly_or_reports_overflow(ts in any::<i64>()) {
            for (precision, factor) in [
                (Precision::Second, 1_000_000_000_i128),
                (Precision::Millisecond, 1_000_000),
                (Precision::Microsecond, 1_000),
                (Precision::Nanosecond, 1),
            ] {
                let exact = i128::from(ts) * factor;
                prop_assert_eq!(precision.to_nanos(ts), i64::try_from(exact).ok());
            }
            prop_assert!(Precision::Auto.to_nanos(ts).is_some());
        }
    }
}
