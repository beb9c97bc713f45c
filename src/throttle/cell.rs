//! HOT — the three single-word limit primitives (GCRA bucket, day counter, window slot ring).
//!
//! Each primitive is a compare-and-swap loop on one 64-bit word, so it is exact under any number
//! of concurrent callers. They are generic over [`Cell`] so that `loom_model.rs` runs this very
//! code against loom's model atomics; the std instantiation compiles to plain `lock cmpxchg`.
//!
//! Every function is pure apart from the cell it is handed: `now` is an argument, nothing reads a
//! clock, allocates or locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// "Never": the retry time of a limit that no amount of waiting satisfies (a limit of 0).
pub(crate) const NEVER: u64 = u64::MAX;
/// Nanoseconds per second: the unit of `per_second`.
pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;
/// Nanoseconds per day: the unit of the daily quota.
pub(crate) const NS_PER_DAY: u64 = 86_400 * NS_PER_SEC;

/// One atomic 64-bit word, accessed `SeqCst`. The bucket and the day counter would be exact with
/// `Relaxed` (one word each: coherence plus RMW atomicity suffice), but the window check writes
/// one slot and then reads the others — the store-buffer pattern — and "the last to increment
/// sees every other increment" needs a single total order over all slots (with all four accesses
/// `SeqCst`, store buffering is forbidden; weakened to acquire/release, the loom model finds
/// the over-admission, see `loom_model.rs`). On x86-64 a `SeqCst` load is a plain `mov`
/// and every RMW is `lock`-prefixed anyway, so this costs nothing there.
pub(crate) trait Cell {
    fn get(&self) -> u64;
    fn set(&self, v: u64);
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64>;
}

impl Cell for AtomicU64 {
    #[inline(always)]
    fn get(&self) -> u64 {
        AtomicU64::load(self, Ordering::SeqCst)
    }
    #[inline(always)]
    fn set(&self, v: u64) {
        AtomicU64::store(self, v, Ordering::SeqCst);
    }
    #[inline(always)]
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
}

/// The CAS loop: applies `f` to the current value until the swap wins, or returns `f`'s error
/// without writing. Returns `(old, new)` of the winning swap.
#[inline(always)]
pub(crate) fn update<C: Cell, E>(
    cell: &C,
    mut f: impl FnMut(u64) -> Result<u64, E>,
) -> Result<(u64, u64), E> {
    let mut cur = cell.get();
    loop {
        let new = f(cur)?;
        match cell.cas(cur, new) {
            Ok(_) => return Ok((cur, new)),
            Err(actual) => cur = actual,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Token bucket as GCRA (generic cell rate algorithm): the state is one word, the "theoretical
// arrival time" `tat` in ns. A full bucket is `tat <= now`; each admission pushes `tat` one
// emission interval `T` further; a request is admitted when `max(tat, now) - now <= tolerance`
// with `tolerance = (burst - 1) * T`. This is exactly a token bucket of capacity `burst` refilled
// one token per `T`, but needs no separate token count and timestamp, hence a single CAS.
//
// Limits word: `interval_ns << 32 | burst`. interval 0 = unlimited; burst 0 = blocked.
// ---------------------------------------------------------------------------------------------

/// Decoded bucket limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bucket {
    Unlimited,
    Blocked,
    Gcra { interval_ns: u64, tolerance_ns: u64 },
}

/// Packs per-second rate and burst. `T = ceil(1e9 / rate)` ns: rounding up means the effective
/// rate `1e9 / T` never exceeds the configured one (exact when the rate divides 1e9; for rates up
/// to 1,000/s the shortfall is below one part in a million).
pub(crate) const fn bucket_word(per_second: u32, burst: u32) -> u64 {
    if per_second == u32::MAX {
        return 0;
    }
    if per_second == 0 || burst == 0 {
        return 1 << 32; // interval 1, burst 0: blocked
    }
    let interval = NS_PER_SEC.div_ceil(per_second as u64); // 1..=1e9 < 2^32
    (interval << 32) | burst as u64
}

#[inline(always)]
pub(crate) fn bucket_decode(word: u64) -> Bucket {
    let interval_ns = word >> 32;
    let burst = word & 0xFFFF_FFFF;
    if interval_ns == 0 {
        Bucket::Unlimited
    } else if burst == 0 {
        Bucket::Blocked
    } else {
        // (2^32 - 2) * 1e9 < 2^63: no overflow.
        Bucket::Gcra {
            interval_ns,
            tolerance_ns: (burst - 1) * interval_ns,
        }
    }
}

/// Earliest time a request passes given `tat`, or `None` when it passes at `now`.
#[inline(always)]
fn gcra_retry(tat: u64, now: u64, tolerance_ns: u64) -> Option<u64> {
    let tat0 = tat.max(now);
    if tat0 - now > tolerance_ns {
        Some(tat0 - tolerance_ns) // tat0 > now + tolerance: no underflow
    } else {
        None
    }
}

/// Takes one token. `Ok(true)` when a token was taken (roll back with [`bucket_untake`]),
/// `Ok(false)` when unlimited, `Err(retry_at_ns)` when refused (nothing written).
#[inline(always)]
pub(crate) fn bucket_take<C: Cell>(tat: &C, limits: Bucket, now: u64) -> Result<bool, u64> {
    match limits {
        Bucket::Unlimited => Ok(false),
        Bucket::Blocked => Err(NEVER),
        Bucket::Gcra {
            interval_ns,
            tolerance_ns,
        } => update(tat, |t| match gcra_retry(t, now, tolerance_ns) {
            Some(retry_at) => Err(retry_at),
            None => Ok(t.max(now).saturating_add(interval_ns)),
        })
        .map(|_| true),
    }
}

/// Returns the token [`bucket_take`] took. `tat` becomes `max(old_tat, now)`, which admits
/// exactly what `old_tat` would have (both are "full" at or before `now`), and it composes with
/// concurrent takes because it is a subtraction.
#[inline]
pub(crate) fn bucket_untake<C: Cell>(tat: &C, limits: Bucket) {
    if let Bucket::Gcra { interval_ns, .. } = limits {
        let _ = update::<_, ()>(tat, |t| Ok(t.saturating_sub(interval_ns)));
    }
}

/// Retry time without writing: `None` = passes now.
pub(crate) fn bucket_peek<C: Cell>(tat: &C, limits: Bucket, now: u64) -> Option<u64> {
    match limits {
        Bucket::Unlimited => None,
        Bucket::Blocked => Some(NEVER),
        Bucket::Gcra { tolerance_ns, .. } => gcra_retry(tat.get(), now, tolerance_ns),
    }
}

// ---------------------------------------------------------------------------------------------
// Daily quota: state word `day << 32 | used`, where `day` counts quota days since the epoch:
// `(now - reset_offset) / 1 day`. A stale day reads as 0 used; no reset thread.
// Limits word: `per_day << 32 | reset_offset_s`. per_day u32::MAX = unlimited, 0 = blocked.
// ---------------------------------------------------------------------------------------------

pub(crate) const fn daily_word(per_day: u32, reset_offset_s: u32) -> u64 {
    ((per_day as u64) << 32) | reset_offset_s as u64
}

#[inline(always)]
pub(crate) fn daily_decode(word: u64) -> (u32, u64) {
    let per_day = (word >> 32) as u32;
    let offset_ns = (word & 0xFFFF_FFFF).saturating_mul(NS_PER_SEC);
    (per_day, offset_ns)
}

/// Quota day index of `now` for a reset at `offset_ns` after 00:00 UTC.
#[inline(always)]
pub(crate) fn day_index(now: u64, offset_ns: u64) -> u32 {
    let d = now.saturating_sub(offset_ns) / NS_PER_DAY;
    u32::try_from(d).unwrap_or(u32::MAX)
}

/// Start of quota day `day + 1`: when the quota of `day` resets.
pub(crate) fn next_reset(day: u32, offset_ns: u64) -> u64 {
    (u64::from(day) + 1)
        .saturating_mul(NS_PER_DAY)
        .saturating_add(offset_ns)
}

/// Counts one message into today's quota. `Ok(Some(day))` = counted into `day` (roll back with
/// [`daily_untake`]), `Ok(None)` = unlimited, `Err(retry_at_ns)` = quota spent.
#[inline(always)]
pub(crate) fn daily_take<C: Cell>(state: &C, limits: u64, now: u64) -> Result<Option<u32>, u64> {
    let (per_day, offset_ns) = daily_decode(limits);
    if per_day == u32::MAX {
        return Ok(None);
    }
    if per_day == 0 {
        return Err(NEVER);
    }
    let today = day_index(now, offset_ns);
    update(state, |w| {
        let (day, used) = daily_effective(w, today);
        if used >= per_day {
            Err(next_reset(day, offset_ns))
        } else {
            Ok(pack_day(day, used + 1))
        }
    })
    .map(|(_, new)| Some((new >> 32) as u32))
}

/// The day and count that apply at `today`: an older day counts as 0 used; a newer day (a caller
/// whose clock lags, or state restored from ahead) is honoured as it stands — fail closed.
#[inline(always)]
fn daily_effective(w: u64, today: u32) -> (u32, u32) {
    let day = (w >> 32) as u32;
    if day < today {
        (today, 0)
    } else {
        (day, w as u32)
    }
}

#[inline(always)]
pub(crate) fn pack_day(day: u32, used: u32) -> u64 {
    (u64::from(day) << 32) | u64::from(used)
}

/// Gives back the message [`daily_take`] counted into `day`; a no-op once the day has rolled.
#[inline]
pub(crate) fn daily_untake<C: Cell>(state: &C, day: u32) {
    let _ = update(state, |w| {
        if (w >> 32) as u32 == day && w as u32 > 0 {
            Ok(w - 1)
        } else {
            Err(())
        }
    });
}

pub(crate) fn daily_peek<C: Cell>(state: &C, limits: u64, now: u64) -> Option<u64> {
    let (per_day, offset_ns) = daily_decode(limits);
    if per_day == u32::MAX {
        return None;
    }
    if per_day == 0 {
        return Some(NEVER);
    }
    let (day, used) = daily_effective(state.get(), day_index(now, offset_ns));
    (used >= per_day).then(|| next_reset(day, offset_ns))
}

// ---------------------------------------------------------------------------------------------
// Sliding window: `SLOTS` slots of `slot_ns` each make the window; they live in a ring of
// `RING` words `epoch << 24 | count`, `epoch = now / slot_ns`. The count at `now` is the sum of
// the slots whose epoch is within the last `SLOTS` epochs (or later: a concurrent caller whose
// clock leads). The ring is larger than the window so that a slot is recycled only by a caller
// whose clock leads by more than `RING - SLOTS` slots.
//
// Admission increments the current slot first and then sums: if the sum exceeds the limit the
// increment is undone. Of several concurrent callers, the last to increment sees all the others'
// increments, so the limit holds under concurrency (a race can refuse, never over-admit).
// ---------------------------------------------------------------------------------------------

/// Words in a window ring: 16 × 8 bytes = one 128-byte line.
pub(crate) const RING: usize = 16;
/// Bits of a slot word holding the count.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Highest finite window limit: a slot count stays far below 2^24 even with every concurrent
/// caller's transient increment on top.
pub(crate) const MAX_WINDOW_LIMIT: u32 = 1 << 23;

/// A window's geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowSpec {
    pub(crate) slot_ns: u64,
    pub(crate) slots: u64,
}

/// 1 s window: 10 slots of 100 ms.
pub(crate) const WINDOW_1S: WindowSpec = WindowSpec {
    slot_ns: 100_000_000,
    slots: 10,
};
/// 10 s window: 10 slots of 1 s.
pub(crate) const WINDOW_10S: WindowSpec = WindowSpec {
    slot_ns: 1_000_000_000,
    slots: 10,
};

#[inline(always)]
fn slot_unpack(w: u64) -> (u64, u64) {
    (w >> COUNT_BITS, w & COUNT_MASK)
}

/// Where an admission was counted, for [`window_untake`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotRef {
    index: usize,
    epoch: u64,
}

/// Counts one message into the window. `Ok(Some(slot))` = counted (roll back with
/// [`window_untake`]), `Ok(None)` = unlimited, `Err(())` = refused (nothing left written; the
/// caller computes the retry time with [`window_peek`]).
#[inline(always)]
pub(crate) fn window_take<C: Cell>(
    ring: &[C; RING],
    spec: WindowSpec,
    limit: u32,
    now: u64,
) -> Result<Option<SlotRef>, ()> {
    if limit == u32::MAX {
        return Ok(None);
    }
    if limit == 0 {
        return Err(());
    }
    let epoch = now / spec.slot_ns; // < 2^40 until year 5000 for 100 ms slots
    let index = (epoch % RING as u64) as usize;
    let Some(cell) = ring.get(index) else {
        return Err(()); // unreachable: index < RING
    };
    let (_, new) = update(cell, |w| {
        let (e, c) = slot_unpack(w);
        if e < epoch {
            Ok((epoch << COUNT_BITS) | 1)
        } else if c < COUNT_MASK {
            Ok(w + 1) // this epoch, or a leading caller's later one: count there (fail closed)
        } else {
            Err(())
        }
    })?;
    let slot = SlotRef {
        index,
        epoch: new >> COUNT_BITS,
    };
    let oldest = (epoch + 1).saturating_sub(spec.slots);
    let mut sum = 0u64;
    for w in ring {
        let (e, c) = slot_unpack(w.get());
        sum += if e >= oldest { c } else { 0 };
    }
    if sum > u64::from(limit) {
        window_untake(ring, slot);
        return Err(());
    }
    Ok(Some(slot))
}

/// Undoes a [`window_take`]; a no-op once the slot has been recycled for a later epoch.
#[inline]
pub(crate) fn window_untake<C: Cell>(ring: &[C; RING], slot: SlotRef) {
    if let Some(cell) = ring.get(slot.index) {
        let _ = update(cell, |w| {
            let (e, c) = slot_unpack(w);
            if e == slot.epoch && c > 0 {
                Ok(w - 1)
            } else {
                Err(())
            }
        });
    }
}

/// Earliest time the window admits one more, `None` = passes now. Exact for the slot semantics
/// above: the count only changes at slot boundaries, so the answer is the start of the first
/// epoch at which enough old slots have left the window.
pub(crate) fn window_peek<C: Cell>(
    ring: &[C; RING],
    spec: WindowSpec,
    limit: u32,
    now: u64,
) -> Option<u64> {
    if limit == u32::MAX {
        return None;
    }
    if limit == 0 {
        return Some(NEVER);
    }
    let epoch = now / spec.slot_ns;
    let mut snap = [(0u64, 0u64); RING];
    for (s, w) in snap.iter_mut().zip(ring) {
        *s = slot_unpack(w.get());
    }
    // Count at a later epoch `at`, if nothing else is admitted meanwhile.
    let count_at = |at: u64| -> u64 {
        let oldest = (at + 1).saturating_sub(spec.slots);
        snap.iter()
            .filter(|(e, _)| *e >= oldest)
            .map(|(_, c)| *c)
            .sum()
    };
    if count_at(epoch) < u64::from(limit) {
        return None;
    }
    // The count drops only when some slot's epoch leaves: at epoch `e + slots`.
    let mut best = NEVER;
    for (e, _) in snap
        .iter()
        .filter(|(e, c)| *c > 0 && *e + spec.slots > epoch)
    {
        let at = e + spec.slots;
        if count_at(at) < u64::from(limit) {
            best = best.min(at.saturating_mul(spec.slot_ns));
        }
    }
    Some(best)
}
