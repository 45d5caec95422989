//! Exports and queries: the window listing, the tar stream unpacked as it
//! arrives, and `query_sql` copied to a writer.

use super::*;

/// One Parquet file written by [`Client::export`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Unpacks an export tar (`GET /api/v3/export/window_data`) from `stream`
/// into `out`, as [`Client::export`] does: each regular entry written under
/// a temporary name, synced and renamed; names that would leave `out`
/// refused; other entry kinds skipped. `source` names the stream in errors.
pub fn unpack_export(stream: impl io::Read, source: &str, out: &Path) -> Result<Vec<ExportedFile>, ClientError> {
    let stream_error = |e: io::Error| ClientError::Export { url: source.to_owned(), source: e };
    let mut archive = tar::Archive::new(stream);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(stream_error)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().map_err(stream_error)?.into_owned();
        if name.as_os_str().is_empty() || !name.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(stream_error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry name {} leaves the output folder", name.display()),
            )));
        }
        let path = out.join(&name);
        let write_error = |source| ClientError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let partial = crate::fs::temp_path(&path);
        let copied = copy_entry(&mut entry, &partial);
        if copied.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        let bytes = match copied {
            Ok(n) => n,
            Err(Copy::Read(e)) => return Err(stream_error(e)),
            Err(Copy::Write(e)) => return Err(write_error(e)),
        };
        std::fs::rename(&partial, &path).map_err(write_error)?;
        files.push(ExportedFile { path, bytes });
    }
    Ok(files)
}

pub(super) enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies a tar entry into a new file at `path`, synced.
pub(super) fn copy_entry(entry: &mut impl io::Read, path: &Path) -> Result<u64, Copy> {
    let mut file = File::create(path).map_err(Copy::Write)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
    file.sync_all().map_err(Copy::Write)?;
    Ok(total)
}

/// Counts the bytes read through it for a progress callback.
pub(super) struct Counting<'a, R> {
    pub(super) inner: R,
    pub(super) read: u64,
    pub(super) progress: &'a dyn Fn(u64),
}

impl<R: io::Read> io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

impl Client {
    /// The compacted windows of `db`.`table`, oldest first.
    pub fn export_windows(&self, db: &str, table: &str) -> Result<Vec<ExportWindow>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            windows: Vec<ExportWindow>,
        }
        let url = self.url("api/v3/export/windows", &[("db", db), ("table", table)])?;
        let text = self
            .get(&url, REQUEST_TIMEOUT)?
            .text()
            .map_err(|source| ClientError::Http { url: url.to_string(), source })?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| ClientError::BadAnswer { what: "GET /api/v3/export/windows", reason: e.to_string() })?;
        Ok(answer.windows)
    }

    /// Downloads `windows` (all when empty) of `db`.`table` as Parquet files
    /// into `out` (`<out>/<table>/<YYYY-MM-DD>.parquet`, the server's tar
    /// entry names), unpacking the tar as it streams in. `progress` gets the
    /// bytes received so far. Each file is written under a temporary name
    /// and renamed when complete, so an interrupted export leaves no
    /// half-written Parquet file behind. Entry names that would leave `out`
    /// (absolute, `..`) are refused.
    pub fn export(
        &self,
        db: &str,
        table: &str,
        windows: &[String],
        out: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Vec<ExportedFile>, ClientError> {
        let list = windows.join(",");
        let mut query = vec![("db", db), ("table", table)];
        if !list.is_empty() {
            query.push(("windows", list.as_str()));
        }
        let url = self.url("api/v3/export/window_data", &query)?;
        let response = self.get(&url, EXPORT_TIMEOUT)?;
        unpack_export(Counting { inner: response, read: 0, progress }, url.as_str(), out)
    }

    /// Runs `sql` on `db` (`POST /api/v3/query_sql`) and copies the answer
    /// in `format` (json, jsonl, csv, parquet, pretty) to `out` as it
    /// streams in; `params` fill `$name` placeholders. Returns the bytes
    /// copied. Bad SQL is [`ClientError::Status`] 400 with the planner's
    /// message; an unknown database is [`ClientError::NotFound`].
    pub fn query_sql(
        &self,
        db: &str,
        sql: &str,
        format: &str,
        params: Option<&serde_json::Value>,
        out: &mut dyn Write,
    ) -> Result<u64, ClientError> {
        let url = self.url("api/v3/query_sql", &[])?;
        let mut body = serde_json::json!({ "db": db, "q": sql, "format": format });
        if let Some(p) = params {
            body["params"] = p.clone();
        }
        let mut response = self.read_request(reqwest::Method::POST, &url, EXPORT_TIMEOUT, Some(&body))?;
        io::copy(&mut response, out).map_err(|source| ClientError::Stream { url: url.to_string(), source })
    }
}
