//! COLD — `fixclient`: a scriptable FIX 4.4/4.2 initiator for people and tests.
//!
//! Logs on through the library's own session layer (`Session<MemoryStore>`, `Role::Initiator`)
//! over one blocking-with-timeout `TcpStream`, runs the actions in order, printing every message
//! it sends (`->`) and receives (`<-`), then logs out and prints a one-line summary.
//!
//! Exit codes: 0 everything was answered and nothing rejected; 1 something was rejected
//! (OrdStatus 8, Reject, BusinessMessageReject, OrderCancelReject, refused mass cancel) or not
//! answered in time; 2 bad usage, connection or logon failure, or the connection was lost.

use std::collections::HashSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use portcullis::fix::decode::parse_decimal;
use portcullis::fix::{tags, BeginString, Message, TimePrecision, Writer};
use portcullis::model::{
    CompId, OrdType, Price, Qty, Side, TimeInForce, PRICE_DECIMALS, QTY_DECIMALS,
};
use portcullis::session::{
    DisconnectReason, Inbound, MemoryStore, MessageStore, Role, Session, SessionConfig,
};
use portcullis_tools::link::{receive, Incoming, Link};
use portcullis_tools::{now, show};

const ACTIONS_HELP: &str = "\
ACTION (several may follow each other on the command line; a script file has one per line, `#` comments;
script actions run before command-line ones):
  order --symbol AAPL --side buy|sell|short --qty 100 [--price 10.5] [--type limit|market] [--tif day|gtc|ioc|fok] [--account A] [--dest VENUE] [--id CLORDID]
  cancel [--id ORIGCLORDID]            (default: the last order sent)
  replace [--id ORIGCLORDID] --qty N [--price P]
  status [--id CLORDID]
  mass-cancel [--symbol S]             (4.4 and --sbe only; all orders if no symbol)
  sleep MS
  wait                                  (wait for the answers to everything sent so far)
cancel, replace and status also take --symbol S --side SIDE for an order not sent in this run.

With --sbe the same actions go as SBE messages over a FIXP session (Negotiate and Establish signed
with the key; fix-specs/FIXP-SESSION.md); every frame sent and received is printed decoded, prices
and quantities as decimals. ClOrdIDs (--id) are at most 20 characters over SBE.

Exit code: 0 all answered, 1 something rejected or unanswered, 2 usage, connection or logon failure.";

/// A scriptable FIX 4.4/4.2 client: logs on, runs ACTIONs, prints what comes back, logs out.
#[derive(Parser, Debug)]
#[command(
    name = "fixclient",
    override_usage = "fixclient --connect 127.0.0.1:9878 --sender CLIENT1 --target PORTCULLIS [--key-id ID --secret-file PATH] [--fix42] [--heartbeat 30] [--reset] [--timeout-ms 5000] [--script FILE] [--tls [--ca PEM] [--cert PEM --key PEM] [--pin-spki SHA256HEX] [--server-name NAME]] [ACTION ...]
       fixclient --sbe --connect 127.0.0.1:9881 --session BIN1 --key-id ID --secret-file PATH [--uuid N] [--keep-alive-ms 10000] [--timeout-ms 5000] [--script FILE] [--tls ...] [ACTION ...]",
    after_help = ACTIONS_HELP
)]
struct Args {
    /// Gateway address, host:port.
    #[arg(long)]
    connect: String,
    /// Our SenderCompID <49> (FIX).
    #[arg(long, required_unless_present = "sbe")]
    sender: Option<String>,
    /// The gateway's CompID: our TargetCompID <56> (FIX).
    #[arg(long, required_unless_present = "sbe")]
    target: Option<String>,
    /// Binary order entry: SBE over a FIXP session (fix-specs/FIXP-SESSION.md) instead of FIX;
    /// needs --session, --key-id and --secret-file. Same actions; ClOrdIDs at most 20
    /// characters.
    #[arg(long, requires_all = ["session", "key_id"], conflicts_with_all = ["sender", "target", "fix42", "reset"])]
    sbe: bool,
    /// SBE: our session as the gateway's operator configured it (the FIX SenderCompID).
    #[arg(long, requires = "sbe")]
    session: Option<String>,
    /// SBE: the session uuid to negotiate (default: the current UTC time in nanoseconds, new on
    /// every run).
    #[arg(long, requires = "sbe", value_parser = clap::value_parser!(u64).range(1..))]
    uuid: Option<u64>,
    /// SBE: keep_alive_interval asked for in Establish, ms (the gateway accepts 1000–60000 by
    /// default).
    #[arg(long, requires = "sbe", default_value_t = 10_000)]
    keep_alive_ms: u32,
    /// Speak FIX 4.2 instead of FIX 4.4.
    #[arg(long)]
    fix42: bool,
    /// HeartBtInt <108> asked for, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat: u32,
    /// Send ResetSeqNumFlag=Y: both sides start again at 1 (the gateway keeps sequence numbers
    /// across connections, so this is needed from the second connection on).
    #[arg(long)]
    reset: bool,
    /// How long to wait for the Logon answer and for each action's answer, milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Actions to run, one per line (before the command-line ones).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Also print every message raw, `|` for SOH.
    #[arg(long)]
    raw: bool,
    /// Connect over TLS (1.3, or 1.2 if that is all the server speaks). Needs --ca or
    /// --pin-spki.
    #[arg(long)]
    tls: bool,
    /// TLS: PEM CA certificate(s) the gateway's certificate must chain to.
    #[arg(long, value_name = "PATH")]
    ca: Option<PathBuf>,
    /// TLS: our client certificate (PEM) for listeners that require one (mTLS); needs --key.
    #[arg(long, value_name = "PATH")]
    cert: Option<PathBuf>,
    /// TLS: the private key of --cert (PEM).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// TLS: refuse to proceed unless the SHA-256 of the server certificate's
    /// SubjectPublicKeyInfo is this (64 hex digits; fixclient prints it after each handshake).
    #[arg(long, value_name = "SHA256HEX")]
    pin_spki: Option<String>,
    /// TLS: the name the server certificate must carry (default: the host of --connect).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// API key id for a signed Logon (Username 553; fix-specs/SIGNED-LOGON.md). Needs
    /// --secret-file.
    #[arg(long, requires = "secret_file")]
    key_id: Option<String>,
    /// File holding the key's secret (base64, as `portcullis keys add` printed it).
    #[arg(long, requires = "key_id")]
    secret_file: Option<PathBuf>,
    /// Actions; see below.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ACTION"
    )]
    actions: Vec<String>,
}

/// How long the client keeps listening after an answer for what follows it at once (fills after
/// the New, cancels after a mass cancel report).
const SETTLE: Duration = Duration::from_millis(200);
/// Read timeout: the granularity of timers and of the wait loops.
const TICK: Duration = Duration::from_millis(10);

// ------------------------------------------------------------------------------ actions

#[derive(Clone, Debug, PartialEq)]
struct OrderSpec {
    symbol: String,
    side: Side,
    qty: Qty,
    price: Option<Price>,
    ord_type: OrdType,
    tif: TimeInForce,
    account: Option<String>,
    dest: Option<String>,
    id: Option<String>,
}

/// Names an existing order: by ClOrdID (default: the last order sent), with symbol and side for
/// orders this run did not send.
#[derive(Clone, Debug, Default, PartialEq)]
struct OrderRef {
    id: Option<String>,
    symbol: Option<String>,
    side: Option<Side>,
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Order(OrderSpec),
    Cancel(OrderRef),
    Replace {
        order: OrderRef,
        qty: Qty,
        price: Option<Price>,
    },
    Status(OrderRef),
    MassCancel {
        symbol: Option<String>,
    },
    Sleep(u64),
    Wait,
}

const ACTION_WORDS: &str = "order, cancel, replace, status, mass-cancel, sleep, wait";

/// Parses action words. `--name value` options follow their action word.
fn parse_actions(words: &[String]) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    let mut i = 0;
    while let Some(word) = words.get(i) {
        i += 1;
        let action = match word.as_str() {
            "order" => parse_order(take_options(word, words, &mut i)?)?,
            "cancel" => Action::Cancel(parse_ref(take_options(word, words, &mut i)?)?),
            "status" => Action::Status(parse_ref(take_options(word, words, &mut i)?)?),
            "replace" => {
                let mut opts = take_options(word, words, &mut i)?;
                let qty = match opts.take("qty") {
                    Some(q) => qty(&q)?,
                    None => return Err("replace: --qty is required".into()),
                };
                let price = opts.take("price").map(|p| price(&p)).transpose()?;
                Action::Replace {
                    order: parse_ref(opts)?,
                    qty,
                    price,
                }
            }
            "mass-cancel" => {
                let mut opts = take_options(word, words, &mut i)?;
                let symbol = opts.take("symbol");
                opts.finish()?;
                Action::MassCancel { symbol }
            }
            "sleep" => {
                let ms = words
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!(
                            "sleep needs a number of milliseconds, got {}",
                            words
                                .get(i)
                                .map_or("nothing".to_string(), |w| format!("`{w}`"))
                        )
                    })?;
                i += 1;
                Action::Sleep(ms)
            }
            "wait" => Action::Wait,
            other => {
                return Err(format!(
                    "unknown action `{other}` (expected one of {ACTION_WORDS})"
                ))
            }
        };
        actions.push(action);
    }
    Ok(actions)
}

/// `--name value` pairs of one action.
struct Options {
    action: String,
    pairs: Vec<(String, String)>,
}

impl Options {
    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(at).1)
    }
    /// Errors on any option not taken.
    fn finish(self) -> Result<(), String> {
        match self.pairs.first() {
            Some((n, _)) => Err(format!("{}: unknown option `--{n}`", self.action)),
            None => Ok(()),
        }
    }
}

fn take_options(action: &str, words: &[String], i: &mut usize) -> Result<Options, String> {
    let mut pairs = Vec::new();
    while let Some(w) = words.get(*i) {
        let Some(name) = w.strip_prefix("--") else {
            break;
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let v = words
                    .get(*i + 1)
                    .ok_or_else(|| format!("{action}: `--{name}` needs a value"))?;
                *i += 1;
                (name.to_string(), v.clone())
            }
        };
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(format!("{action}: `--{name}` given twice"));
        }
        pairs.push((name, value));
        *i += 1;
    }
    Ok(Options {
        action: action.to_string(),
        pairs,
    })
}

fn parse_order(mut o: Options) -> Result<Action, String> {
    let symbol = o.take("symbol").ok_or("order: --symbol is required")?;
    check_len("order --symbol", &symbol, 24)?;
    let side = side(&o.take("side").ok_or("order: --side is required")?)?;
    let qty = qty(&o.take("qty").ok_or("order: --qty is required")?)?;
    let price = o.take("price").map(|p| price(&p)).transpose()?;
    let ord_type = match o.take("type").as_deref() {
        None if price.is_some() => OrdType::Limit,
        None => OrdType::Market,
        Some("limit") => OrdType::Limit,
        Some("market") => OrdType::Market,
        Some(t) => return Err(format!("order: --type `{t}` is not limit or market")),
    };
    if ord_type == OrdType::Limit && price.is_none() {
        return Err("order: a limit order needs --price".into());
    }
    let tif = match o.take("tif").as_deref() {
        None | Some("day") => TimeInForce::Day,
        Some("gtc") => TimeInForce::GoodTillCancel,
        Some("ioc") => TimeInForce::ImmediateOrCancel,
        Some("fok") => TimeInForce::FillOrKill,
        Some(t) => return Err(format!("order: --tif `{t}` is not day, gtc, ioc or fok")),
    };
    let account = o.take("account");
    let dest = o.take("dest");
    let id = o.take("id");
    if let Some(id) = &id {
        check_len("order --id", id, 40)?;
    }
    o.finish()?;
    Ok(Action::Order(OrderSpec {
        symbol,
        side,
        qty,
        price,
        ord_type,
        tif,
        account,
        dest,
        id,
    }))
}

fn parse_ref(mut o: Options) -> Result<OrderRef, String> {
    let r = OrderRef {
        id: o.take("id"),
        symbol: o.take("symbol"),
        side: o.take("side").map(|s| side(&s)).transpose()?,
    };
    o.finish()?;
    Ok(r)
}

fn check_len(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what} `{v}` must be 1–{max} printable ASCII characters"
        ));
    }
    Ok(())
}

fn side(v: &str) -> Result<Side, String> {
    match v {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        "short" => Ok(Side::SellShort),
        _ => Err(format!("side `{v}` is not buy, sell or short")),
    }
}

fn qty(v: &str) -> Result<Qty, String> {
    match parse_decimal(v.as_bytes(), QTY_DECIMALS) {
        Some(q) if q > 0 => Ok(Qty(q)),
        _ => Err(format!("quantity `{v}` is not a positive number")),
    }
}

fn price(v: &str) -> Result<Price, String> {
    parse_decimal(v.as_bytes(), PRICE_DECIMALS)
        .map(Price)
        .ok_or_else(|| format!("price `{v}` is not a number"))
}

/// Actions of a script file: one per line, `#` starts a comment.
fn script_words(path: &PathBuf) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect())
}

fn all_actions(args: &Args) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    if let Some(path) = &args.script {
        for (n, line) in script_words(path)?.iter().enumerate() {
            let parsed = parse_actions(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            actions.extend(parsed);
        }
    }
    actions.extend(parse_actions(&args.actions)?);
    for a in actions.iter().filter(|_| args.sbe) {
        if let Action::Order(OrderSpec { id: Some(id), .. })
        | Action::Cancel(OrderRef { id: Some(id), .. })
        | Action::Replace {
            order: OrderRef { id: Some(id), .. },
            ..
        }
        | Action::Status(OrderRef { id: Some(id), .. }) = a
        {
            if id.len() > 20 {
                return Err(format!(
                    "--id `{id}`: ClOrdIDs are at most 20 characters over SBE"
                ));
            }
        }
    }
    let mut orders = 0;
    for a in &actions {
        match a {
            Action::Order(_) => orders += 1,
            Action::Cancel(r) | Action::Replace { order: r, .. } | Action::Status(r)
                if r.id.is_none() && orders == 0 =>
            {
                return Err("cancel/replace/status without --id needs an order before it".into())
            }
            Action::MassCancel { .. } if args.fix42 => {
                return Err("mass-cancel is FIX 4.4 only (OrderMassCancelRequest <q>)".into())
            }
            _ => {}
        }
    }
    Ok(actions)
}

// ------------------------------------------------------------------------------ client

/// An order this run sent, as far as we know it.
#[derive(Clone, Debug)]
struct KnownOrder {
    /// The current ClOrdID (changes when a replace is acknowledged).
    cl: String,
    /// Every ClOrdID it had.
    history: Vec<String>,
    symbol: String,
    side: Side,
    qty: Qty,
    price: Option<Price>,
    ord_type: OrdType,
    tif: TimeInForce,
    account: Option<String>,
}

/// Something we sent that expects an answer.
#[derive(Debug)]
struct Request {
    what: String,
    cl: String,
    seq: u64,
    answered: bool,
}

#[derive(Debug, Default)]
struct Stats {
    sent: u32,
    filled: HashSet<String>,
    canceled: HashSet<String>,
    rejected: u32,
    unanswered: u32,
    failed: u32,
}

struct Client {
    link: Link,
    session: Session<MemoryStore>,
    raw: bool,
    timeout: Duration,
    sender: String,
    started_ms: u64,
    next_id: u64,
    orders: Vec<KnownOrder>,
    requests: Vec<Request>,
    stats: Stats,
    /// When the last application message arrived.
    last_app: Instant,
    /// Why the connection ended, once it did.
    ended: Option<Ended>,
    /// Key id and secret for a signed Logon.
    signer: Option<(String, zeroize::Zeroizing<Vec<u8>>)>,
}

#[derive(Debug)]
enum Ended {
    Session(DisconnectReason, Option<String>),
    Closed,
    TooLarge,
}

#[allow(clippy::disallowed_methods)] // cold tool; monotonic time comes from the clock module
fn instant() -> Instant {
    portcullis::clock::monotonic()
}

impl Client {
    fn print_rx(&self, bytes: &[u8]) {
        println!("<- {}", show::readable_bytes(bytes));
        if self.raw {
            println!("   {}", show::raw(bytes));
        }
    }

    /// Prints the (admin) messages waiting in the outbound buffer.
    fn print_pending(&self) {
        let mut rest = self.link.out.pending();
        while let portcullis::fix::Frame::Message { len, .. } =
            portcullis::fix::frame(rest, 1 << 20)
        {
            let (m, tail) = rest.split_at(len.min(rest.len()));
            println!("-> {}", show::readable_bytes(m));
            if self.raw {
                println!("   {}", show::raw(m));
            }
            rest = tail;
        }
    }

    fn print_tx(&self, seq: Option<u64>, what: &str) {
        match seq.and_then(|s| self.session.store().outbound(s)) {
            Some(bytes) => {
                println!("-> {}", show::readable_bytes(bytes));
                if self.raw {
                    println!("   {}", show::raw(bytes));
                }
            }
            None => println!("-> {what}"),
        }
    }

    /// Reads for up to one tick, feeds the session, answers its timers, flushes.
    fn pump(&mut self) {
        if self.ended.is_some() {
            return;
        }
        self.link.read();
        while let Some(incoming) = self.link.next_incoming() {
            match incoming {
                Incoming::Message(bytes) => {
                    let done = receive(&mut self.session, &mut self.link.out, bytes, now());
                    for (bytes, inbound) in done {
                        self.print_rx(&bytes);
                        self.on_received(&bytes, inbound);
                    }
                }
                Incoming::Garbled(bytes) => {
                    self.session.on_garbled();
                    println!(
                        "<- garbled (bad BodyLength or CheckSum): {}",
                        show::raw(&bytes)
                    );
                }
                Incoming::TooLarge => {
                    self.ended = Some(Ended::TooLarge);
                }
            }
            if self.ended.is_some() {
                break;
            }
        }
        if self.ended.is_none() {
            if let Some(reason) = self.session.on_timer(now(), &mut self.link.out) {
                self.ended = Some(Ended::Session(reason, None));
            }
        }
        self.link.flush();
        if self.ended.is_none() && self.link.closed {
            self.session.on_disconnect(now());
            self.ended = Some(Ended::Closed);
        }
    }

    fn on_received(&mut self, bytes: &[u8], inbound: Inbound) {
        let Ok(m) = Message::decode(bytes) else {
            return;
        };
        if let Inbound::Disconnect(reason) = inbound {
            let text = m
                .get(tags::TEXT)
                .map(|t| String::from_utf8_lossy(t).into_owned());
            self.ended = Some(Ended::Session(reason, text));
            return;
        }
        let s = |tag| {
            m.get(tag)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let t = m.msg_type_bytes();
        if matches!(t, b"8" | b"9" | b"r" | b"j") {
            self.last_app = instant();
        }
        match t {
            b"8" => {
                let cl = s(tags::CL_ORD_ID);
                let exec_type = s(tags::EXEC_TYPE);
                let status = s(tags::ORD_STATUS);
                let order_id = s(tags::ORDER_ID);
                let key = if order_id.is_empty() || order_id == "NONE" {
                    cl.clone()
                } else {
                    order_id
                };
                match status.as_str() {
                    "2" => {
                        self.stats.filled.insert(key);
                    }
                    "4" => {
                        self.stats.canceled.insert(key);
                    }
                    "8" => self.stats.rejected += 1,
                    _ => {}
                }
                if exec_type == "5" {
                    let orig = s(tags::ORIG_CL_ORD_ID);
                    if let Some(o) = self.orders.iter_mut().find(|o| o.cl == orig) {
                        o.cl = cl.clone();
                        o.history.push(cl.clone());
                        if let Ok(Some(q)) = m.qty(tags::ORDER_QTY) {
                            o.qty = q;
                        }
                        if let Ok(Some(p)) = m.price(tags::PRICE) {
                            o.price = Some(p);
                        }
                    }
                }
                // Pending states announce the answer; they are not it.
                if !matches!(exec_type.as_str(), "A" | "6" | "E") {
                    self.answer(|r| r.cl == cl);
                }
            }
            b"9" => {
                self.stats.rejected += 1;
                let cl = s(tags::CL_ORD_ID);
                self.answer(|r| r.cl == cl);
            }
            b"r" => {
                if m.get(tags::MASS_CANCEL_RESPONSE) == Some(b"0") {
                    self.stats.rejected += 1;
                }
                let cl = s(tags::CL_ORD_ID);
                self.answer(|r| r.cl == cl);
            }
            b"3" | b"j" => {
                self.stats.rejected += 1;
                let seq = m.uint(tags::REF_SEQ_NUM).ok().flatten();
                let id = s(tags::BUSINESS_REJECT_REF_ID);
                self.answer(|r| Some(r.seq) == seq || (!id.is_empty() && r.cl == id));
            }
            _ => {}
        }
    }

    fn answer(&mut self, matches: impl Fn(&Request) -> bool) {
        if let Some(r) = self.requests.iter_mut().find(|r| !r.answered && matches(r)) {
            r.answered = true;
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}-{}", self.sender, self.started_ms, self.next_id)
    }

    // -------------------------------------------------------------------------- sending

    /// Sends an application message and records what should answer it.
    fn send(&mut self, msg_type: &[u8], what: String, cl: String, body: impl FnOnce(&mut Writer)) {
        match self
            .session
            .send_app(msg_type, now(), &mut self.link.out, body)
        {
            Ok(seq) => {
                self.print_tx(Some(seq), &what);
                self.requests.push(Request {
                    what,
                    cl,
                    seq,
                    answered: false,
                });
                self.stats.sent += 1;
                self.link.flush();
            }
            Err(e) => {
                eprintln!("fixclient: could not send {what}: {e:?}");
                self.stats.failed += 1;
            }
        }
    }

    fn order(&mut self, o: &OrderSpec) {
        let cl = o.id.clone().unwrap_or_else(|| self.new_id());
        let t = now();
        self.send(b"D", format!("order {cl}"), cl.clone(), |w| {
            w.str(tags::CL_ORD_ID, cl.as_bytes());
            if let Some(a) = &o.account {
                w.str(tags::ACCOUNT, a.as_bytes());
            }
            w.char(tags::HANDL_INST, b'1');
            if let Some(d) = &o.dest {
                w.str(tags::EX_DESTINATION, d.as_bytes());
            }
            w.str(tags::SYMBOL, o.symbol.as_bytes());
            w.char(tags::SIDE, o.side.to_fix());
            w.timestamp(tags::TRANSACT_TIME, t, TimePrecision::Millis);
            w.qty(tags::ORDER_QTY, o.qty);
            w.char(tags::ORD_TYPE, o.ord_type.to_fix());
            if let Some(p) = o.price {
                w.price(tags::PRICE, p);
            }
            w.char(tags::TIME_IN_FORCE, o.tif.to_fix());
        });
        self.orders.push(KnownOrder {
            cl: cl.clone(),
            history: vec![cl],
            symbol: o.symbol.clone(),
            side: o.side,
            qty: o.qty,
            price: o.price,
            ord_type: o.ord_type,
            tif: o.tif,
            account: o.account.clone(),
        });
    }

    /// The order `r` names: a known one, or one described by its symbol and side.
    fn resolve(&mut self, action: &str, r: &OrderRef) -> Option<KnownOrder> {
        let known = match &r.id {
            Some(id) => self
                .orders
                .iter()
                .find(|o| o.cl == *id || o.history.contains(id))
                .cloned()
                .map(|mut o| {
                    // An explicit id is used as given, even an older one of a replaced order.
                    o.cl = id.clone();
                    o
                }),
            None => self.orders.last().cloned(),
        };
        match (known, &r.id, &r.symbol, r.side) {
            (Some(mut o), _, symbol, side) => {
                if let Some(s) = symbol {
                    o.symbol = s.clone();
                }
                if let Some(s) = side {
                    o.side = s;
                }
                Some(o)
            }
            (None, Some(id), Some(symbol), Some(side)) => Some(KnownOrder {
                cl: id.clone(),
                history: vec![id.clone()],
                symbol: symbol.clone(),
                side,
                qty: Qty::ZERO,
                price: None,
                ord_type: OrdType::Limit,
                tif: TimeInForce::Day,
                account: None,
            }),
            (None, id, _, _) => {
                eprintln!(
                    "fixclient: {action}: no order {} was sent in this run; give --symbol and --side too",
                    id.as_deref().unwrap_or("?")
                );
                self.stats.failed += 1;
                None
            }
        }
    }

    fn cancel(&mut self, r: &OrderRef) {
        let Some(o) = self.resolve("cancel", r) else {
            return;
        };
        let cl = self.new_id();
        let t = now();
        self.send(b"F", format!("cancel {}", o.cl), cl.clone(), |w| {
            w.str(tags::ORIG_CL_ORD_ID, o.cl.as_bytes());
            w.str(tags::CL_ORD_ID, cl.as_bytes());
            if let Some(a) = &o.account {
                w.str(tags::ACCOUNT, a.as_bytes());
            }
            w.str(tags::SYMBOL, o.symbol.as_bytes());
            w.char(tags::SIDE, o.side.to_fix());
            w.timestamp(tags::TRANSACT_TIME, t, TimePrecision::Millis);
            if o.qty > Qty::ZERO {
                w.qty(tags::ORDER_QTY, o.qty);
            }
        });
    }

    fn replace(&mut self, r: &OrderRef, qty: Qty, price: Option<Price>) {
        let Some(o) = self.resolve("replace", r) else {
            return;
        };
        let cl = self.new_id();
        let t = now();
        let price = price.or(o.price);
        let ord_type = if price.is_some() {
            o.ord_type
        } else {
            OrdType::Market
        };
        self.send(b"G", format!("replace {}", o.cl), cl.clone(), |w| {
            w.str(tags::ORIG_CL_ORD_ID, o.cl.as_bytes());
            w.str(tags::CL_ORD_ID, cl.as_bytes());
            if let Some(a) = &o.account {
                w.str(tags::ACCOUNT, a.as_bytes());
            }
            w.char(tags::HANDL_INST, b'1');
            w.str(tags::SYMBOL, o.symbol.as_bytes());
            w.char(tags::SIDE, o.side.to_fix());
            w.timestamp(tags::TRANSACT_TIME, t, TimePrecision::Millis);
            w.qty(tags::ORDER_QTY, qty);
            w.char(tags::ORD_TYPE, ord_type.to_fix());
            if let Some(p) = price {
                w.price(tags::PRICE, p);
            }
            w.char(tags::TIME_IN_FORCE, o.tif.to_fix());
        });
    }

    fn status(&mut self, r: &OrderRef) {
        let Some(o) = self.resolve("status", r) else {
            return;
        };
        self.send(b"H", format!("status {}", o.cl), o.cl.clone(), |w| {
            w.str(tags::CL_ORD_ID, o.cl.as_bytes());
            w.str(tags::SYMBOL, o.symbol.as_bytes());
            w.char(tags::SIDE, o.side.to_fix());
        });
    }

    fn mass_cancel(&mut self, symbol: Option<&str>) {
        let cl = self.new_id();
        let t = now();
        self.send(b"q", format!("mass-cancel {cl}"), cl.clone(), |w| {
            w.str(tags::CL_ORD_ID, cl.as_bytes());
            match symbol {
                Some(s) => {
                    w.char(tags::MASS_CANCEL_REQUEST_TYPE, b'1');
                    w.str(tags::SYMBOL, s.as_bytes());
                }
                None => {
                    w.char(tags::MASS_CANCEL_REQUEST_TYPE, b'7');
                }
            }
            w.timestamp(tags::TRANSACT_TIME, t, TimePrecision::Millis);
        });
    }

    // -------------------------------------------------------------------------- waiting

    /// Waits (up to the timeout) until every request so far is answered, then until nothing more
    /// arrives for [`SETTLE`]. Requests still unanswered are reported and counted.
    fn wait_answers(&mut self) {
        let start = instant();
        let deadline = start + self.timeout;
        while self.ended.is_none()
            && self.requests.iter().any(|r| !r.answered)
            && instant() < deadline
        {
            self.pump();
        }
        let answered_at = instant();
        while self.ended.is_none() && instant() < deadline {
            let quiet_since = self.last_app.max(answered_at);
            if instant().saturating_duration_since(quiet_since) >= SETTLE {
                break;
            }
            self.pump();
        }
        if self.ended.is_some() {
            return;
        }
        for r in self.requests.iter_mut().filter(|r| !r.answered) {
            eprintln!(
                "fixclient: no answer to {} within {} ms",
                r.what,
                self.timeout.as_millis()
            );
            self.stats.unanswered += 1;
            // Reported once; a later answer still prints but is not waited for again.
            r.answered = true;
        }
    }

    fn sleep(&mut self, ms: u64) {
        let deadline = instant() + Duration::from_millis(ms);
        while self.ended.is_none() && instant() < deadline {
            self.pump();
        }
    }

    fn run(&mut self, actions: &[Action]) {
        for a in actions {
            if self.ended.is_some() {
                return;
            }
            match a {
                Action::Order(o) => {
                    self.order(o);
                    self.wait_answers();
                }
                Action::Cancel(r) => {
                    self.cancel(r);
                    self.wait_answers();
                }
                Action::Replace { order, qty, price } => {
                    self.replace(order, *qty, *price);
                    self.wait_answers();
                }
                Action::Status(r) => {
                    self.status(r);
                    self.wait_answers();
                }
                Action::MassCancel { symbol } => {
                    self.mass_cancel(symbol.as_deref());
                    self.wait_answers();
                }
                Action::Sleep(ms) => self.sleep(*ms),
                Action::Wait => self.wait_answers(),
            }
        }
    }

    fn logon(&mut self) -> Result<(), String> {
        match &self.signer {
            None => self.session.start_logon(now(), &mut self.link.out),
            Some((key_id, secret)) => {
                self.session
                    .start_logon_with(now(), &mut self.link.out, |w, h| {
                        let seq = h.seq.to_string();
                        let pre = portcullis::auth::logon::prehash(
                            h.sending_time,
                            b"A",
                            seq.as_bytes(),
                            h.sender,
                            h.target,
                            key_id.as_bytes(),
                        );
                        let sig = portcullis::auth::logon::sign(secret, &pre);
                        w.str(portcullis::auth::logon::USERNAME, key_id.as_bytes());
                        w.uint(portcullis::auth::logon::RAW_DATA_LENGTH, sig.len() as u64);
                        w.str(portcullis::auth::logon::RAW_DATA, sig.as_bytes());
                    })
            }
        }
        self.print_pending();
        self.link.flush();
        let deadline = instant() + self.timeout;
        while !self.session.is_logged_on() {
            self.pump();
            if let Some(e) = &self.ended {
                if let (Ended::Closed, Some(tls)) = (e, &self.link.tls_error) {
                    return Err(format!("TLS: the gateway ended the connection: {tls}"));
                }
                return Err(logon_failure(e));
            }
            if instant() >= deadline {
                return Err(format!(
                    "no Logon answer within {} ms",
                    self.timeout.as_millis()
                ));
            }
        }
        Ok(())
    }

    fn logout(&mut self) {
        self.session.logout(b"", now(), &mut self.link.out);
        self.print_pending();
        self.link.flush();
        // The session ends the wait itself after `logout_timeout_ms`; this is a backstop.
        let deadline = instant() + self.timeout.max(Duration::from_secs(3));
        while self.ended.is_none() && instant() < deadline {
            self.pump();
        }
        self.link.shutdown();
    }
}

const SEQ_HINT: &str = "the gateway keeps sequence numbers across connections: \
     run with --reset to start both sides again at 1";

fn logon_failure(e: &Ended) -> String {
    match e {
        Ended::Session(_, Some(text)) if text.contains("MsgSeqNum too low") => {
            format!("logon refused: {text} ({SEQ_HINT})")
        }
        Ended::Session(_, Some(text)) if !text.is_empty() => format!("logon refused: {text}"),
        Ended::Session(reason, _) => format!("logon refused ({reason:?})"),
        Ended::Closed => "logon refused: the gateway closed the connection without an answer \
             (every refused Logon looks like this: no session for this SenderCompID/TargetCompID \
             and FIX version, the session already connected, or an authentication failure; the \
             gateway operator's events.log names the cause)"
            .to_string(),
        Ended::TooLarge => "the gateway sent an oversized message before Logon".to_string(),
    }
}

/// Why the connection ended before our Logout, or `None` when it ended by our Logout.
fn lost(e: &Ended, peer: &str) -> Option<String> {
    match e {
        Ended::Session(
            DisconnectReason::LogoutReplyReceived | DisconnectReason::LogoutTimeout,
            _,
        ) => None,
        Ended::Session(DisconnectReason::LogoutReceived, Some(text))
            if text.contains("MsgSeqNum too low") =>
        {
            Some(format!("logged out by {peer}: {text} ({SEQ_HINT})"))
        }
        Ended::Session(DisconnectReason::LogoutReceived, text) => Some(format!(
            "logged out by {peer}{}",
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        )),
        Ended::Session(reason, _) => Some(format!("session ended: {reason:?}")),
        Ended::Closed => Some(format!("connection closed by {peer}")),
        Ended::TooLarge => Some(format!("{peer} sent an oversized message")),
    }
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    let mut last = format!("{addr} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// The connection: plain TCP, or TLS with the handshake done (printing what was negotiated).
fn tls_link(args: &Args, mut stream: TcpStream, timeout: Duration) -> Result<Link, String> {
    let wants_tls = args.tls
        || args.ca.is_some()
        || args.cert.is_some()
        || args.pin_spki.is_some()
        || args.server_name.is_some();
    if !wants_tls {
        return Link::new(stream, Some(TICK)).map_err(|e| format!("socket setup failed: {e}"));
    }
    if !args.tls {
        return Err("--ca, --cert, --key, --pin-spki and --server-name need --tls".into());
    }
    let opts = portcullis_tools::tls::ClientTls {
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        pin_spki: args.pin_spki.clone(),
        server_name: args.server_name.clone(),
    };
    let config = opts.config()?;
    let name = opts.name_for(&args.connect)?;
    stream
        .set_read_timeout(Some(TICK))
        .map_err(|e| format!("socket setup failed: {e}"))?;
    let conn = portcullis_tools::tls::handshake(&mut stream, config, name, timeout)
        .map_err(|e| format!("TLS handshake with {} failed: {e}", args.connect))?;
    println!("TLS: {}", portcullis_tools::tls::describe(&conn));
    Link::with_tls(stream, conn, Some(TICK)).map_err(|e| format!("socket setup failed: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let actions = match all_actions(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fixclient: {e}");
            return ExitCode::from(2);
        }
    };
    if args.sbe {
        return sbe::main(&args, &actions);
    }
    let sender = args.sender.clone().unwrap_or_default();
    let target = args.target.clone().unwrap_or_default();
    let (Some(our), Some(their)) = (
        CompId::new(sender.as_bytes()).filter(|c| !c.is_empty()),
        CompId::new(target.as_bytes()).filter(|c| !c.is_empty()),
    ) else {
        eprintln!("fixclient: --sender and --target must be 1–32 characters");
        return ExitCode::from(2);
    };
    let begin = if args.fix42 {
        BeginString::Fix42
    } else {
        BeginString::Fix44
    };
    let signer = match (&args.key_id, &args.secret_file) {
        (Some(id), Some(path)) => match portcullis::auth::admin::read_secret_file(path) {
            Ok(secret) => Some((id.clone(), secret)),
            Err(e) => {
                eprintln!("fixclient: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let stream = match connect(&args.connect, timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fixclient: {e}");
            return ExitCode::from(2);
        }
    };
    let link = match tls_link(&args, stream, timeout) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fixclient: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = SessionConfig {
        begin_string: begin,
        our_comp_id: our,
        their_comp_id: their,
        role: Role::Initiator,
        heartbeat_secs: args.heartbeat,
        reset_on_logon: args.reset,
        logon_timeout_ms: args.timeout_ms,
        // The library's dictionary check knows the client → gateway direction only: it would
        // answer every ExecutionReport with BusinessMessageReject "Unsupported Message Type".
        validate: false,
        ..SessionConfig::default()
    };
    let mut client = Client {
        link,
        session: Session::new(cfg, MemoryStore::new()),
        raw: args.raw,
        timeout,
        sender,
        started_ms: now().as_millis(),
        next_id: 0,
        orders: Vec::new(),
        requests: Vec::new(),
        stats: Stats::default(),
        last_app: instant(),
        ended: None,
        signer,
    };
    if let Err(e) = client.logon() {
        eprintln!("fixclient: {e}");
        return ExitCode::from(2);
    }
    client.run(&actions);
    let lost_early = client.ended.as_ref().and_then(|e| lost(e, &target));
    if lost_early.is_none() {
        client.logout();
    }
    let st = &client.stats;
    let mut summary = format!(
        "sent {}, filled {}, canceled {}, rejected {}",
        st.sent,
        st.filled.len(),
        st.canceled.len(),
        st.rejected
    );
    if st.unanswered > 0 {
        summary.push_str(&format!(", unanswered {}", st.unanswered));
    }
    if st.failed > 0 {
        summary.push_str(&format!(", failed {}", st.failed));
    }
    println!("{summary}");
    if let Some(e) = lost_early {
        eprintln!("fixclient: {e}");
        return ExitCode::from(2);
    }
    if st.rejected > 0 || st.unanswered > 0 || st.failed > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

// ------------------------------------------------------------------------------ --sbe

/// `fixclient --sbe`: the same actions as SBE messages over a FIXP session, through the
/// library's client (`portcullis::fixp::client`).
mod sbe {
    use std::io::{Read, Write};
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use portcullis::fixp::client::{
        describe, CancelSpec, Client, ClientError, ClientEvent, ClientSession, Credentials,
        Direction, OrderSpec as SbeOrder, ReplaceSpec, Report, StatusSpec, TICK,
    };
    use portcullis::fixp::SessionMsg;
    use portcullis::model::{OrdType, Price, Qty, TimeInForce};

    use super::{
        connect, instant, now, Action, Args, KnownOrder, OrderRef, OrderSpec, Request, Stats,
        SETTLE,
    };

    pub(super) fn main(args: &Args, actions: &[Action]) -> ExitCode {
        match run_main(args, actions) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("fixclient: {e}");
                ExitCode::from(2)
            }
        }
    }

    fn run_main(args: &Args, actions: &[Action]) -> Result<ExitCode, String> {
        let session = args.session.clone().unwrap_or_default();
        let key_id = args.key_id.clone().unwrap_or_default();
        let Some(path) = &args.secret_file else {
            return Err("--sbe needs --key-id and --secret-file".into());
        };
        let secret = portcullis::auth::admin::read_secret_file(path)?;
        let creds = Credentials::new(&session, &key_id, secret)
            .map_err(|e| format!("--session/--key-id: {e}"))?;
        let uuid = args.uuid.unwrap_or_else(|| now().0.max(1));
        let timeout = Duration::from_millis(args.timeout_ms.max(1));
        let stream = connect(&args.connect, timeout)?;
        Client::tcp(&stream).map_err(|e| format!("socket setup failed: {e}"))?;
        let mut cs = ClientSession::new(creds, uuid);
        cs.set_keep_alive_ms(args.keep_alive_ms);
        let wants_tls = args.tls
            || args.ca.is_some()
            || args.cert.is_some()
            || args.pin_spki.is_some()
            || args.server_name.is_some();
        if !wants_tls {
            return Ok(Runner::start(Client::new(stream, cs), args, timeout)?.finish(actions));
        }
        if !args.tls {
            return Err("--ca, --cert, --key, --pin-spki and --server-name need --tls".into());
        }
        let opts = portcullis_tools::tls::ClientTls {
            ca: args.ca.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
            pin_spki: args.pin_spki.clone(),
            server_name: args.server_name.clone(),
        };
        let config = opts.config()?;
        let name = opts.name_for(&args.connect)?;
        let mut stream = stream;
        let conn = portcullis_tools::tls::handshake(&mut stream, config, name, timeout)
            .map_err(|e| format!("TLS handshake with {} failed: {e}", args.connect))?;
        println!("TLS: {}", portcullis_tools::tls::describe(&conn));
        let tls = rustls::StreamOwned::new(conn, stream);
        Ok(Runner::start(Client::new(tls, cs), args, timeout)?.finish(actions))
    }

    struct Runner<S: Read + Write> {
        c: Client<S>,
        timeout: Duration,
        id_prefix: String,
        next_id: u64,
        orders: Vec<KnownOrder>,
        requests: Vec<Request>,
        stats: Stats,
        last_app: Instant,
        /// Why the connection ended before our Terminate.
        ended: Option<String>,
    }

    fn refused(e: &ClientError) -> String {
        match e {
            ClientError::Rejected(m) if matches!(m.error_code(), Some(100 | 204)) => format!(
                "{e} (every authentication failure looks like this: wrong key or secret, a key \
                 not bound to this session, a session the gateway does not serve, clock skew, \
                 a lockout; the gateway operator's events.log names the cause)"
            ),
            ClientError::Closed => "the gateway closed the connection without an answer \
                (is this the binary listener?)"
                .to_string(),
            _ => e.to_string(),
        }
    }

    impl<S: Read + Write> Runner<S> {
        fn start(mut c: Client<S>, args: &Args, timeout: Duration) -> Result<Self, String> {
            let raw = args.raw;
            c.set_tap(Box::new(move |dir, frame| {
                let arrow = match dir {
                    Direction::Sent => "->",
                    Direction::Received => "<-",
                };
                println!("{arrow} {}", describe(frame));
                if raw {
                    let hex: Vec<String> = frame.iter().map(|b| format!("{b:02x}")).collect();
                    println!("   {}", hex.join(" "));
                }
            }));
            c.open(timeout).map_err(|e| refused(&e))?;
            // 8 hex digits of the start time, a dash, a counter: unique per run and ≤ 20.
            let id_prefix = format!("{:08x}", now().as_millis() & 0xffff_ffff);
            Ok(Runner {
                c,
                timeout,
                id_prefix,
                next_id: 0,
                orders: Vec::new(),
                requests: Vec::new(),
                stats: Stats::default(),
                last_app: instant(),
                ended: None,
            })
        }

        fn finish(mut self, actions: &[Action]) -> ExitCode {
            self.run(actions);
            if self.ended.is_none() {
                if let Err(e) = self.c.terminate(self.timeout.max(Duration::from_secs(1))) {
                    self.ended = Some(e.to_string());
                }
            }
            let st = &self.stats;
            let mut summary = format!(
                "sent {}, filled {}, canceled {}, rejected {}",
                st.sent,
                st.filled.len(),
                st.canceled.len(),
                st.rejected
            );
            if st.unanswered > 0 {
                summary.push_str(&format!(", unanswered {}", st.unanswered));
            }
            if st.failed > 0 {
                summary.push_str(&format!(", failed {}", st.failed));
            }
            println!("{summary}");
            if let Some(e) = &self.ended {
                eprintln!("fixclient: {e}");
                return ExitCode::from(2);
            }
            if st.rejected > 0 || st.unanswered > 0 || st.failed > 0 {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }

        fn run(&mut self, actions: &[Action]) {
            for a in actions {
                if self.ended.is_some() {
                    return;
                }
                match a {
                    Action::Order(o) => self.order(o),
                    Action::Cancel(r) => self.cancel(r),
                    Action::Replace { order, qty, price } => self.replace(order, *qty, *price),
                    Action::Status(r) => self.status(r),
                    Action::MassCancel { symbol } => self.mass_cancel(symbol.as_deref()),
                    Action::Sleep(ms) => {
                        self.pump_until(instant() + Duration::from_millis(*ms));
                        continue;
                    }
                    Action::Wait => {}
                }
                self.wait_answers();
            }
        }

        fn new_id(&mut self) -> String {
            self.next_id += 1;
            format!("{}-{}", self.id_prefix, self.next_id)
        }

        /// Records what was sent (or why it could not be).
        fn sent(&mut self, r: Result<u64, ClientError>, what: String, cl: String) {
            match r {
                Ok(seq) => {
                    self.requests.push(Request {
                        what,
                        cl,
                        seq,
                        answered: false,
                    });
                    self.stats.sent += 1;
                }
                Err(e @ (ClientError::BadValue(_) | ClientError::NotEstablished)) => {
                    eprintln!("fixclient: could not send {what}: {e}");
                    self.stats.failed += 1;
                }
                Err(e) => self.ended = Some(e.to_string()),
            }
        }

        fn order(&mut self, o: &OrderSpec) {
            let cl = o.id.clone().unwrap_or_else(|| self.new_id());
            let mut spec = SbeOrder::limit(&cl, &o.symbol, o.side, o.qty, Price(0));
            spec.price = o.price;
            spec.ord_type = o.ord_type;
            spec.tif = o.tif;
            spec.account = o.account.as_deref().unwrap_or_default();
            spec.ex_destination = o.dest.as_deref().unwrap_or_default();
            let r = self.c.send_new_order(&spec);
            self.orders.push(KnownOrder {
                cl: cl.clone(),
                history: vec![cl.clone()],
                symbol: o.symbol.clone(),
                side: o.side,
                qty: o.qty,
                price: o.price,
                ord_type: o.ord_type,
                tif: o.tif,
                account: o.account.clone(),
            });
            self.sent(r, format!("order {cl}"), cl);
        }

        /// The order `r` names: one sent in this run, or one described by symbol and side.
        fn resolve(&mut self, action: &str, r: &OrderRef) -> Option<KnownOrder> {
            let known = match &r.id {
                Some(id) => self
                    .orders
                    .iter()
                    .find(|o| o.cl == *id || o.history.contains(id))
                    .cloned()
                    .map(|mut o| {
                        o.cl = id.clone();
                        o
                    }),
                None => self.orders.last().cloned(),
            };
            match (known, &r.id, &r.symbol, r.side) {
                (Some(mut o), _, symbol, side) => {
                    if let Some(s) = symbol {
                        o.symbol = s.clone();
                    }
                    if let Some(s) = side {
                        o.side = s;
                    }
                    Some(o)
                }
                (None, Some(id), Some(symbol), Some(side)) => Some(KnownOrder {
                    cl: id.clone(),
                    history: vec![id.clone()],
                    symbol: symbol.clone(),
                    side,
                    qty: Qty::ZERO,
                    price: None,
                    ord_type: OrdType::Limit,
                    tif: TimeInForce::Day,
                    account: None,
                }),
                (None, id, _, _) => {
                    eprintln!(
                        "fixclient: {action}: no order {} was sent in this run; give --symbol and --side too",
                        id.as_deref().unwrap_or("?")
                    );
                    self.stats.failed += 1;
                    None
                }
            }
        }

        fn cancel(&mut self, r: &OrderRef) {
            let Some(o) = self.resolve("cancel", r) else {
                return;
            };
            let cl = self.new_id();
            let r = self.c.send_cancel(&CancelSpec {
                cl_ord_id: &cl,
                orig_cl_ord_id: &o.cl,
                side: o.side,
                account: o.account.as_deref().unwrap_or_default(),
                symbol: &o.symbol,
            });
            self.sent(r, format!("cancel {}", o.cl), cl);
        }

        fn replace(&mut self, r: &OrderRef, qty: Qty, price: Option<Price>) {
            let Some(o) = self.resolve("replace", r) else {
                return;
            };
            let cl = self.new_id();
            let r = self.c.send_replace(&ReplaceSpec {
                cl_ord_id: &cl,
                orig_cl_ord_id: &o.cl,
                side: o.side,
                ord_type: o.ord_type,
                tif: o.tif,
                qty,
                price,
                account: o.account.as_deref().unwrap_or_default(),
                symbol: &o.symbol,
            });
            self.sent(r, format!("replace {}", o.cl), cl);
        }

        fn status(&mut self, r: &OrderRef) {
            let Some(o) = self.resolve("status", r) else {
                return;
            };
            let r = self.c.send_status(&StatusSpec {
                cl_ord_id: &o.cl,
                side: o.side,
                symbol: &o.symbol,
            });
            self.sent(r, format!("status {}", o.cl), o.cl.clone());
        }

        fn mass_cancel(&mut self, symbol: Option<&str>) {
            let cl = self.new_id();
            let r = self.c.send_mass_cancel(&cl, symbol);
            self.sent(r, format!("mass-cancel {cl}"), cl);
        }

        /// Reads for up to one tick and handles what came.
        fn pump(&mut self) {
            if self.ended.is_some() {
                return;
            }
            match self.c.next_event(TICK) {
                Ok(None) => {}
                Ok(Some(ClientEvent::Report(r))) => self.on_report(&r),
                Ok(Some(ClientEvent::Session(SessionMsg::Terminate(t)))) => {
                    self.ended = Some(format!(
                        "terminated by the gateway: code {} \"{}\"",
                        t.error_code,
                        t.reason.as_str()
                    ));
                }
                Ok(Some(_)) => {}
                Err(e) => self.ended = Some(format!("{e}")),
            }
        }

        fn pump_until(&mut self, deadline: Instant) {
            while self.ended.is_none() && instant() < deadline {
                self.pump();
            }
        }

        fn answer(&mut self, matches: impl Fn(&Request) -> bool) {
            if let Some(r) = self.requests.iter_mut().find(|r| !r.answered && matches(r)) {
                r.answered = true;
            }
        }

        fn on_report(&mut self, r: &Report) {
            self.last_app = instant();
            match r {
                Report::Exec(e) => {
                    let cl = e.cl_ord_id.as_str().to_string();
                    let key = if e.order_id == 0 {
                        cl.clone()
                    } else {
                        e.order_id.to_string()
                    };
                    match e.ord_status {
                        b'2' => {
                            self.stats.filled.insert(key);
                        }
                        b'4' => {
                            self.stats.canceled.insert(key);
                        }
                        b'8' => self.stats.rejected += 1,
                        _ => {}
                    }
                    if e.exec_type == b'5' {
                        let orig = e.orig_cl_ord_id.as_str();
                        if let Some(o) = self.orders.iter_mut().find(|o| o.cl == orig) {
                            o.cl = cl.clone();
                            o.history.push(cl.clone());
                            o.qty = e.order_qty;
                            if e.price.is_some() {
                                o.price = e.price;
                            }
                        }
                    }
                    // Pending states announce the answer; they are not it.
                    if !matches!(e.exec_type, b'A' | b'6' | b'E') {
                        self.answer(|q| q.cl == cl);
                    }
                }
                Report::CancelReject(c) => {
                    self.stats.rejected += 1;
                    let cl = c.cl_ord_id.as_str().to_string();
                    self.answer(|q| q.cl == cl);
                }
                Report::MassCancel(m) => {
                    if m.response == b'0' {
                        self.stats.rejected += 1;
                    }
                    let cl = m.cl_ord_id.as_str().to_string();
                    self.answer(|q| q.cl == cl);
                }
                Report::BusinessReject(b) => {
                    self.stats.rejected += 1;
                    let id = b.ref_id.as_str().to_string();
                    let seq = b.ref_seq_num;
                    self.answer(|q| q.seq == seq || (!id.is_empty() && q.cl == id));
                }
            }
        }

        /// As the FIX mode: every request answered (or the timeout), then quiet for SETTLE.
        fn wait_answers(&mut self) {
            let start = instant();
            let deadline = start + self.timeout;
            while self.ended.is_none()
                && self.requests.iter().any(|r| !r.answered)
                && instant() < deadline
            {
                self.pump();
            }
            let answered_at = instant();
            while self.ended.is_none() && instant() < deadline {
                let quiet_since = self.last_app.max(answered_at);
                if instant().saturating_duration_since(quiet_since) >= SETTLE {
                    break;
                }
                self.pump();
            }
            if self.ended.is_some() {
                return;
            }
            for r in self.requests.iter_mut().filter(|r| !r.answered) {
                eprintln!(
                    "fixclient: no answer to {} within {} ms",
                    r.what,
                    self.timeout.as_millis()
                );
                self.stats.unanswered += 1;
                r.answered = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_several_actions_in_a_row() {
        let a = parse_actions(&words(
            "order --symbol AAPL --side buy --qty 100 --price 10.5 cancel sleep 10 wait",
        ))
        .unwrap();
        assert_eq!(a.len(), 4);
        let Action::Order(o) = &a[0] else { panic!() };
        assert_eq!(o.ord_type, OrdType::Limit);
        assert_eq!(o.qty, Qty::from_units(100));
        assert_eq!(a[1], Action::Cancel(OrderRef::default()));
        assert_eq!(a[2], Action::Sleep(10));
        assert_eq!(a[3], Action::Wait);
    }

    #[test]
    fn option_values_may_look_like_action_words() {
        let a = parse_actions(&words("order --symbol wait --side sell --qty 1")).unwrap();
        let Action::Order(o) = &a[0] else { panic!() };
        assert_eq!(o.symbol, "wait");
        assert_eq!(o.ord_type, OrdType::Market);
    }

    #[test]
    fn errors_name_the_bad_word() {
        let e = parse_actions(&words("order --symbol A --side up --qty 1")).unwrap_err();
        assert!(e.contains("`up`"), "{e}");
        let e = parse_actions(&words("buy")).unwrap_err();
        assert!(e.contains("`buy`"), "{e}");
        let e =
            parse_actions(&words("order --symbol A --side buy --qty 1 --colour red")).unwrap_err();
        assert!(e.contains("--colour"), "{e}");
        let e = parse_actions(&words("sleep soon")).unwrap_err();
        assert!(e.contains("`soon`"), "{e}");
        let e =
            parse_actions(&words("order --symbol A --side buy --qty 1 --type limit")).unwrap_err();
        assert!(e.contains("--price"), "{e}");
        let e = parse_actions(&words("replace --price 3")).unwrap_err();
        assert!(e.contains("--qty"), "{e}");
    }
}
