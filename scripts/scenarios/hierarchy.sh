#!/usr/bin/env bash
# How a name is found: the toy Internet (internet/) in one onebox process.
# The root (127.0.0.2) refers to com (127.0.0.3), com refers to foobar.com
# (127.0.0.1), and the resolver at 127.0.0.53 walks that chain and caches it.
# To show a server going down, com runs here as a second onebox process that
# the scenario can stop, while the root, foobar.com and the resolver keep running.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
build
need dig bind9-dnsutils

# The first process: the root and foobar.com (not com), and the resolver.
mkdir -p "$WORK/toy" "$WORK/com"
cp "$ROOT/internet/root.zone" "$ROOT/internet/foobar.com.zone" "$WORK/toy/"
cp "$ROOT/internet/com.zone" "$WORK/com/"
"$ONEBOX" serve --zones "$WORK/toy" --dns 127.0.0.1:0 --http 127.0.0.1:0 --ephemeral \
  > "$WORK/ready.json" 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
read_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/ready.json" "$1"; }
DNS=$(read_field dns); HTTP=$(read_field http); RESOLVER=$(read_field resolver)
PORT=${DNS##*:}
# The second process: com, where the root's glue says, on the same port.
"$ONEBOX" serve --zones "$WORK/com" --dns "127.0.0.3:$PORT" --http 127.0.0.3:0 --ephemeral \
  > "$WORK/com-ready.json" 2> "$WORK/com.log" &
COM_PID=$!
trap 'kill "$COM_PID" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -s "$WORK/com-ready.json" ] && break; sleep 0.1; done
note "root 127.0.0.2:$PORT · com 127.0.0.3:$PORT · foobar.com 127.0.0.1:$PORT · resolver $RESOLVER"

q() { dig @"${1%:*}" -p "${1##*:}" +time=2 +tries=1 "${@:2}"; }
show() { grep -E 'status:|flags:|^[a-z.]+\.[[:space:]]+[0-9]+|EDE' || true; }

say "1. Ask the root for www.foobar.com: it does not know, it refers you to com"
q "127.0.0.2:$PORT" +norec www.foobar.com | show
note "No 'aa' flag, no ANSWER: com's NS in AUTHORITY, its address (glue) in ADDITIONAL."

say "2. Ask com: it refers you to foobar.com's server"
q "127.0.0.3:$PORT" +norec www.foobar.com | show

say "3. Ask the resolver: it walks root → com → foobar.com for you"
q "$RESOLVER" www.foobar.com | show
note "'ra' (recursion available), no 'aa': the resolver is not the authority."

say "4. The same question again: from the cache, the TTL counting down"
sleep 2
q "$RESOLVER" www.foobar.com | show
curl -s -H 'Host: www.foobar.com' "http://$HTTP/_onebox/api/resolver/cache" |
  python3 -c 'import json,sys; [print("   ", r["name"], r["type"], r["rcode"], "from cache" if r["from_cache"] else "asked " + ", ".join(r["servers"])) for r in json.load(sys.stdin)["recent"]]'

say "5. A name that does not exist: NXDOMAIN, and the SOA says how long to remember that"
q "$RESOLVER" nope.foobar.com | show
note "Asked again before the SOA minimum (3600 s) runs out, the cache answers (RFC 2308):"
q "$RESOLVER" nope.foobar.com | show

say "6. The com server stops"
kill "$COM_PID"; wait "$COM_PID" 2>/dev/null || true
note "www.foobar.com still resolves: the resolver remembers foobar.com's server."
q "$RESOLVER" www.foobar.com | show
note "A new name under com needs com's server, which is gone: SERVFAIL, and the"
note "Extended DNS Error (RFC 8914) says why."
q "$RESOLVER" shop.example.com | show
