#!/usr/bin/env bash
# onebox against the servers it stands in for, side by side on this machine:
# NSD and Knot serving the same zone file, nginx serving the same static file.
#
#   bash scripts/bench.sh           full run (3 interleaved rounds of 10 s, ~10 min)
#   bash scripts/bench.sh --quick   2 rounds of 4 s, under 3 minutes
#   bash scripts/bench.sh --cores 1,2,4,8   DNS UDP and static HTTP only, with the
#                                   servers on the first N cores and the load on the rest
#
# 1. installs dnsperf, nsd, knot, nginx, wrk, h2load and postgresql with apt-get if missing, and
#    stops the system services those packages start (we run our own copies);
# 2. builds onebox in release mode (cargo reuses an up-to-date build);
# 3. runs scripts/bench/bench.py, which starts every server pinned to core 0 and
#    the load generator on core 1, and reports medians and work per server
#    CPU-second as a markdown table, on stdout and in target/bench/.
#
# All load goes to 127.0.0.1, every run is time-bounded, and an exit trap stops
# every server this script started, also on Ctrl-C or failure.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --quick          2 rounds of 4 s per figure, 3 latency rounds of 2 s, 5 starts
  --rounds N       interleaved rounds per figure (default 3)
  --seconds S      length of each load run (default 10)
  --metrics-only   only the cost of metrics: onebox with metrics on (the default)
                   against --metrics off, DNS UDP and static HTTP, per CPU-second
  --cores LIST     comma-separated server core counts (e.g. 1,2,4,8): for each N,
                   DNS UDP and static HTTP with every server pinned to cores 0..N-1
                   (N workers each) and the load generators on the other cores;
                   each N must leave at least one core for the load
  --connections N  wrk connections for the static file (default 32; the default
                   run adds a 256-connection row)
  --binary PATH    benchmark this onebox binary instead of building one
  --out FILE       results file (default target/bench/results-DATE.md)
EOF
}

mode=full
rounds=3
latency_rounds=5
latency_seconds=4
seconds=10
startups=15
binary=""
out=""
only=all
cores=""
connections=32
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mode=quick rounds=2 latency_rounds=3 latency_seconds=2 seconds=4 startups=5 ;;
        --rounds) rounds="$2"; shift ;;
        --seconds) seconds="$2"; shift ;;
        --metrics-only) only=metrics ;;
        --cores) cores="${2:-}"; shift ;;
        --connections) connections="${2:-}"; shift ;;
        --binary) binary="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

positive() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]]
}
if ! positive "$connections"; then
    echo "bench.sh: --connections takes a positive number, not '$connections'" >&2
    exit 2
fi
# Checked before anything is installed or built: a core count this machine cannot
# split into servers and load is refused with the largest it can.
if [ -n "$cores" ]; then
    if ! [[ "$cores" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
        echo "bench.sh: --cores takes a comma-separated list of core counts (e.g. 1,2,4,8), not '$cores'" >&2
        exit 2
    fi
    total="$(nproc)"
    for n in ${cores//,/ }; do
        if ! positive "$n" || [ "$n" -ge "$total" ]; then
            allowed="1"
            [ "$total" -gt 2 ] && allowed="1 to $((total - 1))"
            echo "bench.sh: --cores $n cannot be measured on this machine: it has $total cores and the load" \
                "generators need at least one of their own, so each count must be $allowed" >&2
            exit 2
        fi
    done
fi

section() {
    printf '\n==> %s\n' "$*" >&2
}

# shellcheck source=scripts/as-root.sh
source scripts/as-root.sh

# --- 1. Tools ---------------------------------------------------------------------
# "package:command" pairs; the command proves the package is installed.
PACKAGES=(
    "dnsperf:dnsperf"
    "nsd:nsd"
    "knot:knotd"
    "nginx:nginx"
    "wrk:wrk"
    "nghttp2-client:h2load"
    "util-linux:taskset"
    "python3:python3"
    "postgresql:pg_lsclusters"      # PostgreSQL: onebox --db postgres:// and the pgbench baseline
)
# nsd, knotd and nginx live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for entry in "${PACKAGES[@]}"; do
    command -v "${entry#*:}" >/dev/null 2>&1 || missing+=("${entry%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    section "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y --no-install-recommends "${missing[@]}" >&2
fi

# The packages start system-wide daemons where an init system runs. They would
# compete for the cores being measured (and nginx holds port 80), so stop and
# disable them. Only the packaged services are touched: a daemon counts as one
# when its packaged pid file names it; copies others run by hand are left alone.
stop_service() {
    local name="$1" binary="$2" pidfile="$3" pid
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet "$name" 2>/dev/null || systemctl is-enabled --quiet "$name" 2>/dev/null; then
            section "stopping and disabling the system $name service"
            as_root systemctl disable --now "$name" >&2 || true
        fi
        return
    fi
    [ -r "$pidfile" ] || return 0
    pid="$(tr -dc 0-9 <"$pidfile")"
    [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$binary" ] || return 0
    section "stopping the system $name service (pid $pid)"
    if [ -x "/etc/init.d/$name" ]; then
        as_root "/etc/init.d/$name" stop >&2 || true
    fi
    if [ -d "/proc/$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$binary" ]; then
        as_root kill -TERM "$pid" || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        as_root update-rc.d "$name" disable >/dev/null 2>&1 || true
    fi
}
stop_service nsd /usr/sbin/nsd /run/nsd/nsd.pid
stop_service knot /usr/sbin/knotd /run/knot/knot.pid
stop_service nginx /usr/sbin/nginx /run/nginx.pid
# The packaged PostgreSQL cluster (bench.py runs its own on a free port).
if command -v pg_lsclusters >/dev/null 2>&1; then
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1 "/" $2}'); do
        as_root pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop >/dev/null 2>&1 || true
    done
fi

if [ "$(nproc)" -lt 2 ]; then
    echo "bench.sh: needs 2 cores (one for the server, one for the load generator)" >&2
    exit 1
fi

# --- 2. Build ----------------------------------------------------------------------
if [ -z "$binary" ]; then
    section "cargo build --release"
    cargo build --release --quiet
    binary="$PWD/target/release/onebox"
fi
binary="$(realpath "$binary")"

# --- 3. Measure ---------------------------------------------------------------------
mkdir -p target/bench
# The work folder sits on the checkout's disk, not a possible tmpfs /tmp: the
# durable-writes figure must pay for a real fsync.
work="$(mktemp -d "$PWD/target/bench/run.XXXXXX")"
# nginx's worker drops to an unprivileged user and must read the site folder.
chmod 755 "$work"
cleanup() {
    local status=$? pg
    # bench.py stops its servers itself; this catches anything left if it died.
    # Each server is the leader of its own process group, recorded at start.
    if [ -r "$work/pgids" ]; then
        while read -r pg; do
            kill -TERM -- "-$pg" 2>/dev/null || true
        done <"$work/pgids"
        sleep 0.5
        while read -r pg; do
            kill -KILL -- "-$pg" 2>/dev/null || true
        done <"$work/pgids"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy: a concurrent `cargo build` must not swap the binary between the
# long-running instance and the startup measurements.
cp "$binary" "$work/onebox"

out="${out:-target/bench/results-$(date -u +%Y%m%d-%H%M%S).md}"
if [ -n "$cores" ]; then
    section "measuring ($mode run); servers on the first N cores for N in $cores, load on the rest"
else
    section "measuring ($mode run); servers on core 0, load on core 1"
fi
# The driver itself (its probes and bookkeeping) stays off the servers' cores too:
# the last core is a load core whatever --cores says.
taskset -c "$(($(nproc) - 1))" python3 -B scripts/bench/bench.py \
    --binary "$work/onebox" --work "$work" --zone zones/foobar.com.zone --out "$out" \
    --rounds "$rounds" --latency-rounds "$latency_rounds" --latency-seconds "$latency_seconds" --seconds "$seconds" \
    --startups "$startups" --mode "$mode" --only "$only" --connections "$connections" \
    ${cores:+--cores "$cores"}
cp "$out" target/bench/latest.md
section "written to $out (and target/bench/latest.md)"
