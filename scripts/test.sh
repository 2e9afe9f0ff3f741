#!/usr/bin/env bash
# The one command that runs every onebox test, on a fresh Debian or Ubuntu machine
# or a developer's laptop: `bash scripts/test.sh` from anywhere in the checkout.
#
# 1. installs the tools the tests drive (dig, the BIND and NSD zone checkers,
#    Chromium, ...) with apt-get, only if one is missing;
# 2. checks formatting and lints;
# 3. runs any extra step a later issue adds (see EXTRA STEPS below);
# 4. builds the API docs with warnings denied (`cargo doc --no-deps`);
# 5. runs the tests in two suites over one debug build: first the unit tests, the
#    integration suite (tests/integration: the real binary over loopback with dig,
#    curl, openssl, nsd, knot, nginx, ...) and the doctests; then the system suite
#    (tests/system: root, namespaces, a tmpfs, Chromium, testssl.sh, slowhttptest,
#    the Python venv).
#
# ONEBOX_TEST_STRICT=1 is exported: a test whose tool or privilege is missing
# fails instead of printing `skipped: ...` and passing, as it does under a plain
# `cargo test` on a laptop. cargo test comes last so its summary lines are the
# last thing printed.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==> %s\n' "$*"
}

# Run as root in CI; elsewhere use sudo for apt-get only.
# shellcheck source=scripts/as-root.sh
source scripts/as-root.sh

# --- 1. System packages -------------------------------------------------------
# "package:command" pairs: the command proves the package is there without asking
# dpkg (faster, and works where a tool came from elsewhere). An empty command
# means "ask dpkg". Later issues add their tools here.
PACKAGES=(
    "bind9-dnsutils:dig"            # dig, nsupdate: the DNS tests' client
    "bind9-utils:named-checkzone"   # BIND's zone checker (tests/zone_compat.rs)
    "nsd:nsd-checkzone"             # NSD's zone checker (tests/zone_compat.rs)
    "knot:"                         # knotd (and nsd): the oracles of tests/dns_differential.rs
    "knot-dnsutils:kdig"            # a second DNS client
    "python3:python3"
    "iproute2:ip"                   # network namespaces for the browser tests
    "chromium:chromium"             # headless browser tests
    "curl:curl"
    "nftables:nft"
    "openssl:openssl"               # s_client, x509, verify (tests/https.rs, tests/ca.rs)
    "libnss3-tools:certutil"        # Chromium's NSS trust store (tests/browser_doh.rs)
    "slowhttptest:slowhttptest"     # slow clients (tests/harden_http.rs, H1-H3)
    "nginx:nginx"                   # the HTTP/1.1 parsing oracle (tests/harden_http.rs, H7)
    "testssl.sh:testssl"            # TLS protocols and suites (tests/harden_tls.rs, H9)
    "python3-venv:"                 # the venv for the HTTP/2 flood scripts, below
    "wrk:wrk"                       # load for scripts/scenarios/scale.sh (tests/scripts.rs)
    "util-linux:script"             # a real terminal for visit's colour test
    "postgresql:"                   # PostgreSQL 15+: the --db postgres:// backend (tests/integration/pg_*.rs, second site pass)
    "unbound:unbound"               # a stock resolver against the toy Internet (scripts/internet-netns.sh)
    "prometheus:promtool"           # prometheus + promtool: scrapes and checks /metrics (tests/integration/metrics_*.rs)
    "haproxy:haproxy"               # the balancer of onebox cluster (tests/integration/cluster_*.rs)
)

missing=()
for entry in "${PACKAGES[@]}"; do
    package="${entry%%:*}"
    command="${entry#*:}"
    if [ -n "$command" ] && command -v "$command" >/dev/null 2>&1; then
        continue
    fi
    if dpkg -s "$package" >/dev/null 2>&1; then
        continue
    fi
    missing+=("$package")
done

section "system packages"
if [ "${#missing[@]}" -eq 0 ]; then
    echo "all present"
else
    echo "installing: ${missing[*]}"
    # `env` keeps DEBIAN_FRONTEND through sudo, which resets the environment.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y --no-install-recommends "${missing[@]}"
fi

# The nsd (and knot, if present) packages start system daemons on install. The
# tests only use their zone checkers, and run any oracle server by hand on its own
# port, so stop the services. There may be no systemd (containers): tolerate that.
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop nsd knot unbound >/dev/null 2>&1 || true
    as_root systemctl disable nsd knot unbound >/dev/null 2>&1 || true
fi
# Without systemd, postinst may have started them through init scripts. Stop only
# the package daemons: /usr/sbin/nsd or /usr/sbin/knotd listening on port 53.
if command -v ss >/dev/null 2>&1; then
    for pid in $(ss -Hlnup 'sport = :53' 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u) \
               $(ss -Hlntp 'sport = :53' 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
        case "$exe" in
            /usr/sbin/nsd | /usr/sbin/knotd | /usr/sbin/unbound)
                echo "stopping the $exe system daemon (pid $pid) that its package started on port 53"
                as_root kill "$pid" 2>/dev/null || true
                ;;
        esac
    done
fi

# nginx's package starts a system server on port 80; the tests run their own
# nginx by hand on a free loopback port, so stop the packaged one.
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop nginx >/dev/null 2>&1 || true
    as_root systemctl disable nginx >/dev/null 2>&1 || true
fi

# postgresql's package starts a cluster on port 5432; the tests run their own
# throwaway clusters on free loopback ports, so stop the packaged one.
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop postgresql >/dev/null 2>&1 || true
    as_root systemctl disable postgresql >/dev/null 2>&1 || true
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1 "/" $2}'); do
        as_root pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop >/dev/null 2>&1 || true
    done
fi
# prometheus's package starts a system server on :9090 (and scrapes :9100); the
# tests run their own Prometheus by hand on a free loopback port with a temporary
# storage folder, so stop the packaged one (and its exporter, if one came along).
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true
    as_root systemctl disable prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
# Without systemd, postinst may have started it through its init script: the
# packaged one runs as the `prometheus` user, the tests' own ones do not.
if command -v pgrep >/dev/null 2>&1 && id prometheus >/dev/null 2>&1; then
    for pid in $(pgrep -u prometheus -x prometheus 2>/dev/null); do
        echo "stopping the packaged prometheus (pid $pid)"
        as_root kill "$pid" 2>/dev/null || true
    done
fi

# Python's h2 and hyperframe for the HTTP/2 flood scripts (scripts/harden/), in a
# venv under target/ (Debian's Python refuses a global pip install, PEP 668).
section "python venv (target/venv)"
if ! target/venv/bin/python3 -c 'import h2, hyperframe' >/dev/null 2>&1; then
    python3 -m venv target/venv
    target/venv/bin/pip install --quiet h2 hyperframe
fi
echo "h2 $(target/venv/bin/python3 -c 'import h2; print(h2.__version__)') in target/venv"

# --- 2. Rust toolchain ----------------------------------------------------------
section "rust toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found: install Rust 1.90 or newer (https://rustup.rs)" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        rustup component add rustfmt clippy
    else
        echo "test.sh: cargo fmt and cargo clippy are needed (rustup component add rustfmt clippy)" >&2
        exit 1
    fi
fi
cargo --version

# --- 3. Format and lints --------------------------------------------------------
section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

# --- 4. EXTRA STEPS ---------------------------------------------------------------
# Later issues add a step by appending to this list: each entry is a command run
# from the repository root, e.g. "bash scripts/browser-test.sh". Steps run before
# cargo test so cargo test's summary stays at the end of the output.
EXTRA_STEPS=(
    "bash scripts/fuzz.sh"  # D14: a bounded cargo-fuzz run of the DNS engine, where nightly exists
)
for step in "${EXTRA_STEPS[@]+"${EXTRA_STEPS[@]}"}"; do
    section "$step"
    bash -c "$step"
done

# --- 5. API docs -------------------------------------------------------------------
# The docs are for people reading the code, so private items are documented too.
# Every lint is an error: a broken or private link in a public module's docs too.
section "cargo doc --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --document-private-items

# --- 6. Tests ----------------------------------------------------------------------
# One debug build serves both suites (they run the binary cargo builds for them,
# env!("CARGO_BIN_EXE_onebox")). --no-fail-fast runs every test binary even after
# one fails, so a run reports every failure at once; the system suite runs even
# when the first failed, and the script fails if either did.
export ONEBOX_TEST_STRICT=1
status=0
section "cargo test: unit tests and the integration suite"
cargo test --locked --no-fail-fast --lib --bins --test integration || status=$?

# cargo cannot mix --doc with other targets in one run.
section "cargo test: doctests"
cargo test --locked --no-fail-fast --doc || status=$?

# The site, API and durability tests a second time, on PostgreSQL: the same test
# functions, parametrised by ONEBOX_TEST_DB (tests/integration/harness/postgres.rs
# gives each server a fresh database on this one throwaway cluster). initdb
# refuses root, so the cluster runs as the postgres user; it stops at exit.
section "cargo test: the site suites again, on PostgreSQL"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
pg_dir="$(mktemp -d /tmp/onebox-test-pg-XXXXXX)"
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$pg_dir"
stop_pg() {
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_pg EXIT
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres --no-instructions >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg_dir -c fsync=on -c max_connections=300" \
    start >/dev/null
ONEBOX_TEST_DB="postgres://postgres@127.0.0.1:$pg_port" \
    cargo test --locked --no-fail-fast --test integration site_ || status=$?

section "cargo test: system suite (root, namespaces, Chromium, venv)"
cargo test --locked --no-fail-fast --test system || status=$?
exit "$status"
