//! `[auth]`: session security (signed logon, key store, lockout). See portcullis.example.toml.

use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::provider::ProviderCfg;

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCfg {
    /// The encrypted key store file. Relative paths are under `gateway.data_dir`.
    pub key_store: PathBuf,
    /// Where the master key comes from.
    pub master_key: MasterKeyCfg,
    /// true: every Logon must be signed. false (development and tests only, allowed only when
    /// every listener is on loopback): unsigned Logons are accepted with every scope; signed
    /// ones are still verified.
    #[serde(default = "yes")]
    pub required: bool,
    /// Allowed |SendingTime(52) − gateway clock| of a signed Logon, milliseconds.
    #[serde(default = "default_skew")]
    pub max_skew_ms: u64,
    /// Wrong signatures for one key from one source address within `lockout_window_ms` that
    /// lock that key at that address (only a wrong signature needs a guess at the secret).
    #[serde(default = "default_failures")]
    pub lockout_failures: u32,
    /// Failed logons of any cause from one source address within `lockout_window_ms` that
    /// lock the address (unsigned, stale, replayed, unknown key, unknown CompID...).
    #[serde(default = "default_address_failures")]
    pub lockout_address_failures: u32,
    /// Source addresses and (key, address) pairs the lockout table tracks; fixed memory
    /// (104 bytes each: 96 in the table, 8 in its index), the least recently failed is forgotten when full.
    #[serde(default = "default_lockout_entries")]
    pub lockout_table_entries: u32,
    #[serde(default = "default_window")]
    pub lockout_window_ms: u64,
    /// How long a lockout lasts (or until `portcullis keys unlock`).
    #[serde(default = "default_lockout")]
    pub lockout_ms: u64,
    /// `portcullis keys rotate`: how long the old secret keeps working.
    #[serde(default = "default_overlap")]
    pub rotation_overlap_ms: u64,
    /// Keys with their own throttle tier (throttle slots reserved at start).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// How often the gateway checks the key store for changes, milliseconds.
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// Rotation policy (AUTH-9): a key expires this many days after its creation or its last
    /// `keys rotate`; 0: no maximum age (`portcullis run` warns).
    #[serde(default = "default_max_key_age")]
    pub max_key_age_days: u32,
    /// `key-aging` events (events.log, once per key per day) start this many days before a
    /// key reaches its maximum age.
    #[serde(default = "default_key_age_warning")]
    pub key_age_warning_days: u32,
}

/// `[auth.master_key]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyCfg {
    /// "pkcs11", "file" or "env".
    pub provider: String,
    /// file: the master key file (base64 of 32 bytes). Relative: under `gateway.data_dir`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// env: the variable holding base64 of 32 bytes.
    #[serde(default)]
    pub var: Option<String>,
    /// pkcs11: the PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// pkcs11: the token's label.
    #[serde(default)]
    pub token_label: Option<String>,
    /// pkcs11: the variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// pkcs11: the label of the AES master key inside the token.
    #[serde(default)]
    pub key_label: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_skew() -> u64 {
    5_000
}
fn default_failures() -> u32 {
    5
}
fn default_address_failures() -> u32 {
    20
}
fn default_lockout_entries() -> u32 {
    16_384
}
fn default_window() -> u64 {
    60_000
}
fn default_lockout() -> u64 {
    300_000
}
fn default_overlap() -> u64 {
    24 * 3600 * 1000
}
fn default_max_keys() -> u32 {
    256
}
fn default_poll() -> u64 {
    200
}
/// 90 days: the usual ceiling for a machine credential's life (PCI DSS 8.3.9 asks for 90 days
/// for passwords; exchanges' API-key policies are 90–365). Production sets its own.
fn default_max_key_age() -> u32 {
    90
}
/// Two weeks: room to schedule a rotation with the client.
fn default_key_age_warning() -> u32 {
    14
}

impl AuthCfg {
    /// The master key provider, with relative paths resolved under `data_dir`; errors name
    /// the missing key.
    pub fn provider(&self, data_dir: &std::path::Path) -> Result<ProviderCfg, String> {
        let m = &self.master_key;
        let need = |k: &str| {
            format!(
                "auth.master_key.{k} is required for provider {:?}",
                m.provider
            )
        };
        match m.provider.as_str() {
            "file" => Ok(ProviderCfg::File {
                path: data_dir.join(m.path.as_ref().ok_or_else(|| need("path"))?),
            }),
            "env" => Ok(ProviderCfg::Env {
                var: m.var.clone().ok_or_else(|| need("var"))?,
            }),
            "pkcs11" => Ok(ProviderCfg::Pkcs11 {
                module: m.module.clone().ok_or_else(|| need("module"))?,
                token_label: m.token_label.clone().ok_or_else(|| need("token_label"))?,
                pin_env: m.pin_env.clone().ok_or_else(|| need("pin_env"))?,
                key_label: m
                    .key_label
                    .clone()
                    .unwrap_or_else(|| "portcullis-master".into()),
            }),
            other => Err(format!(
                "auth.master_key.provider {other:?} is not \"pkcs11\", \"file\" or \"env\""
            )),
        }
    }

    /// The key store path, resolved under `data_dir` when relative.
    pub fn store_path(&self, data_dir: &std::path::Path) -> PathBuf {
        data_dir.join(&self.key_store)
    }

    /// The maximum key age in milliseconds (0: none).
    pub fn max_key_age_ms(&self) -> u64 {
        u64::from(self.max_key_age_days) * crate::auth::keys::DAY_MS
    }

    /// The warning window before the maximum key age, milliseconds.
    pub fn key_age_warning_ms(&self) -> u64 {
        u64::from(self.key_age_warning_days) * crate::auth::keys::DAY_MS
    }

    pub fn policy(&self) -> crate::auth::Policy {
        use crate::model::Nanos;
        crate::auth::Policy {
            max_skew: Nanos::from_millis(self.max_skew_ms),
            max_failures: self.lockout_failures.max(1),
            address_max_failures: self.lockout_address_failures.max(1),
            window: Nanos::from_millis(self.lockout_window_ms),
            lockout: Nanos::from_millis(self.lockout_ms),
            table_entries: self.lockout_table_entries.max(1) as usize,
        }
    }
}
