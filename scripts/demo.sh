#!/usr/bin/env bash
# A newcomer's tour of onebox: from a name to a page, hop by hop.
# Builds onebox, starts it on free ports, asks DNS with dig, visits both names,
# registers a user and posts through the API, shows the live view, stops cleanly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need dig bind9-dnsutils
need curl curl
build
start

say "1. DNS: what does www.foobar.com point to?"
note "dig @127.0.0.1 -p $DNS_PORT www.foobar.com"
dig @127.0.0.1 -p "$DNS_PORT" +norecurse +nocmd +nostats +nocomments www.foobar.com | grep -v '^;'
note "www is a CNAME: a name for another name. foobar.com's A record gives the address."

say "2. The visitor: onebox visit resolves through our DNS only, then connects"
"$ONEBOX" visit --dns "$DNS" "http://www.foobar.com:$HTTP_PORT/"
"$ONEBOX" visit --dns "$DNS" "http://foobar.com:$HTTP_PORT/" | tail -3

say "3. The application and the database, through the JSON API"
api() { curl -sS -H "Host: foobar.com" -H 'Content-Type: application/json' "$@"; echo; }
api -d '{"username":"ada","password":"correct horse battery"}' "http://$HTTP/api/v1/users"
TOKEN=$(api -d '{"username":"ada","password":"correct horse battery"}' "http://$HTTP/api/v1/sessions" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
api -H "Authorization: Bearer $TOKEN" -d '{"body":"Hello from the demo: this post is in redb now."}' "http://$HTTP/api/v1/posts"
api "http://$HTTP/api/v1/posts?limit=5"

say "4. HTTPS with onebox's own CA (it may only vouch for foobar.com and loopback)"
curl -sS --cacert "$CA" --resolve "www.foobar.com:$HTTPS_PORT:127.0.0.1" -o /dev/null \
  -w "   https://www.foobar.com:$HTTPS_PORT/ → %{http_code} over HTTP/%{http_version}\n" "https://www.foobar.com:$HTTPS_PORT/"

say "5. Watch it live"
note "Open http://www.foobar.com:$HTTP_PORT/_onebox/live in a browser that resolves through onebox"
note "(see 'onebox resolver print'), or stream it here:"
timeout 2 curl -sN -H "Host: www.foobar.com" "http://$HTTP/_onebox/live/events" | grep '^data:' | head -4 || true

say "Done: stopping onebox (SIGTERM, graceful)"
stop -TERM
