//! HOT — the FIX CheckSum <10>: the sum of every byte before the `10=` field, modulo 256.

/// Sum of `bytes` modulo 256.
///
/// Summing in `u32` lanes of 8 lets the compiler vectorise the loop; the wrap-around of the final
/// `u8` cast is the modulo the spec asks for.
#[inline]
pub fn checksum(bytes: &[u8]) -> u8 {
    let mut chunks = bytes.chunks_exact(8);
    let mut lanes = [0u32; 8];
    for c in &mut chunks {
        for (lane, b) in lanes.iter_mut().zip(c) {
            *lane += u32::from(*b);
        }
    }
    let mut sum: u32 = lanes.iter().sum();
    for b in chunks.remainder() {
        sum += u32::from(*b);
    }
    sum as u8
}

/// Three ASCII digits, zero padded, as the CheckSum field carries them.
#[inline]
pub fn checksum_digits(sum: u8) -> [u8; 3] {
    [b'0' + sum / 100, b'0' + (sum / 10) % 10, b'0' + sum % 10]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_modulo_256() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let expected = data.iter().fold(0u32, |a, b| a + u32::from(*b)) % 256;
        assert_eq!(u32::from(checksum(&data)), expected);
        assert_eq!(checksum(b""), 0);
        assert_eq!(&checksum_digits(7), b"007");
        assert_eq!(&checksum_digits(255), b"255");
    }
}
