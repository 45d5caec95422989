//! Checking a remote repository: every manifest readable, every object it
//! names present with its size, and with `read_data` every object re-hashed
//! as it streams from the remote.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::Remote;
use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{self, ObjectRef};
use crate::error::Result;

/// The outcome of [`Remote::check`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteCheck {
    pub manifests: usize,
    /// Manifests that cannot be read, with the reason.
    pub bad_manifests: Vec<(String, String)>,
    pub objects_checked: usize,
    pub bytes_checked: u64,
    /// Each problem object with the backups that use it.
    pub problems: Vec<(ObjectProblem, Vec<String>)>,
}

impl RemoteCheck {
    pub fn is_clean(&self) -> bool {
        self.bad_manifests.is_empty() && self.problems.is_empty()
    }
}

impl Remote {
    /// Checks the remote: `backup` alone or every backup; with `read_data`
    /// each object is read back and hashed (a full download, streamed), else
    /// only its presence and size are checked. `on_bytes` hears of every
    /// byte hashed.
    pub fn check(&self, backup: Option<&str>, read_data: bool, on_bytes: &(dyn Fn(u64) + Sync)) -> Result<RemoteCheck> {
        let names = match backup {
            Some(name) => vec![name.to_string()],
            None => self.list()?,
        };
        self.runtime.block_on(async {
            self.ensure_repository(false).await?;
            let mut report = RemoteCheck { manifests: names.len(), ..RemoteCheck::default() };
            let mut manifests = Vec::new();
            for name in &names {
                match self.read_manifest(name).await {
                    Ok((m, _)) => manifests.push(m),
                    Err(e) if backup.is_some() => return Err(e),
                    Err(e) => report.bad_manifests.push((name.clone(), e.to_string())),
                }
            }
            let users = manifest::object_users(&manifests);
            let present = self.objects().await?;
            let mut to_read = Vec::new();
            for (object, backups) in users.into_values() {
                match present.get(&object.blake3).map(|m| m.size) {
                    None => report.problems.push((ObjectProblem::Missing { blake3: object.blake3.clone() }, backups)),
                    Some(found) if found != object.size => report.problems.push((
                        ObjectProblem::WrongSize { blake3: object.blake3.clone(), expected: object.size, found },
                        backups,
                    )),
                    Some(_) => to_read.push((object, backups)),
                }
            }
            report.objects_checked = to_read.len();
            let bytes = to_read.iter().fold(0u64, |sum, (object, _)| sum.saturating_add(object.size));
            if read_data {
                let read: Vec<Option<(ObjectProblem, Vec<String>)>> =
                    futures::stream::iter(to_read.into_iter().map(|(object, backups)| async move {
                        let problem = self.rehash(&object, on_bytes).await?;
                        Ok::<_, crate::Error>(problem.map(|p| (p, backups)))
                    }))
                    .buffer_unordered(self.parallel())
                    .try_collect()
                    .await?;
                report.bytes_checked = bytes;
                report.problems.extend(read.into_iter().flatten());
            }
            report.problems.sort_by(|a, b| a.0.blake3().cmp(b.0.blake3()));
            Ok(report)
        })
    }

    /// The problem with one object read back in full, if any.
    async fn rehash(&self, object: &ObjectRef, on_bytes: &(dyn Fn(u64) + Sync)) -> Result<Option<ObjectProblem>> {
        let got = match self.store.get(&self.object_path(&object.blake3)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Some(ObjectProblem::Missing { blake3: object.blake3.clone() }));
            }
            Err(e) => return Err(self.store_error(e)),
        };
        let mut hasher = blake3::Hasher::new();
        let mut read = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.store_error(e))?;
            read += chunk.len() as u64;
            hasher.update(&chunk);
            on_bytes(chunk.len() as u64);
        }
        let actual = hasher.finalize().to_hex().to_string();
        Ok(if read != object.size {
            Some(ObjectProblem::WrongSize { blake3: object.blake3.clone(), expected: object.size, found: read })
        } else if actual != object.blake3 {
            Some(ObjectProblem::Corrupt { blake3: object.blake3.clone(), actual })
        } else {
            None
        })
    }
}
