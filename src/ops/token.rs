//! COLD — the ops port's login tokens: JWT, HS256 only (pinned), signed with the 32-byte key
//! kept in the operator store under the master key. Claims: `iss`, `aud`, `sub` (operator),
//! `role`, `iat`, `exp` (≤ 15 min after `iat`), `jti` (random, 128 bits). A token whose header
//! names any other algorithm (`none` included), whose signature, issuer or audience is wrong,
//! that has expired or whose `jti` was revoked (logout, refresh) is refused.
//!
//! The revocation list holds each revoked `jti` until its token's `exp`, then forgets it (an
//! expired token is refused anyway). With a file ([`Tokens::persisted`]: the port uses
//! `<data>/ops-revoked.json`, 0600, replaced atomically on every revocation) it survives a
//! restart, so a logged-out token stays refused. Bounded: at most [`MAX_REVOKED`] entries
//! (tokens live ≤ 15 min, so that is thousands of logouts a minute); beyond that the ones
//! expiring first are forgotten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::users::Role;

/// The claims of a token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// Issues and checks tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime_s: u64,
    /// jti → exp of revoked tokens.
    revoked: Mutex<HashMap<String, u64>>,
    /// Where the revocation list is kept (None: memory only).
    file: Option<PathBuf>,
}

/// Revoked tokens remembered at most.
pub const MAX_REVOKED: usize = 65_536;

/// File name of the persisted revocation list inside the data folder.
pub const REVOKED_FILE: &str = "ops-revoked.json";

/// Why a token was refused (the client sees only "invalid or expired token").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Invalid(String),
    Expired,
    Revoked,
}

impl TokenError {
    pub fn message(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::Invalid(_) => "invalid token",
            TokenError::Expired => "token expired",
            TokenError::Revoked => "token revoked",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tokens {
    pub fn new(key: &Zeroizing<Vec<u8>>, issuer: &str, audience: &str, lifetime_s: u64) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub", "jti"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        Tokens {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            lifetime_s,
            revoked: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    /// Keeps the revocation list in `path`: loads what it holds (entries expired at `now_s`
    /// are dropped; an unreadable file is an error, not an empty list) and rewrites it on
    /// every revocation.
    pub fn persisted(mut self, path: &Path, now_s: u64) -> Result<Tokens, String> {
        let list: HashMap<String, u64> = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut revoked = list;
        revoked.retain(|_, exp| *exp > now_s);
        self.revoked = Mutex::new(revoked);
        self.file = Some(path.to_path_buf());
        Ok(self)
    }

    pub fn lifetime_s(&self) -> u64 {
        self.lifetime_s
    }

    /// A new token for `user` with `role`, issued at `now_s`.
    pub fn issue(&self, user: &str, role: Role, now_s: u64) -> Result<(String, Claims), String> {
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id).map_err(|e| format!("no randomness: {e}"))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            role,
            iat: now_s,
            exp: now_s + self.lifetime_s,
            jti: crate::tls::hex(&id),
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| format!("cannot sign a token: {e}"))?;
        Ok((t, claims))
    }

    /// Checks `token` at `now_s`: the claims of a valid, unrevoked token.
    pub fn check(&self, token: &str, now_s: u64) -> Result<Claims, TokenError> {
        // The algorithm is pinned: decode refuses any header alg but HS256 (`none` included).
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid("algorithm".into()));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                k => TokenError::Invalid(format!("{k:?}")),
            })?;
        let c = data.claims;
        // Our own clock decides too (jsonwebtoken reads the system time), and a token can
        // never claim to live longer than the configured lifetime.
        if c.exp <= now_s || c.exp.saturating_sub(c.iat) > self.lifetime_s {
            return Err(TokenError::Expired);
        }
        let mut revoked = lock(&self.revoked);
        revoked.retain(|_, exp| *exp > now_s);
        if revoked.contains_key(&c.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(c)
    }

    /// Revokes a token until its expiry (written to the file before this returns; a write
    /// error is returned, the revocation holds in memory anyway).
    pub fn revoke(&self, c: &Claims) -> Result<(), String> {
        let mut revoked = lock(&self.revoked);
        revoked.insert(c.jti.clone(), c.exp);
        if revoked.len() > MAX_REVOKED {
            let now_s = crate::clock::system_utc().0 / 1_000_000_000;
            revoked.retain(|_, exp| *exp > now_s);
            while revoked.len() > MAX_REVOKED {
                let Some(first) = revoked
                    .iter()
                    .min_by_key(|(_, exp)| **exp)
                    .map(|(j, _)| j.clone())
                else {
                    break;
                };
                revoked.remove(&first);
            }
        }
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text = serde_json::to_vec(&*revoked).map_err(|e| e.to_string())?;
        crate::files::replace_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn tokens() -> Tokens {
        Tokens::new(&Zeroizing::new(vec![7u8; 32]), "portcullis", "ops", 900)
    }

    fn now() -> u64 {
        crate::clock::system_utc().0 / 1_000_000_000
    }

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn issued_token_checks_and_revocation_sticks() {
        let t = tokens();
        let (tok, c) = t.issue("alice", Role::RiskOfficer, now()).unwrap();
        assert_eq!(t.check(&tok, now()).unwrap(), c);
        assert_eq!(c.exp - c.iat, 900);
        t.revoke(&c).unwrap();
        assert_eq!(t.check(&tok, now()), Err(TokenError::Revoked));
    }

    #[test]
    fn a_persisted_revocation_survives_a_new_instance_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REVOKED_FILE);
        let t = tokens().persisted(&path, now()).unwrap();
        let (tok, c) = t.issue("alice", Role::Admin, now()).unwrap();
        t.revoke(&c).unwrap();
        let (old, oc) = t.issue("bob", Role::Admin, now() - 890).unwrap();
        t.revoke(&oc).unwrap();
        let again = tokens().persisted(&path, now()).unwrap();
        assert_eq!(again.check(&tok, now()), Err(TokenError::Revoked));
        // Read 20 s later, bob's entry (expired) is gone from memory.
        let later = tokens().persisted(&path, now() + 20).unwrap();
        assert_eq!(lock(&later.revoked).len(), 1);
        assert!(again.check(&old, now()).is_err());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"not json").unwrap();
        assert!(
            tokens().persisted(&path, now()).is_err(),
            "refused, not emptied"
        );
    }

    #[test]
    fn refuses_none_other_algorithms_bad_signatures_and_wrong_audience() {
        let t = tokens();
        let (tok, c) = t.issue("alice", Role::Admin, now()).unwrap();
        let parts: Vec<&str> = tok.split('.').collect();
        let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert!(t.check(&none, now()).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &c,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(t.check(&hs512, now()).is_err());
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(&[8u8; 32]),
        )
        .unwrap();
        assert!(matches!(
            t.check(&forged, now()),
            Err(TokenError::Invalid(_))
        ));
        let other = Tokens::new(
            &Zeroizing::new(vec![7u8; 32]),
            "portcullis",
            "elsewhere",
            900,
        );
        let (tok2, _) = other.issue("alice", Role::Admin, now()).unwrap();
        assert!(matches!(t.check(&tok2, now()), Err(TokenError::Invalid(_))));
        let (old, _) = t.issue("alice", Role::Admin, now() - 1000).unwrap();
        assert_eq!(t.check(&old, now()), Err(TokenError::Expired));
        assert_eq!(t.check("garbage", now()), Err(TokenError::Malformed));
    }
}
