//! Durable file operations shared by the whole crate: the one atomic-write
//! helper (temp file in the target folder, write, fsync, rename, fsync the
//! folder) and folder fsync. Every metadata file quipu publishes goes through
//! here, so the crash-safety argument lives in one place. Also the advisory
//! lock of a data folder or a repository ([`lock_exclusive`]).

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::failpoint;

/// How long a lock that looks held is asked again before it is reported held.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Opens (creating) `path` and takes an exclusive advisory lock on it,
/// held as long as the returned file. `Ok(None)` when another holder keeps
/// it for [`LOCK_WAIT`].
///
/// Why wait: a child process forked by any thread of this process holds a
/// copy of every descriptor, this lock's too, until it execs (close-on-exec),
/// and the lock lives as long as any copy. A folder closed by one thread and
/// reopened by another at the moment a third spawns a process would
/// otherwise look locked by somebody else.
pub fn lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Fsyncs a folder so that a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes many new files durable in one batch: [`BatchSync::start`] before
/// the first is written, [`BatchSync::finish`] once all are. On Linux 5.8
/// and later that is one `syncfs` of the file system holding `dir` (the
/// files must live there), where thousands of small files cost one flush
/// instead of one each; it reports a write-back error of any file there
/// since `start` (so a failure may be another file's: the caller fails
/// safe). Elsewhere, and on older kernels, whose `syncfs` reports no
/// error, it is an fsync per file.
pub struct BatchSync {
    #[cfg(target_os = "linux")]
    fs: Option<File>,
}

impl BatchSync {
    pub fn start(dir: &Path) -> io::Result<BatchSync> {
        #[cfg(target_os = "linux")]
        {
            let fs = if syncfs_reports_errors() { Some(File::open(dir)?) } else { None };
            Ok(BatchSync { fs })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dir;
            Ok(BatchSync {})
        }
    }

    pub fn finish(&self, files: &[&Path]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(fs) = &self.fs {
            return if files.is_empty() { Ok(()) } else { rustix::fs::syncfs(fs).map_err(io::Error::from) };
        }
        files.iter().try_for_each(|f| File::open(f)?.sync_all())
    }
}

/// True on Linux 5.8 and later, whose `syncfs` reports write-back errors.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (5, 8)
    })
}

/// Creates `dir` (and parents) and makes the new entries durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    // A bare relative name (`data`) has the empty path as its parent.
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return sync_dir(dir),
    };
    sync_dir(parent)?;
    sync_dir(dir)
}

/// The temp-file name used while publishing `target`. A leftover after a crash
/// is recognised by the `.tmp` suffix and removed on open.
pub fn temp_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    target.with_file_name(name)
}

/// Writes `bytes` to `target` atomically: a reader sees either the old file
/// (or none) or the complete new one, also after a crash at any point.
pub fn atomic_write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write_with(target, |file| file.write_all(bytes))
}

/// Like [`atomic_write`], with the content produced by `fill` straight into
/// the temp file (for large files that should not be built in memory).
///
/// On an error the temp file is removed and `target` is as it was, except
/// when the folder fsync after the rename fails: then `target` may already
/// be the new file, not yet durable. Every error leaves the caller free to
/// retry, since a later publish of the same name replaces it and fsyncs the
/// folder again; none of them poisons anything (the fail points
/// `<kind>.write`, `.fsync`, `.rename`, `.dirsync` of [`crate::failpoint`],
/// with `<kind>` from [`file_kind`]).
pub fn atomic_write_with<F>(target: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut File) -> io::Result<()>,
{
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(target);
    let kind = file_kind(target);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        fill(&mut file)?;
        failpoint::check(&kind, "write")?;
        failpoint::check(&kind, "fsync")?;
        file.sync_all()?;
        drop(file);
        failpoint::check(&kind, "rename")?;
        fs::rename(&tmp, target)?;
        failpoint::check(&kind, "dirsync")?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What kind of file `target` is, for fail point names: the folder it is
/// published in for the folders that hold one kind (`segments` → `segment`,
/// `versions` → `version`, `catalog`, `manifests` → `manifest`, `jobs` →
/// `job`, `restores` → `restore-job`), otherwise its lowercased file name
/// (`CURRENT` → `current`, `RESTORE` → `restore`).
pub fn file_kind(target: &Path) -> Cow<'static, str> {
    let folder = target.parent().and_then(Path::file_name).and_then(|n| n.to_str());
    let kind = match folder {
        Some("segments") => "segment",
        Some("versions") => "version",
        Some("catalog") => "catalog",
        Some("manifests") => "manifest",
        Some("jobs") => "job",
        Some("restores") => "restore-job",
        _ => {
            let name = target.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
            return Cow::Owned(name);
        }
    };
    Cow::Borrowed(kind)
}

/// Removes leftover `*.tmp` files in `dir` (from a crash mid-publish).
pub fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("CURRENT");
        atomic_write(&target, b"one").unwrap();
        atomic_write(&target, b"two two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two two");
        assert!(!temp_path(&target).exists());
    }

    #[test]
    fn failed_fill_leaves_old_content_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        atomic_write(&target, b"old").unwrap();
        let err = atomic_write_with(&target, |_| Err(io::Error::other("boom"))).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(!temp_path(&target).exists());
    }

    #[test]
    fn file_kind_names_the_folder_or_the_file() {
        let kind = |p: &str| file_kind(Path::new(p)).into_owned();
        assert_eq!(kind("/d/segments/00000000000000000001.seg"), "segment");
        assert_eq!(kind("/d/versions/00000000000000000002.ver"), "version");
        assert_eq!(kind("/d/catalog/00000000000000000003.cat"), "catalog");
        assert_eq!(kind("/r/manifests/b1.json"), "manifest");
        assert_eq!(kind("/r/jobs/b1.json"), "job");
        assert_eq!(kind("/r/restores/01H.json"), "restore-job");
        assert_eq!(kind("/d/CURRENT"), "current");
        assert_eq!(kind("RESTORE"), "restore");
    }

    #[test]
    fn remove_temp_files_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.tmp"), b"x").unwrap();
        fs::write(dir.path().join("b.seg"), b"x").unwrap();
        remove_temp_files(dir.path()).unwrap();
        assert!(!dir.path().join("a.tmp").exists());
        assert!(dir.path().join("b.seg").exists());
    }
}
