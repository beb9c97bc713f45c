//! HOT (application messages) / COLD (Negotiate, Establish, timers) — SBE order entry over a
//! FIXP session: the binary side of the shell (fix-specs/FIXP-SESSION.md, fix-specs/sbe/).
//!
//! A connection accepted on a `protocol = "sbe"` listener is framed by the SOFH
//! ([`crate::sbe::frame`]), decoded by the generated flyweights, and its session messages go to
//! the sans-IO [`crate::fixp::Session`] of the configured session its first Negotiate or
//! Establish names. Application messages pass the same checks as FIX ones
//! ([`Engine::gate`]: scope, account and symbol grants, throttle; PossRetrans duplicates) and
//! become the same desk intents; the desk's reports come back as SBE through
//! [`crate::engine::wire`], numbered and stored by the FIXP session (recoverable flow).
//!
//! Authentication is the FIX Logon's ([`crate::fixp::KeyVerifier`] over the same
//! `Authenticator`): every refusal of a first message, whatever its cause (unknown session,
//! bad signature, skew, replay, lockout, allowlist, certificate binding), is the same
//! NegotiationReject/EstablishmentReject "authentication failed" followed by a close; the cause
//! goes to the event stream. Must never: deliver an application message before Establish,
//! allocate per message, or tell an unauthenticated peer anything about a session.

use std::path::PathBuf;

use super::app::{Gate, ThrottleAnswer};
use super::stores::AnyStore;
use super::{AuthState, Engine};
use crate::auth::{KeyId, KeySnapshot, Scopes};
use crate::desk::{blank_order, cxl_rej_reason, ord_rej_reason, CancelRejectTo, Denied};
use crate::fixp::{self, Action, ErrorCode, KeyVerifier, SessionMsg, SignedRequest, Verifier};
use crate::handoff::{Event, LogonRefusal};
use crate::model::{
    Account, CompId, ConnId, InlineStr, Nanos, OrdType, OrderIdStr, Price, Qty, SessionId, Side,
    Symbol, TimeInForce,
};
use crate::monitor::Counter;
use crate::order::Order;
use crate::sbe::{self, Frame, Message};
use crate::session::OutBuf;
use crate::throttle::{KeySlot, MsgClass};

/// Byte offset of `possRetrans` in every application frame: SOFH (6) + message header (8) +
/// block offset 16 (fix-specs/sbe/LAYOUT.md).
const POSS_RETRANS_AT: usize = sbe::SOFH_LENGTH + sbe::HEADER_LENGTH + 16;

/// BusinessRejectReason values an SBE BusinessMessageReject carries (LAYOUT.md). A message
/// type a client never sends has no "unsupported" answer: it is a session error (Terminate
/// 302, [`Engine::on_binary_app`]).
mod bmr {
    pub const CONDITIONALLY_REQUIRED_FIELD_MISSING: u32 = 5;
    pub const NOT_AUTHORIZED: u32 = 6;
    pub const THROTTLE_LIMIT_EXCEEDED: u32 = 8;
}

/// The FIXP side of a `protocol = "sbe"` session slot.
pub struct BinSession {
    pub fixp: fixp::Session<AnyStore>,
    /// Where the logical session's uuids and key are kept across restarts (`None`: not
    /// persisted).
    pub state_path: Option<PathBuf>,
}

/// What [`BinSession::load_state`] gives back for [`fixp::Session::restore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinState {
    pub uuid: u64,
    pub previous_uuid: u64,
    pub current_is_b: bool,
    pub key: fixp::msg::Name,
}

impl BinSession {
    /// Cold: the persisted state file, one line `uuid previous_uuid current_is_b key`;
    /// missing means never negotiated. A line that does not parse is an error naming the file.
    pub fn load_state(path: &std::path::Path) -> Result<Option<BinState>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let bad = || {
            format!(
                "{}: not `uuid previous_uuid current_is_b key`",
                path.display()
            )
        };
        let mut w = text.split_whitespace();
        let uuid = w.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let previous_uuid = w.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let current_is_b = match w.next() {
            Some("1") => true,
            Some("0") => false,
            _ => return Err(bad()),
        };
        let key = fixp::msg::Name::new(w.next().unwrap_or("").as_bytes()).ok_or_else(bad)?;
        Ok(Some(BinState {
            uuid,
            previous_uuid,
            current_is_b,
            key,
        }))
    }

    /// Cold (once per Negotiate): writes the state file (0600, through a temporary file and
    /// a rename, synced), so a restart resumes the same uuid with its sequence numbers.
    fn save_state(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let (f, key) = (&self.fixp, self.fixp.key());
        let line = format!(
            "{} {} {} {}\n",
            f.uuid(),
            f.previous_uuid(),
            u8::from(f.current_is_b()),
            key.as_str()
        );
        crate::files::replace_private(path, line.as_bytes())
    }
}

/// The FIXP session's [`fixp::Outbox`] over a connection's send buffer: session messages are
/// encoded with [`fixp::wire::encode_session`], application messages appended as stored
/// (PossRetrans set in the copy of a retransmission), events kept for the engine.
pub(crate) struct FixpOut<'a> {
    pub out: &'a mut OutBuf,
    events: [Option<fixp::Event>; 4],
    n: usize,
}

impl<'a> FixpOut<'a> {
    #[inline]
    pub fn new(out: &'a mut OutBuf) -> FixpOut<'a> {
        FixpOut {
            out,
            events: [None; 4],
            n: 0,
        }
    }
}

impl fixp::Outbox for FixpOut<'_> {
    fn session(&mut self, msg: &SessionMsg) {
        let mut buf = [0u8; 160];
        if let Ok(n) = fixp::wire::encode_session(msg, &mut buf) {
            let _ = self.out.append(buf.get(..n).unwrap_or(&[]));
        }
    }

    #[inline]
    fn application(&mut self, _seq: u64, bytes: &[u8], poss_retrans: bool) {
        if !poss_retrans {
            let _ = self.out.append(bytes);
            return;
        }
        let mut buf = [0u8; 512];
        if let Some(copy) = buf.get_mut(..bytes.len()) {
            copy.copy_from_slice(bytes);
            if let Some(flag) = copy.get_mut(POSS_RETRANS_AT) {
                *flag = 1;
            }
            let _ = self.out.append(copy);
        }
    }

    fn event(&mut self, event: fixp::Event) {
        // More than four events in one call never happens (at most: Rejected + Terminated);
        // the rest would only be counts.
        if let Some(slot) = self.events.get_mut(self.n) {
            *slot = Some(event);
            self.n += 1;
        }
    }
}

/// The verifier of one request: the gateway's keys, or (development, no `[auth]`, or an
/// unsigned request when `auth.required = false`) one that accepts every request.
// On the stack for one session message, never stored: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum AnyVerifier<'a> {
    Keys(KeyVerifier<'a>),
    Dev,
}

impl Verifier for AnyVerifier<'_> {
    fn verify(&mut self, req: &SignedRequest<'_>, now: Nanos) -> bool {
        match self {
            AnyVerifier::Keys(v) => v.verify(req, now),
            AnyVerifier::Dev => true,
        }
    }
    fn accepted(&mut self, req: &SignedRequest<'_>, now: Nanos) {
        if let AnyVerifier::Keys(v) = self {
            v.accepted(req, now);
        }
    }
}

/// What a verifier saw, kept after it is dropped.
#[derive(Default)]
struct Verdicts {
    verified: Option<KeyId>,
    refused: Option<crate::auth::logon::Refused>,
    remembered: Option<([u8; 32], Nanos)>,
}

impl AnyVerifier<'_> {
    fn verdicts(&self) -> Verdicts {
        match self {
            AnyVerifier::Keys(v) => Verdicts {
                verified: v.verified_key(),
                refused: v.refused().copied(),
                remembered: v.remembered(),
            },
            AnyVerifier::Dev => Verdicts::default(),
        }
    }
}

/// The verifier for a request naming `key_id` from `peer`.
fn verifier<'a>(
    auth: &'a mut Option<AuthState>,
    snap: Option<&'a KeySnapshot>,
    peer: std::net::IpAddr,
    key_id: &[u8],
) -> AnyVerifier<'a> {
    match (auth.as_mut(), snap) {
        (Some(a), Some(snap)) if a.required || !key_id.is_empty() => {
            AnyVerifier::Keys(KeyVerifier::new(&mut a.verifier, snap, peer))
        }
        _ => AnyVerifier::Dev,
    }
}

/// The key id a Negotiate or Establish names (empty for other messages).
fn named_key(m: &SessionMsg) -> &[u8] {
    match m {
        SessionMsg::Negotiate(n) => n.access_key_id.as_bytes(),
        SessionMsg::Establish(e) => e.access_key_id.as_bytes(),
        _ => b"",
    }
}

/// An inbound application message's `(seqNum, possRetrans)`; `None` for a message only the
/// gateway sends.
#[inline]
fn app_header(m: &Message<'_>) -> Option<(u64, bool)> {
    Some(match m {
        Message::NewOrderSingle(d) => (d.seq_num(), d.poss_retrans_raw() == 1),
        Message::OrderCancelRequest(d) => (d.seq_num(), d.poss_retrans_raw() == 1),
        Message::OrderCancelReplaceRequest(d) => (d.seq_num(), d.poss_retrans_raw() == 1),
        Message::OrderMassCancelRequest(d) => (d.seq_num(), d.poss_retrans_raw() == 1),
        Message::OrderStatusRequest(d) => (d.seq_num(), d.poss_retrans_raw() == 1),
        _ => return None,
    })
}

/// Why a NewOrderSingle's fields were refused: OrdRejReason and Text.
type Refusal = (u32, &'static [u8]);

/// The fields of an SBE NewOrderSingle into `o` (as far as they are valid); the same rules as
/// the FIX parser's (`app::parse_new_order`).
fn parse_order(
    d: &sbe::generated::NewOrderSingleDecoder<'_>,
    o: &mut Order,
) -> Result<(), Refusal> {
    o.cl_ord_id = OrderIdStr::new(d.cl_ord_id()).unwrap_or_default();
    if o.cl_ord_id.is_empty() {
        return Err((ord_rej_reason::OTHER, b"clOrdID missing"));
    }
    if !d.account().is_empty() {
        o.account = Account::new(d.account()).unwrap_or_default();
    }
    o.symbol = Symbol::new(d.symbol()).unwrap_or_default();
    if o.symbol.is_empty() {
        return Err((ord_rej_reason::UNKNOWN_SYMBOL, b"symbol missing"));
    }
    o.side = d.side().map(Side::from).ok_or((
        ord_rej_reason::UNSUPPORTED_ORDER_CHARACTERISTIC,
        b"unsupported side: use 1, 2 or 5".as_slice(),
    ))?;
    o.qty = Qty(d.order_qty());
    if o.qty.0 <= 0 {
        return Err((
            ord_rej_reason::INCORRECT_QUANTITY,
            b"orderQty must be positive",
        ));
    }
    o.ord_type = d.ord_type().map(OrdType::from).ok_or((
        ord_rej_reason::UNSUPPORTED_ORDER_CHARACTERISTIC,
        b"unsupported ordType: use 1 (market) or 2 (limit)".as_slice(),
    ))?;
    o.price = d.price().map(Price);
    match (o.ord_type, o.price) {
        (OrdType::Limit, None) => {
            return Err((ord_rej_reason::OTHER, b"limit order without price"))
        }
        (OrdType::Limit, Some(p)) if p.0 <= 0 => {
            return Err((ord_rej_reason::OTHER, b"price must be positive"))
        }
        (OrdType::Market, Some(_)) => o.price = None,
        _ => {}
    }
    o.tif = match d.time_in_force_raw() {
        0 => TimeInForce::Day,
        _ => d.time_in_force().map(TimeInForce::from).ok_or((
            ord_rej_reason::UNSUPPORTED_ORDER_CHARACTERISTIC,
            b"unsupported timeInForce: use 0, 1, 3 or 4".as_slice(),
        ))?,
    };
    let det = &mut o.detail;
    det.trader = InlineStr::new(d.trader_id()).unwrap_or_default();
    det.decision_maker = InlineStr::new(d.decision_maker_id()).unwrap_or_default();
    det.security_id = InlineStr::new(d.security_id()).unwrap_or_default();
    det.security_id_source = d.security_id_source();
    let ccy = d.currency();
    if !ccy.is_empty() {
        if ccy.len() != 3 || !ccy.iter().all(u8::is_ascii_alphabetic) {
            return Err((
                ord_rej_reason::OTHER,
                b"currency must be an ISO 4217 code (3 letters)",
            ));
        }
        det.currency = InlineStr::new(ccy).unwrap_or_default();
    }
    det.exec_inst = InlineStr::new(d.exec_inst()).unwrap_or_default();
    Ok(())
}

/// The parts of an inbound application message the shell's checks need.
struct AppInfo<'m> {
    seq: u64,
    poss_retrans: bool,
    template: u16,
    cl: &'m [u8],
    need: Scopes,
    account: Option<&'m [u8]>,
    symbol: Option<&'m [u8]>,
    class: MsgClass,
}

fn non_empty(v: &[u8]) -> Option<&[u8]> {
    (!v.is_empty()).then_some(v)
}

impl Engine {
    /// Frames and handles what SBE connection `c` has buffered. Before the session is bound
    /// the rules are strict: a frame the codec refuses closes the connection without a byte.
    pub(super) fn process_binary(&mut self, c: ConnId, now: Nanos) {
        loop {
            let Some(conn) = self.conns.get_mut(c) else {
                return;
            };
            if conn.closing || conn.dead {
                return;
            }
            let pre_bind = conn.session.is_none();
            let max = self
                .gw
                .max_message_bytes
                .min(sbe::DEFAULT_MAX_FRAME)
                .min(conn.inbuf.len());
            let start = conn.head;
            match sbe::frame(conn.buffered(), max) {
                Frame::Incomplete => return,
                Frame::Invalid(e) => return self.binary_malformed(c, e, now),
                Frame::Complete(len) => {
                    conn.head += len;
                    let inbuf = std::mem::take(&mut conn.inbuf);
                    if let Some(bytes) = inbuf.get(start..start + len) {
                        self.counters.inc(Counter::MessagesIn);
                        self.audit_in(c, bytes, now);
                        self.on_binary_frame(c, bytes, now);
                    }
                    if let Some(conn) = self.conns.get_mut(c) {
                        conn.inbuf = inbuf;
                        if pre_bind && conn.session.is_some() {
                            self.grow_inbuf(c);
                        }
                    }
                }
            }
        }
    }

    /// A frame the codec refuses. Bound: Terminate with the error's code, then close (a
    /// binary stream cannot be resynchronised). Not bound: closed without a byte.
    #[cold]
    fn binary_malformed(&mut self, c: ConnId, e: sbe::SbeError, now: Nanos) {
        let bound = self.conns.get(c).and_then(|conn| conn.session);
        let Some(s) = bound else {
            self.shed_garbage(c);
            self.dirty.mark(c);
            return;
        };
        self.counters.inc(Counter::SbeMalformed);
        let code =
            ErrorCode::from_code(e.error_code() as u16).unwrap_or(ErrorCode::MalformedMessage);
        self.fixp_terminate(s, c, code, now);
    }

    /// Ends session `s` on connection `c` from our side with `code`: Terminate, then the
    /// connection closes once it is flushed.
    #[cold]
    pub(super) fn fixp_terminate(&mut self, s: SessionId, c: ConnId, code: ErrorCode, now: Nanos) {
        let (Some(slot), Some(conn)) = (self.sessions.get_mut(s.index()), self.conns.get_mut(c))
        else {
            return;
        };
        if let Some(bin) = slot.bin.as_deref_mut() {
            let mut out = FixpOut::new(&mut conn.out);
            let _ = bin.fixp.terminate(code, now, &mut out);
        }
        conn.closing = true;
        self.dirty.mark(c);
    }

    fn on_binary_frame(&mut self, c: ConnId, bytes: &[u8], now: Nanos) {
        let msg = match sbe::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.binary_malformed(c, e, now),
        };
        let bound = self.conns.get(c).and_then(|conn| conn.session);
        let session_msg = fixp::wire::session_msg(&msg);
        let Some(s) = bound else {
            match session_msg {
                Some(m) => self.bind_binary(c, &m, now),
                None => self.refuse_first_binary(c, now),
            }
            return;
        };
        match session_msg {
            Some(m) => self.on_fixp_message(s, c, &m, now),
            None => self.on_binary_app(s, c, &msg, now),
        }
    }

    /// A first frame that is not a session message: closed without a byte, like a FIX
    /// connection whose first message is not a Logon.
    #[cold]
    fn refuse_first_binary(&mut self, c: ConnId, now: Nanos) {
        self.counters.inc(Counter::LogonsRefused);
        let peer = self.peer_ip(c);
        self.emit(Event::LogonRefused {
            their_comp_id: CompId::EMPTY,
            key_id: KeyId::EMPTY,
            peer,
            reason: LogonRefusal::NotLogon,
            at: now,
        });
        self.kill_unanswered(c);
    }

    /// The first session message of a connection: it must name a configured SBE session that
    /// no other connection holds, over the bound certificate (mTLS), and authenticate. A
    /// refusal is the same answer for every cause (see the module doc) and the connection
    /// closes after it; the session's state is untouched.
    #[cold]
    fn bind_binary(&mut self, c: ConnId, m: &SessionMsg, now: Nanos) {
        let name: &[u8] = match m {
            SessionMsg::Negotiate(n) => n.session.as_bytes(),
            SessionMsg::Establish(e) => e.session.as_bytes(),
            _ => b"",
        };
        let found = self
            .sessions
            .iter()
            .position(|slot| slot.bin.is_some() && slot.their_comp_id.as_bytes() == name)
            .map(SessionId::of);
        let refusal = match found {
            None => Some(LogonRefusal::NoSession),
            Some(s) => self.binary_binding_refusal(c, s),
        };
        let peer = self.peer_ip(c);
        let key_name = named_key(m);
        let key_id = KeyId::new(key_name).unwrap_or(KeyId::EMPTY);
        let snap = self.auth.as_ref().map(|a| a.keys.clone());
        let (Some(conn), sessions) = (self.conns.get_mut(c), &mut self.sessions) else {
            return;
        };
        let mut out = FixpOut::new(&mut conn.out);
        let mut v = verifier(&mut self.auth, snap.as_deref(), peer, key_name);
        let bin = found
            .and_then(|s| sessions.get_mut(s.index()))
            .and_then(|slot| slot.bin.as_deref_mut());
        let bound = match (refusal, bin) {
            (None, Some(bin)) => {
                let _ = bin.fixp.on_connect(now);
                let action = bin.fixp.on_message(m, &mut v, now, &mut out);
                action != Action::Close && bin.fixp.is_bound()
            }
            (Some(LogonRefusal::AlreadyConnected), Some(bin)) => {
                bin.fixp.refuse_in_use(m, &mut v, now, &mut out);
                false
            }
            _ => {
                fixp::refuse_unknown_session(m, &mut v, now, &mut out);
                false
            }
        };
        let verdicts = v.verdicts();
        let evs = out.events;
        if !bound {
            conn.closing = true;
        }
        self.dirty.mark(c);
        self.audit_verdicts(found, key_id, peer, &verdicts, now);
        if !bound {
            self.on_fixp_events(SessionId::NONE, evs.iter().flatten().copied(), now);
        }
        let Some(s) = found.filter(|_| bound) else {
            if verdicts.refused.is_none() {
                if let Some(reason) = refusal {
                    self.counters.inc(Counter::LogonsRefused);
                    self.emit(Event::LogonRefused {
                        their_comp_id: CompId::new(name).unwrap_or(CompId::EMPTY),
                        key_id,
                        peer,
                        reason,
                        at: now,
                    });
                }
            }
            return;
        };
        // Bound: this connection holds the session; its principal is the verified key (or,
        // unsigned in development, the session's own grants).
        let grants = {
            let Some(slot) = self.sessions.get_mut(s.index()) else {
                return;
            };
            slot.conn = Some(c);
            let key = verdicts
                .verified
                .and_then(|k| snap.as_deref().and_then(|sn| sn.get(k.as_bytes())));
            match key {
                Some(k) => crate::auth::Grants::from_key(k, KeySlot(s.0), slot.default_account),
                None => slot.dev_grants.clone(),
            }
        };
        if let Some(p) = self.desk.session_mut(s) {
            p.grants = grants;
        }
        if let Some(conn) = self.conns.get_mut(c) {
            conn.session = Some(s);
        }
        self.on_bound(c);
        self.on_fixp_events(s, evs.iter().flatten().copied(), now);
    }

    /// The mTLS binding and the one-connection rule of SBE session `s` for connection `c`.
    fn binary_binding_refusal(&self, c: ConnId, s: SessionId) -> Option<LogonRefusal> {
        let slot = self.sessions.get(s.index())?;
        if slot.conn.is_some() {
            return Some(LogonRefusal::AlreadyConnected);
        }
        let tls = self.conns.get(c).and_then(|conn| conn.tls.as_deref());
        if let Some(want) = slot.client_spki {
            if tls.and_then(crate::net::tls::peer_spki_sha256) != Some(want) {
                return Some(LogonRefusal::CertificateKey);
            }
        }
        if let Some(want) = &slot.client_subject {
            if !tls.is_some_and(|t| crate::net::tls::peer_subject_is(t, want)) {
                return Some(LogonRefusal::CertificateSubject);
            }
        }
        None
    }

    /// Audits what the verifier decided: a refusal's cause and lockouts, or the accepted
    /// request's replay-cache entry (persisted by the journal thread like a FIX Logon's).
    #[cold]
    fn audit_verdicts(
        &mut self,
        s: Option<SessionId>,
        key_id: KeyId,
        peer: std::net::IpAddr,
        v: &Verdicts,
        now: Nanos,
    ) {
        let session = s.unwrap_or(SessionId::NONE);
        if let Some(auth) = self.auth.as_ref() {
            self.counters
                .set(Counter::LockoutEvictions, auth.verifier.lockout_evictions());
        }
        if let Some(r) = &v.refused {
            self.counters.inc(Counter::LogonsRefused);
            self.counters.inc(Counter::AuthFailures);
            self.emit(Event::AuthFailed {
                session,
                key_id,
                peer,
                cause: r.failure.cause(),
                at: now,
            });
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
        if let (Some((replay, replay_until)), Some(k)) = (v.remembered, v.verified) {
            self.emit(Event::Authenticated {
                session,
                key_id: k,
                replay,
                replay_until,
                at: now,
            });
        }
    }

    /// A session message on a bound connection.
    #[cold]
    fn on_fixp_message(&mut self, s: SessionId, c: ConnId, m: &SessionMsg, now: Nanos) {
        let peer = self.peer_ip(c);
        let key_name = named_key(m);
        let key_id = KeyId::new(key_name).unwrap_or(KeyId::EMPTY);
        let snap = self.auth.as_ref().map(|a| a.keys.clone());
        let (Some(conn), Some(slot)) = (self.conns.get_mut(c), self.sessions.get_mut(s.index()))
        else {
            return;
        };
        let Some(bin) = slot.bin.as_deref_mut() else {
            return;
        };
        let mut out = FixpOut::new(&mut conn.out);
        let mut v = verifier(&mut self.auth, snap.as_deref(), peer, key_name);
        let action = bin.fixp.on_message(m, &mut v, now, &mut out);
        let verdicts = v.verdicts();
        let evs = out.events;
        if action == Action::Close {
            conn.closing = true;
        }
        self.dirty.mark(c);
        if verdicts.refused.is_some() || verdicts.remembered.is_some() {
            self.audit_verdicts(Some(s), key_id, peer, &verdicts, now);
        }
        self.on_fixp_events(s, evs.iter().flatten().copied(), now);
    }

    /// What the FIXP session reported besides messages.
    #[cold]
    fn on_fixp_events(
        &mut self,
        s: SessionId,
        events: impl Iterator<Item = fixp::Event>,
        now: Nanos,
    ) {
        for e in events {
            match e {
                fixp::Event::Negotiated { .. } => {
                    let saved = self
                        .sessions
                        .get(s.index())
                        .and_then(|slot| slot.bin.as_deref())
                        .map(BinSession::save_state);
                    if let Some(Err(_)) = saved {
                        self.counters.inc(Counter::FixpStoreErrors);
                    }
                }
                fixp::Event::Established { .. } => {
                    self.counters.inc(Counter::LogonsAccepted);
                    self.counters.inc(Counter::FixpEstablished);
                    let peer = self
                        .sessions
                        .get(s.index())
                        .and_then(|slot| slot.conn)
                        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| self.peer_ip(c));
                    self.emit(Event::LoggedOn {
                        session: s,
                        peer,
                        at: now,
                    });
                }
                fixp::Event::Rejected { code } if code.code() < 300 => {
                    self.counters.inc(Counter::FixpRejects);
                }
                fixp::Event::Terminated {
                    code,
                    by_peer: false,
                } if code >= 300 => self.counters.inc(Counter::FixpTerminates),
                fixp::Event::DuplicateIgnored { .. } => {
                    self.counters.inc(Counter::PossResendDuplicates);
                }
                fixp::Event::StoreFailed => self.counters.inc(Counter::FixpStoreErrors),
                _ => {}
            }
        }
    }

    /// An application message on a bound connection: the FIXP session's sequence check, then
    /// (in sequence and established) the shell's checks and the desk.
    #[inline]
    fn on_binary_app(&mut self, s: SessionId, c: ConnId, msg: &Message<'_>, now: Nanos) {
        let Some((seq, poss_retrans)) = app_header(msg) else {
            return self.fixp_terminate(s, c, ErrorCode::UnexpectedMessage, now);
        };
        let (Some(conn), Some(slot)) = (self.conns.get_mut(c), self.sessions.get_mut(s.index()))
        else {
            return;
        };
        let Some(bin) = slot.bin.as_deref_mut() else {
            return;
        };
        let mut out = FixpOut::new(&mut conn.out);
        let action = bin.fixp.on_application(seq, poss_retrans, now, &mut out);
        let evs = out.events;
        match action {
            Action::Process => {}
            Action::Close => conn.closing = true,
            Action::Continue => {}
        }
        self.dirty.mark(c);
        if evs[0].is_some() {
            self.on_fixp_events(s, evs.iter().flatten().copied(), now);
        }
        if action == Action::Process {
            self.on_sbe_application(s, msg, seq, poss_retrans, now);
        }
    }

    /// The checks of [`Engine::gate`], PossRetrans duplicates, then the desk intent.
    fn on_sbe_application(
        &mut self,
        s: SessionId,
        msg: &Message<'_>,
        seq: u64,
        poss_retrans: bool,
        now: Nanos,
    ) {
        let Some(default_account) = self
            .sessions
            .get(s.index())
            .map(|slot| slot.default_account)
        else {
            return;
        };
        let info = match msg {
            Message::NewOrderSingle(d) => AppInfo {
                seq,
                poss_retrans,
                template: 1,
                cl: d.cl_ord_id(),
                need: Scopes::ORDERS_NEW,
                account: Some(non_empty(d.account()).unwrap_or(default_account.as_bytes())),
                symbol: Some(d.symbol()),
                class: MsgClass::Order,
            },
            Message::OrderCancelRequest(d) => AppInfo {
                seq,
                poss_retrans,
                template: 2,
                cl: d.cl_ord_id(),
                need: Scopes::ORDERS_CANCEL,
                account: None,
                symbol: None,
                class: MsgClass::Cancel,
            },
            Message::OrderCancelReplaceRequest(d) => AppInfo {
                seq,
                poss_retrans,
                template: 3,
                cl: d.cl_ord_id(),
                need: Scopes::ORDERS_REPLACE,
                account: non_empty(d.account()),
                symbol: Some(d.symbol()),
                class: MsgClass::Order,
            },
            Message::OrderMassCancelRequest(d) => AppInfo {
                seq,
                poss_retrans,
                template: 4,
                cl: d.cl_ord_id(),
                need: Scopes::ORDERS_CANCEL,
                account: None,
                symbol: None,
                class: MsgClass::Cancel,
            },
            Message::OrderStatusRequest(d) => AppInfo {
                seq,
                poss_retrans,
                template: 5,
                cl: d.cl_ord_id(),
                need: Scopes::ORDERS_READ,
                account: None,
                symbol: None,
                class: MsgClass::Other,
            },
            _ => return,
        };
        // PossRetrans with a ClOrdID this session already used: processed when it first came.
        if info.poss_retrans && info.template != 5 && self.seen_cl_ord_id(s, info.cl) {
            self.counters.inc(Counter::PossResendDuplicates);
            return;
        }
        if let Some(slot) = self.sessions.get_mut(s.index()) {
            slot.seen.remember(info.cl);
        }
        let gate = self.gate(
            s,
            info.need,
            info.account,
            info.symbol,
            Some(info.class),
            now,
        );
        match gate {
            Gate::Pass => {}
            Gate::Gone => return,
            Gate::Denied(permission) => return self.sbe_denied(s, msg, &info, permission, now),
            Gate::Throttled {
                limit,
                retry_after_ms,
            } => {
                if let Some(a) = self.throttle_answer(s, limit, retry_after_ms, now) {
                    self.sbe_throttled(s, &info, &a, now);
                }
                return;
            }
        }
        match msg {
            Message::NewOrderSingle(d) => {
                self.counters.inc(Counter::OrdersReceived);
                let mut order = blank_order(s, default_account);
                if let Err((reason, text)) = parse_order(d, &mut order) {
                    if order.cl_ord_id.is_empty() {
                        return self.sbe_business_reject(
                            s,
                            &info,
                            bmr::CONDITIONALLY_REQUIRED_FIELD_MISSING,
                            text,
                            None,
                            now,
                        );
                    }
                    let (desk, mut out) = self.desk_out();
                    return desk.refuse(&mut out, &order, reason, text, true, now);
                }
                let (desk, mut out) = self.desk_out();
                desk.new_order(&mut out, order, non_empty(d.ex_destination()), now);
            }
            Message::OrderCancelRequest(d) => {
                let (desk, mut out) = self.desk_out();
                desk.cancel(&mut out, s, d.cl_ord_id(), d.orig_cl_ord_id(), now);
            }
            Message::OrderCancelReplaceRequest(d) => {
                self.counters.inc(Counter::ReplacesReceived);
                let (desk, mut out) = self.desk_out();
                if d.order_qty() <= 0 {
                    return desk.cancel_reject(
                        &mut out,
                        s,
                        None,
                        d.cl_ord_id(),
                        d.orig_cl_ord_id(),
                        CancelRejectTo::Replace,
                        cxl_rej_reason::OTHER,
                        b"orderQty must be positive",
                        now,
                    );
                }
                let intent = crate::desk::ReplaceIntent {
                    cl: d.cl_ord_id(),
                    orig: d.orig_cl_ord_id(),
                    qty: Qty(d.order_qty()),
                    price: d.price().map(Price),
                    side: Some(d.side().map(Side::from)),
                    ord_type: Some(d.ord_type().map(OrdType::from)),
                    symbol: non_empty(d.symbol()),
                    account: non_empty(d.account()),
                };
                desk.replace(&mut out, s, &intent, now);
            }
            Message::OrderMassCancelRequest(d) => {
                let symbol = Symbol::new(d.symbol()).filter(|x| !x.is_empty());
                let request_type = d.mass_cancel_request_type_raw();
                let (desk, mut out) = self.desk_out();
                desk.mass_cancel(&mut out, s, d.cl_ord_id(), request_type, symbol, now);
            }
            Message::OrderStatusRequest(d) => {
                let mut asked = blank_order(s, Account::EMPTY);
                asked.cl_ord_id = OrderIdStr::new(d.cl_ord_id()).unwrap_or_default();
                asked.symbol = Symbol::new(d.symbol()).unwrap_or_default();
                if let Some(side) = d.side() {
                    asked.side = side.into();
                }
                let (desk, mut out) = self.desk_out();
                if desk.status(&mut out, s, d.cl_ord_id(), &asked, now) == Err(Denied) {
                    self.sbe_denied(s, msg, &info, "account", now);
                }
            }
            _ => {}
        }
    }

    /// Whether session `s` already used ClOrdID `cl` (an order of it, or a recent request).
    fn seen_cl_ord_id(&self, s: SessionId, cl: &[u8]) -> bool {
        let known = OrderIdStr::new(cl)
            .filter(|c| !c.is_empty())
            .is_some_and(|c| self.desk.orders().lookup(s, &c).is_some());
        known
            || self
                .sessions
                .get(s.index())
                .is_some_and(|slot| slot.seen.contains(cl))
    }

    /// A message outside the key's permissions: the same answers as FIX (`app::denied`), in
    /// SBE.
    #[cold]
    fn sbe_denied(
        &mut self,
        s: SessionId,
        msg: &Message<'_>,
        info: &AppInfo<'_>,
        permission: &'static str,
        now: Nanos,
    ) {
        let text = self.note_denied(s, permission, now);
        match msg {
            Message::NewOrderSingle(d) => {
                let Some(slot) = self.sessions.get(s.index()) else {
                    return;
                };
                let mut order = blank_order(s, slot.default_account);
                let _ = parse_order(d, &mut order);
                if order.cl_ord_id.is_empty() {
                    return self.sbe_business_reject(s, info, bmr::NOT_AUTHORIZED, text, None, now);
                }
                let copy = permission != "account";
                let (desk, mut out) = self.desk_out();
                desk.refuse(&mut out, &order, ord_rej_reason::OTHER, text, copy, now);
            }
            Message::OrderCancelRequest(d) => {
                let (desk, mut out) = self.desk_out();
                desk.cancel_reject(
                    &mut out,
                    s,
                    None,
                    d.cl_ord_id(),
                    d.orig_cl_ord_id(),
                    CancelRejectTo::Cancel,
                    cxl_rej_reason::OTHER,
                    text,
                    now,
                );
            }
            Message::OrderCancelReplaceRequest(d) => {
                let (desk, mut out) = self.desk_out();
                desk.cancel_reject(
                    &mut out,
                    s,
                    None,
                    d.cl_ord_id(),
                    d.orig_cl_ord_id(),
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    text,
                    now,
                );
            }
            _ => self.sbe_business_reject(s, info, bmr::NOT_AUTHORIZED, text, None, now),
        }
    }

    /// A message over the key's throttle: BusinessMessageReject 8 with RetryAfterMs; refusals
    /// that kept coming end the session with Terminate 310.
    #[cold]
    fn sbe_throttled(&mut self, s: SessionId, info: &AppInfo<'_>, a: &ThrottleAnswer, now: Nanos) {
        let text = a.text.get(..a.len).unwrap_or(b"throttled");
        self.sbe_business_reject(
            s,
            info,
            bmr::THROTTLE_LIMIT_EXCEEDED,
            text,
            a.retry_after_ms,
            now,
        );
        if a.end_session {
            self.counters.inc(Counter::ThrottleLogouts);
            if let Some(c) = self.sessions.get(s.index()).and_then(|slot| slot.conn) {
                self.fixp_terminate(s, c, ErrorCode::ThrottleExceeded, now);
            }
        }
    }

    /// A BusinessMessageReject of the message `info` describes.
    #[cold]
    fn sbe_business_reject(
        &mut self,
        s: SessionId,
        info: &AppInfo<'_>,
        reason: u32,
        text: &[u8],
        retry_after_ms: Option<u64>,
        now: Nanos,
    ) {
        self.counters.inc(Counter::BusinessRejects);
        let Some((slot, out, c)) = self.session_and_out(s) else {
            return;
        };
        if let Some(bin) = slot.bin.as_deref_mut() {
            let mut o = FixpOut::new(out);
            let _ = bin.fixp.send_application(now, &mut o, |seq, buf| {
                super::sbe_out::business_reject(
                    buf,
                    seq,
                    now,
                    info.seq,
                    info.template,
                    info.cl,
                    reason,
                    text,
                    retry_after_ms,
                )
            });
        }
        if let Some(c) = c {
            self.dirty.mark(c);
        }
    }

    /// Timers of SBE session `s` bound to connection `c`: credential expiry, keep-alive,
    /// establish timeout, the wait for the peer's Terminate.
    #[cold]
    pub(super) fn binary_timer(&mut self, s: SessionId, c: ConnId, now: Nanos) {
        let (Some(conn), Some(slot), Some(p)) = (
            self.conns.get_mut(c),
            self.sessions.get_mut(s.index()),
            self.desk.session_mut(s),
        ) else {
            return;
        };
        let Some(bin) = slot.bin.as_deref_mut() else {
            return;
        };
        let mut out = FixpOut::new(&mut conn.out);
        let mut expired = false;
        if now.0 >= p.grants.expires_ns && bin.fixp.is_established() {
            let _ = bin
                .fixp
                .terminate(ErrorCode::CredentialRevoked, now, &mut out);
            p.grants.scopes = Scopes::NONE;
            p.grants.expires_ns = u64::MAX;
            expired = true;
        }
        let action = bin.fixp.on_timer(now, &mut out);
        if action == Action::Close || expired {
            conn.closing = true;
        }
        let dirty = !conn.out.is_empty() || conn.closing;
        if expired {
            self.counters.inc(Counter::CredentialLogouts);
            let key_id = self.desk.grants(s).map_or(KeyId::EMPTY, |g| g.key_id);
            self.emit(Event::CredentialLogout {
                session: s,
                key_id,
                cause: "credential expired",
                at: now,
            });
        }
        if dirty {
            self.dirty.mark(c);
        }
    }
}
