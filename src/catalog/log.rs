//! The catalog log: what a catalog change adds, as a delta record appended
//! to `catalog/<base>.log`, the log of snapshot `catalog/<base>.cat`. A
//! change costs what it adds (a new column: a few dozen bytes and one
//! fdatasync), not a rewrite of the whole catalog. This module owns the
//! log's byte format (docs/FORMAT.md, "Catalog log"), the delta between two
//! catalogs and its replay; [`super::CatalogStore`] decides when to append
//! and when to fold the log into a new snapshot (a checkpoint).
//!
//! Records are framed like WAL records (`len | crc32(len, payload) |
//! payload`, [`crate::framing`]) and a torn tail is told from
//! corruption by the WAL's rules: a change is appended and fsynced before
//! any WAL record that uses its ids, so only the last record can be torn,
//! and nothing acknowledged depends on it.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Catalog, Column, ColumnKind, Database, FieldType, Table};
use crate::error::Error;
use crate::framing::{self, MAX_RECORD_BYTES, RECORD_HEADER_LEN, record_crc};

/// Magic of a catalog log file.
pub const LOG_MAGIC: [u8; 4] = *b"QCLG";
/// Format version of catalog log files.
pub const LOG_FORMAT_VERSION: u16 = 1;
/// Bytes of the file header.
pub const LOG_HEADER_LEN: usize = 20;

/// One catalog change: the databases, tables, families and columns it
/// adds, and the sequence it brings the catalog to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The catalog's sequence after this change; above the one before.
    pub sequence: u64,
    /// The catalog's next database id after this change.
    pub next_db_id: u32,
    /// Databases created or changed.
    pub databases: Vec<DatabaseDelta>,
}

/// A database created or changed by a [`Delta`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDelta {
    pub id: u32,
    pub name: String,
    /// The database's next table id after this change.
    pub next_table_id: u32,
    /// Tables created or changed.
    pub tables: Vec<TableDelta>,
}

/// A table created or changed by a [`Delta`]: its new families, then its
/// new columns, each continuing the table's id sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDelta {
    pub id: u32,
    pub name: String,
    pub families: Vec<FamilyEntry>,
    pub columns: Vec<ColumnEntry>,
}

/// A new family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyEntry {
    pub id: u32,
    pub name: String,
    pub auto: bool,
}

/// A new column. `kind`: 0 tag, 1 float, 2 integer, 3 uinteger, 4 string,
/// 5 boolean field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnEntry {
    pub id: u32,
    pub name: String,
    pub kind: u8,
    pub family: Option<u32>,
}

const FIELD_TYPES: [FieldType; 5] =
    [FieldType::Float, FieldType::Integer, FieldType::UInteger, FieldType::String, FieldType::Boolean];

fn kind_code(kind: ColumnKind) -> u8 {
    match kind {
        ColumnKind::Tag => 0,
        ColumnKind::Field(ty) => 1 + FIELD_TYPES.iter().position(|t| *t == ty).unwrap_or(0) as u8,
    }
}

fn kind_of(code: u8) -> Option<ColumnKind> {
    match code {
        0 => Some(ColumnKind::Tag),
        n => FIELD_TYPES.get(usize::from(n) - 1).map(|ty| ColumnKind::Field(*ty)),
    }
}

impl Delta {
    /// What `new` adds to `old`, or `None` when `new` is not `old` grown by
    /// catalog changes (a restored catalog, say): that takes a checkpoint.
    ///
    /// Unchanged databases and tables share their `Arc` with `old` (the
    /// catalog is copy-on-write), so only changed ones are looked into; a
    /// changed table is checked by its ids and counts and by the name of
    /// `old`'s last column and family, not compared column by column.
    pub fn between(old: &Catalog, new: &Catalog) -> Option<Delta> {
        if new.sequence <= old.sequence || new.next_db_id < old.next_db_id {
            return None;
        }
        if old.databases.iter().any(|(name, db)| new.databases.get(name).is_none_or(|n| n.id != db.id)) {
            return None;
        }
        let mut databases = Vec::new();
        for (name, db) in &new.databases {
            let before = old.databases.get(name);
            if before.is_some_and(|b| Arc::ptr_eq(b, db)) {
                continue;
            }
            if before.is_none() && db.id < old.next_db_id {
                return None;
            }
            let tables = table_deltas(before.map(|b| &**b), db)?;
            let grew = before.is_none_or(|b| b.next_table_id != db.next_table_id);
            if !tables.is_empty() || grew {
                databases.push(DatabaseDelta {
                    id: db.id,
                    name: db.name.clone(),
                    next_table_id: db.next_table_id,
                    tables,
                });
            }
        }
        Some(Delta { sequence: new.sequence, next_db_id: new.next_db_id, databases })
    }

    /// Frames this delta as a log record.
    pub fn encode_record(&self) -> Vec<u8> {
        // postcard of plain structs, strings and integers into a Vec cannot fail.
        let payload = postcard::to_allocvec(self).unwrap_or_default();
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN as usize + payload.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&record_crc(len, &payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

fn table_deltas(before: Option<&Database>, db: &Database) -> Option<Vec<TableDelta>> {
    if let Some(b) = before
        && (b.id != db.id || b.name != db.name || db.next_table_id < b.next_table_id)
    {
        return None;
    }
    let mut out = Vec::new();
    if let Some(b) = before
        && b.tables.iter().any(|(name, t)| db.tables.get(name).is_none_or(|n| n.id != t.id))
    {
        return None;
    }
    for (name, table) in &db.tables {
        let old = before.and_then(|b| b.tables.get(name));
        if old.is_some_and(|o| Arc::ptr_eq(o, table)) {
            continue;
        }
        if old.is_none() && before.is_some_and(|b| table.id < b.next_table_id) {
            return None;
        }
        let (columns_from, families_from) = match old {
            Some(o) => {
                let grown = o.columns.len() <= table.columns.len()
                    && o.families.len() <= table.families.len()
                    && o.columns.last().is_none_or(|c| table.columns.get(c.id as usize).is_some_and(|n| n == c))
                    && o.families.last().is_none_or(|f| table.families.get(f.id as usize).is_some_and(|n| n == f));
                if !grown {
                    return None;
                }
                (o.columns.len(), o.families.len())
            }
            None => (0, 0),
        };
        if old.is_some() && columns_from == table.columns.len() && families_from == table.families.len() {
            continue;
        }
        out.push(TableDelta {
            id: table.id,
            name: table.name.clone(),
            families: table.families[families_from..]
                .iter()
                .map(|f| FamilyEntry { id: f.id, name: f.name.clone(), auto: f.auto })
                .collect(),
            columns: table.columns[columns_from..]
                .iter()
                .map(|c| ColumnEntry { id: c.id, name: c.name.clone(), kind: kind_code(c.kind), family: c.family })
                .collect(),
        });
    }
    Some(out)
}

impl Catalog {
    /// Applies `delta`, checking that it continues this catalog (ids in
    /// sequence, names unused, families known). On error the catalog may be
    /// half changed; the caller discards it.
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<(), String> {
        if delta.sequence <= self.sequence {
            return Err(format!("record for sequence {} after sequence {}", delta.sequence, self.sequence));
        }
        if delta.next_db_id < self.next_db_id {
            return Err(format!("next database id goes back from {} to {}", self.next_db_id, delta.next_db_id));
        }
        for d in &delta.databases {
            if d.id >= delta.next_db_id {
                return Err(format!("database id {} is not below the next id {}", d.id, delta.next_db_id));
            }
            let name = match self.database_by_id(d.id) {
                Some(db) if db.name == d.name => db.name.clone(),
                Some(db) => {
                    return Err(format!("database {} is named {:?}, the record says {:?}", d.id, db.name, d.name));
                }
                None => {
                    if self.databases.contains_key(&d.name) || d.id < self.next_db_id {
                        return Err(format!("new database {:?} (id {}) clashes with an existing one", d.name, d.id));
                    }
                    let db = Database {
                        id: d.id,
                        name: d.name.clone(),
                        next_table_id: 0,
                        tables: Default::default(),
                        names_by_id: Default::default(),
                    };
                    self.databases.insert(d.name.clone(), Arc::new(db));
                    d.name.clone()
                }
            };
            let db = self.databases.get_mut(&name).map(Arc::make_mut).ok_or("database vanished")?;
            db.apply(d)?;
        }
        self.next_db_id = delta.next_db_id;
        self.sequence = delta.sequence;
        Ok(())
    }
}

impl Database {
    fn apply(&mut self, d: &DatabaseDelta) -> Result<(), String> {
        if d.next_table_id < self.next_table_id {
            return Err(format!("next table id of {:?} goes back", self.name));
        }
        for t in &d.tables {
            if t.id >= d.next_table_id {
                return Err(format!("table id {} is not below the next id {}", t.id, d.next_table_id));
            }
            match self.names_by_id.get(&t.id) {
                Some(name) if *name == t.name => {}
                Some(name) => return Err(format!("table {} is named {name:?}, the record says {:?}", t.id, t.name)),
                None => {
                    if self.tables.contains_key(&t.name) || t.id < self.next_table_id {
                        return Err(format!("new table {:?} (id {}) clashes with an existing one", t.name, t.id));
                    }
                    self.tables.insert(t.name.clone(), Arc::new(Table::new(t.id, t.name.clone())));
                    self.names_by_id.insert(t.id, t.name.clone());
                }
            }
            let table = self.tables.get_mut(&t.name).map(Arc::make_mut).ok_or("table vanished")?;
            table.apply(t)?;
        }
        self.next_table_id = d.next_table_id;
        Ok(())
    }
}

impl Table {
    fn apply(&mut self, t: &TableDelta) -> Result<(), String> {
        for f in &t.families {
            if f.id as usize != self.families.len() || self.families_by_name.contains_key(&f.name) {
                return Err(format!("family {:?} (id {}) does not continue table {:?}", f.name, f.id, self.name));
            }
            self.push_family(f.name.clone(), f.auto);
        }
        for c in &t.columns {
            if c.id as usize != self.columns.len() || self.by_name.contains_key(&c.name) {
                return Err(format!("column {:?} (id {}) does not continue table {:?}", c.name, c.id, self.name));
            }
            let kind = kind_of(c.kind).ok_or_else(|| format!("column {:?} has unknown kind {}", c.name, c.kind))?;
            let family_ok = match kind {
                ColumnKind::Tag => c.family.is_none(),
                ColumnKind::Field(_) => c.family.is_some_and(|f| (f as usize) < self.families.len()),
            };
            if !family_ok {
                return Err(format!("column {:?} has family {:?}, which its kind does not allow", c.name, c.family));
            }
            let column = Column { id: c.id, name: c.name.clone(), kind, family: c.family };
            self.push_column(&column.name, column.kind, column.family);
        }
        Ok(())
    }
}

/// The 20-byte header of the log of snapshot `base`.
pub fn encode_header(base: u64) -> [u8; LOG_HEADER_LEN] {
    framing::encode_header(LOG_MAGIC, LOG_FORMAT_VERSION, base)
}

/// What a log file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LogContents {
    /// The records, in order.
    pub deltas: Vec<Delta>,
    /// Bytes of header and whole records: where the next record goes. 0 when
    /// the file has no header yet (cut short while it was created).
    pub good_len: u64,
    /// Bytes after `good_len` are a torn tail (an append cut short).
    pub torn: bool,
}

/// Reads the log of snapshot `base` from its bytes. A torn tail is not an
/// error (see the module doc); anything else that does not check out is
/// [`Error::Corrupt`] naming `path`.
pub fn decode_log(path: &Path, base: u64, bytes: &[u8]) -> Result<LogContents, Error> {
    let corrupt = |offset: usize, what: String| Error::Corrupt {
        path: path.to_path_buf(),
        what: format!("catalog log at offset {offset}: {what}"),
    };
    // Shorter than a header, or zeros only: created, never written to.
    if bytes.len() < LOG_HEADER_LEN || bytes.iter().all(|&b| b == 0) {
        return Ok(LogContents { deltas: Vec::new(), good_len: 0, torn: !bytes.is_empty() });
    }
    let header = &bytes[..LOG_HEADER_LEN];
    if header[0..4] != LOG_MAGIC {
        return Err(corrupt(0, format!("bad magic {:02x?}, expected \"QCLG\"", &header[0..4])));
    }
    let stored_crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if crc32fast::hash(&header[0..16]) != stored_crc {
        return Err(corrupt(0, "file header checksum mismatch".into()));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != LOG_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: LOG_FORMAT_VERSION,
        });
    }
    if header[6..8] != [0, 0] {
        return Err(corrupt(0, "reserved header bytes are not zero".into()));
    }
    let mut base_bytes = [0u8; 8];
    base_bytes.copy_from_slice(&header[8..16]);
    let stored_base = u64::from_le_bytes(base_bytes);
    if stored_base != base {
        return Err(corrupt(0, format!("header says snapshot {stored_base}, the name says {base}")));
    }

    let mut out = LogContents { deltas: Vec::new(), good_len: LOG_HEADER_LEN as u64, torn: false };
    let mut offset = LOG_HEADER_LEN;
    let zero_from = |from: usize| bytes.get(from..).is_none_or(|rest| rest.iter().all(|&b| b == 0));
    let header_len = RECORD_HEADER_LEN as usize;
    while offset < bytes.len() {
        let torn = |out: LogContents| Ok(LogContents { torn: true, ..out });
        let remaining = bytes.len() - offset;
        if remaining < header_len {
            return torn(out);
        }
        let len = u32::from_le_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]]);
        let crc = u32::from_le_bytes([bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7]]);
        let start = offset + header_len;
        if len as usize > MAX_RECORD_BYTES {
            if zero_from(start) {
                return torn(out);
            }
            return Err(corrupt(offset, format!("record length {len} exceeds the limit of {MAX_RECORD_BYTES} bytes")));
        }
        let end = start + len as usize;
        if end > bytes.len() {
            return torn(out);
        }
        let payload = &bytes[start..end];
        if record_crc(len, payload) != crc {
            if zero_from(end) {
                return torn(out);
            }
            return Err(corrupt(offset, "record checksum mismatch, followed by further non-zero data".into()));
        }
        let delta: Delta =
            postcard::from_bytes(payload).map_err(|e| corrupt(offset, format!("undecodable record: {e}")))?;
        out.deltas.push(delta);
        offset = end;
        out.good_len = end as u64;
    }
    Ok(out)
}

/// Applies the records of a log to its snapshot, in order.
pub fn replay(path: &Path, catalog: &mut Catalog, deltas: &[Delta]) -> Result<(), Error> {
    for (i, delta) in deltas.iter().enumerate() {
        catalog.apply_delta(delta).map_err(|what| Error::Corrupt {
            path: path.to_path_buf(),
            what: format!("catalog log record {i} does not apply: {what}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One change: (database, table, column, family, kind 0-4 field types, 5 tag).
    type Op = (u8, u8, String, Option<String>, u8);

    fn ops() -> impl Strategy<Value = Vec<Vec<Op>>> {
        let op = (0u8..3, 0u8..4, "[a-f]{1,2}", proptest::option::of("[xy]"), 0u8..6);
        proptest::collection::vec(proptest::collection::vec(op, 0..6), 0..12)
    }

    fn apply_ops(cat: &Catalog, change: &[Op]) -> Catalog {
        let mut next = cat.clone();
        for (db, table, column, family, kind) in change {
            let t = next.database_mut(&format!("db{db}")).unwrap().table_mut(&format!("t{table}")).unwrap();
            // Conflicts just leave the table as it was.
            let _ = match kind {
                5 => t.ensure_tag(column),
                k => t.ensure_field(column, family.as_deref(), FIELD_TYPES[*k as usize]),
            };
        }
        next.sequence += 1;
        next
    }

    /// The catalogs after each change, and the log of their deltas.
    fn history(changes: &[Vec<Op>]) -> (Vec<Catalog>, Vec<u8>) {
        let mut cats = vec![Catalog::default()];
        let mut log = encode_header(0).to_vec();
        for change in changes {
            let before = cats.last().unwrap();
            let after = apply_ops(before, change);
            let delta = Delta::between(before, &after).expect("a change extends its catalog");
            log.extend_from_slice(&delta.encode_record());
            cats.push(after);
        }
        (cats, log)
    }

    proptest! {
        #[test]
        fn a_log_of_deltas_replays_to_the_catalog(changes in ops(), probe in (0u8..3, 0u8..4, 0u8..6)) {
            let (cats, log) = history(&changes);
            let contents = decode_log(Path::new("l"), 0, &log).unwrap();
            prop_assert!(!contents.torn);
            prop_assert_eq!(contents.good_len, log.len() as u64);
            prop_assert_eq!(contents.deltas.len(), changes.len());
            let mut replayed = Catalog::default();
            replay(Path::new("l"), &mut replayed, &contents.deltas).unwrap();
            let last = cats.last().unwrap();
            prop_assert_eq!(&replayed, last);
            // The derived indexes agree too: the same next change gives the same catalog.
            let change = vec![(probe.0, probe.1, "new".to_string(), None, probe.2)];
            prop_assert_eq!(apply_ops(&replayed, &change), apply_ops(last, &change));
            // And the replayed catalog encodes to the same snapshot.
            prop_assert_eq!(replayed.encode(), last.encode());
        }

        #[test]
        fn every_cut_of_a_log_is_a_torn_tail_holding_the_whole_records_before_it(changes in ops(), cut in any::<prop::sample::Index>()) {
            let (cats, log) = history(&changes);
            let cut = cut.index(log.len() + 1);
            let contents = decode_log(Path::new("l"), 0, &log[..cut]).unwrap();
            let mut replayed = Catalog::default();
            replay(Path::new("l"), &mut replayed, &contents.deltas).unwrap();
            prop_assert_eq!(&replayed, &cats[contents.deltas.len()]);
            prop_assert!(contents.good_len <= cut as u64);
            prop_assert_eq!(contents.torn, contents.good_len != cut as u64);
            prop_assert_eq!(contents.deltas.len() == changes.len(), cut == log.len() || (changes.is_empty()));
        }

        #[test]
        fn arbitrary_logs_are_errors_not_panics(body in proptest::collection::vec(any::<u8>(), 0..300), framed in any::<bool>()) {
            let mut bytes = encode_header(3).to_vec();
            if framed {
                // A well-framed record around arbitrary bytes reaches the decoder.
                let len = body.len() as u32;
                bytes.extend_from_slice(&len.to_le_bytes());
                bytes.extend_from_slice(&record_crc(len, &body).to_le_bytes());
            }
            bytes.extend_from_slice(&body);
            if let Ok(contents) = decode_log(Path::new("l"), 3, &bytes) {
                let mut cat = Catalog { sequence: 3, ..Catalog::default() };
                let _ = replay(Path::new("l"), &mut cat, &contents.deltas);
            }
        }
    }

    #[test]
    fn a_catalog_that_does_not_extend_the_last_one_has_no_delta() {
        let grown = apply_ops(&Catalog::default(), &[(0, 0, "a".into(), None, 1), (0, 1, "b".into(), None, 5)]);
        let other = apply_ops(&Catalog::default(), &[(0, 0, "z".into(), None, 1)]);
        let mut later = apply_ops(&Catalog::default(), &[(0, 0, "z".into(), None, 1), (0, 1, "b".into(), None, 5)]);
        later.sequence = 5;
        // Same shape of table 0 (one column), another column name.
        assert_eq!(Delta::between(&grown, &later), None);
        // Fewer tables, no newer sequence, an unrelated database.
        assert_eq!(Delta::between(&grown, &other), None);
        let mut renamed = Catalog::default();
        renamed.database_mut("zz").unwrap();
        renamed.sequence = 9;
        assert_eq!(Delta::between(&grown, &renamed), None);
        // A change that adds nothing but the sequence is a delta of nothing.
        let mut bumped = grown.clone();
        bumped.sequence += 1;
        let delta = Delta::between(&grown, &bumped).unwrap();
        assert!(delta.databases.is_empty());
    }

    #[test]
    fn records_that_do_not_continue_the_catalog_are_refused() {
        let base = apply_ops(&Catalog::default(), &[(0, 0, "a".into(), None, 1)]);
        let next = apply_ops(&base, &[(0, 0, "b".into(), None, 5)]);
        let delta = Delta::between(&base, &next).unwrap();
        let mut twice = next.clone();
        assert!(twice.apply_delta(&delta).unwrap_err().contains("sequence"));
        let mut skipped = delta.clone();
        skipped.databases[0].tables[0].columns[0].id = 7;
        assert!(base.clone().apply_delta(&skipped).unwrap_err().contains("does not continue"));
        let mut bad_kind = delta.clone();
        bad_kind.databases[0].tables[0].columns[0].kind = 9;
        assert!(base.clone().apply_delta(&bad_kind).unwrap_err().contains("unknown kind"));
        let mut tag_in_family = delta;
        tag_in_family.databases[0].tables[0].columns[0].family = Some(0);
        assert!(base.clone().apply_delta(&tag_in_family).unwrap_err().contains("family"));
    }

    #[test]
    fn damage_before_the_tail_is_corruption_and_a_wrong_header_too() {
        let (_, log) = history(&[vec![(0, 0, "a".into(), None, 1)], vec![(0, 0, "b".into(), None, 2)]]);
        let mut flipped = log.clone();
        flipped[LOG_HEADER_LEN + 10] ^= 1;
        let err = decode_log(Path::new("l"), 0, &flipped).unwrap_err();
        assert!(matches!(err, Error::Corrupt { ref what, .. } if what.contains("checksum")), "{err}");
        assert!(matches!(decode_log(Path::new("l"), 1, &log), Err(Error::Corrupt { .. })), "base mismatch");
        let mut version = log.clone();
        version[4] = 2;
        assert!(matches!(decode_log(Path::new("l"), 0, &version), Err(Error::Corrupt { .. })), "header crc");
        let mut version = encode_header(0);
        version[4] = 2;
        let crc = crc32fast::hash(&version[0..16]);
        version[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_log(Path::new("l"), 0, &version), Err(Error::UnsupportedVersion { found: 2, .. })));
        // The last record damaged, nothing after it: a torn tail.
        let mut last = log.clone();
        let n = last.len();
        last[n - 1] ^= 1;
        let contents = decode_log(Path::new("l"), 0, &last).unwrap();
        assert!(contents.torn);
        assert_eq!(contents.deltas.len(), 1);
    }
}
