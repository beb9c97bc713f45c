//! COLD — an order record's trail record taken straight out of its REG-1 line without building
//! an [`Entry`](super::Entry): the journal thread reads the line it wrote into reused buffers
//! and packs the record's fields, sorted, into a pooled buffer ([`OrderLines::pack`]: no
//! per-record allocation); the trail thread unpacks them as slices ([`unpack`]) and hashes and
//! renders them from there. The work stays split between the two threads as it was with
//! `Entry` (a debug build's trail thread could not also read the lines and keep up).
//!
//! The record is the one [`super::from_order_line`] builds, field for field (a unit test holds
//! the two to the same bytes): kind `order-<event>`, actor `key:<api_key_id>` or
//! `session:<session>`, subject the order's ids, session, key and masked account, detail every
//! other non-empty column but `event_time`. A line this reader does not expect (a value that is
//! not a string, an escaped key, more than [`MAX_COLUMNS`] columns) gives `None`, and the caller
//! takes the general path.

use arrayvec::ArrayVec;

use super::chain::Map;

/// Columns a line may have here (a REG-1 line has about 30).
pub const MAX_COLUMNS: usize = 64;

/// The columns that go to the subject (beside the key and the masked account).
const SUBJECT: [&[u8]; 5] = [
    b"order_id",
    b"cl_ord_id",
    b"orig_cl_ord_id",
    b"request_cl_ord_id",
    b"session",
];

/// Reused buffers of the reader (one per trail thread).
#[derive(Default)]
pub struct OrderLines {
    /// Unescaped values, then kind, actor and the masked account.
    text: Vec<u8>,
}

type Span = (usize, usize);

impl OrderLines {
    /// Reads `line` and calls `f(kind, actor, subject, detail)`; `None` (and `f` not called)
    /// when the line is not one this reader takes.
    pub fn with<R>(
        &mut self,
        line: &[u8],
        f: impl FnOnce(&str, &str, Map<'_>, Map<'_>) -> R,
    ) -> Option<R> {
        self.text.clear();
        // (key in `line`, value in `text`).
        let mut cols: ArrayVec<(Span, Span), MAX_COLUMNS> = ArrayVec::new();
        parse(line, &mut self.text, &mut cols)?;
        let find = |name: &[u8]| {
            cols.iter()
                .rev()
                .find(|(k, _)| &line[k.0..k.1] == name)
                .map_or((0, 0), |c| c.1)
        };
        let (event, key, session, account) = (
            find(b"event"),
            find(b"api_key_id"),
            find(b"session"),
            find(b"account"),
        );
        let kind = prefixed(&mut self.text, b"order-", event);
        let actor = if key.1 > key.0 {
            prefixed(&mut self.text, b"key:", key)
        } else {
            prefixed(&mut self.text, b"session:", session)
        };
        let masked = mask_account(&mut self.text, account);
        let text = &self.text[..];
        let kind = std::str::from_utf8(&text[kind.0..kind.1]).ok()?;
        let actor = std::str::from_utf8(&text[actor.0..actor.1]).ok()?;
        let mut subject: ArrayVec<(&[u8], &[u8]), 8> = ArrayVec::new();
        let mut detail: ArrayVec<(&[u8], &[u8]), MAX_COLUMNS> = ArrayVec::new();
        for (k, v) in &cols {
            let (k, v) = (&line[k.0..k.1], &text[v.0..v.1]);
            if v.is_empty() || matches!(k, b"event" | b"event_time" | b"api_key_id" | b"account") {
                continue;
            }
            if SUBJECT.contains(&k) {
                subject.try_push((k, v)).ok()?;
            } else {
                detail.try_push((k, v)).ok()?;
            }
        }
        if key.1 > key.0 {
            subject.try_push((b"key", &text[key.0..key.1])).ok()?;
        }
        if masked.1 > masked.0 {
            subject
                .try_push((b"account", &text[masked.0..masked.1]))
                .ok()?;
        }
        subject.sort_unstable_by(|a, b| key_order(a.0, b.0));
        detail.sort_unstable_by(|a, b| key_order(a.0, b.0));
        // A column written twice: the general path keeps the last one; leave it that path.
        if has_twins(&subject) || has_twins(&detail) {
            return None;
        }
        Some(f(kind, actor, Map::Flat(&subject), Map::Flat(&detail)))
    }
}

impl OrderLines {
    /// The record of `line` packed into `out` (cleared first) for [`unpack`]: kind, actor, then
    /// the subject and the detail pairs, each string as a u32 length and its bytes, each map
    /// as a u32 count first. `false` (and `out` empty) when the line is not one this reader
    /// takes.
    pub fn pack(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let put = |out: &mut Vec<u8>, s: &[u8]| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        };
        let done = self.with(line, |kind, actor, subject, detail| {
            put(out, kind.as_bytes());
            put(out, actor.as_bytes());
            for m in [subject, detail] {
                if let Map::Flat(pairs) = m {
                    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
                    for (k, v) in pairs {
                        put(out, k);
                        put(out, v);
                    }
                }
            }
        });
        if done.is_none() {
            out.clear();
        }
        done.is_some()
    }
}

/// Calls `f(kind, actor, subject, detail)` with the fields [`OrderLines::pack`] packed into
/// `packed`; `None` when `packed` is not such a buffer.
pub fn unpack<R>(packed: &[u8], f: impl FnOnce(&str, &str, Map<'_>, Map<'_>) -> R) -> Option<R> {
    let mut at = 0;
    let kind = std::str::from_utf8(take_bytes(packed, &mut at)?).ok()?;
    let actor = std::str::from_utf8(take_bytes(packed, &mut at)?).ok()?;
    let mut maps: [ArrayVec<(&[u8], &[u8]), MAX_COLUMNS>; 2] = [ArrayVec::new(), ArrayVec::new()];
    for m in &mut maps {
        for _ in 0..take_u32(packed, &mut at)? {
            let k = take_bytes(packed, &mut at)?;
            let v = take_bytes(packed, &mut at)?;
            m.try_push((k, v)).ok()?;
        }
    }
    if at != packed.len() {
        return None;
    }
    let [subject, detail] = &maps;
    Some(f(kind, actor, Map::Flat(subject), Map::Flat(detail)))
}

fn take_u32(packed: &[u8], at: &mut usize) -> Option<usize> {
    let b = packed.get(*at..at.checked_add(4)?)?;
    *at += 4;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn take_bytes<'a>(packed: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = take_u32(packed, at)?;
    let s = packed.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

/// Appends `prefix` and then the text's own span `tail` to the text; the new span.
fn prefixed(text: &mut Vec<u8>, prefix: &[u8], tail: Span) -> Span {
    let start = text.len();
    text.extend_from_slice(prefix);
    text.extend_from_within(tail.0..tail.1);
    (start, text.len())
}

/// The account of span `a`, every character but the last four starred
/// ([`crate::auth::mask::account`], into the text).
fn mask_account(text: &mut Vec<u8>, a: Span) -> Span {
    let start = text.len();
    if a.1 <= a.0 {
        return (start, start);
    }
    let n = match std::str::from_utf8(&text[a.0..a.1]) {
        Ok(s) => s.chars().count(),
        Err(_) => return (start, start),
    };
    let mut i = a.0;
    let mut c = 0;
    while i < a.1 {
        let len = utf8_len(text[i]);
        if c + 4 < n {
            text.push(b'*');
        } else {
            text.extend_from_within(i..(i + len).min(a.1));
        }
        i += len;
        c += 1;
    }
    (start, text.len())
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Byte order of two column names, most decided by their first eight bytes as one integer
/// (a name is never a NUL, so the zero padding of a short one orders it first, as byte order
/// does).
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn head(k: &[u8]) -> u64 {
        let mut h = [0u8; 8];
        let n = k.len().min(8);
        h[..n].copy_from_slice(&k[..n]);
        u64::from_be_bytes(h)
    }
    head(a).cmp(&head(b)).then_with(|| a.cmp(b))
}

fn has_twins(pairs: &[(&[u8], &[u8])]) -> bool {
    pairs.windows(2).any(|w| w[0].0 == w[1].0)
}

/// `{"key":"value",...}` (string values only) into `cols`, values unescaped into `text`.
fn parse(
    line: &[u8],
    text: &mut Vec<u8>,
    cols: &mut ArrayVec<(Span, Span), MAX_COLUMNS>,
) -> Option<()> {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return rest_is_blank(line, i + 1);
    }
    loop {
        // Key: a plain string (no escapes in our column names).
        if line.get(i) != Some(&b'"') {
            return None;
        }
        let ks = i + 1;
        let ke = ks
            + line
                .get(ks..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if line[ke] != b'"' {
            return None;
        }
        i = skip_ws(line, ke + 1);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(line, i + 1);
        if line.get(i) != Some(&b'"') {
            return None;
        }
        let vs = text.len();
        i = unescape(line, i + 1, text)?;
        cols.try_push(((ks, ke), (vs, text.len()))).ok()?;
        i = skip_ws(line, i);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return rest_is_blank(line, i + 1),
            _ => return None,
        }
    }
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while matches!(line.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

fn rest_is_blank(line: &[u8], i: usize) -> Option<()> {
    (skip_ws(line, i) == line.len()).then_some(())
}

/// The JSON string body from `i` (after its opening quote) into `out`; the index after the
/// closing quote. Control characters unescaped, lone surrogates and bad escapes refused.
fn unescape(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> Option<usize> {
    loop {
        let run = line
            .get(i..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        out.extend_from_slice(&line[i..i + run]);
        i += run;
        match line[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let c = *line.get(i + 1)?;
                i += 2;
                match c {
                    b'"' | b'\\' | b'/' => out.push(c),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let hex = line.get(i..i + 4)?;
                        let mut cp = 0u32;
                        for &h in hex {
                            cp = cp << 4 | char::from(h).to_digit(16)?;
                        }
                        let ch = char::from_u32(cp)?;
                        let mut b = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        i += 4;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;
    use crate::model::Nanos;
    use crate::trail::chain::Fields;

    /// The record's JSON line (with its hash) as `Fields` renders it.
    fn rendered(kind: &str, actor: &str, subject: Map<'_>, detail: Map<'_>) -> Vec<u8> {
        let f = Fields {
            seq: 9,
            time_ns: 5,
            time: b"1970-01-01T00:00:00.000000005Z",
            kind,
            actor,
            subject,
            detail,
        };
        let prev = [3u8; 32];
        let mut out = Vec::new();
        f.line(&mut out, &prev, &f.hash(&prev));
        out
    }

    /// The general path's record of `line`, and this reader's (`None`: not taken).
    fn both(line: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let e = crate::trail::from_order_line(Nanos(5), line);
        let general = rendered(
            &e.kind,
            &e.actor,
            Map::Tree(&e.subject),
            Map::Tree(&e.detail),
        );
        let mut lines = OrderLines::default();
        let fast = lines.with(line, rendered);
        // Packed on one thread, unpacked on the other: the same record.
        let mut packed = Vec::new();
        let taken = lines.pack(line, &mut packed);
        assert_eq!(taken, fast.is_some());
        if taken {
            assert_eq!(unpack(&packed, rendered), fast);
            assert_eq!(unpack(&packed[..packed.len() - 1], rendered), None);
        }
        (general, fast)
    }

    #[test]
    fn a_reg1_line_gives_the_record_the_general_path_gives() {
        let line = br#"{"event_time":"2026-12-07T17:13:55.370362791Z","event":"accepted","session":"FIX.4.4:LOAD->PORTCULLIS","client_comp_id":"LOAD","account":"ACC-\u00c4\u00d6123456","api_key_id":"k-1","symbol":"AAPL","side":"buy","price":"10","text":"a \"quoted\" \\ back\u0001slash\nline","cl_ord_id":"C1","orig_cl_ord_id":"","order_id":"7","venue":"SIM"}"#;
        let (general, fast) = both(line);
        let fast = fast.expect("a REG-1 line is taken");
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&general)
        );
        let s = String::from_utf8_lossy(&fast);
        assert!(
            s.contains(r#""kind":"order-accepted","actor":"key:k-1""#),
            "{s}"
        );
        assert!(s.contains(r#""account":"********3456""#), "{s}");
        assert!(
            !s.contains("orig_cl_ord_id"),
            "empty columns are left out: {s}"
        );
        assert!(!s.contains("event_time"), "{s}");
    }

    #[test]
    fn without_a_key_the_session_acts_and_an_empty_line_is_a_bare_record() {
        for line in [
            &br#"{"event":"new","session":"S1","order_id":"1"}"#[..],
            br#"{}"#,
            br#" { "event" : "new" , "account" : "AB" } "#,
        ] {
            let (general, fast) = both(line);
            assert_eq!(
                fast.as_deref(),
                Some(&general[..]),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn lines_it_does_not_expect_are_left_to_the_general_path() {
        for line in [
            &br#"{"event":"new","qty":100}"#[..],
            br#"{"event":"new","order_id":"1","order_id":"2"}"#,
            br#"{"ev\"ent":"new"}"#,
            b"{\"ev\x00ent\":\"new\"}",
            br#"{"event":"new""#,
            br#"{"event":"new"} x"#,
            br#"{"event":"\ud800"}"#,
            br#"{"event":"\x"}"#,
            b"not json",
        ] {
            assert_eq!(
                OrderLines::default().with(line, |_, _, _, _| ()),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest::proptest! {
        /// Any line of string columns (names the reader treats specially among them, values
        /// with anything in them) gives the general path's record, byte for byte.
        #[test]
        fn any_string_columns_give_the_general_paths_record(
            cols in proptest::collection::btree_map(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "event", "event_time", "api_key_id", "account", "session", "order_id",
                        "cl_ord_id", "orig_cl_ord_id", "request_cl_ord_id", "key", "text",
                    ]).prop_map(str::to_string),
                    "[a-z_]{1,12}",
                ],
                proptest::prop_oneof![
                    proptest::strategy::Just(String::new()),
                    ".{0,12}",
                    "\\PC{0,6}",
                ],
                0..20,
            )
        ) {
            let line = serde_json::to_vec(&cols).unwrap_or_default();
            let (general, fast) = both(&line);
            proptest::prop_assert_eq!(fast, Some(general));
        }
    }
}
