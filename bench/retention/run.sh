#!/usr/bin/env bash
# Retention at scale, on the embedded store (release build): a trail that is
# already large (N entries of tenant `old`, received 40 days ago, varied
# actors, records and values), a 30-day policy on `old`, then
#   1. a dry run of the cleanup (how long it takes to judge N entries);
#   2. ingest alone: wrk, 1000-event POSTs to tenant `bench`, 8 connections;
#   3. the real cleanup of the N entries, and the same wrk load while it runs.
# Reports the cleanup rate (entries/s), the scrub's time (from the server's
# log), and ingest during cleanup against ingest alone, side by side.
#
#   bench/retention/run.sh [entries] [seconds]     (needs wrk, curl, python3)
#   STORE=pg bench/retention/run.sh ...             the same on the PostgreSQL store
#                                                   (127.0.0.1:5432, database tm_retention_bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1000000}"
secs="${2:-20}"
port=7981
cargo build --release -p trailmark >/dev/null 2>&1
cargo build --release -p trailmark --example backdate >/dev/null 2>&1
data=$(mktemp -d)
chmod 700 "$data"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
  echo "something already listens on 127.0.0.1:$port; stop it first" >&2; exit 1
fi
pgadmin="postgresql://postgres@127.0.0.1:5432/postgres"
if [ "${STORE:-sqlite}" = pg ]; then
  target="postgresql://postgres@127.0.0.1:5432/tm_retention_bench"
  psql -q "$pgadmin" -c "DROP DATABASE IF EXISTS tm_retention_bench WITH (FORCE)" -c "CREATE DATABASE tm_retention_bench"
  store=(--database "$target")
  size() { psql -tA "$target" -c "SELECT sum(pg_total_relation_size(oid)) / 1048576 FROM pg_class WHERE relnamespace = 'trailmark_ledger'::regnamespace AND relkind = 'r' AND (relname = 'entries' OR relname LIKE 'payloads%')" | awk '{print "entries and payload tables " $1 " MB"}'; }
else
  target="$data/trailmark.db"
  store=()
  size() { ls -l "$data"/trailmark.db | awk '{printf "database %.0f MB\n", $5/1048576}'; }
fi
echo "== loading $n entries received 40 days ago (${STORE:-sqlite})"
/usr/bin/time -f "load wall %e s" ./target/release/examples/backdate "$target" "$n" 40 old
size
./target/release/trailmark serve --data-dir "$data" --listen "127.0.0.1:$port" --cleanup-interval 0 \
  "${store[@]}" --log-format json >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
export TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
api() { curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" -H 'Content-Type: application/json' "$@"; }
api -X PUT -d '{"tenant":"old","max_age_days":30}' "http://127.0.0.1:$port/v1/retention" >/dev/null

echo "== dry run over $n entries"
start=$(date +%s.%N)
api -d '{"dry_run":true}' "http://127.0.0.1:$port/v1/retention/cleanup" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("would expire", r["entries"], "entries,", r["bytes"], "bytes")'
end=$(date +%s.%N)
python3 -c "print(f'dry run {($end-$start):.1f} s, {$n/($end-$start):,.0f} entries/s judged')"

echo "== ingest alone: 1000-event POST, 8 connections, ${secs}s"
wrk -t2 -c8 -d"${secs}s" --latency -s bench/ingest/batch.lua "http://127.0.0.1:$port/v1/events" | grep -E "Requests/sec|99%"

echo "== cleanup of $n entries, with the same ingest load for ${secs}s while it runs"
start=$(date +%s.%N)
# The CLI, as an operator runs it: it waits past the request timeout for
# the report of a long cleanup.
./target/release/trailmark cleanup --url "http://127.0.0.1:$port" >"$data/report.txt" 2>&1 &
cleanup=$!
sleep 1
wrk -t2 -c8 -d"${secs}s" --latency -s bench/ingest/batch.lua "http://127.0.0.1:$port/v1/events" | grep -E "Requests/sec|99%"
if kill -0 "$cleanup" 2>/dev/null; then echo "(the cleanup was still running when the load ended)"; else echo "(NOTE: the cleanup ended before the load did: raise the entry count)"; fi
wait "$cleanup"
end=$(date +%s.%N)
tail -2 "$data/report.txt"
python3 - "$data/report.txt" "$start" "$end" <<'PY'
import re, sys
text = open(sys.argv[1]).read(); wall = float(sys.argv[3]) - float(sys.argv[2])
n = int(re.search(r"expired: (\d+) entries", text).group(1))
print(f"expired {n:,} entries in {wall:.1f} s: {n/wall:,.0f} entries/s")
PY
grep -o '"millis":[0-9]*' "$data/server.log" | tail -1 | sed 's/"millis":/scrub (SQLite: FTS optimize + WAL truncate; PostgreSQL: VACUUM FULL) ms: /'
size
echo "== trailmark verify --url --tenant old"
/usr/bin/time -f "verify wall %e s" ./target/release/trailmark verify --url "http://127.0.0.1:$port" --key "$TRAILMARK_KEY" --tenant old | tail -2
kill -TERM "$server"; wait "$server" || true
if [ "${STORE:-sqlite}" = pg ]; then psql -q "$pgadmin" -c "DROP DATABASE tm_retention_bench WITH (FORCE)"; fi
