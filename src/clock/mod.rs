//! HOT (reads) / COLD (calibration) — the only code that reads time.
//!
//! The hot thread reads a TSC-based clock (quanta) and adds an offset to UTC that the clock
//! thread recalibrates against CLOCK_REALTIME (which PTP/NTP disciplines). A read costs a few
//! nanoseconds and no syscall. Tests use [`Clock::manual`] to drive time by hand.
#![allow(clippy::disallowed_methods)] // this module is where reading time is allowed

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Nanos;

/// Offset between the fast clock and UTC, published by calibration.
#[derive(Debug, Default)]
pub struct Calibration {
    /// UTC nanoseconds at fast-clock zero (`utc = fast + offset`).
    offset_ns: AtomicU64,
}

/// A source of UTC time.
#[derive(Clone, Debug)]
pub enum Clock {
    /// quanta TSC clock plus a calibrated offset.
    Fast {
        clock: quanta::Clock,
        base: quanta::Instant,
        cal: Arc<Calibration>,
    },
    /// Time set by hand (tests).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The production clock, calibrated once now; call [`Clock::recalibrate`] periodically.
    pub fn fast() -> Clock {
        let clock = quanta::Clock::new();
        let base = clock.now();
        let c = Clock::Fast {
            clock,
            base,
            cal: Arc::new(Calibration::default()),
        };
        c.recalibrate();
        c
    }

    /// A clock that only moves when told to; starts at `start`.
    pub fn manual(start: Nanos) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start.0)))
    }

    /// UTC now.
    #[inline]
    pub fn now(&self) -> Nanos {
        match self {
            Clock::Fast { clock, base, cal } => {
                let since = clock.now().saturating_duration_since(*base).as_nanos() as u64;
                Nanos(since.wrapping_add(cal.offset_ns.load(Ordering::Relaxed)))
            }
            Clock::Manual(t) => Nanos(t.load(Ordering::Relaxed)),
        }
    }

    /// Manual clocks: move time forward by `d`.
    pub fn advance(&self, d: Nanos) {
        if let Clock::Manual(t) = self {
            t.fetch_add(d.0, Ordering::Relaxed);
        }
    }

    /// Manual clocks: set time.
    pub fn set(&self, t: Nanos) {
        if let Clock::Manual(v) = self {
            v.store(t.0, Ordering::Relaxed);
        }
    }

    /// Re-measures the offset to CLOCK_REALTIME (cold: the clock thread calls it). Returns the
    /// correction applied, in nanoseconds (positive when the fast clock was behind).
    pub fn recalibrate(&self) -> i64 {
        let Clock::Fast { clock, base, cal } = self else {
            return 0;
        };
        // Bracket the realtime read between two fast reads; take the midpoint.
        let a = clock.now();
        let real = system_utc().0;
        let b = clock.now();
        let mid = (a.saturating_duration_since(*base).as_nanos() as u64
            + b.saturating_duration_since(*base).as_nanos() as u64)
            / 2;
        let offset = real.wrapping_sub(mid);
        let old = cal.offset_ns.swap(offset, Ordering::Relaxed);
        if old == 0 {
            0
        } else {
            offset.wrapping_sub(old) as i64
        }
    }
}

/// CLOCK_REALTIME through the standard library (vDSO, no syscall on Linux).
pub fn system_utc() -> Nanos {
    Nanos(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    )
}

/// Monotonic wall time for cold-path timeouts and benchmarks' own bookkeeping.
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_clock_tracks_system_time() {
        let c = Clock::fast();
        let a = c.now().0 as i128;
        let s = system_utc().0 as i128;
        assert!((a - s).abs() < 50_000_000, "fast {a} vs system {s}");
        let b = c.now();
        assert!(b.0 as i128 >= a);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(Nanos::from_secs(10));
        assert_eq!(c.now(), Nanos::from_secs(10));
        c.advance(Nanos::from_millis(5));
        assert_eq!(c.now(), Nanos(10_005_000_000));
    }
}
