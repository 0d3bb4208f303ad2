#!/usr/bin/env bash
# Two builds side by side on /v1/stats of a PostgreSQL ledger: loads N events
# (default 2,000,000; bench/query/load.lua's varied actors, records and actions,
# RECORDS records) into a fresh database with OLD, then each round starts each
# build in turn on it (which goes first alternating) and times three reads of a
# day's stats, then three of a day's stats filtered by a common action, after
# one unmeasured read of each. Checks both builds answer the same, and prints
# each read's seconds and the medians' ratios. Each build serves its own copy
# of the loaded database (a newer build may migrate its schema, which the older
# then refuses); a build that keeps hourly counts (`trailmark_ledger.counted`)
# is first left to count what was loaded, as a server does behind its appends.
#
#   bench/ab/pg-stats.sh OLD_BINARY NEW_BINARY [events] [rounds]
#   (needs wrk, psql, PostgreSQL on 127.0.0.1:5432; drops and creates
#   tm_bench_stats and tm_bench_stats_new)
set -euo pipefail
cd "$(dirname "$0")/../.."
old="$1"; new="$2"; events="${3:-2000000}"; rounds="${4:-3}"
export RECORDS="${RECORDS:-100000}"
pg="host=127.0.0.1 port=5432 user=postgres"
db=tm_bench_stats
. bench/lib.sh
port_free 7979
work=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"; drop_databases "$pg" "${db}%"' EXIT
drop_databases "$pg" "${db}%"
psql "$pg dbname=postgres" -qtAX -c "CREATE DATABASE $db"
serve_pg() { # BIN [DB]: serve on the database ($db), $server its pid
  "$1" serve --data-dir "$work" --listen 127.0.0.1:7979 --database "$pg dbname=${2:-$db}" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
  TRAILMARK_KEY=$(cat "$work/bootstrap-admin.key")
  export TRAILMARK_KEY
}
serve_pg "$old"
while [ "$(tenant_size bench)" -lt "$events" ]; do
  wrk -t2 -c4 -d30s -s bench/query/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
  echo "loaded $(tenant_size bench) events" >&2
done
kill -TERM "$server"; wait "$server" || true
psql "$pg dbname=$db" -qtAX -c "VACUUM ANALYZE trailmark_ledger.entries" >/dev/null
psql "$pg dbname=postgres" -qtAX -c "CREATE DATABASE ${db}_new TEMPLATE $db"
uncounted() { # DB: entries its hourly counts lack (0 without them)
  psql "$pg dbname=$1" -qtAX -c "SELECT CASE WHEN to_regclass('trailmark_ledger.counted') IS NULL THEN 0 ELSE
    (SELECT coalesce(sum(t.size - coalesce(k.seq, 0)), 0) FROM trailmark_ledger.tenants t
     LEFT JOIN trailmark_ledger.counted k ON k.tenant = t.name) END"
}
serve_pg "$new" "${db}_new"
# A read appends its record, which starts the build's counting.
curl -sf -o /dev/null -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:7979/v1/stats?tenant=bench&days=1"
start=$(date +%s.%N)
for _ in $(seq 600); do [ "$(uncounted "${db}_new")" -gt 0 ] || break; sleep 1; done
[ "$(uncounted "${db}_new")" -eq 0 ] || { echo "new: still counting after 600 s" >&2; exit 1; }
echo "new: counted in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
kill -TERM "$server"; wait "$server" || true
psql "$pg dbname=${db}_new" -qtAX -c "VACUUM ANALYZE" >/dev/null
one() { # BIN LABEL: "LABEL QUERY seconds" per read
  if [ "$2" = new ]; then serve_pg "$1" "${db}_new"; else serve_pg "$1"; fi
  local q
  for q in "days=1" "days=1&action=delete"; do
    curl -sf -o /dev/null -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:7979/v1/stats?tenant=bench&$q"
    for _ in 1 2 3; do
      echo "$2 $q $(curl -sf -o "$work/$2-$q.json" -w '%{time_total}' \
        -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:7979/v1/stats?tenant=bench&$q")"
    done
  done
  kill -TERM "$server"; wait "$server" || true
}
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then one "$old" old; one "$new" new
  else one "$new" new; one "$old" old; fi
done | tee "$work/times" >&2
for q in "days=1" "days=1&action=delete"; do
  cmp -s "$work/old-$q.json" "$work/new-$q.json" || { echo "the builds answer $q differently" >&2; exit 1; }
done
python3 - "$work/times" <<'EOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    build, q, secs = line.split()
    t.setdefault((q, build), []).append(float(secs))
for q in ("days=1", "days=1&action=delete"):
    o, n = statistics.median(t[(q, "old")]), statistics.median(t[(q, "new")])
    print(f"stats {q}: old median {o:.2f} s, new median {n:.2f} s, new/old {n / o:.2f}")
EOF
