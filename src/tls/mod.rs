//! COLD — TLS material: PEM certificates and keys → validated rustls configurations, their
//! reload without a restart, days to expiry, and the development PKI of the embedded default.
//!
//! Runs on cold threads only (startup, the SIGHUP handler, the file watcher). The gateway
//! thread receives finished `Arc<rustls::ServerConfig>`s through [`Command::ReloadTls`] and uses
//! them for connections it accepts afterwards; established connections keep theirs.
//!
//! # Policy
//! - TLS 1.3 only by default. `tls12 = true` adds TLS 1.2 restricted to ECDHE key exchange with
//!   AES-GCM (the FIXS recommendation). rustls never renegotiates and never compresses.
//! - Certificates outside their validity period are refused at load, naming the file and the
//!   date; a refused reload keeps the previous configuration.
//! - mTLS: `client_ca` set → every client must present a certificate chaining to it.

pub mod dev;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;

use crate::config::{ListenerTls, VenueTls};
use crate::handoff::{Command, CommandSender, Event, EventRing};
use crate::model::Nanos;
use crate::monitor::{Counter, Counters};

pub use crate::net::tls::spki_sha256;

const DAY_SECS: i64 = 86_400;

/// The crypto provider: *ring*, with the cipher suites we allow. TLS 1.3: all three AEAD
/// suites; TLS 1.2 (only when enabled): ECDHE + AES-GCM.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// A certificate chain read from a PEM file (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(certs)
}

/// A private key read from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: cannot read a private key: {e}", path.display()))
}

/// Validity period of a DER certificate, as Unix seconds (not before, not after).
pub fn validity(cert: &CertificateDer<'_>) -> Result<(i64, i64), String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// The subject of a DER certificate, for messages.
pub fn subject(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Checks that every certificate in `certs` is valid at `now_unix`; returns the earliest
/// `not_after` of the chain.
pub fn check_validity(
    path: &Path,
    certs: &[CertificateDer<'_>],
    now_unix: i64,
) -> Result<i64, String> {
    let mut earliest = i64::MAX;
    for (i, c) in certs.iter().enumerate() {
        let (nb, na) = validity(c).map_err(|e| format!("{}: #{i}: {e}", path.display()))?;
        let what = if i == 0 {
            "certificate".to_string()
        } else {
            format!("chain certificate #{i}")
        };
        if now_unix < nb {
            return Err(format!(
                "{}: {what} ({}) is not valid yet: valid from {}",
                path.display(),
                subject(c),
                utc_date(nb)
            ));
        }
        if now_unix > na {
            return Err(format!(
                "{}: {what} ({}) expired on {}",
                path.display(),
                subject(c),
                utc_date(na)
            ));
        }
        earliest = earliest.min(na);
    }
    Ok(earliest)
}

/// "YYYY-MM-DD HH:MM:SS UTC" of Unix seconds.
pub fn utc_date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix} (Unix time)"),
    }
}

fn roots(path: &Path, now_unix: i64) -> Result<RootCertStore, String> {
    let certs = load_certs(path)?;
    check_validity(path, &certs, now_unix)?;
    let mut store = RootCertStore::empty();
    for c in certs {
        store
            .add(c)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    Ok(store)
}

/// A server configuration and what the ops side shows about it.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    /// Earliest expiry in the certificate chain (Unix seconds).
    pub not_after_unix: i64,
    pub subject: String,
}

/// Builds a listener's server configuration from its files, refusing certificates outside
/// their validity period (at `now_unix`) and keys that do not match the certificate.
pub fn server_config(t: &ListenerTls, now_unix: i64) -> Result<Loaded, String> {
    let certs = load_certs(&t.cert)?;
    let not_after = check_validity(&t.cert, &certs, now_unix)?;
    let subject = certs.first().map(subject).unwrap_or_default();
    let key = load_key(&t.key)?;
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] = if t.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let store = roots(ca, now_unix)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| format!("{}: client CA: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} / {}: certificate and key do not go together: {e}",
            t.cert.display(),
            t.key.display()
        )
    })?;
    // Resumption tickets would make the server keep per-client state on the gateway thread;
    // FIX sessions are long-lived, so a full handshake per connection costs nothing that
    // matters.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Loaded {
        config: Arc::new(config),
        not_after_unix: not_after,
        subject,
    })
}

/// Builds a venue connection's client configuration.
pub fn client_config(t: &VenueTls, now_unix: i64) -> Result<Arc<ClientConfig>, String> {
    let store = roots(&t.ca, now_unix)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(store);
    let config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert)?;
            check_validity(cert, &certs, now_unix)?;
            builder
                .with_client_auth_cert(certs, load_key(key)?)
                .map_err(|e| format!("{}: client certificate: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server name a venue's certificate must carry.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name:?} is not a DNS name or IP address"))
}

/// Loads every TLS file a configuration names (listeners and venues) as the engine would at
/// start, without binding anything: `Err((key, problem))` names the first bad one.
pub fn check_files(cfg: &crate::config::Config) -> Result<(), (String, String)> {
    let now = now_unix();
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Some(t) = &l.tls {
            server_config(t, now).map_err(|e| (format!("listener[{i}].tls"), e))?;
        }
    }
    for (i, v) in cfg.venues.iter().enumerate() {
        if let Some(t) = &v.tls {
            client_config(t, now).map_err(|e| (format!("venue[{i}].tls"), e))?;
        }
    }
    Ok(())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whole days from `now_unix` until `not_after_unix` (negative once expired).
pub fn days_left(not_after_unix: i64, now_unix: i64) -> i64 {
    (not_after_unix - now_unix).div_euclid(DAY_SECS)
}

fn now_unix() -> i64 {
    (crate::clock::system_utc().0 / 1_000_000_000) as i64
}

/// One TLS listener's certificate as the ops side sees it.
pub struct CertStatus {
    pub listener: usize,
    pub files: ListenerTls,
    /// Earliest expiry in the loaded chain (Unix seconds).
    pub not_after_unix: AtomicI64,
    /// Successful reloads since start.
    pub reloads: AtomicU64,
    /// Modification times of the files when last loaded (or last tried).
    seen: Mutex<Vec<Option<SystemTime>>>,
    /// Days-left value of the last expiry warning (one event per day of countdown).
    warned_days: AtomicI64,
}

/// TLS listeners of a running engine: reload and expiry. Shared by the SIGHUP handler, the
/// file watcher and (later) the ops port.
pub struct TlsListeners {
    pub certs: Vec<CertStatus>,
    pub warn_days: u32,
    commands: CommandSender,
    events: EventRing,
    counters: Arc<Counters>,
}

impl TlsListeners {
    /// `loaded`: (listener index, files, expiry) of each TLS listener as loaded at startup.
    pub fn new(
        loaded: Vec<(usize, ListenerTls, i64)>,
        warn_days: u32,
        commands: CommandSender,
        events: EventRing,
        counters: Arc<Counters>,
    ) -> TlsListeners {
        let certs = loaded
            .into_iter()
            .map(|(listener, files, not_after)| {
                let seen = mtimes(&files);
                CertStatus {
                    listener,
                    files,
                    not_after_unix: AtomicI64::new(not_after),
                    reloads: AtomicU64::new(0),
                    seen: Mutex::new(seen),
                    warned_days: AtomicI64::new(i64::MAX),
                }
            })
            .collect();
        let t = TlsListeners {
            certs,
            warn_days,
            commands,
            events,
            counters,
        };
        t.publish_days();
        t
    }

    /// Days until the earliest listener certificate expires, if any listener has TLS.
    pub fn min_days_to_expiry(&self) -> Option<i64> {
        let now = now_unix();
        self.certs
            .iter()
            .map(|c| days_left(c.not_after_unix.load(Ordering::Relaxed), now))
            .min()
    }

    /// Days until listener `listener`'s certificate expires.
    pub fn days_to_expiry(&self, listener: usize) -> Option<i64> {
        let now = now_unix();
        self.certs
            .iter()
            .find(|c| c.listener == listener)
            .map(|c| days_left(c.not_after_unix.load(Ordering::Relaxed), now))
    }

    fn publish_days(&self) {
        if let Some(d) = self.min_days_to_expiry() {
            self.counters
                .set(Counter::TlsCertDaysToExpiry, d.max(0) as u64);
        }
    }

    /// Re-reads every TLS listener's files and hands the new configurations to the gateway
    /// thread. One line per listener: what was loaded, or why the old configuration was kept.
    pub fn reload_all(&self) -> Vec<Result<String, String>> {
        (0..self.certs.len()).map(|i| self.reload(i)).collect()
    }

    fn reload(&self, i: usize) -> Result<String, String> {
        let Some(c) = self.certs.get(i) else {
            return Err(format!("no TLS listener #{i}"));
        };
        if let Ok(mut seen) = c.seen.lock() {
            *seen = mtimes(&c.files);
        }
        let now = now_unix();
        let loaded = server_config(&c.files, now).map_err(|e| {
            format!(
                "listener[{}]: {e}; keeping the current certificate",
                c.listener
            )
        })?;
        // The gateway thread takes one command per duty cycle; a full channel for a whole
        // second means it is not running.
        self.commands
            .send_timeout(
                Command::ReloadTls {
                    listener: c.listener as u16,
                    config: loaded.config,
                },
                std::time::Duration::from_secs(1),
            )
            .map_err(|_| {
                format!(
                    "listener[{}]: the gateway thread is not taking commands",
                    c.listener
                )
            })?;
        c.not_after_unix
            .store(loaded.not_after_unix, Ordering::Relaxed);
        c.reloads.fetch_add(1, Ordering::Relaxed);
        self.counters.inc(Counter::TlsReloads);
        let days = days_left(loaded.not_after_unix, now);
        self.publish_days();
        let _ = self.events.push(Event::TlsReloaded {
            listener: c.listener as u16,
            days_left: days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            at: crate::clock::system_utc(),
        });
        Ok(format!(
            "listener[{}]: loaded {} ({}), expires {} ({days} days)",
            c.listener,
            c.files.cert.display(),
            loaded.subject,
            utc_date(loaded.not_after_unix)
        ))
    }

    /// Reloads the listeners whose certificate, key or CA file changed since the last load.
    pub fn reload_changed(&self) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        for (i, c) in self.certs.iter().enumerate() {
            let now = mtimes(&c.files);
            let changed = c.seen.lock().map(|s| *s != now).unwrap_or(false);
            if changed {
                out.push(self.reload(i));
            }
        }
        out
    }

    /// Emits a `cert-expiring` event for each listener whose certificate expires within
    /// `warn_days` (once per listener per day of countdown).
    pub fn check_expiry(&self) {
        let now = now_unix();
        self.publish_days();
        for c in &self.certs {
            let days = days_left(c.not_after_unix.load(Ordering::Relaxed), now);
            if days < i64::from(self.warn_days)
                && c.warned_days.swap(days, Ordering::Relaxed) != days
            {
                let _ = self.events.push(Event::CertExpiring {
                    listener: c.listener as u16,
                    days_left: days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                    at: Nanos(now.max(0) as u64 * 1_000_000_000),
                });
            }
        }
    }
}

fn mtimes(files: &ListenerTls) -> Vec<Option<SystemTime>> {
    let paths: [Option<&PathBuf>; 3] = [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ];
    paths
        .iter()
        .map(|p| {
            p.and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| m.modified().ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        assert_eq!(days_left(10 * DAY_SECS, 0), 10);
        assert_eq!(days_left(10 * DAY_SECS - 1, 0), 9);
        assert_eq!(days_left(0, 1), -1);
    }

    #[test]
    fn expired_and_future_certificates_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dev::DevCa::generate("test CA").unwrap();
        let now = now_unix();
        let (cert, key) = ca
            .issue_server(&["localhost"], now - 10 * DAY_SECS, now - DAY_SECS)
            .unwrap();
        let files = dev::write_pair(dir.path(), "old", &cert, &key).unwrap();
        let e = server_config(&files, now).err().unwrap();
        assert!(e.contains("expired on") && e.contains("old.pem"), "{e}");
        let (cert, key) = ca
            .issue_server(&["localhost"], now + DAY_SECS, now + 10 * DAY_SECS)
            .unwrap();
        let files = dev::write_pair(dir.path(), "new", &cert, &key).unwrap();
        let e = server_config(&files, now).err().unwrap();
        assert!(e.contains("not valid yet"), "{e}");
        let (cert, key) = ca
            .issue_server(&["localhost"], now - DAY_SECS, now + 10 * DAY_SECS + 60)
            .unwrap();
        let files = dev::write_pair(dir.path(), "ok", &cert, &key).unwrap();
        let l = server_config(&files, now).unwrap();
        assert_eq!(days_left(l.not_after_unix, now), 10);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dev::DevCa::generate("test CA").unwrap();
        let now = now_unix();
        let (cert, _) = ca
            .issue_server(&["localhost"], now - DAY_SECS, now + DAY_SECS)
            .unwrap();
        let (_, other_key) = ca
            .issue_server(&["localhost"], now - DAY_SECS, now + DAY_SECS)
            .unwrap();
        let files = dev::write_pair(dir.path(), "mixed", &cert, &other_key).unwrap();
        let e = server_config(&files, now).err().unwrap();
        assert!(e.contains("do not go together"), "{e}");
    }
}
