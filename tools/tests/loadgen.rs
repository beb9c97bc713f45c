//! `loadgen` as the real binary against a gateway started in this process (blocking mode, a
//! session LOAD → GW without a throttle tier, simulated venue `fill`) and against its own echo
//! server; plus the schedule arithmetic and the coordinated-omission correction. No timing
//! assertions: the figures depend on the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::gateway::Running;
use portcullis_tools::loadgen::{intended_ns, orders_for, Answer, Recorder};

struct Gw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    running: Running,
    addr: SocketAddr,
    #[allow(dead_code)] // held for its Drop, which deletes the data folder
    dir: tempfile::TempDir,
}

fn gateway() -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 65536\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"LOAD\"\ndefault_account = \"ACC1\"\n\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"fill\"\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&["ACC1"], &["AAPL", "MSFT", "IBM"]),
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let addr = running.handle.listen_addrs[0];
    Gw { running, addr, dir }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks the JSON summary and the .hgrm file of a clean run.
fn check_outputs(json_path: &Path, hgrm_path: &Path, sent: u64) {
    let j = json(json_path);
    assert_eq!(j["sent"].as_u64(), Some(sent), "{j}");
    assert_eq!(j["acked"].as_u64(), Some(sent), "{j}");
    assert_eq!(j["rejected"].as_u64(), Some(0), "{j}");
    assert_eq!(j["unanswered"].as_u64(), Some(0), "{j}");
    assert!(j["ended"].is_null(), "{j}");
    assert!(j["nproc"].as_u64().unwrap() >= 1);
    let lat = &j["latency_us"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{j}");
    assert!(j["measured"].as_u64().unwrap() > 0);

    let hgrm = std::fs::read_to_string(hgrm_path).unwrap();
    let first = hgrm.lines().next().unwrap();
    let header: Vec<_> = first.split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    let last_data = hgrm
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap();
    let cols: Vec<_> = last_data.split_whitespace().collect();
    assert_eq!(cols[1].parse::<f64>().unwrap(), 1.0, "{hgrm}");
    assert_eq!(
        cols[2].parse::<u64>().unwrap(),
        j["measured"].as_u64().unwrap()
    );
    assert!(hgrm.contains("#[Max"));
}

#[test]
fn fix_run_against_an_in_process_gateway() {
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let (j, h) = (dir.path().join("run.json"), dir.path().join("run.hgrm"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &gw.addr.to_string()])
        .args(["--sender", "LOAD", "--target", "GW", "--reset"])
        .args(["--rate", "500", "--duration-s", "1", "--warmup-s", "0.2"])
        .args(["--symbols", "AAPL,MSFT,IBM"])
        .arg("--json")
        .arg(&j)
        .arg("--hgrm")
        .arg(&h)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("p99.9"), "{stdout}");
    // 500/s for 1.2 s.
    check_outputs(&j, &h, 600);
}

#[test]
fn fix_closed_loop_keeps_a_window_in_flight() {
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &gw.addr.to_string()])
        .args(["--sender", "LOAD", "--target", "GW", "--reset"])
        .args(["--closed-loop", "--window", "4", "--duration-s", "0.3"])
        .args(["--max-orders", "500"])
        .arg("--json")
        .arg(&j)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0));
    let v = json(&j);
    assert!(v["closed_loop"].as_bool().unwrap());
    assert!(v["sent"].as_u64().unwrap() > 0);
    assert_eq!(v["sent"], v["acked"]);
}

#[test]
fn unknown_session_is_a_logon_failure_exit_2() {
    let gw = gateway();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &gw.addr.to_string()])
        .args([
            "--sender",
            "NOBODY",
            "--target",
            "GW",
            "--duration-s",
            "0.2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("logon"), "{stderr}");
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    for args in [
        &["fix", "--connect", "127.0.0.1:1", "--rate", "0"][..],
        &["fix", "--connect", "127.0.0.1:1", "--duration-s", "-1"],
        &["fix", "--connect", "127.0.0.1:1", "--window", "8"],
        &["echo-server", "--listen", "127.0.0.1:0", "--mode", "epoll"],
        &["echo", "--connect", "127.0.0.1:1", "--size", "4"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

fn echo_run(mode: &str) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo-server", "--listen", "127.0.0.1:0", "--mode", mode])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (j, h) = (dir.path().join("echo.json"), dir.path().join("echo.hgrm"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo", "--connect", &addr.to_string()])
        .args(["--rate", "500", "--duration-s", "1", "--size", "160"])
        .arg("--json")
        .arg(&j)
        .arg("--hgrm")
        .arg(&h)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    // The server exits when the client closes; kill it in case the client failed first.
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0));
    check_outputs(&j, &h, 500);
}

#[test]
fn echo_against_the_spinning_echo_server() {
    echo_run("spin");
}

#[test]
fn echo_against_the_mio_echo_server() {
    echo_run("mio");
}

#[test]
fn intended_times_are_integer_arithmetic_from_the_start() {
    assert_eq!(intended_ns(0, 10_000), 0);
    assert_eq!(intended_ns(1, 10_000), 100_000);
    assert_eq!(intended_ns(12_345, 10_000), 1_234_500_000);
    // 1e9/3 is not an integer: order i is at floor(i·1e9/3), no drift from a rounded period.
    assert_eq!(intended_ns(1, 3), 333_333_333);
    assert_eq!(intended_ns(3, 3), 1_000_000_000);
    assert_eq!(intended_ns(3_000_000, 3), 1_000_000_000_000_000);
    // No overflow for long runs at high rates.
    assert_eq!(intended_ns(u64::MAX / 2, 1), u64::MAX);
    assert_eq!(orders_for(500, 1_200_000_000), 600);
    assert_eq!(orders_for(3, 1_000_000_000), 3);
}

#[test]
fn a_stalled_ack_inflates_every_order_intended_during_the_stall() {
    // 1000 orders/s; every ack takes 10 µs, except that nothing comes back between 2 ms and
    // 7 ms: orders 2..=6 (intended at 2, 3, 4, 5, 6 ms) are all answered at 7.01 ms.
    let rate = 1_000;
    let mut rec = Recorder::new(10, 0).unwrap();
    for i in 0..10 {
        assert!(rec.sent(i, intended_ns(i as u64, rate)));
    }
    let stall_end = 7_010_000;
    for i in 0..10 {
        let t = intended_ns(i as u64, rate);
        let at = if (2..=6).contains(&i) {
            stall_end
        } else {
            t + 10_000
        };
        assert_eq!(rec.answer(i, at, true), Answer::First);
    }
    // A second ExecutionReport (the fill) does not count again.
    assert_eq!(rec.answer(3, 9_000_000, true), Answer::Repeat);
    assert_eq!(rec.answer(99, 9_000_000, true), Answer::Unknown);
    let h = &rec.hist;
    assert_eq!(h.len(), 10);
    // Five orders carry the stall, each from its own intended time: 5.01, 4.01, … 1.01 ms.
    assert_eq!(h.count_between(1_000_000, 6_000_000), 5);
    assert!(h.equivalent(h.max(), 5_010_000));
    assert!(h.equivalent(h.value_at_quantile(0.6), 1_010_000));
    assert!(h.equivalent(h.min(), 10_000));
    assert_eq!(rec.in_flight(), 0);
    let s = rec.summary(portcullis_tools::loadgen::RunInfo {
        mode: "test".into(),
        closed_loop: false,
        target_rate: Some(rate),
        window: None,
        duration_s: 0.01,
        warmup_s: 0.0,
        nproc: 2,
        ended: None,
    });
    assert_eq!(s.acked, 10);
    assert!(s.latency_us.p50 <= s.latency_us.p99 && s.latency_us.p99 <= s.latency_us.max);
}

#[test]
fn warm_up_orders_and_rejects_are_not_timed() {
    let mut rec = Recorder::new(4, 1_000).unwrap();
    rec.sent(0, 0); // warm-up
    rec.sent(1, 1_000);
    rec.sent(2, 2_000);
    rec.answer(0, 50_000, true);
    rec.answer(1, 50_000, true);
    rec.answer(2, 50_000, false);
    assert_eq!((rec.acked, rec.rejected, rec.hist.len()), (2, 1, 1));
    assert!(!rec.sent(2, 3_000), "an index is sent once");
    assert!(!rec.sent(4, 3_000), "past the capacity");
}

#[test]
fn a_peer_that_goes_away_mid_run_ends_it_with_exit_1_and_what_was_measured() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("cut.json");
    let client = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo", "--connect", &addr.to_string()])
        .args(["--rate", "500", "--duration-s", "5"])
        .arg("--json")
        .arg(&j)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    server.kill().unwrap();
    let _ = server.wait();
    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("run ended early"), "{stdout}");
    let v = json(&j);
    assert!(v["ended"].is_string(), "{v}");
    let sent = v["sent"].as_u64().unwrap();
    assert!(sent > 0 && sent < 2_500, "{v}");
    assert!(v["measured"].as_u64().unwrap() > 0, "{v}");
}
