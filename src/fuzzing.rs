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

/// A parsed decimal written back and parsed again must give the same value.
fn reparse(v: i64, decimals: u32) -> Option<i64> {
    let mut out = [0u8; 32];
    let n = write_decimal(&mut out, v, decimals);
    parse_decimal(out.get(..n)?, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

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
    fn empty_and_tiny_inputs() {
        for data in [&b""[..], b"8", b"8=", b"8=\x01", b"8=\x019=\x01", b"\x01"] {
            fix_frame(data);
            fix_decode(data);
        }
    }
}
