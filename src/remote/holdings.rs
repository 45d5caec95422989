//! What a remote holds: its loose objects (`objects/ab/<blake3>`) and the
//! members of its packs (`packs/<blake3>.pack`), from full listings of both
//! folders and every pack's index; and where to read an object from.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt};

use super::records::{self, PACK_FOOTER_LEN, PackEntry};
use super::{PACKS_DIR, Remote};
use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{ObjectRef, is_object_name};
use crate::error::Result;

/// How much of a pack's end is read first for its index: the index of a
/// pack of 1,364 members, most packs' whole index in one request.
const INDEX_READ_BYTES: u64 = 64 << 10;
/// Pack members larger than this are not read from packs (this build packs
/// objects under 1 MiB; a pull holds a member in memory).
pub(super) const MAX_PACKED_MEMBER: u64 = 16 << 20;
/// Wanted ranges of a pack closer than this are read in one request...
const COALESCE_GAP: u64 = 1 << 20;
/// ...of at most this many bytes (beyond one range larger than it).
const MAX_READ_BYTES: u64 = 16 << 20;
/// The largest pack index read: 1.4 million members (this build writes
/// packs of at most 16 MiB of members, so about 11,000 at 1.5 KiB).
const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Pack indexes read at once (small ranged GETs).
const INDEX_READS_IN_FLIGHT: usize = 16;

/// A pack's index as read: the pack, or its name and why it is unreadable;
/// `None` when it was gone.
type IndexRead = Option<std::result::Result<Arc<Pack>, (String, String)>>;

/// A readable pack.
#[derive(Debug)]
pub(super) struct Pack {
    /// The blake3 of its bytes, its name.
    pub name: String,
    pub meta: ObjectMeta,
    pub entries: Vec<PackEntry>,
}

/// Where an object can be read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Location<'a> {
    Loose(&'a ObjectMeta),
    Packed(&'a Arc<Pack>, &'a PackEntry),
}

impl Location<'_> {
    pub fn size(&self) -> u64 {
        match self {
            Location::Loose(meta) => meta.size,
            Location::Packed(_, entry) => entry.size,
        }
    }
}

/// Items sorted by where their objects are read ([`Holdings::sort_out`]).
pub(super) struct Sorted<'h, T> {
    pub problems: Vec<(ObjectProblem, T)>,
    pub loose: Vec<T>,
    pub packed: Vec<(&'h Arc<Pack>, Members<'h, T>)>,
}

/// The members wanted from one pack, each with its item.
pub(super) type Members<'h, T> = Vec<(T, &'h PackEntry)>;

/// Everything a remote holds, as one look saw it.
#[derive(Debug, Default)]
pub(super) struct Holdings {
    pub loose: HashMap<String, ObjectMeta>,
    pub packs: Vec<Arc<Pack>>,
    /// Packs whose index cannot be read, by name, with the reason: their
    /// members count as absent, and no sweep plans or deletes them.
    pub bad_packs: Vec<(String, String)>,
    /// Object name to (index in `packs`, index in its entries).
    packed: HashMap<String, Vec<(usize, usize)>>,
}

impl Holdings {
    fn new(loose: HashMap<String, ObjectMeta>, mut packs: Vec<Arc<Pack>>, bad_packs: Vec<(String, String)>) -> Self {
        packs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut packed: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (p, pack) in packs.iter().enumerate() {
            for (e, entry) in pack.entries.iter().enumerate() {
                if entry.size <= MAX_PACKED_MEMBER {
                    packed.entry(entry.blake3.clone()).or_default().push((p, e));
                }
            }
        }
        Holdings { loose, packs, bad_packs, packed }
    }

    /// Every place `blake3` can be read from: packs first (one request
    /// serves many members), then the loose object.
    pub fn locations<'a>(&'a self, blake3: &str) -> impl Iterator<Item = Location<'a>> + 'a {
        let packed = self.packed.get(blake3).into_iter().flatten().filter_map(|&(p, e)| {
            let pack = self.packs.get(p)?;
            Some(Location::Packed(pack, pack.entries.get(e)?))
        });
        packed.chain(self.loose.get(blake3).map(Location::Loose))
    }

    /// True when the remote holds `object` with its size somewhere.
    pub fn has(&self, object: &ObjectRef) -> bool {
        self.locations(&object.blake3).any(|l| l.size() == object.size)
    }

    /// Where to read `object` from, or what is wrong with it.
    pub fn locate(&self, object: &ObjectRef) -> std::result::Result<Location<'_>, ObjectProblem> {
        let mut found = None;
        for location in self.locations(&object.blake3) {
            if location.size() == object.size {
                return Ok(location);
            }
            found.get_or_insert(location.size());
        }
        Err(match found {
            Some(found) => ObjectProblem::WrongSize { blake3: object.blake3.clone(), expected: object.size, found },
            None => ObjectProblem::Missing { blake3: object.blake3.clone() },
        })
    }

    /// `items` sorted by where their objects (`object` of each) are read:
    /// those that cannot be (with the problem), loose ones, and pack by pack
    /// (by name) the members wanted, in offset order.
    pub fn sort_out<'h, T>(
        &'h self,
        items: impl IntoIterator<Item = T>,
        object: impl Fn(&T) -> &ObjectRef,
    ) -> Sorted<'h, T> {
        let mut sorted = Sorted { problems: Vec::new(), loose: Vec::new(), packed: Vec::new() };
        let mut by_pack: std::collections::BTreeMap<&str, (&Arc<Pack>, Members<T>)> = std::collections::BTreeMap::new();
        for item in items {
            match self.locate(object(&item)) {
                Err(problem) => sorted.problems.push((problem, item)),
                Ok(Location::Loose(_)) => sorted.loose.push(item),
                Ok(Location::Packed(pack, entry)) => {
                    by_pack.entry(pack.name.as_str()).or_insert_with(|| (pack, Vec::new())).1.push((item, entry))
                }
            }
        }
        for (pack, mut members) in by_pack.into_values() {
            members.sort_by_key(|(_, entry)| entry.offset);
            sorted.packed.push((pack, members));
        }
        sorted
    }

    /// The files holding `object` with its size.
    pub fn paths_of(&self, remote: &Remote, object: &ObjectRef) -> Vec<object_store::path::Path> {
        self.locations(&object.blake3)
            .filter(|l| l.size() == object.size)
            .map(|l| match l {
                Location::Loose(meta) => meta.location.clone(),
                Location::Packed(pack, _) => remote.pack_path(&pack.name),
            })
            .collect()
    }

    /// True when every place `blake3` is held is named by `planned` (loose
    /// objects and packs by name): a sweep may delete them all.
    pub fn only_planned(&self, object: &ObjectRef, planned: &std::collections::HashSet<String>) -> bool {
        self.locations(&object.blake3).filter(|l| l.size() == object.size).all(|l| match l {
            Location::Loose(_) => planned.contains(&object.blake3),
            Location::Packed(pack, _) => planned.contains(&pack.name),
        })
    }
}

impl Remote {
    /// Everything the remote holds now. Indexes in `known` are not read
    /// again: a pack's name is the hash of its bytes.
    pub(super) async fn holdings(&self, known: Option<&Holdings>) -> Result<Holdings> {
        let (loose, listed) = futures::try_join!(self.objects(), self.list_dir(PACKS_DIR))?;
        let known: HashMap<&str, &Arc<Pack>> =
            known.map(|h| h.packs.iter().map(|p| (p.name.as_str(), p)).collect()).unwrap_or_default();
        let read: Vec<IndexRead> = futures::stream::iter(listed.into_iter().filter_map(|meta| {
            let name = meta.location.filename()?.strip_suffix(".pack")?.to_string();
            // Only `packs/<blake3>.pack` itself: what a pull would read.
            (is_object_name(&name) && meta.location == self.pack_path(&name)).then_some((name, meta))
        }))
        .map(|(name, meta)| {
            let known = known.get(name.as_str()).map(|p| Arc::clone(p));
            async move {
                if let Some(pack) = known.filter(|p| p.meta.size == meta.size) {
                    return Ok(Some(Ok(pack)));
                }
                Ok::<_, crate::Error>(match self.read_pack_index(&meta).await? {
                    None => None,
                    Some(Ok(entries)) => Some(Ok(Arc::new(Pack { name, meta, entries }))),
                    Some(Err(why)) => Some(Err((name, why))),
                })
            }
        })
        .buffer_unordered(INDEX_READS_IN_FLIGHT)
        .try_collect()
        .await?;
        let (mut packs, mut bad) = (Vec::new(), Vec::new());
        for outcome in read.into_iter().flatten() {
            match outcome {
                Ok(pack) => packs.push(pack),
                Err(bad_pack) => bad.push(bad_pack),
            }
        }
        bad.sort();
        for (name, why) in &bad {
            tracing::warn!(remote = %self.url, pack = %name, why = %why, "unreadable pack index; its members count as absent");
        }
        Ok(Holdings::new(loose, packs, bad))
    }

    /// A pack's index from its end: `Some(Err(why))` when the bytes are not
    /// a pack's, `None` when the pack is gone (a sweep deleted it since the
    /// listing), `Err` when the store fails.
    async fn read_pack_index(&self, meta: &ObjectMeta) -> Result<Option<std::result::Result<Vec<PackEntry>, String>>> {
        let len = meta.size;
        if len < PACK_FOOTER_LEN as u64 {
            return Ok(Some(Err(format!("{len} bytes, shorter than a pack footer"))));
        }
        let first = len.min(INDEX_READ_BYTES);
        let Some(mut tail) = self.range(meta, len - first..len).await? else { return Ok(None) };
        let needed = match records::pack_tail_len(&tail, len) {
            Ok(needed) => needed,
            Err(why) => return Ok(Some(Err(why))),
        };
        if needed > MAX_INDEX_BYTES {
            return Ok(Some(Err(format!("a pack index of {needed} bytes (this build reads up to {MAX_INDEX_BYTES})"))));
        }
        if needed > tail.len() as u64 {
            let Some(longer) = self.range(meta, len - needed..len).await? else { return Ok(None) };
            tail = longer;
        }
        Ok(Some(records::decode_pack_index(&tail, len)))
    }

    /// The bytes of each of `ranges` (sorted, not overlapping) of an
    /// object, neighbours less than [`COALESCE_GAP`] apart read in one
    /// request; `None` when it is gone.
    pub(super) async fn ranges(
        &self,
        meta: &ObjectMeta,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Option<Vec<bytes::Bytes>>> {
        let mut out = Vec::with_capacity(ranges.len());
        let mut i = 0;
        while let Some(first) = ranges.get(i) {
            let mut j = i + 1;
            let mut end = first.end;
            while let Some(next) = ranges
                .get(j)
                .filter(|r| r.start >= end && r.start - end < COALESCE_GAP && r.end - first.start <= MAX_READ_BYTES)
            {
                end = next.end;
                j += 1;
            }
            let read = if end == first.start {
                bytes::Bytes::new() // empty members: stores refuse empty ranges
            } else {
                let Some(read) = self.range(meta, first.start..end).await? else { return Ok(None) };
                read
            };
            for r in &ranges[i..j] {
                out.push(read.slice((r.start - first.start) as usize..(r.end - first.start) as usize));
            }
            i = j;
        }
        Ok(Some(out))
    }

    /// The bytes of `range` of an object, `None` when it is gone. The
    /// whole object is asked for without a range: some S3 servers (`rclone
    /// serve s3`) answer a range that covers it all with a plain 200.
    async fn range(&self, meta: &ObjectMeta, range: std::ops::Range<u64>) -> Result<Option<bytes::Bytes>> {
        let want = range.end - range.start;
        let read = if range.start == 0 && range.end == meta.size {
            match self.store.get(&meta.location).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            }
        } else {
            self.store.get_range(&meta.location, range).await
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(e)),
        };
        if bytes.len() as u64 != want {
            return Err(super::RemoteError::Store {
                url: self.url.clone(),
                what: format!("{}: a range of {want} bytes came back with {}", meta.location, bytes.len()),
            }
            .into());
        }
        Ok(Some(bytes))
    }
}
