//! HOT — the binary order-entry codec: FIX Simple Binary Encoding 1.0 (little-endian) behind a
//! Simple Open Framing Header, as specified in `fix-specs/sbe/` (schema `portcullis-sbe.xml`,
//! rules `README.md`, layouts `LAYOUT.md`).
//!
//! Owns: framing ([`frame`]), header checks and dispatch ([`decode`]), and the generated
//! flyweights ([`generated`]): a decoder view and an encoder per message, reading and writing
//! fixed offsets of the caller's bytes. Runs on the hot thread, called by the FIXP session.
//!
//! Must never: allocate, copy a message, read the clock, or panic on any input. Every refusal is
//! an [`SbeError`] naming the problem, with a reason text and the FIXP error code to answer with.
//!
//! ```text
//!  receive buffer ──frame()──▶ one frame ──decode()──▶ Message::NewOrderSingle(view) ──▶ session
//!   [SOFH|header|block][SOFH|…     │                    │ getters read LE at fixed offsets
//!                                  ▼                    ▼
//!                     Frame::Invalid(SbeError)     SbeError (schema, version, template,
//!                     → Terminate, close           blockLength, length) → reject/Terminate
//!  encoders: XEncoder::frame(out) writes SOFH + header + a zeroed block; setters fill it.
//! ```
//!
//! # Versioning
//! A message header's `version` may be at most ours ([`SCHEMA_VERSION`]); its `blockLength` at
//! least the template's [`generated::block_length`]. A longer block (a sender on a newer minor
//! version, which appends fields) is read up to our length and the rest skipped. The frame must
//! end with the block: the schema has no repeating groups or variable-length data.
#![warn(clippy::indexing_slicing, clippy::panic)]

pub mod frame;
// rustfmt skips the generated files so the checked-in bytes are exactly the generator's output.
#[rustfmt::skip]
pub mod generated;
pub mod wire;

// The standard's worked example (fix-specs/sbe/golden/): only the golden-vector tests use it.
#[cfg(test)]
#[rustfmt::skip]
#[allow(dead_code)]
mod golden_generated;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use frame::{frame, Frame, DEFAULT_MAX_FRAME, MIN_FRAME};
pub use generated::{Message, SessionErrorCode, HEADER_LENGTH, SCHEMA_ID, SCHEMA_VERSION};
pub use wire::{SBE_LE_ENCODING, SOFH_LENGTH};

use crate::model;

/// Why bytes are not a message we accept, or why an encoder refused a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbeError {
    /// `len` bytes where at least `need` are required (a frame shorter than its headers, a
    /// block shorter than its message).
    Short { len: usize, need: usize },
    /// SOFH encoding type other than 0xEB50 (SBE 1.0 little-endian).
    WrongEncodingType { found: u16 },
    /// SOFH length above the configured maximum.
    Oversize { len: usize, max: usize },
    /// SOFH length smaller than SOFH + message header.
    LengthBelowHeaders { len: usize },
    /// The SOFH length is not the frame's length, or the frame does not end with the block.
    LengthMismatch { stated: usize, actual: usize },
    /// schemaId other than ours (73).
    WrongSchema { found: u16 },
    /// A schema version newer than ours.
    UnsupportedVersion { found: u16 },
    /// A templateId the schema does not have.
    UnknownTemplate { found: u16 },
    /// blockLength smaller than the template needs at the stated version.
    WrongBlockLength {
        template_id: u16,
        found: u16,
        need: u16,
    },
    /// Encoding: a value longer than its char array (at block offset `offset`).
    ValueTooLong { offset: u16, len: usize, max: usize },
    /// Encoding: the output buffer is smaller than the frame or block.
    BufferTooSmall { len: usize, need: usize },
}

impl SbeError {
    /// A short reason for a reject or Terminate (at most 64 bytes: the schema's `Text`).
    pub const fn reason(&self) -> &'static str {
        match self {
            SbeError::Short { .. } => "short frame: fewer bytes than the headers or the block",
            SbeError::WrongEncodingType { .. } => "SOFH encoding type is not 0xEB50 (SBE 1.0 LE)",
            SbeError::Oversize { .. } => "SOFH message length above the maximum",
            SbeError::LengthBelowHeaders { .. } => "SOFH message length below SOFH + SBE header",
            SbeError::LengthMismatch { .. } => "SOFH message length is not header + blockLength",
            SbeError::WrongSchema { .. } => "unknown schemaId (expected 73)",
            SbeError::UnsupportedVersion { .. } => "schema version newer than the gateway's",
            SbeError::UnknownTemplate { .. } => "unknown templateId",
            SbeError::WrongBlockLength { .. } => "blockLength smaller than the message needs",
            SbeError::ValueTooLong { .. } => "value longer than its field",
            SbeError::BufferTooSmall { .. } => "buffer too small for the message",
        }
    }

    /// The FIXP error code a reject or Terminate caused by this error carries.
    pub const fn error_code(&self) -> SessionErrorCode {
        match self {
            SbeError::Short { .. }
            | SbeError::WrongEncodingType { .. }
            | SbeError::Oversize { .. }
            | SbeError::LengthBelowHeaders { .. }
            | SbeError::ValueTooLong { .. }
            | SbeError::BufferTooSmall { .. } => SessionErrorCode::MalformedMessage,
            SbeError::LengthMismatch { .. } | SbeError::WrongBlockLength { .. } => {
                SessionErrorCode::WrongBlockLength
            }
            SbeError::WrongSchema { .. } | SbeError::UnsupportedVersion { .. } => {
                SessionErrorCode::SchemaMismatch
            }
            SbeError::UnknownTemplate { .. } => SessionErrorCode::UnknownTemplate,
        }
    }
}

impl core::fmt::Display for SbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({self:?})", self.reason())
    }
}

/// The message header in front of every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub block_length: u16,
    pub template_id: u16,
    pub schema_id: u16,
    pub version: u16,
}

impl Header {
    /// The header at the front of `msg` (the bytes after the SOFH).
    pub fn read(msg: &[u8]) -> Result<Header, SbeError> {
        if msg.len() < HEADER_LENGTH {
            return Err(short(msg.len(), HEADER_LENGTH));
        }
        Ok(Header {
            block_length: wire::u16_at(msg, 0),
            template_id: wire::u16_at(msg, 2),
            schema_id: wire::u16_at(msg, 4),
            version: wire::u16_at(msg, 6),
        })
    }
}

#[cold]
fn short(len: usize, need: usize) -> SbeError {
    SbeError::Short { len, need }
}

/// Decodes one whole frame as [`frame`] delimited it (SOFH included): checks the SOFH again
/// (length equal to the frame, encoding type), then as [`decode_message`].
pub fn decode(frame: &[u8]) -> Result<Message<'_>, SbeError> {
    let Some((sofh, msg)) = frame.split_first_chunk::<SOFH_LENGTH>() else {
        return Err(short(frame.len(), SOFH_LENGTH + HEADER_LENGTH));
    };
    let [l0, l1, l2, l3, e0, e1] = *sofh;
    let encoding = u16::from_be_bytes([e0, e1]);
    if encoding != SBE_LE_ENCODING {
        return Err(SbeError::WrongEncodingType { found: encoding });
    }
    let stated = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    if stated != frame.len() {
        return Err(SbeError::LengthMismatch {
            stated,
            actual: frame.len(),
        });
    }
    decode_message(msg)
}

/// Decodes the message header and block `msg` (the bytes after the SOFH, exactly one message):
/// schemaId ours, version at most ours, templateId known, blockLength at least the template's,
/// and nothing after the block.
pub fn decode_message(msg: &[u8]) -> Result<Message<'_>, SbeError> {
    let h = Header::read(msg)?;
    if h.schema_id != SCHEMA_ID {
        return Err(SbeError::WrongSchema { found: h.schema_id });
    }
    if h.version > SCHEMA_VERSION {
        return Err(SbeError::UnsupportedVersion { found: h.version });
    }
    let Some(need) = generated::block_length(h.template_id) else {
        return Err(SbeError::UnknownTemplate {
            found: h.template_id,
        });
    };
    if h.block_length < need {
        return Err(SbeError::WrongBlockLength {
            template_id: h.template_id,
            found: h.block_length,
            need,
        });
    }
    let end = HEADER_LENGTH + usize::from(h.block_length);
    if msg.len() != end {
        return Err(if msg.len() < end {
            short(msg.len(), end)
        } else {
            SbeError::LengthMismatch {
                stated: SOFH_LENGTH + end,
                actual: SOFH_LENGTH + msg.len(),
            }
        });
    }
    let block = msg.get(HEADER_LENGTH..).unwrap_or(&[]);
    Message::wrap(h.template_id, block)
}

// ------------------------------------------------------------- conversions to the order model
// Prices and quantities need none: Decimal64 (exponent -8) and Qty (exponent -4) carry
// model::Price and model::Qty mantissas as they are.

impl From<generated::Side> for model::Side {
    fn from(s: generated::Side) -> Self {
        match s {
            generated::Side::Buy => model::Side::Buy,
            generated::Side::Sell => model::Side::Sell,
            generated::Side::SellShort => model::Side::SellShort,
        }
    }
}

impl From<model::Side> for generated::Side {
    fn from(s: model::Side) -> Self {
        match s {
            model::Side::Buy => generated::Side::Buy,
            model::Side::Sell => generated::Side::Sell,
            model::Side::SellShort => generated::Side::SellShort,
        }
    }
}

impl From<generated::OrdType> for model::OrdType {
    fn from(t: generated::OrdType) -> Self {
        match t {
            generated::OrdType::Market => model::OrdType::Market,
            generated::OrdType::Limit => model::OrdType::Limit,
        }
    }
}

impl From<model::OrdType> for generated::OrdType {
    fn from(t: model::OrdType) -> Self {
        match t {
            model::OrdType::Market => generated::OrdType::Market,
            model::OrdType::Limit => generated::OrdType::Limit,
        }
    }
}

impl From<generated::TimeInForce> for model::TimeInForce {
    fn from(t: generated::TimeInForce) -> Self {
        match t {
            generated::TimeInForce::Day => model::TimeInForce::Day,
            generated::TimeInForce::GoodTillCancel => model::TimeInForce::GoodTillCancel,
            generated::TimeInForce::ImmediateOrCancel => model::TimeInForce::ImmediateOrCancel,
            generated::TimeInForce::FillOrKill => model::TimeInForce::FillOrKill,
        }
    }
}

impl From<model::TimeInForce> for generated::TimeInForce {
    fn from(t: model::TimeInForce) -> Self {
        match t {
            model::TimeInForce::Day => generated::TimeInForce::Day,
            model::TimeInForce::GoodTillCancel => generated::TimeInForce::GoodTillCancel,
            model::TimeInForce::ImmediateOrCancel => generated::TimeInForce::ImmediateOrCancel,
            model::TimeInForce::FillOrKill => generated::TimeInForce::FillOrKill,
        }
    }
}

impl From<model::OrdStatus> for generated::OrdStatus {
    fn from(s: model::OrdStatus) -> Self {
        match s {
            model::OrdStatus::New => generated::OrdStatus::New,
            model::OrdStatus::PartiallyFilled => generated::OrdStatus::PartiallyFilled,
            model::OrdStatus::Filled => generated::OrdStatus::Filled,
            model::OrdStatus::Canceled => generated::OrdStatus::Canceled,
            model::OrdStatus::Replaced => generated::OrdStatus::Replaced,
            model::OrdStatus::PendingCancel => generated::OrdStatus::PendingCancel,
            model::OrdStatus::Rejected => generated::OrdStatus::Rejected,
            model::OrdStatus::PendingNew => generated::OrdStatus::PendingNew,
            model::OrdStatus::Expired => generated::OrdStatus::Expired,
            model::OrdStatus::PendingReplace => generated::OrdStatus::PendingReplace,
        }
    }
}

impl From<model::ExecType> for generated::ExecType {
    fn from(t: model::ExecType) -> Self {
        match t {
            model::ExecType::New => generated::ExecType::New,
            model::ExecType::Canceled => generated::ExecType::Canceled,
            model::ExecType::Replaced => generated::ExecType::Replaced,
            model::ExecType::PendingCancel => generated::ExecType::PendingCancel,
            model::ExecType::Rejected => generated::ExecType::Rejected,
            model::ExecType::PendingNew => generated::ExecType::PendingNew,
            model::ExecType::Expired => generated::ExecType::Expired,
            model::ExecType::Trade => generated::ExecType::Trade,
            model::ExecType::PendingReplace => generated::ExecType::PendingReplace,
            model::ExecType::OrderStatus => generated::ExecType::OrderStatus,
        }
    }
}
