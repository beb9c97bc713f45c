//! COLD — wiring: builds the engine from a [`Config`], starts the journal thread, the clock
//! thread and the pinned gateway thread, and stops them in order. `main.rs` and the in-process tests both use it.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audit::JournalThread;
use crate::clock::thread::ClockThread;
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::{Engine, EngineHandle, StartError};

/// A running gateway.
pub struct Running {
    pub handle: EngineHandle,
    hot: Option<JoinHandle<()>>,
    journal: Option<JoinHandle<()>>,
    journal_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clock: Option<JoinHandle<()>>,
    clock_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Starts a gateway: engine on its own (optionally pinned) thread, journal thread beside it.
pub fn start(cfg: &Config, clock: Clock) -> Result<Running, StartError> {
    let (mut engine, handle) = Engine::new(cfg, clock.clone())?;
    let journal_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let jt = JournalThread {
        data_dir: cfg.gateway.data_dir.clone(),
        flush_interval: Duration::from_millis(cfg.gateway.flush_interval_ms),
        session_names: cfg
            .sessions
            .iter()
            .map(|s| format!("{}:{}->{}", s.begin_string, s.their_comp_id, s.our_comp_id))
            .collect(),
        venue_names: cfg.venues.iter().map(|v| v.name.clone()).collect(),
        throttle: Some((handle.throttle.clone(), handle.session_keys.clone())),
        records: Some((
            handle.records.clone(),
            cfg.routes.iter().map(describe_route).collect(),
        )),
    };
    let journal = jt
        .spawn(
            handle.events.clone(),
            handle.counters.clone(),
            journal_stop.clone(),
        )
        .map_err(|e| StartError(format!("journal thread: {e}")))?;
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
        journal_stop,
        clock: Some(clock_thread),
        clock_stop,
    })
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
    /// Asks the engine to log sessions out and stop; waits for both threads.
    pub fn stop(mut self) {
        self.handle.stop.store(true, Ordering::Relaxed);
        self.join();
    }

    /// Waits for the engine to stop (after a signal set the stop flag), then the journal.
    pub fn join(&mut self) {
        if let Some(h) = self.hot.take() {
            let _ = h.join();
        }
        self.clock_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.clock.take() {
            let _ = h.join();
        }
        self.journal_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.journal.take() {
            let _ = h.join();
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
