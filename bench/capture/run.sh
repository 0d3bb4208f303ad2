#!/usr/bin/env bash
# What capture costs the application's PostgreSQL, side by side in one run, on
# one cluster with wal_level = logical (scripts/logical-cluster: WAL mode needs
# it, and every variant pays the same WAL level): no auditing, a generic
# row-level jsonb audit trigger, pgaudit (log = write), Trailmark's
# statement-level trigger, and Trailmark's WAL mode (drainer stopped: what the
# application's transactions pay). Rounds interleave the variants, so a noisy
# disk moves them alike. Each variant has a database of its own, and fresh
# databases differ by several per cent with no capture at all; so WAL mode's
# database also holds an uncaptured copy of the table (wal_uncaptured: the
# same update on it, context by set_config), to tell WAL mode against. Then a
# 100k-row UPDATE, pgbench's own TPC-B-like workload with its four tables
# captured (drainer stopped and running), and the drain into a durable ledger
# for both modes.
#
#   bench/capture/run.sh [seconds] [scale] [rounds]
#
# PARTS (default "single bulk drain tpcb") picks the parts: the single-row
# UPDATE, the 100k-row UPDATE, the drain, TPC-B. VARIANTS (default "none
# row_trigger pgaudit trigger wal") the single-row UPDATE's variants. So
#
#   PARTS=single VARIANTS="none wal" bench/capture/run.sh 15 10 8
#
# measures WAL mode's cost alone, in eight rounds. TRAILMARK_BIN measures that
# build instead of this tree's; the variant trigger_before is trigger mode as
# the build TRAILMARK_BIN_BEFORE installs it (an earlier commit's), beside
# this one's (install sends SQL only: a debug build measures the same).
#
#   PARTS=single VARIANTS="none trigger trigger_before" TRAILMARK_BIN_BEFORE=... bench/capture/run.sh
#
# Needs pgbench. For the pgaudit column it installs postgresql-15-pgaudit and
# adds it to the logical cluster's shared_preload_libraries, restarting that
# cluster once (it is this project's own; the machine's main cluster is never
# touched).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
scale="${2:-10}"
rounds="${3:-3}"
parts=" ${PARTS:-single bulk drain tpcb} "
part() { [[ "$parts" == *" $1 "* ]]; }
here=bench/capture
pg="$(scripts/logical-cluster)"
. bench/lib.sh

variants="${VARIANTS:-none row_trigger pgaudit trigger wal}"
if part bulk; then
  # The 100k-row UPDATE compares these three.
  for v in none trigger wal; do
    [[ " $variants " == *" $v "* ]] || variants="$variants $v"
  done
fi
if [[ " $variants " == *" pgaudit "* ]] && ! psql_ postgres -c "SHOW shared_preload_libraries" | grep -q pgaudit; then
  if ! ls /usr/lib/postgresql/15/lib/pgaudit.so >/dev/null 2>&1; then
    apt-get install -y -qq postgresql-15-pgaudit >/dev/null
  fi
  psql_ postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pgaudit'"
  pg_ctlcluster --skip-systemctl-redirect 15 trailmark_logical restart
  for _ in $(seq 50); do psql_ postgres -c "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi

bin=$(measured_bin)
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  drop_databases "$pg" 'tm_bench_%'
  rm -rf "$work"
}
trap cleanup EXIT

prepare() { # database, variant, tables
  local db=$1 variant=$2 tables=$3
  case $variant in
    row_trigger) psql_ "$db" -f $here/row_trigger.sql ;;
    pgaudit) psql_ "$db" -c "CREATE EXTENSION IF NOT EXISTS pgaudit" -c "ALTER DATABASE $db SET pgaudit.log = 'write'" ;;
    trigger | wal) $bin capture pg install --mode "$variant" --source "$pg dbname=$db" --tables "$tables" >/dev/null ;;
    trigger_before) "${TRAILMARK_BIN_BEFORE:?variant trigger_before installs TRAILMARK_BIN_BEFORE}" capture pg install --mode trigger \
                      --source "$pg dbname=$db" --tables "$tables" >/dev/null ;;
  esac
}
for variant in $variants; do
  db="tm_bench_$variant"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  pgbench -i -q -s "$scale" "$pg dbname=$db" >/dev/null 2>&1
  prepare "$db" "$variant" public.pgbench_accounts
  if [ "$variant" = wal ]; then
    psql_ "$db" -c "CREATE TABLE accounts_uncaptured (LIKE pgbench_accounts INCLUDING ALL)" \
      -c "INSERT INTO accounts_uncaptured SELECT * FROM pgbench_accounts" \
      -c "VACUUM ANALYZE accounts_uncaptured"
  fi
  psql_ "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE pgbench_accounts"
done

# WAL mode sets context with trailmark.set_context (the message the decoder
# reads); the others with set_config, as their triggers read it.
script() {
  case $1 in
    wal) echo $here/update-wal.pgbench ;;
    wal_uncaptured) echo $here/update-uncaptured.pgbench ;;
    *) echo $here/update.pgbench ;;
  esac
}
part single && echo "== single-row UPDATE with context, synchronous_commit on, ${secs}s each, $rounds rounds interleaved"
part single && for clients in 1 2; do
  for round in $(seq "$rounds"); do
    for variant in $variants $([[ " $variants " == *" wal "* ]] && echo wal_uncaptured); do
      tps=$(pgbench -n -c "$clients" -j "$clients" -T "$secs" -f "$(script $variant)" -D scale="$scale" "$pg dbname=tm_bench_${variant%_uncaptured}" 2>&1 \
            | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
      echo "clients=$clients round=$round variant=$variant tps=$tps"
    done
  done
done

part bulk && echo "== one UPDATE of 100,000 rows, $rounds rounds"
part bulk && for round in $(seq "$rounds"); do
  for variant in none trigger wal; do
    psql_ "tm_bench_$variant" -c "CHECKPOINT"
    start=$(date +%s.%N)
    psql_ "tm_bench_$variant" -c "BEGIN; SELECT set_config('trailmark.actor_id', 'admin', true); UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100000; COMMIT;" >/dev/null
    end=$(date +%s.%N)
    echo "round=$round variant=$variant seconds=$(echo "$end - $start" | bc)"
  done
done

if ! part drain && ! part tpcb; then exit 0; fi
if part drain; then
echo "== drain into a durable ledger (capture pg run --once --batch 5000, over HTTP)"
$bin serve --data-dir "$work/ledger" --listen 127.0.0.1:7979 >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
for variant in trigger wal; do
  db="tm_bench_drain_$variant"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql_ "$db" -c "CREATE TABLE item (id int PRIMARY KEY, qty int, note text)"
  prepare "$db" "$variant" public.item
  psql_ "$db" -c "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"importer\"}');
                  INSERT INTO item SELECT g, g, 'row ' || g FROM generate_series(1, 200000) g; COMMIT;" >/dev/null
  psql_ "$db" -c "CHECKPOINT"
  start=$(date +%s.%N)
  $bin capture pg run --once --batch 5000 --source "$pg dbname=$db" --server http://127.0.0.1:7979 \
    --key "$(cat "$work/ledger/bootstrap-admin.key")" >/dev/null 2>&1
  end=$(date +%s.%N)
  s=$(echo "$end - $start" | bc)
  echo "variant=$variant drained 200000 rows in $s s = $(echo "200000 / $s" | bc) rows/s"
done
kill -TERM "$server"; wait "$server" || true
server=""
fi
part tpcb || exit 0

echo "== pgbench TPC-B-like (built in), all four tables captured, 4 clients, ${secs}s each, $rounds rounds"
tables=public.pgbench_accounts,public.pgbench_branches,public.pgbench_tellers,public.pgbench_history
for variant in none trigger wal; do
  db="tm_bench_tpcb_$variant"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  pgbench -i -q -s "$scale" "$pg dbname=$db" >/dev/null 2>&1
  prepare "$db" "$variant" "$tables"
  psql_ "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE"
done
tpcb() { pgbench -n -c 4 -j 4 -T "$secs" -b tpcb-like "$pg dbname=$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
for round in $(seq "$rounds"); do
  for variant in none trigger wal; do
    echo "round=$round variant=$variant drainer=stopped tps=$(tpcb tm_bench_tpcb_$variant)"
  done
  for variant in trigger wal; do
    # The drainer inside serve, on the same machine, while pgbench runs (its
    # ledger kept across rounds).
    start_drainer "$bin" "$work/serve-$variant" 7980 "$pg dbname=tm_bench_tpcb_$variant"
    # The round begins once the drainer is at work as it would be for days
    # between restarts (start_drainer): also the changes of the stopped round
    # drained and indexed, which would otherwise take the cores pgbench is
    # measured on.
    made=$(($(psql_ "tm_bench_tpcb_$variant" -c "SELECT count(*) FROM pgbench_history") * 4))
    deadline=$(($(date +%s) + 300))
    until [ "$(tenant_size default 7980)" -ge "$made" ]; do
      if [ "$(date +%s)" -gt "$deadline" ]; then echo "$variant: the stopped round's changes were not drained in 5 min" >&2; exit 1; fi
      sleep 0.5
    done
    wait_indexed 7980
    echo "round=$round variant=$variant drainer=running tps=$(tpcb tm_bench_tpcb_$variant)"
    kill -TERM "$server"; wait "$server" || true
    server=""
  done
done
# Every change once: what is left drained, then the ledger holds transactions
# x 4 events (pgbench_history counts the transactions).
for variant in trigger wal; do
  db="tm_bench_tpcb_$variant"
  $bin serve --data-dir "$work/serve-$variant" --listen 127.0.0.1:7980 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7980/healthz >/dev/null && break; sleep 0.1; done
  key=$(cat "$work/serve-$variant/bootstrap-admin.key")
  $bin capture pg run --once --batch 5000 --source "$pg dbname=$db" --server http://127.0.0.1:7980 --key "$key" >/dev/null 2>&1
  events=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:7980/v1/stats?tenant=default" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
  transactions=$(psql_ "$db" -c "SELECT count(*) FROM pgbench_history")
  echo "variant=$variant transactions=$transactions events=$events expected=$((transactions * 4))"
  kill -TERM "$server"; wait "$server" || true
  server=""
done
