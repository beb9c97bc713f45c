//! Session security through real sockets and the real `portcullis keys` CLI: signed logons,
//! every refusal's generic Logout and audit cause, lockout, rotation, live revoke, scopes,
//! cross-key isolation, a tampered store, and that no secret or signature is ever written.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use portcullis::model::Nanos;

use crate::util::*;

/// `[auth]` with a file master key under the data folder; `extra` adds keys to it.
fn auth_section(extra: &str) -> String {
    format!(
        "[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\npoll_ms = 50\n{extra}\n"
    )
}

/// A data folder with a config file, keys managed through the CLI.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    /// Secrets written by `--secret-out`, outside the data folder.
    pub(crate) secrets: tempfile::TempDir,
    pub(crate) cfg_path: PathBuf,
    pub(crate) extra: String,
}

impl Env {
    pub(crate) fn new(auth_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let secrets = tempfile::tempdir().unwrap();
        let extra = format!("{SESSIONS}{}{}", sim("ack"), auth_section(auth_extra));
        let cfg_path = secrets.path().join("portcullis.toml");
        std::fs::write(&cfg_path, config_text(dir.path(), &extra)).unwrap();
        Env {
            dir,
            secrets,
            cfg_path,
            extra,
        }
    }

    /// Runs `portcullis keys ARGS --config ...`; (success, stdout, stderr).
    pub(crate) fn keys(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&self.cfg_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) fn keys_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.keys(args);
        assert!(ok, "keys {args:?} failed: {err}");
        out
    }

    /// Adds a key through the CLI; returns its secret bytes.
    pub(crate) fn add(&self, id: &str, args: &[&str]) -> Vec<u8> {
        let path = self.secrets.path().join(format!("{id}.secret"));
        let mut all = vec!["add", id, "--secret-out", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.keys_ok(&all);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(out.contains(text.trim()), "add prints the secret once");
        b64(&text)
    }

    fn rotate(&self, id: &str, overlap_ms: u64) -> Vec<u8> {
        let path = self.secrets.path().join(format!("{id}.rotated"));
        self.keys_ok(&[
            "rotate",
            id,
            "--overlap-ms",
            &overlap_ms.to_string(),
            "--secret-out",
            path.to_str().unwrap(),
        ]);
        b64(&std::fs::read_to_string(&path).unwrap())
    }

    pub(crate) fn start(self) -> (Gw, tempfile::TempDir, PathBuf) {
        let gw = start_in(self.dir, &self.extra);
        (gw, self.secrets, self.cfg_path)
    }
}

/// Sends `logon` on a new connection as `sender`; asserts the uniform refusal: the connection
/// closes without a byte (fix-specs/SIGNED-LOGON.md "Refusals").
fn refused(gw: &Gw, sender: &str, logon: impl FnOnce(&mut Client) -> Vec<u8>) {
    let mut c = Client::connect(gw.addr, "FIX.4.4", sender, "GW");
    let m = logon(&mut c);
    c.send_raw(&m);
    crate::perimeter_logon::assert_closed_silently(&mut c);
}

#[test]
fn a_good_signature_logs_on_and_trades() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let (gw, _s, _) = env.start();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("A1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    wait_event(
        gw.dir.path(),
        "authenticated session=FIX.4.4:CLIENT1->GW key=\"k1\"",
    );
    c.logout();
    // REG-1: the order's records name the key the session authenticated with.
    let day = &portcullis::audit::records::rfc3339(now_utc())[..10];
    let mut rows = serde_json::Value::Null;
    for _ in 0..100 {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "report", "orders", "--format", "json", "--from", day, "--to",
            ])
            .arg(
                &portcullis::audit::records::rfc3339(Nanos(now_utc().0 + 86_400_000_000_000))[..10],
            )
            .arg("--data-dir")
            .arg(gw.dir.path())
            .output()
            .unwrap();
        rows = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if rows.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = rows.as_array().expect("order records");
    assert!(rows.iter().all(|r| r["api_key_id"] == "k1"), "{rows:?}");
}

#[test]
fn every_bad_logon_is_closed_silently_with_its_own_audit_cause() {
    let env = Env::new("lockout_failures = 1000\nlockout_address_failures = 1000\n");
    let good = env.add("good", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let exp = env.add("old", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    env.keys_ok(&["expire", "old"]);
    let rev = env.add("gone", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    env.keys_ok(&["revoke", "gone"]);
    let far = env.add("far", &["--comp-id", "CLIENT1", "--allow", "10.0.0.0/8"]);
    let (gw, _s, _) = env.start();
    let now = now_utc;
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("good", &[0u8; 32], now())
    });
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("nobody", &good, now())
    });
    refused(&gw, "CLIENT1", |c| c.signed_logon_bytes("old", &exp, now()));
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("gone", &rev, now())
    });
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("good", &good, Nanos(now().0 - 10_000_000_000))
    });
    refused(&gw, "CLIENT2", |c| {
        c.signed_logon_bytes("good", &good, now())
    });
    refused(&gw, "CLIENT1", |c| c.signed_logon_bytes("far", &far, now()));
    refused(&gw, "CLIENT1", |c| c.build("A", "98=0|108=30|141=Y"));
    refused(&gw, "CLIENT1", |c| {
        c.build("A", "98=0|108=30|141=Y|553=good")
    });
    refused(&gw, "CLIENT1", |c| {
        c.build("A", "98=0|108=30|141=Y|553=good|95=12|96=not*base64!!")
    });
    refused(&gw, "CLIENT1", |c| {
        c.build("A", "98=0|108=30|141=Y|553=good|95=4|96=AAAA")
    });
    refused(&gw, "CLIENT1", |c| {
        c.build("A", "98=0|108=30|141=Y|553=good|95=5|96=AAAA")
    });
    // Replay: a good logon, then the very same bytes again.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let logon = c.signed_logon_bytes("good", &good, now());
    c.send_raw(&logon);
    c.expect("A");
    c.logout();
    refused(&gw, "CLIENT1", |_| logon.clone());
    for cause in [
        "bad signature",
        "unknown key id",
        "key expired",
        "key revoked",
        "SendingTime(52) outside the allowed skew",
        "SenderCompID not bound to the key",
        "source address not in the key's allowlist",
        "Username(553) missing",
        "RawData(96) or RawDataLength(95) missing",
        "RawDataLength(95) does not match RawData(96)",
        "RawData(96) is not base64 of a 32-byte signature",
        "signature replayed",
    ] {
        wait_event(gw.dir.path(), &format!("cause={cause:?}"));
    }
    // And the good key still works.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("good", &good);
    c.logout();
}

#[test]
fn an_address_on_the_allowlist_logs_on_and_one_off_it_does_not() {
    let env = Env::new("");
    let on = env.add(
        "on",
        &[
            "--comp-id",
            "CLIENT1",
            "--allow",
            "::1",
            "--allow",
            "127.0.0.0/8",
        ],
    );
    let off = env.add("off", &["--comp-id", "CLIENT1", "--allow", "192.0.2.0/24"]);
    let (gw, _s, _) = env.start();
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("off", &off, now_utc())
    });
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("on", &on);
    c.logout();
}

#[test]
fn lockout_triggers_refuses_good_logons_and_clears_by_cli() {
    let env = Env::new("lockout_failures = 3\nlockout_window_ms = 60000\nlockout_ms = 600000\n");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let (gw, _s, cfg) = env.start();
    for _ in 0..3 {
        refused(&gw, "CLIENT1", |c| {
            c.signed_logon_bytes("k1", &[1u8; 32], now_utc())
        });
    }
    wait_event(
        gw.dir.path(),
        "auth-lockout what=key-at-address key=\"k1\" peer=127.0.0.1",
    );
    // Locked at this address: even the right secret is refused.
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("k1", &secret, now_utc())
    });
    wait_event(
        gw.dir.path(),
        "cause=\"key locked out at this source address\"",
    );
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    keys(&["unlock", "--addresses"]);
    keys(&["unlock", "k1"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.logout();
}

#[test]
fn rotation_overlap_accepts_old_and_new_then_only_new() {
    let env = Env::new("");
    let old = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let (gw, secrets, cfg) = env.start();
    let env2 = Env {
        dir: tempfile::tempdir().unwrap(),
        secrets,
        cfg_path: cfg,
        extra: String::new(),
    };
    let new = env2.rotate("k1", 3000);
    let rotated_at = Instant::now();
    assert_ne!(old, new);
    std::thread::sleep(Duration::from_millis(300));
    for s in [&old, &new] {
        let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
        c.signed_logon("k1", s);
        c.logout();
    }
    // Past the overlap (measured from the rotate, 3 s).
    std::thread::sleep(rotated_at + Duration::from_millis(3100) - Instant::now());
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("k1", &old, now_utc())
    });
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &new);
    c.logout();
    let shown = env2.keys_ok(&["show", "k1"]);
    assert!(!shown.contains(&base64::engine::general_purpose::STANDARD.encode(&new)));
}

#[test]
fn revoking_a_key_logs_its_live_session_out_within_a_second() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let (gw, secrets, cfg) = env.start();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let env2 = Env {
        dir: tempfile::tempdir().unwrap(),
        secrets,
        cfg_path: cfg,
        extra: String::new(),
    };
    env2.keys_ok(&["revoke", "k1"]);
    let revoked_at = Instant::now();
    let m = c
        .recv_timeout(Duration::from_secs(1))
        .expect("a Logout within 1 s of the revoke");
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    assert_eq!(field(&m, 35).as_deref(), Some("5"), "{}", show(&m));
    assert_eq!(field(&m, 58).as_deref(), Some("credential revoked"));
    wait_event(
        gw.dir.path(),
        "credential-logout session=FIX.4.4:CLIENT1->GW key=\"k1\"",
    );
    // Nothing more is permitted on the way out.
    c.send("D", &nos("R1", "AAPL", "1", "100", Some("10")));
    let r = c.expect_any(&["8", "5"]);
    if field(&r, 35).as_deref() == Some("8") {
        assert_eq!(field(&r, 39).as_deref(), Some("8"));
    }
    // The client answers the Logout; the connection ends; the key can no longer log on.
    c.send("5", "");
    assert!(c.closed_within(Duration::from_secs(5)));
    refused(&gw, "CLIENT1", |c| {
        c.signed_logon_bytes("k1", &secret, now_utc())
    });
    wait_event(gw.dir.path(), "cause=\"key revoked\"");
}

#[test]
fn messages_outside_the_keys_scopes_are_refused_naming_the_permission() {
    let env = Env::new("");
    let viewer = env.add(
        "v",
        &[
            "--comp-id",
            "CLIENT1",
            "--role",
            "viewer",
            "--allow",
            "127.0.0.1",
        ],
    );
    let trader = env.add(
        "t",
        &[
            "--comp-id",
            "CLIENT2",
            "--scope",
            "orders:new",
            "--account",
            "ACC2",
            "--symbol",
            "AAPL",
            "--allow",
            "127.0.0.1",
        ],
    );
    let (gw, _s, _) = env.start();
    let mut v = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    v.signed_logon("v", &viewer);
    v.send("D", &nos("V1", "AAPL", "1", "100", Some("10")));
    let r = v.expect("8");
    assert_eq!(field(&r, 39).as_deref(), Some("8"));
    assert_eq!(field(&r, 58).as_deref(), Some("not permitted: orders:new"));
    // orders:read is the viewer's: a status request is answered.
    v.send("H", "11=V1|55=AAPL|54=1");
    let r = v.expect("8");
    assert_ne!(field(&r, 58).as_deref(), Some("not permitted: orders:read"));
    v.send("q", "11=MC1|530=7|60=20240101-00:00:00");
    let r = v.expect("j");
    assert_eq!(field(&r, 380).as_deref(), Some("6"));
    assert_eq!(
        field(&r, 58).as_deref(),
        Some("not permitted: orders:cancel")
    );
    v.logout();

    let mut t = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    t.signed_logon("t", &trader);
    t.send("D", &nos("T1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&t.expect("8"), 150).as_deref(), Some("0"));
    t.send(
        "D",
        &format!("1=ACC1|{}", nos("T2", "AAPL", "1", "100", Some("10"))),
    );
    let r = t.expect("8");
    assert_eq!(field(&r, 58).as_deref(), Some("not permitted: account"));
    t.send("D", &nos("T3", "MSFT", "1", "100", Some("10")));
    let r = t.expect("8");
    assert_eq!(field(&r, 58).as_deref(), Some("not permitted: symbol"));
    t.send("F", "11=T1C|41=T1|55=AAPL|54=1|60=20240101-00:00:00");
    let r = t.expect("9");
    assert_eq!(field(&r, 434).as_deref(), Some("1"));
    assert_eq!(
        field(&r, 58).as_deref(),
        Some("not permitted: orders:cancel")
    );
    t.send(
        "G",
        "11=T1R|41=T1|55=AAPL|54=1|38=50|40=2|44=10|60=20240101-00:00:00",
    );
    let r = t.expect("9");
    assert_eq!(field(&r, 434).as_deref(), Some("2"));
    assert_eq!(
        field(&r, 58).as_deref(),
        Some("not permitted: orders:replace")
    );
    wait_event(
        gw.dir.path(),
        "permission-denied session=FIX.4.4:CLIENT2->GW missing=orders:replace",
    );
    t.logout();
}

#[test]
fn key_a_cannot_cancel_key_b_order() {
    let env = Env::new("");
    let a = env.add("a", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let b = env.add("b", &["--comp-id", "CLIENT2", "--allow", "127.0.0.1"]);
    let (gw, _s, _) = env.start();
    let mut cb = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    cb.signed_logon("b", &b);
    cb.send("D", &nos("B1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&cb.expect("8"), 150).as_deref(), Some("0"));
    let mut ca = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    ca.signed_logon("a", &a);
    ca.send("F", "11=A1C|41=B1|55=AAPL|54=1|60=20240101-00:00:00");
    let r = ca.expect("9");
    assert_eq!(
        field(&r, 102).as_deref(),
        Some("1"),
        "unknown order: {}",
        show(&r)
    );
    ca.send("H", "11=B1|55=AAPL|54=1");
    let r = ca.expect("8");
    assert_eq!(
        field(&r, 39).as_deref(),
        Some("8"),
        "A cannot see B's order either"
    );
    // B's order is untouched: B can still cancel it.
    cb.send("F", "11=B1C|41=B1|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&cb.expect("8"), 150).as_deref(), Some("4"));
    ca.logout();
    cb.logout();
}

#[test]
fn a_tampered_key_store_is_refused_at_start_with_a_clear_error() {
    let env = Env::new("");
    env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let store = env.dir.path().join("keys.store");
    let mut bytes = std::fs::read(&store).unwrap();
    let i = bytes.len() - 20;
    bytes[i] ^= 1;
    std::fs::write(&store, &bytes).unwrap();
    let cfg = config(env.dir.path(), &env.extra);
    let e = match portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast()) {
        Ok(_) => panic!("a tampered store must not start"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("keys.store") && e.contains("integrity check failed"),
        "{e}"
    );
    // The CLI refuses it the same way.
    let (ok, _, err) = env.keys(&["list"]);
    assert!(!ok && err.contains("integrity check failed"), "{err}");
}

#[test]
fn no_secret_or_signature_is_written_or_printed_anywhere() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    // The gateway binary with the config file: everything it prints is captured.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&env.cfg_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    {
        use std::io::Read;
        let mut b = [0u8; 1];
        while stdout.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
            first.push(b[0]);
        }
    }
    let first = String::from_utf8(first).unwrap();
    let addr: std::net::SocketAddr = first.rsplit(' ').next().unwrap().parse().unwrap();
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    let logon = c.signed_logon_bytes("k1", &secret, now_utc());
    let sig = field(&logon, 96).unwrap();
    c.send_raw(&logon);
    c.expect("A");
    c.send("D", &nos("M1", "AAPL", "1", "100", Some("10")));
    c.expect("8");
    // A wrong signature too: its value must not be echoed in any refusal either.
    let mut bad = Client::connect(addr, "FIX.4.4", "CLIENT2", "GW");
    let bad_logon = bad.signed_logon_bytes("k1", &secret, now_utc());
    let bad_sig = field(&bad_logon, 96).unwrap();
    bad.send_raw(&bad_logon);
    crate::perimeter_logon::assert_closed_silently(&mut bad);
    c.logout();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let mut printed = first.into_bytes();
    {
        use std::io::Read;
        let _ = stdout.read_to_end(&mut printed);
    }
    printed.extend_from_slice(&out.stdout);
    printed.extend_from_slice(&out.stderr);
    let needles: Vec<&[u8]> = vec![
        secret_b64.as_bytes(),
        &secret,
        sig.as_bytes(),
        bad_sig.as_bytes(),
    ];
    let mut files = 0;
    let mut stack = vec![env.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&p).unwrap();
            for n in &needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == *n),
                    "{} holds a secret or signature",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 4, "the gateway wrote its files ({files})");
    assert!(
        events(env.dir.path()).contains("auth-failed"),
        "the refusal was audited"
    );
    for n in &needles {
        assert!(
            !printed.windows(n.len()).any(|w| w == *n),
            "the gateway printed a secret or signature"
        );
    }
}

#[test]
fn a_key_with_its_own_tier_shares_its_throttle_across_its_sessions() {
    let env = Env::new("\n[[tier]]\nname = \"tight\"\norders = { per_day = 3 }\n");
    let secret = env.add(
        "shared",
        &[
            "--comp-id",
            "CLIENT1",
            "--comp-id",
            "CLIENT2",
            "--tier",
            "tight",
            "--allow",
            "127.0.0.1",
        ],
    );
    let (gw, _s, _) = env.start();
    let mut c1 = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c1.signed_logon("shared", &secret);
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.signed_logon("shared", &secret);
    for cl in ["S1", "S2"] {
        c1.send("D", &nos(cl, "AAPL", "1", "1", Some("10")));
        assert_eq!(field(&c1.expect("8"), 150).as_deref(), Some("0"));
    }
    c2.send("D", &nos("S3", "AAPL", "1", "1", Some("10")));
    assert_eq!(field(&c2.expect("8"), 150).as_deref(), Some("0"));
    // The key's fourth order today, on either session, is over its tier's daily quota.
    c2.send("D", &nos("S4", "AAPL", "1", "1", Some("10")));
    let r = c2.expect("j");
    assert_eq!(field(&r, 380).as_deref(), Some("8"), "{}", show(&r));
    // An unknown tier is refused by the CLI, naming it.
    let env2 = Env::new("");
    let (ok, _, err) = env2.keys(&[
        "add",
        "x",
        "--comp-id",
        "CLIENT1",
        "--tier",
        "gold",
        "--allow",
        "127.0.0.1",
    ]);
    assert!(!ok && err.contains("\"gold\""), "{err}");
    c1.logout();
    c2.logout();
}

#[test]
fn a_key_expiring_during_a_session_logs_it_out() {
    let env = Env::new("");
    let secret = env.add(
        "k1",
        &[
            "--comp-id",
            "CLIENT1",
            "--allow",
            "127.0.0.1",
            "--expires-in-secs",
            "3",
        ],
    );
    let (gw, _s, _) = env.start();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let m = c.expect("5");
    assert_eq!(field(&m, 58).as_deref(), Some("credential expired"));
    wait_event(gw.dir.path(), "cause=\"credential expired\"");
}

#[test]
fn a_scope_change_applies_to_the_live_session() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let (gw, secrets, cfg) = env.start();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("L1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    let env2 = Env {
        dir: tempfile::tempdir().unwrap(),
        secrets,
        cfg_path: cfg,
        extra: String::new(),
    };
    env2.keys_ok(&[
        "set",
        "k1",
        "--scope",
        "orders:cancel",
        "--scope",
        "orders:read",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    c.send("D", &nos("L2", "AAPL", "1", "100", Some("10")));
    let r = c.expect("8");
    assert_eq!(field(&r, 58).as_deref(), Some("not permitted: orders:new"));
    c.send("F", "11=L1C|41=L1|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(
        field(&c.expect("8"), 150).as_deref(),
        Some("4"),
        "cancel still allowed"
    );
    let shown = env2.keys_ok(&["show", "k1"]);
    assert!(
        shown.contains("scopes:    orders:cancel orders:read"),
        "{shown}"
    );
    c.logout();
}

#[test]
fn the_keys_cli_names_each_problem_and_never_shows_a_secret() {
    let env = Env::new("");
    // No store yet: the gateway refuses to start and says how to create one.
    let cfg = config(env.dir.path(), &env.extra);
    let e = match portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast()) {
        Ok(_) => panic!("no key store, no start"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("does not exist") && e.contains("portcullis keys add"),
        "{e}"
    );
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let secret_b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    for (args, needle) in [
        (
            vec!["add", "k1", "--comp-id", "CLIENT1", "--allow", "127.0.0.1"],
            "already exists",
        ),
        (
            vec![
                "add",
                "k2",
                "--comp-id",
                "CLIENT1",
                "--allow",
                "10.0.0.0/40",
            ],
            "prefix length",
        ),
        (
            vec![
                "add",
                "k2",
                "--comp-id",
                "CLIENT1",
                "--allow",
                "::1",
                "--role",
                "root",
            ],
            "\"root\" is not one of",
        ),
        (
            vec![
                "add",
                "k2",
                "--comp-id",
                "CLIENT1",
                "--allow",
                "::1",
                "--scope",
                "orders:delete",
            ],
            "\"orders:delete\"",
        ),
        (
            vec!["add", "bad id", "--comp-id", "C", "--allow", "::1"],
            "key id",
        ),
        (vec!["revoke", "nobody"], "no key \"nobody\""),
        (vec!["rotate", "nobody"], "no key \"nobody\""),
    ] {
        let (ok, out, err) = env.keys(&args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains(&secret_b64) && !out.contains(&secret_b64));
    }
    for args in [vec!["list"], vec!["show", "k1"]] {
        let out = env.keys_ok(&args);
        assert!(out.contains("k1"), "{out}");
        assert!(!out.contains(&secret_b64), "{args:?} printed the secret");
    }
}

#[test]
fn a_store_tampered_while_running_is_not_applied_and_the_keys_in_force_stay() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1"]);
    let (gw, _s, _) = env.start();
    let store = gw.dir.path().join("keys.store");
    let mut bytes = std::fs::read(&store).unwrap();
    let i = bytes.len() - 5;
    bytes[i] ^= 0x10;
    std::fs::write(&store, &bytes).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("T1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    c.logout();
}

#[test]
fn sighup_applies_a_changed_tier_to_keys_with_their_own_tier() {
    let env = Env::new("\n[[tier]]\nname = \"key-tier\"\norders = { per_day = 1 }\n");
    let secret = env.add(
        "k1",
        &[
            "--comp-id",
            "CLIENT1",
            "--tier",
            "key-tier",
            "--allow",
            "127.0.0.1",
        ],
    );
    let (mut child, lines, addr) = crate::util::spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&env.cfg_path),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let mut order = |cl: &str| {
        c.send("D", &nos(cl, "AAPL", "1", "1", Some("10")));
        c.expect_any(&["8", "j"])
    };
    assert_eq!(field(&order("T1"), 35).as_deref(), Some("8"));
    assert_eq!(
        field(&order("T2"), 35).as_deref(),
        Some("j"),
        "the key's tier allows one order a day"
    );
    let text = std::fs::read_to_string(&env.cfg_path).unwrap();
    std::fs::write(
        &env.cfg_path,
        text.replace("per_day = 1 }", "per_day = 100 }"),
    )
    .unwrap();
    crate::util::signal(&child, "HUP");
    let said = (0..50)
        .filter_map(|_| rx.recv_timeout(Duration::from_millis(100)).ok())
        .find(|l| l.contains("SIGHUP: throttle limits reloaded"))
        .unwrap_or_default();
    assert!(said.contains("the keys' own tiers"), "{said:?}");
    let mut admitted = false;
    for i in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if field(&order(&format!("T3-{i}")), 35).as_deref() == Some("8") {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "the key's raised quota applies without a restart");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn keys_generate_adds_many_keys_in_one_go_and_each_secret_logs_on() {
    let env = Env::new("");
    env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let out_path = env.secrets.path().join("bulk.secrets");
    let out = env.keys_ok(&[
        "generate",
        "--count",
        "500",
        "--prefix",
        "b-",
        "--comp-id",
        "CLIENT2",
        "--allow",
        "127.0.0.1/32",
        "--secrets-out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.contains("500 keys added: b-000001 … b-000500"), "{out}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(lines.len(), 500);
    assert!(!out.contains(lines[0].1), "secrets are not printed");
    // Ids that exist already are refused, naming one; nothing is added.
    let (ok, _, err) = env.keys(&[
        "generate",
        "--count",
        "3",
        "--prefix",
        "b-",
        "--comp-id",
        "CLIENT2",
        "--allow",
        "127.0.0.1/32",
    ]);
    assert!(!ok && err.contains("\"b-000001\" already exists"), "{err}");
    let (ok, _, err) = env.keys(&[
        "generate",
        "--count",
        "0",
        "--comp-id",
        "CLIENT2",
        "--allow",
        "127.0.0.1/32",
    ]);
    assert!(!ok && err.contains("--count 0"), "{err}");
    let listed = env.keys_ok(&["list"]);
    assert_eq!(listed.matches("b-0").count(), 500, "{listed}");
    assert!(listed.contains("k1"), "the existing key is kept");
    // Keys from the bulk file log on like any other (first and last).
    let (gw, _s, _) = env.start();
    for (id, secret) in [lines[0], lines[499]] {
        let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
        c.signed_logon(id, &b64(secret));
        c.send("D", &nos(&format!("G{id}"), "AAPL", "1", "100", Some("10")));
        assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
        c.logout();
    }
}
