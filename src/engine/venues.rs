//! HOT — the shell's side of external FIX venues: each is an initiator session on a connection
//! in the engine's slab (a *link*), with reconnect, and translation of its answers into the
//! desk's venue events (the desk refuses orders while a link is down and reconciles by
//! OrderStatusRequest after each logon). The requests themselves are written by
//! [`super::wire::Wire`].

use std::mem;
use std::net::SocketAddr;

use super::stores::AnyStore;
use super::{Engine, TlsSide};
use crate::desk::VenueStatus;
use crate::fix::{Message, MsgType};
use crate::model::{ConnId, Nanos};
use crate::net::{self, Conn};
use crate::session::{Inbound, Session};
use crate::venue::fix::{self as vfix, AnswerKind};
use crate::venue::VenueEvent;

/// An external venue reached through a FIX 4.4 initiator session.
pub struct FixVenue {
    pub addr: SocketAddr,
    pub session: Session<AnyStore>,
    /// The connection slot while connected (or connecting).
    pub conn: Option<ConnId>,
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

/// The external venues' FIX links, by venue index (`None`: an in-process venue).
pub(crate) struct Links(Vec<Option<Box<FixVenue>>>);

impl Links {
    /// At most 64 venues (checked by `config`): every index fits a `u16`.
    pub(crate) fn new(links: Vec<Option<Box<FixVenue>>>) -> Links {
        Links(links)
    }

    /// The FIX link of venue `v`; `None` for an in-process venue or no such venue.
    #[inline]
    pub(crate) fn get_mut(&mut self, v: crate::model::VenueId) -> Option<&mut FixVenue> {
        self.0.get_mut(v.index()).and_then(Option::as_deref_mut)
    }

    /// Every venue index, linked or not. Borrows nothing: links may be changed while iterating.
    pub(crate) fn ids(&self) -> impl Iterator<Item = crate::model::VenueId> + use<> {
        (0..u16::try_from(self.0.len()).unwrap_or(u16::MAX)).map(crate::model::VenueId)
    }
}

impl Engine {
    /// Starts connections to external venues that are due for a (re)connect.
    #[cold]
    pub(crate) fn venue_timers(&mut self, now: Nanos) {
        for v in self.links.ids() {
            let Some(fx) = self.links.get_mut(v) else {
                continue;
            };
            if fx.conn.is_some() || now < fx.next_attempt {
                continue;
            }
            fx.next_attempt = now.add(fx.reconnect);
            let Ok(stream) = net::connect(fx.addr) else {
                continue;
            };
            let Some(c) = self.conns.reserve() else {
                continue;
            };
            let mut conn = Conn::new(
                stream,
                fx.addr,
                self.gw.recv_buffer_bytes,
                self.gw.send_buffer_bytes,
                now,
            );
            conn.venue = Some(v);
            conn.connecting = true;
            let tls = fx
                .tls
                .as_ref()
                .map(|(cfg, name)| TlsSide::Client(cfg.clone(), name.clone()));
            if self.install(c, conn, tls).is_ok() {
                if let Some(fx) = self.links.get_mut(v) {
                    fx.conn = Some(c);
                }
            }
        }
    }

    /// A venue connection became writable: finish a pending connect by logging on.
    #[cold]
    pub(crate) fn venue_connected(&mut self, c: ConnId, now: Nanos) {
        let Some(conn) = self.conns.get_mut(c) else {
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
        if let Some(fx) = self.links.get_mut(v) {
            fx.session.start_logon(now, &mut conn.out);
        }
        self.dirty.mark(c);
    }

    /// A message from venue `v` on connection `c`.
    pub(crate) fn on_venue_message(
        &mut self,
        v: crate::model::VenueId,
        c: ConnId,
        msg: &Message<'_>,
        now: Nanos,
    ) {
        let (Some(fx), Some(conn)) = (self.links.get_mut(v), self.conns.get_mut(c)) else {
            return;
        };
        let inbound = fx.session.on_message(msg, now, &mut conn.out);
        self.dirty.mark(c);
        match inbound {
            Inbound::Handled => {}
            Inbound::LoggedOn => self.venue_up(v, now),
            Inbound::Application => self.on_venue_answer(v, msg, now),
            Inbound::Disconnect(_) => {
                if let Some(conn) = self.conns.get_mut(c) {
                    conn.closing = true;
                }
            }
        }
        // Answers that arrived ahead of a gap and are now in sequence.
        loop {
            let mut scratch = mem::take(&mut self.scratch);
            let n = self
                .links
                .get_mut(v)
                .and_then(|fx| fx.session.take_queued(&mut scratch));
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

    /// The venue session is logged on: the desk routes to it again and asks it the status of
    /// every open order there.
    #[cold]
    fn venue_up(&mut self, v: crate::model::VenueId, now: Nanos) {
        let (desk, mut out) = self.desk_out();
        desk.venue_up(&mut out, v, now);
    }

    /// The venue connection closed: refuse new orders for it until it is back.
    #[cold]
    pub(crate) fn venue_down(
        &mut self,
        v: crate::model::VenueId,
        now: Nanos,
        reason: &'static str,
    ) {
        if let Some(fx) = self.links.get_mut(v) {
            fx.conn = None;
            fx.session.on_disconnect(now);
            fx.next_attempt = now.add(fx.reconnect);
        }
        self.desk.venue_down(v, now, reason);
    }

    /// Maps a venue's ExecutionReport / OrderCancelReject to the order it is about.
    fn on_venue_answer(&mut self, v: crate::model::VenueId, msg: &Message<'_>, now: Nanos) {
        let answer = vfix::parse_answer(msg);
        let order = answer.and_then(|a| self.desk.venue_order(v, a.key, a.order_id));
        let (Some(a), Some(o)) = (answer, order) else {
            if let Some(fx) = self.links.get_mut(v) {
                fx.unmatched += 1;
            }
            return self.venue_unmatched(v, msg, now);
        };
        let key = a.key;
        self.latency.venue_answered(key.0, a.order_id, a.n, now);
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
                    self.desk.note_venue_live(key, a.n);
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
                    let (desk, mut out) = self.desk_out();
                    desk.rejected_at_venue(&mut out, key, &text[..prefix.len() + n], now);
                    return desk.journal_pending(now);
                }
                b'I' => {
                    let st = VenueStatus {
                        status,
                        venue_order_id,
                        cum,
                        last,
                        price,
                    };
                    let (desk, mut out) = self.desk_out();
                    return desk.reconcile(&mut out, key, &o, &st, now);
                }
                _ => return, // pending states and restatements carry nothing we act on
            },
        };
        let (desk, mut out) = self.desk_out();
        desk.apply_venue_events(&mut out, &[ev], now);
    }

    /// A venue ExecutionReport about an order the gateway has no record of: the desk
    /// reconciles it (an order the venue holds or executed for a configured account trips that
    /// account's kill switch).
    #[cold]
    #[inline(never)]
    fn venue_unmatched(&mut self, v: crate::model::VenueId, msg: &Message<'_>, now: Nanos) {
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
        let (desk, mut out) = self.desk_out();
        desk.venue_unmatched(&mut out, v, account, live, now);
    }
}
