//! Where the benches keep their scratch folders: under the cargo target
//! folder (a real disk, not tmpfs; link mode needs the repository on the
//! data folder's filesystem).

use std::path::{Path, PathBuf};

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
