#!/usr/bin/env bash
# What a WAL-mode drainer costs transactions it does not capture: pgbench's
# TPC-B-like workload on tables outside the publication (in the captured
# database, beside the one captured table) and on another database of the
# same cluster, each with the drainer stopped and with it running in `serve`
# on the same machine, in interleaved rounds. Logical decoding reads the
# whole cluster's WAL, and PostgreSQL answers transactions it skips with
# keepalive messages the drainer reads; this measures what that costs.
#
#   bench/capture/skipped.sh [seconds] [rounds] [scale]    (10 4 10; needs pgbench)
#   TRAILMARK_BIN=path bench/capture/skipped.sh            (that build, not this tree's)
#   SOURCE_OPTIONS="sslmode=disable" bench/capture/skipped.sh
#                                                          (added to the drainer's
#                                                           connection string)
#
# Per round and workload: the rate with the drainer stopped and running, its
# share, and the CPU `serve` and the walsender took per transaction while it
# ran; at the end, the mean shares. Nothing is captured, so nothing reaches
# the ledger (checked).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
rounds="${2:-4}"
scale="${3:-10}"
pg="$(scripts/logical-cluster)"
. bench/lib.sh
bin=$(measured_bin)
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  drop_databases "$pg" 'tm_skip_%'
  rm -rf "$work"
}
trap cleanup EXIT
for db in tm_skip_app tm_skip_other; do
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  pgbench -i -q -s "$scale" "$pg dbname=$db" >/dev/null 2>&1
done
psql_ tm_skip_app -c "CREATE TABLE item (id int PRIMARY KEY, note text)"
$bin capture pg install --mode wal --source "$pg dbname=tm_skip_app" --tables public.item >/dev/null
for db in tm_skip_app tm_skip_other; do psql_ "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE" >/dev/null; done
tpcb() { pgbench -n -c 4 -j 4 -T "$secs" -b tpcb-like "$pg dbname=$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
transactions() { psql_ "$1" -c "SELECT count(*) FROM pgbench_history"; }
start() { # the drainer inside serve, connected
  start_drainer "$bin" "$work/ledger" 7980 "$pg dbname=tm_skip_app${SOURCE_OPTIONS:+ $SOURCE_OPTIONS}"
  sender=$(walsender_pid "$pg" tm_skip_app)
}
stop() { kill -TERM "$server"; wait "$server" || true; server=""; }
: > "$work/rates"
for round in $(seq "$rounds"); do
  phases="stopped running"
  [ $((round % 2)) = 1 ] || phases="running stopped"
  for phase in $phases; do
    [ "$phase" = stopped ] || start
    for db in app other; do
      made=$(transactions "tm_skip_$db")
      if [ "$phase" = running ]; then
        ticks=$(cpu_ticks "$server")
        sender_ticks=$(cpu_ticks "$sender")
      fi
      tps=$(tpcb "tm_skip_$db")
      cpu=""
      if [ "$phase" = running ]; then
        ticks=$(($(cpu_ticks "$server") - ticks))
        sender_ticks=$(($(cpu_ticks "$sender") - sender_ticks))
        made=$(($(transactions "tm_skip_$db") - made))
        cpu=" serve_cpu_us_per_transaction=$((ticks * 1000000 / $(getconf CLK_TCK) / made)) walsender_cpu_us_per_transaction=$((sender_ticks * 1000000 / $(getconf CLK_TCK) / made))"
      fi
      echo "$round $db $phase $tps" >> "$work/rates"
      echo "round=$round workload=$db drainer=$phase tps=$tps$cpu"
    done
    [ "$phase" = stopped ] || stop
  done
done
# Each workload's share of its rate with the drainer stopped, round by round
# and on the mean.
awk '{ r[$1, $2, $3] = $4; rounds[$1] = 1 }
  END {
    split("app other", ws, " ")
    for (i = 1; i <= 2; i++) {
      w = ws[i]; n = 0; sum = 0; all = ""
      for (k in rounds) { s = 100 * r[k, w, "running"] / r[k, w, "stopped"]; sum += s; n++; all = all sprintf(" %.1f", s) }
      printf "workload=%s share_with_drainer_running_by_round=%s mean=%.1f%%\n", w, all, sum / n
    }
  }' "$work/rates"
start
echo "events in the ledger: $(tenant_size default 7980) (expected 0: nothing captured)"
stop
