//! HOT — the order desk: every client order from its first instruction to its last report,
//! without any protocol. It owns the order table, routing, pre-trade risk, the venue side of
//! each order (the in-process simulator's book, and the order state that external venues
//! answer about), the order journal and the order records (REG-1).
//!
//! Inputs are protocol-neutral intents — a new order already read into an [`Order`], a cancel,
//! a replace, a status or mass-cancel request — each with the session it came from (whose
//! authenticated principal, [`DeskSession::grants`], the desk keeps), and venue events, each
//! with the duty cycle's `now`. Outputs go to an [`Outbox`] the caller passes in: reports for
//! clients (execution reports, cancel/replace refusals, mass-cancel reports) and requests for
//! external venues. The desk knows no tags, sockets or sessions; the shell (`engine`) translates
//! FIX (and SBE) messages into intents and the outbox calls into wire messages. So one desk
//! serves every protocol and an order over either shares one credit limit, one record and one
//! drop copy; and the desk's unit tests drive it with no socket.
//!
//! # Structure
//! - `orders.rs`: new, cancel, replace, status, mass cancel, cancel-on-disconnect; venue answers.
//! - `venue.rs`: requests to venues (the simulator answers at once), pending reports,
//!   reconnect reconciliation.
//! - `risk.rs`: the desk's side of pre-trade risk and the control requests (kill, limits...).
//! - `records.rs`: timestamps of every order event (RTS 25) and the order records (REG-1).
//! - `report.rs`: what a report carries.
//!
//! Nothing here allocates per order; the tables are sized at construction.

pub mod orders;
pub mod records;
pub mod report;
pub mod risk;
#[cfg(test)]
mod tests;
pub mod venue;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::auth::Grants;
use crate::clock::{Clock, ClockStatus};
use crate::fix::ReplyRouting;
use crate::handoff::{Event, EventRing, RecordRing};
use crate::model::{Nanos, OrderKey, SessionId};
use crate::monitor::{Counter, Counters};
use crate::order::journal::Journal;
use crate::order::{Order, OrderTable};
use crate::route::{Router, VenueName};
use crate::venue::sim::SimVenue;
use crate::venue::VenueEvent;

pub use orders::{blank_order, Denied, ReplaceIntent};
pub use report::{cxl_rej_reason, ord_rej_reason, CancelRejectTo, Exec};
pub use venue::{VenueRequest, VenueSend, VenueStatus};

/// What the desk keeps about each configured client session: who is logged on with it.
pub struct DeskSession {
    /// Stable number of the session in the journal (survives reordering of the config).
    pub tag: u64,
    /// What the session's authenticated key allows (scopes, accounts, symbols, throttle). The
    /// shell sets it at logon and when the key store changes.
    pub grants: Grants,
    /// Kill switch of this session's key: new orders and replaces refused.
    pub killed: bool,
}

/// A venue as the desk sees it.
pub struct DeskVenue {
    pub name: VenueName,
    /// Orders are refused while a venue is down.
    pub up: bool,
    /// The in-process simulator (sans-IO: it answers at once); `None` for an external venue,
    /// whose link the shell owns and reaches through [`Outbox::venue`].
    pub sim: Option<Box<SimVenue>>,
}

/// A report's extra context the protocol layer keeps per order (FIX: the routing header fields
/// of the latest instruction, swapped for the answer). Opaque to the desk: it stores and hands
/// it back.
pub type ReplyContext = ReplyRouting;

/// Where the desk's answers go. The shell implements it per protocol; unit tests collect.
pub trait Outbox {
    /// The reply context of the instruction being processed, kept with its order.
    fn context(&self) -> Option<ReplyContext>;
    /// An execution report about `order` for its session (and, when `copy`, the drop copies of
    /// its account, as far as their principals may read it). `orders` is there to look up the
    /// order's stored reply context.
    fn exec(
        &mut self,
        orders: &OrderTable,
        principals: &[DeskSession],
        order: &Order,
        e: &Exec<'_>,
        copy: bool,
        now: Nanos,
    );
    /// A cancel or replace refused. `order` is `None` when the order is unknown (or not the
    /// session's to see).
    #[allow(clippy::too_many_arguments)]
    fn cancel_reject(
        &mut self,
        orders: &OrderTable,
        session: SessionId,
        order: Option<&Order>,
        cl: &[u8],
        orig: &[u8],
        to: CancelRejectTo,
        reason: u32,
        text: &[u8],
        now: Nanos,
    );
    /// The answer to a mass cancel request.
    fn mass_cancel_report(&mut self, session: SessionId, r: &MassCancelReport<'_>, now: Nanos);
    /// Writes `req` about order `key` for external venue `venue` (`n`: the request's number for
    /// the order). [`VenueSend::Down`] when the venue cannot take it now (not connected).
    fn venue(
        &mut self,
        venue: crate::model::VenueId,
        key: OrderKey,
        order: &Order,
        n: u32,
        req: VenueRequest,
        now: Nanos,
    ) -> VenueSend;
}

/// An OrderMassCancelReport's content.
#[derive(Clone, Copy, Debug)]
pub struct MassCancelReport<'a> {
    pub cl_ord_id: &'a [u8],
    pub report_id: u64,
    /// 1: by symbol, 7: all orders (MassCancelRequestType <530>).
    pub request_type: u8,
    pub accepted: bool,
    pub affected: u64,
    pub text: Option<&'a [u8]>,
}

/// What the desk is built from (the gateway's builder assembles it).
pub struct DeskParts {
    pub orders: OrderTable,
    pub journal: Journal,
    pub venues: Vec<DeskVenue>,
    pub router: Router,
    pub risk: crate::risk::RiskCore,
    pub sessions: Vec<DeskSession>,
    pub clock: Clock,
    pub counters: Arc<Counters>,
    pub events: EventRing,
    pub records: RecordRing,
    pub clock_status: Arc<ClockStatus>,
    /// Text <58> of the clock-halt refusal.
    pub clock_halt_text: &'static [u8],
    /// The audit trail keeps up (`audit.on_full = "fail_closed"`): while `false`, new orders
    /// and replaces are refused. `None`: no trail, or one that drops instead.
    pub audit_healthy: Option<Arc<AtomicBool>>,
}

/// The order desk. See the module documentation.
pub struct OrderDesk {
    pub(crate) orders: OrderTable,
    pub(crate) journal: Journal,
    pub(crate) venues: Vec<DeskVenue>,
    pub(crate) router: Router,
    /// Pre-trade risk state of every configured account (RISK-1/2).
    pub(crate) risk: crate::risk::RiskCore,
    pub(crate) sessions: Vec<DeskSession>,
    clock: Clock,
    pub(crate) counters: Arc<Counters>,
    ring: EventRing,
    /// REG-1 order records out.
    records: RecordRing,
    /// CLOCK-2: its halt flag is read once per new order.
    clock_status: Arc<ClockStatus>,
    clock_halt_text: &'static [u8],
    audit_healthy: Option<Arc<AtomicBool>>,
    /// Answers of the simulator to one request.
    venue_events: Vec<VenueEvent>,
    /// Scratch list of order keys (mass cancel, kill, cancel-on-disconnect).
    keys: Vec<OrderKey>,
    /// Orders changed by the current batch of venue answers, journaled at its end.
    journal_keys: Vec<OrderKey>,
    mass_report_id: u64,
    /// Refusals before routing, numbering their ExecIDs (`NONE.<n>`); starts from the clock so
    /// numbers do not repeat across restarts.
    refusals: u64,
}

impl OrderDesk {
    /// Builds the desk; `now` seeds the report numbering. Cold: allocates the scratch lists.
    pub fn new(p: DeskParts, now: Nanos) -> OrderDesk {
        let capacity = p.orders.capacity();
        OrderDesk {
            orders: p.orders,
            journal: p.journal,
            venues: p.venues,
            router: p.router,
            risk: p.risk,
            sessions: p.sessions,
            clock: p.clock,
            counters: p.counters,
            ring: p.events,
            records: p.records,
            clock_status: p.clock_status,
            clock_halt_text: p.clock_halt_text,
            audit_healthy: p.audit_healthy,
            venue_events: Vec::with_capacity(1 << 16),
            keys: Vec::with_capacity(capacity),
            journal_keys: Vec::with_capacity(4096),
            mass_report_id: now.0 / 1000,
            refusals: (now.0 / 1_000_000_000) % 1_000_000 * 1000,
        }
    }

    /// The audit event stream (hot → journal thread); a full ring is counted.
    pub(crate) fn emit(&self, e: Event) {
        if !self.ring.push(e) {
            self.counters.inc(Counter::EventRingFull);
        }
    }

    pub fn orders(&self) -> &OrderTable {
        &self.orders
    }

    pub fn session(&self, s: SessionId) -> Option<&DeskSession> {
        self.sessions.get(s.index())
    }

    pub fn session_mut(&mut self, s: SessionId) -> Option<&mut DeskSession> {
        self.sessions.get_mut(s.index())
    }

    /// The grants of session `s` (scopes, accounts, symbols, throttle slot).
    pub fn grants(&self, s: SessionId) -> Option<&Grants> {
        self.sessions.get(s.index()).map(|d| &d.grants)
    }

    pub fn venue(&self, v: u16) -> Option<&DeskVenue> {
        self.venues.get(usize::from(v))
    }

    pub fn venue_count(&self) -> usize {
        self.venues.len()
    }

    /// `audit.on_full = "fail_closed"` and the audit trail is losing records: the refusal text.
    /// One load per new order or replace.
    #[inline]
    pub(crate) fn audit_halted(&self) -> Option<&'static [u8]> {
        match &self.audit_healthy {
            Some(ok) if !ok.load(Ordering::Acquire) => {
                self.counters.inc(Counter::AuditHaltRejects);
                Some(b"audit trail unavailable: no new orders until it catches up")
            }
            _ => None,
        }
    }

    /// Orders open now.
    pub fn open_orders(&self) -> usize {
        self.orders.open_count()
    }

    /// Flushes the journal (shutdown).
    pub fn flush_journal(&mut self) {
        let _ = self.journal.flush();
    }
}
