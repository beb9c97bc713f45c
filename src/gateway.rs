//! COLD — wiring: builds the engine from a [`Config`], starts the journal thread, the clock
//! thread and the pinned gateway thread, and stops them in order. `main.rs` and the in-process tests both use it.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audit::JournalThread;
use crate::build::{EngineHandle, StartError};
use crate::clock::thread::ClockThread;
use crate::clock::Clock;
use crate::config::Config;

/// A running gateway.
pub struct Running {
    pub handle: EngineHandle,
    hot: Option<JoinHandle<()>>,
    journal: Option<JoinHandle<()>>,
    /// Polls the key store and publishes new key snapshots (with `[auth]`).
    watcher: Option<JoinHandle<()>>,
    /// New tier definitions for keys with their own tier (SIGHUP); `None` without `[auth]`.
    pub key_tiers: Option<crate::auth::watch::TierReload>,
    journal_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The TLS certificate watcher (reload on file change, expiry events), if any listener has
    /// TLS. Stops with the journal.
    tls_watch: Option<JoinHandle<()>>,
    /// The control socket thread (`<data_dir>/control.sock`, `portcullis ctl`).
    control: Option<JoinHandle<()>>,
    /// The data folder (where the control socket is).
    data_dir: std::path::PathBuf,
    clock: Option<JoinHandle<()>>,
    clock_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The ops status port (`[ops]`), if configured. Stops with the gateway.
    pub ops: Option<crate::ops::OpsPort>,
    /// The audit trail's writer (`[audit]`; `None` when disabled). It outlives the other
    /// threads (they feed it) and stops when this is dropped, or by [`Running::stop_trail`].
    pub trail: Option<crate::trail::Trail>,
}

/// Starts a gateway: engine on its own (optionally pinned) thread, journal thread beside it.
pub fn start(cfg: &Config, clock: Clock) -> Result<Running, StartError> {
    // Every thread started here but the hot one inherits this: off the hot thread's CPU.
    let _cold = ColdAffinity::off(cfg.gateway.cpu, cfg.gateway.cold_cpus.as_deref());
    // The audit trail and the SIEM exporter first: the journal, control and detection threads
    // of this data folder find them, and the order desk reads the trail's health.
    crate::siem::install(cfg)
        .map_err(|(key, problem)| StartError(format!("key `{key}`: {problem}")))?;
    let trail = crate::trail::Trail::start(cfg)
        .map_err(|e| StartError(format!("cannot start the audit trail: {e}")))?;
    let (mut engine, handle) = match crate::build::engine(cfg, clock.clone()) {
        Ok(built) => built,
        Err(e) => {
            crate::trail::note(
                &cfg.gateway.data_dir,
                "gateway-start-failed",
                &[("error", e.to_string())],
            );
            return Err(e);
        }
    };
    let journal_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let key_tiers = cfg
        .auth
        .as_ref()
        .map(|_| crate::auth::watch::TierReload::default());
    let watcher = match (engine.take_key_loader(), &cfg.auth, &key_tiers) {
        (Some(loader), Some(a), Some(tiers)) => Some(
            crate::auth::watch::spawn(
                loader,
                handle.commands.clone(),
                Duration::from_millis(a.poll_ms),
                tiers.clone(),
                crate::auth::watch::Reporting {
                    events: handle.events.clone(),
                    counters: handle.counters.clone(),
                },
                journal_stop.clone(),
            )
            .map_err(|e| StartError(format!("key store watcher thread: {e}")))?,
        ),
        _ => None,
    };
    let control_persisted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let control = crate::ctl::serve(
        &cfg.gateway.data_dir,
        crate::ctl::ServeWith {
            commands: handle.commands.clone(),
            sessions: handle.session_keys.clone(),
            persisted: control_persisted.clone(),
            counters: handle.counters.clone(),
            cfg: cfg.control.clone(),
        },
        journal_stop.clone(),
    )
    .map_err(|e| {
        StartError(format!(
            "control socket {}: {e}",
            cfg.gateway.data_dir.join(crate::ctl::SOCKET).display()
        ))
    })?;
    let jt = JournalThread {
        data_dir: cfg.gateway.data_dir.clone(),
        flush_interval: Duration::from_millis(cfg.gateway.flush_interval_ms),
        session_names: cfg.sessions.iter().map(|s| s.display_name()).collect(),
        venue_names: cfg.venues.iter().map(|v| v.name.clone()).collect(),
        throttle: Some((handle.throttle.clone(), handle.session_keys.clone())),
        records: Some((
            handle.records.clone(),
            cfg.routes.iter().map(describe_route).collect(),
        )),
        control_persisted,
    };
    // Intrusion detection (issue 15): started by the journal thread of this data folder.
    crate::ids::install(cfg, &handle.session_keys);
    let journal = jt
        .spawn(
            handle.events.clone(),
            handle.counters.clone(),
            journal_stop.clone(),
        )
        .map_err(|e| StartError(format!("journal thread: {e}")))?;
    let tls_watch = if handle.tls.certs.is_empty() {
        None
    } else {
        let tls = handle.tls.clone();
        let stop = journal_stop.clone();
        let every = Duration::from_millis(cfg.gateway.tls_watch_ms);
        Some(
            std::thread::Builder::new()
                .name("portcullis-tls-watch".into())
                .spawn(move || watch_tls(&tls, &stop, every))
                .map_err(|e| StartError(format!("TLS watcher thread: {e}")))?,
        )
    };
    // First reading before the gateway takes orders: the status (and a halt) is in force at once.
    let clock_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock_thread = ClockThread::new(
        &cfg.clock,
        clock,
        handle.clock_status.clone(),
        handle.events.clone(),
        handle.counters.clone(),
    )
    .spawn(clock_stop.clone())
    .map_err(|e| StartError(format!("clock thread: {e}")))?;
    // The ops status port (issue 14): its own cold thread; reads shared state, controls
    // through the control socket started above.
    let ops = crate::ops::spawn(cfg, &handle).map_err(|e| StartError(format!("ops port: {e}")))?;
    let cpu = cfg.gateway.cpu;
    let hot = std::thread::Builder::new()
        .name("portcullis-hot".into())
        .spawn(move || {
            if let Some(cpu) = cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
            }
            engine.run();
        })
        .map_err(|e| StartError(format!("gateway thread: {e}")))?;
    Ok(Running {
        handle,
        hot: Some(hot),
        journal: Some(journal),
        watcher,
        key_tiers,
        journal_stop,
        tls_watch,
        control: Some(control),
        data_dir: cfg.gateway.data_dir.clone(),
        clock: Some(clock_thread),
        clock_stop,
        ops,
        trail,
    })
}

/// While it lives, the calling thread (and so every thread it starts) runs on the cold CPUs
/// (`[gateway] cold_cpus`; by default every CPU it may use but `cpu`, the hot thread's, when
/// that leaves two or more): a cold thread that wakes (journal, trail, ops, detection…) then
/// never takes the hot thread's core from it (MEASURING.md: a third runnable thread on a
/// spinning core costs milliseconds). With one CPU left, nothing changes by default: measured
/// on 2 cores with the load client spinning on the other one, the segment helper queued there
/// behind it and the hot thread waited 1.5 s at a store roll. The caller's set comes back on
/// drop.
struct ColdAffinity {
    saved: Option<libc::cpu_set_t>,
}

/// CPU_SETSIZE: a CPU number at or beyond it is in no set.
const SET_SIZE: usize = 1024;

#[allow(unsafe_code)] // sched_getaffinity/sched_setaffinity(2) and CPU_*: a cpu_set_t we own
impl ColdAffinity {
    fn off(cpu: Option<usize>, cold_cpus: Option<&[usize]>) -> ColdAffinity {
        let none = ColdAffinity { saved: None };
        if cpu.is_none() && cold_cpus.is_none() {
            return none;
        }
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut saved: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; `size` and the pointer are those of `saved`.
        if unsafe { libc::sched_getaffinity(0, size, &mut saved) } != 0 {
            return none;
        }
        let cold = match cold_cpus {
            Some(list) => {
                // SAFETY: as `saved` above.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                for &c in list.iter().filter(|&&c| c < SET_SIZE) {
                    // SAFETY: `c` < CPU_SETSIZE and `set` is a valid set.
                    unsafe { libc::CPU_SET(c, &mut set) };
                }
                set
            }
            None => {
                let Some(cpu) = cpu.filter(|&c| c < SET_SIZE) else {
                    return none;
                };
                let mut set = saved;
                // SAFETY: `cpu` < CPU_SETSIZE and `set` is a valid set.
                unsafe { libc::CPU_CLR(cpu, &mut set) };
                // SAFETY: `set` is a valid set.
                if unsafe { libc::CPU_COUNT(&set) } < 2 {
                    return none;
                }
                set
            }
        };
        // SAFETY: `cold` is a valid set; the kernel refuses (and nothing changes) if it holds
        // no CPU the thread may use.
        if unsafe { libc::sched_setaffinity(0, size, &cold) } != 0 {
            return none;
        }
        ColdAffinity { saved: Some(saved) }
    }
}

#[allow(unsafe_code)] // sched_setaffinity(2) with the set read in `off`
impl Drop for ColdAffinity {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: the set read from this thread in `off`, with its own size.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), saved) };
        }
    }
}

/// Cold thread: reloads TLS listeners whose files changed (every `every`; never when zero) and
/// raises expiry events (at start, then hourly).
fn watch_tls(
    tls: &crate::tls::TlsListeners,
    stop: &std::sync::atomic::AtomicBool,
    every: Duration,
) {
    const TICK: Duration = Duration::from_millis(100);
    const EXPIRY_EVERY: Duration = Duration::from_secs(3600);
    tls.check_expiry();
    let mut since_files = Duration::ZERO;
    let mut since_expiry = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        since_files += TICK;
        since_expiry += TICK;
        if !every.is_zero() && since_files >= every {
            since_files = Duration::ZERO;
            for r in tls.reload_changed() {
                match r {
                    Ok(line) => crate::say(format_args!("portcullis: TLS files changed: {line}")),
                    Err(e) => crate::say_err(format_args!("portcullis: TLS files changed: {e}")),
                }
            }
        }
        if since_expiry >= EXPIRY_EVERY {
            since_expiry = Duration::ZERO;
            tls.check_expiry();
        }
    }
}

/// `ExDestination=X symbol=Y account=Z -> VENUE`, for the records' routing decisions.
fn describe_route(r: &crate::config::RouteCfg) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &r.ex_destination {
        parts.push(format!("ExDestination={d}"));
    }
    if let Some(s) = &r.symbol {
        parts.push(format!("symbol={s}"));
    }
    if let Some(a) = &r.account {
        parts.push(format!("account={a}"));
    }
    if parts.is_empty() {
        parts.push("any".into());
    }
    format!("{} -> {}", parts.join(" "), r.venue)
}

impl Running {
    /// The data folder this gateway runs on (its registries, e.g. [`crate::ids::reload_geo`],
    /// are keyed by it).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Asks the engine to log sessions out and stop; waits for both threads.
    pub fn stop(mut self) {
        self.handle.stop.store(true, Ordering::Relaxed);
        self.join();
    }

    /// Writes what the trail has queued, closes its file (checkpoint, sync) and stops it; call
    /// after [`Running::join`] and after any last records (`gateway-stop`).
    pub fn stop_trail(&mut self) {
        if let Some(t) = self.trail.take() {
            t.stop();
        }
    }

    /// Waits for the engine to stop (after a signal set the stop flag), then the journal.
    pub fn join(&mut self) {
        if let Some(h) = self.hot.take() {
            let _ = h.join();
        }
        self.clock_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.clock.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.journal_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.journal.take() {
            let _ = h.join();
        }
        if let Some(h) = self.tls_watch.take() {
            let _ = h.join();
        }
        if let Some(h) = self.watcher.take() {
            let _ = h.join();
        }
        if let Some(h) = self.control.take() {
            // It blocks in accept until woken; unreachable, it is left to end with the process.
            if crate::ctl::wake(&self.data_dir) {
                let _ = h.join();
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.hot.as_ref().is_none_or(|h| h.is_finished())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.stop.store(true, Ordering::Relaxed);
        self.join();
    }
}
