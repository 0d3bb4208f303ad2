#!/usr/bin/env bash
# Drain throughput, outbox -> durable ledger, side by side in one run: the
# drainer inside `serve` (--capture-source, embedded store) and `capture pg
# run` over HTTP, each over the same number of captured rows.
#
#   bench/capture/drain.sh [rows] [rounds]            trigger mode (PostgreSQL on 127.0.0.1:5432)
#   MODE=wal bench/capture/drain.sh [rows] [rounds]   WAL mode (the wal_level = logical cluster
#                                                     scripts/logical-cluster makes and starts)
#
# With TRAILMARK_BIN_BEFORE=path/to/trailmark, each round measures that build
# and this one in turn (their order alternating), both ways. TRAILMARK_BIN
# measures that build instead of this tree's. DELAY_MS=N puts a network
# between the drainer and the server over HTTP (bench/capture/delay.py: N ms
# each way, bandwidth unlimited); WAYS=http measures only that way.
#
#   DELAY_MS=2 WAYS=http bench/capture/drain.sh 200000 3
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-200000}"
rounds="${2:-1}"
mode="${MODE:-trigger}"
before="${TRAILMARK_BIN_BEFORE:-}"
delay="${DELAY_MS:-}"
ways="${WAYS:-serve http}"
if [ "$mode" = wal ]; then
  pg="$(scripts/logical-cluster)"
else
  pg="host=127.0.0.1 port=5432 user=postgres"
fi
db=tm_bench_drain
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
server=""
proxy=""
trap 'kill "$server" $proxy 2>/dev/null || true; rm -rf "$work"' EXIT
port=7982
if [ -n "$delay" ]; then
  python3 bench/capture/delay.py 7983 7982 "$delay" &
  proxy=$!
  port=7983
fi

drop_db() { # a WAL-mode slot keeps its database: it goes first
  psql_ postgres -c "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}
fill() { # BIN: the build that installs capture
  drop_db
  psql_ postgres -c "CREATE DATABASE $db"
  psql_ $db -c "CREATE TABLE item (id int PRIMARY KEY, qty int, note text)"
  $1 capture pg install --mode "$mode" --source "$pg dbname=$db" --tables public.item >/dev/null
  psql_ $db -c "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"importer\"}');
                INSERT INTO item SELECT g, g, 'row ' || g FROM generate_series(1, $rows) g; COMMIT;" >/dev/null
  psql_ $db -c "CHECKPOINT"
}
# Seconds from serve's start until the ledger holds every row (the tenant
# "default" at its size).
waited() {
  local start=$1
  for _ in $(seq 100); do [ -s "$work/a/bootstrap-admin.key" ] && break; sleep 0.05; done
  TRAILMARK_KEY=$(cat "$work/a/bootstrap-admin.key")
  size=0
  until [ "$size" -ge "$rows" ]; do
    sleep 0.1
    poll_size default 7981
  done
  echo "$(date +%s.%N) - $start" | bc
}

# in_serve NAME BIN: the drainer inside serve (--capture-source).
in_serve() {
  local name=$1 bin=$2 start s
  fill "$bin"
  rm -rf "$work/a"
  start=$(date +%s.%N)
  $bin serve --data-dir "$work/a" --listen 127.0.0.1:7981 --capture-source "$pg dbname=$db" >/dev/null 2>&1 &
  server=$!
  s=$(waited "$start")
  # serve's CPU (user + system, in clock ticks) until the ledger held every
  # row: steadier than the rate on a noisy machine.
  cpu=$(echo "scale=1; $(cpu_ticks "$server") * 1000000 / $(getconf CLK_TCK) / $rows" | bc)
  echo "$name in-serve: $rows rows in $s s = $(echo "$rows / $s" | bc) rows/s (serve's start included), serve's CPU $cpu us/row"
  kill -TERM "$server"; wait "$server" || true
}

# over_http NAME BIN: `capture pg run --once` into a serve of the same build.
over_http() {
  local name=$1 bin=$2 start end s
  fill "$bin"
  rm -rf "$work/b"
  $bin serve --data-dir "$work/b" --listen 127.0.0.1:7982 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7982/healthz >/dev/null && break; sleep 0.1; done
  local ticks
  ticks=$(cpu_ticks "$server")
  start=$(date +%s.%N)
  $bin capture pg run --once --batch 5000 --source "$pg dbname=$db" --server http://127.0.0.1:$port \
    --key "$(cat "$work/b/bootstrap-admin.key")" 2>/dev/null
  end=$(date +%s.%N)
  s=$(echo "$end - $start" | bc)
  # serve's CPU (user + system) while the drainer ran, per row.
  cpu=$(echo "scale=1; ($(cpu_ticks "$server") - $ticks) * 1000000 / $(getconf CLK_TCK) / $rows" | bc)
  echo "$name http${delay:+ (${delay} ms each way)}: $rows rows in $s s = $(echo "$rows / $s" | bc) rows/s, serve's CPU $cpu us/row"
  kill -TERM "$server"; wait "$server" || true
}

# The builds of a round, their order alternating.
builds() {
  if [ -z "$before" ]; then echo "this $bin"
  elif [ $(($1 % 2)) -eq 1 ]; then echo "before $before"; echo "this $bin"
  else echo "this $bin"; echo "before $before"; fi
}

for round in $(seq "$rounds"); do
  if [[ " $ways " == *" serve "* ]]; then
    echo "== round $round: $mode mode, inside serve (--capture-source), $rows rows"
    while read -r name b; do in_serve "$name" "$b" </dev/null; done < <(builds "$round")
  fi
  if [[ " $ways " == *" http "* ]]; then
    echo "== round $round: $mode mode, capture pg run --once over HTTP, $rows rows"
    while read -r name b; do over_http "$name" "$b" </dev/null; done < <(builds "$round")
  fi
done
drop_db
