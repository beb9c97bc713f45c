//! Busy-poll mode with the hot set on (`spin_read_conns`): the gateway reads recently active
//! connections directly and calls epoll only every few cycles. Several sessions trade at once,
//! more of them than the hot set holds (so connections enter, leave and come back), and one goes
//! idle past the eviction time and comes back: every order must be answered exactly once, in
//! order, with sequence numbers intact. Correctness under load; no timing asserts. The hot set
//! is one connection wide and epoll runs every other cycle so connections churn through it: with
//! the drain-before-eviction removed, this test lost wakeups (hung acks) in 2 of 3 runs.
//! Cache warming runs on nearly every idle cycle (`warm_every_us = 1`): it must leave no trace
//! in the answers, the counters or the order records.

use std::time::Duration;

use portcullis::clock::Clock;
use portcullis::config::Config;

use crate::util::{field, nos, show, Client};

const CLIENTS: usize = 5;
const ROUNDS: usize = 150;
const BURST: usize = 4;

fn spin_config(dir: &std::path::Path) -> Config {
    let mut text = format!(
        "[gateway]\nbusy_poll = true\nspin_read_conns = 1\nspin_poll_every = 2\nwarm_every_us = 1\n\
         segment_bytes = 4194304\nmax_orders = 8192\nmax_message_bytes = 4096\n\
         recv_buffer_bytes = 16384\nflush_interval_ms = 0\ndata_dir = {:?}\n\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\n\
         [[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"ack\"\n",
        dir.display().to_string()
    );
    for i in 0..CLIENTS {
        text.push_str(&format!(
            "\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\n\
             their_comp_id = \"SPIN{i}\"\ndefault_account = \"ACC{i}\"\n"
        ));
    }
    // Pre-trade risk fails closed: the accounts and the symbol need limits (far above the run).
    let accounts: Vec<String> = (0..CLIENTS).map(|i| format!("ACC{i}")).collect();
    let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
    text.push_str(&portcullis::config::risk::permissive_toml(
        &names,
        &["MSFT"],
    ));
    Config::parse(&text, "spin.toml").unwrap()
}

/// Reads until `want` ExecutionReports came; checks each answers the next ClOrdID of this
/// client and that the gateway's MsgSeqNum has no gap. Returns the next expected MsgSeqNum.
fn collect_acks(c: &mut Client, want: usize, next_cl: &mut usize, next_seq: &mut u64, id: usize) {
    let mut got = 0;
    while got < want {
        let m = c
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("client {id}: only {got} of {want} acks"));
        let seq: u64 = field(&m, 34).unwrap().parse().unwrap();
        assert_eq!(
            seq,
            *next_seq,
            "client {id}: gateway MsgSeqNum gap: {}",
            show(&m)
        );
        *next_seq += 1;
        match field(&m, 35).as_deref() {
            Some("0") => continue,
            Some("8") => {}
            _ => panic!("client {id}: unexpected {}", show(&m)),
        }
        assert_eq!(field(&m, 39).as_deref(), Some("0"), "{}", show(&m));
        assert_eq!(
            field(&m, 11),
            Some(format!("S{id}-{}", *next_cl)),
            "client {id}: acks out of order: {}",
            show(&m)
        );
        *next_cl += 1;
        got += 1;
    }
}

#[test]
fn hot_set_answers_every_order_across_interleaved_and_returning_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = spin_config(dir.path());
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let addr = running.handle.listen_addrs[0];
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, "FIX.4.4", &format!("SPIN{id}"), "GW");
                let logon = c.logon(30);
                assert_eq!(field(&logon, 34).as_deref(), Some("1"));
                let (mut sent, mut next_cl, mut next_seq) = (0usize, 0usize, 2u64);
                for round in 0..ROUNDS {
                    // Client 0 goes quiet twice, far longer than the hot set's idle eviction
                    // (5 ms), while the others keep trading; then it comes back.
                    if id == 0 && (round == ROUNDS / 3 || round == 2 * ROUNDS / 3) {
                        std::thread::sleep(Duration::from_millis(150));
                    }
                    // A pipelined burst, written as one segment and as single messages in turn.
                    let mut burst = Vec::new();
                    for _ in 0..BURST {
                        let m = c.build(
                            "D",
                            &nos(&format!("S{id}-{sent}"), "MSFT", "1", "10", Some("100")),
                        );
                        sent += 1;
                        if round % 2 == 0 {
                            burst.extend_from_slice(&m);
                        } else {
                            c.send_raw(&m);
                        }
                    }
                    if !burst.is_empty() {
                        c.send_raw(&burst);
                    }
                    collect_acks(&mut c, BURST, &mut next_cl, &mut next_seq, id);
                    if round % 7 == id % 7 {
                        std::thread::sleep(Duration::from_millis(2 + id as u64));
                    }
                }
                assert_eq!(next_cl, ROUNDS * BURST, "client {id}: every order answered");
                // Nothing extra is queued behind the last ack: a TestRequest comes back next.
                c.send("1", "112=END");
                let hb = c.expect("0");
                assert_eq!(field(&hb, 112).as_deref(), Some("END"), "{}", show(&hb));
                assert_eq!(field(&hb, 34), Some(next_seq.to_string()));
                c.logout();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let counters = running.handle.counters.clone();
    running.stop();
    let msgs_in = counters.get(portcullis::monitor::Counter::MessagesIn);
    // Logon + orders + TestRequest + Logout per client.
    assert_eq!(msgs_in, (CLIENTS * (ROUNDS * BURST + 3)) as u64);
    assert_eq!(
        counters.get(portcullis::monitor::Counter::OrdersReceived),
        (CLIENTS * ROUNDS * BURST) as u64
    );
    // The warm pass's canned order (ClOrdID WARM-1) never reaches the records.
    let mut records = 0;
    for e in std::fs::read_dir(dir.path().join("records")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains("WARM"), "a warm pass left a record");
        records += text.lines().count();
    }
    assert!(records >= 2 * CLIENTS * ROUNDS * BURST, "{records} records");
}

/// The CPUs thread `task` (a /proc/PID/task/TID folder) may run on, as the kernel lists them.
fn allowed(task: &std::path::Path) -> String {
    let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `[gateway] cpu` pins the hot thread; `cold_cpus` holds every other thread of the gateway
/// (journal, trail, segment helper, clock, control…) off it, read back from the kernel.
#[test]
fn the_hot_thread_runs_on_its_cpu_and_every_other_thread_on_the_cold_cpus() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one CPU");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.toml");
    let text = format!(
        "[gateway]\nbusy_poll = false\ncpu = 0\ncold_cpus = [1]\ndata_dir = {:?}\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[venue]]\nname = \"SIM\"\nkind = \"sim\"\n",
        dir.path().join("data").display().to_string()
    );
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on"));
    let tasks = std::path::PathBuf::from(format!("/proc/{}/task", child.id()));
    let mut seen = Vec::new();
    for t in std::fs::read_dir(&tasks).unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        seen.push((comm.trim().to_string(), allowed(&t.path())));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    std::thread::spawn(move || for _ in lines {});
    let _ = child.wait();
    assert!(started, "the gateway did not start");
    let cpu_of = |name: &str| {
        seen.iter()
            .find(|(c, _)| c.starts_with(name))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no thread {name} in {seen:?}"))
    };
    assert_eq!(cpu_of("portcullis-hot"), "0", "{seen:?}");
    for cold in [
        "portcullis-jour",
        "portcullis-trai",
        "portcullis-segm",
        "portcullis-cloc",
        "portcullis-cont",
    ] {
        assert_eq!(cpu_of(cold), "1", "{cold}: {seen:?}");
    }
    // main() starts them all, then waits: it keeps the set it had (every CPU it may use).
    assert_ne!(cpu_of("portcullis"), "1", "{seen:?}");
}
