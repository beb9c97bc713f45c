//! HOT — the engine's side of venues: requests to the embedded simulator (synchronous answers)
//! and to external FIX venues (an initiator session on a connection in the engine's slab, with
//! reconnect, "venue down" refusals and reconciliation by OrderStatusRequest after each logon).

use std::mem;
use std::net::SocketAddr;

use mio::{Interest, Token};

use super::stores::AnyStore;
use super::{Engine, VenueKind};
use crate::engine::exec::Exec;
use crate::fix::{Message, MsgType};
use crate::handoff::Event;
use crate::model::{ExecType, Nanos, OrdStatus, OrderKey, Price, Qty};
use crate::monitor::Counter;
use crate::net::{self, Conn};
use crate::order::Pending;
use crate::session::{Inbound, Session};
use crate::venue::fix::{self as vfix, AnswerKind};
use crate::venue::{VenueEvent, VenueOrder};

/// An external venue reached through a FIX 4.4 initiator session.
pub struct FixVenue {
    pub addr: SocketAddr,
    pub session: Session<AnyStore>,
    /// The connection slot while connected (or connecting).
    pub conn: Option<usize>,
    pub reconnect: Nanos,
    pub next_attempt: Nanos,
    /// Answers that matched no order of ours (stale or foreign ClOrdIDs).
    pub unmatched: u64,
    /// TLS to the venue: client configuration (CA, optional client certificate) and the name
    /// its certificate must carry. None: plaintext.
    pub tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// What the engine asks of a venue about one order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum VenueRequest {
    New,
    Cancel,
    Replace { qty: Qty, price: Option<Price> },
    Status,
}

impl Engine {
    /// Sends `req` about order `key` to the order's venue; synchronous venues answer at once.
    pub(crate) fn venue_request(&mut self, key: OrderKey, req: VenueRequest, now: Nanos) {
        self.stamp_sent(key, req);
        let Some(o) = self.orders.get(key).copied() else {
            return;
        };
        let v = usize::from(o.venue);
        let mut evs = mem::take(&mut self.venue_events);
        evs.clear();
        match self.venues.get_mut(v).map(|slot| (&mut slot.kind, slot.up)) {
            Some((VenueKind::Sim(sim), _)) => {
                let mut push = |e| evs.push(e);
                match req {
                    VenueRequest::New => {
                        let vo = VenueOrder {
                            key,
                            symbol: o.symbol,
                            side: o.side,
                            ord_type: o.ord_type,
                            tif: o.tif,
                            qty: o.leaves(),
                            price: o.price,
                        };
                        sim.new_order(&vo, now, &mut push);
                    }
                    VenueRequest::Cancel => sim.cancel(key, now, &mut push),
                    VenueRequest::Replace { qty, price } => {
                        sim.replace(key, key, qty, price, now, &mut push)
                    }
                    VenueRequest::Status => {}
                }
                let reference = sim.last_price(&o.symbol);
                if req == VenueRequest::New {
                    self.reconcile_sent(&o, now);
                }
                self.reference_from_sim(&o.symbol, reference, now);
            }
            Some((VenueKind::Fix(fx), up)) => {
                let conn = fx
                    .conn
                    .and_then(|c| self.conns.get_mut(c))
                    .and_then(Option::as_mut);
                match (up, conn) {
                    (true, Some(conn)) => {
                        let n = o.venue_req + 1;
                        let live = o.venue_live;
                        let sent = match req {
                            VenueRequest::New => {
                                fx.session.send_app(b"D", now, &mut conn.out, |w| {
                                    vfix::new_order(w, key, &o, now)
                                })
                            }
                            VenueRequest::Cancel => {
                                fx.session.send_app(b"F", now, &mut conn.out, |w| {
                                    vfix::cancel(w, key, &o, n, live, now)
                                })
                            }
                            VenueRequest::Replace { qty, price } => {
                                fx.session.send_app(b"G", now, &mut conn.out, |w| {
                                    vfix::replace(w, key, &o, n, live, qty, price, now)
                                })
                            }
                            VenueRequest::Status => {
                                fx.session.send_app(b"H", now, &mut conn.out, |w| {
                                    vfix::status(w, key, &o, live)
                                })
                            }
                        };
                        let c = fx.conn;
                        if sent.is_ok() && req == VenueRequest::New {
                            self.reconcile_sent(&o, now);
                        }
                        if sent.is_ok()
                            && matches!(req, VenueRequest::Cancel | VenueRequest::Replace { .. })
                        {
                            if let Some(order) = self.orders.get_mut(key) {
                                order.venue_req = n;
                            }
                        }
                        if let Some(c) = c {
                            self.mark_dirty(c);
                        }
                        // An external venue answers later: tell the client now that the
                        // instruction is on its way (PendingNew / PendingCancel / PendingReplace).
                        if sent.is_ok() {
                            self.report_pending(key, req, now);
                        }
                    }
                    _ => {
                        let refusal = match req {
                            VenueRequest::New => Some(VenueEvent::Rejected {
                                key,
                                reason: "venue is down: order not routed",
                            }),
                            VenueRequest::Cancel => Some(VenueEvent::CancelRejected {
                                key,
                                reason: "venue is down: cancel not sent",
                            }),
                            VenueRequest::Replace { .. } => Some(VenueEvent::ReplaceRejected {
                                key,
                                new_key: key,
                                reason: "venue is down: replace not sent",
                            }),
                            // Status is asked again on the next logon.
                            VenueRequest::Status => None,
                        };
                        evs.extend(refusal);
                    }
                }
            }
            None => {}
        }
        self.apply_venue_events(&evs, now);
        self.venue_events = evs;
    }

    /// ExecutionReport PendingNew (150=A), PendingCancel (150=6) or PendingReplace (150=E) for
    /// an instruction sent to an asynchronous venue.
    fn report_pending(&mut self, key: OrderKey, req: VenueRequest, now: Nanos) {
        if req == VenueRequest::Status {
            return;
        }
        let Some(order) = self.orders.get_mut(key) else {
            return;
        };
        order.exec_seq += 1; // each report gets its own ExecID
        let o = *order;
        self.journal_later(key);
        self.journal_pending(now);
        let (exec_type, status, cl) = match (req, o.pending) {
            (VenueRequest::New, _) => (ExecType::PendingNew, OrdStatus::PendingNew, o.cl_ord_id),
            (VenueRequest::Cancel, Pending::Cancel { cl_ord_id }) => {
                (ExecType::PendingCancel, OrdStatus::PendingCancel, cl_ord_id)
            }
            (VenueRequest::Replace { .. }, Pending::Replace { cl_ord_id, .. }) => (
                ExecType::PendingReplace,
                OrdStatus::PendingReplace,
                cl_ord_id,
            ),
            _ => return, // status requests and cancel-on-disconnect have no client instruction
        };
        let orig = (req != VenueRequest::New).then_some(o.cl_ord_id);
        let e = Exec {
            exec_type,
            status,
            cl_ord_id: cl.as_bytes(),
            orig_cl_ord_id: orig.as_ref().map(|x| x.as_bytes()),
            last: None,
            rej_reason: None,
            text: None,
        };
        self.send_exec(&o, &e, now);
    }

    /// Starts connections to external venues that are due for a (re)connect.
    #[cold]
    pub(crate) fn venue_timers(&mut self, now: Nanos) {
        for v in 0..self.venues.len() {
            let Some(slot) = self.venues.get_mut(v) else {
                continue;
            };
            let VenueKind::Fix(fx) = &mut slot.kind else {
                continue;
            };
            if fx.conn.is_some() || now < fx.next_attempt {
                continue;
            }
            fx.next_attempt = now.add(fx.reconnect);
            let Ok(stream) = net::connect(fx.addr) else {
                continue;
            };
            let Some(c) = self.free_conns.pop() else {
                continue;
            };
            let mut conn = Conn::new(
                stream,
                fx.addr,
                self.gw.recv_buffer_bytes,
                self.gw.send_buffer_bytes,
                now,
            );
            conn.venue = Some(v as u16);
            conn.connecting = true;
            if let Some((cfg, name)) = &fx.tls {
                match rustls::ClientConnection::new(cfg.clone(), name.clone()) {
                    Ok(mut tls) => {
                        tls.set_buffer_limit(Some(net::tls::SEND_LIMIT_BYTES));
                        conn.tls = Some(Box::new(rustls::Connection::Client(tls)));
                    }
                    Err(_) => {
                        self.counters.inc(Counter::TlsFailures);
                        self.free_conns.push(c);
                        continue;
                    }
                }
            }
            if self
                .poll
                .registry()
                .register(
                    &mut conn.stream,
                    Token(c),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free_conns.push(c);
                continue;
            }
            fx.conn = Some(c);
            if let Some(s) = self.conns.get_mut(c) {
                *s = Some(conn);
            }
        }
    }

    /// A venue connection became writable: finish a pending connect by logging on.
    #[cold]
    pub(crate) fn venue_connected(&mut self, c: usize, now: Nanos) {
        let Some(Some(conn)) = self.conns.get_mut(c) else {
            return;
        };
        if !conn.connecting {
            return;
        }
        let ok = matches!(conn.stream.take_error(), Ok(None)) && conn.stream.peer_addr().is_ok();
        if !ok {
            conn.dead = true;
            return;
        }
        conn.connecting = false;
        let Some(v) = conn.venue else { return };
        if let Some(VenueKind::Fix(fx)) = self.venues.get_mut(usize::from(v)).map(|s| &mut s.kind) {
            fx.session.start_logon(now, &mut conn.out);
        }
        self.mark_dirty(c);
    }

    /// A message from venue `v` on connection `c`.
    pub(crate) fn on_venue_message(&mut self, v: u16, c: usize, msg: &Message<'_>, now: Nanos) {
        let (Some(slot), Some(Some(conn))) =
            (self.venues.get_mut(usize::from(v)), self.conns.get_mut(c))
        else {
            return;
        };
        let VenueKind::Fix(fx) = &mut slot.kind else {
            return;
        };
        let inbound = fx.session.on_message(msg, now, &mut conn.out);
        self.mark_dirty(c);
        match inbound {
            Inbound::Handled => {}
            Inbound::LoggedOn => self.venue_up(v, now),
            Inbound::Application => self.on_venue_answer(v, msg, now),
            Inbound::Disconnect(_) => {
                if let Some(Some(conn)) = self.conns.get_mut(c) {
                    conn.closing = true;
                }
            }
        }
        // Answers that arrived ahead of a gap and are now in sequence.
        loop {
            let mut scratch = mem::take(&mut self.scratch);
            let n = match self.venues.get_mut(usize::from(v)).map(|s| &mut s.kind) {
                Some(VenueKind::Fix(fx)) => fx.session.take_queued(&mut scratch),
                _ => None,
            };
            if let Some(m) = n
                .and_then(|n| scratch.get(..n))
                .and_then(|b| Message::decode(b).ok())
            {
                if m.msg_type() != MsgType::LOGON {
                    self.on_venue_message(v, c, &m, now);
                }
            }
            self.scratch = scratch;
            if n.is_none() {
                break;
            }
        }
    }

    /// The venue session is logged on: route to it again and reconcile every open order there.
    #[cold]
    fn venue_up(&mut self, v: u16, now: Nanos) {
        if let Some(slot) = self.venues.get_mut(usize::from(v)) {
            slot.up = true;
        }
        self.counters.inc(Counter::VenueConnects);
        self.emit(Event::VenueUp { venue: v, at: now });
        let mut keys = mem::take(&mut self.keys);
        self.orders.open_orders(&mut keys, |o| o.venue == v);
        for &key in &keys {
            self.venue_request(key, VenueRequest::Status, now);
        }
        self.keys = keys;
    }

    /// The venue connection closed: refuse new orders for it until it is back.
    #[cold]
    pub(crate) fn venue_down(&mut self, v: u16, now: Nanos, reason: &'static str) {
        if let Some(slot) = self.venues.get_mut(usize::from(v)) {
            slot.up = false;
            if let VenueKind::Fix(fx) = &mut slot.kind {
                fx.conn = None;
                fx.session.on_disconnect(now);
                fx.next_attempt = now.add(fx.reconnect);
            }
        }
        self.counters.inc(Counter::VenueDisconnects);
        self.emit(Event::VenueDown {
            venue: v,
            reason,
            at: now,
        });
    }

    /// Maps a venue's ExecutionReport / OrderCancelReject to the order it is about.
    fn on_venue_answer(&mut self, v: u16, msg: &Message<'_>, now: Nanos) {
        let answer = vfix::parse_answer(msg);
        let order = answer.and_then(|a| {
            self.orders
                .get(a.key)
                .copied()
                .filter(|o| o.order_id == a.order_id && o.venue == v)
        });
        let (Some(a), Some(o)) = (answer, order) else {
            if let Some(VenueKind::Fix(fx)) =
                self.venues.get_mut(usize::from(v)).map(|s| &mut s.kind)
            {
                fx.unmatched += 1;
            }
            return self.venue_unmatched(v, msg, now);
        };
        let key = a.key;
        let ev = match a.kind {
            AnswerKind::CancelReject { replace: false } => VenueEvent::CancelRejected {
                key,
                reason: "cancel refused by the venue",
            },
            AnswerKind::CancelReject { replace: true } => VenueEvent::ReplaceRejected {
                key,
                new_key: key,
                reason: "replace refused by the venue",
            },
            AnswerKind::Report {
                exec_type,
                status,
                venue_order_id,
                qty,
                price,
                last,
                cum,
                leaves,
            } => match exec_type {
                b'0' => VenueEvent::Accepted {
                    key,
                    venue_order_id,
                },
                b'F' | b'1' | b'2' => match last {
                    Some((q, p)) => VenueEvent::Fill {
                        key,
                        qty: q,
                        price: p,
                        exec_id: 0,
                        leaves,
                    },
                    None => return,
                },
                b'4' | b'C' | b'3' => VenueEvent::Canceled {
                    key,
                    canceled_qty: leaves,
                },
                b'5' => {
                    if let Some(order) = self.orders.get_mut(key) {
                        order.venue_live = a.n;
                    }
                    VenueEvent::Replaced {
                        key,
                        new_key: key,
                        qty: qty.unwrap_or(o.qty),
                        price: price.or(o.price),
                        leaves,
                    }
                }
                b'8' if a.n == 0 => {
                    // Keep the venue's own reason: it is what the client needs to act on.
                    let mut text = [0u8; 128];
                    let prefix = b"rejected by the venue: ";
                    text[..prefix.len()].copy_from_slice(prefix);
                    let theirs = msg
                        .get(crate::fix::tags::TEXT)
                        .unwrap_or(b"no reason given");
                    let n = crate::auth::mask::cut_len(theirs, text.len() - prefix.len());
                    text[prefix.len()..prefix.len() + n].copy_from_slice(&theirs[..n]);
                    // The only third-party free text we send: masked before it is sent, stored
                    // for resend and recorded, so no copy holds a card number (DATA-4). In
                    // place, no allocation; venue rejects only.
                    crate::auth::mask::card_numbers(&mut text[prefix.len()..prefix.len() + n]);
                    self.rejected_at_venue(key, &text[..prefix.len() + n], now);
                    return self.journal_pending(now);
                }
                b'I' => {
                    return self.reconcile(key, &o, status, venue_order_id, cum, last, price, now)
                }
                _ => return, // pending states and restatements carry nothing we act on
            },
        };
        self.apply_venue_events(&[ev], now);
    }

    /// Reconciliation: a venue ExecutionReport about an order the gateway has no record of.
    /// If it says the venue holds or executed an order (ExecType new, fill, restated,
    /// replaced) for a configured account, that account's kill switch goes on and an alert is
    /// raised: exposure exists that the gateway did not accept from a client.
    #[cold]
    #[inline(never)]
    fn venue_unmatched(&mut self, v: u16, msg: &Message<'_>, now: Nanos) {
        if msg.msg_type() != MsgType::EXECUTION_REPORT {
            return;
        }
        let live = matches!(
            msg.get(crate::fix::tags::EXEC_TYPE),
            Some(b"0" | b"1" | b"2" | b"F" | b"5" | b"D")
        );
        let account = msg
            .get(crate::fix::tags::ACCOUNT)
            .and_then(crate::model::Account::new);
        if let (true, Some(account)) = (live, account) {
            if self.risk.note_venue_unmatched(&account) {
                self.reconciliation_mismatch(
                    account,
                    v,
                    "venue reported an order the gateway never sent",
                    now,
                );
            }
        }
    }

    /// An OrderStatus answer after a reconnect: bring our view in line with the venue's.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn reconcile(
        &mut self,
        key: OrderKey,
        o: &crate::order::Order,
        status: OrdStatus,
        venue_order_id: crate::model::VenueOrderId,
        cum: Qty,
        last: Option<(Qty, Price)>,
        price: Option<Price>,
        now: Nanos,
    ) {
        let mut evs = [None, None, None];
        if o.status == OrdStatus::PendingNew && status != OrdStatus::Rejected {
            evs[0] = Some(VenueEvent::Accepted {
                key,
                venue_order_id,
            });
        }
        if cum.0 > o.cum_qty.0 {
            // Fills we missed while disconnected; the venue's resend normally delivers them,
            // this covers a venue that reset its sequence numbers.
            let px = last.map(|l| l.1).or(price).or(o.price).unwrap_or(Price(0));
            evs[1] = Some(VenueEvent::Fill {
                key,
                qty: Qty(cum.0 - o.cum_qty.0),
                price: px,
                exec_id: 0,
                leaves: Qty((o.qty.0 - cum.0).max(0)),
            });
        }
        match status {
            OrdStatus::Canceled | OrdStatus::Expired => {
                evs[2] = Some(VenueEvent::Canceled {
                    key,
                    canceled_qty: Qty::ZERO,
                })
            }
            OrdStatus::Rejected if o.status == OrdStatus::PendingNew => {
                evs[2] = Some(VenueEvent::Rejected {
                    key,
                    reason: "rejected by the venue (found on reconnect)",
                })
            }
            _ => {}
        }
        for e in evs.into_iter().flatten() {
            self.apply_venue_events(&[e], now);
        }
    }
}
