//! COLD (a measuring tool) — `loadgen`: offers FIX orders to the gateway at a fixed open-loop
//! rate (or closed loop) and reports the latency distribution, measured from each order's
//! intended send time (coordinated omission corrected); and the TCP echo floor to compare with.
//!
//! One thread sends and reads, busy-polling a non-blocking TCP_NODELAY socket, optionally pinned
//! (`--cpu`). Exit codes: 0 the run completed; 1 the peer ended it early or answers were
//! missing; 2 bad usage, connection or logon failure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_tools::loadgen::wire::{self, Clock, Echo, Fix, FixConfig, Load, Plan, Wire};
use portcullis_tools::loadgen::{orders_for, write_hgrm, Recorder, RunInfo, NS_PER_S};

/// Load generator and latency floor for Portcullis.
#[derive(Parser, Debug)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; size does not matter
enum Cmd {
    /// One FIX 4.4 session sending NewOrderSingle; latency to the first ExecutionReport.
    Fix(FixArgs),
    /// The floor's server: echoes what one connection sends.
    EchoServer(ServerArgs),
    /// The floor's client: fixed-size messages to `echo-server`, same schedule and outputs.
    Echo(EchoArgs),
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
}

#[derive(Args, Debug)]
struct FixArgs {
    /// Gateway address, host:port.
    #[arg(long)]
    connect: String,
    /// Our SenderCompID <49>.
    #[arg(long, default_value = "LOAD")]
    sender: String,
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
    /// Account <1> on every order (else the session's default).
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    load: LoadArgs,
}

/// TLS to the gateway (as fixclient's options).
#[derive(Args, Debug)]
struct TlsArgs {
    /// Connect over TLS; needs --ca or --pin-spki.
    #[arg(long)]
    tls: bool,
    /// TLS: PEM CA certificate(s) the gateway's certificate must chain to.
    #[arg(long, value_name = "PATH")]
    ca: Option<PathBuf>,
    /// TLS: our client certificate (PEM), for mTLS listeners; needs --key.
    #[arg(long, value_name = "PATH")]
    cert: Option<PathBuf>,
    /// TLS: the private key of --cert (PEM).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// TLS: SHA-256 of the gateway certificate's SubjectPublicKeyInfo; refuse any other.
    #[arg(long, value_name = "SHA256HEX")]
    pin_spki: Option<String>,
    /// TLS: the name the gateway's certificate must carry (default: the host of --connect).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
}

impl TlsArgs {
    fn client(&self) -> Result<Option<portcullis_tools::tls::ClientTls>, String> {
        let any = self.ca.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.pin_spki.is_some()
            || self.server_name.is_some();
        if !self.tls {
            return if any {
                Err("--ca, --cert, --key, --pin-spki and --server-name need --tls".into())
            } else {
                Ok(None)
            };
        }
        Ok(Some(portcullis_tools::tls::ClientTls {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            pin_spki: self.pin_spki.clone(),
            server_name: self.server_name.clone(),
        }))
    }
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

/// The TLS handshake, blocking (before the measured run); prints what was negotiated.
fn tls_handshake(
    t: &portcullis_tools::tls::ClientTls,
    addr: &str,
    stream: &mut TcpStream,
) -> Result<rustls::ClientConnection, String> {
    let config = t.config()?;
    let name = t.name_for(addr)?;
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(|e| format!("socket setup: {e}"))?;
    let conn = portcullis_tools::tls::handshake(stream, config, name, Duration::from_secs(5))
        .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
    eprintln!("loadgen: TLS: {}", portcullis_tools::tls::describe(&conn));
    Ok(conn)
}

fn ns(s: f64) -> u64 {
    (s * NS_PER_S as f64).round() as u64
}

/// Runs the load over `stream` with `wire`, prints the table, writes the files.
fn measure<W: Wire>(
    mode: &str,
    load: &LoadArgs,
    clock: &Clock,
    connect_to: &str,
    tls: Option<&portcullis_tools::tls::ClientTls>,
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
    let plan = Plan {
        load: plan_load,
        total_ns,
        orders,
        drain_ns: load.drain_ms.saturating_mul(1_000_000),
        handshake_ns: 5 * NS_PER_S,
    };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    if let Err(e) = pin(load.cpu) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let mut stream = match connect(connect_to) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let session = match tls.map(|t| tls_handshake(t, connect_to, &mut stream)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut w = make(orders);
    let outcome = match wire::run_over(stream, session, &mut w, &plan, clock, &mut rec) {
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
        mode: mode.to_string(),
        closed_loop: load.closed_loop,
        target_rate: (!load.closed_loop).then_some(load.rate),
        window: load.closed_loop.then_some(load.window),
        duration_s: load.duration_s,
        warmup_s: load.warmup_s,
        nproc,
        ended: ended.clone(),
    });
    print!("{}", summary.table());
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
    if let Some(path) = &load.json {
        let written = serde_json::to_string_pretty(&summary)
            .map_err(io::Error::other)
            .and_then(|s| std::fs::write(path, s + "\n"));
        if let Err(e) = written {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            code = 2;
        }
    }
    ExitCode::from(code)
}

fn fix(a: FixArgs) -> ExitCode {
    if a.symbols.iter().any(|s| s.is_empty()) {
        eprintln!("loadgen: --symbols has an empty symbol");
        return ExitCode::from(2);
    }
    // The wire's times are on `clock`; `utc0` is read at its zero for SendingTime.
    let clock = Clock::start();
    let utc0 = portcullis_tools::now().0;
    let run_id = utc0 / 1_000_000; // ms: unique across runs of one session
    let FixArgs {
        connect,
        sender,
        target,
        reset,
        heartbeat,
        symbols,
        account,
        tls,
        load,
    } = a;
    let tls = match tls.client() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = FixConfig {
        sender,
        target,
        heartbeat_s: heartbeat,
        reset,
        symbols,
        account,
        utc0,
        run_id,
    };
    measure(
        "fix",
        &load,
        &clock,
        &connect,
        tls.as_ref(),
        move |orders| Fix::new(cfg, orders),
    )
}

fn echo(a: EchoArgs) -> ExitCode {
    let clock = Clock::start();
    let size = usize::try_from(a.size).unwrap_or(160);
    measure("echo", &a.load, &clock, &a.connect, None, move |_| {
        Echo::new(size)
    })
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
        Cmd::Fix(a) => fix(a),
        Cmd::Echo(a) => echo(a),
        Cmd::EchoServer(a) => echo_server(a),
    }
}
