#!/usr/bin/env bash
# Backup hot path against cp, rsync, restic and borg, side by side in one run.
#
#   benches/compare/backup.sh [SCRATCH]
#
# SCRATCH (default $BACKUP_BENCH_DIR or /work/scratch/backup-set) must be on
# the disk under test (not tmpfs): the data sets are generated there once and
# kept (sets/); every repository and copy is made there and removed after its
# case. Needs hyperfine, restic, borg, rsync, python3.
#
# Environment: RUNS (timed runs per case, default 5), WARMUP (default 1),
# DROP_CACHES (auto: drop the page cache before every run when
# /proc/sys/vm/drop_caches is writable; 0: never), PORT (for quipu serve,
# default 18457), OUT (the markdown report, default SCRATCH/results-cold.md or
# results-warm.md; the raw hyperfine JSON is kept beside it in results-*/).
#
# How quipu is run: `backup_set backup` (examples/backup_set.rs) is one
# process that opens the engine and a BackupService, runs start + wait of one
# full backup and exits, as `cp`, `restic backup` and `borg create` are one
# process each; it also logs the time of start + wait alone (the hot path,
# without process start and engine open). The same backups through
# `quipu backup create --wait` against a running `quipu serve` are measured
# too: that adds an HTTP client process and the client's polling (5 ms,
# doubling to 50 ms) to the same server-side work.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=$(realpath -m "${1:-${BACKUP_BENCH_DIR:-/work/scratch/backup-set}}")
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
PORT=${PORT:-18457}
cd "$ROOT"

mkdir -p "$SCRATCH/sets"
W="$SCRATCH/work"
rm -rf "$W"
mkdir -p "$W"

source "$ROOT/benches/compare/common.sh"

# --- build, disk and caches -----------------------------------------------------
build_tools
check_disk 6
choose_cache
echo "page cache: $CACHE"
RES="$SCRATCH/results-$KIND"
OUT=${OUT:-$RES.md}
rm -rf "$RES"
mkdir -p "$RES"

# --- data sets -------------------------------------------------------------------
ensure_set 64x16 64 --file-mib 16
ensure_set 64x1 64 --file-mib 1
ensure_set 640x1.6 640 --file-mib 1.6
SET=$(set_dir 64x16)

# --- tools ---------------------------------------------------------------------
tool_env

hf() { # case-name hyperfine-args...
  local name=$1; shift
  echo "== $name"
  hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$RES/$name.json" "$@"
}
hf1() { # case-name hyperfine-args...: one run, no warm-up
  local name=$1; shift
  echo "== $name"
  hyperfine --style basic --warmup 0 --runs 1 --export-json "$RES/$name.json" "$@"
}

# One quipu backup in its own process; the start + wait time goes to $RES/<case>.csv.
qb() { # case mode repo name [extra...]
  local c=$1 mode=$2 repo=$3 name=$4; shift 4
  echo "$BSET backup --dir $SET --repo $repo --mode $mode --name $name --log $RES/$c.csv $*"
}

# --- first backup of 64 x 16 MiB -----------------------------------------------------
R="$W/repo"
hf first_quipu_link --prepare "rm -rf $R && $BSET backup --dir $SET --repo $R --init-only && $DROP" \
  "$(qb first_quipu_link link "$R" first)"
hf first_quipu_copy --prepare "rm -rf $R && sync && $BSET backup --dir $SET --repo $R --init-only && $DROP" \
  "$(qb first_quipu_copy copy "$R" first)"
rm -rf "$R"
hf first_cp --prepare "rm -rf $W/cp && $DROP" "cp -r $SET $W/cp && sync"
rm -rf "$W/cp"
hf first_restic --prepare "rm -rf $W/restic $W/restic-cache && restic init -r $W/restic --quiet && $DROP" \
  "restic -r $W/restic backup --quiet $SET"
rm -rf "$W/restic" "$W/restic-cache"
hf first_borg --prepare "rm -rf $W/borg $W/borg-home && borg init --encryption none $W/borg && $DROP" \
  "borg create --compression none $W/borg::first $SET"
rm -rf "$W/borg" "$W/borg-home"
sync

# --- second backup, nothing changed ----------------------------------------------------
for mode in link copy; do
  rm -rf "$R" && sync
  "$BSET" backup --dir "$SET" --repo "$R" --mode $mode --name first
  hf "again_quipu_$mode" --prepare "$DROP" "$(qb "again_quipu_$mode" $mode "$R" second --force)"
done
rm -rf "$R"
restic init -r "$W/restic" --quiet && restic -r "$W/restic" backup --quiet "$SET"
hf again_restic --prepare "$DROP" "restic -r $W/restic backup --quiet $SET"
rm -rf "$W/restic" "$W/restic-cache"
borg init --encryption none "$W/borg" && borg create --compression none "$W/borg::first" "$SET"
hf again_borg --prepare "$DROP" "borg create --compression none $W/borg::{now:%Y%m%dT%H%M%S.%f} $SET"
rm -rf "$W/borg" "$W/borg-home"
rsync -a "$SET/" "$W/rsync/" && sync
hf again_rsync --prepare "$DROP" "rsync -a $SET/ $W/rsync/ && sync"
rm -rf "$W/rsync"
sync

# --- the same through `quipu serve` and the CLI ---------------------------------------
trap stop_server EXIT
for mode in link copy; do
  rm -rf "$R" && sync
  start_server --data-dir "$SET" --backup-dir "$R" --backup-mode $mode
  Q="$QUIPU --host $HOST backup"
  hf "first_cli_$mode" --prepare "$Q delete first > /dev/null 2>&1; $DROP" "$Q create --name first --wait"
  hf "again_cli_$mode" --prepare "$DROP" "$Q create --name second --force --wait"
  stop_server
done
rm -rf "$R"

# --- link mode: files against bytes ------------------------------------------------------
for s in 64x16 64x1 640x1.6; do
  d=$(set_dir "$s")
  hf "scale_link_$s" --prepare "rm -rf $R && $BSET backup --dir $d --repo $R --init-only && $DROP" \
    "$BSET backup --dir $d --repo $R --mode link --name first --log $RES/scale_link_$s.csv"
done
rm -rf "$R"

# --- 1% new data: one run each (the set is copied; it gains a 65th segment) -----------------
N="$W/set-plus"
cp -a "$SET" "$N"
for mode in link copy; do "$BSET" backup --dir "$N" --repo "$W/q-$mode" --mode $mode --name first; done
restic init -r "$W/restic" --quiet && restic -r "$W/restic" backup --quiet "$N"
borg init --encryption none "$W/borg" && borg create --compression none "$W/borg::first" "$N"
"$BSET" append --dir "$N" --percent 1
for mode in link copy; do
  hf1 "plus_quipu_$mode" --prepare "$DROP" \
    "$BSET backup --dir $N --repo $W/q-$mode --mode $mode --name second --log $RES/plus_quipu_$mode.csv"
done
hf1 plus_restic --prepare "$DROP" "restic -r $W/restic backup --quiet $N"
hf1 plus_borg --prepare "$DROP" "borg create --compression none $W/borg::second $N"
rm -rf "$N" "$W/q-link" "$W/q-copy" "$W/restic" "$W/restic-cache" "$W/borg" "$W/borg-home"

# --- report ------------------------------------------------------------------------------
{
  machine_lines
  echo "tools=$(restic version | cut -d' ' -f1-2), $(borg --version), $(cp --version | head -1), $(rsync --version | head -1 | cut -d' ' -f1-4), $(hyperfine --version)"
  echo "set=$(du -sb "$SET" | cut -f1) bytes in $SET"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg) at the end"
} > "$RES/machine.txt"
python3 "$ROOT/benches/compare/backup_report.py" "$RES" | tee "$OUT"
echo "report: $OUT"
