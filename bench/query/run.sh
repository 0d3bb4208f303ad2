#!/usr/bin/env bash
# Query latency on a large trail: loads N events (default 10^6) of varied actors and
# records into a fresh embedded store, waits for its indexer to catch up, then
# measures filtered reads with wrk.
#
#   bench/query/run.sh [events] [seconds]
#   TRAILMARK_BIN=path/to/trailmark MODES="feed stats" bench/query/run.sh [events] [seconds]
#   RECORDS=100000 bench/query/run.sh 1000000 20   (each record's history ten events long, as
#                                                  at 10^7 with the default 10^6 records)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-1000000}"
secs="${2:-20}"
here=bench/query
# TRAILMARK_BIN: another build to measure (an earlier commit's, for a side-by-side run).
data="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
. bench/lib.sh
bin=$(measured_bin)
start_serve "$bin" "$data"
trap 'kill "$server" 2>/dev/null || true' EXIT
# On a kept trail (TRAILMARK_BENCH_DATA) loaded within the hour, serve first reads it back
# for its alert windows: the reads are measured after that.
wait_alerts_rebuilt 7979 10
start=$(date +%s)
while [ "$(tenant_size bench)" -lt "$events" ]; do
  wrk -t2 -c4 -d30s -s $here/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
  echo "loaded $(tenant_size bench) events ($(( $(date +%s) - start )) s)"
done
du -sh "$data"
# The reads are measured on a caught-up index (what a trail at rest serves); how
# long the indexer took to catch up after loading is printed, not hidden.
caught=$(date +%s)
echo "index lag as loading ended: $(index_lag) entries"
wait_indexed 7979 10
echo "index caught up in $(( $(date +%s) - caught )) s"
for mode in ${MODES:-actor history q feed failures stats}; do
  echo "== GET ($mode), 8 connections, ${secs}s, on $(tenant_size bench) events"
  QUERY=$mode wrk -t2 -c8 -d"${secs}s" --timeout 30s --latency -s $here/query.lua http://127.0.0.1:7979 2>&1 | grep -E "Latency|50%|90%|99%|Requests/sec|unexpected" | head -8
done
