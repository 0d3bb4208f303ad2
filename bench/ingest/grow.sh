#!/usr/bin/env bash
# Batched ingest as the store grows, beside the naive PostgreSQL table in the
# same run: varied events (bench/query/load.lua: actors among 100,000, records
# among 1,000,000, actions, IPs), 1000 per request, 4 connections, into a
# fresh embedded store in 30 s rounds until it holds N events (default
# 2,000,000); then the same rows (bench/ingest/naive-varied.pgbench, 1000 per
# transaction, 4 clients) into a fresh naive table (bench/ingest/naive.sql,
# in a database of its own, tm_bench_naive, dropped after) in 30 s rounds
# until it holds N rows.
#
# Each Trailmark round prints the rate, the bytes the server wrote to disk per
# event so far (`write_bytes` of /proc/PID/io: both files, their WALs and
# checkpoints) and the indexer's lag; each naive round the rate and the WAL
# PostgreSQL wrote per row so far (its heap and index writes at checkpoints
# come on top). At the end: the data dir's bytes per event (the server
# stopped, its WALs folded in) against the naive table's (table, TOAST and
# indexes, pg_total_relation_size, after a CHECKPOINT), each side's rate in
# the round that crossed each million, and 20 s of single events into the
# grown store (64 connections; Trailmark's once its indexer caught up; the
# naive table's with -D rows=1).
#
#   bench/ingest/grow.sh [events]     (needs wrk, pgbench, a PostgreSQL on 127.0.0.1:5432)
#   TRAILMARK_BIN=path bench/ingest/grow.sh   (that build, not this tree's)
#   TRAILMARK_BIN_BEFORE=path ...    an earlier build loads its own fresh store first
#   NAIVE=0 ...                      Trailmark alone (comparing two builds)
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-2000000}"
pg="postgresql://postgres@127.0.0.1:5432"
# One round's length, in seconds, for both sides.
round=30
. bench/lib.sh
bin=$(measured_bin)
# millions LABEL: reads "events rate" lines and prints the rate of the round
# that crossed each million.
millions() {
  awk -v label="$1" '{ while ($1 >= (m + 1) * 1000000) { m++; printf "%s at %dM: %d/s\n", label, m, $2 } }'
}
grow() {
  local label=$1 exe=$2 data prev=0 n rate wrote lag size rates
  data=$(mktemp -d)
  rates=$(mktemp)
  start_serve "$exe" "$data"
  while [ "$(tenant_size bench)" -lt "$events" ]; do
    wrk -t2 -c4 "-d${round}s" -s bench/query/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
    n=$(tenant_size bench)
    rate=$(( (n - prev) / round ))
    wrote=$(awk '/^write_bytes/ { print $2 }' "/proc/$server/io")
    lag=$(index_lag)
    echo "$label: $n events, $rate events/s this round, $(( wrote / n )) bytes written per event so far, index lag $lag"
    echo "$n $rate" >>"$rates"
    prev=$n
  done
  # Single events into the grown store, once the indexer has caught up.
  wait_indexed
  EVENTS=1 wrk -t2 -c64 -d20s --latency -s bench/query/load.lua http://127.0.0.1:7979/v1/events |
    awk -v label="$label" -v n="$n" '/Requests\/sec/ {r = $2} / 99%/ {p = $2}
      END {printf "%s: single events into %d: %.0f/s, p99 %s (64 connections, 20 s)\n", label, n, r, p}'
  n=$(tenant_size bench)
  kill -TERM "$server"; wait "$server" || true
  size=$(du -sb "$data" | cut -f1)
  echo "$label: data dir $size bytes, $(( size / n )) per event ($n events)"
  millions "$label" <"$rates"
  rm -rf "$data" "$rates"
}
naive() {
  local db="$pg/tm_bench_naive" prev=0 n=0 rate start wal size rates
  # The rows so far, without counting a table of millions: the ids its
  # sequence handed out (pgbench's transactions all commit).
  rows() { psql -qtAX "$db" -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM naive_audit_id_seq"; }
  psql -qtAX "$pg/postgres" -c "DROP DATABASE IF EXISTS tm_bench_naive WITH (FORCE)" -c "CREATE DATABASE tm_bench_naive"
  psql -q "$db" -f bench/ingest/naive.sql
  start=$(psql -qtAX "$db" -c "SELECT pg_current_wal_lsn()")
  rates=$(mktemp)
  while [ "$n" -lt "$events" ]; do
    pgbench -n -c 4 -j 2 -T "$round" -D rows=1000 -f bench/ingest/naive-varied.pgbench "$db" >/dev/null 2>&1
    n=$(rows)
    rate=$(( (n - prev) / round ))
    wal=$(psql -qtAX "$db" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start')::bigint")
    echo "naive: $n rows, $rate rows/s this round, $(( wal / n )) WAL bytes per row so far"
    echo "$n $rate" >>"$rates"
    prev=$n
  done
  pgbench -n -c 64 -j 2 -T 20 -D rows=1 -f bench/ingest/naive-varied.pgbench "$db" 2>&1 |
    awk -v n="$n" '/^tps/ {t = $3} /latency average/ {l = $4}
      END {printf "naive: single rows into %d: %.0f/s, latency average %s ms (64 clients, 20 s)\n", n, t, l}'
  n=$(rows)
  psql -qtAX "$db" -c "CHECKPOINT"
  size=$(psql -qtAX "$db" -c "SELECT pg_total_relation_size('naive_audit')")
  echo "naive: table, TOAST and indexes $size bytes, $(( size / n )) per row ($n rows)"
  millions naive <"$rates"
  rm -f "$rates"
  psql -qtAX "$pg/postgres" -c "DROP DATABASE tm_bench_naive WITH (FORCE)"
}
[ -z "${TRAILMARK_BIN_BEFORE:-}" ] || grow before "$TRAILMARK_BIN_BEFORE"
grow now "$bin"
[ "${NAIVE:-1}" = 0 ] || naive
