//! Abuse budgets: token buckets for failed logins (per account and per address),
//! sign-ups (per address) and posts (per account).
//!
//! argon2 makes each password check slow and memory-hungry (19 MiB), so the budget
//! is *reserved* before the hash runs, in one step under one lock: of N attempts
//! arriving together, only as many as the bucket holds ever reach argon2, and the
//! rest get 429 with `Retry-After` at once. Checking first and recording the failure
//! after the hash (as onebox once did) lets a burst through: every attempt sees the
//! bucket still full while the others are still hashing.
//!
//! | budget | burst | then one more every |
//! |---|---|---|
//! | failed logins per account | 5 | 20 s |
//! | failed logins per address | 20 | 6 s |
//! | sign-ups per address | 10 | 60 s |
//! | posts per account | `--post-rate N` (60) | 60 s / N |
//!
//! An address is an IPv4 /32 or an IPv6 /64: one host usually holds a whole /64,
//! so rotating through it must not reset the budget. Loopback counts like any other.
//! Each map is bounded in bytes ([`MAX_BYTES`]): buckets that have refilled carry no
//! information and are dropped; past the budget the longest-idle one goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket: `burst` tokens, refilled at one per `every`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) burst: f64,
    pub(crate) every: Duration,
}

pub(crate) const LOGIN_PER_ACCOUNT: Rule = Rule {
    burst: 5.0,
    every: Duration::from_secs(20),
};
pub(crate) const LOGIN_PER_ADDRESS: Rule = Rule {
    burst: 20.0,
    every: Duration::from_secs(6),
};
pub(crate) const SIGNUP_PER_ADDRESS: Rule = Rule {
    burst: 10.0,
    every: Duration::from_secs(60),
};

/// `--post-rate N`: a bucket of N posts, refilled at N per minute; 0 means no limit.
pub(crate) fn post_rule(per_minute: u32) -> Option<Rule> {
    (per_minute > 0).then(|| Rule {
        burst: f64::from(per_minute),
        every: Duration::from_secs(60) / per_minute,
    })
}

/// Each map holds at most about this many bytes of keys and buckets (about 10,000
/// accounts or 20,000 addresses), whatever names or addresses are sprayed at it.
pub(crate) const MAX_BYTES: usize = 1024 * 1024;
/// How often idle buckets are swept even when the map is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The per-address key: IPv4 by /32, IPv6 by /64 (IPv4-mapped IPv6 as IPv4).
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// How many bytes a key costs beyond its fixed size.
pub(crate) trait KeyBytes {
    fn heap_bytes(&self) -> usize;
}

impl KeyBytes for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl KeyBytes for IpAddr {
    fn heap_bytes(&self) -> usize {
        0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One budget: a bucket per key, bounded in bytes.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    rule: Rule,
    map: HashMap<K, Bucket>,
    bytes: usize,
    budget: usize,
    swept: Option<Instant>,
}

impl<K: Hash + Eq + Clone + KeyBytes> Limiter<K> {
    pub(crate) fn new(rule: Rule, budget: usize) -> Self {
        Self {
            rule,
            map: HashMap::new(),
            bytes: 0,
            budget,
            swept: None,
        }
    }

    fn cost(key: &K) -> usize {
        // The key, the bucket, and a word or two of the table's own bookkeeping.
        std::mem::size_of::<(K, Bucket)>() + key.heap_bytes() + 16
    }

    /// Tokens in `key`'s bucket at `now` (a missing bucket is full).
    fn tokens(&self, key: &K, now: Instant) -> f64 {
        self.map.get(key).map_or(self.rule.burst, |b| {
            let earned =
                now.saturating_duration_since(b.last).as_secs_f64() / self.rule.every.as_secs_f64();
            (b.tokens + earned).min(self.rule.burst)
        })
    }

    /// `Err(seconds)` to wait when the bucket has no whole token.
    pub(crate) fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        let tokens = self.tokens(key, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - tokens) * self.rule.every.as_secs_f64())
                .ceil()
                .max(1.0) as u64)
        }
    }

    /// Adds `delta` tokens (negative to take) to `key`'s bucket.
    fn add(&mut self, key: &K, delta: f64, now: Instant) {
        let tokens = (self.tokens(key, now) + delta).clamp(0.0, self.rule.burst);
        if let Some(bucket) = self.map.get_mut(key) {
            *bucket = Bucket { tokens, last: now };
            return;
        }
        if tokens >= self.rule.burst {
            return; // a full bucket is the same as no bucket
        }
        let cost = Self::cost(key);
        self.make_room(cost, now);
        self.map.insert(key.clone(), Bucket { tokens, last: now });
        self.bytes += cost;
    }

    pub(crate) fn take(&mut self, key: &K, now: Instant) {
        self.add(key, -1.0, now);
    }

    pub(crate) fn give_back(&mut self, key: &K, now: Instant) {
        self.add(key, 1.0, now);
    }

    /// Drops refilled buckets now and then, and whenever `cost` more bytes would
    /// not fit; if they still would not, drops the longest-idle buckets.
    fn make_room(&mut self, cost: usize, now: Instant) {
        let due = self
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
        if due || self.bytes + cost > self.budget {
            self.swept = Some(now);
            let full = self.rule.every.mul_f64(self.rule.burst);
            self.map
                .retain(|_, b| now.saturating_duration_since(b.last) < full);
            self.bytes = self.map.keys().map(Self::cost).sum();
        }
        while self.bytes + cost > self.budget {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.map.remove(&oldest);
            self.bytes -= Self::cost(&oldest);
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// What a reserved login attempt took, to give back if the password was right.
#[derive(Debug)]
pub(crate) struct LoginTicket {
    account: Option<String>,
    address: Option<IpAddr>,
}

#[derive(Debug)]
struct Limiters {
    login_accounts: Limiter<String>,
    login_addresses: Limiter<IpAddr>,
    signups: Limiter<IpAddr>,
    posts: Option<Limiter<String>>,
}

/// Every budget of the application, behind one lock so that reserving the account
/// and the address tokens of a login is one step.
#[derive(Debug)]
pub(crate) struct Throttle {
    inner: Mutex<Limiters>,
}

impl Throttle {
    /// `post_rate`: `--post-rate`, posts per minute per account (0: no limit).
    pub(crate) fn new(post_rate: u32) -> Self {
        Self {
            inner: Mutex::new(Limiters {
                login_accounts: Limiter::new(LOGIN_PER_ACCOUNT, MAX_BYTES),
                login_addresses: Limiter::new(LOGIN_PER_ADDRESS, MAX_BYTES),
                signups: Limiter::new(SIGNUP_PER_ADDRESS, MAX_BYTES),
                posts: post_rule(post_rate).map(|rule| Limiter::new(rule, MAX_BYTES)),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limiters> {
        // A panic while holding the lock leaves the maps consistent (every update
        // is one assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves one login attempt for `account` (a valid username, lower-case) and
    /// the client's address, both or neither: `Err(seconds)` when either budget is
    /// spent.
    pub(crate) fn reserve_login(
        &self,
        account: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<LoginTicket, u64> {
        let now = Instant::now();
        let account = account.map(str::to_string);
        let address = client.map(address_key);
        let mut l = self.lock();
        let by_account = account
            .as_ref()
            .map_or(Ok(()), |a| l.login_accounts.check(a, now));
        let by_address = address
            .as_ref()
            .map_or(Ok(()), |a| l.login_addresses.check(a, now));
        match (by_account, by_address) {
            (Ok(()), Ok(())) => {}
            (Err(a), Err(b)) => return Err(a.max(b)),
            (Err(w), _) | (_, Err(w)) => return Err(w),
        }
        if let Some(a) = &account {
            l.login_accounts.take(a, now);
        }
        if let Some(a) = &address {
            l.login_addresses.take(a, now);
        }
        Ok(LoginTicket { account, address })
    }

    /// A successful login costs nothing: its tokens go back.
    pub(crate) fn login_succeeded(&self, ticket: LoginTicket) {
        let now = Instant::now();
        let mut l = self.lock();
        if let Some(a) = &ticket.account {
            l.login_accounts.give_back(a, now);
        }
        if let Some(a) = &ticket.address {
            l.login_addresses.give_back(a, now);
        }
    }

    /// Reserves one sign-up for the client's address.
    pub(crate) fn reserve_signup(&self, client: Option<IpAddr>) -> Result<(), u64> {
        let Some(address) = client.map(address_key) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut l = self.lock();
        l.signups.check(&address, now)?;
        l.signups.take(&address, now);
        Ok(())
    }

    /// Reserves one post for `author`.
    pub(crate) fn reserve_post(&self, author: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut l = self.lock();
        let Some(posts) = l.posts.as_mut() else {
            return Ok(());
        };
        let key = author.to_string();
        posts.check(&key, now)?;
        posts.take(&key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// A login attempt by `account` from the address `from`.
    fn attempt(throttle: &Throttle, account: &str, from: &str) -> Result<LoginTicket, u64> {
        throttle.reserve_login(Some(account), ip(from))
    }

    #[test]
    fn an_account_is_throttled_after_five_failures_from_anywhere() {
        let throttle = Throttle::new(60);
        for i in 0..5u8 {
            attempt(&throttle, "ada", &format!("10.0.0.{i}")).expect("within the budget");
        }
        let wait = attempt(&throttle, "ada", "10.9.9.9").expect_err("throttled");
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(attempt(&throttle, "grace", "10.9.9.9").is_ok());
    }

    #[test]
    fn an_address_is_throttled_after_twenty_failures_on_any_accounts() {
        let throttle = Throttle::new(60);
        for i in 0..20 {
            attempt(&throttle, &format!("user{i}"), "192.0.2.1").expect("within the budget");
        }
        assert!(attempt(&throttle, "someone", "192.0.2.1").is_err());
        // A refused attempt takes nothing from the account.
        assert!(attempt(&throttle, "someone", "192.0.2.2").is_ok());
    }

    #[test]
    fn a_successful_login_gives_its_tokens_back() {
        let throttle = Throttle::new(60);
        for _ in 0..10 {
            let ticket = attempt(&throttle, "ada", "192.0.2.1").unwrap();
            throttle.login_succeeded(ticket);
        }
        assert!(attempt(&throttle, "ada", "192.0.2.1").is_ok());
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_ipv4_by_its_address() {
        let key = |text: &str| address_key(text.parse().unwrap());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            ip("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_ne!(key("127.0.0.1"), key("127.0.0.2"));
        // Rotating through a /64 does not reset the budget.
        let throttle = Throttle::new(60);
        for i in 0..20u16 {
            let client = IpAddr::from([0x2001, 0xdb8, 0, 1, i, i, i, i]);
            throttle
                .reserve_login(Some(&format!("u{i}")), Some(client))
                .unwrap();
        }
        let fresh = IpAddr::from([0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3]);
        assert!(throttle.reserve_login(Some("new"), Some(fresh)).is_err());
        let other_64 = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(throttle.reserve_login(Some("new"), Some(other_64)).is_ok());
    }

    #[test]
    fn maps_stay_within_their_byte_budget_and_forget_refilled_buckets() {
        let mut limiter = Limiter::<String>::new(LOGIN_PER_ACCOUNT, 64 * 1024);
        let start = Instant::now();
        for i in 0..100_000 {
            limiter.take(&format!("user{i:026}"), start);
            assert!(limiter.bytes() <= 64 * 1024, "{} bytes", limiter.bytes());
        }
        assert!(limiter.len() > 100, "{}", limiter.len());
        // The newest key is kept (with its token taken): older ones made room.
        assert!(limiter.tokens(&format!("user{:026}", 99_999), start) < 5.0);
        // Once every bucket has refilled (5 × 20 s), a sweep drops them all.
        let later = start + Duration::from_secs(101);
        limiter.take(&"fresh".to_string(), later);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn posts_are_limited_per_account_and_zero_turns_the_limit_off() {
        let throttle = Throttle::new(3);
        for _ in 0..3 {
            throttle.reserve_post("ada").unwrap();
        }
        let wait = throttle.reserve_post("ada").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(throttle.reserve_post("grace").is_ok());
        let off = Throttle::new(0);
        for _ in 0..1000 {
            off.reserve_post("ada").unwrap();
        }
    }

    #[test]
    fn signups_are_limited_per_address() {
        let throttle = Throttle::new(60);
        for _ in 0..10 {
            throttle.reserve_signup(ip("192.0.2.1")).unwrap();
        }
        assert!(throttle.reserve_signup(ip("192.0.2.1")).is_err());
        assert!(throttle.reserve_signup(ip("192.0.2.2")).is_ok());
    }
}
