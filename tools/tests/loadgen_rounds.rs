//! Interleaved rounds and stall episodes (issue #7): `loadgen table` over several rounds per
//! system (medians over rounds, medians of per-round ratios) against JSON summaries with known
//! numbers; stall-episode detection and the timeline on synthetic latency sequences; and a real
//! `loadgen echo` run whose JSON summary and `--timeline` CSV carry the stall fields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portcullis_tools::loadgen::rounds::{self, median, Spread};
use portcullis_tools::loadgen::stalls::{self, Bucket, Episode, UNTIMED};
use portcullis_tools::loadgen::Recorder;

// ------------------------------------------------------------------------------ rounds

/// A loadgen JSON summary with p50 = p90 = `p50`, p99 = p99.9 = p99.99 = max = `p99`.
fn summary(
    dir: &Path,
    name: &str,
    p50: f64,
    p99: f64,
    achieved: f64,
    ended: Option<&str>,
) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let v = serde_json::json!({
        "achieved_rate": achieved, "rejected": 1, "unanswered": 0, "ended": ended,
        "latency_us": {"p50": p50, "p90": p50, "p99": p99, "p99_9": p99, "p99_99": p99,
                       "max": p99, "min": 1.0, "mean": p50},
    });
    std::fs::write(&path, v.to_string()).unwrap();
    path
}

fn table(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("table")
        .args(args)
        .output()
        .unwrap()
}

fn tokens(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with `{prefix}` in\n{text}"))
}

#[test]
fn three_rounds_give_medians_and_medians_of_per_round_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // p50 / p99 per round. floor-a: medians 9 and 12. gateway: medians 12 and 30; its
    // per-round ratios to floor-a are p50 1.5, 1.1, 2.0 (median 1.5, while 12/9 = 1.33) and
    // p99 3.0, 1.25, 5.0 (median 3.0, while 30/12 = 2.5). quickfix measured nothing in round 2.
    let floor = [
        summary(d, "floor-a.r1", 8.0, 10.0, 10_000.0, None),
        summary(d, "floor-a.r2", 10.0, 20.0, 9_000.0, None),
        summary(d, "floor-a.r3", 9.0, 12.0, 11_000.0, None),
    ];
    let gw = [
        summary(d, "gateway.r1", 12.0, 30.0, 10_000.0, None),
        summary(d, "gateway.r2", 11.0, 25.0, 10_000.0, None),
        summary(d, "gateway.r3", 18.0, 60.0, 10_000.0, None),
    ];
    let qf1 = summary(d, "quickfix.r1", 120.0, 300.0, 10_000.0, None);
    let qf3 = summary(d, "quickfix.r3", 60.0, 200.0, 8_000.0, Some("peer closed"));
    let list = |p: &[&PathBuf]| {
        p.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let args = vec![
        "--subject".to_string(),
        "gateway".into(),
        "--spread".into(),
        "p50:floor-a".into(),
        "--spread".into(),
        "p99:quickfix".into(),
        format!("floor-a={}", list(&[&floor[0], &floor[1], &floor[2]])),
        format!("gateway={}", list(&[&gw[0], &gw[1], &gw[2]])),
        format!("quickfix={},-,{}", qf1.display(), qf3.display()),
    ];
    let out = table(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        text.starts_with("median over 3 interleaved rounds"),
        "{text}"
    );

    // Rows: medians over rounds; achieved: median; rejected: summed over rounds; rounds measured.
    assert_eq!(
        tokens(line_starting(&text, "floor-a ")),
        ["floor-a", "9.0", "9.0", "12.0", "12.0", "12.0", "12.0", "10000", "3", "0", "3/3"]
    );
    assert_eq!(
        tokens(line_starting(&text, "gateway ")),
        ["gateway", "12.0", "12.0", "30.0", "30.0", "30.0", "30.0", "10000", "3", "0", "3/3"]
    );
    // Two rounds: the mean of the two middle (= both) values.
    let qf = line_starting(&text, "quickfix ");
    assert_eq!(
        tokens(qf).get(..11).unwrap(),
        ["quickfix", "90.0", "90.0", "250.0", "250.0", "250.0", "250.0", "9000", "2", "0", "2/3"]
    );
    assert!(qf.ends_with("(round 3 ended early: peer closed)"), "{qf}");

    // Ratio rows: medians of the per-round ratios, not ratios of the medians.
    let ratios = text.split("gateway as a multiple of:").nth(1).unwrap();
    assert_eq!(
        tokens(line_starting(ratios, "floor-a ")),
        ["floor-a", "1.50×", "1.50×", "3.00×", "3.00×", "3.00×", "3.00×"]
    );
    // Rounds 1 and 3 only: p50 12/120 and 18/60, p99 30/300 and 60/200.
    assert_eq!(
        tokens(line_starting(ratios, "quickfix ")),
        ["quickfix", "0.20×", "0.20×", "0.20×", "0.20×", "0.20×", "0.20×"]
    );

    // The per-round lines: every round's ratio, then their median.
    assert_eq!(
        tokens(line_starting(&text, "per round")),
        ["per", "round", "r1", "r2", "r3", "median"]
    );
    assert_eq!(
        tokens(line_starting(&text, "gateway p50 / floor-a")),
        ["gateway", "p50", "/", "floor-a", "1.50×", "1.10×", "2.00×", "1.50×"]
    );
    assert_eq!(
        tokens(line_starting(&text, "gateway p99 / quickfix")),
        ["gateway", "p99", "/", "quickfix", "0.10×", "-", "0.30×", "0.20×"]
    );
}

#[test]
fn one_round_is_the_plain_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f, g) = (
        summary(d, "f", 8.0, 10.0, 10_000.0, None),
        summary(d, "g", 12.0, 30.0, 10_000.0, None),
    );
    let out = table(&[
        "--subject".into(),
        "gateway".into(),
        format!("floor-a={}", f.display()),
        format!("gateway={}", g.display()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        !text.contains("rounds") && !text.contains("per round"),
        "{text}"
    );
    assert_eq!(
        tokens(line_starting(&text, "gateway ")),
        ["gateway", "12.0", "12.0", "30.0", "30.0", "30.0", "30.0", "10000", "1", "0"]
    );
    assert_eq!(
        tokens(text.lines().last().unwrap()),
        ["floor-a", "1.50×", "1.50×", "3.00×", "3.00×", "3.00×", "3.00×"]
    );
}

#[test]
fn table_refuses_bad_arguments_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = summary(dir.path(), "f", 8.0, 10.0, 10_000.0, None);
    let cases: [(Vec<String>, &str); 5] = [
        (
            vec![
                "--spread".into(),
                "p42:floor".into(),
                format!("floor={}", f.display()),
            ],
            "p42",
        ),
        (
            vec![
                "--subject".into(),
                "floor".into(),
                "--spread".into(),
                "p99:nobody".into(),
                format!("floor={}", f.display()),
            ],
            "nobody",
        ),
        (
            vec![format!("floor={},,{}", f.display(), f.display())],
            "empty file name",
        ),
        (
            vec!["floor=/nonexistent/x.json".into()],
            "/nonexistent/x.json",
        ),
        (vec!["floor".into()], "LABEL=FILE"),
    ];
    for (args, needle) in cases {
        let out = table(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(Spread::parse("p99.9:floor-a").unwrap().column, 3);
    assert!(Spread::parse("p99.9").is_err());
    let (label, files) = rounds::parse_system_arg("gw=a.json,-,c.json").unwrap();
    assert_eq!(label, "gw");
    assert_eq!(
        files,
        [
            Some(PathBuf::from("a.json")),
            None,
            Some(PathBuf::from("c.json"))
        ]
    );
}

// ------------------------------------------------------------------------------ stalls

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

/// 1 000 orders at 10k/s (one every 100 µs), 50 µs each, with: a 20 ms stall from order 100
/// (coordinated-omission corrected: order 100 + k waits 20 ms − k·100 µs) with one untimed
/// order inside it; a one-off 300 µs order at 500; a periodic 1 ms cost at 600, 700, 800; an
/// order of exactly the threshold at 900 (not a stall); a 250 µs order at 950.
fn synthetic() -> (Vec<u64>, Vec<u64>) {
    let intended: Vec<u64> = (0..1_000u64).map(|i| i * 100 * US).collect();
    let mut lat = vec![50 * US; 1_000];
    for k in 0..200u64 {
        let l = (20 * MS).saturating_sub(k * 100 * US);
        lat[(100 + k) as usize] = l.max(50 * US);
    }
    lat[150] = UNTIMED;
    lat[500] = 300 * US;
    for i in [600, 700, 800] {
        lat[i] = MS;
    }
    lat[900] = 200 * US;
    lat[950] = 250 * US;
    (intended, lat)
}

#[test]
fn stall_episodes_are_runs_of_consecutive_orders_over_the_threshold() {
    let (intended, lat) = synthetic();
    let s = stalls::find(&intended, &lat, 200 * US);
    assert_eq!(s.threshold_us, 200.0);
    assert_eq!(s.episodes, 6);
    // 20 + 0.3 + 3 × 1 + 0.25 ms.
    assert_eq!(s.total_ms, 23.55);
    let ep = |start_ms: f64, duration_ms: f64, worst_us: f64, orders: u64| Episode {
        start_ms,
        duration_ms,
        worst_us,
        orders,
    };
    assert_eq!(
        s.longest,
        [
            // Orders 100..=297 are over 200 µs (298 waits exactly 200 µs); 150 is untimed and
            // neither extends nor ends it. Every one is answered at 30 ms.
            ep(10.0, 20.0, 20_000.0, 197),
            ep(60.0, 1.0, 1_000.0, 1),
            ep(70.0, 1.0, 1_000.0, 1),
            ep(80.0, 1.0, 1_000.0, 1),
            ep(50.0, 0.3, 300.0, 1),
        ]
    );
    // A threshold above everything: nothing; below everything: one episode of the whole run.
    let none = stalls::find(&intended, &lat, 20 * MS);
    assert_eq!(
        (none.episodes, none.total_ms, none.longest.len()),
        (0, 0.0, 0)
    );
    let all = stalls::find(&intended, &lat, 1);
    assert_eq!(all.episodes, 1);
    assert_eq!(all.longest[0].orders, 999);
    assert_eq!(all.longest[0].start_ms, 0.0);
}

#[test]
fn the_recorder_keeps_each_timed_latency_for_the_episodes() {
    // Warm-up until 1 ms: order 0 (at 0) is not timed even though it is slow.
    let mut rec = Recorder::new(4, MS).unwrap();
    rec.stall_ns = 100 * US;
    for (i, t) in [0, MS, 2 * MS, 3 * MS].into_iter().enumerate() {
        assert!(rec.sent(i, t));
    }
    rec.answer(0, 5 * MS, true); // warm-up: 5 ms, not timed
    rec.answer(1, MS + 500 * US, true); // 500 µs: a stall
    rec.answer(2, 2 * MS + 50 * US, true); // 50 µs
    rec.answer(3, 4 * MS, false); // rejected: not timed
    let s = rec.stalls();
    assert_eq!(s.episodes, 1);
    assert_eq!(
        s.longest,
        [Episode {
            start_ms: 1.0,
            duration_ms: 0.5,
            worst_us: 500.0,
            orders: 1
        }]
    );
    assert_eq!(rec.timeline(1).len(), 2);
}

#[test]
fn the_timeline_buckets_timed_orders_by_intended_time() {
    let intended = [0, MS, 15 * MS, 25 * MS, 29 * MS, 29 * MS];
    let lat = [10 * US, 30 * US, UNTIMED, 20 * US, 40 * US, 60 * US];
    let b = stalls::timeline(&intended, &lat, 10);
    let bucket = |start_ms, orders, max_us, p50_us| Bucket {
        start_ms,
        orders,
        max_us,
        p50_us,
    };
    assert_eq!(
        b,
        [
            // Two orders: the nearest-rank median is the smaller.
            bucket(0, 2, 30.0, 10.0),
            // Only an untimed order: an empty bucket.
            bucket(10, 0, 0.0, 0.0),
            bucket(20, 3, 60.0, 40.0),
        ]
    );
    let mut csv = Vec::new();
    stalls::write_timeline_csv(&b, &mut csv).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "start_ms,orders,max_us,p50_us\n0,2,30.0,10.0\n10,0,0.0,0.0\n20,3,60.0,40.0\n"
    );
    assert!(stalls::timeline(&[0], &[UNTIMED], 10).is_empty());
}

// ------------------------------------------------------------------------------ a real run

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `loadgen echo` against its spinning echo server with `--stall-us`, JSON and timeline.
fn echo_with_stalls(stall_us: &str, dir: &Path) -> (serde_json::Value, String, String) {
    let (mut server, addr) = common::echo_server("spin");
    let (j, csv) = (
        dir.join(format!("echo{stall_us}.json")),
        dir.join(format!("echo{stall_us}.csv")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo", "--connect", &addr.to_string()])
        .args(["--rate", "2000", "--duration-s", "0.5", "--warmup-s", "0.1"])
        .args(["--stall-us", stall_us])
        .arg("--json")
        .arg(&j)
        .arg("--timeline")
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    (json(&j), std::fs::read_to_string(&csv).unwrap(), stdout)
}

#[test]
fn an_echo_run_reports_stall_episodes_and_writes_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    // 1 µs: no loopback round trip is that fast, so every order is stalled — one episode
    // spanning the measured run (from the end of the 100 ms warm-up).
    let (j, csv, stdout) = echo_with_stalls("1", dir.path());
    let measured = j["measured"].as_u64().unwrap();
    assert_eq!(measured, 1_000, "{j}");
    let s = &j["stalls"];
    assert_eq!(s["threshold_us"].as_f64(), Some(1.0), "{j}");
    assert_eq!(s["episodes"].as_u64(), Some(1), "{j}");
    let longest = s["longest"].as_array().unwrap();
    assert_eq!(longest.len(), 1, "{j}");
    let e = &longest[0];
    assert_eq!(e["orders"].as_u64(), Some(measured), "{j}");
    assert_eq!(e["start_ms"].as_f64(), Some(100.0), "{j}");
    assert!(e["duration_ms"].as_f64().unwrap() >= 499.5, "{j}");
    assert_eq!(s["total_ms"].as_f64(), e["duration_ms"].as_f64(), "{j}");
    // The histogram keeps 3 significant digits; the episode the exact worst.
    let (worst, max) = (
        e["worst_us"].as_f64().unwrap(),
        j["latency_us"]["max"].as_f64().unwrap(),
    );
    assert!((worst - max).abs() <= max / 500.0, "{j}");
    assert!(
        stdout.contains("stall episodes (consecutive orders over 1 µs): 1,"),
        "{stdout}"
    );

    // The timeline: 10 ms buckets from 100 ms to 590 ms, every measured order in one.
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("start_ms,orders,max_us,p50_us"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 50, "{csv}");
    assert_eq!(rows[0][0], 100.0);
    assert_eq!(rows[49][0], 590.0);
    assert_eq!(rows.iter().map(|r| r[1]).sum::<f64>(), measured as f64);
    assert!(
        rows.iter()
            .all(|r| r[1] == 20.0 && r[3] > 0.0 && r[3] <= r[2]),
        "{csv}"
    );

    // An hour: nothing is a stall.
    let (j, _, _) = echo_with_stalls("3600000000", dir.path());
    assert_eq!(j["stalls"]["episodes"].as_u64(), Some(0), "{j}");
    assert_eq!(j["stalls"]["total_ms"].as_f64(), Some(0.0), "{j}");
    assert_eq!(
        j["stalls"]["longest"].as_array().map(Vec::len),
        Some(0),
        "{j}"
    );
}

#[test]
fn a_zero_stall_threshold_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo", "--connect", "127.0.0.1:9", "--stall-us", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stall-us"));
}
