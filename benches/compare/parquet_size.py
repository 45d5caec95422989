#!/usr/bin/env python3
"""Bytes per row of TSBS cpu-only rows written to Parquet with zstd by pyarrow.

Usage: parquet_size.py LP_FILE [OUT_DIR]

Reads the line protocol that `quipu gen tsbs` (or the tsbs_ingest example's
--lp-out) wrote, builds the table a user would (tags as dictionary-encoded
strings, fields int64, time timestamp(ns, UTC)) and writes it twice: in
arrival order and sorted by (hostname, time), which is Parquet's best case.
Prints one line per variant: name, bytes, rows, bytes per row.
"""
import os
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

TAGS = ["hostname", "region", "datacenter", "rack", "os", "arch", "team", "service",
        "service_version", "service_environment"]
FIELDS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
          "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]


def chunk(tags, fields, times):
    cols = {t: pa.array(v, pa.string()) for t, v in tags.items()}
    cols.update({f: pa.array(v, pa.int64()) for f, v in fields.items()})
    cols["time"] = pa.array(times, pa.timestamp("ns", tz="UTC"))
    return pa.table(cols)


def read(path, rows_per_chunk=500_000):
    chunks = []
    tags = {t: [] for t in TAGS}
    fields = {f: [] for f in FIELDS}
    times = []
    with open(path, "rb") as f:
        for raw in f:
            series, field_set, ts = raw.rstrip(b"\n").split(b" ")
            for kv, name in zip(series.split(b",")[1:], TAGS):
                tags[name].append(kv.split(b"=", 1)[1].decode())
            for kv, name in zip(field_set.split(b","), FIELDS):
                fields[name].append(int(kv.split(b"=", 1)[1][:-1]))
            times.append(int(ts))
            if len(times) == rows_per_chunk:
                chunks.append(chunk(tags, fields, times))
                tags = {t: [] for t in TAGS}
                fields = {f: [] for f in FIELDS}
                times = []
    if times:
        chunks.append(chunk(tags, fields, times))
    return pa.concat_tables(chunks).combine_chunks()


def dictionary_tags(table):
    """Tags as dictionary-encoded strings, as a user would store them."""
    for t in TAGS:
        i = table.schema.get_field_index(t)
        table = table.set_column(i, t, table.column(t).dictionary_encode())
    return table


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)
    table = read(sys.argv[1])
    rows = table.num_rows
    variants = {
        "parquet_zstd_arrival_order": dictionary_tags(table),
        "parquet_zstd_sorted_host_time": dictionary_tags(table.sort_by([("hostname", "ascending"), ("time", "ascending")])),
    }
    for name, t in variants.items():
        path = os.path.join(out, name + ".parquet")
        pq.write_table(t, path, compression="zstd")
        size = os.path.getsize(path)
        print(f"{name} {size} {rows} {size / rows:.3f}")


if __name__ == "__main__":
    main()
