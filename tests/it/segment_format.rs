//! The `.seg` writer and reader are an encoder/decoder pair: arbitrary rows
//! (every field type, nulls, several families, tiny blocks) written and read
//! back are equal, also through time-range and series-filtered reads; and
//! arbitrary bytes as a segment file are a typed error, never a panic.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt64Array};
use proptest::prelude::*;
use quipu::catalog::{Column, ColumnKind, Family, FieldType};
use quipu::rows::Rows;
use quipu::segment::{Read, SegmentReader, TableInfo, WriteConfig, write_segment};
use quipu::write::SeriesKey;

#[derive(Debug, Clone)]
enum Cell {
    F(Option<f64>),
    I(Option<i64>),
    U(Option<u64>),
    S(Option<String>),
    B(Option<bool>),
}

fn column_types() -> [FieldType; 5] {
    [FieldType::Float, FieldType::Integer, FieldType::UInteger, FieldType::String, FieldType::Boolean]
}

fn cell(t: FieldType) -> BoxedStrategy<Cell> {
    match t {
        FieldType::Float => proptest::option::of(any::<f64>()).prop_map(Cell::F).boxed(),
        FieldType::Integer => proptest::option::of(any::<i64>()).prop_map(Cell::I).boxed(),
        FieldType::UInteger => proptest::option::of(any::<u64>()).prop_map(Cell::U).boxed(),
        FieldType::String => proptest::option::of("[a-c]{0,3}").prop_map(Cell::S).boxed(),
        FieldType::Boolean => proptest::option::of(any::<bool>()).prop_map(Cell::B).boxed(),
    }
}

fn array(cells: &[Cell]) -> ArrayRef {
    match cells.first() {
        Some(Cell::F(_)) | None => {
            Arc::new(cells.iter().map(|c| if let Cell::F(v) = c { *v } else { None }).collect::<Float64Array>())
        }
        Some(Cell::I(_)) => {
            Arc::new(cells.iter().map(|c| if let Cell::I(v) = c { *v } else { None }).collect::<Int64Array>())
        }
        Some(Cell::U(_)) => {
            Arc::new(cells.iter().map(|c| if let Cell::U(v) = c { *v } else { None }).collect::<UInt64Array>())
        }
        Some(Cell::S(_)) => {
            Arc::new(cells.iter().map(|c| if let Cell::S(v) = c { v.clone() } else { None }).collect::<StringArray>())
        }
        Some(Cell::B(_)) => {
            Arc::new(cells.iter().map(|c| if let Cell::B(v) = c { *v } else { None }).collect::<BooleanArray>())
        }
    }
}

/// Rows as comparable text: (series key, time, column values with bit-exact floats).
fn flat(r: &Rows) -> Vec<(SeriesKey, i64, Vec<String>)> {
    (0..r.len())
        .map(|i| {
            let vals = r
                .columns
                .iter()
                .map(|(id, a)| {
                    if a.is_null(i) {
                        return format!("{id}:null");
                    }
                    match a.as_any().downcast_ref::<Float64Array>() {
                        Some(f) => format!("{id}:{:x}", f.value(i).to_bits()),
                        None => format!("{id}:{}", arrow::util::display::array_value_to_string(a, i).unwrap()),
                    }
                })
                .collect();
            (r.series_keys[r.series[i] as usize].clone(), r.time[i], vals)
        })
        .collect()
}

/// One family's rows: unique sorted keys, columns of the given types, rows
/// with every value null dropped (a family section never holds those).
fn family_rows(keys: Arc<Vec<SeriesKey>>, types: Vec<(u32, FieldType)>) -> impl Strategy<Value = Rows> {
    let n_series = keys.len() as u32;
    proptest::collection::btree_set((0..n_series, -50i64..50), 0..40).prop_flat_map(move |set| {
        let keys = keys.clone();
        let rows: Vec<(u32, i64)> = set.into_iter().collect();
        let n = rows.len();
        let cols: Vec<_> = types.iter().map(|(id, t)| (Just(*id), proptest::collection::vec(cell(*t), n))).collect();
        (Just(rows), cols).prop_map(move |(rows, cols)| {
            let columns: Vec<(u32, ArrayRef)> = cols.iter().map(|(id, cells)| (*id, array(cells))).collect();
            let r = Rows {
                series_keys: keys.clone(),
                series: rows.iter().map(|r| r.0).collect(),
                time: rows.iter().map(|r| r.1).collect(),
                columns,
            };
            r.drop_all_null_rows().unwrap()
        })
    })
}

fn schema() -> (Vec<Column>, Vec<Family>, Arc<Vec<SeriesKey>>) {
    let mut columns = vec![
        Column { id: 0, name: "host".into(), kind: ColumnKind::Tag, family: None },
        Column { id: 1, name: "dc".into(), kind: ColumnKind::Tag, family: None },
    ];
    for (i, t) in column_types().into_iter().enumerate() {
        columns.push(Column {
            id: 2 + i as u32,
            name: format!("f{i}"),
            kind: ColumnKind::Field(t),
            family: Some((i % 2) as u32),
        });
    }
    let families =
        vec![Family { id: 0, name: "a".into(), auto: false }, Family { id: 1, name: "b".into(), auto: false }];
    let keys: Vec<SeriesKey> =
        vec![vec![], vec![(0, "h1".into())], vec![(0, "h1".into()), (1, "x".into())], vec![(0, "h2".into())]];
    (columns, families, Arc::new(keys))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_segments_read_back_equal(
        a in family_rows(schema().2, vec![(2, FieldType::Float), (4, FieldType::UInteger), (6, FieldType::Boolean)]),
        b in family_rows(schema().2, vec![(3, FieldType::Integer), (5, FieldType::String)]),
        block_rows in 1u32..9,
        level in 1i32..4,
        t0 in -60i64..60,
        len in 0i64..80,
        host in proptest::option::of(prop_oneof![Just("h1"), Just("h2"), Just("nope")]),
    ) {
        prop_assume!(!a.is_empty() || !b.is_empty());
        let (columns, families, _) = schema();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.seg");
        let info = TableInfo { db_id: 1, db: "db".into(), table_id: 2, table: "t".into() };
        let input = vec![(families[0].clone(), a.clone()), (families[1].clone(), b.clone())];
        let written = write_segment(&path, &info, &columns, input, WriteConfig { block_rows, zstd_level: level }, 7).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        prop_assert_eq!(written.size, bytes.len() as u64);
        prop_assert_eq!(written.blake3, *blake3::hash(&bytes).as_bytes());

        let reader = SegmentReader::open(&path).unwrap();
        reader.check_all_blocks().unwrap();
        let all = reader.read_all().unwrap();
        let originals = [(0u32, &a), (1u32, &b)];
        for (fid, want) in originals.iter().filter(|(_, r)| !r.is_empty()) {
            let got = all.iter().find(|(f, _)| f == fid).map(|(_, r)| r).unwrap();
            prop_assert_eq!(flat(got), flat(want));
        }

        // Filtered reads equal filtering the input.
        let matches = |k: &SeriesKey| host.is_none_or(|h| k.iter().any(|(c, v)| *c == 0 && v == h));
        let series: Option<&dyn Fn(&SeriesKey) -> bool> = if host.is_some() { Some(&matches) } else { None };
        for (i, fam) in reader.footer().families.iter().enumerate() {
            let want = if fam.id == 0 { &a } else { &b };
            let ids: Vec<u32> = want.columns.iter().map(|(id, _)| *id).collect();
            let chunks = reader.read_family(i, &Read { columns: &ids, time: quipu::TimeRange::half_open(t0, t0 + len), series, keep_null_rows: false }).unwrap();
            let got: Vec<_> = chunks.iter().flat_map(flat).collect();
            let expected: Vec<_> = flat(want).into_iter().filter(|(k, t, _)| *t >= t0 && *t < t0 + len && matches(k)).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn arbitrary_bytes_are_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.seg");
        let mut b = bytes;
        if magic && b.len() >= 20 {
            b[..4].copy_from_slice(b"QSEG");
            b[4..6].copy_from_slice(&1u16.to_le_bytes());
            let n = b.len();
            b[n - 4..].copy_from_slice(b"QSEG");
        }
        std::fs::write(&path, &b).unwrap();
        if let Ok(r) = SegmentReader::open(&path) {
            let _ = r.check_all_blocks();
        }
    }
}
