//! HOT — application messages: NewOrderSingle <D>, OrderCancelRequest <F>,
//! OrderCancelReplaceRequest <G>, OrderStatusRequest <H>, OrderMassCancelRequest <q> in;
//! ExecutionReport <8>, OrderCancelReject <9>, OrderMassCancelReport <r>,
//! BusinessMessageReject <j> out; and the venues' answers.
//!
//! Every refusal answers at once with the FIX message a client expects and a Text naming the
//! problem; nothing here allocates (texts are static or composed in stack buffers).

use std::mem;

use super::exec::{self, cxl_rej_reason, CancelRejectTo, Exec};
use super::venues::VenueRequest;
use super::{Engine, VenueKind};
use crate::auth::Scopes;
use crate::fix::encode::write_u64;
use crate::fix::{tags, BeginString, Message, MsgType, ReplyRouting, ValueError};
use crate::handoff::Event;
use crate::model::{
    ExecType, Nanos, OrdStatus, OrdType, OrderIdStr, OrderKey, SessionId, Side, Symbol, TimeInForce,
};
use crate::monitor::Counter;
use crate::order::{Order, Pending, TableError};
use crate::risk::Reason as RiskReason;
use crate::throttle::{AbuseVerdict, Limit, MsgClass, Verdict as ThrottleVerdict};
use crate::venue::VenueEvent;

/// OrdRejReason <103> values we use.
mod ord_rej_reason {
    pub const BROKER_OPTION: u32 = 0;
    pub const UNKNOWN_SYMBOL: u32 = 1;
    pub const EXCHANGE_CLOSED: u32 = 2;
    pub const UNKNOWN_ORDER: u32 = 5;
    pub const DUPLICATE_ORDER: u32 = 6;
    pub const UNSUPPORTED_ORDER_CHARACTERISTIC: u32 = 11;
    pub const INCORRECT_QUANTITY: u32 = 13;
    pub const OTHER: u32 = 99;
}

/// BusinessRejectReason <380> values we use.
mod business_reject_reason {
    pub const UNSUPPORTED_MESSAGE_TYPE: u32 = 3;
    /// FIX 5.0 SP2 value, used by Portcullis on 4.2/4.4 sessions too (fix-specs).
    pub const THROTTLE_LIMIT_EXCEEDED: u32 = 8;
    pub const CONDITIONALLY_REQUIRED_FIELD_MISSING: u32 = 5;
    pub const NOT_AUTHORIZED: u32 = 6;
    pub const OTHER: u32 = 0;
    pub const APPLICATION_NOT_AVAILABLE: u32 = 4;
}

/// Why an order instruction was refused before it reached a venue.
#[derive(Clone, Copy, Debug)]
pub(super) struct Refusal {
    reason: u32,
    text: &'static [u8],
    tag: Option<i32>,
}

impl Refusal {
    #[cold]
    fn field(e: ValueError) -> Refusal {
        match e {
            ValueError::Missing(t) => Refusal {
                reason: ord_rej_reason::OTHER,
                text: b"required field missing: tag ",
                tag: Some(t),
            },
            ValueError::Empty(t) => Refusal {
                reason: ord_rej_reason::OTHER,
                text: b"field without a value: tag ",
                tag: Some(t),
            },
            ValueError::Format(t) => Refusal {
                reason: ord_rej_reason::OTHER,
                text: b"incorrect value format: tag ",
                tag: Some(t),
            },
        }
    }
    const fn new(reason: u32, text: &'static [u8]) -> Refusal {
        Refusal {
            reason,
            text,
            tag: None,
        }
    }
    /// Text <58>, with the tag number appended when one is at fault.
    fn render(&self, buf: &mut [u8; 96]) -> usize {
        let n = self.text.len().min(80);
        buf[..n].copy_from_slice(&self.text[..n]);
        match self.tag {
            Some(t) if t >= 0 => n + write_u64(&mut buf[n..], t as u64),
            _ => n,
        }
    }
}

/// A blank order of session `s`, to be filled from a message.
fn blank_order(s: usize, default_account: crate::model::Account) -> Order {
    Order {
        live: true,
        ..Order::blank(SessionId(s as u32), default_account)
    }
}

/// A required one-character field mapped by `parse`; `unsupported` says which values we take.
fn required_char<T>(
    msg: &Message<'_>,
    tag: i32,
    parse: fn(u8) -> Option<T>,
    unsupported: &'static [u8],
) -> Result<T, Refusal> {
    let c = msg
        .char(tag)
        .map_err(Refusal::field)?
        .ok_or(Refusal::field(ValueError::Missing(tag)))?;
    parse(c).ok_or(Refusal::new(
        ord_rej_reason::UNSUPPORTED_ORDER_CHARACTERISTIC,
        unsupported,
    ))
}

/// Reads the fields of a NewOrderSingle we act on into `o` (as far as they are valid).
pub(super) fn parse_new_order(msg: &Message<'_>, o: &mut Order) -> Result<(), Refusal> {
    // ClOrdID first: every other refusal needs it to be answered.
    let cl = msg.require(tags::CL_ORD_ID).map_err(Refusal::field)?;
    o.cl_ord_id = OrderIdStr::new(cl).ok_or(Refusal::new(
        ord_rej_reason::OTHER,
        b"ClOrdID longer than 40 characters",
    ))?;
    if let Some(a) = msg.get(tags::ACCOUNT) {
        o.account = crate::model::Account::new(a).ok_or(Refusal::new(
            ord_rej_reason::OTHER,
            b"Account longer than 24 characters",
        ))?;
    }
    o.symbol =
        Symbol::new(msg.require(tags::SYMBOL).map_err(Refusal::field)?).ok_or(Refusal::new(
            ord_rej_reason::UNKNOWN_SYMBOL,
            b"Symbol longer than 24 characters",
        ))?;
    o.side = required_char(
        msg,
        tags::SIDE,
        Side::from_fix,
        b"unsupported Side(54): use 1, 2 or 5",
    )?;
    o.qty = msg
        .qty(tags::ORDER_QTY)
        .map_err(Refusal::field)?
        .ok_or(Refusal::field(ValueError::Missing(tags::ORDER_QTY)))?;
    if o.qty.0 <= 0 {
        return Err(Refusal::new(
            ord_rej_reason::INCORRECT_QUANTITY,
            b"OrderQty(38) must be positive",
        ));
    }
    o.ord_type = required_char(
        msg,
        tags::ORD_TYPE,
        OrdType::from_fix,
        b"unsupported OrdType(40): use 1 (market) or 2 (limit)",
    )?;
    o.price = msg.price(tags::PRICE).map_err(Refusal::field)?;
    match (o.ord_type, o.price) {
        (OrdType::Limit, None) => {
            return Err(Refusal::new(
                ord_rej_reason::OTHER,
                b"limit order without Price(44)",
            ))
        }
        (OrdType::Limit, Some(p)) if p.0 <= 0 => {
            return Err(Refusal::new(
                ord_rej_reason::OTHER,
                b"Price(44) must be positive",
            ))
        }
        (OrdType::Market, Some(_)) => o.price = None,
        _ => {}
    }
    if let Some(c) = msg.char(tags::TIME_IN_FORCE).map_err(Refusal::field)? {
        o.tif = TimeInForce::from_fix(c).ok_or(Refusal::new(
            ord_rej_reason::UNSUPPORTED_ORDER_CHARACTERISTIC,
            b"unsupported TimeInForce(59): use 0, 1, 3 or 4",
        ))?;
    }
    super::reg::parse_detail(msg, &mut o.detail).map_err(|(r, t)| Refusal::new(r, t))?;
    Ok(())
}

/// Whether `msg` is marked PossResend <97> = Y.
#[inline]
fn poss_resend(msg: &Message<'_>) -> bool {
    msg.get(tags::POSS_RESEND) == Some(b"Y")
}

/// The message the engine is answering, as far as the routing of its replies goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answering {
    /// None: a report comes from a venue answer; it carries the order's routing.
    Idle,
    /// A message without routing fields (the common case: nothing to copy).
    Plain,
    /// A message with routing fields: its replies carry them swapped.
    Routed(ReplyRouting),
}

impl Engine {
    /// An in-sequence application message that passed the session checks. Every answer to it
    /// carries its routing fields swapped back ([`crate::fix::ReplyRouting`]).
    pub(crate) fn on_application(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        self.answering = match ReplyRouting::reply_to(msg) {
            Ok(None) => Answering::Plain,
            Ok(Some(r)) => Answering::Routed(r),
            Err(tag) => return self.routing_too_long(s, msg, tag, now),
        };
        self.on_application_routed(s, msg, now);
        self.answering = Answering::Idle;
    }

    /// A routing field too long to keep for the order's later reports: refused as a whole.
    #[cold]
    fn routing_too_long(&mut self, s: usize, msg: &Message<'_>, tag: i32, now: Nanos) {
        let mut text = [0u8; 96];
        let part = b"routing field longer than 32 characters: tag ";
        text[..part.len()].copy_from_slice(part);
        let n = part.len() + write_u64(&mut text[part.len()..], tag.unsigned_abs().into());
        self.answering = match ReplyRouting::reply_to_lossy(msg).non_empty() {
            Some(r) => Answering::Routed(r),
            None => Answering::Plain,
        };
        self.business_reject(s, msg, business_reject_reason::OTHER, &text[..n], now);
        self.answering = Answering::Idle;
    }

    /// The routing fields of a message about `order`: those of the inbound message being
    /// answered, else the order's own (a later venue answer).
    /// `None` when there are none (nothing copied).
    #[inline]
    fn routing_for(&self, order: Option<&Order>) -> Option<ReplyRouting> {
        match &self.answering {
            Answering::Plain => None,
            Answering::Routed(r) => Some(*r),
            Answering::Idle => order
                .and_then(|o| self.orders.extras_of(o))
                .and_then(|e| e.routing.non_empty()),
        }
    }

    /// PossResend <97> = Y with a ClOrdID this session already used: the instruction was
    /// processed when it first came, so it is not processed again and gets no second report
    /// (fix-specs/RULES-OF-ENGAGEMENT.md "Possible resends"). Counted.
    #[inline]
    fn is_resent_duplicate(&self, s: usize, msg: &Message<'_>) -> bool {
        if !poss_resend(msg) {
            return false;
        }
        if !matches!(
            msg.msg_type(),
            MsgType::NEW_ORDER_SINGLE
                | MsgType::ORDER_CANCEL_REQUEST
                | MsgType::ORDER_CANCEL_REPLACE_REQUEST
                | MsgType::ORDER_MASS_CANCEL_REQUEST
        ) {
            return false;
        }
        let session = SessionId(s as u32);
        let seen_order = msg
            .get(tags::CL_ORD_ID)
            .and_then(OrderIdStr::new)
            .filter(|cl| !cl.is_empty())
            .is_some_and(|cl| self.orders.lookup(session, &cl).is_some());
        seen_order
            || self.sessions.get(s).is_some_and(|slot| {
                msg.get(tags::CL_ORD_ID)
                    .is_some_and(|cl| slot.seen.contains(cl))
            })
    }

    /// Remembers the message's ClOrdID for PossResend checks (inline ring, no allocation).
    #[inline]
    fn remember_cl_ord_id(&mut self, s: usize, msg: &Message<'_>) {
        if let (Some(cl), Some(slot)) = (msg.get(tags::CL_ORD_ID), self.sessions.get_mut(s)) {
            slot.seen.remember(cl);
        }
    }

    fn on_application_routed(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        if self.is_resent_duplicate(s, msg) {
            self.counters.inc(Counter::PossResendDuplicates);
            return;
        }
        self.remember_cl_ord_id(s, msg);
        let class = match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE | MsgType::ORDER_CANCEL_REPLACE_REQUEST => MsgClass::Order,
            MsgType::ORDER_CANCEL_REQUEST | MsgType::ORDER_MASS_CANCEL_REQUEST => MsgClass::Cancel,
            MsgType::BUSINESS_MESSAGE_REJECT => MsgClass::Other,
            _ => MsgClass::Other,
        };
        let Some(slot) = self.sessions.get(s) else {
            return;
        };
        // Authorization: the key's scope for this message type, then its account and symbol
        // grants (a bitmask AND and two short inline scans; no allocation).
        let need = match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE => Scopes::ORDERS_NEW,
            MsgType::ORDER_CANCEL_REQUEST | MsgType::ORDER_MASS_CANCEL_REQUEST => {
                Scopes::ORDERS_CANCEL
            }
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => Scopes::ORDERS_REPLACE,
            MsgType::ORDER_STATUS_REQUEST => Scopes::ORDERS_READ,
            _ => Scopes::NONE,
        };
        let g = &slot.grants;
        if !g.scopes.contains(need) {
            return self.denied(s, msg, need.name(), now);
        }
        // The account before anything touches its state (throttle, risk counters, message
        // rate, credit): a key refused here cannot move another account's limits. A new order
        // names its account (or takes the session's default); a replace may name one only to
        // repeat a granted one (the order's own account is checked in `target_order`).
        match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE => {
                let account = msg
                    .get(tags::ACCOUNT)
                    .unwrap_or(slot.default_account.as_bytes());
                if !g.allows_account(account) {
                    return self.denied(s, msg, "account", now);
                }
            }
            MsgType::ORDER_CANCEL_REPLACE_REQUEST
                if msg.get(tags::ACCOUNT).is_some_and(|a| !g.allows_account(a)) =>
            {
                return self.denied(s, msg, "account", now);
            }
            _ => {}
        }
        if !g.symbols.is_empty()
            && matches!(
                msg.msg_type(),
                MsgType::NEW_ORDER_SINGLE | MsgType::ORDER_CANCEL_REPLACE_REQUEST
            )
            && !g.allows_symbol(msg.get(tags::SYMBOL).unwrap_or(b""))
        {
            return self.denied(s, msg, "symbol", now);
        }
        let throttle_slot = g.throttle;
        if msg.msg_type() != MsgType::BUSINESS_MESSAGE_REJECT {
            if let ThrottleVerdict::Reject {
                limit,
                retry_after_ms,
                ..
            } = self.throttle.check(throttle_slot, class, now)
            {
                return self.throttled(s, msg, limit, retry_after_ms, now);
            }
        }
        if msg.msg_type() != MsgType::BUSINESS_MESSAGE_REJECT
            && self
                .sessions
                .get(s)
                .is_some_and(|slot| !slot.drop_copy.is_empty())
        {
            return self.business_reject(
                s,
                msg,
                business_reject_reason::APPLICATION_NOT_AVAILABLE,
                b"drop copy session is read-only",
                now,
            );
        }
        match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE => self.on_new_order(s, msg, now),
            MsgType::ORDER_CANCEL_REQUEST => self.on_cancel(s, msg, now),
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => self.on_replace(s, msg, now),
            MsgType::ORDER_STATUS_REQUEST => self.on_status(s, msg, now),
            MsgType::ORDER_MASS_CANCEL_REQUEST if self.begin(s) == BeginString::Fix44 => {
                self.on_mass_cancel(s, msg, now)
            }
            // Never answered: a reject of a reject would loop between two peers.
            MsgType::BUSINESS_MESSAGE_REJECT => self.counters.inc(Counter::BusinessRejectsReceived),
            _ => self.business_reject(
                s,
                msg,
                business_reject_reason::UNSUPPORTED_MESSAGE_TYPE,
                b"unsupported message type",
                now,
            ),
        }
    }

    /// A message outside the session key's permissions: ExecutionReport reject (D),
    /// OrderCancelReject (F: 434=1, G: 434=2) or BusinessMessageReject 380=6 (others), each
    /// with Text `not permitted: <permission>`; audited as `PermissionDenied`.
    #[cold]
    fn denied(&mut self, s: usize, msg: &Message<'_>, permission: &'static str, now: Nanos) {
        self.counters.inc(Counter::PermissionDenied);
        if permission == "account" {
            self.counters.inc(Counter::AccountDenied);
        }
        self.emit(Event::PermissionDenied {
            session: SessionId(s as u32),
            permission,
            at: now,
        });
        let text: &'static [u8] = match permission {
            "orders:new" => b"not permitted: orders:new",
            "orders:cancel" => b"not permitted: orders:cancel",
            "orders:replace" => b"not permitted: orders:replace",
            "orders:read" => b"not permitted: orders:read",
            "account" => b"not permitted: account",
            "symbol" => b"not permitted: symbol",
            _ => b"not permitted",
        };
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE => {
                let Some(slot) = self.sessions.get(s) else {
                    return;
                };
                let mut order = blank_order(s, slot.default_account);
                let _ = parse_new_order(msg, &mut order);
                if order.cl_ord_id.is_empty() {
                    return self.business_reject(
                        s,
                        msg,
                        business_reject_reason::NOT_AUTHORIZED,
                        text,
                        now,
                    );
                }
                // The order was never the account's: its drop copy must not see it (a key
                // without the grant could otherwise fill another firm's drop copy with
                // reports of orders it never sent). The record keeps it, with the key's id.
                let copy = permission != "account";
                self.emit(Event::OrderRejected {
                    session: order.session,
                    reason: "order refused before routing",
                    at: now,
                });
                let mut buf = [0u8; 96];
                let why = Refusal::new(ord_rej_reason::OTHER, text);
                let n = why.render(&mut buf);
                self.reject_unrouted(&order, why.reason, &buf[..n], copy, now);
            }
            MsgType::ORDER_CANCEL_REQUEST => self.cancel_reject(
                s,
                None,
                cl,
                orig,
                CancelRejectTo::Cancel,
                cxl_rej_reason::OTHER,
                text,
                now,
            ),
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => self.cancel_reject(
                s,
                None,
                cl,
                orig,
                CancelRejectTo::Replace,
                cxl_rej_reason::OTHER,
                text,
                now,
            ),
            _ => self.business_reject(s, msg, business_reject_reason::NOT_AUTHORIZED, text, now),
        }
    }

    fn begin(&self, s: usize) -> BeginString {
        self.sessions
            .get(s)
            .map_or(BeginString::Fix44, |slot| slot.begin)
    }

    /// A message over one of its key's throttle limits: BusinessMessageReject with
    /// BusinessRejectReason(380)=8, the reference to the message, a Text naming the limit and
    /// the wait, and RetryAfterMs(7900) as a number. Refusals that keep coming for
    /// [`AbuseConfig::sustain_ns`](crate::throttle::AbuseConfig) end the session.
    #[cold]
    fn throttled(
        &mut self,
        s: usize,
        msg: &Message<'_>,
        limit: Limit,
        retry_after_ms: u64,
        now: Nanos,
    ) {
        self.counters.inc(Counter::ThrottleRejects);
        let mut text = [0u8; 96];
        let mut n = 0;
        for part in [
            b"throttled: ".as_slice(),
            limit.name().as_bytes(),
            b" limit exceeded; retry after ",
        ] {
            text[n..n + part.len()].copy_from_slice(part);
            n += part.len();
        }
        let never = retry_after_ms == u64::MAX;
        if never {
            let part = b"the limit changes (none left today)";
            text[n..n + part.len()].copy_from_slice(part);
            n += part.len();
        } else {
            n += write_u64(&mut text[n..], retry_after_ms);
            text[n..n + 3].copy_from_slice(b" ms");
            n += 3;
        }
        let ref_seq = msg.seq_num().unwrap_or(0);
        let ref_type = msg.msg_type_bytes();
        let ref_id = msg.get(tags::CL_ORD_ID);
        let streak_started;
        let verdict;
        {
            let Some(slot) = self.sessions.get_mut(s) else {
                return;
            };
            streak_started = !slot.abuse.in_streak(now);
            verdict = slot.abuse.on_reject(now);
        }
        if streak_started {
            self.emit(Event::Throttled {
                session: SessionId(s as u32),
                limit: limit.name(),
                at: now,
            });
        }
        let routing = self.routing_for(None);
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        let _ =
            slot.session
                .send_app_routed(b"j", ReplyRouting::or_none(&routing), now, out, |w| {
                    w.uint(tags::REF_SEQ_NUM as u32, ref_seq);
                    w.str(tags::REF_MSG_TYPE as u32, ref_type);
                    if let Some(id) = ref_id {
                        w.str(tags::BUSINESS_REJECT_REF_ID as u32, id);
                    }
                    w.uint(
                        tags::BUSINESS_REJECT_REASON as u32,
                        u64::from(business_reject_reason::THROTTLE_LIMIT_EXCEEDED),
                    );
                    w.str(tags::TEXT as u32, &text[..n]);
                    if !never {
                        w.uint(tags::RETRY_AFTER_MS as u32, retry_after_ms);
                    }
                });
        if verdict == AbuseVerdict::Logout {
            slot.session
                .logout(b"throttle limits exceeded for too long", now, out);
            // The session waits for the client's Logout (or its logout timeout), then closes.
            self.counters.inc(Counter::ThrottleLogouts);
        }
        if let Some(c) = c {
            self.mark_dirty(c);
        }
    }

    #[cold]
    fn business_reject(
        &mut self,
        s: usize,
        msg: &Message<'_>,
        reason: u32,
        text: &[u8],
        now: Nanos,
    ) {
        self.counters.inc(Counter::BusinessRejects);
        let ref_seq = msg.seq_num().unwrap_or(0);
        let ref_type = msg.msg_type_bytes();
        let ref_id = msg.get(tags::CL_ORD_ID);
        let routing = match self.answering {
            Answering::Plain => None,
            Answering::Routed(r) => Some(r),
            Answering::Idle => ReplyRouting::reply_to_lossy(msg).non_empty(),
        };
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        let _ = slot.session.send_business_reject(
            ReplyRouting::or_none(&routing),
            ref_seq,
            ref_type,
            ref_id,
            reason,
            text,
            now,
            out,
        );
        if let Some(c) = c {
            self.mark_dirty(c);
        }
    }

    /// Sends an ExecutionReport about `order` to its session and counts the execution.
    pub(crate) fn send_exec(&mut self, order: &Order, e: &Exec<'_>, now: Nanos) {
        self.send_exec_copy(order, e, true, now);
    }

    /// [`Engine::send_exec`]; the drop copy of the order's account only when `copy`.
    #[inline]
    fn send_exec_copy(&mut self, order: &Order, e: &Exec<'_>, copy: bool, now: Nanos) {
        let s = order.session.0 as usize;
        let exec_id = u64::from(order.exec_seq);
        let routing = self.routing_for(Some(order));
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        let v = slot.begin;
        let _ =
            slot.session
                .send_app_routed(b"8", ReplyRouting::or_none(&routing), now, out, |w| {
                    exec::execution_report(w, v, order, e, exec_id, now)
                });
        if let Some(c) = c {
            self.mark_dirty(c);
        }
        self.record_report(order, e, now);
        if copy && !self.drop_copies.is_empty() {
            self.drop_copy(order, e, now);
        }
    }

    /// Drop copy: the same ExecutionReport to every drop-copy session of the order's account
    /// (stored for resend like any message of those sessions).
    fn drop_copy(&mut self, order: &Order, e: &Exec<'_>, now: Nanos) {
        let exec_id = u64::from(order.exec_seq);
        for i in 0..self.drop_copies.len() {
            let Some(&dc) = self.drop_copies.get(i) else {
                continue;
            };
            if dc == order.session.0 as usize
                || !self.sessions.get(dc).is_some_and(|slot| {
                    slot.drop_copy.contains(&order.account)
                        && slot.grants.scopes.contains(Scopes::ORDERS_READ)
                        // Without a key, the drop copy's configured accounts are its grant.
                        && (slot.grants.key_id.is_empty()
                            || slot.grants.allows_account(order.account.as_bytes()))
                })
            {
                continue;
            }
            let Some((slot, out, c)) = self.session_and_out(dc) else {
                continue;
            };
            let v = slot.begin;
            let _ = slot.session.send_app(b"8", now, out, |w| {
                exec::execution_report(w, v, order, e, exec_id, now)
            });
            if let Some(c) = c {
                self.mark_dirty(c);
            }
        }
    }

    #[cold]
    fn reject_order(&mut self, order: &Order, why: Refusal, now: Nanos) {
        self.emit(Event::OrderRejected {
            session: order.session,
            reason: "order refused before routing",
            at: now,
        });
        let mut text = [0u8; 96];
        let n = why.render(&mut text);
        self.reject_order_text(order, why.reason, &text[..n], now);
    }

    /// A pre-trade risk refusal: ExecutionReport 39=8 with the check's OrdRejReason(103) and a
    /// Text naming the check, the limit and the value; an audit event.
    #[cold]
    #[inline(never)]
    pub(crate) fn reject_risk(&mut self, order: &Order, reason: RiskReason, now: Nanos) {
        self.counters.inc(Counter::RiskRejects);
        self.emit(Event::RiskRejected {
            session: order.session,
            account: order.account,
            reason,
            at: now,
        });
        let mut text = [0u8; 128];
        let n = reason.write_text(&mut text);
        self.reject_order_text(order, reason.ord_rej_reason(), &text[..n], now);
    }

    /// ExecutionReport Rejected for an order that never entered the table.
    #[cold]
    fn reject_order_text(&mut self, order: &Order, code: u32, text: &[u8], now: Nanos) {
        self.reject_unrouted(order, code, text, true, now);
    }

    /// [`Engine::reject_order_text`], with the drop copy of the order's account only when
    /// `copy` (false: the order named an account its key may not use).
    fn reject_unrouted(&mut self, order: &Order, code: u32, text: &[u8], copy: bool, now: Nanos) {
        self.counters.inc(Counter::OrdersRejected);
        let mut o = *order;
        o.status = OrdStatus::Rejected;
        // Not in the table: no OrderID. ExecID `NONE.<n>` stays unique through this counter.
        self.refusals += 1;
        o.exec_seq = self.refusals as u32;
        o.order_id = 0;
        let cl = o.cl_ord_id;
        let e = Exec {
            rej_reason: Some(code),
            text: Some(text),
            ..Exec::report(
                ExecType::Rejected,
                OrdStatus::Rejected,
                if cl.is_empty() {
                    b"NONE"
                } else {
                    cl.as_bytes()
                },
            )
        };
        self.send_exec_copy(&o, &e, copy, now);
    }

    fn on_new_order(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::OrdersReceived);
        let Some(slot) = self.sessions.get(s) else {
            return;
        };
        let tag = slot.tag;
        let mut order = blank_order(s, slot.default_account);
        let owner = slot.grants.key_id;
        if let Err(why) = parse_new_order(msg, &mut order) {
            if order.cl_ord_id.is_empty() {
                return self.business_reject(
                    s,
                    msg,
                    business_reject_reason::CONDITIONALLY_REQUIRED_FIELD_MISSING,
                    b"ClOrdID(11) missing",
                    now,
                );
            }
            return self.reject_order(&order, why, now);
        }
        order.received_at = now;
        if let Some(text) = self.clock_halted() {
            return self.reject_order(&order, Refusal::new(ord_rej_reason::OTHER, text), now);
        }
        let venue =
            match self
                .router
                .route(msg.get(tags::EX_DESTINATION), &order.symbol, &order.account)
            {
                Ok((v, reason)) => {
                    order.detail.route = Some(reason);
                    v
                }
                Err(_) => {
                    return self.reject_order(
                        &order,
                        Refusal::new(ord_rej_reason::BROKER_OPTION, b"unknown ExDestination(100)"),
                        now,
                    )
                }
            };
        order.venue = venue;
        if !self.venues.get(usize::from(venue)).is_some_and(|v| v.up) {
            self.counters.inc(Counter::VenueDownRejects);
            return self.reject_order(
                &order,
                Refusal::new(
                    ord_rej_reason::EXCHANGE_CLOSED,
                    b"venue is down: order not routed",
                ),
                now,
            );
        }
        if self.orders.contains(order.session, &order.cl_ord_id) {
            return self.reject_order(
                &order,
                Refusal::new(
                    ord_rej_reason::DUPLICATE_ORDER,
                    b"duplicate ClOrdID(11) on this session",
                ),
                now,
            );
        }
        // Pre-trade risk (15c3-5 / RTS 6): the last check before the order is stored and sent.
        if let Err(reason) = self.admit_new(&mut order, now) {
            return self.reject_risk(&order, reason, now);
        }
        self.stamp_decision(&mut order, now);
        order.order_id = self.orders.next_order_id();
        let key = match self.orders.insert(order) {
            Ok(k) => {
                let routing = self.routing_for(None);
                self.orders.set_extras(k, owner, routing);
                k
            }
            Err(TableError::DuplicateClOrdId) => {
                self.risk_release(&order);
                return self.reject_order(
                    &order,
                    Refusal::new(
                        ord_rej_reason::DUPLICATE_ORDER,
                        b"duplicate ClOrdID(11) on this session",
                    ),
                    now,
                );
            }
            Err(TableError::Full) => {
                self.counters.inc(Counter::OrderTableFull);
                self.risk_release(&order);
                return self.reject_order(
                    &order,
                    Refusal::new(ord_rej_reason::OTHER, b"gateway order table full"),
                    now,
                );
            }
        };
        // Journaled before routing: after a crash, every order a venue may hold is known.
        if self.journal.record(key, &order, tag).is_err() {
            self.counters.inc(Counter::JournalErrors);
            self.emit(Event::JournalError { key, at: now });
            if let Some(o) = self.orders.get_mut(key) {
                o.status = OrdStatus::Rejected;
            }
            self.risk_release(&order);
            self.orders.finish(key);
            return self.reject_order(
                &order,
                Refusal::new(
                    ord_rej_reason::OTHER,
                    b"gateway journal unavailable: order not routed",
                ),
                now,
            );
        }
        self.counters.inc(Counter::OrdersAccepted);
        self.record_new(key);
        self.submit(key, now);
    }

    /// Sends order `key` to its venue and applies what the venue answers.
    fn submit(&mut self, key: OrderKey, now: Nanos) {
        self.venue_request(key, VenueRequest::New, now);
    }

    /// Recovery: an open order goes back to its in-process venue (whose book died with the
    /// process). Venues across a network keep their own state and are reconciled by status.
    pub(crate) fn rearm_at_venue(&mut self, key: OrderKey, now: Nanos) {
        let Some(o) = self.orders.get(key) else {
            return;
        };
        if matches!(
            self.venues.get(usize::from(o.venue)).map(|v| &v.kind),
            Some(VenueKind::Sim(_))
        ) {
            self.submit(key, now);
        }
    }

    fn venue_cancel(&mut self, key: OrderKey, now: Nanos) {
        self.venue_request(key, VenueRequest::Cancel, now);
    }

    /// The venue refused order `key`: ExecutionReport Rejected with the venue's reason.
    pub(crate) fn rejected_at_venue(&mut self, key: OrderKey, text: &[u8], now: Nanos) {
        let Some(o) = self.orders.get_mut(key) else {
            return;
        };
        let before = *o;
        o.status = OrdStatus::Rejected;
        o.exec_seq += 1;
        let snapshot = *o;
        if before.is_open() {
            self.risk_release(&before);
        }
        self.orders.finish(key);
        self.journal_later(key);
        self.counters.inc(Counter::OrdersRejected);
        let cl = snapshot.cl_ord_id;
        self.send_exec(
            &snapshot,
            &Exec {
                rej_reason: Some(ord_rej_reason::BROKER_OPTION),
                text: Some(text),
                ..Exec::report(ExecType::Rejected, OrdStatus::Rejected, cl.as_bytes())
            },
            now,
        );
    }

    fn journal(&mut self, key: OrderKey, now: Nanos) {
        let Some(o) = self.orders.get(key) else {
            return;
        };
        let tag = self.sessions.get(o.session.0 as usize).map_or(0, |s| s.tag);
        if self.journal.record(key, o, tag).is_err() {
            self.counters.inc(Counter::JournalErrors);
            self.emit(Event::JournalError { key, at: now });
        }
    }

    /// Notes that `key` changed; its snapshot is journaled at the end of the event batch.
    pub(crate) fn journal_later(&mut self, key: OrderKey) {
        if !self.journal_keys.contains(&key)
            && self.journal_keys.len() < self.journal_keys.capacity()
        {
            self.journal_keys.push(key);
        } else if !self.journal_keys.contains(&key) {
            self.journal(key, Nanos::ZERO); // batch list full: write through
        }
    }

    /// Applies venue answers in order, then journals one snapshot per order they changed.
    ///
    /// # Ordering
    /// The ExecutionReports are appended to the sessions' output buffers while the events are
    /// applied, but nothing reaches a socket before the engine flushes at the end of the duty
    /// cycle — after this function journaled every change. So no client ever sees a report
    /// whose order state a crash could lose, and an order accepted and filled in one venue
    /// answer costs one snapshot, not two.
    pub(crate) fn apply_venue_events(&mut self, evs: &[VenueEvent], now: Nanos) {
        for e in evs {
            self.apply_venue_event(*e, now);
        }
        self.journal_pending(now);
    }

    /// Journals the orders noted by [`Engine::journal_later`], one snapshot each.
    pub(crate) fn journal_pending(&mut self, now: Nanos) {
        let mut keys = std::mem::take(&mut self.journal_keys);
        for &key in &keys {
            self.journal(key, now);
        }
        keys.clear();
        self.journal_keys = keys;
    }

    fn apply_venue_event(&mut self, ev: VenueEvent, now: Nanos) {
        self.stamp_venue(&ev);
        match ev {
            VenueEvent::Accepted {
                key,
                venue_order_id,
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                o.venue_order_id = venue_order_id;
                if o.status != OrdStatus::PendingNew {
                    return; // re-armed after recovery: the client already knows
                }
                o.status = OrdStatus::New;
                o.exec_seq += 1;
                let snapshot = *o;
                self.journal_later(key);
                let cl = snapshot.cl_ord_id;
                self.send_exec(
                    &snapshot,
                    &Exec::report(ExecType::New, OrdStatus::New, cl.as_bytes()),
                    now,
                );
            }
            VenueEvent::Rejected { key, reason } => {
                self.rejected_at_venue(key, reason.as_bytes(), now)
            }
            VenueEvent::Fill {
                key, qty, price, ..
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                if o.status == OrdStatus::PendingNew {
                    o.status = OrdStatus::New;
                }
                let was_open = o.is_open();
                o.apply_fill(qty, price);
                o.exec_seq += 1;
                let snapshot = *o;
                if was_open {
                    self.risk_fill(&snapshot, qty, price, now);
                }
                if snapshot.status == OrdStatus::Filled {
                    self.orders.finish(key);
                }
                self.journal_later(key);
                self.counters.inc(Counter::Fills);
                let cl = snapshot.cl_ord_id;
                self.send_exec(
                    &snapshot,
                    &Exec {
                        last: Some((qty, price)),
                        ..Exec::report(ExecType::Trade, snapshot.status, cl.as_bytes())
                    },
                    now,
                );
            }
            VenueEvent::Canceled { key, .. } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let before = *o;
                let pending = mem::replace(&mut o.pending, Pending::None);
                o.status = OrdStatus::Canceled;
                o.exec_seq += 1;
                let (report_cl, orig) = match pending {
                    Pending::Cancel { cl_ord_id } => {
                        o.orig_cl_ord_id = o.cl_ord_id;
                        o.cl_ord_id = cl_ord_id;
                        (cl_ord_id, Some(o.orig_cl_ord_id))
                    }
                    _ => (o.cl_ord_id, None),
                };
                let snapshot = *o;
                if before.is_open() {
                    self.risk_release(&before);
                }
                self.orders.finish(key);
                self.journal_later(key);
                let orig_bytes = orig.as_ref().map(|x| x.as_bytes());
                self.send_exec(
                    &snapshot,
                    &Exec {
                        orig_cl_ord_id: orig_bytes,
                        ..Exec::report(
                            ExecType::Canceled,
                            OrdStatus::Canceled,
                            report_cl.as_bytes(),
                        )
                    },
                    now,
                );
            }
            VenueEvent::Replaced {
                key, qty, price, ..
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let Pending::Replace { cl_ord_id, .. } =
                    mem::replace(&mut o.pending, Pending::None)
                else {
                    return;
                };
                o.orig_cl_ord_id = o.cl_ord_id;
                o.cl_ord_id = cl_ord_id;
                o.qty = qty;
                o.price = price;
                o.status = o.working_status();
                o.exec_seq += 1;
                let snapshot = *o;
                if snapshot.status == OrdStatus::Filled {
                    // Replaced down to what was already filled: nothing is open any more.
                    self.risk_release(&snapshot);
                    self.orders.finish(key);
                }
                self.journal_later(key);
                let orig = snapshot.orig_cl_ord_id;
                self.send_exec(
                    &snapshot,
                    &Exec {
                        orig_cl_ord_id: Some(orig.as_bytes()),
                        ..Exec::report(ExecType::Replaced, snapshot.status, cl_ord_id.as_bytes())
                    },
                    now,
                );
            }
            VenueEvent::CancelRejected { key, reason }
            | VenueEvent::ReplaceRejected { key, reason, .. } => {
                let to = if matches!(ev, VenueEvent::CancelRejected { .. }) {
                    CancelRejectTo::Cancel
                } else {
                    CancelRejectTo::Replace
                };
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let before = *o;
                let cl = match mem::replace(&mut o.pending, Pending::None) {
                    Pending::Cancel { cl_ord_id } | Pending::Replace { cl_ord_id, .. } => cl_ord_id,
                    Pending::None => return,
                };
                if let Pending::Replace {
                    reserved_before, ..
                } = before.pending
                {
                    o.reserved_price = reserved_before;
                    self.risk_undo_replace(&before);
                    self.journal_later(key);
                }
                let Some(o) = self.orders.get(key) else {
                    return;
                };
                let snapshot = *o;
                let code = if snapshot.status.is_terminal() {
                    cxl_rej_reason::TOO_LATE_TO_CANCEL
                } else {
                    cxl_rej_reason::OTHER
                };
                self.cancel_reject(
                    snapshot.session.0 as usize,
                    Some(&snapshot),
                    cl.as_bytes(),
                    snapshot.cl_ord_id.as_bytes(),
                    to,
                    code,
                    reason.as_bytes(),
                    now,
                );
            }
        }
    }

    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn cancel_reject(
        &mut self,
        s: usize,
        order: Option<&Order>,
        cl: &[u8],
        orig: &[u8],
        to: CancelRejectTo,
        reason: u32,
        text: &[u8],
        now: Nanos,
    ) {
        self.counters.inc(Counter::CancelRejects);
        let routing = self.routing_for(order);
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        let v = slot.begin;
        let _ =
            slot.session
                .send_app_routed(b"9", ReplyRouting::or_none(&routing), now, out, |w| {
                    exec::order_cancel_reject(w, v, order, cl, orig, to, reason, text)
                });
        if let Some(c) = c {
            self.mark_dirty(c);
        }
        if let Some(o) = order {
            self.record_cancel_reject(o, cl, to, reason, text);
        }
    }

    /// Common checks of a cancel or replace: the target order exists on this session, is open
    /// and has nothing pending; the new ClOrdID is fresh. Returns the key, or answers with an
    /// OrderCancelReject and returns `None`.
    fn target_order(
        &mut self,
        s: usize,
        msg: &Message<'_>,
        to: CancelRejectTo,
        now: Nanos,
    ) -> Option<(OrderKey, OrderIdStr)> {
        let session = SessionId(s as u32);
        let cl_raw = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig_raw = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        let (Some(cl), Some(orig)) = (
            OrderIdStr::new(cl_raw).filter(|c| !c.is_empty()),
            OrderIdStr::new(orig_raw).filter(|c| !c.is_empty()),
        ) else {
            self.cancel_reject(
                s,
                None,
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::OTHER,
                b"ClOrdID(11) and OrigClOrdID(41) are required (at most 40 characters)",
                now,
            );
            return None;
        };
        let Some(key) = self.orders.lookup(session, &orig) else {
            self.cancel_reject(
                s,
                None,
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::UNKNOWN_ORDER,
                b"unknown order",
                now,
            );
            return None;
        };
        let order = *self.orders.get(key)?;
        // Checked against the account the order was accepted under, not the message's: a
        // cancel needs the account granted or the order to be this key's own (a key that lost
        // the account may still pull its orders); a replace needs the account granted.
        let owner = self
            .orders
            .extras(key)
            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner);
        let permitted = self.sessions.get(s).is_some_and(|slot| match to {
            CancelRejectTo::Cancel => slot.grants.may_manage(&order.account, &owner),
            CancelRejectTo::Replace => slot.grants.allows_account(order.account.as_bytes()),
        });
        if !permitted {
            self.account_denied(s, cl_raw, orig_raw, to, now);
            return None;
        }
        if !order.is_open() {
            self.cancel_reject(
                s,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::TOO_LATE_TO_CANCEL,
                b"order is no longer open",
                now,
            );
            return None;
        }
        if order.pending != Pending::None {
            self.cancel_reject(
                s,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::ALREADY_PENDING,
                b"a cancel or replace is already pending",
                now,
            );
            return None;
        }
        if self.orders.alias(session, cl, key).is_err() {
            self.cancel_reject(
                s,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::DUPLICATE_CL_ORD_ID,
                b"duplicate ClOrdID(11) on this session",
                now,
            );
            return None;
        }
        Some((key, cl))
    }

    /// A cancel or replace of an order in an account the key may not use: OrderCancelReject
    /// `not permitted: account` without the order's details; audited as `PermissionDenied`.
    #[cold]
    fn account_denied(&mut self, s: usize, cl: &[u8], orig: &[u8], to: CancelRejectTo, now: Nanos) {
        self.counters.inc(Counter::PermissionDenied);
        self.counters.inc(Counter::AccountDenied);
        self.emit(Event::PermissionDenied {
            session: SessionId(s as u32),
            permission: "account",
            at: now,
        });
        self.cancel_reject(
            s,
            None,
            cl,
            orig,
            to,
            cxl_rej_reason::OTHER,
            b"not permitted: account",
            now,
        );
    }

    fn on_cancel(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::CancelsReceived);
        let Some((key, cl)) = self.target_order(s, msg, CancelRejectTo::Cancel, now) else {
            return;
        };
        let routing = self.routing_for(None);
        if let Some(o) = self.orders.get_mut(key) {
            o.pending = Pending::Cancel { cl_ord_id: cl };
        }
        self.orders.set_routing(key, routing);
        self.record_request(key, now);
        self.venue_cancel(key, now);
    }

    fn on_replace(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::ReplacesReceived);
        // Validate the new terms before touching the order, so a bad replace changes nothing.
        let cl_raw = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig_raw = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        let qty = match msg.qty(tags::ORDER_QTY) {
            Ok(Some(q)) if q.0 > 0 => q,
            _ => {
                return self.cancel_reject(
                    s,
                    None,
                    cl_raw,
                    orig_raw,
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    b"OrderQty(38) must be present and positive",
                    now,
                )
            }
        };
        let price = match msg.price(tags::PRICE) {
            Ok(p) => p,
            Err(_) => {
                return self.cancel_reject(
                    s,
                    None,
                    cl_raw,
                    orig_raw,
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    b"incorrect Price(44)",
                    now,
                )
            }
        };
        let Some((key, cl)) = self.target_order(s, msg, CancelRejectTo::Replace, now) else {
            return;
        };
        let Some(order) = self.orders.get(key).copied() else {
            return;
        };
        let side_ok = msg
            .char(tags::SIDE)
            .ok()
            .flatten()
            .is_none_or(|c| Side::from_fix(c) == Some(order.side));
        let type_ok = msg
            .char(tags::ORD_TYPE)
            .ok()
            .flatten()
            .is_none_or(|c| OrdType::from_fix(c) == Some(order.ord_type));
        let symbol_ok = msg
            .get(tags::SYMBOL)
            .is_none_or(|v| v == order.symbol.as_bytes());
        let account_ok = msg
            .get(tags::ACCOUNT)
            .is_none_or(|v| v == order.account.as_bytes());
        let price = if order.ord_type == OrdType::Limit {
            price.or(order.price)
        } else {
            None
        };
        let problem: Option<&[u8]> = if !side_ok {
            Some(b"Side(54) cannot change on a replace")
        } else if !type_ok {
            Some(b"OrdType(40) cannot change on a replace")
        } else if !symbol_ok {
            Some(b"Symbol(55) cannot change on a replace")
        } else if !account_ok {
            Some(b"Account(1) cannot change on a replace")
        } else if price.is_some_and(|p| p.0 <= 0) {
            Some(b"Price(44) must be positive")
        } else if qty.0 <= order.cum_qty.0 {
            Some(b"OrderQty(38) must exceed the quantity already filled")
        } else {
            None
        };
        if let Some(text) = problem {
            return self.cancel_reject(
                s,
                Some(&order),
                cl.as_bytes(),
                orig_raw,
                CancelRejectTo::Replace,
                cxl_rej_reason::OTHER,
                text,
                now,
            );
        }
        let reserved_before = order.reserved_price;
        let reserved = match self.admit_replace(&order, qty, price, now) {
            Ok(p) => p,
            Err(reason) => {
                self.counters.inc(Counter::RiskRejects);
                self.emit(Event::RiskRejected {
                    session: order.session,
                    account: order.account,
                    reason,
                    at: now,
                });
                let mut text = [0u8; 128];
                let n = reason.write_text(&mut text);
                return self.cancel_reject(
                    s,
                    Some(&order),
                    cl.as_bytes(),
                    orig_raw,
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    &text[..n],
                    now,
                );
            }
        };
        let routing = self.routing_for(None);
        self.orders.set_routing(key, routing);
        if let Some(o) = self.orders.get_mut(key) {
            o.reserved_price = reserved;
            o.pending = Pending::Replace {
                cl_ord_id: cl,
                qty,
                price,
                reserved_before,
            };
        }
        self.record_request(key, now);
        self.venue_request(key, VenueRequest::Replace { qty, price }, now);
    }

    fn on_status(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        let session = SessionId(s as u32);
        let cl_raw = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let key = OrderIdStr::new(cl_raw).and_then(|cl| self.orders.lookup(session, &cl));
        let found = key.and_then(|k| self.orders.get(k).copied());
        let owner = key
            .and_then(|k| self.orders.extras(k))
            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner);
        let permitted = |o: &Order| {
            self.sessions
                .get(s)
                .is_some_and(|slot| slot.grants.may_manage(&o.account, &owner))
        };
        match found {
            Some(o) if !permitted(&o) => self.denied(s, msg, "account", now),
            Some(o) => {
                let cl = o.cl_ord_id;
                self.send_exec(
                    &o,
                    &Exec::report(ExecType::OrderStatus, o.status, cl.as_bytes()),
                    now,
                );
            }
            None => {
                let mut o = blank_order(s, crate::model::Account::EMPTY);
                let _ = parse_new_order(msg, &mut o);
                o.status = OrdStatus::Rejected;
                let cl = if cl_raw.is_empty() {
                    b"NONE".as_slice()
                } else {
                    cl_raw
                };
                self.send_exec(
                    &o,
                    &Exec {
                        rej_reason: Some(ord_rej_reason::UNKNOWN_ORDER),
                        text: Some(b"unknown order"),
                        ..Exec::report(ExecType::OrderStatus, OrdStatus::Rejected, cl)
                    },
                    now,
                );
            }
        }
    }

    fn on_mass_cancel(&mut self, s: usize, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::MassCancels);
        let session = SessionId(s as u32);
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"NONE");
        let request_type = msg
            .char(tags::MASS_CANCEL_REQUEST_TYPE)
            .ok()
            .flatten()
            .unwrap_or(b'0');
        let symbol = msg.get(tags::SYMBOL).and_then(Symbol::new);
        let accepted = match request_type {
            b'7' => true,
            b'1' => symbol.is_some(),
            _ => false,
        };
        let mut keys = mem::take(&mut self.keys);
        // Only orders the key may manage (their account granted, or its own): a key that shares
        // a session with another key's orders reaches them only through a grant.
        let grants = self.sessions.get(s).map(|slot| &slot.grants);
        let orders = &self.orders;
        if let (true, Some(g)) = (accepted, grants) {
            orders.open_orders(&mut keys, |o| {
                o.session == session
                    && (request_type == b'7' || Some(o.symbol) == symbol)
                    && g.may_manage(
                        &o.account,
                        &orders
                            .extras_of(o)
                            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner),
                    )
            });
        } else {
            keys.clear();
        }
        self.mass_report_id += 1;
        let report_id = self.mass_report_id;
        let affected = keys.len() as u64;
        let text: Option<&[u8]> = if accepted {
            None
        } else {
            Some(b"MassCancelRequestType(530) must be 1 (by Symbol, with Symbol(55)) or 7 (all orders)")
        };
        let routing = self.routing_for(None);
        if let Some((slot, out, c)) = self.session_and_out(s) {
            let _ = slot.session.send_app_routed(
                b"r",
                ReplyRouting::or_none(&routing),
                now,
                out,
                |w| {
                    exec::mass_cancel_report(
                        w,
                        cl,
                        report_id,
                        request_type,
                        accepted,
                        affected,
                        text,
                    )
                },
            );
            if let Some(c) = c {
                self.mark_dirty(c);
            }
        }
        for &key in &keys {
            self.venue_cancel(key, now);
        }
        self.keys = keys;
    }

    /// Cancel-on-disconnect: every open order of session `s` is cancelled at its venue. The
    /// ExecutionReports are stored for the session and resent when it logs on again.
    #[cold]
    pub(crate) fn cancel_session_orders(&mut self, s: usize, now: Nanos) {
        let session = SessionId(s as u32);
        let mut keys = mem::take(&mut self.keys);
        self.orders.open_orders(&mut keys, |o| {
            o.session == session && o.pending == Pending::None
        });
        let n = keys.len();
        for &key in &keys {
            self.venue_cancel(key, now);
        }
        self.keys = keys;
        if n > 0 {
            self.counters.add(Counter::CancelOnDisconnect, n as u64);
            self.emit(Event::CanceledOnDisconnect {
                session,
                orders: n as u32,
                at: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

    #[test]
    fn parses_a_limit_order_and_refuses_bad_fields() {
        let msg = with_trailer(b"8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x0111=A1\x0155=AAPL\x0154=1\x0138=100\x0140=2\x0144=10.5\x01");
        let m = Message::decode(&msg).unwrap();
        let mut o = blank_order(0, crate::model::Account::EMPTY);
        parse_new_order(&m, &mut o).unwrap();
        assert_eq!(o.qty, crate::model::Qty::from_units(100));
        assert_eq!(o.price, Some(crate::model::Price(1_050_000_000)));
        let msg = with_trailer(b"8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x0111=A1\x0155=AAPL\x0154=1\x0138=-5\x0140=2\x0144=10.5\x01");
        let m = Message::decode(&msg).unwrap();
        let mut o = blank_order(0, crate::model::Account::EMPTY);
        let why = parse_new_order(&m, &mut o).unwrap_err();
        assert_eq!(o.cl_ord_id.as_bytes(), b"A1");
        let mut buf = [0u8; 96];
        let n = why.render(&mut buf);
        assert!(
            buf[..n].starts_with(b"incorrect value format: tag 38")
                || buf[..n].starts_with(b"OrderQty")
        );
    }
}
