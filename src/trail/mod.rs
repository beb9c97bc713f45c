//! COLD — the tamper-evident audit trail (MON-1, issue 15): one append-only log of every
//! security-relevant fact — logons and each refusal cause, throttle and risk rejects, kills,
//! limit and key changes, control actions with their actor, config reloads, start and stop,
//! and every order lifecycle event — as SHA-256-chained JSON lines with Ed25519-signed
//! checkpoints, under `<data_dir>/audit/` (`audit.dir`). `docs/audit-trail.md` is the format.
//!
//! Thread: `portcullis-trail`, fed by a bounded queue ([`TrailSender`]) from the journal thread
//! (hot-thread events and order records), the control socket threads and `main`. It never
//! touches the hot thread: the hot thread's rings are drained by the journal thread as before.
//!
//! When the queue is full the record is lost and counted (`AuditRingFull`); the next record
//! written says how many were lost. Under `audit.on_full = "fail_closed"` a full queue or a
//! write error also lowers the [`Trail::healthy`] flag, which the order desk reads to refuse new
//! orders until the trail has caught up (the flag rises again once the queue is below half and
//! the loss is on record).
//!
//! Must never: block the journal or control threads (sends are `try_send`), write a record
//! without chaining it, keep the signing key's seed anywhere but in memory and wrapped on disk.

pub mod chain;
pub mod cli;
pub mod messages;
pub mod order_line;
pub mod sign;
pub mod timeline;
pub mod verify;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::config::{Config, OnFull};
use crate::handoff::Event;
use crate::model::Nanos;
use crate::monitor::{Counter, Counters};

/// One fact to record (the trail adds seq, prev and hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Nanos,
    pub kind: String,
    pub actor: String,
    pub subject: BTreeMap<String, String>,
    pub detail: BTreeMap<String, String>,
}

impl Entry {
    pub fn new(at: Nanos, kind: &str, actor: &str) -> Entry {
        Entry {
            at,
            kind: kind.to_string(),
            actor: actor.to_string(),
            subject: BTreeMap::new(),
            detail: BTreeMap::new(),
        }
    }

    /// Adds a subject field (empty values are left out).
    pub fn subject(mut self, k: &str, v: impl Into<String>) -> Entry {
        let v = v.into();
        if !v.is_empty() {
            self.subject.insert(k.to_string(), v);
        }
        self
    }

    /// Adds a detail field (empty values are left out).
    pub fn detail(mut self, k: &str, v: impl Into<String>) -> Entry {
        let v = v.into();
        if !v.is_empty() {
            self.detail.insert(k.to_string(), v);
        }
        self
    }
}

/// Counts kept until the gateway's counters exist (the trail starts before the engine).
struct Tally {
    counters: OnceLock<Arc<Counters>>,
    early: [AtomicU64; 4],
}

const TALLIED: [Counter; 4] = [
    Counter::AuditRecords,
    Counter::AuditRingFull,
    Counter::AuditWriteErrors,
    Counter::AuditCheckpoints,
];

impl Tally {
    fn add(&self, c: Counter, n: u64) {
        match self.counters.get() {
            Some(k) => k.add(c, n),
            None => {
                if let Some(i) = TALLIED.iter().position(|t| *t == c) {
                    self.early[i].fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
}

struct Shared {
    healthy: Arc<AtomicBool>,
    fail_closed: bool,
    /// Records refused since the last `audit-records-lost` record.
    lost: AtomicU64,
    capacity: usize,
    tally: Tally,
}

/// What the trail thread's queue carries.
enum Item {
    Entry(Entry),
    /// An order record's fields packed by the journal thread from its REG-1 line (the buffer
    /// goes back to the pool once written; [`order_line`]).
    OrderLine(Nanos, Vec<u8>),
    /// The gateway thread's message ring (`audit.messages`): drained from now on, in place of
    /// any ring attached before.
    Messages(Box<messages::MessageSource>),
}

/// Sends records to the trail thread; cheap to clone, never blocks.
#[derive(Clone)]
pub struct TrailSender {
    tx: Sender<Item>,
    /// Buffers of written order lines, back from the trail thread.
    pool: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
}

impl TrailSender {
    /// Queues `e`; `false` when the queue was full (counted; under `fail_closed` the trail is
    /// marked unhealthy) or the trail has stopped.
    pub fn send(&self, e: Entry) -> bool {
        self.queue(Item::Entry(e))
    }

    /// Queues the record of an order event from its REG-1 line ([`from_order_line`]'s record):
    /// read here into `lines`' reused buffers and packed into a pooled buffer, no map built
    /// ([`order_line`]); a line that reader does not take goes the general way.
    pub fn send_order_line(
        &self,
        lines: &mut order_line::OrderLines,
        at: Nanos,
        line: &[u8],
    ) -> bool {
        let mut buf = self.pool.try_recv().unwrap_or_default();
        if lines.pack(line, &mut buf) {
            self.queue(Item::OrderLine(at, buf))
        } else {
            self.send(from_order_line(at, line))
        }
    }

    fn queue(&self, item: Item) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.lost.fetch_add(1, Ordering::SeqCst);
                self.shared.tally.add(Counter::AuditRingFull, 1);
                if self.shared.fail_closed {
                    self.shared.healthy.store(false, Ordering::SeqCst);
                }
                false
            }
        }
    }

    /// A message ring of `bytes` for a gateway whose sessions and venues have these names: the
    /// trail thread drains it from now on. Returns the gateway thread's end and, under
    /// `fail_closed`, the healthy flag to lower when the ring refuses a message. `None` when
    /// the trail has stopped.
    pub fn attach_messages(
        &self,
        bytes: usize,
        sessions: Vec<String>,
        venues: Vec<String>,
    ) -> Option<(
        crate::handoff::messages::MessageWriter,
        Option<Arc<AtomicBool>>,
    )> {
        let (writer, reader) = crate::handoff::messages::ring(bytes);
        let source = messages::MessageSource::new(reader, sessions, venues);
        // Blocking is fine here (cold, at start): the ring must not be refused for a full queue.
        self.tx
            .send_timeout(Item::Messages(Box::new(source)), Duration::from_secs(5))
            .ok()?;
        let flag = self.shared.fail_closed.then(|| self.shared.healthy.clone());
        Some((writer, flag))
    }

    /// Makes the trail's counters those of the running gateway (what was counted before is
    /// carried over).
    pub fn use_counters(&self, counters: &Arc<Counters>) {
        if self.shared.tally.counters.set(counters.clone()).is_ok() {
            for (i, c) in TALLIED.iter().enumerate() {
                counters.add(*c, self.shared.tally.early[i].swap(0, Ordering::Relaxed));
            }
        }
    }

    /// `true` while the trail keeps up (always under `on_full = "drop"`).
    pub fn healthy(&self) -> Arc<AtomicBool> {
        self.shared.healthy.clone()
    }
}

/// The running trail thread.
pub struct Trail {
    sender: TrailSender,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    data_dir: PathBuf,
    /// Where the files are.
    pub dir: PathBuf,
    /// The public key checkpoints verify with (hex), to pin in `audit.public_key`.
    pub public_key: String,
    pub on_full: OnFull,
}

/// Trails attached to data folders, for the threads that cannot be handed one at build time
/// (the journal thread and the control socket look theirs up by data folder).
fn registry() -> &'static Mutex<Vec<(PathBuf, TrailSender)>> {
    static R: OnceLock<Mutex<Vec<(PathBuf, TrailSender)>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A thread that panicked holding it left the list whole (push/retain only).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The trail attached to `data_dir`, if one runs.
pub fn attached(data_dir: &Path) -> Option<TrailSender> {
    lock(registry())
        .iter()
        .find(|(d, _)| d == data_dir)
        .map(|(_, s)| s.clone())
}

impl Trail {
    /// Opens the signing key and the files, starts the thread and attaches the trail to the
    /// data folder. `None` when `audit.enabled = false`.
    pub fn start(cfg: &Config) -> Result<Option<Trail>, String> {
        let a = &cfg.audit;
        if !a.enabled {
            return Ok(None);
        }
        let data_dir = cfg.gateway.data_dir.clone();
        let provider = match &cfg.auth {
            Some(auth) => Some(auth.provider(&data_dir)?),
            None => None,
        };
        let pinned = match &a.public_key {
            Some(p) => Some(sign::PublicKey::parse(p).ok_or_else(|| {
                "audit.public_key: must be 64 hex digits (an Ed25519 public key)".to_string()
            })?),
            None => None,
        };
        let key = sign::SigningKey::open(&data_dir, provider, pinned)?;
        let public_key = key.public().hex();
        let dir = a.dir_in(&data_dir);
        let mut files = writer::FileWriter::open(&dir, a.limits(), key)?;
        let on_full = a.on_full(cfg);
        let (tx, rx) = crossbeam_channel::bounded(a.queue_capacity);
        let (pool_tx, pool) = crossbeam_channel::bounded(a.queue_capacity.min(4096));
        let shared = Arc::new(Shared {
            healthy: Arc::new(AtomicBool::new(true)),
            fail_closed: on_full == OnFull::FailClosed,
            lost: AtomicU64::new(0),
            capacity: a.queue_capacity,
            tally: Tally {
                counters: OnceLock::new(),
                early: Default::default(),
            },
        });
        let sender = TrailSender {
            tx,
            pool,
            shared: shared.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let tick = a.limits().checkpoint_after.min(Duration::from_millis(200));
            std::thread::Builder::new()
                .name("portcullis-trail".into())
                .spawn(move || run(&mut files, (&rx, &pool_tx), &shared, &stop, tick))
                .map_err(|e| format!("audit trail thread: {e}"))?
        };
        let mut list = lock(registry());
        list.retain(|(d, _)| *d != data_dir);
        list.push((data_dir.clone(), sender.clone()));
        drop(list);
        Ok(Some(Trail {
            sender,
            stop,
            thread: Some(thread),
            data_dir,
            dir,
            public_key,
            on_full,
        }))
    }

    pub fn sender(&self) -> TrailSender {
        self.sender.clone()
    }

    /// The "trail healthy" flag: the order desk refuses new orders while it is `false`.
    pub fn healthy(&self) -> Arc<AtomicBool> {
        self.sender.healthy()
    }

    /// Writes what is queued, closes the file (`file-close`, checkpoint, fdatasync) and stops.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        lock(registry()).retain(|(d, _)| *d != self.data_dir);
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The trail thread: drains the queue into the files, ticks checkpoints, closes on stop.
fn run(
    files: &mut writer::FileWriter,
    (rx, pool): (&Receiver<Item>, &Sender<Vec<u8>>),
    shared: &Shared,
    stop: &AtomicBool,
    tick: Duration,
) {
    let mut failed = false;
    let write = |files: &mut writer::FileWriter, e: &Entry, failed: &mut bool| {
        record(files, shared, failed, |f| f.write(e));
    };
    // The gateway's messages (`audit.messages`), once its ring is attached.
    let mut source: Option<Box<messages::MessageSource>> = None;
    let write_item =
        |files: &mut writer::FileWriter,
         item: Item,
         failed: &mut bool,
         source: &mut Option<Box<messages::MessageSource>>| match item {
            Item::Messages(m) => *source = Some(m),
            Item::Entry(e) => write(files, &e, failed),
            Item::OrderLine(at, packed) => {
                record(files, shared, failed, |f| {
                    order_line::unpack(&packed, |kind, actor, subject, detail| {
                        f.write_fields(at, kind, actor, subject, detail)
                    })
                    .unwrap_or_else(|| {
                        Err(std::io::Error::other("a packed order record is damaged"))
                    })
                });
                let _ = pool.try_send(packed);
            }
        };
    let mut busy = false;
    // Pre-logon messages not recorded: the count already on record, and when it was written.
    let mut unrecorded = (0u64, crate::clock::monotonic());
    loop {
        let stopping = stop.load(Ordering::Acquire);
        // While messages flow, look at the ring again soon; idle, only on the tick.
        let wait = if busy {
            Duration::from_millis(2).min(tick)
        } else {
            tick
        };
        match rx.recv_timeout(wait) {
            Ok(item) => {
                report_lost(files, shared, &mut failed, &write);
                write_item(files, item, &mut failed, &mut source);
                while let Ok(item) = rx.try_recv() {
                    write_item(files, item, &mut failed, &mut source);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {}
        }
        busy = false;
        if let Some(src) = source.as_deref_mut() {
            // Losses first: the record saying so comes before what followed them.
            let lost = src.reader.take_lost();
            if lost > 0 {
                shared.lost.fetch_add(lost, Ordering::AcqRel);
            }
            report_lost(files, shared, &mut failed, &write);
            // A bounded batch per pass, so queued records and checkpoints are not starved.
            let taken = src.drain(4096, |at, kind, actor, subject, detail| {
                record(files, shared, &mut failed, |f| {
                    f.write_fields(at, kind, actor, subject, detail)
                });
            });
            busy = taken > 0;
        }
        // Messages before logon the gateway thread did not record (over the budget): said at
        // most once a second.
        if let Some(c) = shared.tally.counters.get() {
            let n = c.get(Counter::AuditPrelogonUnrecorded);
            if n > unrecorded.0 && (stopping || unrecorded.1.elapsed() >= Duration::from_secs(1)) {
                let e = Entry::new(
                    crate::clock::system_utc(),
                    chain::kind::MESSAGES_UNRECORDED,
                    "gateway",
                )
                .detail("count", (n - unrecorded.0).to_string())
                .detail(
                    "cause",
                    "messages of connections not logged on yet over \
                     audit.prelogon_messages_per_second (AuditPrelogonUnrecorded)",
                );
                write(files, &e, &mut failed);
                unrecorded = (n, crate::clock::monotonic());
            }
        }
        report_lost(files, shared, &mut failed, &write);
        let before = files.checkpoints;
        if let Err(err) = files.tick() {
            shared.tally.add(Counter::AuditWriteErrors, 1);
            if !failed {
                crate::say_err(format_args!("portcullis: audit trail: write failed: {err}"));
            }
            failed = true;
            files.abandon();
        }
        shared
            .tally
            .add(Counter::AuditCheckpoints, files.checkpoints - before);
        if shared.fail_closed
            && !failed
            && shared.lost.load(Ordering::Relaxed) == 0
            && rx.len() * 2 < shared.capacity
            && source.as_ref().is_none_or(|s| s.reader.fill() < 0.5)
        {
            shared.healthy.store(true, Ordering::SeqCst);
            // A sender counts a loss before it lowers the flag: one that raced this store
            // shows here (or lowers the flag after it).
            if shared.lost.load(Ordering::SeqCst) > 0
                || source.as_ref().is_some_and(|s| s.reader.pending_lost() > 0)
            {
                shared.healthy.store(false, Ordering::Release);
            }
        } else if shared.fail_closed && failed {
            shared.healthy.store(false, Ordering::Release);
        }
        if stopping && rx.is_empty() && !busy {
            let before = files.checkpoints;
            if let Err(err) = files.close("stop") {
                shared.tally.add(Counter::AuditWriteErrors, 1);
                crate::say_err(format_args!("portcullis: audit trail: close failed: {err}"));
            }
            shared
                .tally
                .add(Counter::AuditCheckpoints, files.checkpoints - before);
            return;
        }
    }
}

/// Writes an `audit-records-lost` record when records were refused since the last one.
/// One write of the trail thread, counted; a failure abandons the file and counts the record
/// as lost (it is reported with the others by the next record).
fn record(
    files: &mut writer::FileWriter,
    shared: &Shared,
    failed: &mut bool,
    op: impl FnOnce(&mut writer::FileWriter) -> std::io::Result<()>,
) {
    let before = files.checkpoints;
    match op(files) {
        Ok(()) => {
            shared.tally.add(Counter::AuditRecords, 1);
            *failed = false;
        }
        Err(err) => {
            shared.tally.add(Counter::AuditWriteErrors, 1);
            if !*failed {
                crate::say_err(format_args!("portcullis: audit trail: write failed: {err}"));
            }
            *failed = true;
            files.abandon();
            shared.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared
        .tally
        .add(Counter::AuditCheckpoints, files.checkpoints - before);
}

fn report_lost(
    files: &mut writer::FileWriter,
    shared: &Shared,
    failed: &mut bool,
    write: &impl Fn(&mut writer::FileWriter, &Entry, &mut bool),
) {
    let lost = shared.lost.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let e = Entry::new(
            crate::clock::system_utc(),
            chain::kind::RECORDS_LOST,
            "gateway",
        )
        .detail("count", lost.to_string())
        .detail(
            "cause",
            "the trail queue or the message ring was full, or a write failed \
             (AuditRingFull / AuditWriteErrors)",
        );
        write(files, &e, failed);
    }
}

// ---- what becomes a record ---------------------------------------------------------------------

fn session_name(sessions: &[String], s: crate::model::SessionId) -> String {
    sessions
        .get(s.0 as usize)
        .cloned()
        .unwrap_or_else(|| format!("#{}", s.0))
}

/// The record of a hot-thread event: the `events.log` line's words (same masking) as
/// `detail.text`, and the subject fields `audit trail` searches by.
pub fn from_event(e: &Event, sessions: &[String], venues: &[String]) -> Entry {
    use crate::auth::mask;
    let line = crate::audit::render(e, sessions, venues);
    // `<time> <kind> <rest>`: the kind and the rest; text a client chose is masked.
    let mut words = line.splitn(3, ' ');
    let _time = words.next();
    let word = words.next().unwrap_or("event");
    let rest = mask::free_text(words.next().unwrap_or(""));
    let (at, kind, session, key, address, account): (
        Nanos,
        &str,
        Option<crate::model::SessionId>,
        &str,
        Option<std::net::IpAddr>,
        &str,
    ) = match e {
        Event::LoggedOn { session, peer, at } => {
            (*at, "logon", Some(*session), "", Some(*peer), "")
        }
        Event::LogonRefused {
            key_id, peer, at, ..
        } => (*at, "logon-refused", None, key_id.as_str(), Some(*peer), ""),
        Event::AuthFailed {
            session,
            key_id,
            peer,
            at,
            ..
        } => (
            *at,
            "auth-failed",
            Some(*session),
            key_id.as_str(),
            Some(*peer),
            "",
        ),
        Event::AuthLockout {
            key_id, peer, at, ..
        } => (*at, "auth-lockout", None, key_id.as_str(), Some(*peer), ""),
        Event::Authenticated {
            session,
            key_id,
            at,
            ..
        } => (
            *at,
            "authenticated",
            Some(*session),
            key_id.as_str(),
            None,
            "",
        ),
        Event::CredentialLogout {
            session,
            key_id,
            at,
            ..
        } => (
            *at,
            "credential-logout",
            Some(*session),
            key_id.as_str(),
            None,
            "",
        ),
        Event::KeyAging { key_id, at, .. } => (*at, "key-aging", None, key_id.as_str(), None, ""),
        Event::RiskRejected {
            session,
            account,
            at,
            ..
        } => (
            *at,
            "risk-reject",
            Some(*session),
            "",
            None,
            account.as_str(),
        ),
        Event::LimitsChanged { account, at, .. } => {
            (*at, "limits-changed", None, "", None, account.as_str())
        }
        Event::AccountEnabled { account, at, .. } => {
            (*at, "account-enabled", None, "", None, account.as_str())
        }
        Event::ReconciliationMismatch { account, at, .. } => (
            *at,
            "reconciliation-mismatch",
            None,
            "",
            None,
            account.as_str(),
        ),
        Event::Kill { on, at, target, .. } => {
            let (s, a) = match target {
                crate::handoff::KillTarget::Session(i) => (Some(crate::model::SessionId(*i)), ""),
                crate::handoff::KillTarget::Account(a) => (None, a.as_str()),
                _ => (None, ""),
            };
            (*at, if *on { "kill" } else { "unkill" }, s, "", None, a)
        }
        Event::Disconnected { session, at, .. }
        | Event::OrderRejected { session, at, .. }
        | Event::Throttled { session, at, .. }
        | Event::CanceledOnDisconnect { session, at, .. }
        | Event::SlowConsumer { session, at, .. }
        | Event::PermissionDenied { session, at, .. } => (*at, word, Some(*session), "", None, ""),
        Event::ConnectionsShed { peer, at, .. } => (*at, word, None, "", Some(*peer), ""),
        Event::VenueUp { at, .. }
        | Event::VenueDown { at, .. }
        | Event::JournalError { at, .. }
        | Event::TlsReloaded { at, .. }
        | Event::CertExpiring { at, .. }
        | Event::ClockSync { at, .. }
        | Event::KeyStoreRefused { at, .. } => (*at, word, None, "", None, ""),
    };
    let session = session.map(|s| session_name(sessions, s));
    let key = mask::free_text(key);
    let actor = match (&key, &session) {
        (k, _) if !k.is_empty() => format!("key:{k}"),
        (_, Some(s)) => format!("session:{s}"),
        _ => "gateway".to_string(),
    };
    Entry::new(at, kind, &actor)
        .subject("session", session.unwrap_or_default())
        .subject("key", key)
        .subject(
            "address",
            address.map(|a| a.to_string()).unwrap_or_default(),
        )
        .subject(
            "account",
            if account.is_empty() {
                String::new()
            } else {
                mask::account(account)
            },
        )
        .detail("text", rest)
}

/// The record of an order lifecycle event (REG-1 record): its columns, the account masked.
pub fn from_order(
    r: &crate::order::record::OrderRecord,
    names: &crate::audit::records::Names,
) -> Entry {
    let mut line = Vec::with_capacity(1024);
    crate::audit::records::LineWriter::default().line(&mut line, r, names);
    from_order_line(r.at, &line)
}

/// [`from_order`] from the REG-1 JSON line the journal thread has already written for the
/// record (`RecordWriter::line`): one parse straight into the record's maps. The general path:
/// the trail thread takes order lines through [`order_line`] (no maps) and comes here only for a
/// line that reader does not take; its tests hold the two to the same record.
pub fn from_order_line(at: Nanos, line: &[u8]) -> Entry {
    let mut cols: BTreeMap<String, String> = serde_json::from_slice(line).unwrap_or_default();
    cols.retain(|_, v| !v.is_empty());
    let event = cols.remove("event").unwrap_or_default();
    cols.remove("event_time");
    let key = cols.remove("api_key_id").unwrap_or_default();
    let actor = if key.is_empty() {
        format!("session:{}", cols.get("session").map_or("", String::as_str))
    } else {
        format!("key:{key}")
    };
    let mut subject = BTreeMap::new();
    for k in [
        "order_id",
        "cl_ord_id",
        "orig_cl_ord_id",
        "request_cl_ord_id",
        "session",
    ] {
        if let Some((k, v)) = cols.remove_entry(k) {
            subject.insert(k, v);
        }
    }
    if !key.is_empty() {
        subject.insert("key".to_string(), key);
    }
    if let Some((k, v)) = cols.remove_entry("account") {
        subject.insert(k, crate::auth::mask::account(&v));
    }
    Entry {
        at,
        kind: format!("order-{event}"),
        actor,
        subject,
        detail: cols,
    }
}

/// The record of a control socket line (`control-audit.log`, kept as it is): the operator as
/// actor (kernel-given uid and pid, and the `by` they typed), the request and its answer.
pub fn from_control(line: &serde_json::Value) -> Entry {
    let s = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let peer = line.get("peer");
    let uid = s(peer.and_then(|p| p.get("uid")));
    let pid = s(peer.and_then(|p| p.get("pid")));
    let by = s(line.get("by"));
    let actor = format!("operator:uid={uid},pid={pid},by={by}");
    let request = line.get("request");
    let action = s(request.and_then(|r| r.get("op")));
    let kind = if line.get("refused").is_some() {
        "control-refused".to_string()
    } else if action.is_empty() {
        "control".to_string()
    } else {
        format!("control-{action}")
    };
    let mut e = Entry::new(crate::clock::system_utc(), &kind, &actor)
        .detail("control_seq", s(line.get("seq")))
        .detail("reason", s(line.get("reason")))
        .detail("request", s(request))
        .detail("result", s(line.get("result")))
        .detail("error", s(line.get("error")));
    if let Some(r) = request {
        if let Some(a) = r.get("account") {
            e = e.subject("account", s(Some(a)));
        }
        if s(r.get("scope")) == "account" {
            e = e.subject("account", s(r.get("name")));
        }
        if s(r.get("scope")) == "session" {
            e = e.subject("session", s(r.get("name")));
        }
    }
    e
}

/// Lower-case hex SHA-256 of `bytes` (a config file's, in `gateway-start`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    chain::hex(&sha2::Sha256::digest(bytes))
}

/// A gateway lifecycle record (`gateway-start`, `gateway-stop`, `config-reload`…).
pub fn note(data_dir: &Path, kind: &str, detail: &[(&str, String)]) {
    if let Some(t) = attached(data_dir) {
        let mut e = Entry::new(crate::clock::system_utc(), kind, "gateway");
        for (k, v) in detail {
            e = e.detail(k, v.clone());
        }
        t.send(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, SessionId};

    /// Stops `trail` and verifies everything it wrote with its own key (asserted: no problem).
    fn stop_and_verify(trail: Trail) -> verify::Report {
        let pubkey = sign::PublicKey::parse(&trail.public_key).unwrap();
        let dir_audit = trail.dir.clone();
        trail.stop();
        let (files, whole) = verify::collect(&[dir_audit]).unwrap();
        let rep = verify::verify(
            &files,
            &verify::Options {
                public_key: Some(pubkey),
                whole_trail: whole,
                live: false,
                keep: true,
            },
        );
        assert!(rep.ok(), "{:?}", rep.problems);
        rep
    }

    #[test]
    fn events_become_records_with_searchable_subjects_and_masking() {
        let e = Event::RiskRejected {
            session: SessionId(0),
            account: Account::new(b"ACC-123456789").unwrap(),
            reason: crate::risk::Reason::UnknownAccount,
            at: Nanos(5),
        };
        let r = from_event(&e, &["FIX.4.4:C1->GW".into()], &[]);
        assert_eq!(r.kind, "risk-reject");
        assert_eq!(r.subject["session"], "FIX.4.4:C1->GW");
        assert_eq!(r.subject["account"], "*********6789");
        assert!(!format!("{r:?}").contains("ACC-123456789"));
        let refused = Event::LogonRefused {
            their_comp_id: crate::model::CompId::new(b"4111111111111111").unwrap(),
            key_id: crate::auth::KeyId::new(b"k1").unwrap(),
            peer: std::net::IpAddr::from([10, 0, 0, 1]),
            reason: crate::handoff::LogonRefusal::NoSession,
            at: Nanos(6),
        };
        let r = from_event(&refused, &[], &[]);
        assert_eq!(r.actor, "key:k1");
        assert_eq!(r.subject["address"], "10.0.0.1");
        assert!(!r.detail["text"].contains("4111111111111111"), "{r:?}");
    }

    #[test]
    fn a_full_queue_is_counted_recorded_and_fails_closed_until_the_trail_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::embedded_default(dir.path());
        cfg.audit.on_full = Some(OnFull::FailClosed);
        cfg.audit.queue_capacity = 16;
        let trail = Trail::start(&cfg).unwrap().unwrap();
        let counters = Arc::new(Counters::default());
        let tx = trail.sender();
        tx.use_counters(&counters);
        let healthy = trail.healthy();
        assert!(healthy.load(Ordering::Acquire));
        let mut refused = 0u64;
        let mut saw_unhealthy = false;
        for i in 0..20_000u64 {
            if !tx.send(Entry::new(Nanos(i), "test", "gateway").detail("i", i.to_string())) {
                refused += 1;
                // Refused under fail_closed: the order desk sees it at once.
                saw_unhealthy |= !healthy.load(Ordering::Acquire);
            }
        }
        assert!(
            refused > 0,
            "a 16-record queue must overflow under 20k sends"
        );
        assert!(saw_unhealthy);
        assert_eq!(counters.get(Counter::AuditRingFull), refused);
        // Once the queue drained and the loss is on record, orders may flow again.
        let t0 = crate::clock::monotonic();
        while !healthy.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(healthy.load(Ordering::Acquire));
        let rep = stop_and_verify(trail);
        let lost: Vec<u64> = rep
            .all
            .iter()
            .filter(|l| l.record.kind == chain::kind::RECORDS_LOST)
            .map(|l| l.record.detail["count"].parse::<u64>().unwrap())
            .collect();
        assert_eq!(lost.iter().sum::<u64>(), refused);
        // AuditRecords: the entries written (the loss reports included; not the trail's own
        // file-start, file-close and checkpoint records, which AuditCheckpoints counts).
        assert_eq!(
            counters.get(Counter::AuditRecords),
            20_000 - refused + lost.len() as u64
        );
        assert_eq!(counters.get(Counter::AuditCheckpoints), rep.checkpoints);
    }

    #[test]
    fn under_drop_a_full_queue_never_stops_orders() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::embedded_default(dir.path());
        cfg.audit.queue_capacity = 16;
        assert_eq!(cfg.audit.on_full(&cfg), OnFull::Drop);
        let trail = Trail::start(&cfg).unwrap().unwrap();
        let tx = trail.sender();
        let mut refused = 0;
        for i in 0..20_000u64 {
            refused += u64::from(!tx.send(Entry::new(Nanos(i), "test", "gateway")));
            assert!(trail.healthy().load(Ordering::Acquire));
        }
        assert!(refused > 0);
    }

    /// A filled order's record, as the journal thread hands it over.
    pub(crate) fn order_entry(i: u64) -> Entry {
        use crate::model::{InlineStr, Price, Qty, Side};
        use crate::order::record::{Lifecycle, OrderRecord};
        let account = Account::new(b"ACC-123456789").unwrap();
        let mut o = crate::order::Order::blank(SessionId(0), account);
        o.cl_ord_id = InlineStr::new(format!("C-{i}").as_bytes()).unwrap();
        o.symbol = InlineStr::new(b"AAPL").unwrap();
        o.side = Side::Buy;
        o.price = Some(Price::from_units(10));
        o.qty = Qty::from_units(5);
        o.order_id = i;
        o.received_at = Nanos(1_764_108_576_000_000_001 + i);
        let mut r = OrderRecord::new(Lifecycle::Fill, &o, Nanos(1_764_108_576_000_000_042 + i));
        r.last = Some((Qty::from_units(5), Price::from_units(10)));
        r.key_id = InlineStr::new(b"desk-1").unwrap();
        let names = crate::audit::records::Names {
            sessions: vec!["FIX.4.4:C1->GW".into()],
            venues: vec!["SIM".into()],
            routes: vec![],
        };
        from_order(&r, &names)
    }

    #[test]
    fn an_order_record_becomes_a_trail_record_with_its_ids_as_subjects_and_the_account_masked() {
        let e = order_entry(7);
        assert_eq!(e.kind, "order-fill");
        assert_eq!(e.actor, "key:desk-1");
        let subject: Vec<(&str, &str)> = e
            .subject
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            subject,
            [
                ("account", "*********6789"),
                ("cl_ord_id", "C-7"),
                ("key", "desk-1"),
                ("order_id", "7"),
                ("session", "FIX.4.4:C1->GW")
            ]
        );
        for k in [
            "symbol",
            "side",
            "last_qty",
            "last_px",
            "order_qty",
            "venue",
        ] {
            assert!(e.detail.contains_key(k), "{k}: {e:?}");
        }
        for k in [
            "event",
            "event_time",
            "api_key_id",
            "account",
            "session",
            "order_id",
        ] {
            assert!(!e.detail.contains_key(k), "{k}: {e:?}");
        }
        assert!(e.detail.values().all(|v| !v.is_empty()));
        assert!(!format!("{e:?}").contains("ACC-123456789"));
    }

    /// Records a second through the trail thread (queue, chain, JSON, file, checkpoints):
    /// measured and printed, not asserted (`cargo test --lib trail_throughput -- --nocapture`);
    /// what is asserted is that every record arrived, chained and signed.
    #[test]
    fn trail_throughput_is_measured_and_every_record_verifies() {
        const N: u64 = 30_000;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::embedded_default(dir.path());
        cfg.audit.queue_capacity = N as usize + 16;
        let entries: Vec<Entry> = (0..N).map(order_entry).collect();
        let trail = Trail::start(&cfg).unwrap().unwrap();
        let counters = Arc::new(Counters::default());
        let tx = trail.sender();
        tx.use_counters(&counters);
        let t0 = crate::clock::monotonic();
        for e in entries {
            assert!(tx.send(e));
        }
        while counters.get(Counter::AuditRecords) < N {
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = t0.elapsed();
        eprintln!(
            "trail throughput: {N} order records in {:.3} s = {:.0} records/s ({} checkpoints)",
            took.as_secs_f64(),
            N as f64 / took.as_secs_f64(),
            counters.get(Counter::AuditCheckpoints),
        );
        let rep = stop_and_verify(trail);
        let orders = rep.all.iter().filter(|l| l.record.kind == "order-fill");
        assert_eq!(orders.count() as u64, N);
    }

    /// Messages a second through the trail thread (ring, split, mask, chain, JSON, file):
    /// measured and printed, not asserted (`cargo test --release --lib message_throughput --
    /// --nocapture`); asserted: every message arrived, verified, masked.
    #[test]
    fn message_throughput_is_measured_and_every_message_verifies() {
        use crate::handoff::messages::Meta;
        const N: u64 = 30_000;
        fn fix(body: &str) -> Vec<u8> {
            let body = body.replace('|', "\x01");
            let mut m = format!("8=FIX.4.4\x019={}\x01{body}", body.len());
            let sum: u32 = m.bytes().map(u32::from).sum();
            m.push_str(&format!("10={:03}\x01", sum % 256));
            m.into_bytes()
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::embedded_default(dir.path());
        let trail = Trail::start(&cfg).unwrap().unwrap();
        let counters = Arc::new(Counters::default());
        let tx = trail.sender();
        tx.use_counters(&counters);
        let (mut ring, _) = tx
            .attach_messages(64 << 20, vec!["FIX.4.4:C1->GW".into()], Vec::new())
            .unwrap();
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
        let meta = |i: u64| Meta {
            at: Nanos(1_796_616_000_000_000_000 + i),
            session: Some(crate::model::SessionId(0)),
            venue: None,
            outbound: i % 2 == 1,
            sbe: false,
            peer,
        };
        let msgs: Vec<Vec<u8>> = (0..N)
            .map(|i| match i % 2 {
                0 => fix(&format!(
                    "35=D|34={i}|49=C1|52=20261207-04:00:00.000|56=GW|11=O{i}|1=ACC-123456789|\
                     55=AAPL|54=1|38=100|40=2|44=10.25|59=0|60=20261207-04:00:00.000"
                )),
                _ => fix(&format!(
                    "35=8|34={i}|49=GW|52=20261207-04:00:00.000|56=C1|37={i}|11=O{}|\
                     17={i}.1|150=0|39=0|1=ACC-123456789|55=AAPL|54=1|38=100|40=2|44=10.25|\
                     59=0|151=100|14=0|6=0|60=20261207-04:00:00.000123",
                    i - 1
                )),
            })
            .collect();
        let t0 = crate::clock::monotonic();
        for (i, m) in msgs.iter().enumerate() {
            assert!(ring.push(&meta(i as u64), m));
        }
        while counters.get(Counter::AuditRecords) < N {
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = t0.elapsed();
        eprintln!(
            "message throughput: {N} messages (NewOrderSingle and ExecutionReport, {} bytes \
             each on average) in {:.3} s = {:.0} records/s",
            msgs.iter().map(Vec::len).sum::<usize>() / N as usize,
            took.as_secs_f64(),
            N as f64 / took.as_secs_f64(),
        );
        let rep = stop_and_verify(trail);
        let got: Vec<&chain::Record> = rep
            .all
            .iter()
            .map(|l| &l.record)
            .filter(|r| r.kind.starts_with("fix-"))
            .collect();
        assert_eq!(got.len() as u64, N);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.kind, if i % 2 == 0 { "fix-in" } else { "fix-out" });
            assert_eq!(r.time_ns, 1_796_616_000_000_000_000 + i as u64);
            assert!(r.detail["message"].contains("|1=*********6789|"), "{r:?}");
        }
    }

    #[test]
    fn control_lines_name_the_operator() {
        let line = serde_json::json!({
            "seq": 7, "at": "x", "by": "alice", "peer": {"uid": 1000, "gid": 1000, "pid": 42},
            "reason": "drill", "request": {"op": "kill", "scope": "account", "name": "****CC1", "by": "alice"},
            "result": {"ok": true}
        });
        let e = from_control(&line);
        assert_eq!(e.kind, "control-kill");
        assert_eq!(e.actor, "operator:uid=1000,pid=42,by=alice");
        assert_eq!(e.subject["account"], "****CC1");
        assert_eq!(e.detail["control_seq"], "7");
    }
}
