# Shared helpers for demo.sh and scenarios/*.sh: build onebox once, start it on
# free ports with all state in memory, read its ready line, and always stop it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ONEBOX=${ONEBOX:-}
SERVER_PID=
CLUSTER_DATA=
WORK=$(mktemp -d)

cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$CLUSTER_DATA" ]; then
    say "onebox cluster down"
    "$ONEBOX" cluster down --data "$CLUSTER_DATA" || echo "cluster down failed: see $CLUSTER_DATA" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$@"; }

build() {
  if [ -z "$ONEBOX" ]; then
    say "Building onebox (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    ONEBOX="$ROOT/target/release/onebox"
  fi
}

# start [extra serve flags...]: sets DNS, HTTP, HTTPS, CA, CONTROL, SERVER_PID
start() {
  "$ONEBOX" serve --zones "$ROOT/zones" --dns 127.0.0.1:0 --http 127.0.0.1:0 --ephemeral "$@" \
    > "$WORK/ready.json" 2> "$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    [ -s "$WORK/ready.json" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "onebox did not start" >&2; exit 1; }
    sleep 0.1
  done
  read_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/ready.json" "$1"; }
  DNS=$(read_field dns); HTTP=$(read_field http); HTTPS=$(read_field https)
  CA=$(read_field ca); CONTROL=$(read_field control)
  DNS_PORT=${DNS##*:}; HTTP_PORT=${HTTP##*:}; HTTPS_PORT=${HTTPS##*:}
  note "onebox is up: DNS $DNS, HTTP $HTTP, HTTPS $HTTPS (pid $SERVER_PID)"
}

stop() {
  kill "$1" "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

need() {  # need COMMAND PACKAGE: install from Debian when missing
  command -v "$1" >/dev/null 2>&1 && return
  say "Installing $2"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$2" >/dev/null
}

