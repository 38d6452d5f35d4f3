#!/usr/bin/env bash
# Shutdown and restart bounds of a real allotd (BENCHMARKS.md, "Shutdown and restart").
#
# Part 1: load a large state with the `hold` workload in batch frames, then SIGTERM:
#         how long the process takes to exit, and how long the next start takes.
# Part 2: crash cycles: start, load for a few seconds, kill -9, repeat: how long each
#         start takes and how many log records it replays.
#
# Usage: bench/restart/run.sh [BIN_DIR] [LOAD_SECONDS] [CYCLES] [CYCLE_TTL_MS] [CYCLE_RATE]
# LOAD_SECONDS 0 skips part 1. BIN_DIR holds release builds of allotd and allot-bench (default target/release).
# CYCLE_TTL_MS is the TTL of part 2's holds: short, so the state stays the same size from
# cycle to cycle as far as live holds go; CYCLE_RATE holds a second, an open loop.
set -euo pipefail
bin=${1:-target/release}
load_s=${2:-40}
cycles=${3:-15}
cycle_ttl_ms=${4:-10000}
cycle_rate=${5:-50000}
work=$(mktemp -d /tmp/allot-restart.XXXXXX)
trap 'pkill -P $$ allotd 2>/dev/null || true' EXIT

now_ms() { date +%s%3N; }

# Starts allotd on $1, waits for its ready line; sets pid, addr and ready_ms.
start() {
  local dir=$1 log=$2 t0
  t0=$(now_ms)
  "$bin/allotd" --data-dir "$dir" --listen 127.0.0.1:0 >"$log.out" 2>"$log" &
  pid=$!
  until grep -q "allotd listening on" "$log.out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "allotd exited:"; cat "$log"; exit 1; }
    sleep 0.05
  done
  ready_ms=$(( $(now_ms) - t0 ))
  addr=$(sed -n 's/^allotd listening on //p' "$log.out" | head -1)
}

replayed() { grep -o 'records_replayed: [0-9]*' "$1" | head -1 | grep -o '[0-9]*$' || echo 0; }
rss_mb() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }

load() {
  local seconds=$1 prefix=$2
  shift 2
  "$bin/allot-bench" --workload hold --addr "$addr" --data-dir "$dir" \
    --connections 4 --depth 1024 --batch 64 --warmup 0 --duration "$seconds" \
    --sku-prefix "$prefix" --quiet --json "$work/report-$prefix.json" "$@" >/dev/null 2>&1 || true
}

if [ "$load_s" -gt 0 ]; then
  echo "== part 1: SIGTERM after ${load_s} s of holds"
  dir=$work/large
  start "$dir" "$work/large-1.log"
  load "$load_s" big
  echo "state: $(rss_mb "$pid") MB resident, $(du -sm "$dir" | cut -f1) MB on disk"
  t0=$(now_ms)
  kill -TERM "$pid"
  wait "$pid" || true
  echo "SIGTERM to exit: $(( $(now_ms) - t0 )) ms"
  start "$dir" "$work/large-2.log"
  echo "next start: ${ready_ms} ms, $(replayed "$work/large-2.log") records replayed"
  kill -TERM "$pid"; wait "$pid" || true

fi

echo "== part 2: ${cycles} crash cycles of 4 s of holds at ${cycle_rate}/s (TTL ${cycle_ttl_ms} ms), kill -9"
dir=$work/cycles
for cycle in $(seq 1 "$cycles"); do
  start "$dir" "$work/cycle-$cycle.log"
  echo "cycle $cycle: start ${ready_ms} ms, $(replayed "$work/cycle-$cycle.log") records replayed, $(du -sm "$dir" | cut -f1) MB on disk"
  load 4 cycle --ttl-ms "$cycle_ttl_ms" --rate "$cycle_rate"
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
done
rm -rf "$work"
