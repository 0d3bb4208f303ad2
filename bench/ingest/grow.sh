#!/usr/bin/env bash
# Batched ingest as the store grows: varied events (bench/query/load.lua:
# actors among 100,000, records among 1,000,000, actions, IPs), 1000 per
# request, 4 connections, into a fresh embedded store in 30 s rounds until
# it holds N events (default 2,000,000). Each round prints the rate, the
# bytes the server wrote to disk per event so far (`write_bytes` of
# /proc/PID/io: both files, their WALs and checkpoints) and the indexer's
# lag. With TRAILMARK_BIN_BEFORE (an earlier build), that build loads its
# own fresh store first, then this one.
#
#   bench/ingest/grow.sh [events]
#   TRAILMARK_BIN=path bench/ingest/grow.sh   (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-2000000}"
. bench/lib.sh
bin=$(measured_bin)
grow() {
  local label=$1 exe=$2 data prev=0 n wrote lag
  data=$(mktemp -d)
  start_serve "$exe" "$data"
  while [ "$(tenant_size bench)" -lt "$events" ]; do
    wrk -t2 -c4 -d30s -s bench/query/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
    n=$(tenant_size bench)
    wrote=$(awk '/^write_bytes/ { print $2 }' "/proc/$server/io")
    lag=$(index_lag)
    echo "$label: $n events, $(( (n - prev) / 30 )) events/s this round, $(( wrote / n )) bytes written per event so far, index lag $lag"
    prev=$n
  done
  kill -TERM "$server"; wait "$server" || true
  echo "$label: data dir $(du -sb "$data" | cut -f1) bytes, $(( $(du -sb "$data" | cut -f1) / n )) per event"
  rm -rf "$data"
}
[ -z "${TRAILMARK_BIN_BEFORE:-}" ] || grow before "$TRAILMARK_BIN_BEFORE"
grow now "$bin"
