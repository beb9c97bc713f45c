//! `fixclient --sbe` and `loadgen fix --sbe` as the real binaries against a gateway started in
//! this process with a `protocol = "sbe"` listener (blocking mode, a temporary data folder,
//! keys created through the library as `portcullis keys add` would, a simulated venue).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis::clock::Clock;
use portcullis::config::{Config, Protocol};
use portcullis::gateway::Running;

struct Gw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    running: Running,
    addr: SocketAddr,
    secret: PathBuf,
    #[allow(dead_code)] // held for its Drop, which deletes the data folder
    dir: tempfile::TempDir,
}

fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}

/// FIXP session BIN1 (account ACC1), key `bin1` bound to it, venue SIM of `behaviour`.
fn gateway(behaviour: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nsegment_bytes = 4194304\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 16384\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"sbe\"\n\n\
         [[session]]\nprotocol = \"sbe\"\ntheir_comp_id = \"BIN1\"\ndefault_account = \"ACC1\"\n\n\
         [auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\n\n\
         [[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"{behaviour}\"\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&["ACC1"], &["AAPL", "MSFT", "IBM"]),
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let spec = portcullis::auth::admin::KeySpec {
        comp_ids: vec!["BIN1".into()],
        role: "trader".into(),
        allow: vec!["127.0.0.1/32".into()],
        ..Default::default()
    };
    let secret_b64 = portcullis::auth::admin::add(&cfg, "bin1", &spec, now_ms()).unwrap();
    let secret = dir.path().join("bin1.secret");
    std::fs::write(&secret, secret_b64.as_bytes()).unwrap();
    let at = cfg
        .listeners
        .iter()
        .position(|l| l.protocol == Protocol::Sbe)
        .unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let addr = running.handle.listen_addrs[at];
    Gw {
        running,
        addr,
        secret,
        dir,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!("--- stdout\n{}--- stderr\n{}", run.stdout, run.stderr);
    run
}

fn fixclient(gw: &Gw, secret: &Path, args: &[&str]) -> Run {
    run(Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args(["--sbe", "--connect", &gw.addr.to_string()])
        .args(["--session", "BIN1", "--key-id", "bin1", "--secret-file"])
        .arg(secret)
        .args(["--timeout-ms", "3000"])
        .args(args))
}

fn position(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in output:\n{hay}"))
}

#[test]
fn fixclient_sbe_places_replaces_and_cancels_and_prints_decoded_frames() {
    let gw = gateway("ack");
    let r = fixclient(
        &gw,
        &gw.secret,
        &[
            "order",
            "--symbol",
            "AAPL",
            "--side",
            "buy",
            "--qty",
            "100",
            "--price",
            "101.25",
            "--id",
            "B1",
            "replace",
            "--qty",
            "50",
            "--price",
            "101.5",
            "status",
            "cancel",
            "mass-cancel",
        ],
    );
    assert_eq!(r.code, 0);
    let negotiate = position(&r.stdout, "-> Negotiate uuid=");
    assert!(r.stdout.contains("session=BIN1 key=bin1 signature=***"));
    let ack = position(&r.stdout, "<- EstablishmentAck");
    let sent = position(
        &r.stdout,
        "-> NewOrderSingle seq=1 ClOrdID=B1 Symbol=AAPL Side=Buy OrderQty=100 OrdType=2 Price=101.25",
    );
    let new = position(
        &r.stdout,
        "<- ExecutionReportNew seq=1 ExecType=0(New) OrdStatus=0(New)",
    );
    let replaced = position(&r.stdout, "ExecType=5(Replaced)");
    let status = position(&r.stdout, "ExecType=I(OrderStatus)");
    let canceled = position(&r.stdout, "ExecType=4(Canceled)");
    let mass = position(&r.stdout, "<- OrderMassCancelReport");
    let end = position(&r.stdout, "<- Terminate");
    assert!(negotiate < ack && ack < sent && sent < new && new < replaced);
    assert!(replaced < status && status < canceled && canceled < mass && mass < end);
    position(&r.stdout, "OrderQty=50 Price=101.5");
    assert!(
        r.stdout
            .contains("sent 5, filled 0, canceled 1, rejected 0"),
        "{}",
        r.stdout
    );
}

#[test]
fn fixclient_sbe_with_a_wrong_secret_exits_2_with_the_one_answer() {
    let gw = gateway("fill");
    let bad = gw.dir.path().join("bad.secret");
    std::fs::write(&bad, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let r = fixclient(
        &gw,
        &bad,
        &["order", "--symbol", "AAPL", "--side", "buy", "--qty", "1"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("NegotiationReject") && r.stderr.contains("code=100"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("events.log names the cause"),
        "{}",
        r.stderr
    );
}

#[test]
fn fixclient_sbe_refuses_a_clordid_longer_than_20() {
    let gw = gateway("fill");
    let r = fixclient(
        &gw,
        &gw.secret,
        &[
            "order",
            "--symbol",
            "AAPL",
            "--side",
            "buy",
            "--qty",
            "1",
            "--id",
            "ABCDEFGHIJKLMNOPQRSTU",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("at most 20 characters"), "{}", r.stderr);
}

#[test]
fn loadgen_sbe_open_and_closed_loop_get_every_order_answered() {
    let gw = gateway("fill");
    let dir = tempfile::tempdir().unwrap();
    for (label, extra) in [
        ("open", &["--rate", "400", "--duration-s", "0.5"][..]),
        (
            "closed",
            &[
                "--closed-loop",
                "--window",
                "4",
                "--max-orders",
                "300",
                "--duration-s",
                "0.3",
            ][..],
        ),
    ] {
        let j = dir.path().join(format!("{label}.json"));
        let h = dir.path().join(format!("{label}.hgrm"));
        let r = run(Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["fix", "--sbe", "--connect", &gw.addr.to_string()])
            .args(["--sender", "BIN1", "--key-id", "bin1", "--secret-file"])
            .arg(&gw.secret)
            .args(["--mix", "new=2,cancel=1,replace=1"])
            .args(extra)
            .arg("--json")
            .arg(&j)
            .arg("--hgrm")
            .arg(&h));
        assert_eq!(r.code, 0, "{label}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        let sent = v["sent"].as_u64().unwrap();
        assert!(sent > 0, "{v}");
        if label == "open" {
            assert_eq!(sent, 200, "{v}");
        }
        let answered = v["acked"].as_u64().unwrap() + v["rejected"].as_u64().unwrap();
        assert_eq!(answered, sent, "every order answered: {v}");
        assert_eq!(v["unanswered"].as_u64(), Some(0), "{v}");
        assert!(std::fs::read_to_string(&h).unwrap().contains("Percentile"));
    }
}

#[test]
fn gen_config_sbe_prints_a_config_the_gateway_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["gen-config", "--sbe", "--auth", "--sessions", "2"])
        .args(["--listen", "127.0.0.1:0", "--data-dir", "/tmp/unused"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = Config::parse(&text, "gen.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.listeners.len(), 1);
    assert_eq!(cfg.listeners[0].protocol, Protocol::Sbe);
    let names: Vec<_> = cfg
        .sessions
        .iter()
        .map(|s| s.their_comp_id.as_str())
        .collect();
    assert_eq!(names, ["LOAD0001", "LOAD0002"]);
    assert!(cfg.sessions.iter().all(|s| s.protocol == Protocol::Sbe));
    assert!(
        text.contains("--comp-id LOAD0001 --comp-id LOAD0002"),
        "{text}"
    );
    assert!(
        text.contains("loadgen fix ... --sbe --key-id load"),
        "{text}"
    );
    // Without --auth it is refused: SBE sessions sign with a key.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["gen-config", "--sbe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
