//! Holds: the repository used by another part of the process while the
//! service runs (a remote push reading a backup's objects, a remote pull
//! bringing a backup in). A hold keeps its objects from garbage collection
//! and its temp files from the sweep; a pull's hold also reserves the
//! backup's name, so no backup of that name starts meanwhile.

use super::*;

/// What one hold keeps.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) name: String,
    /// A pull's hold: the name is reserved, and objects arrive as temp files.
    pub(crate) writes: bool,
    pub(crate) objects: Vec<String>,
}

/// A use of the repository that the service must respect until it is
/// dropped. See the module doc.
#[derive(Debug)]
pub struct Hold {
    service: BackupService,
    id: u64,
    /// A push's: the manifest as read under the hold.
    manifest: Option<bytes::Bytes>,
}

impl BackupService {
    /// Holds completed backup `name` for reading (a push): its objects stay
    /// even if the backup is deleted meanwhile. The manifest is read under
    /// the service's lock, so no deletion can slip in between.
    pub fn hold_backup(&self, name: &str) -> Result<Hold> {
        if validate_name(name).is_err() {
            return Err(BackupError::NotFound { name: name.into() }.into());
        }
        let mut state = lock(&self.inner.state);
        let repo = &self.inner.repo;
        let bytes = repo.read_manifest_bytes(name)?.ok_or_else(|| BackupError::NotFound { name: name.into() })?;
        let (manifest, _) = repo.decode_manifest(name, &bytes)?;
        let objects = manifest.objects().map(|o| o.blake3).collect();
        let held = Held { name: name.into(), writes: false, objects };
        let mut hold = self.add_hold(&mut state, held);
        hold.manifest = Some(bytes.into());
        Ok(hold)
    }

    /// Holds the name `name` for a backup arriving from elsewhere (a pull):
    /// refused while a backup of that name runs or another pull of it holds
    /// it; the objects the pull will place are added with [`Hold::keep`].
    pub fn hold_incoming(&self, name: &str) -> Result<Hold> {
        validate_name(name)?;
        let mut state = lock(&self.inner.state);
        if state.shutting_down {
            return Err(BackupError::ShuttingDown.into());
        }
        if state.running.contains_key(name) || state.holds.values().any(|h| h.writes && h.name == name) {
            return Err(BackupError::Running { name: name.into() }.into());
        }
        Ok(self.add_hold(&mut state, Held { name: name.into(), writes: true, objects: Vec::new() }))
    }

    fn add_hold(&self, state: &mut State, held: Held) -> Hold {
        state.next_hold += 1;
        let id = state.next_hold;
        state.holds.insert(id, held);
        Hold { service: self.clone(), id, manifest: None }
    }
}

impl Hold {
    /// The repository held.
    pub fn repository(&self) -> &Repository {
        &self.service.inner.repo
    }

    /// The manifest a push's hold read (`None` for a pull's).
    pub fn manifest_bytes(&self) -> Option<bytes::Bytes> {
        self.manifest.clone()
    }

    /// The name held.
    pub fn name(&self) -> String {
        lock(&self.service.inner.state).holds.get(&self.id).map(|h| h.name.clone()).unwrap_or_default()
    }

    /// Keeps `objects` from garbage collection while the hold lasts.
    /// A pull's objects count as unsynced too: a backup job finding one on
    /// disk before the pull made its folder entry durable syncs it itself.
    pub fn keep(&self, objects: impl IntoIterator<Item = String>) {
        let objects: Vec<String> = objects.into_iter().collect();
        let mut state = lock(&self.service.inner.state);
        if let Some(held) = state.holds.get_mut(&self.id) {
            if held.writes {
                self.service.inner.unsynced.set().extend(objects.iter().cloned());
            }
            held.objects.extend(objects);
        }
    }

    /// `objects` are durable now (their shard folders were synced after
    /// they were all on disk): backups finding them need no sync of their own.
    pub fn settled<'a>(&self, objects: impl IntoIterator<Item = &'a str>) {
        self.service.inner.unsynced.settled(objects);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        lock(&self.service.inner.state).holds.remove(&self.id);
    }
}
