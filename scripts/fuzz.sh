#!/usr/bin/env bash
# A bounded fuzz run of the DNS request path (checklist D14): libFuzzer feeds bytes
# to fuzz/fuzz_targets/dns_answer.rs, which answers them exactly as the UDP, TCP,
# DoT and DoH listeners do. A panic, a hang or a broken invariant fails the run.
#
#   bash scripts/fuzz.sh                 60 s of fuzzing (FUZZ_SECONDS=600 for longer)
#
# cargo-fuzz needs a nightly toolchain (it builds with -Z flags). Where rustup has
# no nightly, this prints "skipped: no nightly toolchain" and exits 0, so
# scripts/test.sh runs everywhere and fuzzes where the toolchain allows. Where
# nightly exists but cargo-fuzz does not, it installs cargo-fuzz.
#
# The corpus grows in fuzz/corpus/dns_answer (gitignored; cargo-fuzz's own default,
# so a later `cargo fuzz run dns_answer` by hand continues from it), seeded read-only
# from the real queries in fuzz/seeds/. A crashing input lands in
# fuzz/artifacts/dns_answer/, and the output says how to replay it.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

seconds="${FUZZ_SECONDS:-60}"
target=dns_answer
# libFuzzer reads -max_total_time=0 as "no limit": never let a typo mean forever.
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "fuzz: FUZZ_SECONDS must be a whole number of seconds above 0, not '$seconds'" >&2
    exit 2
fi

# --- 1. Toolchain ----------------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly to enable)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
echo "fuzz: $(cargo +nightly fuzz --version), $(rustc +nightly --version)"

# --- 2. Build ----------------------------------------------------------------------
# Sanitizer: none. The path fuzzed (bytes -> engine -> hickory-proto -> bytes) has no
# unsafe code of ours (the recvmmsg code in src/dns/server/udp.rs is not on it), so
# what the fuzzer can find is a panic (an index out of range, an overflow:
# cargo-fuzz builds with debug assertions and overflow checks), a hang or a failed
# assertion, and libFuzzer catches all of those without AddressSanitizer. ASan
# adds checks for memory errors that safe code cannot make, and costs, measured on
# this 2-core machine while other builds kept it about 5x oversubscribed:
#                     cold build (222 crates)            executions in 30 s
#   --sanitizer none  408 CPU-s (15m51s wall, starved)   77,445
#   ASan (default)    589 CPU-s (12m13s wall)            21,014
# (same 1,974-input corpus for both). On an idle 2-core machine the cold build
# should take 4-5 minutes (408 CPU-s over 2 cores, then the onebox crate alone);
# warm it takes 2 s, or 1m50s after an edit to src/ (onebox and the target
# rebuild). For a memory-safety hunt in unsafe code, run ASan by hand:
# (cd fuzz && cargo +nightly fuzz run dns_answer).
#
# Its own target dir: builds with other flags (a hand-run ASan build in
# fuzz/target, the main crate's target/debug) do not evict this one, so a warm CI
# cache rebuilds only onebox itself.
build_dir="$root/target/fuzz"
fuzz_flags=(--sanitizer none --target-dir "$build_dir")

started=$SECONDS
(cd fuzz && cargo +nightly fuzz build "${fuzz_flags[@]}" "$target")
echo "fuzz: build took $((SECONDS - started)) s"

# --- 3. Run --------------------------------------------------------------------------
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus" "$build_dir"
log="$build_dir/$target.log"

# -timeout: one input taking 10 s is a hang, a bug of its own. The seeds directory
# comes second: libFuzzer reads it but writes new inputs only to the first.
started=$SECONDS
set +e
(cd fuzz && cargo +nightly fuzz run "${fuzz_flags[@]}" "$target" "$corpus" "$root/fuzz/seeds" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1) >"$log" 2>&1
status=$?
set -e
elapsed=$((SECONDS - started))

executions="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
if [ "$status" -ne 0 ]; then
    # The end of the log has the panic message, the input and the replay command.
    tail -n 60 "$log"
    echo "fuzz: FAILED after ${executions:-?} executions in $elapsed s (full log: $log)" >&2
    exit 1
fi
if [ -z "$executions" ]; then
    tail -n 30 "$log"
    echo "fuzz: libFuzzer printed no final stats (full log: $log)" >&2
    exit 1
fi
inputs="$(find "$corpus" -type f | wc -l)"
echo "fuzz: $executions executions in $elapsed s ($((executions / (elapsed > 0 ? elapsed : 1)))/s), no crash; corpus $inputs inputs"
