#!/usr/bin/env bash
# What a running drainer costs the application: pgbench's built-in TPC-B-like
# workload (4 clients unless CLIENTS says, all four tables captured, in WAL
# mode unless MODE says) while `serve` drains them on the same machine,
# beside the same workload on an uncaptured database, in interleaved rounds.
# With TRAILMARK_BIN_BEFORE (an earlier build), that build's drainer runs in
# the same rounds, so two builds compare on one noisy machine. Ends by
# checking every change arrived once (transactions x 4 events in each ledger).
#
#   bench/capture/tpcb.sh [seconds] [rounds] [scale]    (needs pgbench)
#   TRAILMARK_BIN=path bench/capture/tpcb.sh            (that build, not this tree's)
#   NICE=19 bench/capture/tpcb.sh                       (this build's serve at that CPU
#                                                        priority; NICE_BEFORE for the other)
#   CLIENTS=8 bench/capture/tpcb.sh                     (pgbench's clients; 4 unless given)
#   MODE=trigger bench/capture/tpcb.sh                  (both builds' databases captured by
#                                                        triggers and the outbox, not the WAL)
#   IDENTITY=key bench/capture/tpcb.sh                  (this build's database captures the
#                                                        three tables with a primary key with
#                                                        replica identity key, not full;
#                                                        IDENTITY_BEFORE for the other)
#   SOURCE_OPTIONS="sslmode=disable" bench/capture/tpcb.sh
#                                                       (added to this build's drainer's
#                                                        connection string; SOURCE_OPTIONS_BEFORE
#                                                        for the other: one binary both ways
#                                                        compares the options alone)
#
# Each round also reports the changes not yet in the ledger halfway through
# the workload (how far the drainer lags while it shares the cores) and at
# its end, and the CPU time `serve` took while the workload ran per change
# the workload made (steadier than the rates on a noisy machine), and in WAL
# mode the same for the walsender decoding for it; at the end,
# each build's share of the uncaptured rate by round and on the mean, and
# (with two builds) the rounds each was ahead in.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
rounds="${2:-3}"
scale="${3:-10}"
pg="$(scripts/logical-cluster)"
. bench/lib.sh
now=$(measured_bin)
before="${TRAILMARK_BIN_BEFORE:-}"
builds="now"
[ -z "$before" ] || builds="before now"
bin_of() { if [ "$1" = before ]; then echo "$before"; else echo "$now"; fi; }
options_of() { if [ "$1" = before ]; then echo "${SOURCE_OPTIONS_BEFORE:-}"; else echo "${SOURCE_OPTIONS:-}"; fi; }
identity_of() { if [ "$1" = before ]; then echo "${IDENTITY_BEFORE:-full}"; else echo "${IDENTITY:-full}"; fi; }
nice_of() { if [ "$1" = before ]; then echo "${NICE_BEFORE:-0}"; else echo "${NICE:-0}"; fi; }
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  drop_databases "$pg" 'tm_tpcb_%'
  rm -rf "$work"
}
trap cleanup EXIT
mode="${MODE:-wal}"
tables=public.pgbench_accounts,public.pgbench_branches,public.pgbench_tellers,public.pgbench_history
for db in none $builds; do
  db="tm_tpcb_$db"
  psql_ postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  pgbench -i -q -s "$scale" "$pg dbname=$db" >/dev/null 2>&1
  identity=()
  case "$db:${IDENTITY:-full}:${IDENTITY_BEFORE:-full}" in
    tm_tpcb_now:key:* | tm_tpcb_before:*:key)
      for t in accounts branches tellers; do identity+=(--replica-identity "public.pgbench_$t=key"); done ;;
  esac
  [ "$db" = tm_tpcb_none ] || $now capture pg install --mode "$mode" --source "$pg dbname=$db" --tables "$tables" "${identity[@]}" >/dev/null
  psql_ "$db" -c "CHECKPOINT" -c "VACUUM ANALYZE" >/dev/null
done
clients="${CLIENTS:-4}"
tpcb() { pgbench -n -c "$clients" -j "$clients" -T "$secs" -b tpcb-like "$pg dbname=$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
serve() { # build, database: the drainer inside serve, its ledger kept across rounds
  local options
  options=$(options_of "$1")
  start_drainer "$(bin_of "$1")" "$work/ledger-$1" 7980 "$pg dbname=$2${options:+ $options}" "$(nice_of "$1")"
}
# Changes made so far not yet in the ledger (a drainer that falls behind
# costs the application less while it runs, and catches up later).
# The ledger is read first: changes the workload makes between the two
# reads count as behind, so this is never less than the lag.
behind() { # build, database
  TRAILMARK_KEY=$(cat "$work/ledger-$1/bootstrap-admin.key")
  local events
  events=$(tenant_size default 7980)
  echo $(($(psql_ "$2" -c "SELECT count(*) FROM pgbench_history") * 4 - events))
}
: > "$work/shares"
for round in $(seq "$rounds"); do
  none=$(tpcb tm_tpcb_none)
  echo "round=$round capture=none tps=$none"
  order=$builds
  # Every other round the other build goes first.
  [ $((round % 2)) = 1 ] || order=$(echo "$builds" | tr ' ' '\n' | tac | tr '\n' ' ')
  for build in $order; do
    serve "$build" "tm_tpcb_$build"
    made=$(psql_ "tm_tpcb_$build" -c "SELECT count(*) FROM pgbench_history")
    ticks=$(cpu_ticks "$server")
    sender=""
    if [ "$mode" = wal ]; then
      sender=$(walsender_pid "$pg" "tm_tpcb_$build")
      sender_ticks=$(cpu_ticks "$sender")
    fi
    tpcb "tm_tpcb_$build" > "$work/tps" &
    sleep $((secs / 2))
    mid=$(behind "$build" "tm_tpcb_$build")
    wait $!
    ticks=$(($(cpu_ticks "$server") - ticks))
    sender_ticks=$(if [ -n "$sender" ] && [ -e "/proc/$sender" ]; then echo $(($(cpu_ticks "$sender") - sender_ticks)); fi)
    made=$((($(psql_ "tm_tpcb_$build" -c "SELECT count(*) FROM pgbench_history") - made) * 4))
    sender_us=""
    if [ -n "$sender" ]; then # the same walsender all round, or no figure
      sender_us="? (reconnected)"
      [ -z "$sender_ticks" ] || sender_us=$((sender_ticks * 1000000 / $(getconf CLK_TCK) / made))
    fi
    tps=$(cat "$work/tps")
    # Durable appends the drainer made this round (each one a commit of
    # the ledger file): the fewer, the less it costs the application.
    TRAILMARK_KEY=$(cat "$work/ledger-$build/bootstrap-admin.key")
    appends=$(metric trailmark_commit_seconds_count 7980)
    share=$(echo "scale=4; 100 * $tps / $none" | bc)
    echo "$build $round $share" >> "$work/shares"
    echo "round=$round capture=$mode drainer=$build nice=$(nice_of "$build") identity=$(identity_of "$build") source_options="$(options_of "$build")" tps=$tps share_of_uncaptured=$(printf %.1f "$share")% events_behind_mid_run=$mid events_behind_at_end=$(behind "$build" "tm_tpcb_$build") appends=$appends serve_cpu_us_per_change=$((ticks * 1000000 / $(getconf CLK_TCK) / made)) walsender_cpu_us_per_change=$sender_us"
    kill -TERM "$server"; wait "$server" || true
    server=""
  done
done
# Each build's share of the uncaptured rate, round by round and on the mean
# (the target is on the mean), and the rounds each build was ahead in.
for build in $builds; do
  awk -v b="$build" '$1 == b { n++; sum += $3; all = all sprintf(" %.1f", $3) }
    END { printf "drainer=%s share_of_uncaptured_by_round=%s mean=%.1f%%\n", b, all, sum / n }' "$work/shares"
done
if [ -n "$before" ]; then
  awk '{ s[$2, $1] = $3; r[$2] = 1 }
    END { for (k in r) { if (s[k, "now"] > s[k, "before"]) a++; else if (s[k, "now"] < s[k, "before"]) b++; else e++ }
          printf "rounds: now ahead in %d, before ahead in %d, even in %d\n", a, b, e }' "$work/shares"
fi
for build in $builds; do
  db="tm_tpcb_$build"
  serve "$build" "$db"
  TRAILMARK_KEY=$(cat "$work/ledger-$build/bootstrap-admin.key")
  transactions=$(psql_ "$db" -c "SELECT count(*) FROM pgbench_history")
  events=0
  for _ in $(seq 600); do # at most 5 minutes for what the last round left
    events=$(tenant_size default 7980)
    [ "$events" -ge $((transactions * 4)) ] && break
    sleep 0.5
  done
  echo "drainer=$build transactions=$transactions events=$events expected=$((transactions * 4))"
  kill -TERM "$server"; wait "$server" || true
  server=""
done
