#!/usr/bin/env bash
# One transaction of a million rows, captured in each mode and drained into a
# durable ledger (`capture pg run --once --batch 5000`, over HTTP): how long,
# how much memory the drainer holds at most, and whether every row arrived
# once (counted in the ledger).
#
#   bench/capture/large.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-1000000}"
pg="$(scripts/logical-cluster)"
psql_() { psql "$pg dbname=$1" -qtAX -v ON_ERROR_STOP=1 "${@:2}"; }
cargo build --release -p trailmark >/dev/null 2>&1
bin=./target/release/trailmark
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  for mode in trigger wal; do
    psql_ postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'tm_bench_large_$mode'" >/dev/null
    psql_ postgres -c "DROP DATABASE IF EXISTS tm_bench_large_$mode WITH (FORCE)"
  done
  rm -rf "$work"
}
trap cleanup EXIT
for mode in trigger wal; do
  db="tm_bench_large_$mode"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql_ "$db" -c "CREATE TABLE item (id int PRIMARY KEY, qty int, note text)"
  $bin capture pg install --mode "$mode" --source "$pg dbname=$db" --tables public.item >/dev/null
  start=$(date +%s.%N)
  psql_ "$db" -c "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"importer\"}');
                  INSERT INTO item SELECT g, g, 'row ' || g FROM generate_series(1, $rows) g; COMMIT;" >/dev/null
  end=$(date +%s.%N)
  echo "mode=$mode the application's transaction of $rows rows took $(echo "$end - $start" | bc) s"
  rm -rf "$work/ledger"
  $bin serve --data-dir "$work/ledger" --listen 127.0.0.1:7983 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7983/healthz >/dev/null && break; sleep 0.1; done
  key=$(cat "$work/ledger/bootstrap-admin.key")
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" $bin capture pg run --once --batch 5000 --source "$pg dbname=$db" \
    --server http://127.0.0.1:7983 --key "$key" >/dev/null 2>&1
  end=$(date +%s.%N)
  s=$(echo "$end - $start" | bc)
  events=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:7983/v1/stats?tenant=default" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
  echo "mode=$mode drained in $s s = $(echo "$rows / $s" | bc) rows/s; drainer peak RSS $(( $(cat "$work/rss") / 1024 )) MiB; events in the ledger: $events of $rows"
  kill -TERM "$server"; wait "$server" || true
  server=""
done
