//! Intrusion detection and response (issue 15) through real sockets, the real key CLI and the
//! real control socket: a logon brute force from 127.0.0.2 is locked out, alerted (events,
//! audit trail, ops ring) and, by policy, its address blocked while the real client on
//! 127.0.0.1 trades; key-id probing alerts; replays under a `kill_key` policy kill the key's
//! session within 5 s; `portcullis ctl unblock` lifts a block.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis::monitor::Counter;

use crate::auth::Env;
use crate::util::*;

/// A client whose socket is bound to source address `from` (e.g. 127.0.0.2).
fn connect_from(addr: SocketAddr, from: &str, sender: &str) -> Client {
    let ip: IpAddr = from.parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let tcp: TcpStream = sock.into();
    Client::from_stream(tcp, "FIX.4.4", sender, "GW")
}

/// Starts the gateway of `env` with `ids` appended to its config (`gateway::start` starts its
/// audit trail too).
fn start_with(env: Env, ids: &str) -> (Gw, tempfile::TempDir) {
    let extra = format!("{}\n{ids}\n", env.extra);
    let gw = start_in(env.dir, &extra);
    assert!(
        gw.running.trail.is_some(),
        "the audit trail is on by default"
    );
    (gw, env.secrets)
}

/// Waits (at most 5 s) until some audit trail file under `dir` contains every one of `needles`
/// on one line; that line.
fn wait_trail(dir: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("audit")) {
            for f in rd.flatten() {
                all.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
            }
        }
        if let Some(l) = all.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no trail record with {needles:?} in:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 5 s) for an events.log line containing every one of `needles`.
fn wait_line(dir: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = events(dir);
        if let Some(l) = ev.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needles:?} in:\n{ev}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the gateway closes a fresh connection from `from` before it sends anything, well
/// within the logon timeout (1.5 s).
fn closed_at_once(addr: SocketAddr, from: &str) -> bool {
    let mut c = connect_from(addr, from, "CLIENT1");
    c.closed_within(Duration::from_millis(700))
}

fn trade(c: &mut Client, cl: &str) -> Vec<u8> {
    c.send("D", &nos(cl, "AAPL", "1", "100", Some("150")));
    c.expect("8")
}

#[test]
fn a_brute_force_is_locked_out_alerted_and_its_address_blocked_while_the_real_client_trades() {
    let env = Env::new("lockout_failures = 3\nlockout_window_ms = 60000\nlockout_ms = 600000\n");
    let secret = env.add(
        "k1",
        &[
            "--comp-id",
            "CLIENT1",
            "--allow",
            "127.0.0.1/32",
            "--allow",
            "127.0.0.2/32",
        ],
    );
    let (gw, _secrets) = start_with(
        env,
        "[ids]\nlogon_brute_force_address = { threshold = 5, window_ms = 60000 }\n\
         [[ids.policy]]\nkind = \"logon-brute-force\"\nmin_severity = \"high\"\n\
         actions = [\"block_address\"]\nblock_for_ms = 600000\n",
    );
    let dir = gw.dir.path().to_path_buf();
    // Not blocked before: a fresh connection from 127.0.0.2 stays open until its logon.
    assert!(!closed_at_once(gw.addr, "127.0.0.2"));
    // The attack: wrong signatures for k1 from 127.0.0.2.
    for _ in 0..5 {
        let mut c = connect_from(gw.addr, "127.0.0.2", "CLIENT1");
        let m = c.signed_logon_bytes("k1", &[7u8; 32], now_utc());
        c.send_raw(&m);
        crate::perimeter_logon::assert_closed_silently(&mut c);
    }
    // The gateway's own lockout, then the alert, the action, in the events ...
    wait_line(
        &dir,
        &["auth-lockout what=key-at-address", "peer=127.0.0.2"],
    );
    let alert = wait_line(
        &dir,
        &[
            "ids-alert alert-kind=logon-brute-force",
            "subject=address:127.0.0.2",
        ],
    );
    assert!(alert.contains("severity=high"), "{alert}");
    assert!(alert.contains("count=5 threshold=5"), "{alert}");
    let action = wait_line(&dir, &["ids-action action=block_address", "ok=true"]);
    assert!(action.contains("target=address:127.0.0.2"), "{action}");
    // ... and in the audit trail, the action with the ids as its actor.
    wait_trail(
        &dir,
        &["ids-alert", "logon-brute-force", "127.0.0.2", "\"high\""],
    );
    wait_trail(
        &dir,
        &[
            "ids-action",
            "ids (auto: logon-brute-force)",
            "block_address",
        ],
    );
    // The control socket audited the block like an operator's.
    let audit = std::fs::read_to_string(dir.join("control-audit.log")).unwrap();
    assert!(
        audit.contains("\"op\":\"block\"") && audit.contains("ids (auto: logon-brute-force)"),
        "{audit}"
    );
    // The ring the ops port reads.
    let recent = portcullis::ids::recent_json(&dir);
    assert_eq!(recent[0]["kind"], "logon-brute-force", "{recent}");
    assert_eq!(recent[0]["actions"][0], "block_address=ok", "{recent}");
    // The address's next connection is closed at once, and counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.running.handle.counters.get(Counter::AddressBlocks) == 0 {
        assert!(
            Instant::now() < deadline,
            "the block never reached the engine"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed_at_once(gw.addr, "127.0.0.2"));
    assert!(gw.running.handle.counters.get(Counter::BlockedConnections) >= 1);
    assert!(gw.running.handle.counters.get(Counter::IdsAlerts) >= 1);
    assert!(gw.running.handle.counters.get(Counter::IdsActions) >= 1);
    // The legitimate client on 127.0.0.1 logs on and trades meanwhile.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let er = trade(&mut c, "ids-1");
    assert_eq!(field(&er, 39).as_deref(), Some("0"), "{}", show(&er));
    c.logout();
    // Only an authorised action lifts the block: `portcullis ctl unblock`.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--data-dir"])
        .arg(&dir)
        .args([
            "unblock",
            "127.0.0.2",
            "--by",
            "soc-analyst",
            "--reason",
            "false positive",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.running.handle.counters.get(Counter::AddressBlocks) != 0 {
        assert!(
            Instant::now() < deadline,
            "the unblock never reached the engine"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!closed_at_once(gw.addr, "127.0.0.2"));
    // A bad address is refused with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--data-dir"])
        .arg(&dir)
        .args(["unblock", "not-an-ip", "--by", "x", "--reason", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("not an IP address"), "{said}");
}

#[test]
fn key_id_probing_raises_its_alert() {
    let env = Env::new("lockout_failures = 1000\nlockout_address_failures = 1000\n");
    env.add("k2", &["--comp-id", "CLIENT2", "--allow", "127.0.0.1/32"]);
    let (gw, _secrets) = start_with(
        env,
        "[ids]\nkey_id_probing = { threshold = 4, window_ms = 60000 }\n",
    );
    let dir = gw.dir.path().to_path_buf();
    for i in 0..3 {
        let mut c = connect_from(gw.addr, "127.0.0.3", "CLIENT2");
        let m = c.signed_logon_bytes(&format!("probe{i}"), &[1u8; 32], now_utc());
        c.send_raw(&m);
        crate::perimeter_logon::assert_closed_silently(&mut c);
    }
    wait_line(&dir, &["auth-failed", "key=\"probe2\"", "unknown key id"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !events(&dir).contains("key-id-probing"),
        "3 probes are below the threshold of 4"
    );
    let mut c = connect_from(gw.addr, "127.0.0.3", "CLIENT2");
    let m = c.signed_logon_bytes("probe3", &[1u8; 32], now_utc());
    c.send_raw(&m);
    crate::perimeter_logon::assert_closed_silently(&mut c);
    let alert = wait_line(
        &dir,
        &[
            "ids-alert alert-kind=key-id-probing",
            "subject=address:127.0.0.3",
        ],
    );
    assert!(alert.contains("count=4"), "{alert}");
    wait_trail(&dir, &["ids-alert", "key-id-probing", "127.0.0.3"]);
    // Alert only: no policy, no action.
    assert!(!events(&dir).contains("ids-action"), "{}", events(&dir));
}

#[test]
fn replays_under_a_kill_key_policy_kill_that_key_within_5_s() {
    let env = Env::new("lockout_failures = 1000\nlockout_address_failures = 1000\n");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let secret2 = env.add("k2", &["--comp-id", "CLIENT2", "--allow", "127.0.0.1/32"]);
    let (gw, _secrets) = start_with(
        env,
        "[ids]\nreplay_attempt = { threshold = 2, window_ms = 60000 }\n\
         [[ids.policy]]\nkind = \"replay-attempt\"\nactions = [\"kill_key\"]\n",
    );
    let dir = gw.dir.path().to_path_buf();
    // A real logon, whose bytes an attacker captured.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let captured = c.signed_logon_bytes("k1", &secret, now_utc());
    c.send_raw(&captured);
    c.expect("A");
    c.logout();
    // Replayed twice.
    let mut triggered = Instant::now();
    for _ in 0..2 {
        let mut r = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
        triggered = Instant::now();
        r.send_raw(&captured);
        crate::perimeter_logon::assert_closed_silently(&mut r);
    }
    wait_line(&dir, &["auth-failed", "signature replayed"]);
    let kill = wait_line(&dir, &["kill scope=session:", "CLIENT1"]);
    let took = triggered.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the kill came {took:?} after the triggering replay"
    );
    let alert = wait_line(
        &dir,
        &["ids-alert alert-kind=replay-attempt", "subject=key:k1"],
    );
    assert!(alert.contains("severity=high"), "{alert}");
    wait_line(&dir, &["ids-action action=kill_key", "ok=true"]);
    let _ = kill;
    wait_trail(
        &dir,
        &["ids-action", "ids (auto: replay-attempt)", "kill_key"],
    );
    // The key's orders are refused (kill switch on its session); another key still trades.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let er = trade(&mut c, "ids-2");
    assert_eq!(field(&er, 39).as_deref(), Some("8"), "{}", show(&er));
    c.logout();
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.signed_logon("k2", &secret2);
    let er = trade(&mut c2, "ids-3");
    assert_eq!(field(&er, 39).as_deref(), Some("0"), "{}", show(&er));
    c2.logout();
}

#[test]
fn a_bad_ids_policy_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        dir.path(),
        &format!(
            "{SESSIONS}{}[ids]\n[[ids.policy]]\nkind = \"logon-brute-force\"\nactions = [\"block_address\"]\nblock_for_ms = 0\n",
            sim("ack")
        ),
    );
    let e = portcullis::config::Config::parse(&text, "t.toml").unwrap_err();
    assert_eq!(e.key, "ids.policy[0].block_for_ms", "{e}");
}

/// `portcullis ctl --data-dir DIR ARGS...` succeeds.
fn ctl_ok(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_address_block_survives_a_restart_and_so_does_its_lifting() {
    let extra = format!("{SESSIONS}{}", sim("ack"));
    let gw = start(&extra);
    let dir = gw.dir.path().to_path_buf();
    ctl_ok(
        &dir,
        &[
            "block",
            "127.0.0.4",
            "--for",
            "30m",
            "--by",
            "soc",
            "--reason",
            "scanner",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.running.handle.counters.get(Counter::AddressBlocks) == 0 {
        assert!(
            Instant::now() < deadline,
            "the block never reached the engine"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed_at_once(gw.addr, "127.0.0.4"));
    // Restart on the same data folder: still blocked, the legitimate address still served.
    let Gw {
        running, dir: tmp, ..
    } = gw;
    running.stop();
    let gw = start_in(tmp, &extra);
    assert_eq!(gw.running.handle.counters.get(Counter::AddressBlocks), 1);
    assert!(
        closed_at_once(gw.addr, "127.0.0.4"),
        "blocked after the restart"
    );
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.logout();
    // Lifted, and the lifting survives the next restart too.
    ctl_ok(
        &dir,
        &["unblock", "127.0.0.4", "--by", "soc", "--reason", "cleared"],
    );
    let Gw {
        running, dir: tmp, ..
    } = gw;
    running.stop();
    let gw = start_in(tmp, &extra);
    assert_eq!(gw.running.handle.counters.get(Counter::AddressBlocks), 0);
    assert!(!closed_at_once(gw.addr, "127.0.0.4"));
}

/// Per-key baselines (MON-1) through real sockets: two keys trade at a steady rate (about 4
/// orders a 200 ms bucket, each waiting for its report) through the learning period; then k1
/// sends a burst of 150 orders. The alert names k1, reaches events.log, the trail and the ops
/// ring, and the `kill_key` policy kills k1's session; k2, which kept its pace, raises nothing
/// and still trades.
#[test]
fn a_burst_after_a_steady_learning_period_alerts_naming_the_key_and_spares_the_other() {
    let env = Env::new("");
    let secret1 = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let secret2 = env.add("k2", &["--comp-id", "CLIENT2", "--allow", "127.0.0.1/32"]);
    // Floors far above the steady pace (30 orders a bucket against ~4); active hours off (the
    // test may cross an hour).
    let (gw, _secrets) = start_with(
        env,
        "[ids.anomaly]\nbucket_ms = 200\nlearning_buckets = 10\nfloor_orders = 30\n\
         floor_notional = 1e15\nfloor_symbols = 100\nmin_hour_share = 0\n\
         [[ids.policy]]\nkind = \"order-rate-spike\"\nactions = [\"kill_key\"]\n",
    );
    let dir = gw.dir.path().to_path_buf();
    let mut c1 = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c1.signed_logon("k1", &secret1);
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.signed_logon("k2", &secret2);
    // Steady: 16 rounds of 200 ms (at least the 10 learning buckets, however slow the host).
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(3200) || n < 48 {
        for c in [&mut c1, &mut c2] {
            let er = trade(c, &format!("s{n}"));
            assert_eq!(field(&er, 39).as_deref(), Some("0"), "{}", show(&er));
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !events(&dir).contains("ids-alert"),
        "a steady pace alerted: {}",
        events(&dir)
    );
    // The burst: 150 orders sent at once by k1.
    for i in 0..150 {
        c1.send("D", &nos(&format!("b{i}"), "AAPL", "1", "100", Some("150")));
    }
    let alert = wait_line(
        &dir,
        &["ids-alert alert-kind=order-rate-spike", "subject=key:k1"],
    );
    assert!(alert.contains("severity=high"), "{alert}");
    assert!(alert.contains("baseline mean"), "{alert}");
    wait_line(&dir, &["ids-action action=kill_key", "ok=true"]);
    wait_trail(&dir, &["ids-alert", "order-rate-spike", "\"key\":\"k1\""]);
    let recent = portcullis::ids::recent_json(&dir);
    let spike = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "order-rate-spike")
        .unwrap_or_else(|| panic!("{recent}"));
    assert_eq!(spike["subject"], "key:k1", "{recent}");
    assert_eq!(spike["rule"], "anomaly", "{recent}");
    // k2 kept its pace: nothing about it, and it still trades.
    assert!(!events(&dir).contains("subject=key:k2"), "{}", events(&dir));
    let er = trade(&mut c2, "after");
    assert_eq!(field(&er, 39).as_deref(), Some("0"), "{}", show(&er));
}

/// Geographic anomalies (MON-2) through real sockets: 127.0.0.1 is in "eu-london", 127.0.0.2
/// in "us-east" (`[[ids.region]]`). k1 logs on from london through its learning logons; a
/// logon from 127.0.0.2 then raises `new-region` and, being minutes after the last london
/// logon while `travel_ms` is an hour, `impossible-travel`. k2 logging on from 127.0.0.2 for
/// the first time raises nothing (no baseline yet, no previous region).
#[test]
fn a_logon_from_a_new_region_and_faster_than_travel_allows_alerts() {
    let env = Env::new("");
    let secret1 = env.add(
        "k1",
        &[
            "--comp-id",
            "CLIENT1",
            "--allow",
            "127.0.0.1/32",
            "--allow",
            "127.0.0.2/32",
        ],
    );
    let secret2 = env.add("k2", &["--comp-id", "CLIENT2", "--allow", "127.0.0.2/32"]);
    let (gw, _secrets) = start_with(
        env,
        "[ids.geo]\nlearning_logons = 3\ntravel_ms = 3600000\n\
         [[ids.region]]\ncidr = \"127.0.0.0/8\"\nregion = \"eu-london\"\n\
         [[ids.region]]\ncidr = \"127.0.0.2/32\"\nregion = \"us-east\"\n",
    );
    let dir = gw.dir.path().to_path_buf();
    for _ in 0..3 {
        let mut c = connect_from(gw.addr, "127.0.0.1", "CLIENT1");
        c.signed_logon("k1", &secret1);
        c.logout();
    }
    let mut c = connect_from(gw.addr, "127.0.0.2", "CLIENT2");
    c.signed_logon("k2", &secret2);
    c.logout();
    wait_line(
        &dir,
        &["logon session=FIX.4.4:CLIENT2->GW", "peer=127.0.0.2"],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!events(&dir).contains("ids-alert"), "{}", events(&dir));
    let mut c = connect_from(gw.addr, "127.0.0.2", "CLIENT1");
    c.signed_logon("k1", &secret1);
    let new = wait_line(&dir, &["ids-alert alert-kind=new-region", "subject=key:k1"]);
    assert!(
        new.contains("us-east") && new.contains("eu-london"),
        "{new}"
    );
    let travel = wait_line(
        &dir,
        &["ids-alert alert-kind=impossible-travel", "subject=key:k1"],
    );
    assert!(travel.contains("severity=high"), "{travel}");
    wait_trail(&dir, &["ids-alert", "new-region", "127.0.0.2"]);
    assert!(!events(&dir).contains("subject=key:k2"), "{}", events(&dir));
    c.logout();
}

/// The same through a MaxMind-format database alone (`[ids.geo] database`, no
/// `[[ids.region]]`): a file written by tests/common/mmdb.rs (IPv6 tree, IPv4 at ::/96) puts
/// 127.0.0.0/8 in Germany and 127.0.0.2 in Japan. k2 stays in Japan for more logons than the
/// learning takes and raises nothing; k1 learns Germany, then logs on from Japan minutes later:
/// `new-region` (JP, known DE) and `impossible-travel`. The detector handles events in order, so
/// once k1's alerts are there, k2's logons have all been judged.
#[test]
fn a_maxmind_database_alone_names_the_regions_of_logons() {
    let env = Env::new("");
    let db = env.dir.path().join("GeoLite2-Country-test.mmdb");
    let mut w = crate::mmdb::Writer::new(6);
    w.insert(
        "127.0.0.0/8",
        &crate::mmdb::country("EU", "DE", "Germany", 2_921_044),
    )
    .insert(
        "127.0.0.2/32",
        &crate::mmdb::country("AS", "JP", "Japan", 1_861_060),
    );
    std::fs::write(&db, w.finish()).unwrap();
    let secret1 = env.add(
        "k1",
        &[
            "--comp-id",
            "CLIENT1",
            "--allow",
            "127.0.0.1/32",
            "--allow",
            "127.0.0.2/32",
        ],
    );
    let secret2 = env.add("k2", &["--comp-id", "CLIENT2", "--allow", "127.0.0.2/32"]);
    let (gw, _secrets) = start_with(
        env,
        &format!(
            "[ids.geo]\ndatabase = {:?}\nlearning_logons = 3\ntravel_ms = 3600000\n",
            db.display().to_string()
        ),
    );
    let dir = gw.dir.path().to_path_buf();
    let loaded = wait_line(&dir, &["ids-geo-database loaded"]);
    assert!(
        loaded.contains("field=country.iso_code") && loaded.contains("ip-version=6"),
        "{loaded}"
    );
    for _ in 0..3 {
        let mut c = connect_from(gw.addr, "127.0.0.1", "CLIENT1");
        c.signed_logon("k1", &secret1);
        c.logout();
    }
    for _ in 0..5 {
        let mut c = connect_from(gw.addr, "127.0.0.2", "CLIENT2");
        c.signed_logon("k2", &secret2);
        c.logout();
    }
    let mut c = connect_from(gw.addr, "127.0.0.2", "CLIENT1");
    c.signed_logon("k1", &secret1);
    let new = wait_line(&dir, &["ids-alert alert-kind=new-region", "subject=key:k1"]);
    assert!(
        new.contains("region JP") && new.contains("known regions: DE"),
        "{new}"
    );
    let travel = wait_line(
        &dir,
        &["ids-alert alert-kind=impossible-travel", "subject=key:k1"],
    );
    assert!(
        travel.contains("region JP") && travel.contains("region DE"),
        "{travel}"
    );
    wait_trail(&dir, &["ids-alert", "impossible-travel", "127.0.0.2"]);
    let all = events(&dir);
    assert_eq!(all.matches("ids-alert").count(), 2, "{all}");
    assert!(!all.contains("subject=key:k2"), "{all}");
    c.logout();
}

/// `portcullis check-config` refuses a `[ids.geo] database` that is not a MaxMind DB, or that
/// is missing, naming `ids.geo.database`.
#[test]
fn check_config_refuses_a_geo_database_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, "this is not a MaxMind database\n".repeat(64)).unwrap();
    for (file, why) in [
        (&garbage, "is not a MaxMind DB file"),
        (&dir.path().join("absent.mmdb"), "cannot read"),
    ] {
        let cfg = dir.path().join("geo.toml");
        let extra = format!(
            "{SESSIONS}\n[ids.geo]\ndatabase = {:?}\n",
            file.display().to_string()
        );
        std::fs::write(&cfg, config_text(dir.path(), &extra)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("check-config")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("ids.geo.database") && err.contains(why),
            "{err}"
        );
    }
}

/// A MaxMind database of one network, `net` in `country` (ISO code `iso`), for IP version `v`.
fn one_country_db(v: u16, net: &str, continent: &str, iso: &str, name: &str, id: u32) -> Vec<u8> {
    let mut w = crate::mmdb::Writer::new(v);
    w.insert(net, &crate::mmdb::country(continent, iso, name, id));
    w.finish()
}

/// `geoipupdate` replaced the database and the operator sent SIGHUP (`ids::reload_geo`, what
/// the CLI's SIGHUP calls): the next logon is located with the new file, so a key that learnt
/// DE for 127.0.0.1 is alerted when the same address is now JP.
#[test]
fn a_reloaded_maxmind_database_moves_an_address_to_its_new_region() {
    let env = Env::new("");
    let db = env.dir.path().join("GeoLite2-Country.mmdb");
    std::fs::write(
        &db,
        one_country_db(6, "127.0.0.0/8", "EU", "DE", "Germany", 2_921_044),
    )
    .unwrap();
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let (gw, _secrets) = start_with(
        env,
        &format!(
            "[ids.geo]\ndatabase = {:?}\nlearning_logons = 2\ntravel_ms = 1\n",
            db.display().to_string()
        ),
    );
    let dir = gw.dir.path().to_path_buf();
    wait_line(&dir, &["ids-geo-database loaded", "ip-version=6"]);
    for _ in 0..2 {
        let mut c = connect_from(gw.addr, "127.0.0.1", "CLIENT1");
        c.signed_logon("k1", &secret);
        c.logout();
    }
    // Written beside and renamed over, as geoipupdate does.
    let next = db.with_extension("mmdb.new");
    std::fs::write(
        &next,
        one_country_db(4, "127.0.0.0/8", "AS", "JP", "Japan", 1_861_060),
    )
    .unwrap();
    std::fs::rename(&next, &db).unwrap();
    portcullis::ids::reload_geo(&dir);
    wait_line(&dir, &["ids-geo-database reloaded", "ip-version=4"]);
    let mut c = connect_from(gw.addr, "127.0.0.1", "CLIENT1");
    c.signed_logon("k1", &secret);
    let new = wait_line(&dir, &["ids-alert alert-kind=new-region", "subject=key:k1"]);
    assert!(
        new.contains("region JP") && new.contains("known regions: DE"),
        "{new}"
    );
    c.logout();
}

/// SIGHUP to `portcullis run` reads `[ids.geo] database` again; a file that is no longer a
/// MaxMind database is reported and the one loaded before stays in use.
#[test]
fn sighup_reloads_the_geo_database_and_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = dir.path().join("GeoLite2-Country.mmdb");
    std::fs::write(
        &db,
        one_country_db(6, "10.0.0.0/8", "EU", "DE", "Germany", 2_921_044),
    )
    .unwrap();
    let cfg = dir.path().join("portcullis.toml");
    let extra = format!(
        "{SESSIONS}\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"ack\"\n\n[ids.geo]\ndatabase = {:?}\n",
        db.display().to_string()
    );
    std::fs::write(&cfg, config_text(&data, &extra)).unwrap();
    let (mut child, lines, _addr) = crate::util::spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg),
    );
    std::thread::spawn(move || for _ in lines {});
    wait_line(&data, &["ids-geo-database loaded", "ip-version=6"]);
    std::fs::write(
        &db,
        one_country_db(4, "10.0.0.0/8", "AS", "JP", "Japan", 1_861_060),
    )
    .unwrap();
    crate::util::signal(&child, "HUP");
    wait_line(&data, &["ids-geo-database reloaded", "ip-version=4"]);
    std::fs::write(&db, "not a MaxMind database\n".repeat(64)).unwrap();
    crate::util::signal(&child, "HUP");
    let bad = wait_line(&data, &["ids-geo-database-error", "ids.geo.database"]);
    assert!(
        bad.contains("the database loaded before stays in use"),
        "{bad}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
