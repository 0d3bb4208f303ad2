#!/usr/bin/env bash
# The cost of the alert rules on ingest, side by side in one run: the same
# varied batched load (mixed.lua: failed logins, deletions, updates) against
# a server with the default rules and one with every rule off, twice each in
# turn (on, off, on, off), each on a fresh embedded store that first takes
# 200,000 events so it is not empty. Reports events/s and on ÷ off.
#
#   bench/alerts/run.sh [seconds]     (needs wrk, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
port=7983
cargo build --release -p trailmark >/dev/null 2>&1
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
server=
cat > "$work/off.toml" <<'TOML'
[failed_logins]
enabled = false
actions = ["login", "signin", "sign_in"]
threshold = 10
window_secs = 60
cooldown_secs = 900

[mass_delete]
enabled = false
actions = ["delete", "destroy"]
threshold = 100
window_secs = 60
cooldown_secs = 900

[privilege_changes]
enabled = false
actions = ["grant"]
columns = []
resource_types = []
cooldown_secs = 300

[export_volume]
enabled = false
actions = ["export"]
threshold = 20
window_secs = 3600
cooldown_secs = 3600

[off_hours]
enabled = false
start_hour = 8
end_hour = 19
weekdays = ["mon", "tue", "wed", "thu", "fri"]
utc_offset_minutes = 0
cooldown_secs = 3600

[new_ip]
enabled = false
actors = []
cooldown_secs = 86400

[trailmark_events]
enabled = false
actions = []
cooldown_secs = 0
TOML
run() { # run LABEL [serve flags...]
  local label=$1; shift
  local data="$work/$label-$RANDOM"
  mkdir -m 700 "$data"
  ./target/release/trailmark serve --data-dir "$data" --listen "127.0.0.1:$port" --cleanup-interval 0 "$@" \
    >"$data.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  export TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
  # Not empty: 200 requests of the same load first.
  wrk -t1 -c4 -d60s -s bench/alerts/mixed.lua "http://127.0.0.1:$port/v1/events" >/dev/null 2>&1 &
  local pre=$!
  for _ in $(seq 600); do
    n=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^trailmark_events_ingested_total/ {print $2}')
    [ "${n:-0}" -ge 200000 ] && break; sleep 0.1
  done
  kill "$pre" 2>/dev/null || true; wait "$pre" 2>/dev/null || true
  local rate
  rate=$(wrk -t2 -c8 -d"${secs}s" -s bench/alerts/mixed.lua "http://127.0.0.1:$port/v1/events" \
    | awk '/Requests\/sec/ {print $2 * 1000}')
  local seen dropped
  seen=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^trailmark_alert_facts_observed_total/ {print $2}')
  dropped=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^trailmark_alert_facts_dropped_total/ {print $2}')
  local raised
  raised=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" \
    "http://127.0.0.1:$port/v1/events?tenant=_system&action=trailmark.alert.raised&limit=1000" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
  kill -TERM "$server"; wait "$server" || true
  echo "$label: $rate events/s (facts observed $seen, dropped $dropped, alerts $raised)" >&2
  echo "$rate"
}
on1=$(run rules-on); off1=$(run rules-off --alert-rules "$work/off.toml")
on2=$(run rules-on); off2=$(run rules-off --alert-rules "$work/off.toml")
python3 -c "
on=($on1+$on2)/2; off=($off1+$off2)/2
print(f'default rules on:  {on:,.0f} events/s (runs {$on1:,.0f}, {$on2:,.0f})')
print(f'every rule off:    {off:,.0f} events/s (runs {$off1:,.0f}, {$off2:,.0f})')
print(f'on / off: {on/off:.2f} (target >= 0.90)')
"
