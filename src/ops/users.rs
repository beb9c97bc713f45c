//! COLD — operators of the ops port: the encrypted operator store and `portcullis users`.
//!
//! # The store
//! One file, `<data>/operators.store` (`ops.users_file`), beside the key store and under the
//! same master key, in the key store's envelope: a fresh random 256-bit data key encrypts the
//! content (JSON) with AES-256-GCM and the master key wraps the data key
//! ([`MasterKey::wrap`]); the header is authenticated data.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PCOPUSR1"
//! 8       1     provider (1 file, 2 env, 3 pkcs11)
//! 9       2     wrapped data key length W (little endian)
//! 11      W     wrapped data key (nonce 12 ‖ ciphertext 32 ‖ tag 16)
//! 11+W    12    nonce of the content
//! 23+W    ..    AES-256-GCM(data key, JSON) ‖ tag 16; AAD = bytes 0..11+W
//! ```
//!
//! A file of its own rather than a section of the key store: a login writes it (the last TOTP
//! step used), and the gateway's key watcher must not see a new key store generation for that.
//! It also holds the HMAC key that signs the port's tokens (random, 32 bytes): it never exists
//! outside the store but in the running gateway's memory.
//!
//! Each operator has a role (viewer < risk-officer < admin), an Argon2id password hash (PHC
//! string, random salt) and a TOTP secret (RFC 6238: SHA-1, 30 s, 6 digits, ±1 step). The last
//! accepted TOTP step is stored, and only a later step is accepted: a code is never accepted
//! twice, across restarts too.
//!
//! Writes hold an exclusive `flock` on `<store>.lock` around the read-modify-write and replace
//! the file atomically (temporary file, fsync, rename), like the key store.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::auth::store::KeyStore;
use crate::config::Config;

const MAGIC: &[u8; 8] = b"PCOPUSR1";
/// TOTP period, seconds (RFC 6238 default).
pub const TOTP_STEP_S: u64 = 30;
/// The issuer shown by authenticator apps.
pub const TOTP_ISSUER: &str = "Portcullis";

/// Operator roles, ordered: each includes what the one before may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    RiskOfficer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "risk-officer" => Some(Role::RiskOfficer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::RiskOfficer => "risk-officer",
            Role::Admin => "admin",
        }
    }
    /// Roles that must give a TOTP code (when `ops.mfa_required`).
    pub fn privileged(self) -> bool {
        self >= Role::RiskOfficer
    }
}

/// One operator as stored.
#[derive(Clone, Debug, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct UserRecord {
    pub name: String,
    #[zeroize(skip)]
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// TOTP secret, base32 (no padding).
    pub totp_secret: String,
    /// The last TOTP step (unix time / 30) accepted; only later steps are.
    #[serde(default)]
    pub last_totp_step: u64,
    pub created_ms: u64,
}

/// The decrypted store.
#[derive(Clone, Debug, Default, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct UserFile {
    /// Base64 of the 32-byte HMAC key that signs the port's tokens.
    pub token_key: String,
    pub users: Vec<UserRecord>,
}

impl UserFile {
    pub fn find(&self, name: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.name == name)
    }
    fn find_mut(&mut self, name: &str) -> Option<&mut UserRecord> {
        self.users.iter_mut().find(|u| u.name == name)
    }
    /// The token signing key.
    pub fn token_key(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let k = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&self.token_key)
                .map_err(|_| "operator store: token key is not base64".to_string())?,
        );
        if k.len() != 32 {
            return Err("operator store: token key is not 32 bytes".into());
        }
        Ok(k)
    }
}

/// The operator store file and the master key that opens it.
pub struct UserStore {
    pub path: PathBuf,
    keys: KeyStore,
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, String> {
    let mut b = Zeroizing::new([0u8; N]);
    getrandom::getrandom(&mut b[..]).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

impl UserStore {
    /// The operator store of `cfg` (needs `[auth]` and `[ops]`); `create`: a missing dev
    /// master key is generated (like `keys`).
    pub fn open(cfg: &Config, create: bool) -> Result<UserStore, String> {
        let ops = cfg
            .ops
            .as_ref()
            .ok_or("the configuration has no [ops] section (no ops port, no operators)")?;
        let (keys, _) = crate::auth::admin::open_store(cfg, create)?;
        let path = cfg.gateway.data_dir.join(&ops.users_file);
        crate::files::check_secret_file(&path, "operator store")?;
        Ok(UserStore { path, keys })
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    fn lock(&self) -> Result<crate::files::Lock, String> {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        crate::files::Lock::exclusive(Path::new(&p)).map_err(|e| e.to_string())
    }

    /// Decrypts the store; an absent store is empty (no key yet).
    pub fn load(&self) -> Result<UserFile, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserFile::default()),
            Err(e) => return Err(format!("operator store {}: {e}", self.path.display())),
        };
        let bad = || {
            format!(
                "operator store {}: unreadable, tampered with, or not under this master key",
                self.path.display()
            )
        };
        let head = bytes.get(..11).ok_or_else(bad)?;
        if head.get(..8) != Some(&MAGIC[..]) {
            return Err(bad());
        }
        let w = usize::from(u16::from_le_bytes([
            *head.get(9).ok_or_else(bad)?,
            *head.get(10).ok_or_else(bad)?,
        ]));
        let wrapped = bytes.get(11..11 + w).ok_or_else(bad)?;
        let aad = bytes.get(..11 + w).ok_or_else(bad)?;
        let nonce = bytes.get(11 + w..23 + w).ok_or_else(bad)?;
        let ct = bytes.get(23 + w..).ok_or_else(bad)?;
        let dk = self.keys.master().unwrap(wrapped).map_err(|_| bad())?;
        let pt = Zeroizing::new(
            Aes256Gcm::new_from_slice(&dk[..])
                .map_err(|_| bad())?
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
                .map_err(|_| bad())?,
        );
        serde_json::from_slice(&pt).map_err(|e| format!("{}: {e}", bad()))
    }

    fn save(&self, file: &UserFile) -> Result<(), String> {
        let dk = random::<32>()?;
        let wrapped = self.keys.master().wrap(&dk)?;
        let w = u16::try_from(wrapped.len()).map_err(|_| "wrapped key too long".to_string())?;
        let mut out = Vec::with_capacity(64 + 256 * file.users.len());
        out.extend_from_slice(MAGIC);
        out.push(self.keys_provider_tag());
        out.extend_from_slice(&w.to_le_bytes());
        out.extend_from_slice(&wrapped);
        let nonce = random::<12>()?;
        let aad = out.clone();
        out.extend_from_slice(&nonce[..]);
        let pt = Zeroizing::new(serde_json::to_vec(file).map_err(|e| e.to_string())?);
        let ct = Aes256Gcm::new_from_slice(&dk[..])
            .map_err(|_| "data key length".to_string())?
            .encrypt(
                Nonce::from_slice(&nonce[..]),
                Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .map_err(|_| "cannot encrypt the operator store".to_string())?;
        out.extend_from_slice(&ct);
        crate::files::write_private(&self.path, &out)
            .map_err(|e| format!("operator store {}: {e}", self.path.display()))
    }

    fn keys_provider_tag(&self) -> u8 {
        match self.keys.master() {
            crate::auth::provider::MasterKey::Local(_) => 1,
            crate::auth::provider::MasterKey::Pkcs11(_) => 3,
        }
    }

    /// Read-modify-write under the store's lock; a new store gets its token key here.
    pub fn modify<T>(
        &self,
        f: impl FnOnce(&mut UserFile) -> Result<T, String>,
    ) -> Result<T, String> {
        let _lock = self.lock()?;
        let mut file = self.load()?;
        if file.token_key.is_empty() {
            file.token_key = base64::engine::general_purpose::STANDARD.encode(&random::<32>()?[..]);
        }
        let t = f(&mut file)?;
        self.save(&file)?;
        Ok(t)
    }
}

/// A new operator's credentials, shown once.
pub struct NewCredentials {
    pub password: Zeroizing<String>,
    /// `otpauth://totp/...` for an authenticator app.
    pub otpauth: Zeroizing<String>,
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?} must be 1–64 of letters, digits, '.', '_', '@', '-'"
        ))
    }
}

/// A random password: 20 characters of an unambiguous alphabet (≈ 113 bits).
fn new_password() -> Result<Zeroizing<String>, String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw = random::<20>()?;
    let mut s = Zeroizing::new(String::with_capacity(20));
    for b in raw.iter() {
        // 256 % 56 != 0: a slight bias, irrelevant at 20 characters.
        let i = usize::from(*b) % ALPHABET.len();
        s.push(char::from(*ALPHABET.get(i).unwrap_or(&b'x')));
    }
    Ok(s)
}

/// Argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1; OWASP's minimum) of `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes = random::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes[..]).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash` (constant time inside argon2).
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn totp_for(secret_b32: &str, name: &str) -> Result<totp_rs::TOTP, String> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|_| "TOTP secret is not base32".to_string())?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        TOTP_STEP_S,
        bytes,
        Some(TOTP_ISSUER.to_string()),
        name.to_string(),
    )
    .map_err(|e| format!("TOTP: {e}"))
}

fn new_totp(name: &str) -> Result<(String, Zeroizing<String>), String> {
    let raw = random::<20>()?;
    let b32 = totp_rs::Secret::Raw(raw.to_vec()).to_encoded();
    let totp_rs::Secret::Encoded(secret) = b32 else {
        return Err("TOTP secret encoding".into());
    };
    let uri = Zeroizing::new(totp_for(&secret, name)?.get_url());
    Ok((secret, uri))
}

/// The step at which `code` is valid for `secret_b32` at unix time `now_s` (±1 step), if any.
pub fn totp_step(secret_b32: &str, code: &str, now_s: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp_for(secret_b32, "x").ok()?;
    let now = now_s / TOTP_STEP_S;
    let mut found = None;
    // Every candidate is compared (constant time), whichever matches.
    for step in [now.saturating_sub(1), now, now + 1] {
        let want = t.generate(step * TOTP_STEP_S);
        if bool::from(want.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The current code for a base32 secret (tests, and `users` docs).
pub fn totp_code(secret_b32: &str, now_s: u64) -> Result<String, String> {
    Ok(totp_for(secret_b32, "x")?.generate(now_s))
}

/// `portcullis users add`: a new operator with a random password and TOTP secret.
pub fn add(
    store: &UserStore,
    name: &str,
    role: Role,
    now_ms: u64,
) -> Result<NewCredentials, String> {
    check_name(name)?;
    let password = new_password()?;
    add_with_password(store, name, role, &password, now_ms)
        .map(|otpauth| NewCredentials { password, otpauth })
}

/// An operator with a given password; returns the otpauth URI.
pub fn add_with_password(
    store: &UserStore,
    name: &str,
    role: Role,
    password: &str,
    now_ms: u64,
) -> Result<Zeroizing<String>, String> {
    check_name(name)?;
    let hash = hash_password(password)?;
    let (secret, uri) = new_totp(name)?;
    store.modify(|f| {
        if f.find(name).is_some() {
            return Err(format!("user {name:?} already exists"));
        }
        f.users.push(UserRecord {
            name: name.to_string(),
            role,
            password_hash: hash,
            totp_secret: secret,
            last_totp_step: 0,
            created_ms: now_ms,
        });
        Ok(())
    })?;
    Ok(uri)
}

/// `portcullis users list`: one line per operator, never secrets.
pub fn list(store: &UserStore) -> Result<String, String> {
    let f = store.load()?;
    let mut out = String::new();
    for u in &f.users {
        out.push_str(&format!(
            "{:<24} {:<13} created {}\n",
            u.name,
            u.role.as_str(),
            crate::tls::utc_date((u.created_ms / 1000) as i64)
        ));
    }
    if f.users.is_empty() {
        out.push_str("no operators (add one with `portcullis users add NAME --role ROLE`)\n");
    }
    Ok(out)
}

pub fn remove(store: &UserStore, name: &str) -> Result<(), String> {
    store.modify(|f| {
        let before = f.users.len();
        f.users.retain(|u| u.name != name);
        if f.users.len() == before {
            return Err(format!("no user {name:?}"));
        }
        Ok(())
    })
}

/// A new TOTP secret (the old authenticator entry stops working); returns the otpauth URI.
pub fn reset_mfa(store: &UserStore, name: &str) -> Result<Zeroizing<String>, String> {
    let (secret, uri) = new_totp(name)?;
    store.modify(|f| {
        let u = f
            .find_mut(name)
            .ok_or_else(|| format!("no user {name:?}"))?;
        u.totp_secret = secret;
        u.last_totp_step = 0;
        Ok(())
    })?;
    Ok(uri)
}

pub fn set_role(store: &UserStore, name: &str, role: Role) -> Result<Role, String> {
    store.modify(|f| {
        let u = f
            .find_mut(name)
            .ok_or_else(|| format!("no user {name:?}"))?;
        let before = u.role;
        u.role = role;
        Ok(before)
    })
}

/// Why a login failed (the client is told only "invalid credentials").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownUser,
    BadPassword,
    /// A privileged role without a code (or MFA required and none given).
    TotpMissing,
    BadTotp,
    /// The code was right but its step was already used.
    TotpReplayed,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown user",
            LoginFailure::BadPassword => "wrong password",
            LoginFailure::TotpMissing => "TOTP code missing",
            LoginFailure::BadTotp => "wrong TOTP code",
            LoginFailure::TotpReplayed => "TOTP code already used",
        }
    }
}

/// A password hash to verify against for unknown users, so their answer takes as long.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("portcullis-dummy").unwrap_or_default())
}

/// Checks a TOTP `code` for `name` and records its step (a code is accepted once).
pub fn use_totp(store: &UserStore, name: &str, code: &str, now_s: u64) -> Result<(), LoginFailure> {
    let r = store.modify(|f| {
        let Some(u) = f.find_mut(name) else {
            return Ok(Err(LoginFailure::UnknownUser));
        };
        match totp_step(&u.totp_secret, code, now_s) {
            None => Ok(Err(LoginFailure::BadTotp)),
            Some(s) if s <= u.last_totp_step => Ok(Err(LoginFailure::TotpReplayed)),
            Some(s) => {
                u.last_totp_step = s;
                Ok(Ok(()))
            }
        }
    });
    // A store that cannot be written refuses the login (the step could not be recorded).
    r.unwrap_or(Err(LoginFailure::BadTotp))
}

/// Password (and TOTP where required) check for a login; the operator's role.
pub fn login(
    store: &UserStore,
    name: &str,
    password: &str,
    totp: Option<&str>,
    mfa_required: bool,
    now_s: u64,
) -> Result<Role, LoginFailure> {
    let file = store.load().map_err(|_| LoginFailure::UnknownUser)?;
    let Some(u) = file.find(name) else {
        let _ = verify_password(dummy_hash(), password);
        return Err(LoginFailure::UnknownUser);
    };
    if !verify_password(&u.password_hash, password) {
        return Err(LoginFailure::BadPassword);
    }
    let role = u.role;
    match totp.filter(|c| !c.is_empty()) {
        Some(code) => use_totp(store, name, code, now_s)?,
        None if mfa_required && role.privileged() => return Err(LoginFailure::TotpMissing),
        None => {}
    }
    Ok(role)
}

/// The embedded default's development admin: created on first start with a random password
/// (`<data>/secrets/ops-admin.password`) and TOTP secret (`<data>/secrets/ops-admin.totp`,
/// the otpauth URI), both 0600. Returns the two files.
pub fn ensure_dev_admin(cfg: &Config, now_ms: u64) -> Result<(PathBuf, PathBuf), String> {
    let store = UserStore::open(cfg, true)?;
    let dir = cfg.gateway.data_dir.join("secrets");
    crate::files::private_dir(&dir).map_err(|e| e.to_string())?;
    let pw_file = dir.join("ops-admin.password");
    let totp_file = dir.join("ops-admin.totp");
    let exists = store.load()?.find("admin").is_some();
    if !exists || !pw_file.exists() || !totp_file.exists() {
        if exists {
            remove(&store, "admin")?;
        }
        let c = add(&store, "admin", Role::Admin, now_ms)?;
        crate::files::write_private(&pw_file, c.password.as_bytes())
            .map_err(|e| format!("{}: {e}", pw_file.display()))?;
        crate::files::write_private(&totp_file, c.otpauth.as_bytes())
            .map_err(|e| format!("{}: {e}", totp_file.display()))?;
    }
    Ok((pw_file, totp_file))
}

/// The base32 secret inside an otpauth URI.
pub fn secret_of_uri(uri: &str) -> Option<String> {
    let q = uri.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .map(str::to_string)
}

/// An otpauth URI as a QR code in Unicode half blocks (for `users add` / `reset-mfa`).
pub fn qr_text(uri: &str) -> Result<String, String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

// ---- `portcullis users` -------------------------------------------------------------------

/// `portcullis users`: operators of the ops port (encrypted store under the key store's
/// master key).
#[derive(clap::Args, Debug)]
pub struct UsersArgs {
    /// Configuration file; without it, the embedded default (store under --data-dir).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data folder; overrides gateway.data_dir.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: UsersAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum UsersAction {
    /// Create an operator: prints a random password (once) and the TOTP enrolment (otpauth://
    /// URI and QR code for an authenticator app).
    Add {
        name: String,
        /// viewer, risk-officer or admin.
        #[arg(long)]
        role: String,
        /// Also write the password to this file (mode 0600).
        #[arg(long)]
        password_out: Option<PathBuf>,
        /// Also write the otpauth:// URI to this file (mode 0600).
        #[arg(long)]
        totp_out: Option<PathBuf>,
        /// Do not draw the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// List operators (never secrets).
    List,
    /// Remove an operator (their tokens stop working at once).
    Remove { name: String },
    /// New TOTP secret (the old authenticator entry stops working).
    ResetMfa {
        name: String,
        #[arg(long)]
        totp_out: Option<PathBuf>,
        #[arg(long)]
        no_qr: bool,
    },
    /// Change an operator's role (a lowered role applies to live tokens at once).
    SetRole { name: String, role: String },
    /// Print the current TOTP code of an otpauth:// URI file (like the development admin's
    /// `<data>/secrets/ops-admin.totp`): what an authenticator app would show.
    TotpCode {
        #[arg(long)]
        uri_file: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("role {s:?} is not viewer, risk-officer or admin"))
}

fn show_enrolment(uri: &str, out: Option<&Path>, no_qr: bool) -> Result<(), String> {
    if let Some(p) = out {
        crate::files::write_private(p, uri.as_bytes())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    crate::say(format_args!(
        "TOTP (SHA-1, 30 s, 6 digits) for an authenticator app: {uri}"
    ));
    if !no_qr {
        crate::say(format_args!("{}", qr_text(uri)?));
    }
    Ok(())
}

impl UsersArgs {
    fn config(&self) -> Result<Config, String> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => {
                let d = self
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("./portcullis-data"));
                let mut c = Config::embedded_default(&d);
                // The embedded default's port (its certificate is made by `run`).
                c.ops.get_or_insert_with(crate::config::OpsCfg::default);
                c
            }
        };
        if let Some(d) = &self.data_dir {
            cfg.gateway.data_dir = d.clone();
        }
        Ok(cfg)
    }

    /// Runs the command; the exit code (0 done, 1 refused, 2 bad configuration).
    pub fn run(self) -> u8 {
        let cfg = match self.config() {
            Ok(c) => c,
            Err(e) => {
                crate::say_err(format_args!("portcullis users: {e}"));
                return 2;
            }
        };
        let now_ms = crate::clock::system_utc().0 / 1_000_000;
        if let UsersAction::TotpCode { uri_file } = &self.action {
            let code = crate::files::check_secret_file(uri_file, "TOTP file")
                .and_then(|()| {
                    std::fs::read_to_string(uri_file)
                        .map_err(|e| format!("{}: {e}", uri_file.display()))
                })
                .and_then(|uri| {
                    secret_of_uri(uri.trim())
                        .ok_or_else(|| format!("{}: no secret= in it", uri_file.display()))
                })
                .and_then(|secret| totp_code(&secret, now_ms / 1000));
            return match code {
                Ok(c) => {
                    crate::say(format_args!("{c}"));
                    0
                }
                Err(e) => {
                    crate::say_err(format_args!("portcullis users: {e}"));
                    1
                }
            };
        }
        let r = (|| -> Result<String, String> {
            // Like `keys add`: adding creates a missing development master key file.
            let create = self.config.is_none() || matches!(self.action, UsersAction::Add { .. });
            let store = UserStore::open(&cfg, create)?;
            match &self.action {
                UsersAction::Add {
                    name,
                    role,
                    password_out,
                    totp_out,
                    no_qr,
                } => {
                    let role = parse_role(role)?;
                    let c = add(&store, name, role, now_ms)?;
                    if let Some(p) = password_out {
                        crate::files::write_private(p, c.password.as_bytes())
                            .map_err(|e| format!("{}: {e}", p.display()))?;
                    }
                    crate::say(format_args!(
                        "user {name} ({}): password (shown once, store it now): {}",
                        role.as_str(),
                        c.password.as_str()
                    ));
                    show_enrolment(&c.otpauth, totp_out.as_deref(), *no_qr)?;
                    Ok(String::new())
                }
                UsersAction::List => list(&store),
                UsersAction::Remove { name } => {
                    remove(&store, name).map(|()| format!("user {name}: removed"))
                }
                UsersAction::ResetMfa {
                    name,
                    totp_out,
                    no_qr,
                } => {
                    let uri = reset_mfa(&store, name)?;
                    show_enrolment(&uri, totp_out.as_deref(), *no_qr)?;
                    Ok(format!("user {name}: new TOTP secret"))
                }
                UsersAction::SetRole { name, role } => {
                    let role = parse_role(role)?;
                    set_role(&store, name, role).map(|before| {
                        format!("user {name}: role {} -> {}", before.as_str(), role.as_str())
                    })
                }
                UsersAction::TotpCode { .. } => Ok(String::new()),
            }
        })();
        match r {
            Ok(text) => {
                if !text.trim_end().is_empty() {
                    crate::say(format_args!("{}", text.trim_end()));
                }
                0
            }
            Err(e) => {
                crate::say_err(format_args!("portcullis users: {e}"));
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_accepts_adjacent_steps_only() {
        let (secret, uri) = new_totp("alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{}", *uri);
        assert_eq!(secret_of_uri(&uri).as_deref(), Some(secret.as_str()));
        let now = 1_800_000_000u64;
        let step = now / 30;
        for (t, want) in [
            (now, Some(step)),
            (now - 30, Some(step - 1)),
            (now + 30, Some(step + 1)),
            (now - 60, None),
            (now + 60, None),
        ] {
            let code = totp_code(&secret, t).unwrap();
            // A code of another step may collide with one in the window (1 in 10^6 × 3).
            let got = totp_step(&secret, &code, now);
            if want.is_some() {
                assert_eq!(got, want);
            } else {
                assert!(got.is_none() || got != Some(t / 30), "{t}");
            }
        }
        assert_eq!(totp_step(&secret, "12345", now), None);
        assert_eq!(totp_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn password_hash_is_argon2id_and_verifies() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct hors"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::RiskOfficer && Role::RiskOfficer < Role::Admin);
        assert!(!Role::Viewer.privileged() && Role::Admin.privileged());
        assert_eq!(Role::parse("risk-officer"), Some(Role::RiskOfficer));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn qr_renders() {
        let q = qr_text("otpauth://totp/Portcullis:a?secret=ABC").unwrap();
        assert!(q.lines().count() > 10);
    }
}
