//! HOT — finds message boundaries in a receive buffer: BeginString <8>, BodyLength <9>,
//! CheckSum <10>.
//!
//! Framing follows the behaviour of the mature engines (QuickFIX and its ports) because clients
//! and certification scripts depend on it:
//! - bytes before the next `8=` are garbage and are skipped;
//! - BodyLength is trusted to find where to look for the trailer: we wait until that many bytes
//!   have arrived, then take the first `<SOH>10=` at or after the declared end. A BodyLength that
//!   is too short or too long therefore yields one garbled message (too long may swallow the next
//!   message too, exactly as those engines do), and the stream stays in step;
//! - a message whose BodyLength or CheckSum does not match is *garbled*: the session ignores it
//!   without consuming a sequence number, as the session-layer spec requires.
//!
//! Nothing here allocates or copies; results are offsets into the caller's buffer.

use super::checksum::checksum;

const SOH: u8 = 0x01;

/// What the front of a receive buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet: read more and try again.
    Incomplete,
    /// `len` bytes of garbage (no `8=` start) to drop before trying again.
    Skip { len: usize },
    /// A whole message of `len` bytes; `body_length_ok`/`checksum_ok` say whether it is
    /// well formed. A message failing either is garbled and must be ignored.
    Message {
        len: usize,
        body_length_ok: bool,
        checksum_ok: bool,
    },
    /// BodyLength (or the distance to the trailer) exceeds the configured maximum message size:
    /// the peer is broken or hostile; the caller disconnects.
    TooLarge,
}

/// Finds the first message at the start of `buf`. `max_msg_len` bounds the message size.
pub fn frame(buf: &[u8], max_msg_len: usize) -> Frame {
    if buf.len() < 2 {
        return Frame::Incomplete;
    }
    if !buf.starts_with(b"8=") {
        return match find(buf, b"8=", 1) {
            Some(p) => Frame::Skip { len: p },
            // Keep a trailing '8' that may be the start of the next message.
            None if buf.last() == Some(&b'8') => Frame::Skip { len: buf.len() - 1 },
            None => Frame::Skip { len: buf.len() },
        };
    }
    // "8=" BeginString SOH
    let Some(bs_end) = memchr(SOH, buf, 2) else {
        return if buf.len() > 32 {
            skip_to_next_start(buf)
        } else {
            Frame::Incomplete
        };
    };
    // "9=" digits SOH
    let len_start = bs_end + 1;
    if buf.len() < len_start + 2 {
        return Frame::Incomplete;
    }
    if &buf[len_start..len_start + 2] != b"9=" {
        return skip_to_next_start(buf);
    }
    let mut body_len: usize = 0;
    let mut i = len_start + 2;
    loop {
        let Some(&b) = buf.get(i) else {
            return Frame::Incomplete;
        };
        match b {
            b'0'..=b'9' if i - (len_start + 2) < 9 => {
                body_len = body_len * 10 + usize::from(b - b'0');
            }
            SOH if i > len_start + 2 => break,
            _ => return skip_to_next_start(buf),
        }
        i += 1;
    }
    let body_start = i + 1;
    if body_start + body_len > max_msg_len {
        return Frame::TooLarge;
    }
    let declared_end = body_start + body_len; // index of the SOH-terminated "10=" field
    if buf.len() < declared_end + 7 {
        return Frame::Incomplete;
    }
    // The trailer starts with "10=" right at the declared end; otherwise look for the first
    // "<SOH>10=" from the byte before it, as the mature engines do.
    let trailer = if buf[declared_end..].starts_with(b"10=") && buf[declared_end - 1] == SOH {
        declared_end
    } else {
        match find(
            buf,
            b"\x0110=",
            declared_end.saturating_sub(1).max(body_start - 1),
        ) {
            Some(p) => p + 1,
            None if buf.len() > max_msg_len + 8 => return Frame::TooLarge,
            None => return Frame::Incomplete,
        }
    };
    if trailer > max_msg_len {
        return Frame::TooLarge; // a trailer exists, but beyond the size we accept
    }
    let Some(end) = memchr(SOH, buf, trailer + 3) else {
        return if buf.len() > max_msg_len + 8 {
            Frame::TooLarge
        } else {
            Frame::Incomplete
        };
    };
    let len = end + 1;
    let body_length_ok = trailer == declared_end;
    let digits = &buf[trailer + 3..end];
    let checksum_ok = digits.len() == 3
        && digits.iter().all(u8::is_ascii_digit)
        && u32::from(checksum(&buf[..trailer]))
            == u32::from(digits[0] - b'0') * 100
                + u32::from(digits[1] - b'0') * 10
                + u32::from(digits[2] - b'0');
    Frame::Message {
        len,
        body_length_ok,
        checksum_ok,
    }
}

#[cold]
fn skip_to_next_start(buf: &[u8]) -> Frame {
    match find(buf, b"8=", 1) {
        Some(p) => Frame::Skip { len: p },
        None => Frame::Skip { len: buf.len() },
    }
}

#[inline]
fn memchr(needle: u8, hay: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .iter()
        .position(|b| *b == needle)
        .map(|p| p + from)
}

#[inline]
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let tail = hay.get(from..)?;
    tail.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::{fix_message, with_trailer};

    #[test]
    fn frames_a_whole_message() {
        let msg = with_trailer(b"8=FIX.4.4\x019=5\x0135=0\x01");
        assert_eq!(
            frame(&msg, 4096),
            Frame::Message {
                len: msg.len(),
                body_length_ok: true,
                checksum_ok: true
            }
        );
        for cut in 0..msg.len() {
            assert_eq!(frame(&msg[..cut], 4096), Frame::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn skips_garbage_before_a_message() {
        assert_eq!(frame(b"xx8=FIX", 4096), Frame::Skip { len: 2 });
        assert_eq!(frame(b"garbage", 4096), Frame::Skip { len: 7 });
        assert_eq!(frame(b"garbag8", 4096), Frame::Skip { len: 6 });
    }

    #[test]
    fn flags_bad_checksum() {
        let mut msg = with_trailer(b"8=FIX.4.4\x019=5\x0135=0\x01");
        let n = msg.len();
        msg[n - 2] = if msg[n - 2] == b'9' { b'0' } else { b'9' };
        assert!(matches!(
            frame(&msg, 4096),
            Frame::Message {
                checksum_ok: false,
                ..
            }
        ));
    }

    #[test]
    fn short_body_length_yields_one_garbled_message() {
        let msg = fix_message(b"8=FIX.4.4\x019=3\x0135=0\x0134=2\x01", false);
        match frame(&msg, 4096) {
            Frame::Message {
                len,
                body_length_ok,
                ..
            } => {
                assert_eq!(len, msg.len());
                assert!(!body_length_ok);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_body_length_waits_then_swallows_the_next_message() {
        let first = fix_message(b"8=FIX.4.4\x019=40\x0135=0\x0134=2\x01", false);
        assert_eq!(frame(&first, 4096), Frame::Incomplete);
        let second = with_trailer(b"8=FIX.4.4\x019=12\x0135=0\x0134=3\x01");
        let both = [first.clone(), second.clone()].concat();
        match frame(&both, 4096) {
            Frame::Message {
                len,
                body_length_ok,
                ..
            } => {
                assert_eq!(len, both.len());
                assert!(!body_length_ok);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_huge_body_length() {
        assert_eq!(
            frame(b"8=FIX.4.4\x019=999999999\x01", 4096),
            Frame::TooLarge
        );
    }

    #[test]
    fn non_digit_body_length_is_skipped() {
        assert_eq!(
            frame(b"8=FIX.4.4\x019=1x\x0135=0\x01", 4096),
            Frame::Skip { len: 20 }
        );
    }
}
