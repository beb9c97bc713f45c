//! HOT — the FIX tag=value codec, sans-IO: framing (BodyLength, CheckSum), a borrowed field view,
//! and an encoder that writes into the caller's buffer.
//!
//! Owns no state and no thread; never allocates, never reads the clock, never does I/O.

pub mod checksum;
pub mod decode;
pub mod dict;
pub mod encode;
pub mod frame;
pub mod generated;
pub mod routing;
pub mod tags;
pub mod validate;

pub use decode::{DecodeError, Field, Message, MsgType, ValueError};
pub use encode::{TimePrecision, Writer};
pub use frame::{frame, Frame};
pub use routing::ReplyRouting;

/// FIX versions we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BeginString {
    Fix42,
    Fix44,
}

impl BeginString {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            BeginString::Fix42 => b"FIX.4.2",
            BeginString::Fix44 => b"FIX.4.4",
        }
    }
    pub fn parse(v: &[u8]) -> Option<BeginString> {
        match v {
            b"FIX.4.2" => Some(BeginString::Fix42),
            b"FIX.4.4" => Some(BeginString::Fix44),
            _ => None,
        }
    }
}

/// Helpers for tests and fuzzing that build messages with correct BodyLength and CheckSum.
#[doc(hidden)]
pub mod testing {
    use super::checksum::{checksum, checksum_digits};

    /// Takes `8=..<SOH>9=..<SOH>35=..<SOH>...` with any BodyLength and returns it with the
    /// BodyLength recomputed and `10=NNN<SOH>` appended.
    pub fn with_trailer(msg: &[u8]) -> Vec<u8> {
        fix_message(msg, true)
    }

    /// Like [`with_trailer`]; `fix_length = false` keeps the BodyLength given.
    pub fn fix_message(msg: &[u8], fix_length: bool) -> Vec<u8> {
        let mut out = msg.to_vec();
        if fix_length {
            let soh =
                |v: &[u8], from: usize| v[from..].iter().position(|b| *b == 1).map(|p| p + from);
            if let Some(a) = soh(msg, 0) {
                if msg[a + 1..].starts_with(b"9=") {
                    if let Some(b) = soh(msg, a + 1) {
                        let body = &msg[b + 1..];
                        let mut head = msg[..a + 1].to_vec();
                        head.extend_from_slice(format!("9={}\x01", body.len()).as_bytes());
                        head.extend_from_slice(body);
                        out = head;
                    }
                }
            }
        }
        let sum = checksum_digits(checksum(&out));
        out.extend_from_slice(b"10=");
        out.extend_from_slice(&sum);
        out.push(1);
        out
    }
}
