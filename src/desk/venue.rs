//! HOT — the desk's side of venues: requests to the in-process simulator (answered at once) and,
//! through the [`Outbox`], to external venues (answered later, through the shell's venue links);
//! "venue down" refusals; PendingNew/PendingCancel/PendingReplace reports; reconciliation after
//! a venue reconnects (status answers) and of answers about orders the desk never sent.

use std::mem;

use super::report::Exec;
use super::{OrderDesk, Outbox};
use crate::handoff::Event;
use crate::model::{Account, ExecType, Nanos, OrdStatus, OrderKey, Price, Qty, VenueOrderId};
use crate::monitor::Counter;
use crate::order::{Order, Pending};
use crate::venue::{VenueEvent, VenueOrder};

/// What the desk asks of a venue about one order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VenueRequest {
    New,
    Cancel,
    Replace { qty: Qty, price: Option<Price> },
    Status,
}

/// What became of a request written for an external venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenueSend {
    Sent,
    /// The venue is connected but the request could not be written.
    Failed,
    /// Not connected (or not logged on): refused at once.
    Down,
}

/// A venue's answer to a status request (after a reconnect): its view of the order.
#[derive(Clone, Copy, Debug)]
pub struct VenueStatus {
    pub status: OrdStatus,
    pub venue_order_id: VenueOrderId,
    pub cum: Qty,
    pub last: Option<(Qty, Price)>,
    pub price: Option<Price>,
}

impl OrderDesk {
    /// Sends `req` about order `key` to the order's venue; the simulator answers at once.
    pub(crate) fn venue_request(
        &mut self,
        out: &mut dyn Outbox,
        key: OrderKey,
        req: VenueRequest,
        now: Nanos,
    ) {
        self.stamp_sent(key, req);
        let Some(o) = self.orders.get(key).copied() else {
            return;
        };
        let v = o.venue.index();
        let mut evs = mem::take(&mut self.venue_events);
        evs.clear();
        match self.venues.get_mut(v).map(|slot| (&mut slot.sim, slot.up)) {
            Some((Some(sim), _)) => {
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
                    self.reconcile_sent(out, &o, now);
                }
                self.reference_from_sim(&o.symbol, reference, now);
            }
            Some((None, up)) => {
                let n = o.venue_req + 1;
                let sent = if up {
                    out.venue(o.venue, key, &o, n, req, now)
                } else {
                    VenueSend::Down
                };
                match sent {
                    VenueSend::Sent => {
                        if req == VenueRequest::New {
                            self.reconcile_sent(out, &o, now);
                        }
                        if matches!(req, VenueRequest::Cancel | VenueRequest::Replace { .. }) {
                            if let Some(order) = self.orders.get_mut(key) {
                                order.venue_req = n;
                            }
                        }
                        // An external venue answers later: tell the client now that the
                        // instruction is on its way (PendingNew / PendingCancel /
                        // PendingReplace).
                        self.report_pending(out, key, req, now);
                    }
                    // The link's session refused to write it (its store failed): the
                    // instruction stays where it is; the session layer reports the fault.
                    VenueSend::Failed => {}
                    VenueSend::Down => {
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
        self.apply_venue_events(out, &evs, now);
        self.venue_events = evs;
    }

    /// ExecutionReport PendingNew (150=A), PendingCancel (150=6) or PendingReplace (150=E) for
    /// an instruction sent to an asynchronous venue.
    fn report_pending(
        &mut self,
        out: &mut dyn Outbox,
        key: OrderKey,
        req: VenueRequest,
        now: Nanos,
    ) {
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
        self.send_exec(out, &o, &e, now);
    }

    /// External venue `v` is logged on: route to it again and ask it the status of every open
    /// order it holds.
    #[cold]
    pub fn venue_up(&mut self, out: &mut dyn Outbox, v: crate::model::VenueId, now: Nanos) {
        if let Some(slot) = self.venues.get_mut(v.index()) {
            slot.up = true;
        }
        self.counters.inc(Counter::VenueConnects);
        self.emit(Event::VenueUp { venue: v, at: now });
        let mut keys = mem::take(&mut self.keys);
        self.orders.open_orders(&mut keys, |o| o.venue == v);
        for &key in &keys {
            self.venue_request(out, key, VenueRequest::Status, now);
        }
        self.keys = keys;
    }

    /// External venue `v` is gone: new orders for it are refused until it is back.
    #[cold]
    pub fn venue_down(&mut self, v: crate::model::VenueId, now: Nanos, reason: &'static str) {
        if let Some(slot) = self.venues.get_mut(v.index()) {
            slot.up = false;
        }
        self.counters.inc(Counter::VenueDisconnects);
        self.emit(Event::VenueDown {
            venue: v,
            reason,
            at: now,
        });
    }

    /// The order `key` that external venue `v` answers about, if the answer's OrderID matches
    /// the order's (a recycled slot's old answers match nothing).
    pub fn venue_order(
        &self,
        v: crate::model::VenueId,
        key: OrderKey,
        order_id: u64,
    ) -> Option<Order> {
        self.orders
            .get(key)
            .copied()
            .filter(|o| o.order_id == order_id && o.venue == v)
    }

    /// A venue's replace confirmation carries the number of the request it answers.
    pub fn note_venue_live(&mut self, key: OrderKey, n: u32) {
        if let Some(order) = self.orders.get_mut(key) {
            order.venue_live = n;
        }
    }

    /// Reconciliation: a venue reported an order the desk has no record of. If it says the
    /// venue holds or executed an order (`live`) for a configured account, that account's kill
    /// switch goes on and an alert is raised: exposure exists that the gateway did not accept
    /// from a client.
    #[cold]
    #[inline(never)]
    pub fn venue_unmatched(
        &mut self,
        out: &mut dyn Outbox,
        v: crate::model::VenueId,
        account: Option<Account>,
        live: bool,
        now: Nanos,
    ) {
        if let (true, Some(account)) = (live, account) {
            if self.risk.note_venue_unmatched(&account) {
                self.reconciliation_mismatch(
                    out,
                    account,
                    v,
                    "venue reported an order the gateway never sent",
                    now,
                );
            }
        }
    }

    /// A status answer after a reconnect: bring the desk's view of order `key` (`o`, as the
    /// desk holds it) in line with the venue's.
    #[cold]
    pub fn reconcile(
        &mut self,
        out: &mut dyn Outbox,
        key: OrderKey,
        o: &Order,
        st: &VenueStatus,
        now: Nanos,
    ) {
        let mut evs = [None, None, None];
        if o.status == OrdStatus::PendingNew && st.status != OrdStatus::Rejected {
            evs[0] = Some(VenueEvent::Accepted {
                key,
                venue_order_id: st.venue_order_id,
            });
        }
        if st.cum.0 > o.cum_qty.0 {
            // Fills we missed while disconnected; the venue's resend normally delivers them,
            // this covers a venue that reset its sequence numbers.
            let px = st
                .last
                .map(|l| l.1)
                .or(st.price)
                .or(o.price)
                .unwrap_or(Price(0));
            evs[1] = Some(VenueEvent::Fill {
                key,
                qty: Qty(st.cum.0 - o.cum_qty.0),
                price: px,
                exec_id: 0,
                leaves: Qty((o.qty.0 - st.cum.0).max(0)),
            });
        }
        match st.status {
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
            self.apply_venue_events(out, &[e], now);
        }
    }
}
