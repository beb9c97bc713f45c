//! COLD — loading key snapshots and watching the key store for live changes.
//!
//! [`Loader`] decrypts the store, compiles a [`KeySnapshot`], gives every key with its own
//! throttle tier a stable slot in the (lock-free) throttle table and sets its limits there.
//! [`spawn`] runs a thread that polls the store file's metadata every `poll_ms` and, when it
//! changed, publishes a new snapshot to the gateway thread (`Command::Keys`). A store that no
//! longer decrypts is reported and the running snapshot stays in force.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::keys::KeySnapshot;
use super::store::KeyStore;
use crate::handoff::{Command, CommandSender};
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
        }
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

    /// Decrypts and compiles the store; assigns throttle slots and applies tier limits.
    pub fn load(&mut self) -> Result<KeySnapshot, String> {
        let file = self.store.load()?;
        let mut snap = KeySnapshot::build(&file)?;
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

/// Starts the watcher thread.
pub fn spawn(
    mut loader: Loader,
    commands: CommandSender,
    poll: Duration,
    tier_reload: TierReload,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("portcullis-keys".into())
        .spawn(move || {
            let mut last = stamp(&loader.store.path);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(poll);
                let now = stamp(&loader.store.path);
                let new_tiers = tier_reload.lock().ok().and_then(|mut t| t.take());
                let retiered = new_tiers.is_some();
                if let Some(t) = new_tiers {
                    loader.tiers = t;
                }
                if now == last && !retiered {
                    continue;
                }
                last = now;
                match loader.load() {
                    Ok(snap) => {
                        let n = snap.keys.len();
                        let snap = Arc::new(snap);
                        loader.published(snap.clone());
                        if commands.send(Command::Keys(snap)).is_err() {
                            return;
                        }
                        crate::say(format_args!(
                            "portcullis: key store changed: {n} key(s) loaded"
                        ));
                    }
                    Err(e) => crate::say_err(format_args!(
                        "portcullis: key store changed but not applied: {e}"
                    )),
                }
            }
        })
}
