//! BOUNDARY — the clock's sync status (CLOCK-2): written by the clock thread, read by anyone
//! (the gateway thread reads one flag per order; the ops port and the CLI read a snapshot).
//!
//! Everything is a relaxed atomic: each field is independently meaningful and a reader that
//! sees a mix of two consecutive updates sees two valid measurements. The halt flag the gateway
//! thread reads sits on its own 128-byte line so the clock thread's writes to the other fields
//! never invalidate it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};

use super::sys::{KernelTime, PhcReading};
use crate::config::{ClockCfg, OnDivergence};
use crate::model::Nanos;

/// Whether the system clock is disciplined to UTC, as far as the kernel knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// adjtimex could not be read (not Linux, or refused): nothing is claimed.
    Unknown,
    /// The kernel says nobody disciplines the clock (STA_UNSYNC / TIME_ERROR).
    Unsynchronised,
    /// A daemon (phc2sys, chronyd, ntpd) disciplines the clock.
    Synchronised,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Unknown => "unknown",
            SyncState::Unsynchronised => "unsynchronised",
            SyncState::Synchronised => "synchronised",
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            SyncState::Unknown => 0,
            SyncState::Unsynchronised => 1,
            SyncState::Synchronised => 2,
        }
    }
    fn from_u8(v: u8) -> SyncState {
        match v {
            1 => SyncState::Unsynchronised,
            2 => SyncState::Synchronised,
            _ => SyncState::Unknown,
        }
    }
}

/// The limits a reading is judged against (from `[clock]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub max_divergence_ns: u64,
    pub on_divergence: OnDivergence,
    pub unsynchronised_is_breach: bool,
}

impl Policy {
    pub fn from_config(c: &ClockCfg) -> Policy {
        Policy {
            max_divergence_ns: c.max_divergence_us.saturating_mul(1000),
            on_divergence: c.on_divergence,
            unsynchronised_is_breach: c.unsynchronised_is_breach,
        }
    }
}

/// Everything one clock-thread tick measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// adjtimex, or `None` when it could not be read.
    pub kernel: Option<KernelTime>,
    /// The PHC against the system clock, when a device exists and could be read.
    pub phc: Option<PhcReading>,
    /// A PHC device is configured (or was found) but could not be read (permissions, gone).
    pub phc_unreadable: bool,
    /// Uncertainty of the fast clock's calibration (half the bracket around the realtime read).
    pub calibration_error_ns: u64,
    /// Correction the last recalibration applied: how far the fast clock had drifted from
    /// CLOCK_REALTIME over one interval (positive: the fast clock was behind).
    pub drift_ns: i64,
    /// Rate correction the calibration applies to the fast clock, ppb.
    pub rate_ppb: i64,
}

/// A reading judged against a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub state: SyncState,
    /// Estimated divergence of the timestamps we write from UTC, ns; `None` = cannot be bounded.
    pub divergence_ns: Option<u64>,
    /// Over the limit (or unbounded while `unsynchronised_is_breach`).
    pub breach: bool,
    /// New orders are refused (`breach` and `on_divergence = "halt"`).
    pub halt: bool,
}

/// How far a PHC reading says the system clock is from the PHC's time scale. ptp4l runs the PHC
/// on TAI and phc2sys keeps CLOCK_REALTIME on UTC, so a healthy offset is TAI − UTC (37 s since
/// 2017); a PHC kept on UTC shows ≈ 0. The smaller of the two interpretations is taken.
pub fn phc_divergence_ns(phc: &PhcReading, tai_s: i32) -> u64 {
    let raw = phc.offset_ns.unsigned_abs();
    let tai = if tai_s > 0 { tai_s } else { 37 };
    let vs_tai = (i128::from(phc.offset_ns) - i128::from(tai) * 1_000_000_000).unsigned_abs();
    raw.min(u64::try_from(vs_tai).unwrap_or(u64::MAX))
}

/// Judges a reading: sync state from the kernel; divergence = the PHC's offset from the system
/// clock when a PHC was read, else the kernel's estimated error, + the calibration error + the
/// drift over one interval.
pub fn assess(r: &Reading, p: &Policy) -> Assessment {
    let state = match r.kernel {
        None => SyncState::Unknown,
        Some(k) if k.unsynchronised() => SyncState::Unsynchronised,
        Some(_) => SyncState::Synchronised,
    };
    let divergence_ns = match (state, r.kernel) {
        (SyncState::Synchronised, Some(k)) => {
            // With a PHC, its measured offset is the system clock's error against the PTP time
            // scale; phc2sys never sets the kernel's esterror (it stays at its boot value,
            // 16 s). Without one, the daemon's estimate (chronyd and ntpd set it) is all we have.
            let base = match r.phc {
                Some(x) => phc_divergence_ns(&x, k.tai_s).saturating_add(x.delay_ns / 2),
                None => (k.esterror_us.max(0) as u64).saturating_mul(1000),
            };
            Some(
                base.saturating_add(r.calibration_error_ns)
                    .saturating_add(r.drift_ns.unsigned_abs()),
            )
        }
        _ => None,
    };
    let breach = match divergence_ns {
        Some(d) => d > p.max_divergence_ns,
        None => p.unsynchronised_is_breach,
    };
    Assessment {
        state,
        divergence_ns,
        breach,
        halt: breach && p.on_divergence == OnDivergence::Halt,
    }
}

#[repr(align(128))]
#[derive(Default)]
struct PaddedBool(AtomicBool);

const NONE_I64: i64 = i64::MIN;
const NONE_U64: u64 = u64::MAX;

/// The published status. One per gateway, shared through an `Arc`.
pub struct ClockStatus {
    /// Read by the gateway thread once per new order.
    halted: PaddedBool,
    policy: Policy,
    state: AtomicU8,
    breach: AtomicBool,
    divergence_ns: AtomicU64,
    maxerror_ns: AtomicU64,
    esterror_ns: AtomicU64,
    kernel_offset_ns: AtomicI64,
    kernel_status: AtomicU64,
    drift_ns: AtomicI64,
    rate_ppb: AtomicI64,
    calibration_error_ns: AtomicU64,
    phc_offset_ns: AtomicI64,
    phc_unreadable: AtomicBool,
    updated_at: AtomicU64,
    updates: AtomicU64,
    /// Test and drill hook: 0 = none, else 1 + the forced [`SyncState`].
    forced: AtomicU8,
}

/// A plain copy of the status at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSnapshot {
    pub state: SyncState,
    pub divergence_ns: Option<u64>,
    pub breach: bool,
    pub halted: bool,
    pub maxerror_ns: Option<u64>,
    pub esterror_ns: Option<u64>,
    pub kernel_offset_ns: Option<i64>,
    pub kernel_status: Option<u64>,
    pub drift_ns: i64,
    pub rate_ppb: i64,
    pub calibration_error_ns: u64,
    /// PHC − system clock, when a PTP hardware clock was read.
    pub phc_offset_ns: Option<i64>,
    /// A PHC exists but could not be read.
    pub phc_unreadable: bool,
    /// UTC time of the last update (0 = never).
    pub updated_at: Nanos,
    pub updates: u64,
    pub policy: Policy,
}

impl ClockStatus {
    pub fn new(policy: Policy) -> ClockStatus {
        ClockStatus {
            halted: PaddedBool::default(),
            policy,
            state: AtomicU8::new(SyncState::Unknown.to_u8()),
            breach: AtomicBool::new(false),
            divergence_ns: AtomicU64::new(NONE_U64),
            maxerror_ns: AtomicU64::new(NONE_U64),
            esterror_ns: AtomicU64::new(NONE_U64),
            kernel_offset_ns: AtomicI64::new(NONE_I64),
            kernel_status: AtomicU64::new(NONE_U64),
            drift_ns: AtomicI64::new(0),
            rate_ppb: AtomicI64::new(0),
            calibration_error_ns: AtomicU64::new(0),
            phc_offset_ns: AtomicI64::new(NONE_I64),
            phc_unreadable: AtomicBool::new(false),
            updated_at: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            forced: AtomicU8::new(0),
        }
    }

    /// True while new orders must be refused. The gateway thread's only read: one relaxed load.
    #[inline]
    pub fn halted(&self) -> bool {
        self.halted.0.load(Ordering::Relaxed)
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Tests and drills: the clock thread reports `state` instead of the kernel's from its next
    /// tick (and judges it with the same policy, through the same atomics); `None` ends it.
    pub fn force(&self, state: Option<SyncState>) {
        self.forced
            .store(state.map_or(0, |s| s.to_u8() + 1), Ordering::Relaxed);
    }

    pub fn forced(&self) -> Option<SyncState> {
        match self.forced.load(Ordering::Relaxed) {
            0 => None,
            v => Some(SyncState::from_u8(v - 1)),
        }
    }

    /// Judges `r` (with any forced state applied), publishes the result and returns it.
    pub fn publish(&self, mut r: Reading, at: Nanos) -> Assessment {
        match self.forced() {
            None => {}
            Some(SyncState::Unknown) => r.kernel = None,
            Some(SyncState::Unsynchronised) => {
                let mut k = r.kernel.unwrap_or_default();
                k.status |= super::sys::STA_UNSYNC;
                r.kernel = Some(k);
            }
            Some(SyncState::Synchronised) => {
                let mut k = r.kernel.unwrap_or_default();
                k.status &= !super::sys::STA_UNSYNC;
                k.state = 0;
                k.esterror_us = 0;
                r.kernel = Some(k);
                r.phc = None;
            }
        }
        let a = assess(&r, &self.policy);
        let o = Ordering::Relaxed;
        self.state.store(a.state.to_u8(), o);
        self.breach.store(a.breach, o);
        self.divergence_ns
            .store(a.divergence_ns.unwrap_or(NONE_U64), o);
        let k = r.kernel;
        let us = |v: i64| (v.max(0) as u64).saturating_mul(1000);
        self.maxerror_ns
            .store(k.map_or(NONE_U64, |k| us(k.maxerror_us)), o);
        self.esterror_ns
            .store(k.map_or(NONE_U64, |k| us(k.esterror_us)), o);
        self.kernel_offset_ns
            .store(k.map_or(NONE_I64, |k| k.offset_ns), o);
        self.kernel_status
            .store(k.map_or(NONE_U64, |k| k.status as u32 as u64), o);
        self.drift_ns.store(r.drift_ns, o);
        self.rate_ppb.store(r.rate_ppb, o);
        self.calibration_error_ns.store(r.calibration_error_ns, o);
        self.phc_offset_ns
            .store(r.phc.map_or(NONE_I64, |p| p.offset_ns), o);
        self.phc_unreadable.store(r.phc_unreadable, o);
        self.updated_at.store(at.0, o);
        self.updates.fetch_add(1, o);
        self.halted.0.store(a.halt, o);
        a
    }

    pub fn snapshot(&self) -> ClockSnapshot {
        let o = Ordering::Relaxed;
        let u = |v: u64| (v != NONE_U64).then_some(v);
        let i = |v: i64| (v != NONE_I64).then_some(v);
        ClockSnapshot {
            state: SyncState::from_u8(self.state.load(o)),
            divergence_ns: u(self.divergence_ns.load(o)),
            breach: self.breach.load(o),
            halted: self.halted(),
            maxerror_ns: u(self.maxerror_ns.load(o)),
            esterror_ns: u(self.esterror_ns.load(o)),
            kernel_offset_ns: i(self.kernel_offset_ns.load(o)),
            kernel_status: u(self.kernel_status.load(o)),
            drift_ns: self.drift_ns.load(o),
            rate_ppb: self.rate_ppb.load(o),
            calibration_error_ns: self.calibration_error_ns.load(o),
            phc_offset_ns: i(self.phc_offset_ns.load(o)),
            phc_unreadable: self.phc_unreadable.load(o),
            updated_at: Nanos(self.updated_at.load(o)),
            updates: self.updates.load(o),
            policy: self.policy,
        }
    }
}

impl ClockSnapshot {
    /// `clock: synchronised, divergence 12.000 µs (limit 1000.000 µs, on breach: alert),
    /// ptp: none` — printed by `portcullis run` at start.
    pub fn one_line(&self) -> String {
        format!(
            "clock: {}, divergence {} (limit {}, on breach: {}{}), ptp: {}",
            self.state.as_str(),
            self.divergence_ns.map_or("unknown".to_string(), us),
            us(self.policy.max_divergence_ns),
            match self.policy.on_divergence {
                OnDivergence::Alert => "alert",
                OnDivergence::Halt => "halt",
            },
            if self.halted {
                "; NEW ORDERS HALTED"
            } else {
                ""
            },
            match (self.phc_offset_ns, self.phc_unreadable) {
                (Some(o), _) => format!("phc offset {o} ns"),
                (None, true) => "phc unreadable".to_string(),
                (None, false) => "none".to_string(),
            },
        )
    }
}

fn us(ns: u64) -> String {
    format!("{}.{:03} µs", ns / 1000, ns % 1000)
}

impl fmt::Display for ClockSnapshot {
    /// The `portcullis clock status` text: one `name: value` per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sync: {}", self.state.as_str())?;
        match self.divergence_ns {
            Some(d) => writeln!(f, "divergence: {}", us(d))?,
            None => writeln!(f, "divergence: unknown")?,
        }
        writeln!(
            f,
            "limit: {} (on breach: {})",
            us(self.policy.max_divergence_ns),
            match self.policy.on_divergence {
                OnDivergence::Alert => "alert",
                OnDivergence::Halt => "halt",
            }
        )?;
        writeln!(
            f,
            "within limit: {}",
            if self.breach { "no" } else { "yes" }
        )?;
        writeln!(f, "halted: {}", if self.halted { "yes" } else { "no" })?;
        let opt = |v: Option<u64>| v.map_or("unknown".to_string(), us);
        writeln!(f, "kernel maxerror: {}", opt(self.maxerror_ns))?;
        writeln!(f, "kernel esterror: {}", opt(self.esterror_ns))?;
        match self.kernel_offset_ns {
            Some(o) => writeln!(f, "kernel offset: {o} ns")?,
            None => writeln!(f, "kernel offset: unknown")?,
        }
        match self.kernel_status {
            Some(s) => writeln!(f, "kernel status: 0x{s:04x}")?,
            None => writeln!(f, "kernel status: unknown")?,
        }
        writeln!(f, "calibration drift: {} ns", self.drift_ns)?;
        writeln!(f, "fast clock rate correction: {} ppb", self.rate_ppb)?;
        writeln!(f, "calibration error: {}", us(self.calibration_error_ns))?;
        match self.phc_offset_ns {
            Some(o) => writeln!(f, "ptp: phc offset {o} ns")?,
            None if self.phc_unreadable => writeln!(f, "ptp: phc unreadable")?,
            None => writeln!(f, "ptp: none")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::sys::{STA_UNSYNC, TIME_ERROR};

    fn policy(max_us: u64, on: OnDivergence, unsync_breach: bool) -> Policy {
        Policy {
            max_divergence_ns: max_us * 1000,
            on_divergence: on,
            unsynchronised_is_breach: unsync_breach,
        }
    }

    fn synced(esterror_us: i64) -> KernelTime {
        KernelTime {
            state: 0,
            status: 0x2001, // STA_PLL | STA_NANO
            maxerror_us: 100,
            esterror_us,
            offset_ns: 250,
            tai_s: 37,
        }
    }

    #[test]
    fn a_disciplined_clock_within_the_limit_is_no_breach() {
        let r = Reading {
            kernel: Some(synced(20)),
            calibration_error_ns: 300,
            drift_ns: -700,
            ..Reading::default()
        };
        let a = assess(&r, &policy(100, OnDivergence::Halt, true));
        assert_eq!(a.state, SyncState::Synchronised);
        assert_eq!(
            a.divergence_ns,
            Some(21_000),
            "esterror + calibration + |drift|"
        );
        assert!(!a.breach && !a.halt);
    }

    #[test]
    fn divergence_over_the_limit_halts_only_when_configured() {
        let r = Reading {
            kernel: Some(synced(150)),
            ..Reading::default()
        };
        let a = assess(&r, &policy(100, OnDivergence::Alert, false));
        assert!(a.breach && !a.halt);
        let a = assess(&r, &policy(100, OnDivergence::Halt, false));
        assert!(a.breach && a.halt);
        let a = assess(&r, &policy(1000, OnDivergence::Halt, false));
        assert!(!a.breach && !a.halt);
    }

    #[test]
    fn unsynchronised_or_unknown_has_no_divergence_and_breaches_only_by_policy() {
        let mut k = synced(0);
        k.status |= STA_UNSYNC;
        for r in [
            Reading {
                kernel: Some(k),
                ..Reading::default()
            },
            Reading {
                kernel: Some(KernelTime {
                    state: TIME_ERROR,
                    ..synced(0)
                }),
                ..Reading::default()
            },
            Reading::default(),
        ] {
            let a = assess(&r, &policy(100, OnDivergence::Halt, false));
            assert_ne!(a.state, SyncState::Synchronised);
            assert_eq!(a.divergence_ns, None);
            assert!(!a.breach && !a.halt, "default: alert only");
            let a = assess(&r, &policy(100, OnDivergence::Halt, true));
            assert!(a.breach && a.halt);
        }
        assert_eq!(
            assess(&Reading::default(), &policy(1, OnDivergence::Alert, false)).state,
            SyncState::Unknown
        );
    }

    #[test]
    fn phc_offset_counts_against_tai_or_utc_whichever_is_closer() {
        let on_tai = PhcReading {
            offset_ns: 37_000_000_000 + 40_000,
            delay_ns: 2_000,
        };
        assert_eq!(phc_divergence_ns(&on_tai, 37), 40_000);
        let on_utc = PhcReading {
            offset_ns: -5_000,
            delay_ns: 0,
        };
        assert_eq!(phc_divergence_ns(&on_utc, 0), 5_000);
        let r = Reading {
            kernel: Some(synced(10)),
            phc: Some(on_tai),
            ..Reading::default()
        };
        let a = assess(&r, &policy(100, OnDivergence::Alert, false));
        assert_eq!(
            a.divergence_ns,
            Some(41_000),
            "PHC offset + half its read delay"
        );
        // phc2sys clears STA_UNSYNC but leaves esterror at its boot value: the PHC decides.
        let r = Reading {
            kernel: Some(synced(16_000_000)),
            phc: Some(on_tai),
            ..Reading::default()
        };
        let a = assess(&r, &policy(100, OnDivergence::Halt, true));
        assert_eq!(a.divergence_ns, Some(41_000));
        assert!(!a.breach);
    }

    #[test]
    fn published_status_round_trips_and_forcing_goes_through_the_policy() {
        let s = ClockStatus::new(policy(100, OnDivergence::Halt, true));
        let r = Reading {
            kernel: Some(synced(5)),
            drift_ns: 12,
            ..Reading::default()
        };
        let a = s.publish(r, Nanos(7));
        assert!(!a.halt && !s.halted());
        let snap = s.snapshot();
        assert_eq!(snap.state, SyncState::Synchronised);
        assert_eq!(snap.esterror_ns, Some(5000));
        assert_eq!(snap.drift_ns, 12);
        assert_eq!(snap.updated_at, Nanos(7));
        assert_eq!(snap.phc_offset_ns, None);
        assert!(snap.to_string().contains("ptp: none"));
        s.force(Some(SyncState::Unsynchronised));
        assert!(s.publish(r, Nanos(8)).halt);
        assert!(s.halted());
        assert!(s.snapshot().to_string().contains("sync: unsynchronised"));
        s.force(None);
        assert!(!s.publish(r, Nanos(9)).halt);
        assert!(!s.halted());
    }
}
