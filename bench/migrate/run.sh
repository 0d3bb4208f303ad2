#!/usr/bin/env bash
# `trailmark migrate` of an embedded trail with many checkpoints and cosignatures into
# PostgreSQL, two builds side by side in one run. One source trail is made first (with
# NEW_BINARY): TENANTS tenants, each given one event every 100 ms for SECS seconds, so
# the checkpointer (every 250 ms) signs about four checkpoints a second for each, and a
# `trailmark witness` that knows every tenant's log cosigns each one, as a busy trail
# accumulates them (a checkpoint a second while entries arrive, for years). Then each
# build migrates that same source into a fresh database, ROUNDS times, interleaved (which
# goes first alternating); prints the seconds each took, its CPU, and the median ratio.
#
#   PG="host=127.0.0.1 port=5432 user=postgres" \
#     bench/migrate/run.sh OLD_BINARY NEW_BINARY [tenants=100] [secs=120] [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
old="$1"; new="$2"; tenants="${3:-100}"; secs="${4:-120}"; rounds="${5:-2}"
pg="${PG:-host=127.0.0.1 port=5432 user=postgres}"
server=""; witness=""
data=$(mktemp -d); wdir=$(mktemp -d)
trap 'kill $server $witness 2>/dev/null || true; rm -rf "$data" "$wdir";
      psql_ postgres -c "DROP DATABASE IF EXISTS tm_bench_migrate WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

# The source: the tenants' verifier keys from a first start, a witness of every log,
# then the load.
start_serve "$new" "$data"
logs=()
for i in $(seq 0 $((tenants - 1))); do
  vkey=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
    "http://127.0.0.1:7979/v1/verifier-key?tenant=t$i" | tr -d '\n')
  logs+=(--log "trailmark.local/t$i=$vkey")
done
kill "$server"; wait "$server" 2>/dev/null || true
"$new" witness --data-dir "$wdir" --listen 127.0.0.1:7990 --name bench/w1 "${logs[@]}" \
  >/dev/null 2>&1 &
witness=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:7990/ && break; sleep 0.1; done
port_free 7979
"$new" serve --data-dir "$data" --listen 127.0.0.1:7979 \
  --witness "$(cat "$wdir/witness.vkey")@http://127.0.0.1:7990" >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
python3 - "$tenants" "$secs" <<'EOF'
import json, os, sys, time, urllib.request
tenants, secs = int(sys.argv[1]), float(sys.argv[2])
key = os.environ["TRAILMARK_KEY"]
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    body = json.dumps([
        {"tenant": f"t{i}", "actor": {"id": f"u{n % 977}", "type": "user"},
         "action": "update", "resource": {"type": "Account", "id": str(n)}}
        for i in range(tenants)]).encode()
    req = urllib.request.Request("http://127.0.0.1:7979/v1/events", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status in (200, 201), r.status
    n += 1
    time.sleep(0.1)
EOF
sleep 2 # the last tick's checkpoints and their cosignatures
kill "$server"; wait "$server" 2>/dev/null || true
kill "$witness"; wait "$witness" 2>/dev/null || true
server=""; witness=""
counts=$(sqlite3 -readonly -separator ' | '  "$data/trailmark.db" \
  "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM checkpoints),
          (SELECT count(*) FROM cosignatures)" 2>/dev/null || echo "? | ? | ?")
echo "source: $tenants tenants; entries|checkpoints|cosignatures $counts; $(du -sh "$data" | cut -f1)"

run() { # binary -> "seconds cpu-seconds" (the migrate process's user + system)
  psql_ postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS tm_bench_migrate WITH (FORCE)" \
    -c "CREATE DATABASE tm_bench_migrate" >/dev/null
  local TIMEFORMAT='%R %U %S' times real user sys
  times=$( { time "$1" migrate --from "$data" --to "$pg dbname=tm_bench_migrate" \
    >/dev/null 2>"$wdir/migrate.err"; } 2>&1 ) || { cat "$wdir/migrate.err" >&2; exit 1; }
  read -r real user sys <<< "$times"
  echo "$real $(echo "$user + $sys" | bc)"
}

olds=(); news=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order=(old new); else order=(new old); fi
  for which in "${order[@]}"; do
    if [ "$which" = old ]; then bin=$old; else bin=$new; fi
    read -r s cpu < <(run "$bin")
    printf 'round %d %-3s %8.2f s  (migrate CPU %s s)\n' "$r" "$which" "$s" "$cpu"
    if [ "$which" = old ]; then olds+=("$s"); else news+=("$s"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(median "${olds[@]}"); mn=$(median "${news[@]}")
echo "median: old $mo s, new $mn s, new/old $(echo "scale=3; $mn / $mo" | bc)"
