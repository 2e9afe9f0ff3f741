#!/usr/bin/env bash
# Weakness 3 of one server: it cannot scale.
# Drive the home page (app + database on every request) with more and more
# concurrent clients and watch throughput flatten while latency climbs: the one
# machine's cores are the ceiling. Bounded: a few seconds per step, loopback only.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
need wrk wrk
build
start
SECONDS_PER_STEP=${SECONDS_PER_STEP:-3}

say "Home page (rendered by the app, a durable visit counter in redb) under growing load"
printf '   %8s  %12s  %10s  %10s\n' clients requests/s "p50 ms" "p99 ms"
for clients in 1 4 16 64 256; do
  out=$(wrk -t1 -c"$clients" -d"${SECONDS_PER_STEP}s" --latency -H "Host: foobar.com" "http://$HTTP/" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '   %8s  %12s  %10s  %10s\n' "$clients" "$rps" "$p50" "$p99"
done
note "Past a few clients, requests/s stops growing: every core is busy (see top)."
note "More clients only wait longer, the latency column. One server has one ceiling."

say "The usual remedy"
note "Scale out: several web/app servers behind a load balancer, the database replicated"
note "(or moved to its own machine), caches in front. onebox keeps all four boxes on one"
note "machine on purpose, so you can see where the ceiling is."
