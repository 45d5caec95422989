//! Checking a remote repository: every manifest readable, every object it
//! names present with its size (loose or in a readable pack), and with
//! `read_data` every object re-hashed as it streams from the remote (a pack
//! streamed whole: each member against its name, the pack against its own).

use std::collections::HashMap;

use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::Remote;
use super::holdings::Pack;
use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{self, ObjectRef};
use crate::error::Result;

/// What reading back a file found: the problems of the objects wanted
/// from it (each with its backups), the pack itself when its bytes do not
/// hash to its name, and whether the file was gone.
type Reread = (Vec<(ObjectProblem, Vec<String>)>, Option<(String, String)>, bool);

/// The outcome of [`Remote::check`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteCheck {
    pub manifests: usize,
    /// Manifests that cannot be read, with the reason.
    pub bad_manifests: Vec<(String, String)>,
    /// Packs whose index cannot be read or whose bytes do not hash to
    /// their name, with the reason.
    pub bad_packs: Vec<(String, String)>,
    pub objects_checked: usize,
    pub bytes_checked: u64,
    /// Each problem object with the backups that use it.
    pub problems: Vec<(ObjectProblem, Vec<String>)>,
}

impl RemoteCheck {
    pub fn is_clean(&self) -> bool {
        self.bad_manifests.is_empty() && self.problems.is_empty() && self.bad_packs.is_empty()
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
            let (report, moved) = self.check_pass(&names, backup, read_data, on_bytes).await?;
            if !moved {
                return Ok(report);
            }
            // A file listed a moment ago is gone: a sweep deletes a pack once
            // its members have another copy. Look at the remote again, once.
            Ok(self.check_pass(&names, backup, read_data, on_bytes).await?.0)
        })
    }

    /// One look at the remote; true when a file it listed was gone when read.
    async fn check_pass(
        &self,
        names: &[String],
        backup: Option<&str>,
        read_data: bool,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(RemoteCheck, bool)> {
        let mut moved = false;
        let mut report = RemoteCheck { manifests: names.len(), ..RemoteCheck::default() };
        let mut manifests = Vec::new();
        for name in names {
            match self.read_manifest(name).await {
                Ok((m, _)) => manifests.push(m),
                Err(e) if backup.is_some() => return Err(e),
                Err(e) => report.bad_manifests.push((name.clone(), e.to_string())),
            }
        }
        let users = manifest::object_users(&manifests);
        let holdings = self.holdings(None).await?;
        report.bad_packs.clone_from(&holdings.bad_packs);
        let sorted = holdings.sort_out(users.into_values(), |(object, _)| object);
        report.problems.extend(sorted.problems.into_iter().map(|(problem, (_, backups))| (problem, backups)));
        let (loose, packed) = (sorted.loose, sorted.packed);
        let checked = loose.iter().chain(packed.iter().flat_map(|(_, members)| members.iter().map(|(item, _)| item)));
        report.objects_checked = checked.clone().count();
        let bytes = checked.fold(0u64, |sum, (object, _)| sum.saturating_add(object.size));
        if read_data {
            let loose = loose.into_iter().map(|(object, backups)| {
                async move {
                    let problem = self.rehash(&object, on_bytes).await?;
                    let gone = matches!(problem, Some(ObjectProblem::Missing { .. }));
                    Ok::<_, crate::Error>((problem.map(|p| (p, backups)).into_iter().collect(), None, gone))
                }
                .boxed()
            });
            let packs = packed.into_iter().map(|(pack, members)| {
                let members = members.into_iter().map(|(item, _)| item).collect();
                self.rehash_pack(pack, members, on_bytes).boxed()
            });
            let read: Vec<Reread> =
                futures::stream::iter(loose.chain(packs)).buffer_unordered(self.parallel()).try_collect().await?;
            report.bytes_checked = bytes;
            for (problems, bad_pack, gone) in read {
                report.problems.extend(problems);
                report.bad_packs.extend(bad_pack);
                moved |= gone;
            }
        }
        report.bad_packs.sort();
        report.problems.sort_by(|a, b| a.0.blake3().cmp(b.0.blake3()));
        Ok((report, moved))
    }

    /// Streams `pack` whole: the problems of the `members` wanted (each
    /// with its backups), and the pack itself when its bytes do not hash to
    /// its name.
    async fn rehash_pack(
        &self,
        pack: &Pack,
        members: Vec<(ObjectRef, Vec<String>)>,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Reread> {
        let got = match self.store.get(&pack.meta.location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                let problems = members.into_iter().map(|(o, b)| (ObjectProblem::Missing { blake3: o.blake3 }, b));
                return Ok((problems.collect(), None, true));
            }
            Err(e) => return Err(self.store_error(e)),
        };
        let entries = &pack.entries;
        let mut actual: Vec<String> = Vec::with_capacity(entries.len());
        let mut whole = blake3::Hasher::new();
        let mut member = blake3::Hasher::new();
        let mut pos = 0u64;
        let mut stream = got.into_stream();
        let finish_members = |pos: u64, member: &mut blake3::Hasher, actual: &mut Vec<String>| {
            while entries.get(actual.len()).is_some_and(|e| e.end() == pos) {
                actual.push(member.finalize().to_hex().to_string());
                member.reset();
            }
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.store_error(e))?;
            whole.update(&chunk);
            on_bytes(chunk.len() as u64);
            let mut rest = &chunk[..];
            loop {
                finish_members(pos, &mut member, &mut actual);
                let Some(entry) = entries.get(actual.len()) else { break };
                if rest.is_empty() {
                    break;
                }
                let take = (entry.end() - pos).min(rest.len() as u64) as usize;
                member.update(&rest[..take]);
                rest = &rest[take..];
                pos += take as u64;
            }
        }
        finish_members(pos, &mut member, &mut actual);
        let by_name: HashMap<&str, usize> = entries.iter().enumerate().map(|(i, e)| (e.blake3.as_str(), i)).collect();
        let mut problems = Vec::new();
        for (object, backups) in members {
            let hashed = by_name.get(object.blake3.as_str()).and_then(|&i| actual.get(i));
            match hashed {
                None => problems.push((
                    ObjectProblem::Unreadable {
                        blake3: object.blake3,
                        error: format!("pack {} ended early", pack.name),
                    },
                    backups,
                )),
                Some(hashed) if *hashed != object.blake3 => {
                    problems.push((ObjectProblem::Corrupt { blake3: object.blake3, actual: hashed.clone() }, backups))
                }
                Some(_) => {}
            }
        }
        let whole = whole.finalize().to_hex().to_string();
        let bad_pack = (whole != pack.name).then(|| (pack.name.clone(), format!("its bytes hash to {whole}")));
        Ok((problems, bad_pack, false))
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
