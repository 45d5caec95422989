#!/usr/bin/env bash
# Export of one compacted day through a real `quipu serve`, as a client sees
# it: `curl` reading GET /api/v3/export/window_data to the end.
#
#   benches/compare/export_http.sh DATA_DIR [DB] [TABLE]
#
# DATA_DIR holds compacted data, e.g. from
#   cargo run --release --example tsbs_ingest -- --hosts 1000 --duration 1d --no-sync --dir /tmp/tsbs-day
# Cases, with hyperfine (RUNS timed runs, default 10):
# - converted: `quipu serve --export-cache-bytes 0` (nothing kept, every
#   export converts);
# - cached, page cache warm: the default server, after one export;
# - cached, cold: the page cache dropped before each run (when
#   /proc/sys/vm/drop_caches is writable);
# - first use after a restart, cold: the server restarted and the page cache
#   dropped before each run (the entry is hashed whole before it is served).
# Needs hyperfine and curl. PORT (default 18181) for the server.
set -euo pipefail

DATA=${1:?usage: export_http.sh DATA_DIR [DB] [TABLE]}
DB=${2:-benchmark}
TABLE=${3:-cpu}
RUNS=${RUNS:-10}
PORT=${PORT:-18181}
TOKEN=apiv3_export-http-bench
URL="http://127.0.0.1:$PORT/api/v3/export/window_data?db=$DB&table=$TABLE"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN="$ROOT/target/release/quipu"
OUT=$(mktemp -d)

for tool in hyperfine curl; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release --quiet)

SERVER=
start() {
    QUIPU_ADMIN_TOKEN=$TOKEN "$BIN" serve --data-dir "$DATA" --no-backup --http-bind "127.0.0.1:$PORT" "$@" \
        >"$OUT/serve.log" 2>&1 &
    SERVER=$!
    until curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; do sleep 0.05; done
}
stop() {
    if [ -n "$SERVER" ]; then kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; fi
}
trap stop EXIT

FETCH="curl -sf -o /dev/null -H 'Authorization: Bearer $TOKEN' '$URL'"
DROP='sync; echo 3 > /proc/sys/vm/drop_caches'
CAN_DROP=0
if [ -w /proc/sys/vm/drop_caches ]; then CAN_DROP=1; fi

start --export-cache-bytes 0
BYTES=$(curl -sf -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $TOKEN" "$URL")
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/converted.json" -n converted "$FETCH"
stop

start
eval "$FETCH"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/cached.json" -n "cached, warm" "$FETCH"
if [ "$CAN_DROP" = 1 ]; then
    # The health call after the drop loads curl itself back, as in the
    # restart case below: only the export's own reads are cold.
    hyperfine -N --runs "$RUNS" --prepare "sh -c '$DROP; curl -s -o /dev/null http://127.0.0.1:$PORT/health'" \
        --export-json "$OUT/cached-cold.json" \
        -n "cached, cold" "$FETCH"
fi
stop

# First use after a restart: one timed request per server start.
FIRST=()
for _ in $(seq 1 "$RUNS"); do
    [ "$CAN_DROP" = 1 ] && sh -c "$DROP"
    start
    FIRST+=("$(curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$URL")")
    stop
done

python3 - "$OUT" "$BYTES" "${FIRST[@]}" <<'EOF'
import json, os, statistics, sys
out, size, first = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3:]]
rows = []
for name in ["converted", "cached", "cached-cold"]:
    path = os.path.join(out, name + ".json")
    if os.path.exists(path):
        r = json.load(open(path))["results"][0]
        rows.append((r["command"], r["median"], min(r["times"]), max(r["times"])))
label = "first use after a restart" + (", cold" if os.access("/proc/sys/vm/drop_caches", os.W_OK) else "")
rows.append((label, statistics.median(first), min(first), max(first)))
print(f"\n{size:,} bytes of tar per export\n")
print("| case | median | min-max | MB/s of tar (median) |")
print("|---|---|---|---|")
for name, med, lo, hi in rows:
    print(f"| {name} | {med*1000:.1f} ms | {lo*1000:.1f}-{hi*1000:.1f} ms | {size/1e6/med:,.0f} |")
EOF
