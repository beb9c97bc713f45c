//! COLD — `venue`: a standalone simulated venue that is a FIX 4.4 acceptor, so the gateway (or
//! `fixclient`) can trade against a real FIX session.
//!
//! One thread, non-blocking sockets, a 1 ms sleep when idle (a tool, not the hot path). Every
//! initiator whose TargetCompID is `--comp-id` gets a session of its own, keyed by its
//! SenderCompID and kept for the life of the process (with `--data-dir` also across restarts,
//! through `SessionStore`, so ResendRequests are served after a restart). All sessions share one
//! [`SimVenue`]: in `book` mode orders of different initiators trade with each other.
//!
//! The gateway's ClOrdIDs are opaque strings; they map to `OrderKey`s in a `HashMap`. Orders live
//! in memory only: a restarted venue knows its sessions, not its orders.

use std::collections::{HashMap, VecDeque};
use std::net::{TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use portcullis::engine::exec::{order_fields, OrderFields};
use portcullis::engine::stores::AnyStore;
use portcullis::fix::{tags, BeginString, Message, MsgType, TimePrecision, Writer};
use portcullis::model::{
    CompId, OrdStatus, OrdType, OrderKey, Price, Qty, Side, Symbol, TimeInForce,
};
use portcullis::session::{Inbound, MemoryStore, OutBuf, Role, Session, SessionConfig};
use portcullis::store::SessionStore;
use portcullis::venue::sim::{reason, SimBehaviour, SimConfig, SimVenue};
use portcullis::venue::{VenueEvent, VenueOrder};
use portcullis_tools::link::{receive, Incoming, Link};
use portcullis_tools::{now, show};

/// A simulated venue speaking FIX 4.4 as an acceptor.
#[derive(Parser, Debug)]
#[command(
    name = "venue",
    override_usage = "venue --listen 127.0.0.1:9900 --comp-id VENUE [--data-dir DIR] [--behaviour ack|fill|partial|book] [--partial-slices N] [--fill-delay-ms MS]",
    after_help = "The first stdout line is `venue listening on ADDR` (useful with port 0)."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long)]
    listen: String,
    /// Our CompID: initiators' TargetCompID <56>.
    #[arg(long)]
    comp_id: String,
    /// Keep session sequence numbers and sent messages here (resend across restarts).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How orders are answered.
    #[arg(long, value_enum, default_value_t = Behaviour::Fill)]
    behaviour: Behaviour,
    /// `partial`: fills per order.
    #[arg(long, default_value_t = 2)]
    partial_slices: u32,
    /// Send fills this long after they happen, milliseconds (to see pending states).
    #[arg(long, default_value_t = 0)]
    fill_delay_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Behaviour {
    Ack,
    Fill,
    Partial,
    Book,
}

/// Orders open at once in the simulator.
const MAX_ORDERS: usize = 1 << 16;
/// A connection that has not logged on within this time is closed.
const LOGON_TIMEOUT: Duration = Duration::from_secs(10);
/// Segment size of a session's outbound log with `--data-dir`.
const SEGMENT_BYTES: usize = 4 << 20;

#[allow(clippy::disallowed_methods)] // cold tool; monotonic time comes from the clock module
fn instant() -> Instant {
    portcullis::clock::monotonic()
}

/// One accepted socket; `session` once its Logon named one.
struct Conn {
    link: Link,
    peer: String,
    session: Option<String>,
    opened: Instant,
    /// Close once `out` is flushed.
    closing: bool,
}

/// A session and the connection it is on, if any.
struct Slot {
    session: Session<AnyStore>,
    conn: Option<usize>,
}

/// An order as this venue reports it.
#[derive(Clone, Debug)]
struct Order {
    session: String,
    cl: String,
    orig: Option<String>,
    account: Option<String>,
    symbol: Symbol,
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    qty: Qty,
    price: Option<Price>,
    cum: Qty,
    /// Σ price × qty of the fills, in 10^-8 × 10^-4 units.
    notional: i128,
    /// OrderID <37> this venue gave the order (empty until accepted).
    venue_id: portcullis::model::VenueOrderId,
    status: OrdStatus,
}

impl Order {
    fn leaves(&self) -> Qty {
        if self.status.is_terminal() {
            Qty::ZERO
        } else {
            Qty((self.qty.0 - self.cum.0).max(0))
        }
    }
    fn avg_px(&self) -> Price {
        if self.cum.0 == 0 {
            return Price(0);
        }
        Price(i64::try_from(self.notional / i128::from(self.cum.0)).unwrap_or(i64::MAX))
    }
}

/// The request being answered, for events that must name its ClOrdIDs.
#[derive(Clone, Debug)]
struct Ctx {
    kind: u8,
    key: OrderKey,
    cl: String,
    orig: String,
}

/// Extra fields of one ExecutionReport.
struct Exec<'a> {
    exec_type: u8,
    cl: &'a str,
    orig: Option<&'a str>,
    last: Option<(Qty, Price)>,
    rej_reason: Option<u32>,
    text: Option<&'a str>,
}

struct Venue {
    comp_id: CompId,
    data_dir: Option<PathBuf>,
    sim: SimVenue,
    fill_delay: Duration,
    sessions: HashMap<String, Slot>,
    conns: Vec<Option<Conn>>,
    orders: HashMap<OrderKey, Order>,
    by_cl: HashMap<(String, String), OrderKey>,
    next_key: u32,
    next_exec: u64,
    /// Start time in seconds, the ExecID prefix: ExecIDs stay unique across restarts.
    boot: u64,
    delayed: VecDeque<(Instant, VenueEvent, Option<Ctx>)>,
    /// Where `send_app` writes for a session without a connection (it only stores then).
    no_conn: OutBuf,
}

impl Venue {
    // -------------------------------------------------------------------- connections

    fn accept(&mut self, listener: &TcpListener) -> usize {
        let mut n = 0;
        while let Ok((stream, addr)) = listener.accept() {
            n += 1;
            match Link::new(stream, None) {
                Ok(link) => {
                    println!("connection from {addr}");
                    let conn = Conn {
                        link,
                        peer: addr.to_string(),
                        session: None,
                        opened: instant(),
                        closing: false,
                    };
                    match self.conns.iter().position(Option::is_none) {
                        Some(i) => self.conns[i] = Some(conn),
                        None => self.conns.push(Some(conn)),
                    }
                }
                Err(e) => println!("connection from {addr} dropped: {e}"),
            }
        }
        n
    }

    /// Reads every connection once and handles what arrived. Returns bytes read.
    fn read_all(&mut self) -> usize {
        let mut work = 0;
        for c in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(c) else {
                continue;
            };
            if conn.closing {
                continue;
            }
            work += conn.link.read();
            while let Some(Some(conn)) = self.conns.get_mut(c) {
                if conn.closing {
                    break;
                }
                match conn.link.next_incoming() {
                    None => break,
                    Some(Incoming::Message(bytes)) => self.on_bytes(c, bytes),
                    Some(Incoming::Garbled(_)) => {
                        if let Some(s) =
                            conn.session.as_ref().and_then(|s| self.sessions.get_mut(s))
                        {
                            s.session.on_garbled();
                        }
                    }
                    Some(Incoming::TooLarge) => {
                        println!("{}: oversized message, closing", conn.peer);
                        conn.closing = true;
                    }
                }
            }
        }
        work
    }

    fn refuse(&mut self, c: usize, why: &str) {
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            println!("{}: refused: {why}", conn.peer);
            conn.closing = true;
        }
    }

    fn on_bytes(&mut self, c: usize, bytes: Vec<u8>) {
        let Some(Some(conn)) = self.conns.get(c) else {
            return;
        };
        let their = match conn.session.clone() {
            Some(s) => s,
            None => match self.first_message(c, &bytes) {
                Some(s) => s,
                None => return,
            },
        };
        let (Some(slot), Some(Some(conn))) = (self.sessions.get_mut(&their), self.conns.get_mut(c))
        else {
            return;
        };
        let done = receive(&mut slot.session, &mut conn.link.out, bytes, now());
        for (bytes, inbound) in done {
            match inbound {
                Inbound::LoggedOn => {
                    let (Some(slot), Some(Some(conn))) =
                        (self.sessions.get(&their), self.conns.get(c))
                    else {
                        continue;
                    };
                    println!(
                        "session {their} logged on from {} (next in {}, next out {}, heartbeat {} s)",
                        conn.peer,
                        slot.session.next_target_seq(),
                        slot.session.next_sender_seq(),
                        slot.session.heartbeat_secs()
                    );
                }
                Inbound::Application => self.on_app(&their, &bytes),
                Inbound::Handled => {}
                Inbound::Disconnect(reason) => {
                    println!("session {their}: disconnecting ({reason:?})");
                    if let Some(Some(conn)) = self.conns.get_mut(c) {
                        conn.closing = true;
                    }
                }
            }
        }
    }

    /// The first message on a connection: must be a FIX 4.4 Logon to us. Returns the session.
    fn first_message(&mut self, c: usize, bytes: &[u8]) -> Option<String> {
        let Ok(m) = Message::decode(bytes) else {
            self.refuse(c, "first message does not decode");
            return None;
        };
        if m.msg_type() != MsgType::LOGON {
            self.refuse(c, "first message is not a Logon");
            return None;
        }
        if m.begin_string() != BeginString::Fix44.as_bytes() {
            self.refuse(c, "BeginString is not FIX.4.4");
            return None;
        }
        if m.get(tags::TARGET_COMP_ID) != Some(self.comp_id.as_bytes()) {
            self.refuse(c, "TargetCompID is not ours");
            return None;
        }
        let their_bytes = m.get(tags::SENDER_COMP_ID).unwrap_or_default();
        let Some(their_id) = CompId::new(their_bytes).filter(|s| !s.is_empty()) else {
            self.refuse(c, "SenderCompID missing or longer than 32");
            return None;
        };
        let their = their_id.to_string();
        if !self.sessions.contains_key(&their) {
            match self.new_session(their_id) {
                Ok(s) => {
                    self.sessions.insert(
                        their.clone(),
                        Slot {
                            session: s,
                            conn: None,
                        },
                    );
                }
                Err(e) => {
                    self.refuse(c, &format!("cannot open the session store: {e}"));
                    return None;
                }
            }
        }
        let slot = self.sessions.get_mut(&their)?;
        if slot.conn.is_some() {
            self.refuse(c, &format!("session {their} is already connected"));
            return None;
        }
        if let Err(r) = slot.session.check_first_message(&m) {
            self.refuse(c, &format!("{r:?}"));
            return None;
        }
        slot.conn = Some(c);
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.session = Some(their.clone());
        }
        Some(their)
    }

    fn new_session(&self, their: CompId) -> std::io::Result<Session<AnyStore>> {
        let cfg = SessionConfig {
            begin_string: BeginString::Fix44,
            our_comp_id: self.comp_id,
            their_comp_id: their,
            role: Role::Acceptor,
            ..SessionConfig::default()
        };
        let store = match &self.data_dir {
            Some(dir) => {
                let key = format!("FIX.4.4-{}-{}", self.comp_id, their);
                AnyStore::Disk(Box::new(SessionStore::open(dir, &key, SEGMENT_BYTES)?))
            }
            None => AnyStore::Memory(MemoryStore::new()),
        };
        Ok(Session::new(cfg, store))
    }

    /// Timers of every session, logon timeouts, flushing, closing.
    fn housekeeping(&mut self) {
        let t = now();
        for c in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(c) else {
                continue;
            };
            match conn.session.as_ref().and_then(|s| self.sessions.get_mut(s)) {
                Some(slot) => {
                    if let Some(reason) = slot.session.on_timer(t, &mut conn.link.out) {
                        println!(
                            "session {}: disconnecting ({reason:?})",
                            conn.session.as_deref().unwrap_or("?")
                        );
                        conn.closing = true;
                    }
                }
                None => {
                    if instant().saturating_duration_since(conn.opened) > LOGON_TIMEOUT {
                        println!("{}: no Logon within {LOGON_TIMEOUT:?}, closing", conn.peer);
                        conn.closing = true;
                    }
                }
            }
            conn.link.flush();
            if conn.link.closed || (conn.closing && conn.link.out.is_empty()) {
                conn.link.shutdown();
                let peer = conn.peer.clone();
                match conn.session.take() {
                    Some(s) => {
                        if let Some(slot) = self.sessions.get_mut(&s) {
                            slot.session.on_disconnect(t);
                            slot.conn = None;
                        }
                        println!("session {s} disconnected ({peer})");
                    }
                    None => println!("{peer}: closed"),
                }
                self.conns[c] = None;
            }
        }
    }

    fn connected(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Logs every session out (Ctrl-C / SIGTERM) and waits briefly for the answers.
    fn shutdown(&mut self) {
        let t = now();
        for conn in self.conns.iter_mut().flatten() {
            match conn.session.as_ref().and_then(|s| self.sessions.get_mut(s)) {
                Some(slot) if slot.session.is_logged_on() => {
                    slot.session
                        .logout(b"venue shutting down", t, &mut conn.link.out);
                }
                _ => conn.closing = true,
            }
        }
        let deadline = instant() + Duration::from_secs(2);
        while self.connected() > 0 && instant() < deadline {
            self.read_all();
            self.housekeeping();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    // -------------------------------------------------------------------- orders

    fn on_app(&mut self, their: &str, bytes: &[u8]) {
        let Ok(m) = Message::decode(bytes) else {
            return;
        };
        match m.msg_type() {
            MsgType::NEW_ORDER_SINGLE => self.new_order(their, &m),
            MsgType::ORDER_CANCEL_REQUEST => self.cancel_or_replace(their, &m, b'F'),
            MsgType::ORDER_CANCEL_REPLACE_REQUEST => self.cancel_or_replace(their, &m, b'G'),
            MsgType::ORDER_STATUS_REQUEST => self.status(their, &m),
            _ => {
                let seq = m.seq_num().unwrap_or(0);
                let ty = m.msg_type_bytes();
                if let Some(slot) = self.sessions.get_mut(their) {
                    let out = match slot.conn.and_then(|c| self.conns.get_mut(c)) {
                        Some(Some(conn)) => &mut conn.link.out,
                        _ => &mut self.no_conn,
                    };
                    let text = b"Unsupported Message Type";
                    let routing = portcullis::fix::ReplyRouting::reply_to_lossy(&m);
                    let _ = slot.session.send_business_reject(
                        &routing,
                        seq,
                        ty,
                        None,
                        3,
                        text,
                        now(),
                        out,
                    );
                }
            }
        }
    }

    fn new_order(&mut self, their: &str, m: &Message<'_>) {
        let s = |tag| m.get(tag).map(|v| String::from_utf8_lossy(v).into_owned());
        let cl = s(tags::CL_ORD_ID).unwrap_or_default();
        let mut order = Order {
            session: their.to_string(),
            cl: cl.clone(),
            orig: None,
            account: s(tags::ACCOUNT),
            symbol: m
                .get(tags::SYMBOL)
                .and_then(Symbol::new)
                .unwrap_or(Symbol::EMPTY),
            side: m
                .char(tags::SIDE)
                .ok()
                .flatten()
                .and_then(Side::from_fix)
                .unwrap_or(Side::Buy),
            ord_type: m
                .char(tags::ORD_TYPE)
                .ok()
                .flatten()
                .and_then(OrdType::from_fix)
                .unwrap_or(OrdType::Limit),
            tif: m
                .char(tags::TIME_IN_FORCE)
                .ok()
                .flatten()
                .and_then(TimeInForce::from_fix)
                .unwrap_or_default(),
            qty: m.qty(tags::ORDER_QTY).ok().flatten().unwrap_or(Qty::ZERO),
            price: m.price(tags::PRICE).ok().flatten(),
            cum: Qty::ZERO,
            notional: 0,
            venue_id: portcullis::model::VenueOrderId::EMPTY,
            status: OrdStatus::New,
        };
        let problem = if cl.is_empty() || cl.len() > 40 {
            Some("ClOrdID(11) missing or longer than 40")
        } else if order.symbol.is_empty() {
            Some("Symbol(55) missing or longer than 24")
        } else if m
            .char(tags::SIDE)
            .ok()
            .flatten()
            .and_then(Side::from_fix)
            .is_none()
        {
            Some("Side(54) missing or not 1, 2 or 5")
        } else if m
            .char(tags::ORD_TYPE)
            .ok()
            .flatten()
            .and_then(OrdType::from_fix)
            .is_none()
        {
            Some("OrdType(40) missing or not 1 or 2")
        } else if m.get(tags::TIME_IN_FORCE).is_some()
            && m.char(tags::TIME_IN_FORCE)
                .ok()
                .flatten()
                .and_then(TimeInForce::from_fix)
                .is_none()
        {
            Some("TimeInForce(59) not 0, 1, 3 or 4")
        } else if self.by_cl.contains_key(&(their.to_string(), cl.clone())) {
            Some("duplicate ClOrdID(11)")
        } else {
            None
        };
        if let Some(text) = problem {
            order.status = OrdStatus::Rejected;
            println!("order {their} {cl}: rejected: {text}");
            self.send_exec(
                &order,
                &Exec {
                    exec_type: b'8',
                    cl: &cl,
                    orig: None,
                    last: None,
                    rej_reason: Some(99),
                    text: Some(text),
                },
            );
            return;
        }
        let key = self.new_key();
        let vo = VenueOrder {
            key,
            symbol: order.symbol,
            side: order.side,
            ord_type: order.ord_type,
            tif: order.tif,
            qty: order.qty,
            price: order.price,
        };
        self.orders.insert(key, order);
        self.by_cl.insert((their.to_string(), cl), key);
        let mut events = Vec::new();
        self.sim.new_order(&vo, now(), &mut |e| events.push(e));
        self.dispatch(events, None);
    }

    /// OrderCancelRequest (`kind` F) or OrderCancelReplaceRequest (G).
    fn cancel_or_replace(&mut self, their: &str, m: &Message<'_>, kind: u8) {
        let s = |tag| {
            m.get(tag)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let cl = s(tags::CL_ORD_ID);
        let orig = s(tags::ORIG_CL_ORD_ID);
        let key = self.by_cl.get(&(their.to_string(), orig.clone())).copied();
        let Some(key) = key else {
            println!(
                "order {their} {orig}: {} rejected: unknown order",
                kind_name(kind)
            );
            self.cancel_reject(their, None, &cl, &orig, kind, reason::UNKNOWN_ORDER);
            return;
        };
        if kind == b'G'
            && (cl.is_empty()
                || cl.len() > 40
                || self.by_cl.contains_key(&(their.to_string(), cl.clone())))
        {
            self.cancel_reject(
                their,
                Some(key),
                &cl,
                &orig,
                kind,
                "ClOrdID(11) missing, too long or already used",
            );
            return;
        }
        let ctx = Ctx {
            kind,
            key,
            cl: cl.clone(),
            orig,
        };
        let mut events = Vec::new();
        if kind == b'F' {
            self.sim.cancel(key, now(), &mut |e| events.push(e));
        } else {
            let Some(o) = self.orders.get(&key) else {
                return;
            };
            let qty = m.qty(tags::ORDER_QTY).ok().flatten().unwrap_or(o.qty);
            let price = m.price(tags::PRICE).ok().flatten().or(o.price);
            let new_key = self.new_key();
            self.sim
                .replace(key, new_key, qty, price, now(), &mut |e| events.push(e));
        }
        self.dispatch(events, Some(ctx));
    }

    fn status(&mut self, their: &str, m: &Message<'_>) {
        let cl = m
            .get(tags::CL_ORD_ID)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let order = self
            .by_cl
            .get(&(their.to_string(), cl.clone()))
            .and_then(|k| self.orders.get(k))
            .cloned();
        match order {
            Some(o) => self.send_exec(
                &o,
                &Exec {
                    exec_type: b'I',
                    cl: &o.cl,
                    orig: o.orig.as_deref(),
                    last: None,
                    rej_reason: None,
                    text: None,
                },
            ),
            None => {
                let o = Order {
                    session: their.to_string(),
                    cl: cl.clone(),
                    orig: None,
                    account: None,
                    symbol: m
                        .get(tags::SYMBOL)
                        .and_then(Symbol::new)
                        .unwrap_or(Symbol::EMPTY),
                    side: m
                        .char(tags::SIDE)
                        .ok()
                        .flatten()
                        .and_then(Side::from_fix)
                        .unwrap_or(Side::Buy),
                    ord_type: OrdType::Limit,
                    tif: TimeInForce::Day,
                    qty: Qty::ZERO,
                    price: None,
                    cum: Qty::ZERO,
                    notional: 0,
                    venue_id: portcullis::model::VenueOrderId::EMPTY,
                    status: OrdStatus::Rejected,
                };
                self.send_exec(
                    &o,
                    &Exec {
                        exec_type: b'I',
                        cl: &cl,
                        orig: None,
                        last: None,
                        rej_reason: Some(5),
                        text: Some("unknown order"),
                    },
                );
            }
        }
    }

    fn new_key(&mut self) -> OrderKey {
        self.next_key = self.next_key.wrapping_add(1);
        OrderKey(self.next_key)
    }

    /// Applies the events of one request now, or from the first fill on after `--fill-delay-ms`.
    fn dispatch(&mut self, events: Vec<VenueEvent>, ctx: Option<Ctx>) {
        let mut delaying = false;
        for e in events {
            delaying |= !self.fill_delay.is_zero() && matches!(e, VenueEvent::Fill { .. });
            if delaying {
                self.delayed
                    .push_back((instant() + self.fill_delay, e, ctx.clone()));
            } else {
                self.apply(e, ctx.as_ref());
            }
        }
    }

    fn release_delayed(&mut self) -> usize {
        let mut n = 0;
        while let Some((due, _, _)) = self.delayed.front() {
            if *due > instant() {
                break;
            }
            if let Some((_, e, ctx)) = self.delayed.pop_front() {
                self.apply(e, ctx.as_ref());
                n += 1;
            }
        }
        n
    }

    fn apply(&mut self, e: VenueEvent, ctx: Option<&Ctx>) {
        match e {
            VenueEvent::Accepted {
                key,
                venue_order_id,
            } => {
                let Some(o) = self.orders.get_mut(&key) else {
                    return;
                };
                o.venue_id = venue_order_id;
                o.status = OrdStatus::New;
                let o = o.clone();
                println!(
                    "order {} {}: new, venue order {}",
                    o.session, o.cl, o.venue_id
                );
                self.send_exec(&o, &plain(b'0', &o.cl));
            }
            VenueEvent::Rejected { key, reason } => {
                let Some(o) = self.orders.get_mut(&key) else {
                    return;
                };
                o.status = OrdStatus::Rejected;
                let o = o.clone();
                println!("order {} {}: rejected: {reason}", o.session, o.cl);
                self.send_exec(
                    &o,
                    &Exec {
                        rej_reason: Some(99),
                        text: Some(reason),
                        ..plain(b'8', &o.cl)
                    },
                );
            }
            VenueEvent::Fill {
                key,
                qty,
                price,
                leaves,
                ..
            } => {
                let Some(o) = self.orders.get_mut(&key) else {
                    return;
                };
                o.cum = Qty(o.cum.0 + qty.0);
                o.notional += i128::from(price.0) * i128::from(qty.0);
                o.status = if leaves.0 <= 0 {
                    OrdStatus::Filled
                } else {
                    OrdStatus::PartiallyFilled
                };
                let o = o.clone();
                println!(
                    "order {} {}: fill {} @ {}, leaves {}",
                    o.session,
                    o.cl,
                    dec(qty.0, 4),
                    dec(price.0, 8),
                    dec(leaves.0, 4)
                );
                self.send_exec(
                    &o,
                    &Exec {
                        last: Some((qty, price)),
                        ..plain(b'F', &o.cl)
                    },
                );
            }
            VenueEvent::Canceled { key, canceled_qty } => {
                let Some(o) = self.orders.get_mut(&key) else {
                    return;
                };
                o.status = OrdStatus::Canceled;
                let o = o.clone();
                let (cl, orig) = match ctx {
                    Some(c) if c.kind == b'F' && c.key == key => {
                        (c.cl.clone(), Some(c.orig.clone()))
                    }
                    _ => (o.cl.clone(), None),
                };
                println!(
                    "order {} {}: canceled ({} open)",
                    o.session,
                    o.cl,
                    dec(canceled_qty.0, 4)
                );
                self.send_exec(
                    &o,
                    &Exec {
                        orig: orig.as_deref(),
                        ..plain(b'4', &cl)
                    },
                );
            }
            VenueEvent::Replaced {
                key,
                new_key,
                qty,
                price,
                ..
            } => {
                let Some(mut o) = self.orders.remove(&key) else {
                    return;
                };
                let new_cl = ctx.map_or_else(|| o.cl.clone(), |c| c.cl.clone());
                let old_cl = std::mem::replace(&mut o.cl, new_cl.clone());
                o.orig = Some(old_cl.clone());
                o.qty = qty;
                o.price = price;
                self.by_cl
                    .insert((o.session.clone(), new_cl.clone()), new_key);
                self.orders.insert(new_key, o.clone());
                println!(
                    "order {} {old_cl}: replaced by {new_cl}, qty {}",
                    o.session,
                    dec(qty.0, 4)
                );
                self.send_exec(
                    &o,
                    &Exec {
                        orig: Some(&old_cl),
                        ..plain(b'5', &new_cl)
                    },
                );
            }
            VenueEvent::CancelRejected { key, reason } => {
                let (their, cl, orig) = self.reject_ids(key, ctx);
                println!("order {their} {orig}: cancel rejected: {reason}");
                self.cancel_reject(&their, Some(key), &cl, &orig, b'F', reason);
            }
            VenueEvent::ReplaceRejected { key, reason, .. } => {
                let (their, cl, orig) = self.reject_ids(key, ctx);
                println!("order {their} {orig}: replace rejected: {reason}");
                self.cancel_reject(&their, Some(key), &cl, &orig, b'G', reason);
            }
        }
    }

    fn reject_ids(&self, key: OrderKey, ctx: Option<&Ctx>) -> (String, String, String) {
        let o = self.orders.get(&key);
        let their = o.map(|o| o.session.clone()).unwrap_or_default();
        match ctx {
            Some(c) => (their, c.cl.clone(), c.orig.clone()),
            None => {
                let cl = o.map(|o| o.cl.clone()).unwrap_or_default();
                (their, cl.clone(), cl)
            }
        }
    }

    // -------------------------------------------------------------------- sending

    /// Sends an application message on `their` session (stored only when it is not connected).
    fn send(&mut self, their: &str, msg_type: &[u8], body: impl FnOnce(&mut Writer)) {
        let Some(slot) = self.sessions.get_mut(their) else {
            return;
        };
        let out = match slot.conn.and_then(|c| self.conns.get_mut(c)) {
            Some(Some(conn)) => &mut conn.link.out,
            _ => &mut self.no_conn,
        };
        if let Err(e) = slot.session.send_app(msg_type, now(), out, body) {
            println!(
                "session {their}: could not send {}: {e:?}",
                show::msg_type_name(msg_type)
            );
        }
    }

    fn send_exec(&mut self, o: &Order, e: &Exec<'_>) {
        self.next_exec += 1;
        let exec_id = format!("{}-{}", self.boot, self.next_exec);
        let t = now();
        let their = o.session.clone();
        self.send(&their, b"8", |w| {
            if o.venue_id.is_empty() {
                w.str(tags::ORDER_ID, b"NONE");
            } else {
                w.str(tags::ORDER_ID, o.venue_id.as_bytes());
            }
            w.str(tags::CL_ORD_ID, e.cl.as_bytes());
            if let Some(orig) = e.orig {
                w.str(tags::ORIG_CL_ORD_ID, orig.as_bytes());
            }
            w.str(tags::EXEC_ID, exec_id.as_bytes());
            w.char(tags::EXEC_TYPE, e.exec_type);
            w.char(tags::ORD_STATUS, o.status.to_fix());
            if let Some(r) = e.rej_reason {
                w.uint(tags::ORD_REJ_REASON, u64::from(r));
            }
            order_fields(
                w,
                &OrderFields {
                    account: o.account.as_deref().unwrap_or("").as_bytes(),
                    symbol: o.symbol.as_bytes(),
                    side: o.side,
                    qty: o.qty,
                    ord_type: o.ord_type,
                    price: o.price,
                    tif: o.tif,
                    last: e.last,
                    leaves: o.leaves(),
                    cum: o.cum,
                    avg_px: o.avg_px(),
                    transact_time: t,
                    precision: TimePrecision::Millis,
                    text: e.text.map(str::as_bytes),
                },
            );
        });
    }

    /// OrderCancelReject <9>.
    fn cancel_reject(
        &mut self,
        their: &str,
        key: Option<OrderKey>,
        cl: &str,
        orig: &str,
        kind: u8,
        why: &str,
    ) {
        let o = key.and_then(|k| self.orders.get(&k)).cloned();
        let status = o.as_ref().map_or(OrdStatus::Rejected, |o| o.status);
        let venue_id = o.as_ref().map(|o| o.venue_id).unwrap_or_default();
        // CxlRejReason <102>: 1 = unknown order, 0 = too late to cancel, 99 = other.
        let cxl_reason: u64 = if why == reason::UNKNOWN_ORDER {
            1
        } else if why == reason::ALREADY_FILLED || status.is_terminal() {
            0
        } else {
            99
        };
        self.send(their, b"9", |w| {
            if venue_id.is_empty() {
                w.str(tags::ORDER_ID, b"NONE");
            } else {
                w.str(tags::ORDER_ID, venue_id.as_bytes());
            }
            w.str(tags::CL_ORD_ID, cl.as_bytes());
            w.str(tags::ORIG_CL_ORD_ID, orig.as_bytes());
            w.char(tags::ORD_STATUS, status.to_fix());
            w.char(
                tags::CXL_REJ_RESPONSE_TO,
                if kind == b'F' { b'1' } else { b'2' },
            );
            w.uint(tags::CXL_REJ_REASON, cxl_reason);
            w.str(tags::TEXT, why.as_bytes());
        });
    }
}

fn plain(exec_type: u8, cl: &str) -> Exec<'_> {
    Exec {
        exec_type,
        cl,
        orig: None,
        last: None,
        rej_reason: None,
        text: None,
    }
}

fn kind_name(kind: u8) -> &'static str {
    if kind == b'F' {
        "cancel"
    } else {
        "replace"
    }
}

/// A fixed-point value as a decimal string.
fn dec(v: i64, decimals: u32) -> String {
    let mut buf = [0u8; 32];
    let n = portcullis::fix::encode::write_decimal(&mut buf, v, decimals);
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(comp_id) = CompId::new(args.comp_id.as_bytes()).filter(|c| !c.is_empty()) else {
        eprintln!("venue: --comp-id must be 1–32 characters");
        return ExitCode::from(2);
    };
    if args.partial_slices == 0 {
        eprintln!("venue: --partial-slices must be at least 1");
        return ExitCode::from(2);
    }
    let addr = match args.listen.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            eprintln!("venue: --listen {} is not an address", args.listen);
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("venue: cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("venue: cannot install signal handler: {e}");
            return ExitCode::from(2);
        }
    }
    let behaviour = match args.behaviour {
        Behaviour::Ack => SimBehaviour::AckOnly,
        Behaviour::Fill => SimBehaviour::FillImmediately,
        Behaviour::Partial => SimBehaviour::PartialFills {
            slices: args.partial_slices,
        },
        Behaviour::Book => SimBehaviour::Book,
    };
    let mut venue = Venue {
        comp_id,
        data_dir: args.data_dir.clone(),
        sim: SimVenue::new(SimConfig {
            behaviour,
            max_orders: MAX_ORDERS,
            max_symbols: 4096,
            max_orders_per_symbol: MAX_ORDERS,
            default_fill_price: Price::from_units(100),
        }),
        fill_delay: Duration::from_millis(args.fill_delay_ms),
        sessions: HashMap::new(),
        conns: Vec::new(),
        orders: HashMap::new(),
        by_cl: HashMap::new(),
        next_key: 0,
        next_exec: 0,
        boot: now().0 / 1_000_000_000,
        delayed: VecDeque::new(),
        no_conn: OutBuf::with_capacity(portcullis_tools::link::MAX_MESSAGE_BYTES),
    };
    match listener.local_addr() {
        Ok(a) => println!("venue listening on {a}"),
        Err(_) => println!("venue listening on {addr}"),
    }
    println!(
        "  comp id {}, behaviour {:?}, fill delay {} ms, {}",
        args.comp_id,
        args.behaviour,
        args.fill_delay_ms,
        args.data_dir.as_ref().map_or_else(
            || "sessions in memory".to_string(),
            |d| format!("sessions stored in {}", d.display())
        )
    );
    while !stop.load(Ordering::Relaxed) {
        let mut work = venue.accept(&listener);
        work += venue.read_all();
        work += venue.release_delayed();
        venue.housekeeping();
        venue.no_conn.clear();
        if work == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    println!("venue stopping: logging sessions out");
    venue.shutdown();
    println!("venue stopped");
    ExitCode::SUCCESS
}
