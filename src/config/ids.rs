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
#[derive(Clone, Debug, Deserialize, PartialEq)]
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
    /// `[ids.anomaly]`: per-key baselines (src/ids/anomaly.rs).
    #[serde(default)]
    pub anomaly: AnomalyCfg,
    /// `[ids.geo]`: geographic anomalies (src/ids/geo.rs), with the `[[ids.region]]` table.
    #[serde(default)]
    pub geo: GeoCfg,
    /// `[[ids.region]]`: source address blocks and their regions (longest prefix wins).
    #[serde(default)]
    pub region: Vec<RegionCfg>,
}

/// `[ids.anomaly]`: per API key (per session without `[auth]`), an EWMA mean and variance of
/// each metric over fixed buckets of `bucket_ms`; after `learning_buckets` buckets, a value
/// more than `k_sigma` standard deviations above its mean *and* at or above its floor raises an
/// alert (once per bucket and metric).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyCfg {
    /// Default true.
    pub enabled: bool,
    /// The measuring interval, ms. Default 60000 (rates are per minute).
    pub bucket_ms: u64,
    /// EWMA weight of the newest bucket, in (0, 1]. Default 0.05: a baseline remembers about
    /// the last 20 buckets (1/α), i.e. its last 20 minutes, with a tail of an hour.
    pub alpha: f64,
    /// Buckets a key must have been seen over before its baseline alerts. Default 60 (an hour).
    pub learning_buckets: u32,
    /// How far above the mean, in standard deviations. Default 4.
    pub k_sigma: f64,
    /// The standard deviation used is at least this fraction of the mean. Default 0.1: a
    /// perfectly steady baseline (variance 0) would otherwise alert on its first wobble.
    pub min_sigma_fraction: f64,
    /// Floors: below them nothing alerts, whatever the baseline. Orders (new and refused) per
    /// bucket. Default 600 (10 a second over a minute bucket).
    pub floor_orders: f64,
    /// Notional per bucket (price × quantity, in the instruments' units). Default 1 000 000.
    pub floor_notional: f64,
    /// Refused orders per bucket, as a fraction of its orders (0..=1). Default 0.5, and only
    /// over buckets with at least `floor_orders / 10` orders.
    pub floor_reject_rate: f64,
    /// Distinct symbols per bucket. Default 20.
    pub floor_symbols: f64,
    /// Active hours: after learning, activity in an hour of the day (UTC) that held less than
    /// this fraction of the key's activity raises `off-hours-activity`. Default 0.01; 0: off.
    pub min_hour_share: f64,
    /// Keys tracked at most; beyond it the one seen least recently is forgotten (bounded
    /// memory whatever the number of keys). Default 10000.
    pub max_keys: usize,
    /// Severity of the alerts. Default high.
    pub severity: Severity,
}

impl Default for AnomalyCfg {
    fn default() -> AnomalyCfg {
        AnomalyCfg {
            enabled: true,
            bucket_ms: 60_000,
            alpha: 0.05,
            learning_buckets: 60,
            k_sigma: 4.0,
            min_sigma_fraction: 0.1,
            floor_orders: 600.0,
            floor_notional: 1_000_000.0,
            floor_reject_rate: 0.5,
            floor_symbols: 20.0,
            min_hour_share: 0.01,
            max_keys: 10_000,
            severity: Severity::High,
        }
    }
}

/// `[ids.geo]`: a key's accepted logons mapped to regions through `[[ids.region]]` and, when
/// given, a MaxMind-format database (the table wins where both know an address).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GeoCfg {
    /// Default true (nothing happens without `[[ids.region]]` entries or a `database`).
    pub enabled: bool,
    /// A MaxMind-format database (GeoIP2 / GeoLite2 `.mmdb`, e.g.
    /// `/var/lib/GeoIP/GeoLite2-Country.mmdb`) mapping addresses the `[[ids.region]]` table does
    /// not know. Checked at load: the file must be readable and a MaxMind DB, and some record
    /// must have `field`. Read into memory at start and again on SIGHUP (`ids::reload_geo`; a
    /// bad file keeps the last good one). Default none.
    pub database: Option<std::path::PathBuf>,
    /// The value of a database record used as the region: a dotted path of map keys and
    /// array indexes, e.g. `country.iso_code` (default), `continent.code`,
    /// `registered_country.iso_code`, `city.names.en`, `subdivisions.0.iso_code`. Text, or a
    /// number (`country.geoname_id`) as its decimal text.
    pub field: FieldPath,
    /// Logons (with a known region) a key must have made before a new region alerts.
    /// Default 5.
    pub learning_logons: u32,
    /// The shortest plausible time between logons from two different regions, ms; faster
    /// raises `impossible-travel`. Default 3600000 (an hour); 0: off.
    pub travel_ms: u64,
    /// Regions remembered per key. Default 16.
    pub max_regions_per_key: usize,
    /// Keys tracked at most (the least recently seen is forgotten). Default 10000.
    pub max_keys: usize,
    /// Severity of `new-region`; `impossible-travel` is one higher. Default medium.
    pub severity: Severity,
}

impl Default for GeoCfg {
    fn default() -> GeoCfg {
        GeoCfg {
            enabled: true,
            database: None,
            field: FieldPath::default(),
            learning_logons: 5,
            travel_ms: 3_600_000,
            max_regions_per_key: 16,
            max_keys: 10_000,
            severity: Severity::Medium,
        }
    }
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldStep {
    /// A map key.
    Key(String),
    /// An array index (a step of digits only).
    Index(usize),
}

/// `ids.geo.field`: a dotted path into a MaxMind DB record (`country.iso_code`), parsed once.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FieldPath {
    /// As written in the config.
    pub text: String,
    pub steps: Vec<FieldStep>,
}

impl Default for FieldPath {
    fn default() -> FieldPath {
        FieldPath {
            text: "country.iso_code".into(),
            steps: vec![
                FieldStep::Key("country".into()),
                FieldStep::Key("iso_code".into()),
            ],
        }
    }
}

impl TryFrom<String> for FieldPath {
    type Error = String;

    fn try_from(text: String) -> Result<FieldPath, String> {
        let mut steps = Vec::new();
        for step in text.split('.') {
            let step = step.trim();
            if step.is_empty() {
                return Err(format!(
                    "ids.geo.field {text:?}: an empty step (write map keys and array indexes \
                     joined by dots, e.g. \"country.iso_code\")"
                ));
            }
            steps.push(match step.parse::<usize>() {
                Ok(i) if step.bytes().all(|b| b.is_ascii_digit()) => FieldStep::Index(i),
                _ => FieldStep::Key(step.to_string()),
            });
        }
        Ok(FieldPath { text, steps })
    }
}

/// `[[ids.region]]`: `cidr = "10.0.0.0/8"`, `region = "eu-london"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegionCfg {
    pub cidr: String,
    pub region: String,
}

/// An address block: `(network, prefix length)`, parsed from `a.b.c.d/n` or `v6::/n` (a bare
/// address is a /32 or /128).
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
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
            anomaly: AnomalyCfg::default(),
            geo: GeoCfg::default(),
            region: Vec::new(),
        }
    }
}

/// The alert kinds a policy may name (besides `*`).
pub const KINDS: [&str; 15] = [
    "logon-brute-force",
    "malformed-flood",
    "connection-flood",
    "replay-attempt",
    "unknown-comp-id",
    "key-id-probing",
    "idle-without-logon",
    "slow-consumer",
    // Per-key baselines (src/ids/anomaly.rs).
    "order-rate-spike",
    "notional-spike",
    "reject-rate-spike",
    "symbol-spread-spike",
    "off-hours-activity",
    // Geography (src/ids/geo.rs).
    "new-region",
    "impossible-travel",
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
        let a = &self.anomaly;
        let bad = |key: &str, problem: &str| Err(err(format!("ids.anomaly.{key}"), problem.into()));
        if !(100..=86_400_000).contains(&a.bucket_ms) {
            return bad("bucket_ms", "must be within 100..=86400000 (a day)");
        }
        if !(a.alpha > 0.0 && a.alpha <= 1.0) {
            return bad("alpha", "must be within (0, 1]");
        }
        if !(a.k_sigma.is_finite() && a.k_sigma > 0.0) {
            return bad("k_sigma", "must be > 0");
        }
        if !(0.0..=10.0).contains(&a.min_sigma_fraction) {
            return bad("min_sigma_fraction", "must be within 0..=10");
        }
        let floors = [
            ("floor_orders", a.floor_orders),
            ("floor_notional", a.floor_notional),
            ("floor_symbols", a.floor_symbols),
        ];
        for (k, v) in floors {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, "must be a number >= 0");
            }
        }
        if !(0.0..=1.0).contains(&a.floor_reject_rate) {
            return bad("floor_reject_rate", "must be within 0..=1");
        }
        if !(0.0..=1.0).contains(&a.min_hour_share) {
            return bad("min_hour_share", "must be within 0..=1");
        }
        if a.max_keys == 0 || a.max_keys > 1_000_000 {
            return bad("max_keys", "must be within 1..=1000000");
        }
        let g = &self.geo;
        if g.max_keys == 0 || g.max_keys > 1_000_000 {
            return Err(err(
                "ids.geo.max_keys".into(),
                "must be within 1..=1000000".into(),
            ));
        }
        if g.max_regions_per_key == 0 || g.max_regions_per_key > 1024 {
            return Err(err(
                "ids.geo.max_regions_per_key".into(),
                "must be within 1..=1024".into(),
            ));
        }
        if let Some(path) = &g.database {
            if let Err(e) = crate::ids::geo::Database::open(path, &g.field) {
                return Err(err(e.key.into(), e.problem));
            }
        }
        for (i, r) in self.region.iter().enumerate() {
            if parse_cidr(&r.cidr).is_none() {
                return Err(err(
                    format!("ids.region[{i}].cidr"),
                    format!("{:?} is not an address block (a.b.c.d/n or v6::/n)", r.cidr),
                ));
            }
            if r.region.trim().is_empty() {
                return Err(err(format!("ids.region[{i}].region"), "is empty".into()));
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
        let e =
            parse("[ids]\n[[ids.region]]\ncidr = \"10.0.0.0/33\"\nregion = \"x\"\n").unwrap_err();
        assert!(e.contains("ids.region[0].cidr"), "{e}");
        let e = parse("[ids.anomaly]\nalpha = 0.0\n").unwrap_err();
        assert!(e.contains("ids.anomaly.alpha"), "{e}");
        let ok = parse(
            "[ids.anomaly]\nbucket_ms = 200\n[[ids.region]]\ncidr = \"127.0.0.2/32\"\nregion = \"us-east\"\n",
        )
        .unwrap();
        assert_eq!(ok.anomaly.bucket_ms, 200);
        assert_eq!(
            parse_cidr(&ok.region[0].cidr),
            Some(("127.0.0.2".parse().unwrap(), 32))
        );
        assert_eq!(parse_cidr("::1"), Some(("::1".parse().unwrap(), 128)));
        assert_eq!(parse_cidr("10.0.0.0/x"), None);
    }

    #[test]
    fn a_geo_database_is_checked_at_load_naming_ids_geo_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = |name: &str, field: &str| {
            format!(
                "[ids.geo]\ndatabase = {:?}\nfield = {field:?}\n",
                dir.path().join(name).display().to_string()
            )
        };
        let e = parse(&db("absent.mmdb", "country.iso_code")).unwrap_err();
        assert!(
            e.contains("ids.geo.database") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::write(dir.path().join("garbage.mmdb"), [0x5a_u8; 4096]).unwrap();
        let e = parse(&db("garbage.mmdb", "country.iso_code")).unwrap_err();
        assert!(
            e.contains("ids.geo.database") && e.contains("not a MaxMind DB"),
            "{e}"
        );
        let mut w = crate::ids::geo::mmdb::Writer::new(4);
        w.insert(
            "10.0.0.0/8",
            &crate::ids::geo::mmdb::country("EU", "FR", "France", 3_017_382),
        );
        std::fs::write(dir.path().join("ok.mmdb"), w.finish()).unwrap();
        let e = parse(&db("ok.mmdb", "city.names.en")).unwrap_err();
        assert!(
            e.contains("ids.geo.database") && e.contains("city.names.en"),
            "{e}"
        );
        let e = parse(&db("ok.mmdb", "country..iso_code")).unwrap_err();
        assert!(e.contains("ids.geo.field"), "{e}");
        let ok = parse(&db("ok.mmdb", "continent.code")).unwrap();
        assert_eq!(ok.geo.field.text, "continent.code");
        let ok = parse("[ids.geo]\n").unwrap();
        assert_eq!(
            (ok.geo.database, ok.geo.field),
            (None, FieldPath::default())
        );
    }
}
