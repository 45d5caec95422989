#!/usr/bin/env bash
# quipu against the tools people use instead, side by side in one run, on
# the same data: the comparative benchmark suite.
#
#   bash benches/compare/suite.sh [--smoke] [--install] [SCRATCH]
#
# 1. Peers: restic, borg, rsync and hyperfine (apt), pyarrow, duckdb and
#    matplotlib (pip) must be installed; the command that installs the
#    missing ones is printed (--install runs it).
# 2. Data sets, generated deterministically once under SCRATCH/sets and kept:
#    - tsbs: TSBS cpu-only line protocol from `quipu gen tsbs` (1,000 hosts,
#      one day every 10 s: 8.64M rows);
#    - set: 64 segment files of 16 MiB, one per UTC day of TSBS rows of 700
#      hosts (`backup_set gen-tsbs`, the same generator and seed);
#    - many: 10,000 segment files of 128 rows, one host every 675 s, a day each.
# 3. Backup and restore, every tool on the same set, one operation after the
#    other (the tools of an operation run back to back, so their ratios come
#    from the same minutes of a shared machine), hyperfine with WARMUP
#    warm-ups and RUNS timed runs each, page cache dropped before every run
#    when permitted:
#    - first backup into an empty repository; a second with nothing changed;
#      restore of the first into an empty folder; verify; a backup after 1%
#      new data (one more day of 7 hosts; the repository is reset to the
#      state after the first backup before every run); the first backup and
#      restore of the 10,000 small files;
#    - tools: quipu link and copy modes, restic, borg (no encryption;
#      compression none and lz4), rsync, `cp -r` + `sync`, `cp -al`.
#    Every restore is compared with its source (`diff -r` of the segments).
# 4. Ingest: rows/s and bytes per row of the TSBS day: quipu from line
#    protocol and from Arrow (examples/ingest_compare.rs), pyarrow writing
#    Parquet + zstd and DuckDB its own format, from the same Arrow table
#    (ingest_peers.py).
# 5. Queries: the five TSBS queries through quipu's SQL against DuckDB over
#    quipu's Parquet export (tsbs_queries.sh).
# 6. Compaction memory (optional, not in the default steps: ONLY=compaction,
#    or ONLY="backup ingest queries compaction"; roughly half an hour more
#    and some 25 GiB of line protocol): the peak RSS of `quipu serve` from
#    ingest to fully compacted, for TSBS days of 1,000, 2,000 and 4,000
#    hosts, 100 hosts over 10 days in time and in series order, and a
#    million series (compaction.sh, which --help describes; its environment
#    passes through).
# 7. Report: suite_report.py writes the tables (median, min–max, ratio to
#    quipu) and PNG charts. A full run replaces the suite's section of
#    docs/BENCHMARKS.md and docs/img/compare-*.png (and
#    compaction-peak-rss.png after the compaction step); everything is kept
#    in SCRATCH/suite-results.
#
# --smoke: tiny sets (4 segments of 2 hosts, 50 small segments, 520 hosts
# once an hour for a day), one warm-up and one timed run, debug builds; it checks that every
# tool ran and every restore equals its source, asserts no time and leaves
# docs/ alone. This is what CI runs (scripts/test). It runs the compaction
# step only when ONLY names it (`ONLY=compaction ... --smoke`: tiny sizes).
#
# SCRATCH (default $SUITE_DIR or /work/scratch/suite) must be on the disk
# under test, not tmpfs. A full run needs about 12 GiB free and takes about
# an hour, most of it the backup tools; generating the sets the first time
# takes about 15 minutes more.
# Environment: RUNS (default 5), WARMUP (default 1), DROP_CACHES (auto: drop
# the page cache before every run when permitted; 0: never), PORT (for
# quipu serve, default 18459), ONLY (space-separated steps among
# backup ingest queries compaction: run only those; the report keeps the
# others' earlier results; default "backup ingest queries").
set -euo pipefail

SMOKE=0
INSTALL=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    --install) INSTALL=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $a (see --help)" >&2; exit 2 ;;
    *) ARGS+=("$a") ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/benches/compare"
if [ "$SMOKE" = 1 ]; then
  SCRATCH=$(realpath -m "${ARGS[0]:-$(mktemp -d "${TMPDIR:-/tmp}/quipu-suite-smoke.XXXXXX")}")
  RUNS=${RUNS:-1}
  WARMUP=${WARMUP:-1}
  PROFILE=dev
  SET_DAYS=4 SET_HOSTS=2 PLUS_HOSTS=1 MANY_FILES=50
  # Enough hosts for the queries' host_249 and host_517, once an hour.
  TSBS_HOSTS=520 TSBS_DURATION=1d TSBS_INTERVAL=1h
else
  SCRATCH=$(realpath -m "${ARGS[0]:-${SUITE_DIR:-/work/scratch/suite}}")
  RUNS=${RUNS:-5}
  WARMUP=${WARMUP:-1}
  PROFILE=release
  SET_DAYS=64 SET_HOSTS=700 PLUS_HOSTS=7 MANY_FILES=10000
  TSBS_HOSTS=1000 TSBS_DURATION=1d TSBS_INTERVAL=10s
fi
PORT=${PORT:-18459}
ONLY=${ONLY:-backup ingest queries}
cd "$ROOT"

# --- 1. peers ------------------------------------------------------------------------------
missing_apt=()
for tool in restic:restic borg:borgbackup rsync:rsync hyperfine:hyperfine; do
  command -v "${tool%%:*}" > /dev/null || missing_apt+=("${tool#*:}")
done
missing_pip=()
for module in pyarrow:pyarrow "duckdb:duckdb>=2,<3" matplotlib:matplotlib; do
  python3 -c "import ${module%%:*}" 2> /dev/null || missing_pip+=("${module#*:}")
done
apt_cmd="apt-get install -y ${missing_apt[*]}"
pip_cmd="python3 -m pip install$(printf " '%s'" "${missing_pip[@]}")"
if [ ${#missing_apt[@]} -gt 0 ] || [ ${#missing_pip[@]} -gt 0 ]; then
  if [ "$INSTALL" = 1 ]; then
    if [ ${#missing_apt[@]} -gt 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}" > /dev/null
    fi
    if [ ${#missing_pip[@]} -gt 0 ]; then
      python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${missing_pip[@]}"
    fi
  else
    echo "missing peers; install them with:" >&2
    [ ${#missing_apt[@]} -gt 0 ] && echo "  $apt_cmd" >&2
    [ ${#missing_pip[@]} -gt 0 ] && echo "  $pip_cmd" >&2
    echo "(or run this script with --install)" >&2
    exit 1
  fi
fi

# --- build, disk and caches ----------------------------------------------------------------
if [ "$PROFILE" = dev ]; then BUILD=(cargo build); else BUILD=(cargo build --release); fi
"${BUILD[@]}" --bin quipu --example backup_set --example ingest_compare
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo release)"
QUIPU="$BIN/quipu" BSET="$BIN/examples/backup_set" INGEST="$BIN/examples/ingest_compare"

mkdir -p "$SCRATCH/sets"
W="$SCRATCH/work"
rm -rf "$W"
mkdir -p "$W"
source "$HERE/common.sh"
if [ "$SMOKE" = 1 ]; then
  DROP_CACHES=${DROP_CACHES:-0}
  fstype=$(df -T "$SCRATCH" | awk 'NR==2 {print $2}')
else
  check_disk 12
fi
choose_cache
echo "page cache: $CACHE"
RES="$SCRATCH/suite-results"
mkdir -p "$RES"

# --- 2. data sets --------------------------------------------------------------------------
SET=$(set_dir "tsbs-set-${SET_DAYS}x${SET_HOSTS}")
MANY=$(set_dir "tsbs-many-${MANY_FILES}")
LP="$SCRATCH/sets/tsbs-${TSBS_HOSTS}h-${TSBS_DURATION}-every-${TSBS_INTERVAL}.lp"
ensure_tsbs_set "$SET" "$SET_DAYS" --days "$SET_DAYS" --hosts "$SET_HOSTS"
ensure_tsbs_set "$MANY" "$MANY_FILES" --days "$MANY_FILES" --hosts 1 --interval 675s --round-days 1000
if [ ! -e "$LP.done" ]; then
  "$QUIPU" gen tsbs --hosts "$TSBS_HOSTS" --duration "$TSBS_DURATION" --interval "$TSBS_INTERVAL" > "$LP"
  touch "$LP.done"
fi

# --- 3. backup, restore, verify ------------------------------------------------------------
tool_env
unset RESTIC_CACHE_DIR BORG_BASE_DIR
T="$W/target" # every restore's target, new in every run
TOOLS=(quipu-link quipu-copy restic borg-none borg-lz4 rsync cp cp-al)
repo() { echo "$W/$1-$2"; }             # tool set-key: the tool's backup of a set
home() { echo "$W/$1-$2-home"; }        # restic's cache, borg's base folder
env_of() { # tool key: the environment a peer's command runs with
  case $1 in
    restic) echo "RESTIC_CACHE_DIR=$(home "$1" "$2")" ;;
    borg-*) echo "BORG_BASE_DIR=$(home "$1" "$2")" ;;
  esac
}

# The commands of a tool. $1 tool, $2 set key, $3 source folder.
cmd_init() { # an empty repository (untimed)
  local r; r=$(repo "$1" "$2")
  case $1 in
    quipu-*) echo "rm -rf $r && $BSET backup --dir $3 --repo $r --init-only" ;;
    restic) echo "rm -rf $r $(home "$1" "$2") && $(env_of "$1" "$2") restic init -r $r --quiet" ;;
    borg-*) echo "rm -rf $r $(home "$1" "$2") && $(env_of "$1" "$2") borg init --encryption none $r" ;;
    *) echo "rm -rf $r" ;;
  esac
}
cmd_backup() { # tool key source name: one backup (cp's and cp -al's are whole
  # new copies: into the repository folder for the first, beside it after)
  local r; r=$(repo "$1" "$2")
  local dst=$r
  [ "$4" = first ] || dst=$r.new
  case $1 in
    quipu-*) echo "$BSET backup --dir $3 --repo $r --mode ${1#quipu-} --name $4 --force" ;;
    restic) echo "$(env_of "$1" "$2") restic -r $r backup --quiet $3" ;;
    borg-*) echo "$(env_of "$1" "$2") borg create --compression ${1#borg-} $r::$4 $3" ;;
    rsync) echo "rsync -a $3/ $r/ && sync" ;;
    cp) echo "cp -r $3 $dst && sync" ;;
    cp-al) echo "cp -al $3 $dst && sync" ;;
  esac
}
cmd_restore() { # tool key: restore the first backup into the new folder $T
  local r; r=$(repo "$1" "$2")
  case $1 in
    quipu-*) echo "$QUIPU restore --from-repo $r --backup first --into $T --mode ${1#quipu-}" ;;
    restic) echo "$(env_of "$1" "$2") restic -r $r restore latest --quiet --target $T && sync" ;;
    borg-*) echo "mkdir -p $T && cd $T && $(env_of "$1" "$2") borg extract $r::first && sync" ;;
    rsync) echo "rsync -a $r/ $T/ && sync" ;;
    cp) echo "cp -r $r $T && sync" ;;
    cp-al) echo "cp -al $r $T && sync" ;;
  esac
}
restored() { # tool source: where the source's files are inside $T
  case $1 in
    restic) echo "$T$2" ;;
    borg-*) echo "$T/${2#/}" ;;
    *) echo "$T" ;;
  esac
}

CASES="$RES/cases.txt"
CHECKS="$RES/checks.txt"
hf() { # case command [prepare]
  local name=$1 cmd=$2 prepare=${3:-$DROP}
  echo "== $name"
  rm -f "$RES/$name.json" "$RES/$name.csv"
  hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$RES/$name.json" \
    --prepare "$prepare" "$cmd"
  echo "$name" >> "$CASES"
}
check_restore() { # case tool source
  local got; got=$(restored "$2" "$3")
  diff -r "$3/segments" "$got/segments" > /dev/null || { echo "$1: the restore differs from $3" >&2; exit 1; }
  case $2 in
    quipu-*) "$BSET" open --dir "$T" > /dev/null 2>&1 || { echo "$1: the restored data folder does not open" >&2; exit 1; } ;;
  esac
  echo "$1 $(find "$got/segments" -type f | wc -l) files equal" >> "$CHECKS"
}

backup_step() {
  rm -f "$CASES" "$CHECKS" "$RES"/{first,again,restore,verify,plus,many_first,many_restore}.*
  local key tool
  # First backups: an empty repository before every run.
  for key in set many; do
    local src; src=$([ $key = set ] && echo "$SET" || echo "$MANY")
    local op; op=$([ $key = set ] && echo first || echo many_first)
    for tool in "${TOOLS[@]}"; do
      hf "$op.$tool" "$(cmd_backup "$tool" $key "$src" first)" "$(cmd_init "$tool" $key "$src") && $DROP"
    done
    # Restores of the first backup (each tool's last run left it in place).
    op=$([ $key = set ] && echo restore || echo many_restore)
    for tool in "${TOOLS[@]}"; do
      hf "$op.$tool" "$(cmd_restore "$tool" $key)" "rm -rf $T && sync && $DROP"
      check_restore "$op.$tool" "$tool" "$src"
      rm -rf "$T"
    done
  done
  # Second backups, nothing changed (the repositories of the first).
  for tool in "${TOOLS[@]}"; do
    local name=second
    case $tool in borg-*) name="{now:%Y%m%dT%H%M%S.%f}" ;; esac
    hf "again.$tool" "$(cmd_backup "$tool" set "$SET" "$name")" "rm -rf $(repo "$tool" set).new && $DROP"
  done
  # Verify: every byte of the first backup read back and checked.
  for tool in quipu-link quipu-copy; do
    # The server's own data folder plays no part in a verify: an empty one.
    rm -rf "$W/verify-data"
    start_server --data-dir "$W/verify-data" --backup-dir "$(repo $tool set)" --backup-mode "${tool#quipu-}"
    hf "verify.$tool" "$QUIPU --host $HOST backup verify first"
    stop_server
  done
  hf verify.restic "$(env_of restic set) restic -r $(repo restic set) check --read-data --quiet"
  for tool in borg-none borg-lz4; do
    hf "verify.$tool" "$(env_of $tool set) borg check --verify-data $(repo $tool set)"
  done
  for tool in "${TOOLS[@]}"; do rm -rf "$(repo "$tool" set)" "$(repo "$tool" set).new" "$(home "$tool" set)"; done
  for tool in "${TOOLS[@]}"; do rm -rf "$(repo "$tool" many)" "$(repo "$tool" many).new" "$(home "$tool" many)"; done
  sync
  # 1% new data: a copy of the set, backed up once (untimed) by every tool
  # into a pristine repository; one more day appended; then every run starts
  # from a copy of the pristine repository (hard links where the tool never
  # writes a file twice: quipu, restic, rsync's target; a real copy for borg).
  local plus="$W/set-plus"
  cp -a "$SET" "$plus"
  for tool in "${TOOLS[@]}"; do
    case $tool in
      cp | cp-al) ;; # their "backup" is a new whole copy of the folder
      *) bash -c "$(cmd_init "$tool" plus "$plus")" > /dev/null
         bash -c "$(cmd_backup "$tool" plus "$plus" first)" > /dev/null ;;
    esac
    for d in "$(repo "$tool" plus)" "$(home "$tool" plus)"; do [ -e "$d" ] && mv "$d" "$d.pristine"; done
  done
  "$BSET" append-tsbs --dir "$plus" --hosts "$PLUS_HOSTS"
  for tool in "${TOOLS[@]}"; do
    local r h reset
    r=$(repo "$tool" plus) h=$(home "$tool" plus)
    local how="cp -al"
    case $tool in borg-*) how="cp -a" ;; esac
    reset="rm -rf $r $r.new $h"
    [ -e "$r.pristine" ] && reset="$reset && $how $r.pristine $r"
    [ -e "$h.pristine" ] && reset="$reset && $how $h.pristine $h"
    hf "plus.$tool" "$(cmd_backup "$tool" plus "$plus" second)" "$reset && $DROP"
    rm -rf "$r" "$r.new" "$r.pristine" "$h" "$h.pristine"
  done
  rm -rf "$plus"
  sync
}

trap stop_server EXIT

# --- 4. ingest -----------------------------------------------------------------------------
DAY="$W/tsbs-day"
ingest_step() {
  rm -f "$RES"/ingest-*.json
  rm -rf "$DAY" "$W/ingest" "$W/parquet"
  echo "== ingest: quipu from line protocol"
  "$INGEST" lp --input "$LP" --scratch "$W/ingest" --runs "$RUNS" --warmup "$WARMUP" --keep "$DAY" \
    --json "$RES/ingest-quipu-lp.json"
  # The Arrow table all three are given: the rows in TSBS's arrival order
  # (time, then host), from quipu's Parquet export of what it ingested.
  "${BUILD[@]}" --example tsbs_queries
  "$BIN/examples/tsbs_queries" "$DAY" --export-parquet "$W/parquet"
  python3 - "$W/parquet" "$W/cpu-arrival.parquet" "$HERE" <<'EOF'
import glob, sys
import pyarrow as pa, pyarrow.parquet as pq
sys.path.insert(0, sys.argv[3])
from ingest_peers import sorted_by
table = pa.concat_tables(pq.read_table(p) for p in sorted(glob.glob(sys.argv[1] + "/*.parquet")))
pq.write_table(sorted_by(table, "time", "hostname"), sys.argv[2], compression="zstd")
EOF
  echo "== ingest: quipu from Arrow"
  "$INGEST" arrow --input "$W/cpu-arrival.parquet" --scratch "$W/ingest" --runs "$RUNS" --warmup "$WARMUP" \
    --json "$RES/ingest-quipu-arrow.json"
  echo "== ingest: pyarrow and duckdb"
  python3 "$HERE/ingest_peers.py" --input "$W/cpu-arrival.parquet" --scratch "$W/ingest" --runs "$RUNS" \
    --warmup "$WARMUP" --json "$RES/ingest-peers.json"
  rm -rf "$W/ingest" "$W/parquet" "$W/cpu-arrival.parquet"
}

# --- 5. queries ----------------------------------------------------------------------------
queries_step() {
  [ -d "$DAY" ] || ingest_step
  rm -rf "$RES/queries"
  PROFILE=$PROFILE ROUNDS=1 RUNS=$RUNS NATIVE=0 INT_BUCKETS=0 \
    OUT="$RES/queries" bash "$HERE/tsbs_queries.sh" "$DAY" | tee "$RES/queries.md"
}

# --- 6. compaction memory (optional) -------------------------------------------------------
compaction_step() {
  local smoke=()
  [ "$SMOKE" = 1 ] && smoke=(--smoke)
  RES="$RES" PORT="$PORT" QUIPU="$QUIPU" bash "$HERE/compaction.sh" "${smoke[@]}" "$SCRATCH"
}

# Which commit each step's results come from (a step run alone keeps the others').
for step in backup ingest queries compaction; do
  if [[ " $ONLY " == *" $step "* ]]; then
    "${step}_step"
    { grep -v "^$step " "$RES/steps.txt" 2> /dev/null || true
      echo "$step $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src examples benches || echo '+uncommitted') $(date -u +%FT%TZ)"
    } > "$RES/steps.txt.new"
    mv "$RES/steps.txt.new" "$RES/steps.txt"
  fi
done
rm -rf "$DAY"

# --- 7. report -----------------------------------------------------------------------------
{
  machine_lines
  echo "tools=quipu ($PROFILE build), $(restic version | cut -d' ' -f1-2), $(borg --version), $(rsync --version | head -1 | cut -d' ' -f1-4), $(cp --version | head -1), $(hyperfine --version), pyarrow $(python3 -c 'import pyarrow; print(pyarrow.__version__)'), duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)')"
  echo "set=$(find "$SET/segments" -name '*.seg' | wc -l) segments, $(du -sb "$SET/segments" | cut -f1) bytes (${SET_DAYS} days of TSBS, ${SET_HOSTS} hosts every 10 s); 1% new: one more day of ${PLUS_HOSTS} hosts"
  echo "many=$(find "$MANY/segments" -name '*.seg' | wc -l) segments, $(du -sb "$MANY/segments" | cut -f1) bytes (one host every 675 s, a day per file)"
  echo "tsbs=$(wc -l < "$LP") rows of line protocol ($(du -b "$LP" | cut -f1) bytes): quipu gen tsbs --hosts $TSBS_HOSTS --duration $TSBS_DURATION --interval $TSBS_INTERVAL"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "smoke=$SMOKE"
} > "$RES/machine.txt"
if [ "$SMOKE" = 1 ]; then
  python3 "$HERE/suite_report.py" "$RES" --charts "$RES/img" --check > "$RES/report.md"
  echo "smoke: every tool ran, every restore equals its source; report in $RES/report.md"
  rm -rf "$W"
else
  python3 "$HERE/suite_report.py" "$RES" --charts "$ROOT/docs/img" --splice "$ROOT/docs/BENCHMARKS.md" --check
  rm -rf "$W"
  echo "docs/BENCHMARKS.md and docs/img/compare-*.png updated; results in $RES"
fi
