#!/usr/bin/env bash
# What a write naming a partition costs in trigger mode (capture version 14
# puts the table's capture triggers on each partition; their function looks
# the table's name up once a statement when the statement names a
# partition), side by side in one run with the same write naming the table.
# One database on the logical cluster (scripts/logical-cluster), a table
# partitioned by range of its key into 10 partitions of 100,000 rows, and an
# uncaptured copy of it; pgbench single-row UPDATEs with context, the key
# drawn from the third partition's range, rounds interleaved:
#
#   named_table      UPDATE acct        (captured, the table's triggers)
#   named_partition  UPDATE acct_p2     (captured, the partition's triggers)
#   uncaptured       UPDATE plain_p2    (no capture)
#
#   bench/capture/partition.sh [seconds] [rounds]
#
# TRAILMARK_BIN measures that build instead of this tree's (install sends
# SQL only: a debug build installs the same functions).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
rounds="${2:-5}"
pg="$(scripts/logical-cluster)"
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
db=tm_bench_partition
cleanup() {
  drop_databases "$pg" 'tm_bench_%'
  rm -rf "$work"
}
trap cleanup EXIT

psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
for t in acct plain; do
  psql_ "$db" -c "CREATE TABLE $t (id int PRIMARY KEY, balance int NOT NULL, note text) PARTITION BY RANGE (id)"
  for p in $(seq 0 9); do
    psql_ "$db" -c "CREATE TABLE ${t}_p$p PARTITION OF $t FOR VALUES FROM ($((p * 100000 + 1))) TO ($(((p + 1) * 100000 + 1)))"
  done
  psql_ "$db" -c "INSERT INTO $t SELECT g, 0, 'row ' || g FROM generate_series(1, 1000000) g"
done
$bin capture pg install --mode trigger --source "$pg dbname=$db" --tables public.acct >/dev/null
psql_ "$db" -c "VACUUM ANALYZE" -c "CHECKPOINT"

script() { # table
  cat > "$work/$1.pgbench" <<EOF
\set id random(200001, 300000)
\set delta random(-5000, 5000)
BEGIN;
SELECT set_config('trailmark.actor_id', 'user-' || :id, true), set_config('trailmark.request_id', 'bench', true);
UPDATE $1 SET balance = balance + :delta WHERE id = :id;
COMMIT;
EOF
  echo "$work/$1.pgbench"
}
echo "== single-row UPDATE with context, key in the third partition, ${secs}s each, $rounds rounds interleaved, 1 client"
for round in $(seq "$rounds"); do
  for variant in named_table:acct named_partition:acct_p2 uncaptured:plain_p2; do
    tps=$(pgbench -n -c 1 -j 1 -T "$secs" -f "$(script "${variant#*:}")" "$pg dbname=$db" 2>&1 \
          | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "round=$round variant=${variant%%:*} tps=$tps"
  done
done
# Every update captured under the table's name, none under a partition's.
echo "outbox rows by table: $(psql_ "$db" -c "SELECT string_agg(table_name || '=' || n, ' ') FROM (SELECT table_name, count(*) n FROM trailmark.outbox GROUP BY 1) x")"
