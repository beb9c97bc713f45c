//! COLD (a measuring tool) — `loadgen`: offers FIX orders, or SBE orders over FIXP (`fix --sbe`)
//! (a mix of new / cancel / replace), over N sessions to the gateway at a fixed open-loop rate
//! (or closed loop) and reports the latency distribution, measured from each order's intended
//! send time (coordinated omission corrected); the TCP echo floor to compare with; the gateway
//! config for N load sessions; and the percentile plot of one or more runs.
//!
//! One thread sends and reads, busy-polling non-blocking TCP_NODELAY sockets (a `read` of each
//! in turn, or epoll with a zero timeout for many), optionally pinned (`--cpu`). Exit codes: 0
//! the run completed; 1 the peer ended it early or answers were missing; 2 bad usage,
//! connection or logon failure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_tools::loadgen::plot::{self, Series};
use portcullis_tools::loadgen::sbe::{Sbe, SbeConfig};
use portcullis_tools::loadgen::wire::{
    self, Clock, Echo, Fix, FixConfig, Load, Plan, Polling, Wire,
};
use portcullis_tools::loadgen::{
    orders_for, rounds, sender_comp_id, stalls, write_hgrm, Mix, Recorder, RunInfo, NS_PER_S,
};

/// Load generator and latency floor for Portcullis.
#[derive(Parser, Debug)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// FIX 4.4 sessions sending orders (new / cancel / replace); latency to the first answer.
    /// With --sbe: the same over SBE/FIXP sessions (binary order entry).
    Fix(Box<FixArgs>),
    /// The floor's server: echoes what one connection sends.
    EchoServer(ServerArgs),
    /// The floor's client: fixed-size messages to `echo-server`, same schedule and outputs.
    Echo(EchoArgs),
    /// Prints a gateway config (TOML) with the [[session]] entries `fix --sessions N` logs on to.
    GenConfig(GenConfigArgs),
    /// Draws the percentile plot of .hgrm files (LABEL=FILE) into one SVG.
    Plot(PlotArgs),
    /// Prints the JSON summaries of several runs (LABEL=FILE[,FILE…], one file per round) as
    /// one table: medians over rounds, ratios of the --subject runs to the others.
    ///
    /// One row per system. A system measured in several interleaved rounds
    /// (tools/peers/compare.sh --rounds N) gives one JSON summary per round,
    /// `LABEL=r1.json,r2.json,…` (`-` for a round that measured nothing). Its row is then the
    /// median over its rounds of each percentile (achieved/s: the median; rejected and
    /// unanswered: summed over rounds), and a ratio row (subject ÷ other) is the median of the
    /// ratios taken within each round — both systems measured minutes apart at most — not the
    /// ratio of the medians. The median of an even count is the mean of the two middle values;
    /// a round either system did not measure is left out of the ratio. --spread prints every
    /// round's ratio of one percentile, then their median. With one file per system the table
    /// is the plain one-run table.
    Table(TableArgs),
}

/// `loadgen table` (the statistics: [`rounds`]).
#[derive(Args, Debug)]
#[command(
    after_help = "Example: loadgen table --subject gateway --spread p50:floor-a \\
  floor-a=floor-a.r1.json,floor-a.r2.json,floor-a.r3.json \\
  gateway=gateway.r1.json,gateway.r2.json,gateway.r3.json"
)]
struct TableArgs {
    /// Runs whose percentiles are given as ratios to every other run (repeatable).
    #[arg(long)]
    subject: Vec<String>,
    /// COLUMN:LABEL (e.g. p99.9:floor-a): also print each subject's per-round ratios of that
    /// percentile (p50, p90, p99, p99.9, p99.99, max) to LABEL's, so their spread shows
    /// (repeatable).
    #[arg(long, value_parser = rounds::Spread::parse)]
    spread: Vec<rounds::Spread>,
    /// LABEL=FILE.json[,FILE.json…]: one row each, in this order; the i-th file is round i.
    #[arg(required = true, value_parser = rounds::parse_system_arg)]
    runs: Vec<(String, Vec<Option<PathBuf>>)>,
}

#[derive(Args, Debug)]
struct LoadArgs {
    /// Orders (messages) per second offered, open loop.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    duration_s: f64,
    /// Warm-up seconds: orders intended in this time are not in the histogram.
    #[arg(long, default_value_t = 0.0, value_parser = seconds)]
    warmup_s: f64,
    /// Closed loop: send the next order when an answer arrives, keeping --window in flight.
    #[arg(long)]
    closed_loop: bool,
    /// Orders in flight in closed loop.
    #[arg(long, default_value_t = 1, requires = "closed_loop", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    window: u64,
    /// Closed loop: most orders sent (memory for them is allocated before the run).
    #[arg(long, default_value_t = 4_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    max_orders: u64,
    /// Pin the thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// How long to wait for outstanding answers after the last order, ms.
    #[arg(long, default_value_t = 5_000)]
    drain_ms: u64,
    /// Write the HdrHistogram percentile distribution (.hgrm text, µs) here.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Write a JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the percentile plot (SVG) here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Stall threshold, µs: consecutive measured orders (by intended send time) slower than this
    /// form a stall episode; the count, total time and the 5 longest are reported.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=3_600_000_000))]
    stall_us: u64,
    /// Write a CSV timeline of the measured orders here, per 10 ms of intended send time:
    /// start_ms (from the run's start, warm-up included), orders, max_us, p50_us (a bucket
    /// without measured orders: 0, 0, 0).
    #[arg(long)]
    timeline: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct FixArgs {
    /// Gateway address, host:port.
    #[arg(long)]
    connect: String,
    /// Binary order entry: SBE over FIXP sessions (fix-specs/FIXP-SESSION.md) to a
    /// `protocol = "sbe"` listener instead of FIX. --sender names the FIXP sessions; a key
    /// (--key-id/--secret-file or --keys-file) signs Negotiate and Establish; --heartbeat is
    /// the keep-alive interval.
    #[arg(long, conflicts_with = "reset")]
    sbe: bool,
    /// Our SenderCompID <49>; with --sessions N > 1, the prefix of LOAD0001 … LOAD<N>.
    #[arg(long, default_value = "LOAD")]
    sender: String,
    /// Sessions (connections) the load is spread over, entry i on session i mod N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    sessions: u64,
    /// Share of new / cancel / replace (weights); cancels and replaces take the session's
    /// oldest open order, or go out as new orders while it has none.
    #[arg(long, default_value = "new=100", value_parser = Mix::parse)]
    mix: Mix,
    /// Seconds every session has to log on (and off) [default: 10 + 0.05 per session].
    #[arg(long, value_parser = positive_seconds)]
    logon_timeout_s: Option<f64>,
    /// How the connections are polled: spin (read each in turn), mio (epoll, zero timeout),
    /// auto (spin up to 8 sessions).
    #[arg(long, value_enum, default_value_t = PollArg::Auto)]
    poll: PollArg,
    /// The gateway's CompID: our TargetCompID <56>.
    #[arg(long, default_value = "PORTCULLIS")]
    target: String,
    /// Send ResetSeqNumFlag=Y in the Logon.
    #[arg(long)]
    reset: bool,
    /// HeartBtInt <108>, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    heartbeat: u32,
    /// Symbols, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT")]
    symbols: Vec<String>,
    /// Account <1>, used in turn (else the session's default account).
    #[arg(long, alias = "account", value_delimiter = ',')]
    accounts: Vec<String>,
    /// API key id for signed Logons (Username 553; fix-specs/SIGNED-LOGON.md), the same key
    /// for every session (it must be bound to every session's CompID). Needs --secret-file.
    #[arg(long, requires = "secret_file", conflicts_with = "keys_file")]
    key_id: Option<String>,
    /// File holding --key-id's secret (base64, as `portcullis keys add --secret-out` wrote it).
    #[arg(long, requires = "key_id")]
    secret_file: Option<PathBuf>,
    /// One key per session: `id secret` lines (as `portcullis keys generate --secrets-out`
    /// writes them); session i signs with line i. Needs at least --sessions lines.
    #[arg(long, value_name = "PATH")]
    keys_file: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Debug, Clone)]
struct TlsArgs {
    /// Connect over TLS (1.3, or 1.2 if that is all the server speaks); the handshake of every
    /// session completes before the load starts. Needs --ca or --pin-spki. The plaintext path
    /// allocates nothing per order; over TLS rustls allocates per record.
    #[arg(long)]
    tls: bool,
    /// TLS: PEM CA certificate(s) the gateway's certificate must chain to.
    #[arg(long, value_name = "PATH", requires = "tls")]
    ca: Option<PathBuf>,
    /// TLS: our client certificate (PEM) for mTLS listeners; needs --key.
    #[arg(long, value_name = "PATH", requires = "tls")]
    cert: Option<PathBuf>,
    /// TLS: the private key of --cert (PEM).
    #[arg(long, value_name = "PATH", requires = "tls")]
    key: Option<PathBuf>,
    /// TLS: SHA-256 of the server certificate's SubjectPublicKeyInfo (64 hex digits).
    #[arg(long, value_name = "SHA256HEX", requires = "tls")]
    pin_spki: Option<String>,
    /// TLS: the name the server certificate must carry (default: the host of --connect).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
}

#[derive(Args, Debug)]
struct EchoArgs {
    /// Echo server address, host:port.
    #[arg(long)]
    connect: String,
    /// Bytes per message (≈ one of our NewOrderSingle).
    #[arg(long, default_value_t = 160, value_parser = clap::value_parser!(u64).range(8..=65_536))]
    size: u64,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PollArg {
    Auto,
    Spin,
    Mio,
}

#[derive(Args, Debug)]
struct GenConfigArgs {
    /// Load sessions: LOAD0001 … (or just LOAD for 1), as `fix --sessions N` names them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    sessions: u64,
    /// Prefix of the load sessions' CompIDs (their SenderCompID).
    #[arg(long, default_value = "LOAD")]
    sender: String,
    /// The gateway's CompID.
    #[arg(long, default_value = "PORTCULLIS")]
    target: String,
    /// Print only the [[session]] entries and their [[account]]s, to paste into an existing
    /// config.
    #[arg(long)]
    sessions_only: bool,
    /// Accounts besides the sessions' default ones (as `fix --accounts` sends), given risk
    /// limits far above any load run.
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// Symbols the gateway's risk checks know (as `fix --symbols` sends), with a configured
    /// reference price. Not printed with --sessions-only.
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT")]
    symbols: Vec<String>,
    /// Listener address.
    #[arg(long, default_value = "127.0.0.1:9878")]
    listen: SocketAddr,
    /// Pin the gateway thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Block in epoll instead of busy-polling.
    #[arg(long)]
    blocking: bool,
    /// gateway.flush_interval_ms (the gateway's default, 1000, if not given).
    #[arg(long)]
    flush_interval_ms: Option<u64>,
    /// The simulated venue's behaviour: `ack` keeps orders open (for cancels and replaces),
    /// `fill` fills each one.
    #[arg(long, default_value = "fill", value_parser = ["ack", "fill", "partial", "book"])]
    venue: String,
    /// gateway.data_dir.
    #[arg(long, default_value = "./portcullis-load-data")]
    data_dir: PathBuf,
    /// gateway.max_orders (the gateway's default if not given): with `--venue ack` every
    /// order stays open, so give it rate × seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    max_orders: Option<u64>,
    /// gateway.spin_read_conns: connections the busy-poll loop reads directly (0 = every read
    /// waits for epoll) [default: the gateway's, 8].
    #[arg(long)]
    spin_read_conns: Option<usize>,
    /// gateway.spin_poll_every: duty cycles between epoll calls while the hot set is in use
    /// [default: the gateway's, 16].
    #[arg(long)]
    spin_poll_every: Option<u32>,
    /// Add an [auth] section (file master key and key store under the data folder, signed
    /// Logons required). The TOML's first comment lines give the `portcullis keys add` command
    /// that creates the load key bound to every session's CompID.
    #[arg(long)]
    auth: bool,
    /// Binary order entry (`fix --sbe`): the listener is `protocol = "sbe"` and the sessions
    /// are FIXP sessions named as --sender names them. Needs --auth (Negotiate and Establish
    /// are signed with the load key).
    #[arg(long, requires = "auth")]
    sbe: bool,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// The SVG file to write.
    #[arg(long)]
    svg: PathBuf,
    /// Title of the plot.
    #[arg(long, default_value = "latency by percentile")]
    title: String,
    /// LABEL=FILE.hgrm, one per line of the plot.
    #[arg(required = true, value_parser = labelled_path)]
    series: Vec<(String, PathBuf)>,
}

/// `LABEL=FILE`.
fn labelled_path(v: &str) -> Result<(String, PathBuf), String> {
    match v.split_once('=') {
        Some((label, path)) if !label.is_empty() && !path.is_empty() => {
            Ok((label.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("`{v}` is not LABEL=FILE")),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ServerMode {
    /// Spin on non-blocking `read` of the one socket.
    Spin,
    /// mio::Poll::poll with a zero timeout.
    Mio,
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Address to listen on; port 0 picks one. The bound address is the first line printed.
    #[arg(long)]
    listen: SocketAddr,
    /// Pin the thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    #[arg(long, value_enum, default_value_t = ServerMode::Spin)]
    mode: ServerMode,
}

fn seconds(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{v}` is not a number of seconds between 0 and 86400"
        )),
    }
}

fn positive_seconds(v: &str) -> Result<f64, String> {
    match seconds(v)? {
        s if s > 0.0 => Ok(s),
        _ => Err("must be more than 0 seconds".into()),
    }
}

fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(id) = cpu else { return Ok(()) };
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    if !ids.iter().any(|c| c.id == id) {
        return Err(format!(
            "--cpu {id}: no such CPU (available: {:?})",
            ids.iter().map(|c| c.id).collect::<Vec<_>>()
        ));
    }
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        return Err(format!("--cpu {id}: could not pin the thread"));
    }
    Ok(())
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    let mut last = format!("{addr} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// Bucket width of `--timeline`, ms.
const TIMELINE_MS: u64 = 10;

fn ns(s: f64) -> u64 {
    (s * NS_PER_S as f64).round() as u64
}

/// What `measure` needs besides the load flags.
struct Run<'a> {
    mode: &'a str,
    connect_to: &'a str,
    sessions: usize,
    /// How long the Logons (and Logouts) may take.
    handshake_ns: u64,
    mix: Mix,
    polling: Polling,
    /// TLS client configuration and the server name to verify.
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// Runs the load over `run.sessions` connections with the wire `make` builds, prints the table,
/// writes the files.
fn measure<W: Wire>(
    run: Run,
    load: &LoadArgs,
    clock: &Clock,
    make: impl FnOnce(usize) -> W,
) -> ExitCode {
    let total_ns = ns(load.warmup_s + load.duration_s);
    let (plan_load, orders) = if load.closed_loop {
        (
            Load::Closed {
                window: load.window,
            },
            load.max_orders,
        )
    } else {
        (
            Load::Open { rate: load.rate },
            orders_for(load.rate, total_ns),
        )
    };
    let Ok(orders) = usize::try_from(orders) else {
        eprintln!("loadgen: too many orders ({orders})");
        return ExitCode::from(2);
    };
    if orders == 0 {
        eprintln!("loadgen: --rate × (--warmup-s + --duration-s) is less than one order");
        return ExitCode::from(2);
    }
    let mut rec = match Recorder::new(orders, ns(load.warmup_s)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    rec.stall_ns = load.stall_us.saturating_mul(1_000);
    let plan = Plan {
        load: plan_load,
        total_ns,
        orders,
        drain_ns: load.drain_ms.saturating_mul(1_000_000),
        handshake_ns: run.handshake_ns,
        mix: run.mix,
        polling: run.polling,
    };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    if let Err(e) = pin(load.cpu) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let mut streams = Vec::with_capacity(run.sessions);
    let mut tls = Vec::with_capacity(run.sessions);
    for s in 0..run.sessions {
        match connect(run.connect_to) {
            Ok(mut st) => {
                if let Some((config, name)) = &run.tls {
                    let hs = st
                        .set_read_timeout(Some(Duration::from_millis(20)))
                        .map_err(|e| format!("socket setup: {e}"))
                        .and_then(|()| {
                            portcullis_tools::tls::handshake(
                                &mut st,
                                config.clone(),
                                name.clone(),
                                Duration::from_nanos(run.handshake_ns),
                            )
                        });
                    match hs {
                        Ok(c) => {
                            if s == 0 {
                                println!("TLS: {}", portcullis_tools::tls::describe(&c));
                            }
                            tls.push(Some(c));
                        }
                        Err(e) => {
                            eprintln!("loadgen: session {s}: TLS handshake: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
                streams.push(st);
            }
            Err(e) => {
                eprintln!("loadgen: session {s}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut w = make(orders);
    let outcome = match wire::run_tls(streams, tls, &mut w, &plan, clock, &mut rec) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ended = outcome.ended;
    if ended.is_none() && rec.in_flight() > 0 {
        ended = Some(format!(
            "{} orders unanswered after {} ms",
            rec.in_flight(),
            load.drain_ms
        ));
    }
    let summary = rec.summary(RunInfo {
        mode: run.mode.to_string(),
        sessions: run.sessions,
        mix: run.mix,
        closed_loop: load.closed_loop,
        target_rate: (!load.closed_loop).then_some(load.rate),
        window: load.closed_loop.then_some(load.window),
        duration_s: load.duration_s,
        warmup_s: load.warmup_s,
        nproc,
        ended: ended.clone(),
    });
    print!("{}", summary.table());
    if let Some(note) = w.notes() {
        println!("note: {note}");
    }
    let mut code = if ended.is_some() { 1 } else { 0 };
    if let Some(path) = &load.hgrm {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = io::BufWriter::new(f);
            write_hgrm(&rec.hist, &mut w)?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            code = 2;
        }
    }
    if let Some(path) = &load.timeline {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = io::BufWriter::new(f);
            stalls::write_timeline_csv(&rec.timeline(TIMELINE_MS), &mut w)?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            code = 2;
        }
    }
    if let Some(path) = &load.json {
        let written = serde_json::to_string_pretty(&summary)
            .map_err(io::Error::other)
            .and_then(|s| std::fs::write(path, s + "\n"));
        if let Err(e) = written {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            code = 2;
        }
    }
    if let Some(path) = &load.svg {
        if rec.hist.is_empty() {
            eprintln!("loadgen: nothing measured, no plot in {}", path.display());
            code = 2;
        } else {
            let title = format!(
                "loadgen {}: {} session(s), {}",
                run.mode,
                run.sessions,
                if load.closed_loop {
                    format!("closed loop, window {}", load.window)
                } else {
                    format!("{}/s", load.rate)
                }
            );
            let series = plot::series_from_histogram(run.mode, &rec.hist);
            if let Err(e) = plot::write_svg(path, &title, &[series]) {
                eprintln!("loadgen: cannot draw {e}");
                code = 2;
            }
        }
    }
    ExitCode::from(code)
}

fn fix(a: FixArgs) -> ExitCode {
    if a.symbols.iter().any(|s| s.is_empty()) {
        eprintln!("loadgen: --symbols has an empty symbol");
        return ExitCode::from(2);
    }
    if a.accounts.iter().any(|s| s.is_empty()) {
        eprintln!("loadgen: --accounts has an empty account");
        return ExitCode::from(2);
    }
    if a.symbols.iter().chain(&a.accounts).any(|s| s.len() > 32) {
        eprintln!("loadgen: symbols and accounts are at most 32 bytes");
        return ExitCode::from(2);
    }
    if a.sbe && a.symbols.iter().chain(&a.accounts).any(|s| s.len() > 24) {
        eprintln!("loadgen: symbols and accounts are at most 24 bytes over SBE");
        return ExitCode::from(2);
    }
    // The wire's times are on `clock`; `utc0` is read at its zero for SendingTime.
    let clock = Clock::start();
    let utc0 = portcullis_tools::now().0;
    let run_id = utc0 / 1_000_000; // ms: unique across runs of one session
    let FixArgs {
        connect,
        sbe,
        sender,
        sessions,
        mix,
        logon_timeout_s,
        poll,
        target,
        reset,
        heartbeat,
        symbols,
        accounts,
        key_id,
        secret_file,
        keys_file,
        tls,
        load,
    } = a;
    let signers = match signers(
        key_id,
        secret_file,
        keys_file,
        usize::try_from(sessions).unwrap_or(1),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_client(&tls, &connect) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let sessions = usize::try_from(sessions).unwrap_or(1);
    let polling = match poll {
        PollArg::Auto => Polling::auto(sessions),
        PollArg::Spin => Polling::Spin,
        PollArg::Mio => Polling::Mio,
    };
    let senders: Vec<String> = (0..sessions)
        .map(|s| sender_comp_id(&sender, s, sessions))
        .collect();
    // A reset logon starts the session's store again on the gateway thread (milliseconds per
    // session on a busy box): allow for many.
    let logon_s = logon_timeout_s.unwrap_or(10.0 + 0.05 * sessions as f64);
    if sbe {
        let credentials = match SbeConfig::credentials(&senders, &signers) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
        };
        let cfg = SbeConfig {
            credentials,
            // FIXP keep-alive bounds (fix-specs/FIXP-SESSION.md): 1 s to 60 s by default.
            keep_alive_ms: heartbeat.saturating_mul(1000).clamp(1_000, 60_000),
            symbols,
            accounts,
            utc0,
            run_id,
        };
        let run = Run {
            mode: "sbe",
            connect_to: &connect,
            sessions,
            handshake_ns: ns(logon_s),
            mix,
            polling,
            tls,
        };
        return measure(run, &load, &clock, move |orders| Sbe::new(cfg, orders));
    }
    let cfg = FixConfig {
        senders,
        target,
        heartbeat_s: heartbeat,
        reset,
        symbols,
        accounts,
        utc0,
        run_id,
        signers,
    };
    let run = Run {
        mode: "fix",
        connect_to: &connect,
        sessions,
        handshake_ns: ns(logon_s),
        mix,
        polling,
        tls,
    };
    measure(run, &load, &clock, move |orders| Fix::new(cfg, orders))
}

/// The signers of `--key-id/--secret-file` (one for all) or `--keys-file` (one per session).
fn signers(
    key_id: Option<String>,
    secret_file: Option<PathBuf>,
    keys_file: Option<PathBuf>,
    sessions: usize,
) -> Result<Vec<wire::Signer>, String> {
    use base64::Engine as _;
    if let (Some(key_id), Some(path)) = (key_id, secret_file) {
        let secret = portcullis::auth::admin::read_secret_file(&path)?;
        return Ok(vec![wire::Signer { key_id, secret }]);
    }
    let Some(path) = keys_file else {
        return Ok(Vec::new());
    };
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut out = Vec::with_capacity(sessions);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if out.len() == sessions {
            break;
        }
        let (id, secret) = line.trim().split_once(' ').ok_or_else(|| {
            format!(
                "{} line {}: expected `id secret` (as `portcullis keys generate \
                 --secrets-out` writes)",
                path.display(),
                i + 1
            )
        })?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| {
                format!(
                    "{} line {}: the secret is not base64",
                    path.display(),
                    i + 1
                )
            })?;
        out.push(wire::Signer {
            key_id: id.to_string(),
            secret: zeroize::Zeroizing::new(secret),
        });
    }
    if out.len() < sessions {
        return Err(format!(
            "{} has {} key(s) for {sessions} session(s)",
            path.display(),
            out.len()
        ));
    }
    Ok(out)
}

/// The TLS client of `--tls` (None without it); errors name the option.
#[allow(clippy::type_complexity)]
fn tls_client(
    a: &TlsArgs,
    connect: &str,
) -> Result<
    Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    String,
> {
    if !a.tls {
        return Ok(None);
    }
    let opts = portcullis_tools::tls::ClientTls {
        ca: a.ca.clone(),
        cert: a.cert.clone(),
        key: a.key.clone(),
        pin_spki: a.pin_spki.clone(),
        server_name: a.server_name.clone(),
    };
    Ok(Some((opts.config()?, opts.name_for(connect)?)))
}

fn echo(a: EchoArgs) -> ExitCode {
    let clock = Clock::start();
    let size = usize::try_from(a.size).unwrap_or(160);
    let run = Run {
        mode: "echo",
        connect_to: &a.connect,
        sessions: 1,
        handshake_ns: 5 * NS_PER_S,
        mix: Mix::default(),
        polling: Polling::Spin,
        tls: None,
    };
    measure(run, &a.load, &clock, move |_| Echo::new(size))
}

// ------------------------------------------------------------------------------ gen-config

/// The gateway config for `fix --sessions N`: a TOML text.
fn gen_config_text(a: &GenConfigArgs) -> String {
    use std::fmt::Write as _;
    let n = usize::try_from(a.sessions).unwrap_or(1);
    let mut t = String::new();
    if a.auth && !a.sessions_only {
        let _ = write!(
            t,
            "# Signed Logons: create the load key (prints its secret once, also into the file):\n\
             #   portcullis keys --config THIS.toml add load --allow 127.0.0.1/32 \\\n\
             #     --secret-out load.secret"
        );
        for s in 0..n {
            let _ = write!(t, " --comp-id {}", sender_comp_id(&a.sender, s, n));
        }
        if !a.accounts.is_empty() {
            // The load names accounts besides each session's default: a key trades only the
            // accounts it is granted (measuring only: any account).
            let _ = write!(t, " --account '*'");
        }
        let _ = writeln!(
            t,
            "\n# then: loadgen fix ...{} --key-id load --secret-file load.secret",
            if a.sbe { " --sbe" } else { "" }
        );
    }
    if !a.sessions_only {
        // Every session keeps one store segment mapped and pre-faulted: keep N × segment
        // within 1 GiB.
        let seg_mib = (1024 / n).clamp(1, 8);
        let _ = writeln!(
            t,
            "# Gateway config for `loadgen fix{} --sessions {n} --sender {} --target {}`\n\
             # (printed by `loadgen gen-config`). Keys: portcullis.example.toml.\n\
             [gateway]\n\
             busy_poll = {}",
            if a.sbe { " --sbe" } else { "" },
            a.sender,
            a.target,
            !a.blocking
        );
        if let Some(cpu) = a.cpu {
            let _ = writeln!(t, "cpu = {cpu}");
        }
        if let Some(f) = a.flush_interval_ms {
            let _ = writeln!(t, "flush_interval_ms = {f}");
        }
        if let Some(m) = a.max_orders {
            let _ = writeln!(t, "max_orders = {m}");
        }
        if let Some(v) = a.spin_read_conns {
            let _ = writeln!(t, "spin_read_conns = {v}");
        }
        if let Some(v) = a.spin_poll_every {
            let _ = writeln!(t, "spin_poll_every = {v}");
        }
        let _ = writeln!(
            t,
            "data_dir = {:?}\n\
             max_connections = {}\n\
             session_segment_bytes = {}\n\
             # Output room per connection: ≈ 250 B per ExecutionReport.\n\
             send_buffer_bytes = {}\n\
             # Over TLS, loadgen's sessions handshake one after another before the load: at\n\
             # the default budget (100 µs per ms, ~100 handshakes/s) 1,000 sessions would take\n\
             # 10 s to connect (tuning.md \"TLS listeners\").\n\
             tls_handshake_budget_us = 1000\n\n\
             [[listener]]\n\
             address = \"{}\"\n{}\n\
             [[venue]]\n\
             name = \"SIM\"\n\
             kind = \"sim\"\n\
             behaviour = \"{}\"\n",
            a.data_dir.display().to_string(),
            n + 16,
            seg_mib << 20,
            if n > 64 { 256 << 10 } else { 1 << 20 },
            a.listen,
            if a.sbe { "protocol = \"sbe\"\n" } else { "" },
            a.venue
        );
    }
    if a.auth && !a.sessions_only {
        let _ = writeln!(
            t,
            "[auth]\n\
             key_store = \"keys.store\"\n\
             master_key = {{ provider = \"file\", path = \"master.key\" }}\n\
             required = true\n"
        );
    }
    let mut accounts = Vec::with_capacity(n + a.accounts.len());
    for s in 0..n {
        let id = sender_comp_id(&a.sender, s, n);
        if a.sbe {
            let _ = writeln!(
                t,
                "[[session]]\n\
                 protocol = \"sbe\"\n\
                 their_comp_id = \"{id}\"\n\
                 default_account = \"ACC-{id}\""
            );
        } else {
            let _ = writeln!(
                t,
                "[[session]]\n\
                 begin_string = \"FIX.4.4\"\n\
                 our_comp_id = \"{}\"\n\
                 their_comp_id = \"{id}\"\n\
                 default_account = \"ACC-{id}\"",
                a.target
            );
        }
        if !a.accounts.is_empty() {
            // Unauthenticated sessions trade their default account only unless granted more.
            // At most 15 by name (portcullis.example.toml); beyond that: any.
            let list: Vec<String> = if a.accounts.len() < 16 {
                a.accounts.iter().map(|x| format!("{x:?}")).collect()
            } else {
                vec!["\"*\"".to_string()]
            };
            let _ = writeln!(t, "dev_accounts = [{}]", list.join(", "));
        }
        t.push('\n');
        accounts.push(format!("ACC-{id}"));
    }
    accounts.extend(a.accounts.iter().cloned());
    // The gateway's risk checks fail closed: every account and symbol the load uses needs
    // limits. These are far above any load run — for measuring only, never for trading.
    let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let symbols: Vec<&str> = if a.sessions_only {
        Vec::new()
    } else {
        a.symbols.iter().map(String::as_str).collect()
    };
    t.push_str("# Risk limits far above any load run: for measuring only, never for trading.\n");
    t.push_str(&portcullis::config::risk::permissive_toml(&names, &symbols));
    t
}

fn gen_config(a: GenConfigArgs) -> ExitCode {
    let text = gen_config_text(&a);
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

// ------------------------------------------------------------------------------ table

fn table(a: TableArgs) -> ExitCode {
    let mut systems = Vec::new();
    for (label, files) in &a.runs {
        match rounds::read_system(label, files) {
            Ok(s) => systems.push(s),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match rounds::render(&systems, &a.subject, &a.spread) {
        Ok(t) => {
            print!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

// ------------------------------------------------------------------------------ plot

fn plot_files(a: PlotArgs) -> ExitCode {
    let mut series: Vec<Series> = Vec::new();
    for (label, path) in &a.series {
        let read = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| plot::series_from_hgrm(label, &text));
        match read {
            Ok(s) => series.push(s),
            Err(e) => {
                eprintln!("loadgen: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    match plot::write_svg(&a.svg, &a.title, &series) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: cannot draw {e}");
            ExitCode::from(2)
        }
    }
}

// ------------------------------------------------------------------------------ echo server

fn echo_server(a: ServerArgs) -> ExitCode {
    if let Err(e) = pin(a.cpu) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let served = match a.mode {
        ServerMode::Spin => serve_spin(a.listen),
        ServerMode::Mio => serve_mio(a.listen),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: echo-server: {e}");
            ExitCode::from(2)
        }
    }
}

fn announce(addr: io::Result<SocketAddr>) -> io::Result<()> {
    let addr = addr?;
    let mut out = io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()
}

/// Writes all of `bytes`, spinning while the socket is full.
fn write_all_spin(s: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match s.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                std::hint::spin_loop()
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Accepts one connection and spins on non-blocking `read`, echoing, until the peer closes.
fn serve_spin(listen: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    announce(listener.local_addr())?;
    let (mut s, _) = listener.accept()?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => write_all_spin(&mut s, buf.get(..n).unwrap_or_default())?,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                std::hint::spin_loop()
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The same, driven by `mio::Poll::poll` with a zero timeout.
fn serve_mio(listen: SocketAddr) -> io::Result<()> {
    use mio::net::TcpListener as MioListener;
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(0);
    const CONN: Token = Token(1);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let mut listener = MioListener::bind(listen)?;
    announce(listener.local_addr())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conn = loop {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    conn.set_nodelay(true)?;
    poll.registry()
        .register(&mut conn, CONN, Interest::READABLE)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        poll.poll(&mut events, Some(Duration::ZERO))?;
        for ev in events.iter() {
            if ev.token() != CONN {
                continue;
            }
            // Edge-triggered: read until the socket is empty.
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => write_all_spin(&mut conn, buf.get(..n).unwrap_or_default())?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Fix(a) => fix(*a),
        Cmd::Echo(a) => echo(a),
        Cmd::EchoServer(a) => echo_server(a),
        Cmd::GenConfig(a) => gen_config(a),
        Cmd::Plot(a) => plot_files(a),
        Cmd::Table(a) => table(a),
    }
}
