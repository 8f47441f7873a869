#!/usr/bin/env bash
# Binary size and cold start (process start to the first 200 on /health) of each function's
# release binary, against the running local stack. Build first:
#   cargo build --release -p quarry-auth -p quarry-ask -p quarry-sql-exec -p quarry-retrieve \
#     -p quarry-ingest -p quarry-index-advisor --bins
# Usage: scripts/bench-coldstart.sh [runs per function, default 5]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$QUARRY_REPO"
eval "$("$QUARRY_REPO/scripts/stack.sh" env)"
runs="${1:-5}"
port=18777
export RUST_LOG=warn LOG_FORMAT=json PORT=$port

ms_now() { date +%s%N | cut -b1-13; }

for fn in auth ask sql-exec retrieve ingest index-advisor; do
  bin="target/release/quarry-$fn"
  [[ -x $bin ]] || die "$bin is missing: build the release binaries first"
  size=$(stat -c %s "$bin")
  times=()
  for ((i = 0; i < runs; i++)); do
    start=$(ms_now)
    "$bin" >/dev/null 2>&1 &
    pid=$!
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
      (($(ms_now) - start < 10000)) || { kill "$pid"; die "quarry-$fn did not answer /health within 10 s"; }
      sleep 0.005
    done
    times+=($(($(ms_now) - start)))
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
  awk -v n="quarry-$fn" -v s="$size" -v t="$sorted" 'BEGIN { printf "%-22s %6.1f MiB   cold start ms (sorted): %s\n", n, s / 1048576, t }'
done
