#!/usr/bin/env bash
# What WAL-mode capture's event trigger (trailmark_republish, which keeps
# column lists and partitions' replica identity current) costs the
# application's own DDL: pgbench runs `CREATE TEMP TABLE ... ON COMMIT DROP`
# (a statement an application may run per request) on a database with 20
# covered tables (one partitioned), in rounds with the event trigger enabled
# and disabled (which goes first alternating), the catalogs vacuumed before
# each. The slot is dropped after install: it would hold back the catalogs'
# vacuum, and every CREATE leaves dead catalog rows, so each run would be
# slower than the last whatever the trigger does.
#
#   bench/capture/ddl.sh [seconds] [rounds]     (needs pgbench)
#   TRAILMARK_BIN=path bench/capture/ddl.sh     (that build, not this tree's)
#   MODE=trigger bench/capture/ddl.sh           (trigger mode: since capture
#                                                version 13 it has the event
#                                                trigger too; default wal)
#   ALTER=1 bench/capture/ddl.sh                (capture version 16: the
#                                                statement also runs ALTER
#                                                TABLE on the temporary table,
#                                                ten of the covered tables
#                                                exclude a column, and what is
#                                                switched is the ALTER TABLE's
#                                                start event trigger,
#                                                trailmark_release)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
secs="${1:-8}"; rounds="${2:-4}"
bin=$(measured_bin)
pg=$(scripts/logical-cluster)
db=tm_bench_ddl
psql_ postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql_ "$db" <<'SQL'
DO $$ BEGIN FOR i IN 1..19 LOOP
    EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, v text)', i);
END LOOP; END $$;
CREATE TABLE public.orders (id int, placed date, PRIMARY KEY (id, placed)) PARTITION BY RANGE (placed);
CREATE TABLE public.orders_a PARTITION OF public.orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SQL
tables=$(for i in $(seq 19); do printf "public.t%s," "$i"; done)public.orders
trigger=trailmark_republish; statement="CREATE TEMP TABLE x (a int) ON COMMIT DROP;"; exclude=()
if [ -n "${ALTER:-}" ]; then
  trigger=trailmark_release
  statement="BEGIN; CREATE TEMP TABLE x (a int) ON COMMIT DROP; ALTER TABLE x ADD COLUMN b int; COMMIT;"
  # Published with column lists (what trailmark_release looks for), key identity as WAL mode needs.
  exclude=(--exclude "$(for i in $(seq 10); do printf "public.t%s.v," "$i"; done | sed 's/,$//')"
           --replica-identity "$(for i in $(seq 10); do printf "public.t%s=key," "$i"; done | sed 's/,$//')")
fi
"$bin" capture pg install --source "$pg dbname=$db" --mode "${MODE:-wal}" --tables "$tables" "${exclude[@]}" >/dev/null
psql_ "$db" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
script=$(mktemp)
echo "$statement" > "$script"
trap 'rm -f "$script"; psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
run() { # ENABLE|DISABLE -> tps
  psql_ "$db" -c "ALTER EVENT TRIGGER $trigger $1" \
    -c "VACUUM pg_class, pg_attribute, pg_type, pg_depend"
  # Commits not waiting for the disk: the event trigger costs CPU, and an
  # fsync a statement made the rounds vary 3x on this machine's disk.
  PGOPTIONS='-c synchronous_commit=off' pgbench -n -T "$secs" -f "$script" "$pg dbname=$db" 2>/dev/null | grep -oP 'tps = \K[0-9.]+'
}
for round in $(seq "$rounds"); do
  if [ $((round % 2)) = 1 ]; then on=$(run ENABLE); off=$(run DISABLE); else off=$(run DISABLE); on=$(run ENABLE); fi
  echo "round=$round with_event_trigger_tps=$on without_tps=$off ratio=$(echo "scale=3; $on / $off" | bc)"
done
