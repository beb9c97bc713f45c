//! HOT — little-endian reads and writes at fixed offsets of a byte slice, for the generated
//! flyweights, plus the two headers in front of every message.
//!
//! Every function is total: a read beyond the slice answers 0 (an empty string, zero bytes) and a
//! write beyond it writes nothing. The generated constructors check the slice against the block
//! length once, so those branches are never taken in practice; they exist so that no byte
//! sequence can make the codec panic, without `unsafe` and without an `unwrap`.

use super::SbeError;

/// Simple Open Framing Header: message length (u32, big-endian, including these 6 bytes) and
/// encoding type (u16, big-endian).
pub const SOFH_LENGTH: usize = 6;
/// SOFH encoding type of SBE 1.0 little-endian.
pub const SBE_LE_ENCODING: u16 = 0xEB50;

macro_rules! scalar {
    ($($t:ty, $get:ident, $put:ident;)*) => {$(
        /// The value at `at`, 0 when the slice is too short.
        #[inline(always)]
        pub fn $get(buf: &[u8], at: usize) -> $t {
            const N: usize = core::mem::size_of::<$t>();
            match buf.get(at..).and_then(|s| s.first_chunk::<N>()) {
                Some(b) => <$t>::from_le_bytes(*b),
                None => 0,
            }
        }
        /// Writes `v` at `at`; nothing when the slice is too short.
        #[inline(always)]
        pub fn $put(buf: &mut [u8], at: usize, v: $t) {
            const N: usize = core::mem::size_of::<$t>();
            if let Some(b) = buf.get_mut(at..).and_then(|s| s.first_chunk_mut::<N>()) {
                *b = v.to_le_bytes();
            }
        }
    )*};
}

scalar! {
    u8, u8_at, put_u8;
    u16, u16_at, put_u16;
    u32, u32_at, put_u32;
    u64, u64_at, put_u64;
    i8, i8_at, put_i8;
    i16, i16_at, put_i16;
    i32, i32_at, put_i32;
    i64, i64_at, put_i64;
}

/// The `len`-byte char array at `at`, cut at its first NUL (SBE pads with NUL).
#[inline(always)]
pub fn str_at(buf: &[u8], at: usize, len: usize) -> &[u8] {
    let field = buf.get(at..at.saturating_add(len)).unwrap_or(&[]);
    if let Some(end) = first_nul_in_window(buf, at, field.len()) {
        return field.get(..end).unwrap_or(field);
    }
    match first_nul(field) {
        Some(end) => field.get(..end).unwrap_or(field),
        None => field,
    }
}

/// The fast way to a field's length (the position of its first NUL, or `len`): one or two
/// 16-byte SSE2 compares (the field's first 16 bytes, and its last 16 when it is longer), a
/// sentinel bit at `len`, one `tzcnt`; no branch on the data. `None` when a 16-byte window runs
/// past `buf` or the field is longer than 32 bytes: the caller scans word by word.
#[inline(always)]
fn first_nul_in_window(buf: &[u8], at: usize, len: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let from = buf.get(at..)?;
        let mask = if len <= 16 {
            nul_mask16(from.first_chunk::<16>()?)
        } else if len <= 32 {
            // The first 16 bytes and the last 16 of the field (they overlap when len < 32): the
            // field's own bytes only, so a field at the very end of a block qualifies.
            let head = from.first_chunk::<16>()?;
            let tail = from.get(..len)?.last_chunk::<16>()?;
            nul_mask16(head) | nul_mask16(tail) << (len - 16)
        } else {
            return None;
        };
        // `len` ≤ 32, so the sentinel bit fits and `tzcnt` answers at most `len`.
        Some((u64::from(mask) | 1u64 << len).trailing_zeros() as usize)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (buf, at, len);
        None
    }
}

/// Bit `i` set when byte `i` of `w` is NUL.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // a call to an SSE2 function: SSE2 is part of every x86_64 processor
#[inline(always)]
fn nul_mask16(w: &[u8; 16]) -> u32 {
    let lo = i64::from_le_bytes(bytes_at::<8>(w, 0));
    let hi = i64::from_le_bytes(bytes_at::<8>(w, 8));
    // SAFETY: `nul_mask16_sse2` only needs SSE2, which is in the x86_64 target's baseline (always
    // enabled, on every x86_64 processor); it touches no memory.
    unsafe { nul_mask16_sse2(lo, hi) }
}

/// [`nul_mask16`] over the two halves, in SSE2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn nul_mask16_sse2(lo: i64, hi: i64) -> u32 {
    use core::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_setzero_si128,
    };
    let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_set_epi64x(hi, lo), _mm_setzero_si128()));
    // movemask sets only the low 16 bits.
    bits as u32 & 0xffff
}

/// Index of the first NUL in `field`, eight bytes at a time: in a little-endian word `v`,
/// `(v - 0x01..01) & !v & 0x80..80` has its lowest set bit in the first zero byte (a borrow can
/// only set bits above a zero byte, never below). A NewOrderSingle has nine char arrays, so
/// this is most of a decode's work; a property test holds it equal to a byte-by-byte search.
#[inline(always)]
fn first_nul(field: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = field.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        if let Some(word) = chunk.first_chunk::<8>() {
            let v = u64::from_le_bytes(*word);
            let zeros = v.wrapping_sub(ONES) & !v & HIGHS;
            if zeros != 0 {
                return Some(base + (zeros.trailing_zeros() / 8) as usize);
            }
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == 0)
        .map(|p| base + p)
}

/// Writes `v` into the `len`-byte char array at `at`, NUL-padded. A `v` longer than `len` is
/// refused (and nothing is written): a cut identifier would name something else.
#[inline(always)]
pub fn put_str(buf: &mut [u8], at: usize, len: usize, v: &[u8]) -> Result<(), SbeError> {
    if v.len() > len {
        return too_long(at, v.len(), len);
    }
    if let Some(field) = buf.get_mut(at..at.saturating_add(len)) {
        if field.len() <= 32 {
            if let Some(words) = padded_words(v) {
                put_words(field, &words);
                return Ok(());
            }
        }
        let (value, pad) = field.split_at_mut(v.len());
        value.copy_from_slice(v);
        pad.fill(0);
    }
    Ok(())
}

/// `v` (at most 32 bytes) followed by NULs, as four little-endian words built in registers
/// from loads at the two ends of `v` (they overlap in the middle; the tail is shifted down
/// over the overlap). No call to `memcpy`/`memset` for a length known only at run time, and no
/// small stores read back by a wider load (a store-forwarding stall). `None` for a longer `v`.
#[inline(always)]
fn padded_words(v: &[u8]) -> Option<[u64; 4]> {
    let n = v.len();
    // Shifting the tail right by the bytes it shares with the head leaves v[head..n] at bit 0.
    let shr64 = |w: u64, bytes: usize| w.checked_shr(8 * bytes as u32).unwrap_or(0);
    Some(if n > 32 {
        return None;
    } else if n >= 16 {
        let head = u128::from_le_bytes(*v.first_chunk::<16>()?);
        let tail = u128::from_le_bytes(*v.last_chunk::<16>()?);
        let rest = tail.checked_shr(8 * (32 - n) as u32).unwrap_or(0);
        [
            head as u64,
            (head >> 64) as u64,
            rest as u64,
            (rest >> 64) as u64,
        ]
    } else if n >= 8 {
        let head = u64::from_le_bytes(*v.first_chunk::<8>()?);
        let tail = u64::from_le_bytes(*v.last_chunk::<8>()?);
        [head, shr64(tail, 16 - n), 0, 0]
    } else if n >= 4 {
        let head = u32::from_le_bytes(*v.first_chunk::<4>()?);
        let tail = u32::from_le_bytes(*v.last_chunk::<4>()?);
        let rest = shr64(u64::from(tail), 8 - n);
        [u64::from(head) | rest << 32, 0, 0, 0]
    } else {
        let w = v
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        [w, 0, 0, 0]
    })
}

/// Writes the first `field.len()` (≤ 32) bytes of `words` over `field`, a word at a time.
#[inline(always)]
fn put_words(field: &mut [u8], words: &[u64; 4]) {
    for (chunk, w) in field.chunks_mut(8).zip(words) {
        let bytes = w.to_le_bytes();
        if let Some(src) = bytes.get(..chunk.len()) {
            chunk.copy_from_slice(src);
        }
    }
}

#[cold]
#[inline(never)]
fn too_long(at: usize, len: usize, max: usize) -> Result<(), SbeError> {
    Err(SbeError::ValueTooLong {
        offset: u16::try_from(at).unwrap_or(u16::MAX),
        len,
        max,
    })
}

/// The `N` raw bytes at `at` (zeros when the slice is too short).
#[inline(always)]
pub fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf.get(at..)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

/// Writes the `N` bytes of `v` at `at`.
#[inline(always)]
pub fn put_bytes<const N: usize>(buf: &mut [u8], at: usize, v: &[u8; N]) {
    if let Some(b) = buf.get_mut(at..).and_then(|s| s.first_chunk_mut::<N>()) {
        *b = *v;
    }
}

/// Writes the SOFH (`frame_length` bytes in all, SBE little-endian) and the message header into
/// the first 14 bytes of `head`.
#[inline(always)]
pub fn put_headers(
    head: &mut [u8],
    frame_length: usize,
    block_length: u16,
    template_id: u16,
    schema_id: u16,
    version: u16,
) {
    if let Some(h) = head.first_chunk_mut::<14>() {
        let len = u32::try_from(frame_length).unwrap_or(u32::MAX);
        h[..4].copy_from_slice(&len.to_be_bytes());
        h[4..6].copy_from_slice(&SBE_LE_ENCODING.to_be_bytes());
        h[6..8].copy_from_slice(&block_length.to_le_bytes());
        h[8..10].copy_from_slice(&template_id.to_le_bytes());
        h[10..12].copy_from_slice(&schema_id.to_le_bytes());
        h[12..14].copy_from_slice(&version.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_little_endian_at_offsets() {
        let mut b = [0u8; 16];
        put_u64(&mut b, 3, 0x0102_0304_0506_0708);
        assert_eq!(b[3..11], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(u64_at(&b, 3), 0x0102_0304_0506_0708);
        put_i16(&mut b, 0, -2);
        assert_eq!(i16_at(&b, 0), -2);
    }

    #[test]
    fn out_of_range_reads_are_zero_and_writes_are_dropped() {
        let mut b = [0xffu8; 4];
        assert_eq!(u64_at(&b, 0), 0);
        assert_eq!(u32_at(&b, 1), 0);
        assert_eq!(u8_at(&b, usize::MAX), 0);
        assert_eq!(str_at(&b, 2, 8), b"");
        assert_eq!(bytes_at::<8>(&b, 0), [0; 8]);
        put_u64(&mut b, 0, 0);
        put_u8(&mut b, usize::MAX, 0);
        assert_eq!(b, [0xff; 4]);
    }

    proptest::proptest! {
        #[test]
        fn first_nul_matches_a_byte_search(
            field in proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::Just(0u8), 1u8..=255, 0x80u8..=0x81],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(first_nul(&field), field.iter().position(|&b| b == 0));
        }
    }

    proptest::proptest! {
        #[test]
        fn str_at_and_put_str_match_a_byte_by_byte_codec(
            block in proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::Just(0u8), 1u8..=255], 0..80),
            at in 0usize..80,
            len in 0usize..48,
            value in proptest::collection::vec(1u8..=255, 0..48),
        ) {
            // Reading: the bytes of the field before its first NUL, whatever the window.
            let field = block.get(at..at + len).unwrap_or(&[]);
            let want = &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())];
            proptest::prop_assert_eq!(str_at(&block, at, len), want);
            // Writing: the value then NULs over exactly the field, nothing else touched.
            let mut got = block.clone();
            let mut slow = block.clone();
            let r = put_str(&mut got, at, len, &value);
            if value.len() > len {
                proptest::prop_assert!(r.is_err());
            } else if let Some(f) = slow.get_mut(at..at + len) {
                f.fill(0);
                f[..value.len()].copy_from_slice(&value);
            }
            proptest::prop_assert_eq!(got, slow);
        }
    }

    #[test]
    fn padded_words_are_exact_for_every_length() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let got = padded_words(&src[..n]);
            if n > 32 {
                assert_eq!(got, None);
                continue;
            }
            let mut want = [0u8; 32];
            want[..n].copy_from_slice(&src[..n]);
            let words = got.unwrap();
            let mut bytes = [0u8; 32];
            for (i, w) in words.iter().enumerate() {
                bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
            }
            assert_eq!(bytes, want, "length {n}");
        }
    }

    #[test]
    fn first_nul_finds_every_position() {
        for len in 0..=24 {
            for at in 0..len {
                let mut f = vec![0x01u8; len];
                f[at] = 0;
                if at + 1 < len {
                    f[at + 1] = 0; // a second NUL never hides the first
                }
                assert_eq!(first_nul(&f), Some(at), "len {len} at {at}");
            }
            assert_eq!(first_nul(&vec![0x80u8; len]), None);
        }
    }

    #[test]
    fn strings_are_nul_padded_and_cut_at_the_first_nul() {
        let mut b = [0xaau8; 8];
        put_str(&mut b, 1, 6, b"ABC").unwrap();
        assert_eq!(b, [0xaa, b'A', b'B', b'C', 0, 0, 0, 0xaa]);
        assert_eq!(str_at(&b, 1, 6), b"ABC");
        put_str(&mut b, 1, 6, b"ABCDEF").unwrap();
        assert_eq!(str_at(&b, 1, 6), b"ABCDEF", "a full field has no NUL");
        assert_eq!(
            put_str(&mut b, 1, 6, b"ABCDEFG"),
            Err(SbeError::ValueTooLong {
                offset: 1,
                len: 7,
                max: 6
            })
        );
        assert_eq!(
            str_at(&b, 1, 6),
            b"ABCDEF",
            "a refused value writes nothing"
        );
    }
}
