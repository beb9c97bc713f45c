//! COLD — loading key snapshots and watching the key store for live changes.
//!
//! [`Loader`] decrypts the store, compiles a [`KeySnapshot`], gives every key with its own
//! throttle tier a stable slot in the (lock-free) throttle table and sets its limits there.
//! [`spawn`] runs a thread that polls the store file's metadata every `poll_ms` and, when it
//! changed, publishes a new snapshot to the gateway thread (`Command::Keys`). A store that is
//! refused — older than the newest generation seen (rollback), open to group or others, or
//! one that no longer decrypts — is reported (stderr, `key-store-refused` event, counter
//! `KeyStoreRefusals`) and the running snapshot stays in force.
//!
//! Rotation policy (AUTH-9): every snapshot carries each key's age limit as its expiry
//! ([`KeySnapshot::apply_max_age`]), so logons past it are refused ("key too old") and live
//! sessions are logged out at it by the gateway thread. The watcher raises `key-aging` events
//! for keys inside the warning window or past the limit: at start, after each reload and then
//! once a minute, at most once per key per UTC day (and again when it crosses the limit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::keys::{KeyId, KeySnapshot, DAY_MS};
use super::store::{KeyStore, StoreError};
use crate::handoff::{Command, CommandSender, Event, EventRing};
use crate::model::Nanos;
use crate::monitor::{Counter, Counters};
use crate::throttle::{KeySlot, ThrottleTable, TierTable};

/// Builds snapshots from the store and keeps key → throttle slot assignments stable.
pub struct Loader {
    pub store: KeyStore,
    tiers: TierTable,
    throttle: Option<Arc<ThrottleTable>>,
    slots: HashMap<String, u32>,
    /// Throttle slots `first_slot..first_slot + max_keys` belong to keys.
    first_slot: u32,
    max_keys: u32,
    /// The last two snapshots published: the gateway thread's swap then only decrements a
    /// reference count, and the memory is freed here, on a cold thread.
    published: [Option<Arc<KeySnapshot>>; 2],
    /// `auth.max_key_age_days` and `auth.key_age_warning_days`, milliseconds (0: no maximum).
    max_age_ms: u64,
    age_warning_ms: u64,
}

impl Loader {
    pub fn new(store: KeyStore, tiers: TierTable, first_slot: u32, max_keys: u32) -> Loader {
        Loader {
            store,
            tiers,
            throttle: None,
            slots: HashMap::new(),
            first_slot,
            max_keys,
            published: [None, None],
            max_age_ms: 0,
            age_warning_ms: 0,
        }
    }

    /// The rotation policy (AUTH-9): maximum key age and the warning window before it,
    /// milliseconds; 0: no maximum age. Applies from the next [`Loader::load`].
    pub fn set_age_policy(&mut self, max_age_ms: u64, warning_ms: u64) {
        self.max_age_ms = max_age_ms;
        self.age_warning_ms = warning_ms;
    }

    /// Remembers a snapshot handed to the gateway thread (see `published`).
    pub fn published(&mut self, snap: Arc<KeySnapshot>) {
        self.published[1] = self.published[0].take();
        self.published[0] = Some(snap);
    }

    pub fn set_throttle(&mut self, t: Arc<ThrottleTable>) {
        self.throttle = Some(t);
    }

    /// The names of the key slots, in slot order (for persisting daily quotas).
    pub fn slot_names(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .slots
            .iter()
            .map(|(k, s)| (*s, format!("key:{k}")))
            .collect();
        v.sort();
        v
    }

    /// Decrypts and compiles the store (refusing a rollback: see `store`), applies the
    /// maximum key age, assigns throttle slots and applies tier limits.
    pub fn load(&mut self) -> Result<KeySnapshot, StoreError> {
        let file = self.store.load()?;
        self.compile(&file).map_err(StoreError::invalid)
    }

    fn compile(&mut self, file: &super::keys::KeyFile) -> Result<KeySnapshot, String> {
        let mut snap = KeySnapshot::build(file)?;
        snap.apply_max_age(self.max_age_ms);
        let now = crate::clock::system_utc();
        for k in &mut snap.keys {
            let Some(tier) = &k.tier else { continue };
            let id = self.tiers.find(tier).ok_or_else(|| {
                format!("key {:?}: tier {tier:?} is not configured", k.id.as_str())
            })?;
            let slot = match self.slots.get(k.id.as_str()) {
                Some(s) => *s,
                None => {
                    let n = self.slots.len() as u32;
                    if n >= self.max_keys {
                        return Err(format!(
                            "more than auth.max_keys = {} keys with their own tier",
                            self.max_keys
                        ));
                    }
                    let s = self.first_slot + n;
                    self.slots.insert(k.id.as_str().to_string(), s);
                    s
                }
            };
            k.throttle_slot = Some(slot);
            if let Some(t) = &self.throttle {
                let limits = self
                    .tiers
                    .resolve(id, &Default::default())
                    .map_err(|e| format!("tier {tier:?}: {e:?}"))?;
                t.set_key_limits(KeySlot(slot), &limits, now)
                    .map_err(|e| format!("key {:?} throttle: {e:?}", k.id.as_str()))?;
            }
        }
        Ok(snap)
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// New tier definitions for the keys' own tiers (SIGHUP): the watcher applies them on its next
/// poll, re-reading the store.
pub type TierReload = Arc<std::sync::Mutex<Option<TierTable>>>;

/// `key-aging` events already raised: per key, the UTC day and whether it was past the limit.
#[derive(Default)]
struct Aging {
    raised: HashMap<KeyId, (u64, bool)>,
    /// More keys were due than one pass raises (the rest go on the next poll).
    pending: bool,
}

/// Most `key-aging` events one pass raises (the event ring is shared with the gateway thread).
const AGING_EVENTS_PER_PASS: usize = 64;

impl Aging {
    /// Raises `key-aging` for the keys of `snap` inside the warning window or past their
    /// maximum age, each at most once per UTC day and state.
    fn check(&mut self, snap: &KeySnapshot, loader: &Loader, now: Nanos, events: &EventRing) {
        self.pending = false;
        if loader.max_age_ms == 0 {
            return;
        }
        let now_ms = now.0 / 1_000_000;
        let day = now_ms / DAY_MS;
        let mut raised = 0;
        for k in &snap.keys {
            if k.revoked {
                continue;
            }
            let age_ms = now_ms.saturating_sub(k.age_from_ms);
            let left_ms = loader.max_age_ms.saturating_sub(age_ms);
            if left_ms > loader.age_warning_ms {
                continue;
            }
            let past = left_ms == 0;
            if self.raised.get(&k.id) == Some(&(day, past)) {
                continue;
            }
            if raised == AGING_EVENTS_PER_PASS {
                self.pending = true;
                return;
            }
            let event = Event::KeyAging {
                key_id: k.id,
                age_days: u32::try_from(age_ms / DAY_MS).unwrap_or(u32::MAX),
                days_left: i32::try_from(left_ms.div_ceil(DAY_MS)).unwrap_or(i32::MAX),
                at: now,
            };
            if !events.push(event) {
                // Ring full: try again on the next pass.
                self.pending = true;
                return;
            }
            self.raised.insert(k.id, (day, past));
            raised += 1;
        }
    }
}

/// How often the watcher re-checks key ages without a store change.
const AGING_EVERY: Duration = Duration::from_secs(60);

/// What the watcher thread reports to besides the gateway thread.
pub struct Reporting {
    pub events: EventRing,
    pub counters: Arc<Counters>,
}

/// Starts the watcher thread.
pub fn spawn(
    mut loader: Loader,
    commands: CommandSender,
    poll: Duration,
    tier_reload: TierReload,
    report: Reporting,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("portcullis-keys".into())
        .spawn(move || {
            let mut last = stamp(&loader.store.path);
            let mut aging = Aging::default();
            let mut since_aging = Duration::ZERO;
            if let Some(snap) = loader.published[0].clone() {
                aging.check(&snap, &loader, crate::clock::system_utc(), &report.events);
            }
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(poll);
                since_aging += poll;
                let now = stamp(&loader.store.path);
                let new_tiers = tier_reload.lock().ok().and_then(|mut t| t.take());
                let retiered = new_tiers.is_some();
                if let Some(t) = new_tiers {
                    loader.tiers = t;
                }
                if now == last && !retiered {
                    if aging.pending || since_aging >= AGING_EVERY {
                        since_aging = Duration::ZERO;
                        if let Some(snap) = loader.published[0].clone() {
                            let at = crate::clock::system_utc();
                            aging.check(&snap, &loader, at, &report.events);
                        }
                    }
                    continue;
                }
                last = now;
                match loader.load() {
                    Ok(snap) => {
                        let n = snap.keys.len();
                        let snap = Arc::new(snap);
                        loader.published(snap.clone());
                        if commands.send(Command::Keys(snap.clone())).is_err() {
                            return;
                        }
                        crate::say(format_args!(
                            "portcullis: key store changed: {n} key(s) loaded (generation {})",
                            loader.store.generation()
                        ));
                        since_aging = Duration::ZERO;
                        aging.check(&snap, &loader, crate::clock::system_utc(), &report.events);
                    }
                    Err(e) => {
                        report.counters.inc(Counter::KeyStoreRefusals);
                        // A full ring drops it; the counter and stderr still say it.
                        report.events.push(Event::KeyStoreRefused {
                            cause: e.cause,
                            generation: e.generation.unwrap_or(u64::MAX),
                            newest: loader.store.generation(),
                            at: crate::clock::system_utc(),
                        });
                        crate::say_err(format_args!(
                            "portcullis: key store changed but not applied: {e}"
                        ));
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeyFile, KeyRecord, SecretRecord, Status};
    use crate::auth::provider::ProviderCfg;

    fn key(id: &str, age_from_ms: u64) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            secrets: vec![SecretRecord {
                secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==".into(),
                not_after_ms: None,
            }],
            role: "trader".into(),
            scopes: vec![],
            comp_ids: vec!["C".into()],
            accounts: vec![],
            symbols: vec![],
            allow: vec!["127.0.0.1".into()],
            tier: None,
            expires_ms: None,
            status: Status::Active,
            unlock_gen: 0,
            created_ms: age_from_ms,
            rotated_ms: None,
        }
    }

    fn drain(events: &EventRing) -> Vec<(String, i32)> {
        let mut v = Vec::new();
        while let Some(e) = events.pop() {
            if let Event::KeyAging {
                key_id, days_left, ..
            } = e
            {
                v.push((key_id.as_str().to_string(), days_left));
            }
        }
        v
    }

    #[test]
    fn key_aging_is_raised_once_per_day_and_again_when_the_limit_passes() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProviderCfg::File {
            path: dir.path().join("master.key"),
        };
        let store = KeyStore::open(&dir.path().join("keys.store"), &p, true).unwrap();
        let now_ms = 1_000 * DAY_MS;
        store
            .save(&KeyFile {
                address_unlock_gen: 0,
                keys: vec![
                    key("fresh", now_ms - DAY_MS),
                    key("aging", now_ms - 25 * DAY_MS),
                    key("old", now_ms - 31 * DAY_MS),
                ],
            })
            .unwrap();
        let mut loader = Loader::new(store, TierTable::new(), 0, 0);
        loader.set_age_policy(30 * DAY_MS, 10 * DAY_MS);
        let snap = loader.load().unwrap();
        assert!(snap.get(b"old").unwrap().is_expired(now_ms * 1_000_000));
        let events = EventRing::new(16);
        let mut aging = Aging::default();
        let at = |ms: u64| Nanos(ms * 1_000_000);
        aging.check(&snap, &loader, at(now_ms), &events);
        let mut got = drain(&events);
        got.sort();
        assert_eq!(got, vec![("aging".into(), 5), ("old".into(), 0)]);
        aging.check(&snap, &loader, at(now_ms + 3_600_000), &events);
        assert!(drain(&events).is_empty(), "once per day");
        // Next day: again; five days later "aging" has crossed the limit: raised as expired.
        aging.check(&snap, &loader, at(now_ms + DAY_MS), &events);
        assert_eq!(drain(&events).len(), 2);
        aging.check(&snap, &loader, at(now_ms + 5 * DAY_MS), &events);
        assert!(drain(&events).contains(&("aging".into(), 0)));
        // No maximum age: nothing.
        loader.set_age_policy(0, 0);
        aging.check(&snap, &loader, at(now_ms + 9 * DAY_MS), &events);
        assert!(drain(&events).is_empty());
    }
}
