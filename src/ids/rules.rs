//! COLD — the detection rules: each maps some events to a subject (a key, a source address, a
//! session) and a weight; N in a sliding window → an [`Alert`]. Pure: time is the events' own
//! `at`, so tests drive it with a manual clock.
//!
//! After an alert, a subject's window starts empty again and the same rule does not alert on it
//! again within one window (a flood gives one alert per window, not one per event).
//!
//! Per-key baselines (`anomaly.rs`) and geographic anomalies (`geo.rs`) are further detectors
//! beside [`Detector`], on the same thread, raising the same [`Alert`]s.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::config::ids::{IdsCfg, RuleCfg, Severity};
use crate::handoff::{Event, LogonRefusal};
use crate::model::Nanos;

/// What an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Key(String),
    Address(IpAddr),
    /// A session, by index into the configured sessions.
    Session(u32),
}

impl Subject {
    /// `key:ID`, `address:IP`, `session:NAME`.
    pub fn describe(&self, sessions: &[String]) -> String {
        match self {
            Subject::Key(k) => format!("key:{k}"),
            Subject::Address(a) => format!("address:{a}"),
            Subject::Session(s) => format!(
                "session:{}",
                sessions
                    .get(*s as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("#{s}"))
            ),
        }
    }
}

/// One rule's fixed facts and its defaults.
pub struct Rule {
    /// The config key (`[ids] NAME = {...}`).
    pub name: &'static str,
    /// The alert kind.
    pub kind: &'static str,
    pub threshold: u32,
    pub window_ms: u64,
    pub severity: Severity,
}

/// Every rule, in the order of [`IdsCfg::rules`].
pub const RULES: [Rule; 9] = [
    Rule {
        name: "logon_brute_force_key",
        kind: "logon-brute-force",
        threshold: 5,
        window_ms: 60_000,
        severity: Severity::High,
    },
    Rule {
        name: "logon_brute_force_address",
        kind: "logon-brute-force",
        threshold: 10,
        window_ms: 60_000,
        severity: Severity::High,
    },
    Rule {
        name: "malformed_flood",
        kind: "malformed-flood",
        threshold: 20,
        window_ms: 60_000,
        severity: Severity::Medium,
    },
    Rule {
        name: "connection_flood",
        kind: "connection-flood",
        threshold: 50,
        window_ms: 60_000,
        severity: Severity::Medium,
    },
    Rule {
        name: "replay_attempt",
        kind: "replay-attempt",
        threshold: 2,
        window_ms: 300_000,
        severity: Severity::High,
    },
    Rule {
        name: "unknown_comp_id",
        kind: "unknown-comp-id",
        threshold: 5,
        window_ms: 60_000,
        severity: Severity::Medium,
    },
    Rule {
        name: "key_id_probing",
        kind: "key-id-probing",
        threshold: 5,
        window_ms: 60_000,
        severity: Severity::High,
    },
    Rule {
        name: "idle_without_logon",
        kind: "idle-without-logon",
        threshold: 50,
        window_ms: 60_000,
        severity: Severity::Low,
    },
    Rule {
        name: "slow_consumer",
        kind: "slow-consumer",
        threshold: 3,
        window_ms: 300_000,
        severity: Severity::Low,
    },
];

const BRUTE_KEY: usize = 0;
const BRUTE_ADDR: usize = 1;
const MALFORMED: usize = 2;
const CONN_FLOOD: usize = 3;
const REPLAY: usize = 4;
const UNKNOWN_COMP: usize = 5;
const PROBING: usize = 6;
const IDLE: usize = 7;
const SLOW: usize = 8;

/// The AuthFailed causes (src/auth/logon.rs `Failure::cause`) the rules read.
const CAUSE_BAD_SIGNATURE: &str = "bad signature";
const CAUSE_REPLAYED: &str = "signature replayed";
const CAUSE_UNKNOWN_KEY: &str = "unknown key id";

/// A rule's effective settings.
#[derive(Clone, Copy, Debug)]
struct Effective {
    threshold: u32,
    window: u64,
    severity: Severity,
}

fn effective(rule: &Rule, cfg: &RuleCfg) -> Effective {
    Effective {
        threshold: cfg.threshold.unwrap_or(rule.threshold),
        window: cfg
            .window_ms
            .unwrap_or(rule.window_ms)
            .saturating_mul(1_000_000),
        severity: cfg.severity.unwrap_or(rule.severity),
    }
}

/// What the triggering event said besides the subject (for the response: which session to
/// kill, which address to block).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub key_id: Option<String>,
    pub address: Option<IpAddr>,
    pub session: Option<u32>,
}

/// An alert: which rule, about whom, how many in what window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub at: Nanos,
    pub kind: &'static str,
    /// The rule's config key.
    pub rule: &'static str,
    pub severity: Severity,
    pub subject: Subject,
    /// Events counted in the window (≥ threshold).
    pub count: u64,
    pub threshold: u32,
    pub window_ms: u64,
    /// The last event's context.
    pub context: Context,
    /// What the detector adds in words (a baseline's figures, the regions seen); may be empty.
    pub note: String,
}

#[derive(Default)]
struct Window {
    hits: VecDeque<(Nanos, u32)>,
    sum: u64,
    last_alert: Option<Nanos>,
    last_seen: Nanos,
}

/// The rules' state.
pub struct Detector {
    rules: [Effective; 9],
    windows: Vec<HashMap<Subject, Window>>,
    max_subjects: usize,
}

impl Detector {
    pub fn new(cfg: &IdsCfg) -> Detector {
        let given = cfg.rules();
        let rules = std::array::from_fn(|i| match (RULES.get(i), given.get(i)) {
            (Some(r), Some((_, c))) => effective(r, c),
            _ => Effective {
                threshold: 0,
                window: 1,
                severity: Severity::Low,
            },
        });
        Detector {
            rules,
            windows: (0..RULES.len()).map(|_| HashMap::new()).collect(),
            max_subjects: cfg.max_subjects.max(1),
        }
    }

    /// Feeds one event; the alerts it raises.
    pub fn observe(&mut self, e: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        match e {
            Event::AuthFailed {
                session,
                key_id,
                peer,
                cause,
                at,
            } => {
                let ctx = Context {
                    key_id: (!key_id.as_str().is_empty()).then(|| key_id.as_str().to_string()),
                    address: Some(*peer),
                    session: Some(session.0),
                };
                let key = Subject::Key(key_id.as_str().to_string());
                let addr = Subject::Address(*peer);
                match *cause {
                    CAUSE_BAD_SIGNATURE if !key_id.as_str().is_empty() => {
                        self.hit(BRUTE_KEY, key, 1, *at, &ctx, &mut out);
                    }
                    CAUSE_REPLAYED if !key_id.as_str().is_empty() => {
                        self.hit(REPLAY, key, 1, *at, &ctx, &mut out);
                    }
                    CAUSE_UNKNOWN_KEY => {
                        self.hit(PROBING, addr.clone(), 1, *at, &ctx, &mut out);
                    }
                    _ => {}
                }
                // Every refused logon counts against its source address.
                self.hit(BRUTE_ADDR, addr, 1, *at, &ctx, &mut out);
            }
            Event::LogonRefused {
                key_id,
                peer,
                reason: LogonRefusal::NoSession,
                at,
                ..
            } => {
                let ctx = Context {
                    key_id: (!key_id.as_str().is_empty()).then(|| key_id.as_str().to_string()),
                    address: Some(*peer),
                    session: None,
                };
                self.hit(
                    UNKNOWN_COMP,
                    Subject::Address(*peer),
                    1,
                    *at,
                    &ctx,
                    &mut out,
                );
            }
            Event::ConnectionsShed {
                refused_per_address,
                evicted,
                garbage,
                peer,
                at,
            } => {
                // The engine sums sheds over up to a second and names the last one's address:
                // the count is charged to it.
                let ctx = Context {
                    address: Some(*peer),
                    ..Context::default()
                };
                let s = Subject::Address(*peer);
                self.hit(
                    CONN_FLOOD,
                    s.clone(),
                    *refused_per_address,
                    *at,
                    &ctx,
                    &mut out,
                );
                self.hit(MALFORMED, s.clone(), *garbage, *at, &ctx, &mut out);
                self.hit(IDLE, s, *evicted, *at, &ctx, &mut out);
            }
            Event::SlowConsumer { session, at, .. } => {
                let ctx = Context {
                    session: Some(session.0),
                    ..Context::default()
                };
                self.hit(SLOW, Subject::Session(session.0), 1, *at, &ctx, &mut out);
            }
            _ => {}
        }
        out
    }

    fn hit(
        &mut self,
        rule: usize,
        subject: Subject,
        weight: u32,
        at: Nanos,
        ctx: &Context,
        out: &mut Vec<Alert>,
    ) {
        let (Some(eff), Some(r)) = (self.rules.get(rule).copied(), RULES.get(rule)) else {
            return;
        };
        if eff.threshold == 0 || weight == 0 {
            return;
        }
        let Some(map) = self.windows.get_mut(rule) else {
            return;
        };
        if !map.contains_key(&subject) && map.len() >= self.max_subjects {
            // Forget what is stale; if nothing is, the one seen least recently.
            map.retain(|_, w| at.0.saturating_sub(w.last_seen.0) < eff.window);
            if map.len() >= self.max_subjects {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, w)| w.last_seen)
                    .map(|(s, _)| s.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let w = map.entry(subject.clone()).or_default();
        w.last_seen = at;
        w.hits.push_back((at, weight));
        w.sum += u64::from(weight);
        while let Some(&(t, n)) = w.hits.front() {
            if at.0.saturating_sub(t.0) >= eff.window {
                w.hits.pop_front();
                w.sum -= u64::from(n);
            } else {
                break;
            }
        }
        let quiet = w
            .last_alert
            .is_some_and(|t| at.0.saturating_sub(t.0) < eff.window);
        if w.sum >= u64::from(eff.threshold) && !quiet {
            out.push(Alert {
                at,
                kind: r.kind,
                rule: r.name,
                severity: eff.severity,
                subject,
                count: w.sum,
                threshold: eff.threshold,
                window_ms: eff.window / 1_000_000,
                context: ctx.clone(),
                note: String::new(),
            });
            w.last_alert = Some(at);
            w.hits.clear();
            w.sum = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyId;
    use crate::model::{CompId, SessionId};

    const SEC: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn failed(key: &str, peer: &str, cause: &'static str, t: u64) -> Event {
        Event::AuthFailed {
            session: SessionId(0),
            key_id: KeyId::new(key.as_bytes()).unwrap(),
            peer: ip(peer),
            cause,
            at: Nanos(t),
        }
    }

    fn cfg(extra: &str) -> IdsCfg {
        #[derive(serde::Deserialize)]
        struct W {
            ids: IdsCfg,
        }
        toml::from_str::<W>(&format!("[ids]\n{extra}")).unwrap().ids
    }

    /// `n` events spaced `step` ns apart from `t0`, each fed; the alerts.
    fn feed(d: &mut Detector, events: impl IntoIterator<Item = Event>) -> Vec<Alert> {
        events.into_iter().flat_map(|e| d.observe(&e)).collect()
    }

    #[test]
    fn brute_force_per_key_needs_threshold_within_the_window() {
        let mut d = Detector::new(&cfg(
            "logon_brute_force_key = { threshold = 3, window_ms = 10000 }\nlogon_brute_force_address = { threshold = 0 }",
        ));
        // 2 in the window, then the first leaves it: no alert.
        let a = feed(
            &mut d,
            [0, 5, 16].map(|s| failed("k1", "10.0.0.1", CAUSE_BAD_SIGNATURE, s * SEC)),
        );
        assert!(a.is_empty(), "{a:?}");
        // A third within 10 s of the two before it: the alert.
        let a = feed(
            &mut d,
            [17, 18].map(|s| failed("k1", "10.0.0.1", CAUSE_BAD_SIGNATURE, s * SEC)),
        );
        assert_eq!(a.len(), 1, "{a:?}");
        let al = &a[0];
        assert_eq!(al.kind, "logon-brute-force");
        assert_eq!(al.subject, Subject::Key("k1".into()));
        assert_eq!((al.count, al.threshold, al.window_ms), (3, 3, 10_000));
        assert_eq!(al.severity, Severity::High);
        assert_eq!(al.context.address, Some(ip("10.0.0.1")));
        // Within one window after it: counted but quiet.
        let a = feed(
            &mut d,
            [19, 20, 21, 22].map(|s| failed("k1", "10.0.0.1", CAUSE_BAD_SIGNATURE, s * SEC)),
        );
        assert!(a.is_empty(), "{a:?}");
        // Another key is another subject; other causes do not count per key.
        let a = feed(
            &mut d,
            [23, 24, 25].map(|s| failed("k2", "10.0.0.1", CAUSE_UNKNOWN_KEY, s * SEC)),
        );
        assert!(a.is_empty(), "{a:?}");
        // After the quiet window: alerts again.
        let a = feed(
            &mut d,
            [30, 31, 32].map(|s| failed("k1", "10.0.0.1", CAUSE_BAD_SIGNATURE, s * SEC)),
        );
        assert_eq!(a.len(), 1, "{a:?}");
    }

    #[test]
    fn brute_force_per_address_counts_every_cause() {
        let mut d = Detector::new(&cfg(
            "logon_brute_force_address = { threshold = 4, window_ms = 1000, severity = \"critical\" }\nkey_id_probing = { threshold = 0 }",
        ));
        let evs = [
            failed("a", "10.0.0.9", CAUSE_BAD_SIGNATURE, 0),
            failed("b", "10.0.0.9", CAUSE_UNKNOWN_KEY, 100),
            failed("c", "10.0.0.8", CAUSE_UNKNOWN_KEY, 200),
            failed("", "10.0.0.9", "Username(553) missing", 300),
        ];
        assert!(feed(&mut d, evs).is_empty());
        let a = feed(&mut d, [failed("d", "10.0.0.9", CAUSE_REPLAYED, 400)]);
        let addr: Vec<_> = a
            .iter()
            .filter(|a| a.rule == "logon_brute_force_address")
            .collect();
        assert_eq!(addr.len(), 1, "{a:?}");
        assert_eq!(addr[0].subject, Subject::Address(ip("10.0.0.9")));
        assert_eq!(addr[0].severity, Severity::Critical);
    }

    #[test]
    fn replays_and_probing_and_unknown_comp_ids() {
        let mut d = Detector::new(&cfg(
            "key_id_probing = { threshold = 3, window_ms = 60000 }\nlogon_brute_force_address = { threshold = 0 }",
        ));
        let a = feed(
            &mut d,
            [1, 2].map(|s| failed("k", "10.1.1.1", CAUSE_REPLAYED, s * SEC)),
        );
        assert_eq!(a.len(), 1, "default replay threshold is 2: {a:?}");
        assert_eq!(a[0].kind, "replay-attempt");
        assert_eq!(a[0].context.session, Some(0));
        let a = feed(
            &mut d,
            ["x1", "x2", "x3"]
                .iter()
                .enumerate()
                .map(|(i, k)| failed(k, "10.2.2.2", CAUSE_UNKNOWN_KEY, i as u64 * SEC)),
        );
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            (a[0].kind, &a[0].subject),
            ("key-id-probing", &Subject::Address(ip("10.2.2.2")))
        );
        let refused = |t: u64, reason| Event::LogonRefused {
            their_comp_id: CompId::new(b"NOPE").unwrap(),
            key_id: KeyId::new(b"").unwrap(),
            peer: ip("10.3.3.3"),
            reason,
            at: Nanos(t),
        };
        // Only "no session for these CompIDs" is an unknown CompID.
        assert!(feed(
            &mut d,
            (0..10).map(|i| refused(i, LogonRefusal::AlreadyConnected))
        )
        .is_empty());
        let a = feed(&mut d, (0..5).map(|i| refused(i, LogonRefusal::NoSession)));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, "unknown-comp-id");
    }

    #[test]
    fn shed_counts_are_weights_and_slow_consumers_count_per_session() {
        let mut d = Detector::new(&cfg(
            "connection_flood = { threshold = 100, window_ms = 5000 }\nmalformed_flood = { threshold = 10, window_ms = 5000 }\nidle_without_logon = { threshold = 30 }",
        ));
        let shed = |t: u64, refused, garbage, evicted| Event::ConnectionsShed {
            refused_per_address: refused,
            evicted,
            garbage,
            peer: ip("10.9.9.9"),
            at: Nanos(t),
        };
        assert!(feed(&mut d, [shed(0, 60, 4, 10), shed(SEC, 30, 5, 10)]).is_empty());
        let a = feed(&mut d, [shed(2 * SEC, 10, 1, 10)]);
        let kinds: Vec<_> = a.iter().map(|a| (a.kind, a.count)).collect();
        assert_eq!(
            kinds,
            vec![
                ("connection-flood", 100),
                ("malformed-flood", 10),
                ("idle-without-logon", 30)
            ]
        );
        // Outside the window the old sheds no longer count.
        assert!(feed(&mut d, [shed(20 * SEC, 99, 9, 29)]).is_empty());
        let slow = |t: u64, s: u32| Event::SlowConsumer {
            session: SessionId(s),
            pending_bytes: 1,
            at: Nanos(t),
        };
        assert!(feed(&mut d, [slow(0, 1), slow(1, 2), slow(2, 1)]).is_empty());
        let a = feed(&mut d, [slow(3, 1)]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].subject, Subject::Session(1));
    }

    #[test]
    fn subjects_tracked_are_bounded() {
        let mut d = Detector::new(&cfg(
            "max_subjects = 3\nkey_id_probing = { threshold = 2 }\nlogon_brute_force_address = { threshold = 0 }",
        ));
        for i in 0..100u8 {
            let peer = format!("10.0.0.{i}");
            assert!(d
                .observe(&failed("x", &peer, CAUSE_UNKNOWN_KEY, u64::from(i)))
                .is_empty());
        }
        assert!(d.windows[PROBING].len() <= 3);
        // The most recent subject is still tracked: its second probe alerts.
        assert_eq!(
            d.observe(&failed("x", "10.0.0.99", CAUSE_UNKNOWN_KEY, 200))
                .len(),
            1
        );
    }
}
