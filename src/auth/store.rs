//! COLD — the encrypted key store: one file holding every API key.
//!
//! Envelope encryption: a fresh random 256-bit data key encrypts the key file (TOML) with
//! AES-256-GCM; the master key (see [`provider`](super::provider)) wraps the data key. The
//! header is authenticated data, so any change to any byte of the file is detected.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PCKEYS01"
//! 8       1     provider (1 file, 2 env, 3 pkcs11)
//! 9       2     wrapped data key length W (little endian)
//! 11      W     wrapped data key (nonce 12 ‖ ciphertext 32 ‖ tag 16)
//! 11+W    12    nonce of the store
//! 23+W    ..    AES-256-GCM(data key, TOML key file) ‖ tag 16; AAD = bytes 0..11+W
//! ```
//!
//! Writes go to a temporary file (0600), are fsynced and renamed over the store: a reader
//! (the gateway's watcher) sees the old or the new file, never half of one.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::keys::KeyFile;
use super::provider::{DataKey, MasterKey, ProviderCfg};

const MAGIC: &[u8; 8] = b"PCKEYS01";

/// An opened key store: the file and its master key.
pub struct KeyStore {
    pub path: PathBuf,
    provider: ProviderCfg,
    master: MasterKey,
}

impl KeyStore {
    /// Opens the master key. `create`: generate a missing dev master key / HSM key.
    pub fn open(path: &Path, provider: &ProviderCfg, create: bool) -> Result<KeyStore, String> {
        Ok(KeyStore {
            path: path.to_path_buf(),
            provider: provider.clone(),
            master: MasterKey::open(provider, create)?,
        })
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Reads and decrypts the store. Errors say what is wrong and never include key material.
    pub fn load(&self) -> Result<KeyFile, String> {
        let bytes = std::fs::read(&self.path)
            .map_err(|e| format!("key store {}: cannot read: {e}", self.path.display()))?;
        self.decrypt(&bytes)
            .map_err(|e| format!("key store {}: {e}", self.path.display()))
    }

    fn decrypt(&self, bytes: &[u8]) -> Result<KeyFile, String> {
        const TAMPERED: &str = "integrity check failed: the file was modified or corrupted \
                                (refusing to use it)";
        if bytes.len() < 11 || bytes.get(..8) != Some(&MAGIC[..]) {
            return Err("not a Portcullis key store (bad magic)".into());
        }
        let tag = bytes[8];
        if tag != self.provider.tag() {
            return Err(format!(
                "written with master key provider {:?}, but the config names {:?}",
                ProviderCfg::name_of(tag),
                ProviderCfg::name_of(self.provider.tag())
            ));
        }
        let w = usize::from(u16::from_le_bytes([bytes[9], bytes[10]]));
        let header_end = 11 + w;
        let (Some(header), Some(wrapped), Some(nonce), Some(ct)) = (
            bytes.get(..header_end),
            bytes.get(11..header_end),
            bytes.get(header_end..header_end + 12),
            bytes.get(header_end + 12..),
        ) else {
            return Err(TAMPERED.into());
        };
        let dk = self.master.unwrap(wrapped)?;
        let pt = Zeroizing::new(
            Aes256Gcm::new_from_slice(&dk[..])
                .map_err(|_| TAMPERED.to_string())?
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: header,
                    },
                )
                .map_err(|_| TAMPERED.to_string())?,
        );
        let text = std::str::from_utf8(&pt).map_err(|_| TAMPERED.to_string())?;
        // The TOML error could quote a secret: report only where it is.
        toml::from_str::<KeyFile>(text).map_err(|e| {
            format!(
                "decrypted content is not a valid key file (at byte {:?})",
                e.span().map(|s| s.start)
            )
        })
    }

    /// Encrypts `file` under a fresh data key and replaces the store atomically.
    pub fn save(&self, file: &KeyFile) -> Result<(), String> {
        let text = Zeroizing::new(
            toml::to_string(file).map_err(|e| format!("cannot serialise the key file: {e}"))?,
        );
        let mut dk: DataKey = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut dk[..]).map_err(|e| format!("no randomness: {e}"))?;
        getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let wrapped = self.master.wrap(&dk)?;
        let w = u16::try_from(wrapped.len()).map_err(|_| "wrapped data key too long")?;
        let mut out = Vec::with_capacity(text.len() + 128);
        out.extend_from_slice(MAGIC);
        out.push(self.provider.tag());
        out.extend_from_slice(&w.to_le_bytes());
        out.extend_from_slice(&wrapped);
        let header_len = out.len();
        let ct = Aes256Gcm::new_from_slice(&dk[..])
            .map_err(|_| "data key length".to_string())?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &out[..header_len],
                },
            )
            .map_err(|_| "cannot encrypt the key store".to_string())?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        write_private(&self.path, &out)
            .map_err(|e| format!("key store {}: cannot write: {e}", self.path.display()))
    }
}

/// Writes `bytes` to `path` with mode 0600 through a unique temporary file, fsync and rename
/// (see [`crate::files::write_private`]).
pub use crate::files::write_private;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeyRecord, KeySnapshot, SecretRecord, Status};

    fn file_with_key() -> KeyFile {
        KeyFile {
            address_unlock_gen: 0,
            keys: vec![KeyRecord {
                id: "k1".into(),
                secrets: vec![SecretRecord {
                    secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==".into(),
                    not_after_ms: None,
                }],
                role: "trader".into(),
                scopes: vec![],
                comp_ids: vec!["CLIENT1".into()],
                accounts: vec!["ACC1".into()],
                symbols: vec![],
                allow: vec!["127.0.0.1".into()],
                tier: None,
                expires_ms: None,
                status: Status::Active,
                unlock_gen: 0,
                created_ms: 1,
            }],
        }
    }

    #[test]
    fn round_trips_and_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProviderCfg::File {
            path: dir.path().join("master.key"),
        };
        let store = KeyStore::open(&dir.path().join("keys.store"), &p, true).unwrap();
        store.save(&file_with_key()).unwrap();
        let raw = std::fs::read(&store.path).unwrap();
        let needle = b"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ";
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
        assert!(!raw.windows(4).any(|w| w == b"ACC1"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = store.load().unwrap();
        let snap = KeySnapshot::build(&back).unwrap();
        assert!(snap.get(b"k1").is_some());
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = ProviderCfg::File {
            path: dir.path().join("master.key"),
        };
        let store = KeyStore::open(&dir.path().join("keys.store"), &p, true).unwrap();
        store.save(&file_with_key()).unwrap();
        let good = std::fs::read(&store.path).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&store.path, &bad).unwrap();
            assert!(store.load().is_err(), "byte {i} flipped went unnoticed");
        }
        // Another master key cannot open it.
        std::fs::write(&store.path, &good).unwrap();
        let other = ProviderCfg::File {
            path: dir.path().join("other.key"),
        };
        let e = KeyStore::open(&store.path, &other, true)
            .unwrap()
            .load()
            .err()
            .unwrap();
        assert!(e.contains("does not unwrap"), "{e}");
    }
}
