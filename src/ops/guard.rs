//! COLD — protection of the ops port: token-bucket rate limits (per source address, per user,
//! and a stricter one for logins per address) and the failed-login lockout.
//!
//! # Lockout that an attacker cannot turn against a user
//! Like the FIX side (`auth::lockout`), failures count in two scopes: (user, source address)
//! and source address. A wrong password for alice from the attacker's address locks alice *at
//! that address* only: alice logging in from her own address is not affected. An address that
//! fails for many users (password spraying) is locked as a whole. Tables are bounded
//! ([`MAX_ENTRIES`]); when full, the entries least recently touched go first.
//!
//! # Across a restart
//! With a file ([`LoginGuard::persisted`]: the port uses `<data>/ops-lockouts.json`, 0600,
//! replaced atomically after every failure and every success that cleared something), the
//! failure counts and lockouts still running survive a restart: restarting the gateway does
//! not give an attacker fresh attempts. Entries over (lock ended, window passed) are dropped
//! when read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
    /// Where the tables are kept (None: memory only).
    file: Option<PathBuf>,
}

/// File name of the persisted lockouts inside the data folder.
pub const LOCKOUTS_FILE: &str = "ops-lockouts.json";

/// The file's form.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Saved {
    pairs: Vec<(String, IpAddr, Failures)>,
    addresses: Vec<(IpAddr, Failures)>,
}

/// Still matters at `now_ms`: locked, or failures counting within the window.
fn live(f: &Failures, now_ms: u64, window_ms: u64) -> bool {
    f.locked_until_ms > now_ms || now_ms.saturating_sub(f.first_ms) < window_ms
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
            file: None,
        }
    }

    /// Keeps the tables in `path`: loads the entries still live at `now_ms` (at most
    /// [`MAX_ENTRIES`] each; an unreadable file is an error) and rewrites it on every change.
    pub fn persisted(mut self, path: &Path, now_ms: u64) -> Result<LoginGuard, String> {
        let saved: Saved = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let w = self.window_ms;
        self.pairs = saved
            .pairs
            .into_iter()
            .filter(|(_, _, f)| live(f, now_ms, w))
            .take(MAX_ENTRIES)
            .map(|(u, a, f)| ((u, a), f))
            .collect();
        self.addresses = saved
            .addresses
            .into_iter()
            .filter(|(_, f)| live(f, now_ms, w))
            .take(MAX_ENTRIES)
            .collect();
        self.file = Some(path.to_path_buf());
        Ok(self)
    }

    /// Writes the tables to the file, if any (a failure is returned; the tables hold anyway).
    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let saved = Saved {
            pairs: self
                .pairs
                .iter()
                .map(|((u, a), f)| (u.clone(), *a, *f))
                .collect(),
            addresses: self.addresses.iter().map(|(a, f)| (*a, *f)).collect(),
        };
        let text = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        crate::files::replace_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    #[cold]
    fn saved_or_said(&self) {
        if let Err(e) = self.save() {
            crate::say_err(format_args!(
                "portcullis: ops port: login lockouts not saved (they hold until a restart): {e}"
            ));
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
        self.saved_or_said();
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
        if self.pairs.remove(&(user.to_string(), addr)).is_some() {
            self.saved_or_said();
        }
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
    fn lockouts_and_counts_survive_a_new_instance_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCKOUTS_FILE);
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        let mut g = LoginGuard::new(5, 20, 60_000).persisted(&path, 0).unwrap();
        for i in 0..5 {
            g.failed("alice", attacker, i);
        }
        g.failed("bob", attacker, 10);
        let again = LoginGuard::new(5, 20, 60_000)
            .persisted(&path, 100)
            .unwrap();
        assert!(
            again.locked("alice", attacker, 100).is_some(),
            "the lock survived"
        );
        let mut again = again;
        for i in 0..3 {
            again.failed("bob", attacker, 200 + i);
        }
        assert!(
            matches!(again.failed("bob", attacker, 300), Lockout::Locked { .. }),
            "bob's count went on from the first instance's"
        );
        let late = LoginGuard::new(5, 20, 60_000)
            .persisted(&path, 200_000)
            .unwrap();
        assert!(
            late.pairs.is_empty() && late.addresses.is_empty(),
            "all over"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"[").unwrap();
        assert!(LoginGuard::new(5, 20, 60_000).persisted(&path, 0).is_err());
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
