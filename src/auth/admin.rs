//! COLD — key management (`portcullis keys ...`) and the embedded default's development store.
//!
//! Every change takes the store's exclusive lock (concurrent commands wait for each other and
//! lose nothing), loads the store (refusing one older than the newest generation seen: see
//! `store`), edits the plaintext in memory, validates the result as a snapshot (errors name
//! the key and field) and saves it whole (atomic replace, next generation). A running
//! gateway picks the change up within `auth.poll_ms`. Secrets are returned once by `add` and
//! `rotate`; listings never contain them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::keys::{self, KeyFile, KeyRecord, KeySnapshot, SecretRecord, Status};
use super::provider::ProviderCfg;
use super::store::KeyStore;
use crate::config::{AuthCfg, Config};

/// The key store of `cfg`; `create`: generate a missing dev master key / HSM key.
pub fn open_store(cfg: &Config, create: bool) -> Result<(KeyStore, AuthCfg), String> {
    let a = cfg
        .auth
        .clone()
        .ok_or("the configuration has no [auth] section (no key store)")?;
    let data = &cfg.gateway.data_dir;
    let provider = a.provider(data)?;
    let store = KeyStore::open(&a.store_path(data), &provider, create)?;
    Ok((store, a))
}

fn load_or_empty(store: &KeyStore) -> Result<KeyFile, String> {
    if store.exists() {
        Ok(store.load()?)
    } else {
        Ok(KeyFile::default())
    }
}

fn save_checked(store: &KeyStore, file: &KeyFile, cfg: &Config) -> Result<(), String> {
    KeySnapshot::build(file)?;
    let tiers = cfg.tier_table();
    for k in &file.keys {
        if let Some(t) = &k.tier {
            if tiers.find(t).is_none() {
                return Err(format!("key {:?}: tier {t:?} is not configured", k.id));
            }
        }
    }
    store.save(file)
}

/// What a new key is allowed.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    pub comp_ids: Vec<String>,
    pub role: String,
    pub scopes: Vec<String>,
    pub accounts: Vec<String>,
    pub symbols: Vec<String>,
    pub allow: Vec<String>,
    pub tier: Option<String>,
    pub expires_ms: Option<u64>,
}

/// Adds key `id`; returns its secret (base64), to be shown once.
pub fn add(
    cfg: &Config,
    id: &str,
    spec: &KeySpec,
    now_ms: u64,
) -> Result<Zeroizing<String>, String> {
    keys::check_id(id)?;
    let (store, _) = open_store(cfg, true)?;
    let _lock = store.lock()?;
    let mut file = load_or_empty(&store)?;
    if file.find(id).is_some() {
        return Err(format!(
            "key {id:?} already exists (use rotate for a new secret)"
        ));
    }
    let secret = keys::new_secret()?;
    file.keys.push(new_record(id, &secret, spec, now_ms));
    save_checked(&store, &file, cfg)?;
    Ok(secret)
}

/// A new active key `id` with one secret and the role, scopes and bindings of `spec`.
fn new_record(id: &str, secret: &str, spec: &KeySpec, now_ms: u64) -> KeyRecord {
    KeyRecord {
        id: id.to_string(),
        secrets: vec![SecretRecord {
            secret: secret.to_string(),
            not_after_ms: None,
        }],
        role: spec.role.clone(),
        scopes: spec.scopes.clone(),
        comp_ids: spec.comp_ids.clone(),
        accounts: spec.accounts.clone(),
        symbols: spec.symbols.clone(),
        allow: spec.allow.clone(),
        tier: spec.tier.clone(),
        expires_ms: spec.expires_ms,
        status: Status::Active,
        unlock_gen: 0,
        created_ms: now_ms,
        rotated_ms: None,
    }
}

/// Most keys `generate` creates in one call.
pub const MAX_GENERATE: u64 = 1_000_000;

/// Adds `count` keys `<prefix>000001` … in one load and one save of the store (`add` per key
/// rewrites the whole store each time: quadratic for a large store). Same validation and store
/// code as `add`; every key gets `spec`. Returns the (id, secret) pairs, to be shown once.
pub fn generate(
    cfg: &Config,
    prefix: &str,
    count: u64,
    spec: &KeySpec,
    now_ms: u64,
) -> Result<Vec<(String, Zeroizing<String>)>, String> {
    if count == 0 || count > MAX_GENERATE {
        return Err(format!("--count {count} is outside 1..={MAX_GENERATE}"));
    }
    let width = count.to_string().len().max(6);
    let id_of = |i: u64| format!("{prefix}{i:0width$}");
    keys::check_id(&id_of(count))?;
    let (store, _) = open_store(cfg, true)?;
    let _lock = store.lock()?;
    let mut file = load_or_empty(&store)?;
    let existing: std::collections::HashSet<&str> =
        file.keys.iter().map(|k| k.id.as_str()).collect();
    if let Some(clash) = (1..=count)
        .map(id_of)
        .find(|id| existing.contains(id.as_str()))
    {
        return Err(format!(
            "key {clash:?} already exists (choose another --prefix)"
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    file.keys.reserve(count as usize);
    for i in 1..=count {
        let id = id_of(i);
        let secret = keys::new_secret()?;
        file.keys.push(new_record(&id, &secret, spec, now_ms));
        out.push((id, secret));
    }
    save_checked(&store, &file, cfg)?;
    Ok(out)
}

/// Changes to an existing key's permissions (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct KeyChange {
    pub comp_ids: Option<Vec<String>>,
    pub role: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub accounts: Option<Vec<String>>,
    pub symbols: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    pub tier: Option<Option<String>>,
}

fn edit<T>(
    cfg: &Config,
    id: &str,
    f: impl FnOnce(&mut KeyRecord, &AuthCfg) -> Result<T, String>,
) -> Result<T, String> {
    let (store, a) = open_store(cfg, false)?;
    let _lock = store.lock()?;
    let mut file = store.load()?;
    let k = file
        .find_mut(id)
        .ok_or_else(|| format!("no key {id:?} in {}", store.path.display()))?;
    let r = f(k, &a)?;
    save_checked(&store, &file, cfg)?;
    Ok(r)
}

/// Applies `change` to key `id`.
pub fn set(cfg: &Config, id: &str, change: &KeyChange) -> Result<(), String> {
    edit(cfg, id, |k, _| {
        let c = change.clone();
        if let Some(v) = c.comp_ids {
            k.comp_ids = v;
        }
        if let Some(v) = c.role {
            k.role = v;
        }
        if let Some(v) = c.scopes {
            k.scopes = v;
        }
        if let Some(v) = c.accounts {
            k.accounts = v;
        }
        if let Some(v) = c.symbols {
            k.symbols = v;
        }
        if let Some(v) = c.allow {
            k.allow = v;
        }
        if let Some(v) = c.tier {
            k.tier = v;
        }
        Ok(())
    })
}

/// A new secret for key `id`; the current one keeps working for `overlap_ms` (default: the
/// config's `auth.rotation_overlap_ms`). A key holds at most two secrets: an older one still
/// in its overlap is dropped. The key's age (`auth.max_key_age_days`) starts again; the
/// secrets of a key already past its maximum age are dropped, with no overlap.
pub fn rotate(
    cfg: &Config,
    id: &str,
    overlap_ms: Option<u64>,
    now_ms: u64,
) -> Result<Zeroizing<String>, String> {
    edit(cfg, id, |k, a| {
        if k.status == Status::Revoked {
            return Err(format!("key {id:?} is revoked"));
        }
        let too_old = aged_out(k, a.max_key_age_ms(), now_ms);
        let overlap = overlap_ms.unwrap_or(a.rotation_overlap_ms);
        k.rotated_ms = Some(now_ms);
        if too_old {
            // Its secrets are dead already: no overlap brings them back.
            k.secrets.clear();
        }
        k.secrets.retain(|s| s.not_after_ms.is_none());
        for s in &mut k.secrets {
            s.not_after_ms = Some(now_ms.saturating_add(overlap));
        }
        let secret = keys::new_secret()?;
        k.secrets.insert(
            0,
            SecretRecord {
                secret: secret.to_string(),
                not_after_ms: None,
            },
        );
        Ok(secret)
    })
}

/// Revokes key `id`: its logons are refused and its live sessions logged out.
pub fn revoke(cfg: &Config, id: &str) -> Result<(), String> {
    edit(cfg, id, |k, _| {
        k.status = Status::Revoked;
        Ok(())
    })
}

/// Sets key `id` to expire at `at_ms` (Unix milliseconds).
pub fn expire(cfg: &Config, id: &str, at_ms: u64) -> Result<(), String> {
    edit(cfg, id, |k, _| {
        k.expires_ms = Some(at_ms);
        Ok(())
    })
}

/// Clears the lockout of key `id`, or of every source address.
pub fn unlock(cfg: &Config, id: Option<&str>) -> Result<(), String> {
    match id {
        Some(id) => edit(cfg, id, |k, _| {
            k.unlock_gen += 1;
            Ok(())
        }),
        None => {
            let (store, _) = open_store(cfg, false)?;
            let _lock = store.lock()?;
            let mut file = store.load()?;
            file.address_unlock_gen += 1;
            save_checked(&store, &file, cfg)
        }
    }
}

fn fmt_ms(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) => {
            let mut b = [0u8; 32];
            let n = crate::fix::encode::write_timestamp(
                &mut b,
                crate::model::Nanos(ms.saturating_mul(1_000_000)),
                crate::fix::TimePrecision::Millis,
            );
            String::from_utf8_lossy(&b[..n]).into_owned()
        }
    }
}

/// Whether key `k` is past the maximum age `max_age_ms` (0: no maximum) at `now_ms`.
fn aged_out(k: &KeyRecord, max_age_ms: u64, now_ms: u64) -> bool {
    max_age_ms > 0 && now_ms.saturating_sub(k.age_from_ms()) >= max_age_ms
}

fn state(k: &KeyRecord, now_ms: u64, max_age_ms: u64) -> &'static str {
    match (k.status, k.expires_ms) {
        (Status::Revoked, _) => "revoked",
        (_, Some(e)) if e <= now_ms => "expired",
        _ if aged_out(k, max_age_ms, now_ms) => "too-old",
        _ if k.secrets.len() > 1 => "rotating",
        _ => "active",
    }
}

/// The key's age in whole days and, with a maximum age, the days left (`-` without one):
/// `AGE` and `LEFT` of `keys list`.
fn age_columns(k: &KeyRecord, max_age_ms: u64, now_ms: u64) -> (u64, String) {
    let age_ms = now_ms.saturating_sub(k.age_from_ms());
    let left = if max_age_ms == 0 {
        "-".to_string()
    } else {
        max_age_ms
            .saturating_sub(age_ms)
            .div_ceil(keys::DAY_MS)
            .to_string()
    };
    (age_ms / keys::DAY_MS, left)
}

/// One line per key; never a secret. AGE: whole days since the key's creation or last
/// rotation; LEFT: whole days until `auth.max_key_age_days` expires it.
pub fn list(cfg: &Config, now_ms: u64) -> Result<String, String> {
    let (store, a) = open_store(cfg, false)?;
    let file = store.load()?;
    let max_age = a.max_key_age_ms();
    let mut out = format!(
        "{:<24} {:<12} {:<9} {:<24} {:>8} {:>9} {}\n",
        "ID", "ROLE", "STATE", "COMP IDS", "AGE (D)", "LEFT (D)", "EXPIRES (UTC)"
    );
    for k in &file.keys {
        let (age, left) = age_columns(k, max_age, now_ms);
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<9} {:<24} {:>8} {:>9} {}",
            k.id,
            k.role,
            state(k, now_ms, max_age),
            k.comp_ids.join(","),
            age,
            left,
            fmt_ms(k.expires_ms)
        );
    }
    Ok(out)
}

/// Everything about key `id` but its secrets.
pub fn show(cfg: &Config, id: &str, now_ms: u64) -> Result<String, String> {
    let (store, a) = open_store(cfg, false)?;
    let file = store.load()?;
    let max_age = a.max_key_age_ms();
    let k = file
        .find(id)
        .ok_or_else(|| format!("no key {id:?} in {}", store.path.display()))?;
    let snap = KeySnapshot::build(&KeyFile {
        address_unlock_gen: 0,
        keys: vec![k.clone()],
    })?;
    let scopes = snap
        .keys
        .first()
        .map(|c| c.scopes.names().join(" "))
        .unwrap_or_default();
    let any = |v: &Vec<String>| {
        if v.is_empty() {
            "any".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "id:        {}", k.id);
    let _ = writeln!(out, "state:     {}", state(k, now_ms, max_age));
    let _ = writeln!(out, "role:      {}", k.role);
    let _ = writeln!(out, "scopes:    {scopes}");
    let _ = writeln!(out, "comp ids:  {}", k.comp_ids.join(", "));
    let _ = writeln!(out, "accounts:  {}", any(&k.accounts));
    let _ = writeln!(out, "symbols:   {}", any(&k.symbols));
    let _ = writeln!(out, "allow:     {}", k.allow.join(", "));
    let _ = writeln!(
        out,
        "tier:      {}",
        k.tier.as_deref().unwrap_or("(session's)")
    );
    let _ = writeln!(out, "expires:   {}", fmt_ms(k.expires_ms));
    let _ = writeln!(out, "created:   {}", fmt_ms(Some(k.created_ms)));
    let _ = writeln!(out, "rotated:   {}", fmt_ms(k.rotated_ms));
    let (age, left) = age_columns(k, max_age, now_ms);
    let _ = writeln!(out, "age:       {age} days ({left} days left)");
    for (i, s) in k.secrets.iter().enumerate() {
        let _ = writeln!(
            out,
            "secret {}:  (hidden) valid until {}",
            i + 1,
            fmt_ms(s.not_after_ms)
        );
    }
    Ok(out)
}

/// A development key the embedded default created.
pub struct DevKey {
    pub id: String,
    pub comp_id: String,
    pub secret_file: PathBuf,
}

/// Embedded default: creates the development key store on first start — one key per
/// configured session (bound to its SenderCompID, loopback only), each secret written to
/// `<data>/secrets/<id>.secret` (0600). Returns the keys (existing ones on later starts).
pub fn ensure_dev_store(cfg: &Config, now_ms: u64) -> Result<Vec<DevKey>, String> {
    let data = &cfg.gateway.data_dir;
    let (store, auth) = open_store(cfg, true)?;
    let secrets_dir = data.join("secrets");
    crate::files::private_dir(&secrets_dir).map_err(|e| e.to_string())?;
    let dev_keys: Vec<DevKey> = cfg
        .sessions
        .iter()
        .map(|s| {
            let id = format!("{}-dev", s.their_comp_id.to_ascii_lowercase());
            DevKey {
                secret_file: secrets_dir.join(format!("{id}.secret")),
                id,
                comp_id: s.their_comp_id.clone(),
            }
        })
        .collect();
    let _lock = store.lock()?;
    let mut file = load_or_empty(&store)?;
    let mut changed = false;
    for d in &dev_keys {
        if let Some(k) = file.find_mut(&d.id) {
            // Past auth.max_key_age_days: a development key gets a new secret (in its file)
            // rather than leave the embedded default unable to log on.
            if aged_out(k, auth.max_key_age_ms(), now_ms) {
                let secret = keys::new_secret()?;
                super::store::write_private(&d.secret_file, secret.as_bytes())
                    .map_err(|e| format!("{}: {e}", d.secret_file.display()))?;
                k.secrets = vec![SecretRecord {
                    secret: secret.to_string(),
                    not_after_ms: None,
                }];
                k.rotated_ms = Some(now_ms);
                changed = true;
                crate::say_err(format_args!(
                    "portcullis: development key {} was older than auth.max_key_age_days: \
                     rotated, new secret in {}",
                    d.id,
                    d.secret_file.display()
                ));
            }
            continue;
        }
        let secret = keys::new_secret()?;
        super::store::write_private(&d.secret_file, secret.as_bytes())
            .map_err(|e| format!("{}: {e}", d.secret_file.display()))?;
        file.keys.push(KeyRecord {
            id: d.id.clone(),
            secrets: vec![SecretRecord {
                secret: secret.to_string(),
                not_after_ms: None,
            }],
            role: "trader".into(),
            scopes: vec![],
            comp_ids: vec![d.comp_id.clone()],
            accounts: vec![],
            symbols: vec![],
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            tier: None,
            expires_ms: None,
            status: Status::Active,
            unlock_gen: 0,
            created_ms: now_ms,
            rotated_ms: None,
        });
        changed = true;
    }
    if changed || !store.exists() {
        save_checked(&store, &file, cfg)?;
    }
    Ok(dev_keys)
}

/// Reads a secret file (base64 text, surrounding whitespace ignored).
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64::Engine as _;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("secret file {}: cannot read: {e}", path.display()))?,
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| format!("secret file {}: not base64", path.display()))?;
    Ok(Zeroizing::new(bytes))
}

/// Whether the provider is for development only (to warn about).
pub fn is_development(cfg: &Config) -> bool {
    cfg.auth
        .as_ref()
        .and_then(|a| a.provider(&cfg.gateway.data_dir).ok())
        .is_some_and(|p: ProviderCfg| p.is_development())
}
