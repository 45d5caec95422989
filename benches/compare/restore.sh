#!/usr/bin/env bash
# Restore against cp, restic and borg, side by side in one run.
#
#   benches/compare/restore.sh [SCRATCH]
#
# SCRATCH (default $BACKUP_BENCH_DIR or /work/scratch/backup-set) is the
# folder of benches/compare/backup.sh and must be on the disk under test (not
# tmpfs): the data sets are generated there once and kept (sets/, shared with
# backup.sh; this script adds sets/10000x128r, 10,000 segments of 128 rows).
# Its own repositories and restore targets live in SCRATCH/restore-work,
# made at the start (untimed) and removed at the end. Needs hyperfine,
# restic, borg, python3.
#
# Environment: RUNS (timed runs per case, default 5), WARMUP (default 1),
# DROP_CACHES (auto: drop the page cache before every run when
# /proc/sys/vm/drop_caches is writable; 0: never), SETTLE (seconds of idle
# before every run, default 0; see below), ONLY (space-separated case names:
# run only those, report in restore-results-*-only), PORT (for quipu serve,
# default 18458), OUT (the markdown report, default
# SCRATCH/restore-results-cold.md or restore-results-warm.md; the raw
# hyperfine JSON and quipu's own timings are kept beside it in
# restore-results-*/).
#
# Every timed run restores into a new, empty target (removed in hyperfine's
# --prepare, untimed, then the page cache is dropped). The backups restored
# are made once before the timed runs: a copy-mode quipu repository of the
# 64 x 16 MiB set (the copy-mode cases and `cp -r`), link-mode repositories of
# each set (link-mode cases), a restic and a borg repository.
#
# How quipu is run:
# - `quipu restore start first --wait` against a `quipu serve` started on an
#   empty data folder in --prepare (the production path: the engine is open;
#   adds the client process, HTTP and the client's polling, 5 ms doubling to
#   50 ms);
# - `backup_set restore` (examples/backup_set.rs): one process that opens an
#   engine on the empty folder and a BackupService on the repository, runs
#   start_restore + wait_restore and exits, as `restic restore` and
#   `borg extract` are one process each; it logs start_restore +
#   wait_restore alone and each phase (BackupConfig::restore_hook);
# - `quipu restore --from-repo ... --into ...` (offline, no engine running),
#   and the same restore_into in-process (`backup_set restore --offline`).
# cp, restic and borg are followed by `sync` (quipu's restore is durable when
# it returns); restic and borg are also measured without it, for reference.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=$(realpath -m "${1:-${BACKUP_BENCH_DIR:-/work/scratch/backup-set}}")
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
PORT=${PORT:-18458}
cd "$ROOT"

mkdir -p "$SCRATCH/sets"
W="$SCRATCH/restore-work"
rm -rf "$W"
mkdir -p "$W"
T="$W/target" # every restore's target, new in every run

source "$ROOT/benches/compare/common.sh"

# --- build, disk and caches -----------------------------------------------------
build_tools
check_disk 5
choose_cache
# SETTLE=N: N seconds of idle at the end of every --prepare. On the VM this
# was written on (virtio balloon with free page reporting), back-to-back warm
# copy runs alternate between two speeds, the slow ones spending their extra
# time in the kernel copying into new page-cache pages; after a few seconds
# of idle every run is in the same state (probably: the memory the previous
# run freed has been handed back to the host and must be faulted in again).
SETTLE=${SETTLE:-0}
if [ "$SETTLE" != 0 ]; then
  DROP="$DROP; sleep $SETTLE"
  CACHE="$CACHE; then $SETTLE s of idle"
fi
echo "page cache: $CACHE"
ONLY=${ONLY:-}
RES="$SCRATCH/restore-results-$KIND$(if [ "$SETTLE" != 0 ]; then echo "-settle$SETTLE"; fi)$(if [ -n "$ONLY" ]; then echo -only; fi)"
OUT=${OUT:-$RES.md}
rm -rf "$RES"
mkdir -p "$RES"

# --- data sets (backup.sh's, plus 10,000 small segments) ---------------------------
ensure_set 64x16 64 --file-mib 16
ensure_set 64x1 64 --file-mib 1
ensure_set 640x1.6 640 --file-mib 1.6
ensure_set 10000x128r 10000 --rows-per-file 128 --round-days 1000
SET=$(set_dir 64x16)
MANY=$(set_dir 10000x128r)

# --- tools and backups (untimed) ----------------------------------------------------
tool_env

RC="$W/repo-copy" # copy mode, 64 x 16 MiB
"$BSET" backup --dir "$SET" --repo "$RC" --mode copy --name first
repo_link() { echo "$W/repo-link-$1"; }
for s in 64x16 64x1 640x1.6 10000x128r; do
  "$BSET" backup --dir "$(set_dir "$s")" --repo "$(repo_link "$s")" --mode link --name first
done
RL=$(repo_link 64x16)
restic init -r "$W/restic" --quiet
restic -r "$W/restic" backup --quiet "$SET"
borg init --encryption none "$W/borg"
borg create --compression none "$W/borg::first" "$SET"
sync

# The machine may be shared: the 1-minute load average and the busiest
# processes are sampled every 5 s into load.txt, and each case's start and end
# go to cases.txt, so the report can show the load each case ran under.
(while :; do
  echo "$(date +%s.%N) $(cut -d' ' -f1,4 /proc/loadavg) $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s:%s ", $2, $1}')"
  sleep 5
done) > "$RES/load.txt" 2>/dev/null &
SAMPLER=$!
hf() { # case-name hyperfine-args...
  local name=$1; shift
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $name"
  local t0; t0=$(date +%s.%N)
  hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$RES/$name.json" "$@"
  echo "$name $t0 $(date +%s.%N)" >> "$RES/cases.txt"
}

FRESH="rm -rf $T && sync && $DROP"
# One restore in its own process into the new folder $T; quipu's own times go to $RES/<case>.csv.
qr() { # case repo mode [extra...]
  local c=$1 repo=$2 mode=$3; shift 3
  echo "$BSET restore --dir $T --repo $repo --backup first --mode $mode --log $RES/$c.csv $*"
}

# --- 64 x 16 MiB: quipu through serve, in one process, offline; cp, restic, borg ----------
# The copy-mode cases and cp run one after the other, so that the ratios the
# targets are judged on come from the same few minutes of a shared machine.
#
# Through `quipu serve` and the CLI, a new server on an empty folder per run:
# --prepare runs fresh-serve.sh, which stops the previous run's server
# (SIGINT, by its pid), empties the target, starts `quipu serve` on it in the
# background, waits until it answers, then drops the page cache.
cat > "$W/fresh-serve.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
mode=\$1 repo=\$2
if [ -s "$W/serve.pid" ]; then
  pid=\$(cat "$W/serve.pid")
  kill -INT "\$pid" 2>/dev/null || true
  # Gone, or a zombie nobody reaps (the shell that started it has exited).
  while [ -e /proc/\$pid ] && ! grep -q '^State:[[:space:]]*Z' /proc/\$pid/status 2>/dev/null; do sleep 0.02; done
  rm -f "$W/serve.pid"
fi
rm -rf "$T"
sync
setsid "$QUIPU" serve --data-dir "$T" --backup-dir "\$repo" --backup-mode "\$mode" --http-bind "127.0.0.1:$PORT" \\
  < /dev/null >> "$W/serve.log" 2>&1 &
echo \$! > "$W/serve.pid"
for _ in \$(seq 500); do
  "$QUIPU" --host "$HOST" restore list > /dev/null 2>&1 && break
  sleep 0.02
done
"$QUIPU" --host "$HOST" restore list > /dev/null
$DROP
EOF
stop_server() {
  if [ -s "$W/serve.pid" ]; then
    local pid; pid=$(cat "$W/serve.pid")
    kill -INT "$pid" 2>/dev/null || true
    while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do sleep 0.02; done
    rm -f "$W/serve.pid"
  fi
}
trap 'stop_server; kill $SAMPLER 2>/dev/null || true' EXIT
hf cp --prepare "$FRESH" "cp -r $RC $T && sync"
hf serve_copy --prepare "bash $W/fresh-serve.sh copy $RC" "$QUIPU --host $HOST restore start first --wait"
stop_server
hf live_copy --prepare "$FRESH" "$(qr live_copy "$RC" copy)"
hf offline_cli_copy --prepare "$FRESH" "$QUIPU restore --from-repo $RC --backup first --into $T --mode copy"
hf offline_copy --prepare "$FRESH" "$(qr offline_copy "$RC" copy --offline)"
hf restic --prepare "$FRESH" "restic -r $W/restic restore latest --quiet --target $T && sync"
hf borg --prepare "rm -rf $T && mkdir $T && sync && $DROP" "cd $T && borg extract $W/borg::first && sync"
hf restic_nosync --prepare "$FRESH" "restic -r $W/restic restore latest --quiet --target $T"
hf borg_nosync --prepare "rm -rf $T && mkdir $T && sync && $DROP" "cd $T && borg extract $W/borg::first"
rm -rf "$T" "$W/restic" "$W/restic-cache" "$W/borg" "$W/borg-home"
sync
hf serve_link --prepare "bash $W/fresh-serve.sh link $RL" "$QUIPU --host $HOST restore start first --wait"
stop_server
hf live_link --prepare "$FRESH" "$(qr live_link "$RL" link)"
hf offline_cli_link --prepare "$FRESH" "$QUIPU restore --from-repo $RL --backup first --into $T --mode link"
hf offline_link --prepare "$FRESH" "$(qr offline_link "$RL" link --offline)"
rm -rf "$T"

# --- link mode: files against bytes ------------------------------------------------------
for s in 64x1 640x1.6; do
  hf "link_$s" --prepare "$FRESH" "$(qr "link_$s" "$(repo_link "$s")" link)"
done

# --- 10,000 segments of 3.6 KB: the rebuild --------------------------------------------
RM=$(repo_link 10000x128r)
hf many_live_link --prepare "$FRESH" "$(qr many_live_link "$RM" link)"
hf many_offline_cli_link --prepare "$FRESH" "$QUIPU restore --from-repo $RM --backup first --into $T --mode link"
hf many_offline_link --prepare "$FRESH" "$(qr many_offline_link "$RM" link --offline)"
# Opening what a restore built: the engine (catalog, version, every
# segment's header and footer), and the segments' headers and footers alone.
rm -rf "$T" && "$BSET" restore --offline --dir "$T" --repo "$RM" --backup first --mode link
hf many_open_engine --prepare "$DROP" "$BSET open --dir $T --log $RES/many_open_engine.csv"
hf many_open_segments --prepare "$DROP" "$BSET open --dir $T --segments-only --log $RES/many_open_segments.csv"
rm -rf "$T"

# --- report ------------------------------------------------------------------------------
{
  machine_lines
  echo "tools=$(restic version | cut -d' ' -f1-2), $(borg --version), $(cp --version | head -1), $(hyperfine --version)"
  echo "set=$(du -sb "$SET" | cut -f1) bytes in $SET; copy repository $(du -sb "$RC" | cut -f1) bytes"
  echo "many=$(find "$MANY/segments" -name '*.seg' | wc -l) segments, $(du -sb "$MANY/segments" | cut -f1) bytes in $MANY"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg) at the end"
} > "$RES/machine.txt"
kill "$SAMPLER" 2>/dev/null || true
rm -rf "$W"
python3 "$ROOT/benches/compare/restore_report.py" "$RES" | tee "$OUT"
echo "report: $OUT"
