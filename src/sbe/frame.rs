//! HOT — finds message boundaries in a receive buffer of SBE messages, each behind a Simple Open
//! Framing Header (SOFH): message length (u32, big-endian, counting the 6 SOFH bytes too) and
//! encoding type (u16, big-endian; 0xEB50 = SBE 1.0 little-endian).
//!
//! Unlike FIX, a binary stream cannot resynchronise after a bad header: there is no start marker
//! to look for. So every bad header is final ([`Frame::Invalid`]): the session answers with a
//! Terminate naming the problem ([`SbeError::reason`]) and closes the connection.
//!
//! Nothing here allocates or copies; results are lengths into the caller's buffer. No input
//! panics (`fuzzing::sbe_decode` and the property tests hold it to that).

use super::generated::HEADER_LENGTH;
use super::wire::{SBE_LE_ENCODING, SOFH_LENGTH};
use super::SbeError;

/// The default largest frame accepted, SOFH included: the largest message of the schema is
/// 6 + 8 + 248 = 262 bytes, and 4096 leaves room for later versions' longer blocks while a
/// hostile length never makes a session buffer more than a page of one message.
pub const DEFAULT_MAX_FRAME: usize = 4096;
/// The smallest frame that can hold a message: SOFH + message header.
pub const MIN_FRAME: usize = SOFH_LENGTH + HEADER_LENGTH;

/// What the front of a receive buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame of this many bytes (SOFH included) is at the front of the buffer.
    Complete(usize),
    /// Not enough bytes yet: read more and try again.
    Incomplete,
    /// The SOFH is unacceptable: wrong encoding type, a length below the headers or above the
    /// maximum. The stream cannot be resynchronised; the caller terminates the session.
    Invalid(SbeError),
}

/// Frames the start of `buf`; `max_frame` bounds the SOFH length (SOFH included).
///
/// The header is judged as soon as its 6 bytes are in, so an oversize or foreign frame is
/// refused before any of its body is buffered.
#[inline]
pub fn frame(buf: &[u8], max_frame: usize) -> Frame {
    let Some(sofh) = buf.first_chunk::<SOFH_LENGTH>() else {
        return Frame::Incomplete;
    };
    let [l0, l1, l2, l3, e0, e1] = *sofh;
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    let encoding = u16::from_be_bytes([e0, e1]);
    if encoding != SBE_LE_ENCODING {
        return Frame::Invalid(SbeError::WrongEncodingType { found: encoding });
    }
    if len < MIN_FRAME {
        return Frame::Invalid(SbeError::LengthBelowHeaders { len });
    }
    if len > max_frame {
        return Frame::Invalid(SbeError::Oversize {
            len,
            max: max_frame,
        });
    }
    if buf.len() < len {
        return Frame::Incomplete;
    }
    Frame::Complete(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sofh(len: u32, encoding: u16) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&encoding.to_be_bytes());
        v
    }

    #[test]
    fn a_whole_frame_is_complete_and_the_rest_stays() {
        let mut b = sofh(20, 0xEB50);
        b.resize(20, 7);
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(frame(&b, DEFAULT_MAX_FRAME), Frame::Complete(20));
    }

    #[test]
    fn short_buffers_are_incomplete() {
        assert_eq!(frame(&[], DEFAULT_MAX_FRAME), Frame::Incomplete);
        assert_eq!(
            frame(&[0, 0, 0, 20, 0xEB], DEFAULT_MAX_FRAME),
            Frame::Incomplete
        );
        let mut b = sofh(20, 0xEB50);
        b.resize(19, 0);
        assert_eq!(frame(&b, DEFAULT_MAX_FRAME), Frame::Incomplete);
    }

    #[test]
    fn wrong_encoding_type_is_invalid() {
        // 0x50EB: a little-endian SOFH by mistake; 0x5BE0: SBE big-endian, which we do not speak.
        for enc in [0x50EB, 0x5BE0, 0xF000, 0] {
            assert_eq!(
                frame(&sofh(20, enc), DEFAULT_MAX_FRAME),
                Frame::Invalid(SbeError::WrongEncodingType { found: enc })
            );
        }
    }

    #[test]
    fn a_length_below_the_headers_is_invalid() {
        for len in [0, 6, 13] {
            assert_eq!(
                frame(&sofh(len, 0xEB50), DEFAULT_MAX_FRAME),
                Frame::Invalid(SbeError::LengthBelowHeaders { len: len as usize })
            );
        }
        let mut b = sofh(14, 0xEB50);
        b.resize(14, 0);
        assert_eq!(frame(&b, DEFAULT_MAX_FRAME), Frame::Complete(14));
    }

    #[test]
    fn oversize_is_invalid_before_the_body_arrives() {
        assert_eq!(
            frame(&sofh(4097, 0xEB50), DEFAULT_MAX_FRAME),
            Frame::Invalid(SbeError::Oversize {
                len: 4097,
                max: 4096
            })
        );
        assert_eq!(
            frame(&sofh(u32::MAX, 0xEB50), 64),
            Frame::Invalid(SbeError::Oversize {
                len: u32::MAX as usize,
                max: 64
            })
        );
        assert_eq!(
            frame(&sofh(4096, 0xEB50), DEFAULT_MAX_FRAME),
            Frame::Incomplete
        );
    }
}
