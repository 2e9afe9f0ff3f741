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
mod dns_abuse;
mod dns_answers;
mod dns_differential;
mod dns_load;
mod dns_protocol;
mod doctor;
mod dyn_api;
mod dyn_fixture;
mod dyn_ixfr;
mod dyn_journal;
mod dyn_secondaries;
mod dyn_update;
mod harden_data;
mod harden_http;
mod harden_tls;
mod https;
mod live;
mod maintenance;
mod reload;
mod resolver;
mod scripts;
mod serve;
mod site_api;
mod site_durability;
mod site_web;
mod visit;
mod zone_compat;
