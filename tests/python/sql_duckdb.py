"""DuckDB runs the queries of tests/it/sql_duckdb.rs over quipu's Parquet export.
Driven by that test:

    sql_duckdb.py EXPORT_DIR QUERIES_JSON OUT_DIR

EXPORT_DIR holds one folder per table (`<table>/<YYYY-MM-DD>.parquet`, as
the export tar unpacks); each becomes a view named like the quipu table.
QUERIES_JSON is a list of {"name", "sql"}; the result of query i is written
to OUT_DIR/<i>.parquet (Arrow types as DuckDB gives them, through pyarrow)
for the Rust test to compare with quipu's own answer.

The views keep the data's meaning equal on both sides:
- `time` is exported as timestamp[ns, UTC], which DuckDB reads as
  TIMESTAMPTZ_NS; quipu's SQL sees a timestamp[ns] without a zone. The view
  turns it into TIMESTAMP_NS from its epoch nanoseconds (no time zone
  involved), so date_trunc, comparisons with RFC 3339 literals and results
  mean the same instant in both.
- tags are dictionary-encoded strings, which DuckDB reads as VARCHAR.
- DuckDB has no `date_bin`; a macro maps it to `time_bucket` with
  DataFusion's default origin (1970-01-01), so one SQL text runs on both.

Exits non-zero with a message when a peer is missing, the export does not
have the types the views rely on, or a query fails in DuckDB.
"""
import json
import sys
from pathlib import Path


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main(export_dir, queries_json, out_dir):
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    con = duckdb.connect()
    # Only the view's conversion decides what `time` means; pin the zone anyway.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE MACRO date_bin(stride, source) AS time_bucket(stride, source, TIMESTAMP '1970-01-01 00:00:00'),"
        " (stride, source, origin) AS time_bucket(stride, source, origin)"
    )
    tables = sorted(p for p in Path(export_dir).iterdir() if p.is_dir())
    if not tables:
        fail(f"no table folders in {export_dir}")
    for folder in tables:
        name = folder.name
        files = str(folder / "*.parquet").replace("'", "''")
        raw = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{files}'))").fetchall())
        # DuckDB 1.x reads timestamp[ns, UTC] as microsecond TIMESTAMPTZ and
        # would round the data's nanoseconds away before any view could help.
        if raw.get("time") != "TIMESTAMPTZ_NS":
            fail(f"{name}: duckdb {duckdb.__version__} reads time as {raw.get('time')}, not TIMESTAMPTZ_NS (duckdb >= 2 needed)")
        con.execute(
            f'CREATE VIEW "{name}" AS SELECT * REPLACE (make_timestamp_ns(epoch_ns(time)) AS time) '
            f"FROM read_parquet('{files}')"
        )
        types = dict(con.execute(f'SELECT column_name, column_type FROM (DESCRIBE "{name}")').fetchall())
        if types["time"] != "TIMESTAMP_NS":
            fail(f"{name}: view time is {types['time']}")
        # Every tag (dictionary in the export) must read as a string.
        schema = pq.read_schema(next(folder.glob("*.parquet")))
        for field in schema:
            if pa.types.is_dictionary(field.type) and types[field.name] != "VARCHAR":
                fail(f"{name}: tag {field.name} reads as {types[field.name]}")

    queries = json.loads(Path(queries_json).read_text())
    out = Path(out_dir)
    errors = []
    for i, q in enumerate(queries):
        try:
            result = con.sql(q["sql"])
            if result is None:
                raise ValueError("not a query")
            table = result.arrow()
            if isinstance(table, pa.RecordBatchReader):
                table = table.read_all()
            # Uncompressed: the Rust side builds parquet with zstd only.
            pq.write_table(table, out / f"{i}.parquet", compression="none")
        except Exception as e:  # every failing query is reported, then the run fails
            errors.append(f"query {q['name']}: {q['sql']}\n  {type(e).__name__}: {e}")
    if errors:
        fail(f"{len(errors)} of {len(queries)} queries failed in duckdb {duckdb.__version__}:\n" + "\n".join(errors))
    print(f"ok: {len(queries)} queries over {len(tables)} tables in duckdb {duckdb.__version__}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
