//! HOT — a borrowed view of one framed FIX message: (tag, value range) pairs in an `ArrayVec`.
//!
//! Decoding never copies or allocates. It separates two kinds of trouble, because the session
//! layer answers them differently:
//! - [`DecodeError`]: the bytes are not `tag=value<SOH>` at all (a tag that is not a number, a
//!   field without `=`, a header out of order). Such a message is *garbled* and is ignored.
//! - well-formed fields that are semantically wrong (unknown tag, empty value, bad number) decode
//!   fine; the session layer rejects them with the right SessionRejectReason.

use arrayvec::ArrayVec;

use super::tags;
use crate::model::{Nanos, Price, Qty, PRICE_DECIMALS, QTY_DECIMALS};

const SOH: u8 = 0x01;

/// Most fields one message may carry; more is refused as [`DecodeError::TooManyFields`].
pub const MAX_FIELDS: usize = 192;

/// One `tag=value` pair. `start..end` is the value's byte range in the message.
///
/// The tag is signed because the session layer must be able to reject `-1=x` by number (the FIX
/// certification scripts send it) rather than treat it as garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub tag: i32,
    pub start: u32,
    pub end: u32,
}

/// Why bytes could not be read as a FIX message at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Byte offset of a field whose tag is empty or not a number.
    BadTag { offset: u32 },
    /// Byte offset of a field with no `=` before the next SOH / the end.
    MissingEquals { offset: u32 },
    /// The message does not start with BeginString <8>, BodyLength <9>, MsgType <35>.
    HeaderOutOfOrder,
    /// More than [`MAX_FIELDS`] fields.
    TooManyFields,
    /// The message does not end with CheckSum <10>.
    MissingTrailer,
}

/// MsgType <35> packed into an integer (up to 8 ASCII bytes, big-endian) so dispatch is a
/// `match` on constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MsgType(pub u64);

impl MsgType {
    /// Packs `bytes`; values longer than 8 bytes become [`MsgType::INVALID`].
    pub const fn pack(bytes: &[u8]) -> MsgType {
        if bytes.is_empty() || bytes.len() > 8 {
            return MsgType::INVALID;
        }
        let mut v: u64 = 0;
        let mut i = 0;
        while i < bytes.len() {
            v = (v << 8) | bytes[i] as u64;
            i += 1;
        }
        MsgType(v)
    }
    pub const INVALID: MsgType = MsgType(u64::MAX);
    pub const HEARTBEAT: MsgType = MsgType::pack(b"0");
    pub const TEST_REQUEST: MsgType = MsgType::pack(b"1");
    pub const RESEND_REQUEST: MsgType = MsgType::pack(b"2");
    pub const REJECT: MsgType = MsgType::pack(b"3");
    pub const SEQUENCE_RESET: MsgType = MsgType::pack(b"4");
    pub const LOGOUT: MsgType = MsgType::pack(b"5");
    pub const EXECUTION_REPORT: MsgType = MsgType::pack(b"8");
    pub const ORDER_CANCEL_REJECT: MsgType = MsgType::pack(b"9");
    pub const LOGON: MsgType = MsgType::pack(b"A");
    pub const NEW_ORDER_SINGLE: MsgType = MsgType::pack(b"D");
    pub const ORDER_CANCEL_REQUEST: MsgType = MsgType::pack(b"F");
    pub const ORDER_CANCEL_REPLACE_REQUEST: MsgType = MsgType::pack(b"G");
    pub const ORDER_STATUS_REQUEST: MsgType = MsgType::pack(b"H");
    pub const BUSINESS_MESSAGE_REJECT: MsgType = MsgType::pack(b"j");
    pub const ORDER_MASS_CANCEL_REQUEST: MsgType = MsgType::pack(b"q");
    pub const ORDER_MASS_CANCEL_REPORT: MsgType = MsgType::pack(b"r");

    /// Session-level (admin) message types, which are never resent (gap-filled instead).
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            MsgType::HEARTBEAT
                | MsgType::TEST_REQUEST
                | MsgType::RESEND_REQUEST
                | MsgType::REJECT
                | MsgType::SEQUENCE_RESET
                | MsgType::LOGOUT
                | MsgType::LOGON
        )
    }
}

/// A decoded message borrowing its bytes.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    fields: ArrayVec<Field, MAX_FIELDS>,
    msg_type: MsgType,
}

/// Why a field's value could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The field is absent.
    Missing(i32),
    /// Present with an empty value.
    Empty(i32),
    /// Present but not of the field's format (number, price, time, char).
    Format(i32),
}

impl<'a> Message<'a> {
    /// Splits a framed message (as [`super::frame`] delimited it) into fields.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let mut fields = ArrayVec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let field_start = pos;
            let mut tag: i64 = 0;
            let mut neg = false;
            let mut digits = 0;
            loop {
                let Some(&b) = bytes.get(pos) else {
                    return Err(DecodeError::MissingEquals {
                        offset: field_start as u32,
                    });
                };
                match b {
                    b'0'..=b'9' if digits < 9 => {
                        tag = tag * 10 + i64::from(b - b'0');
                        digits += 1;
                    }
                    b'-' if pos == field_start => neg = true,
                    b'=' if digits > 0 => break,
                    b'=' => {
                        return Err(DecodeError::BadTag {
                            offset: field_start as u32,
                        })
                    }
                    SOH => {
                        return Err(DecodeError::MissingEquals {
                            offset: field_start as u32,
                        })
                    }
                    _ => {
                        return Err(DecodeError::BadTag {
                            offset: field_start as u32,
                        })
                    }
                }
                pos += 1;
            }
            let value_start = pos + 1;
            let Some(len) = bytes
                .get(value_start..)
                .and_then(|t| t.iter().position(|b| *b == SOH))
            else {
                return Err(DecodeError::MissingTrailer);
            };
            let value_end = value_start + len;
            let tag = if neg { -tag } else { tag } as i32;
            fields
                .try_push(Field {
                    tag,
                    start: value_start as u32,
                    end: value_end as u32,
                })
                .map_err(|_| DecodeError::TooManyFields)?;
            pos = value_end + 1;
        }
        let tag_at = |i: usize| fields.get(i).map(|f: &Field| f.tag);
        if tag_at(0) != Some(tags::BEGIN_STRING)
            || tag_at(1) != Some(tags::BODY_LENGTH)
            || tag_at(2) != Some(tags::MSG_TYPE)
        {
            return Err(DecodeError::HeaderOutOfOrder);
        }
        if fields.last().map(|f| f.tag) != Some(tags::CHECK_SUM) {
            return Err(DecodeError::MissingTrailer);
        }
        let msg_type = fields.get(2).map_or(MsgType::INVALID, |f| {
            MsgType::pack(&bytes[f.start as usize..f.end as usize])
        });
        Ok(Message {
            bytes,
            fields,
            msg_type,
        })
    }

    /// The whole message, trailer included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    pub fn msg_type(&self) -> MsgType {
        self.msg_type
    }
    /// The raw MsgType <35> value.
    pub fn msg_type_bytes(&self) -> &'a [u8] {
        self.fields.get(2).map_or(b"", |f| self.value(f))
    }
    pub fn begin_string(&self) -> &'a [u8] {
        self.fields.first().map_or(b"", |f| self.value(f))
    }
    /// The value bytes of `f`, which must come from this message.
    #[inline]
    pub fn value(&self, f: &Field) -> &'a [u8] {
        self.bytes
            .get(f.start as usize..f.end as usize)
            .unwrap_or(b"")
    }
    /// The first occurrence of `tag`.
    #[inline]
    pub fn get(&self, tag: i32) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| self.value(f))
    }
    /// The first occurrence of `tag`, which must be present and non-empty.
    pub fn require(&self, tag: i32) -> Result<&'a [u8], ValueError> {
        match self.get(tag) {
            None => Err(ValueError::Missing(tag)),
            Some([]) => Err(ValueError::Empty(tag)),
            Some(v) => Ok(v),
        }
    }
    /// An unsigned integer field; `Ok(None)` when absent.
    pub fn uint(&self, tag: i32) -> Result<Option<u64>, ValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some([]) => Err(ValueError::Empty(tag)),
            Some(v) => parse_uint(v).map(Some).ok_or(ValueError::Format(tag)),
        }
    }
    /// A single-character field; `Ok(None)` when absent.
    pub fn char(&self, tag: i32) -> Result<Option<u8>, ValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some([]) => Err(ValueError::Empty(tag)),
            Some([c]) => Ok(Some(*c)),
            Some(_) => Err(ValueError::Format(tag)),
        }
    }
    /// A Boolean (`Y`/`N`) field; `Ok(None)` when absent.
    pub fn flag(&self, tag: i32) -> Result<Option<bool>, ValueError> {
        match self.char(tag)? {
            None => Ok(None),
            Some(b'Y') => Ok(Some(true)),
            Some(b'N') => Ok(Some(false)),
            Some(_) => Err(ValueError::Format(tag)),
        }
    }
    /// A UTCTimestamp field; `Ok(None)` when absent.
    pub fn timestamp(&self, tag: i32) -> Result<Option<Nanos>, ValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some([]) => Err(ValueError::Empty(tag)),
            Some(v) => parse_timestamp(v).map(Some).ok_or(ValueError::Format(tag)),
        }
    }
    /// A Price field; `Ok(None)` when absent.
    pub fn price(&self, tag: i32) -> Result<Option<Price>, ValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some([]) => Err(ValueError::Empty(tag)),
            Some(v) => parse_decimal(v, PRICE_DECIMALS)
                .map(|p| Some(Price(p)))
                .ok_or(ValueError::Format(tag)),
        }
    }
    /// A Qty field; `Ok(None)` when absent.
    pub fn qty(&self, tag: i32) -> Result<Option<Qty>, ValueError> {
        match self.get(tag) {
            None => Ok(None),
            Some([]) => Err(ValueError::Empty(tag)),
            Some(v) => parse_decimal(v, QTY_DECIMALS)
                .map(|q| Some(Qty(q)))
                .ok_or(ValueError::Format(tag)),
        }
    }
    /// MsgSeqNum <34> if present and numeric.
    pub fn seq_num(&self) -> Option<u64> {
        self.get(tags::MSG_SEQ_NUM).and_then(parse_uint)
    }
}

/// Parses ASCII digits (no sign, at most 18 digits).
#[inline]
pub fn parse_uint(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    let mut n: u64 = 0;
    for b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Parses an optionally signed integer.
#[inline]
pub fn parse_int(v: &[u8]) -> Option<i64> {
    match v.split_first() {
        Some((b'-', rest)) => parse_uint(rest).map(|n| -(n as i64)),
        _ => parse_uint(v).map(|n| n as i64),
    }
}

/// Parses a decimal (`-12.345`) into an integer scaled by 10^`decimals`. More fractional digits
/// than `decimals` are accepted only when they are zeros (no silent rounding of a price).
pub fn parse_decimal(v: &[u8], decimals: u32) -> Option<i64> {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 30 {
        return None;
    }
    // Magnitudes in i128: i64::MIN's is one more than i64::MAX. Range is checked at the end.
    let mut int: i128 = 0;
    let mut frac: i128 = 0;
    let mut frac_digits = 0u32;
    let mut seen_dot = false;
    let mut any_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                let d = i128::from(b - b'0');
                if seen_dot {
                    if frac_digits < decimals {
                        frac = frac * 10 + d;
                        frac_digits += 1;
                    } else if d != 0 {
                        return None;
                    }
                } else {
                    int = int.checked_mul(10)?.checked_add(d)?;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !any_digit {
        return None;
    }
    let scale = 10i128.checked_pow(decimals)?;
    let magnitude = int
        .checked_mul(scale)?
        .checked_add(frac * 10i128.checked_pow(decimals - frac_digits)?)?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

/// Parses `YYYYMMDD-HH:MM:SS[.sss[sss[sss]]]` (UTCTimestamp) into nanoseconds since the epoch.
pub fn parse_timestamp(v: &[u8]) -> Option<Nanos> {
    if v.len() < 17
        || v.get(8) != Some(&b'-')
        || v.get(11) != Some(&b':')
        || v.get(14) != Some(&b':')
    {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<u64> { parse_uint(v.get(r)?) };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(12..14)?, num(15..17)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || d < 1 || d > month_days || h > 23 || mi > 59 || s > 60 {
        return None; // 20240231 is not March 2nd
    }
    let mut nanos = 0u64;
    if v.len() > 17 {
        let frac = v.get(18..)?;
        if v.get(17) != Some(&b'.') || !matches!(frac.len(), 3 | 6 | 9) {
            return None;
        }
        nanos = parse_uint(frac)? * 10u64.pow(9 - frac.len() as u32);
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    if days < 0 {
        return None;
    }
    // Nanoseconds since 1970 in a u64 end in 2554: later dates are refused, not wrapped.
    let secs = (days as u64)
        .checked_mul(86_400)?
        .checked_add(h * 3600 + mi * 60 + s)?;
    Some(Nanos(secs.checked_mul(1_000_000_000)?.checked_add(nanos)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

    #[test]
    fn decodes_fields_and_msg_type() {
        let msg = with_trailer(b"8=FIX.4.4\x019=20\x0135=D\x0111=A1\x0154=1\x0138=100\x01");
        let m = Message::decode(&msg).unwrap();
        assert_eq!(m.msg_type(), MsgType::NEW_ORDER_SINGLE);
        assert_eq!(m.get(11), Some(&b"A1"[..]));
        assert_eq!(m.qty(38).unwrap(), Some(Qty::from_units(100)));
        assert_eq!(m.char(54).unwrap(), Some(b'1'));
        assert_eq!(m.uint(99).unwrap(), None);
    }

    #[test]
    fn signed_and_zero_tags_decode_for_the_session_to_reject() {
        let msg = with_trailer(b"8=FIX.4.4\x019=5\x0135=0\x01-1=HI\x010=X\x01");
        let m = Message::decode(&msg).unwrap();
        assert!(m.fields().iter().any(|f| f.tag == -1));
        assert!(m.fields().iter().any(|f| f.tag == 0));
    }

    #[test]
    fn garbled_tags_are_decode_errors() {
        let msg = with_trailer(b"8=FIX.4.4\x019=5\x0135=0\x0134=2\x014garbled9=TW\x01");
        assert!(matches!(
            Message::decode(&msg),
            Err(DecodeError::BadTag { .. })
        ));
        let msg = with_trailer(b"8=FIX.4.4\x019=5\x0135=0\x01349garbled=TW\x01");
        assert!(matches!(
            Message::decode(&msg),
            Err(DecodeError::BadTag { .. })
        ));
        let msg = with_trailer(b"8=FIX.4.4\x0135=0\x019=5\x01");
        assert_eq!(
            Message::decode(&msg).err(),
            Some(DecodeError::HeaderOutOfOrder)
        );
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(parse_decimal(b"12.5", 8), Some(1_250_000_000));
        assert_eq!(parse_decimal(b"-0.00000001", 8), Some(-1));
        assert_eq!(parse_decimal(b"100", 4), Some(1_000_000));
        assert_eq!(parse_decimal(b"1.00001", 4), None);
        assert_eq!(parse_decimal(b"1.000010", 5), Some(100_001));
        assert_eq!(parse_decimal(b"1e5", 4), None);
        assert_eq!(parse_decimal(b".", 4), None);
        assert_eq!(parse_decimal(b"99999999999999999999", 4), None);
    }

    #[test]
    fn parses_timestamps() {
        let t = parse_timestamp(b"20240229-23:59:58.123").unwrap();
        assert_eq!(t.0 % 1_000_000_000, 123_000_000);
        assert_eq!(t.0 / 1_000_000_000, 1_709_251_198);
        assert!(parse_timestamp(b"20240229-23:59:58").is_some());
        assert!(parse_timestamp(b"20240229-23:59:58.123456789").is_some());
        assert!(parse_timestamp(b"20241329-23:59:58").is_none());
        assert!(parse_timestamp(b"20240231-00:00:00").is_none());
        assert!(parse_timestamp(b"20230229-00:00:00").is_none());
        assert!(parse_timestamp(b"20000229-00:00:00").is_some());
        assert!(
            parse_timestamp(b"60240229-00:00:00").is_none(),
            "beyond u64 nanoseconds"
        );
        assert!(parse_timestamp(b"20240229 23:59:58").is_none());
        assert!(parse_timestamp(b"20240229-23:59:58.12").is_none());
    }
}
