//! Fuzz entry points for the targets in `tools/fuzz/` (one one-liner target per function here).
//!
//! Each function takes arbitrary bytes, drives the code under test the way the engine will, and
//! panics only when an invariant is broken; a panic is what the fuzzer reports as a crash. The
//! functions live in the library (not in `tools/fuzz/`) so that crashes can be replayed as ordinary
//! tests without a nightly toolchain.

use std::hint::black_box;

use crate::fix::decode::parse_decimal;
use crate::fix::encode::write_decimal;
use crate::fix::{frame, Frame, Message};
use crate::model::{PRICE_DECIMALS, QTY_DECIMALS};

/// The configuration's minimum `gateway.max_message_bytes`: small enough that the fuzzer reaches
/// the size limits with its default 4 KiB inputs.
pub const SMALL_MAX_MSG_LEN: usize = 256;
/// The configuration's default `gateway.max_message_bytes`.
pub const DEFAULT_MAX_MSG_LEN: usize = 8192;

/// Every message `frame` delimits in `data`, consumed as the engine consumes a receive buffer:
/// `Skip` and `Message` drop their bytes, `Incomplete` waits for more (here: stops), `TooLarge`
/// disconnects (here: stops). Returns the messages with their flags.
///
/// Panics if a reported length is zero or beyond the buffer, or if a well-formed message exceeds
/// `max_msg_len` plus its trailer.
pub fn frames(data: &[u8], max_msg_len: usize) -> Vec<(&[u8], bool, bool)> {
    let mut out = Vec::new();
    let mut rest = data;
    // Every step consumes at least one byte (asserted), so this bound is never reached unless
    // `frame` stops making progress, which the final assertion reports.
    for _ in 0..=data.len() {
        match frame(rest, max_msg_len) {
            Frame::Incomplete | Frame::TooLarge => return out,
            Frame::Skip { len } => {
                assert!(
                    len > 0 && len <= rest.len(),
                    "Skip {{ len: {len} }} for a buffer of {}",
                    rest.len()
                );
                rest = &rest[len..];
            }
            Frame::Message {
                len,
                body_length_ok,
                checksum_ok,
            } => {
                assert!(
                    len > 0 && len <= rest.len(),
                    "Message {{ len: {len} }} for a buffer of {}",
                    rest.len()
                );
                assert!(rest.starts_with(b"8="), "a message must start with 8=");
                if body_length_ok && checksum_ok {
                    // BodyLength is bounded by max_msg_len and the trailer is `10=NNN<SOH>`.
                    assert!(
                        len <= max_msg_len + 7,
                        "well-formed message of {len} bytes exceeds max {max_msg_len}"
                    );
                    assert!(
                        rest[..len].ends_with(b"\x01") && len >= 7,
                        "well-formed message without a trailer"
                    );
                }
                out.push((&rest[..len], body_length_ok, checksum_ok));
                rest = &rest[len..];
            }
        }
        if rest.is_empty() {
            return out;
        }
    }
    panic!("frame made no progress on {} bytes", rest.len());
}

/// Target `fix_frame`: framing arbitrary bytes never panics, never reports a length beyond the
/// buffer and always makes progress, with the smallest and the default message size limit.
pub fn fix_frame(data: &[u8]) {
    black_box(frames(data, SMALL_MAX_MSG_LEN));
    black_box(frames(data, DEFAULT_MAX_MSG_LEN));
}

/// Target `fix_decode`: frames `data`, decodes every framed message (garbled ones too: decoding
/// must be total) and the whole input as one message, and reads every field through every
/// accessor.
pub fn fix_decode(data: &[u8]) {
    for (msg, _, _) in frames(data, SMALL_MAX_MSG_LEN) {
        decode_and_read(msg);
    }
    decode_and_read(data);
}

fn decode_and_read(bytes: &[u8]) {
    let Ok(m) = Message::decode(bytes) else {
        return;
    };
    black_box((
        m.msg_type(),
        m.msg_type().is_admin(),
        m.msg_type_bytes(),
        m.begin_string(),
        m.seq_num(),
    ));
    assert!(m.fields().len() >= 4, "header and trailer are required");
    for f in m.fields() {
        assert!(
            f.start <= f.end && f.end as usize <= bytes.len(),
            "field {f:?} outside a message of {} bytes",
            bytes.len()
        );
        let v = m.value(f);
        assert!(!v.contains(&1), "a value never contains SOH");
        let tag = f.tag;
        black_box((m.get(tag), m.require(tag).ok()));
        black_box(m.uint(tag).ok());
        // The accessors read the first occurrence of the tag, not necessarily `v`.
        black_box(m.timestamp(tag).ok());
        black_box(m.flag(tag).ok());
        if let Ok(Some(c)) = m.char(tag) {
            assert_eq!(m.get(tag), Some(&[c][..]));
        }
        if let Ok(Some(p)) = m.price(tag) {
            assert_eq!(reparse(p.0, PRICE_DECIMALS), Some(p.0), "price {p:?}");
        }
        if let Ok(Some(q)) = m.qty(tag) {
            assert_eq!(reparse(q.0, QTY_DECIMALS), Some(q.0), "qty {q:?}");
        }
    }
}

/// Drives a logged-on FIX 4.4 acceptor session with arbitrary messages. `data` is split at
/// 0xFF bytes; each piece (with `|` read as SOH) becomes the body of a message after a standard
/// header whose MsgSeqNum counts up, some pieces are sent raw (garbled framing), and the first
/// byte of a piece may move the clock. Panics if the session panics, or if anything it writes is
/// not a well-formed FIX message.
pub fn session(data: &[u8]) {
    use crate::fix::testing::{fix_message, with_trailer};
    use crate::model::{CompId, Nanos};
    use crate::session::{MemoryStore, OutBuf, Session, SessionConfig};

    let cfg = SessionConfig {
        our_comp_id: CompId::new(b"ISLD").unwrap_or(CompId::EMPTY),
        their_comp_id: CompId::new(b"TW").unwrap_or(CompId::EMPTY),
        check_sending_time: false,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, MemoryStore::new());
    let mut out = OutBuf::with_capacity(1 << 20);
    let mut now = Nanos::from_secs(1_700_000_000);
    let mut scratch = vec![0u8; 1 << 16];
    let mut feed = |s: &mut Session<MemoryStore>, bytes: &[u8], now: Nanos, out: &mut OutBuf| {
        for (msg, body_ok, sum_ok) in frames(bytes, DEFAULT_MAX_MSG_LEN) {
            match Message::decode(msg) {
                Ok(m) if body_ok && sum_ok => {
                    black_box(s.on_message(&m, now, out));
                    while let Some(n) = s.take_queued(&mut scratch) {
                        if let Some(Ok(q)) = scratch.get(..n).map(Message::decode) {
                            black_box(s.on_message(&q, now, out));
                        }
                    }
                }
                _ => s.on_garbled(),
            }
        }
    };
    let logon = with_trailer(b"8=FIX.4.4\x019=0\x0135=A\x0134=1\x0149=TW\x0152=20231114-22:13:20\x0156=ISLD\x0198=0\x01108=30\x01");
    feed(&mut s, &logon, now, &mut out);
    let mut seq = 2u64;
    for piece in data.split(|b| *b == 0xff) {
        let (first, body) = piece.split_first().unwrap_or((&0, &[]));
        now = now.add(Nanos::from_millis(u64::from(*first) * 100));
        let body: Vec<u8> = body
            .iter()
            .map(|b| if *b == b'|' { 1 } else { *b })
            .collect();
        let bytes = if first % 7 == 0 {
            body // raw: framing and all from the fuzzer
        } else {
            let mut m = b"8=FIX.4.4\x019=0\x01".to_vec();
            let split = body.iter().position(|b| *b == 1).unwrap_or(body.len());
            let (msg_type, rest) = body.split_at(split);
            m.extend_from_slice(b"35=");
            m.extend_from_slice(msg_type);
            m.extend_from_slice(
                format!("\x0134={seq}\x0149=TW\x0152=20231114-22:13:20\x0156=ISLD").as_bytes(),
            );
            m.extend_from_slice(rest);
            m.push(1);
            seq += if first % 5 == 0 { 2 } else { 1 };
            fix_message(&m, first % 11 != 0)
        };
        feed(&mut s, &bytes, now, &mut out);
        black_box(s.on_timer(now, &mut out));
        // Everything the session wrote must frame as whole, well-formed messages.
        for (msg, body_ok, sum_ok) in frames(out.pending(), 1 << 20) {
            assert!(
                body_ok && sum_ok,
                "session wrote a malformed message: {:?}",
                String::from_utf8_lossy(msg)
            );
            assert!(
                Message::decode(msg).is_ok(),
                "session wrote an undecodable message"
            );
        }
        out.clear();
    }
}

/// A parsed decimal written back and parsed again must give the same value.
fn reparse(v: i64, decimals: u32) -> Option<i64> {
    let mut out = [0u8; 32];
    let n = write_decimal(&mut out, v, decimals);
    parse_decimal(out.get(..n)?, decimals)
}

/// Target `cert_subject`: a configured mTLS `client_cert_subject` (quotes, `\` escapes, `+`
/// multi-valued RDNs) parses or is refused with an error, never panics; parsing is
/// deterministic (the same text gives the same subject).
pub fn cert_subject(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = crate::net::tls::Subject::parse(text);
    let again = crate::net::tls::Subject::parse(text);
    assert_eq!(first.is_ok(), again.is_ok());
    if let (Ok(a), Ok(b)) = (first, again) {
        assert!(a == b, "one text, two subjects");
    }
}

/// The FIXP session state machine under arbitrary connects, messages, timer ticks and sends
/// ([`crate::fixp::fuzz::session`] documents the input format and the invariants).
pub use crate::fixp::fuzz::session as fixp_session;
/// The smallest SBE frame limit the fuzzer uses: below the largest message (262 bytes), so the
/// oversize refusal is reached with small inputs.
pub const SBE_SMALL_MAX_FRAME: usize = 128;

/// Target `sbe_decode`: frames `data` as an SBE receive buffer (each complete frame consumed,
/// `Incomplete`/`Invalid` end the stream as they end a session), decodes every frame and reads
/// every field of what decodes; then decodes the whole input as one frame and as one message.
///
/// Panics if a frame length is below the headers or beyond the buffer, if a decoded message has
/// a template the schema lacks, or if the framer and `decode` disagree about the SOFH.
pub fn sbe_decode(data: &[u8]) {
    use crate::sbe;
    for max in [SBE_SMALL_MAX_FRAME, sbe::DEFAULT_MAX_FRAME] {
        let mut rest = data;
        while let sbe::Frame::Complete(len) = sbe::frame(rest, max) {
            assert!(
                (sbe::MIN_FRAME..=max).contains(&len) && len <= rest.len(),
                "frame of {len} bytes in a buffer of {} (max {max})",
                rest.len()
            );
            let (one, tail) = rest.split_at(len);
            match sbe::decode(one) {
                Ok(m) => {
                    assert!(sbe::generated::TEMPLATE_IDS.contains(&m.template_id()));
                    black_box(m.read_all_fields());
                }
                Err(e) => {
                    assert!(
                        !matches!(
                            e,
                            sbe::SbeError::WrongEncodingType { .. }
                                | sbe::SbeError::LengthBelowHeaders { .. }
                        ),
                        "framed, then refused as {e:?}"
                    );
                    black_box((e.reason(), e.error_code()));
                }
            }
            rest = tail;
        }
    }
    if let Ok(m) = sbe::decode(data) {
        black_box(m.read_all_fields());
    }
    if let Ok(m) = sbe::decode_message(data) {
        black_box(m.read_all_fields());
    }
}

/// The audit trail's reading of the messages the gateway sends and receives
/// (`crate::trail::messages`): the first byte chooses FIX or SBE, inbound or outbound, client
/// session or venue link; the rest is what the ring carried (one or more messages, or garbage).
/// Every message found is rendered as its trail record.
///
/// Panics if a secret field's value (Password, NewPassword, RawData, EncryptedPassword,
/// EncryptedNewPassword, Signature, SecureData) reaches the record, or if the rendered FIX message has a different
/// number of fields than the bytes it came from.
pub fn trail_message(data: &[u8]) {
    use crate::handoff::messages::{message_end, Meta};
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let meta = Meta {
        at: crate::model::Nanos(1),
        session: (mode & 4 != 0).then_some(crate::model::SessionId(u32::from(mode >> 4))),
        venue: (mode & 8 != 0).then_some(crate::model::VenueId(u16::from(mode >> 4))),
        outbound: mode & 2 != 0,
        sbe: mode & 1 != 0,
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
    };
    let names = ["S".to_string()];
    let mut rest = body;
    while !rest.is_empty() {
        let end = message_end(rest, meta.sbe).unwrap_or(rest.len());
        assert!(
            end > 0 && end <= rest.len(),
            "message end {end} of {}",
            rest.len()
        );
        let (msg, tail) = rest.split_at(end);
        let r = crate::trail::messages::render(&meta, msg, &names, &names);
        let text = r.detail("message").unwrap_or_default();
        if !meta.sbe {
            let fields = msg.strip_suffix(&[1u8]).unwrap_or(msg).split(|b| *b == 1);
            assert_eq!(
                text.split('|').count(),
                fields.count(),
                "fields of {msg:?} in {text:?}"
            );
            let mut secret = false;
            for f in text.split('|') {
                let tag = f
                    .split_once('=')
                    .filter(|(t, _)| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|(t, v)| Some((t.parse::<i32>().ok()?, v)));
                match tag {
                    Some((t, v)) => {
                        secret = crate::trail::messages::SECRET.contains(&t);
                        assert!(!secret || v == "***", "tag {t} shown: {text:?}");
                    }
                    None => assert!(!secret || f == "***", "secret continued: {text:?}"),
                }
            }
        }
        black_box(r);
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

    #[test]
    fn session_entry_point_survives_samples() {
        session(b"");
        session(b"\x01D|11=A|55=X|54=1|38=1|40=2|44=1\xff\x002|7=1|16=0\xff\x054|36=1\xff\x0e8=FIX.4.4|9=5|35=0|10=000|\xff\x63");
        session(b"\x01A|98=0|108=30|141=Y\xff\x015\xff\x01q|11=M|530=7");
    }

    #[test]
    fn frames_a_stream_of_messages_and_garbage() {
        let a = with_trailer(b"8=FIX.4.4\x019=0\x0135=0\x0134=1\x01");
        let b = with_trailer(b"8=FIX.4.4\x019=0\x0135=D\x0111=X\x0138=100\x0144=1.5\x01");
        let data = [&b"junk"[..], &a, b"\x01\x01", &b].concat();
        let got = frames(&data, SMALL_MAX_MSG_LEN);
        assert_eq!(got, vec![(&a[..], true, true), (&b[..], true, true)]);
        fix_frame(&data);
        fix_decode(&data);
    }

    #[test]
    fn sbe_entry_point_survives_samples() {
        let mut nos = [0u8; 300];
        let n = crate::sbe::generated::NewOrderSingleEncoder::FRAME_LENGTH;
        crate::sbe::generated::NewOrderSingleEncoder::frame(&mut nos).unwrap();
        sbe_decode(&nos[..n]);
        sbe_decode(&[&nos[..n], &nos[..n], &nos[..20]].concat());
        for data in [&b""[..], b"\0\0\0\x0e\xeb\x50", b"\xff\xff\xff\xff\xeb\x50"] {
            sbe_decode(data);
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for data in [&b""[..], b"8", b"8=", b"8=\x01", b"8=\x019=\x01", b"\x01"] {
            fix_frame(data);
            fix_decode(data);
        }
    }
}
