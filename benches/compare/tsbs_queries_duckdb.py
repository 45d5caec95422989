#!/usr/bin/env python3
"""The DuckDB side of benches/compare/tsbs_queries.sh: times the TSBS queries
that examples/tsbs_queries.rs wrote (--sql-out), the identical SQL text, over
quipu's Parquet export of the same data.

    python3 tsbs_queries_duckdb.py --parquet 'DIR/*.parquet' --queries queries.json \
        [--runs 10] [--json-out duckdb.json] [--compare quipu-results/] [--native] [--int-buckets]

`cpu` is a view over the Parquet files (read_parquet), in an in-memory
database with DuckDB's default settings (threads = the machine's cores) and
TimeZone UTC, so that date_trunc of a TIMESTAMPTZ truncates in UTC as quipu
does. Each query runs once untimed, then --runs times; a run is
con.sql(sql).to_arrow_table(), the whole result fetched.

--compare DIR checks every result against quipu's (DIR/<name>.parquet from
tsbs_queries --results-out): same columns, same rows once sorted (times as ns
since the epoch, floats to 9 significant digits).
--native also loads the Parquet into a native DuckDB table `cpu` (another
in-memory database) and times the same SQL there.
--int-buckets also times DuckDB's fastest equivalent form of the bucketed
queries: date_trunc('<unit>', CAST(time AS TIMESTAMPTZ)) replaced by
make_timestamp_ns(epoch_ns(time) // <unit ns> * <unit ns>) (same buckets, a
naive timestamp; DuckDB's date_trunc goes through its time zone code).
"""

import argparse
import json
import math
import re
import statistics
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

UNIT_NS = {"second": 10**9, "minute": 60 * 10**9, "hour": 3600 * 10**9, "day": 86400 * 10**9}
BUCKET = re.compile(r"date_trunc\('(second|minute|hour|day)', CAST\(time AS TIMESTAMPTZ\)\)")


def int_buckets(sql):
    """`sql` with every date_trunc bucket in DuckDB's integer form, or None."""
    if not BUCKET.search(sql):
        return None
    return BUCKET.sub(lambda m: f"make_timestamp_ns(epoch_ns(time) // {UNIT_NS[m.group(1)]} * {UNIT_NS[m.group(1)]})", sql)


def connect():
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    return con


def time_query(con, sql, runs):
    first = con.sql(sql).to_arrow_table()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        table = con.sql(sql).to_arrow_table()
        times.append(time.perf_counter() - start)
        if table.num_rows != first.num_rows:
            sys.exit(f"row count changed between runs: {first.num_rows} then {table.num_rows}")
    times.sort()
    return first, times


def normalized(table):
    """`table` as sorted rows of plain values, columns by name."""
    names = sorted(table.column_names)
    columns = []
    for name in names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(pa.int64())
        values = col.to_pylist()
        if pa.types.is_floating(col.type):
            values = [None if v is None else float(f"{v:.9g}") for v in values]
        columns.append(values)
    rows = list(zip(*columns))
    rows.sort(key=lambda r: tuple((v is None, v if v is not None else 0) for v in r))
    return names, rows


def compare(name, duck, quipu_path):
    try:
        quipu = pq.read_table(quipu_path)
    except FileNotFoundError:
        # tsbs_queries writes no file for an empty result.
        return None if duck.num_rows == 0 else f"{name}: duckdb has {duck.num_rows} rows, quipu none"
    dn, dr = normalized(duck)
    qn, qr = normalized(quipu)
    if dn != qn:
        return f"{name}: columns differ: duckdb {dn}, quipu {qn}"
    if dr != qr:
        diff = next(i for i, (a, b) in enumerate(zip(dr, qr)) if a != b) if len(dr) == len(qr) else None
        where = f"first difference at sorted row {diff}: duckdb {dr[diff]}, quipu {qr[diff]}" if diff is not None else ""
        return f"{name}: values differ ({len(dr)} against {len(qr)} rows) {where}"
    return None


def entry(name, table, times, runs):
    return {
        "name": name,
        "median_s": statistics.median(times),
        "min_s": times[0],
        "max_s": times[-1],
        "rows": table.num_rows,
        "runs": runs,
        "times_s": times,
    }


def report(label, e):
    print(
        f"{label:<34} median {e['median_s'] * 1e3:9.2f} ms  min {e['min_s'] * 1e3:9.2f} ms"
        f"  max {e['max_s'] * 1e3:9.2f} ms  rows {e['rows']}",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parquet", required=True, help="the Parquet files, a glob read_parquet takes")
    ap.add_argument("--queries", required=True, help="JSON from tsbs_queries --sql-out")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json-out")
    ap.add_argument("--compare", help="folder of quipu's results (tsbs_queries --results-out)")
    ap.add_argument("--native", action="store_true", help="also time a native DuckDB table")
    ap.add_argument("--int-buckets", action="store_true", help="also time integer buckets for date_trunc")
    args = ap.parse_args()

    queries = json.load(open(args.queries))
    glob = args.parquet.replace("'", "''")
    con = connect()
    con.sql(f"CREATE VIEW cpu AS SELECT * FROM read_parquet('{glob}')")
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    print(f"duckdb {duckdb.__version__}, threads {threads}", flush=True)

    out = {"duckdb_version": duckdb.__version__, "threads": threads, "parquet": [], "native": [], "int_buckets": []}
    failures = []
    for q in queries:
        table, times = time_query(con, q["sql"], args.runs)
        e = entry(q["name"], table, times, args.runs)
        out["parquet"].append(e)
        report(q["name"], e)
        if args.compare:
            problem = compare(q["name"], table, f"{args.compare}/{q['name']}.parquet")
            if problem:
                failures.append(problem)
                print("  " + problem, flush=True)
        if args.int_buckets:
            sql = int_buckets(q["sql"])
            if sql:
                table, times = time_query(con, sql, args.runs)
                e = entry(q["name"], table, times, args.runs)
                e["sql"] = sql
                out["int_buckets"].append(e)
                report(q["name"] + " (int buckets)", e)
                if args.compare:
                    problem = compare(q["name"] + " (int buckets)", table, f"{args.compare}/{q['name']}.parquet")
                    if problem:
                        failures.append(problem)
                        print("  " + problem, flush=True)

    if args.native:
        native = connect()
        start = time.perf_counter()
        native.sql(f"CREATE TABLE cpu AS SELECT * FROM read_parquet('{glob}')")
        out["native_load_s"] = time.perf_counter() - start
        print(f"native table loaded in {out['native_load_s']:.2f} s", flush=True)
        for q in queries:
            table, times = time_query(native, q["sql"], args.runs)
            e = entry(q["name"], table, times, args.runs)
            out["native"].append(e)
            report(q["name"] + " (native)", e)
        native.close()

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    if failures:
        sys.exit("results differ from quipu's:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
