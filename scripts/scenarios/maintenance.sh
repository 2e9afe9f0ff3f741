#!/usr/bin/env bash
# Weakness 2 of one server: maintenance means downtime.
# To change the only server you take the site down. DNS keeps answering, so the
# visitor sees exactly which box is down: the web server answers 503.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
build
start

say "Before: the site answers"
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$HTTP_PORT/" | grep -E '^(✓|✗|result|error)' || true

say "onebox maintenance on"
"$ONEBOX" maintenance on --control "$CONTROL"
set +e
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$HTTP_PORT/" | grep -E '^(✓|✗|result|error)'
note "exit status $? : DNS ✓, connect ✓, http ✗ 503 with Retry-After. The name and the"
note "machine are fine; the one server is busy being changed, so nobody is served."
set -e
curl -s -o /dev/null -w "   /readyz → %{http_code} (a load balancer would stop sending traffic here)\n" \
  -H "Host: www.foobar.com" "http://$HTTP/readyz"

say "onebox maintenance off"
"$ONEBOX" maintenance off --control "$CONTROL"
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$HTTP_PORT/" | grep -E '^(✓|✗|result|error)' || true

say "The usual remedy"
note "Two or more servers behind a load balancer: drain one (its /readyz fails), update it,"
note "put it back, then the next: a rolling update with no downtime."
