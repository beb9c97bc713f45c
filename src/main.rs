//! `portcullis` — load config, build, pin threads, run. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::clock::Clock;
use portcullis::config::Config;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Low-latency FIX order gateway with inline pre-trade controls"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway. Without --config: the embedded default (loopback, simulated venue).
    Run {
        /// Configuration file (TOML); see portcullis.example.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data folder (stores, journal, event log); overrides gateway.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Block in epoll instead of busy-polling (overrides gateway.busy_poll).
        #[arg(long)]
        blocking: bool,
        /// Listen address for the first listener (overrides listener[0].address).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate a configuration file and exit.
    CheckConfig { config: PathBuf },
    /// Reports from the data folder (REG-1 order records).
    #[command(subcommand)]
    Report(portcullis::report::ReportCmd),
    /// The clock: sync status and estimated divergence from UTC (CLOCK-2).
    #[command(subcommand)]
    Clock(portcullis::clock::cli::ClockCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Report(r) => portcullis::report::run(r),
        Cmd::Clock(c) => portcullis::clock::cli::run(c),
        Cmd::Run {
            config,
            data_dir,
            blocking,
            listen,
        } => run(config, data_dir, blocking, listen),
    }
}

/// SIGHUP: re-reads the configuration file and applies its throttle tiers and per-session
/// limits live (the throttle table is lock-free; the gateway thread sees the new limits at its
/// next check). Everything else in the file needs a restart.
fn reload(config: Option<&std::path::Path>, handle: &portcullis::engine::EngineHandle) {
    let Some(path) = config else {
        println!("portcullis: SIGHUP: running on the embedded default, nothing to reload");
        return;
    };
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: SIGHUP: {e}; keeping the current limits");
            return;
        }
    };
    let tiers = cfg.tier_table();
    let now = portcullis::clock::system_utc();
    let mut applied = 0;
    for (i, s) in cfg.sessions.iter().enumerate() {
        let key = format!("{}-{}-{}", s.begin_string, s.our_comp_id, s.their_comp_id);
        let Some(slot) = handle.session_keys.iter().position(|k| *k == key) else {
            eprintln!("portcullis: SIGHUP: session {key} is new; sessions are added at restart");
            continue;
        };
        let limits = cfg.session_limits(i, &tiers);
        match handle.throttle.set_key_limits(
            portcullis::throttle::KeySlot(slot as u32),
            &limits,
            now,
        ) {
            Ok(()) => applied += 1,
            Err(e) => eprintln!("portcullis: SIGHUP: session {key}: {e:?}"),
        }
    }
    println!(
        "portcullis: SIGHUP: throttle limits reloaded for {applied} session(s) from {}",
        path.display()
    );
}

fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    blocking: bool,
    listen: Option<std::net::SocketAddr>,
) -> ExitCode {
    let embedded = config.is_none();
    let mut cfg = match &config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("portcullis: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::embedded_default(
            &data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./portcullis-data")),
        ),
    };
    if let Some(d) = data_dir {
        cfg.gateway.data_dir = d;
    }
    if blocking {
        cfg.gateway.busy_poll = false;
    }
    if let (Some(addr), Some(l)) = (listen, cfg.listeners.first_mut()) {
        l.address = addr;
    }
    let mut running = match portcullis::gateway::start(&cfg, Clock::fast()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, running.handle.stop.clone()) {
            eprintln!("portcullis: cannot install signal handler: {e}");
        }
    }
    let addrs: Vec<String> = running
        .handle
        .listen_addrs
        .iter()
        .map(|a| a.to_string())
        .collect();
    println!(
        "portcullis {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", ")
    );
    println!("  data folder: {}", cfg.gateway.data_dir.display());
    println!(
        "  mode: {}{}",
        if cfg.gateway.busy_poll {
            "busy-poll (owns a core)"
        } else {
            "blocking"
        },
        cfg.gateway
            .cpu
            .map(|c| format!(", pinned to CPU {c}"))
            .unwrap_or_default()
    );
    for s in &cfg.sessions {
        println!(
            "  session {} {} -> {}",
            s.begin_string, s.their_comp_id, s.our_comp_id
        );
    }
    for v in &cfg.venues {
        println!("  venue {} ({})", v.name, v.kind);
    }
    println!("  {}", running.handle.clock_status.snapshot().one_line());
    if embedded {
        if let (Some(addr), Some(s)) = (running.handle.listen_addrs.first(), cfg.sessions.first()) {
            println!("Try it:");
            println!(
                "  cargo run -p portcullis-tools --bin fixclient -- --connect {addr} --sender {} --target {} --reset order --symbol AAPL --side buy --qty 100 --price 10.5",
                s.their_comp_id, s.our_comp_id
            );
        }
    }
    println!(
        "Ctrl-C or SIGTERM logs sessions out and stops; SIGHUP reloads throttle tiers and limits."
    );
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        eprintln!("portcullis: cannot install SIGHUP handler: {e}");
    }
    while !running.is_finished() {
        if hup.swap(false, std::sync::atomic::Ordering::Relaxed) {
            reload(config.as_deref(), &running.handle);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    running.join();
    let c = &running.handle.counters;
    use portcullis::monitor::Counter as K;
    println!(
        "portcullis: stopped — orders received {}, rejected {}, fills {}, throttled {}, garbled {}, longest working duty cycle {} µs",
        c.get(K::OrdersReceived),
        c.get(K::OrdersRejected),
        c.get(K::Fills),
        c.get(K::ThrottleRejects),
        c.get(K::GarbledMessages),
        c.get(K::MaxDutyCycleNs) / 1000
    );
    ExitCode::SUCCESS
}
