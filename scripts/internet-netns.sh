#!/usr/bin/env bash
# The toy Internet on port 53, where stock resolvers look: Unbound, glibc and
# `dig +trace` speak only to port 53, which needs root. So, as the browser test
# does, this runs inside a private user + network + mount namespace (nothing to
# clean up: it dies with this script) whose only network is loopback:
#
#   onebox serve --zones internet --dns 127.0.0.1:53
#     root 127.0.0.2:53 → com 127.0.0.3:53 → foobar.com 127.0.0.1:53,
#     and onebox's own resolver at 127.0.0.53:53
#   unbound on 127.0.0.54:53, given only the toy root's hints
#
# Checks, each printed as "key: value" for the caller:
#   unbound:   a stock Unbound resolves www.foobar.com from the root hints;
#   trace:     `dig +trace www.foobar.com` walks root → com → foobar.com;
#   getent:    glibc (`getent hosts`) resolves with resolv.conf → 127.0.0.53;
#   differential: onebox's resolver and Unbound give the same rcode and answer
#              RRsets for a set of names (found, CNAME, NXDOMAIN, NODATA, TLD).
#
# usage: scripts/internet-netns.sh ONEBOX_BINARY ARTIFACT_DIR
# Writes ARTIFACT_DIR/{server.log,unbound.log,unbound.conf,root.hints,trace.txt}.
set -euo pipefail

if [ "${1:-}" != "--inside" ]; then
  : "${1:?usage: internet-netns.sh ONEBOX_BINARY ARTIFACT_DIR}" "${2:?artifact dir}"
  export ONEBOX_BIN; ONEBOX_BIN=$(realpath "$1")
  export WORK; WORK=$(realpath -m "$2")
  export ZONES; ZONES=$(realpath "$(dirname "$0")/../internet")
  mkdir -p "$WORK"
  rm -f "$WORK"/{server.log,unbound.log,unbound.conf,root.hints,trace.txt}
  exec unshare --user --map-root-user --net --mount "$0" --inside
fi

ip link set lo up
# glibc asks onebox's resolver, at systemd-resolved's stub address.
printf 'nameserver 127.0.0.53\noptions timeout:2 attempts:2\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf   # seen only in this namespace

"$ONEBOX_BIN" serve --zones "$ZONES" --dns 127.0.0.1:53 --http 127.0.0.1:80 --https 127.0.0.1:443 \
  --dot 127.0.0.1:853 --ephemeral > "$WORK/ready.json" 2> "$WORK/server.log" &
SERVER_PID=$!
UNBOUND_PID=
cleanup() {
  [ -n "$UNBOUND_PID" ] && kill "$UNBOUND_PID" 2>/dev/null || true
  kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q '"ready":true' "$WORK/ready.json" 2>/dev/null && break; sleep 0.1; done
grep -q '"ready":true' "$WORK/ready.json" || { echo "onebox did not start"; cat "$WORK/server.log"; exit 1; }

# A stock Unbound that knows nothing but the toy root (the file a real resolver
# ships as root.hints, with 127.0.0.2 for the real root's addresses).
printf '.                   3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A  127.0.0.2\n' \
  > "$WORK/root.hints"
cat > "$WORK/unbound.conf" <<CONF
server:
  interface: 127.0.0.54
  port: 53
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: ""
  use-syslog: no
  logfile: "$WORK/unbound.log"
  verbosity: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  root-hints: "$WORK/root.hints"
  # The toy Internet lives on loopback, which Unbound refuses to ask by default.
  do-not-query-localhost: no
  # The toy is unsigned: iterate, no DNSSEC validation.
  module-config: "iterator"
  qname-minimisation: yes
CONF
unbound -c "$WORK/unbound.conf" &
UNBOUND_PID=$!
for _ in $(seq 50); do dig @127.0.0.54 +time=1 +tries=1 . NS >/dev/null 2>&1 && break; sleep 0.1; done

status() { sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1; }
answers() { awk '!/^;/ && NF >= 5 { print tolower($1), $4, tolower($5) }' | sort; }

unbound_a=$(dig @127.0.0.54 +time=2 +tries=2 www.foobar.com A +short | tr '\n' ' ')
echo "unbound: $unbound_a"
case "$unbound_a" in *127.0.0.1*) ;; *) echo "FAIL: unbound did not resolve www.foobar.com"; exit 1 ;; esac

dig +trace +time=2 +tries=1 www.foobar.com > "$WORK/trace.txt" 2>&1 || true
if grep -q 'from 127.0.0.2#53' "$WORK/trace.txt" && grep -q 'from 127.0.0.3#53' "$WORK/trace.txt" \
  && grep -Eq '^foobar\.com\.[[:space:]].*A[[:space:]]+127\.0\.0\.1' "$WORK/trace.txt"; then
  echo "trace: root → com → foobar.com"
else
  echo "FAIL: dig +trace did not walk root → com → foobar.com"; cat "$WORK/trace.txt"; exit 1
fi

getent_out=$(getent hosts www.foobar.com || true)
echo "getent: $getent_out"
case "$getent_out" in 127.0.0.1*) ;; *) echo "FAIL: getent hosts www.foobar.com"; exit 1 ;; esac

# The differential: the same questions to both resolvers, compared on rcode and
# the ANSWER RRsets (name, type, data; TTLs differ by when each cached them).
failed=0
for q in "www.foobar.com A" "foobar.com A" "www.foobar.com AAAA" "foobar.com MX" "nope.foobar.com A" \
         "ns1.foobar.com A" "nope.com A" "com NS" "foobar.com NS" "a.nic.com A" "www.example.org A"; do
  set -- $q
  ours=$(dig @127.0.0.53 +time=2 +tries=2 "$1" "$2")
  theirs=$(dig @127.0.0.54 +time=2 +tries=2 "$1" "$2")
  a="$(echo "$ours" | status) $(echo "$ours" | sed -n '/ANSWER SECTION/,/^$/p' | answers | tr '\n' ' ')"
  b="$(echo "$theirs" | status) $(echo "$theirs" | sed -n '/ANSWER SECTION/,/^$/p' | answers | tr '\n' ' ')"
  if [ "$a" = "$b" ]; then
    echo "differential: $q: same: $a"
  else
    echo "differential: $q: DIFFERENT: onebox [$a] unbound [$b]"; failed=1
  fi
done
[ "$failed" = 0 ] || { echo "FAIL: onebox's resolver and Unbound disagree"; exit 1; }
echo "PASS"
