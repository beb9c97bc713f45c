//! HOT — the FIX side of the desk's [`Outbox`]: reports become ExecutionReport <8>,
//! OrderCancelReject <9> and OrderMassCancelReport <r> on the client's session (and its
//! account's drop-copy sessions), carrying the routing header fields of the instruction they
//! answer; requests for external venues go out on the venue's FIX initiator session.
//!
//! A [`Wire`] borrows the shell's sessions, connections and venue links for one desk call
//! ([`Engine::desk_out`](super::Engine)); connections written to are marked for the flush at the
//! end of the duty cycle.

use super::app::Answering;
use super::binary::FixpOut;
use super::conns::{Conns, Dirty};
use super::exec;
use super::sbe_out;
use super::venues::Links;
use super::SessionSlot;
use crate::auth::Scopes;
use crate::desk::{
    CancelRejectTo, DeskSession, Exec, MassCancelReport, Outbox, ReplyContext, VenueRequest,
    VenueSend,
};
use crate::fix::ReplyRouting;
use crate::model::{ConnId, Nanos, OrderKey, SessionId};
use crate::order::{Order, OrderTable};
use crate::session::OutBuf;
use crate::venue::fix as vfix;

/// The shell's state a desk call may write to.
pub(crate) struct Wire<'a> {
    pub sessions: &'a mut [SessionSlot],
    pub conns: &'a mut Conns,
    /// Output of sessions with no connection: messages are stored for resend, never sent.
    pub detached: &'a mut OutBuf,
    pub dirty: &'a mut Dirty,
    /// Indices of the drop-copy sessions.
    pub drop_copies: &'a [SessionId],
    /// The inbound message being answered, as far as the routing of its replies goes.
    pub answering: Answering,
    /// External venues' FIX links, by venue index (`None`: in-process venue).
    pub links: &'a mut Links,
    pub latency: &'a mut crate::monitor::latency::Recorder,
}

impl Wire<'_> {
    /// The routing fields of a message about `order`: those of the inbound message being
    /// answered, else the order's own (a later venue answer). `None` when there are none.
    #[inline]
    fn routing_for(&self, orders: &OrderTable, order: Option<&Order>) -> Option<ReplyRouting> {
        match &self.answering {
            Answering::Plain => None,
            Answering::Routed(r) => Some(*r),
            Answering::Idle => order
                .and_then(|o| orders.extras_of(o))
                .and_then(|e| e.routing.non_empty()),
        }
    }

    /// Session `s`, the buffer its messages go to (its connection's, or the detached sink)
    /// and its connection.
    fn session_and_out(
        &mut self,
        s: SessionId,
    ) -> Option<(&mut SessionSlot, &mut OutBuf, Option<ConnId>)> {
        let slot = self.sessions.get_mut(s.index())?;
        let conn_idx = slot.conn;
        let out = match conn_idx.and_then(|c| self.conns.get_mut(c)) {
            Some(conn) => &mut conn.out,
            None => {
                self.detached.clear();
                &mut *self.detached
            }
        };
        Some((slot, out, conn_idx))
    }

    /// Drop copy: the same ExecutionReport to every drop-copy session of the order's account
    /// (stored for resend like any message of those sessions).
    fn drop_copy(&mut self, principals: &[DeskSession], order: &Order, e: &Exec<'_>, now: Nanos) {
        let exec_id = u64::from(order.exec_seq);
        for i in 0..self.drop_copies.len() {
            let Some(&dc) = self.drop_copies.get(i) else {
                continue;
            };
            let allowed = self
                .sessions
                .get(dc.index())
                .is_some_and(|slot| slot.drop_copy.contains(&order.account))
                && principals.get(dc.index()).is_some_and(|p| {
                    p.grants.scopes.contains(Scopes::ORDERS_READ)
                    // Without a key, the drop copy's configured accounts are its grant.
                    && (p.grants.key_id.is_empty()
                        || p.grants.allows_account(order.account.as_bytes()))
                });
            if dc == order.session || !allowed {
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
                self.dirty.mark(c);
            }
        }
    }
}

impl Outbox for Wire<'_> {
    #[inline]
    fn context(&self) -> Option<ReplyContext> {
        match &self.answering {
            Answering::Routed(r) => Some(*r),
            Answering::Plain | Answering::Idle => None,
        }
    }

    #[inline]
    fn exec(
        &mut self,
        orders: &OrderTable,
        principals: &[DeskSession],
        order: &Order,
        e: &Exec<'_>,
        copy: bool,
        now: Nanos,
    ) {
        let s = order.session;
        let exec_id = u64::from(order.exec_seq);
        let routing = self.routing_for(orders, Some(order));
        if let Some((slot, out, c)) = self.session_and_out(s) {
            if let Some(bin) = slot.bin.as_deref_mut() {
                let mut o = FixpOut::new(out);
                let _ = bin.fixp.send_application(now, &mut o, |seq, buf| {
                    sbe_out::execution_report(buf, seq, now, order, e, exec_id)
                });
            } else {
                let v = slot.begin;
                let _ = slot.session.send_app_routed(
                    b"8",
                    ReplyRouting::or_none(&routing),
                    now,
                    out,
                    |w| exec::execution_report(w, v, order, e, exec_id, now),
                );
            }
            if let Some(c) = c {
                self.dirty.mark(c);
                // The order's first answer (a refusal before the table carries OrderID 0).
                if order.exec_seq == 1 || (order.order_id == 0 && order.received_at == now) {
                    self.latency.answered(order.received_at);
                }
            }
        }
        if copy && !self.drop_copies.is_empty() {
            self.drop_copy(principals, order, e, now);
        }
    }

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
    ) {
        let routing = self.routing_for(orders, order);
        let Some((slot, out, c)) = self.session_and_out(session) else {
            return;
        };
        if let Some(bin) = slot.bin.as_deref_mut() {
            let mut o = FixpOut::new(out);
            let _ = bin.fixp.send_application(now, &mut o, |seq, buf| {
                sbe_out::order_cancel_reject(buf, seq, now, order, cl, orig, to, reason, text)
            });
        } else {
            let v = slot.begin;
            let _ = slot.session.send_app_routed(
                b"9",
                ReplyRouting::or_none(&routing),
                now,
                out,
                |w| exec::order_cancel_reject(w, v, order, cl, orig, to, reason, text),
            );
        }
        if let Some(c) = c {
            self.dirty.mark(c);
        }
    }

    fn mass_cancel_report(&mut self, session: SessionId, r: &MassCancelReport<'_>, now: Nanos) {
        let routing = self.context();
        let Some((slot, out, c)) = self.session_and_out(session) else {
            return;
        };
        if let Some(bin) = slot.bin.as_deref_mut() {
            let mut o = FixpOut::new(out);
            let _ = bin.fixp.send_application(now, &mut o, |seq, buf| {
                sbe_out::mass_cancel_report(buf, seq, now, r)
            });
            if let Some(c) = c {
                self.dirty.mark(c);
            }
            return;
        }
        let _ =
            slot.session
                .send_app_routed(b"r", ReplyRouting::or_none(&routing), now, out, |w| {
                    exec::mass_cancel_report(
                        w,
                        r.cl_ord_id,
                        r.report_id,
                        r.request_type,
                        r.accepted,
                        r.affected,
                        r.text,
                    )
                });
        if let Some(c) = c {
            self.dirty.mark(c);
        }
    }

    fn venue(
        &mut self,
        venue: crate::model::VenueId,
        key: OrderKey,
        o: &Order,
        n: u32,
        req: VenueRequest,
        now: Nanos,
    ) -> VenueSend {
        let Some(fx) = self.links.get_mut(venue) else {
            return VenueSend::Down;
        };
        let Some(c) = fx.conn else {
            return VenueSend::Down;
        };
        let Some(conn) = self.conns.get_mut(c) else {
            return VenueSend::Down;
        };
        let live = o.venue_live;
        let sent = match req {
            VenueRequest::New => fx.session.send_app(b"D", now, &mut conn.out, |w| {
                vfix::new_order(w, key, o, now)
            }),
            VenueRequest::Cancel => fx.session.send_app(b"F", now, &mut conn.out, |w| {
                vfix::cancel(w, key, o, n, live, now)
            }),
            VenueRequest::Replace { qty, price } => {
                fx.session.send_app(b"G", now, &mut conn.out, |w| {
                    vfix::replace(w, key, o, n, live, qty, price, now)
                })
            }
            VenueRequest::Status => fx
                .session
                .send_app(b"H", now, &mut conn.out, |w| vfix::status(w, key, o, live)),
        };
        self.dirty.mark(c);
        if sent.is_ok() {
            if !matches!(req, VenueRequest::Status) {
                let n = if matches!(req, VenueRequest::New) {
                    0
                } else {
                    n
                };
                self.latency.venue_sent(key.0, o.order_id, n, now);
            }
            VenueSend::Sent
        } else {
            VenueSend::Failed
        }
    }
}
