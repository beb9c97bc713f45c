//! COLD — the encrypted key store: one file holding every API key.
//!
//! Envelope encryption: a fresh random 256-bit data key encrypts the key file (TOML) with
//! AES-256-GCM; the master key (see [`provider`](super::provider)) wraps the data key. The
//! header is authenticated data, so any change to any byte of the file is detected.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PCKEYS02"
//! 8       1     provider (1 file, 2 env, 3 pkcs11)
//! 9       8     generation G (little endian): bumped by every write
//! 17      2     wrapped data key length W (little endian)
//! 19      W     wrapped data key (nonce 12 ‖ ciphertext 32 ‖ tag 16)
//! 19+W    12    nonce of the store
//! 31+W    ..    AES-256-GCM(data key, TOML key file) ‖ tag 16; AAD = bytes 0..19+W
//! ```
//!
//! The first format, "PCKEYS01", has no generation field (provider, then W at offset 9): it
//! loads as generation 0 and is rewritten in the current format by the next write.
//!
//! # Rollback
//! The generation is authenticated (it is in the AAD): it cannot be changed without the master
//! key. A process refuses a store whose generation is older than the newest it has seen: an
//! old copy of the file put back (a restored backup, an attacker's copy) would otherwise revive
//! revoked keys and old secrets. "Newest seen" is this process's memory (the gateway's watcher)
//! and the mark file `<store>.generation` beside the store (0600, the decimal generation), which
//! every load and write raises and never lowers, so the refusal survives a restart and holds
//! for the `keys` commands too. A missing mark (deleted, or a store from before marks) accepts
//! the store as it is and writes the mark again, with a warning on stderr: deleting the mark is
//! how an operator restores an old store on purpose. An attacker who can write the store's
//! folder can also rewind the mark; the mark protects against a store put back alone, and a
//! running gateway never goes back whatever the files say.
//!
//! # Writes
//! Writes go to a unique temporary file (0600), are fsynced and renamed over the store: a
//! reader (the gateway's watcher) sees the old or the new file, never half of one. `portcullis
//! keys` holds [`KeyStore::lock`] (an exclusive `flock` on `<store>.lock`) around each
//! read-modify-write, so concurrent commands never lose each other's changes.
//!
//! # Permissions
//! The store, and a file master key, are refused when group or others may access them or
//! another user owns them (the error names the file and the `chmod` that fixes it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::keys::KeyFile;
use super::provider::{DataKey, MasterKey, ProviderCfg};

/// The first format: no generation.
const MAGIC_V1: &[u8; 8] = b"PCKEYS01";
const MAGIC: &[u8; 8] = b"PCKEYS02";

/// Cause of a refused store: older than the newest generation already seen.
pub const CAUSE_ROLLBACK: &str = "older generation than already seen (rollback)";
/// Cause of a refused store: group or others may access it.
pub const CAUSE_EXPOSED: &str = "file open to group or others";
/// Cause of a refused store: unreadable, tampered, wrong master key or invalid content.
pub const CAUSE_INVALID: &str = "unreadable, tampered or invalid";

/// Why a store was not loaded: a fixed `cause` (for the event stream) and a message naming the
/// file and what to do. Never contains key material.
#[derive(Debug)]
pub struct StoreError {
    pub cause: &'static str,
    /// The refused store's generation (rollback only).
    pub generation: Option<u64>,
    /// The newest generation seen before (rollback only).
    pub newest: u64,
    pub message: String,
}

impl StoreError {
    /// A store that cannot be used as it is (unreadable, tampered, invalid content).
    pub fn invalid(message: String) -> StoreError {
        StoreError {
            cause: CAUSE_INVALID,
            generation: None,
            newest: 0,
            message,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for String {
    fn from(e: StoreError) -> String {
        e.message
    }
}

/// An opened key store: the file and its master key.
pub struct KeyStore {
    pub path: PathBuf,
    provider: ProviderCfg,
    master: MasterKey,
    /// The newest generation this process has loaded or written.
    newest: AtomicU64,
}

impl KeyStore {
    /// Opens the master key. `create`: generate a missing dev master key / HSM key. An
    /// existing store open to group or others is refused here already.
    pub fn open(path: &Path, provider: &ProviderCfg, create: bool) -> Result<KeyStore, String> {
        crate::files::check_secret_file(path, "key store")?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            provider: provider.clone(),
            master: MasterKey::open(provider, create)?,
            newest: AtomicU64::new(0),
        })
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The newest generation this process has loaded or written (0: none yet).
    pub fn generation(&self) -> u64 {
        self.newest.load(Ordering::Relaxed)
    }

    /// `<store>.generation`: the newest generation seen, kept across restarts.
    pub fn mark_path(&self) -> PathBuf {
        sibling(&self.path, ".generation")
    }

    /// `<store>.lock`: the file `portcullis keys` locks around a read-modify-write.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// Waits for the exclusive lock on the store (held until the [`crate::files::Lock`] is
    /// dropped). Every read-modify-write of the store takes it.
    pub fn lock(&self) -> Result<crate::files::Lock, String> {
        let p = self.lock_path();
        crate::files::Lock::exclusive(&p).map_err(|e| format!("key store lock: {e}"))
    }

    /// The generation in the mark file; `None` when there is no mark.
    fn read_mark(&self) -> Result<Option<u64>, StoreError> {
        let p = self.mark_path();
        match std::fs::read_to_string(&p) {
            Ok(t) => t.trim().parse().map(Some).map_err(|_| {
                StoreError::invalid(format!(
                    "key store generation mark {}: not a number (delete it to accept the \
                     current key store as the newest)",
                    p.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::invalid(format!(
                "key store generation mark {}: {e}",
                p.display()
            ))),
        }
    }

    /// Raises the mark to `generation` (never lowers it). Serialised with other processes by a
    /// lock on the store's folder; a failure is reported, not fatal (this process still
    /// refuses older stores from memory).
    fn raise_mark(&self, generation: u64) {
        let p = self.mark_path();
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let raised = std::fs::File::open(dir)
            .and_then(|d| crate::files::Lock::on(d, dir))
            .map_err(|e| e.to_string())
            .and_then(|_lock| {
                let current = self.read_mark().ok().flatten().unwrap_or(0);
                if current >= generation {
                    return Ok(());
                }
                crate::files::write_private(&p, format!("{generation}\n").as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = raised {
            crate::say_err(format_args!(
                "portcullis: WARNING: key store generation mark {} not updated to {generation}: \
                 {e} (a restart could then accept an older store)",
                p.display()
            ));
        }
    }

    /// Reads and decrypts the store; refuses it when its generation is older than the newest
    /// seen (see "Rollback"). Errors say what is wrong and never include key material.
    pub fn load(&self) -> Result<KeyFile, StoreError> {
        crate::files::check_secret_file(&self.path, "key store").map_err(|message| StoreError {
            cause: CAUSE_EXPOSED,
            generation: None,
            newest: 0,
            message,
        })?;
        let bytes = std::fs::read(&self.path).map_err(|e| {
            StoreError::invalid(format!(
                "key store {}: cannot read: {e}",
                self.path.display()
            ))
        })?;
        let (file, generation) = self
            .decrypt(&bytes)
            .map_err(|e| StoreError::invalid(format!("key store {}: {e}", self.path.display())))?;
        let mark = self.read_mark()?;
        let newest = self.generation().max(mark.unwrap_or(0));
        if generation < newest {
            return Err(StoreError {
                cause: CAUSE_ROLLBACK,
                generation: Some(generation),
                newest,
                message: format!(
                    "key store {}: generation {generation} is older than generation {newest} \
                     already seen (mark {}): an old copy of the store was put back, which would \
                     revive revoked keys and old secrets; refusing it. To restore an old store on \
                     purpose, delete the mark file",
                    self.path.display(),
                    self.mark_path().display()
                ),
            });
        }
        if mark.is_none() && generation > 0 && self.generation() == 0 {
            crate::say_err(format_args!(
                "portcullis: WARNING: key store generation mark {} is missing: accepting the \
                 store's generation {generation} as the newest",
                self.mark_path().display()
            ));
        }
        self.newest.fetch_max(generation, Ordering::Relaxed);
        if mark.is_none_or(|m| m < generation) {
            self.raise_mark(generation);
        }
        Ok(file)
    }

    /// Authenticates and decrypts a store image: the key file and its generation.
    fn decrypt(&self, bytes: &[u8]) -> Result<(KeyFile, u64), String> {
        const TAMPERED: &str = "integrity check failed: the file was modified or corrupted \
                                (refusing to use it)";
        // (generation, offset of W): the first format has no generation field.
        let (generation, w_at) = match bytes.get(..8) {
            Some(m) if m == &MAGIC[..] => {
                let mut g = [0u8; 8];
                g.copy_from_slice(bytes.get(9..17).ok_or(TAMPERED)?);
                (u64::from_le_bytes(g), 17)
            }
            Some(m) if m == &MAGIC_V1[..] => (0, 9),
            _ => return Err("not a Portcullis key store (bad magic)".into()),
        };
        let tag = *bytes.get(8).ok_or(TAMPERED)?;
        if tag != self.provider.tag() {
            return Err(format!(
                "written with master key provider {:?}, but the config names {:?}",
                ProviderCfg::name_of(tag),
                ProviderCfg::name_of(self.provider.tag())
            ));
        }
        let w = match bytes.get(w_at..w_at + 2) {
            Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
            _ => return Err(TAMPERED.into()),
        };
        let header_end = w_at + 2 + w;
        let (Some(header), Some(wrapped), Some(nonce), Some(ct)) = (
            bytes.get(..header_end),
            bytes.get(w_at + 2..header_end),
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
        let file = toml::from_str::<KeyFile>(text).map_err(|e| {
            format!(
                "decrypted content is not a valid key file (at byte {:?})",
                e.span().map(|s| s.start)
            )
        })?;
        Ok((file, generation))
    }

    /// Encrypts `file` under a fresh data key and replaces the store atomically, one generation
    /// above the newest seen (this process's and the mark's). Read-modify-write callers hold
    /// [`KeyStore::lock`].
    pub fn save(&self, file: &KeyFile) -> Result<(), String> {
        let mark = self.read_mark()?.unwrap_or(0);
        let generation = self.generation().max(mark).saturating_add(1);
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
        out.extend_from_slice(&generation.to_le_bytes());
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
            .map_err(|e| format!("key store {}: cannot write: {e}", self.path.display()))?;
        self.newest.fetch_max(generation, Ordering::Relaxed);
        self.raise_mark(generation);
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
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
                rotated_ms: None,
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
        assert!(e.message.contains("does not unwrap"), "{e}");
    }

    fn open_in(dir: &Path) -> KeyStore {
        let p = ProviderCfg::File {
            path: dir.join("master.key"),
        };
        KeyStore::open(&dir.join("keys.store"), &p, true).unwrap()
    }

    fn generation_on_disk(path: &Path) -> u64 {
        let b = std::fs::read(path).unwrap();
        assert_eq!(&b[..8], MAGIC);
        u64::from_le_bytes(b[9..17].try_into().unwrap())
    }

    /// The first format ("PCKEYS01", no generation), as the previous version wrote it.
    fn save_v1(store: &KeyStore, file: &KeyFile) {
        let text = toml::to_string(file).unwrap();
        let dk: DataKey = Zeroizing::new([7u8; 32]);
        let nonce = [9u8; 12];
        let wrapped = store.master.wrap(&dk).unwrap();
        let mut out = MAGIC_V1.to_vec();
        out.push(1);
        out.extend_from_slice(&(wrapped.len() as u16).to_le_bytes());
        out.extend_from_slice(&wrapped);
        let header_len = out.len();
        let ct = Aes256Gcm::new_from_slice(&dk[..])
            .unwrap()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &out[..header_len],
                },
            )
            .unwrap();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        write_private(&store.path, &out).unwrap();
    }

    #[test]
    fn every_write_bumps_the_authenticated_generation_and_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        store.save(&file_with_key()).unwrap();
        assert_eq!(generation_on_disk(&store.path), 1);
        store.save(&file_with_key()).unwrap();
        assert_eq!(generation_on_disk(&store.path), 2);
        let mark = std::fs::read_to_string(store.mark_path()).unwrap();
        assert_eq!(mark.trim(), "2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.mark_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A fresh process (the CLI, a restart) continues from the mark.
        let other = open_in(dir.path());
        other.load().unwrap();
        assert_eq!(other.generation(), 2);
        other.save(&file_with_key()).unwrap();
        assert_eq!(generation_on_disk(&other.path), 3);
    }

    #[test]
    fn an_old_copy_put_back_is_refused_by_the_running_process_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        store.save(&file_with_key()).unwrap();
        let old = std::fs::read(&store.path).unwrap();
        let mut revoked = file_with_key();
        revoked.keys[0].status = Status::Revoked;
        store.save(&revoked).unwrap();
        std::fs::write(&store.path, &old).unwrap();
        let e = store.load().err().unwrap();
        assert_eq!(e.cause, CAUSE_ROLLBACK);
        assert_eq!((e.generation, e.newest), (Some(1), 2));
        assert!(e.message.contains("keys.store.generation"), "{e}");
        // Restart: the mark remembers.
        let e = open_in(dir.path()).load().err().unwrap();
        assert_eq!(e.cause, CAUSE_ROLLBACK);
        // Even without the mark the running process remembers.
        std::fs::remove_file(store.mark_path()).unwrap();
        assert_eq!(store.load().err().unwrap().cause, CAUSE_ROLLBACK);
        // Deleting the mark is how an operator accepts an old store on purpose (restart).
        let restarted = open_in(dir.path());
        restarted.load().unwrap();
        assert_eq!(
            std::fs::read_to_string(store.mark_path()).unwrap().trim(),
            "1"
        );
    }

    #[test]
    fn a_store_of_the_first_format_loads_as_generation_zero_and_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        save_v1(&store, &file_with_key());
        let back = store.load().unwrap();
        assert_eq!(back.keys.len(), 1);
        assert_eq!(store.generation(), 0);
        store.save(&back).unwrap();
        assert_eq!(generation_on_disk(&store.path), 1);
        // The old-format file is now a rollback.
        save_v1(&store, &file_with_key());
        assert_eq!(store.load().err().unwrap().cause, CAUSE_ROLLBACK);
    }

    #[test]
    fn a_store_or_master_key_open_to_others_is_refused_naming_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        store.save(&file_with_key()).unwrap();
        let loose = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&store.path, loose.clone()).unwrap();
        let e = store.load().err().unwrap();
        assert_eq!(e.cause, CAUSE_EXPOSED);
        assert!(
            e.message.contains("chmod 600") && e.message.contains("keys.store"),
            "{e}"
        );
        let p = ProviderCfg::File {
            path: dir.path().join("master.key"),
        };
        let e = KeyStore::open(&store.path, &p, false).err().unwrap();
        assert!(e.contains("keys.store"), "{e}");
        std::fs::set_permissions(&store.path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path().join("master.key"), loose).unwrap();
        let e = KeyStore::open(&store.path, &p, false).err().unwrap();
        assert!(
            e.contains("master key file") && e.contains("chmod 600"),
            "{e}"
        );
    }
}
