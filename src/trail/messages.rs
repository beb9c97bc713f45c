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

use std::net::SocketAddr;

use crate::auth::mask;
use crate::handoff::messages::{message_end, MessageReader, Meta};
use crate::model::Nanos;

use super::chain::Map;

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
}

impl MessageSource {
    pub fn new(reader: MessageReader, sessions: Vec<String>, venues: Vec<String>) -> Self {
        MessageSource {
            reader,
            sessions,
            venues,
            buf: Vec::new(),
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
                let r = render(&meta, msg, &self.sessions, &self.venues);
                r.write(meta.at, &mut write);
                rest = tail;
            }
        }
        n
    }
}

/// One message's record, built.
#[derive(Debug, Default)]
pub struct Rendered {
    pub kind: &'static str,
    pub actor: String,
    pub subject: Vec<(&'static str, String)>,
    pub detail: Vec<(&'static str, String)>,
}

impl Rendered {
    fn write(mut self, at: Nanos, write: &mut impl FnMut(Nanos, &str, &str, Map<'_>, Map<'_>)) {
        self.subject.retain(|(_, v)| !v.is_empty());
        self.detail.retain(|(_, v)| !v.is_empty());
        self.subject.sort_by(|a, b| a.0.cmp(b.0));
        self.detail.sort_by(|a, b| a.0.cmp(b.0));
        self.subject.dedup_by(|a, b| a.0 == b.0);
        self.detail.dedup_by(|a, b| a.0 == b.0);
        fn flat<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'a [u8], &'a [u8])> {
            v.iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                .collect()
        }
        let (s, d) = (flat(&self.subject), flat(&self.detail));
        write(at, self.kind, &self.actor, Map::Flat(&s), Map::Flat(&d));
    }
}

/// The record of one message (`msg` is one whole FIX message or SBE frame, or bytes that are
/// neither, recorded as such).
pub fn render(meta: &Meta, msg: &[u8], sessions: &[String], venues: &[String]) -> Rendered {
    let name =
        |names: &[String], i: usize| names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
    let session = meta.session.map(|s| name(sessions, s.index()));
    let venue = meta.venue.map(|v| name(venues, v.index()));
    let ip = meta.peer.ip().to_string();
    let actor = match (meta.outbound, &session, &venue) {
        (true, _, _) => "gateway".to_string(),
        (false, _, Some(v)) => format!("venue:{v}"),
        (false, Some(s), None) => format!("session:{s}"),
        (false, None, None) => format!("address:{ip}"),
    };
    let mut r = Rendered {
        kind: match (meta.sbe, meta.outbound) {
            (false, false) => "fix-in",
            (false, true) => "fix-out",
            (true, false) => "sbe-in",
            (true, true) => "sbe-out",
        },
        actor,
        subject: Vec::with_capacity(8),
        detail: Vec::with_capacity(8),
    };
    match (&venue, session) {
        (Some(v), _) => r.subject.push(("venue", v.clone())),
        (None, s) => {
            r.subject.push(("address", ip));
            if let Some(s) = s {
                r.subject.push(("session", s));
            }
        }
    }
    r.detail.push(("bytes", msg.len().to_string()));
    r.detail.push(("peer", peer_text(meta.peer)));
    if meta.sbe {
        sbe_fields(msg, &mut r);
    } else {
        fix_fields(msg, venue.is_some(), &mut r);
    }
    r
}

fn peer_text(p: SocketAddr) -> String {
    p.to_string()
}

/// Bytes as text: UTF-8 as is, any other byte as `\xNN`.
fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut s = String::with_capacity(b.len() + 8);
            for c in b.utf8_chunks() {
                s.push_str(c.valid());
                for x in c.invalid() {
                    s.push_str(&format!("\\x{x:02X}"));
                }
            }
            s
        }
    }
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

/// A FIX message, masked, with `|` for SOH; the identifiers and the type and sequence number
/// go to the record's fields. A piece after a secret field that is not `<tag>=` (a RawData
/// carrying an SOH) is taken for more of the secret.
fn fix_fields(msg: &[u8], venue: bool, r: &mut Rendered) {
    let mut out: Vec<u8> = Vec::with_capacity(msg.len() + 16);
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
                put_escaped(&mut out, field);
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
            put_escaped(&mut out, mask::account(&text(value)).as_bytes());
            continue;
        }
        let at = out.len();
        put_escaped(&mut out, value);
        if !IDS.contains(&tag) {
            mask_cards(&mut out[at..]);
        }
        let v = || text(value);
        match (tag, venue) {
            (35, _) => r.detail.push(("msg_type", v())),
            (34, _) => r.detail.push(("seq", v())),
            (553, false) => r.subject.push(("key", v())),
            (11, false) => r.subject.push(("cl_ord_id", v())),
            (41, false) => r.subject.push(("orig_cl_ord_id", v())),
            (37, false) => r.subject.push(("order_id", v())),
            // The gateway's ClOrdIDs toward a venue carry its OrderID: `<slot>.<OrderID>.<n>`.
            (11 | 41, true) => {
                if let Some((_, order_id, _)) = crate::venue::fix::parse_venue_cl_ord_id(value) {
                    r.subject.push(("order_id", order_id.to_string()));
                }
                let k = if tag == 11 {
                    "venue_cl_ord_id"
                } else {
                    "venue_orig_cl_ord_id"
                };
                r.detail.push((k, v()));
            }
            (37, true) => r.detail.push(("venue_order_id", v())),
            _ => {}
        }
    }
    if !msg.ends_with(&[1u8]) && !msg.is_empty() {
        r.detail
            .push(("framing", "not a whole FIX message".to_string()));
    }
    let message = match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => text(e.as_bytes()),
    };
    r.detail.push(("message", message));
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
    r.detail.push(("message", mask_described(&described)));
    let Ok(msg) = crate::sbe::decode(frame) else {
        return;
    };
    let s = |b: &[u8]| text(b);
    let ids: (Vec<u8>, Vec<u8>, u64) = match &msg {
        M::NewOrderSingle(m) => (m.cl_ord_id().to_vec(), Vec::new(), 0),
        M::OrderCancelRequest(m) => (m.cl_ord_id().to_vec(), m.orig_cl_ord_id().to_vec(), 0),
        M::OrderCancelReplaceRequest(m) => (m.cl_ord_id().to_vec(), m.orig_cl_ord_id().to_vec(), 0),
        M::OrderMassCancelRequest(m) => (m.cl_ord_id().to_vec(), Vec::new(), 0),
        M::OrderStatusRequest(m) => (m.cl_ord_id().to_vec(), Vec::new(), 0),
        M::Negotiate(m) => {
            r.subject.push(("key", s(m.access_key_id())));
            (Vec::new(), Vec::new(), 0)
        }
        M::Establish(m) => {
            r.subject.push(("key", s(m.access_key_id())));
            (Vec::new(), Vec::new(), 0)
        }
        _ => match crate::fixp::client::report(&msg) {
            Some(crate::fixp::client::Report::Exec(e)) => (
                e.cl_ord_id.as_str().as_bytes().to_vec(),
                e.orig_cl_ord_id.as_str().as_bytes().to_vec(),
                e.order_id,
            ),
            Some(crate::fixp::client::Report::CancelReject(c)) => (
                c.cl_ord_id.as_str().as_bytes().to_vec(),
                c.orig_cl_ord_id.as_str().as_bytes().to_vec(),
                c.order_id,
            ),
            _ => (Vec::new(), Vec::new(), 0),
        },
    };
    r.subject.push(("cl_ord_id", s(&ids.0)));
    r.subject.push(("orig_cl_ord_id", s(&ids.1)));
    if ids.2 != 0 {
        r.subject.push(("order_id", ids.2.to_string()));
    }
    let name = described.split(' ').next().unwrap_or("");
    r.detail.push(("msg_type", name.to_string()));
    if let Some(seq) = described.split(' ').find_map(|w| {
        w.strip_prefix("seq=")
            .or_else(|| w.strip_prefix("seq_num="))
    }) {
        r.detail.push(("seq", seq.to_string()));
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

    fn get<'a>(v: &'a [(&'static str, String)], k: &str) -> Option<&'a str> {
        v.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_logon_keeps_its_key_and_loses_its_secrets() {
        let logon = b"8=FIX.4.4\x019=99\x0135=A\x0134=1\x0149=C\x0156=GW\x01553=key-1\x01554=hunter2\x0195=5\x0196=ab\x01cd\x0158=card 4111 1111 1111 1111\x0110=000\x01";
        let r = render(&meta(false, None, None), logon, &[], &[]);
        assert_eq!(r.kind, "fix-in");
        assert_eq!(r.actor, "address:192.0.2.7");
        assert_eq!(get(&r.subject, "key"), Some("key-1"));
        assert_eq!(get(&r.subject, "address"), Some("192.0.2.7"));
        let m = get(&r.detail, "message").unwrap_or_default();
        assert!(m.contains("554=***|95=5|96=***|***|58="), "{m}");
        assert!(
            !m.contains("hunter2") && !m.contains("ab") && !m.contains("cd|"),
            "{m}"
        );
        assert!(m.contains("**** **** **** 1111"), "{m}");
        assert_eq!(get(&r.detail, "msg_type"), Some("A"));
        assert_eq!(get(&r.detail, "seq"), Some("1"));
        assert_eq!(get(&r.detail, "peer"), Some("192.0.2.7:50123"));
    }

    #[test]
    fn identifiers_stay_as_sent_and_accounts_are_masked() {
        let er = b"8=FIX.4.4\x019=99\x0135=8\x0134=7\x0111=4111111111111111\x0137=42\x011=ACC-123456789\x0110=000\x01";
        let r = render(&meta(true, Some(0), None), er, &["S0".into()], &[]);
        assert_eq!(r.kind, "fix-out");
        assert_eq!(r.actor, "gateway");
        assert_eq!(get(&r.subject, "session"), Some("S0"));
        assert_eq!(get(&r.subject, "cl_ord_id"), Some("4111111111111111"));
        assert_eq!(get(&r.subject, "order_id"), Some("42"));
        let m = get(&r.detail, "message").unwrap_or_default();
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
        assert_eq!(r.actor, "venue:XNAS");
        assert_eq!(get(&r.subject, "venue"), Some("XNAS"));
        assert_eq!(get(&r.subject, "order_id"), Some("42"));
        assert_eq!(get(&r.subject, "cl_ord_id"), None);
        assert_eq!(get(&r.detail, "venue_cl_ord_id"), Some("5.42.0"));
        assert_eq!(get(&r.detail, "venue_order_id"), Some("V-9"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_written_escaped() {
        let m = b"8=FIX.4.4\x019=9\x0135=0\x0158=\xff\xfe|x\x0110=000\x01";
        let r = render(&meta(false, Some(0), None), m, &[], &[]);
        let text = get(&r.detail, "message").unwrap_or_default();
        assert!(text.contains("58=\\xFF\\xFE\\x7Cx|"), "{text}");
        assert_eq!(get(&r.subject, "session"), Some("#0"));
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
        let text = get(&r.detail, "message").unwrap_or_default();
        assert!(text.contains("|0000000000554=***|000=x|"), "{text}");
        crate::fuzzing::trail_message(&[&[0u8][..], &m[..]].concat());
        // RawData whose declared length covers what looks like more fields.
        let m = b"8=FIX.4.4\x019=30\x0135=A\x0195=8\x0196=a\x01554=bc\x0158=x\x0110=000\x01";
        let r = render(&meta(false, None, None), m, &[], &[]);
        let text = get(&r.detail, "message").unwrap_or_default();
        assert!(text.contains("|95=8|96=***|***|58=x|"), "{text}");
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
