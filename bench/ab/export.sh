#!/usr/bin/env bash
# Two builds of trailmark side by side on `trailmark export` of one trail: loads it once
# with OLD (bench/query/load.lua's varied events), then each round serves a copy of it
# with each build in turn (which goes first alternating), waits until the index has
# caught up, and times that build's `trailmark export --format FORMAT --tenant bench
# --output /dev/null` (every event, streamed page by page; the server renders each page).
# Prints seconds and events/s per round and the ratio of the medians.
#
#   bench/ab/export.sh OLD_BINARY NEW_BINARY [events] [rounds]     (needs wrk)
#   FORMAT=csv bench/ab/export.sh ...          (default ndjson)
#   TRAILMARK_BENCH_DATA=/var/tmp/trail bench/ab/export.sh ...   (keeps the loaded trail)
set -euo pipefail
cd "$(dirname "$0")/../.."
old="$1"; new="$2"; events="${3:-300000}"; rounds="${4:-3}"
format="${FORMAT:-ndjson}"
. bench/lib.sh
trail="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
load_once "$old" "$trail" "$events" >&2
copy=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$copy"' EXIT
one() { # binary -> "seconds events"
  rm -rf "$copy"; cp -a "$trail" "$copy"; sync
  start_serve "$1" "$copy"; wait_indexed 7979 10
  local start end said
  start=$(date +%s.%N)
  said=$("$1" export --url http://127.0.0.1:7979 --key "$TRAILMARK_KEY" --tenant bench \
    --format "$format" --output /dev/null 2>&1)
  end=$(date +%s.%N)
  kill -TERM "$server"; wait "$server" || true
  local count
  count=$(sed -n 's/^exported \([0-9]*\) events$/\1/p' <<<"$said")
  [ -n "$count" ] || { echo "export failed: $said" >&2; exit 1; }
  echo "$(echo "$end - $start" | bc -l) $count"
}
olds=(); news=()
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    if [ "$which" = old ]; then bin=$old; else bin=$new; fi
    read -r secs count < <(one "$bin")
    rate=$(echo "$count / $secs" | bc -l)
    printf 'round %d %s: %d events in %.2f s, %.0f events/s\n' "$round" "$which" "$count" "$secs" "$rate"
    if [ "$which" = old ]; then olds+=("$rate"); else news+=("$rate"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mo=$(median "${olds[@]}"); mn=$(median "${news[@]}")
printf 'medians: old %.0f, new %.0f events/s; new/old %.3f\n' "$mo" "$mn" "$(echo "$mn / $mo" | bc -l)"
