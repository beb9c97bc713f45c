//! COLD — SIEM export (issue 15): every event the journal thread writes to `events.log` also
//! goes, as a syslog message (RFC 5424), to a collector over TCP (octet-counted frames, RFC
//! 6587 §3.4.1) or TLS (RFC 5425, rustls), with a JSON or CEF payload (`[siem]` in the config).
//!
//! ```text
//!  hot ──ring──► journal thread ── render + mask ──► events.log
//!                      │ Feed::offer (try_send, never waits)
//!                      ▼ bounded queue (siem.queue_capacity)
//!                 exporter thread ── format ──► collector (TCP/TLS)
//!                      │ collector down / spool not empty
//!                      ▼
//!                 <data_dir>/siem/spool (≤ siem.spool_max_bytes, replayed in order)
//! ```
//!
//! # Must never
//! - block the hot thread: the hot thread does not know this module exists; its events reach
//!   us through the journal thread, which only `try_send`s (a full queue is a counted drop);
//! - lose silently: what cannot be queued or spooled is counted (`SiemDropped`, 69) and
//!   announced to the collector (`siem-dropped count=N`) when the link returns;
//! - export more than the event log shows: entries are taken from the masked event-log line
//!   (account ids and card numbers masked by the journal), never from the raw event.
//!
//! Counters: `SiemSent` (68), `SiemDropped` (69), `SiemSpooledBytes` (70, gauge),
//! `SiemReconnects` (71).
//!
//! # Wiring
//! [`prepare`] checks `[siem]` and loads its TLS files (config errors name the key); [`start`]
//! opens the spool and starts the exporter thread, returning the [`Feed`] the journal thread
//! offers lines to. Until the gateway builder passes the feed to the journal thread itself,
//! `gateway::start` registers the prepared exporter with [`install`] and the journal thread of
//! that data folder picks it up with [`claim`].

pub mod entry;
pub mod exporter;
pub mod format;
pub mod link;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use rustls::ClientConfig;

use crate::config::siem::{Severity, SiemCfg, SiemTransport, MAX_MESSAGE_BYTES};
use crate::config::Config;
use crate::monitor::{Counter, Counters};

pub use entry::Entry;

/// Longest frame: the longest message plus its length digits and space.
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES + 8;
/// Folder of the spool inside the data folder.
pub const DIR: &str = "siem";

/// `[siem]` checked, with its TLS configuration built.
#[derive(Clone)]
pub struct Prepared {
    pub cfg: SiemCfg,
    target: link::Target,
    formatter: format::Formatter,
}

/// Checks `[siem]` beyond the config parser: the TLS files load (CA, client certificate and
/// key), certificates are within their validity. `Err((key, problem))` names the key.
pub fn prepare(cfg: &SiemCfg) -> Result<Prepared, (String, String)> {
    let key = |k: &str| format!("siem.{k}");
    let (host, port) = cfg.host_port().ok_or_else(|| {
        (
            key("address"),
            format!("{:?} is not host:port", cfg.address),
        )
    })?;
    let tls = match cfg.transport {
        SiemTransport::Tcp => None,
        SiemTransport::Tls => Some(tls_config(cfg).map_err(|(k, p)| (key(k), p))?),
    };
    let hostname = match &cfg.hostname {
        Some(h) => h.clone(),
        None => own_hostname(),
    };
    Ok(Prepared {
        cfg: cfg.clone(),
        target: link::Target {
            host: host.to_string(),
            port,
            tls,
        },
        formatter: format::Formatter {
            facility: cfg.facility,
            hostname,
            procid: std::process::id(),
            sd_id: format!("portcullis@{}", cfg.enterprise_number),
            format: cfg.format,
            version: env!("CARGO_PKG_VERSION"),
        },
    })
}

fn tls_config(
    cfg: &SiemCfg,
) -> Result<(Arc<ClientConfig>, rustls::pki_types::ServerName<'static>), (&'static str, String)> {
    let now = (crate::clock::system_utc().0 / 1_000_000_000) as i64;
    let ca = cfg.ca_file.as_ref().ok_or((
        "ca_file",
        "is required with transport = \"tls\"".to_string(),
    ))?;
    let cas = crate::tls::load_certs(ca).map_err(|e| ("ca_file", e))?;
    crate::tls::check_validity(ca, &cas, now).map_err(|e| ("ca_file", e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in cas {
        roots.add(c).map_err(|e| {
            (
                "ca_file",
                format!("{}: unusable CA certificate: {e}", ca.display()),
            )
        })?;
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(versions)
        .map_err(|e| ("tls12", format!("TLS versions: {e}")))?
        .with_root_certificates(roots);
    let config = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            let certs = crate::tls::load_certs(cert).map_err(|e| ("client_cert", e))?;
            crate::tls::check_validity(cert, &certs, now).map_err(|e| ("client_cert", e))?;
            let k = crate::tls::load_key(key).map_err(|e| ("client_key", e))?;
            builder
                .with_client_auth_cert(certs, k)
                .map_err(|e| ("client_key", format!("{}: {e}", key.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = match &cfg.server_name {
        Some(n) => n.clone(),
        None => cfg
            .host_port()
            .map(|(h, _)| h.to_string())
            .unwrap_or_default(),
    };
    let name = crate::tls::server_name(&name).map_err(|e| ("server_name", e))?;
    Ok((Arc::new(config), name))
}

/// This machine's host name (RFC 5424 HOSTNAME: printable ASCII, no spaces), `-` if unknown.
fn own_hostname() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() {
        "-".into()
    } else {
        h
    }
}

/// The journal thread's end of the exporter: [`Feed::offer`] never waits. Dropping it lets the
/// exporter deliver or spool what is queued and waits for it (bounded: see
/// [`exporter::FINAL_REPLAY`] and [`link::WRITE_TIMEOUT`]).
pub struct Feed {
    tx: Option<Sender<Entry>>,
    min_severity: Severity,
    queue_drops: Arc<AtomicU64>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Feed {
    /// Offers one event-log line (rendered and masked, without its newline). Below
    /// `min_severity`: skipped. Queue full: counted as dropped, announced later.
    pub fn offer(&self, line: &str) {
        let Some(tx) = &self.tx else { return };
        let entry = Entry::parse(line, &entry::now_rfc3339());
        if !entry.severity.passes(self.min_severity) {
            return;
        }
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.inc(Counter::SiemDropped);
                self.queue_drops
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Opens the spool under `<data_dir>/siem/` and starts the exporter thread.
pub fn start(p: Prepared, data_dir: &Path, counters: Arc<Counters>) -> std::io::Result<Feed> {
    let dir = data_dir.join(DIR);
    let (spool, note) = spool::Spool::open(&dir, p.cfg.spool_max_bytes)?;
    if let Some(n) = note {
        crate::say_err(format_args!("portcullis: SIEM spool: {n}"));
    }
    let (tx, rx) = crossbeam_channel::bounded(p.cfg.queue_capacity);
    let queue_drops = Arc::new(AtomicU64::new(0));
    let exporter = exporter::Exporter {
        rx,
        formatter: p.formatter,
        spool,
        target: p.target,
        counters: counters.clone(),
        queue_drops: queue_drops.clone(),
        reconnect_max: std::time::Duration::from_millis(p.cfg.reconnect_max_ms),
    };
    let thread = std::thread::Builder::new()
        .name("portcullis-siem".into())
        .spawn(move || exporter.run())?;
    Ok(Feed {
        tx: Some(tx),
        min_severity: p.cfg.min_severity,
        queue_drops,
        counters,
        thread: Some(thread),
    })
}

/// Exporters prepared by `gateway::start`, by data folder, waiting for their journal thread.
static INSTALLED: Mutex<Vec<(PathBuf, Prepared)>> = Mutex::new(Vec::new());

/// Checks `cfg.siem` (if any) with [`prepare`] and registers it for the journal thread of
/// `cfg.gateway.data_dir` ([`claim`]). Without `[siem]`, removes any registration.
pub fn install(cfg: &Config) -> Result<(), (String, String)> {
    let prepared = cfg.siem.as_ref().map(prepare).transpose()?;
    let mut all = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|(d, _)| d != &cfg.gateway.data_dir);
    if let Some(p) = prepared {
        all.push((cfg.gateway.data_dir.clone(), p));
    }
    Ok(())
}

/// The journal thread's side of [`install`]: starts the exporter registered for `data_dir`,
/// if any (once).
pub fn claim(data_dir: &Path, counters: &Arc<Counters>) -> std::io::Result<Option<Feed>> {
    let prepared = {
        let mut all = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .position(|(d, _)| d == data_dir)
            .map(|i| all.swap_remove(i).1)
    };
    prepared
        .map(|p| start(p, data_dir, counters.clone()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_never_waits_and_counts_what_the_queue_cannot_take() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let counters = Arc::new(Counters::default());
        let feed = Feed {
            tx: Some(tx),
            min_severity: Severity::Notice,
            queue_drops: Arc::new(AtomicU64::new(0)),
            counters: counters.clone(),
            thread: None,
        };
        // Below min_severity (a logon is info): skipped, not a drop.
        feed.offer("20261207-04:07:25.000001 logon session=S");
        for i in 0..5 {
            feed.offer(&format!(
                "20261207-04:07:25.00000{i} kill scope=global control-seq={i}"
            ));
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(counters.get(Counter::SiemDropped), 3);
        assert_eq!(
            feed.queue_drops.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        let first = rx.recv().unwrap();
        assert_eq!(
            (first.kind.as_str(), first.get("control-seq")),
            ("kill", Some("0"))
        );
        // The exporter gone: still no wait, still counted.
        drop(rx);
        feed.offer("20261207-04:07:26 kill scope=global");
        assert_eq!(counters.get(Counter::SiemDropped), 4);
    }

    #[test]
    fn prepare_names_the_tls_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |extra: &str| {
            let text = format!("[siem]\naddress = \"127.0.0.1:6514\"\n{extra}");
            #[derive(serde::Deserialize)]
            struct W {
                siem: SiemCfg,
            }
            toml::from_str::<W>(&text).unwrap().siem
        };
        let missing = dir.path().join("none.pem");
        let e = prepare(&cfg(&format!(
            "ca_file = {:?}\n",
            missing.display().to_string()
        )))
        .err()
        .unwrap();
        assert_eq!(e.0, "siem.ca_file");
        assert!(e.1.contains("none.pem"), "{}", e.1);
        let ca = crate::tls::dev::DevCa::generate("t").unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let ok = prepare(&cfg(&format!(
            "ca_file = {:?}\n",
            ca_path.display().to_string()
        )));
        assert!(ok.is_ok());
        let e = prepare(&cfg(&format!(
            "ca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
            ca_path.display().to_string(),
            ca_path.display().to_string(),
            ca_path.display().to_string()
        )))
        .err()
        .unwrap();
        assert_eq!(e.0, "siem.client_key");
        // Plain TCP needs no files; the SD-ID carries the enterprise number.
        let p = prepare(&cfg("transport = \"tcp\"\nenterprise_number = 99999\n")).unwrap();
        assert_eq!(p.formatter.sd_id, "portcullis@99999");
        assert!(p.target.tls.is_none());
    }
}
