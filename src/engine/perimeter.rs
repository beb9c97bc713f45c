//! HOT (cold paths of it) — connection hygiene: no client can starve another (issue 13).
//!
//! Owns the bookkeeping of connections that have not logged on yet (per source address and
//! oldest first), the TLS handshake budget and queue, the slow-consumer and silent-connection
//! checks, and the aggregated `ConnectionsShed` event. Everything here runs on the gateway
//! thread at accept, logon, close and timer time — never per order.
//!
//! # Rules
//! - At accept, a source address that already has `per_address_cap` connections not logged
//!   on loses its own oldest one to the newcomer (a flood cannot lock out a real client that
//!   shares its address); when `unauthenticated_cap` connections are not logged
//!   on (or no slot is free) the *oldest* of them is evicted for the newcomer. Logged-on
//!   sessions and venues never lose their slot to one that has not logged on.
//! - Before logon a connection has small buffers (`logon_buffer_bytes`); the full ones come
//!   when its session is bound.
//! - Client TLS handshake work (rustls `process_new_packets` inside a read) is metered: a token
//!   bucket of `tls_handshake_budget_us` per millisecond. A handshaking connection that becomes
//!   readable while the bucket is empty waits in a FIFO queue served on later duty cycles.
//! - One read pass (`on_readable`) takes at most [`READ_PASS_BUFFERS`] full receive buffers
//!   from a socket; a client that keeps sending is read again on the next duty cycle (its
//!   connection waits in a FIFO), so timers, other sessions and its own replies' flush run in
//!   between. Without this a client writing without pause kept the gateway thread in its read
//!   loop — no timer, no flush, no other session — for as long as it kept writing.
//! - A shed connection is counted at once; the event stream gets one `ConnectionsShed` summary
//!   a second at most.
//!
//! # Must never
//! Allocate on the order path: the maps and queues here are touched only by accept, bind,
//! close and timers (cold), and are preallocated for `max_connections`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::Engine;
use super::Settings;
use crate::handoff::Event;
use crate::model::{ConnId, Nanos, SessionId};
use crate::monitor::Counter;

/// Shed connections since the last `ConnectionsShed` event.
#[derive(Clone, Copy, Debug)]
struct ShedTally {
    refused_per_address: u32,
    evicted: u32,
    garbage: u32,
    peer: IpAddr,
}

impl ShedTally {
    const EMPTY: ShedTally = ShedTally {
        refused_per_address: 0,
        evicted: 0,
        garbage: 0,
        peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    fn is_empty(&self) -> bool {
        self.refused_per_address == 0 && self.evicted == 0 && self.garbage == 0
    }
}

/// At most one `ConnectionsShed` event this often.
const SHED_EVENT_EVERY: Nanos = Nanos::from_millis(1000);

/// The perimeter's state, owned by the engine.
pub(crate) struct Perimeter {
    per_address_cap: u32,
    unauthenticated_cap: usize,
    /// Per source address: its connections not logged on yet (entries at 0 are removed).
    pending_by_addr: HashMap<IpAddr, u32>,
    /// Connections not logged on yet, oldest first, as (slot, serial); entries whose
    /// connection logged on or closed are skipped when met.
    pending_fifo: VecDeque<(ConnId, u64)>,
    /// How many connections are not logged on yet.
    pending: usize,
    next_serial: u64,
    /// Bytes of buffers held by client connections (gauge `ConnectionBufferBytes`).
    buffer_bytes: u64,
    shed: ShedTally,
    last_shed_event: Nanos,
    /// Handshaking TLS connections waiting for the budget, oldest first.
    tls_queue: VecDeque<ConnId>,
    /// Handshake budget left, ns of gateway-thread time (negative: overspent).
    tls_tokens_ns: i64,
    tls_refilled_at: Nanos,
    /// Refill: ns of handshake time per ns of wall time, in thousandths (budget µs per ms).
    tls_budget_per_mille: i64,
    /// Connections whose read pass stopped at `READ_PASS_BUFFERS` full buffers, oldest first.
    deferred_reads: VecDeque<ConnId>,
    /// Source addresses blocked by the intrusion response (src/ids), until when (UTC).
    blocks: BlockTable,
}

/// Most addresses blocked at once; a block beyond it replaces the one ending soonest.
pub(crate) const MAX_BLOCKS: usize = 64;

/// A fixed-size table of blocked source addresses (no allocation after start). Checked at
/// accept only; expired entries are dropped when met.
pub(crate) struct BlockTable {
    slots: [Option<(IpAddr, Nanos)>; MAX_BLOCKS],
}

impl BlockTable {
    pub(crate) const fn new() -> BlockTable {
        BlockTable {
            slots: [None; MAX_BLOCKS],
        }
    }

    /// Blocks `ip` until `until` (replaces its earlier block). A full table gives up the
    /// entry ending soonest.
    pub(crate) fn block(&mut self, ip: IpAddr, until: Nanos, now: Nanos) {
        self.expire(now);
        if let Some(slot) = self.slots.iter_mut().flatten().find(|(a, _)| *a == ip) {
            slot.1 = until;
            return;
        }
        let free = self.slots.iter().position(Option::is_none).or_else(|| {
            (0..MAX_BLOCKS).min_by_key(|&i| self.slots.get(i).copied().flatten().map(|(_, u)| u))
        });
        if let Some(slot) = free.and_then(|i| self.slots.get_mut(i)) {
            *slot = Some((ip, until));
        }
    }

    /// Lifts the block on `ip`; whether there was one.
    pub(crate) fn unblock(&mut self, ip: IpAddr) -> bool {
        let mut was = false;
        for slot in &mut self.slots {
            if slot.is_some_and(|(a, _)| a == ip) {
                *slot = None;
                was = true;
            }
        }
        was
    }

    /// Whether `ip` is blocked at `now`.
    pub(crate) fn is_blocked(&mut self, ip: IpAddr, now: Nanos) -> bool {
        self.expire(now);
        self.slots.iter().flatten().any(|(a, _)| *a == ip)
    }

    fn expire(&mut self, now: Nanos) {
        for slot in &mut self.slots {
            if slot.is_some_and(|(_, until)| until <= now) {
                *slot = None;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

impl Perimeter {
    pub(crate) fn new(gw: &Settings) -> Perimeter {
        let budget = gw.tls_handshake_budget_us as i64;
        Perimeter {
            per_address_cap: gw.per_address_cap as u32,
            unauthenticated_cap: gw.unauthenticated_cap,
            pending_by_addr: HashMap::with_capacity(gw.unauthenticated_cap + 1),
            pending_fifo: VecDeque::with_capacity(2 * gw.max_connections),
            pending: 0,
            next_serial: 0,
            buffer_bytes: 0,
            shed: ShedTally::EMPTY,
            last_shed_event: Nanos::ZERO,
            tls_queue: VecDeque::with_capacity(gw.max_connections),
            tls_tokens_ns: budget * 1000,
            tls_refilled_at: Nanos::ZERO,
            tls_budget_per_mille: budget,
            deferred_reads: VecDeque::with_capacity(gw.max_connections),
            blocks: BlockTable::new(),
        }
    }
}

/// Full receive buffers one read pass takes from a socket before the connection waits for the
/// next duty cycle (4 × 64 KiB: ~1,000 orders).
pub(crate) const READ_PASS_BUFFERS: u32 = 4;

/// What [`Engine::admit`] decided for a new client connection.
pub(crate) enum Admission {
    /// Take it: its serial number.
    Admit(u64),
    /// Close it at once (its address is at its limit, or no slot could be freed).
    Refuse,
}

impl Engine {
    /// Admission of a client connection from `ip` at accept (cold). Evicts the oldest
    /// connection not logged on when the cap is reached or no slot is free.
    #[cold]
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Nanos) -> Admission {
        let blocked = self.perimeter.blocks.is_blocked(ip, now);
        // The gauge follows expiries too (checked here and at each block change).
        self.counters
            .set(Counter::AddressBlocks, self.perimeter.blocks.len() as u64);
        if blocked {
            // Blocked by the intrusion response (src/ids): closed at once, nothing read.
            self.counters.inc(Counter::BlockedConnections);
            return Admission::Refuse;
        }
        let p = &mut self.perimeter;
        if p.pending_by_addr.get(&ip).copied().unwrap_or(0) >= p.per_address_cap {
            // The address is at its limit: its own oldest connection not logged on makes room.
            // Refusing the newcomer instead would let a flood that keeps its connections
            // fresh lock out a real client behind the same address (a NAT, a shared host).
            self.counters.inc(Counter::ConnectionsRefusedPerAddress);
            p.shed.refused_per_address = p.shed.refused_per_address.saturating_add(1);
            p.shed.peer = ip;
            if !self.evict_oldest_pending_of(ip, now) {
                self.counters.inc(Counter::ConnectionsRefused);
                return Admission::Refuse;
            }
        }
        let p = &mut self.perimeter;
        if p.pending >= p.unauthenticated_cap {
            self.evict_oldest_pending(now);
        }
        if !self.conns.has_free() && !self.evict_oldest_pending(now) {
            self.counters.inc(Counter::ConnectionsRefused);
            return Admission::Refuse;
        }
        let p = &mut self.perimeter;
        p.next_serial += 1;
        let serial = p.next_serial;
        *p.pending_by_addr.entry(ip).or_insert(0) += 1;
        p.pending += 1;
        Admission::Admit(serial)
    }

    /// `Command::BlockAddress` (intrusion response): new connections from `ip` are closed at
    /// accept until `until`.
    #[cold]
    pub(crate) fn block_address(&mut self, ip: IpAddr, until: Nanos, now: Nanos) {
        self.perimeter.blocks.block(ip, until, now);
        self.counters
            .set(Counter::AddressBlocks, self.perimeter.blocks.len() as u64);
    }

    /// `Command::Unblock` (`portcullis ctl unblock`).
    #[cold]
    pub(crate) fn unblock_address(&mut self, ip: IpAddr, now: Nanos) {
        self.perimeter.blocks.unblock(ip);
        self.perimeter.blocks.expire(now);
        self.counters
            .set(Counter::AddressBlocks, self.perimeter.blocks.len() as u64);
    }

    /// Records that client connection `c` (serial `serial`, `bytes` of buffers) is in its slot.
    #[cold]
    pub(crate) fn admitted(&mut self, c: ConnId, serial: u64, bytes: usize) {
        let p = &mut self.perimeter;
        if p.pending_fifo.len() == p.pending_fifo.capacity() {
            // Drop the entries of connections that logged on or closed since.
            let conns = &self.conns;
            p.pending_fifo.retain(|&(c, serial)| {
                conns
                    .get(c)
                    .is_some_and(|conn| conn.serial == serial && conn.session.is_none())
            });
        }
        p.pending_fifo.push_back((c, serial));
        self.buffer_gauge(bytes as i64);
    }

    /// Closes the oldest connection that has not logged on; false if there is none.
    #[cold]
    fn evict_oldest_pending(&mut self, now: Nanos) -> bool {
        while let Some((c, serial)) = self.perimeter.pending_fifo.pop_front() {
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            if conn.serial != serial || conn.session.is_some() || conn.venue.is_some() {
                continue;
            }
            conn.dead = true;
            let ip = conn.peer.ip();
            self.counters.inc(Counter::UnauthenticatedEvicted);
            let p = &mut self.perimeter;
            p.shed.evicted = p.shed.evicted.saturating_add(1);
            p.shed.peer = ip;
            self.close(c, now, "evicted: oldest connection not logged on");
            return true;
        }
        false
    }

    /// Closes the oldest connection from `ip` that has not logged on; false if there is none.
    /// Scans the FIFO (at most `max_unauthenticated` entries; accept time only), dropping
    /// entries of connections that logged on or closed since.
    #[cold]
    fn evict_oldest_pending_of(&mut self, ip: IpAddr, now: Nanos) -> bool {
        let mut i = 0;
        while let Some(&(c, serial)) = self.perimeter.pending_fifo.get(i) {
            let peer = self
                .conns
                .get(c)
                .filter(|conn| {
                    conn.serial == serial && conn.session.is_none() && conn.venue.is_none()
                })
                .map(|conn| conn.peer.ip());
            match peer {
                None => {
                    self.perimeter.pending_fifo.remove(i);
                }
                Some(p) if p == ip => {
                    self.perimeter.pending_fifo.remove(i);
                    if let Some(conn) = self.conns.get_mut(c) {
                        conn.dead = true;
                    }
                    self.close(
                        c,
                        now,
                        "evicted: oldest connection not logged on from its address",
                    );
                    return true;
                }
                Some(_) => i += 1,
            }
        }
        false
    }

    /// A connection from `ip` stopped being "not logged on" (bound to a session, or closed
    /// before that).
    #[cold]
    pub(crate) fn pending_done(&mut self, ip: IpAddr) {
        let p = &mut self.perimeter;
        p.pending = p.pending.saturating_sub(1);
        if let Some(n) = p.pending_by_addr.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.pending_by_addr.remove(&ip);
            }
        }
    }

    /// Connection `c` was just bound to its session: it stops counting as not logged on and
    /// gets the full send buffer (the receive buffer grows in `process_input`, which holds it
    /// while a message is dispatched).
    #[cold]
    pub(crate) fn on_bound(&mut self, c: ConnId) {
        let send = self.gw.send_buffer_bytes;
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        let before = conn.buffer_bytes();
        conn.out.grow(send);
        let grown = conn.buffer_bytes() as i64 - before as i64;
        let ip = conn.peer.ip();
        self.buffer_gauge(grown);
        self.pending_done(ip);
    }

    /// The receive buffer of a bound connection grows to `recv_buffer_bytes` (once).
    #[cold]
    pub(crate) fn grow_inbuf(&mut self, c: ConnId) {
        let (recv, send) = (self.gw.recv_buffer_bytes, self.gw.send_buffer_bytes);
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        let before = conn.buffer_bytes();
        conn.grow_buffers(recv, send);
        let grown = conn.buffer_bytes() as i64 - before as i64;
        self.buffer_gauge(grown);
    }

    /// Adds `delta` to the buffer gauge.
    pub(crate) fn buffer_gauge(&mut self, delta: i64) {
        let p = &mut self.perimeter;
        p.buffer_bytes = p.buffer_bytes.saturating_add_signed(delta);
        self.counters
            .set(Counter::ConnectionBufferBytes, p.buffer_bytes);
    }

    /// Before logon, connection `c` sent garbage (too many bytes outside a FIX frame, or a
    /// garbled frame): closed at once.
    #[cold]
    pub(crate) fn shed_garbage(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        conn.dead = true;
        let ip = conn.peer.ip();
        self.counters.inc(Counter::GarbledMessages);
        self.counters.inc(Counter::PreLogonGarbageCloses);
        let p = &mut self.perimeter;
        p.shed.garbage = p.shed.garbage.saturating_add(1);
        p.shed.peer = ip;
    }

    /// A connection that sent nothing within `silent_timeout_ms` is closed (timers).
    #[cold]
    pub(crate) fn shed_silent(&mut self, c: ConnId, now: Nanos) {
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        conn.dead = true;
        let ip = conn.peer.ip();
        self.counters.inc(Counter::LogonTimeouts);
        let p = &mut self.perimeter;
        p.shed.garbage = p.shed.garbage.saturating_add(1);
        p.shed.peer = ip;
        self.close(c, now, "sent nothing within the silent timeout");
    }

    /// Timers: the `ConnectionsShed` summary, at most once a second.
    #[cold]
    pub(crate) fn report_shed(&mut self, now: Nanos) {
        let p = &mut self.perimeter;
        if p.shed.is_empty() || now.saturating_sub(p.last_shed_event) < SHED_EVENT_EVERY {
            return;
        }
        let t = p.shed;
        p.shed = ShedTally::EMPTY;
        p.last_shed_event = now;
        self.emit(Event::ConnectionsShed {
            refused_per_address: t.refused_per_address,
            evicted: t.evicted,
            garbage: t.garbage,
            peer: t.peer,
            at: now,
        });
    }

    /// Timers: session `s` on connection `c` — its send buffer has stayed above ¾ full for
    /// `slow_consumer_ms`? Then it is disconnected (cancel-on-disconnect applies in `close`).
    /// Returns true when it was.
    #[cold]
    pub(crate) fn check_slow_consumer(&mut self, c: ConnId, s: SessionId, now: Nanos) -> bool {
        let limit = Nanos::from_millis(self.gw.slow_consumer_ms);
        let Some(conn) = self.conns.get_mut(c) else {
            return false;
        };
        let (pending, cap) = (conn.out.pending().len(), conn.out.capacity());
        if pending.saturating_mul(4) >= cap.saturating_mul(3) {
            if conn.backlog_since == Nanos::ZERO {
                conn.backlog_since = now;
                return false;
            }
            if now.saturating_sub(conn.backlog_since) < limit {
                return false;
            }
        } else {
            if pending.saturating_mul(2) < cap {
                conn.backlog_since = Nanos::ZERO;
            }
            return false;
        }
        conn.dead = true;
        self.counters.inc(Counter::SlowConsumerDisconnects);
        self.emit(Event::SlowConsumer {
            session: s,
            pending_bytes: pending.min(u32::MAX as usize) as u32,
            at: now,
        });
        self.close(c, now, "slow consumer: send buffer full");
        true
    }

    /// Queues TLS handshake work of connection `c` for the budget (no-op if queued).
    #[cold]
    pub(crate) fn queue_handshake(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        if !conn.tls_queued {
            conn.tls_queued = true;
            self.perimeter.tls_queue.push_back(c);
        }
    }

    /// Whether readable connection `c` is a client TLS connection still handshaking, whose
    /// work goes through the budget.
    #[inline]
    pub(crate) fn handshaking_client(&self, c: ConnId) -> bool {
        self.conns.get(c).is_some_and(|conn| {
            conn.venue.is_none() && conn.tls.is_some() && !conn.tls_established()
        })
    }

    /// Serves queued TLS handshakes while the budget lasts. Returns how many were served.
    pub(crate) fn serve_handshakes(&mut self, now: Nanos) -> usize {
        if self.perimeter.tls_queue.is_empty() {
            return 0;
        }
        let p = &mut self.perimeter;
        let cap = p.tls_budget_per_mille * 1000;
        let elapsed = now.saturating_sub(p.tls_refilled_at).0.min(1 << 40) as i64;
        p.tls_tokens_ns = (p.tls_tokens_ns + elapsed * p.tls_budget_per_mille / 1000).min(cap);
        p.tls_refilled_at = now;
        let mut served = 0;
        while self.perimeter.tls_tokens_ns > 0 {
            let Some(c) = self.perimeter.tls_queue.pop_front() else {
                return served;
            };
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            if !conn.tls_queued {
                continue;
            }
            conn.tls_queued = false;
            let t0 = self.clock.now();
            self.on_readable(c, t0);
            let spent = self.clock.now().saturating_sub(t0).0.min(1 << 40) as i64;
            self.perimeter.tls_tokens_ns -= spent;
            served += 1;
        }
        if !self.perimeter.tls_queue.is_empty() {
            self.counters.inc(Counter::TlsHandshakesDeferred);
        }
        served
    }

    /// Connection `c` has more to read than one pass takes: read it again next duty cycle.
    pub(crate) fn defer_read(&mut self, c: ConnId) {
        let slots = self.conns.capacity();
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        // Each connection is queued once at most, so the queue never outgrows its capacity.
        if !conn.read_deferred && self.perimeter.deferred_reads.len() < slots {
            conn.read_deferred = true;
            self.perimeter.deferred_reads.push_back(c);
        }
    }

    /// One more read pass for each connection deferred before this duty cycle. Returns how
    /// many were read.
    pub(crate) fn serve_deferred_reads(&mut self, now: Nanos) -> usize {
        let n = self.perimeter.deferred_reads.len();
        for _ in 0..n {
            let Some(c) = self.perimeter.deferred_reads.pop_front() else {
                break;
            };
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            if !conn.read_deferred {
                continue;
            }
            conn.read_deferred = false;
            self.on_readable(c, now);
        }
        n
    }

    /// Connection `c` is closing: forget its queued handshake work.
    #[cold]
    pub(crate) fn forget_handshake(&mut self, c: ConnId) {
        self.perimeter.tls_queue.retain(|&q| q != c);
    }

    /// Connection `c` is closing: forget its deferred read.
    #[cold]
    pub(crate) fn forget_deferred_read(&mut self, c: ConnId) {
        self.perimeter.deferred_reads.retain(|&q| q != c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bound_unauthenticated_connections_below_the_slot_count() {
        let gw = crate::config::Gateway::default();
        let p = Perimeter::new(&Settings::from(&gw));
        assert_eq!(p.per_address_cap, 16);
        assert_eq!(p.unauthenticated_cap, 256);
        assert!(p.unauthenticated_cap < gw.max_connections);
        let small = crate::config::Gateway {
            max_connections: 20,
            ..crate::config::Gateway::default()
        };
        let p = Perimeter::new(&Settings::from(&small));
        assert_eq!(p.unauthenticated_cap, 10, "half the slots at most");
        assert_eq!(p.per_address_cap, 10);
    }

    #[test]
    fn shed_tally_starts_empty() {
        assert!(ShedTally::EMPTY.is_empty());
        let t = ShedTally {
            evicted: 1,
            ..ShedTally::EMPTY
        };
        assert!(!t.is_empty());
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn blocks_expire_lift_and_a_full_table_gives_up_the_soonest() {
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let mut t = BlockTable::new();
        t.block(a, Nanos(100), Nanos(0));
        assert!(t.is_blocked(a, Nanos(99)));
        assert!(!t.is_blocked(b, Nanos(99)));
        assert!(!t.is_blocked(a, Nanos(100)), "expired at `until`");
        assert_eq!(t.len(), 0);
        t.block(a, Nanos(1000), Nanos(0));
        t.block(a, Nanos(2000), Nanos(0));
        assert_eq!(
            t.len(),
            1,
            "a second block of one address replaces the first"
        );
        assert!(t.unblock(a));
        assert!(!t.is_blocked(a, Nanos(1)));
        for i in 0..MAX_BLOCKS as u8 {
            t.block(
                IpAddr::from([10, 0, 0, i]),
                Nanos(500 + u64::from(i)),
                Nanos(0),
            );
        }
        t.block(b, Nanos(9000), Nanos(0));
        assert_eq!(t.len(), MAX_BLOCKS);
        assert!(t.is_blocked(b, Nanos(1)));
        assert!(!t.is_blocked(IpAddr::from([10, 0, 0, 0]), Nanos(1)));
        assert!(t.is_blocked(IpAddr::from([10, 0, 0, 1]), Nanos(1)));
    }
}
