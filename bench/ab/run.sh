#!/usr/bin/env bash
# Two builds of trailmark, side by side in one run: each serves a fresh embedded store
# in turn (interleaved rounds, so machine noise falls on both), loaded with
# bench/query/load.lua's varied events, batched (1000 per request, 8 connections) and
# single (64 connections). Prints events/s and p99 per round and the ratio of the
# medians.
#
#   bench/ab/run.sh OLD_BINARY NEW_BINARY [seconds] [rounds]     (needs wrk)
#   IDS=1 bench/ab/run.sh ...     every event with its own id (see bench/query/load.lua)
#
# e.g. an earlier commit built into its own target dir:
#   git worktree add /tmp/old <commit>
#   (cd /tmp/old && CARGO_TARGET_DIR=$PWD/../main-target-old cargo build --release -p trailmark)
set -euo pipefail
cd "$(dirname "$0")/../.."
old="$1"; new="$2"; secs="${3:-15}"; rounds="${4:-2}"
if curl -sf http://127.0.0.1:7979/healthz >/dev/null; then
  echo "something already listens on 127.0.0.1:7979; stop it first" >&2; exit 1
fi
one() { # binary, mode -> "rate p99"
  local data server out per conns
  data=$(mktemp -d)
  "$1" serve --data-dir "$data" --listen 127.0.0.1:7979 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
  if [ "$2" = batched ]; then per=1000; conns=8; else per=1; conns=64; fi
  out=$(TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key") EVENTS=$per \
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/query/load.lua http://127.0.0.1:7979/v1/events 2>&1)
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -rf "$data"
  if grep -q "unexpected status" <<<"$out"; then echo "refused requests" >&2; exit 1; fi
  awk -v per="$per" '/Requests\/sec/ {r = $2 * per} / 99%/ {p = $2} END {printf "%.0f %s\n", r, p}' <<<"$out"
}
for mode in batched single; do
  for round in $(seq "$rounds"); do
    echo "$mode old $(one "$old" "$mode")"
    echo "$mode new $(one "$new" "$mode")"
  done
done | tee /dev/stderr | python3 -c '
import statistics, sys
rates = {}
for line in sys.stdin:
    mode, build, rate, _ = line.split()
    rates.setdefault((mode, build), []).append(float(rate))
for mode in ("batched", "single"):
    old, new = statistics.median(rates[(mode, "old")]), statistics.median(rates[(mode, "new")])
    print(f"{mode}: old median {old:.0f} events/s, new median {new:.0f} events/s, new/old {new / old:.2f}")
'
