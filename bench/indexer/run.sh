#!/usr/bin/env bash
# The embedded store's indexer alone: loads N varied events (default
# 500,000; bench/query/load.lua's actors, records, actions and IPs) into a
# fresh store, stops the server, then in each round removes the index file
# and starts `serve` on the data dir, which rebuilds it from the ledger
# file (the indexer's own batches, nothing else running in the server), and
# reports the time from the first answer to `trailmark_index_lag_entries 0`
# the CPU per entry of the store's threads over that time, and the bytes the
# server wrote to disk per entry (`write_bytes` of /proc/PID/io). With TRAILMARK_BIN_BEFORE
# (an earlier build), that build rebuilds the same data dir in the same
# rounds, interleaved.
#
#   bench/indexer/run.sh [events] [rounds]
#   TRAILMARK_BENCH_DATA=dir bench/indexer/run.sh   (reuse a loaded data dir)
#   TRAILMARK_BIN=path bench/indexer/run.sh         (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-500000}"
rounds="${2:-3}"
data="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
[ -n "${TRAILMARK_BENCH_DATA:-}" ] || trap 'rm -rf "$data"' EXIT
. bench/lib.sh
bin=$(measured_bin)
load_once "$bin" "$data" "$events"
du -sh "$data"
ticks=$(getconf CLK_TCK)
# CPU of the store's threads (the indexer, and the writer and WAL thread,
# idle here): the server's other work at start (the alert windows' rebuild
# reads the recent trail) is not the indexer's.
written() { awk '/^write_bytes/ { print $2 }' "/proc/$server/io"; }
cpu() {
  local t sum=0
  for t in /proc/"$server"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = trailmark-sqlit ] || continue
    sum=$(( sum + $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0) ))
  done
  echo "$sum"
}
run() {
  local label=$1 exe=$2 start cpu0 wrote0 behind secs used wrote
  rm -f "$data"/trailmark.db-index "$data"/trailmark.db-index-wal "$data"/trailmark.db-index-shm
  start_serve "$exe" "$data"
  start=$(date +%s.%N); cpu0=$(cpu); wrote0=$(written)
  behind=$(index_lag)
  wait_indexed 7979 30
  secs=$(echo "$(date +%s.%N) - $start" | bc); used=$(( $(cpu) - cpu0 )); wrote=$(( $(written) - wrote0 ))
  kill -TERM "$server"; wait "$server" || true
  awk -v l="$label" -v n="$behind" -v s="$secs" -v u="$used" -v t="$ticks" -v w="$wrote" \
    'BEGIN { printf "%-8s %d entries indexed in %.2f s: %.0f entries/s, %.1f us CPU and %.0f bytes written per entry\n", l, n, s, n / s, 1e6 * u / t / n, w / n }'
}
for round in $(seq "$rounds"); do
  echo "== round $round"
  [ -z "${TRAILMARK_BIN_BEFORE:-}" ] || run before "$TRAILMARK_BIN_BEFORE"
  run now "$bin"
done
