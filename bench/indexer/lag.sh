#!/usr/bin/env bash
# The index lag under full batched load (issue 16: under one second). Loads N
# varied events (default 2,000,000; bench/query/load.lua's) into a store once,
# then in each round copies it, serves the copy, waits for its index, and runs S
# seconds (default 60) of batched ingest (1000 events a request, 4 connections,
# as the loading does) while reading `trailmark_index_lag_entries` and the
# tenant's size every half second. From the 5th second on it reports the ingest
# rate and the lag's p50, p90 and largest reading, in entries and in seconds
# (entries over the round's mean ingest rate: how long an acknowledged event
# waits for the index at that rate). With TRAILMARK_BIN_BEFORE (an earlier
# build), that build runs the same rounds on its own copy, interleaved, first
# in odd rounds. With READS (a QUERY of bench/query/query.lua: actor, feed,
# history, q...), one connection sends those reads meanwhile, one after the
# other, and their p50 and p99 are reported too (a read scans the entries
# the index does not hold yet).
#
#   bench/indexer/lag.sh [seconds] [rounds] [events]
#   READS=actor bench/indexer/lag.sh ...
#   TRAILMARK_BENCH_DATA=dir bench/indexer/lag.sh   (reuse a loaded data dir)
#   TRAILMARK_BIN=path bench/indexer/lag.sh         (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
rounds="${2:-2}"
events="${3:-2000000}"
data="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  [ -n "${TRAILMARK_BENCH_DATA:-}" ] || rm -rf "$data"
}
trap cleanup EXIT
. bench/lib.sh
bin=$(measured_bin)
load_once "$bin" "$data" "$events"
run() {
  local label=$1 exe=$2 copy="$work/copy" samples="$work/samples" load reads="" t0 n0 t1 n1 latency=""
  rm -rf "$copy"; cp -r "$data" "$copy"
  start_serve "$exe" "$copy"
  wait_indexed 7979 30
  EVENTS=1000 wrk -t2 -c4 -d"${secs}s" -s bench/query/load.lua \
    http://127.0.0.1:7979/v1/events >/dev/null 2>&1 &
  load=$!
  sleep 5
  : > "$samples"
  if [ -n "${READS:-}" ]; then
    QUERY=$READS wrk -t1 -c1 -d"$((secs - 6))s" --latency -s bench/query/query.lua \
      http://127.0.0.1:7979 > "$work/reads" 2>&1 &
    reads=$!
  fi
  t0=$(date +%s.%N); n0=$(tenant_size bench)
  while kill -0 "$load" 2>/dev/null && [ "$(echo "$(date +%s.%N) - $t0 < $secs - 6" | bc)" = 1 ]; do
    index_lag >> "$samples"
    sleep 0.5
  done
  t1=$(date +%s.%N); n1=$(tenant_size bench)
  wait "$load" || true
  if [ -n "$reads" ]; then
    wait "$reads" || true
    latency=$(awk '$1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } /Requests\/sec/ { n = $2 }
      END { printf "; %s reads: p50 %s, p99 %s (%s/s)", ENVIRON["READS"], p50, p99, n }' "$work/reads")
  fi
  kill -TERM "$server"; wait "$server" || true
  rm -rf "$copy"
  sort -n "$samples" | awk -v l="$label" -v n0="$n0" -v n1="$n1" -v t="$(echo "$t1 - $t0" | bc)" -v r="$latency" '
    { v[NR] = $1 }
    END {
      rate = (n1 - n0) / t
      p50 = v[int((NR + 1) * 0.5)]; p90 = v[int((NR + 1) * 0.9)]; max = v[NR]
      printf "%-7s store %d -> %d, %.0f events/s; lag over %d readings: p50 %d = %.2f s, p90 %d = %.2f s, max %d = %.2f s%s\n",
        l, n0, n1, rate, NR, p50, p50 / rate, p90, p90 / rate, max, max / rate, r
    }'
}
for round in $(seq "$rounds"); do
  echo "== round $round"
  if [ -n "${TRAILMARK_BIN_BEFORE:-}" ] && [ $((round % 2)) = 1 ]; then
    run before "$TRAILMARK_BIN_BEFORE"; run now "$bin"
  elif [ -n "${TRAILMARK_BIN_BEFORE:-}" ]; then
    run now "$bin"; run before "$TRAILMARK_BIN_BEFORE"
  else
    run now "$bin"
  fi
done
