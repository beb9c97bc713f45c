//! COLD — master-key providers: they wrap and unwrap the key store's data key.
//!
//! - `pkcs11`: an AES-256 key generated inside an HSM token (CKA_EXTRACTABLE=false,
//!   CKA_SENSITIVE=true); the data key is wrapped with AES-GCM *by the token* (C_Encrypt /
//!   C_Decrypt), so the master key never exists in our memory. Tested against SoftHSM2.
//! - `file`: base64 of 32 bytes in a file (mode 0600; refused if group or others may access it
//!   or another user owns it). Development only.
//! - `env`: base64 of 32 bytes in an environment variable. Development only.
//!
//! Wrapped data key layout (file/env): nonce (12) ‖ AES-256-GCM(master, data key) with the
//! 16-byte tag; pkcs11 uses the same layout, the encryption done by the token.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use zeroize::Zeroizing;

/// Authenticated data bound to every wrapped data key.
const WRAP_AAD: &[u8] = b"portcullis key store data key v1";

/// Where the master key comes from (the `[auth.master_key]` config section).
#[derive(Clone, Debug)]
pub enum ProviderCfg {
    File {
        path: PathBuf,
    },
    Env {
        var: String,
    },
    Pkcs11 {
        module: PathBuf,
        token_label: String,
        /// Environment variable holding the user PIN.
        pin_env: String,
        key_label: String,
    },
}

impl ProviderCfg {
    /// The byte stored in the key store header.
    pub fn tag(&self) -> u8 {
        match self {
            ProviderCfg::File { .. } => 1,
            ProviderCfg::Env { .. } => 2,
            ProviderCfg::Pkcs11 { .. } => 3,
        }
    }
    pub fn name_of(tag: u8) -> &'static str {
        match tag {
            1 => "file",
            2 => "env",
            3 => "pkcs11",
            _ => "unknown",
        }
    }
    /// Development-only providers (`portcullis run` warns loudly).
    pub fn is_development(&self) -> bool {
        !matches!(self, ProviderCfg::Pkcs11 { .. })
    }
}

/// A 32-byte data key.
pub type DataKey = Zeroizing<[u8; 32]>;

/// An opened master key.
pub enum MasterKey {
    Local(Zeroizing<[u8; 32]>),
    Pkcs11(Box<hsm::Token>),
}

impl MasterKey {
    /// Opens the provider. `create`: a missing file master key or HSM key is generated.
    pub fn open(cfg: &ProviderCfg, create: bool) -> Result<MasterKey, String> {
        match cfg {
            ProviderCfg::File { path } => {
                if !path.exists() && create {
                    create_key_file(path)?;
                }
                // Like ssh with a private key: group- or world-accessible is refused.
                crate::files::check_secret_file(path, "master key file")?;
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    format!("master key file {}: cannot read: {e}", path.display())
                })?);
                decode_key(text.trim())
                    .map(MasterKey::Local)
                    .map_err(|e| format!("master key file {}: {e}", path.display()))
            }
            ProviderCfg::Env { var } => {
                let v =
                    Zeroizing::new(std::env::var(var).map_err(|_| {
                        format!("master key: environment variable {var} is not set")
                    })?);
                decode_key(v.trim())
                    .map(MasterKey::Local)
                    .map_err(|e| format!("master key variable {var}: {e}"))
            }
            ProviderCfg::Pkcs11 {
                module,
                token_label,
                pin_env,
                key_label,
            } => hsm::Token::open(module, token_label, pin_env, key_label, create)
                .map(|t| MasterKey::Pkcs11(Box::new(t))),
        }
    }

    pub fn wrap(&self, dk: &DataKey) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let ct = match self {
            MasterKey::Local(k) => Aes256Gcm::new_from_slice(&k[..])
                .map_err(|_| "master key length".to_string())?
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &dk[..],
                        aad: WRAP_AAD,
                    },
                )
                .map_err(|_| "cannot wrap the data key".to_string())?,
            MasterKey::Pkcs11(t) => t.encrypt(&nonce, WRAP_AAD, &dk[..])?,
        };
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn unwrap(&self, wrapped: &[u8]) -> Result<DataKey, String> {
        const WRONG: &str = "the data key does not unwrap with this master key (wrong master key, \
                             or the store file was tampered with)";
        if wrapped.len() < 12 + 16 {
            return Err(WRONG.into());
        }
        let (nonce, ct) = wrapped.split_at(12);
        let pt = Zeroizing::new(match self {
            MasterKey::Local(k) => Aes256Gcm::new_from_slice(&k[..])
                .map_err(|_| "master key length".to_string())?
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: WRAP_AAD,
                    },
                )
                .map_err(|_| WRONG.to_string())?,
            MasterKey::Pkcs11(t) => t.decrypt(nonce, WRAP_AAD, ct).map_err(|_| WRONG)?,
        });
        let mut dk = Zeroizing::new([0u8; 32]);
        if pt.len() != 32 {
            return Err(WRONG.into());
        }
        dk.copy_from_slice(&pt);
        Ok(dk)
    }
}

fn decode_key(b64: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let v = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "not base64".to_string())?,
    );
    if v.len() != 32 {
        return Err(format!(
            "must be base64 of 32 bytes (AES-256), got {} bytes",
            v.len()
        ));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&v);
    Ok(k)
}

/// Writes a new random master key file (0600).
pub fn create_key_file(path: &Path) -> Result<(), String> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut k[..]).map_err(|e| format!("no randomness: {e}"))?;
    let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&k[..]));
    super::store::write_private(path, text.as_bytes())
        .map_err(|e| format!("master key file {}: {e}", path.display()))
}

/// PKCS#11 through `cryptoki`.
pub mod hsm {
    use std::path::Path;

    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::mechanism::aead::GcmParams;
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
    use cryptoki::session::{Session, UserType};
    use cryptoki::types::AuthPin;

    /// A logged-in session on the token and the handle of the master key inside it.
    pub struct Token {
        session: Session,
        key: ObjectHandle,
        // Kept alive for the session (finalized on drop).
        _ctx: Pkcs11,
    }

    fn err(what: &str, e: impl std::fmt::Display) -> String {
        format!("pkcs11: {what}: {e}")
    }

    impl Token {
        pub fn open(
            module: &Path,
            token_label: &str,
            pin_env: &str,
            key_label: &str,
            create: bool,
        ) -> Result<Token, String> {
            let ctx = Pkcs11::new(module)
                .map_err(|e| err(&format!("cannot load module {}", module.display()), e))?;
            ctx.initialize(CInitializeArgs::OsThreads)
                .map_err(|e| err("C_Initialize", e))?;
            let mut found = None;
            for slot in ctx
                .get_slots_with_token()
                .map_err(|e| err("C_GetSlotList", e))?
            {
                let info = ctx
                    .get_token_info(slot)
                    .map_err(|e| err("C_GetTokenInfo", e))?;
                if info.label().trim_end() == token_label {
                    found = Some(slot);
                    break;
                }
            }
            let slot = found.ok_or_else(|| format!("pkcs11: no token labelled {token_label:?}"))?;
            let pin = std::env::var(pin_env).map_err(|_| {
                format!("pkcs11: environment variable {pin_env} (the PIN) is not set")
            })?;
            let session = ctx
                .open_rw_session(slot)
                .map_err(|e| err("C_OpenSession", e))?;
            session
                .login(UserType::User, Some(&AuthPin::new(pin)))
                .map_err(|e| err("C_Login", e))?;
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(key_label.as_bytes().to_vec()),
            ];
            let existing = session
                .find_objects(&template)
                .map_err(|e| err("C_FindObjects", e))?;
            let key = match existing.first() {
                Some(k) => *k,
                None if create => session
                    .generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::ValueLen(32.into()),
                            Attribute::Token(true),
                            Attribute::Private(true),
                            Attribute::Sensitive(true),
                            Attribute::Extractable(false),
                            Attribute::Encrypt(true),
                            Attribute::Decrypt(true),
                            Attribute::Label(key_label.as_bytes().to_vec()),
                        ],
                    )
                    .map_err(|e| err("C_GenerateKey (AES-256 master key)", e))?,
                None => {
                    return Err(format!(
                        "pkcs11: no key labelled {key_label:?} in token {token_label:?}"
                    ))
                }
            };
            Ok(Token {
                session,
                key,
                _ctx: ctx,
            })
        }

        /// The master key's CKA_EXTRACTABLE and CKA_SENSITIVE attributes.
        pub fn key_protection(&self) -> Result<(bool, bool), String> {
            let attrs = self
                .session
                .get_attributes(
                    self.key,
                    &[AttributeType::Extractable, AttributeType::Sensitive],
                )
                .map_err(|e| err("C_GetAttributeValue", e))?;
            let mut extractable = true;
            let mut sensitive = false;
            for a in attrs {
                match a {
                    Attribute::Extractable(v) => extractable = v,
                    Attribute::Sensitive(v) => sensitive = v,
                    _ => {}
                }
            }
            Ok((extractable, sensitive))
        }

        pub fn encrypt(&self, nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
            let params = GcmParams::new(nonce, aad, 128.into());
            self.session
                .encrypt(&Mechanism::AesGcm(params), self.key, data)
                .map_err(|e| err("C_Encrypt", e))
        }

        pub fn decrypt(&self, nonce: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
            let params = GcmParams::new(nonce, aad, 128.into());
            self.session
                .decrypt(&Mechanism::AesGcm(params), self.key, data)
                .map_err(|e| err("C_Decrypt", e))
        }
    }
}
