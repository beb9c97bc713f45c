//! BOUNDARY — the only memory shared between the gateway thread and cold threads.
//!
//! - [`EventRing`]: a bounded lock-free queue of fixed-size [`Event`]s from the hot thread to the
//!   journal thread. A full ring never blocks the hot thread: the event is counted as dropped
//!   (`EventRingFull`) and the journal thread reports the count.
//! - [`RecordRing`]: the same for order records (REG-1), which are much larger than events.
//! - [`messages`]: every FIX/SBE message in and out, as variable-length records, for the audit
//!   trail (a single-producer ring of words; full → refused and counted).
//! - [`Command`]s go the other way through a crossbeam channel that the hot thread polls with
//!   `try_recv` once per loop turn.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::model::{Account, CompId, InlineStr, Nanos, OrderKey, SessionId};
use crate::order::record::OrderRecord;

/// An API key id inside an event (inline, no heap).
pub type KeyIdStr = InlineStr<32>;

pub mod control;
pub mod messages;
pub use control::{ControlCall, ControlReply, ControlRequest, KillTarget, SessionView, VenueView};

/// Why a first message or Logon was refused outside authentication (one byte in the event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogonRefusal {
    NotLogon,
    NoSession,
    AlreadyConnected,
    CertificateKey,
    CertificateSubject,
    SessionLayer,
}

impl LogonRefusal {
    pub fn text(self) -> &'static str {
        match self {
            LogonRefusal::NotLogon => "first message is not a Logon",
            LogonRefusal::NoSession => "no session configured for these CompIDs and BeginString",
            LogonRefusal::AlreadyConnected => "session already logged on from another connection",
            LogonRefusal::CertificateKey => {
                "client certificate does not match the session's certificate binding"
            }
            LogonRefusal::CertificateSubject => {
                "client certificate subject does not match the session's binding"
            }
            LogonRefusal::SessionLayer => "logon refused by the session layer",
        }
    }
}

/// Something the cold side should know about (journal, audit, monitoring).
#[derive(Clone, Copy, Debug)]
pub enum Event {
    LoggedOn {
        session: SessionId,
        /// The source address (geographic anomalies, src/ids/geo.rs).
        peer: std::net::IpAddr,
        at: Nanos,
    },
    /// A Logon refused before or besides authentication (no session for its CompIDs, session
    /// already connected, certificate binding, session layer). The client got nothing.
    LogonRefused {
        their_comp_id: CompId,
        /// What Username(553) named, empty if absent or too long.
        key_id: KeyIdStr,
        peer: std::net::IpAddr,
        reason: LogonRefusal,
        at: Nanos,
    },
    Disconnected {
        session: SessionId,
        reason: &'static str,
        at: Nanos,
    },
    OrderRejected {
        session: SessionId,
        reason: &'static str,
        at: Nanos,
    },
    /// The first throttle refusal of a streak (one event per streak, not per message).
    Throttled {
        session: SessionId,
        limit: &'static str,
        at: Nanos,
    },
    CanceledOnDisconnect {
        session: SessionId,
        orders: u32,
        at: Nanos,
    },
    VenueUp {
        venue: crate::model::VenueId,
        at: Nanos,
    },
    VenueDown {
        venue: crate::model::VenueId,
        reason: &'static str,
        at: Nanos,
    },
    JournalError {
        key: OrderKey,
        at: Nanos,
    },
    /// A TLS listener's certificate was reloaded (new connections use it).
    TlsReloaded {
        listener: u16,
        days_left: i32,
        at: Nanos,
    },
    /// A TLS listener's certificate expires within `gateway.tls_expiry_warn_days`.
    CertExpiring {
        listener: u16,
        days_left: i32,
        at: Nanos,
    },
    /// A Logon refused by authentication: the exact cause (the client got nothing). `key_id` is
    /// what Username(553) named, empty if absent or too long.
    AuthFailed {
        /// The session the Logon's CompIDs named (auth runs after the session is found).
        session: SessionId,
        key_id: KeyIdStr,
        peer: std::net::IpAddr,
        cause: &'static str,
        at: Nanos,
    },
    /// Too many failed logons: the key at the source address (`key = true`, wrong signatures)
    /// or the source address (any failure) is locked out until `until`. `generation`: the
    /// unlock generation it was taken under (persisted, see `audit::lockouts`).
    AuthLockout {
        key_id: KeyIdStr,
        peer: std::net::IpAddr,
        key: bool,
        until: Nanos,
        generation: u64,
        at: Nanos,
    },
    /// A signed Logon verified: the session is bound to the key.
    Authenticated {
        session: SessionId,
        key_id: KeyIdStr,
        /// SHA-256 of the accepted signature and when it leaves the skew window: the replay
        /// cache entry, persisted so a restart cannot reopen it (never the signature itself).
        replay: [u8; 32],
        replay_until: Nanos,
        at: Nanos,
    },
    /// A logged-on session was logged out because its key was revoked or expired.
    CredentialLogout {
        session: SessionId,
        key_id: KeyIdStr,
        cause: &'static str,
        at: Nanos,
    },
    /// A message outside the session key's permissions was refused.
    PermissionDenied {
        session: SessionId,
        permission: &'static str,
        at: Nanos,
    },
    /// A pre-trade risk check refused a new order or a replace.
    RiskRejected {
        session: SessionId,
        account: Account,
        reason: crate::risk::Reason,
        at: Nanos,
    },
    /// A kill switch was set (`on`) or released; `orders` open orders were sent cancels.
    /// `seq` matches the control audit record (0: not from a control request).
    Kill {
        target: KillTarget,
        on: bool,
        orders: u32,
        seq: u64,
        at: Nanos,
    },
    /// An account's limits changed (a control request, or a temporary raise that expired).
    LimitsChanged {
        account: Account,
        /// The risk core's change number.
        change: u64,
        temporary: bool,
        expired: bool,
        seq: u64,
        at: Nanos,
    },
    /// An account disabled by the message rate limit was enabled again.
    AccountEnabled {
        account: Account,
        seq: u64,
        at: Nanos,
    },
    /// Reconciliation found an order at a venue that the gateway did not accept from a client:
    /// the account's kill switch is now on.
    ReconciliationMismatch {
        account: Account,
        venue: crate::model::VenueId,
        what: &'static str,
        at: Nanos,
    },
    /// Connections shed before logon since the previous such event (at most one a second, so a
    /// flood does not flood the ring): closed at accept over the per-address limit, evicted as
    /// the oldest not logged on, closed for garbage or silence. `peer` is the last one's address.
    ConnectionsShed {
        refused_per_address: u32,
        evicted: u32,
        garbage: u32,
        peer: std::net::IpAddr,
        at: Nanos,
    },
    /// A logged-on session disconnected because its send buffer stayed above ¾ full for
    /// `slow_consumer_ms` (the peer does not read).
    SlowConsumer {
        session: SessionId,
        pending_bytes: u32,
        at: Nanos,
    },
    /// The clock's sync state, breach or halt changed (CLOCK-2); also the first reading at
    /// start. Emitted by the clock thread. `divergence_ns` is `u64::MAX` when unknown.
    ClockSync {
        state: crate::clock::SyncState,
        divergence_ns: u64,
        breach: bool,
        halted: bool,
        at: Nanos,
    },
    /// A changed key store the watcher refused to apply (the running keys stay in force):
    /// an older generation than already seen (rollback), a file open to group or others, or
    /// one that does not decrypt or validate. Emitted by the key store watcher.
    KeyStoreRefused {
        cause: &'static str,
        /// The refused store's generation (rollback), `u64::MAX` when unknown.
        generation: u64,
        /// The newest generation seen before.
        newest: u64,
        at: Nanos,
    },
    /// A key nears (`days_left > 0`) or has reached its maximum age (AUTH-9): once per key per
    /// UTC day, and at start. Emitted by the key store watcher.
    KeyAging {
        key_id: KeyIdStr,
        age_days: u32,
        days_left: i32,
        at: Nanos,
    },
}

/// Hot → cold events.
#[derive(Clone)]
pub struct EventRing(Arc<ArrayQueue<Event>>);

impl EventRing {
    pub fn new(capacity: usize) -> EventRing {
        EventRing(Arc::new(ArrayQueue::new(capacity.max(1))))
    }
    /// `false` when the ring is full (the caller counts it).
    #[inline]
    pub fn push(&self, e: Event) -> bool {
        self.0.push(e).is_ok()
    }
    pub fn pop(&self) -> Option<Event> {
        self.0.pop()
    }
}

/// Hot → journal thread order records (REG-1): a ring of its own, because a record is a few
/// hundred bytes and most events are a few dozen. Full → the record is counted as lost
/// (`RecordRingFull`) and the journal thread writes the count to the event log.
#[derive(Clone)]
pub struct RecordRing(Arc<ArrayQueue<OrderRecord>>);

impl RecordRing {
    pub fn new(capacity: usize) -> RecordRing {
        RecordRing(Arc::new(ArrayQueue::new(capacity.max(1))))
    }
    /// `false` when the ring is full (the caller counts it).
    #[inline]
    pub fn push(&self, r: OrderRecord) -> bool {
        self.0.push(r).is_ok()
    }
    pub fn pop(&self) -> Option<OrderRecord> {
        self.0.pop()
    }
}

/// Cold → hot commands.
// Control requests are large next to Shutdown; kept inline (the bounded channel's slots are
// preallocated) rather than boxed, which would put a free on the gateway thread.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// Log every session out, flush the stores and stop the loop.
    Shutdown,
    /// New TLS server configuration for listener `listener` (built and validated on a cold
    /// thread): connections accepted from now on use it; established ones keep theirs.
    ReloadTls {
        listener: u16,
        config: std::sync::Arc<rustls::ServerConfig>,
    },
    /// A new key snapshot (the key store changed): swapped in between messages; sessions whose
    /// key is gone, revoked or expired are logged out.
    Keys(Arc<crate::auth::KeySnapshot>),
    /// A risk control action (kill, unkill, enable, limits, show), answered on `reply`.
    Control(ControlCall),
    /// Intrusion response (src/ids, `portcullis ctl block`): connections from `ip` are closed
    /// at accept until `until` (UTC); connections already open are not touched.
    BlockAddress { ip: std::net::IpAddr, until: Nanos },
    /// Lifts a block (`portcullis ctl unblock`).
    Unblock { ip: std::net::IpAddr },
}

pub type CommandSender = crossbeam_channel::Sender<Command>;
pub type CommandReceiver = crossbeam_channel::Receiver<Command>;

/// A bounded command channel.
pub fn command_channel() -> (CommandSender, CommandReceiver) {
    crossbeam_channel::bounded(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small() {
        // Every event is copied into the ring on the gateway thread; keep the largest variants
        // (AuthFailed: key id inline, peer address; RiskRejected: account inline and the
        // reason's limit and value) within 96 bytes, a cache line and a half.
        assert!(
            std::mem::size_of::<Event>() <= 96,
            "{}",
            std::mem::size_of::<Event>()
        );
    }
}
