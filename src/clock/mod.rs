//! HOT (reads) / COLD (calibration) — the only code that reads time.
//!
//! The hot thread reads a TSC-based clock (quanta) and maps it to UTC on a line (anchor + rate)
//! that the clock thread recalibrates against CLOCK_REALTIME (which PTP/NTP disciplines). A
//! read costs a few nanoseconds and no syscall. Tests use [`Clock::manual`] to drive time by hand.
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

/// The fast clock's line to UTC, published by calibration: `utc = base_utc + (ticks −
/// base_ticks) × rate`, ticks being quanta's raw counter (the TSC) and `rate` nanoseconds per
/// tick in 2^-32 units.
///
/// # Publication
/// A sequence lock: the (single, cold) writer makes `seq` odd, stores the three values, makes it
/// even again; a reader retries while `seq` is odd or moved. Every field is an atomic, so a
/// retried read is merely discarded, never undefined. A reader never waits for the writer
/// except during the few nanoseconds of a write.
#[derive(Debug, Default)]
pub struct Calibration {
    seq: AtomicU64,
    base_fast: AtomicU64,
    base_utc: AtomicU64,
    rate: AtomicU64,
    /// quanta's own start-up estimate of the rate (the reference for sanity limits and ppb).
    nominal: AtomicU64,
    /// Serialises writers and holds their state: the last measured point and rate (cold side
    /// only; the gateway thread never touches it).
    writer: std::sync::Mutex<Option<Measured>>,
}

/// The last calibration's measurement (ticks, CLOCK_REALTIME ns, measured rate).
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    ticks: u64,
    real: u64,
    rate: u64,
}

/// A measured rate further than this from 1.0 is taken for a clock step, not a rate (ppm).
const RATE_LIMIT_PPM: u64 = 1000;
/// Shortest interval between calibrations that updates the line; a calibration sooner only
/// measures.
const RATE_MIN_INTERVAL_NS: u64 = 10_000_000;
/// An error larger than this is stepped out at once (CLOCK_REALTIME itself was stepped);
/// smaller ones are slewed out over the next interval, so time never runs backwards.
const STEP_LIMIT_NS: u64 = 1_000_000;

impl Calibration {
    /// The published line: (base_fast, base_utc, rate).
    #[inline]
    fn load(&self) -> (u64, u64, u64) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let line = (
                self.base_fast.load(Ordering::Relaxed),
                self.base_utc.load(Ordering::Relaxed),
                self.rate.load(Ordering::Relaxed),
            );
            std::sync::atomic::fence(Ordering::Acquire);
            if s1 & 1 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                return line;
            }
            std::hint::spin_loop();
        }
    }

    fn store(&self, base_fast: u64, base_utc: u64, rate: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.base_fast.store(base_fast, Ordering::Relaxed);
        self.base_utc.store(base_utc, Ordering::Relaxed);
        self.rate.store(rate, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

/// UTC of fast-clock reading `fast` on the line (base_fast, base_utc, rate).
#[inline]
fn on_line(fast: u64, (base_fast, base_utc, rate): (u64, u64, u64)) -> u64 {
    if fast >= base_fast {
        let d = (u128::from(fast - base_fast) * u128::from(rate)) >> 32;
        base_utc.wrapping_add(d as u64)
    } else {
        let d = (u128::from(base_fast - fast) * u128::from(rate)) >> 32;
        base_utc.wrapping_sub(d as u64)
    }
}

/// A source of UTC time.
#[derive(Clone, Debug)]
pub enum Clock {
    /// quanta's raw TSC counter on a calibrated line to UTC.
    Fast {
        clock: quanta::Clock,
        cal: Arc<Calibration>,
    },
    /// Time set by hand (tests).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The production clock, calibrated once now; call [`Clock::recalibrate`] periodically.
    pub fn fast() -> Clock {
        let clock = quanta::Clock::new();
        let cal = Calibration::default();
        // Nanoseconds per 2^32 ticks by quanta's start-up calibration = the rate in our units.
        let nominal = clock.delta_as_nanos(0, 1 << 32).max(1);
        cal.nominal.store(nominal, Ordering::Relaxed);
        let c = Clock::Fast {
            clock,
            cal: Arc::new(cal),
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
            Clock::Fast { clock, cal } => Nanos(on_line(clock.raw(), cal.load())),
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

    /// Re-measures the fast clock against CLOCK_REALTIME and says how good the measurement was;
    /// `None` for manual clocks. Cold: the clock thread calls it every `[clock] calibrate_ms`.
    ///
    /// The realtime read is bracketed between two fast reads and the midpoint taken; of five
    /// tries the narrowest bracket wins (a preempted try is simply discarded). The rate is
    /// CLOCK_REALTIME's over the last interval as seen by the TSC, so between calibrations the
    /// fast clock follows the disciplined clock's frequency, not only its phase (quanta's
    /// start-up TSC calibration can be off by hundreds of ppm). The error found (`correction`)
    /// is slewed out over the next interval: the new line starts where the old one is now and
    /// runs a little faster or slower, so timestamps never go backwards. Only an error over
    /// 1 ms (CLOCK_REALTIME was stepped) is stepped. Calibrations less than 10 ms apart only
    /// measure.
    pub fn calibrate(&self) -> Option<Calibrated> {
        let Clock::Fast { clock, cal } = self else {
            return None;
        };
        let mut last = cal.writer.lock().unwrap_or_else(|p| p.into_inner());
        let nominal = cal.nominal.load(Ordering::Relaxed).max(1);
        let mut best: Option<(u64, u64, u64)> = None; // (bracket width, tick mid, realtime)
        for _ in 0..5 {
            let a = clock.raw();
            let real = system_utc().0;
            let b = clock.raw();
            let width = b.saturating_sub(a);
            if best.is_none_or(|(w, _, _)| width < w) {
                best = Some((width, a + width / 2, real));
            }
        }
        let (width, ticks, real) = best?;
        let to_ns = |t: u64, rate: u64| ((u128::from(t) * u128::from(rate)) >> 32) as u64;
        let Some(prev) = *last else {
            cal.store(ticks, real, nominal);
            *last = Some(Measured {
                ticks,
                real,
                rate: nominal,
            });
            return Some(Calibrated {
                correction_ns: 0,
                uncertainty_ns: to_ns(width, nominal) / 2 + 1,
            });
        };
        let line = cal.load();
        let predicted = on_line(ticks, line);
        let error = real.wrapping_sub(predicted) as i64;
        let done = Calibrated {
            correction_ns: error,
            uncertainty_ns: to_ns(width, prev.rate) / 2 + 1,
        };
        let elapsed_ticks = ticks.saturating_sub(prev.ticks).max(1);
        if to_ns(elapsed_ticks, prev.rate) < RATE_MIN_INTERVAL_NS {
            return Some(done);
        }
        let limit = i128::from(nominal) * i128::from(RATE_LIMIT_PPM) / 1_000_000;
        let measured =
            (i128::from(real.wrapping_sub(prev.real) as i64) << 32) / i128::from(elapsed_ticks);
        let sane = (measured - i128::from(nominal)).abs() <= limit;
        let rate = if sane {
            measured
        } else {
            i128::from(prev.rate)
        };
        if !sane || error.unsigned_abs() > STEP_LIMIT_NS {
            cal.store(ticks, real, rate as u64);
        } else {
            // Absorb the error over an interval like the last one.
            let slewed = rate + (i128::from(error) << 32) / i128::from(elapsed_ticks);
            let slewed = slewed.clamp(
                i128::from(nominal) - 2 * limit,
                i128::from(nominal) + 2 * limit,
            );
            cal.store(ticks, predicted, slewed.max(1) as u64);
        }
        *last = Some(Measured {
            ticks,
            real,
            rate: rate as u64,
        });
        Some(done)
    }

    /// The fast clock's measured rate error in parts per billion against quanta's start-up
    /// estimate (0 for manual clocks or before a second calibration): positive when the TSC
    /// ticks are longer than quanta assumed. Cold (takes the calibration's writer lock).
    pub fn rate_ppb(&self) -> i64 {
        let Clock::Fast { cal, .. } = self else {
            return 0;
        };
        let last = *cal.writer.lock().unwrap_or_else(|p| p.into_inner());
        let nominal = cal.nominal.load(Ordering::Relaxed);
        match last {
            Some(m) if nominal != 0 => {
                ((i128::from(m.rate) - i128::from(nominal)) * 1_000_000_000 / i128::from(nominal))
                    as i64
            }
            _ => 0,
        }
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
    fn rate_correction_keeps_the_drift_between_calibrations_small() {
        let c = Clock::fast();
        std::thread::sleep(std::time::Duration::from_millis(30));
        c.calibrate().unwrap(); // measures the rate over 30 ms
        std::thread::sleep(std::time::Duration::from_millis(30));
        let cal = c.calibrate().unwrap();
        // Uncorrected, quanta's start-up rate error alone is 100–500 ppm here (3–15 µs per
        // 30 ms); corrected, what is left is scheduling noise. 50 µs allows a loaded CI box.
        assert!(cal.correction_ns.unsigned_abs() < 50_000, "{cal:?}");
        assert!(c.rate_ppb().abs() < 1_000_000, "{} ppb", c.rate_ppb());
        let (a, s) = (c.now().0 as i128, system_utc().0 as i128);
        assert!((a - s).abs() < 1_000_000, "fast {a} vs system {s}");
    }

    #[test]
    fn readers_never_see_a_half_published_line() {
        // The writer publishes (n, n + 1, n + 2) as fast as it can; a torn read breaks the
        // pattern.
        let cal = Arc::new(Calibration::default());
        // The first line is published before any reader starts (the default one is all zeros).
        cal.store(0, 1, 2);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cal, stop) = (cal.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let (a, b, c) = cal.load();
                        assert!(b == a + 1 && c == a + 2, "torn: {a} {b} {c}");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for n in 1..2_000_000u64 {
            cal.store(n, n + 1, n + 2);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }

    #[test]
    fn time_never_runs_backwards_across_calibrations() {
        let c = Clock::fast();
        let mut prev = c.now();
        for _ in 0..8 {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(12);
            while std::time::Instant::now() < until {
                let t = c.now();
                assert!(t >= prev, "{t:?} after {prev:?}");
                prev = t;
            }
            c.calibrate();
            let t = c.now();
            assert!(t >= prev, "{t:?} after {prev:?} across a calibration");
            prev = t;
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(Nanos::from_secs(10));
        assert_eq!(c.now(), Nanos::from_secs(10));
        c.advance(Nanos::from_millis(5));
        assert_eq!(c.now(), Nanos(10_005_000_000));
    }
}
