#!/usr/bin/env bash
# The write path against the machine's limits, in one run (issue 16's limits probe):
#
#   - Trailmark's durable ingest (release build, fresh embedded store), batched (1000
#     varied events per request, 8 connections) and single (64 connections);
#   - the HTTP ceiling: the same requests to /bench/validate-only, which does everything
#     ingest does (key, body bound, parsing, validation, payload commitment, answer) but
#     store — a route built only with the `limits-probe` feature, never in a release;
#   - raw SQLite: the same rows, sealed as the server seals them, inserted into a table of
#     entries' columns with no index, 1000 per transaction, one fsync each;
#   - raw SQLite again, with the indexes the embedded store keeps on entries (no search
#     index): what SQLite itself charges for them;
#   - the split issue 16 proposes, as a probe: appends with only the acknowledgement's
#     indexes, the query indexes kept by a second thread in another database file;
#   - SHA-256: a leaf and a node hash per event, one core.
#
# Prints each rate and Trailmark's fraction of each limit.
#
#   bench/limits/run.sh [seconds]        (needs wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
# Its own target dir: the feature does not disturb the normal release build.
target=target/limits
cargo build --release -q -p trailmark --features limits-probe --bin trailmark --example limits --target-dir "$target"
bin="$target/release/trailmark"
data=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
. bench/lib.sh
start_serve "$bin" "$data"

rate() { # wrk output on stdin; events per request as $1
  awk -v per="$1" '/Requests\/sec/ {printf "%.0f\n", $2 * per}'
}
p99() { awk '/ 99%/ {print $2}'; }
run() { # name, lua, path, connections, events per request
  local out
  out=$(wrk -t2 -c"$4" -d"${secs}s" --latency -s "$3" "http://127.0.0.1:7979$2" 2>&1)
  if grep -q "unexpected status" <<<"$out"; then
    echo "$1: the server refused requests:" >&2; grep -m3 "unexpected" <<<"$out" >&2; exit 1
  fi
  echo "$1 $(rate "$5" <<<"$out") $(p99 <<<"$out")"
}
{
  run ceiling_batched /bench/validate-only bench/query/load.lua 8 1000
  run trailmark_batched /v1/events bench/query/load.lua 8 1000
  # The single phase runs on the store the batched one left, once its
  # indexer has caught up (not while it indexes the batched phase's backlog).
  wait_indexed
  EVENTS=1 run ceiling_single /bench/validate-only bench/query/load.lua 64 1
  EVENTS=1 run trailmark_single /v1/events bench/query/load.lua 64 1
  echo "sqlite_batched $("$target/release/examples/limits" sqlite "$data" "$secs" 1000 | awk '{print $3}') -"
  echo "sqlite_indexed $("$target/release/examples/limits" sqlite-indexed "$data" "$secs" 1000 | awk '{print $3}') -"
  echo "split_append $("$target/release/examples/limits" split "$data" "$secs" 1000 | awk '{print $4, $7}')"
  echo "sha256 $("$target/release/examples/limits" sha256 "$secs" | awk '{print $3}') -"
} | tee "$data/rates"
echo
awk '{r[$1] = $2; p[$1] = $3}
  END {
    printf "batched: Trailmark %d events/s = %.2f of the HTTP ceiling (%d), %.2f of raw SQLite (%d), %.3f of SHA-256 (%d)\n",
      r["trailmark_batched"], r["trailmark_batched"] / r["ceiling_batched"], r["ceiling_batched"],
      r["trailmark_batched"] / r["sqlite_batched"], r["sqlite_batched"],
      r["trailmark_batched"] / r["sha256"], r["sha256"]
    printf "         raw SQLite with the store'"'"'s indexes on entries (no search index): %d rows/s, %.2f of raw SQLite without\n",
      r["sqlite_indexed"], r["sqlite_indexed"] / r["sqlite_batched"]
    printf "         split (issue 16'"'"'s design, probe): acknowledged appends %d rows/s with the query indexes kept at %d rows/s by a second thread in another file, %.2f of raw SQLite without indexes\n",
      r["split_append"], p["split_append"], r["split_append"] / r["sqlite_batched"]
    printf "single:  Trailmark %d events/s (p99 %s) = %.2f of the HTTP ceiling (%d, p99 %s)\n",
      r["trailmark_single"], p["trailmark_single"], r["trailmark_single"] / r["ceiling_single"],
      r["ceiling_single"], p["ceiling_single"]
  }' "$data/rates"
