#!/usr/bin/env bash
# What many tenants cost a server that submits its checkpoints to a witness, two builds
# side by side in one run: each serves a fresh embedded store with one `trailmark
# witness` (of the same build) that knows one tenant's log (acme; a witness is set up
# per log), is given TENANTS tenants of one entry each, and is measured idle 60 s later
# (the witness has cosigned acme and refused the rest): the server's CPU over 20 s, in %
# of one core. Every 5 s the server offers again what a witness has not cosigned.
#
#   bench/tenants/witness.sh OLD_BINARY NEW_BINARY [tenants]     (20000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
old="$1"; new="$2"; tenants="${3:-20000}"
hz=$(getconf CLK_TCK)
server=""; witness=""; data=""; wdir=""
trap 'kill $server $witness 2>/dev/null || true; rm -rf $data $wdir' EXIT

measure() { # binary; sets $result to "idle% cosignature-lines"
  local bin=$1 vkey wkey a b lines
  data=$(mktemp -d); wdir=$(mktemp -d)
  start_serve "$bin" "$data"
  vkey=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
    "http://127.0.0.1:7979/v1/verifier-key?tenant=acme" | tr -d '\n')
  kill "$server"; wait "$server" 2>/dev/null || true
  "$bin" witness --data-dir "$wdir" --listen 127.0.0.1:7990 --name bench/w1 \
    --log "trailmark.local/acme=$vkey" >/dev/null 2>&1 &
  witness=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:7990/ && break; sleep 0.1; done
  wkey=$(cat "$wdir/witness.vkey")
  "$bin" serve --data-dir "$data" --listen 127.0.0.1:7979 \
    --witness "$wkey@http://127.0.0.1:7990" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:7979/healthz >/dev/null && break; sleep 0.1; done
  python3 bench/tenants/load.py "$tenants" acme
  sleep 60
  a=$(cpu_ticks "$server"); sleep 20; b=$(cpu_ticks "$server")
  # acme's checkpoint: the log's signature and the witness's.
  lines=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
    "http://127.0.0.1:7979/v1/checkpoint?tenant=acme" | grep -c '^— ' || true)
  kill "$server" "$witness"; wait "$server" "$witness" 2>/dev/null || true
  rm -rf "$data" "$wdir"; data=""; wdir=""
  result="$(( (b - a) * 100 / (20 * hz) )) $lines"
}

printf '%-5s %8s %22s\n' build "idle %" "acme signature lines"
for which in old new; do
  bin=$old; [ "$which" = new ] && bin=$new
  measure "$bin"
  read -r idle lines <<< "$result"
  printf '%-5s %8s %22s\n' "$which" "$idle" "$lines"
done
echo "($tenants tenants of one entry each, one witness knowing acme; $(nproc) cores; bench/tenants/witness.sh $*)"
