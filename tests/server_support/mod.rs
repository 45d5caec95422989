//! A real server on 127.0.0.1:0 (its own tokio runtime on a thread) and a
//! blocking HTTP client.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use quipu::backup::{BackupConfig, BackupService, ModeChoice};
use quipu::export::cache::ExportCache;
use quipu::server::{AdminToken, AppState, BackgroundServer, DEFAULT_MAX_BODY_BYTES};
use quipu::{Engine, ScanRequest};

pub const TOKEN: &str = "apiv3_test-token";

pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Engine,
    /// The export cache hooked to the engine and served from, as `quipu serve` has it.
    pub cache: Arc<ExportCache>,
    pub dir: tempfile::TempDir,
    /// The backup service, with [`TestServer::with_backups`].
    pub backups: Option<BackupService>,
    /// Pushes and pulls, with [`TestServer::with_backups`].
    pub transfers: Option<quipu::remote::TransferService>,
    /// The backup repository folder, with [`TestServer::with_backups`]: a
    /// folder beside the data folder, on the same filesystem.
    pub repo_dir: Option<std::path::PathBuf>,
    /// Holds the repository's parent folder.
    repo_tmp: Option<tempfile::TempDir>,
    server: Option<BackgroundServer>,
}

use crate::common::export_cache;

impl TestServer {
    pub fn start() -> Self {
        Self::with_limit(DEFAULT_MAX_BODY_BYTES)
    }

    pub fn with_limit(max_body_bytes: usize) -> Self {
        Self::with_engine_and_limit(|b| b, max_body_bytes)
    }

    /// A server whose engine (background off) `configure` sets up further.
    pub fn with_engine(configure: impl FnOnce(quipu::EngineBuilder) -> quipu::EngineBuilder) -> Self {
        Self::with_engine_and_limit(configure, DEFAULT_MAX_BODY_BYTES)
    }

    fn with_engine_and_limit(
        configure: impl FnOnce(quipu::EngineBuilder) -> quipu::EngineBuilder,
        max_body_bytes: usize,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = export_cache(dir.path());
        let engine =
            configure(Engine::builder(dir.path()).background(false).on_install(cache.hook(false))).open().unwrap();
        let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), max_body_bytes)
            .with_export_cache(cache.clone());
        let server = BackgroundServer::start(state, "127.0.0.1:0".parse().unwrap()).unwrap();
        TestServer {
            addr: server.addr(),
            engine,
            cache,
            dir,
            backups: None,
            transfers: None,
            repo_dir: None,
            repo_tmp: None,
            server: Some(server),
        }
    }

    /// A server with backups into a fresh repository (`repo_dir`), objects
    /// placed as `mode` says.
    pub fn with_backups(mode: ModeChoice) -> Self {
        Self::with_backup_config(BackupConfig { mode, ..BackupConfig::default() })
    }

    pub fn with_backup_config(config: BackupConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo_tmp = tempfile::tempdir().unwrap();
        let repo_dir = repo_tmp.path().join("repo");
        let cache = export_cache(dir.path());
        let engine = Engine::builder(dir.path()).background(false).on_install(cache.hook(false)).open().unwrap();
        let backups = BackupService::open(engine.clone(), &repo_dir, config).unwrap();
        let transfers = quipu::remote::TransferService::open(backups.clone()).unwrap();
        let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), DEFAULT_MAX_BODY_BYTES)
            .with_backups(backups.clone())
            .with_transfers(transfers.clone())
            .with_export_cache(cache.clone());
        let server = BackgroundServer::start(state, "127.0.0.1:0".parse().unwrap()).unwrap();
        TestServer {
            addr: server.addr(),
            engine,
            cache,
            dir,
            backups: Some(backups),
            transfers: Some(transfers),
            repo_dir: Some(repo_dir),
            repo_tmp: Some(repo_tmp),
            server: Some(server),
        }
    }

    /// The backup service (panics without one).
    pub fn backups(&self) -> &BackupService {
        self.backups.as_ref().expect("a TestServer::with_backups server")
    }

    /// The repository folder (panics without one).
    pub fn repo(&self) -> &std::path::Path {
        self.repo_dir.as_deref().expect("a TestServer::with_backups server")
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Signals shutdown and waits for `serve` to return.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().unwrap();
        }
        // Running transfers and backups stop (cancelled) and their threads are joined.
        if let Some(transfers) = &self.transfers {
            transfers.shutdown();
        }
        if let Some(backups) = &self.backups {
            backups.shutdown();
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(server) = self.server.as_mut() {
            server.signal_stop();
        }
    }

    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `quipu::client::Client` with the test token.
    #[cfg(feature = "client")]
    pub fn client(&self) -> quipu::client::Client {
        quipu::client::Client::new(&self.host(), Some(TOKEN)).unwrap()
    }

    /// A scan; an unknown database or table is no rows.
    pub fn scan(&self, db: &str, table: &str, req: &ScanRequest) -> Vec<arrow::array::RecordBatch> {
        match self.engine.scan(db, table, req) {
            Ok(batches) => batches,
            Err(quipu::Error::DatabaseNotFound { .. } | quipu::Error::TableNotFound { .. }) => Vec::new(),
            Err(e) => panic!("scan failed: {e}"),
        }
    }

    pub fn rows(&self, db: &str, table: &str) -> usize {
        self.scan(db, table, &ScanRequest::all()).iter().map(|b| b.num_rows()).sum()
    }

    /// Every value of an integer field, in scan order.
    pub fn ints(&self, db: &str, table: &str, field: &str) -> Vec<i64> {
        use arrow::array::AsArray;
        let mut out = Vec::new();
        for b in self.scan(db, table, &ScanRequest::all().columns([field])) {
            let col = b.column_by_name(field).unwrap().as_primitive::<arrow::datatypes::Int64Type>();
            out.extend((0..col.len()).map(|i| col.value(i)));
        }
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client whose requests give up after 5 minutes (reqwest's default of 30
/// s failed a spilling sort of a debug build on a loaded CI machine).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build().unwrap()
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Status and JSON body of a response that must be JSON.
pub fn json(resp: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "status {status}: content-type {ct:?}");
    let body: serde_json::Value = resp.json().unwrap();
    assert!(body.get("error").is_some_and(|e| e.is_string()), "no error string in {body}");
    assert!(body.get("data").is_some(), "no data field in {body}");
    (status, body)
}

/// Holds a backup job in its copy phase, deterministically: the segment
/// file at `path` is moved aside and a FIFO takes its place, so a copy-mode
/// job blocks opening it until the test feeds it (the engine keeps reading
/// the file through its open mapping). Copy mode only: a link of a FIFO
/// does not block. Dropping the gate wakes a blocked job (it then fails on
/// a short read) and puts the file back.
pub struct Gate {
    path: std::path::PathBuf,
    aside: std::path::PathBuf,
    bytes: Vec<u8>,
    done: bool,
}

impl Gate {
    pub fn install(path: &std::path::Path) -> Gate {
        let aside = path.with_extension("gate-original");
        let bytes = std::fs::read(path).unwrap();
        std::fs::rename(path, &aside).unwrap();
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success(), "mkfifo {} failed", path.display());
        Gate { path: path.to_path_buf(), aside, bytes, done: false }
    }

    /// The newest segment file of the engine (the one its last flush wrote).
    pub fn newest_segment(engine: &Engine) -> Gate {
        let newest = engine.live_files().into_iter().max_by_key(|f| f.meta.id).expect("a live segment");
        Gate::install(&newest.path)
    }

    /// The gated file's original content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lets the job copy the file's real bytes, then puts the file back.
    pub fn release(mut self) {
        let mut fifo = open_writer(&self.path);
        fifo.write_all(&self.bytes).unwrap();
        drop(fifo);
        self.restore();
    }

    /// Feeds endless bytes (64 KiB at a time) from a thread until the job
    /// closes its end: the job keeps copying, and looking at its cancel
    /// flag, until it is cancelled. Returns once the job has opened the
    /// file (so it is past every check before the copy loop); the thread
    /// ends when the reader is gone.
    pub fn feed_forever(&self) -> std::thread::JoinHandle<u64> {
        let path = self.path.clone();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let feeder = std::thread::spawn(move || {
            let mut fifo = open_writer(&path);
            let chunk = vec![0x5au8; 64 << 10];
            // One chunk in: the job is reading.
            let mut ok = fifo.write_all(&chunk).is_ok();
            let _ = opened_tx.send(());
            let mut sent = chunk.len() as u64;
            // EPIPE (SIGPIPE is ignored in Rust programs) once the job is gone.
            while ok {
                ok = fifo.write_all(&chunk).is_ok();
                sent += chunk.len() as u64;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            sent
        });
        opened_rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the job never opened the gated file");
        feeder
    }

    fn restore(&mut self) {
        if !self.done {
            self.done = true;
            std::fs::rename(&self.aside, &self.path).unwrap();
        }
    }
}

/// Opens a FIFO for writing once a reader (the job) has opened it, within
/// the 60 s liveness bound: a job that never gets there fails the test
/// instead of hanging it.
fn open_writer(path: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    const ENXIO: i32 = 6;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Without O_NONBLOCK the open would wait for a reader forever.
    let probe = loop {
        match std::fs::OpenOptions::new().write(true).custom_flags(O_NONBLOCK).open(path) {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(ENXIO) => {
                assert!(std::time::Instant::now() < deadline, "the job never opened {}", path.display());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => panic!("opening {}: {e}", path.display()),
        }
    };
    // A reader is there: this open returns at once. The probe stays open
    // until then, so the reader never sees the FIFO without a writer (EOF).
    let fifo = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    drop(probe);
    fifo
}

impl Drop for Gate {
    fn drop(&mut self) {
        if !self.done {
            // O_NONBLOCK: succeeds only while a reader waits, and wakes it.
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new().write(true).custom_flags(0o4000).open(&self.path);
            self.done = true;
            let _ = std::fs::rename(&self.aside, &self.path);
        }
    }
}

/// Polls `f` until it returns true; a liveness bound of 60 s, not a timing
/// assertion.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// (db, table, sorted `k=v` tags, time) -> field -> value as text.
pub type BackupRows =
    std::collections::BTreeMap<(String, String, String, i64), std::collections::BTreeMap<String, String>>;

/// Every row the segment objects of a backup hold, read straight from the
/// repository's objects with the segment reader (a restore without a
/// restore feature). Later files win value by value, as in a scan.
pub fn backup_rows(repo: &quipu::backup::Repository, manifest: &quipu::backup::Manifest) -> BackupRows {
    use arrow::array::Array;
    let mut files: Vec<&quipu::backup::ManifestFile> = manifest.files.iter().collect();
    files.sort_by_key(|f| (f.level != 1, f.file_id));
    let mut out = BackupRows::new();
    for f in files {
        let reader = quipu::segment::SegmentReader::open(&repo.object_path(&f.blake3)).unwrap();
        let footer = reader.footer().clone();
        assert_eq!((footer.db.as_str(), footer.table.as_str()), (f.db.as_str(), f.table.as_str()));
        let name_of = |id: u32| footer.columns.iter().find(|c| c.id == id).unwrap().name.clone();
        for (_, rows) in reader.read_all().unwrap() {
            for i in 0..rows.len() {
                let key = &rows.series_keys[rows.series[i] as usize];
                let mut tags: Vec<String> = key.iter().map(|(c, v)| format!("{}={v}", name_of(*c))).collect();
                tags.sort();
                let entry = out.entry((f.db.clone(), f.table.clone(), tags.join(","), rows.time[i])).or_default();
                for (id, col) in &rows.columns {
                    if col.is_valid(i) {
                        let v = arrow::util::display::array_value_to_string(col, i).unwrap();
                        entry.insert(name_of(*id), v);
                    }
                }
            }
        }
    }
    out
}

/// The object files of a repository (names), sorted; temp files listed apart.
pub fn repo_files(repo: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let mut objects = Vec::new();
    let mut temps = Vec::new();
    for shard in std::fs::read_dir(repo.join("objects")).unwrap() {
        let shard = shard.unwrap().path();
        for e in std::fs::read_dir(&shard).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if quipu::backup::manifest::is_object_name(&name) {
                assert_eq!(&name[..2], shard.file_name().unwrap().to_str().unwrap(), "object in the wrong shard");
                objects.push(name);
            } else {
                temps.push(name);
            }
        }
    }
    objects.sort();
    temps.sort();
    (objects, temps)
}

/// Every row the engine serves, in the shape of [`backup_rows`]: each table
/// of the catalog scanned whole.
pub fn engine_rows(engine: &Engine) -> BackupRows {
    let catalog = engine.catalog();
    let mut out = BackupRows::new();
    for db in catalog.databases() {
        for table in db.tables() {
            let batches = engine.scan(&db.name, &table.name, &ScanRequest::all()).unwrap();
            let tags: std::collections::HashSet<String> = table.tags().map(|c| c.name.clone()).collect();
            for b in &batches {
                let schema = b.schema();
                let time = b.column_by_name("time").unwrap();
                let time = time.as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().unwrap();
                for row in 0..b.num_rows() {
                    let mut key = Vec::new();
                    let mut fields = std::collections::BTreeMap::new();
                    for (i, f) in schema.fields().iter().enumerate() {
                        let col = b.column(i);
                        if f.name() == "time" || arrow::array::Array::is_null(col, row) {
                            continue;
                        }
                        let v = arrow::util::display::array_value_to_string(col, row).unwrap();
                        if tags.contains(f.name()) {
                            key.push(format!("{}={v}", f.name()));
                        } else {
                            fields.insert(f.name().clone(), v);
                        }
                    }
                    key.sort();
                    out.insert((db.name.clone(), table.name.clone(), key.join(","), time.value(row)), fields);
                }
            }
        }
    }
    out
}

/// Holds the first restore that reaches `phase` until released (through
/// [`quipu::backup::BackupConfig::restore_hook`]).
pub struct RestoreHold {
    entered: std::sync::mpsc::Receiver<String>,
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl RestoreHold {
    /// The hook to put in the config, and the hold.
    pub fn at(phase: &'static str) -> (quipu::backup::RestoreHook, RestoreHold) {
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        let fired = std::sync::atomic::AtomicBool::new(false);
        let hook = quipu::backup::RestoreHook(std::sync::Arc::new(move |id: &str, at: &str| {
            if at == phase && !fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let _ = entered_tx.send(id.to_string());
                let _ = release_rx.lock().unwrap().recv_timeout(std::time::Duration::from_secs(60));
            }
        }));
        (hook, RestoreHold { entered, release: Some(release) })
    }

    /// Waits until a restore is held; returns its id.
    pub fn wait_entered(&self) -> String {
        self.entered.recv_timeout(std::time::Duration::from_secs(60)).expect("a restore reached the held phase")
    }

    pub fn release(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for RestoreHold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The names in a data folder's segments folder, sorted.
pub fn segment_names(data: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
