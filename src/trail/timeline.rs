//! COLD — `portcullis audit trail`: everything the (verified) trail holds about one order,
//! key, session or address, in chain order, as text or JSON.

use std::collections::HashSet;

use serde_json::json;

use super::verify::Located;

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// A ClOrdID (any of the order's, across replaces) or the gateway's OrderID: the whole
    /// order (every record with its OrderID).
    pub order: Option<String>,
    pub key: Option<String>,
    /// A session name (`FIX.4.4:CLIENT1->GW`) or the client's CompID.
    pub session: Option<String>,
    pub address: Option<String>,
    /// RFC 3339 UTC times (any prefix, e.g. `2026-12-07T04:10`), compared as text with the
    /// records' fixed-width times; `from` inclusive, `to` exclusive.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Checks a `--from` / `--to` value: an RFC 3339 UTC time or a prefix of one.
pub fn check_time(t: &str) -> Result<(), String> {
    const SHAPE: &[u8] = b"0000-00-00T00:00:00";
    let ok = t.len() >= 4
        && t.bytes().zip(SHAPE.iter()).all(|(c, s)| {
            if *s == b'0' {
                c.is_ascii_digit()
            } else {
                c == *s
            }
        })
        && t.get(SHAPE.len()..).is_none_or(|rest| {
            rest.is_empty()
                || (rest.starts_with('.')
                    && rest
                        .trim_end_matches('Z')
                        .bytes()
                        .skip(1)
                        .all(|c| c.is_ascii_digit()))
                || rest == "Z"
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a UTC time like 2026-12-07T04:10:00Z (or a prefix: 2026-12-07T04)"
        ))
    }
}

fn session_matches(name: &str, want: &str) -> bool {
    name == want
        || name
            .split_once(':')
            .and_then(|(_, r)| r.split_once("->"))
            .is_some_and(|(client, _)| client == want)
}

/// The records of `all` that `q` selects, in order.
pub fn select<'a>(all: &'a [Located], q: &Query) -> Vec<&'a Located> {
    let get = |l: &'a Located, k: &str| l.record.subject.get(k).map(String::as_str);
    let order_ids: HashSet<&str> = match &q.order {
        Some(id) => all
            .iter()
            .filter(|l| {
                [
                    "order_id",
                    "cl_ord_id",
                    "orig_cl_ord_id",
                    "request_cl_ord_id",
                ]
                .iter()
                .any(|k| get(l, k) == Some(id.as_str()))
            })
            .filter_map(|l| get(l, "order_id"))
            .collect(),
        None => HashSet::new(),
    };
    // Every ClOrdID the order had, with its session: a client's message that carries only its
    // ClOrdID (a NewOrderSingle, a cancel request) belongs to the order too.
    let order_cl_ids: HashSet<(&str, &str)> = all
        .iter()
        .filter(|l| get(l, "order_id").is_some_and(|o| order_ids.contains(o)))
        .flat_map(|l| {
            let session = get(l, "session").unwrap_or("");
            ["cl_ord_id", "orig_cl_ord_id", "request_cl_ord_id"]
                .into_iter()
                .filter_map(move |k| get(l, k).map(|id| (session, id)))
        })
        .collect();
    all.iter()
        .filter(|l| {
            let r = &l.record;
            if let Some(id) = &q.order {
                let direct = [
                    "order_id",
                    "cl_ord_id",
                    "orig_cl_ord_id",
                    "request_cl_ord_id",
                ]
                .iter()
                .any(|k| get(l, k) == Some(id.as_str()));
                let session = get(l, "session").unwrap_or("");
                let by_cl_id = ["cl_ord_id", "orig_cl_ord_id"]
                    .iter()
                    .any(|k| get(l, k).is_some_and(|c| order_cl_ids.contains(&(session, c))));
                if !direct
                    && !by_cl_id
                    && !get(l, "order_id").is_some_and(|o| order_ids.contains(o))
                {
                    return false;
                }
            }
            if let Some(k) = &q.key {
                if get(l, "key") != Some(k.as_str()) && r.actor != format!("key:{k}") {
                    return false;
                }
            }
            if let Some(s) = &q.session {
                if !get(l, "session").is_some_and(|n| session_matches(n, s)) {
                    return false;
                }
            }
            if let Some(a) = &q.address {
                if get(l, "address") != Some(a.as_str()) {
                    return false;
                }
            }
            if q.from
                .as_ref()
                .is_some_and(|f| r.time.as_str() < f.as_str())
            {
                return false;
            }
            if q.to.as_ref().is_some_and(|t| r.time.as_str() >= t.as_str()) {
                return false;
            }
            true
        })
        .collect()
}

/// One line per record: time, seq, kind, actor, subject and detail fields.
pub fn text(sel: &[&Located]) -> String {
    let mut out = String::new();
    for l in sel {
        let r = &l.record;
        out.push_str(&format!(
            "{}  #{:<6} {:<22} {}",
            r.time, r.seq, r.kind, r.actor
        ));
        for (k, v) in r.subject.iter().chain(r.detail.iter()) {
            out.push_str(&format!("  {k}={v}"));
        }
        out.push('\n');
    }
    out
}

/// A JSON array of the records, each with the file and line it came from.
pub fn json(sel: &[&Located]) -> serde_json::Value {
    serde_json::Value::Array(
        sel.iter()
            .map(|l| {
                let r = &l.record;
                json!({
                    "file": l.file,
                    "line": l.line,
                    "seq": r.seq,
                    "time": r.time,
                    "kind": r.kind,
                    "actor": r.actor,
                    "subject": r.subject,
                    "detail": r.detail,
                    "hash": r.hash,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::chain::Record;

    fn rec(seq: u64, time: &str, kind: &str, subject: &[(&str, &str)]) -> Located {
        Located {
            file: "f".into(),
            line: seq as usize,
            record: Record {
                seq,
                time: time.into(),
                time_ns: 0,
                kind: kind.into(),
                actor: "gateway".into(),
                subject: subject
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                detail: Default::default(),
                prev: String::new(),
                hash: String::new(),
            },
        }
    }

    #[test]
    fn an_order_is_found_by_any_of_its_ids_across_replaces() {
        let all = vec![
            rec(
                1,
                "2026-12-07T04:00:00.000000000Z",
                "order-new",
                &[("cl_ord_id", "A"), ("order_id", "7")],
            ),
            rec(
                2,
                "2026-12-07T04:00:01.000000000Z",
                "logon",
                &[("session", "FIX.4.4:C1->GW")],
            ),
            rec(
                3,
                "2026-12-07T04:00:02.000000000Z",
                "order-replaced",
                &[
                    ("cl_ord_id", "B"),
                    ("orig_cl_ord_id", "A"),
                    ("order_id", "7"),
                ],
            ),
            rec(
                4,
                "2026-12-07T04:00:03.000000000Z",
                "order-canceled",
                &[("cl_ord_id", "B"), ("order_id", "7")],
            ),
            rec(
                5,
                "2026-12-07T04:00:04.000000000Z",
                "order-new",
                &[("cl_ord_id", "C"), ("order_id", "8")],
            ),
        ];
        let q = Query {
            order: Some("A".into()),
            ..Default::default()
        };
        let seqs: Vec<u64> = select(&all, &q).iter().map(|l| l.record.seq).collect();
        assert_eq!(seqs, vec![1, 3, 4]);
        let q = Query {
            order: Some("7".into()),
            from: Some("2026-12-07T04:00:02".into()),
            to: Some("2026-12-07T04:00:03".into()),
            ..Default::default()
        };
        let seqs: Vec<u64> = select(&all, &q).iter().map(|l| l.record.seq).collect();
        assert_eq!(seqs, vec![3]);
        let q = Query {
            session: Some("C1".into()),
            ..Default::default()
        };
        assert_eq!(select(&all, &q).len(), 1);
        assert!(check_time("2026-12-07T04").is_ok());
        assert!(check_time("2026-12-07T04:00:00.5Z").is_ok());
        assert!(check_time("yesterday").is_err());
    }
}
