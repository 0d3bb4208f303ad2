#!/usr/bin/env bash
# The WAL drain as the ledger grows, two builds side by side in one run: ROWS
# rows (keys scattered over the table, one actor per transaction of 100,000)
# wait in the slot; each build's `serve --capture-source` drains them into a
# fresh embedded store. Printed: rows/s over each STEP rows the ledger gains,
# the bytes serve wrote to disk per event, and the data dir's size.
#
#   TRAILMARK_BIN_BEFORE=path/to/trailmark bench/capture/grow.sh [rows] [step] [rounds]
#   TRAILMARK_BIN=path ...     measures that build instead of this tree's
#
# Needs the wal_level = logical cluster scripts/logical-cluster makes and starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-3000000}"
step="${2:-500000}"
rounds="${3:-1}"
before="${TRAILMARK_BIN_BEFORE:?set TRAILMARK_BIN_BEFORE to the build to compare with}"
pg="$(scripts/logical-cluster)"
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; drop_databases "$pg" "tm_bench_grow%"; rm -rf "$work"' EXIT

run() { # run NAME BIN
  local name=$1 bin=$2 db=tm_bench_grow
  drop_databases "$pg" "$db"
  psql_ postgres -c "CREATE DATABASE $db"
  psql_ $db -c "CREATE TABLE item (id bigint PRIMARY KEY, qty int, note text)"
  "$bin" capture pg install --mode wal --source "$pg dbname=$db" --tables public.item >/dev/null
  local from=1
  while [ "$from" -le "$rows" ]; do
    local to=$((from + 99999))
    [ "$to" -gt "$rows" ] && to=$rows
    # g -> g * 2654435761 mod 4294967311 (a prime): distinct, scattered keys.
    psql_ $db -c "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"importer-$from\"}');
      INSERT INTO item SELECT (g * 2654435761) % 4294967311, g, 'row ' || g
      FROM generate_series($from, $to) g; COMMIT;" >/dev/null
    from=$((to + 1))
  done
  psql_ $db -c "CHECKPOINT"
  rm -rf "$work/$name"
  local start
  start=$(date +%s.%N)
  "$bin" serve --data-dir "$work/$name" --listen 127.0.0.1:7983 --capture-source "$pg dbname=$db" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do [ -s "$work/$name/bootstrap-admin.key" ] && break; sleep 0.05; done
  TRAILMARK_KEY=$(cat "$work/$name/bootstrap-admin.key")
  local next=$step last=$start line="$name:"
  while :; do
    local size now
    size=$(tenant_size default 7983)
    now=$(date +%s.%N)
    if [ "$size" -ge "$next" ] || [ "$size" -ge "$rows" ]; then
      line="$line $(echo "$step / ($now - $last)" | bc)"
      last=$now
      next=$((next + step))
      [ "$size" -ge "$rows" ] && break
    fi
    sleep 0.2
  done
  local written
  written=$(awk '/^write_bytes/ {print $2}' "/proc/$server/io")
  echo "$line rows/s per $step rows; all: $(echo "$rows / ($(date +%s.%N) - $start)" | bc) rows/s; $((written / rows)) bytes written per event; data dir $(du -sh "$work/$name" | cut -f1)"
  kill -TERM "$server"
  wait "$server" || true
  server=""
  rm -rf "$work/$name"
}

for round in $(seq "$rounds"); do
  echo "== round $round: $rows rows, WAL mode, drained inside serve"
  if [ $((round % 2)) = 1 ]; then
    run before "$before"
    run this "$bin"
  else
    run this "$bin"
    run before "$before"
  fi
done
