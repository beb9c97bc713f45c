//! HOT — per-key message throttling (RATE-1, RATE-2, RATE-3; the numbers behind RATE-4).
//!
//! Owns [`ThrottleTable`]: a table of per-key slots, preallocated at startup, each holding for
//! every [`MsgClass`] a token bucket, two sliding windows and a daily quota, all in atomics.
//! The gateway thread calls [`ThrottleTable::check`] once per inbound application message;
//! [`ThrottleTable::set_key_limits`] changes a key's limits live. It never reads the clock (the
//! caller passes `now`), never allocates after [`ThrottleTable::with_capacity`], never locks, and
//! never panics on a key slot or time value: an unknown slot is a [`Verdict::Reject`].
//!
//! ```text
//!  check(key, class, now)
//!    │  take bucket ── refused ───────────────────────────────┐
//!    │  take day quota ── refused: give back bucket ──────────┤
//!    │  take 1 s window ── refused: give back day, bucket ────┤  #[cold] refuse():
//!    │  take 10 s window ── refused: give back all three ─────┤  peek every limit (no writes),
//!    ▼                                                        ▼  retry = latest retry time
//!  Admit                                   Reject { limit, retry_after_ms, retry_at }
//! ```
//!
//! # Limits
//! Per key and class ([`Limits`]): `per_second` + `burst` (token bucket), `window_1s`,
//! `window_10s` (sliding windows of 10 slots each), `per_day` (quota per UTC day, resetting at
//! the key's `day_reset_s` seconds after midnight UTC). Every number is fail-closed: `0` admits
//! nothing; "no limit" is explicit, [`UNLIMITED`] (`u32::MAX`). A fresh slot is [`Limits::BLOCKED`]
//! until limits are set. Every limit must pass; a refusal leaves the other limits as they were.
//!
//! # Concurrency
//! Each limit's state is one 64-bit word changed by a compare-and-swap loop (`cell.rs`), so
//! several threads may check the same key at once: the bucket and the daily quota stay exact,
//! the windows never over-admit (see `cell.rs`); a race between two callers can only refuse one
//! that a sequential order would have admitted, because tokens taken by a request that is then
//! refused elsewhere are visible until given back. `loom_model.rs` model-checks the loops.
//!
//! # Live limit changes
//! Limits live in the key's slot as atomics, not behind a pointer: each limit's parameters are
//! packed into one word (`rate|burst`, `window_1s|window_10s`, `per_day|day_reset_s`), so a check
//! never sees half of a limit. [`ThrottleTable::set_key_limits`] stores the words one after the
//! other; called from the thread that runs `check` (limits arrive there as a whole snapshot
//! through `handoff/`), the change is whole before the next check. Called from another thread, a
//! concurrent check may pair the old bucket with the new windows — each limit still valid, and
//! the next check sees all new. Tokens in use carry over as tokens (converted to the new refill
//! interval); window and day counts carry over as counts. No `AtomicPtr`, no epoch reclamation, no unsafe.
//!
//! # Retry-after
//! A refusal names the limit whose retry time is latest and the time at which a retry will be
//! admitted if nothing else is sent meanwhile: every limit is monotone in time without traffic,
//! so the latest of the per-limit retry times is exactly the first instant all pass. It is exact
//! to the nanosecond in [`Verdict::Reject::retry_at`]; `retry_after_ms` rounds up.
//!
//! # Tests and benches
//! - `cargo test --lib throttle` — manual-clock unit tests, proptests, and the loom model
//!   (`throttle::loom_model`, ~0.2 s; `LOOM_MAX_PREEMPTIONS=N` widens it).
//! - `cargo test --test throttle_stress` — 3 threads on one key for ~1 s of real time; and
//!   zero allocations per check.
//! - `cargo bench --bench throttle -- --warm-up-time 1 --measurement-time 3`.
#![warn(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod abuse;
mod cell;
#[cfg(test)]
mod loom_model;
#[cfg(test)]
mod tests;
mod tier;

use std::sync::atomic::AtomicU64;

pub use abuse::{AbuseConfig, AbuseDetector, AbuseVerdict};
pub use tier::{KeyOverrides, TierError, TierId, TierName, TierTable, MAX_TIERS};

use crate::model::Nanos;
use cell::{Bucket, Cell, RING, WINDOW_10S, WINDOW_1S};

/// "No limit" for any field of [`Limits`]. (`0` means "admit nothing".)
pub const UNLIMITED: u32 = u32::MAX;
/// Highest finite window limit; larger values are lowered to it.
pub const MAX_WINDOW_LIMIT: u32 = cell::MAX_WINDOW_LIMIT;
/// `retry_at` of a refusal that waiting never cures (a limit of 0, an unknown key).
pub const NEVER: Nanos = Nanos(cell::NEVER);

/// Index of an API key in the [`ThrottleTable`] (assigned by the key store).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeySlot(pub u32);

/// Message class: each has its own limits, so cancels can stay generous when orders are spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgClass {
    /// NewOrderSingle `<D>`, OrderCancelReplaceRequest `<G>`.
    Order,
    /// OrderCancelRequest `<F>`, OrderMassCancelRequest `<q>`: reduce risk.
    Cancel,
    /// Every other application message.
    Other,
}

/// One class's limits. Each field: `0` admits nothing, [`UNLIMITED`] disables that limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Token bucket refill rate, tokens per second (refill interval `ceil(1e9 / per_second)` ns).
    pub per_second: u32,
    /// Token bucket capacity: messages admissible at once after idling.
    pub burst: u32,
    /// Messages per quota day (see [`KeyLimits::day_reset_s`]).
    pub per_day: u32,
    /// Messages in any 1 s window (10 slots of 100 ms; at most [`MAX_WINDOW_LIMIT`]).
    pub window_1s: u32,
    /// Messages in any 10 s window (10 slots of 1 s; at most [`MAX_WINDOW_LIMIT`]).
    pub window_10s: u32,
}

impl Limits {
    /// Admits nothing: the state of a slot before its limits are set.
    pub const BLOCKED: Limits = Limits {
        per_second: 0,
        burst: 0,
        per_day: 0,
        window_1s: 0,
        window_10s: 0,
    };
    /// No limit at all (for tests and trusted internal keys).
    pub const UNLIMITED: Limits = Limits {
        per_second: UNLIMITED,
        burst: UNLIMITED,
        per_day: UNLIMITED,
        window_1s: UNLIMITED,
        window_10s: UNLIMITED,
    };

    fn bucket_word(&self) -> u64 {
        cell::bucket_word(self.per_second, self.burst)
    }
    fn window_word(&self) -> u64 {
        let clamp = |l: u32| {
            if l == UNLIMITED {
                l
            } else {
                l.min(MAX_WINDOW_LIMIT)
            }
        };
        (u64::from(clamp(self.window_1s)) << 32) | u64::from(clamp(self.window_10s))
    }
}

/// All limits of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    pub order: Limits,
    pub cancel: Limits,
    pub other: Limits,
    /// When the daily quotas reset, seconds after 00:00 UTC (`0..86_400`).
    pub day_reset_s: u32,
}

impl KeyLimits {
    pub const BLOCKED: KeyLimits = KeyLimits {
        order: Limits::BLOCKED,
        cancel: Limits::BLOCKED,
        other: Limits::BLOCKED,
        day_reset_s: 0,
    };
    pub fn class(&self, class: MsgClass) -> &Limits {
        match class {
            MsgClass::Order => &self.order,
            MsgClass::Cancel => &self.cancel,
            MsgClass::Other => &self.other,
        }
    }
}

/// Which limit refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The token bucket (`per_second` / `burst`).
    PerSecond,
    /// The daily quota.
    Daily,
    /// The 1 s sliding window.
    Window1s,
    /// The 10 s sliding window.
    Window10s,
    /// The key slot is outside the table.
    UnknownKey,
}

impl Limit {
    /// Short name for reject texts and counters.
    pub const fn name(self) -> &'static str {
        match self {
            Limit::PerSecond => "per-second",
            Limit::Daily => "daily quota",
            Limit::Window1s => "1s window",
            Limit::Window10s => "10s window",
            Limit::UnknownKey => "unknown key",
        }
    }
}

/// The answer to [`ThrottleTable::check`]. A refusal is not an error (STYLE §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    Reject {
        /// The limit whose retry time is latest.
        limit: Limit,
        /// `ceil((retry_at - now) / 1 ms)`; `u64::MAX` when `retry_at` is [`NEVER`].
        retry_after_ms: u64,
        /// The first instant at which the same message would be admitted, if nothing else is
        /// sent meanwhile; [`NEVER`] when waiting cannot help.
        retry_at: Nanos,
    },
}

impl Verdict {
    fn reject(limit: Limit, retry_at: u64, now: u64) -> Verdict {
        let retry_after_ms = if retry_at == cell::NEVER {
            u64::MAX
        } else {
            retry_at.saturating_sub(now).div_ceil(1_000_000)
        };
        Verdict::Reject {
            limit,
            retry_after_ms,
            retry_at: Nanos(retry_at),
        }
    }
    pub fn is_admit(&self) -> bool {
        matches!(self, Verdict::Admit)
    }
}

/// Messages counted against one daily quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayCount {
    /// Quota day: whole days since 1970-01-01 plus the reset offset, i.e.
    /// `(now_ns - day_reset_s * 1e9) / 86_400e9`.
    pub day: u32,
    pub used: u32,
}

/// A key's daily quota state as plain numbers, for the engine to persist across restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailyState {
    pub order: DayCount,
    pub cancel: DayCount,
    pub other: DayCount,
}

/// Why a limit change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleError {
    /// The key slot is outside the table.
    UnknownKey(KeySlot),
    /// `day_reset_s` is not below 86,400.
    ResetTimeOutOfRange(u32),
}

// ---------------------------------------------------------------------------------------------
// Layout: per class one 128-byte line for limits + bucket + day, one line per window ring.
// ---------------------------------------------------------------------------------------------

/// A class's parameter words and its bucket/day state: one line.
#[repr(align(128))]
struct ClassHead {
    /// `interval_ns << 32 | burst` (see `cell::bucket_word`).
    bucket_limits: AtomicU64,
    /// `window_1s << 32 | window_10s`.
    window_limits: AtomicU64,
    /// `per_day << 32 | day_reset_s`.
    daily_limits: AtomicU64,
    /// GCRA theoretical arrival time, ns.
    tat: AtomicU64,
    /// `day << 32 | used`.
    day: AtomicU64,
}

/// One sliding window's slot ring: one line.
#[repr(align(128))]
struct Ring([AtomicU64; RING]);

#[repr(align(128))]
struct ClassSlot {
    head: ClassHead,
    w1: Ring,
    w10: Ring,
}

/// One key: three classes, 3 × 384 bytes.
#[repr(align(128))]
struct KeyState {
    order: ClassSlot,
    cancel: ClassSlot,
    other: ClassSlot,
}

impl ClassSlot {
    fn new(limits: &Limits, day_reset_s: u32) -> ClassSlot {
        let zero_ring = || Ring(std::array::from_fn(|_| AtomicU64::new(0)));
        ClassSlot {
            head: ClassHead {
                bucket_limits: AtomicU64::new(limits.bucket_word()),
                window_limits: AtomicU64::new(limits.window_word()),
                daily_limits: AtomicU64::new(cell::daily_word(limits.per_day, day_reset_s)),
                tat: AtomicU64::new(0),
                day: AtomicU64::new(0),
            },
            w1: zero_ring(),
            w10: zero_ring(),
        }
    }

    /// Stores new limits. Tokens in use carry over as tokens: `k` tokens of debt under the old
    /// interval become `k` tokens under the new one, so a tier change is felt at once.
    fn set(&self, limits: &Limits, day_reset_s: u32, now: u64) {
        let h = &self.head;
        let word = limits.bucket_word();
        let old = cell::bucket_decode(h.bucket_limits.get());
        h.bucket_limits.set(word);
        if let (
            Bucket::Gcra {
                interval_ns: old_ns,
                ..
            },
            Bucket::Gcra {
                interval_ns: new_ns,
                ..
            },
        ) = (old, cell::bucket_decode(word))
        {
            if old_ns != new_ns {
                let _ = cell::update::<_, ()>(&h.tat, |tat| {
                    let tokens = tat.saturating_sub(now).div_ceil(old_ns);
                    Ok(now.saturating_add(tokens.saturating_mul(new_ns)))
                });
            }
        }
        h.window_limits.set(limits.window_word());
        h.daily_limits
            .set(cell::daily_word(limits.per_day, day_reset_s));
    }

    #[inline(always)]
    fn check(&self, now: u64) -> Verdict {
        let h = &self.head;
        let bucket = cell::bucket_decode(h.bucket_limits.get());
        let took_token = match cell::bucket_take(&h.tat, bucket, now) {
            Ok(t) => t,
            Err(_) => return self.refuse(Limit::PerSecond, now),
        };
        let daily_limits = h.daily_limits.get();
        let day = match cell::daily_take(&h.day, daily_limits, now) {
            Ok(d) => d,
            Err(_) => {
                self.give_back(bucket, took_token, None, None);
                return self.refuse(Limit::Daily, now);
            }
        };
        let windows = h.window_limits.get();
        let w1 = match cell::window_take(&self.w1.0, WINDOW_1S, (windows >> 32) as u32, now) {
            Ok(s) => s,
            Err(()) => {
                self.give_back(bucket, took_token, day, None);
                return self.refuse(Limit::Window1s, now);
            }
        };
        if let Err(()) = cell::window_take(&self.w10.0, WINDOW_10S, windows as u32, now) {
            self.give_back(bucket, took_token, day, w1);
            return self.refuse(Limit::Window10s, now);
        }
        Verdict::Admit
    }

    #[cold]
    fn give_back(&self, bucket: Bucket, token: bool, day: Option<u32>, w1: Option<cell::SlotRef>) {
        if let Some(slot) = w1 {
            cell::window_untake(&self.w1.0, slot);
        }
        if let Some(d) = day {
            cell::daily_untake(&self.head.day, d);
        }
        if token {
            cell::bucket_untake(&self.head.tat, bucket);
        }
    }

    /// The refusal: peeks every limit without writing and names the one whose retry is latest.
    #[cold]
    #[inline(never)]
    fn refuse(&self, tripped: Limit, now: u64) -> Verdict {
        let h = &self.head;
        let windows = h.window_limits.get();
        let retries = [
            (
                Limit::PerSecond,
                cell::bucket_peek(&h.tat, cell::bucket_decode(h.bucket_limits.get()), now),
            ),
            (
                Limit::Daily,
                cell::daily_peek(&h.day, h.daily_limits.get(), now),
            ),
            (
                Limit::Window1s,
                cell::window_peek(&self.w1.0, WINDOW_1S, (windows >> 32) as u32, now),
            ),
            (
                Limit::Window10s,
                cell::window_peek(&self.w10.0, WINDOW_10S, windows as u32, now),
            ),
        ];
        // A concurrent caller may have given tokens back meanwhile: then retry now.
        let (mut limit, mut retry_at) = (tripped, now);
        for (l, r) in retries {
            if let Some(r) = r {
                if r > retry_at || (r == retry_at && l == tripped) {
                    (limit, retry_at) = (l, r);
                }
            }
        }
        Verdict::reject(limit, retry_at, now)
    }

    fn day_count(&self) -> DayCount {
        let w = self.head.day.get();
        DayCount {
            day: (w >> 32) as u32,
            used: w as u32,
        }
    }
}

/// The throttle table: one slot per API key, sized at startup.
///
/// Shared by reference (or `Arc`) between the threads that check keys and the thread that
/// changes limits; every method takes `&self`.
pub struct ThrottleTable {
    keys: Box<[KeyState]>,
}

impl ThrottleTable {
    /// A table of `keys` slots, every one [`KeyLimits::BLOCKED`]. Allocates 1,152 bytes per key
    /// (100,000 keys ≈ 110 MiB); nothing after.
    pub fn with_capacity(keys: usize) -> Self {
        Self::with_limits(keys, &KeyLimits::BLOCKED)
    }

    /// A table of `keys` slots, every one starting with `limits` (a valid `day_reset_s` is
    /// taken modulo one day).
    pub fn with_limits(keys: usize, limits: &KeyLimits) -> Self {
        let reset = limits.day_reset_s % 86_400;
        let keys = (0..keys)
            .map(|_| KeyState {
                order: ClassSlot::new(&limits.order, reset),
                cancel: ClassSlot::new(&limits.cancel, reset),
                other: ClassSlot::new(&limits.other, reset),
            })
            .collect();
        ThrottleTable { keys }
    }

    /// Number of key slots.
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    #[inline(always)]
    fn slot(&self, key: KeySlot, class: MsgClass) -> Option<&ClassSlot> {
        let k = self.keys.get(usize::try_from(key.0).ok()?)?;
        Some(match class {
            MsgClass::Order => &k.order,
            MsgClass::Cancel => &k.cancel,
            MsgClass::Other => &k.other,
        })
    }

    /// Admits one message of `class` from `key` at `now`, or says which limit refuses it and
    /// when a retry will pass. An admission counts against every limit of the class; a refusal
    /// counts against none.
    #[inline]
    pub fn check(&self, key: KeySlot, class: MsgClass, now: Nanos) -> Verdict {
        match self.slot(key, class) {
            Some(slot) => slot.check(now.0),
            None => Verdict::reject(Limit::UnknownKey, cell::NEVER, now.0),
        }
    }

    /// Replaces one class's limits of `key`, effective from the next check; `now` converts the
    /// tokens in use to the new refill interval. Keeps the key's daily reset time.
    pub fn set_limits(
        &self,
        key: KeySlot,
        class: MsgClass,
        limits: &Limits,
        now: Nanos,
    ) -> Result<(), ThrottleError> {
        let slot = self
            .slot(key, class)
            .ok_or(ThrottleError::UnknownKey(key))?;
        let reset_s = cell::daily_decode(slot.head.daily_limits.get()).1 / cell::NS_PER_SEC;
        slot.set(limits, u32::try_from(reset_s).unwrap_or(0), now.0);
        Ok(())
    }

    /// Replaces all limits of `key` (a tier change), effective from the next check; `now`
    /// converts the tokens in use to the new refill intervals.
    pub fn set_key_limits(
        &self,
        key: KeySlot,
        limits: &KeyLimits,
        now: Nanos,
    ) -> Result<(), ThrottleError> {
        if limits.day_reset_s >= 86_400 {
            return Err(ThrottleError::ResetTimeOutOfRange(limits.day_reset_s));
        }
        for class in [MsgClass::Order, MsgClass::Cancel, MsgClass::Other] {
            let slot = self
                .slot(key, class)
                .ok_or(ThrottleError::UnknownKey(key))?;
            slot.set(limits.class(class), limits.day_reset_s, now.0);
        }
        Ok(())
    }

    /// Puts `key` on `tier` of `tiers` with `overrides`, effective from the next check.
    pub fn apply_tier(
        &self,
        key: KeySlot,
        tiers: &TierTable,
        tier: TierId,
        overrides: &KeyOverrides,
        now: Nanos,
    ) -> Result<(), TierError> {
        let limits = tiers.resolve(tier, overrides)?;
        self.set_key_limits(key, &limits, now)
            .map_err(TierError::Throttle)
    }

    /// The key's daily quota counters, to persist. `None` for an unknown slot.
    pub fn daily_state(&self, key: KeySlot) -> Option<DailyState> {
        let k = self.keys.get(usize::try_from(key.0).ok()?)?;
        Some(DailyState {
            order: k.order.day_count(),
            cancel: k.cancel.day_count(),
            other: k.other.day_count(),
        })
    }

    /// Restores counters saved by [`daily_state`](Self::daily_state) (after a restart). A saved
    /// day that has passed simply reads as 0 used at the next check.
    pub fn restore_daily(&self, key: KeySlot, state: DailyState) -> Result<(), ThrottleError> {
        let k = usize::try_from(key.0)
            .ok()
            .and_then(|i| self.keys.get(i))
            .ok_or(ThrottleError::UnknownKey(key))?;
        for (slot, c) in [
            (&k.order, state.order),
            (&k.cancel, state.cancel),
            (&k.other, state.other),
        ] {
            slot.head.day.set(cell::pack_day(c.day, c.used));
        }
        Ok(())
    }
}
