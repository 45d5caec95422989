//! The catalog: databases, tables, columns, their types and column families,
//! and the ids everything else refers to. It is an immutable value shared
//! through `Arc`; a change clones it (copy-on-write per database and table),
//! bumps `sequence` and is persisted before any WAL record that uses the
//! new ids, so replay always finds them: appended to the catalog log as a
//! delta (what it adds, [`log`]), folded into a numbered snapshot now and
//! then ([`CatalogStore`]).
//!
//! Column families: a field written as `family::field` belongs to `family`;
//! a field written without one joins the newest automatic family (`__auto_N`)
//! with fewer than [`AUTO_FAMILY_WIDTH`] fields. A field's family never changes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::envelope;
use crate::error::{Error, IoContext, Result};

pub mod log;

/// Fields per automatic family.
pub const AUTO_FAMILY_WIDTH: usize = 100;
/// Prefix of automatic family names; reserved (users cannot name a family so).
pub const AUTO_FAMILY_PREFIX: &str = "__auto_";
/// Columns per table (tags, fields and `time`) unless configured otherwise:
/// InfluxDB 3's default (`--num-total-columns-per-table-limit`), which
/// leaves 499 tags and fields beside `time`.
pub const DEFAULT_COLUMNS_PER_TABLE: usize = 500;
/// Tables per database unless configured otherwise: a line or batch that
/// would create one more is rejected.
pub const DEFAULT_TABLES_PER_DATABASE: usize = 10_000;

/// The schema limits a write is resolved under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Columns per table, `time` included.
    pub columns_per_table: usize,
    /// Tables per database.
    pub tables_per_database: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { columns_per_table: DEFAULT_COLUMNS_PER_TABLE, tables_per_database: DEFAULT_TABLES_PER_DATABASE }
    }
}

/// The name of the time column; reserved for tags and fields.
pub const TIME_COLUMN: &str = "time";

const MAGIC: [u8; 4] = *b"QCAT";
const FORMAT_VERSION: u16 = 1;
/// Catalog snapshots kept on disk besides the newest (for diagnosis).
const KEEP_OLD_SNAPSHOTS: usize = 1;

/// The type of a field column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    String,
    Boolean,
}

impl FieldType {
    /// The name used in error messages and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::UInteger => "uinteger",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
        }
    }
}

/// What a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnKind {
    Tag,
    Field(FieldType),
}

/// One column of a table. `id` is its index in [`Table::columns`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub id: u32,
    pub name: String,
    pub kind: ColumnKind,
    /// The family of a field; `None` for tags.
    pub family: Option<u32>,
}

/// A column family: fields stored together on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub id: u32,
    pub name: String,
    pub auto: bool,
}

/// A table (measurement).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub id: u32,
    pub name: String,
    pub columns: Vec<Column>,
    pub families: Vec<Family>,
    /// Column ids by name, family ids by name and fields per family: derived
    /// from `columns` and `families` (rebuilt on decode), so that resolving a
    /// line costs one hash lookup per key, not a scan of the table.
    #[serde(skip)]
    by_name: FxHashMap<String, u32>,
    #[serde(skip)]
    families_by_name: FxHashMap<String, u32>,
    #[serde(skip)]
    family_members: Vec<u32>,
    /// Ids of the automatic families, oldest first.
    #[serde(skip)]
    auto_families: Vec<u32>,
}

/// A point a [`Table`] can be rolled back to: its column and family counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint {
    columns: usize,
    families: usize,
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.columns == other.columns
            && self.families == other.families
    }
}

/// Why a column could not be added or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("invalid {what} name {name:?}: {why}")]
    InvalidName { what: &'static str, name: String, why: &'static str },
    #[error("column {column:?} has type {existing}; this write gives it type {attempted}")]
    KindConflict { column: String, existing: String, attempted: String },
    #[error("field {column:?} belongs to family {existing:?}, written with family {attempted:?}")]
    FamilyConflict { column: String, existing: String, attempted: String },
    /// The reference's message (InfluxDB 3's `TooManyColumns`), then what
    /// the line asked for.
    #[error(
        "Update to schema would exceed number of columns per table limit of {limit} columns: table {table:?} has {existing} columns (time included) and this write adds {added}"
    )]
    TooManyColumns { table: String, limit: usize, existing: usize, added: usize },
    #[error(
        "Update to schema would exceed number of tables per database limit of {limit} tables: database {database:?} is full, table {table:?} would be one more"
    )]
    TooManyTables { database: String, table: String, limit: usize },
}

impl Table {
    fn new(id: u32, name: String) -> Self {
        Table {
            id,
            name,
            columns: Vec::new(),
            families: Vec::new(),
            by_name: FxHashMap::default(),
            families_by_name: FxHashMap::default(),
            family_members: Vec::new(),
            auto_families: Vec::new(),
        }
    }

    fn rebuild_index(&mut self) {
        self.by_name = self.columns.iter().map(|c| (c.name.clone(), c.id)).collect();
        self.families_by_name = self.families.iter().map(|f| (f.name.clone(), f.id)).collect();
        self.auto_families = self.families.iter().filter(|f| f.auto).map(|f| f.id).collect();
        self.family_members = vec![0; self.families.len()];
        for fid in self.columns.iter().filter_map(|c| c.family) {
            if let Some(n) = self.family_members.get_mut(fid as usize) {
                *n += 1;
            }
        }
    }

    /// The number of columns a query sees: tags, fields and `time`.
    pub fn column_count(&self) -> usize {
        self.columns.len() + 1
    }

    /// Where [`Table::rollback`] returns to.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint { columns: self.columns.len(), families: self.families.len() }
    }

    /// Drops the columns and families added since `to` (a rejected line's).
    pub fn rollback(&mut self, to: Savepoint) {
        for col in self.columns.drain(to.columns.min(self.columns.len())..) {
            self.by_name.remove(&col.name);
            if let Some(n) = col.family.and_then(|f| self.family_members.get_mut(f as usize)) {
                *n = n.saturating_sub(1);
            }
        }
        for family in self.families.drain(to.families.min(self.families.len())..) {
            self.families_by_name.remove(&family.name);
            if family.auto {
                self.auto_families.pop();
            }
        }
        self.family_members.truncate(self.families.len());
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.by_name.get(name).and_then(|&id| self.columns.get(id as usize))
    }

    /// A column by id.
    pub fn column_by_id(&self, id: u32) -> Option<&Column> {
        self.columns.get(id as usize)
    }

    /// A family by id.
    pub fn family(&self, id: u32) -> Option<&Family> {
        self.families.get(id as usize)
    }

    /// The tag columns, in id order.
    pub fn tags(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Tag)
    }

    /// The field columns, in id order.
    pub fn fields(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| matches!(c.kind, ColumnKind::Field(_)))
    }

    /// Checks that `name` can be a tag, adding it if new. Returns its id.
    pub fn ensure_tag(&mut self, name: &str) -> Result<u32, CatalogError> {
        if let Some(col) = self.column(name) {
            return match col.kind {
                ColumnKind::Tag => Ok(col.id),
                ColumnKind::Field(t) => Err(CatalogError::KindConflict {
                    column: name.to_string(),
                    existing: format!("{} field", t.name()),
                    attempted: "tag".into(),
                }),
            };
        }
        validate_column_name("tag", name)?;
        Ok(self.push_column(name, ColumnKind::Tag, None))
    }

    /// Checks that `name` can be a field of type `ty` (in `family`, when
    /// given), adding it if new. Returns its id.
    pub fn ensure_field(&mut self, name: &str, family: Option<&str>, ty: FieldType) -> Result<u32, CatalogError> {
        if let Some(col) = self.column(name) {
            return self.check_field(col, family, ty).map(|()| col.id);
        }
        validate_column_name("field", name)?;
        let family_id = match family {
            Some(f) => self.family_named(f)?,
            None => self.auto_family(),
        };
        Ok(self.push_column(name, ColumnKind::Field(ty), Some(family_id)))
    }

    /// Checks a write of `name` against the existing column without changing anything.
    pub fn check_field(&self, col: &Column, family: Option<&str>, ty: FieldType) -> Result<(), CatalogError> {
        match col.kind {
            ColumnKind::Field(existing) if existing == ty => {}
            existing => {
                return Err(CatalogError::KindConflict {
                    column: col.name.clone(),
                    existing: kind_name(existing),
                    attempted: format!("{} field", ty.name()),
                });
            }
        }
        if let (Some(wanted), Some(fid)) = (family, col.family) {
            let existing = self.family(fid).map(|f| f.name.as_str()).unwrap_or("");
            if existing != wanted {
                return Err(CatalogError::FamilyConflict {
                    column: col.name.clone(),
                    existing: existing.to_string(),
                    attempted: wanted.to_string(),
                });
            }
        }
        Ok(())
    }

    fn push_column(&mut self, name: &str, kind: ColumnKind, family: Option<u32>) -> u32 {
        let id = self.columns.len() as u32;
        self.columns.push(Column { id, name: name.to_string(), kind, family });
        self.by_name.insert(name.to_string(), id);
        if let Some(n) = family.and_then(|f| self.family_members.get_mut(f as usize)) {
            *n += 1;
        }
        id
    }

    fn family_named(&mut self, name: &str) -> Result<u32, CatalogError> {
        if name.is_empty() {
            return Err(CatalogError::InvalidName { what: "family", name: name.into(), why: "empty" });
        }
        if name.starts_with(AUTO_FAMILY_PREFIX) {
            return Err(CatalogError::InvalidName {
                what: "family",
                name: name.into(),
                why: "the __auto_ prefix is reserved for automatic families",
            });
        }
        if let Some(&id) = self.families_by_name.get(name) {
            return Ok(id);
        }
        Ok(self.push_family(name.to_string(), false))
    }

    fn auto_family(&mut self) -> u32 {
        if let Some(&id) = self.auto_families.last() {
            let members = self.family_members.get(id as usize).copied().unwrap_or(0) as usize;
            if members < AUTO_FAMILY_WIDTH {
                return id;
            }
        }
        let n = self.auto_families.len();
        self.push_family(format!("{AUTO_FAMILY_PREFIX}{n}"), true)
    }

    fn push_family(&mut self, name: String, auto: bool) -> u32 {
        let id = self.families.len() as u32;
        self.families_by_name.insert(name.clone(), id);
        self.families.push(Family { id, name, auto });
        self.family_members.push(0);
        if auto {
            self.auto_families.push(id);
        }
        id
    }
}

fn kind_name(kind: ColumnKind) -> String {
    match kind {
        ColumnKind::Tag => "tag".into(),
        ColumnKind::Field(t) => format!("{} field", t.name()),
    }
}

fn validate_column_name(what: &'static str, name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::InvalidName { what, name: name.into(), why: "empty" });
    }
    if name == TIME_COLUMN {
        return Err(CatalogError::InvalidName { what, name: name.into(), why: "`time` is the timestamp column" });
    }
    Ok(())
}

/// Checks a database name: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn validate_db_name(name: &str) -> Result<(), CatalogError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > 64 {
        "longer than 64 characters"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        "only letters, digits, '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(CatalogError::InvalidName { what: "database", name: name.into(), why })
}

/// A database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub id: u32,
    pub name: String,
    next_table_id: u32,
    tables: BTreeMap<String, Arc<Table>>,
    /// Table names by id, derived from `tables` (rebuilt on decode).
    #[serde(skip)]
    names_by_id: FxHashMap<u32, String>,
}

impl Database {
    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.tables.get(name)
    }

    /// A table by id.
    pub fn table_by_id(&self, id: u32) -> Option<&Arc<Table>> {
        self.names_by_id.get(&id).and_then(|name| self.tables.get(name))
    }

    /// The number of tables.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// All tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.tables.values()
    }

    /// The table named `name`, created if absent, for changing.
    pub fn table_mut(&mut self, name: &str) -> Result<&mut Table, CatalogError> {
        if !self.tables.contains_key(name) {
            if name.is_empty() {
                return Err(CatalogError::InvalidName { what: "table", name: name.into(), why: "empty" });
            }
            let id = self.next_table_id;
            self.next_table_id += 1;
            self.tables.insert(name.to_string(), Arc::new(Table::new(id, name.to_string())));
            self.names_by_id.insert(id, name.to_string());
        }
        let table = self.tables.get_mut(name).ok_or(CatalogError::InvalidName {
            what: "table",
            name: name.into(),
            why: "vanished",
        })?;
        Ok(Arc::make_mut(table))
    }

    /// Takes back table `name` if it is the newest and has no columns: a
    /// rejected line created it.
    pub fn forget_empty_table(&mut self, name: &str) {
        let newest_and_empty =
            self.tables.get(name).is_some_and(|t| t.columns.is_empty() && t.id + 1 == self.next_table_id);
        if newest_and_empty && let Some(t) = self.tables.remove(name) {
            self.names_by_id.remove(&t.id);
            self.next_table_id = t.id;
        }
    }
}

/// All databases. Cheap to clone (copy-on-write below).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Bumped by every change; names the persisted snapshot.
    pub sequence: u64,
    next_db_id: u32,
    databases: BTreeMap<String, Arc<Database>>,
}

impl Catalog {
    /// A database by name.
    pub fn database(&self, name: &str) -> Option<&Arc<Database>> {
        self.databases.get(name)
    }

    /// A database by id.
    pub fn database_by_id(&self, id: u32) -> Option<&Arc<Database>> {
        self.databases.values().find(|d| d.id == id)
    }

    /// All databases, by name.
    pub fn databases(&self) -> impl Iterator<Item = &Arc<Database>> {
        self.databases.values()
    }

    /// The database named `name`, created if absent, for changing.
    pub fn database_mut(&mut self, name: &str) -> Result<&mut Database, CatalogError> {
        if !self.databases.contains_key(name) {
            validate_db_name(name)?;
            let id = self.next_db_id;
            self.next_db_id += 1;
            let db = Database {
                id,
                name: name.to_string(),
                next_table_id: 0,
                tables: BTreeMap::new(),
                names_by_id: FxHashMap::default(),
            };
            self.databases.insert(name.to_string(), Arc::new(db));
        }
        let db = self.databases.get_mut(name).ok_or(CatalogError::InvalidName {
            what: "database",
            name: name.into(),
            why: "vanished",
        })?;
        Ok(Arc::make_mut(db))
    }

    /// Serialises this catalog into its on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        // serde_json of plain structs and maps with string keys cannot fail.
        let body = serde_json::to_vec(self).unwrap_or_default();
        envelope::seal(MAGIC, FORMAT_VERSION, &body)
    }

    /// Reads a catalog from its on-disk form. `path` names the file in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Catalog> {
        let body = envelope::open(path, MAGIC, FORMAT_VERSION, bytes)?;
        let mut catalog: Catalog = serde_json::from_slice(body)
            .map_err(|e| Error::Corrupt { path: path.to_path_buf(), what: format!("catalog JSON: {e}") })?;
        for db in catalog.databases.values_mut() {
            let db = Arc::make_mut(db);
            db.names_by_id = db.tables.values().map(|t| (t.id, t.name.clone())).collect();
            if db.names_by_id.len() != db.tables.len() {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    what: format!("database {} has two tables with one id", db.name),
                });
            }
            for table in db.tables.values_mut() {
                let table = Arc::make_mut(table);
                table.rebuild_index();
                let consistent = table.columns.iter().enumerate().all(|(i, c)| {
                    c.id as usize == i
                        && match c.kind {
                            ColumnKind::Tag => c.family.is_none(),
                            ColumnKind::Field(_) => c.family.is_some_and(|f| (f as usize) < table.families.len()),
                        }
                }) && table.by_name.len() == table.columns.len()
                    && table.families.iter().enumerate().all(|(i, f)| f.id as usize == i)
                    && table.families_by_name.len() == table.families.len();
                if !consistent {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        what: format!("table {} has inconsistent column ids or families", table.name),
                    });
                }
            }
        }
        Ok(catalog)
    }
}

/// The catalog folder: snapshots `catalog/<base, 20 digits>.cat` (a whole
/// catalog, sequence `base`) and beside the newest one its log
/// `catalog/<base>.log` (the changes since, see [`log`]). The catalog is
/// the newest snapshot with its log replayed.
///
/// A change is appended to the log and fdatasynced: it costs what it adds.
/// When the log would grow past [`CHECKPOINT_BYTES`] or the snapshot's
/// size (whichever is larger; so rewriting costs at most as much as the
/// appends it folds, and opening reads at most twice the snapshot), the
/// change is written as a new snapshot instead (a checkpoint), published
/// atomically before older snapshots and logs are removed.
#[derive(Debug)]
pub struct CatalogStore {
    dir: PathBuf,
    checkpoint_bytes: u64,
    tip: Mutex<Option<Tip>>,
}

/// What the folder holds, as this store last read or wrote it.
#[derive(Debug)]
struct Tip {
    /// The snapshot with its log replayed.
    catalog: Catalog,
    /// The sequence of the snapshot the log follows.
    base: u64,
    snapshot_len: u64,
    /// Header and whole records of the log: where the next record goes (0:
    /// no header yet). Bytes past it are a torn tail, cut off before the
    /// next append.
    log_len: u64,
    /// The log, open for appending (after the first append).
    log: Option<File>,
}

/// A log that would grow past this many bytes (or the snapshot's size, if
/// larger) is folded into a new snapshot.
pub const CHECKPOINT_BYTES: u64 = 4 << 20;

fn lock_tip(m: &Mutex<Option<Tip>>) -> MutexGuard<'_, Option<Tip>> {
    // A panic while the tip was held leaves it unknown: forget it, so the
    // next change writes a whole snapshot.
    m.lock().unwrap_or_else(|p| {
        let mut guard = p.into_inner();
        *guard = None;
        guard
    })
}

impl CatalogStore {
    /// Opens (creating) the catalog folder.
    pub fn open(dir: PathBuf) -> Result<Self> {
        crate::fs::create_dir_durable(&dir).at(&dir)?;
        crate::fs::remove_temp_files(&dir).at(&dir)?;
        Ok(CatalogStore { dir, checkpoint_bytes: CHECKPOINT_BYTES, tip: Mutex::new(None) })
    }

    /// Sets the log size past which a change is written as a snapshot
    /// (default [`CHECKPOINT_BYTES`]; tests use small ones).
    #[must_use]
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Reads the catalog in `dir` without creating or changing anything
    /// (a torn log tail is ignored, not cut off).
    pub fn open_read_only(dir: &Path) -> Result<Catalog> {
        if !dir.is_dir() {
            return Ok(Catalog::default());
        }
        CatalogStore { dir: dir.to_path_buf(), checkpoint_bytes: CHECKPOINT_BYTES, tip: Mutex::new(None) }.load_latest()
    }

    /// The snapshot file of sequence `base`.
    pub fn snapshot_path(&self, base: u64) -> PathBuf {
        self.dir.join(format!("{base:020}.cat"))
    }

    /// The log file of snapshot `base`.
    pub fn log_path(&self, base: u64) -> PathBuf {
        self.dir.join(format!("{base:020}.log"))
    }

    /// The sequences of the snapshots (`.cat`) or logs (`.log`) present.
    fn numbers(&self, ext: &str) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(ext)).and_then(|n| n.strip_suffix('.')) else {
                continue;
            };
            if let Ok(seq) = stem.parse::<u64>() {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The newest snapshot with its log replayed, or an empty catalog when
    /// there is none. The next change is appended to what this read.
    pub fn load_latest(&self) -> Result<Catalog> {
        let mut tip = lock_tip(&self.tip);
        *tip = None;
        let Some(&base) = self.numbers("cat")?.last() else {
            // Nothing on disk: the first change writes a snapshot.
            return Ok(Catalog::default());
        };
        let path = self.snapshot_path(base);
        let bytes = fs::read(&path).at(&path)?;
        let mut catalog = Catalog::decode(&path, &bytes)?;
        if catalog.sequence != base {
            return Err(Error::Corrupt { path, what: format!("file holds catalog sequence {}", catalog.sequence) });
        }
        let log_path = self.log_path(base);
        let contents = match fs::read(&log_path) {
            Ok(log_bytes) => log::decode_log(&log_path, base, &log_bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => log::LogContents::default(),
            Err(e) => return Err(Error::Io { path: log_path, source: e }),
        };
        if contents.torn {
            tracing::warn!(path = %log_path.display(), at = contents.good_len, "catalog log has a torn tail; ignoring it");
        }
        log::replay(&log_path, &mut catalog, &contents.deltas)?;
        *tip = Some(Tip {
            catalog: catalog.clone(),
            base,
            snapshot_len: bytes.len() as u64,
            log_len: contents.good_len,
            log: None,
        });
        Ok(catalog)
    }

    /// Persists `catalog`, a change of the catalog this store last loaded
    /// or persisted, durably: appended to the log, or as a snapshot when
    /// the log is long or `catalog` does not extend what is on disk.
    pub fn persist(&self, catalog: &Catalog) -> Result<()> {
        let mut guard = lock_tip(&self.tip);
        if let Some(tip) = guard.as_mut()
            && let Some(delta) = log::Delta::between(&tip.catalog, catalog)
        {
            let record = delta.encode_record();
            let bound = self.checkpoint_bytes.max(tip.snapshot_len);
            if tip.log_len.max(log::LOG_HEADER_LEN as u64) + record.len() as u64 <= bound {
                let path = self.log_path(tip.base);
                match append(&path, tip, &record) {
                    Ok(()) => {
                        tip.catalog = catalog.clone();
                        return Ok(());
                    }
                    Err(e) => {
                        // The change was refused: take its record back, so
                        // that an open before the next change does not
                        // replay it (best effort; if this fails too, the
                        // open replays a catalog entry without rows). The
                        // log's tail is unknown now either way: the next
                        // change starts a new snapshot instead.
                        if let Some(file) = tip.log.as_ref() {
                            let _ = file.set_len(tip.log_len);
                        }
                        *guard = None;
                        return Err(Error::Io { path, source: e });
                    }
                }
            }
        }
        *guard = None;
        self.write_snapshot(&mut guard, catalog)
    }

    /// Writes `catalog` as a new snapshot whatever the folder holds (a
    /// restore's catalog), replacing one of the same sequence.
    pub fn checkpoint(&self, catalog: &Catalog) -> Result<()> {
        let mut guard = lock_tip(&self.tip);
        *guard = None;
        self.write_snapshot(&mut guard, catalog)
    }

    /// Forgets what the folder holds, so the next change writes a snapshot
    /// (the folder was changed behind this store's back: a restore).
    pub fn forget(&self) {
        *lock_tip(&self.tip) = None;
    }

    fn write_snapshot(&self, tip: &mut Option<Tip>, catalog: &Catalog) -> Result<()> {
        let base = catalog.sequence;
        let path = self.snapshot_path(base);
        // A log of a snapshot being replaced holds changes past the old
        // one, not past this one.
        let log_path = self.log_path(base);
        match fs::remove_file(&log_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { path: log_path, source: e }),
        }
        let bytes = catalog.encode();
        crate::fs::atomic_write(&path, &bytes).at(&path)?;
        *tip = Some(Tip { catalog: catalog.clone(), base, snapshot_len: bytes.len() as u64, log_len: 0, log: None });

        // The new snapshot is durable: drop all but one older snapshot (for
        // diagnosis, with its log) and logs without their snapshot. Logs
        // first, so that no snapshot is left to meet a log it did not write.
        let snapshots = self.numbers("cat")?;
        let keep: Vec<u64> =
            snapshots.iter().copied().filter(|&s| s < base).rev().take(KEEP_OLD_SNAPSHOTS).chain([base]).collect();
        for old in self.numbers("log")?.into_iter().filter(|s| !keep.contains(s)) {
            let p = self.log_path(old);
            fs::remove_file(&p).at(&p)?;
        }
        for old in snapshots.into_iter().filter(|s| !keep.contains(s)) {
            let p = self.snapshot_path(old);
            fs::remove_file(&p).at(&p)?;
        }
        Ok(())
    }
}

/// Appends `record` to the log at `path` and syncs it, creating the log
/// (with its header) or cutting off a torn tail first.
fn append(path: &Path, tip: &mut Tip, record: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    if tip.log.is_none() {
        let file = fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
        // Whatever lies past the last whole record is a torn tail.
        file.set_len(tip.log_len)?;
        tip.log = Some(file);
    }
    let Some(file) = tip.log.as_mut() else { return Err(std::io::Error::other("catalog log not open")) };
    let created = tip.log_len == 0;
    let mut bytes = Vec::with_capacity(log::LOG_HEADER_LEN + record.len());
    if created {
        bytes.extend_from_slice(&log::encode_header(tip.base));
    }
    bytes.extend_from_slice(record);
    file.seek(SeekFrom::Start(tip.log_len))?;
    file.write_all(&bytes)?;
    crate::failpoint::check("catalog-log", "write")?;
    crate::failpoint::check("catalog-log", "fsync")?;
    if created {
        file.sync_all()?;
        crate::fs::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    } else {
        file.sync_data()?;
    }
    tip.log_len += bytes.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn catalogs_round_trip(ops in proptest::collection::vec((0u8..3, 0u8..4, "[a-e]{1,3}", proptest::option::of("[xy]"), 0u8..5), 0..40)) {
            let mut cat = Catalog::default();
            for (db, table, column, family, kind) in ops {
                let t = cat.database_mut(&format!("db{db}")).unwrap().table_mut(&format!("t{table}")).unwrap();
                let types = [FieldType::Float, FieldType::Integer, FieldType::UInteger, FieldType::String, FieldType::Boolean];
                // Conflicts are fine here: they just leave the catalog as it was.
                let _ = if kind == 4 { t.ensure_tag(&column) } else { t.ensure_field(&column, family.as_deref(), types[kind as usize]) };
            }
            cat.sequence = 9;
            let decoded = Catalog::decode(Path::new("c"), &cat.encode()).unwrap();
            prop_assert_eq!(&decoded, &cat);
            for db in decoded.databases() {
                for t in db.tables() {
                    for c in &t.columns {
                        prop_assert_eq!(t.column(&c.name).map(|x| x.id), Some(c.id));
                    }
                }
            }
        }

        #[test]
        fn arbitrary_catalog_bodies_are_errors_not_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let sealed = envelope::seal(MAGIC, FORMAT_VERSION, &body);
            let _ = Catalog::decode(Path::new("c"), &sealed);
        }
    }

    #[test]
    fn fields_join_families_and_conflicts_are_typed() {
        let mut cat = Catalog::default();
        let db = cat.database_mut("db").unwrap();
        let t = db.table_mut("cpu").unwrap();
        assert_eq!(t.ensure_tag("host").unwrap(), 0);
        let a = t.ensure_field("usage", Some("cpu"), FieldType::Float).unwrap();
        let b = t.ensure_field("free", None, FieldType::Integer).unwrap();
        assert_eq!(t.column_by_id(a).unwrap().family, Some(0));
        assert_eq!(t.family(t.column_by_id(b).unwrap().family.unwrap()).unwrap().name, "__auto_0");
        // A field written without a family keeps the one it has.
        assert_eq!(t.ensure_field("usage", None, FieldType::Float).unwrap(), a);
        assert!(matches!(t.ensure_field("usage", None, FieldType::Integer), Err(CatalogError::KindConflict { .. })));
        assert!(matches!(
            t.ensure_field("usage", Some("mem"), FieldType::Float),
            Err(CatalogError::FamilyConflict { .. })
        ));
        assert!(matches!(t.ensure_field("host", None, FieldType::Float), Err(CatalogError::KindConflict { .. })));
        assert!(matches!(t.ensure_tag("usage"), Err(CatalogError::KindConflict { .. })));
        assert!(matches!(t.ensure_tag("time"), Err(CatalogError::InvalidName { .. })));
        assert!(matches!(
            t.ensure_field("x", Some("__auto_0"), FieldType::Float),
            Err(CatalogError::InvalidName { .. })
        ));
    }

    #[test]
    fn automatic_families_hold_at_most_the_width() {
        let mut cat = Catalog::default();
        let t = cat.database_mut("db").unwrap().table_mut("wide").unwrap();
        for i in 0..(AUTO_FAMILY_WIDTH + 1) {
            t.ensure_field(&format!("f{i}"), None, FieldType::Float).unwrap();
        }
        assert_eq!(t.families.len(), 2);
        assert_eq!(t.column("f100").unwrap().family, Some(1));
    }

    #[test]
    fn bad_db_names_are_rejected() {
        let mut cat = Catalog::default();
        assert!(cat.database_mut("").is_err());
        assert!(cat.database_mut("a b").is_err());
        assert!(cat.database_mut(&"x".repeat(65)).is_err());
        assert!(cat.database_mut("ok_name-1").is_ok());
    }

    #[test]
    fn persisted_snapshot_round_trips_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::open(dir.path().join("catalog")).unwrap();
        assert_eq!(store.load_latest().unwrap(), Catalog::default());
        let mut cat = Catalog::default();
        for seq in 1..=3 {
            let t = cat.database_mut("db").unwrap().table_mut("cpu").unwrap();
            t.ensure_field(&format!("f{seq}"), None, FieldType::Integer).unwrap();
            cat.sequence = seq;
            store.checkpoint(&cat).unwrap();
        }
        let loaded = store.load_latest().unwrap();
        assert_eq!(loaded, cat);
        assert_eq!(loaded.database("db").unwrap().table("cpu").unwrap().column("f3").unwrap().id, 2);
        assert_eq!(store.numbers("cat").unwrap(), vec![2, 3]);

        let path = store.snapshot_path(3);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(store.load_latest(), Err(Error::Corrupt { path: p, .. }) if p == path));
    }

    /// `cat` with one more field in table `t`, and the sequence after.
    fn grown(cat: &Catalog, t: &str, field: &str) -> Catalog {
        let mut next = cat.clone();
        next.database_mut("db").unwrap().table_mut(t).unwrap().ensure_field(field, None, FieldType::Float).unwrap();
        next.sequence += 1;
        next
    }

    #[test]
    fn changes_are_appended_to_the_log_and_folded_into_a_snapshot_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cat_dir = dir.path().join("catalog");
        let store = CatalogStore::open(cat_dir.clone()).unwrap().checkpoint_bytes(300);
        let mut cat = grown(&Catalog::default(), "t0", "first");
        // Nothing on disk: the first change is a snapshot.
        store.persist(&cat).unwrap();
        assert_eq!(store.numbers("cat").unwrap(), vec![1]);
        assert!(store.numbers("log").unwrap().is_empty());
        let mut sizes = Vec::new();
        for i in 0..20 {
            cat = grown(&cat, &format!("t{}", i % 3), &format!("field_{i}"));
            store.persist(&cat).unwrap();
            sizes.push(fs::metadata(store.log_path(1)).map(|m| m.len()).unwrap_or(0));
            let reopened = CatalogStore::open(cat_dir.clone()).unwrap();
            assert_eq!(reopened.load_latest().unwrap(), cat, "after change {i}");
        }
        // The log grows by about one small record per change, then is folded.
        assert!(sizes[1] - sizes[0] < 100, "{sizes:?}");
        let snapshots = store.numbers("cat").unwrap();
        assert!(snapshots.len() == 2 && snapshots[1] > 1, "{snapshots:?}");
        let newest = *snapshots.last().unwrap();
        // Only the newest snapshot and the one before it (with their logs) are kept.
        assert!(store.numbers("log").unwrap().iter().all(|l| snapshots.contains(l)));
        assert_eq!(CatalogStore::open_read_only(&cat_dir).unwrap(), cat);
        assert!(newest <= cat.sequence);
    }

    #[test]
    fn a_torn_tail_is_ignored_then_cut_off_by_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let cat_dir = dir.path().join("catalog");
        let store = CatalogStore::open(cat_dir.clone()).unwrap();
        let one = grown(&Catalog::default(), "t", "a");
        store.persist(&one).unwrap();
        let two = grown(&one, "t", "b");
        store.persist(&two).unwrap();
        let log_path = store.log_path(1);
        let whole = fs::read(&log_path).unwrap();
        // A third change cut short at every length.
        let three = grown(&two, "u", "c");
        let record = log::Delta::between(&two, &three).unwrap().encode_record();
        for cut in 0..record.len() {
            let mut torn = whole.clone();
            torn.extend_from_slice(&record[..cut]);
            fs::write(&log_path, &torn).unwrap();
            assert_eq!(CatalogStore::open_read_only(&cat_dir).unwrap(), two, "cut at {cut}");
            let store = CatalogStore::open(cat_dir.clone()).unwrap();
            assert_eq!(store.load_latest().unwrap(), two);
            let other = grown(&two, "t", "other");
            store.persist(&other).unwrap();
            assert_eq!(CatalogStore::open(cat_dir.clone()).unwrap().load_latest().unwrap(), other, "cut at {cut}");
            let appended = log::Delta::between(&two, &other).unwrap().encode_record().len();
            assert_eq!(fs::metadata(&log_path).unwrap().len(), (whole.len() + appended) as u64);
            fs::write(&log_path, &whole).unwrap();
        }
        // A log cut inside its header (a crash while it was created).
        for cut in [0, 7, 19] {
            fs::write(&log_path, &whole[..cut]).unwrap();
            let store = CatalogStore::open(cat_dir.clone()).unwrap();
            assert_eq!(store.load_latest().unwrap(), one);
            store.persist(&two).unwrap();
            assert_eq!(fs::read(&log_path).unwrap(), whole);
        }
    }

    #[test]
    fn a_restored_catalog_is_a_snapshot_and_the_log_it_replaces_goes() {
        let dir = tempfile::tempdir().unwrap();
        let cat_dir = dir.path().join("catalog");
        let store = CatalogStore::open(cat_dir.clone()).unwrap();
        let mut cat = grown(&Catalog::default(), "t", "a");
        store.persist(&cat).unwrap();
        for f in ["b", "c"] {
            cat = grown(&cat, "t", f);
            store.persist(&cat).unwrap();
        }
        // Another lineage, newer: no delta from what is on disk.
        let mut restored = grown(&Catalog::default(), "t", "zz");
        restored.sequence = 9;
        store.persist(&restored).unwrap();
        assert_eq!(CatalogStore::open_read_only(&cat_dir).unwrap(), restored);
        // A checkpoint at a sequence that has a snapshot and a log replaces both.
        let store = CatalogStore::open(cat_dir.clone()).unwrap();
        let base = grown(&Catalog::default(), "t", "p");
        let mut at = base.clone();
        at.sequence = 20;
        store.checkpoint(&at).unwrap();
        let mut next = grown(&at, "t", "q");
        store.persist(&next).unwrap();
        assert!(store.log_path(20).exists());
        next = grown(&Catalog::default(), "v", "other");
        next.sequence = 20;
        store.checkpoint(&next).unwrap();
        assert!(!store.log_path(20).exists());
        assert_eq!(CatalogStore::open_read_only(&cat_dir).unwrap(), next);
    }
}
