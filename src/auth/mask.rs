//! COLD — masking of sensitive values before they reach a log, event or error message.
//!
//! - Password <554>, NewPassword <925>, RawData <96>: the value is replaced by `***`.
//! - Account identifiers: all but the last 4 characters become `*`.
//! - Card-number-like digit runs in free text (13–19 digits passing the Luhn check, also when
//!   written in groups like `4111 1111 1111 1111`): all but the last 4 digits become `*`
//!   ([`card_numbers`], in place, allocation-free). Applied to every free-text field that
//!   reaches a log, record, stored message or output: order records' `text`, the control audit
//!   (`by`, `reason`, errors), CompIDs and key ids in `events.log`, a venue's reject reason.

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

/// Luhn check over the digits of `window`, separators skipped.
fn luhn(window: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in window
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .enumerate()
    {
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

/// Separators a written card number may carry between its digit groups (`4111 1111 ...`,
/// `4111-1111-...`).
fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// Masks card-number-like digit runs in `text` in place and says whether it masked any.
///
/// A candidate is a run of 13–19 digits, either contiguous or in groups joined by single spaces
/// or dashes (`4111 1111 1111 1111`), that starts and ends on a group boundary (a digit run is
/// never split) and passes the Luhn check. From each group start the longest such run wins (a
/// 13-digit prefix of a 16-digit card that happens to pass Luhn must not leave the rest
/// readable). All digits but the last 4 become `*`; separators and everything else stay, so
/// the length and any UTF-8 are unchanged.
///
/// No allocation and linear in practice (at most 19 digits are scanned per group start): the
/// journal thread runs it on every order record's text, the gateway thread on a venue's
/// reject reason before it is sent.
pub fn card_numbers(text: &mut [u8]) -> bool {
    may_hold_card(text) && mask_candidates(text)
}

/// The candidate walk of [`card_numbers`].
fn mask_candidates(text: &mut [u8]) -> bool {
    let digit = |t: &[u8], i: usize| t.get(i).is_some_and(u8::is_ascii_digit);
    let mut masked = false;
    let mut p = 0;
    while p < text.len() {
        if !digit(text, p) || (p > 0 && digit(text, p - 1)) {
            p += 1;
            continue;
        }
        // Walk groups from `p`; remember the end of the longest valid window.
        let mut best = None;
        let mut digits = 0;
        let mut q = p;
        loop {
            while digit(text, q) {
                digits += 1;
                q += 1;
            }
            if digits > 19 {
                break;
            }
            if digits >= 13 && luhn(text.get(p..q).unwrap_or_default()) {
                best = Some(q);
            }
            let joined = text.get(q).is_some_and(|b| is_separator(*b)) && digit(text, q + 1);
            if !joined {
                break;
            }
            q += 1;
        }
        match best {
            Some(end) => {
                let mut keep = 4;
                for b in text.get_mut(p..end).unwrap_or_default().iter_mut().rev() {
                    if b.is_ascii_digit() {
                        if keep > 0 {
                            keep -= 1;
                        } else {
                            *b = b'*';
                        }
                    }
                }
                masked = true;
                p = end;
            }
            None => p += 1,
        }
    }
    masked
}

/// Whether some run of digits, spaces and dashes in `text` holds 13 digits (one pass, no
/// look-back): what any candidate of [`card_numbers`] needs, so most text — a timestamp, a
/// price, a word — is passed without the candidate walk.
fn may_hold_card(text: &[u8]) -> bool {
    let mut digits = 0u32;
    for &b in text {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= 13 {
                return true;
            }
        } else if !is_separator(b) {
            digits = 0;
        }
    }
    false
}

/// How much of `text` to keep when it must be cut to at most `max` bytes: `max`, less a digit
/// run the cut would split (with its separators), so a card number is never left half there —
/// too short to be recognised and masked, yet still most of the number.
pub fn cut_len(text: &[u8], max: usize) -> usize {
    let digit = |i: usize| text.get(i).is_some_and(u8::is_ascii_digit);
    let mut n = text.len().min(max);
    let splits =
        digit(n) || (text.get(n).is_some_and(|b| is_separator(*b)) && digit(n + 1) && n > 0);
    if n < text.len() && splits {
        while n > 0 && (digit(n - 1) || (text.get(n - 1).is_some_and(|b| is_separator(*b)))) {
            n -= 1;
        }
    }
    n
}

/// Free text with card-number-like digit runs masked ([`card_numbers`]).
pub fn free_text(s: &str) -> String {
    let mut out = s.as_bytes().to_vec();
    if !card_numbers(&mut out) {
        return s.to_string();
    }
    // Only ASCII digits were replaced by `*`: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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

    fn masked(s: &str) -> String {
        free_text(s)
    }

    #[test]
    fn card_numbers_in_groups_and_at_the_edges_are_masked() {
        // Visa 16, Amex 15 (grouped 4-6-5), a 19-digit one, dashes, at both ends of the text.
        assert_eq!(masked("4111 1111 1111 1111"), "**** **** **** 1111");
        assert_eq!(masked("x 3782-822463-10005."), "x ****-******-*0005.");
        assert_eq!(masked("6011111111111117"), "************1117");
        assert_eq!(masked("4222222222222"), "*********2222");
        assert_eq!(
            masked("pan=6759649826438453;exp 2027"),
            "pan=************8453;exp 2027"
        );
        // A card followed by another group (a year): the card alone is the longest valid run.
        assert_eq!(
            masked("4111 1111 1111 1111 2027"),
            "**** **** **** 1111 2027"
        );
        // Not cards: Luhn-invalid, too short, too long, a digit run is never split.
        for plain in [
            "4111111111111112",
            "411111111111",
            "41111111111111111111",
            "24111111111111111",
            "1234 5678",
            "",
            "no digits at all",
            "été 4111",
        ] {
            assert_eq!(masked(plain), plain);
        }
        let mut b = *b"a 4111111111111111 b 5500-0000-0000-0004";
        assert!(card_numbers(&mut b));
        assert_eq!(&b, b"a ************1111 b ****-****-****-0004");
        assert_eq!(
            masked("carte 4111111111111111 é"),
            "carte ************1111 é"
        );
    }

    proptest::proptest! {
        /// The quick pre-check never passes over text the candidate walk would mask.
        #[test]
        fn the_pre_check_never_hides_a_card_number(
            t in proptest::collection::vec(proptest::sample::select(
                b"0123456789 -:a".to_vec()), 0..64),
            card in proptest::sample::select(vec![
                &b"4111111111111111"[..], b"4111 1111 1111 1111", b"4111-1111-1111-1111",
                b"378282246310005", b"6011000990139424"]),
            at in 0usize..64,
        ) {
            let at = at.min(t.len());
            let mut with_card = t.clone();
            with_card.splice(at..at, card.iter().copied());
            for mut text in [t.clone(), with_card] {
                let mut walked = text.clone();
                let masked = mask_candidates(&mut walked);
                proptest::prop_assert!(!masked || may_hold_card(&text));
                proptest::prop_assert_eq!(card_numbers(&mut text), masked);
                proptest::prop_assert_eq!(&text, &walked);
            }
        }
    }
}
