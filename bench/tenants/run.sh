#!/usr/bin/env bash
# What many tenants cost a server, two builds side by side in one run: each serves a
# fresh embedded store, is given TENANTS tenants of one entry each (1000 events a
# request, each to a tenant of its own, as a producer that puts each customer in a tenant
# does), and is measured:
#
#   - signed: seconds from the last load request's answer until every tenant's checkpoint
#     covers its entry (each first checkpoint is recorded in `_system`: until `_system`'s
#     checkpoint covers that many records more than before the load);
#   - idle: the server's CPU while nothing arrives (10 s, from 30 s after the last tenant
#     was signed: what the load left to do, such as indexing, is done), in % of one core;
#   - latency: one more event to one tenant, seconds until a checkpoint covers it;
#   - restart: the server stopped and started again on the same store; one event to a
#     tenant at once, seconds until a checkpoint covers it, and the CPU the server used
#     in those first seconds (CPU seconds);
#   - stop: seconds from SIGTERM until the process has ended (a clean stop signs what
#     arrived since the last tick first), after the latency above; stop soon: the same
#     right after the restart's event was signed (the restart's first look at every
#     tenant may still be under way, and a clean stop finishes it).
#
#   bench/tenants/run.sh OLD_BINARY NEW_BINARY [tenants]      (tenants: 90000 by default,
#                                                              under serve's max_tenants)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
old="$1"; new="$2"; tenants="${3:-90000}"
hz=$(getconf CLK_TCK)
server=""; data=""
trap 'kill "$server" 2>/dev/null || true; [ -z "$data" ] || rm -rf "$data"' EXIT

# size TENANT: the size of TENANT's latest checkpoint (0 when it has none).
size() {
  curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
    "http://127.0.0.1:7979/v1/checkpoint?tenant=$1" | sed -n 2p || true
}

# until_signed TENANT SIZE: seconds until TENANT's checkpoint reaches SIZE (polled every
# 10 ms, at most 600 s).
until_signed() {
  local start now
  start=$(date +%s.%N)
  while [ "$(size "$1")" != "$2" ]; do
    now=$(date +%s.%N)
    if [ "$(echo "$now - $start > 600" | bc)" = 1 ]; then echo "timeout"; return; fi
    sleep 0.01
  done
  echo "$(date +%s.%N) - $start" | bc
}

# until_grown TENANT SIZE: waits until TENANT's checkpoint is at least SIZE (at most 600
# s); prints its size at once when SIZE is 0, else the seconds it took.
until_grown() {
  local start now
  start=$(date +%s.%N)
  while [ "$(size "$1")" -lt "$2" ] 2>/dev/null || [ -z "$(size "$1")" ]; do
    now=$(date +%s.%N)
    if [ "$(echo "$now - $start > 600" | bc)" = 1 ]; then echo "timeout"; return; fi
    sleep 0.05
  done
  if [ "$2" = 0 ]; then size "$1"; else echo "$(date +%s.%N) - $start" | bc; fi
}

# one TENANT: appends one event to TENANT.
one() {
  curl -sf -o /dev/null -H "Authorization: Bearer $TRAILMARK_KEY" \
    -H 'Content-Type: application/json' -X POST http://127.0.0.1:7979/v1/events \
    -d "{\"tenant\":\"$1\",\"actor\":{\"id\":\"u1\",\"type\":\"user\"},\"action\":\"login\"}"
}

measure() { # binary; sets $result to "signed idle latency stop restart restart_cpu soon"
  local bin=$1 before signed idle latency restart cpu stop soon start
  data=$(mktemp -d)
  start_serve "$bin" "$data"
  # Every tenant's first checkpoint is recorded in `_system`: all are signed once
  # `_system`'s own checkpoint covers that many more entries than before the load.
  local system
  system=$(until_grown _system 0)
  python3 bench/tenants/load.py "$tenants"
  signed=$(until_grown _system $((system + tenants)))
  sleep 30
  before=$(cpu_ticks "$server")
  sleep 10
  idle=$(( ( $(cpu_ticks "$server") - before ) * 100 / (10 * hz) ))
  one t0
  latency=$(until_signed t0 2)
  one t3
  start=$(date +%s.%N)
  kill "$server"; wait "$server" 2>/dev/null || true
  stop=$(echo "$(date +%s.%N) - $start" | bc)
  "$bin" serve --data-dir "$data" --listen 127.0.0.1:7979 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 600); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
  one t1
  restart=$(until_signed t1 2)
  cpu=$(echo "scale=2; $(cpu_ticks "$server") / $hz" | bc)
  one t2
  start=$(date +%s.%N)
  kill "$server"; wait "$server" 2>/dev/null || true
  soon=$(echo "$(date +%s.%N) - $start" | bc)
  rm -rf "$data"; data=""
  result="$signed $idle $latency $stop $restart $cpu $soon"
}

printf '%-5s %9s %7s %10s %7s %10s %14s %12s\n' build "signed s" "idle %" "latency s" "stop s" "restart s" "restart cpu s" "stop soon s"
for which in old new; do
  bin=$old; [ "$which" = new ] && bin=$new
  measure "$bin"
  read -r signed idle latency stop restart cpu soon <<< "$result"
  printf '%-5s %9.2f %7s %10.2f %7.2f %10.2f %14s %12.2f\n' "$which" "$signed" "$idle" "$latency" \
    "$stop" "$restart" "$cpu" "$soon"
done
echo "($tenants tenants of one entry each; $(nproc) cores; bench/tenants/run.sh $*)"
