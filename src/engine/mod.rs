//! HOT — the gateway thread's duty cycle, the I/O shell around the order desk:
//! poll → read → frame → decode → session → intent → [desk] → report → encode → write.
//!
//! Owns every socket, every FIX session (clients and the links to external venues), the
//! perimeter and the flushing; the orders, routing, risk, journal and records are the desk's
//! ([`crate::desk`]), reached through intents in and the [`crate::desk::Outbox`] out. One thread
//! runs it, pinned when configured; it talks to cold threads only through `handoff` (events out,
//! commands in) and `monitor` (counters). Per message it never allocates, locks, logs or formats;
//! the only syscalls are the socket reads/writes and (in blocking mode) the poll.
//!
//! # Structure
//! - `mod.rs`: assembly (`Engine::assemble`; the builder is [`crate::build`]), the loop,
//!   connections, logon binding, key changes, timers, shutdown.
//! - `conns.rs`: the connection slab by [`ConnId`] (which is the poll token) and the set of
//!   connections to flush.
//! - `app.rs`: FIX application messages → desk intents, after the session's own checks (scope,
//!   grants, throttle, PossResend duplicates); BusinessMessageReject.
//! - `wire.rs`: the FIX [`crate::desk::Outbox`]: reports onto sessions and drop copies, venue
//!   requests onto the venue links.
//! - `venues.rs`: the links to external FIX venues and their answers → desk venue events.
//! - `exec.rs`: encoders of the messages we send; `detail.rs`: the record-only order fields.
//! - `perimeter.rs`: connections not logged on, TLS handshake budget, slow consumers.

pub mod app;
pub mod audit;
pub mod binary;
pub mod conns;
pub mod detail;
pub mod exec;
pub mod perimeter;
pub mod sbe_out;
pub mod stores;
pub mod venues;
pub mod warm;
pub mod wire;

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use conns::{Conns, Dirty, Source};

use crate::clock::Clock;
use crate::desk::OrderDesk;
use crate::fix::{frame, BeginString, Frame, Message, MsgType};
use crate::handoff::{Command, CommandReceiver, Event, EventRing, LogonRefusal};
use crate::model::{Account, CompId, ConnId, Nanos, SessionId};
use crate::monitor::{Counter, Counters};
use crate::net::{self, Conn, ReadOutcome};
use crate::session::{Inbound, OutBuf, Session};
use crate::throttle::{AbuseDetector, KeySlot, ThrottleTable};
use stores::AnyStore;

/// Tokens at and above this are listeners; below are connection slots.
pub(crate) const LISTENER_BASE: usize = 1 << 30;
/// Timers (heartbeats, logon timeouts) run at most this often.
const TIMER_INTERVAL: Nanos = Nanos::from_millis(1);
/// A hot-set connection with no bytes for this long goes back to epoll (drained first).
const HOT_IDLE: Nanos = Nanos(5_000_000);
/// A connection joins the hot set only when its bytes come this soon after its previous ones:
/// a session sending less often than this is cheaper on epoll than read every cycle (with many
/// slow sessions a hot set of them would cost a `read` per member per cycle for nothing).
const HOT_ADMIT: Nanos = Nanos(1_000_000);

/// A connection in the busy-poll hot set: read directly every duty cycle.
#[derive(Clone, Copy, Debug)]
struct HotConn {
    conn: ConnId,
    /// When its last bytes arrived.
    last: Nanos,
}

/// A configured client session and the connection it is bound to, if any. Who is logged on
/// with it (its grants) and its key's kill switch are the desk's ([`DeskSession`]).
pub struct SessionSlot {
    pub session: Session<AnyStore>,
    pub conn: Option<ConnId>,
    pub begin: BeginString,
    pub their_comp_id: CompId,
    pub our_comp_id: CompId,
    pub default_account: Account,
    pub cancel_on_disconnect: bool,
    /// Refusals that keep coming end in a Logout.
    pub abuse: AbuseDetector,
    /// Stable name (`FIX.4.4-OUR-THEIR`), used for stores and persisted throttle state.
    pub key: String,
    /// mTLS binding: the Logon must come over TLS with a client certificate whose SPKI has
    /// this SHA-256.
    pub client_spki: Option<[u8; 32]>,
    /// mTLS binding by subject: the certificate's RDN sequence must be exactly this one
    /// (`net::tls::Subject`).
    pub client_subject: Option<net::tls::Subject>,
    /// What an unauthenticated (development) logon of this session may do: `default_account`
    /// and the session's `dev_accounts`.
    pub dev_grants: crate::auth::Grants,
    /// The session's most recent ClOrdIDs (PossResend duplicates).
    pub seen: crate::order::seen::SeenClOrdIds,
    /// Drop copy: the accounts whose ExecutionReports this read-only session receives (empty:
    /// a trading session).
    pub drop_copy: Vec<Account>,
    /// An SBE session (`protocol = "sbe"`): its FIXP session, which replaces `session` (then
    /// an idle placeholder that never logs on). `None`: a FIX session.
    pub bin: Option<Box<binary::BinSession>>,
}

impl SessionSlot {
    /// Logged on (FIX) or established (FIXP).
    #[inline]
    pub fn is_live(&self) -> bool {
        match &self.bin {
            Some(b) => b.fixp.is_established(),
            None => self.session.is_logged_on(),
        }
    }
}

/// Logon authentication state, owned by the gateway thread (logon is its cold path).
pub struct AuthState {
    /// The current key snapshot (replaced whole by `Command::Keys`).
    pub keys: Arc<crate::auth::KeySnapshot>,
    pub verifier: crate::auth::Authenticator,
    /// false: unsigned Logons are accepted (development, loopback only).
    pub required: bool,
}

/// The TLS side of a new connection: a server (client connections) or a client (venue links).
pub(crate) enum TlsSide {
    Server(Arc<rustls::ServerConfig>),
    Client(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
}

/// The shell's settings (from `[gateway]`, converted once by the builder).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Busy-poll the sockets (the gateway thread owns a core) instead of blocking in epoll.
    pub busy_poll: bool,
    pub poll_timeout_ms: u64,
    pub max_connections: usize,
    pub max_message_bytes: usize,
    pub recv_buffer_bytes: usize,
    pub send_buffer_bytes: usize,
    pub logon_timeout_ms: u64,
    /// Receive buffer of a connection not logged on yet.
    pub logon_buffer_bytes: usize,
    /// Bytes outside a FIX frame tolerated before logon.
    pub logon_garbage_bytes: usize,
    /// A connection that sends nothing is closed after this.
    pub silent_timeout_ms: u64,
    /// Busy-poll hot set size, epoll every `spin_poll_every` cycles, warm-up pass period.
    pub spin_read_conns: usize,
    pub spin_poll_every: u32,
    pub warm_every_us: u64,
    pub slow_consumer_ms: u64,
    pub tls_handshake_budget_us: u64,
    /// Connections not logged on yet, at most (in all, and per source address).
    pub unauthenticated_cap: usize,
    pub per_address_cap: usize,
}

/// What the shell is assembled from (see [`Engine::assemble`]).
pub struct ShellParts {
    pub settings: Settings,
    pub poll: Poll,
    pub listeners: Vec<TcpListener>,
    /// Per listener: its TLS configuration (None: plaintext).
    pub tls_configs: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Per listener: it speaks SBE over FIXP (`false`: FIX).
    pub listener_sbe: Vec<bool>,
    pub sessions: Vec<SessionSlot>,
    pub desk: OrderDesk,
    pub links: Vec<Option<Box<venues::FixVenue>>>,
    pub throttle: Arc<ThrottleTable>,
    pub clock: Clock,
    pub counters: Arc<Counters>,
    pub events: EventRing,
    pub commands: CommandReceiver,
    pub stop: Arc<AtomicBool>,
    pub auth: Option<AuthState>,
    pub key_loader: Option<crate::auth::watch::Loader>,
    /// The audit trail's message ring (`audit.messages`).
    pub messages: Option<audit::MessageAudit>,
}

/// The gateway engine.
pub struct Engine {
    gw: Settings,
    poll: Poll,
    events: Events,
    ready: Vec<(Token, bool, bool)>,
    listeners: Vec<TcpListener>,
    /// Per listener: its TLS configuration (None: plaintext). Replaced by `Command::ReloadTls`.
    tls_configs: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Per listener: it speaks SBE over FIXP.
    listener_sbe: Vec<bool>,
    /// Every connection slot, by `ConnId` (= its poll token).
    conns: Conns,
    /// Connections to flush at the end of the duty cycle.
    dirty: Dirty,
    /// Busy-poll hot set (capacity `spin_read_conns`; empty and unused when off).
    hot: Vec<HotConn>,
    /// Duty cycles since the last epoll call (hot-set mode).
    since_poll: u32,
    /// Keeps the order path's code in cache between orders (busy-poll mode only).
    warmer: warm::Warmer,
    pub(crate) sessions: Vec<SessionSlot>,
    /// Orders, routing, risk, venues' order state, journal and records (sans-IO).
    pub(crate) desk: OrderDesk,
    /// External venues' FIX links, by venue index (`None`: an in-process venue).
    pub(crate) links: venues::Links,
    pub(crate) throttle: Arc<ThrottleTable>,
    /// Indices of the drop-copy sessions.
    pub(crate) drop_copies: Vec<SessionId>,
    clock: Clock,
    pub(crate) counters: Arc<Counters>,
    ring: EventRing,
    commands: CommandReceiver,
    stop: Arc<AtomicBool>,
    /// Queued (out-of-sequence) messages are copied here to be processed.
    scratch: Box<[u8]>,
    /// Output of sessions with no connection: messages are stored for resend, never sent.
    detached: OutBuf,
    last_timer: Nanos,
    /// In-gateway latency histograms (order in → first answer out; venue round trip).
    pub(crate) latency: crate::monitor::latency::Recorder,
    /// When shutdown began (monotonic wall time: a manual test clock must not stall it).
    stopping: Option<std::time::Instant>,
    /// While an inbound application message is processed: the routing fields its answers carry
    /// (its OnBehalfOf*/DeliverTo*, swapped). `None` between messages (venue answers then use
    /// the order's stored routing).
    pub(crate) answering: app::Answering,
    /// Signed-logon verification; `None` without an `[auth]` section.
    pub(crate) auth: Option<AuthState>,
    /// Handed to the key-store watcher thread by [`Engine::take_key_loader`].
    key_loader: Option<crate::auth::watch::Loader>,
    /// Connections not logged on yet, TLS handshake budget, shed accounting (`perimeter.rs`).
    perimeter: perimeter::Perimeter,
    /// Every message in and out, to the audit trail (`audit.rs`); `None` when not recorded.
    messages: Option<audit::MessageAudit>,
}

/// Logs session `s` out because its key was revoked or expired: Logout with `cause` as Text,
/// nothing more is permitted, the cause goes to the event stream.
#[cold]
fn credential_logout(
    slot: &mut SessionSlot,
    grants: &mut crate::auth::Grants,
    s: SessionId,
    cause: &'static str,
    conn: &mut Conn,
    now: Nanos,
    ring: &EventRing,
) {
    match slot.bin.as_deref_mut() {
        Some(bin) => {
            let mut out = binary::FixpOut::new(&mut conn.out);
            let _ = bin
                .fixp
                .terminate(crate::fixp::ErrorCode::CredentialRevoked, now, &mut out);
            conn.closing = true;
        }
        None => {
            slot.session.logout(cause.as_bytes(), now, &mut conn.out);
            if !slot.session.is_logged_on() {
                conn.closing = true;
            }
        }
    }
    grants.scopes = crate::auth::Scopes::NONE;
    grants.expires_ns = u64::MAX;
    let _ = ring.push(Event::CredentialLogout {
        session: s,
        key_id: grants.key_id,
        cause,
        at: now,
    });
}

/// Why a key may not hold the drop-copy session whose accounts are `drop_copy` (empty: not a
/// drop copy): it lacks `orders:read`, or its account restriction leaves none of the session's
/// accounts. `None`: allowed (or not a drop copy).
fn drop_copy_refusal(drop_copy: &[Account], key: &crate::auth::Key) -> Option<&'static str> {
    if drop_copy.is_empty() {
        return None;
    }
    if !key.scopes.contains(crate::auth::Scopes::ORDERS_READ) {
        return Some("drop copy needs the orders:read scope");
    }
    if !key.any_account && !drop_copy.iter().any(|a| key.accounts.contains(a)) {
        return Some("drop copy: the key allows none of the session's accounts");
    }
    None
}

impl Engine {
    /// Assembles the shell around `p.desk` and recovers the desk's orders from its journal
    /// (the builder, [`crate::build::engine`], opened and checked everything). Cold.
    pub fn assemble(p: ShellParts) -> Engine {
        let gw = p.settings;
        let mut engine = Engine {
            poll: p.poll,
            tls_configs: p.tls_configs,
            listener_sbe: p.listener_sbe,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            listeners: p.listeners,
            conns: Conns::new(gw.max_connections),
            dirty: Dirty::with_capacity(gw.max_connections),
            hot: Vec::with_capacity(if gw.busy_poll { gw.spin_read_conns } else { 0 }),
            since_poll: 0,
            warmer: warm::Warmer::new(if gw.busy_poll { gw.warm_every_us } else { 0 }),
            sessions: p.sessions,
            desk: p.desk,
            links: venues::Links::new(p.links),
            throttle: p.throttle,
            drop_copies: Vec::new(),
            clock: p.clock,
            counters: p.counters.clone(),
            ring: p.events,
            commands: p.commands,
            stop: p.stop,
            scratch: vec![0u8; gw.max_message_bytes].into_boxed_slice(),
            detached: OutBuf::with_capacity(gw.send_buffer_bytes),
            last_timer: Nanos::ZERO,
            latency: crate::monitor::latency::Recorder::new(p.counters.clone()),
            stopping: None,
            answering: app::Answering::Idle,
            auth: p.auth,
            key_loader: p.key_loader,
            perimeter: perimeter::Perimeter::new(&gw),
            messages: p.messages,
            gw,
        };
        // With [auth], a drop copy receives copies only under a logged-on key that allows
        // them: nothing is stored for it before its first signed logon.
        if engine.auth.is_some() {
            for (i, slot) in engine.sessions.iter().enumerate() {
                let s = SessionId::of(i);
                if let (false, Some(p)) = (slot.drop_copy.is_empty(), engine.desk.session_mut(s)) {
                    p.grants.scopes = crate::auth::Scopes::NONE;
                }
            }
        }
        engine.drop_copies = engine
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot.drop_copy.is_empty())
            .map(|(i, _)| SessionId::of(i))
            .collect();
        engine.recover();
        engine
    }

    /// Rebuilds the order table from the journal and re-arms open orders at in-process venues.
    fn recover(&mut self) {
        let now = self.clock.now();
        let (desk, mut out) = self.desk_out();
        desk.recover(&mut out, now);
    }

    /// Addresses the listeners are bound to.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Runs the loop until a shutdown command or the stop flag; then logs sessions out and
    /// returns once they answered or the logout timeout passed.
    pub fn run(&mut self) {
        loop {
            self.do_work();
            if self.stopping.is_none() && self.stop.load(Ordering::Relaxed) {
                self.begin_shutdown();
            }
            if let Some(since) = self.stopping {
                let all_gone = self.conns.iter().next().is_none();
                // Venue connections stay open to the end; client sessions had 3 s to answer.
                let clients_gone = self.conns.iter().all(|c| c.venue.is_some());
                if all_gone || clients_gone || since.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        }
        self.desk.flush_journal();
    }

    /// One duty cycle; returns how much work it did (for the idle strategy).
    ///
    /// Busy-poll mode with a hot set (`spin_read_conns` > 0): the recently active client
    /// connections are read directly, one `read` each per cycle, and epoll (zero timeout) runs
    /// only every `spin_poll_every` cycles — or every cycle while the hot set is empty.
    pub fn do_work(&mut self) -> usize {
        let mut work = 0;
        let spinning = !self.hot.is_empty();
        let mut now = self.clock.now();
        if spinning {
            work += self.read_hot(now);
        }
        self.since_poll = self.since_poll.saturating_add(1);
        if !spinning || self.since_poll >= self.gw.spin_poll_every {
            self.since_poll = 0;
            work += self.poll_once();
            now = self.clock.now();
            if !self.hot.is_empty() {
                self.evict_idle_hot(now);
            }
        }
        work += self.serve_handshakes(now);
        work += self.serve_deferred_reads(now);
        if now.saturating_sub(self.last_timer) >= TIMER_INTERVAL {
            self.last_timer = now;
            self.on_timers(now);
            self.venue_timers(now);
            self.desk.drain_limit_reverts(now);
            self.latency.tick(now);
        }
        if let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Shutdown => self.begin_shutdown(),
                Command::ReloadTls { listener, config } => {
                    if let Some(slot) = self.tls_configs.get_mut(usize::from(listener)) {
                        *slot = Some(config); // the old one drops here: cold, once per reload
                    }
                }
                Command::Keys(snap) => self.apply_keys(snap, now),
                Command::Control(call) => match call.request {
                    crate::handoff::ControlRequest::Session(i) => {
                        self.counters.inc(Counter::ControlRequests);
                        let reply = match self.session_view(SessionId(i)) {
                            Some(v) => crate::handoff::ControlReply::Session(v),
                            None => crate::handoff::ControlReply::Refused("unknown session"),
                        };
                        let _ = call.reply.try_send(reply);
                    }
                    _ => {
                        let (desk, mut out) = self.desk_out();
                        desk.on_control(&mut out, call, now);
                    }
                },
                Command::BlockAddress { ip, until } => self.block_address(ip, until, now),
                Command::Unblock { ip } => self.unblock_address(ip, now),
            }
        }
        self.flush_dirty(now);
        if self.latency.has_pending() {
            self.latency.flushed(self.clock.now());
        }
        self.counters.inc(Counter::DutyCycles);
        if work == 0 && self.warmer.due(now) {
            self.warmer.run(now);
        }
        if work > 0 {
            // Cycles that did work: how long the longest took (idle spins are not timed).
            let took = self.clock.now().saturating_sub(now);
            self.counters.max(Counter::MaxDutyCycleNs, took.0);
        }
        work
    }

    /// One epoll call (zero timeout in busy-poll mode) and the events it returned.
    fn poll_once(&mut self) -> usize {
        let timeout = if self.gw.busy_poll {
            Duration::ZERO
        } else {
            Duration::from_millis(self.gw.poll_timeout_ms)
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.counters.inc(Counter::PollErrors);
            }
        }
        let now = self.clock.now();
        let mut ready = mem::take(&mut self.ready);
        ready.clear();
        for ev in self.events.iter() {
            if ready.len() < ready.capacity() {
                ready.push((
                    ev.token(),
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                ));
            }
        }
        let work = ready.len();
        for &(token, readable, writable) in &ready {
            match Source::of(token) {
                Source::Listener(l) => self.accept(l, now),
                Source::Conn(c) => {
                    // A hot connection is read every cycle anyway: its readiness is stale news.
                    // A client TLS handshake waits for its budget (`perimeter.rs`).
                    if readable && self.handshaking_client(c) {
                        self.queue_handshake(c);
                    } else if readable && !self.is_hot(c) && self.on_readable(c, now) {
                        self.maybe_hot(c, now);
                    }
                    if writable {
                        self.venue_connected(c, now);
                        self.dirty.mark(c);
                    }
                }
            }
        }
        self.ready = ready;
        work
    }

    /// Size of the hot set: `spin_read_conns` in busy-poll mode, else 0 (blocking mode reads
    /// only on epoll events, as it always did).
    fn hot_capacity(&self) -> usize {
        if self.gw.busy_poll {
            self.gw.spin_read_conns
        } else {
            0
        }
    }

    #[inline]
    fn is_hot(&self, c: ConnId) -> bool {
        self.hot.iter().any(|h| h.conn == c)
    }

    /// Reads every hot connection once and processes what came. Returns how many had bytes.
    #[inline]
    fn read_hot(&mut self, now: Nanos) -> usize {
        let mut got_any = 0;
        let mut i = 0;
        while let Some(&HotConn { conn: c, .. }) = self.hot.get(i) {
            let Some(conn) = self.conns.get_mut(c) else {
                self.hot.swap_remove(i);
                continue;
            };
            if conn.dead || conn.closing {
                i += 1;
                continue;
            }
            let before = conn.tail - conn.head;
            let closed = conn.read_once() == ReadOutcome::Closed;
            let got = conn.tail - conn.head > before;
            if got {
                got_any += 1;
                conn.last_rx = now;
                conn.got_bytes = true;
                if let Some(h) = self.hot.get_mut(i) {
                    h.last = now;
                }
                // Bytes that came before the peer's EOF are still processed.
                self.process_input(c, now);
            }
            let dead = match self.conns.get_mut(c) {
                Some(conn) => {
                    conn.dead |= closed;
                    conn.dead
                }
                None => false,
            };
            if dead {
                self.close(c, now, "peer closed"); // removes it from the hot set
            }
            if self.hot.get(i).is_some_and(|h| h.conn == c) {
                i += 1;
            }
        }
        got_any
    }

    /// Bytes arrived on `c` through epoll: it joins the hot set if its previous bytes came less
    /// than `HOT_ADMIT` ago (a busy session), else only the arrival time is noted.
    fn maybe_hot(&mut self, c: ConnId, now: Nanos) {
        if self.hot_capacity() == 0 {
            return;
        }
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        let busy = conn.last_rx != Nanos::ZERO && now.saturating_sub(conn.last_rx) < HOT_ADMIT;
        conn.last_rx = now;
        if busy {
            self.hot_add(c, now);
        }
    }

    /// Puts client connection `c` (plaintext, not a venue) into the hot set after it had
    /// traffic. A full set gives up its longest-idle member, drained to EAGAIN first: epoll is
    /// edge-triggered, so bytes left unread now would never raise another event.
    fn hot_add(&mut self, c: ConnId, now: Nanos) {
        let cap = self.hot_capacity();
        if cap == 0 || self.is_hot(c) {
            return;
        }
        // Only logged-on sessions: a connection that has not logged on is read on epoll events.
        let eligible = self.conns.get(c).is_some_and(|conn| {
            conn.venue.is_none()
                && conn.tls.is_none()
                && !conn.dead
                && !conn.closing
                && conn
                    .session
                    .and_then(|s| self.sessions.get(s.index()))
                    .is_some_and(SessionSlot::is_live)
        });
        if !eligible {
            return;
        }
        if self.hot.len() >= cap {
            let oldest = self
                .hot
                .iter()
                .enumerate()
                .min_by_key(|(_, h)| h.last)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                let out = self.hot.swap_remove(i);
                self.on_readable(out.conn, now);
            }
        }
        if self.hot.len() < cap && self.conns.get(c).is_some() {
            self.hot.push(HotConn { conn: c, last: now });
        }
    }

    /// Hot connections idle for `HOT_IDLE` go back to epoll, drained to EAGAIN first.
    fn evict_idle_hot(&mut self, now: Nanos) {
        let mut i = 0;
        while let Some(&h) = self.hot.get(i) {
            if now.saturating_sub(h.last) < HOT_IDLE {
                i += 1;
                continue;
            }
            self.hot.swap_remove(i);
            if self.on_readable(h.conn, now) {
                // Bytes came after all: back in (there is room, it just left).
                self.hot_add(h.conn, now);
            }
        }
    }

    /// Session `s` as the ops port and `portcullis ctl` show it. Cold.
    #[cold]
    fn session_view(&self, s: SessionId) -> Option<crate::handoff::SessionView> {
        let slot = self.sessions.get(s.index())?;
        let p = self.desk.session(s)?;
        let conn = slot.conn.and_then(|c| self.conns.get(c));
        Some(crate::handoff::SessionView {
            index: s.0,
            begin: match (&slot.bin, slot.begin) {
                (Some(_), _) => "SBE",
                (None, BeginString::Fix42) => "FIX.4.2",
                (None, _) => "FIX.4.4",
            },
            their_comp_id: slot.their_comp_id,
            our_comp_id: slot.our_comp_id,
            key_id: p.grants.key_id,
            connected: conn.is_some(),
            logged_on: slot.is_live(),
            peer: conn.map(|c| c.peer),
            tls: conn.is_some_and(|c| c.tls.is_some()),
            next_sender_seq: slot.bin.as_ref().map_or_else(
                || slot.session.next_sender_seq(),
                |b| b.fixp.next_outbound_seq(),
            ),
            next_target_seq: slot.bin.as_ref().map_or_else(
                || slot.session.next_target_seq(),
                |b| b.fixp.next_inbound_seq(),
            ),
            queued_bytes: conn.map_or(0, |c| c.out.pending().len() as u64),
            killed: p.killed,
            drop_copy: !slot.drop_copy.is_empty(),
        })
    }

    /// Puts `conn` in the free slot `slot`: its TLS side first (when `tls` is given), then
    /// registered with the poll for reads and writes. On failure the slot is free again (a TLS
    /// failure is counted) and the connection dropped, which closes it.
    fn install(&mut self, slot: ConnId, mut conn: Conn, tls: Option<TlsSide>) -> Result<(), ()> {
        let session = match tls {
            None => Ok(None),
            Some(TlsSide::Server(cfg)) => rustls::ServerConnection::new(cfg).map(|mut t| {
                t.set_buffer_limit(Some(net::tls::SEND_LIMIT_BYTES));
                Some(rustls::Connection::Server(t))
            }),
            Some(TlsSide::Client(cfg, name)) => {
                rustls::ClientConnection::new(cfg, name).map(|mut t| {
                    t.set_buffer_limit(Some(net::tls::SEND_LIMIT_BYTES));
                    Some(rustls::Connection::Client(t))
                })
            }
        };
        match session {
            Ok(t) => conn.tls = t.map(Box::new),
            Err(_) => {
                self.counters.inc(Counter::TlsFailures);
                self.conns.unreserve(slot);
                return Err(());
            }
        }
        if self
            .poll
            .registry()
            .register(
                &mut conn.stream,
                Token::from(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.conns.unreserve(slot);
            return Err(());
        }
        self.conns.fill(slot, conn);
        Ok(())
    }

    #[cold]
    fn accept(&mut self, listener: usize, now: Nanos) {
        loop {
            let Some(l) = self.listeners.get(listener) else {
                return;
            };
            let (stream, peer) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            if self.stopping.is_some() {
                continue; // dropped: closed at once
            }
            let serial = match self.admit(peer.ip(), now) {
                perimeter::Admission::Admit(serial) => serial,
                perimeter::Admission::Refuse => continue, // dropped: closed at once
            };
            let Some(slot) = self.conns.reserve() else {
                // `admit` made sure one is free; counted as refused should that ever fail.
                self.counters.inc(Counter::ConnectionsRefused);
                self.pending_done(peer.ip());
                continue;
            };
            let _ = net::tune(&stream);
            // Small buffers until the session is bound (`perimeter::on_bound`).
            let mut conn = Conn::new(
                stream,
                peer,
                self.gw.logon_buffer_bytes,
                self.gw.logon_buffer_bytes,
                now,
            );
            conn.serial = serial;
            conn.sbe = self.listener_sbe.get(listener).copied().unwrap_or(false);
            let bytes = conn.buffer_bytes();
            let tls = match self.tls_configs.get(listener) {
                Some(Some(cfg)) => Some(TlsSide::Server(cfg.clone())),
                _ => None,
            };
            if self.install(slot, conn, tls).is_err() {
                self.pending_done(peer.ip());
                continue;
            }
            self.counters.inc(Counter::ConnectionsAccepted);
            self.admitted(slot, serial, bytes);
            // Data may already be waiting (edge-triggered registration after arrival); a TLS
            // ClientHello waits for the handshake budget.
            if self.handshaking_client(slot) {
                self.queue_handshake(slot);
            } else if self.on_readable(slot, now) {
                self.maybe_hot(slot, now);
            }
        }
    }

    /// Reads connection `c` until the socket would block (edge-triggered epoll) and processes
    /// what came. Returns whether any bytes arrived.
    fn on_readable(&mut self, c: ConnId, now: Nanos) -> bool {
        let mut got_any = false;
        let mut passes = 0;
        loop {
            let Some(conn) = self.conns.get_mut(c) else {
                return got_any;
            };
            if conn.dead {
                break;
            }
            let before = conn.tail - conn.head;
            let handshaking = conn.tls.is_some() && !conn.tls_established();
            let outcome = conn.read();
            let got = conn.tail - conn.head > before;
            // The read stopped because the buffer was full, not because the socket was empty.
            let full = conn.tail == conn.inbuf.len();
            got_any |= got;
            conn.got_bytes |= got;
            let closed = outcome == ReadOutcome::Closed;
            if closed && conn.tls_failed {
                conn.dead = true;
            }
            if conn.tls.is_some() {
                self.on_tls_progress(c, handshaking);
            }
            // Bytes that came before the peer's EOF are still processed; then it is dead.
            self.process_input(c, now);
            let Some(conn) = self.conns.get_mut(c) else {
                return got_any;
            };
            conn.dead |= closed;
            // A full buffer was framed and compacted: read again until the socket is drained,
            // or until this pass had its share (then again next duty cycle).
            if !got || !full || conn.dead || conn.closing {
                break;
            }
            passes += 1;
            if passes >= perimeter::READ_PASS_BUFFERS {
                self.defer_read(c);
                break;
            }
        }
        if let Some(conn) = self.conns.get(c) {
            if conn.dead {
                self.close(c, now, "peer closed");
                return false;
            }
        }
        got_any
    }

    /// After a TLS read: count a finished or failed handshake; records rustls wants to send
    /// (handshake messages, alerts) go out with the next flush.
    #[cold]
    fn on_tls_progress(&mut self, c: ConnId, was_handshaking: bool) {
        let Some(conn) = self.conns.get(c) else {
            return;
        };
        let (failed, established, wants_write) = (
            conn.tls_failed,
            conn.tls_established(),
            conn.tls_wants_write(),
        );
        if failed {
            self.counters.inc(Counter::TlsFailures);
        } else if was_handshaking && established {
            self.counters.inc(Counter::TlsHandshakes);
        }
        if wants_write {
            self.dirty.mark(c);
        }
    }

    /// Frames and handles what connection `c` has buffered. A dead or closing connection
    /// processes nothing more. Before logon (no session bound, not a venue) the rules are
    /// strict: a Logon larger than the small pre-logon buffer is refused, more than
    /// `logon_garbage_bytes` outside a frame or a garbled frame closes the connection.
    fn process_input(&mut self, c: ConnId, now: Nanos) {
        loop {
            let Some(conn) = self.conns.get_mut(c) else {
                return;
            };
            // A closing or dead connection (a refused Logon) processes nothing more.
            if conn.closing || conn.dead {
                return;
            }
            if conn.sbe {
                return self.process_binary(c, now);
            }
            let pre_logon = conn.session.is_none() && conn.venue.is_none();
            let max = if pre_logon {
                // `frame` may look 8 bytes past `max` for a trailer: keep it inside the buffer.
                self.gw
                    .max_message_bytes
                    .min(conn.inbuf.len().saturating_sub(16))
            } else {
                self.gw.max_message_bytes
            };
            let start = conn.head;
            match frame(conn.buffered(), max) {
                Frame::Incomplete => return,
                Frame::Skip { len } => {
                    conn.head += len;
                    if pre_logon {
                        conn.junk_bytes += len;
                        if conn.junk_bytes > self.gw.logon_garbage_bytes {
                            self.shed_garbage(c);
                            self.dirty.mark(c);
                            return;
                        }
                        continue;
                    }
                    self.garbled(c);
                }
                Frame::TooLarge => {
                    self.counters.inc(Counter::OversizedMessages);
                    self.refuse_oversized(c, now);
                    return;
                }
                Frame::Message {
                    len,
                    body_length_ok,
                    checksum_ok,
                } => {
                    conn.head += len;
                    if !(body_length_ok && checksum_ok) {
                        if pre_logon {
                            // Not a Logon we can read: nothing to wait for.
                            self.shed_garbage(c);
                            self.dirty.mark(c);
                            return;
                        }
                        self.garbled(c);
                        continue;
                    }
                    let inbuf = mem::take(&mut conn.inbuf);
                    if let Some(bytes) = inbuf.get(start..start + len) {
                        self.counters.inc(Counter::MessagesIn);
                        self.audit_in(c, bytes, now);
                        self.on_message_bytes(c, bytes, now);
                    }
                    if let Some(conn) = self.conns.get_mut(c) {
                        conn.inbuf = inbuf;
                        if pre_logon && conn.session.is_some() {
                            self.grow_inbuf(c);
                        }
                    }
                }
            }
        }
    }

    #[cold]
    fn garbled(&mut self, c: ConnId) {
        self.counters.inc(Counter::GarbledMessages);
        if let Some(s) = self.conns.get(c).and_then(|conn| conn.session) {
            if let Some(slot) = self.sessions.get_mut(s.index()) {
                slot.session.on_garbled();
            }
        }
    }

    #[cold]
    fn refuse_oversized(&mut self, c: ConnId, now: Nanos) {
        let Some(conn) = self.conns.get_mut(c) else {
            return;
        };
        match conn.session.and_then(|s| self.sessions.get_mut(s.index())) {
            Some(slot) => {
                slot.session.logout(
                    b"message exceeds the maximum message size",
                    now,
                    &mut conn.out,
                );
                conn.closing = true;
            }
            None => conn.dead = true,
        }
        self.dirty.mark(c);
    }

    fn on_message_bytes(&mut self, c: ConnId, bytes: &[u8], now: Nanos) {
        let Ok(msg) = Message::decode(bytes) else {
            self.garbled(c);
            return;
        };
        if let Some(v) = self.conns.get(c).and_then(|conn| conn.venue) {
            return self.on_venue_message(v, c, &msg, now);
        }
        let bound = self.conns.get(c).and_then(|conn| conn.session);
        let s = match bound {
            Some(s) => s,
            None => match self.bind_session(c, &msg, now) {
                Some(s) => {
                    self.on_bound(c);
                    s
                }
                None => return,
            },
        };
        self.dispatch(s, c, &msg, now);
        // Messages that arrived ahead of a gap and are now in sequence.
        loop {
            let mut scratch = mem::take(&mut self.scratch);
            let n = self
                .sessions
                .get_mut(s.index())
                .and_then(|slot| slot.session.take_queued(&mut scratch));
            if let Some(m) = n
                .and_then(|n| scratch.get(..n))
                .and_then(|b| Message::decode(b).ok())
            {
                self.dispatch(s, c, &m, now);
            }
            self.scratch = scratch;
            if n.is_none() {
                break;
            }
        }
    }

    fn dispatch(&mut self, s: SessionId, c: ConnId, msg: &Message<'_>, now: Nanos) {
        let (Some(slot), Some(conn)) = (self.sessions.get_mut(s.index()), self.conns.get_mut(c))
        else {
            return;
        };
        if conn.closing || conn.dead {
            return;
        }
        if msg.msg_type() == MsgType::LOGON && slot.session.is_logged_on() {
            return self.on_relogon(s, c, msg, now);
        }
        let inbound = slot.session.on_message(msg, now, &mut conn.out);
        self.dirty.mark(c);
        match inbound {
            Inbound::Handled => {}
            Inbound::LoggedOn => {
                self.counters.inc(Counter::LogonsAccepted);
                self.emit(Event::LoggedOn {
                    session: s,
                    peer: self.peer_ip(c),
                    at: now,
                });
            }
            Inbound::Application => self.on_application(s, msg, now),
            Inbound::Disconnect(_) => {
                if let Some(conn) = self.conns.get_mut(c) {
                    conn.closing = true;
                }
            }
        }
    }

    /// First message on a connection: it must be a Logon for a configured session that is not
    /// already connected, from the bound certificate, that the session layer takes and (with
    /// `[auth]`) that authenticates. Every refusal, whatever its cause, looks the same on the
    /// wire: nothing is sent and the connection closes at the same point (marked dead here,
    /// closed when the read pass ends; nothing after the Logon is processed). Authentication
    /// runs for every Logon, even one already refused for its CompIDs or binding, so the time
    /// taken does not tell what exists. The cause goes to the event stream: `logon-refused`
    /// (CompIDs, connection, binding, session layer) or `auth-failed` (the signed logon).
    #[cold]
    fn bind_session(&mut self, c: ConnId, msg: &Message<'_>, now: Nanos) -> Option<SessionId> {
        use crate::auth::logon::USERNAME;
        let peer = self.peer_ip(c);
        let key_id = msg
            .get(USERNAME)
            .and_then(crate::auth::KeyId::new)
            .unwrap_or(crate::auth::KeyId::EMPTY);
        if msg.msg_type() != MsgType::LOGON {
            self.refuse_logon(c, msg, key_id, peer, LogonRefusal::NotLogon, now);
            return None;
        }
        let begin = msg.begin_string();
        let their = msg.get(crate::fix::tags::SENDER_COMP_ID).unwrap_or(b"");
        let our = msg.get(crate::fix::tags::TARGET_COMP_ID).unwrap_or(b"");
        let found = self
            .sessions
            .iter()
            .position(|slot| {
                slot.bin.is_none()
                    && slot.begin.as_bytes() == begin
                    && slot.their_comp_id.as_bytes() == their
                    && slot.our_comp_id.as_bytes() == our
            })
            .map(SessionId::of);
        let early = match found {
            None => Some(LogonRefusal::NoSession),
            Some(s) => self.binding_refusal(c, s, msg),
        };
        let session = found.unwrap_or(SessionId::NONE);
        // Authentication (always run, see above). `Err` carries the audit cause.
        let keys = self.auth.as_ref().map(|a| a.keys.clone());
        let mut auth_cause = None;
        let mut verified = None;
        let signed = self
            .auth
            .as_ref()
            .is_some_and(|a| a.required || msg.get(USERNAME).is_some());
        if let (true, Some(keys)) = (signed, keys.as_deref()) {
            match self.check_logon(keys, msg, peer, now) {
                Some(Ok(v)) => verified = Some(v),
                Some(Err(r)) => auth_cause = Some(r.failure.cause()),
                None => {}
            }
        }
        if let Some(reason) = early {
            self.refuse_logon(c, msg, key_id, peer, reason, now);
            return None;
        }
        let s = found?;
        let drop_copy = verified.and_then(|v| {
            self.sessions
                .get(s.index())
                .and_then(|slot| drop_copy_refusal(&slot.drop_copy, v.key))
        });
        if let Some(cause) = auth_cause.or(drop_copy) {
            self.refuse_auth(c, session, key_id, peer, cause, now);
            return None;
        }
        let (dev_grants, slot_default_account) = self
            .sessions
            .get(s.index())
            .map(|slot| (slot.dev_grants.clone(), slot.default_account))?;
        let grants = match verified {
            Some(v) => {
                self.accept_logon(session, &v, now);
                crate::auth::Grants::from_key(v.key, KeySlot(s.0), slot_default_account)
            }
            None => dev_grants,
        };
        if let Some(slot) = self.sessions.get_mut(s.index()) {
            slot.conn = Some(c);
        }
        if let Some(p) = self.desk.session_mut(s) {
            p.grants = grants;
        }
        if let Some(conn) = self.conns.get_mut(c) {
            conn.session = Some(s);
        }
        Some(s)
    }

    /// The signed-logon check of `msg` from `peer`: counts lockout-table evictions and reports
    /// every lockout the failure started (`AuthLockout`, AUTH-8). `None` without `[auth]`.
    #[cold]
    fn check_logon<'k>(
        &mut self,
        keys: &'k crate::auth::KeySnapshot,
        msg: &Message<'_>,
        peer: std::net::IpAddr,
        now: Nanos,
    ) -> Option<Result<crate::auth::logon::Verified<'k>, crate::auth::logon::Refused>> {
        let auth = self.auth.as_mut()?;
        let checked = auth.verifier.check(keys, msg, peer, now);
        self.counters
            .set(Counter::LockoutEvictions, auth.verifier.lockout_evictions());
        if let Err(r) = &checked {
            for (l, key) in [(r.address_locked, false), (r.key_locked, true)] {
                let Some(l) = l else { continue };
                self.counters.inc(Counter::AuthLockouts);
                self.emit(Event::AuthLockout {
                    key_id: r.key_id,
                    peer,
                    key,
                    until: l.until,
                    generation: l.generation,
                    at: now,
                });
            }
        }
        Some(checked)
    }

    /// A Logon accepted under `v`: its signature joins the replay cache (only now, so a Logon
    /// refused for another reason never burns it) and the `Authenticated` event (which the
    /// journal thread also persists for the replay cache).
    #[cold]
    fn accept_logon(
        &mut self,
        session: SessionId,
        v: &crate::auth::logon::Verified<'_>,
        now: Nanos,
    ) {
        if let Some(auth) = self.auth.as_mut() {
            auth.verifier.remember(v, now);
        }
        let (replay, replay_until) = v.replay_entry();
        self.emit(Event::Authenticated {
            session,
            key_id: v.key.id,
            replay,
            replay_until,
            at: now,
        });
    }

    /// A Logon on an established session. Only a ResetSeqNumFlag(141)=Y Logon may reset it,
    /// and on a session bound to a key only one verified like the first Logon (signature,
    /// skew, replay, allowlist, ...) under the same key; anything else gets Reject then Logout
    /// and the connection ends, with nothing reset. Without `[auth]` (or on an unsigned
    /// development session) the session layer alone decides: 141=Y resets, anything else is
    /// refused; the reset is in the event stream as a `logon`.
    #[cold]
    fn on_relogon(&mut self, s: SessionId, c: ConnId, msg: &Message<'_>, now: Nanos) {
        let bound_key = self
            .desk
            .grants(s)
            .map_or(crate::auth::KeyId::EMPTY, |g| g.key_id);
        let reset = msg.flag(crate::fix::tags::RESET_SEQ_NUM_FLAG) == Ok(Some(true));
        let peer = self.peer_ip(c);
        let mut refusal = None;
        let mut grants = None;
        let keys = self.auth.as_ref().map(|a| a.keys.clone());
        if let (Some(keys), false) = (keys.as_deref(), bound_key.is_empty()) {
            match self.check_logon(keys, msg, peer, now) {
                None => {}
                Some(Ok(v)) if v.key.id != bound_key => {
                    refusal = Some((v.key.id, "re-logon under a different key"));
                }
                Some(Ok(v)) if !reset => {
                    refusal = Some((v.key.id, "re-logon without ResetSeqNumFlag"));
                }
                Some(Ok(v)) => {
                    self.accept_logon(s, &v, now);
                    let default_account = self
                        .sessions
                        .get(s.index())
                        .map_or(Account::EMPTY, |slot| slot.default_account);
                    grants = Some(crate::auth::Grants::from_key(
                        v.key,
                        KeySlot(s.0),
                        default_account,
                    ));
                }
                Some(Err(r)) => refusal = Some((r.key_id, r.failure.cause())),
            }
        }
        if let Some((key_id, cause)) = refusal {
            self.counters.inc(Counter::AuthFailures);
            self.emit(Event::AuthFailed {
                session: s,
                key_id,
                peer,
                cause,
                at: now,
            });
        }
        let (Some(slot), Some(conn)) = (self.sessions.get_mut(s.index()), self.conns.get_mut(c))
        else {
            return;
        };
        let refused = refusal.is_some() || !reset;
        if refused {
            self.counters.inc(Counter::RelogonsRefused);
        }
        let inbound = if refusal.is_some() {
            slot.session.reject_relogon(msg, now, &mut conn.out)
        } else {
            slot.session.on_message(msg, now, &mut conn.out)
        };
        if let (Some(g), Inbound::LoggedOn, Some(p)) = (grants, inbound, self.desk.session_mut(s)) {
            p.grants = g;
        }
        self.dirty.mark(c);
        match inbound {
            Inbound::LoggedOn => {
                self.counters.inc(Counter::LogonsAccepted);
                self.emit(Event::LoggedOn {
                    session: s,
                    peer: self.peer_ip(c),
                    at: now,
                });
            }
            Inbound::Disconnect(_) => {
                if let Some(conn) = self.conns.get_mut(c) {
                    conn.closing = true;
                }
            }
            Inbound::Handled | Inbound::Application => {}
        }
    }

    /// Why session `s` cannot take a Logon on connection `c` before authentication: already
    /// connected, certificate binding (SPKI or subject), or the session layer's first-message
    /// check. `None`: it can.
    #[cold]
    fn binding_refusal(&self, c: ConnId, s: SessionId, msg: &Message<'_>) -> Option<LogonRefusal> {
        let slot = self.sessions.get(s.index())?;
        if slot.conn.is_some() {
            return Some(LogonRefusal::AlreadyConnected);
        }
        let tls = self.conns.get(c).and_then(|conn| conn.tls.as_deref());
        if let Some(want) = slot.client_spki {
            if tls.and_then(net::tls::peer_spki_sha256) != Some(want) {
                return Some(LogonRefusal::CertificateKey);
            }
        }
        if let Some(want) = &slot.client_subject {
            if !tls.is_some_and(|t| net::tls::peer_subject_is(t, want)) {
                return Some(LogonRefusal::CertificateSubject);
            }
        }
        if slot.session.check_first_message(msg).is_err() {
            return Some(LogonRefusal::SessionLayer);
        }
        None
    }

    /// The source address of connection `c` (0.0.0.0 if it is gone).
    fn peer_ip(&self, c: ConnId) -> std::net::IpAddr {
        self.conns
            .get(c)
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |conn| conn.peer.ip())
    }

    /// Refuses a first message or Logon for a reason outside authentication: nothing sent,
    /// the connection dies, the cause to the event stream.
    #[cold]
    fn refuse_logon(
        &mut self,
        c: ConnId,
        msg: &Message<'_>,
        key_id: crate::auth::KeyId,
        peer: std::net::IpAddr,
        reason: LogonRefusal,
        now: Nanos,
    ) {
        self.counters.inc(Counter::LogonsRefused);
        let their = msg
            .get(crate::fix::tags::SENDER_COMP_ID)
            .and_then(CompId::new)
            .unwrap_or(CompId::EMPTY);
        self.emit(Event::LogonRefused {
            their_comp_id: their,
            key_id,
            peer,
            reason,
            at: now,
        });
        self.kill_unanswered(c);
    }

    /// Refuses a Logon authentication turned down (or a drop copy its key may not hold):
    /// nothing sent, the connection dies, the cause to the event stream. The session's state
    /// and sequence numbers are not touched.
    #[cold]
    fn refuse_auth(
        &mut self,
        c: ConnId,
        session: SessionId,
        key_id: crate::auth::KeyId,
        peer: std::net::IpAddr,
        cause: &'static str,
        now: Nanos,
    ) {
        self.counters.inc(Counter::LogonsRefused);
        self.counters.inc(Counter::AuthFailures);
        self.emit(Event::AuthFailed {
            session,
            key_id,
            peer,
            cause,
            at: now,
        });
        self.kill_unanswered(c);
    }

    /// Connection `c` ends without a byte of FIX: whatever it queued is dropped and it is
    /// closed when the current read pass ends; nothing it sent after this is processed.
    fn kill_unanswered(&mut self, c: ConnId) {
        if let Some(conn) = self.conns.get_mut(c) {
            conn.out.clear();
            conn.dead = true;
        }
    }

    #[cold]
    fn on_timers(&mut self, now: Nanos) {
        let logon_timeout = Nanos::from_millis(self.gw.logon_timeout_ms);
        let silent_timeout = Nanos::from_millis(self.gw.silent_timeout_ms);
        self.report_shed(now);
        for c in self.conns.ids() {
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            if let Some(v) = conn.venue {
                let connect_timeout = now.saturating_sub(conn.opened_at) > logon_timeout;
                if conn.connecting {
                    if connect_timeout {
                        conn.dead = true;
                        self.close(c, now, "venue connect timed out");
                    }
                    continue;
                }
                if let Some(fx) = self.links.get_mut(v) {
                    if fx.session.on_timer(now, &mut conn.out).is_some() {
                        conn.closing = true;
                    }
                }
                if !conn.out.is_empty() || conn.closing {
                    self.dirty.mark(c);
                }
                continue;
            }
            match conn.session {
                None => {
                    let waited = now.saturating_sub(conn.opened_at);
                    if !conn.got_bytes && waited > silent_timeout {
                        self.shed_silent(c, now);
                    } else if waited > logon_timeout {
                        self.counters.inc(Counter::LogonTimeouts);
                        conn.dead = true;
                        self.close(c, now, "no logon within the logon timeout");
                    }
                }
                Some(s) => {
                    if self.check_slow_consumer(c, s, now) {
                        continue;
                    }
                    if self
                        .sessions
                        .get(s.index())
                        .is_some_and(|slot| slot.bin.is_some())
                    {
                        self.binary_timer(s, c, now);
                        continue;
                    }
                    let Some(conn) = self.conns.get_mut(c) else {
                        continue;
                    };
                    let (Some(slot), Some(p)) =
                        (self.sessions.get_mut(s.index()), self.desk.session_mut(s))
                    else {
                        continue;
                    };
                    if now.0 >= p.grants.expires_ns && slot.session.is_logged_on() {
                        let g = &mut p.grants;
                        credential_logout(slot, g, s, "credential expired", conn, now, &self.ring);
                        self.counters.inc(Counter::CredentialLogouts);
                    }
                    if let Some(_reason) = slot.session.on_timer(now, &mut conn.out) {
                        conn.closing = true;
                    }
                    if !conn.out.is_empty() || conn.closing {
                        self.dirty.mark(c);
                    }
                }
            }
        }
    }

    /// A new key snapshot: swap it in, apply unlocks, refresh or end the sessions bound to
    /// keys (revoked, expired, gone or no longer bound to the CompID → Logout).
    #[cold]
    fn apply_keys(&mut self, snap: Arc<crate::auth::KeySnapshot>, now: Nanos) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        auth.verifier.apply_unlocks(&snap);
        for s in (0..self.sessions.len()).map(SessionId::of) {
            let (Some(slot), Some(principal)) =
                (self.sessions.get_mut(s.index()), self.desk.session_mut(s))
            else {
                continue;
            };
            let grants = &mut principal.grants;
            if grants.key_id.is_empty() {
                continue;
            }
            let Some(c) = slot.conn else {
                // A drop copy that is away keeps storing copies for its resend only while its
                // key still allows them (fix-specs "Drop copy").
                if !slot.drop_copy.is_empty() {
                    match snap.get(grants.key_id.as_bytes()) {
                        Some(k)
                            if !k.revoked
                                && !k.is_expired(now.0)
                                && k.comp_ids.contains(&slot.their_comp_id) =>
                        {
                            *grants = crate::auth::Grants::from_key(
                                k,
                                KeySlot(s.0),
                                slot.default_account,
                            );
                        }
                        _ => grants.scopes = crate::auth::Scopes::NONE,
                    }
                }
                continue;
            };
            let peer = self.conns.get(c).map(|conn| conn.peer.ip());
            // Narrowed grants apply at once: the new account list is what the next message is
            // checked against (orders left in a lost account can still be canceled, see
            // `Grants::may_manage`); a peer address the allowlist no longer covers ends the
            // session.
            let cause = match snap.get(grants.key_id.as_bytes()) {
                None => Some("credential revoked"),
                Some(k) if k.revoked => Some("credential revoked"),
                Some(k) if k.is_expired(now.0) => Some("credential expired"),
                Some(k) if !k.comp_ids.contains(&slot.their_comp_id) => Some("credential revoked"),
                Some(k) if peer.is_some_and(|p| !k.allows_peer(p)) => {
                    Some("source address no longer allowed for this credential")
                }
                Some(k) if drop_copy_refusal(&slot.drop_copy, k).is_some() => {
                    Some("credential no longer permits drop copy")
                }
                Some(k) => {
                    *grants = crate::auth::Grants::from_key(k, KeySlot(s.0), slot.default_account);
                    None
                }
            };
            if let (Some(cause), Some(conn)) = (cause, self.conns.get_mut(c)) {
                credential_logout(slot, grants, s, cause, conn, now, &self.ring);
                self.counters.inc(Counter::CredentialLogouts);
                self.dirty.mark(c);
            }
        }
        auth.keys = snap;
    }

    /// The key-store watcher's loader (once): `gateway::start` runs it on its own thread.
    pub fn take_key_loader(&mut self) -> Option<crate::auth::watch::Loader> {
        self.key_loader.take()
    }

    fn flush_dirty(&mut self, now: Nanos) {
        let mut dirty = mem::take(&mut self.dirty);
        for &c in dirty.as_slice() {
            self.audit_out(c, now);
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            let before = conn.out.pending().len();
            if conn.flush().is_err() {
                conn.dead = true;
            }
            if conn.out.pending().len() < before {
                self.counters.inc(Counter::SocketWrites);
            }
            if conn.dead || (conn.closing && conn.all_sent()) {
                let reason = if conn.dead {
                    "socket error"
                } else {
                    "logged out"
                };
                self.close(c, now, reason);
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Closes connection `c` and unbinds its session (cancel-on-disconnect applies).
    #[cold]
    fn close(&mut self, c: ConnId, now: Nanos, reason: &'static str) {
        self.audit_out(c, now);
        // The slot is free again from here (nothing below opens a connection).
        let Some(mut conn) = self.conns.remove(c) else {
            return;
        };
        let _ = conn.flush();
        conn.close_notify();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(i) = self.hot.iter().position(|h| h.conn == c) {
            self.hot.swap_remove(i);
        }
        self.counters.inc(Counter::ConnectionsClosed);
        if conn.venue.is_none() {
            if conn.session.is_none() {
                self.pending_done(conn.peer.ip());
            }
            self.buffer_gauge(-(conn.buffer_bytes() as i64));
            if conn.tls_queued {
                self.forget_handshake(c);
            }
        }
        if conn.read_deferred {
            self.forget_deferred_read(c);
        }
        if let Some(v) = conn.venue {
            self.venue_down(v, now, reason);
            return;
        }
        if let Some(s) = conn.session {
            let mut cancel = false;
            if let Some(slot) = self.sessions.get_mut(s.index()) {
                slot.conn = None;
                match slot.bin.as_deref_mut() {
                    Some(bin) => {
                        self.detached.clear();
                        let mut out = binary::FixpOut::new(&mut self.detached);
                        bin.fixp.on_disconnect(&mut out);
                    }
                    None => slot.session.on_disconnect(now),
                }
                cancel = slot.cancel_on_disconnect;
            }
            self.emit(Event::Disconnected {
                session: s,
                reason,
                at: now,
            });
            if cancel {
                self.cancel_session_orders(s, now);
            }
        }
    }

    #[cold]
    fn begin_shutdown(&mut self) {
        let now = self.clock.now();
        self.stopping = Some(crate::clock::monotonic());
        for slot in &mut self.sessions {
            let Some(c) = slot.conn else { continue };
            let Some(conn) = self.conns.get_mut(c) else {
                continue;
            };
            // A logged-on session waits for the client's Logout (or the session's logout
            // timeout); anything else is closed once its output is flushed. An SBE session
            // gets Terminate and closes once it is flushed.
            if let Some(bin) = slot.bin.as_deref_mut() {
                let mut out = binary::FixpOut::new(&mut conn.out);
                let _ = bin
                    .fixp
                    .terminate(crate::fixp::ErrorCode::Administrative, now, &mut out);
                conn.closing = true;
            } else if slot.session.is_logged_on() {
                slot.session
                    .logout(b"gateway shutting down", now, &mut conn.out);
            } else {
                conn.closing = true;
            }
        }
        for c in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(c) {
                if conn.session.is_none() {
                    conn.dead = true;
                }
                self.dirty.mark(c);
            }
        }
    }

    #[inline]
    pub(crate) fn emit(&self, e: Event) {
        if !self.ring.push(e) {
            self.counters.inc(Counter::EventRingFull);
        }
    }

    /// The output buffer for session `s`: its connection's, or the detached sink (messages are
    /// then only stored for resend).
    pub(crate) fn session_and_out(
        &mut self,
        s: SessionId,
    ) -> Option<(&mut SessionSlot, &mut OutBuf, Option<ConnId>)> {
        let slot = self.sessions.get_mut(s.index())?;
        let conn_idx = slot.conn;
        let out = match conn_idx.and_then(|c| self.conns.get_mut(c)) {
            Some(conn) => &mut conn.out,
            None => {
                self.detached.clear();
                &mut self.detached
            }
        };
        Some((slot, out, conn_idx))
    }

    /// Benchmarks and tests: feeds `bytes` to connection `c` as if read from its socket and
    /// runs the whole pipeline on them (frame → session → order → venue → reports). Returns
    /// false when the connection does not exist or its buffer cannot take the bytes.
    #[doc(hidden)]
    pub fn inject(&mut self, c: ConnId, bytes: &[u8], now: Nanos) -> bool {
        let Some(conn) = self.conns.get_mut(c) else {
            return false;
        };
        if conn.head > 0 {
            conn.inbuf.copy_within(conn.head..conn.tail, 0);
            conn.tail -= conn.head;
            conn.head = 0;
        }
        let Some(dst) = conn.inbuf.get_mut(conn.tail..conn.tail + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        conn.tail += bytes.len();
        self.process_input(c, now);
        true
    }

    /// Benchmarks and tests: the bytes waiting to be written to connection `c`, then discards
    /// them (as if the socket took them).
    #[doc(hidden)]
    pub fn take_output(&mut self, c: ConnId, mut sink: impl FnMut(&[u8])) {
        if let Some(conn) = self.conns.get_mut(c) {
            sink(conn.out.pending());
            conn.out.clear();
        }
        self.dirty.clear();
    }

    /// Benchmarks and tests: the slot of the most recently accepted connection.
    #[doc(hidden)]
    pub fn last_connection(&self) -> Option<ConnId> {
        self.conns.last()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Open orders in the table (cold: scans).
    pub fn open_orders(&self) -> usize {
        self.desk.open_orders()
    }
}
