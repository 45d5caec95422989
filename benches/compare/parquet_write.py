"""Times pyarrow writing the rows of an exported window as Parquet + zstd,
for a side-by-side with quipu's export (examples/export_day.rs --save DIR).

    python3 benches/compare/parquet_write.py DIR/2016-01-01.parquet

Reads the file quipu exported (so both write the same rows and schema), then
writes it with pyarrow's defaults plus zstd, best of 3, to a temp file.
"""
import os
import sys
import tempfile
import time

import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
rows = table.num_rows
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "pyarrow.parquet")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        pq.write_table(table, out, compression="zstd")
        best = min(best, time.perf_counter() - start)
    size = os.path.getsize(out)
print(f"pyarrow write_table zstd: {rows} rows, {size} bytes ({size / rows:.2f} B/row) "
      f"in {best:.3f}s = {size / best / 1e6:.0f} MB/s, {rows / best / 1e6:.2f}M rows/s")
