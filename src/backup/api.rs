//! The backup service's request and answer types (what the API and the client
//! exchange), names and times.

use super::*;

/// Where a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    InProgress,
    Completed,
    Failed,
    /// An extension of the reference's values: stopped by a cancel request.
    Cancelled,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::InProgress => "in_progress",
            BackupStatus::Completed => "completed",
            BackupStatus::Failed => "failed",
            BackupStatus::Cancelled => "cancelled",
        }
    }
}

/// How objects get into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    /// Link when the repository is on the data folder's filesystem, else copy.
    #[default]
    Auto,
    Link,
    Copy,
}

impl std::str::FromStr for ModeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ModeChoice::Auto),
            "link" => Ok(ModeChoice::Link),
            "copy" => Ok(ModeChoice::Copy),
            other => Err(format!("unknown backup mode {other:?}; expected auto, link or copy")),
        }
    }
}

/// Settings of a [`BackupService`].
#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub mode: ModeChoice,
    /// Files copied at once in copy mode. Bytes in flight stay bounded: each
    /// copy moves at most 8 MiB between two looks at its cancel flag, in the
    /// kernel where it can (copy_file_range).
    pub copy_threads: usize,
    /// Hash every byte while copying and fail on a mismatch with the hash
    /// recorded at the segment's birth (costs a read through user space).
    pub rehash_on_copy: bool,
    /// Called as a restore enters each phase (`staging`, `rebuilding`,
    /// `swapping`), on the restore's thread: instrumentation, and the way
    /// tests hold a restore at a phase.
    pub restore_hook: Option<RestoreHook>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { mode: ModeChoice::Auto, copy_threads: 4, rehash_on_copy: false, restore_hook: None }
    }
}

/// A function of the restore id and the phase it enters.
pub type RestorePhaseFn = dyn Fn(&str, &str) + Send + Sync;

/// See [`BackupConfig::restore_hook`].
#[derive(Clone)]
pub struct RestoreHook(pub Arc<RestorePhaseFn>);

impl std::fmt::Debug for RestoreHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreHook")
    }
}

/// A request to start a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRequest {
    pub backup_type: BackupType,
    /// A generated, sortable UTC timestamp when `None`.
    pub name: Option<String>,
    /// Replace a completed backup of the same name (it stays valid until the
    /// new one completes).
    pub force: bool,
    /// For an incremental backup: the backup it follows (default: the newest
    /// completed one).
    pub parent: Option<String>,
}

impl BackupRequest {
    pub fn full() -> Self {
        BackupRequest { backup_type: BackupType::Full, name: None, force: false, parent: None }
    }

    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// An incremental backup after `parent` (`None`: the newest completed).
    #[must_use]
    pub fn incremental(mut self, parent: Option<String>) -> Self {
        self.backup_type = BackupType::Incremental;
        self.parent = parent;
        self
    }
}

/// A running job's progress (an extension of the reference's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: String,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A later attempt under a completed backup's name that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub status: BackupStatus,
    pub created_at: String,
    pub error: Option<String>,
}

/// One backup as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub status: BackupStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub total_files: u64,
    pub total_size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes only this backup references: what deleting it would free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub mode: PlaceMode,
    /// Objects (and their bytes) this backup added; the rest were present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Attempt>,
}

/// A problem object and the backups that use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    #[serde(flatten)]
    pub problem: ObjectProblem,
    pub backups: Vec<String>,
}

/// The outcome of [`BackupService::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub backup_name: String,
    /// `ok` or `corrupt`.
    pub status: String,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<ProblemReport>,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The name given to a backup started without one: its UTC start time,
/// sortable as text (`20261123T101530.123Z`).
pub fn generated_name(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Backup names become file names: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot.
pub fn validate_name(name: &str) -> Result<(), BackupError> {
    let bad = |why: &str| Err(BackupError::InvalidName { name: name.into(), why: why.into() });
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1 to 128 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with a dot");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("may hold only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

pub(super) fn from_manifest(m: &Manifest, unique_bytes: u64) -> BackupInfo {
    BackupInfo {
        name: m.name.clone(),
        backup_type: m.backup_type,
        status: BackupStatus::Completed,
        created_at: m.created_at.clone(),
        completed_at: Some(m.completed_at.clone()),
        total_files: m.total_files,
        total_size_bytes: m.total_size_bytes,
        progress: None,
        error: None,
        unique_bytes: Some(unique_bytes),
        parent: m.parent.as_ref().map(|p| p.name.clone()),
        mode: m.mode,
        added_objects: Some(m.added_objects),
        added_bytes: Some(m.added_bytes),
        last_attempt: None,
    }
}

pub(super) fn from_record(r: JobRecord) -> BackupInfo {
    BackupInfo {
        name: r.name,
        backup_type: r.backup_type,
        status: r.status,
        created_at: r.created_at,
        completed_at: r.completed_at,
        total_files: 0,
        total_size_bytes: 0,
        progress: None,
        error: r.error,
        unique_bytes: None,
        parent: r.parent,
        mode: r.mode,
        added_objects: None,
        added_bytes: None,
        last_attempt: None,
    }
}

/// A manifest that no longer decodes: listed as failed, dated by its file.
pub(super) fn unreadable(name: &str, created_at: String, e: &Error) -> BackupInfo {
    BackupInfo {
        name: name.into(),
        backup_type: BackupType::Full,
        status: BackupStatus::Failed,
        created_at,
        completed_at: None,
        total_files: 0,
        total_size_bytes: 0,
        progress: None,
        error: Some(format!("unreadable manifest: {e}")),
        unique_bytes: None,
        parent: None,
        mode: PlaceMode::Copy,
        added_objects: None,
        added_bytes: None,
        last_attempt: None,
    }
}
