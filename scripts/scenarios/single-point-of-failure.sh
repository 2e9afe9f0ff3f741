#!/usr/bin/env bash
# Weakness 1 of one server: it is a single point of failure.
# Everything (DNS, web, app, database) is one process on one machine; when it
# stops, every hop after the name fails, however healthy the network is.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
build
start

say "The site works: every hop green"
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$HTTP_PORT/" | grep -E '^(✓|✗|result|error)' || true

say "The server crashes (kill -9)"
OLD_HTTP_PORT=$HTTP_PORT
stop -KILL
set +e
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$OLD_HTTP_PORT/" | grep -E '^(✓|✗|result|error)'
note "exit status $? : DNS itself is gone, because DNS ran on the same machine."
set -e

say "Names usually survive: resolvers cache them, or a secondary DNS server answers"
note "We play the secondary: a DNS-only copy of the zone on another process. It still says"
note "foobar.com A 127.0.0.1, but nothing listens at the web server's address any more."
start
set +e
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$OLD_HTTP_PORT/" | grep -E '^(✓|✗|result|error)'
set -e
note "DNS ✓, connect ✗ (connection refused): the name leads to an address where nothing"
note "listens. That is what a single point of failure looks like from the outside."

say "The usual remedies"
note "- several servers behind a load balancer (or several A records), so one can die;"
note "- DNS secondaries (NOTIFY + zone transfer) so names keep resolving;"
note "- a replicated database, so data survives the loss of one machine."
