#!/usr/bin/env bash
# Benchmark Coffer and s3s-fs (a plaintext S3 server in Rust) with the same client, on this
# machine, in one run (issue 3, "A benchmark"):
#
#   1. cargo build --release -p coffer;
#   2. cargo install s3s-fs 0.14.1 if it is not on PATH (if that fails, say so and measure
#      Coffer alone);
#   3. start Coffer (release) and s3s-fs on free loopback ports, each with a fresh temp dir;
#   4. run `coffer bench` against each (--server-pid for its RSS, --scratch-dir beside its data
#      so the disk references measure the same filesystem) and print its table on stdout.
#
# Usage: scripts/bench.sh [--quick] [other `coffer bench` flags]
# Temp dirs go under $TMPDIR (default /tmp). Servers started here are stopped on exit.
set -euo pipefail

S3S_FS_VERSION=0.14.1
ACCESS_KEY=BENCHACCESSKEY000001
SECRET_KEY=benchSecretKey0123456789abcdefGHIJKLMNOP

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
export PATH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-bench.XXXXXX")
SERVER_PIDS=()

stop_server() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${SERVER_PIDS[@]}"; do
        stop_server "$pid"
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

banner() { printf '\n==================== %s ====================\n' "$*" >&2; }

# wait_for_line LOG PID REGEX: prints the first match of REGEX in LOG, waiting up to 30 s;
# fails if the process exits first.
wait_for_line() {
    local log=$1 pid=$2 regex=$3 i found
    for i in $(seq 1 300); do
        found=$(grep -o -m1 -E "$regex" "$log" 2>/dev/null || true)
        if [ -n "$found" ]; then
            echo "$found"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server (pid $pid) did not print /$regex/; its log:" >&2
    cat "$log" >&2
    return 1
}

# run_bench NAME ENDPOINT PID SCRATCH [flags]: prints NAME's table on stdout (progress and
# build output go to stderr, so `scripts/bench.sh > results.txt` keeps just the tables).
run_bench() {
    local name=$1 endpoint=$2 pid=$3 scratch=$4
    shift 4
    banner "coffer bench against $name ($endpoint)"
    printf '### %s\n\n' "$name"
    AWS_SECRET_ACCESS_KEY=$SECRET_KEY "$COFFER" bench --endpoint "$endpoint" --access-key "$ACCESS_KEY" \
        --server-pid "$pid" --scratch-dir "$scratch" "$@" || return 1
    echo
}

START=$SECONDS

banner "cargo build --release -p coffer"
cargo build --release -p coffer >&2
COFFER="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/coffer"

banner "s3s-fs $S3S_FS_VERSION"
S3S_FS=""
if command -v s3s-fs >/dev/null 2>&1 && s3s-fs --version | grep -q " $S3S_FS_VERSION\$"; then
    S3S_FS=$(command -v s3s-fs)
    echo "found $S3S_FS ($(s3s-fs --version))" >&2
elif cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked >&2; then
    S3S_FS=$(command -v s3s-fs)
else
    echo "s3s-fs $S3S_FS_VERSION could not be installed: measuring Coffer alone" >&2
fi

# Coffer: port 0; the address is read from its stdout ("listening on http://…").
mkdir -p "$WORK/coffer/data" "$WORK/coffer/scratch"
COFFER_ROOT_ACCESS_KEY=$ACCESS_KEY COFFER_ROOT_SECRET_KEY=$SECRET_KEY \
    "$COFFER" serve --data-dir "$WORK/coffer/data" --listen 127.0.0.1:0 --allow-insecure-http \
    >"$WORK/coffer/stdout" 2>"$WORK/coffer/log" &
COFFER_PID=$!
SERVER_PIDS+=("$COFFER_PID")
COFFER_URL=$(wait_for_line "$WORK/coffer/stdout" "$COFFER_PID" 'http://127\.0\.0\.1:[0-9]+') \
    || { cat "$WORK/coffer/log" >&2; exit 1; }

run_bench coffer "$COFFER_URL" "$COFFER_PID" "$WORK/coffer/scratch" "$@" \
    || { echo "coffer bench failed; the server's log:" >&2; tail -n 50 "$WORK/coffer/log" >&2; exit 1; }
stop_server "$COFFER_PID"

if [ -n "$S3S_FS" ]; then
    # s3s-fs logs its address at info level; port 0 picks a free port.
    mkdir -p "$WORK/s3s-fs/data" "$WORK/s3s-fs/scratch"
    RUST_LOG=warn,s3s_fs=info "$S3S_FS" --host 127.0.0.1 --port 0 \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$WORK/s3s-fs/data" \
        >"$WORK/s3s-fs/log" 2>&1 &
    S3S_PID=$!
    SERVER_PIDS+=("$S3S_PID")
    S3S_URL=$(wait_for_line "$WORK/s3s-fs/log" "$S3S_PID" 'http://127\.0\.0\.1:[0-9]+')
    run_bench s3s-fs "$S3S_URL" "$S3S_PID" "$WORK/s3s-fs/scratch" "$@" \
        || { echo "coffer bench failed; the server's log:" >&2; tail -n 50 "$WORK/s3s-fs/log" >&2; exit 1; }
    stop_server "$S3S_PID"
fi

banner "done in $((SECONDS - START)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
