#!/usr/bin/env bash
# A real browser resolves www.foobar.com through onebox's DNS and loads the page.
#
# Inside a private user + network + mount namespace (nothing to clean up: it dies
# with this script) the only network is loopback, /etc/resolv.conf says
# "nameserver 127.0.0.1", and onebox serves DNS on 127.0.0.1:53 and HTTP on the
# apex A record's address, port 80. No hosts file entry and no
# --host-resolver-rules: Chromium finds the address the way any browser does.
# Then onebox is stopped and the same load must fail (the negative control).
#
# usage: scripts/browser-e2e.sh ONEBOX_BINARY ARTIFACT_DIR
# Writes ARTIFACT_DIR/{server.log,dom.html,shot.png,after-stop.html,chromium.err}
# and prints one "key: value" line per finding for the caller to check.
set -euo pipefail

if [ "${1:-}" != "--inside" ]; then
  : "${1:?usage: browser-e2e.sh ONEBOX_BINARY ARTIFACT_DIR}" "${2:?artifact dir}"
  export ONEBOX_BIN; ONEBOX_BIN=$(realpath "$1")
  export WORK; WORK=$(realpath -m "$2")
  mkdir -p "$WORK"
  rm -f "$WORK"/{server.log,dom.html,shot.png,after-stop.html,chromium.err}
  exec unshare --user --map-root-user --net --mount "$0" --inside
fi

ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf   # seen only in this namespace

# The shipped zone is the fixture.
source "$(dirname "$0")/browser-lib.sh"
serve_and_wait --dns 127.0.0.1:53 --http 127.0.0.1:80
echo "getent: $(getent hosts www.foobar.com || echo none)"

browse() {                                    # a fresh profile per run
  local profile; profile=$(mktemp -d "$WORK/profile.XXXX")
  HOME=$profile timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-features=HttpsUpgrades --user-data-dir="$profile" "$@" 2>> "$WORK/chromium.err" || true
  rm -rf "$profile"
}
browse --window-size=1000,900 --screenshot="$WORK/shot.png" http://www.foobar.com/
browse --dump-dom http://www.foobar.com/ > "$WORK/dom.html"

kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
browse --dump-dom http://www.foobar.com/ > "$WORK/after-stop.html"
echo "done: artifacts in $WORK"
