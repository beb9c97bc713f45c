//! COLD — response policies: `[[ids.policy]]` maps an alert kind (or `*`) and a minimum
//! severity to actions, carried out on the detector thread through the gateway's own control
//! paths, so each is audited where an operator's would be:
//!
//! - `block_address`: a `block` request on the control socket (→ `Command::BlockAddress`, the
//!   engine closes the address's new connections at accept until the block ends);
//! - `kill_key` / `kill_account` / `kill_all`: a `kill` request (session of the alert's key,
//!   that session's account, global): new orders refused, open orders cancelled;
//! - `revoke_key`: the key store, as `portcullis keys revoke` (the watcher logs its sessions
//!   out within `auth.poll_ms`).
//!
//! `by` is `ids (auto: KIND)`, `reason` names the alert. An action whose target the alert does
//! not have (a key revocation on an address alert) is recorded as not done, with why.

use std::path::PathBuf;

use crate::config::ids::{Action, IdsCfg, PolicyCfg};
use crate::config::Config;
use crate::ctl::Request;

use super::rules::{Alert, Subject};

/// One action carried out (or attempted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub action: Action,
    /// What it acted on (`address:IP`, `session:KEY`, `account:A`, `key:K`, `global`).
    pub target: String,
    pub ok: bool,
    /// The control path's answer, or why it was not done.
    pub result: String,
}

/// The policies and what they need to act.
pub struct Responder {
    policies: Vec<PolicyCfg>,
    config: Config,
    session_keys: Vec<String>,
    socket: PathBuf,
}

impl Responder {
    pub fn new(cfg: &IdsCfg, config: &Config, session_keys: Vec<String>) -> Responder {
        Responder {
            policies: cfg.policy.clone(),
            config: config.clone(),
            session_keys,
            socket: config.gateway.data_dir.join(crate::ctl::SOCKET),
        }
    }

    /// The actions the policies name for `a`, each once, in policy order (`alert` left out).
    pub fn actions_for(&self, a: &Alert) -> Vec<(Action, u64)> {
        let mut out: Vec<(Action, u64)> = Vec::new();
        for p in &self.policies {
            if (p.kind == "*" || p.kind == a.kind) && a.severity >= p.min_severity {
                for act in &p.actions {
                    if *act != Action::Alert && !out.iter().any(|(x, _)| x == act) {
                        out.push((*act, p.block_for_ms));
                    }
                }
            }
        }
        out
    }

    /// Carries out the actions for `a`.
    pub fn respond(&self, a: &Alert) -> Vec<Done> {
        self.actions_for(a)
            .into_iter()
            .map(|(act, block_for_ms)| self.act(a, act, block_for_ms))
            .collect()
    }

    fn session_of(&self, a: &Alert) -> Option<u32> {
        match a.subject {
            Subject::Session(s) => Some(s),
            _ => a.context.session,
        }
    }

    fn key_of(&self, a: &Alert) -> Option<String> {
        match &a.subject {
            Subject::Key(k) if !k.is_empty() => Some(k.clone()),
            _ => a.context.key_id.clone().filter(|k| !k.is_empty()),
        }
    }

    fn act(&self, a: &Alert, act: Action, block_for_ms: u64) -> Done {
        let by = format!("ids (auto: {})", a.kind);
        let reason = format!(
            "{} alert: {} events in {} ms (threshold {}), severity {}",
            a.kind,
            a.count,
            a.window_ms,
            a.threshold,
            a.severity.as_str()
        );
        let not_done = |target: &str, why: &str| Done {
            action: act,
            target: target.to_string(),
            ok: false,
            result: why.to_string(),
        };
        let kill = |scope: &str, name: Option<String>, target: String| {
            let req = Request::Kill {
                scope: scope.to_string(),
                name,
                by: by.clone(),
                reason: reason.clone(),
            };
            self.call(act, target, &req)
        };
        match act {
            Action::Alert => not_done("", "alert only"),
            Action::BlockAddress => {
                let ip = match &a.subject {
                    Subject::Address(ip) => Some(*ip),
                    _ => a.context.address,
                };
                let Some(ip) = ip else {
                    return not_done("", "the alert names no source address");
                };
                let req = Request::Block {
                    address: ip.to_string(),
                    for_ms: block_for_ms,
                    by: by.clone(),
                    reason: reason.clone(),
                };
                self.call(act, format!("address:{ip}"), &req)
            }
            Action::KillKey => match self.session_of(a) {
                Some(s) => match self.session_keys.get(s as usize) {
                    Some(k) => kill("session", Some(k.clone()), format!("session:{k}")),
                    None => not_done("", "the alert's session is not configured"),
                },
                None => not_done("", "the alert names no key or session"),
            },
            Action::KillAccount => {
                let account = self
                    .session_of(a)
                    .and_then(|s| self.config.sessions.get(s as usize))
                    .and_then(|s| s.default_account.clone());
                match account {
                    Some(acc) => {
                        let masked = crate::auth::mask::account(&acc);
                        kill("account", Some(acc), format!("account:{masked}"))
                    }
                    None => not_done("", "the alert's session has no default account"),
                }
            }
            Action::KillAll => kill("global", None, "global".into()),
            Action::RevokeKey => {
                let Some(k) = self.key_of(a) else {
                    return not_done("", "the alert names no key");
                };
                let target = format!("key:{k}");
                if self.config.auth.is_none() {
                    return not_done(&target, "no [auth] key store");
                }
                match crate::auth::admin::revoke(&self.config, &k) {
                    Ok(()) => Done {
                        action: act,
                        target,
                        ok: true,
                        result: "revoked in the key store".into(),
                    },
                    Err(e) => not_done(&target, &e),
                }
            }
        }
    }

    fn call(&self, action: Action, target: String, req: &Request) -> Done {
        match crate::ctl::call(&self.socket, req) {
            Ok(v) => {
                let ok = v.get("ok") == Some(&serde_json::Value::Bool(true));
                Done {
                    action,
                    target,
                    ok,
                    result: v.to_string(),
                }
            }
            Err(e) => Done {
                action,
                target,
                ok: false,
                result: e,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ids::Severity;
    use crate::ids::rules::Context;
    use crate::model::Nanos;

    fn alert(kind: &'static str, severity: Severity) -> Alert {
        Alert {
            at: Nanos(0),
            kind,
            rule: "r",
            severity,
            subject: Subject::Address("10.0.0.1".parse().unwrap()),
            count: 1,
            threshold: 1,
            window_ms: 1,
            context: Context::default(),
            note: String::new(),
        }
    }

    #[test]
    fn policies_match_kind_and_min_severity_and_actions_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[gateway]\ndata_dir = {:?}\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"fill\"\n\
             [ids]\n\
             [[ids.policy]]\nkind = \"logon-brute-force\"\nmin_severity = \"high\"\nactions = [\"block_address\"]\nblock_for_ms = 5000\n\
             [[ids.policy]]\nkind = \"*\"\nmin_severity = \"critical\"\nactions = [\"alert\", \"kill_all\", \"block_address\"]\n",
            dir.path().display().to_string()
        );
        let cfg = Config::parse(&text, "t.toml").unwrap();
        let r = Responder::new(&cfg.ids, &cfg, Vec::new());
        assert_eq!(
            r.actions_for(&alert("logon-brute-force", Severity::High)),
            vec![(Action::BlockAddress, 5000)]
        );
        assert!(r
            .actions_for(&alert("logon-brute-force", Severity::Medium))
            .is_empty());
        assert!(r
            .actions_for(&alert("replay-attempt", Severity::High))
            .is_empty());
        assert_eq!(
            r.actions_for(&alert("logon-brute-force", Severity::Critical)),
            vec![(Action::BlockAddress, 5000), (Action::KillAll, 900_000)]
        );
        // An action the alert has no target for is not done, and says why.
        let d = r.act(&alert("slow-consumer", Severity::Low), Action::RevokeKey, 1);
        assert!(!d.ok);
        assert!(d.result.contains("no key"), "{d:?}");
        let d = r.act(&alert("slow-consumer", Severity::Low), Action::KillKey, 1);
        assert!(!d.ok);
        // No gateway on the socket: the control path's error is the result.
        let d = r.act(&alert("x", Severity::Low), Action::BlockAddress, 1);
        assert!(!d.ok);
        assert!(d.result.contains("cannot reach the gateway"), "{d:?}");
    }
}
