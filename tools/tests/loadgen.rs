//! `loadgen` as the real binary against a gateway started in this process (blocking mode, a
//! session LOAD → GW without a throttle tier, simulated venue `fill`) and against its own echo
//! server; plus the schedule arithmetic and the coordinated-omission correction. No timing
//! assertions: the figures depend on the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::gateway::Running;
use portcullis_tools::loadgen::{
    intended_ns, orders_for, sender_comp_id, Answer, Mix, Op, Recorder,
};

struct Gw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    running: Running,
    addr: SocketAddr,
    #[allow(dead_code)] // held for its Drop, which deletes the data folder
    dir: tempfile::TempDir,
}

fn gateway() -> Gw {
    gateway_with(
        &format!(
            "[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"LOAD\"\ndefault_account = \"ACC1\"\n{}",
            portcullis::config::risk::permissive_toml(&["ACC1"], &[])
        ),
        "fill",
    )
}

/// A gateway with the given [[session]] entries and a simulated venue of `behaviour`.
fn gateway_with(sessions: &str, behaviour: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nsession_segment_bytes = 1048576\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 65536\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n{sessions}\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"{behaviour}\"\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&[], &["AAPL", "MSFT", "IBM"]),
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
        &["fix", "--connect", "127.0.0.1:1", "--mix", "cancel=5"],
        &[
            "fix",
            "--connect",
            "127.0.0.1:1",
            "--mix",
            "new=90,amend=10",
        ],
        &["fix", "--connect", "127.0.0.1:1", "--sessions", "0"],
        &["gen-config", "--venue", "teleport"],
        &["plot", "--svg", "x.svg", "no-label"],
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
    let (mut server, addr) = common::echo_server(mode);
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
        sessions: 1,
        mix: portcullis_tools::loadgen::Mix::default(),
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
    let (mut server, addr) = common::echo_server("spin");
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

/// `loadgen gen-config` run as the binary.
fn gen_config(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("gen-config")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run_fix(addr: SocketAddr, extra: &[&str], json_path: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &addr.to_string()])
        .args(["--target", "GW", "--reset"])
        .args(extra)
        .arg("--json")
        .arg(json_path)
        .output()
        .unwrap();
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sessions_are_named_from_the_sender_prefix() {
    assert_eq!(sender_comp_id("LOAD", 0, 1), "LOAD");
    assert_eq!(sender_comp_id("LOAD", 0, 3), "LOAD0001");
    assert_eq!(sender_comp_id("LOAD", 99, 100), "LOAD0100");
    assert_eq!(sender_comp_id("L", 0, 12_000), "L00001");
}

#[test]
fn the_load_is_spread_over_the_sessions_gen_config_prints() {
    // The sessions block comes from the binary, so the names loadgen uses and the names
    // gen-config prints are checked against a real gateway.
    let sessions = gen_config(&["--sessions", "3", "--target", "GW", "--sessions-only"]);
    assert_eq!(sessions.matches("[[session]]").count(), 3, "{sessions}");
    let gw = gateway_with(&sessions, "fill");
    let dir = tempfile::tempdir().unwrap();
    for poll in ["spin", "mio"] {
        let j = dir.path().join(format!("{poll}.json"));
        let out = run_fix(
            gw.addr,
            &[
                "--sessions",
                "3",
                "--poll",
                poll,
                "--rate",
                "600",
                "--duration-s",
                "1",
            ],
            &j,
        );
        assert_eq!(out.status.code(), Some(0), "{poll}");
        let v = json(&j);
        assert_eq!(v["sessions"].as_u64(), Some(3), "{v}");
        assert_eq!(v["sent"].as_u64(), Some(600), "{v}");
        assert_eq!(v["acked"].as_u64(), Some(600), "{v}");
        assert_eq!(v["unanswered"].as_u64(), Some(0), "{v}");
    }
    // A session the gateway does not know is a logon failure naming the session.
    let j = dir.path().join("four.json");
    let out = run_fix(gw.addr, &["--sessions", "4", "--duration-s", "0.2"], &j);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("session 3"), "{stderr}");
}

#[test]
fn cancels_and_replaces_target_open_orders() {
    // `ack` keeps every order open, so each cancel and replace finds one and is accepted.
    let sessions = gen_config(&[
        "--sessions",
        "2",
        "--target",
        "GW",
        "--sessions-only",
        "--accounts",
        "ACC-A,ACC-B",
    ]);
    let gw = gateway_with(&sessions, "ack");
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("mix.json");
    let out = run_fix(
        gw.addr,
        &[
            "--sessions",
            "2",
            "--mix",
            "new=50,cancel=25,replace=25",
            "--accounts",
            "ACC-A,ACC-B",
            "--rate",
            "800",
            "--duration-s",
            "1",
        ],
        &j,
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mix new=50,cancel=25,replace=25"),
        "{stdout}"
    );
    let v = json(&j);
    assert_eq!(v["sent"].as_u64(), Some(800), "{v}");
    assert_eq!(v["rejected"].as_u64(), Some(0), "{v}");
    assert_eq!(v["unanswered"].as_u64(), Some(0), "{v}");
    let by = &v["by_op"];
    for op in ["new", "cancel", "replace"] {
        let acked = by[op]["acked"].as_u64().unwrap();
        assert!(acked > 50, "{op}: {v}");
        assert_eq!(by[op]["sent"], by[op]["acked"], "{op}: {v}");
    }
}

#[test]
fn cancels_of_filled_orders_are_counted_as_rejects() {
    // `fill` fills every order at once: a cancel finds it done and gets an OrderCancelReject.
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("late.json");
    let out = run_fix(
        gw.addr,
        &[
            "--sender",
            "LOAD",
            "--mix",
            "new=50,cancel=50",
            "--rate",
            "400",
            "--duration-s",
            "1",
        ],
        &j,
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&j);
    let cancel = &v["by_op"]["cancel"];
    assert!(cancel["sent"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(cancel["sent"], cancel["rejected"], "{v}");
    assert_eq!(v["unanswered"].as_u64(), Some(0), "{v}");
}

#[test]
fn gen_config_prints_a_config_the_gateway_accepts() {
    let text = gen_config(&[
        "--sessions",
        "150",
        "--cpu",
        "0",
        "--flush-interval-ms",
        "0",
        "--venue",
        "ack",
        "--max-orders",
        "500000",
    ]);
    let cfg = Config::parse(&text, "gen.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.sessions.len(), 150);
    assert_eq!(cfg.sessions[149].their_comp_id, "LOAD0150");
    assert!(cfg.gateway.busy_poll);
    assert_eq!(cfg.gateway.cpu, Some(0));
    assert_eq!(cfg.gateway.flush_interval_ms, 0);
    assert_eq!(cfg.gateway.max_orders, 500_000);
    assert_eq!(
        cfg.venues[0].behaviour,
        Some(portcullis::config::SimBehaviourCfg::Ack)
    );
    // 150 sessions × 8 MiB would map 1.2 GiB: the segment shrinks.
    assert!(cfg.gateway.session_segment_bytes * 150 <= 1 << 30);
}

#[test]
fn the_percentile_plot_is_drawn_for_a_run_and_for_hgrm_files() {
    let gw = gateway();
    let dir = tempfile::tempdir().unwrap();
    let (j, h, svg) = (
        dir.path().join("p.json"),
        dir.path().join("p.hgrm"),
        dir.path().join("p.svg"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &gw.addr.to_string()])
        .args(["--sender", "LOAD", "--target", "GW", "--reset"])
        .args(["--rate", "500", "--duration-s", "0.5"])
        .arg("--json")
        .arg(&j)
        .arg("--hgrm")
        .arg(&h)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg"), "{drawn}");
    assert!(
        drawn.contains("99%") && drawn.contains("<polyline"),
        "{drawn}"
    );
    let one_series = drawn.matches("<polyline").count();

    // Two runs on one plot, from their .hgrm files.
    let both = dir.path().join("both.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plot", "--svg"])
        .arg(&both)
        .arg(format!("gateway={}", h.display()))
        .arg(format!("again={}", h.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn = std::fs::read_to_string(&both).unwrap();
    assert!(drawn.contains("gateway") && drawn.contains("again"));
    // One more line and one more legend mark than the plot of one run.
    assert_eq!(drawn.matches("<polyline").count(), one_series + 2);

    // A file that is not an .hgrm is named in the error.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plot", "--svg"])
        .arg(dir.path().join("bad.svg"))
        .arg(format!("x={}", j.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("p.json"), "{stderr}");
}

#[test]
fn the_mix_parses_weights_and_spreads_kinds_by_them() {
    let m = Mix::parse("new=90,cancel=5,replace=5").unwrap();
    assert_eq!((m.new, m.cancel, m.replace), (90, 5, 5));
    assert_eq!(Mix::parse("new=1").unwrap().op(7), Op::New);
    assert!(Mix::parse("cancel=1").is_err());
    assert!(Mix::parse("new=x").is_err());
    assert!(Mix::parse("new").is_err());
    let mut counts = [0u32; 3];
    for i in 0..100_000u64 {
        counts[m.op(i) as usize] += 1;
    }
    // Within 10 % of the weights.
    assert!((88_000..92_000).contains(&counts[0]), "{counts:?}");
    assert!((4_500..5_500).contains(&counts[1]), "{counts:?}");
    assert!((4_500..5_500).contains(&counts[2]), "{counts:?}");
    // Every one of 4 sessions (entry i on session i mod 4) gets every kind.
    for s in 0..4u64 {
        let kinds: std::collections::HashSet<_> =
            (0..1_000u64).map(|k| m.op(s + 4 * k) as usize).collect();
        assert_eq!(kinds.len(), 3, "session {s}");
    }
}

#[test]
fn runs_are_tabulated_with_the_ratios_of_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let summary = |name: &str, p50: f64, p99: f64| {
        let path = dir.path().join(format!("{name}.json"));
        let v = serde_json::json!({
            "achieved_rate": 10000.0, "rejected": 0, "unanswered": 0, "ended": null,
            "latency_us": {"p50": p50, "p90": p50, "p99": p99, "p99_9": p99, "p99_99": p99,
                           "max": p99, "min": 1.0, "mean": p50},
        });
        std::fs::write(&path, v.to_string()).unwrap();
        path
    };
    let (gw, floor) = (summary("gw", 12.0, 30.0), summary("floor", 8.0, 10.0));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["table", "--subject", "gateway"])
        .arg(format!("floor={}", floor.display()))
        .arg(format!("gateway={}", gw.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("gateway as a multiple of:"), "{stdout}");
    let ratio_line = stdout.lines().last().unwrap();
    assert!(ratio_line.starts_with("floor"), "{stdout}");
    // p50 12/8, p90 12/8, p99 30/10.
    assert!(
        ratio_line.contains("1.50×") && ratio_line.contains("3.00×"),
        "{stdout}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["table", "--subject", "nobody"])
        .arg(format!("floor={}", floor.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}

#[test]
fn a_gap_in_the_gateways_numbers_is_asked_for_again_and_filled_answers_count() {
    use portcullis::fix::{TimePrecision, Writer};
    use portcullis_tools::loadgen::wire::{Fix, FixConfig, Wire};
    let mut fix = Fix::new(
        FixConfig {
            senders: vec!["LOAD".into()],
            target: "GW".into(),
            heartbeat_s: 30,
            reset: true,
            symbols: vec![],
            accounts: vec![],
            utc0: 1_700_000_000_000_000_000,
            run_id: 7,
            signers: vec![],
        },
        8,
    );
    let mut rec = Recorder::new(8, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..3 {
        fix.order(0, i, Op::New, 0, &mut out);
        assert!(rec.sent(i, 0));
    }
    // What the gateway sends: Logon 1, the answer to order 0 as 2, then (3 and 4 dropped) the
    // answer to order 2 as 5; later 3 and 4 resent with PossDupFlag.
    let msg = |seq: u64, msg_type: &str, cl: Option<usize>| {
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", msg_type.as_bytes());
        w.str(49, b"GW").str(56, b"LOAD").uint(34, seq);
        w.timestamp(
            52,
            portcullis::model::Nanos(1_700_000_000_000_000_000),
            TimePrecision::Millis,
        );
        if let Some(i) = cl {
            w.str(11, format!("L7-{i}").as_bytes())
                .char(39, b'0')
                .char(150, b'0');
        }
        let r = w.finish().unwrap();
        buf[r].to_vec()
    };
    let mut rx = msg(1, "A", None);
    rx.extend(msg(2, "8", Some(0)));
    rx.extend(msg(5, "8", Some(2)));
    out.clear();
    assert_eq!(fix.incoming(0, &rx, 10_000, &mut out, &mut rec), rx.len());
    let asked = String::from_utf8_lossy(&out).replace('\x01', "|");
    assert!(asked.contains("|35=2|"), "{asked}");
    assert!(asked.contains("|7=3|16=4|"), "{asked}");
    assert_eq!((rec.acked, rec.in_flight()), (2, 1));
    assert!(fix.notes().unwrap().contains("2 message(s) in 1 gap(s)"));
    // The resent answer to order 1 arrives and counts.
    let resent = msg(3, "8", Some(1));
    out.clear();
    fix.incoming(0, &resent, 20_000, &mut out, &mut rec);
    assert!(out.is_empty(), "no second ResendRequest");
    assert_eq!((rec.acked, rec.in_flight()), (3, 0));
}

/// The config `gen-config --auth` prints for `n` sessions, on an ephemeral port in `data`,
/// blocking mode (tests share the box), with the load key `load` created through the library
/// as the printed `portcullis keys add` command would; returns the config and the secret file.
fn signed_gateway_config(n: &str, data: &Path) -> (Config, std::path::PathBuf) {
    let text = gen_config(&[
        "--sessions",
        n,
        "--auth",
        "--blocking",
        "--spin-read-conns",
        "4",
        "--spin-poll-every",
        "8",
        "--target",
        "GW",
        "--venue",
        "fill",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let cfg = Config::parse(&text, "gen.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.gateway.spin_read_conns, 4);
    assert_eq!(cfg.gateway.spin_poll_every, 8);
    assert!(cfg.auth.as_ref().unwrap().required);
    // The printed command names every session's CompID.
    let cmd: String = text.lines().take_while(|l| l.starts_with('#')).collect();
    let comp_ids: Vec<String> = cfg
        .sessions
        .iter()
        .map(|s| s.their_comp_id.clone())
        .collect();
    for c in &comp_ids {
        assert!(cmd.contains(&format!("--comp-id {c}")), "{cmd}");
    }
    let spec = portcullis::auth::admin::KeySpec {
        comp_ids,
        role: "trader".into(),
        allow: vec!["127.0.0.1/32".into()],
        ..Default::default()
    };
    let secret = portcullis::auth::admin::add(&cfg, "load", &spec, now_ms()).unwrap();
    let secret_file = data.join("load.secret");
    std::fs::write(&secret_file, secret.as_bytes()).unwrap();
    (cfg, secret_file)
}

#[test]
fn signed_logons_over_mtls_from_gen_config_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, secret_file) = signed_gateway_config("2", dir.path());
    let (pki, _) =
        portcullis::tls::dev::add_dev_listener(&mut cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let tls_addr = running.handle.listen_addrs[1];
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let j = dir.path().join("tls.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["fix", "--connect", &tls_addr.to_string(), "--sessions", "2"])
        .args(["--target", "GW", "--rate", "400", "--duration-s", "0.5"])
        .args(["--tls", "--ca", &p(&pki.ca), "--cert", &p(&pki.client_cert)])
        .args(["--key", &p(&pki.client_key)])
        .args(["--key-id", "load", "--secret-file", &p(&secret_file)])
        .arg("--json")
        .arg(&j)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("TLS: TLS 1.3"), "{stdout}");
    let v = json(&j);
    assert_eq!(v["sent"].as_u64(), Some(200), "{v}");
    assert_eq!(v["acked"], v["sent"], "{v}");
    // Over plaintext without a signature the same gateway refuses the Logon: exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "fix",
            "--connect",
            &running.handle.listen_addrs[0].to_string(),
        ])
        .args(["--sessions", "2", "--target", "GW", "--rate", "100"])
        .args(["--duration-s", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Both sessions are refused; which close loadgen reads first depends on epoll's order.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        ["0", "1"].iter().any(|s| err.contains(&format!(
            "logon failed (session {s}): connection closed by the peer"
        ))),
        "{err}"
    );
    running.stop();
}

#[test]
fn a_keys_file_signs_each_session_with_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = signed_gateway_config("3", dir.path());
    let spec = portcullis::auth::admin::KeySpec {
        comp_ids: cfg
            .sessions
            .iter()
            .map(|s| s.their_comp_id.clone())
            .collect(),
        role: "trader".into(),
        allow: vec!["127.0.0.1/32".into()],
        ..Default::default()
    };
    let made = portcullis::auth::admin::generate(&cfg, "per-", 3, &spec, now_ms()).unwrap();
    let keys_file = dir.path().join("keys.txt");
    let lines: String = made
        .iter()
        .map(|(id, s)| format!("{id} {}\n", s.as_str()))
        .collect();
    std::fs::write(&keys_file, lines).unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let j = dir.path().join("keys.json");
    let out = run_fix(
        running.handle.listen_addrs[0],
        &[
            "--sessions",
            "3",
            "--rate",
            "300",
            "--duration-s",
            "0.5",
            "--keys-file",
            keys_file.to_str().unwrap(),
        ],
        &j,
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&j);
    assert_eq!(v["acked"], v["sent"], "{v}");
    // Too few keys for the sessions: a usage error naming the file.
    let out = run_fix(
        running.handle.listen_addrs[0],
        &[
            "--sessions",
            "4",
            "--keys-file",
            keys_file.to_str().unwrap(),
        ],
        &j,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 key(s) for 4 session(s)"));
    running.stop();
}

/// Unix milliseconds now: keys are created "now" (a key created at 0 would be past
/// `auth.max_key_age_days` and refused).
fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}
