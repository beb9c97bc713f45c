//! COLD — persistence of the risk switches across restarts: kill switches (global, account,
//! symbol, session) and accounts the message rate limit disabled. A restart must not silently
//! re-enable trading that an operator (or reconciliation) stopped.
//!
//! File `<data_dir>/risk-switches.state`, one switch per line: `global`, `account <A>`,
//! `symbol <S>`, `session <session key>`, `disabled <A>`. The journal thread rewrites it
//! (temporary file, fdatasync, then rename) after each event that changes a switch, then
//! raises `control_persisted` to the request's number; `portcullis ctl` answers a kill, unkill
//! or enable only after that (`"persisted": true`), so an acknowledged switch survives a crash.
//! The engine reads the file once at start.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use crate::handoff::{Event, KillTarget};
use crate::risk::Reason;

/// The file name inside the data folder.
pub const FILE: &str = "risk-switches.state";

/// The switches that are on.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Switches(pub BTreeSet<String>);

fn target_line(t: &KillTarget, session_keys: &[String]) -> Option<String> {
    Some(match t {
        KillTarget::Global => "global".into(),
        KillTarget::Account(a) => format!("account {}", a.as_str()),
        KillTarget::Symbol(s) => format!("symbol {}", s.as_str()),
        KillTarget::Session(i) => format!("session {}", session_keys.get(*i as usize)?),
    })
}

impl Switches {
    /// Applies `e`; true when a switch changed.
    pub fn apply(&mut self, e: &Event, session_keys: &[String]) -> bool {
        match e {
            Event::Kill { target, on, .. } => {
                let Some(line) = target_line(target, session_keys) else {
                    return false;
                };
                if *on {
                    self.0.insert(line)
                } else {
                    self.0.remove(&line)
                }
            }
            Event::ReconciliationMismatch { account, .. } => {
                self.0.insert(format!("account {}", account.as_str()))
            }
            Event::RiskRejected {
                account,
                reason: Reason::RateLimit { .. },
                ..
            } => self.0.insert(format!("disabled {}", account.as_str())),
            Event::AccountEnabled { account, .. } => {
                self.0.remove(&format!("disabled {}", account.as_str()))
            }
            _ => false,
        }
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut text = String::new();
        for l in &self.0 {
            text.push_str(l);
            text.push('\n');
        }
        crate::files::write_private(path, text.as_bytes())
    }

    /// Reads the file; a missing file is a first start (nothing switched).
    pub fn load(path: &Path) -> io::Result<Switches> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Switches(
                t.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Switches::default()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, Nanos};

    #[test]
    fn kills_and_disables_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let keys = vec!["FIX.4.4-GW-C1".to_string()];
        let a = Account::new(b"A1").unwrap();
        let mut s = Switches::default();
        let kill = |target, on| Event::Kill {
            target,
            on,
            orders: 0,
            seq: 0,
            at: Nanos(0),
        };
        assert!(s.apply(&kill(KillTarget::Account(a), true), &keys));
        assert!(s.apply(&kill(KillTarget::Session(0), true), &keys));
        assert!(s.apply(&kill(KillTarget::Global, true), &keys));
        assert!(s.apply(&kill(KillTarget::Global, false), &keys));
        assert!(s.apply(
            &Event::RiskRejected {
                session: crate::model::SessionId(0),
                account: a,
                reason: Reason::RateLimit {
                    limit: 1,
                    period: Nanos(1)
                },
                at: Nanos(0)
            },
            &keys
        ));
        s.save(&path).unwrap();
        let back = Switches::load(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.0.iter().map(String::as_str).collect::<Vec<_>>(),
            ["account A1", "disabled A1", "session FIX.4.4-GW-C1"]
        );
    }
}
