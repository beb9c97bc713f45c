//! COLD — masking of sensitive values before they reach a log, event or error message.
//!
//! - Password <554>, NewPassword <925>, RawData <96>: the value is replaced by `***`.
//! - Account identifiers: all but the last 4 characters become `*`.
//! - Card-number-like digit runs in free text (13–19 digits passing the Luhn check): all but the
//!   last 4 digits become `*`.

/// Tags whose values never appear anywhere.
pub const SECRET_TAGS: [i32; 3] = [96, 554, 925];

/// A FIX message (SOH or `|` separated) with the values of [`SECRET_TAGS`] replaced by `***`.
pub fn fix_message(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    for (i, field) in msg.split(|b| *b == 1 || *b == b'|').enumerate() {
        if i > 0 {
            let sep = msg
                .iter()
                .filter(|b| **b == 1 || **b == b'|')
                .nth(i - 1)
                .copied()
                .unwrap_or(1);
            out.push(sep);
        }
        let secret = field
            .iter()
            .position(|b| *b == b'=')
            .and_then(|eq| std::str::from_utf8(&field[..eq]).ok()?.parse::<i32>().ok())
            .is_some_and(|t| SECRET_TAGS.contains(&t));
        if secret {
            if let Some(eq) = field.iter().position(|b| *b == b'=') {
                out.extend_from_slice(&field[..=eq]);
                out.extend_from_slice(b"***");
                continue;
            }
        }
        out.extend_from_slice(field);
    }
    out
}

/// An account id with all but its last 4 characters masked (`****1234`).
pub fn account(a: &str) -> String {
    let n = a.chars().count();
    a.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Free text with card-number-like digit runs (13–19 digits, Luhn-valid) masked but for the
/// last 4 digits.
pub fn free_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let run = &b[start..i];
            if (13..=19).contains(&run.len()) && luhn(run) {
                for o in &mut out[start..i - 4] {
                    *o = b'*';
                }
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_tags_accounts_and_card_numbers() {
        let m = fix_message(
            b"8=FIX.4.4\x01553=k1\x0195=4\x0196=abcd\x01554=pw\x01925=npw\x0110=000\x01",
        );
        assert_eq!(
            m,
            b"8=FIX.4.4\x01553=k1\x0195=4\x0196=***\x01554=***\x01925=***\x0110=000\x01".to_vec()
        );
        assert_eq!(fix_message(b"96=x|58=hi"), b"96=***|58=hi".to_vec());
        assert_eq!(account("ACC-CLIENT1"), "*******ENT1");
        assert_eq!(account("AB"), "AB");
        assert_eq!(
            free_text("card 4111111111111111 order 1234567890123"),
            "card ************1111 order 1234567890123"
        );
    }
}
