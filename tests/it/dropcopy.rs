//! Drop copy under `[auth]` (RISK-3, AUTH-6): a drop-copy session gets copies only while its
//! signed-on key has `orders:read`, only for the accounts the key allows (intersected with
//! `drop_copy_accounts`); a drop-copy logon whose key cannot read any of them is refused with
//! the generic Logout and an audit cause; a key change applies to the live session. Real
//! sockets, real signed logons, keys managed through the real `portcullis keys` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::util::*;

const DROP: &str = "[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"DROP\"\ndrop_copy_accounts = [\"ACC1\", \"ACC2\"]\n";

/// A data folder and a config with `[auth]` required, sessions CLIENT1 (ACC1), CLIENT2 (ACC2)
/// and the drop copy DROP (ACC1, ACC2).
struct Env {
    dir: tempfile::TempDir,
    secrets: tempfile::TempDir,
    cfg_path: PathBuf,
    extra: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let secrets = tempfile::tempdir().unwrap();
        let extra = format!(
            "{SESSIONS}{DROP}{}[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\npoll_ms = 50\n",
            sim("fill")
        );
        let cfg_path = secrets.path().join("portcullis.toml");
        std::fs::write(&cfg_path, config_text(dir.path(), &extra)).unwrap();
        Env {
            dir,
            secrets,
            cfg_path,
            extra,
        }
    }

    fn keys(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&self.cfg_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keys {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds key `id` bound to `comp_id` from 127.0.0.1; returns its secret.
    fn add(&self, id: &str, comp_id: &str, args: &[&str]) -> Vec<u8> {
        let path = self.secrets.path().join(format!("{id}.secret"));
        let mut all = vec![
            "add",
            id,
            "--comp-id",
            comp_id,
            "--allow",
            "127.0.0.1",
            "--secret-out",
            path.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.keys(&all);
        base64::engine::general_purpose::STANDARD
            .decode(std::fs::read_to_string(&path).unwrap().trim())
            .unwrap()
    }

    /// Starts the gateway; the key CLI keeps working through `self`.
    fn start(&mut self) -> Gw {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        start_in(dir, &self.extra)
    }
}

fn events(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("events.log")).unwrap_or_default()
}

fn wait_event(dir: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if events(dir).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no event {needle:?} in:\n{}", events(dir));
}

fn signed(gw: &Gw, who: &str, key: &str, secret: &[u8]) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.signed_logon(key, secret);
    c
}

/// An order that the simulated venue fills: its ack, then its fill.
fn trade(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "10", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"));
}

/// The ClOrdIDs of the ExecutionReports `d` receives until it is quiet for `quiet`.
fn copies(d: &mut Client, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = d.recv_timeout(quiet) {
        if field(&m, 35).as_deref() == Some("8") {
            out.push(field(&m, 11).unwrap_or_default());
        }
    }
    out
}

#[test]
fn a_drop_copy_key_gets_copies_only_for_its_readable_accounts_and_loses_them_live() {
    let mut env = Env::new();
    let t1 = env.add("t1", "CLIENT1", &["--role", "trader"]);
    let t2 = env.add("t2", "CLIENT2", &["--role", "trader"]);
    // orders:read restricted to ACC1: of DROP's ACC1 and ACC2 it may read ACC1 only.
    let dc = env.add(
        "dc",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC1"],
    );
    let gw = env.start();
    let mut d = signed(&gw, "DROP", "dc", &dc);
    let mut c1 = signed(&gw, "CLIENT1", "t1", &t1);
    let mut c2 = signed(&gw, "CLIENT2", "t2", &t2);
    trade(&mut c1, "A1");
    trade(&mut c2, "B1");
    trade(&mut c1, "A2");
    assert_eq!(
        copies(&mut d, Duration::from_millis(500)),
        ["A1", "A1", "A2", "A2"],
        "ack and fill of each ACC1 order, nothing of ACC2"
    );

    // Widen the key to any account: ACC2's copies flow too, on the live session.
    env.keys(&["set", "dc", "--any-account"]);
    std::thread::sleep(Duration::from_millis(500));
    trade(&mut c2, "B2");
    assert_eq!(copies(&mut d, Duration::from_millis(500)), ["B2", "B2"]);

    // Remove orders:read: the drop copy is logged out at once and gets nothing more.
    env.keys(&["set", "dc", "--scope", "orders:cancel"]);
    let m = d.expect("5");
    assert_eq!(
        field(&m, 58).as_deref(),
        Some("credential no longer permits drop copy")
    );
    wait_event(gw.dir.path(), "credential no longer permits drop copy");
    let next = d.seq;
    drop(d);
    trade(&mut c1, "A3");
    // It cannot come back with that key, and no copy of A3 was kept for a resend.
    let mut again = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    again.seq = next;
    let m = again.signed_logon_bytes("dc", &dc, now_utc());
    again.send_raw(&m);
    crate::perimeter_logon::assert_closed_silently(&mut again);
    wait_event(
        gw.dir.path(),
        "cause=\"drop copy needs the orders:read scope\"",
    );

    // Give orders:read back: a new logon asking for a resend of everything gets no copy made
    // while the key could not read (A3), only what follows.
    env.keys(&["set", "dc", "--scope", "orders:read"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    d.seq = next;
    d.signed_logon("dc", &dc);
    d.send("2", "7=1|16=0");
    trade(&mut c1, "A4");
    let got = copies(&mut d, Duration::from_millis(800));
    assert!(!got.iter().any(|c| c == "A3"), "{got:?}");
    assert!(got.iter().filter(|c| *c == "A4").count() == 2, "{got:?}");
}

#[test]
fn a_drop_copy_logon_whose_key_cannot_read_its_accounts_is_refused() {
    let mut env = Env::new();
    let t1 = env.add("t1", "CLIENT1", &["--role", "trader"]);
    let no_read = env.add(
        "noread",
        "DROP",
        &["--scope", "orders:new", "--scope", "orders:cancel"],
    );
    let elsewhere = env.add(
        "elsewhere",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC42"],
    );
    let gw = env.start();
    let mut c1 = signed(&gw, "CLIENT1", "t1", &t1);
    for (key, secret, cause) in [
        ("noread", &no_read, "drop copy needs the orders:read scope"),
        (
            "elsewhere",
            &elsewhere,
            "drop copy: the key allows none of the session's accounts",
        ),
    ] {
        let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
        let m = d.signed_logon_bytes(key, secret, now_utc());
        d.send_raw(&m);
        crate::perimeter_logon::assert_closed_silently(&mut d);
        wait_event(gw.dir.path(), &format!("cause=\"{cause}\""));
    }
    // The trading session is unaffected; a viewer key (orders:read, any account) gets copies.
    let viewer = env.add("viewer", "DROP", &["--role", "viewer"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut d = signed(&gw, "DROP", "viewer", &viewer);
    trade(&mut c1, "V1");
    assert_eq!(copies(&mut d, Duration::from_millis(500)), ["V1", "V1"]);
}
