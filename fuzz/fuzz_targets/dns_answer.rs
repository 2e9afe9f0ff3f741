//! Fuzzes the DNS request path: raw bytes in, response bytes out, exactly as the
//! UDP, TCP, DoT and DoH listeners call it, and the DNS UPDATE path as a
//! signed update reaches it. Any panic is a bug.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use onebox::fuzzing::DnsHarness;

static HARNESS: OnceLock<DnsHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(DnsHarness::new);
    harness.answer(data);
    // The UPDATE path past TSIG, which the fuzzer cannot sign.
    harness.update(data);
});
