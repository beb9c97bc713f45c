//! CLOCK-1/2: the clock status is reported honestly (`portcullis clock status`, the start-up
//! line of `portcullis run`), and a divergence breach with `on_divergence = "halt"` refuses new
//! orders through a real FIX session while cancels still work; "alert" only records it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::clock::SyncState;

use crate::util::*;

/// What the kernel says right now, as the CLI must print it.
fn kernel_state() -> &'static str {
    match portcullis::clock::sys::kernel_time() {
        Ok(k) if k.unsynchronised() => "unsynchronised",
        Ok(_) => "synchronised",
        Err(_) => "unknown",
    }
}

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{out}"))
        .trim()
}

#[test]
fn clock_status_reports_the_kernel_state_and_judges_it_by_the_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["clock", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let state = kernel_state();
    assert_eq!(line(&text, "sync:"), state, "{text}");
    let has_phc = portcullis::clock::sys::find_phc().is_some();
    assert_eq!(line(&text, "ptp:") == "none", !has_phc, "{text}");
    if state != "synchronised" {
        // Never a figure the kernel cannot back.
        assert_eq!(line(&text, "divergence:"), "unknown", "{text}");
    }
    assert!(line(&text, "limit:").starts_with("1000.000 µs (on breach: alert)"));
    // Defaults: an unsynchronised clock is alerted, not a breach.
    assert_eq!(line(&text, "within limit:"), "yes", "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");

    // Strict config: unsynchronised counts as a breach; the exit status says so.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("strict.toml");
    std::fs::write(
        &cfg,
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n[clock]\nmax_divergence_us = 100\non_divergence = \"halt\"\nunsynchronised_is_breach = true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["clock", "status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line(&text, "limit:").starts_with("100.000 µs (on breach: halt)"));
    let within = line(&text, "within limit:") == "yes";
    assert_eq!(
        out.status.code(),
        Some(if within { 0 } else { 1 }),
        "{text}"
    );
    if state != "synchronised" {
        assert!(
            !within,
            "strict: an unsynchronised clock is a breach\n{text}"
        );
        assert_eq!(line(&text, "halted:"), "yes");
    }

    // A bad [clock] value is refused with its key.
    std::fs::write(&cfg, "[clock]\ncalibrate_ms = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["clock", "status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clock.calibrate_ms"));
}

#[test]
fn run_prints_the_clock_status_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut clock = None;
    for l in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = l.trim().strip_prefix("clock: ") {
            clock = Some(rest.to_string());
            break;
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    std::thread::spawn(move || for _ in lines {});
    let _ = child.wait();
    let clock = clock.expect("a clock: line at start");
    assert!(
        clock.starts_with(&format!("{}, divergence ", kernel_state())),
        "{clock}"
    );
    assert!(clock.contains("on breach: alert"), "{clock}");
}

/// Waits until the clock thread has published `want` as the halt state.
fn wait_halted(gw: &Gw, want: bool) {
    let status = &gw.running.handle.clock_status;
    let deadline = Instant::now() + Duration::from_secs(5);
    while status.halted() != want {
        assert!(Instant::now() < deadline, "halted never became {want}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for at least one more clock-thread tick.
fn wait_tick(gw: &Gw) {
    let status = &gw.running.handle.clock_status;
    let seen = status.snapshot().updates;
    let deadline = Instant::now() + Duration::from_secs(5);
    while status.snapshot().updates < seen + 2 {
        assert!(Instant::now() < deadline, "the clock thread does not tick");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn events_log(gw: Gw) -> String {
    let Gw { running, dir, .. } = gw;
    running.stop();
    std::fs::read_to_string(dir.path().join("events.log")).unwrap()
}

#[test]
fn halt_refuses_new_orders_through_a_session_until_the_clock_is_back() {
    let gw = start(&format!(
        "{SESSIONS}{}\n[clock]\ncalibrate_ms = 20\nmax_divergence_us = 250000\non_divergence = \"halt\"\nunsynchronised_is_breach = true\n",
        sim("ack")
    ));
    let status = gw.running.handle.clock_status.clone();
    // Whatever this machine's real state, start from "synchronised" so the test is the same
    // everywhere; the override goes through the clock thread and the same atomics.
    status.force(Some(SyncState::Synchronised));
    wait_halted(&gw, false);
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("K1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));

    status.force(Some(SyncState::Unsynchronised));
    wait_halted(&gw, true);
    assert!(!status.snapshot().to_string().contains("within limit: yes"));
    c.send("D", &nos("H1", "AAPL", "1", "100", Some("10")));
    let r = c.expect("8");
    assert_eq!(field(&r, 11).as_deref(), Some("H1"));
    assert_eq!(field(&r, 39).as_deref(), Some("8"));
    assert_eq!(field(&r, 103).as_deref(), Some("99"));
    assert_eq!(
        field(&r, 58).as_deref(),
        Some("clock not synchronised to UTC within 250000 us")
    );
    // Risk-reducing instructions still pass while halted.
    c.send("F", "41=K1|11=K2|55=AAPL|54=1|38=100|60=20240101-00:00:00");
    let r = c.expect("8");
    assert_eq!(field(&r, 150).as_deref(), Some("4"), "{}", show(&r));

    let counters = &gw.running.handle.counters;
    assert_eq!(
        counters.get(portcullis::monitor::Counter::ClockHaltRejects),
        1
    );
    status.force(Some(SyncState::Synchronised));
    wait_halted(&gw, false);
    c.send("D", &nos("H2", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    c.logout();
    let log = events_log(gw);
    let clock: Vec<&str> = log.lines().filter(|l| l.contains(" clock-sync ")).collect();
    let halted = clock
        .iter()
        .position(|l| l.contains("state=unsynchronised") && l.contains("new-orders=halted"))
        .unwrap_or_else(|| panic!("no halt event in\n{log}"));
    assert!(
        clock[halted + 1..]
            .iter()
            .any(|l| l.contains("state=synchronised") && l.contains("new-orders=allowed")),
        "no recovery event after the halt in\n{log}"
    );
}

#[test]
fn alert_only_records_an_unsynchronised_clock_and_keeps_trading() {
    let gw = start(&format!(
        "{SESSIONS}{}\n[clock]\ncalibrate_ms = 20\non_divergence = \"alert\"\nunsynchronised_is_breach = true\n",
        sim("fill")
    ));
    let status = gw.running.handle.clock_status.clone();
    status.force(Some(SyncState::Unsynchronised));
    wait_tick(&gw);
    let snap = status.snapshot();
    assert_eq!(snap.state, SyncState::Unsynchronised);
    assert!(snap.breach && !snap.halted);
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("A1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"), "filled");
    c.logout();
    let log = events_log(gw);
    assert!(
        log.lines()
            .any(|l| l.contains(" clock-sync state=unsynchronised")
                && l.contains("within-limit=false")
                && l.contains("new-orders=allowed")),
        "{log}"
    );
}
