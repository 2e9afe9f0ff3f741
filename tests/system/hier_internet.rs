//! The toy Internet on port 53 inside a private namespace (scripts/internet-netns.sh):
//! a stock Unbound given only onebox's root hints resolves www.foobar.com,
//! `dig +trace` walks root → com → foobar.com, glibc resolves through onebox's
//! resolver, and onebox's resolver and Unbound agree name by name.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

#[test]
fn unbound_dig_trace_and_glibc_resolve_through_the_toy_internet() {
    skip_unless!(
        require_tool("unbound", "unbound"),
        require_tool("dig", "bind9-dnsutils"),
        require_tool("unshare", "util-linux")
    );
    let (stdout, _) = run_e2e_script("internet-netns.sh", "internet-netns");
    assert_contains_all(
        &stdout,
        &[
            "unbound: foobar.com. 127.0.0.1",
            "trace: root → com → foobar.com",
            "getent: 127.0.0.1",
            "PASS",
        ],
    );
    assert!(!stdout.contains("DIFFERENT"), "{stdout}");
    let compared = stdout.matches("differential: ").count();
    assert!(compared >= 10, "only {compared} names compared:\n{stdout}");
}
