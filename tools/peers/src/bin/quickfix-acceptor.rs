//! COLD (a measuring tool) — `quickfix-acceptor`: a minimal QuickFIX (C++) FIX 4.4 acceptor,
//! through the `quickfix` crate, to drive with `loadgen` beside the gateway (PERF-2). It answers
//! each NewOrderSingle with an ExecutionReport (ExecType New) and nothing else; sessions and
//! sequence numbers are QuickFIX's own. Messages are validated against a QuickFIX data
//! dictionary written from our `fix-specs/FIX44.dict`, so both engines check the same fields.
//!
//! Like the gateway it can busy-poll one pinned thread (`--mode poll`: QuickFIX's
//! `Acceptor::poll`, a zero-timeout readiness call per round) or block (`--mode block`: its own
//! socket thread). Store: QuickFIX's memory store (default) or its file store in a temporary
//! folder. No per-message logging (a null log). Prints `listening on PORT` when it accepts,
//! `answered N orders` at SIGINT/SIGTERM. Exit codes: 0 stopped by a signal; 2 bad usage or a
//! QuickFIX error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use portcullis::fix::encode::write_timestamp;
use portcullis::fix::TimePrecision;
use quickfix::{
    send_to_target, Acceptor, Application, ApplicationCallback, ConnectionHandler,
    FileMessageStoreFactory, FixSocketServerKind, LogFactory, MemoryMessageStoreFactory, Message,
    MsgFromAppError, NullLogger, QuickFixError, SessionId, SessionSettings,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Busy-poll: `Acceptor::poll` in a loop on this (pinned) thread.
    Poll,
    /// QuickFIX's own blocking socket thread.
    Block,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Store {
    Memory,
    File,
}

/// A minimal QuickFIX C++ acceptor answering NewOrderSingle with ExecutionReport (New).
#[derive(Parser, Debug)]
#[command(name = "quickfix-acceptor")]
struct Cli {
    /// TCP port to accept on (all addresses).
    #[arg(long, default_value_t = 9880)]
    port: u16,
    /// Our CompID: the clients' TargetCompID.
    #[arg(long, default_value = "PORTCULLIS")]
    comp_id: String,
    /// Client CompID; with --sessions N > 1, the prefix of LOAD0001 … (as loadgen names them).
    #[arg(long, default_value = "LOAD")]
    sender: String,
    /// Client sessions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    sessions: u64,
    #[arg(long, value_enum, default_value_t = Mode::Poll)]
    mode: Mode,
    #[arg(long, value_enum, default_value_t = Store::Memory)]
    store: Store,
    /// Our dictionary to validate against (translated for QuickFIX); `none` turns validation off.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fix-specs/FIX44.dict"))]
    dictionary: String,
    /// Pin the polling thread (and QuickFIX's threads, which inherit it) to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
}

/// Answers orders; counts them.
struct Answerer {
    answered: AtomicU64,
}

impl Answerer {
    fn execution_report(&self, order: &Message, n: u64) -> Result<Message, QuickFixError> {
        use quickfix::FieldMap;
        let get = |tag: i32| order.get_field(tag);
        let qty = get(38).unwrap_or_else(|| "0".into());
        let mut er = Message::new();
        er.with_header_mut(|h| h.set_field(35, "8"))?;
        er.set_field(37, format!("Q{n}"))?;
        er.set_field(17, format!("QE{n}"))?;
        er.set_field(150, "0")?;
        er.set_field(39, "0")?;
        for tag in [11, 1, 55, 54, 40, 44, 59] {
            if let Some(v) = get(tag) {
                er.set_field(tag, v)?;
            }
        }
        er.set_field(38, qty.as_str())?;
        er.set_field(151, qty)?;
        er.set_field(14, "0")?;
        er.set_field(6, "0")?;
        let mut ts = [0u8; 32];
        let k = write_timestamp(
            &mut ts,
            portcullis::clock::system_utc(),
            TimePrecision::Micros,
        );
        er.set_field(
            60,
            std::str::from_utf8(ts.get(..k).unwrap_or_default()).unwrap_or_default(),
        )?;
        Ok(er)
    }
}

impl ApplicationCallback for Answerer {
    fn on_msg_from_app(&self, msg: &Message, session: &SessionId) -> Result<(), MsgFromAppError> {
        use quickfix::FieldMap;
        let msg_type = msg.with_header(|h| h.get_field(35));
        if msg_type.as_deref() != Some("D") {
            return Err(MsgFromAppError::UnsupportedMessageType);
        }
        let n = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
        match self.execution_report(msg, n) {
            Ok(er) => {
                if let Err(e) = send_to_target(er, session) {
                    eprintln!("quickfix-acceptor: send: {e:?}");
                }
            }
            Err(e) => eprintln!("quickfix-acceptor: building the report: {e:?}"),
        }
        Ok(())
    }
}

/// The QuickFIX settings file text.
fn settings_text(cli: &Cli, dir: &std::path::Path, dictionary: Option<&PathBuf>) -> String {
    let n = usize::try_from(cli.sessions).unwrap_or(1);
    let mut t = format!(
        "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={}\nStartTime=00:00:00\n\
         EndTime=00:00:00\nSocketNodelay=Y\nFileStorePath={}\nCheckLatency=N\n",
        cli.port,
        dir.join("store").display()
    );
    match dictionary {
        Some(p) => t.push_str(&format!(
            "UseDataDictionary=Y\nDataDictionary={}\n",
            p.display()
        )),
        None => t.push_str("UseDataDictionary=N\n"),
    }
    for s in 0..n {
        let client = if n <= 1 {
            cli.sender.clone()
        } else {
            let width = n.to_string().len().max(4);
            format!("{}{:0width$}", cli.sender, s + 1)
        };
        t.push_str(&format!(
            "\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID={}\nTargetCompID={client}\n",
            cli.comp_id
        ));
    }
    t
}

fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(id) = cpu else { return Ok(()) };
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    if !ids.iter().any(|c| c.id == id) {
        return Err(format!("--cpu {id}: no such CPU"));
    }
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        return Err(format!("--cpu {id}: could not pin the thread"));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<u64, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let dictionary = if cli.dictionary == "none" {
        None
    } else {
        let text = std::fs::read_to_string(&cli.dictionary)
            .map_err(|e| format!("--dictionary {}: {e}", cli.dictionary))?;
        let xml = portcullis_peers::quickfix_dictionary(&text)
            .map_err(|e| format!("--dictionary {}: {e}", cli.dictionary))?;
        let path = dir.path().join("FIX44.xml");
        std::fs::write(&path, xml).map_err(|e| format!("{}: {e}", path.display()))?;
        Some(path)
    };
    let cfg = dir.path().join("acceptor.cfg");
    std::fs::write(&cfg, settings_text(&cli, dir.path(), dictionary.as_ref()))
        .map_err(|e| format!("{}: {e}", cfg.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal: {e}"))?;
    }
    pin(cli.cpu)?;
    let qf = |e: QuickFixError| format!("quickfix: {e:?}");
    let settings = SessionSettings::try_from_path(&cfg).map_err(qf)?;
    let callbacks = Answerer {
        answered: AtomicU64::new(0),
    };
    let app = Application::try_new(&callbacks).map_err(qf)?;
    let log = LogFactory::try_new(&NullLogger).map_err(qf)?;
    let memory;
    let file;
    match cli.store {
        Store::Memory => {
            memory = MemoryMessageStoreFactory::new();
            serve(&cli, &settings, &app, &memory, &log, &stop)?;
        }
        Store::File => {
            file = FileMessageStoreFactory::try_new(&settings).map_err(qf)?;
            serve(&cli, &settings, &app, &file, &log, &stop)?;
        }
    }
    Ok(callbacks.answered.load(Ordering::Relaxed))
}

fn serve<S: quickfix::FfiMessageStoreFactory>(
    cli: &Cli,
    settings: &SessionSettings,
    app: &Application<Answerer>,
    store: &S,
    log: &LogFactory<NullLogger>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let qf = |e: QuickFixError| format!("quickfix: {e:?}");
    let mut acceptor = Acceptor::try_new(
        settings,
        app,
        store,
        log,
        FixSocketServerKind::SingleThreaded,
    )
    .map_err(qf)?;
    match cli.mode {
        Mode::Poll => {
            // The first poll opens the listening socket.
            acceptor.poll().map_err(qf)?;
            println!("listening on {}", cli.port);
            while !stop.load(Ordering::Relaxed) {
                acceptor.poll().map_err(qf)?;
            }
        }
        Mode::Block => {
            acceptor.start().map_err(qf)?;
            println!("listening on {}", cli.port);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    acceptor.stop().map_err(qf)?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(n) => {
            println!("answered {n} orders");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quickfix-acceptor: {e}");
            ExitCode::from(2)
        }
    }
}
