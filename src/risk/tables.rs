//! HOT — fixed-capacity state tables of the risk core: per-account per-symbol positions (open
//! addressing, no deletion, sized at construction) and the per-account ring of recent orders for
//! duplicate detection. Neither ever grows.

use crate::model::{Nanos, Side};

/// One account's position in one symbol, in quantity units (10^-4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Executed: buys − sells.
    pub net: i64,
    /// Working buy quantity (accepted, not yet filled or cancelled).
    pub open_buy: i64,
    /// Working sell quantity (Sell and SellShort).
    pub open_sell: i64,
}

#[derive(Clone, Copy)]
struct Slot {
    /// `account << 32 | symbol`, or `EMPTY`.
    key: u64,
    pos: Position,
}

const EMPTY: u64 = u64::MAX;

/// Positions keyed by (account index, symbol index). Entries are never removed: a flat position
/// stays (it is intraday state), so probing never needs tombstones.
pub struct PositionTable {
    slots: Vec<Slot>,
    mask: usize,
    len: u32,
    capacity: u32,
}

/// Where a key is, or where it would go.
pub enum Probe {
    Found(usize),
    Vacant(usize),
    Full,
}

impl PositionTable {
    /// Room for `capacity` positions; the slot array is twice that (rounded to a power of two)
    /// so probe chains stay short when it is full.
    pub fn new(capacity: u32) -> PositionTable {
        let n = (capacity as usize)
            .saturating_mul(2)
            .next_power_of_two()
            .max(2);
        PositionTable {
            slots: super::prefetch::with_huge_pages(
                n,
                Slot {
                    key: EMPTY,
                    pos: Position::default(),
                },
            ),
            mask: n - 1,
            len: 0,
            capacity,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn key(account: u32, symbol: u32) -> u64 {
        (u64::from(account) << 32) | u64::from(symbol)
    }

    /// Fibonacci hashing: the high bits of key × 2^64/φ.
    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// Where the probe for (account, symbol) begins, for a prefetch.
    #[inline]
    pub fn slot_ptr(&self, account: u32, symbol: u32) -> *const u8 {
        self.slots
            .as_ptr()
            .wrapping_add(self.home(Self::key(account, symbol)))
            .cast()
    }

    #[inline]
    pub fn probe(&self, account: u32, symbol: u32) -> Probe {
        let key = Self::key(account, symbol);
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            match self.slots.get(i) {
                Some(s) if s.key == key => return Probe::Found(i),
                Some(s) if s.key == EMPTY => {
                    return if self.len < self.capacity {
                        Probe::Vacant(i)
                    } else {
                        Probe::Full
                    };
                }
                _ => i = (i + 1) & self.mask,
            }
        }
        Probe::Full
    }

    /// The position at a probed index (a flat one for a vacant slot).
    #[inline]
    pub fn at(&self, probe: &Probe) -> Position {
        match *probe {
            Probe::Found(i) => self.slots.get(i).map(|s| s.pos).unwrap_or_default(),
            Probe::Vacant(_) | Probe::Full => Position::default(),
        }
    }

    /// The position for a probe, claiming the slot if vacant; `None` when full.
    #[inline]
    pub fn claim(&mut self, account: u32, symbol: u32, probe: Probe) -> Option<&mut Position> {
        match probe {
            Probe::Found(i) => self.slots.get_mut(i).map(|s| &mut s.pos),
            Probe::Vacant(i) => {
                let s = self.slots.get_mut(i)?;
                s.key = Self::key(account, symbol);
                s.pos = Position::default();
                self.len += 1;
                Some(&mut s.pos)
            }
            Probe::Full => None,
        }
    }

    pub fn get(&self, account: u32, symbol: u32) -> Option<Position> {
        match self.probe(account, symbol) {
            Probe::Found(i) => self.slots.get(i).map(|s| s.pos),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, account: u32, symbol: u32) -> Option<&mut Position> {
        let p = self.probe(account, symbol);
        match p {
            Probe::Found(_) | Probe::Vacant(_) => self.claim(account, symbol, p),
            Probe::Full => None,
        }
    }
}

/// An open-addressed index from an inline name (account, symbol) to a dense index, sized at
/// construction to at most ~2/3 full. Each slot is 4 bytes — 12 bits of the name's hash and
/// the index — so the table of 10,000 accounts is 64 KiB and stays in the L2 cache between
/// lookups; the name itself is compared by the caller in the record it indexes (which it
/// reads next anyway), so a lookup touches one cold cache line, the record's.
pub struct NameIndex {
    /// `tag << 20 | (index + 1)`; 0 is empty.
    slots: Vec<u32>,
    mask: usize,
}

/// Indices below this fit a slot (the risk core refuses more accounts or symbols).
pub const NAME_INDEX_MAX: usize = (1 << 20) - 1;

impl NameIndex {
    pub fn new(capacity: usize) -> NameIndex {
        let n = capacity
            .saturating_add(capacity / 2)
            .next_power_of_two()
            .max(16);
        NameIndex {
            slots: vec![0; n],
            mask: n - 1,
        }
    }

    /// The name's 64-bit hash: the order table's FastHasher, then the splitmix64 finalizer
    /// (FastHasher's low bits depend on little of the input; after the finalizer every bit
    /// does, so the low bits pick the slot and the high bits are the tag).
    #[inline]
    pub fn hash<T: core::hash::Hash>(name: &T) -> u64 {
        use core::hash::BuildHasher;
        let mut h =
            core::hash::BuildHasherDefault::<crate::order::FastHasher>::default().hash_one(name);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^ (h >> 31)
    }

    #[inline]
    fn start(&self, h: u64) -> usize {
        h as usize & self.mask
    }

    /// Adds `index` (below [`NAME_INDEX_MAX`]) under hash `h` (the caller has checked the
    /// name is not there yet).
    pub fn insert(&mut self, h: u64, index: u32) {
        let entry = (((h >> 52) as u32) << 20) | (index.wrapping_add(1) & 0xF_FFFF);
        let mut i = self.start(h);
        for _ in 0..self.slots.len() {
            match self.slots.get_mut(i) {
                Some(e) if *e == 0 => {
                    *e = entry;
                    return;
                }
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// The index stored under hash `h` for which `is(index)` holds (the caller compares names).
    #[inline]
    pub fn find(&self, h: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = (h >> 52) as u32;
        let mut i = self.start(h);
        for _ in 0..self.slots.len() {
            let e = *self.slots.get(i)?;
            if e == 0 {
                return None;
            }
            if e >> 20 == tag {
                let index = (e & 0xF_FFFF).wrapping_sub(1);
                if is(index) {
                    return Some(index);
                }
            }
            i = (i + 1) & self.mask;
        }
        None
    }
}

/// One recently accepted order, for duplicate detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentOrder {
    pub symbol: u32,
    pub side: Side,
    pub qty: i64,
    /// Limit price, or `i64::MIN` for a market order.
    pub price: i64,
    pub at: Nanos,
}

impl RecentOrder {
    pub const EMPTY: RecentOrder = RecentOrder {
        symbol: u32::MAX,
        side: Side::Buy,
        qty: 0,
        price: 0,
        at: Nanos::ZERO,
    };
}

/// How long ago the same order was accepted, if inside `window` of `now`.
#[inline]
pub fn find_duplicate(ring: &[RecentOrder], o: &RecentOrder, window: Nanos) -> Option<Nanos> {
    ring.iter()
        .filter(|r| {
            r.symbol == o.symbol && r.side == o.side && r.qty == o.qty && r.price == o.price
        })
        .map(|r| o.at.saturating_sub(r.at))
        .filter(|age| *age < window)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_index_finds_every_name_and_only_those() {
        let names: Vec<crate::model::Account> = (0..5000)
            .map(|i| crate::model::Account::new(format!("A{i}").as_bytes()).unwrap())
            .collect();
        let mut ix = NameIndex::new(names.len());
        for (i, n) in names.iter().enumerate() {
            ix.insert(NameIndex::hash(n), i as u32);
        }
        for (i, n) in names.iter().enumerate() {
            let found = ix.find(NameIndex::hash(n), |j| names[j as usize] == *n);
            assert_eq!(found, Some(i as u32));
        }
        let other = crate::model::Account::new(b"NOPE").unwrap();
        assert_eq!(
            ix.find(NameIndex::hash(&other), |j| names[j as usize] == other),
            None
        );
    }

    #[test]
    fn position_table_refuses_past_capacity_and_keeps_existing_slots() {
        let mut t = PositionTable::new(3);
        for s in 0..3 {
            t.get_mut(1, s).unwrap().net = i64::from(s) + 1;
        }
        assert!(matches!(t.probe(1, 9), Probe::Full));
        assert!(t.get_mut(2, 0).is_none());
        for s in 0..3 {
            assert_eq!(t.get(1, s).unwrap().net, i64::from(s) + 1);
            assert!(t.get_mut(1, s).is_some());
        }
    }
}
