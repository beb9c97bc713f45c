//! CRC-32C (Castagnoli), slice-by-8, tables built at compile time.
//!
//! Written here rather than pulled in as a dependency: it is forty lines, and the store needs a
//! checksum that catches torn records after a crash, not a cryptographic one. Slice-by-8 keeps
//! a ~200-byte FIX message at well under 100 ns without `unsafe` or CPU feature detection.

/// Reflected Castagnoli polynomial (iSCSI, ext4, SSE4.2 `crc32`).
const POLY: u32 = 0x82F6_3B78;

/// `TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// Running CRC-32C: feed the pieces of a record, then [`Crc32c::finish`].
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Crc32c {
    pub const fn new() -> Self {
        Crc32c(!0)
    }

    pub fn update(mut self, bytes: &[u8]) -> Self {
        let mut crc = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = TABLES[7][lo as u8 as usize]
                ^ TABLES[6][(lo >> 8) as u8 as usize]
                ^ TABLES[5][(lo >> 16) as u8 as usize]
                ^ TABLES[4][(lo >> 24) as u8 as usize]
                ^ TABLES[3][hi as u8 as usize]
                ^ TABLES[2][(hi >> 8) as u8 as usize]
                ^ TABLES[1][(hi >> 16) as u8 as usize]
                ^ TABLES[0][(hi >> 24) as u8 as usize];
        }
        for &b in chunks.remainder() {
            crc = TABLES[0][(crc as u8 ^ b) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
        self
    }

    pub const fn finish(self) -> u32 {
        !self.0
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32C of one buffer.
pub fn crc32c(bytes: &[u8]) -> u32 {
    Crc32c::new().update(bytes).finish()
}

#[cfg(test)]
// A failed unwrap is a failed test: exactly what it should be.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_check_value() {
        // RFC 3720 / the CRC catalogue "check" value for CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // 32 zero bytes, RFC 3720 B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn split_updates_equal_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 + 7) as u8).collect();
        for cut in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let split = Crc32c::new()
                .update(&data[..cut])
                .update(&data[cut..])
                .finish();
            assert_eq!(split, crc32c(&data), "cut at {cut}");
        }
    }
}
