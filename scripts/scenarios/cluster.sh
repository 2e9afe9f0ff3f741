# Shared helpers for the remedied scenarios (scenarios/*-remedied.sh), sourced
# after lib.sh: `onebox cluster up` on free loopback ports with its ready line
# kept (lib.sh's cleanup takes it down on exit, whatever happens), the figures
# and bounds each scenario prints, and the few places a scenario reaches into
# the cluster (HAProxy's view of a node, the zone's names, PostgreSQL).
# shellcheck shell=bash

# jget FILE EXPR: a value from a JSON file, EXPR a Python expression on `d`,
# e.g. jget "$READY" 'd["lb"]["http"]'.
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cluster_options "$@": the scenarios' own flags. --data DIR keeps the cluster in
# DIR (a test looks at it afterwards); --http/--https/--dns ADDR pick the
# balancer's and the DNS primary's addresses (free ports by default).
cluster_options() {
  CLUSTER_DATA_ARG=$WORK/data
  LB_HTTP="127.0.0.1:$(free_port)"; LB_HTTPS="127.0.0.1:$(free_port)"; DNS_PRIMARY="127.0.0.1:$(free_port)"
  while [ $# -gt 0 ]; do
    case $1 in
      --data) CLUSTER_DATA_ARG=$2; shift 2 ;;
      --http) LB_HTTP=$2; shift 2 ;;
      --https) LB_HTTPS=$2; shift 2 ;;
      --dns) DNS_PRIMARY=$2; shift 2 ;;
      *) echo "unknown option $1 (expected --data DIR, --http ADDR, --https ADDR, --dns ADDR)" >&2; exit 2 ;;
    esac
  done
}

# cluster_start "$@": what every remedied scenario begins with: its options,
# the binary, and a three-node cluster.
cluster_start() {
  cluster_options "$@"
  build
  say "onebox cluster up --nodes 3"
  cluster_up --nodes 3
}

# cluster_up [--nodes N]: sets READY (the ready line's file), CLUSTER_DATA, LB,
# and NODE_PIDS / NODE_NAMES.
cluster_up() {
  mkdir -p "$CLUSTER_DATA_ARG"
  # PostgreSQL runs as the postgres user, which must be able to walk into the
  # data folder (mktemp makes folders only their owner can enter).
  chmod o+x "$WORK" "$CLUSTER_DATA_ARG"
  READY=$WORK/cluster-ready.json
  # Set before starting: a half-started cluster is taken down too.
  CLUSTER_DATA=$CLUSTER_DATA_ARG
  "$ONEBOX" cluster up "$@" --data "$CLUSTER_DATA" --http "$LB_HTTP" --https "$LB_HTTPS" \
    --dns "$DNS_PRIMARY" > "$READY"
  cp "$READY" "$CLUSTER_DATA/scenario-ready.json"
  LB=$LB_HTTP
  note "the cluster is up: HAProxy on $LB_HTTP (HTTP) and $LB_HTTPS (HTTPS), DNS primary $DNS_PRIMARY"
  python3 - "$READY" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for n in d["nodes"]:
    print(f"   web node {n['name']:8} {n['http']:22} pid {n['pid']}")
print(f"   DNS primary {d['dns']['primary']} (hidden), secondaries " +
      ", ".join(f"{s['name']} {s['addr']}" for s in d["dns"]["secondaries"]))
print(f"   PostgreSQL primary {d['postgres']['primary']}, replica {d['postgres']['replica']}")
PY
}

# figure NAME VALUE: prints a measured figure and records it (record: only
# records it) for tests, which read $FIGURES (a JSON object) when the caller sets it.
FIGURES_JSON="{}"
figure() { printf '   %-40s %s\n' "$1" "$2"; record "$1" "$2"; }
record() {
  FIGURES_JSON=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=sys.argv[3]
try: v=json.loads(v)
except ValueError: pass
d[sys.argv[2]]=v; print(json.dumps(d))' "$FIGURES_JSON" "$1" "$2")
  if [ -n "${FIGURES:-}" ]; then printf '%s\n' "$FIGURES_JSON" > "$FIGURES"; fi
}

# bound WHAT OK: a headline the scenario promises; the run fails when it does not hold.
FAILED_BOUNDS=0
bound() {
  if python3 -c "import sys; sys.exit(0 if ($2) else 1)"; then
    printf '   \033[32m✓\033[0m %s\n' "$1"
  else
    printf '   \033[31m✗\033[0m %s  (%s)\n' "$1" "$2"; FAILED_BOUNDS=$((FAILED_BOUNDS + 1))
  fi
}

# load ARGS...: scripts/scenarios/load.py (steady HTTP load, one log line per request).
load() { python3 "$ROOT/scripts/scenarios/load.py" "$@"; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s; fails the run after SECONDS.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then echo "gave up after ${limit}s waiting for: $what" >&2; exit 1; fi
    sleep 0.1
  done
}

# account NAME: signs NAME up through the balancer and prints a session token.
account() {
  local body="{\"username\":\"$1\",\"password\":\"correct-horse-$1\"}"
  curl -sS -o /dev/null -H "Host: foobar.com" -H "Content-Type: application/json" -d "$body" "http://$LB/api/v1/users"
  curl -sS -H "Host: foobar.com" -H "Content-Type: application/json" -d "$body" "http://$LB/api/v1/sessions" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# ---------------------------------------------------------------------------
# Reaching into the cluster
# ---------------------------------------------------------------------------

# node_field K FIELD: a field of the K-th node (1-based) in the ready line.
node_field() { jget "$READY" "d['nodes'][$1 - 1]['$2']"; }

# node_names: every node's name, in order.
node_names() { jget "$READY" '" ".join(n["name"] for n in d["nodes"])'; }

# haproxy_csv: HAProxy's stats as CSV (one line per frontend, backend and server;
# field 2 is the server's name, field 18 its status: UP, DOWN, MAINT...).
haproxy_csv() { curl -sS --max-time 2 "$(jget "$READY" 'd["lb"]["stats"]');csv"; }

# node_status NAME: HAProxy's view of a node (UP, DOWN, "UP 1/2" while rising...).
node_status() { haproxy_csv | awk -F, -v n="$1" '$1 == "nodes_http" && $2 == n {print $18; exit}'; }
node_up() { [ "$(node_status "$1")" = UP ]; }
node_down() { case $(node_status "$1") in DOWN*|MAINT*) return 0 ;; *) return 1 ;; esac; }

# node_pid_now NAME: the node's current pid, from the supervisor's state file (it
# gives a restarted node a new one).
node_pid_now() { jget "$CLUSTER_DATA/cluster/state.json" "d['pids']['$1']"; }

# node_data NAME: the node's data folder (its control socket, for `onebox maintenance`).
node_data() { jget "$READY" "next(n['data'] for n in d['nodes'] if n['name'] == '$1')"; }

# secondaries: the DNS secondaries' addresses (Knot's, NSD's), space-separated.
secondaries() { jget "$READY" '" ".join(s["addr"] for s in d["dns"]["secondaries"])'; }

# zone_names: every "name/TYPE" of the zone, from a transfer off the primary. The
# primary allows transfers to its secondaries only, so ask from a secondary's address.
zone_names() {
  local primary secondary
  primary=$(jget "$READY" 'd["dns"]["primary"]')
  secondary=$(jget "$READY" 'd["dns"]["secondaries"][0]["addr"]')
  dig +nocmd +noall +answer -b "${secondary%:*}" -p "${primary##*:}" "@${primary%:*}" foobar.com AXFR |
    awk '{print $1 "/" $4}' | sort -u
}

# soa_serial ADDR: the zone's serial as the DNS server at ADDR (ip:port) has it.
soa_serial() { dig +short +norec +time=1 +tries=1 -p "${1##*:}" "@${1%:*}" foobar.com SOA | awk '{print $3}'; }

# pg_as_owner PROGRAM ARGS...: PostgreSQL's tools refuse root; run them as the
# postgres user then (the cluster's folders belong to it).
pg_as_owner() {
  local bin
  bin=$(find /usr/lib/postgresql -maxdepth 3 -name "$1" -path '*/bin/*' | sort -V | tail -1)
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin" "$@"; else "$bin" "$@"; fi
}

# pg_stop_primary: a clean, fast stop of the primary (pg_ctl stop -m fast): the
# database server goes away; the supervisor leaves it stopped on purpose.
pg_stop_primary() { pg_as_owner pg_ctl stop -m fast -w -t 20 -D "$CLUSTER_DATA/cluster/pg-primary" > /dev/null; }

# pg_promote_replica: the replica becomes a primary that accepts writes.
pg_promote_replica() { pg_as_owner pg_ctl promote -w -t 20 -D "$CLUSTER_DATA/cluster/pg-replica" > /dev/null; }

# all_post_ids: every post id the site lists now (GET /api/v1/posts, page by page).
all_post_ids() {
  python3 - "$LB" <<'PY'
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
ids, before = [], None
while True:
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    path = "/api/v1/posts?limit=1000" + (f"&before={before}" if before else "")
    conn.request("GET", path, headers={"Host": "foobar.com"})
    posts = json.loads(conn.getresponse().read())["posts"]
    if not posts:
        break
    ids += [p["id"] for p in posts]
    before = posts[-1]["id"]
print(json.dumps(ids))
PY
}

# dns_key: the DNS primary's TSIG key file (nsupdate -k), in its data folder.
dns_key() { jget "$READY" 'd["dns"]["tsig"]'; }

# dns_update SERVER KEYFILE LINE...: one signed UPDATE to foobar.com (nsupdate).
dns_update() {
  local server=$1 key=$2; shift 2
  printf 'server %s %s\nzone foobar.com\n%s\nsend\n' "${server%:*}" "${server##*:}" "$(printf '%s\n' "$@")" |
    timeout 20 nsupdate -k "$key"
}

# since EPOCH: seconds elapsed since EPOCH (date +%s.%N), to two decimals.
since() { python3 -c 'import sys,time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$1"; }

# cpu_ticks PID: CPU time (clock ticks) used so far by PID and every process
# below it, e.g. HAProxy's master and worker, or (from the supervisor) the whole
# cluster. /proc/PID/stat fields 14-17: user and system time, the process's own
# and its finished children's (so a process that came and went still counts).
cpu_ticks() {
  python3 - "$1" <<'PY'
import os, sys
stats = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    stats[int(pid)] = (int(fields[1]), sum(map(int, fields[11:15])))  # ppid; utime..cstime
todo, total = [int(sys.argv[1])], 0
while todo:
    pid = todo.pop()
    total += stats.get(pid, (0, 0))[1]
    todo += [child for child, (ppid, _) in stats.items() if ppid == pid]
print(total)
PY
}
