//! HOT — application messages: NewOrderSingle <D>, OrderCancelRequest <F>,
//! OrderCancelReplaceRequest <G>, OrderStatusRequest <H>, OrderMassCancelRequest <q> in;
//! ExecutionReport <8>, OrderCancelReject <9>, OrderMassCancelReport <r>,
//! BusinessMessageReject <j> out; and the venues' answers.
//!
//! Every refusal answers at once with the FIX message a client expects and a Text naming the
//! problem; nothing here allocates (texts are static or composed in stack buffers).

use super::wire::Wire;
use super::Engine;
use crate::auth::Scopes;
use crate::desk::{
    blank_order, cxl_rej_reason, ord_rej_reason, CancelRejectTo, Denied, OrderDesk, ReplaceIntent,
};
use crate::fix::encode::write_u64;
use crate::fix::{tags, BeginString, Message, MsgType, ReplyRouting, ValueError};
use crate::handoff::Event;
use crate::model::{Nanos, OrdType, OrderIdStr, SessionId, Side, Symbol, TimeInForce};
use crate::monitor::Counter;
use crate::order::Order;
use crate::throttle::{AbuseVerdict, Limit, MsgClass, Verdict as ThrottleVerdict};

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
    super::detail::parse_detail(msg, &mut o.detail).map_err(|(r, t)| Refusal::new(r, t))?;
    Ok(())
}

/// Whether `msg` is marked PossResend <97> = Y.
#[inline]
fn poss_resend(msg: &Message<'_>) -> bool {
    msg.get(tags::POSS_RESEND) == Some(b"Y")
}

/// What the session's own checks ([`Engine::gate`]) decided about an application message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gate {
    Pass,
    /// Outside the key's permissions: the permission's name (`orders:new`, `account`, ...).
    Denied(&'static str),
    /// Over one of the key's throttle limits.
    Throttled {
        limit: Limit,
        retry_after_ms: u64,
    },
    /// The session is gone (never for a configured session).
    Gone,
}

/// A throttle refusal's answer, whatever the protocol ([`Engine::throttle_answer`]).
pub(crate) struct ThrottleAnswer {
    /// Text <58>: the limit and the wait.
    pub text: [u8; 96],
    pub len: usize,
    /// RetryAfterMs <7900>; `None` when waiting cannot help.
    pub retry_after_ms: Option<u64>,
    /// Refusals kept coming for too long: the session ends.
    pub end_session: bool,
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
    pub(crate) fn on_application(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
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
    fn routing_too_long(&mut self, s: SessionId, msg: &Message<'_>, tag: i32, now: Nanos) {
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

    /// The routing fields of the inbound message being answered (`None` when there are
    /// none: nothing copied).
    #[inline]
    fn answer_routing(&self) -> Option<ReplyRouting> {
        match &self.answering {
            Answering::Routed(r) => Some(*r),
            Answering::Plain | Answering::Idle => None,
        }
    }

    /// PossResend <97> = Y with a ClOrdID this session already used: the instruction was
    /// processed when it first came, so it is not processed again and gets no second report
    /// (fix-specs/RULES-OF-ENGAGEMENT.md "Possible resends"). Counted.
    #[inline]
    fn is_resent_duplicate(&self, s: SessionId, msg: &Message<'_>) -> bool {
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
        let session = s;
        let seen_order = msg
            .get(tags::CL_ORD_ID)
            .and_then(OrderIdStr::new)
            .filter(|cl| !cl.is_empty())
            .is_some_and(|cl| self.desk.orders().lookup(session, &cl).is_some());
        seen_order
            || self.sessions.get(s.index()).is_some_and(|slot| {
                msg.get(tags::CL_ORD_ID)
                    .is_some_and(|cl| slot.seen.contains(cl))
            })
    }

    /// Remembers the message's ClOrdID for PossResend checks (inline ring, no allocation).
    #[inline]
    fn remember_cl_ord_id(&mut self, s: SessionId, msg: &Message<'_>) {
        if let (Some(cl), Some(slot)) = (msg.get(tags::CL_ORD_ID), self.sessions.get_mut(s.index()))
        {
            slot.seen.remember(cl);
        }
    }

    /// The checks every application message passes before the desk, whatever its protocol,
    /// in this order: the key's scope for the message (`need`), its account grant (`account`:
    /// the account the message names or implies; `None`: not checked here), its symbol grant
    /// (`symbol`), then the throttle (`class`; `None`: not throttled). The account comes
    /// before anything touches its state (throttle, risk counters, message rate, credit): a
    /// key refused here cannot move another account's limits. A bitmask AND, two short inline
    /// scans and the token buckets; no allocation.
    #[inline]
    pub(crate) fn gate(
        &self,
        s: SessionId,
        need: Scopes,
        account: Option<&[u8]>,
        symbol: Option<&[u8]>,
        class: Option<MsgClass>,
        now: Nanos,
    ) -> Gate {
        let Some(g) = self.desk.grants(s) else {
            return Gate::Gone;
        };
        if !g.scopes.contains(need) {
            return Gate::Denied(need.name());
        }
        if account.is_some_and(|a| !g.allows_account(a)) {
            return Gate::Denied("account");
        }
        if !g.symbols.is_empty() && symbol.is_some_and(|x| !g.allows_symbol(x)) {
            return Gate::Denied("symbol");
        }
        if let Some(class) = class {
            if let ThrottleVerdict::Reject {
                limit,
                retry_after_ms,
                ..
            } = self.throttle.check(g.throttle, class, now)
            {
                return Gate::Throttled {
                    limit,
                    retry_after_ms,
                };
            }
        }
        Gate::Pass
    }

    fn on_application_routed(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        if self.is_resent_duplicate(s, msg) {
            self.counters.inc(Counter::PossResendDuplicates);
            return;
        }
        self.remember_cl_ord_id(s, msg);
        let mt = msg.msg_type();
        let class = match mt {
            MsgType::NEW_ORDER_SINGLE | MsgType::ORDER_CANCEL_REPLACE_REQUEST => MsgClass::Order,
            MsgType::ORDER_CANCEL_REQUEST | MsgType::ORDER_MASS_CANCEL_REQUEST => MsgClass::Cancel,
            _ => MsgClass::Other,
        };
        let Some(slot) = self.sessions.get(s.index()) else {
            return;
        };
        let need = match mt {
            MsgType::NEW_ORDER_SINGLE => Scopes::ORDERS_NEW,
            MsgType::ORDER_CANCEL_REQUEST | MsgType::ORDER_MASS_CANCEL_REQUEST => {
                Scopes::ORDERS_CANCEL
            }
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => Scopes::ORDERS_REPLACE,
            MsgType::ORDER_STATUS_REQUEST => Scopes::ORDERS_READ,
            _ => Scopes::NONE,
        };
        // A new order names its account (or takes the session's default); a replace may name
        // one only to repeat a granted one (the order's own account is checked by the desk's
        // `target_order`); the symbol grant applies to both.
        let account = match mt {
            MsgType::NEW_ORDER_SINGLE => Some(
                msg.get(tags::ACCOUNT)
                    .unwrap_or(slot.default_account.as_bytes()),
            ),
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => msg.get(tags::ACCOUNT),
            _ => None,
        };
        let symbol = matches!(
            mt,
            MsgType::NEW_ORDER_SINGLE | MsgType::ORDER_CANCEL_REPLACE_REQUEST
        )
        .then(|| msg.get(tags::SYMBOL).unwrap_or(b""));
        // A BusinessMessageReject from the client is never throttled (nor answered).
        let class = (mt != MsgType::BUSINESS_MESSAGE_REJECT).then_some(class);
        match self.gate(s, need, account, symbol, class, now) {
            Gate::Pass => {}
            Gate::Gone => return,
            Gate::Denied(permission) => return self.denied(s, msg, permission, now),
            Gate::Throttled {
                limit,
                retry_after_ms,
            } => return self.throttled(s, msg, limit, retry_after_ms, now),
        }
        if msg.msg_type() != MsgType::BUSINESS_MESSAGE_REJECT
            && self
                .sessions
                .get(s.index())
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
    fn denied(&mut self, s: SessionId, msg: &Message<'_>, permission: &'static str, now: Nanos) {
        let text = self.note_denied(s, permission, now);
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        match msg.msg_type() {
            MsgType::NEW_ORDER_SINGLE => {
                let Some(slot) = self.sessions.get(s.index()) else {
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
                let (desk, mut out) = self.desk_out();
                desk.refuse(&mut out, &order, ord_rej_reason::OTHER, text, copy, now);
            }
            MsgType::ORDER_CANCEL_REQUEST => self.desk_cancel_reject(
                s,
                cl,
                orig,
                CancelRejectTo::Cancel,
                cxl_rej_reason::OTHER,
                text,
                now,
            ),
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => self.desk_cancel_reject(
                s,
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

    /// Counts and audits a refusal for `permission` (`PermissionDenied`) and gives its Text.
    #[cold]
    pub(crate) fn note_denied(
        &mut self,
        s: SessionId,
        permission: &'static str,
        now: Nanos,
    ) -> &'static [u8] {
        self.counters.inc(Counter::PermissionDenied);
        if permission == "account" {
            self.counters.inc(Counter::AccountDenied);
        }
        self.emit(Event::PermissionDenied {
            session: s,
            permission,
            at: now,
        });
        match permission {
            "orders:new" => b"not permitted: orders:new",
            "orders:cancel" => b"not permitted: orders:cancel",
            "orders:replace" => b"not permitted: orders:replace",
            "orders:read" => b"not permitted: orders:read",
            "account" => b"not permitted: account",
            "symbol" => b"not permitted: symbol",
            _ => b"not permitted",
        }
    }

    fn begin(&self, s: SessionId) -> BeginString {
        self.sessions
            .get(s.index())
            .map_or(BeginString::Fix44, |slot| slot.begin)
    }

    /// A message over one of its key's throttle limits: BusinessMessageReject with
    /// BusinessRejectReason(380)=8, the reference to the message, a Text naming the limit and
    /// the wait, and RetryAfterMs(7900) as a number. Refusals that keep coming for
    /// [`AbuseConfig::sustain_ns`](crate::throttle::AbuseConfig) end the session.
    #[cold]
    fn throttled(
        &mut self,
        s: SessionId,
        msg: &Message<'_>,
        limit: Limit,
        retry_after_ms: u64,
        now: Nanos,
    ) {
        let Some(a) = self.throttle_answer(s, limit, retry_after_ms, now) else {
            return;
        };
        let ref_seq = msg.seq_num().unwrap_or(0);
        let ref_type = msg.msg_type_bytes();
        let ref_id = msg.get(tags::CL_ORD_ID);
        let routing = self.answer_routing();
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        let _ =
            slot.session
                .send_app_routed(b"j", ReplyRouting::or_none(&routing), now, out, |w| {
                    w.uint(tags::REF_SEQ_NUM, ref_seq);
                    w.str(tags::REF_MSG_TYPE, ref_type);
                    if let Some(id) = ref_id {
                        w.str(tags::BUSINESS_REJECT_REF_ID, id);
                    }
                    w.uint(
                        tags::BUSINESS_REJECT_REASON,
                        u64::from(business_reject_reason::THROTTLE_LIMIT_EXCEEDED),
                    );
                    w.str(tags::TEXT, a.text.get(..a.len).unwrap_or(b""));
                    if let Some(ms) = a.retry_after_ms {
                        w.uint(tags::RETRY_AFTER_MS, ms);
                    }
                });
        if a.end_session {
            slot.session
                .logout(b"throttle limits exceeded for too long", now, out);
            // The session waits for the client's Logout (or its logout timeout), then closes.
            self.counters.inc(Counter::ThrottleLogouts);
        }
        if let Some(c) = c {
            self.dirty.mark(c);
        }
    }

    /// Counts a throttle refusal of session `s`, audits the start of a streak of them, and
    /// composes its answer: Text naming the limit and the wait, RetryAfterMs, and whether
    /// refusals kept coming for [`AbuseConfig::sustain_ns`](crate::throttle::AbuseConfig)
    /// (then the session ends). Stack buffers only.
    #[cold]
    pub(crate) fn throttle_answer(
        &mut self,
        s: SessionId,
        limit: Limit,
        retry_after_ms: u64,
        now: Nanos,
    ) -> Option<ThrottleAnswer> {
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
        let slot = self.sessions.get_mut(s.index())?;
        let streak_started = !slot.abuse.in_streak(now);
        let verdict = slot.abuse.on_reject(now);
        if streak_started {
            self.emit(Event::Throttled {
                session: s,
                limit: limit.name(),
                at: now,
            });
        }
        Some(ThrottleAnswer {
            text,
            len: n,
            retry_after_ms: (!never).then_some(retry_after_ms),
            end_session: verdict == AbuseVerdict::Logout,
        })
    }

    #[cold]
    fn business_reject(
        &mut self,
        s: SessionId,
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
            self.dirty.mark(c);
        }
    }

    // ---- Translation: FIX application messages → desk intents ------------------------------

    /// The desk and the FIX outbox over this engine's sessions and venue links.
    #[inline]
    pub(crate) fn desk_out(&mut self) -> (&mut OrderDesk, Wire<'_>) {
        let wire = Wire {
            sessions: &mut self.sessions,
            conns: &mut self.conns,
            detached: &mut self.detached,
            dirty: &mut self.dirty,
            drop_copies: &self.drop_copies,
            answering: self.answering,
            links: &mut self.links,
            latency: &mut self.latency,
        };
        (&mut self.desk, wire)
    }

    /// An OrderCancelReject about no known order (a refusal before the desk looked).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn desk_cancel_reject(
        &mut self,
        s: SessionId,
        cl: &[u8],
        orig: &[u8],
        to: CancelRejectTo,
        reason: u32,
        text: &[u8],
        now: Nanos,
    ) {
        let (desk, mut out) = self.desk_out();
        desk.cancel_reject(&mut out, s, None, cl, orig, to, reason, text, now);
    }

    /// A refusal of a NewOrderSingle before it reached the desk's checks (a bad field).
    #[cold]
    fn reject_order(&mut self, order: &Order, why: Refusal, now: Nanos) {
        let mut text = [0u8; 96];
        let n = why.render(&mut text);
        let (desk, mut out) = self.desk_out();
        desk.refuse(&mut out, order, why.reason, &text[..n], true, now);
    }

    fn on_new_order(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::OrdersReceived);
        let Some(slot) = self.sessions.get(s.index()) else {
            return;
        };
        let mut order = blank_order(s, slot.default_account);
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
        let (desk, mut out) = self.desk_out();
        desk.new_order(&mut out, order, msg.get(tags::EX_DESTINATION), now);
    }

    fn on_cancel(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        let (desk, mut out) = self.desk_out();
        desk.cancel(&mut out, s, cl, orig, now);
    }

    fn on_replace(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        self.counters.inc(Counter::ReplacesReceived);
        // Validate the new terms before touching the order, so a bad replace changes nothing.
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        let orig = msg.get(tags::ORIG_CL_ORD_ID).unwrap_or(b"");
        let terms = match (msg.qty(tags::ORDER_QTY), msg.price(tags::PRICE)) {
            (Ok(Some(q)), Ok(p)) if q.0 > 0 => Ok((q, p)),
            (Ok(Some(q)), Err(_)) if q.0 > 0 => Err(b"incorrect Price(44)".as_slice()),
            _ => Err(b"OrderQty(38) must be present and positive".as_slice()),
        };
        let (desk, mut out) = self.desk_out();
        let (qty, price) = match terms {
            Ok(t) => t,
            Err(text) => {
                return desk.cancel_reject(
                    &mut out,
                    s,
                    None,
                    cl,
                    orig,
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    text,
                    now,
                )
            }
        };
        let intent = ReplaceIntent {
            cl,
            orig,
            qty,
            price,
            side: msg.char(tags::SIDE).ok().flatten().map(Side::from_fix),
            ord_type: msg
                .char(tags::ORD_TYPE)
                .ok()
                .flatten()
                .map(OrdType::from_fix),
            symbol: msg.get(tags::SYMBOL),
            account: msg.get(tags::ACCOUNT),
        };
        desk.replace(&mut out, s, &intent, now);
    }

    fn on_status(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"");
        // An unknown order's report carries what the request said about it.
        let mut asked = blank_order(s, crate::model::Account::EMPTY);
        let _ = parse_new_order(msg, &mut asked);
        let (desk, mut out) = self.desk_out();
        if desk.status(&mut out, s, cl, &asked, now) == Err(Denied) {
            self.denied(s, msg, "account", now);
        }
    }

    fn on_mass_cancel(&mut self, s: SessionId, msg: &Message<'_>, now: Nanos) {
        let cl = msg.get(tags::CL_ORD_ID).unwrap_or(b"NONE");
        let request_type = msg
            .char(tags::MASS_CANCEL_REQUEST_TYPE)
            .ok()
            .flatten()
            .unwrap_or(b'0');
        let symbol = msg.get(tags::SYMBOL).and_then(Symbol::new);
        let (desk, mut out) = self.desk_out();
        desk.mass_cancel(&mut out, s, cl, request_type, symbol, now);
    }

    /// Cancel-on-disconnect of session `s` (its reports are stored for its next logon).
    #[cold]
    pub(crate) fn cancel_session_orders(&mut self, s: SessionId, now: Nanos) {
        let (desk, mut out) = self.desk_out();
        desk.cancel_session_orders(&mut out, s, now);
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
        let mut o = blank_order(SessionId(0), crate::model::Account::EMPTY);
        parse_new_order(&m, &mut o).unwrap();
        assert_eq!(o.qty, crate::model::Qty::from_units(100));
        assert_eq!(o.price, Some(crate::model::Price(1_050_000_000)));
        let msg = with_trailer(b"8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x0111=A1\x0155=AAPL\x0154=1\x0138=-5\x0140=2\x0144=10.5\x01");
        let m = Message::decode(&msg).unwrap();
        let mut o = blank_order(SessionId(0), crate::model::Account::EMPTY);
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
