//! The system suite: tests that need root, network namespaces, Chromium, a tmpfs
//! or the Python venv scripts/test.sh makes. scripts/test.sh runs it after the
//! integration suite. It shares the integration suite's harness (one copy).

#![allow(clippy::unwrap_used)]

#[path = "../integration/harness/mod.rs"]
mod harness;

mod browser;
mod browser_doh;
mod ca;
mod cluster_remedies;
mod harden_data;
mod harden_http;
mod harden_tls;
mod hier_internet;
mod site_screenshot;
