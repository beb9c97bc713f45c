//! COLD — the `portcullis-clock` thread: every `[clock] calibrate_ms` it recalibrates the fast
//! clock against CLOCK_REALTIME, reads the kernel's discipline state (adjtimex) and, where a PTP
//! hardware clock exists, its offset from the system clock; it publishes the result in
//! [`ClockStatus`] and emits an [`Event::ClockSync`] whenever the state, the breach or the halt
//! changes (and once at start).
//!
//! Never touches the gateway thread's data: it only stores atomics and pushes to the event ring
//! (a lock-free MPMC queue; full → counted in `EventRingFull`, like every producer).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::status::{Assessment, ClockStatus, Reading, SyncState};
use super::{sys, system_utc, Clock};
use crate::config::ClockCfg;
use crate::handoff::{Event, EventRing};
use crate::monitor::{Counter, Counters};

/// The PHC to read for `[clock] ptp_device`: the configured path, none for "none", else the
/// first `/dev/ptpN`.
pub fn ptp_device(cfg: &ClockCfg) -> Option<PathBuf> {
    match cfg.ptp_device.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => sys::find_phc(),
    }
}

/// One measurement: recalibrate `clock`, read the kernel and the PHC.
pub fn measure(clock: &Clock, ptp: Option<&Path>) -> Reading {
    let cal = clock.calibrate();
    let phc = ptp.map(sys::phc_offset);
    Reading {
        kernel: sys::kernel_time().ok(),
        phc: phc.as_ref().and_then(|r| r.as_ref().ok().copied()),
        phc_unreadable: phc.as_ref().is_some_and(Result::is_err),
        calibration_error_ns: cal.map_or(0, |c| c.uncertainty_ns),
        drift_ns: cal.map_or(0, |c| c.correction_ns),
        rate_ppb: clock.rate_ppb(),
    }
}

/// Settings and shared state of the clock thread.
pub struct ClockThread {
    pub clock: Clock,
    pub status: Arc<ClockStatus>,
    pub interval: Duration,
    pub ptp: Option<PathBuf>,
    pub events: EventRing,
    pub counters: Arc<Counters>,
    /// (state, breach, halt) last reported; `None` before the first tick.
    last: Option<(SyncState, bool, bool)>,
}

impl ClockThread {
    pub fn new(
        cfg: &ClockCfg,
        clock: Clock,
        status: Arc<ClockStatus>,
        events: EventRing,
        counters: Arc<Counters>,
    ) -> ClockThread {
        ClockThread {
            clock,
            status,
            interval: Duration::from_millis(cfg.calibrate_ms),
            ptp: ptp_device(cfg),
            events,
            counters,
            last: None,
        }
    }

    /// One measurement, published; an event when something changed.
    pub fn tick(&mut self) -> Assessment {
        let r = measure(&self.clock, self.ptp.as_deref());
        let now = system_utc();
        let a = self.status.publish(r, now);
        let key = (a.state, a.breach, a.halt);
        if self.last != Some(key) {
            self.last = Some(key);
            let e = Event::ClockSync {
                state: a.state,
                divergence_ns: a.divergence_ns.unwrap_or(u64::MAX),
                breach: a.breach,
                halted: a.halt,
                at: now,
            };
            if !self.events.push(e) {
                self.counters.inc(Counter::EventRingFull);
            }
        }
        a
    }

    /// Runs the first tick here (so the status is published before the gateway takes orders),
    /// then ticks on its own thread until `stop` is set. The thread wakes only to tick (parked
    /// in between: every wake-up on a machine of spinning cores preempts one of them); whoever
    /// sets `stop` unparks it (`JoinHandle::thread().unpark()`) to end it at once.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
        self.tick();
        std::thread::Builder::new()
            .name("portcullis-clock".into())
            .spawn(move || {
                let mut next = std::time::Instant::now() + self.interval;
                while !stop.load(Ordering::Relaxed) {
                    let now = std::time::Instant::now();
                    if now < next {
                        // May return early (an unpark, or spuriously): the loop checks again.
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    next = now + self.interval;
                    self.tick();
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Policy;
    use crate::config::OnDivergence;
    use crate::model::Nanos;

    #[test]
    fn a_configured_phc_that_cannot_be_read_says_so() {
        let r = measure(&Clock::fast(), Some(Path::new("/dev/ptp-not-here")));
        assert!(r.phc.is_none() && r.phc_unreadable);
        let s = ClockStatus::new(Policy::from_config(&ClockCfg::default()));
        s.publish(r, Nanos(1));
        assert!(s.snapshot().to_string().contains("ptp: phc unreadable"));
        assert!(!measure(&Clock::fast(), None).phc_unreadable);
    }

    #[test]
    fn ticks_publish_and_emit_only_on_change() {
        let cfg = ClockCfg {
            on_divergence: OnDivergence::Halt,
            unsynchronised_is_breach: true,
            ptp_device: Some("none".into()),
            ..ClockCfg::default()
        };
        let status = Arc::new(ClockStatus::new(Policy::from_config(&cfg)));
        let ring = EventRing::new(16);
        let mut t = ClockThread::new(
            &cfg,
            Clock::fast(),
            status.clone(),
            ring.clone(),
            Arc::new(Counters::default()),
        );
        status.force(Some(SyncState::Unsynchronised));
        let a = t.tick();
        assert!(a.halt && status.halted());
        t.tick();
        let mut n = 0;
        while let Some(e) = ring.pop() {
            assert!(matches!(
                e,
                Event::ClockSync {
                    state: SyncState::Unsynchronised,
                    halted: true,
                    ..
                }
            ));
            n += 1;
        }
        assert_eq!(n, 1, "no change, no second event");
        status.force(Some(SyncState::Synchronised));
        assert!(!t.tick().halt);
        assert!(!status.halted());
        assert!(matches!(
            ring.pop(),
            Some(Event::ClockSync {
                state: SyncState::Synchronised,
                halted: false,
                ..
            })
        ));
        assert!(status.snapshot().updates >= 3);
    }
}
