//! InfluxDB v1 `/query`: parameters, epochs, and its JSON answer shape.

use super::*;

/// `/query` parameters (query string, form or JSON body).
#[derive(Debug, Default, Deserialize)]
pub(super) struct V1Params {
    pub(super) db: Option<String>,
    pub(super) q: Option<String>,
    pub(super) epoch: Option<String>,
    pub(super) chunked: Option<String>,
    pub(super) chunk_size: Option<String>,
    pub(super) pretty: Option<String>,
    // Accepted and ignored, as InfluxDB 3 does.
    #[allow(dead_code)]
    pub(super) rp: Option<String>,
}

/// The JSON body form of `POST /query`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct V1Body {
    pub(super) db: Option<String>,
    pub(super) q: Option<String>,
    pub(super) epoch: Option<String>,
    pub(super) chunked: Option<bool>,
    pub(super) chunk_size: Option<u64>,
    pub(super) pretty: Option<bool>,
}

/// `GET /query`.
pub async fn v1_get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match query::<V1Params>(&uri) {
        Ok(p) => run_v1(state, p, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /query`: parameters in the query string, a form body or a JSON
/// body; a body's values win over the query string's.
pub async fn v1_post(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request = async {
        let mut p: V1Params = query(&uri)?;
        let bytes = read_body(&state, &headers, body).await?;
        if bytes.is_empty() {
            return Ok(p);
        }
        if is_form(&headers) {
            let f: V1Params = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
            p = V1Params {
                db: f.db.or(p.db),
                q: f.q.or(p.q),
                epoch: f.epoch.or(p.epoch),
                chunked: f.chunked.or(p.chunked),
                chunk_size: f.chunk_size.or(p.chunk_size),
                pretty: f.pretty.or(p.pretty),
                rp: f.rp.or(p.rp),
            };
            return Ok(p);
        }
        let j: V1Body = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body (expected {{\"db\", \"q\"}}): {e}")))?;
        Ok::<_, ApiError>(V1Params {
            db: j.db.or(p.db),
            q: j.q.or(p.q),
            epoch: j.epoch.or(p.epoch),
            chunked: j.chunked.map(|b| b.to_string()).or(p.chunked),
            chunk_size: j.chunk_size.map(|n| n.to_string()).or(p.chunk_size),
            pretty: j.pretty.map(|b| b.to_string()).or(p.pretty),
            rp: p.rp,
        })
    };
    match request.await {
        Ok(p) => run_v1(state, p, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// ns per unit of a v1 `epoch` value.
pub(super) fn epoch_unit(epoch: &str) -> Result<i64, ApiError> {
    Ok(match epoch {
        "ns" | "n" => 1,
        "u" | "µ" | "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        other => {
            return Err(ApiError::bad_request(format!("invalid epoch {other:?}: expected ns, u, µ, ms, s, m or h")));
        }
    })
}

pub(super) fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("invalid `{name}` {other:?}: expected true or false"))),
    }
}

pub(super) async fn run_v1(state: AppState, p: V1Params, headers: &HeaderMap) -> Response {
    let started = async {
        let db = required("db", p.db, "the database to query")?;
        let q = required("q", p.q, "the query")?;
        let time = match p.epoch.as_deref().filter(|e| !e.is_empty()) {
            Some(e) => TimeText::Epoch(epoch_unit(e)?),
            None => TimeText::Rfc3339,
        };
        let chunked = flag("chunked", p.chunked.as_deref())?;
        let chunk_rows = match p.chunk_size.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_CHUNK_ROWS,
            Some(s) => s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                ApiError::bad_request(format!("invalid `chunk_size` {s:?}: expected a positive integer"))
            })?,
        };
        flag("pretty", p.pretty.as_deref())?;
        let started = start(&state, &db, &q, None).await?;
        Ok::<_, ApiError>((time, chunked, chunk_rows, started))
    };
    let (time, chunked, chunk_rows, started) = match started.await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let name = started.tables.join(",");
    let csv = Format::from_accept(headers) == Format::Csv;
    let (content_type, encoder): (&'static str, Box<dyn RowEncoder>) = if csv {
        let mut prefix = Vec::new();
        csv_string(&name, &mut prefix);
        prefix.extend_from_slice(b",,");
        // v1 CSV writes times as epoch ns unless asked otherwise.
        let time = if time == TimeText::Rfc3339 { TimeText::Epoch(1) } else { time };
        ("application/csv", Box::new(CsvRows::new(Some(prefix), time)))
    } else {
        ("application/json", Box::new(V1Json::new(name, time, chunked.then_some(chunk_rows))))
    };
    let Started { schema, first, stream, telemetry, deadline, .. } = started;
    stream_response(HeaderValue::from_static(content_type), schema, first, stream, telemetry, deadline, encoder)
}

/// The v1 JSON answer: one document, or with `chunked` one document per
/// `chunk_rows` rows, each but the last marked `"partial": true`.
pub(super) struct V1Json {
    pub(super) name: String,
    pub(super) time: TimeText,
    pub(super) chunk_rows: Option<usize>,
    pub(super) header: Vec<u8>,
    /// Encoded rows of the chunk being filled.
    pub(super) values: Vec<u8>,
    pub(super) rows: usize,
    /// A full chunk waiting to learn whether it is the last.
    pub(super) pending: Option<Vec<u8>>,
    pub(super) any_rows: bool,
}

impl V1Json {
    pub(super) fn new(name: String, time: TimeText, chunk_rows: Option<usize>) -> V1Json {
        V1Json {
            name,
            time,
            chunk_rows,
            header: Vec::new(),
            values: Vec::new(),
            rows: 0,
            pending: None,
            any_rows: false,
        }
    }

    pub(super) fn document(&self, values: &[u8], partial: bool) -> Vec<u8> {
        let mut doc = Vec::with_capacity(values.len() + self.header.len() + 64);
        doc.extend_from_slice(b"{\"results\":[{\"statement_id\":0,\"series\":[");
        doc.extend_from_slice(&self.header);
        doc.extend_from_slice(values);
        doc.extend_from_slice(b"]");
        if partial {
            doc.extend_from_slice(b",\"partial\":true}],\"partial\":true}]}\n");
        } else {
            doc.extend_from_slice(b"}]}]}\n");
        }
        doc
    }
}

impl RowEncoder for V1Json {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.header.clear();
        self.header.extend_from_slice(b"{\"name\":");
        json_string(&self.name, &mut self.header);
        self.header.extend_from_slice(b",\"columns\":[");
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.header.push(b',');
            }
            json_string(f.name(), &mut self.header);
        }
        self.header.extend_from_slice(b"],\"values\":[");
        // Nothing is written yet: with no rows the document has another shape.
        let _ = out;
        Ok(())
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            if self.chunk_rows.is_none() && !self.any_rows {
                out.write_all(b"{\"results\":[{\"statement_id\":0,\"series\":[")?;
                out.write_all(&self.header)?;
            }
            if self.rows > 0 {
                self.values.push(b',');
            }
            self.values.push(b'[');
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.values.push(b',');
                }
                column.json(row, self.time, &mut self.values);
            }
            self.values.push(b']');
            self.rows += 1;
            self.any_rows = true;
            match self.chunk_rows {
                None => {
                    out.write_all(&self.values)?;
                    self.values.clear();
                }
                Some(n) if self.rows == n => {
                    if let Some(done) = self.pending.take() {
                        out.write_all(&self.document(&done, true))?;
                    }
                    self.pending = Some(std::mem::take(&mut self.values));
                    self.rows = 0;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut ChannelWriter) -> io::Result<()> {
        if !self.any_rows {
            return out.write_all(b"{\"results\":[{\"statement_id\":0}]}\n");
        }
        match self.chunk_rows {
            None => out.write_all(b"]}]}]}\n"),
            Some(_) => {
                let last = if self.rows > 0 { Some(std::mem::take(&mut self.values)) } else { None };
                match (self.pending.take(), last) {
                    (Some(done), Some(last)) => {
                        out.write_all(&self.document(&done, true))?;
                        out.write_all(&self.document(&last, false))
                    }
                    (Some(done), None) | (None, Some(done)) => out.write_all(&self.document(&done, false)),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}
