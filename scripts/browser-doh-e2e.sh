#!/usr/bin/env bash
# A real browser loads https://www.foobar.com/ with the name resolved by onebox's
# DNS over HTTPS endpoint and the page served over HTTPS by onebox, with onebox's
# CA trusted the way a user would trust it (an NSS database in $HOME).
#
# Inside a private user + network + mount namespace (nothing to clean up: it dies
# with this script) the only network is loopback. onebox serves HTTPS (and so
# /dns-query) on 127.0.0.1:443; its plain DNS listens on a port nobody asks, and
# /etc/resolv.conf points at 127.0.0.1:53 where nothing listens, so the name can
# only resolve through DoH. Chromium gets secure DNS from its profile's
# `Local State` ({"dns_over_https":{"mode":"secure",...}}), no system resolver
# change, no --host-resolver-rules, no certificate-error flags.
#
# Four loads, each with a fresh profile and HOME:
#   trusted.html     CA in the NSS db, secure DNS on (GET, RFC 8484 {?dns}
#                    template): must show our page
#   post.html        the same with a template without {?dns}: Chromium POSTs
#   untrusted.html   no CA in the NSS db, secure DNS on: must fail (DoH and the
#                    page both need the CA)
#   no-doh.html      CA trusted, no secure DNS: must fail (plain DNS reaches nothing)
#
# usage: scripts/browser-doh-e2e.sh ONEBOX_BINARY ARTIFACT_DIR
# Writes ARTIFACT_DIR/{ready.json,server.log,NAME.html,netlog.json,chromium.err} and
# prints one "key: value" line per finding, including "NAME: log lines FROM-TO": the
# server.log lines written during that load.
set -euo pipefail

if [ "${1:-}" != "--inside" ]; then
  : "${1:?usage: browser-doh-e2e.sh ONEBOX_BINARY ARTIFACT_DIR}" "${2:?artifact dir}"
  for tool in chromium certutil unshare ip; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (run scripts/test.sh)"; exit 1; }
  done
  export ONEBOX_BIN; ONEBOX_BIN=$(realpath "$1")
  export WORK; WORK=$(realpath -m "$2")
  mkdir -p "$WORK"
  rm -rf "${WORK:?}"/{ready.json,server.log,trusted.html,post.html,untrusted.html,no-doh.html,netlog.json,chromium.err,home.*}
  exec unshare --user --map-root-user --net --mount "$0" --inside
fi

ip link set lo up
# Plain DNS would go to 127.0.0.1:53, where nothing listens: only DoH can answer.
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf   # seen only in this namespace

# The built-in zone.
source "$(dirname "$0")/browser-lib.sh"
serve_and_wait --dns 127.0.0.1:5300 --http 127.0.0.1:80 --https 127.0.0.1:443
CA=$(sed -n 's/.*"ca":"\([^"]*\)".*/\1/p' "$WORK/ready.json")
[ -s "$CA" ] || { echo "ca: missing ($CA)"; exit 1; }
echo "getent: $(getent hosts www.foobar.com || echo none)"   # expected: none

# browse NAME TRUST(yes|no) TEMPLATE|none [chromium flags...]: one load, fresh
# HOME and profile; the DOM goes to NAME.html.
browse() {
  local name=$1 trust=$2 template=$3; shift 3
  local home; home=$(mktemp -d "$WORK/home.$name.XXXX")
  local profile="$home/profile"
  mkdir -p "$home/.pki/nssdb" "$profile"
  certutil -d "sql:$home/.pki/nssdb" -N --empty-password
  if [ "$trust" = yes ]; then
    certutil -d "sql:$home/.pki/nssdb" -A -t C,, -n onebox -i "$CA"
  fi
  if [ "$template" != none ]; then
    printf '{"dns_over_https":{"mode":"secure","templates":"%s"}}\n' "$template" > "$profile/Local State"
  fi
  local from; from=$(($(wc -l < "$WORK/server.log") + 1))
  HOME=$home timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@" --dump-dom https://www.foobar.com/ \
    > "$WORK/$name.html" 2>> "$WORK/chromium.err" || true
  settle
  rm -rf "$home"
  echo "$name: $(wc -c < "$WORK/$name.html") bytes of DOM"
  echo "$name: log lines $from-$(wc -l < "$WORK/server.log")"
}

# Access-log lines are written as connections close, just after Chromium exits:
# wait (bounded) until server.log stops growing, so each load's lines stay its own.
settle() {
  local last=-1 now
  for _ in $(seq 50); do
    now=$(wc -l < "$WORK/server.log")
    [ "$now" -eq "$last" ] && return
    last=$now
    sleep 0.1
  done
}

# Chromium fills {?dns} with the base64url query and sends GET (RFC 8484 §4.1);
# without it, it POSTs application/dns-message.
browse trusted yes 'https://127.0.0.1/dns-query{?dns}' --log-net-log="$WORK/netlog.json"
browse post yes 'https://127.0.0.1/dns-query'
browse untrusted no 'https://127.0.0.1/dns-query{?dns}'
browse no-doh yes none
echo "done: artifacts in $WORK"
