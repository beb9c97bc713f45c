//! COLD — protection of the ops port: token-bucket rate limits (per source address, per user,
//! and a stricter one for logins per address) and the failed-login lockout.
//!
//! # Lockout that an attacker cannot turn against a user
//! Like the FIX side (`auth::lockout`), failures count in two scopes: (user, source address)
//! and source address. A wrong password for alice from the attacker's address locks alice *at
//! that address* only: alice logging in from her own address is not affected. An address that
//! fails for many users (password spraying) is locked as a whole. Tables are bounded
//! ([`MAX_ENTRIES`]); when full, the entries least recently touched go first.

use std::collections::HashMap;
use std::net::IpAddr;

/// Entries per table before the least recently touched are dropped.
pub const MAX_ENTRIES: usize = 16_384;

/// A token bucket: `rate` per second, capacity `burst`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Token buckets by key.
pub struct RateLimiter<K> {
    per_s: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
}

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(per_s: f64, burst: f64) -> RateLimiter<K> {
        RateLimiter {
            per_s,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key` at `now_ms`: `Ok`, or `Err(seconds until one is there)`.
    pub fn take(&mut self, key: &K, now_ms: u64) -> Result<(), u64> {
        if self.buckets.len() >= MAX_ENTRIES && !self.buckets.contains_key(key) {
            // Full buckets carry no state worth keeping: forget them, then the oldest.
            let (per_s, burst) = (self.per_s, self.burst);
            self.buckets.retain(|_, b| {
                b.tokens + now_ms.saturating_sub(b.at_ms) as f64 / 1000.0 * per_s < burst
            });
            if self.buckets.len() >= MAX_ENTRIES {
                if let Some(k) = self
                    .buckets
                    .iter()
                    .min_by_key(|(_, b)| b.at_ms)
                    .map(|(k, _)| k.clone())
                {
                    self.buckets.remove(&k);
                }
            }
        }
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.per_s).min(self.burst);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.per_s;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// Failures of one scope.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    first_ms: u64,
    locked_until_ms: u64,
}

/// What a failed login did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lockout {
    /// Counted; no lock yet.
    Counted,
    /// This failure locked the (user, address) pair or the address.
    Locked { until_ms: u64 },
}

/// Failed-login counting per (user, address) and per address.
pub struct LoginGuard {
    pair_max: u32,
    address_max: u32,
    window_ms: u64,
    pairs: HashMap<(String, IpAddr), Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

fn bound<K: std::hash::Hash + Eq + Clone>(m: &mut HashMap<K, Failures>, now_ms: u64, window: u64) {
    if m.len() < MAX_ENTRIES {
        return;
    }
    m.retain(|_, f| f.locked_until_ms > now_ms || now_ms.saturating_sub(f.first_ms) < window);
    while m.len() >= MAX_ENTRIES {
        let Some(k) = m
            .iter()
            .min_by_key(|(_, f)| (f.locked_until_ms, f.first_ms))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        m.remove(&k);
    }
}

fn count(f: &mut Failures, now_ms: u64, max: u32, window_ms: u64) -> bool {
    if now_ms.saturating_sub(f.first_ms) >= window_ms {
        f.count = 0;
        f.first_ms = now_ms;
    }
    f.count += 1;
    if f.count >= max {
        f.locked_until_ms = now_ms + window_ms;
        f.count = 0;
        f.first_ms = now_ms;
        true
    } else {
        false
    }
}

impl LoginGuard {
    /// `pair_max` failures for one user from one address, or `address_max` from one address,
    /// within `window_ms` lock that scope for `window_ms`.
    pub fn new(pair_max: u32, address_max: u32, window_ms: u64) -> LoginGuard {
        LoginGuard {
            pair_max,
            address_max,
            window_ms,
            pairs: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Until when `user` from `addr` may not try (None: may try now).
    pub fn locked(&self, user: &str, addr: IpAddr, now_ms: u64) -> Option<u64> {
        let pair = self
            .pairs
            .get(&(user.to_string(), addr))
            .map(|f| f.locked_until_ms);
        let address = self.addresses.get(&addr).map(|f| f.locked_until_ms);
        [pair, address]
            .into_iter()
            .flatten()
            .filter(|u| *u > now_ms)
            .max()
    }

    /// Records a failed login.
    pub fn failed(&mut self, user: &str, addr: IpAddr, now_ms: u64) -> Lockout {
        let w = self.window_ms;
        bound(&mut self.pairs, now_ms, w);
        bound(&mut self.addresses, now_ms, w);
        let fresh = Failures {
            count: 0,
            first_ms: now_ms,
            locked_until_ms: 0,
        };
        let pair = self.pairs.entry((user.to_string(), addr)).or_insert(fresh);
        let pair_locked = count(pair, now_ms, self.pair_max, w);
        let a = self.addresses.entry(addr).or_insert(fresh);
        let addr_locked = count(a, now_ms, self.address_max, w);
        if pair_locked || addr_locked {
            Lockout::Locked {
                until_ms: now_ms + w,
            }
        } else {
            Lockout::Counted
        }
    }

    /// A successful login clears its pair's failures (not the address's).
    pub fn succeeded(&mut self, user: &str, addr: IpAddr) {
        self.pairs.remove(&(user.to_string(), addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_past_burst_and_says_when() {
        let mut r = RateLimiter::new(2.0, 3.0);
        for _ in 0..3 {
            assert!(r.take(&1, 1000).is_ok());
        }
        assert_eq!(r.take(&1, 1000), Err(1));
        assert!(r.take(&2, 1000).is_ok(), "another key has its own bucket");
        assert!(r.take(&1, 1500).is_ok(), "refilled 1 token in 500 ms");
    }

    #[test]
    fn attacker_address_cannot_lock_the_user_elsewhere() {
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        let alice_ip: IpAddr = "10.0.0.7".parse().unwrap();
        let mut g = LoginGuard::new(5, 20, 60_000);
        for i in 0..4 {
            assert_eq!(g.failed("alice", attacker, i), Lockout::Counted);
        }
        assert!(matches!(
            g.failed("alice", attacker, 5),
            Lockout::Locked { .. }
        ));
        assert!(g.locked("alice", attacker, 6).is_some());
        assert!(g.locked("alice", alice_ip, 6).is_none());
        assert!(g.locked("bob", attacker, 6).is_none(), "pair lock only");
        assert!(g.locked("alice", attacker, 60_006).is_none(), "lock ends");
    }

    #[test]
    fn spraying_locks_the_address() {
        let a: IpAddr = "10.0.0.66".parse().unwrap();
        let mut g = LoginGuard::new(5, 20, 60_000);
        for i in 0..20 {
            g.failed(&format!("user{i}"), a, 10);
        }
        assert!(g.locked("anyone", a, 11).is_some());
    }
}
