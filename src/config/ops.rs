//! COLD — `[ops]`: the ops status port (HTTPS, operator login, reads and controls).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Certificate and key of the ops port (PEM files; no client certificate: operators log in).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpsTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[ops]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OpsCfg {
    /// Where the port listens. Default 127.0.0.1:9880.
    pub address: SocketAddr,
    /// TLS 1.3 certificate and key. Required unless `plaintext = true`.
    pub tls: Option<OpsTls>,
    /// Serve plain HTTP instead of HTTPS: allowed only on a loopback `address` (a reverse
    /// proxy on the same host). Default false.
    pub plaintext: bool,
    /// `/metrics` without a token (a scraper on a trusted network). Default false.
    pub metrics_public: bool,
    /// Lifetime of a login token, seconds. Default 900 (15 min), the maximum.
    pub jwt_lifetime_s: u64,
    /// TOTP second factor required for risk-officer and admin. Default true; false makes
    /// `portcullis run` warn.
    pub mfa_required: bool,
    /// `iss` of the tokens. Default "portcullis".
    pub issuer: String,
    /// `aud` of the tokens. Default "portcullis-ops".
    pub audience: String,
    /// The operator store (encrypted under the key store's master key), relative to the data
    /// folder. Default "operators.store".
    pub users_file: PathBuf,
    /// Requests per second per source address (token bucket, burst = 2 s worth). Default 20.
    pub rate_per_address: u32,
    /// Requests per second per logged-in user. Default 20.
    pub rate_per_user: u32,
    /// Login attempts per minute per source address. Default 10.
    pub login_per_minute: u32,
    /// Failed logins for one user from one address before that pair is locked. Default 5.
    pub lockout_failures: u32,
    /// Failed logins from one address (any users) before the address is locked. Default 20.
    pub lockout_address_failures: u32,
    /// How long a lockout lasts (and the window failures are counted in), ms. Default 900000.
    pub lockout_ms: u64,
    /// Largest request body, bytes. Default 16384.
    pub max_body_bytes: usize,
    /// Time to receive a whole request and answer it, ms. Default 10000.
    pub request_timeout_ms: u64,
    /// How long a limit raise waits for its second approver, seconds. Default 900.
    pub approval_ttl_s: u64,
    /// Connections served at once. Default 64.
    pub max_connections: usize,
}

/// The longest token lifetime allowed (AUTH-4): 15 minutes.
pub const MAX_JWT_LIFETIME_S: u64 = 900;

impl Default for OpsCfg {
    fn default() -> Self {
        OpsCfg {
            address: SocketAddr::from(([127, 0, 0, 1], 9880)),
            tls: None,
            plaintext: false,
            metrics_public: false,
            jwt_lifetime_s: MAX_JWT_LIFETIME_S,
            mfa_required: true,
            issuer: "portcullis".into(),
            audience: "portcullis-ops".into(),
            users_file: PathBuf::from("operators.store"),
            rate_per_address: 20,
            rate_per_user: 20,
            login_per_minute: 10,
            lockout_failures: 5,
            lockout_address_failures: 20,
            lockout_ms: 900_000,
            max_body_bytes: 16 * 1024,
            request_timeout_ms: 10_000,
            approval_ttl_s: 900,
            max_connections: 64,
        }
    }
}

impl OpsCfg {
    /// Checks every key; `has_auth`: the config has `[auth]` (the operator store lives under
    /// its master key).
    pub(super) fn validate(&self, file: &str, has_auth: bool) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("ops.{key}"),
            problem,
        };
        if !has_auth {
            return Err(ConfigError {
                file: file.to_string(),
                key: "ops".into(),
                problem: "needs an [auth] section: operators are stored under the key store's \
                          master key"
                    .into(),
            });
        }
        match (&self.tls, self.plaintext) {
            (Some(_), true) => {
                return Err(err(
                    "plaintext",
                    "is true but ops.tls is set too: choose one".into(),
                ))
            }
            (None, false) => {
                return Err(err(
                    "tls",
                    "is required (cert and key) unless ops.plaintext = true on a loopback address"
                        .into(),
                ))
            }
            (None, true) if !self.address.ip().is_loopback() => {
                return Err(err(
                    "plaintext",
                    format!(
                        "is allowed only on a loopback address, not {}: operator passwords and \
                         tokens would cross the network in clear",
                        self.address
                    ),
                ))
            }
            _ => {}
        }
        if !(60..=MAX_JWT_LIFETIME_S).contains(&self.jwt_lifetime_s) {
            return Err(err(
                "jwt_lifetime_s",
                format!(
                    "{} is outside 60..={MAX_JWT_LIFETIME_S} (tokens live 15 minutes at most)",
                    self.jwt_lifetime_s
                ),
            ));
        }
        for (key, v) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            if v.trim().is_empty() || v.len() > 128 {
                return Err(err(key, "must be 1–128 characters".into()));
            }
        }
        if self.users_file.as_os_str().is_empty() {
            return Err(err("users_file", "is empty".into()));
        }
        for (key, v, max) in [
            ("rate_per_address", self.rate_per_address, 10_000),
            ("rate_per_user", self.rate_per_user, 10_000),
            ("login_per_minute", self.login_per_minute, 600),
            ("lockout_failures", self.lockout_failures, 1000),
            (
                "lockout_address_failures",
                self.lockout_address_failures,
                100_000,
            ),
        ] {
            if !(1..=max).contains(&v) {
                return Err(err(key, format!("{v} is outside 1..={max}")));
            }
        }
        if self.lockout_address_failures < self.lockout_failures {
            return Err(err(
                "lockout_address_failures",
                format!(
                    "{} is below ops.lockout_failures ({}): one user's typos would lock the \
                     whole address",
                    self.lockout_address_failures, self.lockout_failures
                ),
            ));
        }
        if !(1_000..=86_400_000).contains(&self.lockout_ms) {
            return Err(err(
                "lockout_ms",
                format!("{} is outside 1000..=86400000", self.lockout_ms),
            ));
        }
        if !(256..=1 << 20).contains(&self.max_body_bytes) {
            return Err(err(
                "max_body_bytes",
                format!("{} is outside 256..=1048576", self.max_body_bytes),
            ));
        }
        if !(100..=300_000).contains(&self.request_timeout_ms) {
            return Err(err(
                "request_timeout_ms",
                format!("{} is outside 100..=300000", self.request_timeout_ms),
            ));
        }
        if !(10..=86_400).contains(&self.approval_ttl_s) {
            return Err(err(
                "approval_ttl_s",
                format!("{} is outside 10..=86400", self.approval_ttl_s),
            ));
        }
        if !(1..=4096).contains(&self.max_connections) {
            return Err(err(
                "max_connections",
                format!("{} is outside 1..=4096", self.max_connections),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &str, auth: bool) -> Result<(), ConfigError> {
        let c: OpsCfg = toml::from_str(extra).map_err(|e| ConfigError {
            file: "t".into(),
            key: String::new(),
            problem: e.to_string(),
        })?;
        c.validate("t", auth)
    }

    /// The commented `[ops]` block of portcullis.example.toml, uncommented, is a valid section
    /// showing the defaults.
    #[test]
    fn example_block_parses_and_shows_the_defaults() {
        let text = include_str!("../../portcullis.example.toml");
        let start = text.find("# [ops]\n").unwrap();
        let block: String = text[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("# "))
            .filter(|l| !l.starts_with("#  "))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let c: OpsCfg = toml::from_str(&block).unwrap();
        assert!(c.validate("example", true).is_ok());
        let d = OpsCfg::default();
        assert_eq!(OpsCfg { tls: None, ..c }, OpsCfg { tls: None, ..d });
    }

    #[test]
    fn keys_are_validated_by_name() {
        let tls = "tls = { cert = \"c.pem\", key = \"k.pem\" }\n";
        assert!(check(tls, true).is_ok());
        for (text, key) in [
            ("", "ops.tls"),
            (
                "plaintext = true\naddress = \"10.0.0.1:9880\"",
                "ops.plaintext",
            ),
            (&format!("{tls}plaintext = true"), "ops.plaintext"),
            (&format!("{tls}jwt_lifetime_s = 901"), "ops.jwt_lifetime_s"),
            (&format!("{tls}rate_per_user = 0"), "ops.rate_per_user"),
            (
                &format!("{tls}lockout_address_failures = 2"),
                "ops.lockout_address_failures",
            ),
            (&format!("{tls}max_body_bytes = 10"), "ops.max_body_bytes"),
        ] {
            let e = check(text, true).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        assert_eq!(check(tls, false).unwrap_err().key, "ops");
        assert!(
            check("plaintext = true", true).is_ok(),
            "loopback plaintext"
        );
    }
}
