//! COLD — an event-log line (already rendered and masked by the journal thread) taken apart
//! into what a SIEM indexes: time, kind, severity and `key=value` fields.
//!
//! The line is the single source of what leaves the box: fields are read from the text
//! `audit::render` wrote and the journal masked (account ids, card numbers), never from the
//! raw event, so nothing the event log does not show can reach the collector.
//!
//! # Line grammar (what `audit::render` writes)
//! `TIME [ALERT] KIND (key=value | word)*`: TIME is `YYYYMMDD-HH:MM:SS.ffffff` (UTC), a value is
//! a bare word or a Rust-debug quoted string (`"…"` with `\"`, `\\`, `\n`, `\u{…}` escapes),
//! and a bare value may hold brackets (`Io(Kind)`): spaces inside quotes or brackets do not
//! split. Words that are not `key=value` (prose such as "(rotate it: …)") stay in the line only.

use crate::config::siem::Severity;

/// One event, ready to be formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339 UTC time with microseconds, `2026-12-07T04:07:25.123456Z`.
    pub time: String,
    /// Event kind (`logon-refused`, `risk-reject`, `kill`, …): the syslog MSGID.
    pub kind: String,
    pub severity: Severity,
    /// `key=value` fields in line order (keys are `[a-z0-9_-]`, at most 32 characters).
    pub fields: Vec<(String, String)>,
    /// The whole event-log line.
    pub line: String,
}

/// Longest field name kept (RFC 5424 SD-NAME is at most 32 characters).
const MAX_KEY: usize = 32;

impl Entry {
    /// Takes `line` apart. Never fails: a line without a readable time gets `fallback_time`
    /// (RFC 3339), one without a kind gets `event`.
    pub fn parse(line: &str, fallback_time: &str) -> Entry {
        let line = line.trim_end_matches(['\n', '\r']);
        let tokens = tokens(line);
        let mut rest = tokens.as_slice();
        let time = match rest.first().and_then(|t| rfc3339(t)) {
            Some(t) => {
                rest = rest.get(1..).unwrap_or_default();
                t
            }
            None => fallback_time.to_string(),
        };
        let mut alert = false;
        if rest.first() == Some(&"ALERT") {
            alert = true;
            rest = rest.get(1..).unwrap_or_default();
        }
        let kind = match rest.first() {
            Some(k) if is_kind(k) => {
                rest = rest.get(1..).unwrap_or_default();
                k.to_string()
            }
            _ => "event".to_string(),
        };
        let fields: Vec<(String, String)> = rest.iter().filter_map(|t| field(t)).collect();
        let severity = severity(&kind, alert, &fields);
        Entry {
            time,
            kind,
            severity,
            fields,
            line: line.to_string(),
        }
    }

    /// The value of field `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The severity of an event kind (RFC 5424 levels), refined by its fields where the kind alone
/// does not say (a clock that halted trading, an expired key). Unknown kinds are `notice`: new
/// events are exported before anyone assigns them a level.
pub fn severity(kind: &str, alert: bool, fields: &[(String, String)]) -> Severity {
    let has = |k: &str, v: &str| fields.iter().any(|(fk, fv)| fk == k && fv == v);
    if alert {
        return Severity::Alert;
    }
    match kind {
        // A kill stops trading and cancels orders: the desk and the SOC page on it.
        "kill" | "reconciliation-mismatch" => Severity::Alert,
        // The order journal failed: acknowledged orders may not survive a crash.
        "journal-error" => Severity::Crit,
        "clock-sync" if has("new-orders", "halted") => Severity::Crit,
        "clock-sync" if has("within-limit", "false") => Severity::Err,
        "clock-sync" => Severity::Notice,
        // A key store rollback or tampering; a brute-force lockout; a venue lost.
        "key-store-refused" | "auth-lockout" | "venue-down" => Severity::Err,
        // Intrusion detection (src/ids): the alert's own severity.
        "ids-alert" if has("severity", "critical") => Severity::Crit,
        "ids-alert" if has("severity", "high") => Severity::Err,
        "ids-alert" if has("severity", "medium") => Severity::Warning,
        "ids-alert" => Severity::Notice,
        "ids-action" => Severity::Alert,
        "key-aging" if has("state", "expired") => Severity::Err,
        "key-aging" | "logon-refused" | "auth-failed" | "permission-denied" | "throttled"
        | "connections-shed" | "slow-consumer" | "cert-expiring" | "siem-dropped" => {
            Severity::Warning
        }
        "logon" | "authenticated" | "disconnect" => Severity::Info,
        _ => Severity::Notice,
    }
}

fn is_kind(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 32
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `key=value` → (key, unquoted value); anything else → None.
fn field(t: &str) -> Option<(String, String)> {
    let (k, v) = t.split_once('=')?;
    let key_ok = !k.is_empty()
        && k.len() <= MAX_KEY
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !key_ok {
        return None;
    }
    let value = match v
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|_| v.len() >= 2)
    {
        Some(quoted) => unescape_debug(quoted),
        None => v.to_string(),
    };
    Some((k.to_string(), value))
}

/// Splits on spaces outside double quotes and brackets.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut depth = 0u32;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            ' ' if depth == 0 => {
                if let Some(s) = start.take() {
                    out.extend(line.get(s..i));
                }
                continue;
            }
            '"' => quoted = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.extend(line.get(s..));
    }
    out
}

/// Undoes `{:?}` string escaping (`\"`, `\\`, `\'`, `\n`, `\r`, `\t`, `\0`, `\u{…}`).
fn unescape_debug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let rest = chars.as_str();
                let parsed = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .and_then(|(hex, tail)| {
                        let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)?;
                        Some((c, tail))
                    });
                match parsed {
                    Some((c, tail)) => {
                        out.push(c);
                        chars = tail.chars();
                    }
                    None => out.push_str("\\u"),
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `YYYYMMDD-HH:MM:SS[.f+]` → `YYYY-MM-DDTHH:MM:SS[.f+]Z`; None unless exactly that shape.
fn rfc3339(t: &str) -> Option<String> {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 17
        && digits(0..8)
        && b.get(8) == Some(&b'-')
        && digits(9..11)
        && b.get(11) == Some(&b':')
        && digits(12..14)
        && b.get(14) == Some(&b':')
        && digits(15..17);
    if !shape {
        return None;
    }
    let frac = t.get(17..)?;
    if !frac.is_empty() {
        let f = frac.strip_prefix('.')?;
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|d| d.is_ascii_digit()) {
            return None;
        }
    }
    Some(format!(
        "{}-{}-{}T{}{}Z",
        t.get(0..4)?,
        t.get(4..6)?,
        t.get(6..8)?,
        t.get(9..17)?,
        frac
    ))
}

/// Now as RFC 3339 UTC with microseconds (for lines without a time, and notices).
pub fn now_rfc3339() -> String {
    let mut b = [0u8; 27];
    let n = crate::fix::encode::write_timestamp(
        &mut b,
        crate::clock::system_utc(),
        crate::fix::encode::TimePrecision::Micros,
    );
    let fix = String::from_utf8_lossy(b.get(..n).unwrap_or_default()).into_owned();
    rfc3339(&fix).unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{Event, KillTarget, LogonRefusal};
    use crate::model::{Account, CompId, Nanos, SessionId};

    fn line(e: &Event) -> String {
        crate::audit::render(
            e,
            &["FIX.4.4:CLIENT1->GW".to_string()],
            &["SIM".to_string()],
        )
    }

    #[test]
    fn takes_apart_a_rendered_risk_reject_with_the_account_masked() {
        let e = Event::RiskRejected {
            session: SessionId(0),
            account: Account::new(b"ACC-123456789").unwrap(),
            reason: crate::risk::Reason::UnknownAccount,
            at: Nanos(1_765_080_445_123_456_000),
        };
        let entry = Entry::parse(&line(&e), "x");
        assert_eq!(entry.kind, "risk-reject");
        assert_eq!(entry.severity, Severity::Notice);
        assert!(
            entry.time.starts_with("2025-12-07T04:07:25.123456Z"),
            "{}",
            entry.time
        );
        assert_eq!(entry.get("session"), Some("FIX.4.4:CLIENT1->GW"));
        assert_eq!(entry.get("account"), Some("*********6789"));
        assert!(entry.get("reason").is_some_and(|r| !r.is_empty()));
        assert!(!entry.line.contains("ACC-123456789"));
    }

    #[test]
    fn quoted_values_keep_their_spaces_and_escapes() {
        let e = Event::LogonRefused {
            their_comp_id: CompId::new(b"EVIL\"CO").unwrap(),
            key_id: crate::auth::KeyId::new(b"k1").unwrap(),
            peer: std::net::IpAddr::from([10, 0, 0, 7]),
            reason: LogonRefusal::NoSession,
            at: Nanos(0),
        };
        let entry = Entry::parse(&line(&e), "x");
        assert_eq!(entry.kind, "logon-refused");
        assert_eq!(entry.severity, Severity::Warning);
        assert_eq!(entry.get("sender"), Some("EVIL\"CO"));
        assert_eq!(entry.get("peer"), Some("10.0.0.7"));
        assert_eq!(
            entry.get("reason"),
            Some("no session configured for these CompIDs and BeginString")
        );
        assert_eq!(entry.time, "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn kinds_and_severities_of_rendered_events() {
        let kill = Event::Kill {
            target: KillTarget::Global,
            on: true,
            orders: 3,
            seq: 9,
            at: Nanos(0),
        };
        let k = Entry::parse(&line(&kill), "x");
        assert_eq!((k.kind.as_str(), k.severity), ("kill", Severity::Alert));
        assert_eq!(k.get("scope"), Some("global"));
        assert_eq!(k.get("control-seq"), Some("9"));
        let unkill = Event::Kill {
            target: KillTarget::Global,
            on: false,
            orders: 0,
            seq: 10,
            at: Nanos(0),
        };
        let u = Entry::parse(&line(&unkill), "x");
        assert_eq!((u.kind.as_str(), u.severity), ("unkill", Severity::Notice));
        let recon = Event::ReconciliationMismatch {
            account: Account::new(b"ACC1").unwrap(),
            venue: crate::model::VenueId(0),
            what: "unknown order",
            at: Nanos(0),
        };
        let r = Entry::parse(&line(&recon), "x");
        assert_eq!(
            (r.kind.as_str(), r.severity),
            ("reconciliation-mismatch", Severity::Alert)
        );
        let aging = Event::KeyAging {
            key_id: crate::auth::KeyId::new(b"k1").unwrap(),
            age_days: 400,
            days_left: 0,
            at: Nanos(0),
        };
        let a = Entry::parse(&line(&aging), "x");
        assert_eq!((a.kind.as_str(), a.severity), ("key-aging", Severity::Err));
        assert_eq!(a.get("age-days"), Some("400"));
        let logon = Entry::parse(
            &line(&Event::LoggedOn {
                session: SessionId(0),
                peer: std::net::IpAddr::from([127, 0, 0, 1]),
                at: Nanos(0),
            }),
            "x",
        );
        assert_eq!(
            (logon.kind.as_str(), logon.severity),
            ("logon", Severity::Info)
        );
    }

    #[test]
    fn odd_lines_still_make_an_entry() {
        let e = Entry::parse("no time here", "2026-01-01T00:00:00Z");
        assert_eq!(e.time, "2026-01-01T00:00:00Z");
        assert_eq!(e.kind, "no");
        let e = Entry::parse("", "T");
        assert_eq!((e.kind.as_str(), e.time.as_str()), ("event", "T"));
        let e = Entry::parse("20261207-04:07:25 Weird-Kind a=(x y) b=\"unterminated", "T");
        assert_eq!(e.kind, "event");
        assert_eq!(e.get("a"), Some("(x y)"));
        assert_eq!(e.get("b"), Some("\"unterminated"));
        assert_eq!(e.time, "2026-12-07T04:07:25Z");
        assert_eq!(unescape_debug(r#"a\u{e9}\\\"b\n"#), "a\u{e9}\\\"b\n");
        assert_eq!(unescape_debug(r"\u{zz}"), "\\u{zz}");
        assert!(rfc3339("20261207-04:07:25.").is_none());
        assert!(rfc3339("2026120-04:07:25").is_none());
    }
}
