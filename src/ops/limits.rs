//! COLD — limit changes through the ops port: which changes are raises (four eyes), the
//! pending requests awaiting their second risk officer, and persistence across restarts.
//!
//! # Raise or cut
//! A change is a *raise* when any field it sets is looser than the account's current limit:
//! a larger quantity, notional, credit, position, collar, open-order count, message count or
//! reference age; a shorter duplicate window or rate period; an order type or time in force
//! not allowed now. A raise waits for a second, different risk officer (`approve`) and expires
//! after `ops.approval_ttl_s`; anything else (a cut, or a change to the same value) applies at
//! once.
//!
//! # Persistence
//! The gateway applies limit changes in memory; the config file still holds the old ones.
//! Every permanent change applied through the control socket — from `portcullis ctl` or from
//! the port, which sends its changes there — is merged into `<data>/ops-limits.json` (0600,
//! atomic replace), and the control socket re-applies that file when it starts
//! (`ctl::serve`), so an approved raise or a cut survives a restart. Temporary changes (with
//! an expiry) are not kept: after a restart the permanent limits are in force again.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::Decimal;
use crate::ctl::LimitChanges;

/// File name of the persisted limit changes inside the data folder.
pub const FILE: &str = "ops-limits.json";

/// Scale used to compare decimal limits exactly.
const SCALE: u32 = 8;

fn dec(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => Decimal::Str(s.clone()).scaled(SCALE),
        Value::Number(n) => Decimal::Str(n.to_string()).scaled(SCALE),
        _ => None,
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of `changes` that loosen `current` (the `limits` object of a `risk-show`
/// answer, config key names); empty: a cut or no change.
pub fn raised_fields(current: &Value, changes: &LimitChanges) -> Result<Vec<String>, String> {
    let wanted = serde_json::to_value(changes).map_err(|e| e.to_string())?;
    let Some(wanted) = wanted.as_object() else {
        return Ok(Vec::new());
    };
    let mut raised = Vec::new();
    for (k, new) in wanted {
        let old = current
            .get(k)
            .ok_or_else(|| format!("current limit {k} unknown"))?;
        let looser = match k.as_str() {
            "ord_types" | "time_in_force" => {
                let now = names(old);
                names(new).iter().any(|n| !now.contains(n))
            }
            "duplicate_window_ms" | "rate_period_ms" => {
                let (o, n) = (dec(old), dec(new));
                match (o, n) {
                    (Some(o), Some(n)) => n < o,
                    _ => return Err(format!("limit {k}: not a number")),
                }
            }
            _ => match (dec(old), dec(new)) {
                (Some(o), Some(n)) => n > o,
                _ => return Err(format!("limit {k}: not a number")),
            },
        };
        if looser {
            raised.push(k.clone());
        }
    }
    Ok(raised)
}

/// A raise awaiting its second risk officer.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: u64,
    pub account: String,
    pub limits: LimitChanges,
    pub for_ms: Option<u64>,
    pub requested_by: String,
    pub reason: String,
    pub raised: Vec<String>,
    pub created_ms: u64,
    pub expires_ms: u64,
}

impl Pending {
    pub fn json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "account": crate::auth::mask::account(&self.account),
            "limits": self.limits,
            "for_ms": self.for_ms,
            "requested_by": self.requested_by,
            "reason": crate::auth::mask::free_text(&self.reason),
            "raised": self.raised,
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
        })
    }
}

/// Pending raises, oldest first.
#[derive(Default)]
pub struct Approvals {
    next: u64,
    pending: Vec<Pending>,
}

/// At most this many raises wait at once (a flood of requests cannot grow memory).
pub const MAX_PENDING: usize = 256;

impl Approvals {
    /// Forgets expired requests; returns them (for the audit).
    pub fn expire(&mut self, now_ms: u64) -> Vec<Pending> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.expires_ms <= now_ms);
        self.pending = kept;
        gone
    }

    pub fn add(&mut self, mut p: Pending) -> Result<u64, String> {
        if self.pending.len() >= MAX_PENDING {
            return Err(format!(
                "{MAX_PENDING} limit raises are already waiting for approval"
            ));
        }
        self.next += 1;
        p.id = self.next;
        self.pending.push(p);
        Ok(self.next)
    }

    pub fn take(&mut self, id: u64) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.id == id)?;
        Some(self.pending.remove(i))
    }

    pub fn put_back(&mut self, p: Pending) {
        self.pending.push(p);
    }

    pub fn list(&self) -> Vec<Value> {
        self.pending.iter().map(Pending::json).collect()
    }
}

/// The persisted permanent changes, by account.
pub fn load(data_dir: &Path) -> Result<BTreeMap<String, LimitChanges>, String> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Merges `changes` into the persisted changes of `account`.
pub fn persist(data_dir: &Path, account: &str, changes: &LimitChanges) -> Result<(), String> {
    let mut all = load(data_dir)?;
    let merged = match all.get(account) {
        Some(old) => {
            let mut o = serde_json::to_value(old).map_err(|e| e.to_string())?;
            let n = serde_json::to_value(changes).map_err(|e| e.to_string())?;
            if let (Some(o), Some(n)) = (o.as_object_mut(), n.as_object()) {
                for (k, v) in n {
                    o.insert(k.clone(), v.clone());
                }
            }
            serde_json::from_value(o).map_err(|e| e.to_string())?
        }
        None => changes.clone(),
    };
    all.insert(account.to_string(), merged);
    let text = serde_json::to_vec_pretty(&all).map_err(|e| e.to_string())?;
    let path = data_dir.join(FILE);
    crate::files::write_private(&path, &text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn current() -> Value {
        json!({
            "max_order_qty": "10000", "max_order_notional": "1000000", "collar_bps": 1000,
            "collar_ticks": 0, "reference_max_age_ms": 60000, "credit_limit": "10000000",
            "max_long": "100000", "max_short": "100000", "max_open_orders": 1000,
            "ord_types": ["market", "limit"], "time_in_force": ["day", "gtc"],
            "duplicate_window_ms": 1000, "max_msgs": 1000, "rate_period_ms": 1000,
        })
    }

    #[test]
    fn raises_and_cuts_are_told_apart() {
        let cut = LimitChanges {
            max_order_qty: Some(Decimal::Int(500)),
            duplicate_window_ms: Some(2000),
            ord_types: Some(vec!["limit".into()]),
            ..Default::default()
        };
        assert!(raised_fields(&current(), &cut).unwrap().is_empty());
        let same = LimitChanges {
            max_order_notional: Some(Decimal::Str("1000000.00".into())),
            ..Default::default()
        };
        assert!(raised_fields(&current(), &same).unwrap().is_empty());
        let raise = LimitChanges {
            max_order_qty: Some(Decimal::Str("10000.5".into())),
            rate_period_ms: Some(500),
            time_in_force: Some(vec!["day".into(), "ioc".into()]),
            max_open_orders: Some(10),
            ..Default::default()
        };
        assert_eq!(
            raised_fields(&current(), &raise).unwrap(),
            vec!["max_order_qty", "rate_period_ms", "time_in_force"]
        );
    }

    #[test]
    fn pending_raises_expire_and_are_taken_once() {
        let mut a = Approvals::default();
        let p = |expires_ms| Pending {
            id: 0,
            account: "ACC1".into(),
            limits: LimitChanges::default(),
            for_ms: None,
            requested_by: "rita".into(),
            reason: "r".into(),
            raised: vec![],
            created_ms: 0,
            expires_ms,
        };
        let first = a.add(p(100)).unwrap();
        let second = a.add(p(200)).unwrap();
        assert_ne!(first, second);
        assert_eq!(a.expire(150).len(), 1);
        assert!(a.take(first).is_none(), "expired");
        assert!(a.take(second).is_some());
        assert!(a.take(second).is_none(), "taken once");
        for _ in 0..MAX_PENDING {
            a.add(p(1000)).unwrap();
        }
        assert!(a.add(p(1000)).is_err(), "bounded");
    }

    #[test]
    fn persisted_changes_merge() {
        let d = tempfile::tempdir().unwrap();
        let a = LimitChanges {
            max_order_qty: Some(Decimal::Int(5)),
            ..Default::default()
        };
        let b = LimitChanges {
            max_msgs: Some(7),
            ..Default::default()
        };
        persist(d.path(), "ACC1", &a).unwrap();
        persist(d.path(), "ACC1", &b).unwrap();
        let all = load(d.path()).unwrap();
        let v = serde_json::to_value(&all["ACC1"]).unwrap();
        assert_eq!(v, json!({"max_order_qty": 5, "max_msgs": 7}));
    }
}
