#!/usr/bin/env bash
# What recording a rewrite (capture version 16: the event trigger
# trailmark_rewritten on table_rewrite) costs the application's own DDL:
# `ALTER TABLE ... ALTER COLUMN ... TYPE` of a covered table of ROWS rows
# (100,000), its column turned bigint and back, in rounds with the event
# trigger enabled and disabled (which goes first alternating); and the same
# of a temporary table, which the event trigger only looks at. Each line: the
# milliseconds of each ALTER (psql's \timing), median of REPS (5).
#
#   bench/capture/rewrite.sh [rounds]           (default 4)
#   ROWS=1000000 bench/capture/rewrite.sh
#   MODE=trigger bench/capture/rewrite.sh        (default wal)
#   TRAILMARK_BIN=path bench/capture/rewrite.sh  (that build, not this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
rounds="${1:-4}"; rows="${ROWS:-100000}"; reps="${REPS:-5}"
bin=$(measured_bin)
pg=$(scripts/logical-cluster)
db=tm_bench_rewrite
psql_ postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql_ "$db" -c "CREATE TABLE public.item (id int PRIMARY KEY, v int, name text)" \
  -c "INSERT INTO public.item SELECT g, g, 'item ' || g FROM generate_series(1, $rows) g"
"$bin" capture pg install --source "$pg dbname=$db" --mode "${MODE:-wal}" --tables public.item >/dev/null
# No drainer: the slot would only hold WAL back.
psql_ "$db" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
alter() { # ENABLE|DISABLE TABLE -> median ms of an ALTER ... TYPE
  local setup="" ; [ "$2" = tmp ] && setup="CREATE TEMP TABLE tmp (id int PRIMARY KEY, v int, name text);
    INSERT INTO tmp SELECT g, g, 'item ' || g FROM generate_series(1, $rows) g;"
  psql "$pg dbname=$db" -qtAX -v ON_ERROR_STOP=1 <<SQL | grep -oP 'Time: \K[0-9.]+' | median
ALTER EVENT TRIGGER trailmark_rewritten $1;
$setup
\timing on
$(for _ in $(seq "$reps"); do echo "ALTER TABLE $2 ALTER COLUMN v TYPE bigint; ALTER TABLE $2 ALTER COLUMN v TYPE int;"; done)
SQL
}
for round in $(seq "$rounds"); do
  for table in public.item tmp; do
    if [ $((round % 2)) = 1 ]; then on=$(alter ENABLE $table); off=$(alter DISABLE $table)
    else off=$(alter DISABLE $table); on=$(alter ENABLE $table); fi
    echo "round=$round table=$table rows=$rows with_event_trigger_ms=$on without_ms=$off ratio=$(echo "scale=3; $on / $off" | bc)"
  done
done
psql_ "$db" -tc "SELECT 'outbox rows of rewrites (trigger mode; WAL mode writes messages): ' || count(*) FROM trailmark.outbox WHERE op = 'rewrite'"
