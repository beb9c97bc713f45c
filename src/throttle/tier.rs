//! HOT — named tiers with graduated limits, and per-key overrides (RATE-3). No heap: fixed
//! arrays and inline names, so the table can be built cold and handed to the hot thread whole.
//!
//! A [`TierTable`] is built from config at startup (or rebuilt and handed over as a whole when
//! config changes); a key's effective limits are its tier's, with any [`KeyOverrides`] replacing
//! whole classes. [`ThrottleTable::apply_tier`](super::ThrottleTable::apply_tier) writes them
//! into the key's slot, effective from the next check.

use super::{KeyLimits, Limits, ThrottleError, UNLIMITED};
use crate::model::InlineStr;

/// Most tiers a table holds.
pub const MAX_TIERS: usize = 16;

/// A tier's name, e.g. `standard`.
pub type TierName = InlineStr<24>;

/// Index of a tier in its [`TierTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TierId(pub u8);

/// Why a tier could not be added or applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierError {
    /// The table already holds [`MAX_TIERS`] tiers.
    TableFull,
    /// The name is longer than [`TierName`] holds, or empty.
    BadName,
    /// A tier of that name exists already.
    Duplicate(TierId),
    /// No such tier.
    UnknownTier(TierId),
    /// Writing the limits into the throttle table failed.
    Throttle(ThrottleError),
}

/// Per-key exceptions to the tier: a `Some` class replaces the tier's limits for that class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyOverrides {
    pub order: Option<Limits>,
    pub cancel: Option<Limits>,
    pub other: Option<Limits>,
    pub day_reset_s: Option<u32>,
}

/// Named tiers → limits. Fixed capacity, no heap.
#[derive(Clone, Debug, Default)]
pub struct TierTable {
    tiers: [Option<(TierName, KeyLimits)>; MAX_TIERS],
}

impl TierTable {
    /// An empty table.
    pub fn new() -> Self {
        TierTable::default()
    }

    /// The three stock tiers, graduated ×5 per step; cancels get 4× the order rate and burst
    /// and no daily quota, so a client can always reduce risk.
    ///
    /// | tier          | orders/s (burst) | 1 s window | 10 s window | orders/day |
    /// |---------------|------------------|------------|-------------|------------|
    /// | standard      | 20 (40)          | 40         | 200         | 100,000    |
    /// | professional  | 100 (200)        | 200        | 1,000       | 500,000    |
    /// | institutional | 500 (1,000)      | 1,000      | 5,000       | 2,500,000  |
    pub fn stock() -> Self {
        let mut t = TierTable::new();
        for (name, rate) in [
            ("standard", 20u32),
            ("professional", 100),
            ("institutional", 500),
        ] {
            let order = Limits {
                per_second: rate,
                burst: rate * 2,
                per_day: rate * 5_000,
                window_1s: rate * 2,
                window_10s: rate * 10,
            };
            let cancel = Limits {
                per_second: rate * 4,
                burst: rate * 8,
                per_day: UNLIMITED,
                window_1s: rate * 8,
                window_10s: rate * 40,
            };
            let other = Limits {
                per_day: UNLIMITED,
                ..order
            };
            // Three distinct short names into an empty table: cannot fail.
            let _ = t.insert(
                name,
                KeyLimits {
                    order,
                    cancel,
                    other,
                    day_reset_s: 0,
                },
            );
        }
        t
    }

    /// Adds a tier.
    pub fn insert(&mut self, name: &str, limits: KeyLimits) -> Result<TierId, TierError> {
        let name = TierName::new(name.as_bytes())
            .filter(|n| !n.is_empty())
            .ok_or(TierError::BadName)?;
        if let Some(id) = self.find(name.as_str()) {
            return Err(TierError::Duplicate(id));
        }
        let (i, free) = self
            .tiers
            .iter_mut()
            .enumerate()
            .find(|(_, t)| t.is_none())
            .ok_or(TierError::TableFull)?;
        *free = Some((name, limits));
        Ok(TierId(i as u8)) // i < MAX_TIERS = 16
    }

    /// Replaces a tier's limits (apply them to its keys with `apply_tier` to take effect).
    pub fn update(&mut self, id: TierId, limits: KeyLimits) -> Result<(), TierError> {
        match self.tiers.get_mut(usize::from(id.0)) {
            Some(Some((_, l))) => {
                *l = limits;
                Ok(())
            }
            _ => Err(TierError::UnknownTier(id)),
        }
    }

    /// The tier called `name`.
    pub fn find(&self, name: &str) -> Option<TierId> {
        self.tiers.iter().enumerate().find_map(|(i, t)| match t {
            Some((n, _)) if n.as_bytes() == name.as_bytes() => Some(TierId(i as u8)),
            _ => None,
        })
    }

    /// The tier's name.
    pub fn name(&self, id: TierId) -> Option<&TierName> {
        match self.tiers.get(usize::from(id.0)) {
            Some(Some((n, _))) => Some(n),
            _ => None,
        }
    }

    /// A key's effective limits: the tier's, with the overrides applied.
    pub fn resolve(&self, id: TierId, overrides: &KeyOverrides) -> Result<KeyLimits, TierError> {
        let Some(Some((_, base))) = self.tiers.get(usize::from(id.0)) else {
            return Err(TierError::UnknownTier(id));
        };
        Ok(KeyLimits {
            order: overrides.order.unwrap_or(base.order),
            cancel: overrides.cancel.unwrap_or(base.cancel),
            other: overrides.other.unwrap_or(base.other),
            day_reset_s: overrides.day_reset_s.unwrap_or(base.day_reset_s),
        })
    }
}
