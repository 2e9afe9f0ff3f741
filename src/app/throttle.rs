//! Login throttling: failed logins cost tokens, per account and per client address.
//!
//! argon2 makes each guess slow, but an attacker can still try a few passwords
//! against many accounts, or many passwords against one. Two token buckets bound
//! both: an account takes 5 failures, then one more every 20 s; an address takes 20,
//! then one every 6 s. Past either, logins answer 429 with `Retry-After` before any
//! password is checked, so a flood costs us nothing. Successful logins are free.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Rule {
    burst: f64,
    every: Duration,
}

const PER_ACCOUNT: Rule = Rule {
    burst: 5.0,
    every: Duration::from_secs(20),
};
const PER_ADDRESS: Rule = Rule {
    burst: 20.0,
    every: Duration::from_secs(6),
};
/// Memory stays bounded under a spray of usernames or addresses.
const MAX_KEYS: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    accounts: Mutex<HashMap<String, Bucket>>,
    addresses: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Throttle {
    /// `Some(seconds)` to wait when either bucket is empty.
    pub(crate) fn check(&self, username: &str, client: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let account = wait(
            &self.accounts,
            &username.to_ascii_lowercase(),
            PER_ACCOUNT,
            now,
        );
        let address = client.and_then(|ip| wait(&self.addresses, &ip, PER_ADDRESS, now));
        account.max(address)
    }

    /// Records a failed login.
    pub(crate) fn failed(&self, username: &str, client: Option<IpAddr>) {
        let now = Instant::now();
        take(
            &self.accounts,
            username.to_ascii_lowercase(),
            PER_ACCOUNT,
            now,
        );
        if let Some(ip) = client {
            take(&self.addresses, ip, PER_ADDRESS, now);
        }
    }
}

fn refill(bucket: &mut Bucket, rule: Rule, now: Instant) {
    let earned = now.duration_since(bucket.last).as_secs_f64() / rule.every.as_secs_f64();
    bucket.tokens = (bucket.tokens + earned).min(rule.burst);
    bucket.last = now;
}

fn wait<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Bucket>>,
    key: &K,
    rule: Rule,
    now: Instant,
) -> Option<u64> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = map.get_mut(key)?;
    refill(bucket, rule, now);
    (bucket.tokens < 1.0).then(|| ((1.0 - bucket.tokens) * rule.every.as_secs_f64()).ceil() as u64)
}

fn take<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Bucket>>,
    key: K,
    rule: Rule,
    now: Instant,
) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_KEYS && !map.contains_key(&key) {
        // Forget buckets that have refilled completely; they carry no information.
        map.retain(|_, b| {
            now.duration_since(b.last).as_secs_f64() < rule.burst * rule.every.as_secs_f64()
        });
        if map.len() >= MAX_KEYS {
            map.clear();
        }
    }
    let bucket = map.entry(key).or_insert(Bucket {
        tokens: rule.burst,
        last: now,
    });
    refill(bucket, rule, now);
    bucket.tokens = (bucket.tokens - 1.0).max(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_after_five_failures_from_anywhere() {
        let throttle = Throttle::default();
        for i in 0..5u8 {
            assert_eq!(
                throttle.check("ada", Some(IpAddr::from([10, 0, 0, i]))),
                None
            );
            throttle.failed("ada", Some(IpAddr::from([10, 0, 0, i])));
        }
        let wait = throttle
            .check("ADA", Some(IpAddr::from([10, 9, 9, 9])))
            .expect("throttled");
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(
            throttle.check("grace", Some(IpAddr::from([10, 9, 9, 9]))),
            None
        );
    }

    #[test]
    fn an_address_is_throttled_after_twenty_failures_on_any_accounts() {
        let throttle = Throttle::default();
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        for i in 0..20 {
            throttle.failed(&format!("user{i}"), ip);
        }
        assert!(throttle.check("someone-new", ip).is_some());
        assert_eq!(
            throttle.check("someone-new", Some(IpAddr::from([192, 0, 2, 2]))),
            None
        );
    }
}
