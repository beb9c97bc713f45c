//! COLD — the ops status port (issue 14): HTTPS for operators and risk officers.
//!
//! One thread, `portcullis-ops`, runs a tokio `current_thread` runtime with hyper (HTTP/1.1)
//! over rustls (TLS 1.3 only, the gateway's `ring` provider); plaintext only on loopback and
//! only when configured. Anything that may block (Argon2, the operator store, the control
//! socket, files) runs on tokio's blocking pool, so a slow request never stalls the others.
//!
//! It reads the gateway's state only through what the engine already shares with cold threads
//! (counters, clock status, TLS listener status, listen addresses) and the data folder, and it
//! changes state only through the control socket `portcullis ctl` uses
//! (`<data>/control.sock`, [`crate::ctl::call`]): requests are numbered, audited
//! (`control-audit.log`, `by` = the authenticated operator) and applied by the gateway thread
//! between two messages, exactly like `ctl`'s. It never touches session state.
//!
//! Must never: block the hot thread (it shares nothing with it but atomics and the command
//! queue), answer with internals (errors are JSON with a message), keep a password or token
//! key outside zeroizing memory longer than a request.
//!
//! Endpoints: see `docs/ops-openapi.yaml`.

pub mod guard;
pub mod limits;
pub mod remote;
mod server;
pub use server::metric_name;
pub mod token;
pub mod users;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::build::EngineHandle;
use crate::config::Config;

/// A running ops port. Dropping it stops the thread (it also stops with the gateway).
pub struct OpsPort {
    /// The bound address (the configured one, or the port the kernel chose for port 0).
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OpsPort {
    /// `https://127.0.0.1:9880`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for OpsPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the ops port of `cfg` (`[ops]`; none: `Ok(None)`) beside a started engine: binds
/// the address (an error names it), opens the operator store and spawns `portcullis-ops`.
/// The thread ends when the gateway's stop flag or the returned port's is set.
pub fn spawn(cfg: &Config, handle: &EngineHandle) -> Result<Option<OpsPort>, String> {
    let Some(ops) = cfg.ops.clone() else {
        return Ok(None);
    };
    // Controls go through the control socket, as the gateway's own uid.
    let own = crate::files::euid();
    if let Some(list) = &cfg.control.allowed_uids {
        if !list.contains(&own) {
            crate::say_err(format_args!(
                "portcullis: WARNING: control.allowed_uids {list:?} does not name the gateway's \
                 own uid {own}: the ops port's kills and limit changes (sent through the control \
                 socket) will be refused; add {own} to allow them"
            ));
        }
    }
    let state = server::State::new(cfg, &ops, handle)?;
    let listener = std::net::TcpListener::bind(ops.address)
        .map_err(|e| format!("ops.address {}: cannot listen: {e}", ops.address))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("ops.address {}: {e}", ops.address))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("ops.address {}: {e}", ops.address))?;
    let stop = Arc::new(AtomicBool::new(false));
    let scheme = if ops.plaintext { "http" } else { "https" };
    let thread = {
        let stop = stop.clone();
        let gateway_stop = handle.stop.clone();
        std::thread::Builder::new()
            .name("portcullis-ops".into())
            .spawn(move || server::run(listener, state, stop, gateway_stop))
            .map_err(|e| format!("ops thread: {e}"))?
    };
    Ok(Some(OpsPort {
        addr,
        scheme,
        stop,
        thread: Some(thread),
    }))
}

/// `check-config`: the ops port's certificate and key load (the error names the key).
pub fn check_files(cfg: &Config) -> Result<(), (String, String)> {
    let Some(t) = cfg.ops.as_ref().and_then(|o| o.tls.as_ref()) else {
        return Ok(());
    };
    let certs = crate::tls::load_certs(&t.cert).map_err(|e| ("ops.tls.cert".to_string(), e))?;
    crate::tls::load_key(&t.key).map_err(|e| ("ops.tls.key".to_string(), e))?;
    let now = (crate::clock::system_utc().0 / 1_000_000_000) as i64;
    for c in &certs {
        let (_, not_after) =
            crate::tls::validity(c).map_err(|e| ("ops.tls.cert".to_string(), e))?;
        if not_after < now {
            return Err((
                "ops.tls.cert".into(),
                format!(
                    "{} expired on {}",
                    t.cert.display(),
                    crate::tls::utc_date(not_after)
                ),
            ));
        }
    }
    Ok(())
}

/// Embedded default: an `[ops]` on `address` with the development server certificate (the
/// one the FIX TLS listener uses), and the development admin. Returns the admin's password
/// and TOTP files.
pub fn add_dev_ops(
    cfg: &mut Config,
    address: SocketAddr,
    pki: &crate::tls::dev::DevPki,
    now_ms: u64,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    cfg.ops = Some(crate::config::OpsCfg {
        address,
        tls: Some(crate::config::OpsTls {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
        }),
        ..Default::default()
    });
    users::ensure_dev_admin(cfg, now_ms)
}
