#!/usr/bin/env bash
# Remedy 3: more servers. scale.sh shows one server's throughput flattening at
# the machine's ceiling; here the same pages are driven through HAProxy with 1,
# 2 and 3 web nodes in service, in one run (the others drained with `onebox
# maintenance on`, exactly as a rolling restart drains them).
#
# Read the figure honestly: every node, HAProxy, PostgreSQL and wrk itself share
# this machine's cores. On a 2-core machine adding a node adds no cores, so the
# figure shows the machine's ceiling, not a scale-up; on a machine with more
# cores than processes it would grow with the nodes until the database or the
# balancer became the ceiling. HAProxy's own share of the CPU is printed too.
# Options: --data DIR, --http ADDR, --https ADDR, --dns ADDR. SECONDS_PER_STEP
# (3) bounds each home-page measurement, POST_SECONDS (2) each posting one;
# ACCOUNTS (18) post in turn. FIGURES=FILE writes every figure as JSON.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/cluster.sh"
need wrk wrk
SECONDS_PER_STEP=${SECONDS_PER_STEP:-3}
POST_SECONDS=${POST_SECONDS:-2}
ACCOUNTS=${ACCOUNTS:-18}
cluster_start "$@"
names=($(node_names))
HAPROXY_PID=$(jget "$READY" 'd["lb"]["pid"]')
SUPERVISOR_PID=$(jget "$READY" 'd["supervisor_pid"]')
# Posting is limited per account on each node (60 a minute, a burst of 60), so
# the posts come from several accounts in turn: the figure is then the site's
# write throughput, not the limiter's.
note "signing up $ACCOUNTS accounts to post from"
tokens=()
for k in $(seq "$ACCOUNTS"); do tokens+=("\"$(account "scaler$k")\""); done
cat > "$WORK/post.lua" <<LUA
-- wrk: every request is a post (JSON body, bearer token), Host foobar.com; the
-- accounts take turns so no one account reaches its posting rate.
local tokens = {$(IFS=,; echo "${tokens[*]}")}
local i = 0
wrk.headers["Host"] = "foobar.com"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i % #tokens + 1]
  return wrk.format("POST", nil, nil, '{"body":"scale"}')
end
LUA

# in_service N: nodes 1..N in the rotation, the others drained (and wait for HAProxy to agree).
in_service() {
  local k
  for k in "${!names[@]}"; do
    if [ "$k" -lt "$1" ]; then
      "$ONEBOX" maintenance off --data "$(node_data "${names[$k]}")" > /dev/null
      wait_until 15 "${names[$k]} UP" node_up "${names[$k]}"
    else
      "$ONEBOX" maintenance on --data "$(node_data "${names[$k]}")" > /dev/null
      wait_until 15 "${names[$k]} DOWN" node_down "${names[$k]}"
    fi
  done
}

# measure LABEL SECONDS WRK_ARGS...: one bounded wrk run through HAProxy; prints
# successful requests/s and HAProxy's CPU over the same seconds.
measure() {
  local label=$1 duration=$2; shift 2
  local hap0 all0 out requests non2xx seconds hap all
  hap0=$(cpu_ticks "$HAPROXY_PID"); all0=$(cpu_ticks "$SUPERVISOR_PID")
  out=$(wrk -t1 -c16 -d"${duration}s" -H "Host: foobar.com" "$@" "http://$LB$PATH_UNDER_TEST" 2>&1)
  hap=$(( $(cpu_ticks "$HAPROXY_PID") - hap0 )); all=$(( $(cpu_ticks "$SUPERVISOR_PID") - all0 ))
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  seconds=$(awk '/requests in/ {sub(/s,/, "", $4); print $4}' <<<"$out")
  python3 - "$label" "$requests" "$non2xx" "$seconds" "$hap" "$all" "$(getconf CLK_TCK)" <<'PY'
import sys
label, requests, non2xx, seconds, hap, allt, tck = sys.argv[1:]
ok = int(requests) - int(non2xx)
secs = float(seconds.rstrip("ms")) / (1000 if seconds.endswith("ms") else 1)
print(f"{label} {ok / secs:.0f} {int(non2xx)} {100 * int(hap) / int(tck) / secs:.1f} {100 * int(hap) / max(int(allt), 1):.1f}")
PY
}

say "Requests/s through HAProxy with 1, 2 and 3 nodes (wrk, 16 connections, ${SECONDS_PER_STEP}s home, ${POST_SECONDS}s posting)"
printf '   %5s  %-10s %12s %9s %22s %24s\n' nodes page "requests/s" "non-2xx" "HAProxy % of one core" "HAProxy % of cluster CPU"
for n in 1 2 3; do
  in_service "$n"
  PATH_UNDER_TEST=/
  read -r _ rps bad core share < <(measure home "$SECONDS_PER_STEP")
  printf '   %5s  %-10s %12s %9s %22s %24s\n' "$n" "home" "$rps" "$bad" "$core" "$share"
  record "home_rps_${n}_nodes" "$rps"; record "haproxy_core_pct_home_${n}_nodes" "$core"
  record "haproxy_cpu_share_pct_home_${n}_nodes" "$share"
  PATH_UNDER_TEST=/api/v1/posts
  read -r _ rps bad core share < <(measure post "$POST_SECONDS" -s "$WORK/post.lua")
  printf '   %5s  %-10s %12s %9s %22s %24s\n' "$n" "posting" "$rps" "$bad" "$core" "$share"
  record "post_rps_${n}_nodes" "$rps"; record "post_non2xx_${n}_nodes" "$bad"
done
record cores "$(nproc)"
note "requests/s counts only successful answers (200 for the home page, 201 for a post)."
note "Posting's non-2xx, if any, are 429s: each account may post 60 times a minute on each node, and"
note "wrk posts faster than $ACCOUNTS accounts may; the rate counts the posts the site accepted."
note "HAProxy's CPU is shown against one core and against the whole cluster's CPU time (every"
note "process below the cluster's supervisor) over the same seconds."
note "This machine has $(nproc) cores. Every node, HAProxy, PostgreSQL and wrk share them, so a"
note "second or third node brings no new cores:"
note "the figure shows the machine's ceiling, not a scale-up."
note "Spread over machines (or on a machine with a core per process) the home page"
note "would grow with the nodes; posting is bounded by the one PostgreSQL primary, which every"
note "node writes to, so it grows only until that primary's disk flushes are the ceiling."
note "HAProxy's share stays small: relaying bytes costs far less than rendering pages."
bound "every step served requests" "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(all(d[f"home_rps_{n}_nodes"] > 0 and d[f"post_rps_{n}_nodes"] > 0 for n in (1,2,3)))' "$FIGURES_JSON")"

say "Result"
[ "$FAILED_BOUNDS" -eq 0 ] || { echo "$FAILED_BOUNDS bound(s) failed" >&2; exit 1; }
