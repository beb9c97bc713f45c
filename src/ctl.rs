//! COLD — the risk control path (RISK-3, kill of CORE-6): a Unix domain socket
//! `<data_dir>/control.sock` (mode 0600) served by a small accepting thread and one thread per
//! client, and the `portcullis ctl` client that talks to it.
//!
//! # Protocol
//! One JSON object per line each way. A request names its operation in `op`:
//! `kill` / `unkill` (`scope`: global | account | symbol | session, `name`), `enable-account`
//! (`account`), `limits-set` (`account`, `limits` {config keys of `[[account]]`}, optional
//! `for_ms`), `risk-show` (`account`, optional `symbol`). Changes need `by` (who) and `reason`
//! (why). The answer is `{"ok":true,"seq":N,...}` or `{"ok":false,"error":"..."}`.
//!
//! The server forwards each request to the gateway thread as a [`Command::Control`] and waits
//! for its answer; the gateway applies it between two messages. Every change is appended to
//! `<data_dir>/control-audit.log` (one JSON line: seq, time, who, the peer's uid/gid/pid, why,
//! request, before, after; account ids and card numbers masked) and the gateway writes a
//! matching `control-seq=N` line to `events.log`.
//!
//! # Who may connect
//! The socket is created mode 0600 (the gateway's user), and every connection's peer is checked
//! with SO_PEERCRED against `[control] allowed_uids` (default: the gateway's own uid; root only
//! when listed). A refused peer gets one error line, is closed, and the refusal is audited with
//! its uid and pid. `by` is what the operator says; `peer` is what the kernel says.
//!
//! # Bounds: no client can hold up another's kill
//! Each allowed client has its own thread (at most `max_clients`; when all are taken the
//! oldest one not applying a request is closed to make room) and deadlines: `idle_timeout_ms`
//! to start a request, `io_timeout_ms` to finish its line and to take its answer. A line is
//! read into a buffer of `max_line_bytes` + 1 and refused, unread beyond that, when it has no
//! newline by then. Every such close is answered with an error line when the client can still
//! take it, and counted (`ControlClosed`, 63).
//!
//! The ops port (`src/ops`: RBAC, JWT, MFA) sends the same requests through this socket with
//! [`call`], `by` set to the authenticated operator: one numbering, one audit log.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::mask;
use crate::config::risk::AccountCfg;
use crate::config::{ControlCfg, Decimal};
use crate::fix::encode::{write_timestamp, TimePrecision};
use crate::handoff::{
    Command, CommandSender, ControlCall, ControlReply, ControlRequest, KillTarget,
};
use crate::model::{Account, Nanos, Symbol, PRICE_DECIMALS, QTY_DECIMALS};
use crate::monitor::{Counter, Counters};
use crate::risk::{Notional, OrdTypeSet, RiskLimits, TifSet};

/// File name of the control socket inside the data folder.
pub const SOCKET: &str = "control.sock";
/// File name of the control audit log inside the data folder.
pub const AUDIT_LOG: &str = "control-audit.log";
/// Address blocks in force (`ctl block`, the intrusion response), one `ADDRESS UNTIL_NS` line
/// each: a restart keeps them until they run out.
pub const BLOCKS_FILE: &str = "address-blocks.state";

/// The blocks of `data_dir` still in force at `now` (UTC). A missing file is none; a line that
/// does not parse is skipped (the file is ours, written whole).
pub fn load_blocks(data_dir: &Path, now: Nanos) -> Vec<(std::net::IpAddr, Nanos)> {
    let text = std::fs::read_to_string(data_dir.join(BLOCKS_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (ip, until) = l.split_once(' ')?;
            Some((ip.parse().ok()?, Nanos(until.trim().parse().ok()?)))
        })
        .filter(|(_, until)| *until > now)
        .collect()
}

/// Records a block of `ip` until `until` (`None`: lifted) in [`BLOCKS_FILE`], dropping the
/// blocks that ran out.
fn persist_block(
    data_dir: &Path,
    ip: std::net::IpAddr,
    until: Option<Nanos>,
    now: Nanos,
) -> io::Result<()> {
    let mut blocks = load_blocks(data_dir, now);
    blocks.retain(|(b, _)| *b != ip);
    if let Some(u) = until {
        blocks.push((ip, u));
    }
    let text: String = blocks
        .iter()
        .map(|(ip, until)| format!("{ip} {}\n", until.0))
        .collect();
    crate::files::write_private(&data_dir.join(BLOCKS_FILE), text.as_bytes())
}

/// Limit changes as sent over the socket: the keys of `[[account]]`, each optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_order_qty: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_order_notional: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collar_bps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collar_ticks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_max_age_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_limit: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_long: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_short: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_orders: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ord_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_window_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_msgs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_period_ms: Option<u64>,
}

impl LimitChanges {
    pub(crate) fn is_empty(&self) -> bool {
        serde_json::to_value(self).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
    }
}

/// One request line.
// One value per request on a cold thread: size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Kill {
        scope: String,
        #[serde(default)]
        name: Option<String>,
        by: String,
        reason: String,
    },
    Unkill {
        scope: String,
        #[serde(default)]
        name: Option<String>,
        by: String,
        reason: String,
    },
    EnableAccount {
        account: String,
        by: String,
        reason: String,
    },
    LimitsSet {
        account: String,
        limits: LimitChanges,
        #[serde(default)]
        for_ms: Option<u64>,
        by: String,
        reason: String,
    },
    RiskShow {
        account: String,
        #[serde(default)]
        symbol: Option<String>,
    },
    /// Configured client session `index` (0-based, config order): CompIDs, key, peer,
    /// sequence numbers, bytes queued.
    SessionShow { index: u32 },
    /// Venue `index` (config order): up or down, external, open orders.
    VenueShow { index: u16 },
    /// Intrusion response (src/ids): close new connections from `address` for `for_ms`.
    Block {
        address: String,
        for_ms: u64,
        by: String,
        reason: String,
    },
    /// Lift a block on `address`.
    Unblock {
        address: String,
        by: String,
        reason: String,
    },
}

fn ts(t: Nanos) -> String {
    let mut b = [0u8; 27];
    let n = write_timestamp(&mut b, t, TimePrecision::Micros);
    String::from_utf8_lossy(b.get(..n).unwrap_or_default()).into_owned()
}

/// `v / 10^decimals` as a decimal string, trailing zeros trimmed.
pub fn fixed(v: i128, decimals: u32) -> String {
    let scale = 10i128.pow(decimals);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let int = a / scale.unsigned_abs();
    let frac = a % scale.unsigned_abs();
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let f = format!("{frac:0width$}", width = decimals as usize);
    format!("{sign}{int}.{}", f.trim_end_matches('0'))
}

fn names_of_ord_types(s: OrdTypeSet) -> Vec<&'static str> {
    use crate::model::OrdType;
    [(OrdType::Market, "market"), (OrdType::Limit, "limit")]
        .into_iter()
        .filter(|(t, _)| s.contains(*t))
        .map(|(_, n)| n)
        .collect()
}

fn names_of_tifs(s: TifSet) -> Vec<&'static str> {
    use crate::model::TimeInForce as T;
    [
        (T::Day, "day"),
        (T::GoodTillCancel, "gtc"),
        (T::ImmediateOrCancel, "ioc"),
        (T::FillOrKill, "fok"),
    ]
    .into_iter()
    .filter(|(t, _)| s.contains(*t))
    .map(|(_, n)| n)
    .collect()
}

/// Limits as JSON, with the config key names and decimal strings.
pub fn limits_json(l: &RiskLimits) -> Value {
    let notional = |n: Notional| fixed(n.0, PRICE_DECIMALS);
    let qty = |q: crate::model::Qty| fixed(i128::from(q.0), QTY_DECIMALS);
    json!({
        "max_order_qty": qty(l.max_order_qty),
        "max_order_notional": notional(l.max_order_notional),
        "collar_bps": l.collar.bps,
        "collar_ticks": l.collar.ticks,
        "reference_max_age_ms": l.reference_max_age.as_millis(),
        "credit_limit": notional(l.credit_limit),
        "max_long": qty(l.max_long),
        "max_short": qty(l.max_short),
        "max_open_orders": l.max_open_orders,
        "ord_types": names_of_ord_types(l.ord_types),
        "time_in_force": names_of_tifs(l.tifs),
        "duplicate_window_ms": l.duplicate_window.as_millis(),
        "max_msgs": l.max_msgs,
        "rate_period_ms": l.rate_period.as_millis(),
    })
}

fn target_json(t: &KillTarget, sessions: &[String]) -> Value {
    Value::String(crate::audit::target_name(t, sessions))
}

/// The JSON answer to a reply of the gateway thread.
fn reply_json(r: &ControlReply, seq: u64, sessions: &[String]) -> Value {
    match r {
        ControlReply::Kill {
            target,
            on,
            was_on,
            orders_canceled,
        } => json!({
            "ok": true, "seq": seq,
            "scope": target_json(target, sessions),
            "killed": on, "before": { "killed": was_on }, "after": { "killed": on },
            "orders_canceled": orders_canceled,
        }),
        ControlReply::Enabled {
            account,
            was_disabled,
        } => json!({
            "ok": true, "seq": seq, "account": account.as_str(),
            "before": { "disabled": was_disabled }, "after": { "disabled": false },
        }),
        ControlReply::Limits(c) => json!({
            "ok": true, "seq": seq, "account": c.account.as_str(),
            "change": c.seq,
            "before": limits_json(&c.before),
            "after": limits_json(&c.after),
            "expires_at": c.expires_at.map(ts),
        }),
        ControlReply::Show {
            view,
            global_kill,
            position,
            now,
        } => {
            let e = &view.exposure;
            let r = &view.reconciliation;
            let raise_active = view.raise_until.is_some_and(|t| *now < t);
            json!({
                "ok": true, "seq": seq,
                "exposure": {
                    "open_notional": fixed(e.open.0, PRICE_DECIMALS),
                    "executed_notional": fixed(e.executed.0, PRICE_DECIMALS),
                    "credit_used": fixed(e.open.0 + e.executed.0, PRICE_DECIMALS),
                    "open_orders": e.open_orders,
                },
                "limits": limits_json(if raise_active || view.raise_until.is_none() {
                    &view.limits
                } else {
                    &view.base
                }),
                "temporary_until": view.raise_until.filter(|_| raise_active).map(ts),
                "base_limits": view.raise_until.map(|_| limits_json(&view.base)),
                "killed": view.killed,
                "global_kill": global_kill,
                "disabled": view.disabled,
                "reconciliation": {
                    "accepted_orders": r.accepted_orders,
                    "accepted_notional": fixed(r.accepted_raw / 10_000, PRICE_DECIMALS),
                    "sent_orders": r.sent_orders,
                    "sent_notional": fixed(r.sent_raw / 10_000, PRICE_DECIMALS),
                    "venue_unmatched": r.venue_unmatched,
                },
                "position": position.map(|p| json!({
                    "net": fixed(i128::from(p.net), QTY_DECIMALS),
                    "open_buy": fixed(i128::from(p.open_buy), QTY_DECIMALS),
                    "open_sell": fixed(i128::from(p.open_sell), QTY_DECIMALS),
                })),
            })
        }
        ControlReply::Session(v) => json!({
            "ok": true, "seq": seq,
            "index": v.index,
            "name": sessions.get(v.index as usize),
            "begin_string": v.begin,
            "sender_comp_id": mask::free_text(v.their_comp_id.as_str()),
            "target_comp_id": v.our_comp_id.as_str(),
            "key_id": (!v.key_id.is_empty()).then(|| mask::free_text(v.key_id.as_str())),
            "connected": v.connected,
            "logged_on": v.logged_on,
            "peer": v.peer.map(|p| p.to_string()),
            "tls": v.tls,
            "next_sender_seq": v.next_sender_seq,
            "next_target_seq": v.next_target_seq,
            "queued_bytes": v.queued_bytes,
            "killed": v.killed,
            "drop_copy": v.drop_copy,
        }),
        ControlReply::Venue(v) => json!({
            "ok": true, "seq": seq,
            "index": v.index,
            "name": v.name.as_str(),
            "up": v.up,
            "kind": if v.external { "fix" } else { "sim" },
            "open_orders": v.open_orders,
        }),
        ControlReply::Refused(why) => json!({ "ok": false, "seq": seq, "error": why }),
    }
}

fn refuse(why: impl Into<String>) -> Value {
    json!({ "ok": false, "error": why.into() })
}

/// The credentials the kernel recorded for a control socket peer when it connected
/// (SO_PEERCRED): not claimed by the client, so the audit's "who" is more than `--by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

impl PeerCred {
    fn json(&self) -> Value {
        json!({ "uid": self.uid, "gid": self.gid, "pid": self.pid })
    }
}

/// The two libc calls of the control socket (lib.rs lint policy lists this module).
mod sys {
    #![allow(unsafe_code)] // getsockopt(SO_PEERCRED) and geteuid: FFI; SAFETY at each block

    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::PeerCred;

    /// The peer process of a connected Unix stream socket, as of its `connect`.
    pub(super) fn peer_cred(s: &UnixStream) -> io::Result<PeerCred> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let want = std::mem::size_of::<libc::ucred>();
        let mut len = want as libc::socklen_t;
        let ptr: *mut libc::ucred = &mut cred;
        // SAFETY: the fd is open for the whole call (`s` is borrowed); `ptr` and `&mut len`
        // point to live, writable locals, and `len` holds `cred`'s size, so the kernel writes
        // at most that many bytes into it.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                ptr.cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("SO_PEERCRED answered {len} bytes, not {want}"),
            ));
        }
        Ok(PeerCred {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
        })
    }

    /// The gateway's effective uid.
    pub(super) fn own_uid() -> u32 {
        // SAFETY: geteuid takes nothing, touches no memory of ours and cannot fail (POSIX).
        unsafe { libc::geteuid() }
    }
}

/// Per-client bounds, from `[control]`.
#[derive(Clone, Debug)]
struct Bounds {
    allowed_uids: Vec<u32>,
    max_clients: usize,
    max_line_bytes: usize,
    idle: Duration,
    io: Duration,
}

/// What every client thread shares.
struct Shared {
    commands: CommandSender,
    /// Session keys (`FIX.4.4-OUR-THEIR`) by index.
    sessions: Vec<String>,
    audit: PathBuf,
    /// One audit line at a time.
    audit_lock: Mutex<()>,
    /// The last request number. Held while a request is numbered *and* queued to the gateway,
    /// so the gateway applies requests in number order: the `persisted` watermark relies on it.
    last_seq: Mutex<u64>,
    /// Raised by the journal thread once a request's switch change is on disk.
    persisted: Arc<AtomicU64>,
    counters: Arc<Counters>,
    bounds: Bounds,
}

/// How long a kill, unkill or enable waits for the journal thread to persist it.
const PERSIST_WAIT: Duration = Duration::from_secs(2);
/// How long a request waits for the gateway thread to apply it.
const GATEWAY_WAIT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A thread that panicked holding it left nothing half-done (a counter, a file append).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Masks, in an audit line: account ids (all but the last 4 characters, like `events.log`;
/// also the `name` of an `account` scope) and card numbers in the free-text fields (`by`,
/// `reason`, `error`, `warning`).
fn mask_value(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let account_scope = o.get("scope").and_then(Value::as_str) == Some("account");
            for (k, v) in o.iter_mut() {
                match (k.as_str(), &*v) {
                    ("account", Value::String(s)) => *v = Value::String(mask::account(s)),
                    ("name", Value::String(s)) if account_scope => {
                        *v = Value::String(mask::account(s))
                    }
                    ("by" | "reason" | "error" | "warning", Value::String(s)) => {
                        *v = Value::String(mask::free_text(s))
                    }
                    _ => mask_value(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_value),
        _ => {}
    }
}

impl Shared {
    fn account(name: &str) -> Result<Account, Value> {
        Account::new(name.as_bytes())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| refuse(format!("account {name:?} must be 1–24 characters")))
    }

    fn target(&self, scope: &str, name: Option<&str>) -> Result<KillTarget, Value> {
        let need = |what: &str| refuse(format!("scope {scope:?} needs a {what} name"));
        match scope {
            "global" => Ok(KillTarget::Global),
            "account" => Ok(KillTarget::Account(Self::account(
                name.ok_or_else(|| need("account"))?,
            )?)),
            "symbol" => {
                let n = name.ok_or_else(|| need("symbol"))?;
                Symbol::new(n.as_bytes())
                    .filter(|s| !s.is_empty())
                    .map(KillTarget::Symbol)
                    .ok_or_else(|| refuse(format!("symbol {n:?} must be 1–24 characters")))
            }
            "session" => {
                let n = name.ok_or_else(|| need("session"))?;
                // The full key (FIX.4.4-GW-CLIENT1) or the client's CompID when unique.
                let exact = self.sessions.iter().position(|k| k == n);
                let by_comp: Vec<usize> = self
                    .sessions
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.rsplit('-').next() == Some(n))
                    .map(|(i, _)| i)
                    .collect();
                match (exact, by_comp.as_slice()) {
                    (Some(i), _) | (None, &[i]) => Ok(KillTarget::Session(i as u32)),
                    (None, []) => Err(refuse(format!(
                        "unknown session {n:?} (known: {})",
                        self.sessions.join(", ")
                    ))),
                    (None, _) => Err(refuse(format!(
                        "session {n:?} is ambiguous: use the full key"
                    ))),
                }
            }
            other => Err(refuse(format!(
                "scope {other:?} is not global, account, symbol or session"
            ))),
        }
    }

    fn who(by: &str, reason: &str) -> Result<(), Value> {
        if by.trim().is_empty() {
            return Err(refuse("`by` (who is acting) is required"));
        }
        if reason.trim().is_empty() {
            return Err(refuse("`reason` (why) is required"));
        }
        Ok(())
    }

    /// `block` / `unblock` (intrusion response): straight to the gateway thread as a
    /// [`Command::BlockAddress`] / [`Command::Unblock`] (applied at its next loop turn; no
    /// answer to wait for), audited like every change.
    fn block(&self, req: &Request, peer: PeerCred) -> Value {
        let (address, by, reason, for_ms) = match req {
            Request::Block {
                address,
                for_ms,
                by,
                reason,
            } => (address, by, reason, Some(*for_ms)),
            Request::Unblock {
                address,
                by,
                reason,
            } => (address, by, reason, None),
            _ => return refuse("not a block request"),
        };
        if let Err(v) = Self::who(by, reason) {
            return v;
        }
        let Ok(ip) = address.trim().parse::<std::net::IpAddr>() else {
            return refuse(format!(
                "address {address:?} is not an IP address (e.g. 192.0.2.7 or 2001:db8::7)"
            ));
        };
        if for_ms == Some(0) {
            return refuse("for_ms must be > 0");
        }
        let seq = {
            let mut last = lock(&self.last_seq);
            *last += 1;
            *last
        };
        let now = crate::clock::system_utc();
        let until = for_ms.map(|ms| Nanos(now.0.saturating_add(ms.saturating_mul(1_000_000))));
        let (cmd, mut answer) = match until {
            Some(until) => (
                Command::BlockAddress { ip, until },
                json!({"ok": true, "seq": seq, "blocked": ip.to_string(),
                           "until": ts(until), "until_ns": until.0}),
            ),
            None => (
                Command::Unblock { ip },
                json!({"ok": true, "seq": seq, "unblocked": ip.to_string()}),
            ),
        };
        if self.commands.send(cmd).is_err() {
            answer = refuse("the gateway is stopping");
        } else if let Some(dir) = self.audit.parent() {
            let saved = {
                let _one_at_a_time = lock(&self.audit_lock);
                persist_block(dir, ip, until, now)
            };
            if let (Err(e), Some(obj)) = (saved, answer.as_object_mut()) {
                obj.insert(
                    "warning".into(),
                    Value::String(format!(
                        "applied, but not written to {BLOCKS_FILE} ({e}): a restart would forget it"
                    )),
                );
            }
        }
        self.audit(seq, req, &answer, peer);
        answer
    }

    /// Parses, forwards and answers one request line from `peer`.
    fn handle(&self, line: &str, peer: PeerCred) -> Value {
        let req: Request = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => return refuse(mask::free_text(&format!("bad request: {e}"))),
        };
        if matches!(req, Request::Block { .. } | Request::Unblock { .. }) {
            return self.block(&req, peer);
        }
        let built = self.build(&req);
        let (request, audited) = match built {
            Ok(x) => x,
            Err(v) => return v,
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let seq = {
            let mut last = lock(&self.last_seq);
            *last += 1;
            let seq = *last;
            let call = ControlCall {
                seq,
                request,
                reply: tx,
            };
            if self.commands.send(Command::Control(call)).is_err() {
                return refuse("the gateway is stopping");
            }
            seq
        };
        let mut answer = match rx.recv_timeout(GATEWAY_WAIT) {
            Ok(reply) => {
                let mut answer = reply_json(&reply, seq, &self.sessions);
                if matches!(
                    reply,
                    ControlReply::Kill { .. } | ControlReply::Enabled { .. }
                ) {
                    self.await_persisted(seq, &mut answer);
                }
                answer
            }
            // Queued, so it may still be applied: audited as unanswered.
            Err(_) => refuse(format!(
                "the gateway did not answer within {} s (request seq {seq}; see events.log)",
                GATEWAY_WAIT.as_secs()
            )),
        };
        self.persist_limits(&req, &mut answer);
        if audited {
            self.audit(seq, &req, &answer, peer);
        }
        if let Some(Value::String(e)) = answer.get_mut("error") {
            *e = mask::free_text(e);
        }
        answer
    }

    /// A permanent limit change that applied is merged into `<data>/ops-limits.json`
    /// ([`crate::ops::limits`]), which [`serve`] applies again at the next start: limit changes
    /// survive a restart whether they came from `portcullis ctl` or the ops port. Temporary
    /// changes revert by themselves and are not kept; the restore's own requests are not
    /// written again.
    fn persist_limits(&self, req: &Request, answer: &mut Value) {
        let Request::LimitsSet {
            account,
            limits,
            for_ms: None,
            by,
            ..
        } = req
        else {
            return;
        };
        if answer.get("ok") != Some(&Value::Bool(true)) || by == RESTORED_BY {
            return;
        }
        let Some(dir) = self.audit.parent() else {
            return;
        };
        let saved = {
            let _one_at_a_time = lock(&self.audit_lock);
            crate::ops::limits::persist(dir, account, limits)
        };
        if let (Err(e), Some(obj)) = (saved, answer.as_object_mut()) {
            obj.insert(
                "warning".into(),
                Value::String(format!("applied, but not saved for a restart: {e}")),
            );
        }
    }

    /// Answers a switch change only once it survives a crash (risk-switches.state written).
    fn await_persisted(&self, seq: u64, answer: &mut Value) {
        let deadline = crate::clock::monotonic() + PERSIST_WAIT;
        let mut on_disk = false;
        while crate::clock::monotonic() < deadline {
            if self.persisted.load(Ordering::Acquire) >= seq {
                on_disk = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(obj) = answer.as_object_mut() {
            obj.insert("persisted".into(), Value::Bool(on_disk));
            if !on_disk {
                obj.insert(
                    "warning".into(),
                    Value::String(
                        "applied, but not yet written to risk-switches.state: a crash now would lose it (see events.log)".into(),
                    ),
                );
            }
        }
    }
    fn build(&self, req: &Request) -> Result<(ControlRequest, bool), Value> {
        Ok(match req {
            Request::Kill {
                scope,
                name,
                by,
                reason,
            }
            | Request::Unkill {
                scope,
                name,
                by,
                reason,
            } => {
                Self::who(by, reason)?;
                let t = self.target(scope, name.as_deref())?;
                let r = if matches!(req, Request::Kill { .. }) {
                    ControlRequest::Kill(t)
                } else {
                    ControlRequest::Unkill(t)
                };
                (r, true)
            }
            Request::EnableAccount {
                account,
                by,
                reason,
            } => {
                Self::who(by, reason)?;
                (ControlRequest::EnableAccount(Self::account(account)?), true)
            }
            Request::LimitsSet {
                account,
                limits,
                for_ms,
                by,
                reason,
            } => {
                Self::who(by, reason)?;
                if limits.is_empty() {
                    return Err(refuse("no limit to change"));
                }
                if *for_ms == Some(0) {
                    return Err(refuse("for_ms must be > 0"));
                }
                let l = limits.clone();
                let cfg = AccountCfg {
                    name: account.clone(),
                    max_order_qty: l.max_order_qty,
                    max_order_notional: l.max_order_notional,
                    collar_bps: l.collar_bps,
                    collar_ticks: l.collar_ticks,
                    reference_max_age_ms: l.reference_max_age_ms,
                    credit_limit: l.credit_limit,
                    max_long: l.max_long,
                    max_short: l.max_short,
                    max_open_orders: l.max_open_orders,
                    ord_types: l.ord_types,
                    time_in_force: l.time_in_force,
                    duplicate_window_ms: l.duplicate_window_ms,
                    max_msgs: l.max_msgs,
                    rate_period_ms: l.rate_period_ms,
                };
                let changes = cfg
                    .spec()
                    .map_err(|(k, p)| refuse(format!("limit {k}: {p}")))?;
                (
                    ControlRequest::SetLimits {
                        account: Self::account(account)?,
                        changes,
                        for_ns: for_ms.map(|ms| ms.saturating_mul(1_000_000)),
                    },
                    true,
                )
            }
            Request::RiskShow { account, symbol } => {
                let symbol = match symbol {
                    Some(s) => Some(
                        Symbol::new(s.as_bytes())
                            .ok_or_else(|| refuse(format!("symbol {s:?} too long")))?,
                    ),
                    None => None,
                };
                (
                    ControlRequest::Show {
                        account: Self::account(account)?,
                        symbol,
                    },
                    false,
                )
            }
            Request::SessionShow { index } => (ControlRequest::Session(*index), false),
            Request::VenueShow { index } => {
                (ControlRequest::Venue(crate::model::VenueId(*index)), false)
            }
            Request::Block { .. } | Request::Unblock { .. } => {
                return Err(refuse("block and unblock are not risk controls"));
            }
        })
    }

    fn audit(&self, seq: u64, req: &Request, answer: &Value, peer: PeerCred) {
        let request = serde_json::to_value(req).unwrap_or(Value::Null);
        let by = request.get("by").cloned().unwrap_or(Value::Null);
        let reason = request.get("reason").cloned().unwrap_or(Value::Null);
        let mut line = json!({
            "seq": seq,
            "at": ts(crate::clock::system_utc()),
            "by": by,
            "peer": peer.json(),
            "reason": reason,
            "request": request,
            "result": answer,
        });
        mask_value(&mut line);
        self.append_audit(&line);
    }

    /// A connection refused before any request was read (peer not allowed).
    fn audit_refusal(&self, peer: Option<PeerCred>, why: &str) {
        let line = json!({
            "at": ts(crate::clock::system_utc()),
            "refused": "peer",
            "peer": peer.map(|p| p.json()),
            "error": why,
        });
        self.append_audit(&line);
    }

    fn append_audit(&self, line: &Value) {
        // Audit trail (src/trail): the same line, as a record with the operator as actor.
        if let Some(t) = self.audit.parent().and_then(crate::trail::attached) {
            t.send(crate::trail::from_control(line));
        }
        let _one_at_a_time = lock(&self.audit_lock);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.audit)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            crate::say_err(format_args!(
                "portcullis: control audit log {}: {e}",
                self.audit.display()
            ));
        }
    }
}

// ---- serving clients --------------------------------------------------------------------------
//
// The accepting thread checks the peer (SO_PEERCRED) and hands each allowed connection to a
// thread of its own, at most `max_clients` at once: a client that never sends, sends a line
// that never ends, or never reads its answers holds only its own thread, each bounded by a
// deadline, and a kill from another client is applied meanwhile. When all slots are taken the
// oldest client not waiting for the gateway is closed to make room.

/// A client thread's state, as the accepting thread sees it.
const IDLE: u8 = 0;
/// A request is with the gateway thread: never evicted (it would lose the answer).
const APPLYING: u8 = 1;
/// Writing an answer (possibly to a client that does not read).
const WRITING: u8 = 2;
/// Done, or closed by the accepting thread.
const CLOSED: u8 = 3;

struct Slot {
    accepted: std::time::Instant,
    state: Arc<AtomicU8>,
    /// The client's socket, to shut down on eviction or stop.
    stream: UnixStream,
}

/// Sends `answer` without blocking (a peer whose buffer is full gets nothing) and closes.
fn say_and_close(stream: &UnixStream, answer: &Value) {
    let line = format!("{answer}\n");
    let _ = socket2::SockRef::from(stream).send_with_flags(line.as_bytes(), libc::MSG_DONTWAIT);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Writes all of `bytes` by `deadline`, however slowly the peer reads.
fn write_by(stream: &mut UnixStream, bytes: &[u8], deadline: std::time::Instant) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(crate::clock::monotonic());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why a client's connection ends.
enum Closing {
    /// The peer closed, the socket failed, or the accepting thread closed it.
    Quietly,
    /// The server ends it with this error answer.
    With(String),
}

impl Shared {
    /// Serves one client until it leaves or breaks a bound.
    fn serve_client(&self, mut stream: UnixStream, peer: PeerCred, state: &AtomicU8) {
        if let Closing::With(why) = self.client_loop(&mut stream, peer, state) {
            self.counters.inc(Counter::ControlClosed);
            // Only a client thread that still owns the socket answers (not after eviction).
            if state.swap(CLOSED, Ordering::AcqRel) != CLOSED {
                say_and_close(&stream, &refuse(why));
            }
        }
        state.store(CLOSED, Ordering::Release);
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    fn client_loop(&self, stream: &mut UnixStream, peer: PeerCred, state: &AtomicU8) -> Closing {
        let b = &self.bounds;
        // Never more than one line and one byte: a longer line is refused unread.
        let mut buf = vec![0u8; b.max_line_bytes + 1];
        let mut filled = 0;
        let mut idle_until = crate::clock::monotonic() + b.idle;
        let mut line_until = None;
        loop {
            let end = match buf
                .get(..filled)
                .and_then(|d| d.iter().position(|&c| c == b'\n'))
            {
                Some(end) => end,
                None if filled == buf.len() => {
                    return Closing::With(format!(
                        "request line longer than {} bytes (control.max_line_bytes): closed",
                        b.max_line_bytes
                    ))
                }
                None => {
                    let deadline = line_until.unwrap_or(idle_until);
                    let left = deadline.saturating_duration_since(crate::clock::monotonic());
                    if left.is_zero() {
                        return Closing::With(match line_until {
                            Some(_) => format!(
                                "request line not completed within {} ms (control.io_timeout_ms): closed",
                                b.io.as_millis()
                            ),
                            None => format!(
                                "no request for {} ms (control.idle_timeout_ms): closed",
                                b.idle.as_millis()
                            ),
                        });
                    }
                    if stream.set_read_timeout(Some(left)).is_err() {
                        return Closing::Quietly;
                    }
                    let Some(space) = buf.get_mut(filled..) else {
                        return Closing::Quietly;
                    };
                    match stream.read(space) {
                        Ok(0) => return Closing::Quietly,
                        Ok(n) => {
                            if filled == 0 {
                                line_until = Some(crate::clock::monotonic() + b.io);
                            }
                            filled += n;
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => return Closing::Quietly,
                    }
                    continue;
                }
            };
            if state
                .compare_exchange(IDLE, APPLYING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Closing::Quietly; // evicted
            }
            let answer = match std::str::from_utf8(buf.get(..end).unwrap_or_default()) {
                Ok(line) => self.handle(line.trim(), peer),
                Err(_) => refuse("bad request: not UTF-8"),
            };
            state.store(WRITING, Ordering::Release);
            let written = write_by(
                stream,
                format!("{answer}\n").as_bytes(),
                crate::clock::monotonic() + b.io,
            );
            if let Err(e) = written {
                let evicted = state.load(Ordering::Acquire) == CLOSED;
                let deaf = matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                );
                if deaf && !evicted {
                    // It does not read its answers: closed, and nothing more can reach it.
                    self.counters.inc(Counter::ControlClosed);
                }
                return Closing::Quietly;
            }
            if state
                .compare_exchange(WRITING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Closing::Quietly;
            }
            buf.copy_within(end + 1..filled, 0);
            filled -= end + 1;
            idle_until = crate::clock::monotonic() + b.idle;
            line_until = (filled > 0).then(|| crate::clock::monotonic() + b.io);
        }
    }

    /// Checks a new connection's peer; refused ones are answered, audited and closed.
    fn admit_peer(&self, stream: &UnixStream) -> Option<PeerCred> {
        let why = match sys::peer_cred(stream) {
            Ok(p) if self.bounds.allowed_uids.contains(&p.uid) => return Some(p),
            Ok(p) => {
                let why = format!(
                    "uid {} may not use the control socket (control.allowed_uids)",
                    p.uid
                );
                self.audit_refusal(Some(p), &why);
                why
            }
            Err(e) => {
                let why = format!("peer credentials unreadable: {e}");
                self.audit_refusal(None, &why);
                why
            }
        };
        self.counters.inc(Counter::ControlClosed);
        say_and_close(stream, &refuse(why));
        None
    }
}

/// Makes room for one more client: forgets finished ones, then closes the oldest one not
/// applying a request if all slots are taken. False when every slot is applying a request.
fn make_room(slots: &mut Vec<Slot>, max: usize, counters: &Counters) -> bool {
    slots.retain(|s| s.state.load(Ordering::Acquire) != CLOSED);
    if slots.len() < max {
        return true;
    }
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&i| slots.get(i).map(|s| s.accepted));
    for i in order {
        let Some(s) = slots.get(i) else { continue };
        let was = s.state.load(Ordering::Acquire);
        if was == APPLYING
            || s.state
                .compare_exchange(was, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            continue;
        }
        counters.inc(Counter::ControlClosed);
        if was == IDLE {
            let why = format!(
                "closed to make room: all {max} control clients (control.max_clients) were taken and this was the oldest idle one"
            );
            say_and_close(&s.stream, &refuse(why));
        } else {
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
        }
        slots.remove(i);
        return true;
    }
    false
}

/// Wakes the control thread blocked in `accept` (after its stop flag was set); false when the
/// socket could not be reached (the thread is then left to end with the process).
pub fn wake(data_dir: &Path) -> bool {
    UnixStream::connect(data_dir.join(SOCKET)).is_ok()
}

/// What the control server needs besides the socket.
pub struct ServeWith {
    pub commands: CommandSender,
    /// Session keys (`FIX.4.4-OUR-THEIR`) by index.
    pub sessions: Vec<String>,
    /// Raised by the journal thread once a request's switch change is on disk.
    pub persisted: Arc<AtomicU64>,
    pub counters: Arc<Counters>,
    pub cfg: ControlCfg,
}

/// Creates `<data_dir>/control.sock` (mode 0600) and serves it on a thread named
/// `portcullis-control` until `stop` is set.
/// `by` of the requests that re-apply the persisted limit changes at start.
pub const RESTORED_BY: &str = "portcullis (limit changes restored from ops-limits.json at start)";

/// Re-applies the persisted permanent limit changes ([`crate::ops::limits`]) through the
/// socket at `path`, on a thread of its own (the gateway thread may not be running yet; each
/// request waits for it like any other).
fn restore_limits(data_dir: &Path, path: &Path) {
    let all = match crate::ops::limits::load(data_dir) {
        Ok(a) if a.is_empty() => return,
        Ok(a) => a,
        Err(e) => {
            crate::say_err(format_args!("portcullis: limit changes not restored: {e}"));
            return;
        }
    };
    let path = path.to_path_buf();
    let _ = std::thread::Builder::new()
        .name("portcullis-control-restore".into())
        .spawn(move || {
            for (account, changes) in all {
                let req = Request::LimitsSet {
                    account: account.clone(),
                    limits: changes,
                    for_ms: None,
                    by: RESTORED_BY.into(),
                    reason: "limit changes made with ctl or the ops port survive a restart".into(),
                };
                match call(&path, &req) {
                    Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => {}
                    Ok(v) => crate::say_err(format_args!(
                        "portcullis: restoring limits of {}: {}",
                        mask::account(&account),
                        v.get("error").unwrap_or(&v)
                    )),
                    Err(e) => crate::say_err(format_args!("portcullis: restoring limits: {e}")),
                }
            }
        });
}

pub fn serve(
    data_dir: &Path,
    with: ServeWith,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    // The socket is 0600: only the gateway's own uid and root can open it. A list naming
    // neither leaves `portcullis ctl` (the kill switch among it) out of everyone's reach: said
    // loudly at start (not refused: it is also how a locked-down host disables the socket).
    let own = sys::own_uid();
    if let Some(list) = &with.cfg.allowed_uids {
        if !list.iter().any(|u| *u == own || *u == 0) {
            crate::say_err(format_args!(
                "portcullis: WARNING: control.allowed_uids {list:?} names neither the gateway's \
                 own uid {own} nor root: the socket is 0600, so nobody can use `portcullis ctl` \
                 (add {own} to allow it)"
            ));
        }
    }
    let path = data_dir.join(SOCKET);
    // Bound under a temporary name, restricted, then moved into place: the socket is never
    // reachable with wider permissions.
    let tmp = data_dir.join(format!("{SOCKET}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &path)?;
    restore_limits(data_dir, &path);
    let cfg = &with.cfg;
    let shared = Arc::new(Shared {
        commands: with.commands,
        sessions: with.sessions,
        audit: data_dir.join(AUDIT_LOG),
        audit_lock: Mutex::new(()),
        last_seq: Mutex::new(crate::clock::system_utc().0 / 1_000_000 * 1000),
        persisted: with.persisted,
        counters: with.counters,
        bounds: Bounds {
            allowed_uids: cfg
                .allowed_uids
                .clone()
                .unwrap_or_else(|| vec![sys::own_uid()]),
            max_clients: cfg.max_clients,
            max_line_bytes: cfg.max_line_bytes,
            idle: Duration::from_millis(cfg.idle_timeout_ms),
            io: Duration::from_millis(cfg.io_timeout_ms),
        },
    });
    std::thread::Builder::new()
        .name("portcullis-control".into())
        .spawn(move || {
            let mut slots: Vec<Slot> = Vec::with_capacity(shared.bounds.max_clients);
            // Blocks in accept: no wake-ups while idle (on a small box every wake-up preempts a
            // spinning thread). Stopping sets `stop`, then [`wake`] connects once.
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let stream = match conn {
                    Ok(s) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let Some(peer) = shared.admit_peer(&stream) else {
                    continue;
                };
                if !make_room(&mut slots, shared.bounds.max_clients, &shared.counters) {
                    shared.counters.inc(Counter::ControlClosed);
                    let why = format!(
                        "busy: {} control requests are being applied (control.max_clients); try again",
                        shared.bounds.max_clients
                    );
                    say_and_close(&stream, &refuse(why));
                    continue;
                }
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let state = Arc::new(AtomicU8::new(IDLE));
                let client = (shared.clone(), state.clone());
                let spawned = std::thread::Builder::new()
                    .name("portcullis-control-client".into())
                    .stack_size(256 * 1024)
                    .spawn(move || client.0.serve_client(stream, peer, &client.1));
                if spawned.is_ok() {
                    slots.push(Slot {
                        accepted: crate::clock::monotonic(),
                        state,
                        stream: handle,
                    });
                }
            }
            for s in &slots {
                s.state.store(CLOSED, Ordering::Release);
                let _ = s.stream.shutdown(std::net::Shutdown::Both);
            }
            let _ = std::fs::remove_file(&path);
        })
}

// ---- the `portcullis ctl` client ----------------------------------------------------------

/// Sends one request to the gateway's control socket and returns its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Value, String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the gateway at {}: {e} (is it running, with this --data-dir?)",
            socket.display()
        )
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    // A refused peer is answered and closed at once, possibly before this write: the answer
    // (why) is still there to read.
    let sent = w.write_all(format!("{line}\n").as_bytes());
    let mut answer = String::new();
    let read = BufReader::new(stream).read_line(&mut answer);
    match (read, sent) {
        (Ok(n), _) if n > 0 => {}
        (_, Err(e)) => return Err(format!("send: {e}")),
        (Ok(_), Ok(())) => return Err("no answer: the gateway closed the connection".into()),
        (Err(e), Ok(())) => return Err(format!("no answer: {e}")),
    }
    serde_json::from_str(&answer).map_err(|e| format!("bad answer {answer:?}: {e}"))
}

/// "500ms", "30s", "5m", "2h" (or a bare number of seconds) → milliseconds.
pub fn parse_duration_ms(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a duration (e.g. 500ms, 30s, 5m, 2h)"))?;
    let mult = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{v:?}: unit must be ms, s, m or h")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{v:?}: must be longer than zero")),
        Some(ms) => Ok(ms),
        None => Err(format!("{v:?} is too long")),
    }
}

/// Every session (`sessions`) or venue, one request each until the gateway names none: the
/// items as one pretty JSON array. Exit code as [`run`].
fn run_listing(socket: &Path, sessions: bool) -> u8 {
    let mut items = Vec::new();
    for i in 0..=u16::MAX {
        let req = if sessions {
            Request::SessionShow {
                index: u32::from(i),
            }
        } else {
            Request::VenueShow { index: i }
        };
        match call(socket, &req) {
            Ok(v) if v.get("ok").and_then(Value::as_bool) == Some(true) => items.push(v),
            Ok(v)
                if items.is_empty()
                    && !v
                        .get("error")
                        .is_some_and(|e| e.as_str().is_some_and(|e| e.starts_with("unknown"))) =>
            {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
                );
                return 1;
            }
            Ok(_) => break,
            Err(e) => {
                eprintln!("portcullis ctl: {e}");
                return 2;
            }
        }
    }
    let v = Value::Array(items);
    println!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    );
    0
}

/// Runs a `portcullis ctl` request: prints the answer (pretty JSON) and returns the exit code:
/// 0 applied, 1 refused by the gateway, 2 not delivered.
pub fn run(socket: &Path, req: &Request) -> u8 {
    match call(socket, req) {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            if v.get("ok").and_then(Value::as_bool) == Some(true) {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("portcullis ctl: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_decimals() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("5 weeks").is_err());
        assert_eq!(fixed(1_050_000_000, 8), "10.5");
        assert_eq!(fixed(-30_000, 4), "-3");
        assert_eq!(fixed(1, 4), "0.0001");
    }

    #[test]
    fn audit_lines_mask_accounts_and_card_numbers_but_not_other_values() {
        let mut line = json!({
            "seq": 4111111111111111u64,
            "by": "alice 4111111111111111",
            "reason": "card 4111 1111 1111 1111",
            "request": { "op": "kill", "scope": "account", "name": "ACCT-98765432",
                         "by": "alice", "reason": "x" },
            "result": { "ok": true, "account": "ACCT-98765432",
                        "before": { "credit_limit": "4111111111111111" } },
            "other": { "scope": "symbol", "name": "4111111111111111" },
        });
        mask_value(&mut line);
        assert_eq!(line["seq"], 4111111111111111u64);
        assert_eq!(line["by"], "alice ************1111");
        assert_eq!(line["reason"], "card **** **** **** 1111");
        assert_eq!(line["request"]["name"], "*********5432");
        assert_eq!(line["result"]["account"], "*********5432");
        assert_eq!(line["result"]["before"]["credit_limit"], "4111111111111111");
        assert_eq!(line["other"]["name"], "4111111111111111");
    }
}

// ---- command line ---------------------------------------------------------------------------

/// `portcullis ctl`: risk controls of a running gateway, through its control socket.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The gateway's data folder (the socket is `<data-dir>/control.sock`).
    #[arg(long, default_value = "./portcullis-data", global = true)]
    pub data_dir: PathBuf,
    /// The control socket itself (overrides --data-dir).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Act through a gateway's ops port over HTTPS instead of the local socket
    /// (`https://host:9880`; see `ops::remote`): needs --user; the password comes from
    /// PORTCULLIS_OPS_PASSWORD and the TOTP code from PORTCULLIS_OPS_TOTP, else the terminal.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The ops port operator to log in as (with --url).
    #[arg(long, global = true, requires = "url")]
    pub user: Option<String>,
    /// PEM file of the CA that issued the ops port's certificate: only it is trusted (with
    /// --url; without it, the public web roots).
    #[arg(long, global = true, requires = "url")]
    pub ca: Option<PathBuf>,
    #[command(subcommand)]
    pub action: CtlAction,
}

/// Who acts and why: recorded with every change.
#[derive(clap::Args, Debug)]
pub struct Audit {
    /// Why (recorded in the control audit log).
    #[arg(long)]
    pub reason: String,
    /// Who is acting (recorded in the control audit log). Required on the local socket; with
    /// --url the port records the logged-in operator instead.
    #[arg(long)]
    pub by: Option<String>,
}

impl Audit {
    /// `--by`, required on the local socket.
    fn by(&self) -> Result<String, u8> {
        self.by.clone().ok_or_else(|| {
            crate::say_err(format_args!(
                "portcullis ctl: --by NAME is required on the control socket (who acts)"
            ));
            2
        })
    }
}

/// Exactly one scope.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Scope {
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub symbol: Option<String>,
    /// A session: its key (FIX.4.4-GW-CLIENT1) or the client's CompID.
    #[arg(long)]
    pub session: Option<String>,
    /// Everything.
    #[arg(long)]
    pub global: bool,
}

impl Scope {
    pub(crate) fn parts(&self) -> (String, Option<String>) {
        match (&self.account, &self.symbol, &self.session) {
            (Some(a), _, _) => ("account".into(), Some(a.clone())),
            (_, Some(s), _) => ("symbol".into(), Some(s.clone())),
            (_, _, Some(s)) => ("session".into(), Some(s.clone())),
            _ => ("global".into(), None),
        }
    }
}

// Parsed once per command line.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub enum CtlAction {
    /// Kill switch on: new orders and replaces in the scope are refused and every open order
    /// in it is cancelled at its venue. Cancels stay allowed.
    Kill {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        audit: Audit,
    },
    /// Kill switch off (cancelled orders stay cancelled).
    Unkill {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        audit: Audit,
    },
    /// Re-enable an account that the message rate limit disabled.
    EnableAccount {
        account: String,
        #[command(flatten)]
        audit: Audit,
    },
    /// Limits.
    Limits {
        #[command(subcommand)]
        action: LimitsAction,
    },
    /// Risk state.
    Risk {
        #[command(subcommand)]
        action: RiskAction,
    },
    /// Every configured client session: CompIDs, key, peer, sequence numbers, bytes queued.
    Sessions,
    /// Every venue: up or down, kind, open orders.
    Venues,
    /// Close new connections from a source address for a time (what the intrusion response
    /// does by policy; see README "Intrusion detection and response").
    Block {
        /// The source IP address.
        address: String,
        /// How long (500ms, 30s, 5m, 2h).
        #[arg(long = "for")]
        duration: String,
        #[command(flatten)]
        audit: Audit,
    },
    /// Lift a block on a source address (an automatic one included).
    Unblock {
        /// The source IP address.
        address: String,
        #[command(flatten)]
        audit: Audit,
    },
}

// Parsed once per command line.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub enum LimitsAction {
    /// Change an account's limits live, as one snapshot; limits not named stay. With --until,
    /// a temporary change that reverts by itself.
    Set {
        #[arg(long)]
        account: String,
        #[arg(long)]
        max_qty: Option<String>,
        #[arg(long)]
        max_notional: Option<String>,
        #[arg(long)]
        collar_bps: Option<u32>,
        #[arg(long)]
        collar_ticks: Option<u32>,
        #[arg(long)]
        reference_max_age_ms: Option<u64>,
        #[arg(long)]
        credit_limit: Option<String>,
        #[arg(long)]
        max_long: Option<String>,
        #[arg(long)]
        max_short: Option<String>,
        #[arg(long)]
        max_open_orders: Option<u32>,
        /// Comma-separated: market,limit.
        #[arg(long, value_delimiter = ',')]
        ord_types: Option<Vec<String>>,
        /// Comma-separated: day,gtc,ioc,fok.
        #[arg(long, value_delimiter = ',')]
        time_in_force: Option<Vec<String>>,
        #[arg(long)]
        duplicate_window_ms: Option<u64>,
        #[arg(long)]
        max_msgs: Option<u32>,
        #[arg(long)]
        rate_period_ms: Option<u64>,
        /// Temporary: revert after this long (500ms, 30s, 5m, 2h).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        audit: Audit,
    },
    /// With --url only: approve another risk officer's pending limit raise (four eyes).
    Approve {
        /// The id the raise request answered with.
        id: u64,
    },
    /// With --url only: the limit raises waiting for a second risk officer.
    Pending,
}

#[derive(clap::Subcommand, Debug)]
pub enum RiskAction {
    /// An account's exposure (open and executed notional, open orders), limits and switches.
    Show {
        #[arg(long)]
        account: String,
        /// Also its position in this symbol.
        #[arg(long)]
        symbol: Option<String>,
    },
}

impl CtlArgs {
    /// Runs the command; the exit code (0 applied, 1 refused, 2 usage or not delivered).
    pub fn run(self) -> u8 {
        if let Some(url) = self.url.clone() {
            let remote = crate::ops::remote::Remote {
                url,
                user: self.user.clone(),
                ca: self.ca.clone(),
            };
            return crate::ops::remote::run(&remote, self.action);
        }
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join(SOCKET));
        let listing = match self.action {
            CtlAction::Sessions => Some(true),
            CtlAction::Venues => Some(false),
            _ => None,
        };
        if let Some(sessions) = listing {
            return run_listing(&socket, sessions);
        }
        let req = match self.action {
            CtlAction::Sessions | CtlAction::Venues => return 2,
            CtlAction::Kill { scope, audit } => {
                let (scope, name) = scope.parts();
                Request::Kill {
                    scope,
                    name,
                    by: match audit.by() {
                        Ok(b) => b,
                        Err(code) => return code,
                    },
                    reason: audit.reason,
                }
            }
            CtlAction::Unkill { scope, audit } => {
                let (scope, name) = scope.parts();
                Request::Unkill {
                    scope,
                    name,
                    by: match audit.by() {
                        Ok(b) => b,
                        Err(code) => return code,
                    },
                    reason: audit.reason,
                }
            }
            CtlAction::EnableAccount { account, audit } => Request::EnableAccount {
                account,
                by: match audit.by() {
                    Ok(b) => b,
                    Err(code) => return code,
                },
                reason: audit.reason,
            },
            CtlAction::Limits {
                action:
                    LimitsAction::Set {
                        account,
                        max_qty,
                        max_notional,
                        collar_bps,
                        collar_ticks,
                        reference_max_age_ms,
                        credit_limit,
                        max_long,
                        max_short,
                        max_open_orders,
                        ord_types,
                        time_in_force,
                        duplicate_window_ms,
                        max_msgs,
                        rate_period_ms,
                        until,
                        audit,
                    },
            } => {
                let for_ms = match until.as_deref().map(parse_duration_ms).transpose() {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("portcullis ctl: --until {e}");
                        return 2;
                    }
                };
                let limits = LimitChanges {
                    max_order_qty: max_qty.map(Decimal::Str),
                    max_order_notional: max_notional.map(Decimal::Str),
                    collar_bps,
                    collar_ticks,
                    reference_max_age_ms,
                    credit_limit: credit_limit.map(Decimal::Str),
                    max_long: max_long.map(Decimal::Str),
                    max_short: max_short.map(Decimal::Str),
                    max_open_orders,
                    ord_types,
                    time_in_force,
                    duplicate_window_ms,
                    max_msgs,
                    rate_period_ms,
                };
                if limits.is_empty() {
                    eprintln!(
                        "portcullis ctl: limits set: name at least one limit (e.g. --max-qty 500)"
                    );
                    return 2;
                }
                Request::LimitsSet {
                    account,
                    limits,
                    for_ms,
                    by: match audit.by() {
                        Ok(b) => b,
                        Err(code) => return code,
                    },
                    reason: audit.reason,
                }
            }
            CtlAction::Limits {
                action: LimitsAction::Approve { .. } | LimitsAction::Pending,
            } => {
                crate::say_err(format_args!(
                    "portcullis ctl: limits approve/pending are for the ops port (--url): \
                     the control socket applies a raise at once"
                ));
                return 2;
            }
            CtlAction::Risk {
                action: RiskAction::Show { account, symbol },
            } => Request::RiskShow { account, symbol },
            CtlAction::Block {
                address,
                duration,
                audit,
            } => match parse_duration_ms(&duration) {
                Ok(for_ms) => Request::Block {
                    address,
                    for_ms,
                    by: match audit.by() {
                        Ok(b) => b,
                        Err(code) => return code,
                    },
                    reason: audit.reason,
                },
                Err(e) => {
                    eprintln!("portcullis ctl: --for {e}");
                    return 2;
                }
            },
            CtlAction::Unblock { address, audit } => Request::Unblock {
                address,
                by: match audit.by() {
                    Ok(b) => b,
                    Err(code) => return code,
                },
                reason: audit.reason,
            },
        };
        run(&socket, &req)
    }
}
