# Shared by browser-e2e.sh and browser-doh-e2e.sh, inside their namespace: start
# onebox on the shipped zone (www.foobar.com CNAME foobar.com, foobar.com A
# 127.0.0.1) and wait for its ready line.
# shellcheck shell=bash

# serve_and_wait SERVE_FLAGS...: `onebox serve --zones /nonexistent --ephemeral
# --log-format json SERVE_FLAGS...`, its ready line in $WORK/ready.json and its
# log in $WORK/server.log. Sets SERVER_PID, stops the server when the script
# exits, waits (bounded) for the ready line and prints it.
serve_and_wait() {
  # The per-query DNS event is at debug level as shipped; the tests read it.
  RUST_LOG="${RUST_LOG:-info,hickory_server=warn,hickory_proto=warn,onebox::dns::query=debug}" \
  "$ONEBOX_BIN" serve --zones /nonexistent --ephemeral --log-format json "$@" \
    > "$WORK/ready.json" 2> "$WORK/server.log" &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT

  for _ in $(seq 100); do                     # bounded wait for the ready line
    [ -s "$WORK/ready.json" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server: died"; cat "$WORK/server.log"; exit 1; }
    sleep 0.1
  done
  echo "ready: $(head -1 "$WORK/ready.json")"
}
