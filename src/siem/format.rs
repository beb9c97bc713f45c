//! COLD — the bytes on the wire: an [`Entry`] as a syslog message (RFC 5424) whose MSG is JSON
//! or CEF, in an octet-counted frame (RFC 6587 §3.4.1).
//!
//! ```text
//! 312 <133>1 2026-12-07T04:07:25.123456Z gw1 portcullis 4242 risk-reject
//!     [portcullis@32473 session="FIX.4.4:CLIENT1->GW" account="*****6789" reason="…"]
//!     [meta sequenceId="17"] {"time":…}
//! ^len ^PRI ^VERSION ^TIMESTAMP           ^HOSTNAME ^APP-NAME ^PROCID ^MSGID
//! ```
//! (one line on the wire; MSG has no BOM, so it is MSG-ANY, and JSON escapes keep it on one
//! line; CEF escapes `\n`/`\r` in values.)

use serde_json::{Map, Value};

use super::entry::Entry;
use crate::config::siem::{Facility, Severity, SiemFormat, MAX_MESSAGE_BYTES};

/// APP-NAME of every message.
pub const APP_NAME: &str = "portcullis";

/// What stays the same for every message of one exporter.
#[derive(Clone, Debug)]
pub struct Formatter {
    pub facility: Facility,
    /// RFC 5424 HOSTNAME (printable ASCII, no spaces; `-` when unknown).
    pub hostname: String,
    pub procid: u32,
    /// SD-ID of the event fields: `portcullis@<enterprise number>`.
    pub sd_id: String,
    pub format: SiemFormat,
    /// Product version in CEF headers and JSON.
    pub version: &'static str,
}

impl Formatter {
    /// The RFC 5424 message (without its frame) for `e`, with `[meta sequenceId=seq]`.
    /// Cut to [`MAX_MESSAGE_BYTES`] at a character boundary if an event were ever that long.
    pub fn message(&self, e: &Entry, seq: u32) -> Vec<u8> {
        let pri = u16::from(self.facility.code()) * 8 + u16::from(e.severity.code());
        let mut m = format!(
            "<{pri}>1 {} {} {APP_NAME} {} {} [{}",
            e.time,
            self.hostname,
            self.procid,
            msgid(&e.kind),
            self.sd_id
        );
        for (k, v) in &e.fields {
            m.push(' ');
            m.push_str(k);
            m.push_str("=\"");
            push_sd_value(&mut m, v);
            m.push('"');
        }
        m.push_str("][meta sequenceId=\"");
        m.push_str(&seq.to_string());
        m.push_str("\"] ");
        match self.format {
            SiemFormat::Json => m.push_str(&self.json(e)),
            SiemFormat::Cef => m.push_str(&self.cef(e)),
        }
        let mut cut = m.len().min(MAX_MESSAGE_BYTES);
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.into_bytes()
    }

    /// MSG as one JSON object.
    pub fn json(&self, e: &Entry) -> String {
        let mut fields = Map::new();
        for (k, v) in &e.fields {
            fields.insert(k.clone(), Value::String(v.clone()));
        }
        let mut o = Map::new();
        o.insert("time".into(), e.time.clone().into());
        o.insert("kind".into(), e.kind.clone().into());
        o.insert("severity".into(), e.severity.name().into());
        o.insert("host".into(), self.hostname.clone().into());
        o.insert("product".into(), APP_NAME.into());
        o.insert("version".into(), self.version.into());
        o.insert("fields".into(), Value::Object(fields));
        o.insert("line".into(), e.line.clone().into());
        Value::Object(o).to_string()
    }

    /// MSG as a CEF record: `CEF:0|Portcullis|Portcullis|version|kind|name|severity|ext`.
    /// Standard keys where one fits (`rt`, `src`, `suser`, `cat`, `msg`); every other field as
    /// a vendor key `portcullis` + CamelCase name.
    pub fn cef(&self, e: &Entry) -> String {
        let mut out = format!(
            "CEF:0|Portcullis|Portcullis|{}|{}|{}|{}|",
            cef_header(self.version),
            cef_header(&e.kind),
            cef_header(cef_name(&e.kind)),
            cef_severity(e.severity)
        );
        let mut ext: Vec<(String, &str)> = Vec::new();
        if let Some(ms) = unix_ms(&e.time) {
            out.push_str(&format!("rt={ms} "));
        }
        ext.push(("cat".into(), e.kind.as_str()));
        for (k, v) in &e.fields {
            let key = match k.as_str() {
                "peer" | "last-peer" => "src".to_string(),
                "key" => "suser".to_string(),
                other => vendor_key(other),
            };
            ext.push((key, v.as_str()));
        }
        ext.push(("msg".into(), e.line.as_str()));
        let mut first = true;
        for (k, v) in ext {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(&k);
            out.push('=');
            out.push_str(&cef_value(v));
        }
        out
    }
}

/// Frames `msg` for TCP: `LEN SP MSG` (RFC 6587 §3.4.1 octet counting), appended to `out`.
pub fn frame(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}

/// Reads one frame at the start of `buf`: `Some((msg, frame length))`, or None if `buf` does
/// not start with a whole well-formed frame.
pub fn unframe(buf: &[u8]) -> Option<(&[u8], usize)> {
    let sp = buf.iter().take(11).position(|&b| b == b' ')?;
    let digits = buf.get(..sp)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.first() == Some(&b'0')
    {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let end = sp.checked_add(1)?.checked_add(len)?;
    Some((buf.get(sp + 1..end)?, end))
}

/// MSGID: 1–32 printable ASCII characters, `-` when empty.
fn msgid(kind: &str) -> String {
    let m: String = kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    if m.is_empty() {
        "-".into()
    } else {
        m
    }
}

/// PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash.
fn push_sd_value(out: &mut String, v: &str) {
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// CEF header field: `\` and `|` escaped; line breaks (not allowed in headers) become spaces.
pub fn cef_header(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// CEF extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
pub fn cef_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// `control-seq` → `portcullisControlSeq` (CEF keys are alphanumeric).
fn vendor_key(k: &str) -> String {
    let mut out = String::from("portcullis");
    let mut upper = true;
    for c in k.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

/// CEF severity 0–10 from the syslog level.
fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Emerg | Severity::Alert => 10,
        Severity::Crit => 9,
        Severity::Err => 7,
        Severity::Warning => 5,
        Severity::Notice => 3,
        Severity::Info => 1,
        Severity::Debug => 0,
    }
}

/// The CEF `Name` of an event kind.
fn cef_name(kind: &str) -> &str {
    match kind {
        "logon" => "Session logged on",
        "logon-refused" => "Logon refused",
        "disconnect" => "Session disconnected",
        "order-rejected" => "Order rejected",
        "throttled" => "Throttle limit reached",
        "cancel-on-disconnect" => "Orders canceled on disconnect",
        "venue-up" => "Venue connected",
        "venue-down" => "Venue disconnected",
        "connections-shed" => "Connections shed before logon",
        "slow-consumer" => "Slow consumer disconnected",
        "auth-failed" => "Authentication failed",
        "auth-lockout" => "Logon lockout",
        "authenticated" => "Logon authenticated",
        "credential-logout" => "Session logged out: credential revoked or expired",
        "permission-denied" => "Permission denied",
        "journal-error" => "Order journal write failed",
        "tls-reloaded" => "TLS certificate reloaded",
        "cert-expiring" => "TLS certificate expiring",
        "risk-reject" => "Pre-trade risk check rejected an order",
        "kill" => "Kill switch set",
        "unkill" => "Kill switch released",
        "limits-changed" => "Risk limits changed",
        "account-enabled" => "Account enabled",
        "reconciliation-mismatch" => "Reconciliation mismatch: account killed",
        "clock-sync" => "Clock synchronisation changed",
        "key-store-refused" => "Key store change refused",
        "key-aging" => "API key ageing",
        "siem-dropped" => "SIEM events dropped",
        other => other,
    }
}

/// `2026-12-07T04:07:25.123456Z` (what [`Entry`] holds) → Unix milliseconds.
fn unix_ms(t: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(8..10)?).ok()?,
    )
    .ok()?;
    let hms = time::Time::from_hms(
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(14..16)?).ok()?,
        u8::try_from(num(17..19)?).ok()?,
    )
    .ok()?;
    let ms = match t.get(19..)?.strip_prefix('.') {
        Some(frac) => {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(3)
                .collect();
            format!("{digits:0<3}").parse::<i64>().ok()?
        }
        None => 0,
    };
    let secs = time::PrimitiveDateTime::new(date, hms)
        .assume_utc()
        .unix_timestamp();
    secs.checked_mul(1000)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(format: SiemFormat) -> Formatter {
        Formatter {
            facility: Facility::Local0,
            hostname: "gw1".into(),
            procid: 4242,
            sd_id: "portcullis@32473".into(),
            format,
            version: "0.1.0",
        }
    }

    fn entry() -> Entry {
        Entry::parse(
            "20261207-04:07:25.123456 risk-reject session=FIX.4.4:C->GW account=\"*****6789\" \
             reason=\"limit \\\"x\\\" ] \\\\ hit\"",
            "T",
        )
    }

    #[test]
    fn rfc5424_header_and_structured_data() {
        let m = String::from_utf8(fmt(SiemFormat::Json).message(&entry(), 17)).unwrap();
        // local0 (16) * 8 + notice (5) = 133.
        assert!(
            m.starts_with(
                "<133>1 2026-12-07T04:07:25.123456Z gw1 portcullis 4242 risk-reject \
                 [portcullis@32473 session=\"FIX.4.4:C->GW\" account=\"*****6789\" \
                 reason=\"limit \\\"x\\\" \\] \\\\ hit\"][meta sequenceId=\"17\"] {"
            ),
            "{m}"
        );
        let json: Value = serde_json::from_str(&m[m.find("\"] {").unwrap() + 3..]).unwrap();
        assert_eq!(json["kind"], "risk-reject");
        assert_eq!(json["severity"], "notice");
        assert_eq!(json["fields"]["account"], "*****6789");
        assert_eq!(json["fields"]["reason"], "limit \"x\" ] \\ hit");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn octet_counting_frames_round_trip() {
        let mut out = Vec::new();
        frame(b"<14>1 - - - - - - a b", &mut out);
        frame("é 2".as_bytes(), &mut out);
        assert!(out.starts_with(b"21 <14>1"));
        let (m, n) = unframe(&out).unwrap();
        assert_eq!(m, b"<14>1 - - - - - - a b");
        let (m2, n2) = unframe(&out[n..]).unwrap();
        assert_eq!(m2, "é 2".as_bytes());
        assert_eq!(n + n2, out.len());
        // Length counts octets, not characters.
        assert!(out[n..].starts_with(b"4 "));
        assert!(unframe(b"5 abc").is_none());
        assert!(unframe(b"05 abcde").is_none());
        assert!(unframe(b"x abc").is_none());
        assert!(unframe(b"99999999999 a").is_none());
        assert!(unframe(b"").is_none());
    }

    #[test]
    fn cef_escapes_pipes_backslashes_and_equals() {
        assert_eq!(cef_header("a|b\\c=d\ne"), "a\\|b\\\\c=d e");
        assert_eq!(cef_value("a|b\\c=d\ne\rf"), "a|b\\\\c\\=d\\ne\\rf");
        let e = Entry::parse(
            "20261207-04:07:25.000001 logon-refused sender=\"A|B=C\" key=\"k\\\\1\" \
             peer=10.0.0.7 reason=\"no session\"",
            "T",
        );
        let c = fmt(SiemFormat::Cef).cef(&e);
        assert!(
            c.starts_with("CEF:0|Portcullis|Portcullis|0.1.0|logon-refused|Logon refused|5|rt="),
            "{c}"
        );
        assert!(c.contains(" cat=logon-refused "), "{c}");
        assert!(c.contains(" portcullisSender=A|B\\=C "), "{c}");
        assert!(c.contains(" suser=k\\\\1 "), "{c}");
        assert!(c.contains(" src=10.0.0.7 "), "{c}");
        assert!(c.contains(" portcullisReason=no session "), "{c}");
        assert!(
            c.contains(" msg=20261207-04:07:25.000001 logon-refused sender\\="),
            "{c}"
        );
        assert!(c.contains("rt=1796616445000 "), "{c}");
        assert_eq!(vendor_key("days-to-expiry"), "portcullisDaysToExpiry");
    }

    #[test]
    fn long_events_are_cut_at_a_character_boundary() {
        let long = format!("20261207-04:07:25 kill scope=\"{}\"", "é".repeat(9000));
        let m = fmt(SiemFormat::Json).message(&Entry::parse(&long, "T"), 1);
        assert!(m.len() <= MAX_MESSAGE_BYTES);
        assert!(String::from_utf8(m).is_ok());
        assert_eq!(msgid(""), "-");
        assert_eq!(msgid("a b"), "ab");
    }
}
