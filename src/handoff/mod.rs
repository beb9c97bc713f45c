//! BOUNDARY — the only memory shared between the gateway thread and cold threads.
//!
//! - [`EventRing`]: a bounded lock-free queue of fixed-size [`Event`]s from the hot thread to the
//!   journal thread. A full ring never blocks the hot thread: the event is counted as dropped
//!   (`EventRingFull`) and the journal thread reports the count.
//! - [`Command`]s go the other way through a crossbeam channel that the hot thread polls with
//!   `try_recv` once per loop turn.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::model::{CompId, InlineStr, Nanos, OrderKey, SessionId};

/// An API key id inside an event (inline, no heap).
pub type KeyIdStr = InlineStr<32>;

/// Something the cold side should know about (journal, audit, monitoring).
#[derive(Clone, Copy, Debug)]
pub enum Event {
    LoggedOn {
        session: SessionId,
        at: Nanos,
    },
    LogonRefused {
        their_comp_id: CompId,
        reason: &'static str,
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
        venue: u16,
        at: Nanos,
    },
    VenueDown {
        venue: u16,
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
    /// A Logon refused by authentication: the exact cause (the client saw only "authentication
    /// failed"). `key_id` is what Username(553) named, empty if absent or too long.
    AuthFailed {
        /// The session the Logon's CompIDs named (auth runs after the session is found).
        session: SessionId,
        key_id: KeyIdStr,
        peer: std::net::IpAddr,
        cause: &'static str,
        at: Nanos,
    },
    /// Too many failed logons: the key (`key = true`) or the source address is locked out.
    AuthLockout {
        key_id: KeyIdStr,
        peer: std::net::IpAddr,
        key: bool,
        at: Nanos,
    },
    /// A signed Logon verified: the session is bound to the key.
    Authenticated {
        session: SessionId,
        key_id: KeyIdStr,
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

/// Cold → hot commands.
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
        // Every event is copied into the ring on the gateway thread; keep the largest variant
        // (AuthFailed: key id inline, peer address) within 80 bytes.
        assert!(
            std::mem::size_of::<Event>() <= 80,
            "{}",
            std::mem::size_of::<Event>()
        );
    }
}
