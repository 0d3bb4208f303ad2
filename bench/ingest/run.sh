#!/usr/bin/env bash
# Durable ingest, side by side in one run: Trailmark (release build, fresh
# embedded store) under wrk, and the naive PostgreSQL hash-chain table under
# pgbench, with the same connection counts and durations.
#
#   bench/ingest/run.sh [seconds]     (needs wrk, pgbench, a PostgreSQL on 127.0.0.1:5432)
#   TRAILMARK_BIN=path bench/ingest/run.sh   (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-20}"
here=bench/ingest
pg="postgresql://postgres@127.0.0.1:5432/postgres"
. bench/lib.sh
bin=$(measured_bin)
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
start_serve "$bin" "$data"

echo "== trailmark: single-event POST, 64 connections, ${secs}s"
wrk -t2 -c64 -d"${secs}s" --latency -s $here/single.lua http://127.0.0.1:7979/v1/events
echo "== trailmark: 1000-event POST, 8 connections, ${secs}s"
wrk -t2 -c8 -d"${secs}s" --latency -s $here/batch.lua http://127.0.0.1:7979/v1/events

sleep 1
count=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:7979/v1/tenants" | python3 -c 'import json, sys; print(sum(t["size"] for t in json.load(sys.stdin)["tenants"] if t["tenant"] == "bench"))')
kill -TERM "$server"; wait "$server" || true
echo "== trailmark verify --data-dir over $count bench entries (plus _system)"
/usr/bin/time -f "verify wall %e s, max RSS %M KiB" "$bin" verify --data-dir "$data" --tenant bench

echo "== naive PostgreSQL: single-row INSERT, 64 clients, ${secs}s"
psql -q "$pg" -f $here/naive.sql
pgbench -n -c 64 -j 2 -T "$secs" -f $here/naive-single.pgbench "$pg" 2>&1 | grep -E "tps|latency|transactions"
echo "== naive PostgreSQL: 1000-row INSERT per transaction, 8 clients, ${secs}s"
psql -q "$pg" -f $here/naive.sql
pgbench -n -c 8 -j 2 -T "$secs" -f $here/naive-batch.pgbench "$pg" 2>&1 | grep -E "tps|latency|transactions"
psql -q "$pg" -c "DROP TABLE naive_audit; DROP FUNCTION naive_audit_chain();"
