//! HOT — the FIXP session messages as plain values, and the one error-code enum every reject
//! and Terminate carries (fix-specs/FIXP-SESSION.md, "Messages" and "Error codes").
//!
//! The SBE schema (`fix-specs/sbe/`) has the same fields in the same order; the engine maps its
//! flyweights to and from these structs. Every struct is `Copy` and fixed-size: nothing here
//! allocates. Strings are [`InlineStr`]s (length + inline bytes); the SBE encoding pads them
//! with NUL to their fixed length.

use crate::model::InlineStr;

/// The session (the client's SenderCompID as configured) or an API key id: ≤ 32 bytes,
/// printable ASCII 0x21–0x7E (anything else never matches a session or a key).
pub type Name = InlineStr<32>;

/// Reason text of a reject or Terminate: ≤ 64 bytes. Ours are always an [`ErrorCode::reason`].
pub type Reason = InlineStr<64>;

/// Bytes of an HMAC-SHA256 signature.
pub const SIGNATURE_BYTES: usize = 32;

/// Client → gateway: creates a logical session (a new uuid) for `session`, signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiate {
    pub uuid: u64,
    /// When the client signed it, UTC nanoseconds.
    pub request_timestamp: u64,
    pub session: Name,
    pub access_key_id: Name,
    pub hmac_signature: [u8; SIGNATURE_BYTES],
}

/// Gateway → client: the Negotiate was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiationResponse {
    pub uuid: u64,
    /// The Negotiate's `request_timestamp`.
    pub request_timestamp: u64,
    /// The last sequence number the gateway sent on `previous_uuid` (0: none).
    pub previous_seq_no: u64,
    /// The uuid this session had before (0: none).
    pub previous_uuid: u64,
}

/// Gateway → client: the Negotiate was refused; the connection is closed after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiationReject {
    pub uuid: u64,
    pub request_timestamp: u64,
    pub error_code: u16,
    pub reason: Reason,
}

/// Client → gateway: binds a negotiated uuid to this connection, signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Establish {
    pub uuid: u64,
    pub request_timestamp: u64,
    pub session: Name,
    pub access_key_id: Name,
    /// The sequence number of the client's next application message.
    pub next_seq_no: u64,
    /// The longest the client stays silent, in milliseconds.
    pub keep_alive_interval: u32,
    pub hmac_signature: [u8; SIGNATURE_BYTES],
}

/// Gateway → client: the session is established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstablishmentAck {
    pub uuid: u64,
    pub request_timestamp: u64,
    /// The sequence number of the gateway's next application message on this uuid.
    pub next_seq_no: u64,
    /// As in [`NegotiationResponse`].
    pub previous_seq_no: u64,
    pub previous_uuid: u64,
    /// The longest the gateway stays silent, in milliseconds (the client's value).
    pub keep_alive_interval: u32,
}

/// Gateway → client: the Establish was refused; the connection is closed after it (except
/// [`ErrorCode::AlreadyEstablished`], which leaves the established session alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstablishmentReject {
    pub uuid: u64,
    pub request_timestamp: u64,
    /// The sequence number the gateway expects next from the client.
    pub next_seq_no: u64,
    pub error_code: u16,
    pub reason: Reason,
}

/// Either way: heartbeat and sequence announcement. `next_seq_no` is the sender's next
/// application sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub uuid: u64,
    pub next_seq_no: u64,
    /// The sender heard nothing from its peer for one keep-alive interval: a warning.
    pub keep_alive_interval_lapsed: bool,
}

/// Either way: the sender unbinds the connection; the receiver answers with Terminate and the
/// connection closes. The logical session (uuid, sequence numbers) survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terminate {
    pub uuid: u64,
    pub request_timestamp: u64,
    pub error_code: u16,
    pub reason: Reason,
}

/// Client → gateway: resend `msg_count` application messages from `from_seq_no` of the flow
/// of `last_uuid` (0: the current uuid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitRequest {
    pub uuid: u64,
    pub last_uuid: u64,
    pub request_timestamp: u64,
    pub from_seq_no: u64,
    pub msg_count: u32,
}

/// Gateway → client: the next `msg_count` application messages are retransmissions (carrying
/// PossRetrans) starting at `from_seq_no`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    pub uuid: u64,
    pub last_uuid: u64,
    pub request_timestamp: u64,
    pub from_seq_no: u64,
    pub msg_count: u32,
}

/// Gateway → client: the RetransmitRequest was refused; the session continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitReject {
    pub uuid: u64,
    pub last_uuid: u64,
    pub request_timestamp: u64,
    pub error_code: u16,
    pub reason: Reason,
}

/// Gateway → client: the client's application messages `from_seq_no ..` (`msg_count` of them)
/// never arrived and were not applied (a gap in the client's idempotent flow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotApplied {
    pub uuid: u64,
    pub from_seq_no: u64,
    pub msg_count: u32,
}

/// Any FIXP session message, either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMsg {
    Negotiate(Negotiate),
    NegotiationResponse(NegotiationResponse),
    NegotiationReject(NegotiationReject),
    Establish(Establish),
    EstablishmentAck(EstablishmentAck),
    EstablishmentReject(EstablishmentReject),
    Sequence(Sequence),
    Terminate(Terminate),
    RetransmitRequest(RetransmitRequest),
    Retransmission(Retransmission),
    RetransmitReject(RetransmitReject),
    NotApplied(NotApplied),
}

impl SessionMsg {
    /// The message's name as the spec writes it (events and tests).
    pub fn name(&self) -> &'static str {
        match self {
            SessionMsg::Negotiate(_) => "Negotiate",
            SessionMsg::NegotiationResponse(_) => "NegotiationResponse",
            SessionMsg::NegotiationReject(_) => "NegotiationReject",
            SessionMsg::Establish(_) => "Establish",
            SessionMsg::EstablishmentAck(_) => "EstablishmentAck",
            SessionMsg::EstablishmentReject(_) => "EstablishmentReject",
            SessionMsg::Sequence(_) => "Sequence",
            SessionMsg::Terminate(_) => "Terminate",
            SessionMsg::RetransmitRequest(_) => "RetransmitRequest",
            SessionMsg::Retransmission(_) => "Retransmission",
            SessionMsg::RetransmitReject(_) => "RetransmitReject",
            SessionMsg::NotApplied(_) => "NotApplied",
        }
    }

    /// The error code of a reject or Terminate (`None` for other messages).
    pub fn error_code(&self) -> Option<u16> {
        match self {
            SessionMsg::NegotiationReject(m) => Some(m.error_code),
            SessionMsg::EstablishmentReject(m) => Some(m.error_code),
            SessionMsg::Terminate(m) => Some(m.error_code),
            SessionMsg::RetransmitReject(m) => Some(m.error_code),
            _ => None,
        }
    }
}

/// Every error code a NegotiationReject, EstablishmentReject, RetransmitReject or Terminate
/// carries: one enum, stable numbers (hundreds: the message that carries it), each with a
/// fixed reason text ≤ 64 bytes. The FIXP 1.1 code each one refines is in
/// fix-specs/FIXP-SESSION.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    // Terminate, orderly.
    /// Our answer to the peer's Terminate, or an orderly end.
    Finished = 0,
    /// Ended by the gateway (operator action, shutdown).
    Administrative = 1,

    // NegotiationReject.
    /// Signature, key, skew, replay, lockout, allowlist or binding: one answer for all.
    NegotiationCredentials = 100,
    /// The uuid is the session's current or previous one: a new logical session needs a new
    /// uuid.
    DuplicateUuid = 101,
    /// uuid 0 is reserved (it means "none").
    InvalidUuid = 102,
    /// The Negotiate names another session than the one it reached.
    NegotiationSessionMismatch = 103,
    /// A second Negotiate on the same connection.
    AlreadyNegotiated = 104,
    /// Negotiate on an established connection (the session stays established).
    NegotiateWhileEstablished = 105,
    /// The session is bound to another connection.
    NegotiationSessionInUse = 106,

    // EstablishmentReject.
    /// No Negotiate for this uuid (or not the session's current uuid).
    Unnegotiated = 200,
    /// Establish on an established connection (the session stays established).
    AlreadyEstablished = 201,
    /// The session is bound to another connection.
    EstablishSessionInUse = 202,
    /// keep_alive_interval outside the configured bounds.
    KeepAliveInterval = 203,
    /// Signature, key, skew, replay, lockout, allowlist or binding: one answer for all.
    EstablishCredentials = 204,
    /// Signed with another key than the uuid was negotiated with.
    KeyMismatch = 205,
    /// next_seq_no below the next sequence number the gateway expects (would reuse numbers).
    EstablishSeqNoTooLow = 206,
    /// next_seq_no 0 (sequence numbers start at 1).
    InvalidNextSeqNo = 207,
    /// The Establish names another session than the one it reached.
    EstablishSessionMismatch = 208,

    // Terminate, abnormal.
    /// Nothing heard from the peer for two keep-alive intervals.
    KeepAliveLapsed = 300,
    /// A message other than Negotiate/Establish before the session was established.
    NotEstablished = 301,
    /// A message the client never sends (a gateway-side message, or NotApplied).
    UnexpectedMessage = 302,
    /// An application message or Sequence below the next expected sequence number without
    /// PossRetrans.
    SeqNoTooLow = 303,
    /// A Sequence naming another uuid than the established one.
    WrongUuid = 304,
    /// No Establish within `establish_timeout_ms` of the connection.
    EstablishTimeout = 305,
    /// The message store failed: sequence numbers can no longer be trusted.
    StoreFailure = 306,
    /// A frame the codec could not decode (bad length, encoding type, template, version).
    MalformedMessage = 307,
    /// The key the session was established with was revoked or expired.
    CredentialRevoked = 308,
    /// The peer does not read what the gateway sends (its send buffer stayed full).
    SlowConsumer = 309,
    /// Throttle refusals kept coming for too long.
    ThrottleExceeded = 310,
    /// A frame whose templateId is not in the schema.
    UnknownTemplate = 311,
    /// A frame of another schema, or of a schema version newer than the gateway's.
    SchemaMismatch = 312,
    /// A blockLength smaller than the message needs, or a frame length that is not header +
    /// blockLength.
    WrongBlockLength = 313,

    // RetransmitReject.
    /// from_seq_no 0, msg_count 0, or beyond the last sequence number sent.
    OutOfRange = 400,
    /// uuid or last_uuid is neither the session's current nor its previous uuid.
    UnknownUuid = 401,
    /// msg_count above `retransmit_max_count`.
    RequestLimitExceeded = 402,
    /// Some of the requested messages are no longer in the store.
    MessagesUnavailable = 403,
    /// The requests of the last second already used the retransmission budget
    /// (`retransmit_max_count` messages per second).
    RetransmitRateExceeded = 404,
}

impl ErrorCode {
    /// Every code, for tests and docs.
    pub const ALL: [ErrorCode; 37] = [
        ErrorCode::Finished,
        ErrorCode::Administrative,
        ErrorCode::NegotiationCredentials,
        ErrorCode::DuplicateUuid,
        ErrorCode::InvalidUuid,
        ErrorCode::NegotiationSessionMismatch,
        ErrorCode::AlreadyNegotiated,
        ErrorCode::NegotiateWhileEstablished,
        ErrorCode::NegotiationSessionInUse,
        ErrorCode::Unnegotiated,
        ErrorCode::AlreadyEstablished,
        ErrorCode::EstablishSessionInUse,
        ErrorCode::KeepAliveInterval,
        ErrorCode::EstablishCredentials,
        ErrorCode::KeyMismatch,
        ErrorCode::EstablishSeqNoTooLow,
        ErrorCode::InvalidNextSeqNo,
        ErrorCode::EstablishSessionMismatch,
        ErrorCode::KeepAliveLapsed,
        ErrorCode::NotEstablished,
        ErrorCode::UnexpectedMessage,
        ErrorCode::SeqNoTooLow,
        ErrorCode::WrongUuid,
        ErrorCode::EstablishTimeout,
        ErrorCode::StoreFailure,
        ErrorCode::MalformedMessage,
        ErrorCode::CredentialRevoked,
        ErrorCode::SlowConsumer,
        ErrorCode::ThrottleExceeded,
        ErrorCode::UnknownTemplate,
        ErrorCode::SchemaMismatch,
        ErrorCode::WrongBlockLength,
        ErrorCode::OutOfRange,
        ErrorCode::UnknownUuid,
        ErrorCode::RequestLimitExceeded,
        ErrorCode::MessagesUnavailable,
        ErrorCode::RetransmitRateExceeded,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number (`None` for numbers we never send).
    pub fn from_code(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// The reason text sent with the code (≤ 64 bytes, ASCII).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::Finished => "terminated",
            ErrorCode::Administrative => "terminated by the gateway",
            ErrorCode::NegotiationCredentials => "authentication failed",
            ErrorCode::DuplicateUuid => "uuid already used by this session: negotiate a new uuid",
            ErrorCode::InvalidUuid => "uuid 0 is not a valid session uuid",
            ErrorCode::NegotiationSessionMismatch => "session does not match this session",
            ErrorCode::AlreadyNegotiated => "Negotiate already accepted on this connection",
            ErrorCode::NegotiateWhileEstablished => {
                "Negotiate not accepted on an established session"
            }
            ErrorCode::NegotiationSessionInUse => "session in use on another connection",
            ErrorCode::Unnegotiated => "uuid not negotiated for this session",
            ErrorCode::AlreadyEstablished => "session already established",
            ErrorCode::EstablishSessionInUse => "session in use on another connection",
            ErrorCode::KeepAliveInterval => "keep_alive_interval out of range",
            ErrorCode::EstablishCredentials => "authentication failed",
            ErrorCode::KeyMismatch => "Establish must use the key the uuid was negotiated with",
            ErrorCode::EstablishSeqNoTooLow => "next_seq_no lower than expected",
            ErrorCode::InvalidNextSeqNo => "next_seq_no must be at least 1",
            ErrorCode::EstablishSessionMismatch => "session does not match this session",
            ErrorCode::KeepAliveLapsed => "keep-alive lapsed",
            ErrorCode::NotEstablished => "session not established",
            ErrorCode::UnexpectedMessage => "message not accepted from a client",
            ErrorCode::SeqNoTooLow => "sequence number lower than expected",
            ErrorCode::WrongUuid => "uuid is not the established session's",
            ErrorCode::EstablishTimeout => "no Establish in time",
            ErrorCode::StoreFailure => "message store failure",
            ErrorCode::MalformedMessage => "malformed message",
            ErrorCode::CredentialRevoked => "credential revoked or expired",
            ErrorCode::SlowConsumer => "slow consumer: reports not read",
            ErrorCode::ThrottleExceeded => "throttle limits exceeded for too long",
            ErrorCode::UnknownTemplate => "unknown templateId",
            ErrorCode::SchemaMismatch => "unknown schemaId or newer schema version",
            ErrorCode::WrongBlockLength => "blockLength does not fit the message",
            ErrorCode::OutOfRange => "requested range out of bounds",
            ErrorCode::UnknownUuid => "unknown uuid",
            ErrorCode::RequestLimitExceeded => "msg_count above the retransmission limit",
            ErrorCode::MessagesUnavailable => "messages no longer available",
            ErrorCode::RetransmitRateExceeded => "retransmission budget used up: retry in a second",
        }
    }

    /// [`ErrorCode::reason`] as the wire string.
    pub fn reason_text(self) -> Reason {
        Reason::new(self.reason().as_bytes()).unwrap_or(Reason::EMPTY)
    }
}
