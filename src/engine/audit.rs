//! HOT — every FIX and SBE message in and out goes to the audit trail (MON-1): each inbound
//! frame is copied into the message ring before it is acted on, and each connection's new
//! output once per duty cycle, just before the socket write. One copy into preallocated memory
//! per record; the trail thread masks, renders and chains it (`src/trail/messages.rs`).
//!
//! A full ring refuses the record (counted, `AuditRingFull`). Under `audit.on_full =
//! "fail_closed"` it also lowers the trail's healthy flag before the message is acted on, so a
//! new order whose copy could not be kept is refused by the order desk; the trail raises the
//! flag once the ring is below half full and the loss is on record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::handoff::messages::{message_end, MessageWriter, Meta};
use crate::model::Nanos;
use crate::monitor::Counter;

use super::{ConnId, Engine};

/// The engine's end of the message ring.
pub struct MessageAudit {
    pub writer: MessageWriter,
    /// The trail's healthy flag, under `fail_closed` only (lowered on a refused record).
    pub fail_closed: Option<Arc<AtomicBool>>,
    /// Largest record: output beyond it is cut at message boundaries.
    pub max_record: usize,
    /// Messages of connections not logged on yet recorded per second, at most
    /// (`audit.prelogon_messages_per_second`).
    pub prelogon_per_second: u32,
    /// The second the budget is counted in, and what it used.
    pub prelogon_second: u64,
    pub prelogon_used: u32,
}

impl MessageAudit {
    pub fn new(
        writer: MessageWriter,
        fail_closed: Option<Arc<AtomicBool>>,
        ring_bytes: usize,
        prelogon_per_second: u32,
    ) -> MessageAudit {
        MessageAudit {
            writer,
            fail_closed,
            max_record: ring_bytes / 8,
            prelogon_per_second,
            prelogon_second: 0,
            prelogon_used: 0,
        }
    }

    /// One more message of a connection not logged on yet may be recorded in this second.
    fn prelogon_allowed(&mut self, now: Nanos) -> bool {
        let second = now.0 / 1_000_000_000;
        if second != self.prelogon_second {
            self.prelogon_second = second;
            self.prelogon_used = 0;
        }
        self.prelogon_used < self.prelogon_per_second && {
            self.prelogon_used += 1;
            true
        }
    }
}

impl Engine {
    fn meta(&self, c: ConnId, outbound: bool, now: Nanos) -> Option<Meta> {
        let conn = self.conns.get(c)?;
        Some(Meta {
            at: now,
            session: conn.session,
            venue: conn.venue,
            outbound,
            sbe: conn.sbe,
            peer: conn.peer,
        })
    }

    /// A record the ring refused: counted; a session's or venue link's (not a connection's
    /// before logon: an attacker's flood must not stop the sessions' trading) also lowers the
    /// trail's healthy flag under `fail_closed`.
    fn refused_record(&mut self, bound: bool) {
        self.counters.inc(Counter::AuditRingFull);
        if !bound {
            return;
        }
        if let Some(flag) = self.messages.as_ref().and_then(|m| m.fail_closed.as_ref()) {
            flag.store(false, Ordering::SeqCst);
        }
    }

    /// An inbound frame of connection `c`, before it is acted on.
    #[inline]
    pub(super) fn audit_in(&mut self, c: ConnId, bytes: &[u8], now: Nanos) {
        if self.messages.is_none() {
            return;
        }
        let Some(meta) = self.meta(c, false, now) else {
            return;
        };
        let bound = meta.bound();
        let Some(m) = self.messages.as_mut() else {
            return;
        };
        if !bound && !m.prelogon_allowed(now) {
            self.counters.inc(Counter::AuditPrelogonUnrecorded);
            return;
        }
        if !m.writer.push(&meta, bytes) {
            self.refused_record(bound);
        }
    }

    /// What connection `c` appended to its output since the last call, before it is written.
    /// Not inlined: once per connection per duty cycle, and callgrind can count it by name
    /// (`TOGGLE='*Engine>::audit_out' tools/peers/instructions.sh`).
    #[inline(never)]
    pub(super) fn audit_out(&mut self, c: ConnId, now: Nanos) {
        if self.messages.is_none() {
            return;
        }
        let Some(meta) = self.meta(c, true, now) else {
            return;
        };
        let (Some(m), Some(conn)) = (self.messages.as_mut(), self.conns.get_mut(c)) else {
            return;
        };
        let mut refused = 0u32;
        let mut bytes = conn.out.unaudited();
        while !bytes.is_empty() {
            // Usually one record: a duty cycle's answers on one connection are small. A burst
            // (a resend) is cut at message boundaries into records the ring can hold.
            let mut take = bytes.len();
            if take > m.max_record {
                take = 0;
                while let Some(n) = bytes.get(take..).and_then(|b| message_end(b, meta.sbe)) {
                    if take > 0 && take + n > m.max_record {
                        break;
                    }
                    take += n;
                }
                if take == 0 {
                    take = bytes.len();
                }
            }
            let (now_bytes, rest) = bytes.split_at(take);
            if !m.writer.push(&meta, now_bytes) {
                refused += 1;
            }
            bytes = rest;
        }
        conn.out.mark_audited();
        let bound = meta.bound();
        for _ in 0..refused {
            self.refused_record(bound);
        }
    }
}
