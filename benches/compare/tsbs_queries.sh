#!/usr/bin/env bash
# The TSBS cpu-only queries of issue 6 (single-groupby-1-1-1, cpu-max-all-1,
# double-groupby-1, lastpoint, high-cpu-1) through quipu's SQL, in-process,
# against DuckDB over quipu's Parquet export of the same data, the identical
# SQL text on both sides.
#
#   benches/compare/tsbs_queries.sh DATA_DIR [DB]
#
# DATA_DIR holds the compacted TSBS day (table `cpu`, DB default `benchmark`), e.g. from
#   cargo run --release --example tsbs_ingest -- --hosts 1000 --duration 1d --no-sync --dir /tmp/tsbs-day
# It is opened by the engine (which rotates its WAL) and otherwise only read.
# Steps: the SQL texts (examples/tsbs_queries.rs --sql-out); the table's
# windows exported as Parquet (TableExport::write_parquet, the bytes the HTTP
# export serves); EXPLAIN of each query; then ROUNDS rounds (default 2, the
# order of the two sides swapped each round) of: quipu (tsbs_queries, release
# build) and DuckDB (tsbs_queries_duckdb.py: a view over the Parquet, default
# threads), each query once untimed then RUNS times (default 10). DuckDB's
# results are checked against quipu's (row counts and values); the report
# pools the rounds' runs. With NATIVE=1 (default) DuckDB also times a native
# table loaded from the Parquet, and with INT_BUCKETS=1 (default) its
# fastest equivalent form of the bucketed queries (integer buckets); both are
# context, not the comparison. OUT (default a temp folder) keeps everything.
# PROFILE (default release) is the cargo profile tsbs_queries is built with.
# Needs python3 with duckdb and pyarrow (pip install duckdb pyarrow).
set -euo pipefail

DATA=${1:?usage: tsbs_queries.sh DATA_DIR [DB]}
DB=${2:-benchmark}
RUNS=${RUNS:-10}
ROUNDS=${ROUNDS:-2}
NATIVE=${NATIVE:-1}
INT_BUCKETS=${INT_BUCKETS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

[ -d "$DATA/segments" ] || { echo "$DATA is not a quipu data folder" >&2; exit 1; }
python3 -c 'import duckdb, pyarrow' 2>/dev/null || { echo "needs python3 with duckdb and pyarrow (pip install duckdb pyarrow)" >&2; exit 1; }

PROFILE=${PROFILE:-release}
(cd "$ROOT" && cargo build --profile "$PROFILE" --example tsbs_queries)
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
QUERIES="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/examples/tsbs_queries"

"$QUERIES" --sql-out "$OUT/queries.json"
rm -rf "$OUT/parquet"
"$QUERIES" "$DATA" --db "$DB" --export-parquet "$OUT/parquet"
"$QUERIES" "$DATA" --db "$DB" --runs 0 --explain >"$OUT/explain.txt"

DUCK_OPTS=()
[ "$NATIVE" = 1 ] && DUCK_OPTS+=(--native)
[ "$INT_BUCKETS" = 1 ] && DUCK_OPTS+=(--int-buckets)
quipu_side() { # round
  echo "== quipu, round $1"
  "$QUERIES" "$DATA" --db "$DB" --runs "$RUNS" --json-out "$OUT/quipu-$1.json" --results-out "$OUT/quipu-results"
}
duckdb_side() { # round
  echo "== duckdb, round $1"
  python3 "$HERE/tsbs_queries_duckdb.py" --parquet "$OUT/parquet/*.parquet" --queries "$OUT/queries.json" \
    --runs "$RUNS" --json-out "$OUT/duckdb-$1.json" --compare "$OUT/quipu-results" "${DUCK_OPTS[@]}"
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    quipu_side "$round"
    duckdb_side "$round"
  else
    duckdb_side "$round"
    quipu_side "$round"
  fi
done

python3 - "$OUT" "$ROUNDS" "$RUNS" "$LOAD_START" <<'EOF'
import json, os, platform, statistics, subprocess, sys
out, rounds, runs, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def pooled(entries):
    """name -> (median, min, rows) over every round's runs."""
    by = {}
    for e in entries:
        t, rows = by.setdefault(e["name"], ([], set()))
        t.extend(e["times_s"])
        rows.add(e["rows"])
    return {n: (statistics.median(t), min(t), rows) for n, (t, rows) in by.items()}

quipu, duck = [], {"parquet": [], "native": [], "int_buckets": []}
native_load = []
for r in range(1, rounds + 1):
    quipu += json.load(open(f"{out}/quipu-{r}.json"))
    d = json.load(open(f"{out}/duckdb-{r}.json"))
    version, threads = d["duckdb_version"], d["threads"]
    for k in duck:
        duck[k] += d[k]
    if "native_load_s" in d:
        native_load.append(d["native_load_s"])
q, p, nat, ib = pooled(quipu), pooled(duck["parquet"]), pooled(duck["native"]), pooled(duck["int_buckets"])
names = [e["name"] for e in json.load(open(f"{out}/queries.json"))]

ms = lambda s: f"{s * 1e3:,.1f} ms" if s >= 0.01 else f"{s * 1e3:,.2f} ms"
model = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
print(f"\n{os.cpu_count()} cpus ({model}), load average at the start {load}; duckdb {version} ({threads} threads),"
      f" {rounds} round(s) x {runs} runs per side pooled; time = planning + the whole result\n")
print("| query | rows | quipu median (min) | duckdb on Parquet median (min) | duckdb / quipu |")
print("|---|---|---|---|---|")
bad = []
for n in names:
    (qm, qmin, qrows), (dm, dmin, drows) = q[n], p[n]
    if qrows != drows or len(qrows) != 1:
        bad.append(f"{n}: quipu rows {sorted(qrows)}, duckdb rows {sorted(drows)}")
    print(f"| {n} | {next(iter(qrows)):,} | {ms(qm)} ({ms(qmin)}) | {ms(dm)} ({ms(dmin)}) | **{dm / qm:.2f}** |")
if nat or ib:
    print("\nContext (not the comparison): DuckDB on a native table loaded from the Parquet"
          + (f" (load {statistics.median(native_load):.2f} s)" if native_load else "")
          + ", and DuckDB on the Parquet with integer buckets instead of date_trunc\n")
    print("| query | quipu median | duckdb native median | native / quipu | duckdb int buckets median | int buckets / quipu |")
    print("|---|---|---|---|---|---|")
    for n in names:
        qm = q[n][0]
        cells = []
        for m in (nat, ib):
            cells += [ms(m[n][0]), f"{m[n][0] / qm:.2f}"] if n in m else ["-", "-"]
        print(f"| {n} | {ms(qm)} | " + " | ".join(cells) + " |")
print(f"\nratio > 1: quipu faster. Files: {out} (queries.json, explain.txt, quipu-*.json, duckdb-*.json)")
if bad:
    sys.exit("row counts differ:\n" + "\n".join(bad))
EOF
