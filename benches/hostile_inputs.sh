#!/usr/bin/env bash
# Issue 15's reproductions against a release `quipu serve`: prints outcomes, times and peak RSS.
set -uo pipefail
cd "$(dirname "$0")/.."
# Build first: cargo build --release --bin quipu
BIN=${BIN:-target/release/quipu}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PORT=18181
TOKEN=apiv3_measure
start() { # extra args
  rm -rf $WORK/data $WORK/data-backups
  QUIPU_ADMIN_TOKEN=$TOKEN $BIN serve --data-dir $WORK/data --http-bind 127.0.0.1:$PORT "$@" >$WORK/serve.log 2>&1 &
  PID=$!
  for i in $(seq 1 100); do curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/health && break; sleep 0.1; done
}
stop() { kill -TERM $PID; wait $PID 2>/dev/null; }
hwm() { grep VmHWM /proc/$PID/status | awk '{print $2/1024 " MiB"}'; }
q() { curl -s -G -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v3/query_sql" --data-urlencode "db=$1" --data-urlencode "q=$2" --data-urlencode "format=jsonl"; echo; }
w() { curl -s -o $WORK/resp -w "%{http_code} %{time_total}s" -H "Authorization: Bearer $TOKEN" -XPOST "http://127.0.0.1:$PORT/api/v3/write_lp?db=$1&precision=ns" --data-binary @"$2"; }

echo "== 1: a row at i64::MAX"
start
printf 'onlymax v=1i 9223372036854775807\n' > $WORK/max.lp
echo "write: $(w ts $WORK/max.lp)"
q ts "SELECT count(*) AS n FROM onlymax"
curl -s -XPOST -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v3/enterprise/backup" -H 'Content-Type: application/json' -d '{"type":"full"}' -o /dev/null -w "backup: %{http_code}\n"
stop
QUIPU_ADMIN_TOKEN=$TOKEN $BIN serve --data-dir $WORK/data --http-bind 127.0.0.1:$PORT >$WORK/serve.log 2>&1 & PID=$!
for i in $(seq 1 100); do curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/health && break; sleep 0.1; done
echo "after restart:"; q ts "SELECT count(*) AS n, max(time) AS t FROM onlymax"
stop

echo "== 2: rows near i64::MIN and i64::MAX: window names"
start
printf 'edge v=1i -9223372036854775808\nedge v=2i -9223372036854000000\nedge v=3i 9223372036854775807\n' > $WORK/edge.lp
echo "write: $(w ts $WORK/edge.lp)"
q ts "SELECT count(*) AS n FROM edge"
stop

echo "== 3: 70,000 lines, each a new field (default column limit)"
python3 -c "
import sys
with open('$WORK/bomb.lp','w') as f:
    for i in range(70000): f.write(f'bomb f{i}=1i {1000+i}\n')"
start
echo "write: $(w ts $WORK/bomb.lp) peak $(hwm)"; head -c 200 $WORK/resp; echo
stop
echo "== 3b: the same with the column limit lifted"
start --num-total-columns-per-table-limit 1000000
echo "write: $(w ts $WORK/bomb.lp) peak $(hwm)"; head -c 200 $WORK/resp; echo
q ts "SELECT count(*) AS n FROM bomb"
stop

echo "== 4: one line of 200,000 fields (limit lifted)"
python3 -c "
with open('$WORK/wide.lp','w') as f:
    f.write('wide ' + ','.join(f'f{i}={i}i' for i in range(200000)) + ' 7\n')"
start --num-total-columns-per-table-limit 1000000
echo "write: $(w ts $WORK/wide.lp) peak $(hwm)"
q ts "SELECT f199999 FROM wide"
stop

echo "== 6: SQL without bounds"
start --query-memory-bytes 268435456 --query-timeout 5s
python3 -c "
with open('$WORK/cpu.lp','w') as f:
    for i in range(36000): f.write(f'cpu,host=h{i%100} usage_user={i%97}.5 {i*1000000000}\n')"
echo "write: $(w ts $WORK/cpu.lp)"
for sql in "SELECT array_agg(a.usage_user) FROM cpu a CROSS JOIN cpu b" "SELECT a.usage_user FROM cpu a CROSS JOIN cpu b ORDER BY a.usage_user, b.usage_user LIMIT 1" "SELECT count(*) FROM generate_series(1, 30000000000)"; do
  /usr/bin/env time -f "%e s" curl -s -o $WORK/resp -w "%{http_code} " -G -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v3/query_sql" --data-urlencode "db=ts" --data-urlencode "q=$sql" 2>&1 | tr '\n' ' '
  echo " $(head -c 150 $WORK/resp) | $sql"
done
echo "peak $(hwm)"
stop
