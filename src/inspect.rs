//! Human-readable descriptions of a segment file or a data folder, for
//! `quipu inspect`. Read-only: it never takes the data folder's lock or
//! changes a file, so it can look at a folder a running engine owns.

use std::fmt::Write as _;
use std::path::Path;

use crate::catalog::CatalogStore;
use crate::catalog::{Catalog, ColumnKind};
use crate::error::Result;
use crate::segment::SegmentReader;
use crate::segment::format::{FORMAT_VERSION, Stat};
use crate::tree::{self, LEVEL_COMPACTED};

fn stat(s: &Stat) -> String {
    match s {
        Stat::None => "-".into(),
        Stat::I64(v) => v.to_string(),
        Stat::U64(v) => v.to_string(),
        Stat::F64(v) => v.to_string(),
    }
}

fn time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    match u64::try_from(secs) {
        Ok(s) => {
            humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos)).to_string()
        }
        Err(_) => format!("{ns}ns"),
    }
}

/// Describes a segment file: header, columns, families, blocks and stats.
pub fn segment(path: &Path) -> Result<String> {
    let r = SegmentReader::open(path)?;
    let f = r.footer();
    let mut out = String::new();
    let _ = writeln!(out, "segment {}", path.display());
    let _ = writeln!(out, "  format version {FORMAT_VERSION}, {} bytes, zstd level {}", r.len(), f.zstd_level);
    let _ = writeln!(out, "  table {}.{} (db id {}, table id {})", f.db, f.table, f.db_id, f.table_id);
    let _ = writeln!(out, "  rows {}, time {} .. {}", f.rows, time(f.time_min), time(f.time_max));
    let _ = writeln!(out, "  series {}", r.series().len());
    let _ = writeln!(out, "  columns:");
    for c in &f.columns {
        let kind = match ColumnKind::from(c.kind) {
            ColumnKind::Tag => "tag".to_string(),
            ColumnKind::Field(t) => format!("{} field", t.name()),
        };
        let _ = writeln!(out, "    {:>4} {} ({kind})", c.id, c.name);
    }
    for fam in &f.families {
        let _ = writeln!(
            out,
            "  family {} (id {}): {} rows, {} series runs, {} blocks of {} rows",
            fam.name,
            fam.id,
            fam.rows,
            fam.series_runs.len(),
            fam.time_blocks.len(),
            fam.block_rows
        );
        let bytes: u64 = fam.time_blocks.iter().map(|b| u64::from(b.len)).sum();
        let _ = writeln!(out, "    time: {bytes} bytes ({:.3} B/row)", bytes as f64 / fam.rows.max(1) as f64);
        for (i, b) in fam.time_blocks.iter().enumerate() {
            let _ = writeln!(
                out,
                "      block {i}: offset {} len {} crc {:08x} min {} max {}",
                b.offset,
                b.len,
                b.crc32,
                stat(&b.min),
                stat(&b.max)
            );
        }
        for chunk in &fam.columns {
            let name = f.columns.iter().find(|c| c.id == chunk.column).map_or("?", |c| c.name.as_str());
            let bytes: u64 = chunk.blocks.iter().map(|b| u64::from(b.len)).sum();
            let _ = writeln!(out, "    {name}: {bytes} bytes ({:.3} B/row)", bytes as f64 / fam.rows.max(1) as f64);
            for (i, b) in chunk.blocks.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "      block {i}: offset {} len {} crc {:08x} nulls {} min {} max {}",
                    b.offset,
                    b.len,
                    b.crc32,
                    b.nulls,
                    stat(&b.min),
                    stat(&b.max)
                );
            }
        }
    }
    Ok(out)
}

/// Describes a data folder: the current version and its files, the catalog.
pub fn data_folder(dir: &Path) -> Result<String> {
    let record = tree::read_current(dir)?;
    let catalog: Catalog = CatalogStore::open_read_only(&dir.join(crate::CATALOG_DIR))?;
    let mut out = String::new();
    let _ = writeln!(out, "data folder {}", dir.display());
    let _ = writeln!(
        out,
        "  version {}, catalog sequence {} (persisted {}), WAL replays from file {}",
        record.number, record.catalog_sequence, catalog.sequence, record.wal_replay_from
    );
    for db in catalog.databases() {
        let _ = writeln!(out, "  database {} (id {})", db.name, db.id);
        for t in db.tables() {
            let _ = writeln!(
                out,
                "    table {} (id {}): {} columns, {} families",
                t.name,
                t.id,
                t.columns.len(),
                t.families.len()
            );
        }
    }
    let total: u64 = record.files.iter().map(|f| f.size).sum();
    let rows: u64 = record.files.iter().map(|f| f.rows).sum();
    let _ = writeln!(out, "  files: {} ({} bytes, {} rows)", record.files.len(), total, rows);
    for f in &record.files {
        let level = if f.level == LEVEL_COMPACTED { "compacted" } else { "gen0" };
        let _ = writeln!(
            out,
            "    {} {level} db {} table {} rows {} size {} time {} .. {} blake3 {}",
            f.relative_path().display(),
            f.db_id,
            f.table_id,
            f.rows,
            f.size,
            time(f.time_min),
            time(f.time_max),
            f.blake3_hex()
        );
    }
    Ok(out)
}
