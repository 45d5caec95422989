//! Durable file operations shared by the whole crate: the one atomic-write
//! helper (temp file in the target folder, write, fsync, rename, fsync the
//! folder) and folder fsync. Every metadata file quipu publishes goes through
//! here, so the crash-safety argument lives in one place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Fsyncs a folder so that a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
pub fn atomic_write_with<F>(target: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut File) -> io::Result<()>,
{
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(target);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
    fn remove_temp_files_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.tmp"), b"x").unwrap();
        fs::write(dir.path().join("b.seg"), b"x").unwrap();
        remove_temp_files(dir.path()).unwrap();
        assert!(!dir.path().join("a.tmp").exists());
        assert!(dir.path().join("b.seg").exists());
    }
}
