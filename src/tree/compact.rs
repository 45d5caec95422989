//! Compaction: merges a table's flushed (gen0) files, together with the
//! compacted files of the windows they touch, into one file per table per 24h
//! UTC window. All gen0 files of a table go into one job, which keeps the
//! rule scans rely on: every compacted file is older than every gen0 file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use super::{Edit, FileMeta, LEVEL_COMPACTED, LEVEL_GEN0, LiveFile, Tree, Version, window_start};
use crate::catalog::Table;
use crate::error::Result;
use crate::rows::{Rows, merge};
use crate::segment::{TableInfo, WriteConfig, write_segment};

/// The inputs of one table's compaction, oldest data first.
#[derive(Debug, Clone)]
pub struct Job {
    pub db_id: u32,
    pub table_id: u32,
    pub inputs: Vec<Arc<LiveFile>>,
}

/// One job per table that has gen0 files.
pub fn plan(version: &Version) -> Vec<Job> {
    let tables: BTreeSet<(u32, u32)> =
        version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0).map(|f| (f.meta.db_id, f.meta.table_id)).collect();
    tables
        .into_iter()
        .map(|(db_id, table_id)| {
            let files = version.table_files(db_id, table_id);
            // The windows the gen0 files reach, as inclusive (first, last)
            // window starts: a compacted file of any of them is merged again.
            let reach: Vec<(i64, i64)> = files
                .iter()
                .filter(|f| f.meta.level == LEVEL_GEN0)
                .map(|f| (window_start(f.meta.time_min), window_start(f.meta.time_max)))
                .collect();
            let inputs = files
                .into_iter()
                .filter(|f| {
                    f.meta.level == LEVEL_GEN0
                        || f.meta.window_start_ns.is_some_and(|w| reach.iter().any(|&(a, b)| a <= w && w <= b))
                })
                .cloned()
                .collect();
            Job { db_id, table_id, inputs }
        })
        .collect()
}

/// Runs `job`: writes the compacted files and returns the edit that swaps
/// them in. `table` is the catalog's table (a superset of every input's columns).
pub fn run(job: &Job, tree: &Tree, db_name: &str, table: &Table, config: WriteConfig, now_ns: i64) -> Result<Edit> {
    let mut per_family: Vec<(u32, Vec<Rows>)> = Vec::new();
    for input in &job.inputs {
        for (family, rows) in input.reader.read_all()? {
            match per_family.iter_mut().find(|(f, _)| *f == family) {
                Some((_, list)) => list.push(rows),
                None => per_family.push((family, vec![rows])),
            }
        }
    }
    let merged: Vec<(u32, Rows)> =
        per_family.into_par_iter().map(|(f, inputs)| merge(inputs).map(|r| (f, r))).collect::<Result<_>>()?;
    let windows: BTreeSet<i64> = merged.iter().flat_map(|(_, r)| r.time.iter().map(|&t| window_start(t))).collect();
    let info =
        TableInfo { db_id: job.db_id, db: db_name.to_string(), table_id: job.table_id, table: table.name.clone() };

    let results: Vec<(Option<PathBuf>, Result<Option<FileMeta>>)> = windows
        .par_iter()
        .map(|&w| {
            let mut allocated = None;
            let result = (|| -> Result<Option<FileMeta>> {
                let mut families = Vec::new();
                for (fid, rows) in &merged {
                    let Some(family) = table.family(*fid) else { continue };
                    let in_window = if windows.len() == 1 {
                        rows.clone()
                    } else {
                        let keep: Vec<bool> = rows.time.iter().map(|&t| window_start(t) == w).collect();
                        rows.filter(&keep)?
                    };
                    families.push((family.clone(), in_window));
                }
                if families.iter().all(|(_, r)| r.is_empty()) {
                    return Ok(None);
                }
                let (id, path) = tree.allocate();
                allocated = Some(path.clone());
                let written = write_segment(&path, &info, &table.columns, families, config, now_ns)?;
                Ok(Some(FileMeta::written(id, (job.db_id, job.table_id), LEVEL_COMPACTED, Some(w), &written)))
            })();
            (allocated, result)
        })
        .collect();
    let outputs: Vec<FileMeta> = super::keep_all_or_discard(results)?.into_iter().flatten().collect();
    Ok(Edit { add: outputs, remove: job.inputs.iter().map(|f| f.meta.id).collect(), ..Edit::default() })
}
