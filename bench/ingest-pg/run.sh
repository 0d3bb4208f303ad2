#!/usr/bin/env bash
# The ingest workloads of bench/ingest on the PostgreSQL ledger, side by side
# in one run: one server, then two servers on the same database (same signing
# seed), then plain PostgreSQL COPY of the same rows into an identically
# indexed table.
#
#   bench/ingest-pg/run.sh [seconds]   (needs wrk, psql, PostgreSQL on 127.0.0.1:5432)
#   TRAILMARK_BIN=path bench/ingest-pg/run.sh   (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-20}"
lua=bench/ingest
pg="host=127.0.0.1 port=5432 user=postgres"
db=tm_bench_ledger
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

fresh_db() {
  psql "$pg dbname=postgres" -qtAX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
}
start() { # start N: servers on 7979.. sharing one seed
  rm -rf "$work"/s*; pids=()
  for i in $(seq 0 $(($1 - 1))); do
    mkdir -p "$work/s$i"
    if [ "$i" -gt 0 ]; then cp "$work/s0/signing.seed" "$work/s0/bootstrap-admin.key" "$work/s$i/"; fi
    $bin serve --data-dir "$work/s$i" --listen "127.0.0.1:$((7979 + i))" --database "$pg dbname=$db" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((7979 + i))/healthz" >/dev/null && break; sleep 0.1; done
  done
  export TRAILMARK_KEY=$(cat "$work/s0/bootstrap-admin.key")
}
stop() { for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done; pids=(); }
rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$1"; }
p99() { sed -n 's/^ *99% *\(.*\)/\1/p' "$1"; }
load() { # load N script conns label: N servers, conns per server, in parallel
  local n=$1 script=$2 conns=$3 label=$4 total=0 loaders=()
  for i in $(seq 0 $((n - 1))); do
    wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$lua/$script" "http://127.0.0.1:$((7979 + i))/v1/events" > "$work/wrk$i.txt" 2>&1 &
    loaders+=($!)
  done
  wait "${loaders[@]}"
  for i in $(seq 0 $((n - 1))); do
    total=$(echo "$total + $(rate "$work/wrk$i.txt")" | bc)
    echo "  server $i: $(rate "$work/wrk$i.txt") req/s, p99 $(p99 "$work/wrk$i.txt")"
  done
  echo "$label: $total requests/s in all"
}

for n in 1 2; do
  fresh_db; start "$n"
  echo "== $n server(s): single-event POST, $((64 / n)) connections each, ${secs}s"
  load "$n" single.lua $((64 / n)) "single x$n"
  echo "== $n server(s): 1000-event POST, $((8 / n)) connections each, ${secs}s"
  load "$n" batch.lua $((8 / n)) "batch x$n (x1000 events)"
  stop
  rows=$(psql "$pg dbname=$db" -qtAX -c "SELECT count(*) FROM trailmark_ledger.entries")
  echo "ledger rows after $n server(s): $rows"
done

echo "== plain PostgreSQL COPY of the same rows into identically indexed tables (entries, payloads)"
ecols="pos, tenant, seq, id, occurred_at, received_at, actor_id, action, resource_type, resource_id, outcome, envelope, leaf_hash, search"
pcols="pos, received_at, tenant, payload, salt, ip, request_id, search"
psql "$pg dbname=$db" -qtAX -c "\\copy (SELECT $ecols FROM trailmark_ledger.entries WHERE tenant = 'bench') TO '$work/entries.copy'"
psql "$pg dbname=$db" -qtAX -c "\\copy (SELECT $pcols FROM trailmark_ledger.payloads WHERE tenant = 'bench') TO '$work/payloads.copy'"
psql "$pg dbname=$db" -qtAX \
  -c "CREATE TABLE copy_entries (LIKE trailmark_ledger.entries INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)" \
  -c "CREATE TABLE copy_payloads (LIKE trailmark_ledger.payloads INCLUDING DEFAULTS INCLUDING INDEXES)" \
  -c "CHECKPOINT"
n=$(wc -l < "$work/entries.copy")
start=$(date +%s.%N)
psql "$pg dbname=$db" -qtAX -c "\\copy copy_entries ($ecols) FROM '$work/entries.copy'" \
  -c "\\copy copy_payloads ($pcols) FROM '$work/payloads.copy'"
end=$(date +%s.%N)
echo "COPY: $n rows in $(echo "$end - $start" | bc) s = $(echo "$n / ($end - $start)" | bc) rows/s"
psql "$pg dbname=postgres" -qtAX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
