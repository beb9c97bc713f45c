//! HOT — sustained-abuse detector: a pure state machine per session, owned by the gateway
//! thread (`&mut self`, no atomics).
//!
//! A *streak* starts at a throttle refusal and lasts while refusals keep coming, each within
//! `quiet_ns` of the previous one. Admissions in between do not end it: a client sending at ten
//! times its rate gets one message in ten through and is still abusing. When a refusal arrives
//! `sustain_ns` or more after the streak began, the answer is [`AbuseVerdict::Logout`]; the
//! detector then starts afresh (the engine ends the session anyway).

use super::Verdict;
use crate::model::Nanos;

/// Detector settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbuseConfig {
    /// How long refusals must keep coming before a logout, ns.
    pub sustain_ns: u64,
    /// A gap this long without a refusal ends the streak, ns.
    pub quiet_ns: u64,
}

impl Default for AbuseConfig {
    /// 10 s of refusals with no 1 s pause.
    fn default() -> Self {
        AbuseConfig {
            sustain_ns: 10_000_000_000,
            quiet_ns: 1_000_000_000,
        }
    }
}

/// What the engine does after a throttle verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbuseVerdict {
    /// Keep the session.
    Continue,
    /// Log the session out: "throttle limits exceeded for too long".
    Logout,
}

/// See the module doc.
#[derive(Clone, Copy, Debug)]
pub struct AbuseDetector {
    config: AbuseConfig,
    /// `(first, last)` refusal of the current streak.
    streak: Option<(Nanos, Nanos)>,
}

impl AbuseDetector {
    pub fn new(config: AbuseConfig) -> Self {
        AbuseDetector {
            config,
            streak: None,
        }
    }

    /// Feeds one throttle verdict.
    pub fn observe(&mut self, verdict: &Verdict, now: Nanos) -> AbuseVerdict {
        match verdict {
            Verdict::Admit => {
                self.expire(now);
                AbuseVerdict::Continue
            }
            Verdict::Reject { .. } => self.on_reject(now),
        }
    }

    /// Records a refusal at `now`.
    pub fn on_reject(&mut self, now: Nanos) -> AbuseVerdict {
        self.expire(now);
        let first = match self.streak {
            Some((first, _)) => first,
            None => now,
        };
        if now.saturating_sub(first).0 >= self.config.sustain_ns {
            self.streak = None;
            return AbuseVerdict::Logout;
        }
        self.streak = Some((first, now.max(first)));
        AbuseVerdict::Continue
    }

    /// Whether a streak is running (refusals within `quiet_ns` of `now`).
    pub fn in_streak(&self, now: Nanos) -> bool {
        matches!(self.streak, Some((_, last)) if now.saturating_sub(last).0 < self.config.quiet_ns)
    }

    fn expire(&mut self, now: Nanos) {
        if !self.in_streak(now) {
            self.streak = None;
        }
    }
}
