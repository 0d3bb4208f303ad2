#!/usr/bin/env bash
# Two builds of trailmark side by side on reads of one large trail: loads it once with
# OLD (bench/query/load.lua's varied events, RECORDS records), then each round serves a
# fresh copy of it with each build in turn (which goes first alternating), waits until
# serve has read the trail back for its alert windows, warms it up (the page cache fills),
# and measures QUERY reads (bench/query/query.lua's modes; default history) with wrk, CONNS
# connections (8).
# Every read is audited, so reads are appends too: this measures the write path's stalls
# as reads see them. Prints requests/s, p50, p99 and the server's CPU per request per
# round, and the ratios of the medians.
#
#   bench/ab/reads.sh OLD_BINARY NEW_BINARY [events] [seconds] [rounds]     (needs wrk)
#   QUERY=actor RECORDS=100000 bench/ab/reads.sh ...
#   QUERY=event CONNS=1 bench/ab/reads.sh ...   (one event by id, the newest 5,000's; one
#                                               connection: the latency one user sees)
#   TRAILMARK_BENCH_DATA=/var/tmp/trail bench/ab/reads.sh ...   (keeps the loaded trail)
set -euo pipefail
cd "$(dirname "$0")/../.."
old="$1"; new="$2"; events="${3:-1000000}"; secs="${4:-20}"; rounds="${5:-3}"
export RECORDS="${RECORDS:-100000}" QUERY="${QUERY:-history}"
conns="${CONNS:-8}"; threads=$(( conns < 2 ? 1 : 2 ))
. bench/lib.sh
trail="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
load_once "$old" "$trail" "$events" >&2
# Measured on a caught-up index, each build on an index file it built itself from the
# whole ledger (removed, then rebuilt at start): a build with another index format is not
# measured while it rebuilds, and neither build on an index file grown batch by batch
# while the other's was built at once (a rebuilt one reads faster).
# Checked before a build's index file is removed below (a start refused then would leave
# it removed until the next run rebuilt it).
port_free 7979
mine=$(mktemp -d)
copy=$(mktemp -d)
export IDS_FILE="$copy.ids"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$copy" "$mine" "$IDS_FILE"' EXIT
cp -a "$trail/." "$mine"
for pair in "$old $trail" "$new $mine"; do
  set -- $pair
  rm -f "$2"/trailmark.db-index*
  start_serve "$1" "$2"; wait_indexed 7979 30
  # QUERY=event reads the ids of the trail's newest 5,000 events (5 pages of 1,000).
  if [ "$QUERY" = event ] && [ ! -s "$IDS_FILE" ]; then
    cursor=""
    for _ in 1 2 3 4 5; do
      page=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
        "http://127.0.0.1:7979/v1/events?tenant=bench&limit=1000${cursor:+&cursor=$cursor}")
      python3 -c 'import json, sys; [print(e["id"]) for e in json.load(sys.stdin)["events"]]' <<<"$page" >>"$IDS_FILE"
      cursor=$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("next_cursor") or "")' <<<"$page")
      [ -n "$cursor" ] || break
    done
  fi
  kill -TERM "$server"; wait "$server" || true
done
one() { # binary trail -> "requests/s p50_ms p99_ms cpu_us_per_request"
  # The copy's pages written out first: left dirty, the kernel would write them back
  # during the measurement, behind every fsync.
  rm -rf "$copy"; cp -a "$2" "$copy"; sync
  start_serve "$1" "$copy"
  # Measured once serve has read the trail back for its alert windows (before, each round
  # shared the cores with that read-back of up to 2,000,000 entries).
  wait_alerts_rebuilt 7979 10
  wrk -t"$threads" -c"$conns" -d10s --timeout 30s -s bench/query/query.lua http://127.0.0.1:7979 >/dev/null 2>&1
  local before used out
  before=$(awk '{print $14 + $15}' "/proc/$server/stat")
  # wrk's own timeout is 2 s: a slower read would count as none answered.
  out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency -s bench/query/query.lua http://127.0.0.1:7979 2>&1)
  used=$(( $(awk '{print $14 + $15}' "/proc/$server/stat") - before ))
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  if grep -q "unexpected status" <<<"$out"; then echo "refused requests" >&2; exit 1; fi
  if ! grep -q "requests in" <<<"$out" || grep -q "^ *0 requests in" <<<"$out"; then
    echo "no read answered in ${secs} s (each read over 30 s?): $out" >&2; exit 1
  fi
  awk -v used="$used" -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
    /requests in/ {n = $1} /Requests\/sec/ {r = $2} / 50%/ {p50 = ms($2)} / 99%/ {p99 = ms($2)}
    END {printf "%.2f %.2f %.2f %.0f\n", r, p50, p99, used / hz * 1e6 / n}' <<<"$out"
}
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for build in $order; do
    if [ "$build" = old ]; then echo "$QUERY old $(one "$old" "$trail")"
    else echo "$QUERY new $(one "$new" "$mine")"; fi
  done
done | tee /dev/stderr | python3 -c '
import statistics, sys
cols = {}
for line in sys.stdin:
    mode, build, *values = line.split()
    for name, v in zip(("requests/s", "p50 ms", "p99 ms", "CPU us/request"), values):
        cols.setdefault((name, build), []).append(float(v))
for name in ("requests/s", "p50 ms", "p99 ms", "CPU us/request"):
    old, new = statistics.median(cols[(name, "old")]), statistics.median(cols[(name, "new")])
    print(f"{name}: old median {old:.2f}, new median {new:.2f}, new/old {new / old:.2f}")
'
