//! `fixclient` against a gateway started in this process (listener on 127.0.0.1:0, blocking
//! mode, a temporary data folder, a simulated venue), run as the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::process::Command;

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::gateway::Running;

const SESSIONS: &str = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"

[[session]]
begin_string = "FIX.4.2"
our_comp_id = "GW"
their_comp_id = "CLIENT42"
default_account = "A42"
"#;

struct Gw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    running: Running,
    addr: SocketAddr,
    #[allow(dead_code)] // held for its Drop, which deletes the data folder
    dir: tempfile::TempDir,
}

/// A gateway whose simulated venue SIM answers with `behaviour`.
fn gateway(behaviour: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 16384\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n{SESSIONS}\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"{behaviour}\"\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&["ACC1", "A42"], &["AAPL", "MSFT", "IBM", "A", "S"]),
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let addr = running.handle.listen_addrs[0];
    Gw { running, addr, dir }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn fixclient(addr: SocketAddr, sender: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args(["--connect", &addr.to_string(), "--sender", sender])
        .args(["--target", "GW", "--timeout-ms", "3000"])
        .args(args)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("--- stdout\n{}--- stderr\n{}", run.stdout, run.stderr);
    run
}

fn position(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in output:\n{hay}"))
}

#[test]
fn limit_order_then_cancel_shows_new_then_canceled() {
    let gw = gateway("ack");
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &[
            "--reset", "order", "--symbol", "AAPL", "--side", "buy", "--qty", "100", "--price",
            "10.5", "--id", "C1", "cancel",
        ],
    );
    assert_eq!(r.code, 0);
    let new = position(
        &r.stdout,
        "<- ExecutionReport 11=C1 150=0(New) 39=0(New) 55=AAPL 54=1 38=100 44=10.5 14=0 151=100 6=0",
    );
    let canceled = position(&r.stdout, "41=C1 150=4(Canceled) 39=4(Canceled)");
    assert!(new < canceled);
    assert!(r
        .stdout
        .contains("sent 2, filled 0, canceled 1, rejected 0"));
}

#[test]
fn fill_behaviour_shows_the_fill_and_raw_shows_soh_as_bars() {
    let gw = gateway("fill");
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &[
            "--raw", "order", "--symbol", "MSFT", "--side", "sell", "--qty", "5", "--type",
            "market",
        ],
    );
    assert_eq!(r.code, 0);
    position(&r.stdout, "150=F(Trade) 39=2(Filled)");
    position(&r.stdout, "|35=8|");
    assert!(r
        .stdout
        .contains("sent 1, filled 1, canceled 0, rejected 0"));
}

#[test]
fn script_file_runs_its_actions_in_order() {
    let gw = gateway("ack");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("orders.txt");
    std::fs::write(
        &script,
        "# two orders, a replace and a status\n\
         order --symbol AAPL --side buy --qty 100 --price 10 --id S1\n\
         \n\
         order --symbol IBM --side short --qty 7 --price 120.25 --tif gtc --id S2  # trailing\n\
         replace --id S1 --qty 50 --price 10.25\n\
         status --id S2\n\
         wait\n",
    )
    .unwrap();
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &[
            "--reset",
            "--script",
            script.to_str().unwrap(),
            "mass-cancel",
        ],
    );
    assert_eq!(r.code, 0);
    let a = position(&r.stdout, "<- ExecutionReport 11=S1 150=0(New)");
    let b = position(&r.stdout, "<- ExecutionReport 11=S2 150=0(New)");
    let c = position(&r.stdout, "41=S1 150=5(Replaced)");
    let d = position(&r.stdout, "11=S2 150=I(OrderStatus)");
    let e = position(&r.stdout, "<- OrderMassCancelReport");
    assert!(a < b && b < c && c < d && d < e);
    position(&r.stdout, "533=2");
    assert!(r
        .stdout
        .contains("sent 5, filled 0, canceled 2, rejected 0"));
}

#[test]
fn rejected_order_exits_1_and_prints_the_reason() {
    let gw = gateway("fill");
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "1", "--price", "1", "--dest",
            "NOWHERE",
        ],
    );
    assert_eq!(r.code, 1);
    position(&r.stdout, "150=8(Rejected) 39=8(Rejected)");
    position(&r.stdout, "58=unknown ExDestination(100)");
    assert!(r.stdout.contains("rejected 1"));
}

#[test]
fn unknown_comp_id_exits_2_with_a_clear_message() {
    let gw = gateway("fill");
    let r = fixclient(
        gw.addr,
        "NOBODY",
        &["order", "--symbol", "A", "--side", "buy", "--qty", "1"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("logon refused: the gateway closed the connection without an answer"),
        "{}",
        r.stderr
    );
}

#[test]
fn reconnecting_without_reset_is_refused_with_a_hint() {
    let gw = gateway("fill");
    assert_eq!(fixclient(gw.addr, "CLIENT1", &[]).code, 0);
    let r = fixclient(gw.addr, "CLIENT1", &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("MsgSeqNum too low"), "{}", r.stderr);
    assert!(r.stderr.contains("--reset"), "{}", r.stderr);
    assert_eq!(fixclient(gw.addr, "CLIENT1", &["--reset"]).code, 0);
}

#[test]
fn fix42_session_trades() {
    let gw = gateway("partial");
    let r = fixclient(
        gw.addr,
        "CLIENT42",
        &[
            "--fix42",
            "order",
            "--symbol",
            "IBM",
            "--side",
            "buy",
            "--qty",
            "10",
            "--price",
            "99.5",
            "--account",
            "A42",
        ],
    );
    assert_eq!(r.code, 0);
    position(&r.stdout, "39=1(PartiallyFilled)");
    position(&r.stdout, "39=2(Filled)");
    assert!(r.stdout.contains("sent 1, filled 1"));
}

#[test]
fn bad_action_words_exit_2_naming_the_word() {
    let out = Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args(["--connect", "127.0.0.1:1", "--sender", "A", "--target", "B"])
        .args([
            "order", "--symbol", "A", "--side", "buy", "--qty", "1", "explode",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`explode`"), "{err}");
}

/// A gateway that requires signed logons, with key `k1` bound to CLIENT1 (created through the
/// library's key management, as `portcullis keys add` does); returns it and the secret file.
fn signed_gateway() -> (Gw, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 16384\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n{SESSIONS}\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"fill\"\n\n[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\n\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&["ACC1"], &["AAPL"]),
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let spec = portcullis::auth::admin::KeySpec {
        comp_ids: vec!["CLIENT1".into()],
        role: "trader".into(),
        allow: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let secret = portcullis::auth::admin::add(&cfg, "k1", &spec, now_ms()).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let path = secrets.path().join("k1.secret");
    std::fs::write(&path, secret.as_bytes()).unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let addr = running.handle.listen_addrs[0];
    (Gw { running, addr, dir }, secrets, path)
}

#[test]
fn signs_the_logon_with_a_key_id_and_secret_file_and_never_prints_the_signature() {
    let (gw, _secrets, path) = signed_gateway();
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &[
            "--key-id",
            "k1",
            "--secret-file",
            path.to_str().unwrap(),
            "--raw",
            "order",
            "--symbol",
            "AAPL",
            "--side",
            "buy",
            "--qty",
            "100",
            "--price",
            "10",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    position(&r.stdout, "553=k1");
    position(&r.stdout, "96=***");
    // Without the key the same gateway closes the connection without an answer.
    let r = fixclient(
        gw.addr,
        "CLIENT1",
        &["order", "--symbol", "AAPL", "--side", "buy", "--qty", "1"],
    );
    assert_eq!(r.code, 2);
    position(
        &r.stderr,
        "logon refused: the gateway closed the connection without an answer",
    );
}

/// Unix milliseconds now: keys are created "now" (a key created at 0 would be past
/// `auth.max_key_age_days` and refused).
fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}
