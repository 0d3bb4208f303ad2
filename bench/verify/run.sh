#!/usr/bin/env bash
# `trailmark verify --data-dir` on a large trail of varied events: loads N
# events (default 10^6; actors, records, actions and IPs vary, as in
# bench/query/load.lua) into a fresh embedded store, stops the server, then
# verifies the data dir ROUNDS times (default 3) and reports entries/s and
# the cores used. With TRAILMARK_BIN_BEFORE (an earlier build), that build
# verifies the same data dir in the same rounds, interleaved.
#
#   bench/verify/run.sh [events] [rounds]
#   TRAILMARK_BENCH_DATA=dir bench/verify/run.sh   (reuse a loaded data dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-1000000}"
rounds="${2:-3}"
bin=./target/release/trailmark
cargo build --release -p trailmark >/dev/null 2>&1
data="${TRAILMARK_BENCH_DATA:-$(mktemp -d)}"
[ -n "${TRAILMARK_BENCH_DATA:-}" ] || trap 'rm -rf "$data"' EXIT
. bench/lib.sh
load_once "$bin" "$data" "$events"
du -sh "$data"
run() {
  local label=$1 exe=$2 out
  out=$( { /usr/bin/time -f "TIME %e %U %S %M" "$exe" verify --data-dir "$data" --max-unsigned-age 31536000 >/tmp/verify-bench.out; } 2>&1 | grep TIME)
  if grep -v -e '^ok ' -e '^the trail is intact' /tmp/verify-bench.out; then echo "$label: verify FAILED" >&2; exit 1; fi
  # Entries verified: the sum over the "ok <tenant>: N entries" lines.
  local entries
  entries=$(sed -n 's/^ok *[^:]*: \([0-9]*\) entries.*/\1/p' /tmp/verify-bench.out | awk '{ s += $1 } END { print s }')
  read -r _ wall user sys rss <<<"$out"
  awk -v l="$label" -v n="$entries" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" \
    'BEGIN { printf "%-8s %d entries in %.2f s: %.0f entries/s, %.2f cores, %d MiB RSS\n", l, n, w, n / w, (u + s) / w, m / 1024 }'
}
for round in $(seq "$rounds"); do
  echo "== round $round"
  [ -z "${TRAILMARK_BIN_BEFORE:-}" ] || run before "$TRAILMARK_BIN_BEFORE"
  run now "$bin"
done
