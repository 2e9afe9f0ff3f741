//! The integration suite: every test that drives the real `onebox` binary over
//! loopback with ordinary tools (dig, curl, openssl, ...), as one test binary so
//! cargo links the harness once. A test whose tool is missing says
//! `skipped: ...` and returns, unless `ONEBOX_TEST_STRICT=1` (scripts/test.sh)
//! makes that a failure. Tests that need root, network namespaces, Chromium or
//! the Python venv live in the system suite (tests/system/).

#![allow(clippy::unwrap_used)]

mod harness;

mod ca;
mod check;
mod cluster_up;
mod dns_abuse;
mod dns_answers;
mod dns_differential;
mod dns_load;
mod dns_percore;
mod dns_protocol;
mod doctor;
mod dyn_api;
mod dyn_fixture;
mod dyn_history;
mod dyn_ixfr;
mod dyn_journal;
mod dyn_limits;
mod dyn_live;
mod dyn_secondaries;
mod dyn_update;
mod harden_app_login;
mod harden_app_memory;
mod harden_app_posts;
mod harden_ca_limits;
mod harden_data;
mod harden_dns_include;
mod harden_dns_ixfr;
mod harden_dns_padding;
mod harden_dns_tcp_shedding;
mod harden_http;
mod harden_serve_data;
mod harden_serve_logging;
mod harden_serve_phases;
mod harden_tls;
mod harden_visit_happy_eyeballs;
mod harden_web_abuse;
mod hier_internet;
mod hier_resolver_paths;
mod https;
mod live;
mod maintenance;
mod metrics_counts;
mod metrics_prometheus;
mod node_web;
mod pg_postgres;
mod reload;
mod resolver;
mod scripts;
mod serve;
mod site_api;
mod site_board;
mod site_durability;
mod site_fast_path;
mod site_h1;
mod site_home_fast_path;
mod site_memory;
mod site_web;
mod visit;
mod web_percore;
mod zone_compat;
