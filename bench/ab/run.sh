#!/usr/bin/env bash
# Two builds of trailmark, side by side in one run: each serves a fresh embedded store
# in turn (interleaved rounds, which goes first alternating, so machine noise and the
# position fall on both), loaded with bench/query/load.lua's varied events, batched
# (1000 per request, 8 connections) and single (64 connections). Prints events/s, p99,
# the server's CPU per event (user + system during the load) and the bytes it wrote to
# disk per event (`write_bytes` of /proc/PID/io: both files, their WALs) per round, and
# the ratios of the medians.
#
#   bench/ab/run.sh OLD_BINARY NEW_BINARY [seconds] [rounds]     (needs wrk)
#   IDS=1 bench/ab/run.sh ...     every event with its own id (see bench/query/load.lua)
#   MODES=search bench/ab/run.sh ...   (or MODES="batched single search") free-text searches
#       (bench/query/query.lua's QUERY=q, 2 connections) beside single events (32
#       connections): the p99 reported is the searches'; the rest, the ingest's
#   PG="host=127.0.0.1 port=5432 user=postgres" bench/ab/run.sh ...
#       each round on a fresh PostgreSQL database (tm_bench_ab, dropped after) instead of
#       the embedded store; CPU and bytes written are then the server process's alone
#
# e.g. an earlier commit built into its own target dir:
#   git worktree add /tmp/old <commit>
#   (cd /tmp/old && CARGO_TARGET_DIR=$PWD/../main-target-old cargo build --release -p trailmark)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
old="$1"; new="$2"; secs="${3:-15}"; rounds="${4:-2}"
modes="${MODES:-batched single}"
for mode in $modes; do
  case "$mode" in batched | single | search) ;;
    *) echo "unknown mode $mode: MODES takes batched, single and search" >&2; exit 1 ;;
  esac
done
if curl -sf http://127.0.0.1:7979/healthz >/dev/null; then
  echo "something already listens on 127.0.0.1:7979; stop it first" >&2; exit 1
fi
one() { # binary, mode -> "rate p99 cpu wrote" (search: p99 of the searches)
  local data server out per conns searcher=""
  data=$(mktemp -d)
  local store=()
  if [ -n "${PG:-}" ]; then
    psql "$PG dbname=postgres" -qtAX -c "DROP DATABASE IF EXISTS tm_bench_ab WITH (FORCE)" \
      -c "CREATE DATABASE tm_bench_ab" >/dev/null
    store=(--database "$PG dbname=tm_bench_ab")
  fi
  "$1" serve --data-dir "$data" --listen 127.0.0.1:7979 "${store[@]}" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
  case "$2" in
    batched) per=1000; conns=8 ;;
    single) per=1; conns=64 ;;
    search) per=1; conns=32
      # From the 3rd second to 2 s before the end: searches while the stream runs.
      (sleep 3; TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key") QUERY=q wrk -t1 -c2 \
        -d"$((secs - 5))s" --latency -s bench/query/query.lua http://127.0.0.1:7979 \
        > "$data.searches" 2>&1) &
      searcher=$! ;;
  esac
  before=$(cpu_ticks "$server")
  out=$(TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key") EVENTS=$per \
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/query/load.lua http://127.0.0.1:7979/v1/events 2>&1)
  used=$(( $(cpu_ticks "$server") - before ))
  local p99_of_searches=""
  if [ -n "$searcher" ]; then
    wait "$searcher"
    p99_of_searches=$(awk '/ 99%/ {print $2}' "$data.searches")
    if grep -q "unexpected status" "$data.searches"; then echo "refused searches" >&2; exit 1; fi
    rm -f "$data.searches"
  fi
  wrote=$(awk '/^write_bytes/ { print $2 }' "/proc/$server/io")
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -rf "$data"
  if [ -n "${PG:-}" ]; then
    psql "$PG dbname=postgres" -qtAX -c "DROP DATABASE IF EXISTS tm_bench_ab WITH (FORCE)" >/dev/null
  fi
  # What this round left in the page cache is written out now, not during the next
  # round's measurement behind its fsyncs.
  sync
  if grep -q "unexpected status" <<<"$out"; then echo "refused requests" >&2; exit 1; fi
  awk -v per="$per" -v used="$used" -v wrote="$wrote" -v hz="$(getconf CLK_TCK)" -v sp="$p99_of_searches" \
    '/requests in/ {n = $1 * per} /Requests\/sec/ {r = $2 * per} / 99%/ {p = $2}
     END {if (sp != "") p = sp; printf "%.0f %s %.1f %.0f\n", r, p, used / hz * 1e6 / n, wrote / n}' <<<"$out"
}
for mode in $modes; do
  for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
    for build in $order; do
      if [ "$build" = old ]; then bin="$old"; else bin="$new"; fi
      echo "$mode $build $(one "$bin" "$mode")"
    done
  done
done | tee /dev/stderr | python3 -c '
import statistics, sys
rates, cpus, disk, p99s = {}, {}, {}, {}
def ms(text):
    for unit, scale in (("ms", 1.0), ("us", 0.001), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(text)
for line in sys.stdin:
    mode, build, rate, p99, cpu, wrote = line.split()
    rates.setdefault((mode, build), []).append(float(rate))
    cpus.setdefault((mode, build), []).append(float(cpu))
    disk.setdefault((mode, build), []).append(float(wrote))
    p99s.setdefault((mode, build), []).append(ms(p99))
for mode in sorted({m for m, _ in rates}, key=["batched", "single", "search"].index):
    if mode == "search":
        sold, snew = statistics.median(p99s[(mode, "old")]), statistics.median(p99s[(mode, "new")])
        print(f"search: p99 of the searches, old median {sold:.1f} ms, new median {snew:.1f} ms")
    old, new = statistics.median(rates[(mode, "old")]), statistics.median(rates[(mode, "new")])
    cold, cnew = statistics.median(cpus[(mode, "old")]), statistics.median(cpus[(mode, "new")])
    dold, dnew = statistics.median(disk[(mode, "old")]), statistics.median(disk[(mode, "new")])
    print(f"{mode}: old median {old:.0f} events/s, new median {new:.0f} events/s, new/old {new / old:.2f}; "
          f"server CPU {cold:.1f} -> {cnew:.1f} us/event, new/old {cnew / cold:.2f}; "
          + (f"written {dold:.0f} -> {dnew:.0f} bytes/event, new/old {dnew / dold:.2f}" if dold
             else "nothing written by the server (PostgreSQL writes)"))
'
