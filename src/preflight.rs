//! COLD — `portcullis preflight --config FILE` (REG-2): checks a deployment against the
//! production checklist and prints one line per item: `PASS`, `WARN` or `FAIL`, the item, the
//! config key or file it concerns and (not PASS) the fix. Exit status 1 if any item FAILs, 2 on
//! a configuration that does not load.
//!
//! Each item is a function of the configuration (and, for the stores, certificates, file
//! modes and the clock, of what is on this machine) returning [`Check`]s, so each is unit
//! tested on its own. The clock item measures the clock now, like `portcullis clock status`;
//! `--clock-status-file` judges a saved `portcullis clock status` output instead (taken on the
//! production host, or by the tests: CI runners are not synchronised).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::siem::SiemTransport;
use crate::config::{Config, OnDivergence, OnFull, VenueKind};

/// Certificates expiring within this many days fail.
pub const CERT_MIN_DAYS: i64 = 30;
/// Longest ops token lifetime accepted, seconds (AUTH-4: 15 min).
pub const MAX_JWT_S: u64 = 900;

/// The verdict on one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One checked item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    /// What was checked, e.g. "TLS on non-loopback listener 0.0.0.0:9878".
    pub item: String,
    /// The config key or file it concerns.
    pub concerns: String,
    /// How to fix it (empty on PASS).
    pub fix: String,
}

impl Check {
    fn new(verdict: Verdict, item: impl Into<String>, concerns: impl Into<String>) -> Check {
        Check {
            verdict,
            item: item.into(),
            concerns: concerns.into(),
            fix: String::new(),
        }
    }
    fn pass(item: impl Into<String>, concerns: impl Into<String>) -> Check {
        Check::new(Verdict::Pass, item, concerns)
    }
    fn fail(item: impl Into<String>, concerns: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            fix: fix.into(),
            ..Check::new(Verdict::Fail, item, concerns)
        }
    }
    fn warn(item: impl Into<String>, concerns: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            fix: fix.into(),
            ..Check::new(Verdict::Warn, item, concerns)
        }
    }
    fn of(ok: bool, item: &str, concerns: &str, fix: &str) -> Check {
        if ok {
            Check::pass(item, concerns)
        } else {
            Check::fail(item, concerns, fix)
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {} [{}]",
            self.verdict.as_str(),
            self.item,
            self.concerns
        )?;
        if !self.fix.is_empty() {
            write!(f, " — fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// The clock as measured (or read from a saved `clock status` output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    pub synchronised: bool,
    /// Estimated divergence from UTC, ns; `None` = unknown.
    pub divergence_ns: Option<u64>,
}

/// TLS on every non-loopback FIX listener.
pub fn listeners_tls(cfg: &Config) -> Vec<Check> {
    cfg.listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let item = format!("TLS on FIX listener {}", l.address);
            let key = format!("listener[{i}].tls");
            if l.tls.is_some() {
                Check::pass(item, key)
            } else if l.address.ip().is_loopback() {
                Check::pass(format!("{item} (loopback: plaintext allowed)"), key)
            } else {
                Check::fail(
                    item,
                    key,
                    "set tls = { cert, key, client_ca } on this listener (and drop allow_plaintext)",
                )
            }
        })
        .collect()
}

/// TLS 1.3 only: no `tls12` allowance on listeners, venue links or the SIEM link.
pub fn tls13_only(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Some(t) = &l.tls {
            out.push(Check::of(
                !t.tls12,
                &format!("TLS 1.3 only on listener {}", l.address),
                &format!("listener[{i}].tls.tls12"),
                "remove tls12 = true (clients must speak TLS 1.3)",
            ));
        }
    }
    if let Some(s) = &cfg.siem {
        if s.transport == SiemTransport::Tls {
            out.push(Check::of(
                !s.tls12,
                "TLS 1.3 only to the SIEM collector",
                "siem.tls12",
                "remove tls12 = true (upgrade the collector to TLS 1.3)",
            ));
        }
    }
    if out.is_empty() {
        out.push(Check::pass(
            "TLS 1.3 only (no TLS endpoints configured)",
            "listener",
        ));
    }
    out
}

/// mTLS on internal links: every external venue over TLS with our client certificate, the SIEM
/// link with a client certificate.
pub fn mtls_internal(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for (i, v) in cfg.venues.iter().enumerate() {
        if v.kind != VenueKind::Fix {
            continue;
        }
        let ok = v
            .tls
            .as_ref()
            .is_some_and(|t| t.cert.is_some() && t.key.is_some());
        out.push(Check::of(
            ok,
            &format!("mTLS to venue {}", v.name),
            &format!("venue[{i}].tls"),
            "set tls = { ca, cert, key, server_name } (our client certificate for the venue)",
        ));
    }
    if let Some(s) = &cfg.siem {
        let ok =
            s.transport == SiemTransport::Tls && s.client_cert.is_some() && s.client_key.is_some();
        out.push(Check::of(
            ok,
            "mTLS to the SIEM collector",
            "siem.client_cert",
            "set transport = \"tls\", client_cert and client_key",
        ));
    }
    if out.is_empty() {
        out.push(Check::pass(
            "mTLS on internal links (none configured)",
            "venue",
        ));
    }
    out
}

/// `[auth]` present, `required = true`, and a master key provider that is not for
/// development (`file`, `env`).
pub fn auth_and_master_key(cfg: &Config) -> Vec<Check> {
    let Some(a) = &cfg.auth else {
        return vec![Check::fail(
            "signed logons ([auth] section)",
            "auth",
            "add [auth] with key_store and master_key = { provider = \"pkcs11\", ... }",
        )];
    };
    vec![
        Check::of(
            a.required,
            "every Logon signed",
            "auth.required",
            "set auth.required = true",
        ),
        Check::of(
            !crate::auth::admin::is_development(cfg),
            &format!(
                "non-development master key provider ({})",
                a.master_key.provider
            ),
            "auth.master_key.provider",
            "use provider = \"pkcs11\" (an HSM); \"file\" and \"env\" are for development",
        ),
    ]
}

/// The ops port: MFA enforced, token lifetime ≤ 15 min, not plaintext off loopback.
pub fn ops_port(cfg: &Config) -> Vec<Check> {
    let Some(o) = &cfg.ops else {
        return vec![Check::warn(
            "ops port (none configured: no MFA, token or TLS to check)",
            "ops",
            "configure [ops] with tls for status, alerts and controls",
        )];
    };
    let plaintext_item = format!("ops port {} not plaintext", o.address);
    vec![
        Check::of(
            o.mfa_required,
            "MFA enforced on the ops port",
            "ops.mfa_required",
            "set ops.mfa_required = true",
        ),
        Check::of(
            o.jwt_lifetime_s <= MAX_JWT_S,
            &format!("ops token lifetime {} s ≤ 900 s", o.jwt_lifetime_s),
            "ops.jwt_lifetime_s",
            "set ops.jwt_lifetime_s to 900 or less",
        ),
        if !o.plaintext {
            Check::pass(plaintext_item, "ops.tls")
        } else if o.address.ip().is_loopback() {
            Check::warn(
                format!("{plaintext_item} (loopback: behind a local TLS proxy?)"),
                "ops.plaintext",
                "set ops.tls = { cert, key } unless a TLS reverse proxy on this host fronts it",
            )
        } else {
            Check::fail(
                plaintext_item,
                "ops.plaintext",
                "set ops.tls = { cert, key } and remove plaintext = true",
            )
        },
    ]
}

/// Every account has limits (accounts exist; every account a session names is configured,
/// and so has every limit: the config refuses an account with one missing) and every session
/// has a throttle tier.
pub fn limits_and_throttles(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(Check::of(
        !cfg.accounts.is_empty(),
        &format!("accounts with limits ({} configured)", cfg.accounts.len()),
        "account",
        "add an [[account]] with its limits for every trading account",
    ));
    let known = |n: &str| cfg.accounts.iter().any(|a| a.name == n);
    for (i, s) in cfg.sessions.iter().enumerate() {
        for (key, acc) in s
            .default_account
            .iter()
            .map(|a| (format!("session[{i}].default_account"), a))
            .chain(
                s.dev_accounts
                    .iter()
                    .map(|a| (format!("session[{i}].dev_accounts"), a)),
            )
        {
            out.push(Check::of(
                known(acc),
                &format!("account {acc:?} of session {} has limits", s.their_comp_id),
                &key,
                &format!("add [[account]] name = {acc:?} with its limits"),
            ));
        }
        out.push(Check::of(
            s.tier.is_some(),
            &format!("throttle tier on session {}", s.their_comp_id),
            &format!("session[{i}].tier"),
            "set tier = \"standard\" (or a [[tier]] of yours)",
        ));
    }
    out
}

/// The clock policy halts on divergence, and an unsynchronised clock counts as a breach.
pub fn clock_policy(cfg: &Config) -> Vec<Check> {
    vec![
        Check::of(
            cfg.clock.on_divergence == OnDivergence::Halt,
            "clock divergence halts new orders",
            "clock.on_divergence",
            "set clock.on_divergence = \"halt\"",
        ),
        Check::of(
            cfg.clock.unsynchronised_is_breach,
            "an unsynchronised clock is a breach",
            "clock.unsynchronised_is_breach",
            "set clock.unsynchronised_is_breach = true",
        ),
    ]
}

/// The clock is synchronised and within `clock.max_divergence_us` now.
pub fn clock_now(cfg: &Config, r: &ClockReading) -> Check {
    let limit_ns = cfg.clock.max_divergence_us.saturating_mul(1000);
    let item = match r.divergence_ns {
        Some(d) => format!(
            "clock synchronised within {} µs (now {}.{:03} µs)",
            cfg.clock.max_divergence_us,
            d / 1000,
            d % 1000
        ),
        None => format!(
            "clock synchronised within {} µs (now {})",
            cfg.clock.max_divergence_us,
            if r.synchronised {
                "divergence unknown"
            } else {
                "unsynchronised"
            }
        ),
    };
    let ok = r.synchronised && r.divergence_ns.is_some_and(|d| d <= limit_ns);
    Check::of(
        ok,
        &item,
        "clock.max_divergence_us",
        "discipline the clock (chrony/ptp4l+phc2sys) until `portcullis clock status` says \
         within limit",
    )
}

/// Parses a saved `portcullis clock status` output (`sync:` and `divergence:` lines).
pub fn parse_clock_status(text: &str) -> Result<ClockReading, String> {
    let mut sync = None;
    let mut divergence = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("sync:") {
            sync = Some(v.trim() == "synchronised");
        } else if let Some(v) = line.strip_prefix("divergence:") {
            let v = v.trim();
            divergence = Some(if v == "unknown" {
                None
            } else {
                let n = v
                    .strip_suffix("µs")
                    .map(str::trim)
                    .ok_or_else(|| format!("divergence {v:?}: expected \"N.NNN µs\""))?;
                let (int, frac) = n.split_once('.').unwrap_or((n, "0"));
                let int: u64 = int.parse().map_err(|_| format!("divergence {v:?}"))?;
                let frac: u64 = format!("{frac:0<3}")
                    .get(..3)
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(|| format!("divergence {v:?}"))?;
                Some(int.saturating_mul(1000).saturating_add(frac))
            });
        }
    }
    match (sync, divergence) {
        (Some(s), Some(d)) => Ok(ClockReading {
            synchronised: s,
            divergence_ns: d,
        }),
        _ => {
            Err("not a `portcullis clock status` output (needs sync: and divergence: lines)".into())
        }
    }
}

/// Measures the clock now, like `portcullis clock status`.
pub fn measure_clock(cfg: &Config) -> ClockReading {
    use crate::clock::status::{assess, Policy, SyncState};
    let clock = crate::clock::Clock::fast();
    let ptp = crate::clock::thread::ptp_device(&cfg.clock);
    for _ in 0..2 {
        let _ = crate::clock::thread::measure(&clock, ptp.as_deref());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let a = assess(
        &crate::clock::thread::measure(&clock, ptp.as_deref()),
        &Policy::from_config(&cfg.clock),
    );
    ClockReading {
        synchronised: a.state == SyncState::Synchronised,
        divergence_ns: a.divergence_ns,
    }
}

/// The audit trail: enabled, fail-closed when full, checkpoint key pinned.
pub fn audit_trail(cfg: &Config) -> Vec<Check> {
    let a = &cfg.audit;
    if !a.enabled {
        return vec![Check::fail(
            "audit trail enabled",
            "audit.enabled",
            "set audit.enabled = true",
        )];
    }
    vec![
        Check::pass("audit trail enabled", "audit.enabled"),
        Check::of(
            a.on_full(cfg) == OnFull::FailClosed,
            &format!(
                "audit trail fails closed (on_full = {})",
                a.on_full(cfg).as_str()
            ),
            "audit.on_full",
            "set audit.on_full = \"fail_closed\"",
        ),
        Check::of(
            a.public_key.is_some(),
            "audit checkpoint key pinned",
            "audit.public_key",
            "set audit.public_key to the 64 hex digits of <data_dir>/secrets/audit-signing.pub",
        ),
    ]
}

/// `[siem]` configured, over TLS.
pub fn siem(cfg: &Config) -> Check {
    match &cfg.siem {
        None => Check::fail(
            "SIEM export configured",
            "siem",
            "add [siem] with address, transport = \"tls\", ca_file, client_cert, client_key",
        ),
        Some(s) => Check::of(
            s.transport == SiemTransport::Tls,
            &format!("SIEM export to {} over TLS", s.address),
            "siem.transport",
            "set siem.transport = \"tls\" and ca_file",
        ),
    }
}

/// Ids of the development keys the embedded default creates for `cfg`'s sessions
/// (`auth::admin::ensure_dev_store`).
pub fn dev_key_ids(cfg: &Config) -> Vec<String> {
    cfg.sessions
        .iter()
        .map(|s| format!("{}-dev", s.their_comp_id.to_ascii_lowercase()))
        .collect()
}

/// No active development keys in the key store (revoked ones cannot log on), no active
/// any-account grants.
pub fn key_store(cfg: &Config) -> Vec<Check> {
    if cfg.auth.is_none() {
        return vec![Check::fail(
            "key store (no [auth])",
            "auth.key_store",
            "add [auth] (see the signed-logon item)",
        )];
    }
    let store_path = cfg
        .auth
        .as_ref()
        .map(|a| a.store_path(&cfg.gateway.data_dir))
        .unwrap_or_default();
    if !store_path.exists() {
        let key = store_path.display().to_string();
        return vec![
            Check::pass("no development keys (no key store yet)", key.clone()),
            Check::pass("no any-account (\"*\") grants (no key store yet)", key),
        ];
    }
    let (store, a) = match crate::auth::admin::open_store(cfg, false) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                "key store readable",
                "auth.key_store",
                format!("{e} (run preflight with the gateway's environment: PIN, SOFTHSM2_CONF)"),
            )]
        }
    };
    let store_key = a.store_path(&cfg.gateway.data_dir).display().to_string();
    let file = if store.exists() {
        match store.load() {
            Ok(f) => f,
            Err(e) => return vec![Check::fail("key store readable", store_key, e)],
        }
    } else {
        crate::auth::keys::KeyFile::default()
    };
    let dev = dev_key_ids(cfg);
    let dev_found: Vec<&str> = file
        .keys
        .iter()
        .filter(|k| dev.contains(&k.id) && k.status == crate::auth::keys::Status::Active)
        .map(|k| k.id.as_str())
        .collect();
    let any: Vec<&str> = file
        .keys
        .iter()
        .filter(|k| k.any_account() && k.status == crate::auth::keys::Status::Active)
        .map(|k| k.id.as_str())
        .collect();
    vec![
        if dev_found.is_empty() {
            Check::pass("no development keys in the key store", store_key.clone())
        } else {
            Check::fail(
                format!(
                    "no development keys in the key store (found {})",
                    dev_found.join(", ")
                ),
                store_key.clone(),
                format!(
                    "portcullis keys revoke ID --config FILE for each of {}",
                    dev_found.join(", ")
                ),
            )
        },
        if any.is_empty() {
            Check::pass("no any-account (\"*\") grants", store_key)
        } else {
            Check::fail(
                format!("no any-account (\"*\") grants (found {})", any.join(", ")),
                store_key,
                "portcullis keys set ID --accounts ACC,... (name the accounts)",
            )
        },
    ]
}

/// No development operator: the embedded default's `admin`, whose password and TOTP secret
/// lie in `<data_dir>/secrets/ops-admin.*` (`ops::users::ensure_dev_admin`), is neither in the
/// operator store nor on disk.
pub fn operator_store(cfg: &Config) -> Check {
    let pw = cfg
        .gateway
        .data_dir
        .join("secrets")
        .join("ops-admin.password");
    let fix = format!(
        "portcullis users remove admin --config FILE, and delete {} and ops-admin.totp",
        pw.display()
    );
    let Some(o) = &cfg.ops else {
        return if pw.exists() {
            Check::fail(
                "no development operators (the embedded default's admin password is on disk)",
                pw.display().to_string(),
                fix,
            )
        } else {
            Check::pass("no development operators (no [ops])", "ops")
        };
    };
    let path = cfg.gateway.data_dir.join(&o.users_file);
    let key = path.display().to_string();
    if !path.exists() {
        return Check::of(
            !pw.exists(),
            "no development operators (no operator store yet)",
            &key,
            &fix,
        );
    }
    let loaded = crate::ops::users::UserStore::open(cfg, false).and_then(|s| s.load());
    match loaded {
        Err(e) => Check::fail("operator store readable", key, e),
        Ok(f) if f.find("admin").is_some() && pw.exists() => Check::fail(
            "no development operators (found the embedded default's admin)",
            key,
            fix,
        ),
        Ok(_) => Check::pass("no development operators", key),
    }
}

/// The certificate files of `cfg` with the key naming each: listeners, ops, venue client
/// certificates, the SIEM client certificate.
pub fn cert_files(cfg: &Config) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Some(t) = &l.tls {
            out.push((format!("listener[{i}].tls.cert"), t.cert.clone()));
        }
    }
    if let Some(t) = cfg.ops.as_ref().and_then(|o| o.tls.as_ref()) {
        out.push(("ops.tls.cert".into(), t.cert.clone()));
    }
    for (i, v) in cfg.venues.iter().enumerate() {
        if let Some(c) = v.tls.as_ref().and_then(|t| t.cert.as_ref()) {
            out.push((format!("venue[{i}].tls.cert"), c.clone()));
        }
    }
    if let Some(c) = cfg.siem.as_ref().and_then(|s| s.client_cert.as_ref()) {
        out.push(("siem.client_cert".into(), c.clone()));
    }
    out
}

/// Certificates not expiring within [`CERT_MIN_DAYS`] days of `now_unix`.
pub fn cert_expiry(cfg: &Config, now_unix: i64) -> Vec<Check> {
    cert_files(cfg)
        .into_iter()
        .map(|(key, path)| {
            let item = format!("certificate {} valid > {CERT_MIN_DAYS} days", path.display());
            let not_after = crate::tls::load_certs(&path).and_then(|certs| {
                certs.iter().try_fold(i64::MAX, |m, c| {
                    crate::tls::validity(c).map(|(_, na)| m.min(na))
                })
            });
            match not_after {
                Err(e) => Check::fail(item, key, e),
                Ok(na) if na - now_unix < CERT_MIN_DAYS * 86_400 => Check::fail(
                    format!("{item} (expires in {} days)", (na - now_unix) / 86_400),
                    key,
                    "renew the certificate (the gateway reloads it: SIGHUP or gateway.tls_watch_ms)",
                ),
                Ok(na) => Check::pass(
                    format!("{item} ({} days left)", (na - now_unix) / 86_400),
                    key,
                ),
            }
        })
        .collect()
}

/// The secret files of `cfg`: private keys, the key store, the operator store, a file master
/// key, everything under `<data_dir>/secrets`.
pub fn secret_files(cfg: &Config) -> Vec<(String, PathBuf)> {
    let data = &cfg.gateway.data_dir;
    let mut out = Vec::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Some(t) = &l.tls {
            out.push((format!("listener[{i}].tls.key"), t.key.clone()));
        }
    }
    if let Some(o) = &cfg.ops {
        if let Some(t) = &o.tls {
            out.push(("ops.tls.key".into(), t.key.clone()));
        }
        out.push(("ops.users_file".into(), data.join(&o.users_file)));
    }
    for (i, v) in cfg.venues.iter().enumerate() {
        if let Some(k) = v.tls.as_ref().and_then(|t| t.key.as_ref()) {
            out.push((format!("venue[{i}].tls.key"), k.clone()));
        }
    }
    if let Some(k) = cfg.siem.as_ref().and_then(|s| s.client_key.as_ref()) {
        out.push(("siem.client_key".into(), k.clone()));
    }
    if let Some(a) = &cfg.auth {
        out.push(("auth.key_store".into(), a.store_path(data)));
        if let Ok(crate::auth::provider::ProviderCfg::File { path }) = a.provider(data) {
            out.push(("auth.master_key.path".into(), path));
        }
    }
    if let Ok(rd) = std::fs::read_dir(data.join("secrets")) {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        out.extend(
            more.into_iter()
                .map(|p| ("gateway.data_dir".to_string(), p)),
        );
    }
    out
}

/// The data folder 0700 (and its `secrets` folder), every secret file 0600 or stricter, all
/// owned by this user. Missing secret files are skipped (not created yet).
pub fn permissions(cfg: &Config) -> Vec<Check> {
    let me = crate::files::euid();
    let mut out = Vec::new();
    let data = &cfg.gateway.data_dir;
    for (key, dir) in [
        ("gateway.data_dir", data.clone()),
        ("gateway.data_dir", data.join("secrets")),
    ] {
        let item = format!("folder {} mode 0700", dir.display());
        match std::fs::metadata(&dir) {
            Err(_) if dir != *data => {}
            Err(e) => out.push(Check::fail(item, key, format!("cannot read it: {e}"))),
            Ok(m) => out.push(mode_check(item, key, &dir, &m, me, "chmod 700")),
        }
    }
    for (key, path) in secret_files(cfg) {
        if let Ok(m) = std::fs::metadata(&path) {
            if m.is_file() {
                let item = format!("secret {} mode 0600", path.display());
                out.push(mode_check(item, &key, &path, &m, me, "chmod 600"));
            }
        }
    }
    out
}

fn mode_check(
    item: String,
    key: &str,
    path: &Path,
    m: &std::fs::Metadata,
    me: u32,
    chmod: &str,
) -> Check {
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        Check::fail(
            format!("{item} (is {mode:04o})"),
            key,
            format!("{chmod} {}", path.display()),
        )
    } else if m.uid() != me {
        Check::fail(
            format!("{item} (owned by uid {})", m.uid()),
            key,
            format!("chown {me} {}", path.display()),
        )
    } else {
        Check::pass(item, key)
    }
}

/// Every item, in checklist order.
pub fn run_checks(cfg: &Config, clock: &ClockReading, now_unix: i64) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(listeners_tls(cfg));
    out.extend(tls13_only(cfg));
    out.extend(mtls_internal(cfg));
    out.extend(auth_and_master_key(cfg));
    out.extend(ops_port(cfg));
    out.extend(limits_and_throttles(cfg));
    out.extend(clock_policy(cfg));
    out.push(clock_now(cfg, clock));
    out.extend(audit_trail(cfg));
    out.push(siem(cfg));
    out.extend(key_store(cfg));
    out.push(operator_store(cfg));
    out.extend(cert_expiry(cfg, now_unix));
    out.extend(permissions(cfg));
    out
}

/// `portcullis preflight`: prints every item and a summary; 0 = no FAIL, 1 = a FAIL, 2 = the
/// configuration or the clock status file did not load.
pub fn run(cfg: &Config, clock_status_file: Option<&Path>) -> u8 {
    let clock = match clock_status_file {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_clock_status(&t))
        {
            Ok(r) => r,
            Err(e) => {
                crate::say_err(format_args!(
                    "portcullis preflight: --clock-status-file {}: {e}",
                    p.display()
                ));
                return 2;
            }
        },
        None => measure_clock(cfg),
    };
    let now_unix = i64::try_from(crate::clock::system_utc().0 / 1_000_000_000).unwrap_or(i64::MAX);
    let checks = run_checks(cfg, &clock, now_unix);
    let mut fails = 0;
    let mut warns = 0;
    for c in &checks {
        crate::say(format_args!("{c}"));
        match c.verdict {
            Verdict::Fail => fails += 1,
            Verdict::Warn => warns += 1,
            Verdict::Pass => {}
        }
    }
    crate::say(format_args!(
        "preflight: {} passed, {warns} warnings, {fails} failed",
        checks.len() - fails - warns
    ));
    u8::from(fails > 0)
}

#[cfg(test)]
mod tests;
