#!/usr/bin/env bash
# Drain throughput, outbox -> durable ledger, side by side in one run: the
# drainer inside `serve` (--capture-source, embedded store) and `capture pg
# run` over HTTP, each over the same number of captured rows.
#
#   bench/capture/drain.sh [rows]      (PostgreSQL on 127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-200000}"
pg="host=127.0.0.1 port=5432 user=postgres"
db=tm_bench_drain
psql_() { psql "$pg dbname=$1" -qtAX -v ON_ERROR_STOP=1 "${@:2}"; }
cargo build --release -p trailmark >/dev/null 2>&1
bin=./target/release/trailmark
work=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

fill() {
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql_ $db -c "CREATE TABLE item (id int PRIMARY KEY, qty int, note text)"
  $bin capture pg install --source "$pg dbname=$db" --tables public.item >/dev/null
  psql_ $db -c "BEGIN; SELECT set_config('trailmark.actor_id', 'importer', true);
                INSERT INTO item SELECT g, g, 'row ' || g FROM generate_series(1, $rows) g; COMMIT;"
  psql_ $db -c "CHECKPOINT"
}
waited() { # seconds until the outbox is empty
  local start=$(date +%s.%N)
  until [ "$(psql_ $db -c 'SELECT count(*) FROM trailmark.outbox')" = 0 ]; do sleep 0.1; done
  echo "$(date +%s.%N) - $start" | bc
}

echo "== inside serve (--capture-source), $rows rows"
fill
rm -rf "$work/a"
$bin serve --data-dir "$work/a" --listen 127.0.0.1:7981 --capture-source "$pg dbname=$db" >/dev/null 2>&1 &
server=$!
s=$(waited)
echo "in-serve: $rows rows in $s s = $(echo "$rows / $s" | bc) rows/s"
kill -TERM "$server"; wait "$server" || true

echo "== capture pg run over HTTP, $rows rows"
fill
rm -rf "$work/b"
$bin serve --data-dir "$work/b" --listen 127.0.0.1:7982 >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:7982/healthz >/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
$bin capture pg run --once --batch 5000 --source "$pg dbname=$db" --server http://127.0.0.1:7982 \
  --key "$(cat "$work/b/bootstrap-admin.key")" 2>/dev/null
end=$(date +%s.%N)
s=$(echo "$end - $start" | bc)
echo "http: $rows rows in $s s = $(echo "$rows / $s" | bc) rows/s"
psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
