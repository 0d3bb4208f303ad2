#!/usr/bin/env bash
# The Python client's delivery rate: how fast its sender empties a spool of N
# events (default 20,000) into a fresh embedded store, at the default batch
# size (500), this tree's package beside an earlier commit's (BEFORE),
# interleaved rounds, over loopback (no network between them: what a new
# connection a batch costs across one is not measured here).
#
#   BEFORE=<commit> bench/client-python/run.sh [events] [rounds]
#   TRAILMARK_BIN=path ...   (that build of the server, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-20000}"
rounds="${2:-3}"
before="${BEFORE:?give BEFORE=<commit> (the client to compare with)}"
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
cleanup() {
  [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/before"
git archive "$before" clients/python/src | tar -x -C "$work/before"
one() { # package src dir: prints the rate to $work/rate (not in a subshell,
  # so that an interrupted run's cleanup stops its server)
  local data="$work/data"
  rm -rf "$data"; mkdir -p "$data"
  start_serve "$bin" "$data"
  PYTHONPATH="$1" python3 - "$events" "$work/spool.sqlite3" > "$work/rate" <<'PY'
import json, os, sys, time, trailmark
from trailmark._spool import Spool
n, spool = int(sys.argv[1]), sys.argv[2]
key = os.environ["TRAILMARK_KEY"]
# The spool filled first (the package's own spool, as `record` fills it), so
# that only the delivery is timed.
maker = trailmark.Client("http://127.0.0.1:7979", key, spool_path=spool + ".unused", enabled=False)
s = Spool(spool, 10_000_000, 1 << 40)
for i in range(n):
    e = maker.event("page.view", actor={"id": f"u{i % 1000}", "type": "user"},
                    resource={"type": "Page", "id": str(i % 5000)}, tenant="bench")
    s.add(e["id"], json.dumps(e, separators=(",", ":")))
s.close()
start = time.monotonic()
c = trailmark.Client("http://127.0.0.1:7979", key, spool_path=spool)
assert c.flush(600), "not delivered"
took = time.monotonic() - start
assert c.sent == n, c.sent
c.close()
print(f"{n / took:.0f}")
PY
  kill -TERM "$server"; wait "$server" || true; server=""
  rm -f "$work"/spool.sqlite3*
}
for round in $(seq "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    one "$work/before/clients/python/src"; b=$(cat "$work/rate")
    one clients/python/src; n=$(cat "$work/rate")
  else
    one clients/python/src; n=$(cat "$work/rate")
    one "$work/before/clients/python/src"; b=$(cat "$work/rate")
  fi
  echo "round $round: before $b events/s, now $n events/s"
done
