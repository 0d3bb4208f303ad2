#!/usr/bin/env bash
# The Python package's added latency per Django request, side by side in one
# run: a request that writes one row of a captured table, with the package
# (its middleware setting the capture context on every statement, the
# client IP through a trusted proxy) and without, in alternating rounds on
# the same PostgreSQL database with capture installed and a real
# `trailmark serve` draining it. Reports median and p99 of each and the
# difference.
#
#   bench/django/run.sh [requests per round]   (needs target/integrations-venv: scripts/test makes it)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-3000}"
venv="${TRAILMARK_BENCH_VENV:-target/integrations-venv}"
py="$(realpath "$venv")/bin/python"
cargo build --release -p trailmark >/dev/null 2>&1
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./clients/python
work=$(mktemp -d)
db="tm_bench_django_$RANDOM"
trap 'kill "$server" 2>/dev/null || true; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
server=
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
export BENCH_DB=$db
(cd bench/django && BENCH_WITH=0 TRAILMARK_URL=x TRAILMARK_KEY=x TRAILMARK_SPOOL_PATH=x \
  DJANGO_SETTINGS_MODULE=bench_site "$py" -c \
  'import django; django.setup(); from django.core.management import call_command; call_command("migrate", run_syncdb=True, verbosity=0)')
./target/release/trailmark capture pg install --source "host=127.0.0.1 user=postgres dbname=$db" --tables public.bench_app_order >/dev/null
port=7985
mkdir -m 700 "$work/data"
./target/release/trailmark serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --capture-source "host=127.0.0.1 user=postgres dbname=$db" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
export TRAILMARK_URL="http://127.0.0.1:$port" TRAILMARK_KEY=$(cat "$work/data/bootstrap-admin.key")
export TRAILMARK_SPOOL_PATH="$work/spool.sqlite3"
for round in 1 2; do
  for side in without with; do
    (cd bench/django && "$py" bench.py "--$side" "$n") >>"$work/$side.txt"
  done
done
python3 - "$work/with.txt" "$work/without.txt" <<'PY'
import sys
def load(p):
    v = sorted(int(x) for x in open(p))
    return v[len(v) // 2], v[int(len(v) * 0.99) - 1], len(v)
w, wo = load(sys.argv[1]), load(sys.argv[2])
print(f"without the package: median {wo[0]} us, p99 {wo[1]} us ({wo[2]} requests)")
print(f"with the package:    median {w[0]} us, p99 {w[1]} us ({w[2]} requests)")
print(f"added: median {w[0] - wo[0]} us, p99 {w[1] - wo[1]} us")
PY
