//! HOT (Sequence) / COLD (the rest) — the FIXP session messages on the wire: conversion between
//! the SBE flyweights of templates 500–513 (`crate::sbe::generated`) and the plain structs of
//! [`super::msg`]. Both directions, so the gateway and the client library share one mapping.
//!
//! Must never: allocate or panic. A string field longer than its struct's capacity cannot
//! happen (the SBE char arrays are the structs' capacities); a name with bytes outside
//! printable ASCII decodes to a name that never matches a session or key.

use super::msg::{
    Establish, EstablishmentAck, EstablishmentReject, Name, Negotiate, NegotiationReject,
    NegotiationResponse, NotApplied, Reason, Retransmission, RetransmitReject, RetransmitRequest,
    Sequence, SessionMsg, Terminate,
};
use crate::sbe::generated::{
    EstablishEncoder, EstablishmentAckEncoder, EstablishmentRejectEncoder, KeepAliveLapsed,
    NegotiateEncoder, NegotiationRejectEncoder, NegotiationResponseEncoder, NotAppliedEncoder,
    RetransmissionEncoder, RetransmitRejectEncoder, RetransmitRequestEncoder, SequenceEncoder,
    TerminateEncoder,
};
use crate::sbe::{Message, SbeError, SessionErrorCode};

fn name(v: &[u8]) -> Name {
    // A 32-byte char array always fits; `EMPTY` is only the impossible fallback.
    Name::new(v).unwrap_or(Name::EMPTY)
}

fn reason(v: &[u8]) -> Reason {
    Reason::new(v).unwrap_or(Reason::EMPTY)
}

/// The session message a decoded frame is, `None` for an application message.
pub fn session_msg(msg: &Message<'_>) -> Option<SessionMsg> {
    Some(match msg {
        Message::Negotiate(m) => SessionMsg::Negotiate(Negotiate {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            session: name(m.session()),
            access_key_id: name(m.access_key_id()),
            hmac_signature: m.hmac_signature(),
        }),
        Message::NegotiationResponse(m) => SessionMsg::NegotiationResponse(NegotiationResponse {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            previous_seq_no: m.previous_seq_no(),
            previous_uuid: m.previous_uuid(),
        }),
        Message::NegotiationReject(m) => SessionMsg::NegotiationReject(NegotiationReject {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            error_code: m.error_code_raw(),
            reason: reason(m.reason()),
        }),
        Message::Establish(m) => SessionMsg::Establish(Establish {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            session: name(m.session()),
            access_key_id: name(m.access_key_id()),
            next_seq_no: m.next_seq_no(),
            keep_alive_interval: m.keep_alive_interval(),
            hmac_signature: m.hmac_signature(),
        }),
        Message::EstablishmentAck(m) => SessionMsg::EstablishmentAck(EstablishmentAck {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            next_seq_no: m.next_seq_no(),
            previous_seq_no: m.previous_seq_no(),
            previous_uuid: m.previous_uuid(),
            keep_alive_interval: m.keep_alive_interval(),
        }),
        Message::EstablishmentReject(m) => SessionMsg::EstablishmentReject(EstablishmentReject {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            next_seq_no: m.next_seq_no(),
            error_code: m.error_code_raw(),
            reason: reason(m.reason()),
        }),
        Message::Sequence(m) => SessionMsg::Sequence(Sequence {
            uuid: m.uuid(),
            next_seq_no: m.next_seq_no(),
            keep_alive_interval_lapsed: m.keep_alive_interval_lapsed_raw() == 1,
        }),
        Message::Terminate(m) => SessionMsg::Terminate(Terminate {
            uuid: m.uuid(),
            request_timestamp: m.request_timestamp(),
            error_code: m.error_code_raw(),
            reason: reason(m.reason()),
        }),
        Message::RetransmitRequest(m) => SessionMsg::RetransmitRequest(RetransmitRequest {
            uuid: m.uuid(),
            last_uuid: m.last_uuid(),
            request_timestamp: m.request_timestamp(),
            from_seq_no: m.from_seq_no(),
            msg_count: m.msg_count(),
        }),
        Message::Retransmission(m) => SessionMsg::Retransmission(Retransmission {
            uuid: m.uuid(),
            last_uuid: m.last_uuid(),
            request_timestamp: m.request_timestamp(),
            from_seq_no: m.from_seq_no(),
            msg_count: m.msg_count(),
        }),
        Message::RetransmitReject(m) => SessionMsg::RetransmitReject(RetransmitReject {
            uuid: m.uuid(),
            last_uuid: m.last_uuid(),
            request_timestamp: m.request_timestamp(),
            error_code: m.error_code_raw(),
            reason: reason(m.reason()),
        }),
        Message::NotApplied(m) => SessionMsg::NotApplied(NotApplied {
            uuid: m.uuid(),
            from_seq_no: m.from_seq_no(),
            msg_count: m.msg_count(),
        }),
        _ => return None,
    })
}

/// The wire value of an error code; a number outside the schema's enum (never one of ours)
/// is sent as `Administrative`.
fn code(v: u16) -> SessionErrorCode {
    SessionErrorCode::from_u16(v).unwrap_or(SessionErrorCode::Administrative)
}

/// Writes `msg` as one whole frame (SOFH + header + block) at the front of `out`; returns its
/// length.
pub fn encode_session(msg: &SessionMsg, out: &mut [u8]) -> Result<usize, SbeError> {
    Ok(match msg {
        SessionMsg::Negotiate(m) => {
            let mut e = NegotiateEncoder::frame(out)?;
            e.set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_hmac_signature(&m.hmac_signature);
            e.set_session(m.session.as_bytes())?;
            e.set_access_key_id(m.access_key_id.as_bytes())?;
            NegotiateEncoder::FRAME_LENGTH
        }
        SessionMsg::NegotiationResponse(m) => {
            NegotiationResponseEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_previous_seq_no(m.previous_seq_no)
                .set_previous_uuid(m.previous_uuid);
            NegotiationResponseEncoder::FRAME_LENGTH
        }
        SessionMsg::NegotiationReject(m) => {
            NegotiationRejectEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_error_code(code(m.error_code))
                .set_reason(m.reason.as_bytes())?;
            NegotiationRejectEncoder::FRAME_LENGTH
        }
        SessionMsg::Establish(m) => {
            let mut e = EstablishEncoder::frame(out)?;
            e.set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_next_seq_no(m.next_seq_no)
                .set_keep_alive_interval(m.keep_alive_interval)
                .set_hmac_signature(&m.hmac_signature);
            e.set_session(m.session.as_bytes())?;
            e.set_access_key_id(m.access_key_id.as_bytes())?;
            EstablishEncoder::FRAME_LENGTH
        }
        SessionMsg::EstablishmentAck(m) => {
            EstablishmentAckEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_next_seq_no(m.next_seq_no)
                .set_previous_seq_no(m.previous_seq_no)
                .set_previous_uuid(m.previous_uuid)
                .set_keep_alive_interval(m.keep_alive_interval);
            EstablishmentAckEncoder::FRAME_LENGTH
        }
        SessionMsg::EstablishmentReject(m) => {
            EstablishmentRejectEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_next_seq_no(m.next_seq_no)
                .set_error_code(code(m.error_code))
                .set_reason(m.reason.as_bytes())?;
            EstablishmentRejectEncoder::FRAME_LENGTH
        }
        SessionMsg::Sequence(m) => {
            let lapsed = if m.keep_alive_interval_lapsed {
                KeepAliveLapsed::Lapsed
            } else {
                KeepAliveLapsed::NotLapsed
            };
            SequenceEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_next_seq_no(m.next_seq_no)
                .set_keep_alive_interval_lapsed(lapsed);
            SequenceEncoder::FRAME_LENGTH
        }
        SessionMsg::Terminate(m) => {
            TerminateEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_error_code(code(m.error_code))
                .set_reason(m.reason.as_bytes())?;
            TerminateEncoder::FRAME_LENGTH
        }
        SessionMsg::RetransmitRequest(m) => {
            RetransmitRequestEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_last_uuid(m.last_uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_from_seq_no(m.from_seq_no)
                .set_msg_count(m.msg_count);
            RetransmitRequestEncoder::FRAME_LENGTH
        }
        SessionMsg::Retransmission(m) => {
            RetransmissionEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_last_uuid(m.last_uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_from_seq_no(m.from_seq_no)
                .set_msg_count(m.msg_count);
            RetransmissionEncoder::FRAME_LENGTH
        }
        SessionMsg::RetransmitReject(m) => {
            RetransmitRejectEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_last_uuid(m.last_uuid)
                .set_request_timestamp(m.request_timestamp)
                .set_error_code(code(m.error_code))
                .set_reason(m.reason.as_bytes())?;
            RetransmitRejectEncoder::FRAME_LENGTH
        }
        SessionMsg::NotApplied(m) => {
            NotAppliedEncoder::frame(out)?
                .set_uuid(m.uuid)
                .set_from_seq_no(m.from_seq_no)
                .set_msg_count(m.msg_count);
            NotAppliedEncoder::FRAME_LENGTH
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixp::ErrorCode;

    fn round_trip(msg: SessionMsg) {
        let mut buf = [0u8; 256];
        let n = encode_session(&msg, &mut buf).expect("fits");
        let frame = buf.get(..n).expect("length");
        let decoded = crate::sbe::decode(frame).expect("decodes");
        assert_eq!(session_msg(&decoded), Some(msg), "{}", msg.name());
    }

    fn n(s: &str) -> Name {
        Name::new(s.as_bytes()).expect("name")
    }

    #[test]
    fn every_session_message_survives_the_wire() {
        let r = ErrorCode::KeyMismatch.reason_text();
        let sig = [7u8; 32];
        for msg in [
            SessionMsg::Negotiate(Negotiate {
                uuid: 9,
                request_timestamp: 1,
                session: n("BIN1"),
                access_key_id: n("bin1-dev"),
                hmac_signature: sig,
            }),
            SessionMsg::NegotiationResponse(NegotiationResponse {
                uuid: 9,
                request_timestamp: 1,
                previous_seq_no: 4,
                previous_uuid: 3,
            }),
            SessionMsg::NegotiationReject(NegotiationReject {
                uuid: 9,
                request_timestamp: 1,
                error_code: 100,
                reason: r,
            }),
            SessionMsg::Establish(Establish {
                uuid: 9,
                request_timestamp: 2,
                session: n("BIN1"),
                access_key_id: n("bin1-dev"),
                next_seq_no: 1,
                keep_alive_interval: 1000,
                hmac_signature: sig,
            }),
            SessionMsg::EstablishmentAck(EstablishmentAck {
                uuid: 9,
                request_timestamp: 2,
                next_seq_no: 5,
                previous_seq_no: 4,
                previous_uuid: 3,
                keep_alive_interval: 1000,
            }),
            SessionMsg::EstablishmentReject(EstablishmentReject {
                uuid: 9,
                request_timestamp: 2,
                next_seq_no: 5,
                error_code: 205,
                reason: r,
            }),
            SessionMsg::Sequence(Sequence {
                uuid: 9,
                next_seq_no: 6,
                keep_alive_interval_lapsed: true,
            }),
            SessionMsg::Terminate(Terminate {
                uuid: 9,
                request_timestamp: 3,
                error_code: 0,
                reason: r,
            }),
            SessionMsg::RetransmitRequest(RetransmitRequest {
                uuid: 9,
                last_uuid: 3,
                request_timestamp: 4,
                from_seq_no: 1,
                msg_count: 2,
            }),
            SessionMsg::Retransmission(Retransmission {
                uuid: 9,
                last_uuid: 3,
                request_timestamp: 4,
                from_seq_no: 1,
                msg_count: 2,
            }),
            SessionMsg::RetransmitReject(RetransmitReject {
                uuid: 9,
                last_uuid: 3,
                request_timestamp: 4,
                error_code: 402,
                reason: r,
            }),
            SessionMsg::NotApplied(NotApplied {
                uuid: 9,
                from_seq_no: 2,
                msg_count: 3,
            }),
        ] {
            round_trip(msg);
        }
    }

    #[test]
    fn application_messages_are_not_session_messages_and_a_short_buffer_is_refused() {
        let mut buf = [0u8; 8];
        let seq = SessionMsg::Sequence(Sequence {
            uuid: 1,
            next_seq_no: 1,
            keep_alive_interval_lapsed: false,
        });
        assert!(encode_session(&seq, &mut buf).is_err());
        let mut order = [0u8; 256];
        crate::sbe::generated::NewOrderSingleEncoder::frame(&mut order).expect("fits");
        let n = crate::sbe::generated::NewOrderSingleEncoder::FRAME_LENGTH;
        let frame = order.get(..n).expect("length");
        let decoded = crate::sbe::decode(frame).expect("decodes");
        assert_eq!(session_msg(&decoded), None);
    }
}
