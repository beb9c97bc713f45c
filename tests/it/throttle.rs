//! Throttling through a real FIX session (RATE-1..4). The gateway reads a manual clock, so the
//! admitted counts and retry-after times are exact, not a matter of machine speed.

use std::time::Duration;

use portcullis::clock::Clock;
use portcullis::model::Nanos;

use crate::util::*;

const TIERS: &str = r#"
[[tier]]
name = "tight"
orders = { per_second = 1, burst = 3 }
cancels = { per_second = 100, burst = 100 }

[[tier]]
name = "daily"
orders = { per_day = 2 }

[[tier]]
name = "window"
orders = { window_1s = 2 }

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "TIGHT"
default_account = "ACC1"
tier = "tight"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "DAILY"
default_account = "ACC1"
tier = "daily"
# the test moves the gateway's clock a day ahead of the client's SendingTime
check_sending_time = false

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "WINDOW"
default_account = "ACC1"
tier = "window"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "FREE"
default_account = "ACC1"
"#;

fn gateway(clock: &Clock) -> Gw {
    start_with_clock(
        tempfile::tempdir().unwrap(),
        &format!("{TIERS}{}", sim("ack")),
        clock.clone(),
    )
}

fn logged_on(gw: &Gw, who: &str) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.logon(30);
    c
}

/// Sends order `cl` and returns the answer: an ExecutionReport or a BusinessMessageReject.
fn order(c: &mut Client, cl: &str) -> Vec<u8> {
    c.send("D", &nos(cl, "AAPL", "1", "1", Some("1")));
    c.expect_any(&["8", "j"])
}

fn retry_after(m: &[u8]) -> u64 {
    field(m, 7900).unwrap().parse().unwrap()
}

#[test]
fn a_burst_beyond_capacity_is_cut_exactly_and_retry_after_is_right() {
    let clock = Clock::manual(now_utc());
    let gw = gateway(&clock);
    let mut c = logged_on(&gw, "TIGHT");
    for i in 0..3 {
        assert_eq!(
            field(&order(&mut c, &format!("B{i}")), 35).as_deref(),
            Some("8"),
            "within the burst"
        );
    }
    let rej = order(&mut c, "B3");
    assert_eq!(field(&rej, 35).as_deref(), Some("j"), "{}", show(&rej));
    assert_eq!(field(&rej, 380).as_deref(), Some("8"));
    assert_eq!(field(&rej, 372).as_deref(), Some("D"));
    assert_eq!(field(&rej, 379).as_deref(), Some("B3"));
    assert!(field(&rej, 45).is_some());
    assert_eq!(
        retry_after(&rej),
        1000,
        "one token per second: {}",
        show(&rej)
    );
    assert!(field(&rej, 58)
        .unwrap()
        .contains("per-second limit exceeded; retry after 1000 ms"));
    // Cancels have their own class: reducing risk still works.
    c.send("F", "11=CX|41=B0|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    // One millisecond early is still refused; at the retry time it passes.
    clock.advance(Nanos::from_millis(999));
    assert_eq!(field(&order(&mut c, "B4"), 35).as_deref(), Some("j"));
    clock.advance(Nanos::from_millis(1));
    assert_eq!(field(&order(&mut c, "B5"), 150).as_deref(), Some("0"));
}

#[test]
fn a_sliding_window_limit_applies_on_its_own() {
    let clock = Clock::manual(now_utc());
    let gw = gateway(&clock);
    let mut c = logged_on(&gw, "WINDOW");
    assert_eq!(field(&order(&mut c, "W1"), 35).as_deref(), Some("8"));
    assert_eq!(field(&order(&mut c, "W2"), 35).as_deref(), Some("8"));
    let rej = order(&mut c, "W3");
    assert!(
        field(&rej, 58).unwrap().contains("1s window"),
        "{}",
        show(&rej)
    );
    clock.advance(Nanos::from_millis(retry_after(&rej)));
    assert_eq!(field(&order(&mut c, "W4"), 35).as_deref(), Some("8"));
    // A session without a tier is not throttled at all.
    let mut free = logged_on(&gw, "FREE");
    for i in 0..20 {
        assert_eq!(
            field(&order(&mut free, &format!("F{i}")), 35).as_deref(),
            Some("8")
        );
    }
}

#[test]
fn the_daily_quota_survives_a_restart() {
    let clock = Clock::manual(now_utc());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let gw = start_with_clock(dir, &format!("{TIERS}{}", sim("ack")), clock.clone());
    let mut c = logged_on(&gw, "DAILY");
    assert_eq!(field(&order(&mut c, "D1"), 35).as_deref(), Some("8"));
    assert_eq!(field(&order(&mut c, "D2"), 35).as_deref(), Some("8"));
    let rej = order(&mut c, "D3");
    assert!(
        field(&rej, 58).unwrap().contains("daily quota"),
        "{}",
        show(&rej)
    );
    let seq = c.seq;
    drop(c);
    let Gw { running, dir, .. } = gw;
    running.stop();
    let events = std::fs::read_to_string(path.join("events.log")).unwrap_or_default();
    let state = std::fs::read_to_string(path.join("throttle-daily.state"))
        .unwrap_or_else(|e| panic!("{e}; events: {events}"));
    assert!(state.contains("FIX.4.4-GW-DAILY"), "{state}");
    let gw = start_with_clock(dir, &format!("{TIERS}{}", sim("ack")), clock.clone());
    let mut c = Client::connect(gw.addr, "FIX.4.4", "DAILY", "GW");
    c.seq = seq;
    c.logon(30);
    let rej = order(&mut c, "D4");
    assert_eq!(
        field(&rej, 35).as_deref(),
        Some("j"),
        "quota still spent after restart: {}",
        show(&rej)
    );
    // The next UTC day the quota is back.
    clock.advance(Nanos::from_millis(retry_after(&rej)));
    assert_eq!(field(&order(&mut c, "D5"), 35).as_deref(), Some("8"));
}

#[test]
fn refusals_that_keep_coming_end_the_session() {
    let clock = Clock::manual(now_utc());
    let gw = gateway(&clock);
    let mut c = logged_on(&gw, "TIGHT");
    for i in 0..3 {
        order(&mut c, &format!("A{i}"));
    }
    // 1 order/s refills, but we send 4 per second for 11 s: refusals never pause for 1 s.
    let mut logout = None;
    for i in 0..44 {
        clock.advance(Nanos::from_millis(250));
        c.send("D", &nos(&format!("X{i}"), "AAPL", "1", "1", Some("1")));
        let m = c.expect_any(&["8", "j", "5"]);
        if field(&m, 35).as_deref() == Some("5") {
            logout = Some(m);
            break;
        }
    }
    let lo = logout.expect("logged out for sustained abuse");
    assert!(
        field(&lo, 58).unwrap().contains("throttle"),
        "{}",
        show(&lo)
    );
    c.send("5", "");
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn a_tier_change_applies_live_on_sighup() {
    use std::process::Command;
    let base = |per_day: u32| {
        format!(
            "[gateway]\nbusy_poll = false\nsegment_bytes = 4194304\nmax_orders = 4096\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[tier]]\nname = \"one\"\norders = {{ per_day = {per_day} }}\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"CLIENT1\"\ndefault_account = \"ACC1\"\ntier = \"one\"\n\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"ack\"\n{}",
            permissive_risk()
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, base(1)).unwrap();
    let (mut child, lines, addr) = crate::util::spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    std::thread::spawn(move || for _ in lines {});
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    assert_eq!(field(&order(&mut c, "H1"), 35).as_deref(), Some("8"));
    assert_eq!(
        field(&order(&mut c, "H2"), 35).as_deref(),
        Some("j"),
        "quota of 1 spent"
    );
    std::fs::write(&cfg, base(100)).unwrap();
    crate::util::signal(&child, "HUP");
    let mut admitted = false;
    for i in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if field(&order(&mut c, &format!("H3-{i}")), 35).as_deref() == Some("8") {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "the raised quota applies without a restart");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_logout_after_sustained_refusals_follows_the_configured_times() {
    // Refusals every 100 ms (one order a second admitted: a 200 ms gap, shorter than the
    // 500 ms quiet time): the session ends after ~2 s, not the default 10 s; with the logout
    // turned off (0), 4.4 s of refusals leave the session up.
    for (after_ms, quiet_ms, expect_logout) in [(2_000, 500, true), (0, 1_000, false)] {
        let clock = Clock::manual(now_utc());
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &format!("{TIERS}{}", sim("ack")));
        cfg.gateway.throttle_logout_after_ms = after_ms;
        cfg.gateway.throttle_logout_quiet_ms = quiet_ms;
        let running = portcullis::gateway::start(&cfg, clock.clone()).unwrap();
        let gw = Gw {
            addr: running.handle.listen_addrs[0],
            running,
            dir,
        };
        let mut c = logged_on(&gw, "TIGHT");
        for i in 0..3 {
            order(&mut c, &format!("A{i}"));
        }
        let mut logged_out_after = None;
        for i in 0..44u64 {
            clock.advance(Nanos::from_millis(100));
            c.send("D", &nos(&format!("X{i}"), "AAPL", "1", "1", Some("1")));
            let m = c.expect_any(&["8", "j", "5"]);
            if field(&m, 35).as_deref() == Some("5") {
                logged_out_after = Some((i + 1) * 100);
                break;
            }
        }
        match (expect_logout, logged_out_after) {
            (true, Some(ms)) => assert!((2_000..=2_300).contains(&ms), "logged out after {ms} ms"),
            (false, None) => {}
            (want, got) => panic!("after_ms={after_ms}: want logout {want}, got {got:?}"),
        }
    }
}
