#!/usr/bin/env bash
# What capture costs the application's PostgreSQL, side by side in one run:
# no auditing, a generic row-level jsonb audit trigger, pgaudit (log = write),
# and Trailmark's statement-level trigger. Then a 100k-row UPDATE with and
# without capture, and the drain from outbox to durable ledger.
#
#   bench/capture/run.sh [seconds] [scale]
#
# Needs pgbench and PostgreSQL 15 on 127.0.0.1:5432 (superuser postgres). For the
# pgaudit column it installs postgresql-15-pgaudit and adds it to
# shared_preload_libraries, restarting the server once (say so before running it
# on a machine you share).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
scale="${2:-10}"
here=bench/capture
pg="host=127.0.0.1 port=5432 user=postgres"
psql_() { psql "$pg dbname=$1" -qtAX -v ON_ERROR_STOP=1 "${@:2}"; }

if ! psql_ postgres -c "SHOW shared_preload_libraries" | grep -q pgaudit; then
  if ! ls /usr/lib/postgresql/15/lib/pgaudit.so >/dev/null 2>&1; then
    apt-get install -y -qq postgresql-15-pgaudit >/dev/null
  fi
  psql_ postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pgaudit'"
  pg_ctlcluster --skip-systemctl-redirect 15 main restart
  for _ in $(seq 50); do psql_ postgres -c "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
fi

cargo build --release -p trailmark >/dev/null 2>&1
bin=./target/release/trailmark

for variant in none row_trigger pgaudit trailmark; do
  db="tm_bench_$variant"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  pgbench -i -q -s "$scale" "$pg dbname=$db" >/dev/null 2>&1
  case $variant in
    row_trigger) psql_ "$db" -f $here/row_trigger.sql ;;
    pgaudit) psql_ "$db" -c "CREATE EXTENSION IF NOT EXISTS pgaudit" -c "ALTER DATABASE $db SET pgaudit.log = 'write'" ;;
    trailmark) $bin capture pg install --source "$pg dbname=$db" --tables public.pgbench_accounts >/dev/null ;;
  esac
  psql_ "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE pgbench_accounts"
done

echo "== single-row UPDATE with context, synchronous_commit on, ${secs}s each"
for clients in 1 2; do
  for variant in none row_trigger pgaudit trailmark; do
    tps=$(pgbench -n -c "$clients" -j "$clients" -T "$secs" -f $here/update.pgbench -D scale="$scale" "$pg dbname=tm_bench_$variant" 2>&1 \
          | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "clients=$clients variant=$variant tps=$tps"
  done
done

echo "== one UPDATE of 100,000 rows"
for variant in none trailmark; do
  psql_ "tm_bench_$variant" -c "CHECKPOINT"
  start=$(date +%s.%N)
  psql_ "tm_bench_$variant" -c "BEGIN; SELECT set_config('trailmark.actor_id', 'admin', true); UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100000; COMMIT;" >/dev/null
  end=$(date +%s.%N)
  echo "variant=$variant seconds=$(echo "$end - $start" | bc)"
done

echo "== drain: outbox -> durable ledger"
data=$(mktemp -d)
$bin serve --data-dir "$data" --listen 127.0.0.1:7979 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
rows=$(psql_ tm_bench_trailmark -c "SELECT count(*) FROM trailmark.outbox")
start=$(date +%s.%N)
$bin capture pg run --once --batch 5000 --source "$pg dbname=tm_bench_trailmark" --server http://127.0.0.1:7979 --key "$(cat "$data/bootstrap-admin.key")" 2>&1 | tail -1
end=$(date +%s.%N)
echo "drained $rows rows in $(echo "$end - $start" | bc) s"
for variant in none row_trigger pgaudit trailmark; do
  psql_ postgres -c "DROP DATABASE IF EXISTS tm_bench_$variant WITH (FORCE)"
done
