//! COLD — the checkpoint signing key: Ed25519, its 32-byte seed kept like the key store's data
//! key — wrapped by the master key ([`MasterKey::wrap`]: a PKCS#11 HSM in production, a dev
//! file otherwise) in `<data_dir>/secrets/audit-signing.key` (0600) — and its public half
//! pinned (`<data_dir>/secrets/audit-signing.pub`, and `audit.public_key` in the config), so
//! `portcullis audit verify` needs no secret and someone who rewrites the trail files cannot
//! re-sign them.
//!
//! Why a signature rather than an HMAC: verification needs only the public key, so an auditor,
//! the SIEM or a third party verifies without being able to forge; an HMAC key would have to be
//! handed to every verifier, and each of them could then rewrite the trail.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

use super::chain::{checkpoint_message, from_hex, hex};
use crate::auth::provider::{MasterKey, ProviderCfg};

/// Folder of the wrapped key and the public key, under the data folder.
pub const SECRETS_DIR: &str = "secrets";
/// The wrapped seed (base64 of nonce ‖ AES-256-GCM(master, seed) ‖ tag).
pub const KEY_FILE: &str = "audit-signing.key";
/// The public key, hex (also printed at start; pin it in `audit.public_key`).
pub const PUB_FILE: &str = "audit-signing.pub";
/// The development master key used when the config has no `[auth]` (no key store master key).
pub const DEV_MASTER_FILE: &str = "audit-master.key";

/// An Ed25519 public key (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// From 64 hex digits (the `.pub` file, `audit.public_key`, `--public-key`).
    pub fn parse(text: &str) -> Option<PublicKey> {
        from_hex(text.trim())?.try_into().ok().map(PublicKey)
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// A short name of the key in checkpoints: the first 8 bytes of its SHA-256, hex.
    pub fn id(&self) -> String {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(self.0)[..8])
    }

    /// Whether `sig` signs the chain head `head` at `head_seq`.
    pub fn verifies(&self, head_seq: u64, head: &[u8; 32], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&checkpoint_message(head_seq, head), sig)
            .is_ok()
    }
}

/// The private signing key (in memory only while the trail writer runs).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

/// Never prints the key: only its public half.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public.hex())
    }
}

impl SigningKey {
    /// From a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| format!("audit signing key: {e}"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningKey {
            pair,
            public: PublicKey(public),
        })
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The checkpoint signature of the head `head` at `head_seq`.
    pub fn sign(&self, head_seq: u64, head: &[u8; 32]) -> Vec<u8> {
        self.pair
            .sign(&checkpoint_message(head_seq, head))
            .as_ref()
            .to_vec()
    }

    /// Opens (or, the first time, creates) the signing key of `data_dir`, wrapped by the master
    /// key of `provider` (`None`: a development master key file in `<data_dir>/secrets/`).
    /// `pinned`: the public key the config expects; a different one, or a missing key file
    /// while one is pinned, is refused (a new key would let whoever deleted the old one sign).
    pub fn open(
        data_dir: &Path,
        provider: Option<ProviderCfg>,
        pinned: Option<PublicKey>,
    ) -> Result<SigningKey, String> {
        let dir = data_dir.join(SECRETS_DIR);
        crate::files::private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let provider = provider.unwrap_or_else(|| ProviderCfg::File {
            path: dir.join(DEV_MASTER_FILE),
        });
        let key_path = dir.join(KEY_FILE);
        let create = !key_path.exists();
        if create {
            if let Some(p) = pinned {
                return Err(format!(
                    "{} is missing but audit.public_key pins {}: restore the key file (a new \
                     key would not match the trail's earlier checkpoints)",
                    key_path.display(),
                    p.hex()
                ));
            }
        }
        let master = MasterKey::open(&provider, matches!(provider, ProviderCfg::File { .. }))
            .map_err(|e| format!("audit signing key: master key: {e}"))?;
        let seed = if create {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(&mut seed[..]).map_err(|e| format!("no randomness: {e}"))?;
            let wrapped = master.wrap(&seed)?;
            let text = base64::engine::general_purpose::STANDARD.encode(wrapped);
            crate::files::write_private(&key_path, text.as_bytes())
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            seed
        } else {
            crate::files::check_secret_file(&key_path, "audit signing key")?;
            let text = std::fs::read_to_string(&key_path)
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            let wrapped = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| format!("{}: not base64", key_path.display()))?;
            master
                .unwrap(&wrapped)
                .map_err(|e| format!("{}: {e}", key_path.display()))?
        };
        let key = SigningKey::from_seed(&seed)?;
        if let Some(p) = pinned {
            if p != key.public {
                return Err(format!(
                    "audit.public_key pins {} but {} holds the key {}",
                    p.hex(),
                    key_path.display(),
                    key.public.hex()
                ));
            }
        }
        let pub_path = dir.join(PUB_FILE);
        let text = format!("{}\n", key.public.hex());
        if std::fs::read_to_string(&pub_path).ok().as_deref() != Some(text.as_str()) {
            crate::files::replace_private(&pub_path, text.as_bytes())
                .map_err(|e| format!("{}: {e}", pub_path.display()))?;
        }
        Ok(key)
    }
}

/// `<data_dir>/secrets/audit-signing.pub`.
pub fn pub_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRETS_DIR).join(PUB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_signatures_verify_only_for_their_head_and_key() {
        let k = SigningKey::from_seed(&[7; 32]).unwrap();
        let head = [3u8; 32];
        let sig = k.sign(9, &head);
        assert!(k.public().verifies(9, &head, &sig));
        assert!(!k.public().verifies(10, &head, &sig));
        assert!(!k.public().verifies(9, &[4; 32], &sig));
        let other = SigningKey::from_seed(&[8; 32]).unwrap();
        assert!(!other.public().verifies(9, &head, &sig));
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(!k.public().verifies(9, &head, &bad));
        assert_eq!(PublicKey::parse(&k.public().hex()), Some(k.public()));
    }

    #[test]
    fn key_is_created_wrapped_then_reopened_and_a_pin_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = SigningKey::open(dir.path(), None, None).unwrap();
        let wrapped = std::fs::read_to_string(dir.path().join("secrets").join(KEY_FILE)).unwrap();
        // The seed is not on disk in clear: the file is the wrapped form (12 + 32 + 16 bytes).
        let raw = base64::engine::general_purpose::STANDARD
            .decode(wrapped.trim())
            .unwrap();
        assert_eq!(raw.len(), 60);
        let k2 = SigningKey::open(dir.path(), None, Some(k1.public())).unwrap();
        assert_eq!(k1.public(), k2.public());
        let pinned = std::fs::read_to_string(pub_path(dir.path())).unwrap();
        assert_eq!(PublicKey::parse(&pinned), Some(k1.public()));
        let wrong = PublicKey([1; 32]);
        assert!(SigningKey::open(dir.path(), None, Some(wrong))
            .unwrap_err()
            .contains("audit.public_key pins"));
        std::fs::remove_file(dir.path().join("secrets").join(KEY_FILE)).unwrap();
        assert!(SigningKey::open(dir.path(), None, Some(k1.public()))
            .unwrap_err()
            .contains("is missing"));
    }
}
