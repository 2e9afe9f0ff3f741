//! Response rate limiting (RRL), the defence NSD, Knot and BIND use against DNS
//! reflection: an attacker sends queries with a victim's forged source address and
//! our answers, larger than the queries, flood the victim.
//!
//! Each client network (an IPv4 /24 or an IPv6 /56, because one attacker
//! rarely stays on one address) gets a token bucket of `rate` UDP answers per
//! second. Past it, answers are dropped, except that every `slip`-th one is sent
//! as a tiny truncated reply (TC=1, no records): a real client behind a forged
//! flood then retries over TCP, where forged sources cannot follow, so legitimate
//! users still get through. TCP is never limited. Loopback is exempt by default.
//!
//! Every UDP worker consults the limiter for every answer, so it must not be one
//! lock that all cores queue on: the buckets are split into shards by network,
//! each behind its own small lock. Two workers only meet on a lock when they
//! answer networks of the same shard at the same instant, and exempt clients
//! (loopback, or RRL off) touch no lock at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::dns::Cidr;

/// What to do with one UDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// Send a truncated reply instead (TC=1, question only).
    Slip,
    Drop,
}

#[derive(Debug, Clone)]
pub(crate) struct RrlConfig {
    /// Answers per second per client network; 0 turns RRL off.
    pub(crate) rate: u32,
    /// Every n-th limited answer is sent truncated; 0 never, 1 always.
    pub(crate) slip: u32,
    pub(crate) exempt: Vec<Cidr>,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            // NSD's default, far above what any real resolver asks of one zone.
            rate: 200,
            slip: 2,
            exempt: vec![
                "127.0.0.0/8".parse().expect("valid"),
                "::1".parse().expect("valid"),
            ],
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

/// Memory stays bounded under a flood from many networks: past this many tracked
/// networks, idle ones are forgotten.
const MAX_NETWORKS: usize = 65_536;
/// Independent locks; a power of two comfortably above the worker count of any
/// machine we run on, so that two workers rarely want the same one.
const SHARDS: usize = 64;
/// Each shard's share of [`MAX_NETWORKS`].
const MAX_PER_SHARD: usize = MAX_NETWORKS / SHARDS;

type Shard = Mutex<HashMap<[u8; 16], Bucket>>;

pub(crate) struct Rrl {
    config: RrlConfig,
    shards: Box<[Shard]>,
}

impl Rrl {
    pub(crate) fn new(config: RrlConfig) -> Self {
        Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub(crate) fn check(&self, client: IpAddr) -> Verdict {
        // The common case (loopback, or RRL off) must not even read the clock.
        if self.config.rate == 0 || self.config.exempt.iter().any(|net| net.contains(client)) {
            return Verdict::Send;
        }
        self.take(client, Instant::now())
    }

    /// Spends one answer from the client network's bucket at `now`.
    fn take(&self, client: IpAddr, now: Instant) -> Verdict {
        let rate = f64::from(self.config.rate);
        let key = network(client);
        let mut buckets = self.shards[shard_of(&key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_PER_SHARD {
            // Forget networks that have been quiet long enough to be full again.
            buckets.retain(|_, b| now.duration_since(b.last).as_secs_f64() * rate < rate);
            if buckets.len() >= MAX_PER_SHARD {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
            limited: 0,
        });
        // Refill for the time since the last answer, up to one second's worth.
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if self.config.slip > 0 && bucket.limited.is_multiple_of(self.config.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Which shard holds a network's bucket. The network key's bytes, mixed by a
/// multiplicative hash: networks that differ only in their last byte (adjacent
/// /24s) land on different shards.
fn shard_of(key: &[u8; 16]) -> usize {
    let (high, low) = key.split_at(8);
    let mut word = [0u8; 8];
    word.copy_from_slice(high);
    let mut mixed = u64::from_le_bytes(word);
    word.copy_from_slice(low);
    mixed ^= u64::from_le_bytes(word).rotate_left(32);
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

/// The client's network: IPv4 /24 or IPv6 /56, as NSD and BIND group them.
fn network(ip: IpAddr) -> [u8; 16] {
    let mut key = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            key[..3].copy_from_slice(&v4.octets()[..3]);
            key[15] = 4;
        }
        IpAddr::V6(v6) => {
            key[..7].copy_from_slice(&v6.octets()[..7]);
            key[15] = 6;
        }
    }
    key
}

/// The slip reply: the answer cut down to its header and question, TC=1 and no
/// records, so the client retries over TCP. `None` if the answer is malformed.
pub(crate) fn truncated(reply: &[u8]) -> Option<Vec<u8>> {
    if reply.len() < 12 {
        return None;
    }
    let qdcount = u16::from_be_bytes([reply[4], reply[5]]);
    let mut end = 12;
    for _ in 0..qdcount {
        loop {
            let len = *reply.get(end)?;
            if len == 0 {
                end += 1;
                break;
            }
            if len & 0xc0 != 0 {
                end += 2;
                break;
            }
            end += 1 + usize::from(len);
        }
        end += 4;
    }
    let mut cut = reply.get(..end)?.to_vec();
    cut[2] |= 0x02; // TC
    cut[6..12].fill(0);
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            rate,
            slip,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
        })
    }

    #[test]
    fn a_burst_past_the_rate_is_dropped_with_every_second_slipped() {
        let rrl = limiter(10, 2);
        let now = Instant::now();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..20).map(|_| rrl.take(client, now)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Send));
        assert_eq!(
            verdicts[10..]
                .iter()
                .filter(|v| **v == Verdict::Slip)
                .count(),
            5
        );
        assert_eq!(
            verdicts[10..]
                .iter()
                .filter(|v| **v == Verdict::Drop)
                .count(),
            5
        );
        // Another address in the same /24 shares the bucket; another /24 does not.
        assert_ne!(rrl.take("192.0.2.99".parse().unwrap(), now), Verdict::Send);
        assert_eq!(rrl.take("192.0.3.1".parse().unwrap(), now), Verdict::Send);
        // A second later the bucket is full again.
        assert_eq!(
            rrl.take(client, now + Duration::from_secs(1)),
            Verdict::Send
        );
    }

    #[test]
    fn loopback_is_exempt_and_rate_zero_is_off() {
        let rrl = limiter(1, 2);
        assert!((0..100).all(|_| rrl.check("127.0.0.1".parse().unwrap()) == Verdict::Send));
        let off = limiter(0, 2);
        assert!((0..100).all(|_| off.check("192.0.2.1".parse().unwrap()) == Verdict::Send));
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_networks() {
        let rrl = limiter(5, 2);
        let now = Instant::now();
        for i in 0..(MAX_NETWORKS as u32 + 10) {
            rrl.take(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), now);
        }
        let tracked: usize = rrl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= MAX_NETWORKS);
    }

    #[test]
    fn adjacent_networks_spread_over_the_shards() {
        let used: std::collections::HashSet<usize> = (0..256u32)
            .map(|i| {
                shard_of(&network(IpAddr::from(
                    (0xc000_0200 + (i << 8)).to_be_bytes(),
                )))
            })
            .collect();
        assert!(
            used.len() > SHARDS / 2,
            "256 /24s fell into {} shards",
            used.len()
        );
    }

    #[test]
    fn truncated_keeps_header_and_question_only() {
        let reply = [
            0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1,
            0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4,
        ];
        let cut = truncated(&reply).unwrap();
        assert_eq!(
            cut,
            [
                0x12, 0x34, 0x86, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1
            ]
        );
    }
}
