//! Line protocol -> parsed rows: no I/O, no catalog.
//!
//! This module owns the whole of line protocol parsing: a hand-written,
//! byte-level parser (the ingest hot path: names and values borrow from the
//! body, a [`Cow::Owned`] appears only where an escape had to be removed).
//! It accepts what the `influxdb-line-protocol` crate (the InfluxDB IOx / v3
//! parser) accepts, with the few differences listed below; the tests use that
//! crate as a differential oracle.
//!
//! - **grammar**: `measurement(,tag_key=tag_value)* SP+ field_key=field_value
//!   (,field_key=field_value)* (SP+ timestamp SP*)?`. Escapes: `\,` `\ ` `\\`
//!   in a measurement; `\,` `\=` `\ ` `\\` in tag keys, tag values and field
//!   keys; `\"` `\\` in string field values. Any other backslash is kept
//!   with the character after it (`a\b` is the name `a\b`), and that character
//!   is never a delimiter. A name whose unescaped text ends with a backslash
//!   is rejected (Go compatibility). Values: float `-?D+(.D+)?([eE][+-]?D+)?`
//!   (`1.` and `.5` are not floats), integer `-?D+i`, unsigned `D+u`, string
//!   `"..."` (may span lines), bool `t T true True TRUE f F false False
//!   FALSE`; timestamp `-?D+`. Tabs, NULs in a measurement and unescaped
//!   newlines outside strings are errors.
//! - **line numbering**: each row and each error carries the 1-based number of
//!   the physical line where its logical line starts, counting blank and
//!   comment lines. A logical line spans several physical lines only when a
//!   quoted string field value (or a backslash escape) contains a newline,
//!   exactly as Go's `scanLine` (and the crate's `split_lines`) decides.
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
//! - **per-line validation**: duplicate tag keys, duplicate field keys, a tag
//!   key that is also a field's key or name, the reserved name `time`, empty
//!   names, non-finite floats (`1e999` overflows to infinity; InfluxDB rejects
//!   it) and timestamp overflow.
//!
//! A bad line never stops the others: [`parse`] returns every good row and one
//! [`LineError`] per bad line, so the caller can implement `accept_partial`.
//!
//! Deliberate differences from the crate, all of them lines the crate accepts
//! and this parser rejects (odd leniencies that Go's parser rejects too):
//! - an unescaped comma inside a tag key or field key (`m,a,b=1 f=1`,
//!   `m a,b=1`, and `m f=1,,g=2` whose second field the crate names `,g`):
//!   "expected '=' after ... key";
//! - a trailing comma after the field set (`m f=1,`, `m f=1, 5`), which the
//!   crate accepts only after the first field: "missing field key after ','".
//!
//! Kept as the crate has them: a trailing space after the field set is an
//! error unless a timestamp follows, trailing spaces after the timestamp are
//! fine, `=` needs no escape in a measurement or tag value.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
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
    let mut parser = LineParser::new(precision, default_time_ns);
    LogicalLines::new(body).map(move |logical| match parser.parse_line(logical.text) {
        Ok(mut row) => {
            row.line = logical.line;
            Ok(row)
        }
        Err(message) => Err(LineError {
            line: logical.line,
            message,
            text: truncate_on_char_boundary(logical.text, MAX_ERROR_TEXT).to_owned(),
        }),
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
            let bytes = self.rest.as_bytes();
            // A body that ends in blanks has no line left.
            let start = bytes.iter().position(|&b| b != b' ' && b != b'\t')?;
            let line = self.next_line;
            let first = bytes[start];
            let blank = first == b'\n' || (first == b'\r' && matches!(bytes.get(start + 1), None | Some(b'\n')));
            if blank || first == b'#' {
                self.rest = memchr::memchr(b'\n', &bytes[start..]).map_or("", |n| &self.rest[start + n + 1..]);
                self.next_line += 1;
                continue;
            }
            // Only a quote or a backslash can carry a line past its newline;
            // without either the physical line is the logical line.
            let end = match memchr::memchr3(b'\n', b'"', b'\\', &bytes[start..]) {
                None => bytes.len(),
                Some(n) if bytes[start + n] == b'\n' => {
                    self.next_line += 1;
                    start + n
                }
                Some(_) => {
                    let end = start + logical_line_len(&bytes[start..]);
                    self.next_line += 1 + bytes[start..end].iter().filter(|&&b| b == b'\n').count();
                    end
                }
            };
            let text = &self.rest[start..end];
            // `end` is a newline or the end of the body: one byte, ASCII.
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            return Some(LogicalLine { line, text: text.strip_suffix('\r').unwrap_or(text) });
        }
    }
}

/// Length of the logical line at the start of `rest`, up to (not including)
/// the newline that ends it: a port of Go's `scanLine`, so lines are split
/// where InfluxDB splits them. A newline is part of the line when it is
/// escaped, or inside what `scanLine` takes for a quoted field value (a quote
/// after the first space, where more `=` than `,` have been seen).
fn logical_line_len(rest: &[u8]) -> usize {
    let mut quoted = false;
    let mut in_field_set = false;
    let mut equals = 0_usize;
    let mut commas = 0_usize;
    let mut i = 0;
    while let Some(&b) = rest.get(i) {
        match b {
            // The escaped byte is skipped whatever it is; a multi-byte
            // character's continuation bytes are never special.
            b'\\' => {
                i += 2;
                continue;
            }
            b' ' => in_field_set = true,
            b'=' if in_field_set && !quoted => equals += 1,
            b',' if in_field_set && !quoted => commas += 1,
            b'"' if in_field_set && equals > commas => quoted = !quoted,
            b'\n' if !quoted => return i,
            _ => {}
        }
        i += 1;
    }
    rest.len()
}

// Which kinds of token a byte ends (or, for a backslash, escapes in).
const MEASUREMENT: u8 = 1;
const TAG_KEY: u8 = 2;
const TAG_VALUE: u8 = 4;
const FIELD_KEY: u8 = 8;
const ANY_NAME: u8 = MEASUREMENT | TAG_KEY | TAG_VALUE | FIELD_KEY;

/// Per byte: the token kinds it stops. A comma stops keys too: the crate
/// takes `a,b` for one key, this parser reports the missing `=`.
static STOPS: [u8; 256] = {
    let mut table = [0_u8; 256];
    table[b'\\' as usize] = ANY_NAME;
    table[b' ' as usize] = ANY_NAME;
    table[b'\t' as usize] = ANY_NAME;
    table[b'\n' as usize] = ANY_NAME;
    table[b',' as usize] = ANY_NAME;
    table[b'=' as usize] = TAG_KEY | FIELD_KEY;
    table[0] = MEASUREMENT;
    // Not a delimiter: noted so that only keys with a colon are searched
    // for a family separator.
    table[b':' as usize] = FIELD_KEY;
    table
};

fn token_kind_name(kind: u8) -> &'static str {
    match kind {
        MEASUREMENT => "measurement",
        TAG_KEY => "tag key",
        TAG_VALUE => "tag value",
        _ => "field key",
    }
}

/// The byte at `pos` for an error message.
fn describe_at(text: &str, pos: usize) -> String {
    match text.get(pos..).and_then(|rest| rest.chars().next()) {
        None => "end of line".to_owned(),
        Some(' ') => "a space".to_owned(),
        Some('\t') => "a tab".to_owned(),
        Some('\n') => "a newline".to_owned(),
        Some('\0') => "a NUL".to_owned(),
        Some(c) => format!("{c:?}"),
    }
}

/// `s` as a quoted string for an error message, cut if it is long.
fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    let cut = truncate_on_char_boundary(s, MAX);
    if cut.len() < s.len() { format!("{cut:?}...") } else { format!("{s:?}") }
}

/// Removes the escapes of a measurement (`\,` `\ ` `\\`) or of a tag key, tag
/// value or field key (the same and `\=`); any other backslash is kept.
fn unescape_name(raw: &str, kind: u8) -> Cow<'_, str> {
    unescape(raw, |b| matches!(b, b',' | b' ' | b'\\') || (b == b'=' && kind != MEASUREMENT))
}

/// Removes the escapes of a string field value (`\"` `\\`); any other
/// backslash is kept.
fn unescape_string(raw: &str) -> Cow<'_, str> {
    unescape(raw, |b| matches!(b, b'"' | b'\\'))
}

/// Replaces `\b` by `b` for every byte `b` that `escapable` accepts; any
/// other backslash is kept. Borrows when nothing was unescaped.
fn unescape(raw: &str, escapable: impl Fn(u8) -> bool) -> Cow<'_, str> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        match rest.as_bytes().get(at + 1) {
            Some(&b) if escapable(b) => {
                out.push(char::from(b));
                rest = &rest[at + 2..];
            }
            // Kept; the next character is not a backslash (that one is
            // escapable), so it cannot start another escape.
            _ => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    if out.len() == raw.len() { Cow::Borrowed(raw) } else { Cow::Owned(out) }
}

enum NumberError {
    Syntax,
    Overflow,
}

/// `D+` as a `u64`.
fn parse_digits(digits: &[u8]) -> Result<u64, NumberError> {
    if digits.is_empty() {
        return Err(NumberError::Syntax);
    }
    // 19 digits never overflow a u64.
    if digits.len() <= 19 {
        let mut value: u64 = 0;
        for &b in digits {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return Err(NumberError::Syntax);
            }
            value = value * 10 + u64::from(digit);
        }
        return Ok(value);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(NumberError::Syntax);
        }
        match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit))) {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow { Err(NumberError::Overflow) } else { Ok(value) }
}

/// `-?D+` as an `i64`.
fn parse_signed(token: &[u8]) -> Result<i64, NumberError> {
    match token.split_first() {
        Some((b'-', digits)) => {
            let magnitude = parse_digits(digits)?;
            if magnitude > i64::MIN.unsigned_abs() {
                return Err(NumberError::Overflow);
            }
            // 2^63 wraps to i64::MIN, which is exactly its negation.
            Ok(0_i64.wrapping_sub_unsigned(magnitude))
        }
        _ => i64::try_from(parse_digits(token)?).map_err(|_| NumberError::Overflow),
    }
}

/// Whether `token` is a line protocol float: `-?D+(.D+)?([eE][+-]?D+)?`.
fn is_float_syntax(token: &[u8]) -> bool {
    let digits_from =
        |i: usize| token.get(i..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
    let mut i = usize::from(token.first() == Some(&b'-'));
    let n = digits_from(i);
    if n == 0 {
        return false;
    }
    i += n;
    if token.get(i) == Some(&b'.') {
        let n = digits_from(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits_from(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == token.len()
}

/// Parses a field value that is not a string: a float, integer, unsigned or
/// bool written as one token (up to the next `,` or space).
#[inline(always)]
fn parse_plain_value<'a>(token: &'a str, key: &str) -> Result<FieldValue<'a>, String> {
    let bytes = token.as_bytes();
    let Some((&first, _)) = bytes.split_first() else {
        return Err(format!("missing value for field key {}", quoted(key)));
    };
    let invalid = |what: &str| format!("invalid {what} field value {} for field key {}", quoted(token), quoted(key));
    let out_of_range =
        |what: &str| format!("{what} field value {} for field key {} is out of range", quoted(token), quoted(key));
    match first {
        b'0'..=b'9' | b'-' => match bytes.split_last() {
            Some((b'i', number)) => match parse_signed(number) {
                Ok(v) => Ok(FieldValue::I64(v)),
                Err(NumberError::Syntax) => Err(invalid("integer")),
                Err(NumberError::Overflow) => Err(out_of_range("integer")),
            },
            Some((b'u', number)) => match parse_digits(number) {
                Ok(v) => Ok(FieldValue::U64(v)),
                Err(NumberError::Syntax) => Err(invalid("unsigned integer")),
                Err(NumberError::Overflow) => Err(out_of_range("unsigned integer")),
            },
            _ if is_float_syntax(bytes) => match token.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(FieldValue::F64(v)),
                Ok(_) => {
                    Err(format!("field {}: float value out of range (InfluxDB stores only finite floats)", quoted(key)))
                }
                Err(_) => Err(invalid("float")),
            },
            _ => Err(format!(
                "invalid field value {} for field key {}: expected a float (1.5), an integer (12i) or an unsigned integer (12u)",
                quoted(token),
                quoted(key)
            )),
        },
        _ => match token {
            "t" | "T" | "true" | "True" | "TRUE" => Ok(FieldValue::Bool(true)),
            "f" | "F" | "false" | "False" | "FALSE" => Ok(FieldValue::Bool(false)),
            _ => Err(format!(
                "invalid field value {} for field key {}: expected a number, a \"quoted string\" or a boolean (t, true, f, false...)",
                quoted(token),
                quoted(key)
            )),
        },
    }
}

/// Byte offset of the first `::` in `key`.
fn family_separator_at(key: &str) -> Option<usize> {
    // Keys are short: a plain loop beats setting up a vectorized search.
    let bytes = key.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == b':' && bytes[i - 1] == b':').map(|i| i - 1)
}

/// Splits `family::name` at the first `::`; the family is `None` without one.
fn split_family(key: Cow<'_, str>) -> (Option<Cow<'_, str>>, Cow<'_, str>) {
    let Some(at) = family_separator_at(&key) else {
        return (None, key);
    };
    let name_at = at + FAMILY_SEPARATOR.len();
    match key {
        Cow::Borrowed(s) => (Some(Cow::Borrowed(&s[..at])), Cow::Borrowed(&s[name_at..])),
        Cow::Owned(mut family) => {
            // Reuses the unescaped key's buffer for the family.
            let name = family.split_off(name_at);
            family.truncate(at);
            (Some(Cow::Owned(family)), Cow::Owned(name))
        }
    }
}

/// A one-word Bloom filter over key fingerprints: most keys are ruled out
/// as tag keys, or as duplicates of an earlier field key, without a string
/// comparison.
#[derive(Debug, Clone, Copy, Default)]
struct KeyFilter(u64);

impl KeyFilter {
    fn bit(fingerprint: u64) -> u64 {
        1 << (fingerprint >> 58)
    }

    fn insert(&mut self, fingerprint: u64) {
        self.0 |= Self::bit(fingerprint);
    }

    fn may_contain(self, fingerprint: u64) -> bool {
        self.0 & Self::bit(fingerprint) != 0
    }
}

/// Up to this many fields, duplicates are found by comparing every pair;
/// wider lines sort field indices instead.
const PAIRWISE_DUPLICATE_LIMIT: usize = 16;

/// A cheap summary of a key: equal keys have equal fingerprints, and
/// different keys seldom do (it hashes the length and the last 8 bytes).
fn fingerprint(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let n = bytes.len();
    let tail = match bytes.get(n.wrapping_sub(8)..) {
        Some(last8) if n >= 8 => {
            let mut word = [0_u8; 8];
            word.copy_from_slice(last8);
            u64::from_le_bytes(word)
        }
        _ => bytes.iter().fold(0_u64, |h, &b| h << 8 | u64::from(b)),
    };
    (tail ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Byte order of two keys, deciding on the first byte without a call to
/// `memcmp` when it differs (it usually does between tag keys).
fn cmp_keys(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Parses logical lines one after the other, keeping the scratch space of
/// the duplicate field check and the shape of the last line from line to
/// line.
struct LineParser {
    precision: Precision,
    default_time_ns: i64,
    /// Fingerprints of the current line's field keys and tag keys.
    fingerprints: Vec<u64>,
    tag_fingerprints: Vec<u64>,
    order: Vec<usize>,
    /// Tag and field counts of the last good line, to size the next.
    last_tag_count: usize,
    last_field_count: usize,
}

impl LineParser {
    fn new(precision: Precision, default_time_ns: i64) -> Self {
        Self {
            precision,
            default_time_ns,
            fingerprints: Vec::new(),
            tag_fingerprints: Vec::new(),
            order: Vec::new(),
            last_tag_count: 0,
            last_field_count: 1,
        }
    }

    /// Parses and validates one logical line; the error is the message for
    /// its [`LineError`].
    fn parse_line<'a>(&mut self, text: &'a str) -> Result<ParsedLine<'a>, String> {
        let bytes = text.as_bytes();

        let (mut pos, escaped, _) = scan(bytes, 0, MEASUREMENT);
        let measurement = name(text, 0, pos, escaped, MEASUREMENT)?;
        if measurement.is_empty() {
            return Err(format!("missing measurement (found {})", describe_at(text, pos)));
        }

        // Sized like the previous line: bodies repeat a few shapes, and a
        // miss costs one regrowth or a few unused slots.
        let mut tags = Vec::with_capacity(self.last_tag_count);
        let mut tag_filter = KeyFilter::default();
        self.tag_fingerprints.clear();
        while bytes.get(pos) == Some(&b',') {
            let key_at = pos + 1;
            let (after_key, escaped, _) = scan(bytes, key_at, TAG_KEY);
            let key = name(text, key_at, after_key, escaped, TAG_KEY)?;
            if key.is_empty() {
                return Err(format!("missing tag key after ',' (found {})", describe_at(text, after_key)));
            }
            if bytes.get(after_key) != Some(&b'=') {
                return Err(format!(
                    "expected '=' after tag key {}, found {}",
                    quoted(&key),
                    describe_at(text, after_key)
                ));
            }
            let value_at = after_key + 1;
            let (after_value, escaped, _) = scan(bytes, value_at, TAG_VALUE);
            let value = name(text, value_at, after_value, escaped, TAG_VALUE)?;
            if value.is_empty() {
                return Err(format!(
                    "missing value for tag key {} (found {})",
                    quoted(&key),
                    describe_at(text, after_value)
                ));
            }
            if key == TIME_COLUMN {
                return Err(format!("tag key {TIME_COLUMN:?} is reserved for the timestamp"));
            }
            let print = fingerprint(&key);
            tag_filter.insert(print);
            self.tag_fingerprints.push(print);
            tags.push((key, value));
            pos = after_value;
        }
        match bytes.get(pos) {
            Some(b' ') => {}
            None => return Err("missing field set".to_owned()),
            Some(_) => {
                return Err(format!("expected a space before the field set, found {}", describe_at(text, pos)));
            }
        }
        while bytes.get(pos) == Some(&b' ') {
            pos += 1;
        }
        if pos == bytes.len() {
            return Err("missing field set".to_owned());
        }

        if !tags.is_sorted_by(|a, b| cmp_keys(&a.0, &b.0).is_le()) {
            tags.sort_unstable_by(|a, b| cmp_keys(&a.0, &b.0));
        }
        if let Some(pair) = tags.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(format!("duplicate tag key {}", quoted(&pair[0].0)));
        }
        // The filter rules out most keys; comparing fingerprints rules out
        // nearly all the rest before a string comparison. With many tags
        // the filter is full and the fingerprint scan would cost a pass
        // over the tags per field: the binary search alone is used.
        let tag_prints = &self.tag_fingerprints;
        let few_tags = tag_prints.len() <= PAIRWISE_DUPLICATE_LIMIT;
        let is_tag_key = |key: &str, print: u64| {
            tag_filter.may_contain(print)
                && (!few_tags || tag_prints.contains(&print))
                && tags.binary_search_by(|(t, _)| cmp_keys(t, key)).is_ok()
        };

        let mut fields = Vec::with_capacity(self.last_field_count);
        self.fingerprints.clear();
        let mut has_timestamp = false;
        loop {
            let (after_key, escaped, colon) = scan(bytes, pos, FIELD_KEY);
            let key = name(text, pos, after_key, escaped, FIELD_KEY)?;
            if key.is_empty() {
                return Err(if fields.is_empty() {
                    format!("missing field key (found {})", describe_at(text, after_key))
                } else {
                    format!("missing field key after ',' (found {})", describe_at(text, after_key))
                });
            }
            if bytes.get(after_key) != Some(&b'=') {
                return Err(format!(
                    "expected '=' after field key {}, found {}",
                    quoted(&key),
                    describe_at(text, after_key)
                ));
            }
            let value_at = after_key + 1;
            let (value, after_value) = if bytes.get(value_at) == Some(&b'"') {
                let (value, after) = scan_string(text, value_at + 1, &key)?;
                match bytes.get(after) {
                    None | Some(b',' | b' ') => {}
                    Some(_) => {
                        return Err(format!(
                            "expected ',' or a space after the string value of field key {}, found {}",
                            quoted(&key),
                            describe_at(text, after)
                        ));
                    }
                }
                (FieldValue::Str(value), after)
            } else {
                let end = find_comma_or_space(bytes, value_at);
                (parse_plain_value(&text[value_at..end], &key)?, end)
            };
            let print = fingerprint(&key);
            if is_tag_key(&key, print) {
                return Err(format!("{} is both a tag key and a field key", quoted(&key)));
            }
            self.fingerprints.push(print);
            let (family, name) = if colon { split_family(key) } else { (None, key) };
            if family.is_some() || name == TIME_COLUMN {
                check_field_name(family.as_deref(), &name, &|name: &str| is_tag_key(name, fingerprint(name)))?;
            }
            fields.push(ParsedField { family, name, value });
            pos = after_value;
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(_) => {
                    has_timestamp = true;
                    break;
                }
                None => break,
            }
        }
        self.check_duplicate_fields(&fields)?;
        self.last_tag_count = tags.len();
        self.last_field_count = fields.len();

        let time_ns = if has_timestamp { self.parse_timestamp(text, pos)? } else { self.default_time_ns };

        Ok(ParsedLine { line: 0, measurement, tags, fields, time_ns })
    }

    /// Parses `SP+ timestamp SP*` from `pos` (a space) to the end of the line.
    fn parse_timestamp(&self, text: &str, mut pos: usize) -> Result<i64, String> {
        let bytes = text.as_bytes();
        while bytes.get(pos) == Some(&b' ') {
            pos += 1;
        }
        if pos == bytes.len() {
            return Err("trailing space after the field set (expected a timestamp or end of line)".to_owned());
        }
        let end = bytes[pos..].iter().position(|&b| b == b' ').map_or(bytes.len(), |n| pos + n);
        let token = &text[pos..end];
        let ts = match parse_signed(token.as_bytes()) {
            Ok(ts) => ts,
            Err(NumberError::Syntax) => {
                return Err(format!("invalid timestamp {}: expected an integer", quoted(token)));
            }
            Err(NumberError::Overflow) => {
                return Err(format!("timestamp {} does not fit in a signed 64-bit integer", quoted(token)));
            }
        };
        if let Some(extra) = bytes[end..].iter().position(|&b| b != b' ') {
            return Err(format!("unexpected {} after the timestamp", quoted(&text[end + extra..])));
        }
        self.precision.to_nanos(ts).ok_or_else(|| {
            format!("timestamp {ts} at precision {} is out of range for i64 nanoseconds", self.precision)
        })
    }

    /// Duplicates are judged on the key as written (after unescaping), so
    /// `a::x` and `b::x` are two different fields; `(family, name)` is the
    /// key, split.
    fn check_duplicate_fields(&mut self, fields: &[ParsedField<'_>]) -> Result<(), String> {
        let key = |i: usize| (fields[i].family.as_deref(), fields[i].name.as_ref());
        let prints = &self.fingerprints;
        let duplicate = if fields.len() <= PAIRWISE_DUPLICATE_LIMIT {
            let mut seen = KeyFilter::default();
            (0..fields.len()).find(|&i| {
                let duplicate = seen.may_contain(prints[i])
                    && (0..i).any(|earlier| prints[earlier] == prints[i] && key(earlier) == key(i));
                seen.insert(prints[i]);
                duplicate
            })
        } else {
            self.order.clear();
            self.order.extend(0..fields.len());
            self.order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
            self.order.windows(2).find(|pair| key(pair[0]) == key(pair[1])).map(|pair| pair[1])
        };
        match duplicate {
            Some(i) => {
                let full = match &fields[i].family {
                    Some(family) => format!("{family}::{}", fields[i].name),
                    None => fields[i].name.to_string(),
                };
                Err(format!("duplicate field key {}", quoted(&full)))
            }
            None => Ok(()),
        }
    }
}

/// The checks on a field key that has a column family or is named `time`.
#[cold]
fn check_field_name(family: Option<&str>, name: &str, is_tag_key: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let key_error = |what: String| match family {
        Some(family) => format!("field key \"{family}::{name}\": {what}"),
        None => format!("field key {name:?}: {what}"),
    };
    if family == Some("") {
        return Err(key_error("empty column family name before \"::\"".to_owned()));
    }
    if name.is_empty() {
        return Err(key_error("empty field name after \"::\"".to_owned()));
    }
    if name == TIME_COLUMN {
        return Err(key_error(format!("field name {TIME_COLUMN:?} is reserved for the timestamp")));
    }
    if family.is_some() && is_tag_key(name) {
        return Err(key_error(format!("field name {name:?} is also a tag key")));
    }
    Ok(())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `i` as a little-endian word, if there are eight.
#[inline(always)]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    match bytes.get(i..i.wrapping_add(8)) {
        Some(&[a, b, c, d, e, f, g, h]) => Some(u64::from_le_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

/// High bit set in every byte of `word` equal to `byte`. Bytes above the
/// lowest match may be flagged falsely; the lowest flag is always right.
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// High bit set in every byte of `word` below `bound` (at most 128), with
/// the same caveat as [`bytes_equal`].
#[inline(always)]
fn bytes_below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS
}

/// Scans a measurement, tag key, tag value or field key (`kind`) starting at
/// `start`: returns the offset of the byte that ends it, whether it has a
/// backslash and (field keys only) whether it has a colon.
///
/// Eight bytes are tested at a time for anything that may matter (control
/// bytes and space, `,` `\`, and `=` `:` in keys); only those bytes are
/// looked up in [`STOPS`].
#[inline(always)]
fn scan(bytes: &[u8], start: usize, kind: u8) -> (usize, bool, bool) {
    let mut i = start;
    let mut escaped = false;
    let mut colon = false;
    loop {
        while let Some(word) = word_at(bytes, i) {
            let mut flags = bytes_below(word, b' ' + 1) | bytes_equal(word, b',') | bytes_equal(word, b'\\');
            if kind & (TAG_KEY | FIELD_KEY) != 0 {
                flags |= bytes_equal(word, b'=');
            }
            if kind == FIELD_KEY {
                flags |= bytes_equal(word, b':');
            }
            if flags != 0 {
                i += (flags.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        let Some(&b) = bytes.get(i) else { break };
        if STOPS[usize::from(b)] & kind == 0 {
            i += 1;
        } else if b == b'\\' {
            // Whatever follows a backslash is part of the name.
            escaped = true;
            i += 2;
        } else if b == b':' {
            colon = true;
            i += 1;
        } else {
            break;
        }
    }
    (i.min(bytes.len()), escaped, colon)
}

/// Offset of the first `,` or space at or after `start`, or the length.
#[inline(always)]
fn find_comma_or_space(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(word) = word_at(bytes, i) {
        let flags = bytes_equal(word, b',') | bytes_equal(word, b' ');
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes.get(i..).and_then(|rest| rest.iter().position(|&b| b == b',' || b == b' ')).map_or(bytes.len(), |n| i + n)
}

/// The name `scan` found in `text[start..end]`, unescaped.
#[inline(always)]
fn name(text: &str, start: usize, end: usize, escaped: bool, kind: u8) -> Result<Cow<'_, str>, String> {
    // `start` and `end` are at ASCII bytes or the ends of `text`.
    let raw = &text[start..end];
    if escaped { unescape_checked(raw, text.as_bytes().get(end).copied(), kind) } else { Ok(Cow::Borrowed(raw)) }
}

#[cold]
fn unescape_checked(raw: &str, next: Option<u8>, kind: u8) -> Result<Cow<'_, str>, String> {
    let name = unescape_name(raw, kind);
    // A key not followed by '=' is an error of its own, reported by the
    // caller: "expected '='" says more than the backslash.
    let is_key = kind & (TAG_KEY | FIELD_KEY) != 0;
    if name.ends_with('\\') && (!is_key || next == Some(b'=')) {
        return Err(format!("{} {} may not end with a backslash", token_kind_name(kind), quoted(raw)));
    }
    Ok(name)
}

/// Scans a string field value whose opening quote is just before `start`;
/// returns it unescaped and the offset just past the closing quote.
fn scan_string<'a>(text: &'a str, start: usize, key: &str) -> Result<(Cow<'a, str>, usize), String> {
    let bytes = text.as_bytes();
    let mut i = start;
    let mut escaped = false;
    loop {
        let Some(at) = bytes.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)).map(|n| i + n) else {
            return Err(format!("unterminated string field value for field key {}", quoted(key)));
        };
        if bytes[at] == b'"' {
            let raw = &text[start..at];
            let value = if escaped { unescape_string(raw) } else { Cow::Borrowed(raw) };
            return Ok((value, at + 1));
        }
        if matches!(bytes.get(at + 1), Some(b'"' | b'\\')) {
            escaped = true;
            i = at + 2;
        } else {
            i = at + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT_NS: i64 = 1_700_000_000_123_456_789;

    /// The previous, crate-based implementation of this module, kept as the
    /// differential oracle: line splitting must match it exactly, and every
    /// line must get the same row, or an error from both, except for the
    /// differences listed in the module doc (see [`is_documented_difference`]).
    mod reference {
        use super::super::{
            FAMILY_SEPARATOR, FieldValue, ParsedField, ParsedLine, Precision, TIME_COLUMN, family_separator_at,
        };
        use influxdb_line_protocol as ilp;
        use std::borrow::Cow;

        /// `(line number, text)` of every logical line, as the crate splits them.
        pub fn logical_lines(body: &str) -> Vec<(usize, &str)> {
            let mut out = Vec::new();
            let mut rest = body;
            let mut next_line = 1;
            while !rest.is_empty() {
                let line = next_line;
                let (physical, after) = match rest.find('\n') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, ""),
                };
                let content = physical.strip_suffix('\r').unwrap_or(physical);
                let start = content.len() - content.trim_start_matches([' ', '\t']).len();
                let content = &content[start..];
                if content.is_empty() || content.starts_with('#') {
                    rest = after;
                    next_line += 1;
                    continue;
                }
                let from_start = &rest[start..];
                let logical = ilp::split_lines(from_start).next().unwrap_or(from_start);
                rest = from_start.get(logical.len() + 1..).unwrap_or("");
                next_line += 1 + logical.matches('\n').count();
                out.push((line, logical.strip_suffix('\r').unwrap_or(logical)));
            }
            out
        }

        fn cow(s: ilp::EscapedStr<'_>) -> Cow<'_, str> {
            match s {
                ilp::EscapedStr::SingleSlice(s) => Cow::Borrowed(s),
                ilp::EscapedStr::CopiedValue(s) => Cow::Owned(s),
            }
        }

        fn split_family(key: ilp::EscapedStr<'_>) -> (Option<Cow<'_, str>>, Cow<'_, str>) {
            let Some(at) = family_separator_at(&key) else {
                return (None, cow(key));
            };
            let key = key.as_str().to_owned();
            (Some(Cow::Owned(key[..at].to_owned())), Cow::Owned(key[at + FAMILY_SEPARATOR.len()..].to_owned()))
        }

        /// The old `parse_line`, validation included.
        pub fn parse_line(text: &str, precision: Precision, default_time_ns: i64) -> Result<ParsedLine<'_>, String> {
            let ilp::ParsedLine { series, field_set, timestamp } = match ilp::parse_lines(text).next() {
                Some(Ok(parsed)) => parsed,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("no line protocol on this line".to_owned()),
            };
            let measurement = cow(series.measurement);
            if measurement.is_empty() {
                return Err("empty measurement name".to_owned());
            }
            let mut tags = Vec::new();
            for (key, value) in series.tag_set.into_iter().flatten() {
                if key.is_empty() || value.is_empty() || key.as_str() == TIME_COLUMN {
                    return Err("bad tag".to_owned());
                }
                tags.push((cow(key), cow(value)));
            }
            tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if tags.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return Err("duplicate tag key".to_owned());
            }
            let is_tag_key = |key: &str| tags.binary_search_by(|(t, _)| t.as_ref().cmp(key)).is_ok();
            for i in 1..field_set.len() {
                if field_set[..i].iter().any(|(k, _)| *k == field_set[i].0) {
                    return Err("duplicate field key".to_owned());
                }
            }
            let mut fields = Vec::new();
            for (key, value) in field_set {
                if key.is_empty() || is_tag_key(&key) {
                    return Err("bad field key".to_owned());
                }
                let value = match value {
                    ilp::FieldValue::F64(v) if !v.is_finite() => {
                        return Err("float value out of range".to_owned());
                    }
                    ilp::FieldValue::F64(v) => FieldValue::F64(v),
                    ilp::FieldValue::I64(v) => FieldValue::I64(v),
                    ilp::FieldValue::U64(v) => FieldValue::U64(v),
                    ilp::FieldValue::String(v) => FieldValue::Str(cow(v)),
                    ilp::FieldValue::Boolean(v) => FieldValue::Bool(v),
                };
                let (family, name) = split_family(key);
                if family.as_deref() == Some("")
                    || name.is_empty()
                    || name == TIME_COLUMN
                    || (family.is_some() && is_tag_key(&name))
                {
                    return Err("bad field name".to_owned());
                }
                fields.push(ParsedField { family, name, value });
            }
            let time_ns = match timestamp {
                None => default_time_ns,
                Some(ts) => precision.to_nanos(ts).ok_or_else(|| "timestamp out of range".to_owned())?,
            };
            Ok(ParsedLine { line: 0, measurement, tags, fields, time_ns })
        }
    }

    /// A line the crate accepts and this parser rejects on purpose: an
    /// unescaped comma in a tag or field key, or a trailing comma after a
    /// field set of one field (the only place the crate allows one).
    fn is_documented_difference(message: &str, crate_row: &ParsedLine<'_>) -> bool {
        let comma_in_key = crate_row.tags.iter().any(|(k, _)| k.contains(','))
            || crate_row
                .fields
                .iter()
                .any(|f| f.name.contains(',') || f.family.as_deref().is_some_and(|f| f.contains(',')));
        let trailing_comma = crate_row.fields.len() == 1 && message.contains("missing field key after ','");
        (comma_in_key && message.contains("','")) || trailing_comma
    }

    /// Splits `body` and parses every line both ways; panics on a difference
    /// that is not documented. Returns how many lines both accepted.
    fn check_against_reference(body: &str, precision: Precision) -> usize {
        let ours: Vec<(usize, &str)> = LogicalLines::new(body).map(|l| (l.line, l.text)).collect();
        assert_eq!(ours, reference::logical_lines(body), "line split of {body:?}");
        let mut parser = LineParser::new(precision, DEFAULT_NS);
        let mut both_accept = 0;
        for (_, text) in ours {
            match (parser.parse_line(text), reference::parse_line(text, precision, DEFAULT_NS)) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want, "{text:?}");
                    both_accept += 1;
                }
                (Err(_), Err(_)) => {}
                (Ok(got), Err(e)) => {
                    panic!("{text:?}: accepted as {got:?}, the crate rejects it: {e}")
                }
                (Err(e), Ok(want)) => assert!(
                    is_documented_difference(&e, &want),
                    "{text:?}: rejected ({e}), the crate accepts it as {want:?}"
                ),
            }
        }
        both_accept
    }

    #[test]
    fn tricky_lines_match_the_crate() {
        let lines = [
            "m f=1",
            "m f=1 ",
            "m f=1 1 ",
            "m f=1  1",
            "m  f=1",
            "m,t=a  f=1",
            "m f=1,",
            "m f=1,g=2,",
            "m f=1,,g=2",
            "m f=1, 1",
            "m,a,b=1 f=1",
            "m a,b=1",
            "m ,f=1",
            "m,,a=1 f=1",
            "m,a=1, f=1",
            "m,a=b=c f=1",
            "a=b f=1",
            r"a\b f=1",
            r"a\ b f=1",
            r"a\\ f=1",
            r"a\\b f=1",
            r"a\=b f=1",
            r"m,a\=b=c\,d f\ g=1",
            r"m,a=b\\ f=1",
            r"m,a=b\ f=1",
            "m\\\tx f=1",
            "m\\\nx f=1",
            "m f=\"a\nb\"",
            "m f=\"a\\\"b\"",
            "m f=\"a\\\\\"",
            "m f=\"a\\b\"",
            "m f=\"\"",
            "m f=\"\"\"",
            "m f=\"a\" 1",
            "m f=\"a\"x",
            "m f=1.",
            "m f=.5",
            "m f=1.5",
            "m f=-1.5e10",
            "m f=1e5",
            "m f=1E+5",
            "m f=1.e5",
            "m f=1e",
            "m f=-",
            "m f=--1",
            "m f=+1",
            "m f=1i",
            "m f=-1i",
            "m f=1u",
            "m f=-1u",
            "m f=1.5i",
            "m f=1e5i",
            "m f=99999999999999999999i",
            "m f=99999999999999999999u",
            "m f=99999999999999999999",
            "m f=t",
            "m f=T",
            "m f=true",
            "m f=True",
            "m f=TRUE",
            "m f=tRUE",
            "m f=tru",
            "m f=f",
            "m f=false",
            "m f=False",
            "m f=FALSE",
            "m f=fa",
            "m f=1 -1",
            "m f=1 +1",
            "m f=1 1.5",
            "m f=1 1x",
            "m f=1 1 2",
            "m f=1\t1",
            "m\tf=1",
            "m f=1\t",
            "m\0 f=1",
            "\0m f=1",
            "m,t=\0 \0=1",
            "m f\0=1",
            "m f=1\r",
            "m\r f=1",
            "m \"f\"=1",
            "m f==1",
            "m =1",
            "m f=",
            "m f",
            "m",
            "m,",
            "m, f=1",
            ",m f=1",
            "=m f=1",
            "m,t=1",
            "m,t= f=1",
            "m,=a f=1",
            "m,t=a\\",
            "m f\\=1",
            "m f=1\\",
            "m,t=a f=1 1\\",
            "m a::b=1",
            "m ::b=1",
            "m a::=1",
            "m,a=1 a=1",
            "m,a=1 c::a=1",
            "m f=1,f=2",
            "m,time=1 f=1",
            "m time=1",
            "m f=1e999",
            "m f=-0",
            "m é=1",
            "é,ü=ö ß=\"日\" 1",
        ];
        for line in lines {
            for body in [line.to_owned(), format!("{line}\nm ok=1\n")] {
                check_against_reference(&body, Precision::Nanosecond);
            }
        }
    }

    /// Bytes that matter to line protocol, and some that do not.
    const MUTATION_ALPHABET: &[char] = &[
        ',', ' ', '=', '"', '\\', '\n', '#', '\t', '\r', '\0', '.', '-', '+', ':', 'a', 'e', 'E', 'i', 'u', 't', 'f',
        'T', '0', '1', '9', 'é',
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        Insert(prop::sample::Index, char),
        Delete(prop::sample::Index),
        Replace(prop::sample::Index, char),
    }

    fn gen_mutation() -> impl Strategy<Value = Mutation> {
        let c = || prop::sample::select(MUTATION_ALPHABET);
        prop_oneof![
            (any::<prop::sample::Index>(), c()).prop_map(|(i, c)| Mutation::Insert(i, c)),
            any::<prop::sample::Index>().prop_map(Mutation::Delete),
            (any::<prop::sample::Index>(), c()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        ]
    }

    fn mutate(line: &str, mutations: &[Mutation]) -> String {
        let mut chars: Vec<char> = line.chars().collect();
        for m in mutations {
            match *m {
                Mutation::Insert(ref at, c) => {
                    let at = at.index(chars.len() + 1);
                    chars.insert(at, c);
                }
                Mutation::Delete(ref at) if !chars.is_empty() => {
                    let at = at.index(chars.len());
                    chars.remove(at);
                }
                Mutation::Replace(ref at, c) if !chars.is_empty() => {
                    let at = at.index(chars.len());
                    chars[at] = c;
                }
                _ => {}
            }
        }
        String::from_iter(chars)
    }

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
        // Beyond i64 itself.
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
    fn syntax_errors_say_what_is_wrong_and_where() {
        assert_rejected("m", "missing field set");
        assert_rejected("m ", "missing field set");
        assert_rejected("m,t=a", "missing field set");
        assert_rejected("m,t=a, f=1", "missing tag key after ','");
        assert_rejected("m f=", "missing value for field key \"f\"");
        assert_rejected("m f=\"open", "unterminated string field value for field key \"f\"");
        assert_rejected("m f=\"a\"x", "after the string value of field key \"f\"");
        assert_rejected("m f=1 1 extra", "unexpected \"extra\" after the timestamp");
        assert_rejected("m f=1 abc", "invalid timestamp \"abc\"");
        assert_rejected("m f=1 ", "trailing space after the field set");
        assert_rejected(
            "m f=9223372036854775808i",
            "integer field value \"9223372036854775808i\" for field key \"f\" is out of range",
        );
        assert_rejected("m f=12x", "invalid field value \"12x\" for field key \"f\"");
        assert_rejected("m f=1.5i", "invalid integer field value \"1.5i\"");
        assert_rejected("m f=-1u", "invalid unsigned integer field value \"-1u\"");
        assert_rejected("m f=18446744073709551616u", "is out of range");
        assert_rejected("m f=1 1.5", "invalid timestamp \"1.5\"");
        assert_rejected("m f=1 9223372036854775808", "does not fit");
        assert_rejected("m,t= f=1", "missing value for tag key \"t\"");
        assert_rejected("m, f=1", "missing tag key after ','");
        assert_rejected("m,t f=1", "expected '=' after tag key \"t\", found a space");
        assert_rejected(r"m\ f=1", "missing field set");
        assert_rejected(r"m,t=a\", "tag value \"a\\\\\" may not end with a backslash");
        assert_rejected(r"m\\ f=1", "measurement \"m\\\\\\\\\" may not end with a backslash");
        assert_rejected("m =1", "missing field key (found '=')");
        assert_rejected(",t=a f=1", "missing measurement (found ',')");
        assert_rejected("m usage 1", "expected '=' after field key \"usage\", found a space");
        assert_rejected("m\tf=1", "expected a space before the field set, found a tab");
        assert_rejected("m\0 f=1", "found a NUL");
        assert_rejected("m f=1\t", "invalid field value");
        assert_rejected("m f=tru", "expected a number, a \"quoted string\" or a boolean");
        assert_rejected("m f=1.", "invalid field value \"1.\"");
        assert_rejected("m f=.5", "invalid field value \".5\"");
        assert_rejected("m f=1e", "invalid field value \"1e\"");
    }

    #[test]
    fn documented_differences_from_the_crate_are_errors() {
        assert_rejected("m f=1,", "missing field key after ','");
        assert_rejected("m f=1, 5", "missing field key after ','");
        assert_rejected("m f=1,,g=2", "missing field key after ','");
        assert_rejected("m a,b=1", "expected '=' after field key \"a\", found ','");
        assert_rejected("m ,f=1", "missing field key (found ',')");
        assert_rejected("m,a,b=1 f=1", "expected '=' after tag key \"a\", found ','");
        assert_rejected("m,a=1,,b=2 f=1", "missing tag key after ','");
        // The crate accepts all of them.
        for line in ["m f=1,", "m f=1, 5", "m f=1,,g=2", "m a,b=1", "m ,f=1", "m,a,b=1 f=1"] {
            assert!(reference::parse_line(line, Precision::Nanosecond, 0).is_ok(), "{line}");
        }
    }

    #[test]
    fn long_tokens_are_cut_in_messages() {
        let line = format!("m f={}x", "1".repeat(500));
        let e = bad_line(&line);
        assert!(e.message.len() < 300, "{}", e.message);
        assert!(e.message.contains("..."));
    }

    #[test]
    fn values_at_the_edges_of_their_types() {
        let line = ok_line(
            "m a=-9223372036854775808i,b=9223372036854775807i,c=0u,d=-0i,e=007i,f=-0.0,g=1E+2,h=1.5e-3,i=00.50 -9223372036854775808",
        );
        let values: Vec<_> = line.fields.iter().map(|f| f.value.clone()).collect();
        assert_eq!(
            values,
            [
                FieldValue::I64(i64::MIN),
                FieldValue::I64(i64::MAX),
                FieldValue::U64(0),
                FieldValue::I64(0),
                FieldValue::I64(7),
                FieldValue::F64(-0.0),
                FieldValue::F64(100.0),
                FieldValue::F64(0.0015),
                FieldValue::F64(0.5),
            ]
        );
        assert_eq!(line.time_ns, i64::MIN);
        assert_rejected("m f=-9223372036854775809i", "out of range");
        assert_rejected("m f=1 -9223372036854775809", "does not fit");
    }

    #[test]
    fn spaces_around_the_timestamp() {
        assert_eq!(ok_line("m,t=a   f=1   5   ").time_ns, 5);
        assert_eq!(ok_line("m f=\"a b\" 5").time_ns, 5);
    }

    #[test]
    fn escapes_in_strings_and_unknown_escapes() {
        let line = ok_line(r#"m a="x\y",b="\\",c="\"",d="",e="a\\\"b" 1"#);
        let values: Vec<_> = line.fields.iter().map(|f| f.value.clone()).collect();
        let s = |v: &str| FieldValue::Str(Cow::Owned(v.to_owned()));
        assert_eq!(values, [s(r"x\y"), s("\\"), s("\""), s(""), s("a\\\"b")]);
        assert!(matches!(&line.fields[0].value, FieldValue::Str(Cow::Borrowed(_))));
        // An escaped tab or newline is part of the name, not a delimiter.
        assert_eq!(ok_line("a\\\tb f=1").measurement, "a\\\tb");
        assert_eq!(ok_line(r"m\=x f=1").measurement, r"m\=x");
        assert_eq!(ok_line(r"m,k=a\=b f=1").tags[0].1, "a=b");
        assert_eq!(ok_line("m,k=a=b f=1").tags[0].1, "a=b");
    }

    #[test]
    fn non_finite_floats_are_rejected() {
        assert_rejected("m f=1e999", "float value out of range");
        assert_rejected("m f=-1e999 1", "float value out of range");
        let huge = format!("m f={} 1", "9".repeat(400));
        assert_rejected(&huge, "float value out of range");
        // Line protocol has no NaN or infinity literals.
        assert_rejected("m f=NaN", "invalid field value \"NaN\"");
        assert_rejected("m f=inf", "invalid field value \"inf\"");
        assert_rejected("m f=+Inf", "invalid field value \"+Inf\"");
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
        // fields, free of a trailing backslash (which is rejected even
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
            prop_assert_eq!(check_against_reference(&body, Precision::Nanosecond), lines.len());
        }

        #[test]
        fn mutated_lines_match_the_crate(
            lines in prop::collection::vec(
                (gen_line(), prop::collection::vec(gen_mutation(), 1..4)),
                1..4,
            ),
            precision in prop::sample::select(vec![
                Precision::Auto, Precision::Second, Precision::Nanosecond,
            ]),
        ) {
            let body = lines
                .iter()
                .map(|(line, mutations)| mutate(&line.to_lp(), mutations))
                .collect::<Vec<_>>()
                .join("\n");
            check_against_reference(&body, precision);
            check_accounting(&body, &parse(&body, precision, DEFAULT_NS));
        }

        #[test]
        fn mutated_simple_lines_match_the_crate(
            lines in prop::collection::vec(
                ("[a-z]{1,3}(,[a-z]{1,2}=[a-z0-9]{1,2}){0,2} [a-z]{1,2}=(-?[0-9]{1,3}(\\.[0-9]{1,2})?(e-?[0-9])?[iu]?|t|false|\"[a-z ]{0,3}\")(,[a-z]{1,2}=[0-9]{1,2}i?){0,2}( -?[0-9]{1,12})?",
                 prop::collection::vec(gen_mutation(), 0..3)),
                1..6,
            ),
        ) {
            let body = lines
                .iter()
                .map(|(line, mutations)| mutate(line, mutations))
                .collect::<Vec<_>>()
                .join("\n");
            check_against_reference(&body, Precision::Nanosecond);
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
            check_against_reference(&body, precision);
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
