# What benches/compare/backup.sh and restore.sh share; sourced by both after
# they set ROOT and SCRATCH.

# Builds backup_set and quipu in release; sets BSET and QUIPU to them.
build_tools() {
  cargo build --release --example backup_set --bin quipu
  local target
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BSET="$target/release/examples/backup_set"
  QUIPU="$target/release/quipu"
}

# Refuses tmpfs and a disk with less than 10 GiB free (the run needs about
# $1 GiB at its peak); sets fstype.
check_disk() { # peak-gib
  fstype=$(df -T "$SCRATCH" | awk 'NR==2 {print $2}')
  if [ "$fstype" = tmpfs ]; then
    echo "$SCRATCH is on tmpfs: copy-mode numbers would mean nothing; pick a folder on a disk" >&2
    exit 1
  fi
  local free_gib
  free_gib=$(df -BG --output=avail "$SCRATCH" | tail -1 | tr -dc 0-9)
  if [ "$free_gib" -lt 10 ]; then
    echo "only ${free_gib} GiB free under $SCRATCH; the run needs about $1 GiB at its peak, 10 to be comfortable" >&2
    exit 1
  fi
}

# DROP (run before every timed run), KIND (cold or warm) and CACHE (what the
# report says), from DROP_CACHES (auto: drop the page cache when permitted; 0: never).
choose_cache() {
  DROP_CACHES=${DROP_CACHES:-auto}
  if [ "$DROP_CACHES" != 0 ] && sync && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
    DROP='sync; echo 3 > /proc/sys/vm/drop_caches'
    KIND=cold
    CACHE="cold: \`sync; echo 3 > /proc/sys/vm/drop_caches\` before every run"
  else
    DROP='sync'
    KIND=warm
    CACHE="warm: drop_caches not permitted (or DROP_CACHES=0); every tool measured with a warm page cache"
  fi
}

# The data sets, generated once under $SCRATCH/sets and kept.
set_dir() { echo "$SCRATCH/sets/$1"; }
ensure_set() { # name files gen-args...
  local name=$1 files=$2; shift 2
  make_set "$(set_dir "$name")" "$files" gen --files "$files" "$@"
}
# A set of TSBS rows (backup_set gen-tsbs), in the folder $1, generated once.
ensure_tsbs_set() { # dir files gen-tsbs-args...
  local dir=$1 files=$2; shift 2
  make_set "$dir" "$files" gen-tsbs "$@"
}
make_set() { # dir files backup_set-args...
  local dir=$1 files=$2; shift 2
  if [ ! -e "$dir.done" ]; then
    rm -rf "$dir"
    "$BSET" "$@" --dir "$dir"
    touch "$dir.done"
  fi
  local n; n=$(find "$dir/segments" -name '*.seg' | wc -l)
  [ "$n" = "$files" ] || { echo "$dir holds $n segments, $files expected" >&2; exit 1; }
}

# The peers' settings (repositories without passwords or encryption) and
# quipu's token and address; $W is the run's work folder, PORT the server's.
tool_env() {
  export RESTIC_PASSWORD=quipu-bench RESTIC_CACHE_DIR="$W/restic-cache"
  export BORG_BASE_DIR="$W/borg-home" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  export QUIPU_ADMIN_TOKEN=apiv3_quipu-backup-bench QUIPU_TOKEN=apiv3_quipu-backup-bench
  HOST="http://127.0.0.1:$PORT"
}

# The machine.txt lines both reports start with.
machine_lines() {
  echo "cpus=$(nproc) ($(lscpu | sed -n 's/^Model name: *//p'))"
  echo "memory=$(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "filesystem=$fstype on $(df --output=source "$SCRATCH" | tail -1) ($(findmnt -no OPTIONS -T "$SCRATCH"))"
  echo "kernel=$(uname -r)"
  echo "cache=$CACHE"
  echo "runs=$RUNS after $WARMUP warm-up"
}

# `quipu serve` in the background on $PORT, returning once it answers
# (SERVER is its pid), and its stop (SIGINT, then wait).
SERVER=
start_server() { # serve-args...
  "$QUIPU" serve "$@" --http-bind "127.0.0.1:$PORT" > "$W/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do
    "$QUIPU" --host "$HOST" backup list > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "quipu serve did not answer; see $W/serve.log" >&2
  return 1
}
stop_server() {
  if [ -n "$SERVER" ]; then
    kill -INT "$SERVER" 2> /dev/null || true
    wait "$SERVER" 2> /dev/null || true
    SERVER=
  fi
}
