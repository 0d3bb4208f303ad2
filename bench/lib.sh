# Shared by the bench scripts (sourced, from the repository's root).

# measured_bin: the build a script measures, $TRAILMARK_BIN when set (an
# earlier commit's, say), else this tree's release build, built first.
measured_bin() {
  if [ -n "${TRAILMARK_BIN:-}" ]; then
    echo "$TRAILMARK_BIN"
  else
    # A failed build fails the caller's assignment (and so, under set -e,
    # the script), not a run of a stale binary.
    cargo build --release -p trailmark >/dev/null 2>&1 || return
    echo ./target/release/trailmark
  fi
}

# psql_ DATABASE [ARGS…]: psql on DATABASE of the server the caller's $pg names
# (quiet, unaligned, tuples only, stopping at the first error).
psql_() { psql "$pg dbname=$1" -qtAX -v ON_ERROR_STOP=1 "${@:2}"; }

# port_free [PORT]: exits (with a message) when something already answers on
# 127.0.0.1:PORT (7979).
port_free() {
  local port=${1:-7979}
  if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
    echo "something already listens on 127.0.0.1:$port; stop it first" >&2; exit 1
  fi
}

# start_serve BIN DATA_DIR [PORT]: starts `serve` on 127.0.0.1:PORT (7979),
# refusing when something already listens there; waits until it answers,
# sets $server to its pid and exports TRAILMARK_KEY (its bootstrap admin key).
start_serve() {
  local bin=$1 data=$2 port=${3:-7979}
  port_free "$port"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
  export TRAILMARK_KEY
}

# start_drainer BIN DATA_DIR PORT SOURCE [NICE]: starts `serve --capture-source SOURCE`
# on 127.0.0.1:PORT at CPU priority NICE (0) as start_serve does, and returns once it has
# read the last hour of its trail back to rebuild its alert windows (wait_alerts_rebuilt):
# on a ledger kept across a benchmark's rounds that is every change of the rounds before,
# on the cores the benchmark measures, and a drainer runs for days between restarts, so a
# measured round begins after it.
start_drainer() {
  local bin=$1 data=$2 port=$3 source=$4 nice=${5:-0}
  port_free "$port"
  nice -n "$nice" "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" \
    --capture-source "$source" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  TRAILMARK_KEY=$(cat "$data/bootstrap-admin.key")
  export TRAILMARK_KEY
  wait_alerts_rebuilt "$port"
}

# walsender_pid CONNINFO DATABASE: the pid of the walsender that streams DATABASE's
# replication slot to a WAL-mode drainer (the PostgreSQL process whose CPU is the other
# half of the drainer's), waiting up to 10 s for the drainer to connect; past that, says
# so and exits.
walsender_pid() {
  local pid
  for _ in $(seq 100); do
    pid=$(psql "$1 dbname=postgres" -qtAX -c "SELECT active_pid FROM pg_replication_slots WHERE database = '$2' AND active_pid IS NOT NULL")
    [ -z "$pid" ] || { echo "$pid"; return 0; }
    sleep 0.1
  done
  echo "the drainer of $2 did not connect in 10 s" >&2
  exit 1
}

# tenant_size TENANT [PORT]: the tenant's log size on the server at
# 127.0.0.1:PORT (7979), 0 when it has none or the server does not answer.
tenant_size() {
  local n
  n=$(curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:${2:-7979}/v1/tenants" |
      grep -o "\"size\":[0-9]*,\"tenant\":\"$1\"" | grep -o '[0-9][0-9]*' | head -n 1)
  echo "${n:-0}"
}

# poll_size TENANT [PORT]: tenant_size without starting a process (bash's
# /dev/tcp, HTTP/1.0), into $size: for loops that poll while the server is
# measured (curl and grep ten times a second cost the two cores about 6 %).
poll_size() {
  local body=""
  size=0
  { exec 9<>"/dev/tcp/127.0.0.1/${2:-7979}"; } 2>/dev/null || return 0
  printf 'GET /v1/tenants HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n' "$TRAILMARK_KEY" >&9
  IFS= read -r -d '' body <&9 || true
  exec 9<&-
  if [[ $body =~ \"size\":([0-9]+),\"tenant\":\"$1\" ]]; then size=${BASH_REMATCH[1]}; fi
}

# metric NAME [PORT]: one counter or gauge of the server's /metrics at
# 127.0.0.1:PORT (7979); empty when it does not answer.
metric() {
  curl -sf -H "Authorization: Bearer $TRAILMARK_KEY" "http://127.0.0.1:${2:-7979}/metrics" |
    sed -n "s/^$1 \([0-9.]*\).*/\1/p"
}

# index_lag [PORT]: the server's index lag (trailmark_index_lag_entries).
index_lag() {
  metric trailmark_index_lag_entries "${1:-7979}"
}

# wait_indexed [PORT] [MINUTES]: polls until the server's indexer has caught up
# (lag 0), at most MINUTES (10); past that, says so and exits.
wait_indexed() {
  local minutes=${2:-10} deadline
  deadline=$(( $(date +%s) + 60 * minutes ))
  while [ "$(index_lag "${1:-7979}")" != 0 ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "the index did not catch up in $minutes min" >&2; exit 1; fi
    sleep 0.2
  done
}

# cpu_ticks PID: the CPU time (user + system) the process has used so far, in
# clock ticks (getconf CLK_TCK a second).
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# wait_alerts_rebuilt [PORT] [MINUTES]: polls until the server at PORT (7979, pid $server)
# has read the trail back to rebuild its alert windows, at most MINUTES (10). On a trail
# loaded within the hour that is up to 2,000,000 entries (14 s of an idle 2-core machine),
# and a read measured meanwhile shares the cores with it. A build that shows
# trailmark_alert_windows_rebuilding is done when it reads 0; an older one (measured beside
# a newer) when the idle server has used less than 5 % of a core over one second.
wait_alerts_rebuilt() {
  local minutes=${2:-10} deadline shown before after
  deadline=$(( $(date +%s) + 60 * minutes ))
  while :; do
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "the alert windows were not rebuilt in $minutes min" >&2; exit 1; fi
    shown=$(metric trailmark_alert_windows_rebuilding "${1:-7979}")
    if [ -n "$shown" ]; then
      [ "$shown" = 0 ] && return 0
      sleep 0.2
    else
      before=$(cpu_ticks "$server")
      sleep 1
      after=$(cpu_ticks "$server")
      [ $(( (after - before) * 100 )) -lt $(( 5 * $(getconf CLK_TCK) )) ] && return 0
    fi
  done
}

# load_once BIN DATA_DIR EVENTS: unless DATA_DIR is marked loaded, serves it
# with BIN and loads bench/query/load.lua's varied events (1000 a request, 4
# connections) until tenant bench holds EVENTS, then stops and marks it.
load_once() {
  local bin=$1 data=$2 events=$3
  [ ! -f "$data/loaded" ] || return 0
  start_serve "$bin" "$data"
  while [ "$(tenant_size bench)" -lt "$events" ]; do
    wrk -t2 -c4 -d20s -s bench/query/load.lua http://127.0.0.1:7979/v1/events >/dev/null 2>&1
    echo "loaded $(tenant_size bench) events"
  done
  kill -TERM "$server"; wait "$server" || true
  touch "$data/loaded"
}

# drop_databases CONNINFO PATTERN: drops the databases named LIKE PATTERN on
# that cluster, each one's replication slots first (a slot keeps its database).
drop_databases() {
  local pg=$1 pattern=$2 db
  for db in $(psql "$pg dbname=postgres" -qtAX -c "SELECT datname FROM pg_database WHERE datname LIKE '$pattern'"); do
    psql "$pg dbname=postgres" -qtAX -c "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = '$db'" >/dev/null
    psql "$pg dbname=postgres" -qtAX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  done
}
