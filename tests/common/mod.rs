//! Shared test helpers: a model of what a table should hold, and a way to
//! read scan output into the same shape.
#![allow(dead_code)]

use std::collections::BTreeMap;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::array_value_to_string;

/// (series rendered as sorted `k=v` pairs, time) -> field name -> value as text.
pub type Table = BTreeMap<(String, i64), BTreeMap<String, String>>;

/// Reads scan output into a [`Table`]. Tag columns are those with dictionary type.
pub fn table_of(batches: &[RecordBatch]) -> Table {
    let mut out = Table::new();
    for b in batches {
        let schema = b.schema();
        let time_idx = schema.index_of("time").expect("time column");
        for row in 0..b.num_rows() {
            let mut tags = Vec::new();
            let mut fields = BTreeMap::new();
            for (i, f) in schema.fields().iter().enumerate() {
                if i == time_idx {
                    continue;
                }
                let col = b.column(i);
                if col.is_null(row) {
                    continue;
                }
                let v = array_value_to_string(col, row).unwrap();
                if matches!(f.data_type(), arrow::datatypes::DataType::Dictionary(_, _)) {
                    tags.push(format!("{}={}", f.name(), v));
                } else {
                    fields.insert(f.name().clone(), v);
                }
            }
            tags.sort();
            let t = b
                .column(time_idx)
                .as_any()
                .downcast_ref::<arrow::array::TimestampNanosecondArray>()
                .unwrap()
                .value(row);
            let prev = out.insert((tags.join(","), t), fields);
            assert!(prev.is_none(), "duplicate row in scan output");
        }
    }
    out
}

/// Applies a write to the model: per field, the newest value wins.
pub fn apply(model: &mut Table, tags: &[(&str, String)], time: i64, fields: &[(&str, String)]) {
    let mut t: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    t.sort();
    let row = model.entry((t.join(","), time)).or_default();
    for (k, v) in fields {
        row.insert(k.to_string(), v.clone());
    }
}

/// A tiny deterministic generator (xorshift64*), so tests need no rand setup.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The entries of a tar archive: (name, bytes), in archive order.
pub fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

/// Every batch of a Parquet file, read with the parquet crate's Arrow reader.
pub fn read_parquet(bytes: Vec<u8>) -> Vec<RecordBatch> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// Copies a folder tree (a fixture, before opening it).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every window's Parquet of `db`.`table`, by tar entry name, converted
/// afresh (`TableExport::write_parquet`, no export cache).
pub fn converted_windows(engine: &quipu::Engine, db: &str, table: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let cache = std::sync::Arc::new(quipu::export::cache::ExportCache::disabled());
    let export = quipu::export::TableExport::new(engine, &cache, db, table, &[]).unwrap();
    (0..export.windows().len())
        .map(|i| {
            let mut bytes = Vec::new();
            export.write_parquet(i, &mut bytes).unwrap();
            (export.entry_name(i), bytes)
        })
        .collect()
}

/// The test harness's name of test `name` in the module `module_path`
/// (pass `module_path!()`): `module::name` in the one integration binary,
/// `name` at a binary's root. What `--exact` wants when a test re-runs its
/// own binary as a child.
pub fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}

/// An export cache for the data folder `dir` with `quipu serve`'s default
/// limit (1 GiB); give its hook to the engine's builder
/// (`.on_install(cache.hook(false))`) and it to the exports.
pub fn export_cache(dir: &std::path::Path) -> std::sync::Arc<quipu::export::cache::ExportCache> {
    std::sync::Arc::new(quipu::export::cache::ExportCache::open(
        dir,
        1 << 30,
        std::sync::Arc::new(quipu::clock::SystemClock),
    ))
}
