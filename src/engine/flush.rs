//! Flushes: freezing the active buffer and writing gen0 files, one per table and window.

use super::*;

impl Inner {
    /// Returns how many frozen buffers it installed as files.
    pub(super) fn flush(&self) -> Result<usize> {
        let _serial = lock(&self.flush_serial);
        let mut installed = 0;
        {
            let mut active = lock(&self.active);
            if active.rows() > 0 {
                let wal_next = self.wal.rotate().map_err(|e| self.wal_failed(e))?;
                let buffer = Arc::new(mem::take(&mut *active));
                self.publish(|s| {
                    let mut next = s.clone();
                    next.frozen.push(Frozen { buffer, wal_next });
                    Ok((next, ()))
                })?;
            }
        }
        loop {
            let snapshot = self.snapshot();
            let Some(Frozen { buffer, wal_next }) = snapshot.frozen.first().cloned() else { break };
            let catalog = snapshot.catalog.clone();
            drop(snapshot);
            let files = self.write_gen0(&buffer, &catalog)?;
            // The files and the buffer's leaving in one snapshot: a reader
            // sees the rows in one or the other.
            self.publish(|s| {
                let version = self.tree.install(Edit {
                    add: files,
                    wal_replay_from: Some(wal_next),
                    catalog_sequence: Some(catalog.sequence),
                    ..Edit::default()
                })?;
                let frozen = s.frozen.iter().filter(|f| !Arc::ptr_eq(&f.buffer, &buffer)).cloned().collect();
                Ok((Snapshot { version, frozen, ..s.clone() }, ()))
            })?;
            self.wal.remove_files_before(wal_next)?;
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            installed += 1;
        }
        Ok(installed)
    }

    /// A flush, and the hooks told unless it installed nothing (a failed
    /// one may follow installed buffers).
    pub(super) fn flush_and_tell(&self) -> Result<()> {
        let flushed = self.flush();
        if !matches!(flushed, Ok(0)) {
            self.installed(InstallCause::Flush);
        }
        flushed.map(|_| ())
    }

    /// Writes the buffer's rows as gen0 files: one per table and 24h window,
    /// so a compaction reads only the files of the windows it merges (a
    /// backfill in series order would otherwise flush files that each
    /// span every window it covers).
    pub(super) fn write_gen0(&self, buffer: &Buffer, catalog: &Catalog) -> Result<Vec<FileMeta>> {
        let now = self.clock.now_ns();
        let tables: Vec<_> = buffer.tables().collect();
        let results: Vec<(Option<PathBuf>, Result<FileMeta>)> = tables
            .par_iter()
            .flat_map_iter(|&((db_id, table_id), tb)| {
                let mut out = Vec::new();
                let prepared = (|| -> Result<(TableInfo, &crate::catalog::Table, Vec<FamilyRows>)> {
                    let database = catalog.database_by_id(db_id).ok_or_else(|| Error::Corrupt {
                        path: DataDir::new(&self.dir).catalog_dir(),
                        what: format!("buffered rows for database id {db_id}, which the catalog lacks"),
                    })?;
                    let table = database.table_by_id(table_id).ok_or_else(|| Error::Corrupt {
                        path: DataDir::new(&self.dir).catalog_dir(),
                        what: format!(
                            "buffered rows for table id {table_id} of {}, which the catalog lacks",
                            database.name
                        ),
                    })?;
                    // Buffered columns by family in one pass: a wide table has
                    // hundreds of families.
                    let mut by_family: Vec<Vec<u32>> = vec![Vec::new(); table.families.len()];
                    for id in tb.column_ids() {
                        if let Some(ids) =
                            table.column_by_id(id).and_then(|c| c.family).and_then(|f| by_family.get_mut(f as usize))
                        {
                            ids.push(id);
                        }
                    }
                    let mut families = Vec::new();
                    for (family, ids) in table.families.iter().zip(by_family) {
                        if ids.is_empty() {
                            continue;
                        }
                        let rows = tb.rows(&Selection {
                            columns: &ids,
                            time: TimeRange::ALL,
                            series: None,
                            keep_null_rows: false,
                        })?;
                        families.push((family.clone(), rows));
                    }
                    let info = TableInfo { db_id, db: database.name.clone(), table_id, table: table.name.clone() };
                    Ok((info, table, families))
                })();
                match prepared {
                    Err(e) => out.push((None, Err(e))),
                    Ok((info, table, families)) => {
                        let write = |families: Result<Vec<FamilyRows>>| {
                            let (id, path) = self.tree.allocate();
                            let written = families.and_then(|families| {
                                write_segment(&path, &info, &table.columns, families, self.config.gen0, now)
                            });
                            (
                                Some(path),
                                written.map(|w| FileMeta::written(id, (db_id, table_id), LEVEL_GEN0, None, &w)),
                            )
                        };
                        let parts = crate::tree::window_parts(&families);
                        if parts.len() == 1 {
                            out.push(write(Ok(families)));
                        } else {
                            for (_, part) in &parts {
                                // One window at a time: only its rows are copied.
                                let taken = part
                                    .iter()
                                    .map(|(f, idx)| Ok((families[*f].0.clone(), families[*f].1.take(idx)?)))
                                    .collect();
                                out.push(write(taken));
                                if out.last().is_some_and(|(_, r)| r.is_err()) {
                                    break;
                                }
                            }
                        }
                    }
                }
                out
            })
            .collect();
        crate::tree::keep_all_or_discard(results)
    }
}
