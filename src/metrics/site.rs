//! The application's and the database's series: accounts, logins and posts; commits,
//! group-commit batch sizes, commit latency and write errors.
//!
//! These are not on a per-packet hot path, but they share the sharded counters so
//! every series in onebox is recorded the same way.

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counters, histogram, one};
use super::sharded::{HistogramLayout, Sharded};

/// How a login attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Login {
    Ok,
    Failed,
    /// Refused before the password was checked: too many recent failures.
    Throttled,
}

/// Requests per commit: powers of two up to the writer's largest batch.
static BATCH_BOUNDS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/// Commit latency in microseconds, 100 µs to 1 s (an fsync is in there).
static COMMIT_BOUNDS: [u64; 13] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

const REGISTRATIONS: usize = 0;
const LOGINS: usize = 1; // ok, failed, throttled
const POSTS: usize = 4;
const COMMITS: usize = 5;
const COMMITS_FAILED: usize = 6;
const WRITE_ERRORS: usize = 7;
const VISIT_LOG_FOLDS: usize = 8;
const BATCH: usize = 9;
const LATENCY: usize = BATCH + HistogramLayout::width(&BATCH_BOUNDS);
const WIDTH: usize = LATENCY + HistogramLayout::width(&COMMIT_BOUNDS);

static COUNTERS: Sharded<WIDTH> = Sharded::new();

const BATCH_LAYOUT: HistogramLayout = HistogramLayout {
    base: BATCH,
    bounds: &BATCH_BOUNDS,
};
const LATENCY_LAYOUT: HistogramLayout = HistogramLayout {
    base: LATENCY,
    bounds: &COMMIT_BOUNDS,
};

/// An account was created.
pub(crate) fn registration() {
    COUNTERS.add(REGISTRATIONS, 1);
}

/// A login attempt ended.
pub(crate) fn login(outcome: Login) {
    COUNTERS.add(LOGINS + outcome as usize, 1);
}

/// A post was created (and committed).
pub(crate) fn post() {
    COUNTERS.add(POSTS, 1);
}

/// A group commit of `requests` write requests ended after `micros`.
pub(crate) fn commit(requests: usize, micros: u64, ok: bool) {
    if ok {
        COUNTERS.add(COMMITS, 1);
        BATCH_LAYOUT.observe(&COUNTERS, requests as u64);
        LATENCY_LAYOUT.observe(&COUNTERS, micros);
    } else {
        COUNTERS.add(COMMITS_FAILED, 1);
        COUNTERS.add(WRITE_ERRORS, 1);
    }
}

/// The visit log's totals went into redb, in a durable commit.
pub(crate) fn visit_log_fold() {
    COUNTERS.add(VISIT_LOG_FOLDS, 1);
}

/// A write was refused before it started (the disk is nearly full).
pub(crate) fn write_error() {
    COUNTERS.add(WRITE_ERRORS, 1);
}

/// Writes the application and database series.
pub(crate) fn encode(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let logins = COUNTERS.by_label("result", &["ok", "failed", "throttled"], LOGINS);
    #[rustfmt::skip]
    let table = [
        ("app_registrations", "Accounts created.", one(COUNTERS.get(REGISTRATIONS))),
        ("app_logins", "Login attempts, by result.", logins),
        ("app_posts", "Posts created.", one(COUNTERS.get(POSTS))),
        ("db_commits", "Durable commits: write transactions, and batches of visits written to the visit log (each holds one or more requests).", one(COUNTERS.get(COMMITS))),
        ("db_write_errors", "Writes that failed: a commit that failed, or a write refused for lack of disk.", one(COUNTERS.get(WRITE_ERRORS))),
        ("db_visit_log_folds", "Times the visit counters' log was folded into the database (with another write, a full log, or a stop).", one(COUNTERS.get(VISIT_LOG_FOLDS))),
    ];
    counters(e, &table)?;
    histogram(
        e,
        "db_commit_requests",
        "Write requests per committed transaction (the group-commit batch size).",
        &one(BATCH_LAYOUT.snapshot(&COUNTERS, 1.0)),
    )?;
    histogram(
        e,
        "db_commit_duration_seconds",
        "Time to run and durably commit one batch.",
        &one(LATENCY_LAYOUT.snapshot(&COUNTERS, 1e-6)),
    )
}
