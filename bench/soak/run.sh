#!/usr/bin/env bash
# Soak: a release `trailmark serve` on a fresh embedded store under steady
# ingest (about half the measured single-event peak: 4 connections posting 50
# varied events, pausing DELAY_MS between requests) with reads mixed in (2
# connections, 10 requests/s each), for MINUTES minutes. Every 10 s it
# samples the server's RSS, the WAL's size, open file descriptors, and both
# loads' rate and p99 over those 10 s. Prints a Markdown table.
#
#   bench/soak/run.sh [minutes]     (needs wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-10}"
here=bench/soak
cargo build --release -p trailmark >/dev/null 2>&1
data=$(mktemp -d)
port=7981
if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
  echo "something already listens on 127.0.0.1:$port; stop it first" >&2; exit 1
fi
./target/release/trailmark serve --data-dir "$data" --listen "127.0.0.1:$port" >"$data.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data" "$data.log"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
export TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
url="http://127.0.0.1:$port"

# wrk's p99 in ms, whatever unit it printed.
p99() { awk '$1=="99%" { v=$2; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; printf "%.1f", v }' "$1"; }
reqs() { awk '/requests in/ { print $1 }' "$1"; }
errs() { grep -c "unexpected status" "$1" || true; }

echo "| t (s) | events/s | ingest p99 (ms) | reads/s | read p99 (ms) | RSS (MiB) | WAL (MiB) | db (MiB) | fds | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
rounds=$(( minutes * 6 ))
for round in $(seq "$rounds"); do
  wrk -t1 -c4 -d10s --latency -s $here/ingest.lua "$url/v1/events" >"$data.in" 2>&1 &
  a=$!
  wrk -t1 -c2 -d10s --latency -s $here/query.lua "$url" >"$data.q" 2>&1 &
  b=$!
  wait "$a" "$b"
  rss=$(awk '/VmRSS/ { printf "%.0f", $2/1024 }' "/proc/$server/status")
  wal=$(stat -c %s "$data/trailmark.db-wal" 2>/dev/null || echo 0)
  db=$(stat -c %s "$data/trailmark.db")
  fds=$(ls "/proc/$server/fd" | wc -l)
  printf "| %d | %d | %s | %d | %s | %s | %.0f | %.0f | %d | %d |\n" \
    $(( round * 10 )) $(( $(reqs "$data.in") * 50 / 10 )) "$(p99 "$data.in")" \
    $(( $(reqs "$data.q") / 10 )) "$(p99 "$data.q")" "$rss" \
    "$(echo "$wal / 1048576" | bc -l)" "$(echo "$db / 1048576" | bc -l)" "$fds" \
    $(( $(errs "$data.in") + $(errs "$data.q") ))
done
rm -f "$data.in" "$data.q"
