#!/usr/bin/env python3
"""The peers' side of the ingest comparison of benches/compare/suite.sh:
the same Arrow table quipu's `ingest_compare arrow` writes, written by
pyarrow as Parquet + zstd and by DuckDB into its own database file.

    python3 benches/compare/ingest_peers.py --input cpu.parquet --scratch DIR --json OUT [--runs 5] [--warmup 1]

The table is read into memory before any clock starts. Every run writes a
new file and ends when the file is durable: pyarrow's file fsynced; DuckDB's
database closed (a checkpoint, which fsyncs). Cases:
- `pyarrow`: `pq.write_table(compression="zstd")`, the input's row order
  (TSBS's arrival order: time, then host);
- `pyarrow sorted`: the same, the table sorted by (hostname, time)
  beforehand, untimed: Parquet's best case, for context;
- `duckdb`: `CREATE TABLE cpu AS SELECT * FROM` the Arrow table, in a new
  database file, default threads.
Bytes are the file's size.
"""

import argparse
import json
import os
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def sorted_by(table, *columns):
    """`table` sorted by `columns` ascending (dictionary columns by their values)."""
    keys = pa.table({c: pc.cast(table[c], table[c].type.value_type) if pa.types.is_dictionary(table[c].type)
                     else table[c] for c in columns})
    return table.take(pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in columns]))


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(table, path):
    pq.write_table(table, path, compression="zstd")
    fsync_file(path)


def write_duckdb(table, path):
    con = duckdb.connect(path)
    con.register("source", table)
    con.execute("CREATE TABLE cpu AS SELECT * FROM source")
    con.close()
    fsync_file(os.path.dirname(path))


def measure(name, write, table, scratch, suffix, runs, warmup):
    results = []
    for i in range(warmup + runs):
        path = os.path.join(scratch, f"{name.replace(' ', '-')}-{i}{suffix}")
        start = time.perf_counter()
        write(table, path)
        seconds = time.perf_counter() - start
        size = sum(os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p))
        for p in (path, path + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        timed = i >= warmup
        print(f"{name} {'' if timed else 'warm-up '}run {i + 1}: {table.num_rows} rows in {seconds:.3f} s = "
              f"{table.num_rows / seconds:.0f} rows/s, {size} bytes = {size / table.num_rows:.3f} B/row", flush=True)
        if timed:
            results.append({"total_s": seconds, "bytes": size})
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.scratch, exist_ok=True)
    table = pq.read_table(args.input)
    if table.num_rows == 0:
        raise SystemExit(f"{args.input} holds no rows")
    by_host = sorted_by(table, "hostname", "time")
    cases = [
        ("pyarrow", write_parquet, table, ".parquet"),
        ("pyarrow sorted", write_parquet, by_host, ".parquet"),
        ("duckdb", write_duckdb, table, ".duckdb"),
    ]
    out = {
        "versions": {"pyarrow": pa.__version__, "duckdb": duckdb.__version__},
        "rows": table.num_rows,
        "threads": duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0],
        "tools": {},
    }
    for name, write, t, suffix in cases:
        out["tools"][name] = measure(name, write, t, args.scratch, suffix, args.runs, args.warmup)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
