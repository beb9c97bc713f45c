//! COLD — intrusion detection and response (issue 15, MON-4/MON-5).
//!
//! A detector thread of its own, fed by the journal thread (src/audit) with a copy of every
//! event and of the gateway's order decisions through one bounded channel ([`Feed::offer`],
//! [`Feed::offer_order`] never wait: what a full queue could not take is counted and reported
//! as an `ids-events-dropped` line in events.log). Three detectors raise [`rules::Alert`]s:
//! the rules ([`rules::Detector`]), the per-key baselines ([`anomaly::Baselines`]: order
//! rate, notional, reject rate, symbols, active hours) and geography ([`geo::Geo`]: a new
//! region, impossible travel, from each logon's source address). Each alert
//!
//! - becomes an `ids-alert` record in the audit trail (src/trail) and an `ids-alert` line in
//!   `events.log` and to the SIEM (handed back to the journal thread, [`Feed::lines`]),
//! - is kept in a small ring the ops port reads ([`recent`]),
//! - is answered by the configured policies (`[[ids.policy]]`, [`respond`]): block the source
//!   address (a `block` request on the control socket → `Command::BlockAddress`), revoke the
//!   key (the key store, as `portcullis keys revoke`), kill the key's session, its account or
//!   everything (a `kill` request on the control socket, `by = "ids (auto: KIND)"`). Every
//!   action is an `ids-action` record and line, and the control socket audits it as well.
//!   Only an authorised operator undoes one: `portcullis ctl unblock`, `portcullis ctl unkill`,
//!   a new key.
//!
//! Counters: `IdsAlerts` (81), `IdsActions` (82); the engine keeps `AddressBlocks` (83, gauge)
//! and `BlockedConnections` (84).

pub mod anomaly;
pub mod geo;
pub mod respond;
pub mod rules;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::{json, Value};

use crate::config::ids::IdsCfg;
use crate::config::Config;
use crate::handoff::Event;
use crate::monitor::{Counter, Counters};

pub use rules::{Alert, Subject};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An alert with what the response did, as the ops port shows it.
#[derive(Clone, Debug)]
pub struct Record {
    /// Numbered from 1 per gateway run.
    pub seq: u64,
    pub alert: Alert,
    /// The subject as text (`key:K`, `address:IP`, `session:NAME`).
    pub subject: String,
    /// `action=result` for each action taken.
    pub actions: Vec<String>,
}

impl Record {
    pub fn json(&self) -> Value {
        let a = &self.alert;
        json!({
            "seq": self.seq,
            "at_ns": a.at.0,
            "kind": a.kind,
            "rule": a.rule,
            "severity": a.severity.as_str(),
            "subject": crate::auth::mask::free_text(&self.subject),
            "count": a.count,
            "threshold": a.threshold,
            "window_ms": a.window_ms,
            "note": crate::auth::mask::free_text(&a.note),
            "actions": self.actions,
        })
    }
}

/// The recent alerts of one gateway (by data folder).
type Ring = Arc<Mutex<VecDeque<Record>>>;

struct Prepared {
    cfg: IdsCfg,
    /// The whole config: the key store for `revoke_key`, sessions' accounts for
    /// `kill_account`.
    config: Config,
    /// Session keys as the control socket names them (by index).
    session_keys: Vec<String>,
    ring: Ring,
}

static INSTALLED: Mutex<Vec<(PathBuf, Prepared)>> = Mutex::new(Vec::new());
static RINGS: Mutex<Vec<(PathBuf, Ring)>> = Mutex::new(Vec::new());

/// Registers the detector for the journal thread of `cfg.gateway.data_dir` ([`claim`]).
/// `session_keys`: the sessions' keys by index (the control socket's names).
pub fn install(cfg: &Config, session_keys: &[String]) {
    let dir = cfg.gateway.data_dir.clone();
    let ring: Ring = Arc::new(Mutex::new(VecDeque::with_capacity(cfg.ids.recent_alerts)));
    {
        let mut rings = lock(&RINGS);
        rings.retain(|(d, _)| d != &dir);
        rings.push((dir.clone(), ring.clone()));
    }
    let mut all = lock(&INSTALLED);
    all.retain(|(d, _)| d != &dir);
    if cfg.ids.enabled {
        all.push((
            dir,
            Prepared {
                cfg: cfg.ids.clone(),
                config: cfg.clone(),
                session_keys: session_keys.to_vec(),
                ring,
            },
        ));
    }
}

/// Geographic database reload requests, per data folder: a generation the detector thread
/// compares with the one it last acted on.
static GEO_RELOADS: Mutex<Vec<(PathBuf, Arc<AtomicU64>)>> = Mutex::new(Vec::new());

fn geo_generation(data_dir: &Path) -> Arc<AtomicU64> {
    let mut all = lock(&GEO_RELOADS);
    if let Some((_, g)) = all.iter().find(|(d, _)| d == data_dir) {
        return g.clone();
    }
    let g = Arc::new(AtomicU64::new(0));
    all.push((data_dir.to_path_buf(), g.clone()));
    g
}

/// Asks the detector of the gateway on `data_dir` to read `[ids.geo] database` again (SIGHUP:
/// `geoipupdate` replaced the file). It does so within ≈ 200 ms, off every hot path; a file it
/// cannot use is reported (`ids-geo-database-error`) and the database it had stays in use.
pub fn reload_geo(data_dir: &Path) {
    geo_generation(data_dir).fetch_add(1, Ordering::Relaxed);
}

/// The most recent alerts of the gateway of `data_dir` (newest last), for the ops port.
pub fn recent(data_dir: &Path) -> Vec<Record> {
    lock(&RINGS)
        .iter()
        .find(|(d, _)| d == data_dir)
        .map(|(_, r)| lock(r).iter().cloned().collect())
        .unwrap_or_default()
}

/// [`recent`] as a JSON array.
pub fn recent_json(data_dir: &Path) -> Value {
    Value::Array(recent(data_dir).iter().map(Record::json).collect())
}

/// What the detector thread is fed.
#[derive(Clone, Copy, Debug)]
enum Input {
    Event(Event),
    Order(anomaly::OrderFact),
}

/// The journal thread's end: [`Feed::offer`] and [`Feed::lines`] never wait.
pub struct Feed {
    tx: Option<Sender<Input>>,
    lines: Receiver<String>,
    dropped: u64,
    thread: Option<JoinHandle<()>>,
}

impl Feed {
    /// Offers one event to the detector; a full queue drops it (counted, reported by
    /// [`Feed::lines`]).
    pub fn offer(&mut self, e: &Event) {
        self.send(Input::Event(*e));
    }

    /// Offers one order record to the per-key baselines (only the decisions they count are
    /// sent); a full queue drops it (counted, reported by [`Feed::lines`]).
    pub fn offer_order(&mut self, r: &crate::order::record::OrderRecord) {
        if let Some(f) = anomaly::OrderFact::of(r) {
            self.send(Input::Order(f));
        }
    }

    fn send(&mut self, i: Input) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(i) {
            self.dropped += 1;
        }
    }

    /// Event-log lines the detector produced since the last call (alerts and actions, masked),
    /// for `events.log` and the SIEM.
    pub fn lines(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self.lines.try_iter().collect();
        if self.dropped > 0 {
            out.push(format!(
                "{} ids-events-dropped count={} (the detector's queue was full: ids.queue_capacity)",
                rules_ts(crate::clock::system_utc()),
                self.dropped
            ));
            self.dropped = 0;
        }
        out
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

fn rules_ts(t: crate::model::Nanos) -> String {
    let mut b = [0u8; 27];
    let n =
        crate::fix::encode::write_timestamp(&mut b, t, crate::fix::encode::TimePrecision::Micros);
    String::from_utf8_lossy(b.get(..n).unwrap_or_default()).into_owned()
}

/// The journal thread's side of [`install`]: starts the detector registered for `data_dir`,
/// if any (once).
pub fn claim(data_dir: &Path, counters: &Arc<Counters>) -> std::io::Result<Option<Feed>> {
    let prepared = {
        let mut all = lock(&INSTALLED);
        all.iter()
            .position(|(d, _)| d == data_dir)
            .map(|i| all.swap_remove(i).1)
    };
    let Some(p) = prepared else { return Ok(None) };
    let (tx, rx) = crossbeam_channel::bounded::<Input>(p.cfg.queue_capacity);
    let (line_tx, lines) = crossbeam_channel::bounded::<String>(p.cfg.queue_capacity);
    let worker = Worker {
        detector: rules::Detector::new(&p.cfg),
        baselines: anomaly::Baselines::new(&p.cfg.anomaly),
        geo: geo::Geo::new(&p.cfg.geo, &p.cfg.region),
        keys_by_session: std::collections::HashMap::new(),
        responder: respond::Responder::new(&p.cfg, &p.config, p.session_keys.clone()),
        sessions: p.session_keys,
        ring: p.ring,
        capacity: p.cfg.recent_alerts,
        trail: crate::trail::attached(data_dir),
        counters: counters.clone(),
        lines: line_tx,
        seq: 0,
        geo_reloads: geo_generation(data_dir),
    };
    let thread = std::thread::Builder::new()
        .name("portcullis-ids".into())
        .spawn(move || worker.run(&rx))?;
    Ok(Some(Feed {
        tx: Some(tx),
        lines,
        dropped: 0,
        thread: Some(thread),
    }))
}

struct Worker {
    detector: rules::Detector,
    baselines: anomaly::Baselines,
    geo: geo::Geo,
    /// The key each session last authenticated with (an accepted logon's `Authenticated`
    /// precedes its `LoggedOn`, which carries the address): bounded by the sessions configured.
    keys_by_session: std::collections::HashMap<u32, String>,
    responder: respond::Responder,
    sessions: Vec<String>,
    ring: Ring,
    capacity: usize,
    trail: Option<crate::trail::TrailSender>,
    counters: Arc<Counters>,
    lines: Sender<String>,
    seq: u64,
    /// [`reload_geo`]'s generation for this gateway.
    geo_reloads: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Input>) {
        // `[ids.geo] database`: read here, before the first event, off the journal thread.
        let mut geo_seen = self.geo_reloads.load(Ordering::Relaxed);
        // Whether a database is in use (a failed reload keeps it; without one, the table).
        let mut geo_db = self.load_geo("loaded", "regions from [[ids.region]] only");
        loop {
            let asked = self.geo_reloads.load(Ordering::Relaxed);
            if asked != geo_seen {
                geo_seen = asked;
                let otherwise = if geo_db {
                    "the database loaded before stays in use"
                } else {
                    "regions from [[ids.region]] only"
                };
                geo_db |= self.load_geo("reloaded", otherwise);
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Input::Event(e)) => {
                    for alert in self.detector.observe(&e) {
                        self.raise(alert);
                    }
                    for alert in self.geography(&e) {
                        self.raise(alert);
                    }
                }
                Ok(Input::Order(f)) => {
                    for alert in self.baselines.observe(&f) {
                        self.raise(alert);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Reads `[ids.geo] database` (if configured) and says how it went in the event log; on an
    /// error the locator keeps what it had (`otherwise` says what that is).
    /// Reads `[ids.geo] database` (if any); `true` when one was loaded.
    fn load_geo(&mut self, done: &str, otherwise: &str) -> bool {
        let now = crate::clock::system_utc();
        match self.geo.load_database() {
            Ok(Some(what)) => {
                self.line(format!("{} ids-geo-database {done} {what}", rules_ts(now)));
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.line(format!(
                    "{} ids-geo-database-error key={} problem={:?} ({otherwise})",
                    rules_ts(now),
                    e.key,
                    e.problem
                ));
                false
            }
        }
    }

    /// Logons with their key and address, to [`geo::Geo`].
    fn geography(&mut self, e: &Event) -> Vec<Alert> {
        match e {
            Event::Authenticated {
                session, key_id, ..
            } if (session.0 as usize) < self.sessions.len() => {
                self.keys_by_session
                    .insert(session.0, key_id.as_str().to_string());
                Vec::new()
            }
            Event::LoggedOn { session, peer, at } => match self.keys_by_session.get(&session.0) {
                Some(key) => self.geo.logon(key, session.0, *peer, *at),
                None => Vec::new(),
            },
            Event::CredentialLogout { session, .. } | Event::Disconnected { session, .. } => {
                self.keys_by_session.remove(&session.0);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn line(&self, text: String) {
        // Full: the journal thread is far behind; the trail still has the record.
        let _ = self.lines.try_send(crate::auth::mask::free_text(&text));
    }

    fn raise(&mut self, alert: Alert) {
        self.seq += 1;
        self.counters.inc(Counter::IdsAlerts);
        let subject = alert.subject.describe(&self.sessions);
        if let Some(t) = &self.trail {
            let mut e = crate::trail::Entry::new(alert.at, "ids-alert", "ids")
                .detail("alert-kind", alert.kind)
                .detail("rule", alert.rule)
                .detail("severity", alert.severity.as_str())
                .detail("count", alert.count.to_string())
                .detail("threshold", alert.threshold.to_string())
                .detail("window-ms", alert.window_ms.to_string())
                .detail("ids-seq", self.seq.to_string())
                .detail("note", alert.note.clone());
            e = subject_fields(e, &alert);
            t.send(mask_entry(e));
        }
        let note = if alert.note.is_empty() {
            String::new()
        } else {
            format!(" note={:?}", alert.note)
        };
        self.line(format!(
            "{} ids-alert alert-kind={} severity={} subject={subject} count={} threshold={} window-ms={} ids-seq={}{note}",
            rules_ts(alert.at),
            alert.kind,
            alert.severity.as_str(),
            alert.count,
            alert.threshold,
            alert.window_ms,
            self.seq
        ));
        let mut record = Record {
            seq: self.seq,
            alert: alert.clone(),
            subject: subject.clone(),
            actions: Vec::new(),
        };
        self.push(record.clone());
        for done in self.responder.respond(&alert) {
            self.counters.inc(Counter::IdsActions);
            let now = crate::clock::system_utc();
            if let Some(t) = &self.trail {
                let actor = format!("ids (auto: {})", alert.kind);
                let e = crate::trail::Entry::new(now, "ids-action", &actor)
                    .detail("action", done.action.as_str())
                    .detail("target", done.target.clone())
                    .detail("ok", done.ok.to_string())
                    .detail("result", done.result.clone())
                    .detail("ids-seq", self.seq.to_string());
                t.send(mask_entry(subject_fields(e, &alert)));
            }
            self.line(format!(
                "{} ids-action action={} target={} ok={} alert-kind={} ids-seq={} result={:?}",
                rules_ts(now),
                done.action.as_str(),
                done.target,
                done.ok,
                alert.kind,
                self.seq,
                done.result
            ));
            record.actions.push(format!(
                "{}={}",
                done.action.as_str(),
                if done.ok { "ok" } else { "failed" }
            ));
        }
        if !record.actions.is_empty() {
            let mut ring = lock(&self.ring);
            if let Some(r) = ring.iter_mut().rev().find(|r| r.seq == record.seq) {
                *r = record;
            }
        }
    }

    fn push(&self, r: Record) {
        let mut ring = lock(&self.ring);
        while ring.len() >= self.capacity.max(1) {
            ring.pop_front();
        }
        ring.push_back(r);
    }
}

fn subject_fields(mut e: crate::trail::Entry, a: &Alert) -> crate::trail::Entry {
    match &a.subject {
        Subject::Key(k) => e = e.subject("key", k.clone()),
        Subject::Address(ip) => e = e.subject("address", ip.to_string()),
        Subject::Session(s) => e = e.subject("session", s.to_string()),
    }
    if let Some(ip) = a.context.address {
        e = e.subject("address", ip.to_string());
    }
    if let Some(k) = &a.context.key_id {
        e = e.subject("key", k.clone());
    }
    e
}

/// Key ids and CompIDs are text a client chose: card numbers in them are masked (DATA-4).
fn mask_entry(mut e: crate::trail::Entry) -> crate::trail::Entry {
    for v in e.subject.values_mut().chain(e.detail.values_mut()) {
        *v = crate::auth::mask::free_text(v);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_never_waits_and_reports_what_the_queue_could_not_take() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (_line_tx, lines) = crossbeam_channel::bounded(2);
        let mut feed = Feed {
            tx: Some(tx),
            lines,
            dropped: 0,
            thread: None,
        };
        let e = Event::VenueUp {
            venue: crate::model::VenueId(0),
            at: crate::model::Nanos(1),
        };
        for _ in 0..5 {
            feed.offer(&e);
        }
        assert_eq!(rx.len(), 2);
        let out = feed.lines();
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("ids-events-dropped count=3"), "{out:?}");
        assert!(feed.lines().is_empty(), "reported once");
    }
}
