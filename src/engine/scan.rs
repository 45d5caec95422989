//! Scans: gathering a table's sources from the active buffer and a snapshot, and reading them as Arrow batches ([`ScanIter`]), merged or dealt out in block runs.

use super::*;

impl Engine {
    /// Reads `db`.`table`: buffered rows and files merged, newest write
    /// winning per value. See [`query`] for the output shape.
    pub fn scan(&self, db: &str, table: &str, req: &ScanRequest) -> Result<Vec<RecordBatch>> {
        self.scan_iter(db, table, req)?.collect()
    }

    /// [`Engine::scan`] as an iterator of batches. When the scan reads a
    /// single file section (the common case after compaction), blocks are
    /// decoded as the iterator is advanced, so memory stays at one batch; the
    /// pinned version keeps the files alive until the iterator is dropped.
    pub fn scan_iter(&self, db: &str, table: &str, req: &ScanRequest) -> Result<ScanIter> {
        self.scan_iter_counted(db, table, req, Arc::default())
    }

    /// [`Engine::scan_iter`], counting what it reads into `stats` as it
    /// goes (files, blocks, rows, bytes, and with
    /// [`ScanStats::probing_cache`] page-cache hits): the figures of query
    /// telemetry.
    pub fn scan_iter_counted(
        &self,
        db: &str,
        table: &str,
        req: &ScanRequest,
        stats: Arc<ScanStats>,
    ) -> Result<ScanIter> {
        let mut g = self.gather(db, table, req, &stats)?;
        if g.buffered.is_empty() && g.file_plans.len() == 1 {
            let scan = BlockScan::new(vec![g.file_plans.remove(0)], Arc::new(g.plan), g.table);
            return Ok(ScanIter { state: ScanState::Blocks(Box::new(scan)), stats });
        }
        g.merged(stats)
    }

    /// The scan of [`Engine::scan_iter_counted`] as at most `n` iterators
    /// that together return its rows, for readers that decode in parallel
    /// and need no order across them (SQL). When nothing is buffered and the
    /// files read do not overlap in time (compacted windows, or one file),
    /// their blocks are dealt out in contiguous runs of about equal rows,
    /// decoded lazily; each iterator's rows are sorted by series then time
    /// within a file. Otherwise the sources must be merged, and one iterator
    /// does it.
    pub fn scan_partitions(
        &self,
        db: &str,
        table: &str,
        req: &ScanRequest,
        n: usize,
        stats: Arc<ScanStats>,
    ) -> Result<Vec<ScanIter>> {
        let g = self.gather(db, table, req, &stats)?;
        if !g.buffered.is_empty() || !disjoint(&g.file_plans) {
            return Ok(vec![g.merged(stats)?]);
        }
        let plan = Arc::new(g.plan);
        let parts = deal_blocks(g.file_plans, n.max(1));
        Ok(parts
            .into_iter()
            .map(|sections| ScanIter {
                state: ScanState::Blocks(Box::new(BlockScan::new(sections, plan.clone(), g.table.clone()))),
                stats: stats.clone(),
            })
            .collect())
    }

    /// Resolves a scan and gathers its sources: the active buffer's rows,
    /// then a snapshot's frozen rows and planned file sections.
    pub(super) fn gather(&self, db: &str, table: &str, req: &ScanRequest, stats: &ScanStats) -> Result<Gathered> {
        loop {
            stats.reset();
            if let Some(g) = self.gather_once(db, table, req, stats)? {
                return Ok(g);
            }
        }
    }

    /// None when a restore swapped in while the sources were gathered:
    /// they may mix the old and the restored data.
    pub(super) fn gather_once(
        &self,
        db: &str,
        table: &str,
        req: &ScanRequest,
        stats: &ScanStats,
    ) -> Result<Option<Gathered>> {
        let first = self.snapshot();
        let database = first.catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
        let table_def = database
            .table(table)
            .ok_or_else(|| Error::TableNotFound { db: db.to_string(), table: table.to_string() })?
            .clone();
        let plan = Plan::new(db, &table_def, req)?;

        // Data moves active -> frozen -> files; reading the active buffer
        // before the snapshot means a concurrent flush can only make us see
        // a row twice (merged away), never miss it.
        let active = {
            let buffer = lock(&self.inner.active);
            buffer_rows(&buffer, &plan, database.id, &table_def)?
        };
        let snapshot = self.snapshot();
        if snapshot.epoch != first.epoch {
            return Ok(None);
        }

        let mut buffered = Vec::new();
        for buffer in snapshot.frozen_buffers() {
            buffered.extend(buffer_rows(buffer, &plan, database.id, &table_def)?);
        }
        buffered.extend(active);
        let file_plans = query::plan_files(&plan, &table_def, database.id, &snapshot.version);
        let files: HashSet<u64> = file_plans.iter().map(|(f, _)| f.meta.id).collect();
        stats.add_files(files.len() as u64);
        stats.add_buffer_rows(buffered.iter().map(|r| r.len() as u64).sum());
        Ok(Some(Gathered { plan, table: table_def, file_plans, buffered }))
    }
}

/// The batches of a scan; see [`Engine::scan_iter`].
pub struct ScanIter {
    state: ScanState,
    stats: Arc<ScanStats>,
}

pub(super) enum ScanState {
    /// Batches computed up front (merges of several sources).
    Ready(std::vec::IntoIter<RecordBatch>),
    /// One file section, decoded block by block.
    Blocks(Box<BlockScan>),
}

pub(super) struct BlockScan {
    /// File sections to read in turn; holding a file keeps it on disk.
    sections: std::vec::IntoIter<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    section: Option<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    next: usize,
    plan: Arc<Plan>,
    table: Arc<Table>,
    pending: std::vec::IntoIter<RecordBatch>,
}

impl BlockScan {
    pub(super) fn new(
        sections: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
        plan: Arc<Plan>,
        table: Arc<Table>,
    ) -> BlockScan {
        let mut sections = sections.into_iter();
        let section = sections.next();
        BlockScan { sections, section, next: 0, plan, table, pending: Vec::new().into_iter() }
    }
}

/// What a scan reads, gathered from one view of the engine.
pub(super) struct Gathered {
    plan: Plan,
    table: Arc<Table>,
    file_plans: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    buffered: Vec<Rows>,
}

impl Gathered {
    /// Reads every source and merges them (newest write wins) into batches.
    pub(super) fn merged(self, stats: Arc<ScanStats>) -> Result<ScanIter> {
        let mut sources = query::read_files(&self.file_plans, &stats)?;
        sources.extend(self.buffered.into_iter().map(|r| vec![r]));
        let batches = query::finish(&self.plan, &self.table, sources)?;
        Ok(ScanIter { state: ScanState::Ready(batches.into_iter()), stats })
    }
}

/// True when the planned sections can be read without a merge: one section
/// per file, files not overlapping in time (so no row key is in two).
pub(super) fn disjoint(plans: &[(Arc<crate::tree::LiveFile>, FamilyPlan)]) -> bool {
    let mut ranges: Vec<(i64, i64, u64)> =
        plans.iter().map(|(f, _)| (f.meta.time_min, f.meta.time_max, f.meta.id)).collect();
    ranges.sort_unstable();
    ranges.windows(2).all(|w| w[0].2 != w[1].2 && w[0].1 < w[1].0)
}

/// Splits the blocks of `plans` into at most `n` runs of contiguous blocks
/// with about equal rows; each run is a list of sections.
pub(super) fn deal_blocks(
    plans: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    n: usize,
) -> Vec<Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>> {
    let block_rows = |f: &crate::tree::LiveFile, p: &FamilyPlan| -> u64 {
        let fam = &f.reader.footer().families[p.family];
        u64::from(fam.block_rows).max(1)
    };
    let total: u64 = plans.iter().map(|(f, p)| block_rows(f, p) * p.blocks.len() as u64).sum();
    let share = total.div_ceil(n as u64).max(1);
    let mut parts: Vec<Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>> = vec![Vec::new()];
    let mut filled = 0u64;
    for (file, plan) in plans {
        let rows = block_rows(&file, &plan);
        let emptied = || {
            let mut p = plan.clone();
            p.blocks.clear();
            p
        };
        let mut current = emptied();
        for pick in &plan.blocks {
            if filled >= share && parts.len() < n {
                if !current.blocks.is_empty() {
                    let done = std::mem::replace(&mut current, emptied());
                    if let Some(p) = parts.last_mut() {
                        p.push((file.clone(), done));
                    }
                }
                parts.push(Vec::new());
                filled = 0;
            }
            current.blocks.push(*pick);
            filled += rows;
        }
        if !current.blocks.is_empty()
            && let Some(p) = parts.last_mut()
        {
            p.push((file.clone(), current));
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

impl Iterator for ScanIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.next_batch();
        if let Some(Ok(b)) = &batch {
            self.stats.add_returned(b.num_rows() as u64);
        }
        batch
    }
}

impl std::fmt::Debug for ScanIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanIter").field("read", &self.stats.figures()).finish_non_exhaustive()
    }
}

impl ScanIter {
    /// What the scan has read so far.
    pub fn stats(&self) -> &Arc<ScanStats> {
        &self.stats
    }

    pub(super) fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        match &mut self.state {
            ScanState::Ready(batches) => batches.next().map(Ok),
            ScanState::Blocks(scan) => loop {
                if let Some(batch) = scan.pending.next() {
                    return Some(Ok(batch));
                }
                let (file, family) = scan.section.as_ref()?;
                let Some(&pick) = family.blocks.get(scan.next) else {
                    scan.section = scan.sections.next();
                    scan.next = 0;
                    continue;
                };
                scan.next += 1;
                self.stats.add_block(file.meta.level, file.reader.block_cost(family, &pick, self.stats.probes_cache()));
                let rows = match file.reader.read_block(family, &pick) {
                    Ok(Some(rows)) => rows,
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                };
                match query::batches_of(&scan.plan, &scan.table, rows) {
                    Ok(batches) => scan.pending = batches.into_iter(),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

pub(super) fn buffer_rows(buffer: &Buffer, plan: &Plan, db_id: u32, table: &Table) -> Result<Option<Rows>> {
    let Some(tb) = buffer.table(db_id, table.id) else { return Ok(None) };
    if plan.tag_filter.is_none() {
        return Ok(None);
    }
    let (lo, hi) = tb.time_range();
    if !plan.time.overlaps(lo, hi) {
        return Ok(None);
    }
    let filter = |k: &crate::series::SeriesKey| plan.series_matches(k);
    let series: Option<&dyn Fn(&crate::series::SeriesKey) -> bool> =
        if plan.tag_filter.as_ref().is_some_and(|f| f.is_empty()) { None } else { Some(&filter) };
    let rows =
        tb.rows(&Selection { columns: &plan.fields, time: plan.time, series, keep_null_rows: plan.keep_null_rows })?;
    Ok((!rows.is_empty()).then_some(rows))
}
