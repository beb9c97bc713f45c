//! COLD — turns the throttle part of the configuration into the throttle module's types: the
//! tier table and each session's resolved limits.

use super::{Config, LimitsCfg};
use crate::throttle::{KeyLimits, KeyOverrides, Limits, TierTable, UNLIMITED};

impl LimitsCfg {
    /// Absent fields are not limited.
    pub fn to_limits(self) -> Limits {
        Limits {
            per_second: self.per_second.unwrap_or(UNLIMITED),
            burst: self.burst.unwrap_or(UNLIMITED),
            per_day: self.per_day.unwrap_or(UNLIMITED),
            window_1s: self.window_1s.unwrap_or(UNLIMITED),
            window_10s: self.window_10s.unwrap_or(UNLIMITED),
        }
    }
}

impl Config {
    /// The tiers of `[[tier]]`, or the stock tiers when there are none.
    pub fn tier_table(&self) -> TierTable {
        if self.tiers.is_empty() {
            return TierTable::stock();
        }
        let mut t = TierTable::new();
        for tier in &self.tiers {
            let limits = KeyLimits {
                order: tier.orders.to_limits(),
                cancel: tier.cancels.to_limits(),
                other: tier.other.to_limits(),
                day_reset_s: tier
                    .day_reset_utc
                    .as_deref()
                    .and_then(super::parse_hhmm)
                    .unwrap_or(0),
            };
            // Names were validated (unique, 1–24 characters, at most 16).
            let _ = t.insert(&tier.name, limits);
        }
        t
    }

    /// The limits of session `i`: its tier with its overrides, or no limit without a tier.
    pub fn session_limits(&self, i: usize, tiers: &TierTable) -> KeyLimits {
        let unlimited = KeyLimits {
            order: Limits::UNLIMITED,
            cancel: Limits::UNLIMITED,
            other: Limits::UNLIMITED,
            day_reset_s: 0,
        };
        let Some(s) = self.sessions.get(i) else {
            return unlimited;
        };
        let Some(id) = s.tier.as_deref().and_then(|t| tiers.find(t)) else {
            return unlimited;
        };
        let overrides = KeyOverrides {
            order: s.order_limits.map(LimitsCfg::to_limits),
            cancel: s.cancel_limits.map(LimitsCfg::to_limits),
            other: s.other_limits.map(LimitsCfg::to_limits),
            day_reset_s: None,
        };
        tiers.resolve(id, &overrides).unwrap_or(KeyLimits::BLOCKED)
    }
}
