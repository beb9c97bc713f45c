//! COLD — every FIX and SBE message in and out as trail records (MON-1): the trail thread drains
//! the gateway thread's message ring (`crate::handoff::messages`), splits each record into its
//! messages, masks them and writes one record per message.
//!
//! A record: kind `fix-in` / `fix-out` / `sbe-in` / `sbe-out`; actor the sender — the session
//! (`session:<name>`), the connection's address before its Logon/Negotiate is taken
//! (`address:<ip>`), the venue (`venue:<name>`), or `gateway` for what the gateway sent;
//! subject what `audit trail` searches by (`session` or `venue`, `address`, `key` on a logon,
//! `cl_ord_id`, `orig_cl_ord_id` and the gateway's `order_id`, also read out of the ClOrdIDs the
//! gateway gives a venue); detail `message` (FIX: the message with `|` for SOH; SBE: the frame
//! decoded, one `Name=value` per field), `msg_type`, `seq`, `bytes` and `peer`.
//!
//! Masked: Password <554>, NewPassword <925>, RawData <96> (the logon signature) and the
//! FIXP signatures become `***`; an account keeps its last 4 characters; card-number-like digit
//! runs keep their last 4 digits everywhere but in the order and execution identifiers
//! (`crate::auth::mask`).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use arrayvec::ArrayVec;

use crate::auth::mask;
use crate::handoff::messages::{message_end, MessageReader, Meta};
use crate::model::Nanos;

use super::chain::{put_u64, Map};

/// Tags whose values are never written: RawData, Password, NewPassword, EncryptedPassword,
/// EncryptedNewPassword, Signature, SecureData.
pub const SECRET: [i32; 7] = [96, 554, 925, 1400, 1402, 89, 91];
/// The length fields of the data fields among them (RawDataLength, SignatureLength,
/// SecureDataLen): a data field's value may carry SOH.
const DATA_LENGTH: [i32; 3] = [95, 93, 90];
/// Identifiers kept as sent (what forensics searches by): ClOrdID, OrderID, OrigClOrdID,
/// ExecID, ExecRefID, SecondaryOrderID, MassStatusReqID, OrdStatusReqID, RefSeqNum.
const IDS: [i32; 9] = [11, 37, 41, 17, 19, 198, 584, 790, 45];
const ACCOUNT: i32 = 1;

/// The ring the trail thread drains, with the names its indices stand for.
pub struct MessageSource {
    pub reader: MessageReader,
    pub sessions: Vec<String>,
    pub venues: Vec<String>,
    /// Reused: the ring record being split.
    buf: Vec<u8>,
    /// Reused: the record of the message being written.
    rendered: Rendered,
}

impl MessageSource {
    pub fn new(reader: MessageReader, sessions: Vec<String>, venues: Vec<String>) -> Self {
        MessageSource {
            reader,
            sessions,
            venues,
            buf: Vec::new(),
            rendered: Rendered::default(),
        }
    }

    /// Writes the records of at most `max` ring records through `write(at, kind, actor,
    /// subject, detail)`; returns how many ring records were taken.
    pub fn drain(
        &mut self,
        max: usize,
        mut write: impl FnMut(Nanos, &str, &str, Map<'_>, Map<'_>),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Some(meta) = self.reader.pop(&mut self.buf) else {
                break;
            };
            n += 1;
            let mut rest = &self.buf[..];
            while !rest.is_empty() {
                let end = message_end(rest, meta.sbe).unwrap_or(rest.len());
                let (msg, tail) = rest.split_at(end);
                self.rendered
                    .render(&meta, msg, &self.sessions, &self.venues);
                self.rendered.write(meta.at, &mut write);
                rest = tail;
            }
        }
        n
    }
}

/// Keys a record's subject can have (one value each; the first one found is kept).
const SUBJECT_KEYS: usize = 8;
/// Keys a record's detail can have.
const DETAIL_KEYS: usize = 10;

/// One message's record, built into buffers reused from message to message (no allocation
/// once they have grown, no formatting machinery): every value is a range of one text
/// buffer, each key at most once (the first value found wins; empty values are left out).
#[derive(Debug, Default)]
pub struct Rendered {
    kind: &'static str,
    text: Vec<u8>,
    actor: Range<usize>,
    subject: ArrayVec<(&'static str, Range<usize>), SUBJECT_KEYS>,
    detail: ArrayVec<(&'static str, Range<usize>), DETAIL_KEYS>,
}

impl Rendered {
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn actor(&self) -> &str {
        self.str(&self.actor)
    }

    /// The subject's value for `key`, if the record has one.
    pub fn subject(&self, key: &str) -> Option<&str> {
        let (_, r) = self.subject.iter().find(|(k, _)| *k == key)?;
        Some(self.str(r))
    }

    /// The detail's value for `key`, if the record has one.
    pub fn detail(&self, key: &str) -> Option<&str> {
        let (_, r) = self.detail.iter().find(|(k, _)| *k == key)?;
        Some(self.str(r))
    }

    /// Every value is written as UTF-8 (bytes that are not are escaped on the way in).
    fn str(&self, r: &Range<usize>) -> &str {
        std::str::from_utf8(self.text.get(r.clone()).unwrap_or_default()).unwrap_or_default()
    }

    fn write(&mut self, at: Nanos, write: &mut impl FnMut(Nanos, &str, &str, Map<'_>, Map<'_>)) {
        self.subject.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.detail.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let text = &self.text[..];
        let flat = |v: &[(&'static str, Range<usize>)]| {
            v.iter()
                .map(|(k, r)| (k.as_bytes(), &text[r.clone()]))
                .collect::<ArrayVec<(&[u8], &[u8]), DETAIL_KEYS>>()
        };
        let (s, d) = (flat(&self.subject), flat(&self.detail));
        write(
            at,
            self.kind,
            self.str(&self.actor),
            Map::Flat(&s),
            Map::Flat(&d),
        );
    }

    /// The text written since `from`, as a value of `key` (left out if empty or if the key
    /// has one already).
    fn subject_from(&mut self, key: &'static str, from: usize) {
        put_key(&mut self.subject, key, from..self.text.len());
    }

    fn detail_from(&mut self, key: &'static str, from: usize) {
        put_key(&mut self.detail, key, from..self.text.len());
    }

    /// `value` as text (see [`push_text`]) under `key` of the subject.
    fn subject_text(&mut self, key: &'static str, value: &[u8]) {
        let at = self.text.len();
        push_text(&mut self.text, value);
        self.subject_from(key, at);
    }

    fn detail_text(&mut self, key: &'static str, value: &[u8]) {
        let at = self.text.len();
        push_text(&mut self.text, value);
        self.detail_from(key, at);
    }

    fn detail_u64(&mut self, key: &'static str, v: u64) {
        let at = self.text.len();
        put_u64(&mut self.text, v);
        self.detail_from(key, at);
    }

    /// Builds the record of one message (`msg` is one whole FIX message or SBE frame, or
    /// bytes that are neither, recorded as such).
    pub fn render(&mut self, meta: &Meta, msg: &[u8], sessions: &[String], venues: &[String]) {
        self.text.clear();
        self.subject.clear();
        self.detail.clear();
        self.kind = match (meta.sbe, meta.outbound) {
            (false, false) => "fix-in",
            (false, true) => "fix-out",
            (true, false) => "sbe-in",
            (true, true) => "sbe-out",
        };
        // The names: the session's or venue's (`#<index>` for one the list lacks).
        let name = |t: &mut Vec<u8>, names: &[String], i: usize| match names.get(i) {
            Some(n) => t.extend_from_slice(n.as_bytes()),
            None => {
                t.push(b'#');
                put_u64(t, i as u64);
            }
        };
        let at = self.text.len();
        put_ip(&mut self.text, meta.peer.ip());
        let ip = at..self.text.len();
        let at = self.text.len();
        match (meta.outbound, meta.session, meta.venue) {
            (true, _, _) => self.text.extend_from_slice(b"gateway"),
            (false, _, Some(v)) => {
                self.text.extend_from_slice(b"venue:");
                name(&mut self.text, venues, v.index());
            }
            (false, Some(s), None) => {
                self.text.extend_from_slice(b"session:");
                name(&mut self.text, sessions, s.index());
            }
            (false, None, None) => {
                self.text.extend_from_slice(b"address:");
                self.text.extend_from_within(ip.clone());
            }
        }
        self.actor = at..self.text.len();
        match (meta.venue, meta.session) {
            (Some(v), _) => {
                let at = self.text.len();
                name(&mut self.text, venues, v.index());
                self.subject_from("venue", at);
            }
            (None, s) => {
                put_key(&mut self.subject, "address", ip);
                if let Some(s) = s {
                    let at = self.text.len();
                    name(&mut self.text, sessions, s.index());
                    self.subject_from("session", at);
                }
            }
        }
        self.detail_u64("bytes", msg.len() as u64);
        let at = self.text.len();
        put_peer(&mut self.text, meta.peer);
        self.detail_from("peer", at);
        if meta.sbe {
            sbe_fields(msg, self);
        } else {
            fix_fields(msg, meta.venue.is_some(), self);
        }
    }
}

/// Adds `key` = `value` unless the value is empty or the key has one already.
fn put_key<const N: usize>(
    list: &mut ArrayVec<(&'static str, Range<usize>), N>,
    key: &'static str,
    value: Range<usize>,
) {
    if !value.is_empty() && !list.iter().any(|(k, _)| *k == key) {
        // Full cannot happen (each key once, and there are fewer keys than room).
        let _ = list.try_push((key, value));
    }
}

/// The record of one message, built into a fresh [`Rendered`] (tests and the fuzz target).
pub fn render(meta: &Meta, msg: &[u8], sessions: &[String], venues: &[String]) -> Rendered {
    let mut r = Rendered::default();
    r.render(meta, msg, sessions, venues);
    r
}

/// An address as `Display` writes it (IPv4 without the formatting machinery).
fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, b) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                put_u64(out, u64::from(b));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// A peer as `SocketAddr`'s `Display` writes it.
fn put_peer(out: &mut Vec<u8>, p: SocketAddr) {
    match p {
        SocketAddr::V4(v4) => {
            put_ip(out, IpAddr::V4(*v4.ip()));
            out.push(b':');
            put_u64(out, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{p}");
        }
    }
}

/// Bytes as text: UTF-8 as is, any other byte as `\xNN`.
fn push_text(out: &mut Vec<u8>, b: &[u8]) {
    if b.is_ascii() {
        out.extend_from_slice(b);
        return;
    }
    for c in b.utf8_chunks() {
        out.extend_from_slice(c.valid().as_bytes());
        for x in c.invalid() {
            put_byte_escape(out, *x);
        }
    }
}

/// `\xNN`, upper-case hex.
fn put_byte_escape(out: &mut Vec<u8>, x: u8) {
    const D: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'\\', b'x', D[usize::from(x >> 4)], D[usize::from(x & 15)]]);
}

/// The tag of a `<tag>=<value>` piece and where its `=` is. Leading zeros are read as any
/// parser would read them (`0096=` is RawData to the masking, whatever a FIX engine thinks).
fn tag_of(field: &[u8]) -> Option<(i32, usize)> {
    let eq = field.iter().position(|b| *b == b'=')?;
    let digits = field.get(..eq)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let significant = &digits[digits.iter().take_while(|b| **b == b'0').count()..];
    if significant.len() > 9 {
        return None;
    }
    let tag = significant
        .iter()
        .fold(0i32, |t, d| t * 10 + i32::from(d - b'0'));
    Some((tag, eq))
}

/// Where a value read out of a FIX message goes in the record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Subject(&'static str),
    Detail(&'static str),
}

/// A FIX message, masked, with `|` for SOH; the identifiers and the type and sequence number
/// go to the record's fields. A piece after a secret field that is not `<tag>=` (a RawData
/// carrying an SOH) is taken for more of the secret.
fn fix_fields<'m>(msg: &'m [u8], venue: bool, r: &mut Rendered) {
    // The values the record's fields take, each key once (the first non-empty one).
    let mut found: ArrayVec<(To, &'m [u8]), 12> = ArrayVec::new();
    let mut find = |to: To, v: &'m [u8]| {
        if !v.is_empty() && !found.iter().any(|(t, _)| *t == to) {
            let _ = found.try_push((to, v));
        }
    };
    // The gateway's OrderID, read out of the first of its own ClOrdIDs toward a venue.
    let mut venue_order_id: Option<u64> = None;
    let start = r.text.len();
    let out = &mut r.text;
    let mut in_secret = false;
    // A data field's declared length, and how much of a secret's declared length the pieces
    // after its first SOH still cover.
    let mut data_len: Option<usize> = None;
    let mut secret_left = 0usize;
    let body = msg.strip_suffix(&[1u8]).unwrap_or(msg);
    for (i, field) in body.split(|b| *b == 1).enumerate() {
        if i > 0 {
            out.push(b'|');
        }
        if secret_left > 0 {
            out.extend_from_slice(b"***");
            secret_left = secret_left.saturating_sub(field.len() + 1);
            continue;
        }
        let Some((tag, eq)) = tag_of(field) else {
            if in_secret {
                out.extend_from_slice(b"***");
            } else {
                let at = out.len();
                put_escaped(out, field);
                mask_cards(&mut out[at..]);
            }
            continue;
        };
        let value = &field[eq + 1..];
        in_secret = SECRET.contains(&tag);
        out.extend_from_slice(&field[..=eq]);
        if in_secret {
            out.extend_from_slice(b"***");
            if let Some(n) = data_len.take() {
                secret_left = n.saturating_sub(value.len());
            }
            continue;
        }
        data_len = DATA_LENGTH
            .contains(&tag)
            .then(|| crate::fix::decode::parse_uint(value))
            .flatten()
            .map(|n| n.min(u64::from(u32::MAX)) as usize);
        if tag == ACCOUNT {
            put_account(out, value);
            continue;
        }
        let at = out.len();
        put_escaped(out, value);
        if !IDS.contains(&tag) {
            mask_cards(&mut out[at..]);
        }
        match (tag, venue) {
            (35, _) => find(To::Detail("msg_type"), value),
            (34, _) => find(To::Detail("seq"), value),
            (553, false) => find(To::Subject("key"), value),
            (11, false) => find(To::Subject("cl_ord_id"), value),
            (41, false) => find(To::Subject("orig_cl_ord_id"), value),
            (37, false) => find(To::Subject("order_id"), value),
            // The gateway's ClOrdIDs toward a venue carry its OrderID: `<slot>.<OrderID>.<n>`.
            (11 | 41, true) => {
                if venue_order_id.is_none() {
                    venue_order_id = crate::venue::fix::parse_venue_cl_ord_id(value)
                        .map(|(_, order_id, _)| order_id);
                }
                let k = if tag == 11 {
                    "venue_cl_ord_id"
                } else {
                    "venue_orig_cl_ord_id"
                };
                find(To::Detail(k), value);
            }
            (37, true) => find(To::Detail("venue_order_id"), value),
            _ => {}
        }
    }
    // Bytes that are not UTF-8 are written escaped (rare: checked once, for the whole text).
    if std::str::from_utf8(&out[start..]).is_err() {
        let raw = out.split_off(start);
        push_text(out, &raw);
    }
    r.detail_from("message", start);
    for (to, v) in found {
        match to {
            To::Subject(k) => r.subject_text(k, v),
            To::Detail(k) => r.detail_text(k, v),
        }
    }
    if let Some(order_id) = venue_order_id {
        let at = r.text.len();
        put_u64(&mut r.text, order_id);
        r.subject_from("order_id", at);
    }
    if !msg.ends_with(&[1u8]) && !msg.is_empty() {
        let at = r.text.len();
        r.text.extend_from_slice(b"not a whole FIX message");
        r.detail_from("framing", at);
    }
}

/// An account keeps its last 4 characters (as text, then `|` escaped like any value).
fn put_account(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_ascii() {
        let keep = value.len().saturating_sub(4);
        out.resize(out.len() + keep, b'*');
        put_escaped(out, &value[keep..]);
    } else {
        let mut t = Vec::with_capacity(value.len() + 8);
        push_text(&mut t, value);
        let t = String::from_utf8_lossy(&t);
        put_escaped(out, mask::account(&t).as_bytes());
    }
}

/// [`mask::card_numbers`] on a value long enough to hold one (13 digits at least).
fn mask_cards(v: &mut [u8]) {
    if v.len() >= 13 {
        mask::card_numbers(v);
    }
}

/// `value` with any `|` written as `\x7C` (the record's separator stays unambiguous).
fn put_escaped(out: &mut Vec<u8>, value: &[u8]) {
    if !value.contains(&b'|') {
        out.extend_from_slice(value);
        return;
    }
    for part in value.split_inclusive(|b| *b == b'|') {
        match part.split_last() {
            Some((b'|', head)) => {
                out.extend_from_slice(head);
                out.extend_from_slice(b"\\x7C");
            }
            _ => out.extend_from_slice(part),
        }
    }
}

/// An SBE frame decoded and masked (signatures never shown, accounts and card numbers masked
/// but for the identifiers), with its identifiers in the record's fields.
fn sbe_fields(frame: &[u8], r: &mut Rendered) {
    use crate::sbe::Message as M;
    let described = crate::fixp::client::describe(frame);
    let masked = mask_described(&described);
    let at = r.text.len();
    r.text.extend_from_slice(masked.as_bytes());
    r.detail_from("message", at);
    let name = described.split(' ').next().unwrap_or("");
    r.detail_text("msg_type", name.as_bytes());
    if let Some(seq) = described.split(' ').find_map(|w| {
        w.strip_prefix("seq=")
            .or_else(|| w.strip_prefix("seq_num="))
    }) {
        r.detail_text("seq", seq.as_bytes());
    }
    let Ok(msg) = crate::sbe::decode(frame) else {
        return;
    };
    let mut ids = |cl: &[u8], orig: &[u8], order_id: u64| {
        r.subject_text("cl_ord_id", cl);
        r.subject_text("orig_cl_ord_id", orig);
        if order_id != 0 {
            let at = r.text.len();
            put_u64(&mut r.text, order_id);
            r.subject_from("order_id", at);
        }
    };
    match &msg {
        M::NewOrderSingle(m) => ids(m.cl_ord_id(), b"", 0),
        M::OrderCancelRequest(m) => ids(m.cl_ord_id(), m.orig_cl_ord_id(), 0),
        M::OrderCancelReplaceRequest(m) => ids(m.cl_ord_id(), m.orig_cl_ord_id(), 0),
        M::OrderMassCancelRequest(m) => ids(m.cl_ord_id(), b"", 0),
        M::OrderStatusRequest(m) => ids(m.cl_ord_id(), b"", 0),
        M::Negotiate(m) => r.subject_text("key", m.access_key_id()),
        M::Establish(m) => r.subject_text("key", m.access_key_id()),
        _ => match crate::fixp::client::report(&msg) {
            Some(crate::fixp::client::Report::Exec(e)) => ids(
                e.cl_ord_id.as_str().as_bytes(),
                e.orig_cl_ord_id.as_str().as_bytes(),
                e.order_id,
            ),
            Some(crate::fixp::client::Report::CancelReject(c)) => ids(
                c.cl_ord_id.as_str().as_bytes(),
                c.orig_cl_ord_id.as_str().as_bytes(),
                c.order_id,
            ),
            _ => {}
        },
    }
}

/// A decoded SBE frame's text with `Account=` values masked and card numbers masked outside
/// the identifier fields.
fn mask_described(d: &str) -> String {
    let mut out = d.as_bytes().to_vec();
    mask::card_numbers(&mut out);
    // Put the identifiers back as they were (masking keeps lengths).
    for key in ["ClOrdID=", "OrigClOrdID=", "OrderID=", "ExecID="] {
        let mut from = 0;
        while let Some(at) = d.get(from..).and_then(|t| t.find(key)) {
            let start = from + at + key.len();
            let end = d[start..].find(' ').map_or(d.len(), |e| start + e);
            out[start..end].copy_from_slice(&d.as_bytes()[start..end]);
            from = end;
        }
    }
    let mut s = String::from_utf8(out).unwrap_or_else(|_| d.to_string());
    let key = "Account=";
    let mut from = 0;
    while let Some(at) = s.get(from..).and_then(|t| t.find(key)) {
        let start = from + at + key.len();
        let end = s[start..].find(' ').map_or(s.len(), |e| start + e);
        let masked = mask::account(&s[start..end]);
        s.replace_range(start..end, &masked);
        from = start + masked.len();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SessionId, VenueId};

    fn meta(outbound: bool, session: Option<u32>, venue: Option<u16>) -> Meta {
        Meta {
            at: Nanos(1),
            session: session.map(SessionId),
            venue: venue.map(VenueId),
            outbound,
            sbe: false,
            peer: SocketAddr::from(([192, 0, 2, 7], 50_123)),
        }
    }

    #[test]
    fn a_logon_keeps_its_key_and_loses_its_secrets() {
        let logon = b"8=FIX.4.4\x019=99\x0135=A\x0134=1\x0149=C\x0156=GW\x01553=key-1\x01554=hunter2\x0195=5\x0196=ab\x01cd\x0158=card 4111 1111 1111 1111\x0110=000\x01";
        let r = render(&meta(false, None, None), logon, &[], &[]);
        assert_eq!(r.kind(), "fix-in");
        assert_eq!(r.actor(), "address:192.0.2.7");
        assert_eq!(r.subject("key"), Some("key-1"));
        assert_eq!(r.subject("address"), Some("192.0.2.7"));
        let m = r.detail("message").unwrap_or_default();
        assert!(m.contains("554=***|95=5|96=***|***|58="), "{m}");
        assert!(
            !m.contains("hunter2") && !m.contains("ab") && !m.contains("cd|"),
            "{m}"
        );
        assert!(m.contains("**** **** **** 1111"), "{m}");
        assert_eq!(r.detail("msg_type"), Some("A"));
        assert_eq!(r.detail("seq"), Some("1"));
        assert_eq!(r.detail("peer"), Some("192.0.2.7:50123"));
    }

    #[test]
    fn identifiers_stay_as_sent_and_accounts_are_masked() {
        let er = b"8=FIX.4.4\x019=99\x0135=8\x0134=7\x0111=4111111111111111\x0137=42\x011=ACC-123456789\x0110=000\x01";
        let r = render(&meta(true, Some(0), None), er, &["S0".into()], &[]);
        assert_eq!(r.kind(), "fix-out");
        assert_eq!(r.actor(), "gateway");
        assert_eq!(r.subject("session"), Some("S0"));
        assert_eq!(r.subject("cl_ord_id"), Some("4111111111111111"));
        assert_eq!(r.subject("order_id"), Some("42"));
        let m = r.detail("message").unwrap_or_default();
        assert!(
            m.contains("|11=4111111111111111|37=42|1=*********6789|"),
            "{m}"
        );
    }

    #[test]
    fn a_venue_message_is_found_by_the_gateways_order_id() {
        let nos = b"8=FIX.4.4\x019=99\x0135=D\x0134=3\x0111=5.42.0\x0137=V-9\x0110=000\x01";
        let r = render(
            &meta(false, None, Some(1)),
            nos,
            &[],
            &["A".into(), "XNAS".into()],
        );
        assert_eq!(r.actor(), "venue:XNAS");
        assert_eq!(r.subject("venue"), Some("XNAS"));
        assert_eq!(r.subject("order_id"), Some("42"));
        assert_eq!(r.subject("cl_ord_id"), None);
        assert_eq!(r.detail("venue_cl_ord_id"), Some("5.42.0"));
        assert_eq!(r.detail("venue_order_id"), Some("V-9"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_written_escaped() {
        let m = b"8=FIX.4.4\x019=9\x0135=0\x0158=\xff\xfe|x\x0110=000\x01";
        let r = render(&meta(false, Some(0), None), m, &[], &[]);
        let text = r.detail("message").unwrap_or_default();
        assert!(text.contains("58=\\xFF\\xFE\\x7Cx|"), "{text}");
        assert_eq!(r.subject("session"), Some("#0"));
    }

    #[test]
    fn the_fuzz_seeds_hold_the_fuzz_invariants() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz/seeds/trail_message");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            crate::fuzzing::trail_message(&std::fs::read(f.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 5);
        // A RawData carrying SOH, and a value carrying the separator.
        crate::fuzzing::trail_message(
            b"\x008=FIX.4.4\x019=30\x0135=A\x0195=5\x0196=a\x01b=c\x0158=x|y\x0110=000\x01",
        );
        // A secret tag written with leading zeros is still masked.
        let m = b"8=FIX.4.4\x019=30\x0135=A\x010000000000554=pw\x01000=x\x0110=000\x01";
        let r = render(&meta(false, None, None), m, &[], &[]);
        let text = r.detail("message").unwrap_or_default();
        assert!(text.contains("|0000000000554=***|000=x|"), "{text}");
        crate::fuzzing::trail_message(&[&[0u8][..], &m[..]].concat());
        // RawData whose declared length covers what looks like more fields.
        let m = b"8=FIX.4.4\x019=30\x0135=A\x0195=8\x0196=a\x01554=bc\x0158=x\x0110=000\x01";
        let r = render(&meta(false, None, None), m, &[], &[]);
        let text = r.detail("message").unwrap_or_default();
        assert!(text.contains("|95=8|96=***|***|58=x|"), "{text}");
    }

    #[test]
    fn each_key_takes_the_first_value_given_and_empty_values_are_left_out() {
        let m = b"8=FIX.4.4\x019=9\x0135=\x0135=D\x0135=F\x0134=2\x0111=\x0111=A\x0111=B\x011=\xc3\xa9t\xc3\xa9-12\x7c4\x0110=000";
        let mut meta = meta(false, Some(3), None);
        meta.peer = "[2001:db8::1]:9000".parse().unwrap();
        let r = render(&meta, m, &["S0".into()], &[]);
        assert_eq!(r.detail("msg_type"), Some("D"));
        assert_eq!(r.subject("cl_ord_id"), Some("A"));
        assert_eq!(r.subject("orig_cl_ord_id"), None);
        assert_eq!(r.subject("session"), Some("#3"));
        assert_eq!(r.actor(), "session:#3");
        assert_eq!(r.subject("address"), Some("2001:db8::1"));
        assert_eq!(r.detail("peer"), Some("[2001:db8::1]:9000"));
        assert_eq!(r.detail("framing"), Some("not a whole FIX message"));
        let text = r.detail("message").unwrap_or_default();
        // A non-ASCII account keeps its last 4 characters, its `|` escaped after masking.
        assert!(text.contains("|1=****12\\x7C4|10=000"), "{text}");
        // A second rendering into the same buffers leaves nothing of the first behind.
        let mut again = r;
        let logon = b"8=FIX.4.4\x019=9\x0135=A\x01553=k\x0110=000\x01";
        again.render(&self::meta(false, None, None), logon, &[], &[]);
        assert_eq!(again.subject("cl_ord_id"), None);
        assert_eq!(again.subject("key"), Some("k"));
        assert_eq!(again.detail("framing"), None);
        assert_eq!(again.actor(), "address:192.0.2.7");
    }

    #[test]
    fn sbe_descriptions_mask_accounts_and_cards_but_not_identifiers() {
        let d = "NewOrderSingle seq=3 ClOrdID=4111111111111111 Symbol=X Account=ACC-123456789 \
                 Text=4111111111111111";
        let m = mask_described(d);
        assert!(m.contains("ClOrdID=4111111111111111 "), "{m}");
        assert!(m.contains("Account=*********6789 "), "{m}");
        assert!(m.ends_with("Text=************1111"), "{m}");
    }
}
