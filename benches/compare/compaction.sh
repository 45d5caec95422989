#!/usr/bin/env bash
# The peak memory of `quipu serve` from ingest to fully compacted: how much
# RAM a server needs to take a day of data (or a long backfill, or a million
# series) and bring it into its compacted 24h windows.
#
#   bash benches/compare/compaction.sh [--smoke] [SCRATCH]
#
# Every scenario, one after the other, on a new data folder:
# 1. `quipu serve` on 127.0.0.1:$PORT with `--compact-age 1s` (compaction
#    starts as soon as files are flushed), `--flush-age $FLUSH_AGE` (the end
#    of the write is flushed at once rather than after the default 60 s),
#    `--no-backup`, `--compaction-memory $COMPACTION_MEMORY` when set, and
#    $SERVE_ARGS; the defaults otherwise;
# 2. the scenario's line protocol written with `quipu write --db bench FILE`
#    (timed);
# 3. /metrics polled every 0.5 s (during the write too) until no row is
#    left in the write buffer or in gen0 files and the compacted files hold
#    every row written: fully compacted, timed from the start of the write
#    (an error after TIMEOUT seconds);
# 4. then the server's VmHWM (peak resident set, /proc/<pid>/status), the
#    bytes of its segment files, and its counters; the server is stopped.
#
# Scenarios (line protocol generated deterministically once under
# SCRATCH/sets and kept; `quipu gen tsbs` at 10 s intervals):
#   tsbs-1000x1d         1,000 hosts, one day (8.64M rows), time order (as
#                        generated; the suite's TSBS day, the same file);
#   tsbs-2000x1d         2,000 hosts, one day (17.28M rows);
#   tsbs-4000x1d         4,000 hosts, one day (34.56M rows): with the two
#                        above, peak memory against rows;
#   tsbs-100x10d-time    100 hosts, ten days (8.64M rows, ten windows), time
#                        order: a backfill;
#   tsbs-100x10d-series  the same lines by series: one series after another,
#                        each in time order (a stable sort on the first
#                        space-separated token, measurement and tags);
#   series-1m            1,000,000 series (`iot,device=d<i> v=<float> <t>`),
#                        3 points each at distinct times within one day, in
#                        time order (3M rows).
#
# --smoke: tiny sizes (20, 40 and 80 hosts for 2 h; 5 hosts for 2 days in
# time and series order; 2,000 series), the debug build; it checks only
# that every scenario reached fully compacted with the right number of rows
# and asserts no time or memory. The chart goes into the results folder.
#
# Outputs, in RES (default SCRATCH/compaction-results; suite.sh's step
# `compaction` sets SCRATCH/suite-results):
#   compaction.csv          one line per scenario and run (a run of a few
#                           SCENARIOS replaces their lines and keeps the
#                           others; the report shows the median of the runs
#                           and, for peak RSS, their range): rows,
#                           seconds of the write and to fully compacted, RSS
#                           before the write, peak RSS (VmHWM) at the end and
#                           when the write returned, the largest sampled
#                           RssAnon, bytes of compacted segments (/metrics and
#                           *.seg on disk), bytes/row, rows/s, counters,
#                           the build and the server's flags;
#   compaction-timeline/    per scenario (its first run; later runs in
#                           <scenario>.run<N>.csv), every 0.5 s sample: seconds since
#                           the write started, RSS, anonymous RSS, VmHWM,
#                           buffer rows, gen0 and compacted files and rows;
#   compaction-machine.txt  the machine, the build, the server's flags;
#   compaction.md           compaction_report.py's table;
#   docs/img/compaction-peak-rss.png (full run) or RES/img/ (--smoke), and
#   RES/img/compaction-timeline.png.
#
# SCRATCH (default $SUITE_DIR or /work/scratch/suite; with --smoke a new
# temporary folder) should be on a disk, not tmpfs. A full run keeps about
# 25 GiB of line protocol (KEEP_SETS=0 deletes each file once no scenario
# left to run needs it: about 12 GiB at the peak, the 4,000-host day), needs
# a few hundred MiB more for the data folders and takes roughly half an hour
# on 2 cores, most of it the 4,000-host day and, the first time, generating
# the sets (the 1,000-host day: about 75 s from the write to compacted).
# Environment: SCENARIOS (space-separated subset of the above, in any
# order), RUNS (runs of each scenario, one after the other, each on a new
# data folder; default 1: peak RSS of one run varies by up to a third on a
# shared machine, so compare medians of 3 or more), PORT (default 18461), COMPACTION_MEMORY (bytes, passed as
# --compaction-memory), FLUSH_AGE (default 1s), SERVE_ARGS (more flags for
# `quipu serve`, split at spaces), TIMEOUT (seconds from the start of the
# write to fully compacted; default 7200, --smoke 300), KEEP_SETS (default
# 1), QUIPU (a quipu binary to use instead of building one), RES.
set -euo pipefail

SMOKE=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $a (see --help)" >&2; exit 2 ;;
    *) ARGS+=("$a") ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/benches/compare"
ALL="tsbs-1000x1d tsbs-2000x1d tsbs-4000x1d tsbs-100x10d-time tsbs-100x10d-series series-1m"
if [ "$SMOKE" = 1 ]; then
  SCRATCH=$(realpath -m "${ARGS[0]:-$(mktemp -d "${TMPDIR:-/tmp}/quipu-compaction-smoke.XXXXXX")}")
  PROFILE=dev
  # hosts and duration of the tsbs-*x1d scenarios; of the 100x10d ones; series.
  DAY_HOSTS=(20 40 80) DAY_DURATION=2h LONG_HOSTS=5 LONG_DURATION=2d SERIES=2000
  TIMEOUT=${TIMEOUT:-300}
else
  SCRATCH=$(realpath -m "${ARGS[0]:-${SUITE_DIR:-/work/scratch/suite}}")
  PROFILE=release
  DAY_HOSTS=(1000 2000 4000) DAY_DURATION=1d LONG_HOSTS=100 LONG_DURATION=10d SERIES=1000000
  TIMEOUT=${TIMEOUT:-7200}
fi
INTERVAL=10s
PORT=${PORT:-18461}
FLUSH_AGE=${FLUSH_AGE:-1s}
KEEP_SETS=${KEEP_SETS:-1}
RUNS=${RUNS:-1}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive number, not $RUNS" >&2; exit 2; }
SCENARIOS=${SCENARIOS:-$ALL}
for s in $SCENARIOS; do
  [[ " $ALL " == *" $s "* ]] || { echo "unknown scenario $s (among: $ALL)" >&2; exit 2; }
done
RES=${RES:-$SCRATCH/compaction-results}
cd "$ROOT"

# --- build ---------------------------------------------------------------------------------
if [ -z "${QUIPU:-}" ]; then
  if [ "$PROFILE" = dev ]; then cargo build --bin quipu; else cargo build --release --bin quipu; fi
  TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  QUIPU="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo release)/quipu"
fi
SERVE_HELP=$("$QUIPU" serve --help)
SERVE=(--compact-age 1s --flush-age "$FLUSH_AGE")
if [[ "$SERVE_HELP" == *--no-backup* ]]; then SERVE+=(--no-backup); fi
if [ -n "${COMPACTION_MEMORY:-}" ]; then
  [[ "$SERVE_HELP" == *--compaction-memory* ]] || { echo "$QUIPU serve has no --compaction-memory" >&2; exit 1; }
  SERVE+=(--compaction-memory "$COMPACTION_MEMORY")
fi
read -r -a EXTRA <<< "${SERVE_ARGS:-}"
SERVE+=("${EXTRA[@]}")

mkdir -p "$SCRATCH/sets" "$RES/compaction-timeline"
W="$SCRATCH/compaction-work"
rm -rf "$W"
mkdir -p "$W"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"
tool_env
fstype=$(df -T "$SCRATCH" | awk 'NR==2 {print $2}')
if [ "$fstype" = tmpfs ] && [ "$SMOKE" = 0 ]; then
  echo "$SCRATCH is on tmpfs; pick a folder on a disk" >&2
  exit 1
fi

# --- data sets -----------------------------------------------------------------------------
# The line protocol file of a scenario, its generator's description, and
# the files it is made from (those KEEP_SETS=0 may delete only after it).
hosts_of() { case $1 in tsbs-1000x1d) echo "${DAY_HOSTS[0]}" ;; tsbs-2000x1d) echo "${DAY_HOSTS[1]}" ;; tsbs-4000x1d) echo "${DAY_HOSTS[2]}" ;; *) echo "$LONG_HOSTS" ;; esac; }
tsbs_lp() { echo "$SCRATCH/sets/tsbs-${1}h-${2}-every-${INTERVAL}.lp"; } # hosts duration
lp_of() {
  case $1 in
    tsbs-*x1d) tsbs_lp "$(hosts_of "$1")" "$DAY_DURATION" ;;
    tsbs-100x10d-time) tsbs_lp "$LONG_HOSTS" "$LONG_DURATION" ;;
    tsbs-100x10d-series) echo "$(tsbs_lp "$LONG_HOSTS" "$LONG_DURATION" | sed 's/\.lp$//')-by-series.lp" ;;
    series-1m) echo "$SCRATCH/sets/series-${SERIES}x3.lp" ;;
  esac
}
spec_of() {
  case $1 in
    tsbs-*x1d) echo "quipu gen tsbs --hosts $(hosts_of "$1") --duration $DAY_DURATION --interval $INTERVAL" ;;
    tsbs-100x10d-time) echo "quipu gen tsbs --hosts $LONG_HOSTS --duration $LONG_DURATION --interval $INTERVAL" ;;
    tsbs-100x10d-series) echo "quipu gen tsbs --hosts $LONG_HOSTS --duration $LONG_DURATION --interval $INTERVAL; sorted by series" ;;
    series-1m) echo "$SERIES series x 3 points in one day" ;;
  esac
}
sources_of() {
  lp_of "$1"
  [ "$1" = tsbs-100x10d-series ] && lp_of tsbs-100x10d-time
  return 0
}
# Refuses to start writing a file of about $1 bytes unless 2 GiB more stay free.
need_bytes() {
  local free; free=$(df -B1 --output=avail "$SCRATCH/sets" | tail -1 | tr -dc 0-9)
  if [ "$free" -lt $(($1 + (2 << 30))) ]; then
    echo "about $(($1 >> 20)) MiB needed under $SCRATCH/sets, $((free >> 20)) MiB free (KEEP_SETS=0 or fewer SCENARIOS)" >&2
    exit 1
  fi
}
ensure_lp() { # scenario: generates its file once (a .done beside it marks it whole)
  local lp; lp=$(lp_of "$1")
  [ -e "$lp.done" ] && return 0
  echo "== generating $(basename "$lp")"
  rm -f "$lp"
  # About 345 bytes a TSBS line, 40 a series-1m one; sort needs as much again.
  local hosts dur=$DAY_DURATION secs copies=1
  hosts=$(hosts_of "$1")
  [[ $1 == tsbs-100x10d-* ]] && dur=$LONG_DURATION
  case $dur in *d) secs=$((${dur%d} * 86400)) ;; *h) secs=$((${dur%h} * 3600)) ;; esac
  [ "$1" = tsbs-100x10d-series ] && copies=2
  case $1 in
    tsbs-*) need_bytes $((hosts * secs * 345 * copies / 10)) ;;
    series-1m) need_bytes $((SERIES * 3 * 40)) ;;
  esac
  case $1 in
    tsbs-100x10d-series)
      ensure_lp tsbs-100x10d-time
      LC_ALL=C sort -s -t' ' -k1,1 -S 512M -T "$SCRATCH/sets" "$(lp_of tsbs-100x10d-time)" > "$lp"
      ;;
    tsbs-*)
      local args; args=$(spec_of "$1")
      # shellcheck disable=SC2086 # the generator's flags, split at spaces
      "$QUIPU" ${args#quipu } > "$lp"
      ;;
    series-1m)
      # Device i's point r at 2016-01-01 + r * 8 h + i * (8 h / SERIES): every
      # timestamp distinct, the file in time order, the value a function of i and r.
      python3 - "$SERIES" > "$lp" <<'EOF'
import sys
n = int(sys.argv[1])
start, third = 1451606400 * 10**9, 8 * 3600 * 10**9
out = sys.stdout
for r in range(3):
    base = start + r * third
    out.writelines(f"iot,device=d{i} v={(i * 7919 + r * 104729) % 1000003 / 1000:.3f} {base + i * third // n}\n"
                   for i in range(n))
EOF
      ;;
  esac
  touch "$lp.done"
}

# --- one scenario --------------------------------------------------------------------------
auth=(-H "Authorization: Bearer $QUIPU_ADMIN_TOKEN")
start_quipu() { # data-dir: the server in the background, returning once /health answers
  "$QUIPU" serve --data-dir "$1" --http-bind "127.0.0.1:$PORT" "${SERVE[@]}" > "$W/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do
    curl -sf -o /dev/null "${auth[@]}" "$HOST/health" && return 0
    kill -0 "$SERVER" 2> /dev/null || break
    sleep 0.1
  done
  echo "quipu serve did not answer; see $W/serve.log:" >&2
  tail -20 "$W/serve.log" >&2
  exit 1
}
metric() { # name [level]: its value in $W/metrics.txt
  local key=$1
  [ $# -gt 1 ] && key="$1{level=\"$2\"}"
  awk -v k="$key" '$1 == k {print $2; found = 1} END {if (!found) print "NA"}' "$W/metrics.txt"
}
status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER/status"; }
now_us() { echo "${EPOCHREALTIME/./}"; }   # microseconds since the epoch
secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); } # microseconds as seconds
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

CSV="$RES/compaction.csv"
HEADER="scenario,run,spec,rows,write_s,compacted_s,start_rss_mib,peak_rss_mib,peak_rss_write_mib,peak_anon_sampled_mib,end_rss_mib,file_bytes,disk_seg_bytes,bytes_per_row,write_rows_per_s,rows_per_s,flushes,compactions,write_stalls,max_gen0_files,compacted_files,profile,serve_flags"
run_scenario() { # scenario run
  local s=$1 run=$2 lp data rows
  lp=$(lp_of "$s")
  data="$W/data-$s"
  rows=$(wc -l < "$lp")
  rm -rf "$data"
  echo "== $s (run $run of $RUNS): $rows rows ($(spec_of "$s"))"
  start_quipu "$data"
  local tl="$RES/compaction-timeline/$s.csv"
  if [ "$run" = 1 ]; then rm -f "$RES/compaction-timeline/$s".run*.csv; else tl="$RES/compaction-timeline/$s.run$run.csv"; fi
  echo "t_s,phase,rss_kib,anon_kib,hwm_kib,buffer_rows,gen0_files,gen0_rows,compacted_files,compacted_rows" > "$tl"
  rm -f "$W/write.done"
  local start_kib; start_kib=$(status_kib VmRSS)
  local t0; t0=$(now_us)
  (
    if "$QUIPU" --host "$HOST" write --db bench "$lp" > "$W/write.log" 2>&1; then rc=0; else rc=$?; fi
    echo "$rc $(now_us)" > "$W/write.done"
  ) &
  local writer=$! write_s='' phase=write peak_write_kib='' max_anon=0 max_gen0=0 done_s='' next=$((t0 - 500000)) timeout_us=$((TIMEOUT * 1000000))
  while :; do
    # Every 0.5 s (from now on, if a round took longer).
    next=$((next + 500000))
    local pause=$((next - $(now_us)))
    if [ "$pause" -gt 0 ]; then sleep "$(printf '0.%06d' "$pause")"; else next=$(now_us); fi
    if [ -z "$write_s" ] && [ -e "$W/write.done" ]; then
      local rc t1
      read -r rc t1 < "$W/write.done"
      wait "$writer" || true
      write_s=$(secs $((t1 - t0)))
      peak_write_kib=$(status_kib VmHWM)
      phase=compact
      cat "$W/write.log"
      [ "$rc" = 0 ] || { echo "$s: quipu write failed ($rc)" >&2; exit 1; }
    fi
    kill -0 "$SERVER" 2> /dev/null || { echo "$s: quipu serve exited; see $W/serve.log" >&2; tail -20 "$W/serve.log" >&2; exit 1; }
    local elapsed t rss anon hwm buf g0 g0r cf cr
    elapsed=$(($(now_us) - t0))
    t=$(secs "$elapsed")
    if ! curl -sf -m 10 "${auth[@]}" "$HOST/metrics" > "$W/metrics.txt"; then
      echo "$s: /metrics did not answer at ${t}s" >&2
      [ "$elapsed" -gt "$timeout_us" ] && { echo "$s: giving up after ${TIMEOUT}s" >&2; exit 1; }
      continue
    fi
    rss=$(status_kib VmRSS) anon=$(status_kib RssAnon) hwm=$(status_kib VmHWM)
    buf=$(metric quipu_buffer_rows) g0=$(metric quipu_files gen0) g0r=$(metric quipu_file_rows gen0)
    cf=$(metric quipu_files compacted) cr=$(metric quipu_file_rows compacted)
    echo "$t,$phase,$rss,$anon,$hwm,$buf,$g0,$g0r,$cf,$cr" >> "$tl"
    [ "$anon" -gt "$max_anon" ] && max_anon=$anon
    [ "$g0" != NA ] && [ "$g0" -gt "$max_gen0" ] && max_gen0=$g0
    if [ -n "$write_s" ] && [ "$g0" = 0 ] && [ "$buf" = 0 ] && [ "$cr" = "$rows" ]; then
      done_s=$t
      break
    fi
    if [ -n "$write_s" ] && [ "$cr" != NA ] && [ "$cr" -gt "$rows" ]; then
      echo "$s: the compacted files hold $cr rows, more than the $rows written" >&2
      exit 1
    fi
    if [ "$elapsed" -gt "$timeout_us" ]; then
      echo "$s: not fully compacted after ${TIMEOUT}s (write $([ -n "$write_s" ] && echo "done in ${write_s}s" || echo "still running"); buffer $buf rows, gen0 $g0 files / $g0r rows, compacted $cf files / $cr of $rows rows); see $tl and $W/serve.log" >&2
      exit 1
    fi
  done
  local hwm_kib end_kib
  hwm_kib=$(status_kib VmHWM) end_kib=$(status_kib VmRSS)
  local written rejected file_bytes flushes compactions stalls
  written=$(metric quipu_rows_written_total) rejected=$(metric quipu_lines_rejected_total)
  file_bytes=$(metric quipu_file_bytes compacted) flushes=$(metric quipu_flushes_total)
  compactions=$(metric quipu_compactions_total) stalls=$(metric quipu_write_stalls_total)
  if [ "$written" != "$rows" ] || [ "$rejected" != 0 ]; then
    echo "$s: the server counts $written rows written and $rejected lines rejected of $rows" >&2
    exit 1
  fi
  stop_server
  local disk
  disk=$(find "$data/segments" -name '*.seg' -printf '%s\n' | awk '{n += $1} END {print n + 0}')
  local line
  line=$(awk -v s="$s" -v run="$run" -v spec="$(spec_of "$s")" -v rows="$rows" -v w="$write_s" -v c="$done_s" \
    -v st0="$start_kib" -v hwm="$hwm_kib" -v hw="$peak_write_kib" -v an="$max_anon" -v end="$end_kib" -v fb="$file_bytes" \
    -v disk="$disk" -v fl="$flushes" -v co="$compactions" -v st="$stalls" -v g0="$max_gen0" -v cf="$cf" \
    -v p="$PROFILE" -v flags="${SERVE[*]}" 'BEGIN {
      printf "%s,%d,\"%s\",%d,%.3f,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%d,%d,%.3f,%.0f,%.0f,%d,%d,%d,%d,%d,%s,\"%s\"\n",
        s, run, spec, rows, w, c, st0 / 1024, hwm / 1024, hw / 1024, an / 1024, end / 1024, fb, disk, fb / rows,
        rows / w, rows / c, fl, co, st, g0, cf, p, flags }')
  # The first run replaces every line of the scenario; later runs add theirs.
  local drop="^$s,"
  [ "$run" = 1 ] || drop="^$s,$run,"
  { if [ -e "$CSV" ]; then grep -v -e '^scenario,' -e "$drop" "$CSV" || true; fi; echo "$line"; } > "$CSV.new"
  { echo "$HEADER"; cat "$CSV.new"; } > "$CSV"
  rm -f "$CSV.new"
  echo "$s (run $run): $rows rows; write ${write_s}s, fully compacted after ${done_s}s; peak RSS $(mib "$hwm_kib") MiB" \
    "($(mib "$peak_write_kib") MiB by the end of the write); $file_bytes bytes of compacted segments"
  rm -rf "$data"
}

trap stop_server EXIT
# The scenarios in the order of $ALL; with KEEP_SETS=0 a file goes once no
# scenario left to run needs it.
order=()
for s in $ALL; do [[ " $SCENARIOS " == *" $s "* ]] && order+=("$s"); done
for i in "${!order[@]}"; do
  s=${order[$i]}
  ensure_lp "$s"
  for run in $(seq "$RUNS"); do run_scenario "$s" "$run"; done
  if [ "$KEEP_SETS" = 0 ]; then
    for f in $(sources_of "$s"); do
      keep=0
      for later in "${order[@]:$((i + 1))}"; do
        [[ " $(sources_of "$later" | tr '\n' ' ') " == *" $f "* ]] && keep=1
      done
      [ "$keep" = 1 ] || rm -f "$f" "$f.done"
    done
  fi
done

# --- report --------------------------------------------------------------------------------
{
  echo "cpus=$(nproc) ($(lscpu | sed -n 's/^Model name: *//p'))"
  echo "memory=$(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "filesystem=$fstype on $(df --output=source "$SCRATCH" | tail -1)"
  echo "kernel=$(uname -r)"
  echo "quipu=$PROFILE build, commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo '+uncommitted') ($QUIPU)"
  echo "serve=quipu serve ${SERVE[*]}"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "smoke=$SMOKE"
  echo "date=$(date -u +%FT%TZ)"
} > "$RES/compaction-machine.txt"
if [ "$SMOKE" = 1 ]; then
  CHART="$RES/img/compaction-peak-rss.png"
else
  CHART="$ROOT/docs/img/compaction-peak-rss.png"
fi
python3 "$HERE/compaction_report.py" "$RES" --chart "$CHART" --timeline "$RES/img/compaction-timeline.png" \
  --check "${order[@]}" | tee "$RES/compaction.md"
rm -rf "$W"
echo "results in $RES; chart $CHART"
