//! Reads a `.seg` file through memmap2. Opening validates the header,
//! trailer, footer checksum and the footer's structure, so that later block
//! reads only have to check each block's own crc32; nothing read from the
//! file is trusted before it is checked.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt64Array};
use arrow::buffer::NullBuffer;
use memmap2::{Advice, Mmap};

use super::maps::{Mapping, map_file};

use super::codec;
use super::format::*;
use crate::catalog::{ColumnKind, FieldType};
use crate::error::{Error, Result};
use crate::rows::Rows;
use crate::series::SeriesKey;
use crate::time_range::TimeRange;

/// An open, validated segment.
#[derive(Debug)]
pub struct SegmentReader {
    path: PathBuf,
    len: u64,
    /// Held within the process's mapping budget (see [`super::maps`]).
    map: Mapping,
    footer: Footer,
    series: Arc<Vec<SeriesKey>>,
    /// Per family, the first row of each series run.
    run_starts: Vec<Vec<usize>>,
}

/// What one block read costs; see [`SegmentReader::block_cost`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCost {
    /// Rows in the block (before filtering).
    pub rows: u64,
    /// Stored (compressed) bytes read.
    pub bytes: u64,
    /// All of those bytes were in the OS page cache before the read.
    pub resident: Option<bool>,
}

/// Whether every page of `[offset, offset + len)` of the mapping is in
/// the page cache (`mincore(2)`).
#[cfg(unix)]
fn resident_pages(map: &Mmap, offset: usize, len: usize) -> Option<bool> {
    let page = page_size()?;
    let end = offset.checked_add(len).filter(|&e| e <= map.len())?;
    if len == 0 {
        return Some(true);
    }
    let start = offset - offset % page;
    let mut pages = vec![0u8; (end - start).div_ceil(page)];
    // SAFETY: `[start, end)` lies inside `map`, which stays mapped while
    // borrowed; mmap returns a page-aligned base and `start` is
    // a multiple of the page size, as mincore requires; `pages` holds
    // one byte per page of the span. mincore only reads page tables.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mincore(map.as_ptr().add(start) as *mut libc::c_void, end - start, pages.as_mut_ptr()) };
    (rc == 0).then(|| pages.iter().all(|p| p & 1 == 1))
}

#[cfg(not(unix))]
fn resident_pages(_map: &Mmap, _offset: usize, _len: usize) -> Option<bool> {
    None
}

/// The system's page size, read once.
#[cfg(unix)]
fn page_size() -> Option<usize> {
    static PAGE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        #[allow(unsafe_code)]
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n > 0)
    })
}

/// Which rows of a family to read.
#[derive(Clone, Copy)]
pub struct Read<'a> {
    /// Field column ids; rows where all of them are null are left out.
    pub columns: &'a [u32],
    pub time: TimeRange,
    pub series: Option<&'a dyn Fn(&SeriesKey) -> bool>,
    /// Keep rows where every one of `columns` is null, and read the row
    /// keys of a section that holds none of `columns`.
    pub keep_null_rows: bool,
}

/// A planned read of one family section: the blocks to decode.
#[derive(Debug, Clone)]
pub struct FamilyPlan {
    /// Index into `Footer::families`.
    pub family: usize,
    /// Field column ids present in the section.
    pub columns: Vec<u32>,
    pub time: TimeRange,
    /// Row ranges of the wanted series, ascending.
    ranges: Vec<Range<usize>>,
    /// The blocks to read, in row order.
    pub blocks: Vec<BlockPick>,
    /// Rows whose planned columns are all null are kept.
    pub keep_null_rows: bool,
}

/// One block of a [`FamilyPlan`].
#[derive(Debug, Clone, Copy)]
pub struct BlockPick {
    pub block: usize,
    range_i: usize,
    /// Every row of the block is wanted (no filtering needed).
    whole: bool,
}

impl Read<'_> {
    /// Every row and the given columns.
    pub fn all(columns: &[u32]) -> Read<'_> {
        Read { columns, time: TimeRange::ALL, series: None, keep_null_rows: false }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl SegmentReader {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<SegmentReader> {
        let map = map_file(path)?;
        // Opening touches only the header and the footer; with the default
        // advice each of those faults reads ahead megabytes of blocks, which
        // made a cold open of a data folder read most of it. Scans read
        // blocks in order, so the default comes back once the footer is in.
        // Advice is a hint: a kernel that refuses it changes nothing.
        let _ = map.advise(Advice::Random);
        let reader = Self::from_map(path, map)?;
        if let Ok(map) = reader.map.get() {
            let _ = map.advise(Advice::Normal);
        }
        Ok(reader)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<SegmentReader> {
        let corrupt = |what: String| Error::Corrupt { path: path.to_path_buf(), what };
        let b = &map[..];
        if b.len() < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(format!("{} bytes is too short for a segment", b.len())));
        }
        if b[..4] != MAGIC {
            return Err(corrupt("bad header magic".into()));
        }
        let version = u16_at(b, 4);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if u16_at(b, 6) != 0 || u64_at(b, 8) != 0 {
            return Err(corrupt("unknown header flags".into()));
        }
        let t = b.len() - TRAILER_LEN;
        if b[t + 12..t + 16] != MAGIC {
            return Err(corrupt("bad trailer magic (truncated file?)".into()));
        }
        let footer_len = u64_at(b, t);
        let footer_crc = u32_at(b, t + 8);
        let max_footer = (t - HEADER_LEN) as u64;
        if footer_len > max_footer || footer_len > MAX_FOOTER_LEN {
            return Err(corrupt(format!("footer length {footer_len} exceeds the file")));
        }
        let footer_start = t - footer_len as usize;
        let footer_bytes = &b[footer_start..t];
        if crc32fast::hash(footer_bytes) != footer_crc {
            return Err(corrupt("footer checksum mismatch".into()));
        }
        let mut footer: Footer =
            postcard::from_bytes(footer_bytes).map_err(|e| corrupt(format!("undecodable footer: {e}")))?;
        let run_starts = validate(&footer, footer_start as u64).map_err(corrupt)?;
        // Moved, not copied: a million-series directory is most of a footer.
        let series = Arc::new(std::mem::take(&mut footer.series));
        let len = b.len() as u64;
        Ok(SegmentReader { path: path.to_path_buf(), len, map: Mapping::new(path, map), footer, series, run_starts })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The footer, without its series directory (`series` is empty here:
    /// the directory is [`SegmentReader::series`]).
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The series directory.
    pub fn series(&self) -> &Arc<Vec<SeriesKey>> {
        &self.series
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is mapped now; the process's mapping budget drops
    /// the least recently read mappings (see [`super::maps`]).
    pub fn is_mapped(&self) -> bool {
        self.map.is_mapped()
    }

    /// Always false: a valid segment has a header and a trailer.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn block<'m>(&self, map: &'m Mmap, meta: &BlockMeta) -> Result<&'m [u8]> {
        // Offsets were validated at open, against this file's length.
        let bytes = map
            .get(meta.offset as usize..meta.offset as usize + meta.len as usize)
            .ok_or_else(|| Error::Corrupt { path: self.path.clone(), what: "file shorter than at open".into() })?;
        if crc32fast::hash(bytes) != meta.crc32 {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                what: format!("block at offset {} fails its checksum", meta.offset),
            });
        }
        Ok(bytes)
    }

    /// The payloads reading `pick` of `plan` touches: its time block and
    /// the planned columns' blocks.
    fn block_metas(&self, plan: &FamilyPlan, pick: &BlockPick) -> Vec<&BlockMeta> {
        let fam = &self.footer.families[plan.family];
        let mut metas = vec![&fam.time_blocks[pick.block]];
        for id in &plan.columns {
            if let Some(chunk) = fam.columns.iter().find(|c| c.column == *id) {
                metas.push(&chunk.blocks[pick.block]);
            }
        }
        metas
    }

    /// What reading `pick` of `plan` costs: its rows, the stored bytes of
    /// its time block and planned column blocks, and, with `probe`, whether
    /// all those bytes were in the OS page cache before the read (`None`
    /// where that cannot be told or was not asked). Call it before
    /// [`SegmentReader::read_block`], which faults the pages in.
    pub fn block_cost(&self, plan: &FamilyPlan, pick: &BlockPick, probe: bool) -> BlockCost {
        let fam = &self.footer.families[plan.family];
        let b = pick.block;
        let step = fam.block_rows as u64;
        let rows = step.min(fam.rows.saturating_sub(b as u64 * step));
        let metas = self.block_metas(plan, pick);
        let bytes = metas.iter().map(|m| u64::from(m.len)).sum();
        if !probe {
            return BlockCost { rows, bytes, resident: None };
        }
        let Ok(map) = self.map.get() else { return BlockCost { rows, bytes, resident: None } };
        let mut resident = Some(true);
        for m in &metas {
            match resident_pages(&map, m.offset as usize, m.len as usize) {
                Some(true) => {}
                Some(false) => {
                    resident = Some(false);
                    break;
                }
                None => resident = None,
            }
        }
        BlockCost { rows, bytes, resident }
    }

    /// Drops the pages of `pick`'s blocks from this process's resident set
    /// (the OS page cache keeps them): a compaction reads every block once,
    /// and without this the mapped pages of all its inputs would count
    /// against the process until the kernel needed the memory back.
    pub fn release_block(&self, plan: &FamilyPlan, pick: &BlockPick) {
        let Ok(map) = self.map.get() else { return };
        for m in self.block_metas(plan, pick) {
            // SAFETY: the range lies inside the mapping (block offsets were
            // validated against the file at open). The mapping is a
            // read-only shared file mapping that is never written, so
            // MADV_DONTNEED only unmaps pages: a later access, by any reader
            // of the same mapping, faults the same file bytes back in.
            #[allow(unsafe_code)]
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, m.offset as usize, m.len as usize)
            };
        }
    }

    fn codec_err(&self, meta: &BlockMeta, e: codec::CodecError) -> Error {
        Error::Corrupt { path: self.path.clone(), what: format!("block at offset {}: {e}", meta.offset) }
    }

    /// Re-reads every block and checks its crc32 and encoding.
    pub fn check_all_blocks(&self) -> Result<()> {
        for fam in 0..self.footer.families.len() {
            let ids: Vec<u32> = self.footer.families[fam].columns.iter().map(|c| c.column).collect();
            self.read_family(fam, &Read::all(&ids))?;
        }
        Ok(())
    }

    fn field_type(&self, column: u32) -> Option<FieldType> {
        self.footer.columns.iter().find(|c| c.id == column).and_then(|c| match ColumnKind::from(c.kind) {
            ColumnKind::Field(t) => Some(t),
            ColumnKind::Tag => None,
        })
    }

    /// Plans a read of family section `family` (an index into
    /// `Footer::families`): which blocks hold wanted rows.
    pub fn plan_family(&self, family: usize, read: &Read<'_>) -> FamilyPlan {
        let mut plan = FamilyPlan {
            family,
            columns: Vec::new(),
            time: read.time,
            ranges: Vec::new(),
            blocks: Vec::new(),
            keep_null_rows: read.keep_null_rows,
        };
        let Some(fam) = self.footer.families.get(family) else { return plan };
        plan.columns = read.columns.iter().copied().filter(|id| fam.columns.iter().any(|c| c.column == *id)).collect();
        if (plan.columns.is_empty() && !read.columns.is_empty() && !read.keep_null_rows)
            || !read.time.overlaps(fam.time_min, fam.time_max)
        {
            return plan;
        }
        let starts = &self.run_starts[family];
        for (i, &(s, count)) in fam.series_runs.iter().enumerate() {
            if read.series.is_none_or(|f| f(&self.series[s as usize])) {
                let r = starts[i]..starts[i] + count as usize;
                match plan.ranges.last_mut() {
                    Some(last) if last.end == r.start => last.end = r.end,
                    _ => plan.ranges.push(r),
                }
            }
        }
        let rows = fam.rows as usize;
        let step = fam.block_rows as usize;
        let mut range_i = 0;
        for (b, tmeta) in fam.time_blocks.iter().enumerate() {
            let (bs, be) = (b * step, ((b + 1) * step).min(rows));
            let (Stat::I64(bmin), Stat::I64(bmax)) = (tmeta.min, tmeta.max) else { continue };
            if !read.time.overlaps(bmin, bmax) {
                continue;
            }
            while range_i < plan.ranges.len() && plan.ranges[range_i].end <= bs {
                range_i += 1;
            }
            let covered = plan.ranges[range_i..]
                .iter()
                .take_while(|r| r.start < be)
                .map(|r| r.end.min(be) - r.start.max(bs))
                .sum::<usize>();
            if covered > 0 {
                plan.blocks.push(BlockPick {
                    block: b,
                    range_i,
                    whole: covered == be - bs && read.time.covers(bmin, bmax),
                });
            }
        }
        plan
    }

    /// Reads one planned block: its wanted rows, or `None` when none remain.
    pub fn read_block(&self, plan: &FamilyPlan, pick: &BlockPick) -> Result<Option<Rows>> {
        let fam = &self.footer.families[plan.family];
        let step = fam.block_rows as usize;
        let b = pick.block;
        let (bs, be) = (b * step, ((b + 1) * step).min(fam.rows as usize));
        let n = be - bs;
        let tmeta = &fam.time_blocks[b];
        let map = self.map.get()?;
        let mut time = Vec::with_capacity(n);
        codec::decode_timestamps(self.block(&map, tmeta)?, n, &mut time).map_err(|e| self.codec_err(tmeta, e))?;
        let mut series = Vec::with_capacity(n);
        self.push_series(plan.family, bs, be, &mut series);
        let mut columns = Vec::with_capacity(plan.columns.len());
        for id in &plan.columns {
            let Some(chunk) = fam.columns.iter().find(|c| c.column == *id) else { continue };
            let meta = &chunk.blocks[b];
            let mut acc = Acc::new(self.field_type(chunk.column).unwrap_or(FieldType::Float), n);
            acc.push_block(self.block(&map, meta)?, n, meta.nulls as usize).map_err(|e| self.codec_err(meta, e))?;
            columns.push((chunk.column, acc.finish()));
        }
        let mut rows = Rows { series_keys: self.series.clone(), series, time, columns };
        if !pick.whole {
            let mut keep = Vec::with_capacity(n);
            let mut r = pick.range_i;
            for row in bs..be {
                while r < plan.ranges.len() && plan.ranges[r].end <= row {
                    r += 1;
                }
                let in_series = r < plan.ranges.len() && plan.ranges[r].start <= row;
                let t = rows.time[row - bs];
                keep.push(in_series && plan.time.contains(t));
            }
            rows = rows.filter(&keep)?;
        }
        let rows = if plan.keep_null_rows { rows } else { rows.drop_all_null_rows()? };
        Ok((!rows.is_empty()).then_some(rows))
    }

    /// Reads rows of family section `family`, one [`Rows`] per block read,
    /// in row order. The chunks share the file's series directory; together
    /// they are sorted and unique, so they can be used one by one or
    /// concatenated.
    pub fn read_family(&self, family: usize, read: &Read<'_>) -> Result<Vec<Rows>> {
        let plan = self.plan_family(family, read);
        let mut out = Vec::with_capacity(plan.blocks.len());
        for pick in &plan.blocks {
            out.extend(self.read_block(&plan, pick)?);
        }
        Ok(out)
    }

    fn push_series(&self, family: usize, bs: usize, be: usize, out: &mut Vec<u32>) {
        let fam = &self.footer.families[family];
        let starts = &self.run_starts[family];
        let mut i = starts.partition_point(|&s| s <= bs).saturating_sub(1);
        let mut row = bs;
        while row < be && i < fam.series_runs.len() {
            let (s, count) = fam.series_runs[i];
            let end = (starts[i] + count as usize).min(be);
            out.extend(std::iter::repeat_n(s, end - row));
            row = end;
            i += 1;
        }
    }

    /// Every family section with all its columns: (family id, rows).
    pub fn read_all(&self) -> Result<Vec<(u32, Rows)>> {
        (0..self.footer.families.len())
            .map(|f| {
                let ids: Vec<u32> = self.footer.families[f].columns.iter().map(|c| c.column).collect();
                Ok((self.footer.families[f].id, Rows::concat(self.read_family(f, &Read::all(&ids))?)?))
            })
            .collect()
    }
}

/// Checks the footer's structure against the file; returns each family's run starts.
fn validate(f: &Footer, footer_start: u64) -> std::result::Result<Vec<Vec<usize>>, String> {
    for key in &f.series {
        for (col, _) in key {
            if !f.columns.iter().any(|c| c.id == *col && c.kind == ColumnKindDef::Tag) {
                return Err(format!("series key names column {col}, which is not a tag of the file"));
            }
        }
    }
    let check_block = |m: &BlockMeta| -> std::result::Result<(), String> {
        let end = m.offset.checked_add(u64::from(m.len)).ok_or("block offset overflows")?;
        if m.offset < HEADER_LEN as u64 || end > footer_start {
            return Err(format!("block at offset {} (len {}) lies outside the data area", m.offset, m.len));
        }
        Ok(())
    };
    let mut all_starts = Vec::with_capacity(f.families.len());
    for fam in &f.families {
        if fam.block_rows == 0 || fam.block_rows > MAX_BLOCK_ROWS {
            return Err(format!("family {} has block size {}", fam.name, fam.block_rows));
        }
        let blocks = fam.rows.div_ceil(u64::from(fam.block_rows));
        if fam.time_blocks.len() as u64 != blocks {
            return Err(format!("family {} has {} time blocks for {} rows", fam.name, fam.time_blocks.len(), fam.rows));
        }
        let mut starts = Vec::with_capacity(fam.series_runs.len());
        let mut total = 0u64;
        for &(s, count) in &fam.series_runs {
            if s as usize >= f.series.len() || count == 0 {
                return Err(format!("family {} has a bad series run ({s}, {count})", fam.name));
            }
            starts.push(total as usize);
            total += u64::from(count);
        }
        if total != fam.rows {
            return Err(format!("family {} runs cover {total} rows, not {}", fam.name, fam.rows));
        }
        for m in &fam.time_blocks {
            check_block(m)?;
        }
        for chunk in &fam.columns {
            let is_field = f.columns.iter().any(|c| c.id == chunk.column && matches!(c.kind, ColumnKindDef::Field(_)));
            if !is_field {
                return Err(format!(
                    "family {} stores column {}, which is not a field of the file",
                    fam.name, chunk.column
                ));
            }
            if chunk.blocks.len() != fam.time_blocks.len() {
                return Err(format!(
                    "column {} has {} blocks, time has {}",
                    chunk.column,
                    chunk.blocks.len(),
                    fam.time_blocks.len()
                ));
            }
            for (b, m) in chunk.blocks.iter().enumerate() {
                check_block(m)?;
                let n = (fam.rows - b as u64 * u64::from(fam.block_rows)).min(u64::from(fam.block_rows));
                if u64::from(m.nulls) > n {
                    return Err(format!("column {} block {b} claims {} nulls in {n} rows", chunk.column, m.nulls));
                }
            }
        }
        all_starts.push(starts);
    }
    Ok(all_starts)
}

/// Accumulates decoded blocks of one column.
enum Acc {
    I64(Vec<i64>, Option<Vec<bool>>),
    U64(Vec<u64>, Option<Vec<bool>>),
    F64(Vec<f64>, Option<Vec<bool>>),
    Bool(Vec<bool>, Option<Vec<bool>>),
    Str(Vec<Option<String>>),
}

/// Spreads the non-null `values` (appended at `at`) over `valid`.
fn scatter<T: Default + Copy>(values: &mut Vec<T>, at: usize, valid: &[bool]) {
    let dense: Vec<T> = values.split_off(at);
    let mut it = dense.into_iter();
    values.extend(valid.iter().map(|&v| if v { it.next().unwrap_or_default() } else { T::default() }));
}

impl Acc {
    fn new(t: FieldType, capacity: usize) -> Acc {
        match t {
            FieldType::Integer => Acc::I64(Vec::with_capacity(capacity), None),
            FieldType::UInteger => Acc::U64(Vec::with_capacity(capacity), None),
            FieldType::Float => Acc::F64(Vec::with_capacity(capacity), None),
            FieldType::Boolean => Acc::Bool(Vec::with_capacity(capacity), None),
            FieldType::String => Acc::Str(Vec::with_capacity(capacity)),
        }
    }

    fn push_block(&mut self, payload: &[u8], rows: usize, nulls: usize) -> std::result::Result<(), codec::CodecError> {
        let (validity, data) = if nulls > 0 {
            if payload.len() < 4 {
                return Err(codec::CodecError::Truncated { what: "validity bitmap" });
            }
            let vlen = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
            if payload.len() - 4 < vlen {
                return Err(codec::CodecError::Truncated { what: "validity bitmap" });
            }
            let mut valid = Vec::with_capacity(rows);
            codec::decode_bool(&payload[4..4 + vlen], rows, &mut valid)?;
            let set = valid.iter().filter(|&&v| v).count();
            if set != rows - nulls {
                return Err(codec::CodecError::CountMismatch { expected: rows - nulls, actual: set });
            }
            (Some(valid), &payload[4 + vlen..])
        } else {
            (None, payload)
        };
        let count = rows - nulls;
        macro_rules! prim {
            ($values:expr, $valid:expr, $decode:path) => {{
                let at = $values.len();
                $decode(data, count, $values)?;
                match validity {
                    Some(v) => {
                        scatter($values, at, &v);
                        $valid.get_or_insert_with(|| vec![true; at]).extend(v);
                    }
                    None => {
                        if let Some(all) = $valid.as_mut() {
                            all.extend(std::iter::repeat_n(true, rows));
                        }
                    }
                }
            }};
        }
        match self {
            Acc::I64(values, valid) => prim!(values, valid, codec::decode_i64),
            Acc::U64(values, valid) => prim!(values, valid, codec::decode_u64),
            Acc::F64(values, valid) => prim!(values, valid, codec::decode_f64),
            Acc::Bool(values, valid) => prim!(values, valid, codec::decode_bool),
            Acc::Str(out) => {
                let decoded = codec::decode_str(data, count)?;
                let mut keys = decoded.keys.into_iter();
                let mut next = || keys.next().and_then(|k| decoded.dictionary.get(k as usize).cloned());
                match validity {
                    Some(v) => out.extend(v.iter().map(|&ok| if ok { next() } else { None })),
                    None => out.extend((0..rows).map(|_| next())),
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        let nulls = |v: Option<Vec<bool>>| v.map(NullBuffer::from).filter(|n| n.null_count() > 0);
        match self {
            Acc::I64(v, valid) => Arc::new(Int64Array::new(v.into(), nulls(valid))),
            Acc::U64(v, valid) => Arc::new(UInt64Array::new(v.into(), nulls(valid))),
            Acc::F64(v, valid) => Arc::new(Float64Array::new(v.into(), nulls(valid))),
            Acc::Bool(v, valid) => Arc::new(BooleanArray::new(v.into(), nulls(valid))),
            Acc::Str(v) => Arc::new(StringArray::from(v)),
        }
    }
}
