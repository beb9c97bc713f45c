//! HOT — writes FIX messages into a caller's buffer; no allocation, no `format!`.
//!
//! The body is written first, after a reserved gap; [`Writer::finish`] then writes BeginString
//! and BodyLength right-aligned into the gap and appends the CheckSum, so nothing is moved.
//! The finished message is `buf[range]`.

use core::ops::Range;

use super::checksum::{checksum, checksum_digits};
use crate::model::{Nanos, Price, Qty, PRICE_DECIMALS, QTY_DECIMALS};

const SOH: u8 = 0x01;
/// Room kept in front of the body for `8=FIX.4.4<SOH>9=NNNNNNN<SOH>`.
pub const HEADER_RESERVE: usize = 32;

/// Digits written after the seconds of a UTCTimestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimePrecision {
    Seconds,
    #[default]
    Millis,
    Micros,
    Nanos,
}

/// The buffer was too small for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// Builds one message in `buf`.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    begin_string: &'a [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    /// Starts a message: MsgType <35> is written as the first body field.
    pub fn new(buf: &'a mut [u8], begin_string: &'a [u8], msg_type: &[u8]) -> Writer<'a> {
        let mut w = Writer {
            buf,
            begin_string,
            pos: HEADER_RESERVE,
            overflow: false,
        };
        w.str(35, msg_type);
        w
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.pos..self.pos + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    #[inline]
    fn tag(&mut self, tag: i32) {
        let mut tmp = [0u8; 20];
        let n = write_u64(&mut tmp, u64::from(tag.unsigned_abs()));
        self.put(&tmp[..n]);
        self.put(b"=");
    }

    /// A string/char/data field, written verbatim.
    #[inline]
    pub fn str(&mut self, tag: i32, v: &[u8]) -> &mut Self {
        self.tag(tag);
        self.put(v);
        self.put(&[SOH]);
        self
    }
    #[inline]
    pub fn char(&mut self, tag: i32, c: u8) -> &mut Self {
        self.str(tag, &[c])
    }
    #[inline]
    pub fn uint(&mut self, tag: i32, v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let n = write_u64(&mut tmp, v);
        self.str(tag, &tmp[..n])
    }
    #[inline]
    pub fn int(&mut self, tag: i32, v: i64) -> &mut Self {
        let mut tmp = [0u8; 21];
        let n = if v < 0 {
            tmp[0] = b'-';
            1 + write_u64(&mut tmp[1..], v.unsigned_abs())
        } else {
            write_u64(&mut tmp, v as u64)
        };
        self.str(tag, &tmp[..n])
    }
    #[inline]
    pub fn flag(&mut self, tag: i32, v: bool) -> &mut Self {
        self.char(tag, if v { b'Y' } else { b'N' })
    }
    pub fn price(&mut self, tag: i32, p: Price) -> &mut Self {
        let mut tmp = [0u8; 32];
        let n = write_decimal(&mut tmp, p.0, PRICE_DECIMALS);
        self.str(tag, &tmp[..n])
    }
    pub fn qty(&mut self, tag: i32, q: Qty) -> &mut Self {
        let mut tmp = [0u8; 32];
        let n = write_decimal(&mut tmp, q.0, QTY_DECIMALS);
        self.str(tag, &tmp[..n])
    }
    pub fn timestamp(&mut self, tag: i32, t: Nanos, precision: TimePrecision) -> &mut Self {
        let mut tmp = [0u8; 27];
        let n = write_timestamp(&mut tmp, t, precision);
        self.str(tag, &tmp[..n])
    }
    /// Bytes already written in the standard `tag=value<SOH>` form (e.g. a stored body).
    pub fn raw(&mut self, fields: &[u8]) -> &mut Self {
        self.put(fields);
        self
    }

    /// Writes BeginString, BodyLength and CheckSum; returns where the message lies in the buffer.
    pub fn finish(self) -> Result<Range<usize>, Overflow> {
        if self.overflow {
            return Err(Overflow);
        }
        let body_len = self.pos - HEADER_RESERVE;
        let mut head = [0u8; HEADER_RESERVE];
        let mut n = 0;
        for part in [b"8=".as_slice(), self.begin_string, b"\x019="] {
            let dst = head.get_mut(n..n + part.len()).ok_or(Overflow)?;
            dst.copy_from_slice(part);
            n += part.len();
        }
        let mut digits = [0u8; 20];
        let d = write_u64(&mut digits, body_len as u64);
        let dst = head.get_mut(n..n + d + 1).ok_or(Overflow)?;
        dst[..d].copy_from_slice(&digits[..d]);
        dst[d] = SOH;
        n += d + 1;
        let start = HEADER_RESERVE - n;
        self.buf[start..HEADER_RESERVE].copy_from_slice(&head[..n]);
        let sum = checksum_digits(checksum(&self.buf[start..self.pos]));
        let end = self.pos + 7;
        let trailer = self.buf.get_mut(self.pos..end).ok_or(Overflow)?;
        trailer[..3].copy_from_slice(b"10=");
        trailer[3..6].copy_from_slice(&sum);
        trailer[6] = SOH;
        Ok(start..end)
    }
}

/// "00" to "99": two digits per table lookup instead of one division per digit.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` in decimal; returns the number of bytes (`out` needs 20).
#[inline]
pub fn write_u64(out: &mut [u8], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    let n = tmp.len() - i;
    out[..n].copy_from_slice(&tmp[i..]);
    n
}

/// Writes a fixed-point value with trailing fractional zeros trimmed (`1.5`, `100`).
pub fn write_decimal(out: &mut [u8], v: i64, decimals: u32) -> usize {
    let scale = 10u64.pow(decimals);
    let mut n = 0;
    if v < 0 {
        out[0] = b'-';
        n = 1;
    }
    let a = v.unsigned_abs();
    n += write_u64(&mut out[n..], a / scale);
    let mut frac = a % scale;
    if frac != 0 {
        let mut width = decimals;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out[n] = b'.';
        n += 1;
        let mut digits = [0u8; 20];
        let d = write_u64(&mut digits, frac);
        for _ in d as u32..width {
            out[n] = b'0';
            n += 1;
        }
        out[n..n + d].copy_from_slice(&digits[..d]);
        n += d;
    }
    n
}

thread_local! {
    /// The last day written and its `YYYYMMDD-` text: the date changes once a day, the
    /// calendar arithmetic need not run for every timestamp.
    static LAST_DATE: std::cell::Cell<(u64, [u8; 9])> = const { std::cell::Cell::new((u64::MAX, [0; 9])) };
}

#[inline]
fn two_digits(out: &mut [u8], v: u64) {
    let pair = (v % 100) as usize * 2;
    out[..2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
}

/// Writes `YYYYMMDD-HH:MM:SS[.fff…]`; `out` needs 27 bytes.
pub fn write_timestamp(out: &mut [u8], t: Nanos, precision: TimePrecision) -> usize {
    let secs = t.0 / 1_000_000_000;
    let sub = t.0 % 1_000_000_000;
    let day = secs / 86_400;
    let rem = secs % 86_400;
    let date = LAST_DATE.with(|c| {
        let (cached_day, text) = c.get();
        if cached_day == day {
            return text;
        }
        let (y, m, d) = civil_from_days(day as i64);
        let mut text = [0u8; 9];
        two_digits(&mut text[0..2], (y / 100) as u64);
        two_digits(&mut text[2..4], (y % 100) as u64);
        two_digits(&mut text[4..6], u64::from(m));
        two_digits(&mut text[6..8], u64::from(d));
        text[8] = b'-';
        c.set((day, text));
        text
    });
    out[..9].copy_from_slice(&date);
    two_digits(&mut out[9..11], rem / 3600);
    out[11] = b':';
    two_digits(&mut out[12..14], (rem / 60) % 60);
    out[14] = b':';
    two_digits(&mut out[15..17], rem % 60);
    let (digits, div) = match precision {
        TimePrecision::Seconds => return 17,
        TimePrecision::Millis => (3, 1_000_000),
        TimePrecision::Micros => (6, 1_000),
        TimePrecision::Nanos => (9, 1),
    };
    out[17] = b'.';
    let mut frac = sub / div;
    for i in (0..digits).rev() {
        out[18 + i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    18 + digits
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::decode::{parse_decimal, parse_timestamp, Message};
    use crate::fix::frame::{frame, Frame};

    #[test]
    fn writes_a_valid_message() {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", b"0");
        w.uint(34, 12).str(49, b"GW").str(56, b"CL");
        let r = w.finish().unwrap();
        let msg = &buf[r];
        assert!(msg.starts_with(b"8=FIX.4.4\x019="));
        assert!(matches!(
            frame(msg, 4096),
            Frame::Message {
                body_length_ok: true,
                checksum_ok: true,
                ..
            }
        ));
        let m = Message::decode(msg).unwrap();
        assert_eq!(m.seq_num(), Some(12));
    }

    #[test]
    fn overflow_is_reported() {
        let mut buf = [0u8; 40];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", b"0");
        w.str(58, &[b'x'; 64]);
        assert_eq!(w.finish(), Err(Overflow));
    }

    #[test]
    fn decimals_round_trip() {
        for (v, s) in [
            (150_000_000i64, "1.5"),
            (-1, "-0.00000001"),
            (100_000_000, "1"),
            (0, "0"),
        ] {
            let mut out = [0u8; 32];
            let n = write_decimal(&mut out, v, 8);
            assert_eq!(&out[..n], s.as_bytes());
            assert_eq!(parse_decimal(&out[..n], 8), Some(v));
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Nanos(1_709_251_198_123_456_789);
        let mut out = [0u8; 27];
        let n = write_timestamp(&mut out, t, TimePrecision::Nanos);
        assert_eq!(&out[..n], b"20240229-23:59:58.123456789");
        assert_eq!(parse_timestamp(&out[..n]), Some(t));
        let n = write_timestamp(&mut out, t, TimePrecision::Millis);
        assert_eq!(&out[..n], b"20240229-23:59:58.123");
    }
}
