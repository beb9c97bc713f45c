//! BOUNDARY — the only memory shared between the gateway thread and cold threads.
//!
//! - [`EventRing`]: a bounded lock-free queue of fixed-size [`Event`]s from the hot thread to the
//!   journal thread. A full ring never blocks the hot thread: the event is counted as dropped
//!   (`EventRingFull`) and the journal thread reports the count.
//! - [`RecordRing`]: the same for order records (REG-1), which are much larger than events.
//! - [`Command`]s go the other way through a crossbeam channel that the hot thread polls with
//!   `try_recv` once per loop turn.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::model::{CompId, Nanos, OrderKey, SessionId};
use crate::order::record::OrderRecord;

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
    /// The clock's sync state, breach or halt changed (CLOCK-2); also the first reading at
    /// start. Emitted by the clock thread. `divergence_ns` is `u64::MAX` when unknown.
    ClockSync {
        state: crate::clock::SyncState,
        divergence_ns: u64,
        breach: bool,
        halted: bool,
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
#[derive(Debug)]
pub enum Command {
    /// Log every session out, flush the stores and stop the loop.
    Shutdown,
}

pub type CommandSender = crossbeam_channel::Sender<Command>;
pub type CommandReceiver = crossbeam_channel::Receiver<Command>;

/// A bounded command channel.
pub fn command_channel() -> (CommandSender, CommandReceiver) {
    crossbeam_channel::bounded(64)
}
