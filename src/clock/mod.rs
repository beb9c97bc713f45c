//! HOT (reads) / COLD (calibration) — the only code that reads time.
//!
//! The hot thread reads a TSC-based clock (quanta) and adds an offset to UTC that the clock
//! thread recalibrates against CLOCK_REALTIME (which PTP/NTP disciplines). A read costs a few
//! nanoseconds and no syscall. Tests use [`Clock::manual`] to drive time by hand.
//!
//! - [`status`]: the published sync status (CLOCK-2) and how a reading is judged.
//! - [`thread`]: the cold `portcullis-clock` thread (recalibration, kernel and PHC reads).
//! - `sys`: the FFI reads (adjtimex, PHC), the module's only `unsafe`.
#![allow(clippy::disallowed_methods)] // this module is where reading time is allowed

pub mod cli;
pub mod status;
pub mod sys;
pub mod thread;

pub use status::{ClockSnapshot, ClockStatus, Policy, SyncState};

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
        self.calibrate().map_or(0, |c| c.correction_ns)
    }

    /// Re-measures the offset to CLOCK_REALTIME and says how good the measurement was; `None`
    /// for manual clocks. Cold: the clock thread calls it every `[clock] calibrate_ms`.
    ///
    /// The realtime read is bracketed between two fast reads and the midpoint taken; of five
    /// tries the narrowest bracket wins (a preempted try is simply discarded).
    pub fn calibrate(&self) -> Option<Calibrated> {
        let Clock::Fast { clock, base, cal } = self else {
            return None;
        };
        let mut best: Option<(u64, u64)> = None; // (bracket width, offset)
        for _ in 0..5 {
            let a = clock.now();
            let real = system_utc().0;
            let b = clock.now();
            let a = a.saturating_duration_since(*base).as_nanos() as u64;
            let b = b.saturating_duration_since(*base).as_nanos() as u64;
            let width = b.saturating_sub(a);
            let offset = real.wrapping_sub(a + width / 2);
            if best.is_none_or(|(w, _)| width < w) {
                best = Some((width, offset));
            }
        }
        let (width, offset) = best?;
        let old = cal.offset_ns.swap(offset, Ordering::Relaxed);
        Some(Calibrated {
            correction_ns: if old == 0 {
                0
            } else {
                offset.wrapping_sub(old) as i64
            },
            uncertainty_ns: width / 2 + 1,
        })
    }
}

/// What one recalibration found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibrated {
    /// Offset change applied (the fast clock's drift from CLOCK_REALTIME since the last
    /// calibration); positive when the fast clock was behind.
    pub correction_ns: i64,
    /// Half the bracket around the realtime read: how far off the new offset may be.
    pub uncertainty_ns: u64,
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
    fn calibration_reports_a_small_correction_and_uncertainty() {
        let c = Clock::fast();
        let cal = c.calibrate().unwrap();
        // Back-to-back calibrations: the TSC cannot drift milliseconds in microseconds.
        assert!(cal.correction_ns.unsigned_abs() < 5_000_000, "{cal:?}");
        assert!(
            cal.uncertainty_ns >= 1 && cal.uncertainty_ns < 5_000_000,
            "{cal:?}"
        );
        assert_eq!(Clock::manual(Nanos(1)).calibrate(), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(Nanos::from_secs(10));
        assert_eq!(c.now(), Nanos::from_secs(10));
        c.advance(Nanos::from_millis(5));
        assert_eq!(c.now(), Nanos(10_005_000_000));
    }
}
