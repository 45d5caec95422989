//! `quipu write`: line protocol uploaded in gzip batches cut at logical-line
//! boundaries, rejected lines mapped back to input lines, a batch split on 413.

use super::*;

pub(super) fn describe(rejected: &[RejectedLine]) -> String {
    match rejected {
        [] => "no line named".to_owned(),
        [one, rest @ ..] => {
            let more = if rest.is_empty() { String::new() } else { format!(" (and {} more)", rest.len()) };
            format!("line {}: {}{more}", one.line, one.error)
        }
    }
}

/// How [`Client::write_lp`] cuts and sends the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatchOptions {
    /// At most this many lines (blank and comment lines not counted) per request.
    pub batch_lines: usize,
    /// At most this many uncompressed bytes per request. Keep it below the
    /// server's body limit (10 MiB by default), which also applies after
    /// decompression. A single line longer than this is an error.
    pub batch_bytes: usize,
    /// Let the server write the good lines of a batch holding bad ones.
    pub accept_partial: bool,
    /// Let the server answer before its WAL is synced.
    pub no_sync: bool,
    /// Send `Content-Encoding: gzip` bodies.
    pub gzip: bool,
}

impl Default for WriteBatchOptions {
    fn default() -> Self {
        Self { batch_lines: 10_000, batch_bytes: 8 << 20, accept_partial: true, no_sync: false, gzip: true }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Lines sent (blank and comment lines not counted), rejected ones included.
    pub lines_sent: u64,
    /// Requests that the server answered with a write outcome.
    pub batches: u64,
    /// Lines the server rejected, in input order, numbered in the input.
    pub rejected: Vec<RejectedLine>,
    /// The server named only some of the lines it rejected: it lists at most
    /// [`SERVER_MAX_REJECTED_LINES`] per request, and only the first when it
    /// rejects every line of a request.
    pub rejected_incomplete: bool,
}

/// One line the server did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based line number in the input (physical lines, blank and comment lines counted).
    pub line: u64,
    /// The line as the server quotes it (it may cut long lines).
    pub text: String,
    pub error: String,
}

/// One logical line (or blank/comment line) in a batch body.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unit {
    /// Offset just past it in the body.
    pub(super) end: usize,
    /// Input line where it starts.
    pub(super) first_line: u64,
    pub(super) is_data: bool,
}

pub(super) struct Upload<'a> {
    pub(super) client: &'a Client,
    pub(super) url: Url,
    pub(super) opts: &'a WriteBatchOptions,
    /// Bytes per batch; lowered when the server answers 413.
    pub(super) byte_budget: usize,
    pub(super) report: WriteReport,
}

impl Upload<'_> {
    /// Sends `body`, whose units are `units`, halving it on 413.
    pub(super) fn send_batch(&mut self, body: &[u8], units: &[Unit]) -> Result<(), ClientError> {
        let Some(first) = units.first() else { return Ok(()) };
        if let Err(e) = std::str::from_utf8(body) {
            let offset = e.valid_up_to();
            let line = first.first_line + body[..offset].iter().filter(|&&b| b == b'\n').count() as u64;
            return Err(ClientError::NotUtf8 { line, offset: offset as u64 });
        }
        let compressed;
        let payload = if self.opts.gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            encoder.write_all(body).map_err(ClientError::Compress)?;
            compressed = encoder.finish().map_err(ClientError::Compress)?;
            &compressed[..]
        } else {
            body
        };
        let (status, text) = self.client.post(&self.url, payload, self.opts.gzip)?;
        let data_lines = units.iter().filter(|u| u.is_data).count() as u64;
        match status {
            200..=299 => {}
            400 => self.rejected(&text, first.first_line, units, data_lines)?,
            401 | 403 => return Err(ClientError::Unauthorized(error_text(&text))),
            413 => {
                if units.len() == 1 {
                    return Err(ClientError::LineTooLarge { line: first.first_line, body: text });
                }
                self.byte_budget = self.byte_budget.min((body.len() / 2).max(1));
                let mid = units.len() / 2;
                let split = units[mid - 1].end;
                self.send_batch(&body[..split], &units[..mid])?;
                let rest: Vec<Unit> = units[mid..].iter().map(|u| Unit { end: u.end - split, ..*u }).collect();
                return self.send_batch(&body[split..], &rest);
            }
            _ => return Err(ClientError::Status { status, body: text }),
        }
        self.report.batches += 1;
        self.report.lines_sent += data_lines;
        Ok(())
    }

    /// Handles a 400: rejected lines (collected, or an error without
    /// `accept_partial`), or a request the server refused as a whole.
    pub(super) fn rejected(
        &mut self,
        text: &str,
        first_line: u64,
        units: &[Unit],
        data_lines: u64,
    ) -> Result<(), ClientError> {
        let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let to_input = |server_line: u64| first_line + server_line.saturating_sub(1);
        let (lines, whole_batch) = match json.get("data") {
            Some(serde_json::Value::Array(items)) => {
                (items.iter().filter_map(|v| rejected_line(v, to_input)).collect::<Vec<_>>(), false)
            }
            Some(item @ serde_json::Value::Object(_)) => (rejected_line(item, to_input).into_iter().collect(), true),
            _ => (Vec::new(), false),
        };
        if lines.is_empty() {
            // Not about lines: bad database name, precision, body...
            return Err(ClientError::Status { status: 400, body: text.to_owned() });
        }
        if !self.opts.accept_partial {
            let last_line = units.last().map_or(first_line, |u| u.first_line);
            return Err(ClientError::BatchRejected { first_line, last_line, rejected: lines });
        }
        if (whole_batch && data_lines > 1) || lines.len() >= SERVER_MAX_REJECTED_LINES {
            self.report.rejected_incomplete = true;
        }
        self.report.rejected.extend(lines);
        Ok(())
    }
}

pub(super) fn rejected_line(v: &serde_json::Value, to_input: impl Fn(u64) -> u64) -> Option<RejectedLine> {
    Some(RejectedLine {
        line: to_input(v.get("line_number")?.as_u64()?),
        text: v.get("original_line").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
        error: v.get("error_message").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
    })
}

/// The `error` string of a JSON error body, or the body itself.
pub(super) fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

impl Client {
    /// Sends `reader`'s line protocol to database `db` in batches of at most
    /// `batch_lines` lines and `batch_bytes` bytes, gzip-compressed when
    /// `opts.gzip`, and calls `progress` with the number of input bytes read
    /// so far after each batch (the last call is the input's total size).
    ///
    /// Batches never split a logical line. A logical line ends at the first
    /// newline that is neither escaped by a backslash nor inside a quoted
    /// string field value, where a `"` opens or closes such a value only
    /// after the line's first space and when more `=` than `,` have been seen
    /// outside quotes since then (Go's `scanLine`, which the server follows).
    /// Blank lines and lines whose first non-blank character is `#` are
    /// sent as they are (they keep the server's line numbers aligned with the
    /// input's) but not counted as lines.
    ///
    /// Rejected lines are collected in the report with input line numbers
    /// when `accept_partial` is true. When it is false, the first batch with
    /// a bad line stops the upload with [`ClientError::BatchRejected`]: that
    /// batch is not written, the batches before it stay written.
    ///
    /// A 413 answer halves the batch and retries each half (and lowers the
    /// byte budget for the rest of the upload); a single line the server
    /// still refuses is [`ClientError::LineTooLarge`].
    pub fn write_lp(
        &self,
        db: &str,
        precision: &str,
        mut reader: impl BufRead,
        opts: &WriteBatchOptions,
        progress: &dyn Fn(u64),
    ) -> Result<WriteReport, ClientError> {
        let mut url = self
            .base
            .join("api/v3/write_lp")
            .map_err(|e| ClientError::InvalidUrl { url: self.base.to_string(), reason: e.to_string() })?;
        url.query_pairs_mut()
            .append_pair("db", db)
            .append_pair("precision", precision)
            .append_pair("accept_partial", if opts.accept_partial { "true" } else { "false" })
            .append_pair("no_sync", if opts.no_sync { "true" } else { "false" });
        let batch_lines = opts.batch_lines.max(1);
        let mut upload =
            Upload { client: self, url, opts, byte_budget: opts.batch_bytes.max(1), report: WriteReport::default() };
        let mut splitter = LineSplitter::new();
        let mut body = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        let mut data_lines = 0_usize;
        loop {
            let start = body.len();
            let Some(unit) = splitter.next_unit(&mut reader, &mut body, opts.batch_bytes.max(1))? else { break };
            let len = body.len() - start;
            let full = start + len > upload.byte_budget || (unit.is_data && data_lines == batch_lines);
            if full && !units.is_empty() {
                if data_lines > 0 {
                    upload.send_batch(&body[..start], &units)?;
                    progress(splitter.bytes_read - len as u64);
                }
                body.drain(..start);
                units.clear();
                data_lines = 0;
            }
            units.push(Unit { end: body.len(), first_line: unit.first_line, is_data: unit.is_data });
            data_lines += usize::from(unit.is_data);
        }
        if data_lines > 0 {
            upload.send_batch(&body, &units)?;
        }
        progress(splitter.bytes_read);
        Ok(upload.report)
    }

    /// One POST, retried on connection failures and 503; returns the status
    /// and body text of the answer.
    pub(super) fn post(&self, url: &Url, body: &[u8], gzip: bool) -> Result<(u16, String), ClientError> {
        let attempt = || -> Result<(u16, String), Attempt> {
            let mut request = self.http.post(url.clone()).header(CONTENT_TYPE, "text/plain; charset=utf-8");
            if gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let http_error = |source: reqwest::Error| {
                let transient = is_transient(&source);
                let error = ClientError::Http { url: url.to_string(), source };
                if transient { Attempt::Transient(error) } else { Attempt::Fatal(error) }
            };
            let response = request.body(body.to_vec()).send().map_err(http_error)?;
            let status = response.status().as_u16();
            let text = response.text().map_err(http_error)?;
            if status == 503 {
                return Err(Attempt::Transient(ClientError::Status { status, body: text }));
            }
            Ok((status, text))
        };
        with_retries(attempt)
    }
}
