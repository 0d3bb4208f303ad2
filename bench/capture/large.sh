#!/usr/bin/env bash
# One transaction of a million rows, captured in each mode and drained into a
# durable ledger (`capture pg run --once --batch 5000`, over HTTP): how long,
# how much memory the drainer holds at most, whether every row arrived once
# (counted in the ledger), and in WAL mode what the slot's statistics say the
# server did with the transaction (spilled to its disk, or streamed to the
# drainer in progress: `pg_stat_replication_slots`).
#
#   bench/capture/large.sh [rows] [rounds]
#
# With TRAILMARK_BIN_BEFORE=path/to/trailmark, each round drains WAL mode
# with that build and this one in turn (their order alternating), each from a
# database of its own written the same way. TRAILMARK_BIN measures that build
# instead of this tree's. MODES="wal" skips trigger mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-1000000}"
rounds="${2:-1}"
modes="${MODES:-trigger wal}"
before="${TRAILMARK_BIN_BEFORE:-}"
pg="$(scripts/logical-cluster)"
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
server=""
dbs=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  for db in $dbs; do
    psql_ postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
    psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# run MODE LABEL BIN: writes the transaction into a fresh database, drains
# it with BIN into a fresh ledger, prints one line.
run() {
  local mode=$1 label=$2 build=$3 db="tm_bench_large_$1_$2"
  dbs="$dbs $db"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql_ "$db" -c "CREATE TABLE item (id int PRIMARY KEY, qty int, note text)"
  "$build" capture pg install --mode "$mode" --source "$pg dbname=$db" --tables public.item >/dev/null
  local start end s
  start=$(date +%s.%N)
  psql_ "$db" -c "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"importer\"}');
                  INSERT INTO item SELECT g, g, 'row ' || g FROM generate_series(1, $rows) g; COMMIT;" >/dev/null
  end=$(date +%s.%N)
  local wrote
  wrote=$(echo "$end - $start" | bc)
  rm -rf "$work/ledger"
  "$build" serve --data-dir "$work/ledger" --listen 127.0.0.1:7983 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7983/healthz >/dev/null && break; sleep 0.1; done
  local key
  key=$(cat "$work/ledger/bootstrap-admin.key")
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$build" capture pg run --once --batch 5000 --source "$pg dbname=$db" \
    --server http://127.0.0.1:7983 --key "$key" >/dev/null 2>&1
  end=$(date +%s.%N)
  s=$(echo "$end - $start" | bc)
  local events slot=""
  events=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:7983/v1/stats?tenant=default" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
  if [ "$mode" = wal ]; then
    slot=" slot: $(psql_ "$db" -c "SELECT format('spilled %s txns %s MB, streamed %s txns in %s chunks %s MB',
        spill_txns, spill_bytes / 1000000, stream_txns, stream_count, stream_bytes / 1000000)
      FROM pg_stat_replication_slots s JOIN pg_replication_slots r USING (slot_name)
      WHERE r.database = current_database()")"
  fi
  echo "mode=$mode build=$label write=${wrote}s drained in $s s = $(echo "$rows / $s" | bc) rows/s; drainer peak RSS $(( $(cat "$work/rss") / 1024 )) MiB; events in the ledger: $events of $rows;$slot"
  kill -TERM "$server"; wait "$server" || true
  server=""
  psql_ postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
}

for round in $(seq "$rounds"); do
  for mode in $modes; do
    if [ "$mode" = wal ] && [ -n "$before" ]; then
      if [ $((round % 2)) = 1 ]; then
        run wal before "$before"; run wal this "$bin"
      else
        run wal this "$bin"; run wal before "$before"
      fi
    else
      run "$mode" this "$bin"
    fi
  done
done
