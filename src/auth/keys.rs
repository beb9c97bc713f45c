//! COLD — API key records (what the key store holds) and the compiled snapshot the gateway
//! thread reads.
//!
//! A [`KeyRecord`] is the stored form: id, up to two secrets (rotation overlap), role, scopes,
//! bound CompIDs, allowed accounts and symbols, IP allowlist, throttle tier, expiry, status.
//! [`KeySnapshot`] is the validated, compiled form: secrets decoded (zeroized on drop), scopes as
//! a bitmask, accounts and symbols as fixed inline arrays so the per-message check never
//! allocates. Snapshots are immutable and published whole (`Command::Keys`).

use std::collections::HashMap;

use arrayvec::ArrayVec;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::cidr::Cidr;
use super::scope::{Role, Scopes};
use crate::model::{Account, CompId, InlineStr, Symbol};

/// A key id, held inline (no heap): Username <553>.
pub type KeyId = InlineStr<32>;

/// Most accounts / symbols a key may be restricted to (inline arrays; checked per message).
pub const MAX_GRANTS: usize = 16;
/// Bytes of a generated secret.
pub const SECRET_BYTES: usize = 32;

/// One secret of a key. During a rotation a key has two: the new one (no end) and the old one
/// with `not_after_ms`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRecord {
    /// base64 of the secret bytes (the HMAC key is the decoded bytes).
    pub secret: String,
    /// Unix milliseconds after which this secret no longer verifies; absent: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_ms: Option<u64>,
}

impl Drop for SecretRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// Key status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Revoked,
}

/// The stored form of one API key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    pub secrets: Vec<SecretRecord>,
    pub role: String,
    /// Explicit scopes; empty: the role's defaults.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// SenderCompIDs <49> this key may log on as.
    pub comp_ids: Vec<String>,
    /// Accounts <1> orders may name; empty: any (the session's own orders only, always).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Symbols <55> orders may name; empty: any.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// CIDR networks logons may come from; empty: none (the key cannot log on).
    pub allow: Vec<String>,
    /// Throttle tier for the key (shared by its sessions); absent: the session's own limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Unix milliseconds after which the key is expired; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    pub status: Status,
    /// Bumped by `portcullis keys unlock`: the gateway clears the key's lockout when it changes.
    #[serde(default)]
    pub unlock_gen: u64,
    pub created_ms: u64,
    /// Unix milliseconds of the last `keys rotate`; absent: never rotated. The key's age
    /// (`auth.max_key_age_days`) counts from here, or from `created_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_ms: Option<u64>,
}

impl KeyRecord {
    /// Unix milliseconds the key's age counts from: its last rotation, else its creation.
    pub fn age_from_ms(&self) -> u64 {
        self.rotated_ms.unwrap_or(self.created_ms)
    }
}

/// The whole plaintext of a key store.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Bumped by `portcullis keys unlock --addresses`: clears every source-address lockout.
    #[serde(default)]
    pub address_unlock_gen: u64,
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyRecord>,
}

impl KeyFile {
    pub fn find(&self, id: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.id == id)
    }
    pub fn find_mut(&mut self, id: &str) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|k| k.id == id)
    }
}

/// A new random secret, base64.
pub fn new_secret() -> Result<Zeroizing<String>, String> {
    let mut b = Zeroizing::new([0u8; SECRET_BYTES]);
    getrandom::getrandom(&mut b[..]).map_err(|e| format!("no randomness: {e}"))?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(&b[..]),
    ))
}

/// A decoded secret with its end.
pub struct Secret {
    pub bytes: Zeroizing<Vec<u8>>,
    /// Nanoseconds since the Unix epoch; `u64::MAX` for none.
    pub not_after_ns: u64,
}

/// A validated key, ready for logon checks and per-message permissions.
pub struct Key {
    pub id: KeyId,
    pub secrets: ArrayVec<Secret, 2>,
    pub role: Role,
    pub scopes: Scopes,
    pub comp_ids: Vec<CompId>,
    pub accounts: ArrayVec<Account, MAX_GRANTS>,
    pub symbols: ArrayVec<Symbol, MAX_GRANTS>,
    pub allow: Vec<Cidr>,
    pub tier: Option<String>,
    /// Nanoseconds since the Unix epoch; `u64::MAX` for never. With a maximum key age
    /// ([`KeySnapshot::apply_max_age`]) the earlier of the key's expiry and its age limit.
    pub expires_ns: u64,
    /// Unix milliseconds the key's age counts from (last rotation, else creation).
    pub age_from_ms: u64,
    /// `expires_ns` is the age limit (`auth.max_key_age_days`), not an explicit expiry.
    pub age_limited: bool,
    pub revoked: bool,
    pub unlock_gen: u64,
    /// Throttle slot for keys with their own tier (assigned by the loader).
    pub throttle_slot: Option<u32>,
}

impl Key {
    pub fn is_expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_ns
    }
}

/// Milliseconds in a day (key ages are configured and shown in days).
pub const DAY_MS: u64 = 86_400_000;

/// Every key, by id. Immutable once built; replaced whole.
#[derive(Default)]
pub struct KeySnapshot {
    pub keys: Vec<Key>,
    index: HashMap<KeyId, usize>,
    pub address_unlock_gen: u64,
}

impl std::fmt::Debug for KeySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySnapshot({} keys)", self.keys.len())
    }
}

impl KeySnapshot {
    pub fn get(&self, id: &[u8]) -> Option<&Key> {
        let id = KeyId::new(id)?;
        self.index.get(&id).and_then(|i| self.keys.get(*i))
    }

    /// Validates and compiles a key file. Errors name the key and the field.
    pub fn build(file: &KeyFile) -> Result<KeySnapshot, String> {
        let mut snap = KeySnapshot {
            address_unlock_gen: file.address_unlock_gen,
            ..KeySnapshot::default()
        };
        for r in &file.keys {
            let k = compile(r).map_err(|e| format!("key {:?}: {e}", r.id))?;
            if snap.index.insert(k.id, snap.keys.len()).is_some() {
                return Err(format!("key {:?} is stored twice", r.id));
            }
            snap.keys.push(k);
        }
        Ok(snap)
    }

    /// Rotation policy (AUTH-9): every key expires `max_age_ms` after its creation or last
    /// rotation, unless its own expiry is earlier. 0: no maximum age.
    pub fn apply_max_age(&mut self, max_age_ms: u64) {
        if max_age_ms == 0 {
            return;
        }
        for k in &mut self.keys {
            let limit_ns = k
                .age_from_ms
                .saturating_add(max_age_ms)
                .saturating_mul(1_000_000);
            if limit_ns < k.expires_ns {
                k.expires_ns = limit_ns;
                k.age_limited = true;
            }
        }
    }
}

/// Checks a key id: 1–32 characters of `[A-Za-z0-9._-]`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "key id {id:?} must be 1–32 characters of letters, digits, '.', '_', '-'"
        ));
    }
    Ok(())
}

fn ms_to_ns(ms: Option<u64>) -> u64 {
    ms.map_or(u64::MAX, |m| m.saturating_mul(1_000_000))
}

fn compile(r: &KeyRecord) -> Result<Key, String> {
    check_id(&r.id)?;
    let id = KeyId::new(r.id.as_bytes()).ok_or("id too long")?;
    let role = Role::parse(&r.role).ok_or_else(|| {
        format!(
            "role {:?} is not one of trader, viewer, risk-officer, admin",
            r.role
        )
    })?;
    let scopes = if r.scopes.is_empty() {
        role.default_scopes()
    } else {
        let mut s = Scopes::NONE;
        for n in &r.scopes {
            s = s.union(Scopes::parse(n).ok_or_else(|| {
                format!("scope {n:?} is not one of orders:new, orders:cancel, orders:replace, orders:read")
            })?);
        }
        s
    };
    if r.secrets.is_empty() || r.secrets.len() > 2 {
        return Err("a key holds one or two secrets".into());
    }
    let mut secrets = ArrayVec::new();
    for s in &r.secrets {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s.secret.as_bytes())
                .map_err(|_| "a secret is not valid base64".to_string())?,
        );
        if bytes.len() < 16 {
            return Err("a secret is shorter than 16 bytes".into());
        }
        secrets.push(Secret {
            bytes,
            not_after_ns: ms_to_ns(s.not_after_ms),
        });
    }
    let mut comp_ids = Vec::new();
    for c in &r.comp_ids {
        comp_ids.push(
            CompId::new(c.as_bytes())
                .filter(|c| !c.is_empty())
                .ok_or_else(|| format!("comp id {c:?} must be 1–32 characters"))?,
        );
    }
    if comp_ids.is_empty() {
        return Err("comp_ids: a key must be bound to at least one SenderCompID".into());
    }
    let mut accounts = ArrayVec::new();
    for a in &r.accounts {
        let acc = Account::new(a.as_bytes())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                // Errors reach logs: account ids appear masked (DATA-4).
                format!(
                    "account {:?} must be 1–24 characters",
                    super::mask::account(a)
                )
            })?;
        accounts
            .try_push(acc)
            .map_err(|_| format!("at most {MAX_GRANTS} accounts"))?;
    }
    let mut symbols = ArrayVec::new();
    for a in &r.symbols {
        let sym = Symbol::new(a.as_bytes())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("symbol {a:?} must be 1–24 characters"))?;
        symbols
            .try_push(sym)
            .map_err(|_| format!("at most {MAX_GRANTS} symbols"))?;
    }
    let allow = r
        .allow
        .iter()
        .map(|a| Cidr::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Key {
        id,
        secrets,
        role,
        scopes,
        comp_ids,
        accounts,
        symbols,
        allow,
        tier: r.tier.clone(),
        expires_ns: ms_to_ns(r.expires_ms),
        age_from_ms: r.age_from_ms(),
        age_limited: false,
        revoked: r.status == Status::Revoked,
        unlock_gen: r.unlock_gen,
        throttle_slot: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            secrets: vec![SecretRecord {
                secret: new_secret().unwrap().to_string(),
                not_after_ms: None,
            }],
            role: "trader".into(),
            scopes: vec![],
            comp_ids: vec!["CLIENT1".into()],
            accounts: vec![],
            symbols: vec![],
            allow: vec!["127.0.0.1/32".into()],
            tier: None,
            expires_ms: None,
            status: Status::Active,
            unlock_gen: 0,
            created_ms: 0,
            rotated_ms: None,
        }
    }

    #[test]
    fn builds_and_names_bad_fields() {
        let mut f = KeyFile::default();
        f.keys.push(record("k1"));
        let s = KeySnapshot::build(&f).unwrap();
        assert_eq!(s.get(b"k1").unwrap().scopes, Scopes::ALL);
        assert!(s.get(b"k2").is_none());
        f.keys[0].role = "root".into();
        let e = KeySnapshot::build(&f).err().unwrap();
        assert!(e.contains("k1") && e.contains("root"), "{e}");
        f.keys[0].role = "viewer".into();
        f.keys[0].allow = vec!["10.0.0.0/99".into()];
        assert!(KeySnapshot::build(&f).err().unwrap().contains("prefix"));
        f.keys[0].allow = vec![];
        f.keys.push(record("k1"));
        assert!(KeySnapshot::build(&f).err().unwrap().contains("twice"));
        assert!(check_id("bad id").is_err());
        f.keys.truncate(1);
        f.keys[0].allow = vec!["::1".into()];
        f.keys[0].accounts = vec!["ACCOUNT-1234567890-LONGER-THAN-24".into()];
        let e = KeySnapshot::build(&f).err().unwrap();
        assert!(
            e.contains("*N-24") && !e.contains("ACCOUNT-1234"),
            "masked: {e}"
        );
    }

    #[test]
    fn the_age_limit_counts_from_the_last_rotation_and_keeps_an_earlier_expiry() {
        let mut f = KeyFile::default();
        f.keys.push(record("old"));
        f.keys[0].created_ms = 1_000;
        f.keys.push(record("rotated"));
        f.keys[1].created_ms = 1_000;
        f.keys[1].rotated_ms = Some(5 * DAY_MS);
        f.keys.push(record("short"));
        f.keys[2].created_ms = 1_000;
        f.keys[2].expires_ms = Some(2_000);
        let text = toml::to_string(&f).unwrap();
        assert_eq!(
            text.matches("rotated_ms").count(),
            1,
            "absent when never rotated"
        );
        let mut s = KeySnapshot::build(&toml::from_str(&text).unwrap()).unwrap();
        s.apply_max_age(10 * DAY_MS);
        let old = s.get(b"old").unwrap();
        assert_eq!(old.expires_ns, (1_000 + 10 * DAY_MS) * 1_000_000);
        assert!(
            old.age_limited
                && old.is_expired(old.expires_ns)
                && !old.is_expired(old.expires_ns - 1)
        );
        let rotated = s.get(b"rotated").unwrap();
        assert_eq!(rotated.expires_ns, 15 * DAY_MS * 1_000_000);
        let short = s.get(b"short").unwrap();
        assert_eq!(short.expires_ns, 2_000_000_000);
        assert!(!short.age_limited);
        let mut none = KeySnapshot::build(&f).unwrap();
        none.apply_max_age(0);
        assert_eq!(none.get(b"old").unwrap().expires_ns, u64::MAX);
    }
}
