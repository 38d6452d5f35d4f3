#!/usr/bin/env bash
# Redis 7 baseline for allot's hold throughput: a Lua "reserve" script (reserve.lua)
# driven by redis-benchmark against a private redis-server with
# appendonly yes + appendfsync always (every acknowledged write is fsynced).
#
# Four runs, each on a fresh server in a fresh temporary directory:
#   hold        uniform over CELLS cells (on_hand 1000 each), -P 1 and -P 32
#   flash-sale  200 hot cells (10 SKUs x 20 locations, 500 units each),
#               200,000 one-unit reserves, -P 1 and -P 32: exactly 100,000 succeed
# After each run the state is audited (sum of held == hold:seq, no cell oversold, ...).
#
# Usage: bash bench/redis/run.sh
# Env:   PORT (6399) CELLS (1000000) CLIENTS (50) TOTAL_P1 (300000) TOTAL_P32 (1000000)
#        TOTAL (sets both TOTAL_P1 and TOTAL_P32) TTL_MS (3600000)
#        FLASH_CALLS (200000) FLASH_ON_HAND (500)
#        FSYNC_STATS (auto): count the server's fdatasync calls during each run with
#        `perf stat` tracepoints when perf is usable (cheap counters, no per-call tracing);
#        FSYNC_STATS=0 turns it off.
# Needs: redis-server, redis-cli, redis-benchmark (Debian: apt-get install redis-server redis-tools)
set -euo pipefail

HOST=127.0.0.1
PORT=${PORT:-6399}
CELLS=${CELLS:-1000000}
CLIENTS=${CLIENTS:-50}
TOTAL_P1=${TOTAL_P1:-${TOTAL:-300000}}
TOTAL_P32=${TOTAL_P32:-${TOTAL:-1000000}}
TTL_MS=${TTL_MS:-3600000}
ON_HAND=1000
FLASH_SKUS=10
FLASH_LOCATIONS=20
FLASH_CELLS=$((FLASH_SKUS * FLASH_LOCATIONS))
FLASH_ON_HAND=${FLASH_ON_HAND:-500}
FLASH_CALLS=${FLASH_CALLS:-200000}
FLASH_EXPECTED=$((FLASH_CELLS * FLASH_ON_HAND))

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_FILE="$HERE/reserve.lua"

for tool in redis-server redis-cli redis-benchmark awk; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)" >&2; exit 2; }
done
[[ -r "$SCRIPT_FILE" ]] || { echo "missing $SCRIPT_FILE" >&2; exit 2; }

# Server flags. --save "" : no RDB snapshots (no fork mid-run);
# --auto-aof-rewrite-percentage 0 : no automatic AOF rewrite (also a fork) during a run.
SERVER_FLAGS=(--bind "$HOST" --port "$PORT" --protected-mode no
  --appendonly yes --appendfsync always --save ""
  --auto-aof-rewrite-percentage 0 --no-appendfsync-on-rewrite no
  --databases 1 --io-threads 1 --maxmemory 0)

TMP_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/allot-redis-bench.XXXXXX")
SERVER_PID=""
PERF_PID=""

stop_perf() {
  if [[ -n "$PERF_PID" ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
  fi
  PERF_PID=""
}
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true # SIGTERM: orderly shutdown
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
cleanup() {
  stop_perf
  stop_server
  rm -rf "$TMP_ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cli() { redis-cli -h "$HOST" -p "$PORT" "$@"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

FSYNC_EVENTS=syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync
FSYNC_STATS=${FSYNC_STATS:-auto}
if [[ "$FSYNC_STATS" == auto ]]; then
  if command -v perf >/dev/null && perf stat -x, -e "$FSYNC_EVENTS" -- true >/dev/null 2>&1; then
    FSYNC_STATS=1
  else
    FSYNC_STATS=0
  fi
fi

if cli PING >/dev/null 2>&1; then
  echo "something already answers on $HOST:$PORT; set PORT to a free port" >&2
  exit 2
fi

start_server() { # $1 = run name
  local dir="$TMP_ROOT/$1"
  mkdir -p "$dir"
  redis-server "${SERVER_FLAGS[@]}" --dir "$dir" --logfile "$dir/redis.log" &
  SERVER_PID=$!
  local i
  for i in $(seq 1 100); do
    if [[ "$(cli PING 2>/dev/null || true)" == PONG ]]; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "redis-server did not answer PING; log:" >&2
  cat "$dir/redis.log" >&2 || true
  exit 1
}

# load_cells COUNT ON_HAND: HSET cell:<12-digit n> on_hand ON_HAND held 0 for n in [0, COUNT).
# Keys are zero-padded to 12 digits because that is what redis-benchmark puts in
# place of __rand_int__ (a number in [0, -r) printed as %012d).
load_cells() {
  local count=$1 on_hand=$2 out
  out=$(awk -v n="$count" -v oh="$on_hand" 'BEGIN {
      for (i = 0; i < n; i++)
        printf "*6\r\n$4\r\nHSET\r\n$17\r\ncell:%012d\r\n$7\r\non_hand\r\n$%d\r\n%s\r\n$4\r\nheld\r\n$1\r\n0\r\n", i, length(oh), oh
    }' | cli --pipe 2>&1)
  if ! grep -q "errors: 0, replies: $count" <<<"$out"; then
    echo "loading cells failed: $out" >&2
    exit 1
  fi
  local dbsize last
  dbsize=$(cli DBSIZE)
  last=$(printf 'cell:%012d' $((count - 1)))
  if [[ "$dbsize" != "$count" || "$(cli EXISTS cell:000000000000)" != 1 || "$(cli EXISTS "$last")" != 1 ]]; then
    echo "load check failed: dbsize=$dbsize (want $count), cell:000000000000 / $last must exist" >&2
    exit 1
  fi
}

load_script() {
  local sha
  sha=$(cli -x SCRIPT LOAD <"$SCRIPT_FILE")
  [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || { echo "SCRIPT LOAD failed: $sha" >&2; exit 1; }
  # Probe the two non-writing branches; neither writes anything.
  local r_missing r_short
  r_missing=$(cli EVALSHA "$sha" 1 cell:missing 1 "$TTL_MS")
  r_short=$(cli EVALSHA "$sha" 1 cell:000000000000 1000000000 "$TTL_MS")
  if [[ "$r_missing" != -1 || "$r_short" != 0 || "$(cli EXISTS hold:seq)" != 0 ]]; then
    echo "script probe failed: missing->$r_missing (want -1), insufficient->$r_short (want 0)" >&2
    exit 1
  fi
  SHA=$sha
}

# Read-only audit over cells [ARGV[1], ARGV[2]): {sum of held, cells with held > on_hand
# or held < 0, missing cells}. Run in chunks so no single script blocks for long.
AUDIT_LUA='
local sum, bad, missing = 0, 0, 0
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  local v = redis.call("HMGET", string.format("cell:%012d", i), "on_hand", "held")
  if not v[1] then
    missing = missing + 1
  else
    local h = tonumber(v[2])
    sum = sum + h
    if h > tonumber(v[1]) or h < 0 then bad = bad + 1 end
  end
end
return {sum, bad, missing}'

FAILED=0
SUMMARY=()

# audit LABEL CELL_COUNT EXPECTED_HOLDS
audit() {
  local label=$1 count=$2 expected=$3
  local sum=0 bad=0 missing=0 from chunk=250000 to r
  for ((from = 0; from < count; from += chunk)); do
    to=$((from + chunk < count ? from + chunk : count))
    mapfile -t r < <(cli EVAL "$AUDIT_LUA" 0 "$from" "$to")
    sum=$((sum + r[0])); bad=$((bad + r[1])); missing=$((missing + r[2]))
  done
  local seq zcard dbsize
  seq=$(cli GET hold:seq); seq=${seq:-0}
  zcard=$(cli ZCARD hold:expiry)
  dbsize=$(cli DBSIZE)
  local want_db=$((count + seq + (seq > 0 ? 2 : 0)))
  local verdict=PASS why=()
  [[ "$sum" == "$seq" ]] || why+=("sum(held)=$sum != hold:seq=$seq")
  [[ "$bad" == 0 ]] || why+=("$bad cells with held > on_hand")
  [[ "$missing" == 0 ]] || why+=("$missing cells missing")
  [[ "$zcard" == "$seq" ]] || why+=("ZCARD hold:expiry=$zcard != hold:seq=$seq")
  [[ "$dbsize" == "$want_db" ]] || why+=("DBSIZE=$dbsize != cells+holds+2=$want_db")
  [[ "$seq" == "$expected" ]] || why+=("successful reserves=$seq, expected $expected")
  ((${#why[@]} == 0)) || { verdict=FAIL; FAILED=1; }
  echo "  audit: sum(held)=$sum hold:seq=$seq ZCARD(hold:expiry)=$zcard oversold_cells=$bad missing_cells=$missing DBSIZE=$dbsize expected_successes=$expected -> $verdict"
  local w
  for w in "${why[@]+"${why[@]}"}"; do echo "    FAIL: $w"; done
  if ((seq > 0)); then
    echo "  sample hold:$seq -> $(cli HGETALL "hold:$seq" | paste -sd' ')"
  fi
  AUDIT_VERDICT=$verdict
}

# run LABEL PIPELINE TOTAL KEYSPACE CELL_COUNT CELL_ON_HAND EXPECTED_HOLDS
run() {
  local label=$1 p=$2 total=$3 keyspace=$4 count=$5 on_hand=$6 expected=$7
  echo
  echo "=== $label, -P $p: $total reserves over $count cells (on_hand $on_hand), $CLIENTS clients ==="
  local t0 t1
  t0=$(date +%s.%N)
  start_server "${label}-P$p"
  load_cells "$count" "$on_hand"
  load_script
  t1=$(date +%s.%N)
  echo "  setup (fresh server, $count cells loaded via redis-cli --pipe, SCRIPT LOAD): $(elapsed "$t0" "$t1") s"
  local cmd=(redis-benchmark -h "$HOST" -p "$PORT" -c "$CLIENTS" -n "$total" -r "$keyspace" -P "$p" --csv
    EVALSHA "$SHA" 1 "cell:__rand_int__" 1 "$TTL_MS")
  echo "  \$ ${cmd[*]}"
  local out line perf_out="$TMP_ROOT/${label}-P$p.perf"
  if [[ "$FSYNC_STATS" == 1 ]]; then
    perf stat -x, -e "$FSYNC_EVENTS" -p "$SERVER_PID" -o "$perf_out" &
    PERF_PID=$!
    sleep 0.3 # let perf attach before the first request
  fi
  t0=$(date +%s.%N)
  out=$("${cmd[@]}")
  t1=$(date +%s.%N)
  stop_perf
  line=$(tail -n 1 <<<"$out")
  local rps avg min p50 p95 p99 max
  IFS=, read -r _ rps avg min p50 p95 p99 max <<<"${line//\"/}"
  local secs
  secs=$(elapsed "$t0" "$t1")
  echo "  throughput: $rps requests/s   (wall ${secs} s)"
  echo "  latency (ms): avg $avg  min $min  p50 $p50  p95 $p95  p99 $p99  max $max"
  local aof
  aof=$(cli INFO persistence | tr -d '\r' | awk -F: '$1=="aof_current_size"{print $2}')
  echo "  AOF size after run: $aof bytes"
  if [[ "$FSYNC_STATS" == 1 ]]; then
    local fsyncs
    fsyncs=$(awk -F, '$3 ~ /sys_enter_f(data)?sync/ && $1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }' "$perf_out")
    echo "  server fsync/fdatasync calls during the run: $fsyncs ($(awk -v r="$total" -v f="$fsyncs" 'BEGIN { if (f > 0) printf "%.1f", r / f; else print "n/a" }') requests per fsync)"
  fi
  audit "$label" "$count" "$expected"
  stop_server
  # Drop this run's AOF now and flush the filesystem, so the journal commit and
  # discards for hundreds of MB of freed AOF land here and not in the next run's fsyncs.
  rm -rf "${TMP_ROOT:?}/${label}-P$p"
  sync
  SUMMARY+=("$(printf '%-10s %4s %9s %11s %7s %7s %7s %7s %8s  %s' "$label" "-P $p" "$total" "$rps" "$avg" "$p50" "$p99" "$max" "${secs}s" "$AUDIT_VERDICT")")
}

sync # start from a flushed page cache / journal (e.g. after an earlier run's cleanup)
START=$(date +%s.%N)
echo "# allot Redis baseline: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "# $(redis-server --version)"
echo "# $(redis-benchmark --version 2>/dev/null || echo 'redis-benchmark (version unknown)')"
echo "# host: $(uname -srm), $(nproc) cores; other load on the machine skews the figures"
echo "# server: redis-server $(printf '%q ' "${SERVER_FLAGS[@]}")--dir <fresh tmp dir per run> --logfile <dir>/redis.log"
echo "# fsync counting via perf stat tracepoints: $([[ "$FSYNC_STATS" == 1 ]] && echo on || echo off)"
echo "# script: bench/redis/reserve.lua (sha1 $(sha1sum "$SCRIPT_FILE" | cut -c1-40))"
echo "# params: CELLS=$CELLS CLIENTS=$CLIENTS TOTAL_P1=$TOTAL_P1 TOTAL_P32=$TOTAL_P32 TTL_MS=$TTL_MS"
echo "#         flash-sale: $FLASH_SKUS SKUs x $FLASH_LOCATIONS locations = $FLASH_CELLS cells x $FLASH_ON_HAND units, $FLASH_CALLS calls"
echo "# redis-benchmark's __rand_int__ is a uniform number in [0, -r) printed as 12 zero-padded digits,"
echo "# so cells are loaded as cell:000000000000 .. cell:$(printf '%012d' $((CELLS - 1)))"

run hold 1 "$TOTAL_P1" "$CELLS" "$CELLS" "$ON_HAND" "$TOTAL_P1"
run hold 32 "$TOTAL_P32" "$CELLS" "$CELLS" "$ON_HAND" "$TOTAL_P32"
run flash-sale 1 "$FLASH_CALLS" "$FLASH_CELLS" "$FLASH_CELLS" "$FLASH_ON_HAND" "$FLASH_EXPECTED"
run flash-sale 32 "$FLASH_CALLS" "$FLASH_CELLS" "$FLASH_CELLS" "$FLASH_ON_HAND" "$FLASH_EXPECTED"

END=$(date +%s.%N)
echo
echo "=== summary (latency in ms; wall = redis-benchmark run only) ==="
printf '%-10s %4s %9s %11s %7s %7s %7s %7s %8s  %s\n' shape pipe requests "req/s" avg p50 p99 max wall audit
printf '%s\n' "${SUMMARY[@]}"
echo "total time: $(elapsed "$START" "$END") s"
if ((FAILED)); then
  echo "AUDIT: FAIL"
  exit 1
fi
echo "AUDIT: PASS (all runs)"
