//! Cell encoding shared by the JSON and CSV encoders, and the row encoders
//! of `format=json|jsonl|csv|parquet`.

use super::*;

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeText {
    /// RFC 3339 in UTC, with as many fraction digits as needed (0, 3, 6, 9).
    Rfc3339,
    /// Integer units since the epoch: ns per unit.
    Epoch(i64),
}

/// One column of a batch, typed once for the whole batch.
pub(super) enum Column {
    Null,
    Str(ArrayRef),
    Int(ArrayRef),
    UInt(ArrayRef),
    Float(ArrayRef),
    Bool(ArrayRef),
    /// ns since the epoch, UTC.
    Time(ArrayRef),
    /// Anything else, as arrow displays it.
    Text(Vec<Option<String>>),
}

impl Column {
    pub(super) fn of(array: &ArrayRef) -> Column {
        let cast = |to: &DataType| arrow::compute::cast(array, to).ok();
        let typed = match array.data_type() {
            DataType::Null => Some(Column::Null),
            DataType::Utf8 => Some(Column::Str(array.clone())),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                cast(&DataType::Utf8).map(Column::Str)
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                cast(&DataType::Int64).map(Column::Int)
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                cast(&DataType::UInt64).map(Column::UInt)
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => cast(&DataType::Float64).map(Column::Float),
            DataType::Boolean => Some(Column::Bool(array.clone())),
            DataType::Timestamp(_, _) => cast(&DataType::Timestamp(TimeUnit::Nanosecond, None)).map(Column::Time),
            _ => None,
        };
        typed.unwrap_or_else(|| Column::Text(display(array)))
    }

    /// Writes row `i` as a JSON value.
    pub(super) fn json(&self, i: usize, time: TimeText, out: &mut Vec<u8>) {
        if self.is_null(i) {
            out.extend_from_slice(b"null");
            return;
        }
        match self {
            Column::Null => out.extend_from_slice(b"null"),
            Column::Str(a) => json_string(a.as_string::<i32>().value(i), out),
            Column::Int(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.as_primitive::<Int64Type>().value(i)).as_bytes())
            }
            Column::UInt(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.as_primitive::<UInt64Type>().value(i)).as_bytes())
            }
            Column::Float(a) => json_float(a.as_primitive::<Float64Type>().value(i), out),
            Column::Bool(a) => out.extend_from_slice(if a.as_boolean().value(i) { b"true" } else { b"false" }),
            Column::Time(a) => match time_text(a.as_primitive::<TimestampNanosecondType>().value(i), time) {
                TimeValue::Text(t) => json_string(&t, out),
                TimeValue::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            },
            Column::Text(v) => match &v[i] {
                Some(t) => json_string(t, out),
                None => out.extend_from_slice(b"null"),
            },
        }
    }

    /// Writes row `i` as a CSV field (empty for null).
    pub(super) fn csv(&self, i: usize, time: TimeText, out: &mut Vec<u8>) {
        if self.is_null(i) {
            return;
        }
        match self {
            Column::Null => {}
            Column::Str(a) => csv_string(a.as_string::<i32>().value(i), out),
            Column::Text(v) => {
                if let Some(t) = &v[i] {
                    csv_string(t, out)
                }
            }
            Column::Time(a) => match time_text(a.as_primitive::<TimestampNanosecondType>().value(i), time) {
                TimeValue::Text(t) => out.extend_from_slice(t.as_bytes()),
                TimeValue::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            },
            Column::Float(a) => {
                let f = a.as_primitive::<Float64Type>().value(i);
                if f.is_finite() {
                    json_float(f, out);
                } else {
                    out.extend_from_slice(f.to_string().as_bytes());
                }
            }
            other => other.json(i, time, out),
        }
    }

    pub(super) fn is_null(&self, i: usize) -> bool {
        match self {
            Column::Null => true,
            Column::Str(a)
            | Column::Int(a)
            | Column::UInt(a)
            | Column::Float(a)
            | Column::Bool(a)
            | Column::Time(a) => a.is_null(i),
            Column::Text(v) => v[i].is_none(),
        }
    }
}

pub(super) enum TimeValue {
    Text(String),
    Int(i64),
}

pub(super) fn time_text(ns: i64, time: TimeText) -> TimeValue {
    match time {
        TimeText::Rfc3339 => TimeValue::Text(
            chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        TimeText::Epoch(unit) => TimeValue::Int(ns.div_euclid(unit)),
    }
}

pub(super) fn display(array: &ArrayRef) -> Vec<Option<String>> {
    let options = arrow::util::display::FormatOptions::default();
    match arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => (0..array.len()).map(|i| (!array.is_null(i)).then(|| f.value(i).to_string())).collect(),
        Err(_) => (0..array.len()).map(|i| (!array.is_null(i)).then(|| format!("{array:?}[{i}]"))).collect(),
    }
}

pub(super) fn json_string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A float as JSON: shortest round-trip text; NaN and infinities, which JSON
/// cannot hold, are null (serde_json's rule).
pub(super) fn json_float(f: f64, out: &mut Vec<u8>) {
    // Writing a number to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &f);
}

pub(super) fn csv_string(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) || s.starts_with(' ') || s.ends_with(' ') {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

pub(super) fn columns_of(batch: &RecordBatch) -> Vec<Column> {
    batch.columns().iter().map(Column::of).collect()
}

/// `json` (`{"results": [row, ...]}`) and `jsonl` (a row per line).
pub(super) struct JsonRows {
    pub(super) lines: bool,
    pub(super) names: Vec<Vec<u8>>,
    pub(super) first: bool,
    pub(super) buf: Vec<u8>,
}

impl JsonRows {
    pub(super) fn new(lines: bool) -> JsonRows {
        JsonRows { lines, names: Vec::new(), first: true, buf: Vec::new() }
    }
}

impl RowEncoder for JsonRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.names = schema
            .fields()
            .iter()
            .map(|f| {
                let mut key = Vec::new();
                json_string(f.name(), &mut key);
                key.push(b':');
                key
            })
            .collect();
        if !self.lines {
            out.write_all(b"{\"results\":[")?;
        }
        Ok(())
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            self.buf.clear();
            if !self.lines && !self.first {
                self.buf.push(b',');
            }
            self.first = false;
            self.buf.push(b'{');
            let mut any = false;
            for (name, column) in self.names.iter().zip(&columns) {
                // Null values are left out of a row object, as InfluxDB does.
                if column.is_null(row) {
                    continue;
                }
                if any {
                    self.buf.push(b',');
                }
                any = true;
                self.buf.extend_from_slice(name);
                column.json(row, TimeText::Rfc3339, &mut self.buf);
            }
            self.buf.push(b'}');
            if self.lines {
                self.buf.push(b'\n');
            }
            out.write_all(&self.buf)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut ChannelWriter) -> io::Result<()> {
        if !self.lines {
            out.write_all(b"]}")?;
        }
        Ok(())
    }
}

/// CSV with a header line; `prefix` puts v1's `name,tags` columns first.
pub(super) struct CsvRows {
    pub(super) prefix: Option<Vec<u8>>,
    pub(super) time: TimeText,
    pub(super) buf: Vec<u8>,
}

impl CsvRows {
    pub(super) fn new(prefix: Option<Vec<u8>>, time: TimeText) -> CsvRows {
        CsvRows { prefix, time, buf: Vec::new() }
    }
}

impl RowEncoder for CsvRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.buf.clear();
        if self.prefix.is_some() {
            self.buf.extend_from_slice(b"name,tags,");
        }
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            csv_string(f.name(), &mut self.buf);
        }
        self.buf.push(b'\n');
        out.write_all(&self.buf)
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            self.buf.clear();
            if let Some(prefix) = &self.prefix {
                self.buf.extend_from_slice(prefix);
            }
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                column.csv(row, self.time, &mut self.buf);
            }
            self.buf.push(b'\n');
            out.write_all(&self.buf)?;
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut ChannelWriter) -> io::Result<()> {
        Ok(())
    }
}

/// One Parquet file, zstd-compressed, written row group by row group.
pub(super) struct ParquetRows {
    pub(super) writer: Option<parquet::arrow::ArrowWriter<ChannelWriter>>,
}

impl RowEncoder for ParquetRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
            .build();
        let writer =
            parquet::arrow::ArrowWriter::try_new(out.clone(), schema.clone(), Some(props)).map_err(io::Error::other)?;
        self.writer = Some(writer);
        Ok(())
    }

    fn batch(&mut self, _out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(batch).map_err(io::Error::other),
            None => Err(io::Error::other("parquet writer not started")),
        }
    }

    fn end(&mut self, _out: &mut ChannelWriter) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => w.into_inner().map_err(io::Error::other)?.flush(),
            None => Ok(()),
        }
    }
}
