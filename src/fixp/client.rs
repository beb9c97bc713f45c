//! COLD — the client side of binary order entry: FIXP over SBE as a client speaks it
//! (fix-specs/FIXP-SESSION.md), for `fixclient --sbe`, `loadgen --sbe` and the socket tests.
//!
//! Two layers:
//! - [`ClientSession`], sans-IO: encodes what the client sends (signed Negotiate and
//!   Establish, Sequence, RetransmitRequest, Terminate, and the five order-entry messages with
//!   the client's own application sequence numbers) by appending whole SBE frames to a
//!   caller's `Vec<u8>`, and turns each frame the gateway sends into a [`ClientEvent`]
//!   (a decoded [`Report`] or a [`SessionMsg`]), answering what needs an answer (a lapsed
//!   keep-alive, the gateway's Terminate) on its own. `loadgen` drives it from its own poll loop.
//! - [`Client`], blocking, over any `Read + Write` stream (a `TcpStream`, or rustls's
//!   `StreamOwned` for TLS): [`Client::connect`] negotiates and establishes,
//!   [`Client::next_event`] reads and decodes, [`Client::reconnect`] re-establishes the same
//!   uuid on a new connection (sequence numbers continue), [`Client::renegotiate`] starts a new
//!   uuid.
//!
//! Runs on the caller's thread, never on the gateway's. Reads time only through
//! `crate::clock`. Must never: panic or index out of bounds on anything the peer sends (a frame
//! that does not decode is a [`ClientError::Malformed`]), or print a secret or a signature.
//!
//! # Blocking
//! [`Client`] reads with whatever timeout the stream has: give the socket a short read timeout
//! ([`Client::tcp`] sets [`TICK`]) so that [`Client::next_event`] can keep its deadline and send
//! keep-alives while it waits. A stream without a timeout blocks until the gateway sends.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::msg::{
    Establish, EstablishmentAck, Name, Negotiate, NegotiationResponse, Reason, RetransmitRequest,
    Sequence, SessionMsg, Terminate,
};
use super::sign::{sign_establish, sign_negotiate};
use super::wire::{encode_session, session_msg};
use super::ErrorCode;
use crate::model::{InlineStr, Nanos, OrdType, Price, Qty, Side, TimeInForce};
use crate::sbe::generated::{
    BooleanFlag, MassCancelRequestType, NewOrderSingleEncoder, OrderCancelReplaceRequestEncoder,
    OrderCancelRequestEncoder, OrderMassCancelRequestEncoder, OrderStatusRequestEncoder,
};
use crate::sbe::{self, Frame, Message, SbeError};

/// The read timeout [`Client::tcp`] gives a socket: the granularity of deadlines and
/// keep-alives while [`Client::next_event`] waits.
pub const TICK: Duration = Duration::from_millis(10);

/// Default keep-alive interval asked for in Establish, ms (inside the gateway's default bounds
/// of 1000–60 000).
pub const DEFAULT_KEEP_ALIVE_MS: u32 = 10_000;

/// Largest frame accepted from the gateway (its largest message is 262 bytes).
const MAX_FRAME: usize = sbe::DEFAULT_MAX_FRAME;

// ------------------------------------------------------------------------------ credentials

/// Who the client is: the session (its SenderCompID as the operator configured it), the API key
/// id and the key's secret (decoded from base64; zeroized on drop).
pub struct Credentials {
    pub session: Name,
    pub access_key_id: Name,
    secret: Zeroizing<Vec<u8>>,
}

impl Credentials {
    /// `session` and `access_key_id`: 1–32 printable ASCII characters. `secret`: the decoded
    /// secret (`auth::admin::read_secret_file` reads the file `portcullis keys add` wrote).
    pub fn new(
        session: &str,
        access_key_id: &str,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<Credentials, ClientError> {
        Ok(Credentials {
            session: name("session", session)?,
            access_key_id: name("access key id", access_key_id)?,
            secret,
        })
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("session", &self.session.as_str())
            .field("access_key_id", &self.access_key_id.as_str())
            .field("secret", &"***")
            .finish()
    }
}

fn name(what: &'static str, v: &str) -> Result<Name, ClientError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::BadValue(what));
    }
    Name::new(v.as_bytes()).ok_or(ClientError::BadValue(what))
}

// ------------------------------------------------------------------------------ errors

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The transport failed.
    Io(io::Error),
    /// The transport closed.
    Closed,
    /// The gateway sent bytes that are not a frame of our schema.
    Malformed(SbeError),
    /// The gateway refused Negotiate or Establish (NegotiationReject, EstablishmentReject) or
    /// ended the connection (Terminate) before the session was established.
    Rejected(Box<SessionMsg>),
    /// No answer in time; names what was awaited.
    Timeout(&'static str),
    /// A value that cannot be sent: names the field (too long for its SBE array, not printable
    /// ASCII, …).
    BadValue(&'static str),
    /// Application messages need an established session.
    NotEstablished,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "transport: {e}"),
            ClientError::Closed => write!(f, "the gateway closed the connection"),
            ClientError::Malformed(e) => write!(f, "the gateway sent a bad frame: {e}"),
            ClientError::Rejected(m) => write!(f, "refused: {}", describe_session(m)),
            ClientError::Timeout(what) => write!(f, "no {what} in time"),
            ClientError::BadValue(what) => write!(f, "{what}: value does not fit its field"),
            ClientError::NotEstablished => write!(f, "the session is not established"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

// ------------------------------------------------------------------------------ requests

/// A NewOrderSingle. Strings must fit their SBE arrays (ClOrdID 20, Account 24, Symbol 24,
/// ExDestination 16, party and security ids 24, Currency 3, ExecInst 16); empty means "none".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderSpec<'a> {
    pub cl_ord_id: &'a str,
    pub account: &'a str,
    pub symbol: &'a str,
    pub side: Side,
    pub qty: Qty,
    /// `None` for a market order.
    pub price: Option<Price>,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub ex_destination: &'a str,
    pub trader_id: &'a str,
    pub decision_maker_id: &'a str,
    pub security_id: &'a str,
    /// SecurityIDSource as its FIX character; 0: none.
    pub security_id_source: u8,
    pub currency: &'a str,
    pub exec_inst: &'a str,
}

impl<'a> OrderSpec<'a> {
    /// A day limit order with nothing else set.
    pub fn limit(cl_ord_id: &'a str, symbol: &'a str, side: Side, qty: Qty, price: Price) -> Self {
        OrderSpec {
            cl_ord_id,
            account: "",
            symbol,
            side,
            qty,
            price: Some(price),
            ord_type: OrdType::Limit,
            tif: TimeInForce::Day,
            ex_destination: "",
            trader_id: "",
            decision_maker_id: "",
            security_id: "",
            security_id_source: 0,
            currency: "",
            exec_inst: "",
        }
    }
}

/// An OrderCancelRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelSpec<'a> {
    pub cl_ord_id: &'a str,
    pub orig_cl_ord_id: &'a str,
    pub side: Side,
    /// Empty: not stated.
    pub account: &'a str,
    /// Empty: not stated.
    pub symbol: &'a str,
}

/// An OrderCancelReplaceRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaceSpec<'a> {
    pub cl_ord_id: &'a str,
    pub orig_cl_ord_id: &'a str,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    /// The new total quantity.
    pub qty: Qty,
    /// `None`: unchanged.
    pub price: Option<Price>,
    pub account: &'a str,
    pub symbol: &'a str,
}

/// An OrderStatusRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSpec<'a> {
    pub cl_ord_id: &'a str,
    pub side: Side,
    pub symbol: &'a str,
}

// ------------------------------------------------------------------------------ reports

/// Identifier fields of a report (NUL padding removed).
pub type ClOrdId = InlineStr<20>;
/// Account and Symbol.
pub type Field24 = InlineStr<24>;
/// Text.
pub type Text = InlineStr<64>;

/// An ExecutionReport of any variant (templates 10–15), fields the variant lacks at their
/// neutral value (0, empty, `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecReport {
    pub seq_num: u64,
    pub poss_retrans: bool,
    pub sending_time: u64,
    /// ExecType as its FIX character (`0` New, `F` Trade, `4` Canceled, `5` Replaced,
    /// `8` Rejected, `I`/`A`/`6`/`E`/`C` from ExecutionReportStatus).
    pub exec_type: u8,
    /// OrdStatus as its FIX character.
    pub ord_status: u8,
    /// 0: refused before an OrderID was given.
    pub order_id: u64,
    pub exec_id: u64,
    pub transact_time: u64,
    pub order_qty: Qty,
    pub price: Option<Price>,
    pub leaves_qty: Qty,
    pub cum_qty: Qty,
    pub avg_px: Price,
    /// Trade only.
    pub last_qty: Qty,
    /// Trade only.
    pub last_px: Price,
    /// Side, OrdType and TimeInForce as their FIX characters.
    pub side: u8,
    pub ord_type: u8,
    pub tif: u8,
    /// Rejected and Status only.
    pub ord_rej_reason: Option<u16>,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub account: Field24,
    pub symbol: Field24,
    pub text: Text,
}

/// An OrderCancelReject (template 20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelReject {
    pub seq_num: u64,
    pub poss_retrans: bool,
    pub order_id: u64,
    pub cxl_rej_reason: u16,
    pub ord_status: u8,
    /// `1` cancel, `2` replace.
    pub response_to: u8,
    pub cl_ord_id: ClOrdId,
    pub orig_cl_ord_id: ClOrdId,
    pub account: Field24,
    pub text: Text,
}

/// An OrderMassCancelReport (template 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MassCancelReport {
    pub seq_num: u64,
    pub poss_retrans: bool,
    pub mass_action_report_id: u64,
    pub total_affected_orders: u32,
    /// `None` when accepted.
    pub reject_reason: Option<u16>,
    pub request_type: u8,
    /// `0` rejected, else the request type.
    pub response: u8,
    pub cl_ord_id: ClOrdId,
    pub text: Text,
}

/// A BusinessMessageReject (template 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusinessReject {
    pub seq_num: u64,
    pub poss_retrans: bool,
    pub ref_seq_num: u64,
    pub ref_template_id: u16,
    pub reason: u16,
    /// `None`: waiting cannot help.
    pub retry_after_ms: Option<u32>,
    pub ref_id: ClOrdId,
    pub text: Text,
}

/// An application message from the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Exec(ExecReport),
    CancelReject(CancelReject),
    MassCancel(MassCancelReport),
    BusinessReject(BusinessReject),
}

impl Report {
    /// The gateway's application sequence number.
    pub fn seq_num(&self) -> u64 {
        match self {
            Report::Exec(r) => r.seq_num,
            Report::CancelReject(r) => r.seq_num,
            Report::MassCancel(r) => r.seq_num,
            Report::BusinessReject(r) => r.seq_num,
        }
    }
    /// Set on a retransmission.
    pub fn poss_retrans(&self) -> bool {
        match self {
            Report::Exec(r) => r.poss_retrans,
            Report::CancelReject(r) => r.poss_retrans,
            Report::MassCancel(r) => r.poss_retrans,
            Report::BusinessReject(r) => r.poss_retrans,
        }
    }
    /// The ClOrdID the report answers (BusinessMessageReject: its BusinessRejectRefID).
    pub fn cl_ord_id(&self) -> &str {
        match self {
            Report::Exec(r) => r.cl_ord_id.as_str(),
            Report::CancelReject(r) => r.cl_ord_id.as_str(),
            Report::MassCancel(r) => r.cl_ord_id.as_str(),
            Report::BusinessReject(r) => r.ref_id.as_str(),
        }
    }
}

fn s<const N: usize>(v: &[u8]) -> InlineStr<N> {
    // The decoders' char arrays are never longer than the InlineStr they go into.
    InlineStr::new(v).unwrap_or(InlineStr::EMPTY)
}

fn flag(v: u8) -> bool {
    v == BooleanFlag::True.to_u8()
}

/// Fills the fields every ExecutionReport variant has.
macro_rules! exec_common {
    ($m:expr, $exec_type:expr) => {
        ExecReport {
            seq_num: $m.seq_num(),
            poss_retrans: flag($m.poss_retrans_raw()),
            sending_time: $m.sending_time(),
            exec_type: $exec_type,
            ord_status: $m.ord_status_raw(),
            order_id: $m.order_id(),
            exec_id: $m.exec_id(),
            transact_time: $m.transact_time(),
            order_qty: Qty($m.order_qty()),
            price: $m.price().map(Price),
            leaves_qty: Qty($m.leaves_qty()),
            cum_qty: Qty($m.cum_qty()),
            avg_px: Price($m.avg_px()),
            last_qty: Qty(0),
            last_px: Price(0),
            side: $m.side_raw(),
            ord_type: $m.ord_type_raw(),
            tif: $m.time_in_force_raw(),
            ord_rej_reason: None,
            cl_ord_id: s($m.cl_ord_id()),
            orig_cl_ord_id: ClOrdId::EMPTY,
            account: s($m.account()),
            symbol: s($m.symbol()),
            text: Text::EMPTY,
        }
    };
}

/// The report a decoded gateway → client application message is; `None` for session
/// messages and for client → gateway templates.
pub fn report(msg: &Message<'_>) -> Option<Report> {
    Some(match msg {
        Message::ExecutionReportNew(m) => Report::Exec(exec_common!(m, b'0')),
        Message::ExecutionReportTrade(m) => Report::Exec(ExecReport {
            last_qty: Qty(m.last_qty()),
            last_px: Price(m.last_px()),
            ..exec_common!(m, b'F')
        }),
        Message::ExecutionReportCanceled(m) => Report::Exec(ExecReport {
            orig_cl_ord_id: s(m.orig_cl_ord_id()),
            text: s(m.text()),
            ..exec_common!(m, b'4')
        }),
        Message::ExecutionReportReplaced(m) => Report::Exec(ExecReport {
            orig_cl_ord_id: s(m.orig_cl_ord_id()),
            ..exec_common!(m, b'5')
        }),
        Message::ExecutionReportRejected(m) => Report::Exec(ExecReport {
            ord_rej_reason: Some(m.ord_rej_reason()),
            text: s(m.text()),
            ..exec_common!(m, b'8')
        }),
        Message::ExecutionReportStatus(m) => Report::Exec(ExecReport {
            ord_rej_reason: m.ord_rej_reason(),
            orig_cl_ord_id: s(m.orig_cl_ord_id()),
            text: s(m.text()),
            ..exec_common!(m, m.exec_type_raw())
        }),
        Message::OrderCancelReject(m) => Report::CancelReject(CancelReject {
            seq_num: m.seq_num(),
            poss_retrans: flag(m.poss_retrans_raw()),
            order_id: m.order_id(),
            cxl_rej_reason: m.cxl_rej_reason(),
            ord_status: m.ord_status_raw(),
            response_to: m.cxl_rej_response_to_raw(),
            cl_ord_id: s(m.cl_ord_id()),
            orig_cl_ord_id: s(m.orig_cl_ord_id()),
            account: s(m.account()),
            text: s(m.text()),
        }),
        Message::OrderMassCancelReport(m) => Report::MassCancel(MassCancelReport {
            seq_num: m.seq_num(),
            poss_retrans: flag(m.poss_retrans_raw()),
            mass_action_report_id: m.mass_action_report_id(),
            total_affected_orders: m.total_affected_orders(),
            reject_reason: m.mass_cancel_reject_reason(),
            request_type: m.mass_cancel_request_type_raw(),
            response: m.mass_cancel_response_raw(),
            cl_ord_id: s(m.cl_ord_id()),
            text: s(m.text()),
        }),
        Message::BusinessMessageReject(m) => Report::BusinessReject(BusinessReject {
            seq_num: m.seq_num(),
            poss_retrans: flag(m.poss_retrans_raw()),
            ref_seq_num: m.ref_seq_num(),
            ref_template_id: m.ref_template_id(),
            reason: m.business_reject_reason(),
            retry_after_ms: m.retry_after_ms(),
            ref_id: s(m.business_reject_ref_id()),
            text: s(m.text()),
        }),
        _ => return None,
    })
}

// ------------------------------------------------------------------------------ sans-IO

/// What one frame from the gateway was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// An application message (ExecutionReport, OrderCancelReject, …).
    Report(Report),
    /// A session message; what it asked for is done (a lapsed keep-alive answered, the
    /// gateway's Terminate answered and the session closed).
    Session(SessionMsg),
    /// A well-formed frame of a template the gateway never sends (an order-entry request).
    Unexpected { template_id: u16 },
}

/// Where the client session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Nothing sent on this connection yet.
    Idle,
    /// Negotiate sent, NegotiationResponse awaited.
    Negotiating,
    /// NegotiationResponse received (or a known uuid): Establish to send.
    Negotiated,
    /// Establish sent, EstablishmentAck awaited.
    Establishing,
    Established,
    /// We sent Terminate; the gateway's answer closes.
    Terminating,
    /// A reject or a Terminate exchange ended the connection: reconnect to go on.
    Closed,
}

/// Where a logical session stands between connections: what [`ClientSession::resume`] needs
/// to establish the same uuid again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    pub uuid: u64,
    /// Our next application sequence number (Establish's `next_seq_no`).
    pub next_seq_no: u64,
    /// The gateway's next application sequence number we expect.
    pub next_inbound: u64,
}

/// The client's half of one FIXP session, sans-IO. Frames leave by being appended to the
/// caller's `out`; frames from the gateway come in whole through [`ClientSession::on_frame`].
#[derive(Debug)]
pub struct ClientSession {
    creds: Credentials,
    uuid: u64,
    keep_alive_ms: u32,
    state: ClientState,
    /// The uuid must be negotiated first (a fresh one).
    fresh: bool,
    next_seq: u64,
    next_inbound: u64,
    /// Gateway application messages never seen (sequence numbers skipped in real time).
    gaps: u64,
    last_sent: Nanos,
    last_received: Nanos,
    negotiation: Option<NegotiationResponse>,
    ack: Option<EstablishmentAck>,
}

impl ClientSession {
    /// A new logical session with `uuid` (nonzero, never used by this session before):
    /// Negotiate, then Establish with sequence number 1.
    pub fn new(creds: Credentials, uuid: u64) -> ClientSession {
        ClientSession {
            creds,
            uuid,
            keep_alive_ms: DEFAULT_KEEP_ALIVE_MS,
            state: ClientState::Idle,
            fresh: true,
            next_seq: 1,
            next_inbound: 1,
            gaps: 0,
            last_sent: Nanos::ZERO,
            last_received: Nanos::ZERO,
            negotiation: None,
            ack: None,
        }
    }

    /// The same logical session on a new connection: Establish alone, sequence numbers where
    /// `at` says.
    pub fn resume(creds: Credentials, at: Resume) -> ClientSession {
        ClientSession {
            fresh: false,
            next_seq: at.next_seq_no,
            next_inbound: at.next_inbound,
            ..ClientSession::new(creds, at.uuid)
        }
    }

    /// The keep-alive interval Establish asks for, ms (default [`DEFAULT_KEEP_ALIVE_MS`]).
    pub fn set_keep_alive_ms(&mut self, ms: u32) {
        self.keep_alive_ms = ms;
    }
    pub fn keep_alive_ms(&self) -> u32 {
        self.keep_alive_ms
    }
    pub fn state(&self) -> ClientState {
        self.state
    }
    pub fn is_established(&self) -> bool {
        self.state == ClientState::Established
    }
    pub fn uuid(&self) -> u64 {
        self.uuid
    }
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }
    /// Our next application sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Skips our sequence numbers up to `seq` (tests of the gateway's NotApplied), or sets
    /// them back (its Terminate 303).
    pub fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }
    /// The gateway's next real-time application sequence number.
    pub fn next_inbound(&self) -> u64 {
        self.next_inbound
    }
    /// Gateway application messages skipped in the real-time flow (recover them with
    /// [`ClientSession::retransmit_request`]).
    pub fn gaps(&self) -> u64 {
        self.gaps
    }
    /// The NegotiationResponse of this connection, if one came.
    pub fn negotiation(&self) -> Option<&NegotiationResponse> {
        self.negotiation.as_ref()
    }
    /// The EstablishmentAck of this connection, if one came.
    pub fn ack(&self) -> Option<&EstablishmentAck> {
        self.ack.as_ref()
    }
    /// What a later connection needs to establish this uuid again.
    pub fn resume_point(&self) -> Resume {
        Resume {
            uuid: self.uuid,
            next_seq_no: self.next_seq,
            next_inbound: self.next_inbound,
        }
    }
    /// Takes the credentials back (to resume on a new connection).
    pub fn into_credentials(self) -> Credentials {
        self.creds
    }

    /// Negotiate (a fresh uuid) or Establish (a known one): what opens a connection.
    pub fn open(&mut self, now: Nanos, out: &mut Vec<u8>) {
        if self.fresh {
            self.negotiate(now, out);
        } else {
            self.establish(now, out);
        }
    }

    /// Sends a signed Negotiate for our uuid.
    pub fn negotiate(&mut self, now: Nanos, out: &mut Vec<u8>) {
        let mut m = Negotiate {
            uuid: self.uuid,
            request_timestamp: now.0,
            session: self.creds.session,
            access_key_id: self.creds.access_key_id,
            hmac_signature: [0; 32],
        };
        sign_negotiate(&self.creds.secret, &mut m);
        self.state = ClientState::Negotiating;
        self.send_session(&SessionMsg::Negotiate(m), now, out);
    }

    /// Sends a signed Establish for our uuid with our next sequence number.
    pub fn establish(&mut self, now: Nanos, out: &mut Vec<u8>) {
        let mut m = Establish {
            uuid: self.uuid,
            request_timestamp: now.0,
            session: self.creds.session,
            access_key_id: self.creds.access_key_id,
            next_seq_no: self.next_seq,
            keep_alive_interval: self.keep_alive_ms,
            hmac_signature: [0; 32],
        };
        sign_establish(&self.creds.secret, &mut m);
        self.state = ClientState::Establishing;
        self.send_session(&SessionMsg::Establish(m), now, out);
    }

    /// Sends any session message as it is (tests send the unexpected ones on purpose).
    pub fn send_session(&mut self, msg: &SessionMsg, now: Nanos, out: &mut Vec<u8>) {
        let mut buf = [0u8; 256];
        // Every session message fits 256 bytes (the largest, Establish, is 142).
        if let Ok(n) = encode_session(msg, &mut buf) {
            out.extend_from_slice(buf.get(..n).unwrap_or_default());
            self.last_sent = now;
        }
    }

    /// Asks for `count` of the gateway's application messages from `from_seq_no`, of the flow
    /// of `last_uuid` (0: the current uuid).
    pub fn retransmit_request(
        &mut self,
        last_uuid: u64,
        from_seq_no: u64,
        count: u32,
        now: Nanos,
        out: &mut Vec<u8>,
    ) {
        let m = RetransmitRequest {
            uuid: self.uuid,
            last_uuid,
            request_timestamp: now.0,
            from_seq_no,
            msg_count: count,
        };
        self.send_session(&SessionMsg::RetransmitRequest(m), now, out);
    }

    /// Sends Terminate with `code` (0: an orderly end); the gateway's Terminate closes.
    pub fn terminate(&mut self, code: ErrorCode, now: Nanos, out: &mut Vec<u8>) {
        let m = Terminate {
            uuid: self.uuid,
            request_timestamp: now.0,
            error_code: code.code(),
            reason: code.reason_text(),
        };
        self.send_session(&SessionMsg::Terminate(m), now, out);
        self.state = ClientState::Terminating;
    }

    /// Keep-alive: a Sequence when we sent nothing for one interval.
    pub fn on_timer(&mut self, now: Nanos, out: &mut Vec<u8>) {
        if self.state != ClientState::Established {
            return;
        }
        let interval = Nanos::from_millis(u64::from(self.keep_alive_ms));
        if now.saturating_sub(self.last_sent) >= interval {
            self.sequence(false, now, out);
        }
    }

    /// Nanoseconds since the gateway last sent anything (keep-alive watch).
    pub fn silent_for(&self, now: Nanos) -> Nanos {
        now.saturating_sub(self.last_received)
    }

    fn sequence(&mut self, lapsed: bool, now: Nanos, out: &mut Vec<u8>) {
        let m = Sequence {
            uuid: self.uuid,
            next_seq_no: self.next_seq,
            keep_alive_interval_lapsed: lapsed,
        };
        self.send_session(&SessionMsg::Sequence(m), now, out);
    }

    /// One whole frame from the gateway (as [`sbe::frame`] delimited it).
    pub fn on_frame(
        &mut self,
        frame: &[u8],
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<ClientEvent, SbeError> {
        let msg = sbe::decode(frame)?;
        self.last_received = now;
        if let Some(r) = report(&msg) {
            if !r.poss_retrans() && r.seq_num() >= self.next_inbound {
                self.gaps += r.seq_num() - self.next_inbound;
                self.next_inbound = r.seq_num().saturating_add(1);
            }
            return Ok(ClientEvent::Report(r));
        }
        let Some(m) = session_msg(&msg) else {
            // A client → gateway order template: the gateway never sends one.
            let template_id = frame
                .get(sbe::SOFH_LENGTH..)
                .and_then(|m| sbe::Header::read(m).ok())
                .map_or(0, |h| h.template_id);
            return Ok(ClientEvent::Unexpected { template_id });
        };
        match &m {
            SessionMsg::NegotiationResponse(r) => {
                self.negotiation = Some(*r);
                self.fresh = false;
                self.state = ClientState::Negotiated;
            }
            SessionMsg::EstablishmentAck(a) => {
                self.ack = Some(*a);
                self.next_inbound = a.next_seq_no;
                self.state = ClientState::Established;
            }
            SessionMsg::NegotiationReject(_) | SessionMsg::EstablishmentReject(_)
                if self.state != ClientState::Established =>
            {
                self.state = ClientState::Closed;
            }
            SessionMsg::Sequence(q) => {
                if q.next_seq_no > self.next_inbound {
                    self.gaps += q.next_seq_no - self.next_inbound;
                    self.next_inbound = q.next_seq_no;
                }
                if q.keep_alive_interval_lapsed && self.state == ClientState::Established {
                    self.sequence(false, now, out);
                }
            }
            SessionMsg::Terminate(_) => {
                if self.state != ClientState::Terminating && self.state != ClientState::Closed {
                    let answer = Terminate {
                        uuid: self.uuid,
                        request_timestamp: now.0,
                        error_code: ErrorCode::Finished.code(),
                        reason: ErrorCode::Finished.reason_text(),
                    };
                    self.send_session(&SessionMsg::Terminate(answer), now, out);
                }
                self.state = ClientState::Closed;
            }
            _ => {}
        }
        Ok(ClientEvent::Session(m))
    }

    // -------------------------------------------------------------------------- orders

    /// Encodes one application frame with our next sequence number; returns that number.
    fn application<E>(
        &mut self,
        now: Nanos,
        out: &mut Vec<u8>,
        len: usize,
        encode: impl FnOnce(&mut [u8], u64) -> Result<E, SbeError>,
    ) -> Result<u64, ClientError> {
        if self.state != ClientState::Established {
            return Err(ClientError::NotEstablished);
        }
        let start = out.len();
        out.resize(start + len, 0);
        let seq = self.next_seq;
        let frame = out.get_mut(start..).unwrap_or_default();
        if let Err(e) = encode(frame, seq) {
            out.truncate(start);
            return Err(match e {
                SbeError::ValueTooLong { .. } => ClientError::BadValue(
                    "a text field (ClOrdID ≤ 20, Account/Symbol ≤ 24, ExDestination ≤ 16 bytes)",
                ),
                other => ClientError::Malformed(other),
            });
        }
        self.next_seq = seq.saturating_add(1);
        self.last_sent = now;
        Ok(seq)
    }

    /// Sends a NewOrderSingle; returns its sequence number.
    pub fn new_order(
        &mut self,
        o: &OrderSpec<'_>,
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<u64, ClientError> {
        self.application(now, out, NewOrderSingleEncoder::FRAME_LENGTH, |buf, seq| {
            let mut e = NewOrderSingleEncoder::frame(buf)?;
            e.set_seq_num(seq)
                .set_sending_time(now.0)
                .set_poss_retrans(BooleanFlag::False)
                .set_order_qty(o.qty.0)
                .set_price(o.price.map(|p| p.0))
                .set_transact_time(now.0)
                .set_side(o.side.into())
                .set_ord_type(o.ord_type.into())
                .set_time_in_force(o.tif.into())
                .set_security_id_source(o.security_id_source);
            e.set_cl_ord_id(o.cl_ord_id.as_bytes())?
                .set_account(o.account.as_bytes())?
                .set_symbol(o.symbol.as_bytes())?
                .set_ex_destination(o.ex_destination.as_bytes())?
                .set_trader_id(o.trader_id.as_bytes())?
                .set_decision_maker_id(o.decision_maker_id.as_bytes())?
                .set_security_id(o.security_id.as_bytes())?
                .set_currency(o.currency.as_bytes())?
                .set_exec_inst(o.exec_inst.as_bytes())?;
            Ok(())
        })
    }

    /// Sends an OrderCancelRequest; returns its sequence number.
    pub fn cancel(
        &mut self,
        c: &CancelSpec<'_>,
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<u64, ClientError> {
        self.application(
            now,
            out,
            OrderCancelRequestEncoder::FRAME_LENGTH,
            |buf, seq| {
                let mut e = OrderCancelRequestEncoder::frame(buf)?;
                e.set_seq_num(seq)
                    .set_sending_time(now.0)
                    .set_poss_retrans(BooleanFlag::False)
                    .set_transact_time(now.0)
                    .set_side(c.side.into());
                e.set_cl_ord_id(c.cl_ord_id.as_bytes())?
                    .set_orig_cl_ord_id(c.orig_cl_ord_id.as_bytes())?
                    .set_account(c.account.as_bytes())?
                    .set_symbol(c.symbol.as_bytes())?;
                Ok(())
            },
        )
    }

    /// Sends an OrderCancelReplaceRequest; returns its sequence number.
    pub fn replace(
        &mut self,
        r: &ReplaceSpec<'_>,
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<u64, ClientError> {
        let len = OrderCancelReplaceRequestEncoder::FRAME_LENGTH;
        self.application(now, out, len, |buf, seq| {
            let mut e = OrderCancelReplaceRequestEncoder::frame(buf)?;
            e.set_seq_num(seq)
                .set_sending_time(now.0)
                .set_poss_retrans(BooleanFlag::False)
                .set_order_qty(r.qty.0)
                .set_price(r.price.map(|p| p.0))
                .set_transact_time(now.0)
                .set_side(r.side.into())
                .set_ord_type(r.ord_type.into())
                .set_time_in_force(r.tif.into());
            e.set_cl_ord_id(r.cl_ord_id.as_bytes())?
                .set_orig_cl_ord_id(r.orig_cl_ord_id.as_bytes())?
                .set_account(r.account.as_bytes())?
                .set_symbol(r.symbol.as_bytes())?;
            Ok(())
        })
    }

    /// Sends an OrderMassCancelRequest: the orders in `symbol`, or all of them (`None`).
    pub fn mass_cancel(
        &mut self,
        cl_ord_id: &str,
        symbol: Option<&str>,
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<u64, ClientError> {
        let len = OrderMassCancelRequestEncoder::FRAME_LENGTH;
        self.application(now, out, len, |buf, seq| {
            let mut e = OrderMassCancelRequestEncoder::frame(buf)?;
            let kind = if symbol.is_some() {
                MassCancelRequestType::BySymbol
            } else {
                MassCancelRequestType::AllOrders
            };
            e.set_seq_num(seq)
                .set_sending_time(now.0)
                .set_poss_retrans(BooleanFlag::False)
                .set_transact_time(now.0)
                .set_mass_cancel_request_type(kind);
            e.set_cl_ord_id(cl_ord_id.as_bytes())?
                .set_symbol(symbol.unwrap_or_default().as_bytes())?;
            Ok(())
        })
    }

    /// Sends an OrderStatusRequest; returns its sequence number.
    pub fn status(
        &mut self,
        q: &StatusSpec<'_>,
        now: Nanos,
        out: &mut Vec<u8>,
    ) -> Result<u64, ClientError> {
        let len = OrderStatusRequestEncoder::FRAME_LENGTH;
        self.application(now, out, len, |buf, seq| {
            let mut e = OrderStatusRequestEncoder::frame(buf)?;
            e.set_seq_num(seq)
                .set_sending_time(now.0)
                .set_poss_retrans(BooleanFlag::False)
                .set_side(q.side.into());
            e.set_cl_ord_id(q.cl_ord_id.as_bytes())?
                .set_symbol(q.symbol.as_bytes())?;
            Ok(())
        })
    }
}

// ------------------------------------------------------------------------------ blocking

/// Which way a frame went, for [`Client::set_tap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// A callback that sees every whole frame sent and received (printing, capture).
pub type Tap = Box<dyn FnMut(Direction, &[u8])>;

/// A blocking FIXP/SBE client over a `Read + Write` stream (module header, "# Blocking").
pub struct Client<S: Read + Write> {
    stream: S,
    session: ClientSession,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The transport closed (or failed).
    closed: bool,
    tap: Option<Tap>,
}

impl Client<std::net::TcpStream> {
    /// Prepares a socket for [`Client`]: TCP_NODELAY and a [`TICK`] read timeout.
    pub fn tcp(stream: &std::net::TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TICK))
    }
}

fn utc() -> Nanos {
    crate::clock::system_utc()
}

fn instant() -> Instant {
    crate::clock::monotonic()
}

impl<S: Read + Write> Client<S> {
    /// A client over `stream` that has sent nothing yet: [`Client::open`] negotiates and/or
    /// establishes (set a tap or the keep-alive before).
    pub fn new(stream: S, session: ClientSession) -> Client<S> {
        Client {
            stream,
            session,
            rx: Vec::with_capacity(64 << 10),
            tx: Vec::with_capacity(4 << 10),
            closed: false,
            tap: None,
        }
    }

    /// Negotiate a fresh `uuid`, then Establish; returns the client and the EstablishmentAck.
    pub fn connect(
        stream: S,
        creds: Credentials,
        uuid: u64,
        timeout: Duration,
    ) -> Result<(Client<S>, EstablishmentAck), ClientError> {
        let mut c = Client::new(stream, ClientSession::new(creds, uuid));
        let ack = c.open(timeout)?;
        Ok((c, ack))
    }

    /// Establishes this client's uuid again on `stream` (after a Terminate or a lost
    /// connection), with the sequence numbers where they were. The tap and keep-alive carry
    /// over.
    pub fn reconnect(
        self,
        stream: S,
        timeout: Duration,
    ) -> Result<(Client<S>, EstablishmentAck), ClientError> {
        let at = self.session.resume_point();
        self.carry_over(stream, |creds| ClientSession::resume(creds, at), timeout)
    }

    /// Negotiates `uuid` (a new logical session, sequence numbers from 1) on `stream`.
    pub fn renegotiate(
        self,
        stream: S,
        uuid: u64,
        timeout: Duration,
    ) -> Result<(Client<S>, EstablishmentAck), ClientError> {
        self.carry_over(stream, |creds| ClientSession::new(creds, uuid), timeout)
    }

    fn carry_over(
        self,
        stream: S,
        session: impl FnOnce(Credentials) -> ClientSession,
        timeout: Duration,
    ) -> Result<(Client<S>, EstablishmentAck), ClientError> {
        let Client {
            stream: old,
            session: last,
            tap,
            ..
        } = self;
        // The old connection ends first: a gateway binds one connection per session.
        drop(old);
        let keep_alive = last.keep_alive_ms();
        let mut next = session(last.into_credentials());
        next.set_keep_alive_ms(keep_alive);
        let mut c = Client::new(stream, next);
        c.tap = tap;
        let ack = c.open(timeout)?;
        Ok((c, ack))
    }

    /// Every frame sent and received goes to `tap` too.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    pub fn session(&self) -> &ClientSession {
        &self.session
    }
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.session
    }
    pub fn stream(&self) -> &S {
        &self.stream
    }
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
    /// The transport closed or failed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Negotiate (a fresh uuid) and Establish; a reject or Terminate before the ack is
    /// [`ClientError::Rejected`]. Other session messages and reports arriving meanwhile are
    /// dropped (there are none before the ack).
    pub fn open(&mut self, timeout: Duration) -> Result<EstablishmentAck, ClientError> {
        let deadline = instant() + timeout;
        if self.session.fresh {
            self.session.negotiate(utc(), &mut self.tx);
            self.flush()?;
            self.await_handshake(deadline, "NegotiationResponse")?;
        }
        self.session.establish(utc(), &mut self.tx);
        self.flush()?;
        self.await_handshake(deadline, "EstablishmentAck")?;
        self.session
            .ack
            .ok_or(ClientError::Timeout("EstablishmentAck"))
    }

    fn await_handshake(
        &mut self,
        deadline: Instant,
        what: &'static str,
    ) -> Result<(), ClientError> {
        loop {
            let left = deadline.saturating_duration_since(instant());
            match self.next_event(left)? {
                None => return Err(ClientError::Timeout(what)),
                Some(ClientEvent::Session(
                    m @ (SessionMsg::NegotiationReject(_)
                    | SessionMsg::EstablishmentReject(_)
                    | SessionMsg::Terminate(_)),
                )) => return Err(ClientError::Rejected(Box::new(m))),
                Some(ClientEvent::Session(SessionMsg::NegotiationResponse(_)))
                    if what == "NegotiationResponse" =>
                {
                    return Ok(())
                }
                Some(ClientEvent::Session(SessionMsg::EstablishmentAck(_)))
                    if what == "EstablishmentAck" =>
                {
                    return Ok(())
                }
                Some(_) => {}
            }
        }
    }

    /// Writes what the session queued.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        if self.tx.is_empty() {
            return Ok(());
        }
        if let Some(tap) = self.tap.as_mut() {
            let mut rest = self.tx.as_slice();
            while let Frame::Complete(n) = sbe::frame(rest, MAX_FRAME) {
                let (f, tail) = rest.split_at(n.min(rest.len()));
                tap(Direction::Sent, f);
                rest = tail;
            }
        }
        let r = self
            .stream
            .write_all(&self.tx)
            .and_then(|()| self.stream.flush());
        self.tx.clear();
        if let Err(e) = r {
            self.closed = true;
            return Err(ClientError::Io(e));
        }
        Ok(())
    }

    /// Writes `bytes` as they are (tests send malformed frames on purpose).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.flush()?;
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends a session message as it is (see [`ClientSession::send_session`]).
    pub fn send_session(&mut self, msg: &SessionMsg) -> Result<(), ClientError> {
        self.session.send_session(msg, utc(), &mut self.tx);
        self.flush()
    }

    /// Sends a NewOrderSingle; returns its sequence number.
    pub fn send_new_order(&mut self, o: &OrderSpec<'_>) -> Result<u64, ClientError> {
        let seq = self.session.new_order(o, utc(), &mut self.tx)?;
        self.flush()?;
        Ok(seq)
    }
    /// Sends an OrderCancelRequest; returns its sequence number.
    pub fn send_cancel(&mut self, c: &CancelSpec<'_>) -> Result<u64, ClientError> {
        let seq = self.session.cancel(c, utc(), &mut self.tx)?;
        self.flush()?;
        Ok(seq)
    }
    /// Sends an OrderCancelReplaceRequest; returns its sequence number.
    pub fn send_replace(&mut self, r: &ReplaceSpec<'_>) -> Result<u64, ClientError> {
        let seq = self.session.replace(r, utc(), &mut self.tx)?;
        self.flush()?;
        Ok(seq)
    }
    /// Sends an OrderMassCancelRequest; returns its sequence number.
    pub fn send_mass_cancel(
        &mut self,
        cl_ord_id: &str,
        symbol: Option<&str>,
    ) -> Result<u64, ClientError> {
        let seq = self
            .session
            .mass_cancel(cl_ord_id, symbol, utc(), &mut self.tx)?;
        self.flush()?;
        Ok(seq)
    }
    /// Sends an OrderStatusRequest; returns its sequence number.
    pub fn send_status(&mut self, q: &StatusSpec<'_>) -> Result<u64, ClientError> {
        let seq = self.session.status(q, utc(), &mut self.tx)?;
        self.flush()?;
        Ok(seq)
    }
    /// Sends a RetransmitRequest (see [`ClientSession::retransmit_request`]).
    pub fn retransmit(
        &mut self,
        last_uuid: u64,
        from_seq_no: u64,
        count: u32,
    ) -> Result<(), ClientError> {
        self.session
            .retransmit_request(last_uuid, from_seq_no, count, utc(), &mut self.tx);
        self.flush()
    }

    /// Sends Terminate (`Finished`) and waits up to `timeout` for the gateway's; returns the
    /// gateway's Terminate code when it came.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<u16>, ClientError> {
        self.session
            .terminate(ErrorCode::Finished, utc(), &mut self.tx);
        self.flush()?;
        let deadline = instant() + timeout;
        loop {
            let left = deadline.saturating_duration_since(instant());
            match self.next_event(left) {
                Ok(Some(ClientEvent::Session(SessionMsg::Terminate(t)))) => {
                    return Ok(Some(t.error_code))
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(ClientError::Closed) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next frame from the gateway, decoded, within `timeout` (`Ok(None)`: nothing came).
    /// Sends keep-alives while waiting and answers what needs an answer. After the transport
    /// closes: [`ClientError::Closed`] (frames received before the close are delivered first).
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ClientEvent>, ClientError> {
        let deadline = instant() + timeout;
        loop {
            match sbe::frame(&self.rx, MAX_FRAME) {
                Frame::Complete(n) => {
                    let frame = self.rx.get(..n).unwrap_or_default();
                    if let Some(tap) = self.tap.as_mut() {
                        tap(Direction::Received, frame);
                    }
                    let ev = self.session.on_frame(frame, utc(), &mut self.tx);
                    self.rx.drain(..n.min(self.rx.len()));
                    self.flush()?;
                    return ev.map(Some).map_err(ClientError::Malformed);
                }
                Frame::Invalid(e) => {
                    self.closed = true;
                    return Err(ClientError::Malformed(e));
                }
                Frame::Incomplete => {}
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            self.session.on_timer(utc(), &mut self.tx);
            self.flush()?;
            if instant() >= deadline {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// One read: appends what arrived to `rx`; a timeout is not an error.
    fn fill(&mut self) -> Result<(), ClientError> {
        let mut buf = [0u8; 16 << 10];
        loop {
            return match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    Ok(())
                }
                Ok(n) => {
                    self.rx.extend_from_slice(buf.get(..n).unwrap_or_default());
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(())
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    self.closed = true;
                    Ok(())
                }
                Err(e) => {
                    self.closed = true;
                    Err(ClientError::Io(e))
                }
            };
        }
    }

    /// Waits for the next report (session messages in between are handled and skipped).
    pub fn next_report(&mut self, timeout: Duration) -> Result<Option<Report>, ClientError> {
        let deadline = instant() + timeout;
        loop {
            let left = deadline.saturating_duration_since(instant());
            match self.next_event(left)? {
                None => return Ok(None),
                Some(ClientEvent::Report(r)) => return Ok(Some(r)),
                Some(ClientEvent::Session(_) | ClientEvent::Unexpected { .. }) => {}
            }
        }
    }
}

// ------------------------------------------------------------------------------ readable

/// A price or other fixed-point value as a decimal (`101.25`, `-0.5`, `0`).
pub fn decimal(v: i64, decimals: u32) -> String {
    let mut b = [0u8; 32];
    let n = crate::fix::encode::write_decimal(&mut b, v, decimals);
    String::from_utf8_lossy(b.get(..n).unwrap_or_default()).into_owned()
}

fn px(p: Price) -> String {
    decimal(p.0, crate::model::PRICE_DECIMALS)
}

fn qt(q: Qty) -> String {
    decimal(q.0, crate::model::QTY_DECIMALS)
}

fn ch(c: u8) -> char {
    if c.is_ascii_graphic() {
        char::from(c)
    } else {
        '?'
    }
}

fn exec_type_name(c: u8) -> &'static str {
    match c {
        b'0' => "New",
        b'4' => "Canceled",
        b'5' => "Replaced",
        b'6' => "PendingCancel",
        b'8' => "Rejected",
        b'A' => "PendingNew",
        b'C' => "Expired",
        b'E' => "PendingReplace",
        b'F' => "Trade",
        b'I' => "OrderStatus",
        _ => "?",
    }
}

fn ord_status_name(c: u8) -> &'static str {
    match c {
        b'0' => "New",
        b'1' => "PartiallyFilled",
        b'2' => "Filled",
        b'4' => "Canceled",
        b'5' => "Replaced",
        b'6' => "PendingCancel",
        b'8' => "Rejected",
        b'A' => "PendingNew",
        b'C' => "Expired",
        b'E' => "PendingReplace",
        _ => "?",
    }
}

fn side_name(c: u8) -> &'static str {
    match c {
        b'1' => "Buy",
        b'2' => "Sell",
        b'5' => "SellShort",
        _ => "?",
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Exec(r) => {
                // The SBE template's name: one per ExecType group (fix-specs/sbe/README.md).
                let template = match r.exec_type {
                    b'0' => "ExecutionReportNew",
                    b'F' => "ExecutionReportTrade",
                    b'4' => "ExecutionReportCanceled",
                    b'5' => "ExecutionReportReplaced",
                    b'8' => "ExecutionReportRejected",
                    _ => "ExecutionReportStatus",
                };
                write!(
                    f,
                    "{template} seq={} ExecType={}({}) OrdStatus={}({}) OrderID={} ExecID={} \
                     ClOrdID={}",
                    r.seq_num,
                    ch(r.exec_type),
                    exec_type_name(r.exec_type),
                    ch(r.ord_status),
                    ord_status_name(r.ord_status),
                    r.order_id,
                    r.exec_id,
                    r.cl_ord_id.as_str(),
                )?;
                if !r.orig_cl_ord_id.is_empty() {
                    write!(f, " OrigClOrdID={}", r.orig_cl_ord_id.as_str())?;
                }
                if !r.account.is_empty() {
                    write!(f, " Account={}", r.account.as_str())?;
                }
                write!(
                    f,
                    " Symbol={} Side={} OrderQty={}",
                    r.symbol.as_str(),
                    side_name(r.side),
                    qt(r.order_qty)
                )?;
                if let Some(p) = r.price {
                    write!(f, " Price={}", px(p))?;
                }
                write!(
                    f,
                    " LeavesQty={} CumQty={} AvgPx={}",
                    qt(r.leaves_qty),
                    qt(r.cum_qty),
                    px(r.avg_px)
                )?;
                if r.exec_type == b'F' {
                    write!(f, " LastQty={} LastPx={}", qt(r.last_qty), px(r.last_px))?;
                }
                if let Some(reason) = r.ord_rej_reason {
                    write!(f, " OrdRejReason={reason}")?;
                }
                if !r.text.is_empty() {
                    write!(f, " Text=\"{}\"", r.text.as_str())?;
                }
                if r.poss_retrans {
                    write!(f, " (PossRetrans)")?;
                }
                Ok(())
            }
            Report::CancelReject(r) => {
                write!(
                    f,
                    "OrderCancelReject seq={} OrderID={} ClOrdID={} OrigClOrdID={} \
                     CxlRejResponseTo={} CxlRejReason={} OrdStatus={}({})",
                    r.seq_num,
                    r.order_id,
                    r.cl_ord_id.as_str(),
                    r.orig_cl_ord_id.as_str(),
                    if r.response_to == b'2' {
                        "replace"
                    } else {
                        "cancel"
                    },
                    r.cxl_rej_reason,
                    ch(r.ord_status),
                    ord_status_name(r.ord_status),
                )?;
                if !r.text.is_empty() {
                    write!(f, " Text=\"{}\"", r.text.as_str())?;
                }
                if r.poss_retrans {
                    write!(f, " (PossRetrans)")?;
                }
                Ok(())
            }
            Report::MassCancel(r) => {
                write!(
                    f,
                    "OrderMassCancelReport seq={} ClOrdID={} MassActionReportID={} \
                     MassCancelResponse={} TotalAffectedOrders={}",
                    r.seq_num,
                    r.cl_ord_id.as_str(),
                    r.mass_action_report_id,
                    ch(r.response),
                    r.total_affected_orders,
                )?;
                if let Some(reason) = r.reject_reason {
                    write!(f, " MassCancelRejectReason={reason}")?;
                }
                if !r.text.is_empty() {
                    write!(f, " Text=\"{}\"", r.text.as_str())?;
                }
                Ok(())
            }
            Report::BusinessReject(r) => {
                write!(
                    f,
                    "BusinessMessageReject seq={} RefSeqNum={} RefTemplateId={} \
                     BusinessRejectReason={} BusinessRejectRefID={}",
                    r.seq_num,
                    r.ref_seq_num,
                    r.ref_template_id,
                    r.reason,
                    r.ref_id.as_str(),
                )?;
                if let Some(ms) = r.retry_after_ms {
                    write!(f, " RetryAfterMs={ms}")?;
                }
                if !r.text.is_empty() {
                    write!(f, " Text=\"{}\"", r.text.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// A session message, readably; signatures are never shown.
pub fn describe_session(m: &SessionMsg) -> String {
    let reason = |r: &Reason| r.as_str().to_string();
    match m {
        SessionMsg::Negotiate(n) => format!(
            "Negotiate uuid={} session={} key={} signature=***",
            n.uuid,
            n.session.as_str(),
            n.access_key_id.as_str()
        ),
        SessionMsg::NegotiationResponse(r) => format!(
            "NegotiationResponse uuid={} previous_uuid={} previous_seq_no={}",
            r.uuid, r.previous_uuid, r.previous_seq_no
        ),
        SessionMsg::NegotiationReject(r) => format!(
            "NegotiationReject uuid={} code={} \"{}\"",
            r.uuid,
            r.error_code,
            reason(&r.reason)
        ),
        SessionMsg::Establish(e) => format!(
            "Establish uuid={} session={} key={} next_seq_no={} keep_alive={}ms signature=***",
            e.uuid,
            e.session.as_str(),
            e.access_key_id.as_str(),
            e.next_seq_no,
            e.keep_alive_interval
        ),
        SessionMsg::EstablishmentAck(a) => format!(
            "EstablishmentAck uuid={} next_seq_no={} previous_uuid={} previous_seq_no={} \
             keep_alive={}ms",
            a.uuid, a.next_seq_no, a.previous_uuid, a.previous_seq_no, a.keep_alive_interval
        ),
        SessionMsg::EstablishmentReject(r) => format!(
            "EstablishmentReject uuid={} next_seq_no={} code={} \"{}\"",
            r.uuid,
            r.next_seq_no,
            r.error_code,
            reason(&r.reason)
        ),
        SessionMsg::Sequence(q) => format!(
            "Sequence uuid={} next_seq_no={}{}",
            q.uuid,
            q.next_seq_no,
            if q.keep_alive_interval_lapsed {
                " (keep-alive lapsed)"
            } else {
                ""
            }
        ),
        SessionMsg::Terminate(t) => format!(
            "Terminate uuid={} code={} \"{}\"",
            t.uuid,
            t.error_code,
            reason(&t.reason)
        ),
        SessionMsg::RetransmitRequest(r) => format!(
            "RetransmitRequest uuid={} last_uuid={} from_seq_no={} count={}",
            r.uuid, r.last_uuid, r.from_seq_no, r.msg_count
        ),
        SessionMsg::Retransmission(r) => format!(
            "Retransmission uuid={} last_uuid={} from_seq_no={} count={}",
            r.uuid, r.last_uuid, r.from_seq_no, r.msg_count
        ),
        SessionMsg::RetransmitReject(r) => format!(
            "RetransmitReject uuid={} last_uuid={} code={} \"{}\"",
            r.uuid,
            r.last_uuid,
            r.error_code,
            reason(&r.reason)
        ),
        SessionMsg::NotApplied(n) => format!(
            "NotApplied uuid={} from_seq_no={} count={}",
            n.uuid, n.from_seq_no, n.msg_count
        ),
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Any whole frame, readably: what the client sends as well as what it receives (`fixclient
/// --sbe` prints both). A frame that does not decode says why.
pub fn describe(frame: &[u8]) -> String {
    let msg = match sbe::decode(frame) {
        Ok(m) => m,
        Err(e) => return format!("undecodable frame: {e}"),
    };
    if let Some(r) = report(&msg) {
        return r.to_string();
    }
    if let Some(m) = session_msg(&msg) {
        return describe_session(&m);
    }
    let opt_px = |p: Option<i64>| p.map_or("none".to_string(), |p| px(Price(p)));
    match msg {
        Message::NewOrderSingle(m) => {
            let mut s = format!(
                "NewOrderSingle seq={} ClOrdID={} Symbol={} Side={} OrderQty={} OrdType={} \
                 Price={} TimeInForce={}",
                m.seq_num(),
                text(m.cl_ord_id()),
                text(m.symbol()),
                side_name(m.side_raw()),
                qt(Qty(m.order_qty())),
                ch(m.ord_type_raw()),
                opt_px(m.price()),
                ch(m.time_in_force_raw()),
            );
            for (k, v) in [
                ("Account", m.account()),
                ("ExDestination", m.ex_destination()),
                ("TraderID", m.trader_id()),
                ("DecisionMakerID", m.decision_maker_id()),
                ("SecurityID", m.security_id()),
                ("Currency", m.currency()),
                ("ExecInst", m.exec_inst()),
            ] {
                if !v.is_empty() {
                    s.push_str(&format!(" {k}={}", text(v)));
                }
            }
            s
        }
        Message::OrderCancelRequest(m) => format!(
            "OrderCancelRequest seq={} ClOrdID={} OrigClOrdID={} Side={} Symbol={}",
            m.seq_num(),
            text(m.cl_ord_id()),
            text(m.orig_cl_ord_id()),
            side_name(m.side_raw()),
            text(m.symbol()),
        ),
        Message::OrderCancelReplaceRequest(m) => format!(
            "OrderCancelReplaceRequest seq={} ClOrdID={} OrigClOrdID={} Side={} OrderQty={} \
             Price={} Symbol={}",
            m.seq_num(),
            text(m.cl_ord_id()),
            text(m.orig_cl_ord_id()),
            side_name(m.side_raw()),
            qt(Qty(m.order_qty())),
            opt_px(m.price()),
            text(m.symbol()),
        ),
        Message::OrderMassCancelRequest(m) => format!(
            "OrderMassCancelRequest seq={} ClOrdID={} MassCancelRequestType={} Symbol={}",
            m.seq_num(),
            text(m.cl_ord_id()),
            ch(m.mass_cancel_request_type_raw()),
            text(m.symbol()),
        ),
        Message::OrderStatusRequest(m) => format!(
            "OrderStatusRequest seq={} ClOrdID={} Side={} Symbol={}",
            m.seq_num(),
            text(m.cl_ord_id()),
            side_name(m.side_raw()),
            text(m.symbol()),
        ),
        _ => "frame of an unexpected template".to_string(),
    }
}

#[cfg(test)]
mod tests;
