//! COLD — `[ids]`: intrusion detection rules (N events in a window → an alert) and response
//! policies (alert kind and minimum severity → actions). Absent: the rules run with their
//! defaults and every alert is only an alert (no automatic action).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How bad an alert is. Ordered: `low < medium < high < critical`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One rule's settings; a field left out takes the rule's default (see `ids::rules::RULES`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleCfg {
    /// Events (or shed connections) within `window_ms` that raise the alert; 0 turns the rule
    /// off.
    pub threshold: Option<u32>,
    /// The sliding window, ms (> 0).
    pub window_ms: Option<u64>,
    /// The alert's severity.
    pub severity: Option<Severity>,
}

/// An automatic response.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Only the alert (trail, events, SIEM, ops port).
    Alert,
    /// Close new connections from the alert's source address for `block_for_ms`.
    BlockAddress,
    /// Revoke the alert's key in the key store (as `portcullis keys revoke`).
    RevokeKey,
    /// Kill switch on the session of the alert's key (its open orders cancelled).
    KillKey,
    /// Kill switch on that session's account.
    KillAccount,
    /// Global kill switch.
    KillAll,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::BlockAddress => "block_address",
            Action::RevokeKey => "revoke_key",
            Action::KillKey => "kill_key",
            Action::KillAccount => "kill_account",
            Action::KillAll => "kill_all",
        }
    }
}

fn default_block_for_ms() -> u64 {
    15 * 60 * 1000
}

/// `[[ids.policy]]`: what happens on an alert of `kind` at `min_severity` or above.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyCfg {
    /// An alert kind (`logon-brute-force`, `replay-attempt`, ...) or `*` for every kind.
    pub kind: String,
    #[serde(default = "low")]
    pub min_severity: Severity,
    pub actions: Vec<Action>,
    /// How long `block_address` blocks, ms.
    #[serde(default = "default_block_for_ms")]
    pub block_for_ms: u64,
}

fn low() -> Severity {
    Severity::Low
}

fn default_true() -> bool {
    true
}
fn default_queue() -> usize {
    4096
}
fn default_recent() -> usize {
    256
}
fn default_max_subjects() -> usize {
    10_000
}

/// `[ids]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdsCfg {
    /// Run the detector at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Events queued from the journal thread to the detector; beyond it, dropped and counted
    /// (the journal thread never waits).
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Alerts kept in memory for the ops port.
    #[serde(default = "default_recent")]
    pub recent_alerts: usize,
    /// Subjects (keys, addresses, sessions) tracked per rule at most; beyond it the one seen
    /// least recently is forgotten (a spoofed-address flood cannot grow memory without bound).
    #[serde(default = "default_max_subjects")]
    pub max_subjects: usize,
    #[serde(default)]
    pub logon_brute_force_key: RuleCfg,
    #[serde(default)]
    pub logon_brute_force_address: RuleCfg,
    #[serde(default)]
    pub malformed_flood: RuleCfg,
    #[serde(default)]
    pub connection_flood: RuleCfg,
    #[serde(default)]
    pub replay_attempt: RuleCfg,
    #[serde(default)]
    pub unknown_comp_id: RuleCfg,
    #[serde(default)]
    pub key_id_probing: RuleCfg,
    #[serde(default)]
    pub idle_without_logon: RuleCfg,
    #[serde(default)]
    pub slow_consumer: RuleCfg,
    #[serde(default)]
    pub policy: Vec<PolicyCfg>,
}

impl Default for IdsCfg {
    fn default() -> IdsCfg {
        IdsCfg {
            enabled: true,
            queue_capacity: default_queue(),
            recent_alerts: default_recent(),
            max_subjects: default_max_subjects(),
            logon_brute_force_key: RuleCfg::default(),
            logon_brute_force_address: RuleCfg::default(),
            malformed_flood: RuleCfg::default(),
            connection_flood: RuleCfg::default(),
            replay_attempt: RuleCfg::default(),
            unknown_comp_id: RuleCfg::default(),
            key_id_probing: RuleCfg::default(),
            idle_without_logon: RuleCfg::default(),
            slow_consumer: RuleCfg::default(),
            policy: Vec::new(),
        }
    }
}

/// The alert kinds a policy may name (besides `*`).
pub const KINDS: [&str; 8] = [
    "logon-brute-force",
    "malformed-flood",
    "connection-flood",
    "replay-attempt",
    "unknown-comp-id",
    "key-id-probing",
    "idle-without-logon",
    "slow-consumer",
];

impl IdsCfg {
    /// The rule settings by config key.
    pub fn rules(&self) -> [(&'static str, &RuleCfg); 9] {
        [
            ("logon_brute_force_key", &self.logon_brute_force_key),
            ("logon_brute_force_address", &self.logon_brute_force_address),
            ("malformed_flood", &self.malformed_flood),
            ("connection_flood", &self.connection_flood),
            ("replay_attempt", &self.replay_attempt),
            ("unknown_comp_id", &self.unknown_comp_id),
            ("key_id_probing", &self.key_id_probing),
            ("idle_without_logon", &self.idle_without_logon),
            ("slow_consumer", &self.slow_consumer),
        ]
    }

    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, problem: String| ConfigError {
            file: file.to_string(),
            key,
            problem,
        };
        if self.queue_capacity == 0 || self.queue_capacity > 1 << 20 {
            return Err(err(
                "ids.queue_capacity".into(),
                format!("{} is not within 1..=1048576", self.queue_capacity),
            ));
        }
        if self.recent_alerts == 0 || self.recent_alerts > 100_000 {
            return Err(err(
                "ids.recent_alerts".into(),
                format!("{} is not within 1..=100000", self.recent_alerts),
            ));
        }
        if self.max_subjects == 0 || self.max_subjects > 1_000_000 {
            return Err(err(
                "ids.max_subjects".into(),
                format!("{} is not within 1..=1000000", self.max_subjects),
            ));
        }
        for (name, r) in self.rules() {
            if r.window_ms == Some(0) || r.window_ms.is_some_and(|w| w > 86_400_000) {
                return Err(err(
                    format!("ids.{name}.window_ms"),
                    "must be within 1..=86400000 (one day)".into(),
                ));
            }
        }
        for (i, p) in self.policy.iter().enumerate() {
            if p.kind != "*" && !KINDS.contains(&p.kind.as_str()) {
                return Err(err(
                    format!("ids.policy[{i}].kind"),
                    format!(
                        "{:?} is not an alert kind (one of: *, {})",
                        p.kind,
                        KINDS.join(", ")
                    ),
                ));
            }
            if p.actions.is_empty() {
                return Err(err(
                    format!("ids.policy[{i}].actions"),
                    "is empty: name at least one action (\"alert\" for none)".into(),
                ));
            }
            if p.block_for_ms == 0 {
                return Err(err(
                    format!("ids.policy[{i}].block_for_ms"),
                    "must be > 0".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IdsCfg, String> {
        #[derive(Deserialize)]
        struct W {
            ids: IdsCfg,
        }
        let w: W = toml::from_str(text).map_err(|e| e.to_string())?;
        w.ids.validate("t.toml").map_err(|e| e.to_string())?;
        Ok(w.ids)
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            parse("[ids]\n[[ids.policy]]\nkind = \"nope\"\nactions = [\"alert\"]\n").unwrap_err();
        assert!(e.contains("ids.policy[0].kind"), "{e}");
        let e = parse("[ids]\nreplay_attempt = { window_ms = 0 }\n").unwrap_err();
        assert!(e.contains("ids.replay_attempt.window_ms"), "{e}");
        let e = parse("[ids]\n[[ids.policy]]\nkind = \"*\"\nactions = []\n").unwrap_err();
        assert!(e.contains("ids.policy[0].actions"), "{e}");
        let e = parse("[ids]\n[[ids.policy]]\nkind = \"*\"\nactions = [\"nuke\"]\n").unwrap_err();
        assert!(e.contains("nuke"), "{e}");
        let ok = parse(
            "[ids]\n[[ids.policy]]\nkind = \"replay-attempt\"\nmin_severity = \"high\"\nactions = [\"kill_key\", \"revoke_key\"]\n",
        )
        .unwrap();
        assert_eq!(
            ok.policy[0].actions,
            vec![Action::KillKey, Action::RevokeKey]
        );
        assert_eq!(ok.policy[0].block_for_ms, 900_000);
    }
}
