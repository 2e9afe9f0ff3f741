#!/usr/bin/env bash
# Remedy 2: a load balancer that sends traffic elsewhere while a server is
# changed. maintenance.sh shows the one server answering 503 while it is worked
# on; here every web node of the cluster is restarted in turn (a rolling
# restart, as for an upgrade) under steady load, and no visitor sees a failure:
#   drain    `onebox maintenance on` makes the node's /readyz fail; HAProxy's
#            health check (inter 300ms, fall 2) takes it out of the rotation;
#   restart  SIGTERM; the cluster's supervisor starts it again;
#   re-admit /readyz passes twice (rise 2) and HAProxy sends it traffic again.
# Meanwhile the site's address record moves (a blue/green cut-over through DNS
# UPDATE) and both DNS secondaries follow it by NOTIFY + IXFR.
# Options: --data DIR, --http ADDR, --https ADDR, --dns ADDR. FIGURES=FILE
# writes every figure as JSON.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/cluster.sh"
cluster_start "$@"

say "Steady load through HAProxy while every node is restarted"
note "load.py: 4 keep-alive connections, 100 requests/s on the home page, each request"
note "logged; it runs until the rolling restart is over."
load run --addr "$LB" --seconds 120 --rate 100 --connections 4 --timeout 3 \
  --stop-file "$WORK/stop" --log "$WORK/rolling.log" > /dev/null &
LOADER=$!
sleep 2

# The cut-over, run between two node restarts: one signed UPDATE moves
# app.foobar.com from the blue deployment's address to the green one's.
cutover() {
  local primary key blue green serial t0 server
  primary=$(jget "$READY" 'd["dns"]["primary"]'); key=$(dns_key)
  blue=$(node_field 1 http); blue=${blue%:*}; green=$(node_field 2 http); green=${green%:*}
  dns_update "$primary" "$key" "update delete app.foobar.com A" "update add app.foobar.com 60 A $blue"
  t0=$(date +%s.%N)
  dns_update "$primary" "$key" "update delete app.foobar.com A" "update add app.foobar.com 60 A $green"
  serial=$(soa_serial "$primary")
  note "blue/green: app.foobar.com A $blue → $green by UPDATE (primary's serial now $serial)"
  for server in $(secondaries); do
    wait_until 15 "$server serves serial $serial" eval '[ "$(soa_serial "$server")" = "$serial" ]'
    wait_until 5 "$server serves the green address" eval \
      '[ "$(dig +short +norec -p "${server##*:}" "@${server%:*}" app.foobar.com A)" = "$green" ]'
    note "  secondary $server: serial $serial, app.foobar.com A $green, $(since "$t0") s after the UPDATE"
    FOLLOWED=$((FOLLOWED + 1))
  done
  CUTOVER_SERIAL=$serial
}
FOLLOWED=0

roll_start=$SECONDS
index=0
for name in $(node_names); do
  index=$((index + 1))
  old_pid=$(node_pid_now "$name")
  t0=$(date +%s.%N)
  "$ONEBOX" maintenance on --data "$(node_data "$name")" > /dev/null
  wait_until 10 "HAProxy marks $name DOWN" node_down "$name"
  drained=$(since "$t0"); t1=$(date +%s.%N)
  kill -TERM "$old_pid"
  wait_until 30 "the supervisor restarts $name" eval '[ "$(node_pid_now "$name")" != "$old_pid" ]'
  wait_until 30 "HAProxy marks $name UP again" node_up "$name"
  note "$name: drained in $drained s; restarted and back UP in $(since "$t1") s (pid $old_pid → $(node_pid_now "$name"))"
  if [ "$index" = 1 ]; then cutover; fi
done
roll_seconds=$((SECONDS - roll_start))
sleep 1
touch "$WORK/stop"
wait "$LOADER"
load report --log "$WORK/rolling.log" > "$WORK/rolling.json"
r() { jget "$WORK/rolling.json" "$1"; }
figure rolling_restart_seconds "$roll_seconds"
figure rolling_requests "$(r 'd["requests"]')"
figure rolling_failed "$(r 'd["failed"]')"
figure rolling_outcomes "$(r 'd["outcomes"]')"
figure rolling_served_by "$(r 'd["nodes"]')"
figure rolling_p99_ms "$(r 'd["p99_ms"]')"
figure cutover_serial "$CUTOVER_SERIAL"
figure cutover_secondaries_followed "$FOLLOWED"
note "A drained node gets no new requests: HAProxy saw its /readyz fail and sent everything"
note "to the others; the site's own 503s while it drains are retried elsewhere (retry-on 503)."
note "SIGTERM then lets onebox finish what it was doing before it exits."
bound "zero failed requests during the rolling restart" "$(r 'd["failed"]') == 0"
bound "every node served requests" "len($(r 'd["nodes"]')) == $(node_names | wc -w)"
bound "both secondaries followed the cut-over" "$FOLLOWED == 2"

say "Result"
[ "$FAILED_BOUNDS" -eq 0 ] || { echo "$FAILED_BOUNDS bound(s) failed" >&2; exit 1; }
note "Each node was down for a while, yet no request failed: the balancer's health checks"
note "turn 'this server is being changed' into 'send traffic elsewhere'."
