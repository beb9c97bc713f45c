//! COLD (gateway thread, at logon only) — the bounded lockout table of failed logons.
//!
//! Owns the failure counts and lockouts of two kinds of scope: a source address (every failed
//! logon counts there) and a (key, source address) pair (only wrong signatures count there, so
//! failures from one address can never lock a key out at another of its allowlisted
//! addresses). Memory is fixed at construction: `capacity` entries in a slab, an open-addressing
//! index (linear probing, at most half full, backward-shift deletion) and an intrusive LRU list
//! through the slab. A failure costs one hash, a short probe and a few index writes; when the
//! table is full the least recently failed entry is evicted (an entry still locked is skipped
//! if one of the next [`EVICT_LOOK`] oldest is not), never a scan.
//!
//! Must never: grow after construction, scan the table on a failure, or hash without the
//! per-process random seed (addresses are attacker-chosen).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::keys::KeyId;
use crate::model::Nanos;

/// What a lockout entry counts failures for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every failed logon from this source address.
    Address(IpAddr),
    /// Wrong signatures for this key from this source address.
    KeyAddress(KeyId, IpAddr),
}

impl Scope {
    pub fn peer(&self) -> IpAddr {
        match self {
            Scope::Address(a) | Scope::KeyAddress(_, a) => *a,
        }
    }
}

/// Failure counting of one kind of scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Failures within `window` that start a lockout.
    pub max_failures: u32,
    pub window: Nanos,
    /// How long a lockout lasts.
    pub lockout: Nanos,
}

/// A lockout in force (what is persisted across restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    pub until: Nanos,
    /// The unlock generation the lock was taken under (`keys unlock` raises it).
    pub generation: u64,
}

/// Oldest entries looked at for one that is not locked before evicting the oldest anyway.
pub const EVICT_LOOK: usize = 8;
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    scope: Scope,
    hash: u64,
    /// Start of the current counting window and the failures in it.
    first: Nanos,
    count: u32,
    locked_until: Nanos,
    generation: u64,
    /// LRU list: towards the newest (`prev`) and the oldest (`next`).
    prev: u32,
    next: u32,
}

/// The fixed-capacity lockout table (see the module header).
pub struct LockoutTable {
    entries: Vec<Entry>,
    /// Slab positions by hash, `NONE` when empty; length a power of two ≥ 2 × capacity.
    index: Vec<u32>,
    capacity: usize,
    newest: u32,
    oldest: u32,
    seed: RandomState,
    /// Entries forgotten to make room.
    evictions: u64,
}

impl LockoutTable {
    /// A table for `capacity` scopes (at least 1); all memory is allocated here.
    pub fn new(capacity: usize) -> LockoutTable {
        let capacity = capacity.clamp(1, (NONE / 2) as usize);
        let slots = (capacity * 2).next_power_of_two();
        LockoutTable {
            entries: Vec::with_capacity(capacity),
            index: vec![NONE; slots],
            capacity,
            newest: NONE,
            oldest: NONE,
            seed: RandomState::new(),
            evictions: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries forgotten to make room since construction.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held by the table (constant after construction; the property tests check it).
    pub fn footprint_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.index.capacity() * std::mem::size_of::<u32>()
    }

    /// True when `scope` is locked out at `now`.
    pub fn locked(&self, scope: &Scope, now: Nanos) -> bool {
        self.find(scope, self.hash(scope))
            .ok()
            .and_then(|pos| self.entry_at(pos))
            .is_some_and(|e| now < e.locked_until)
    }

    /// Records a failure of `scope` at `now`; `Some(until)` when it starts a lockout.
    pub fn fail(
        &mut self,
        scope: Scope,
        now: Nanos,
        limit: &Limit,
        generation: u64,
    ) -> Option<Nanos> {
        let e = self.touch(scope, now);
        let entry = self.entries.get_mut(e as usize)?;
        if now < entry.locked_until {
            return None;
        }
        if entry.count == 0 || now.saturating_sub(entry.first) >= limit.window {
            entry.first = now;
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count < limit.max_failures.max(1) {
            return None;
        }
        let until = Nanos(now.0.saturating_add(limit.lockout.0));
        entry.locked_until = until;
        entry.generation = generation;
        entry.count = 0;
        Some(until)
    }

    /// Puts a persisted lockout back (at start).
    pub fn restore(&mut self, l: &Locked, now: Nanos) {
        if now >= l.until {
            return;
        }
        let e = self.touch(l.scope, now);
        if let Some(entry) = self.entries.get_mut(e as usize) {
            entry.locked_until = l.until;
            entry.generation = l.generation;
            entry.count = 0;
        }
    }

    /// The lockouts in force at `now`, oldest first (cold: for persistence and tests).
    pub fn locked_entries(&self, now: Nanos) -> Vec<Locked> {
        let mut out = Vec::new();
        let mut i = self.oldest;
        while let Some(e) = self.entries.get(i as usize) {
            if now < e.locked_until {
                out.push(Locked {
                    scope: e.scope,
                    until: e.locked_until,
                    generation: e.generation,
                });
            }
            i = e.prev;
        }
        out
    }

    /// Forgets every scope `drop` selects (`keys unlock`: an operator action, cold; a rebuild
    /// that keeps the table's memory).
    pub fn forget(&mut self, mut drop: impl FnMut(&Scope) -> bool) {
        let mut keep: Vec<Entry> = Vec::with_capacity(self.entries.len());
        let mut i = self.oldest;
        while let Some(e) = self.entries.get(i as usize) {
            if !drop(&e.scope) {
                keep.push(*e);
            }
            i = e.prev;
        }
        self.entries.clear();
        self.index.fill(NONE);
        self.newest = NONE;
        self.oldest = NONE;
        for e in keep {
            let pos = self.insert_new(e.scope, e.hash, Nanos::ZERO);
            if let Some(n) = self.entries.get_mut(pos as usize) {
                n.first = e.first;
                n.count = e.count;
                n.locked_until = e.locked_until;
                n.generation = e.generation;
            }
        }
    }

    fn hash(&self, scope: &Scope) -> u64 {
        self.seed.hash_one(scope)
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    fn entry_at(&self, pos: usize) -> Option<&Entry> {
        self.index
            .get(pos)
            .and_then(|&e| self.entries.get(e as usize))
    }

    /// `Ok(index position)` of `scope`, or `Err(the empty position where it would go)`.
    fn find(&self, scope: &Scope, hash: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        // The index is at most half full, so an empty slot ends every probe.
        for _ in 0..self.index.len() {
            match self.index.get(pos).copied() {
                None | Some(NONE) => return Err(pos),
                Some(e) => {
                    if self
                        .entries
                        .get(e as usize)
                        .is_some_and(|x| x.scope == *scope)
                    {
                        return Ok(pos);
                    }
                }
            }
            pos = (pos + 1) & mask;
        }
        Err(pos)
    }

    /// The slab position of `scope`, created (evicting the oldest if full) and made newest.
    fn touch(&mut self, scope: Scope, now: Nanos) -> u32 {
        let hash = self.hash(&scope);
        match self.find(&scope, hash) {
            Ok(pos) => {
                let e = self.index.get(pos).copied().unwrap_or(NONE);
                self.unlink(e);
                self.push_newest(e);
                e
            }
            Err(_) => self.insert_new(scope, hash, now),
        }
    }

    fn insert_new(&mut self, scope: Scope, hash: u64, now: Nanos) -> u32 {
        let fresh = Entry {
            scope,
            hash,
            first: Nanos::ZERO,
            count: 0,
            locked_until: Nanos::ZERO,
            generation: 0,
            prev: NONE,
            next: NONE,
        };
        let e = if self.entries.len() < self.capacity {
            self.entries.push(fresh);
            (self.entries.len() - 1) as u32
        } else {
            let victim = self.victim(now);
            self.evictions += 1;
            self.unlink(victim);
            if let Some(old) = self.entries.get(victim as usize).map(|x| (x.scope, x.hash)) {
                if let Ok(pos) = self.find(&old.0, old.1) {
                    self.remove_at(pos);
                }
            }
            if let Some(slot) = self.entries.get_mut(victim as usize) {
                *slot = fresh;
            }
            victim
        };
        if let Err(pos) = self.find(&scope, hash) {
            if let Some(slot) = self.index.get_mut(pos) {
                *slot = e;
            }
        }
        self.push_newest(e);
        e
    }

    /// The entry to evict: the oldest not locked among the [`EVICT_LOOK`] oldest, else the
    /// oldest.
    fn victim(&self, now: Nanos) -> u32 {
        let mut i = self.oldest;
        for _ in 0..EVICT_LOOK {
            let Some(e) = self.entries.get(i as usize) else {
                break;
            };
            if now >= e.locked_until {
                return i;
            }
            i = e.prev;
        }
        self.oldest
    }

    /// Backward-shift deletion at index position `hole`.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some(&e) = self.index.get(j) else { break };
            if e == NONE {
                break;
            }
            let ideal = self
                .entries
                .get(e as usize)
                .map_or(j, |x| x.hash as usize & mask);
            // Move it back unless its ideal slot lies cyclically in (hole, j].
            if (j.wrapping_sub(ideal) & mask) >= (j.wrapping_sub(hole) & mask) {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = NONE;
        }
    }

    fn unlink(&mut self, e: u32) {
        let Some((prev, next)) = self.entries.get(e as usize).map(|x| (x.prev, x.next)) else {
            return;
        };
        match self.entries.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.newest = next,
        }
        match self.entries.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.oldest = prev,
        }
        if let Some(x) = self.entries.get_mut(e as usize) {
            x.prev = NONE;
            x.next = NONE;
        }
    }

    fn push_newest(&mut self, e: u32) {
        let old = self.newest;
        if let Some(x) = self.entries.get_mut(e as usize) {
            x.prev = NONE;
            x.next = old;
        }
        match self.entries.get_mut(old as usize) {
            Some(o) => o.prev = e,
            None => self.oldest = e,
        }
        self.newest = e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        max_failures: 3,
        window: Nanos(1_000),
        lockout: Nanos(10_000),
    };

    fn addr(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 | i))
    }

    #[test]
    fn locks_after_max_failures_within_the_window_and_clears_with_time() {
        let mut t = LockoutTable::new(16);
        let s = Scope::Address(addr(2));
        assert_eq!(t.fail(s, Nanos(1), &LIMIT, 0), None);
        assert_eq!(t.fail(s, Nanos(2), &LIMIT, 0), None);
        assert_eq!(t.fail(s, Nanos(3), &LIMIT, 0), Some(Nanos(10_003)));
        assert!(t.locked(&s, Nanos(10_002)));
        assert!(!t.locked(&s, Nanos(10_003)));
        assert!(!t.locked(&Scope::Address(addr(3)), Nanos(5)));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let mut t = LockoutTable::new(16);
        let s = Scope::Address(addr(2));
        t.fail(s, Nanos(1), &LIMIT, 0);
        t.fail(s, Nanos(2), &LIMIT, 0);
        assert_eq!(t.fail(s, Nanos(1_001), &LIMIT, 0), None);
        assert_eq!(t.fail(s, Nanos(1_002), &LIMIT, 0), None);
        assert!(t.fail(s, Nanos(1_003), &LIMIT, 0).is_some());
    }

    #[test]
    fn a_key_address_scope_is_separate_from_the_same_key_elsewhere() {
        let mut t = LockoutTable::new(16);
        let k = KeyId::new(b"client1-dev").unwrap();
        for i in 0..3 {
            t.fail(Scope::KeyAddress(k, addr(2)), Nanos(i), &LIMIT, 0);
        }
        assert!(t.locked(&Scope::KeyAddress(k, addr(2)), Nanos(5)));
        assert!(!t.locked(&Scope::KeyAddress(k, addr(1)), Nanos(5)));
        assert!(!t.locked(&Scope::Address(addr(2)), Nanos(5)));
    }

    #[test]
    fn full_table_evicts_the_oldest_unlocked_first() {
        let mut t = LockoutTable::new(4);
        let locked = Scope::Address(addr(100));
        for i in 0..3 {
            t.fail(locked, Nanos(i), &LIMIT, 0);
        }
        for i in 0..20 {
            t.fail(Scope::Address(addr(i)), Nanos(10), &LIMIT, 0);
            assert!(t.len() <= 4);
        }
        assert_eq!(t.evictions(), 17);
        assert!(t.locked(&locked, Nanos(20)), "the lock survived the churn");
        assert!(t
            .locked_entries(Nanos(20))
            .iter()
            .any(|l| l.scope == locked));
    }

    #[test]
    fn forget_and_restore() {
        let mut t = LockoutTable::new(8);
        let k = KeyId::new(b"k").unwrap();
        for i in 0..3 {
            t.fail(Scope::KeyAddress(k, addr(2)), Nanos(i), &LIMIT, 0);
            t.fail(Scope::Address(addr(3)), Nanos(i), &LIMIT, 0);
        }
        let saved = t.locked_entries(Nanos(5));
        assert_eq!(saved.len(), 2);
        t.forget(|s| matches!(s, Scope::KeyAddress(id, _) if *id == k));
        assert!(!t.locked(&Scope::KeyAddress(k, addr(2)), Nanos(5)));
        assert!(t.locked(&Scope::Address(addr(3)), Nanos(5)));
        let mut fresh = LockoutTable::new(8);
        for l in &saved {
            fresh.restore(l, Nanos(5));
        }
        assert!(fresh.locked(&Scope::KeyAddress(k, addr(2)), Nanos(5)));
        assert!(fresh.locked(&Scope::Address(addr(3)), Nanos(5)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Fail(u8, u32, bool),
        Check(u32),
        Forget(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..4, any::<u32>(), any::<bool>()).prop_map(|(k, a, v6)| Op::Fail(k, a, v6)),
            any::<u32>().prop_map(Op::Check),
            (0u8..4).prop_map(Op::Forget),
        ]
    }

    proptest::proptest! {
        /// Whatever the sequence of failures (endless IPv4 and IPv6 sources, keys, unlocks),
        /// the table never holds more than its capacity, never reallocates, and every scope it
        /// reports locked is one it was told about.
        #[test]
        fn memory_stays_bounded_under_any_failure_sequence(
            cap in 1usize..64,
            ops in proptest::collection::vec(op(), 0..600),
        ) {
            let mut t = LockoutTable::new(cap);
            let bytes = t.footprint_bytes();
            let keys = [b"a".as_slice(), b"b", b"client1-dev", b"k"];
            let mut now = Nanos(1);
            for o in ops {
                now = Nanos(now.0 + 7);
                let ip = |a: u32, v6: bool| if v6 {
                    IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) << 64 | 1))
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::from(a))
                };
                match o {
                    Op::Fail(k, a, v6) => {
                        let id = KeyId::new(keys[usize::from(k)]).unwrap();
                        let scope = if a % 2 == 0 {
                            Scope::Address(ip(a, v6))
                        } else {
                            Scope::KeyAddress(id, ip(a, v6))
                        };
                        t.fail(scope, now, &LIMIT, 0);
                        // The scope just failed is tracked (eviction never takes the newest).
                        proptest::prop_assert!(t.find(&scope, t.hash(&scope)).is_ok());
                    }
                    Op::Check(a) => {
                        let _ = t.locked(&Scope::Address(ip(a, false)), now);
                    }
                    Op::Forget(k) => {
                        let id = KeyId::new(keys[usize::from(k)]).unwrap();
                        t.forget(|s| matches!(s, Scope::KeyAddress(x, _) if *x == id));
                    }
                }
                proptest::prop_assert!(t.len() <= cap);
                proptest::prop_assert_eq!(t.footprint_bytes(), bytes);
                let live = t.index.iter().filter(|&&e| e != NONE).count();
                proptest::prop_assert_eq!(live, t.len());
                // Every entry is findable through the index.
                for e in &t.entries {
                    proptest::prop_assert!(t.find(&e.scope, e.hash).is_ok());
                }
            }
        }
    }
}
