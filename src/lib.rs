//! quipu: an embedded time-series storage engine with a native on-disk
//! snapshot format.
//!
//! A time-series server links this crate and writes line protocol or Arrow
//! batches into an [`Engine`]; the engine logs them to a crc-framed WAL,
//! buffers them in columnar form, flushes them to immutable zstd-compressed
//! segment files read through mmap, compacts those into 24h UTC windows and
//! answers scans with Arrow record batches.
//!
//! ```no_run
//! use quipu::{Engine, Precision, ScanRequest, WriteOptions};
//!
//! let engine = Engine::open("./quipu-data")?;
//! engine.write_lp("sensors", "cpu,host=a usage=85.2 1638360000000000000", Precision::Auto, WriteOptions::default())?;
//! let batches = engine.scan("sensors", "cpu", &ScanRequest::all().columns(["host", "usage"]))?;
//! assert_eq!(batches[0].num_rows(), 1);
//! # Ok::<(), quipu::Error>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

// The public API: what an embedder uses. The modules marked
// `#[doc(hidden)]` are internals that stay reachable for the tests, fuzz
// targets and benches that exercise them directly (decoders, file formats,
// the write path's parts); they are not part of the documented API and may
// change in any release.
pub mod backup;
pub mod catalog;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
pub mod data_dir;
mod engine;
pub mod error;
pub mod export;
#[cfg(feature = "remote")]
pub mod remote;
pub mod restore;
#[cfg(feature = "server")]
pub mod server;
pub mod snapshot;
#[cfg(feature = "sql")]
pub mod sql;
pub mod tree;

#[doc(hidden)]
pub mod buffer;
#[doc(hidden)]
pub mod envelope;
#[doc(hidden)]
pub mod failpoint;
#[doc(hidden)]
pub mod framing;
#[doc(hidden)]
pub mod fs;
#[doc(hidden)]
pub mod hash;
#[doc(hidden)]
pub mod inspect;
#[doc(hidden)]
pub mod lp;
#[doc(hidden)]
pub mod query;
#[doc(hidden)]
pub mod rows;
#[doc(hidden)]
pub mod segment;
#[doc(hidden)]
pub mod series;
#[doc(hidden)]
pub mod swap;
#[doc(hidden)]
pub mod time_range;
#[doc(hidden)]
pub mod tsbs;
#[doc(hidden)]
pub mod wal;
#[doc(hidden)]
pub mod write;

pub use data_dir::{CATALOG_DIR, DataDir, LOCK_FILE, WAL_DIR};
pub use engine::{
    BufferUsage, Durability, Engine, EngineBuilder, GEN0_FILES_LIMIT, LiveFileInfo, ScanIter, Stats, WriteOptions,
    WriteSummary,
};
pub use error::{Error, Result};
pub use lp::{LineError, Precision};
pub use query::{ScanFigures, ScanRequest, ScanStats};
pub use snapshot::{InstallCause, InstallHook, Installed, Snapshot};
pub use time_range::TimeRange;
