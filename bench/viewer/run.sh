#!/usr/bin/env bash
# First paint of the web viewer on a tenant of 10^6 events (embedded store).
#
#   bench/viewer/run.sh [events] [loads]   (needs wrk, Debian's chromium, npm)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-1000000}"
loads="${2:-10}"
cargo build --release -p trailmark >/dev/null 2>&1
(cd viewer-tests && npm ci --no-audit --no-fund --loglevel=error)
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
./target/release/trailmark serve --data-dir "$data" --listen 127.0.0.1:7983 >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:7983/healthz >/dev/null && break; sleep 0.1; done
export TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
size() {
  curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" http://127.0.0.1:7983/v1/tenants |
    python3 -c 'import json, sys; print(sum(t["size"] for t in json.load(sys.stdin)["tenants"] if t["tenant"] == "bench"))'
}
echo "== seeding $events events into tenant bench"
while [ "$(size || echo 0)" -lt "$events" ]; do
  wrk -t2 -c8 -d10s -s bench/ingest/batch.lua http://127.0.0.1:7983/v1/events >/dev/null 2>&1
done
echo "tenant bench holds $(size) events"
echo "== first paint, Chromium headless, $loads loads each"
node bench/viewer/paint.mjs http://127.0.0.1:7983 "$TRAILMARK_KEY" "$loads"
