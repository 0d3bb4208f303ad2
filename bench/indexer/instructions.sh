#!/usr/bin/env bash
# The embedded store's indexer in instructions, not seconds: loads about
# EVENTS varied events (default 120,000; bench/query/load.lua, 2 s at a time)
# into a fresh store, then for each build (TRAILMARK_BIN_BEFORE if set, then
# TRAILMARK_BIN or this tree's) removes the index file and runs `serve` under
# `valgrind --tool=callgrind` until it has rebuilt it. Printed: the
# instructions of the indexer thread (`Indexer::run`, inclusive), of FTS5's
# flushes and merges within it, and of the whole process. Instruction counts
# repeat from run to run where this machine's timings vary by a fifth; a
# rebuild under callgrind runs about 50x slower than natively, so keep EVENTS
# small (120,000 takes about two minutes a build).
#
#   TRAILMARK_BIN_BEFORE=path bench/indexer/instructions.sh [events]   (needs valgrind, wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-120000}"
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
. bench/lib.sh
bin=$(measured_bin)
data=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

start_serve "$bin" "$data"
while [ "$(tenant_size bench)" -lt "$events" ]; do
  wrk -t2 -c4 -d2s -s bench/query/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
done
echo "loaded $(tenant_size bench) events"
kill -TERM "$server"; wait "$server" || true

# inclusive NAME FILE: the inclusive instructions callgrind gives a function
# whose name ends in NAME (a regular expression): the largest of its entries
# (inlining can list it under more than one file name; call lines, "=>", are
# skipped), 0 when none.
inclusive() {
  callgrind_annotate --inclusive=yes "$2" 2>/dev/null |
    awk -v f="$1" '$0 ~ f && $0 !~ /=>/ { gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 } END { printf "%.0f\n", max }'
}

run() { # run LABEL BIN
  local label=$1 exe=$2 out="$data/callgrind.$1"
  rm -f "$data"/trailmark.db-index "$data"/trailmark.db-index-wal "$data"/trailmark.db-index-shm
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$exe" serve --data-dir "$data" --listen 127.0.0.1:7979 >"$out.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.5; done
  wait_indexed 7979 30
  kill -TERM "$server"; wait "$server" || true
  local total
  total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out.log")
  awk -v l="$label" -v i="$(inclusive 'index::Indexer::run( |$)' "$out")" \
    -v fl="$(inclusive ':fts5FlushOneHash( |$)' "$out")" -v m="$(inclusive ':fts5IndexMergeLevel( |$)' "$out")" \
    -v t="$total" 'BEGIN { printf "%-7s indexer %.3f G instructions (FTS5 flushes %.3f G, merges %.3f G); process %.3f G\n", l, i / 1e9, fl / 1e9, m / 1e9, t / 1e9 }'
}
[ -z "${TRAILMARK_BIN_BEFORE:-}" ] || run before "$TRAILMARK_BIN_BEFORE"
run now "$bin"
