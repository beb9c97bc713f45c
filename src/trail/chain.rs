//! COLD — the trail's record format and its hash chain (`docs/audit-trail.md` has the exact
//! construction, with a test vector a third party can check without our code).
//!
//! A record is one JSON line; its hash is SHA-256 over a domain-separated, canonical binary
//! encoding of its fields (never over the JSON text, whose spelling is free):
//!
//! ```text
//! hash = SHA-256( "portcullis-audit-v1\0record\0" || prev (32 bytes) || canonical )
//! canonical = u64be(seq) || u64be(time_ns) || str(time) || str(kind) || str(actor)
//!           || map(subject) || map(detail)
//! str(s) = u32be(len of UTF-8 s) || s;  map(m) = u32be(entries) || (str(k) || str(v))*,
//!          entries in ascending byte order of k (keys are unique)
//! ```
//!
//! A checkpoint signs the chain head (the hash of the record before it) with Ed25519:
//! `"portcullis-audit-v1\0checkpoint\0" || u64be(head_seq) || head (32 bytes)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation of record hashes.
pub const RECORD_DOMAIN: &[u8] = b"portcullis-audit-v1\0record\0";
/// Domain separation of checkpoint signatures.
pub const CHECKPOINT_DOMAIN: &[u8] = b"portcullis-audit-v1\0checkpoint\0";
/// The `prev` of the very first record of a trail.
pub const GENESIS: [u8; 32] = [0; 32];

/// Record kinds the trail itself writes (everything else comes from the gateway's events).
pub mod kind {
    /// First record of every file: names the previous file and its last record.
    pub const FILE_START: &str = "file-start";
    /// Last record but one of a complete file (a checkpoint follows it).
    pub const FILE_CLOSE: &str = "file-close";
    /// A signed chain head.
    pub const CHECKPOINT: &str = "checkpoint";
    /// Records the trail could not take (queue full) since the last such record.
    pub const RECORDS_LOST: &str = "audit-records-lost";
    /// Messages before logon over `audit.prelogon_messages_per_second`, not recorded.
    pub const MESSAGES_UNRECORDED: &str = "audit-messages-unrecorded";
}

/// One trail record, as written (one JSON line, fields in this order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Continuous across files and restarts, from 1.
    pub seq: u64,
    /// RFC 3339 UTC with nanoseconds (the same instant as `time_ns`).
    pub time: String,
    /// UTC nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub kind: String,
    /// Who acted: `gateway`, `key:<id>`, `session:<name>`, `operator:uid=<u>,pid=<p>,by=<text>`.
    pub actor: String,
    /// What it is about: `order_id`, `cl_ord_id`, `account` (masked), `session`, `key`,
    /// `address`…
    pub subject: BTreeMap<String, String>,
    /// Everything else.
    pub detail: BTreeMap<String, String>,
    /// Hex SHA-256 of the previous record (64 zeros for the first record of a trail).
    pub prev: String,
    /// Hex SHA-256 of this record (see the module header).
    pub hash: String,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_map(out: &mut Vec<u8>, m: &BTreeMap<String, String>) {
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    // BTreeMap<String, _> iterates in ascending byte order of the keys.
    for (k, v) in m {
        put_str(out, k);
        put_str(out, v);
    }
}

impl Record {
    /// The canonical bytes of everything but `prev` and `hash`.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time_ns.to_be_bytes());
        put_str(&mut out, &self.time);
        put_str(&mut out, &self.kind);
        put_str(&mut out, &self.actor);
        put_map(&mut out, &self.subject);
        put_map(&mut out, &self.detail);
        out
    }

    /// The hash this record must carry after `prev`.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        Fields {
            seq: self.seq,
            time_ns: self.time_ns,
            time: self.time.as_bytes(),
            kind: &self.kind,
            actor: &self.actor,
            subject: Map::Tree(&self.subject),
            detail: Map::Tree(&self.detail),
        }
        .hash(prev)
    }

    /// `prev` as bytes, `None` when it is not 64 hex digits.
    pub fn prev_bytes(&self) -> Option<[u8; 32]> {
        from_hex32(&self.prev)
    }

    /// `hash` as bytes, `None` when it is not 64 hex digits.
    pub fn hash_bytes(&self) -> Option<[u8; 32]> {
        from_hex32(&self.hash)
    }

    /// Sets `prev` and `hash` (chains the record after `prev`); returns the hash.
    pub fn seal(&mut self, prev: &[u8; 32]) -> [u8; 32] {
        let h = self.compute_hash(prev);
        self.prev = hex(prev);
        self.hash = hex(&h);
        h
    }

    /// The record as its JSON line, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// A record's fields by reference: what the writer hashes and renders without building a
/// [`Record`] (no allocation per record: the hash is fed piece by piece, the line is written
/// into a reused buffer).
pub struct Fields<'a> {
    pub seq: u64,
    pub time_ns: u64,
    /// RFC 3339 text of `time_ns` (empty for zero).
    pub time: &'a [u8],
    pub kind: &'a str,
    pub actor: &'a str,
    pub subject: Map<'a>,
    pub detail: Map<'a>,
}

/// A record's `subject` or `detail` map by reference: the built map of an [`Entry`]
/// (crate::trail::Entry), or the pairs the trail thread took out of an order record's line
/// without building one (`Flat`: keys unique and in ascending byte order, no empty value).
#[derive(Clone, Copy)]
pub enum Map<'a> {
    Tree(&'a BTreeMap<String, String>),
    Flat(&'a [(&'a [u8], &'a [u8])]),
}

impl<'a> From<&'a BTreeMap<String, String>> for Map<'a> {
    fn from(m: &'a BTreeMap<String, String>) -> Map<'a> {
        Map::Tree(m)
    }
}

impl Map<'_> {
    fn len(&self) -> usize {
        match self {
            Map::Tree(m) => m.len(),
            Map::Flat(p) => p.len(),
        }
    }

    /// Each pair in ascending byte order of the keys (BTreeMap<String, _> iterates so).
    fn each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        match self {
            Map::Tree(m) => m.iter().for_each(|(k, v)| f(k.as_bytes(), v.as_bytes())),
            Map::Flat(p) => p.iter().for_each(|(k, v)| f(k, v)),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_fields(out: &mut Vec<u8>, m: Map<'_>) {
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    m.each(|k, v| {
        put_bytes(out, k);
        put_bytes(out, v);
    });
}

impl Fields<'_> {
    /// `SHA-256(RECORD_DOMAIN || prev || canonical)` (the same bytes as
    /// [`Record::canonical`]).
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        self.hash_in(prev, &mut Vec::new())
    }

    /// [`Fields::hash`] with the bytes laid out in `scratch` first (reused from record to
    /// record) and hashed in one call: a record's pieces are many and small, and feeding them
    /// one by one costs the hasher's buffering more than the compression.
    pub fn hash_in(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        scratch.clear();
        scratch.extend_from_slice(RECORD_DOMAIN);
        scratch.extend_from_slice(prev);
        scratch.extend_from_slice(&self.seq.to_be_bytes());
        scratch.extend_from_slice(&self.time_ns.to_be_bytes());
        put_bytes(scratch, self.time);
        put_bytes(scratch, self.kind.as_bytes());
        put_bytes(scratch, self.actor.as_bytes());
        put_fields(scratch, self.subject);
        put_fields(scratch, self.detail);
        Sha256::digest(&scratch[..]).into()
    }

    /// Appends the record's JSON line (newline included) to `out`: byte for byte what
    /// [`Record::line`] writes for the sealed record (serde_json's spelling: fields in
    /// declaration order, no spaces, its string escapes).
    pub fn line(&self, out: &mut Vec<u8>, prev: &[u8; 32], hash: &[u8; 32]) {
        out.extend_from_slice(b"{\"seq\":");
        put_u64(out, self.seq);
        out.extend_from_slice(b",\"time\":");
        json_str(out, self.time);
        out.extend_from_slice(b",\"time_ns\":");
        put_u64(out, self.time_ns);
        out.extend_from_slice(b",\"kind\":");
        json_str(out, self.kind.as_bytes());
        out.extend_from_slice(b",\"actor\":");
        json_str(out, self.actor.as_bytes());
        out.extend_from_slice(b",\"subject\":");
        json_map(out, self.subject);
        out.extend_from_slice(b",\"detail\":");
        json_map(out, self.detail);
        out.extend_from_slice(b",\"prev\":\"");
        put_hex(out, prev);
        out.extend_from_slice(b"\",\"hash\":\"");
        put_hex(out, hash);
        out.extend_from_slice(b"\"}\n");
    }
}

/// `v` in decimal.
pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
}

fn put_hex(out: &mut Vec<u8>, b: &[u8]) {
    const D: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        out.push(D[usize::from(x >> 4)]);
        out.push(D[usize::from(x & 15)]);
    }
}

/// A JSON string as serde_json writes it: `"` and `\\` and the control characters escaped
/// (`\b \f \n \r \t`, the rest as `\u00XX`), everything else (UTF-8 included) as is.
fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    // Runs of bytes that need no escape are copied whole (most values are one run).
    while let Some(n) = first_escaped(&s[start..]) {
        let i = start + n;
        let b = s[i];
        out.extend_from_slice(&s[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                put_hex(out, &[b]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Where the first byte [`json_str`] must escape is: eight bytes at a time (a word with none of
/// them is passed with a few ALU operations), then byte by byte in the word that has one.
fn first_escaped(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit in each byte of `x` that is zero (exact for the lowest such byte, which is
    // all the search needs: bytes above it are checked one by one below).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    let mut words = s.chunks_exact(8);
    for c in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // Below 0x20: some byte of (x & 0xE0…) is zero; or a byte equal to `"` or `\\`.
        let hit = zero(x & 0xE0E0_E0E0_E0E0_E0E0)
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return c
                .iter()
                .position(|&b| ESCAPED[usize::from(b)])
                .map(|i| at + i);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| ESCAPED[usize::from(b)])
        .map(|i| at + i)
}

/// The bytes [`json_str`] escapes: `"`, `\\` and the control characters.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn json_map(out: &mut Vec<u8>, m: Map<'_>) {
    out.push(b'{');
    let mut first = true;
    m.each(|k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        json_str(out, k);
        out.push(b':');
        json_str(out, v);
    });
    out.push(b'}');
}

/// What a checkpoint signs.
pub fn checkpoint_message(head_seq: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 40);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&head_seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(D[usize::from(x >> 4)]));
        s.push(char::from(D[usize::from(x & 15)]));
    }
    s
}

/// Hex (either case) to bytes; `None` on an odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| match p {
            [a, b] => Some(val(*a)? << 4 | val(*b)?),
            _ => None,
        })
        .collect()
}

/// 64 hex digits to 32 bytes.
pub fn from_hex32(s: &str) -> Option<[u8; 32]> {
    from_hex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_word_scan_finds_the_first_escaped_byte(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::Just(b'a'),
                    proptest::prelude::Just(0xC3u8),
                ],
                0..80,
            )
        ) {
            let naive = s.iter().position(|&b| ESCAPED[usize::from(b)]);
            proptest::prop_assert_eq!(first_escaped(&s), naive);
            let mut mine = Vec::new();
            json_str(&mut mine, &s);
            if let Ok(text) = std::str::from_utf8(&s) {
                proptest::prop_assert_eq!(mine, serde_json::to_vec(text).unwrap());
            }
        }
    }

    /// The record of `docs/audit-trail.md` ("Test vector").
    pub(crate) fn vector() -> Record {
        let mut subject = BTreeMap::new();
        subject.insert("session".to_string(), "FIX.4.4:CLIENT1->GW".to_string());
        let mut detail = BTreeMap::new();
        detail.insert("version".to_string(), "0.1.0".to_string());
        Record {
            seq: 1,
            time: "2026-12-07T04:00:00.000000000Z".into(),
            time_ns: 1_796_616_000_000_000_000,
            kind: "gateway-start".into(),
            actor: "gateway".into(),
            subject,
            detail,
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn hash_construction_matches_the_documented_vector() {
        let mut r = vector();
        let canonical = r.canonical();
        // u64be(1) u64be(time_ns) then length-prefixed strings and maps.
        assert_eq!(&canonical[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            &canonical[8..16],
            &1_796_616_000_000_000_000u64.to_be_bytes()
        );
        assert_eq!(&canonical[16..20], &[0, 0, 0, 30]);
        // Independently: SHA-256 over the domain, 32 zero bytes and the canonical bytes.
        let mut all = b"portcullis-audit-v1\0record\0".to_vec();
        all.extend_from_slice(&[0u8; 32]);
        all.extend_from_slice(&canonical);
        let expected: [u8; 32] = Sha256::digest(&all).into();
        let h = r.seal(&GENESIS);
        assert_eq!(h, expected);
        // The vector printed in docs/audit-trail.md.
        assert_eq!(
            hex(&canonical),
            concat!(
                "000000000000000118eedcbbadc880000000001e323032362d31322d30375430343a3030",
                "3a30302e3030303030303030305a0000000d676174657761792d73746172740000000767",
                "617465776179000000010000000773657373696f6e000000134649582e342e343a434c49",
                "454e54312d3e4757000000010000000776657273696f6e00000005302e312e30",
            )
        );
        assert_eq!(r.hash, DOC_VECTOR_HASH);
        assert_eq!(r.prev, "0".repeat(64));
    }

    /// The hash printed in docs/audit-trail.md (also computed there with Python's hashlib).
    const DOC_VECTOR_HASH: &str =
        "4e4c9e741dd65efd6be261cd95341e5bb9527efc7a4894af9b92d37a5d70e2e3";

    #[test]
    fn any_field_change_changes_the_hash_and_keys_cannot_collide_by_concatenation() {
        let base = vector();
        let h0 = base.compute_hash(&GENESIS);
        let mut a = base.clone();
        a.detail.insert("version".into(), "0.1.1".into());
        assert_ne!(a.compute_hash(&GENESIS), h0);
        // "ab"+"c" and "a"+"bc" encode differently thanks to the length prefixes.
        let mut x = base.clone();
        x.kind = "ab".into();
        x.actor = "c".into();
        let mut y = base.clone();
        y.kind = "a".into();
        y.actor = "bc".into();
        assert_ne!(x.compute_hash(&GENESIS), y.compute_hash(&GENESIS));
        assert_ne!(base.compute_hash(&[1; 32]), h0);
    }

    #[test]
    fn fields_hash_and_line_are_those_of_the_record_byte_for_byte() {
        let mut r = vector();
        r.detail.insert(
            "text".into(),
            "quote \" backslash \\ é \u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f} end".into(),
        );
        r.subject.insert("k\"\u{0}".into(), String::new());
        r.seq = u64::MAX;
        r.time_ns = 0;
        r.time.clear();
        let f = Fields {
            seq: r.seq,
            time_ns: r.time_ns,
            time: r.time.as_bytes(),
            kind: &r.kind,
            actor: &r.actor,
            subject: Map::Tree(&r.subject),
            detail: Map::Tree(&r.detail),
        };
        let prev = [7u8; 32];
        let mut by_hand = b"{".to_vec();
        by_hand.clear();
        let mut hashed = Sha256::new();
        hashed.update(RECORD_DOMAIN);
        hashed.update(prev);
        hashed.update(r.canonical());
        let h: [u8; 32] = hashed.finalize().into();
        assert_eq!(f.hash(&prev), h);
        f.line(&mut by_hand, &prev, &h);
        assert_eq!(r.seal(&prev), h);
        assert_eq!(
            String::from_utf8(by_hand).unwrap(),
            String::from_utf8(r.line()).unwrap()
        );
    }

    #[test]
    fn json_round_trip_keeps_the_hash() {
        let mut r = vector();
        r.detail
            .insert("text".into(), "quote \" backslash \\ é \u{1}".into());
        let h = r.seal(&GENESIS);
        let line = r.line();
        let back: Record = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.compute_hash(&back.prev_bytes().unwrap()), h);
        assert_eq!(from_hex32(&hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
    }
}
