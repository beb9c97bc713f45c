//! Issue 13, "no client can starve another": connection floods, garbage before logon, small
//! pre-logon buffers, TLS handshake floods, slow consumers and huge resend ranges — each sent
//! the way an attacker (or a broken client) would, through real sockets on loopback, each
//! checking the refusal and that a legitimate client still logs on and trades.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::monitor::Counter;

use crate::util::{self, complete_handshake, events, field, nos, sim, Client, Gw, SESSIONS};

/// A gateway whose `[gateway]` section gets `gateway_keys` (`key = value` lines) in place of
/// the test defaults of the same keys.
fn start_with(gateway_keys: &str, extra: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let mut text = util::config_text(dir.path(), extra);
    for line in gateway_keys.lines() {
        let key = line.split('=').next().unwrap().trim();
        text = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let text = text.replacen("[gateway]\n", &format!("[gateway]\n{gateway_keys}\n"), 1);
    let cfg = portcullis::config::Config::parse(&text, "test.toml")
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let running = portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast())
        .unwrap_or_else(|e| panic!("start: {e}"));
    let addr = running.handle.listen_addrs[0];
    Gw { running, addr, dir }
}

fn counter(gw: &Gw, c: Counter) -> u64 {
    gw.running.handle.counters.get(c)
}

/// Waits up to `secs` for `cond`.
fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 acts as many hosts).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_nodelay(true).unwrap();
    s
}

/// The gateway closed `s` (EOF or reset) within `timeout`; bytes it sent are an error.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut b = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(n) => panic!("the gateway answered a connection that did not log on: {n} bytes"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Still open: nothing to read and no EOF right now.
fn still_open(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 16];
    let open = matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// The legitimate client: logs on (from 127.0.0.1), one order acknowledged and filled.
fn client_trades(gw: &Gw, sender: &str, cl: &str) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", sender, "GW");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    trade(&mut c, cl);
    c
}

fn trade(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "1", Some("1")));
    let ack = c.expect("8");
    assert_eq!(
        field(&ack, 150).as_deref(),
        Some("0"),
        "{}",
        util::show(&ack)
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("F"));
}

#[test]
fn an_idle_connection_flood_from_one_address_cannot_keep_a_client_from_logging_on() {
    // Long timeouts: the flood's connections would otherwise be closed by them, not by the
    // per-address limit this test is about.
    let gw = start_with(
        "logon_timeout_ms = 20000\nsilent_timeout_ms = 20000",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let attacker = Ipv4Addr::new(127, 0, 0, 3);
    let mut flood: Vec<TcpStream> = (0..1100).map(|_| connect_from(attacker, gw.addr)).collect();
    assert!(
        eventually(10, || counter(&gw, Counter::ConnectionsRefusedPerAddress)
            >= 1100 - 16),
        "each connection beyond the per-address limit closes the address's oldest: {}",
        counter(&gw, Counter::ConnectionsRefusedPerAddress)
    );
    // The real client, from another address, logs on and trades while the flood holds its 16.
    let mut c = client_trades(&gw, "CLIENT1", "FLOOD1");
    let open: Vec<usize> = (0..flood.len())
        .filter(|&i| still_open(&mut flood[i]))
        .collect();
    assert_eq!(open.len(), 16, "the default per-address limit is 16");
    assert!(
        open.iter().all(|&i| i >= 1100 - 16),
        "the 16 newest stay, the older ones were closed for them: {open:?}"
    );
    assert_eq!(
        counter(&gw, Counter::ConnectionsRefusedPerAddress),
        1100 - 16
    );
    // One more from the same address closes that address's oldest; the client keeps trading.
    let _one_more = connect_from(attacker, gw.addr);
    assert!(closed_within(&mut flood[1100 - 16], Duration::from_secs(3)));
    trade(&mut c, "FLOOD2");
    assert!(
        eventually(5, || events(gw.dir.path()).contains("connections-shed")),
        "the flood is reported as an aggregated event"
    );
    let log = events(gw.dir.path());
    let shed_lines = log
        .lines()
        .filter(|l| l.contains("connections-shed"))
        .count();
    assert!(
        shed_lines <= 3,
        "1,100 refusals make a few summary events, not one each: {shed_lines}"
    );
    assert!(log.contains("last-peer=127.0.0.3"), "{log}");
    c.logout();
}

/// The attacker shares the real client's address (a NAT, a shared host) and keeps its 16
/// connections fresh: the client's new connection still gets in (the address's oldest makes
/// room) and its Logon is answered.
#[test]
fn a_flood_from_the_clients_own_address_cannot_keep_it_from_logging_on() {
    let gw = start_with(
        "logon_timeout_ms = 20000\nsilent_timeout_ms = 20000",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let shared = Ipv4Addr::new(127, 0, 0, 5);
    let mut flood: Vec<TcpStream> = (0..64).map(|_| connect_from(shared, gw.addr)).collect();
    assert!(eventually(10, || counter(
        &gw,
        Counter::ConnectionsRefusedPerAddress
    ) >= 64 - 16));
    let mut c = Client::from_stream(connect_from(shared, gw.addr), "FIX.4.4", "CLIENT1", "GW");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    trade(&mut c, "SHARED1");
    // More of the flood from the same address cannot touch the logged-on client.
    flood.extend((0..32).map(|_| connect_from(shared, gw.addr)));
    trade(&mut c, "SHARED2");
    let open = flood.iter_mut().map(still_open).filter(|o| *o).count();
    assert!(open <= 16, "{open} flood connections still open");
    c.logout();
}

#[test]
fn the_oldest_connection_that_has_not_logged_on_is_evicted_first() {
    let gw = start_with(
        "logon_timeout_ms = 20000\nsilent_timeout_ms = 20000\nmax_unauthenticated = 8\n\
         max_connections_per_address = 4",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    // Three "hosts" with 4 connections each, in order: the cap of 8 evicts the first host's 4.
    let mut conns = Vec::new();
    for host in 3..=5 {
        for _ in 0..4 {
            conns.push(connect_from(Ipv4Addr::new(127, 0, 0, host), gw.addr));
            // Accept order is connect order.
            let want = conns.len() as u64;
            assert!(eventually(5, || counter(&gw, Counter::ConnectionsAccepted) >= want));
        }
    }
    assert!(eventually(5, || counter(
        &gw,
        Counter::UnauthenticatedEvicted
    ) == 4));
    for (i, s) in conns.iter_mut().enumerate() {
        if i < 4 {
            assert!(
                closed_within(s, Duration::from_secs(3)),
                "oldest {i} evicted"
            );
        } else {
            assert!(still_open(s), "connection {i} is not among the oldest");
        }
    }
    // The real client's connection evicts the next oldest (host .4's first) and logs on.
    let mut c = client_trades(&gw, "CLIENT1", "EVICT1");
    assert_eq!(counter(&gw, Counter::UnauthenticatedEvicted), 5);
    assert!(closed_within(&mut conns[4], Duration::from_secs(3)));
    for s in conns.iter_mut().skip(5) {
        assert!(still_open(s));
    }
    // Logged on, the client no longer counts: the first new connection fits under the cap, the
    // second evicts the next oldest (host .4's second), never the session.
    let _late = connect_from(Ipv4Addr::new(127, 0, 0, 6), gw.addr);
    assert!(eventually(5, || counter(&gw, Counter::ConnectionsAccepted) == 14));
    assert_eq!(counter(&gw, Counter::UnauthenticatedEvicted), 5);
    let _later = connect_from(Ipv4Addr::new(127, 0, 0, 6), gw.addr);
    assert!(eventually(5, || counter(
        &gw,
        Counter::UnauthenticatedEvicted
    ) == 6));
    assert!(closed_within(&mut conns[5], Duration::from_secs(3)));
    trade(&mut c, "EVICT2");
    c.logout();
}

#[test]
fn garbage_and_non_logon_frames_before_logon_are_closed_at_once() {
    // Logon timeout 10 s: everything below must be closed long before it.
    let gw = start_with(
        "logon_timeout_ms = 10000\nsilent_timeout_ms = 10000",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let t0 = Instant::now();
    // 1. Bytes with no FIX frame start in them, more than logon_garbage_bytes (256).
    let mut junk = TcpStream::connect(gw.addr).unwrap();
    junk.write_all(&[b'x'; 300]).unwrap();
    assert!(closed_within(&mut junk, Duration::from_secs(2)));
    // 2. An HTTP request (a scanner) is garbage too.
    let mut http = TcpStream::connect(gw.addr).unwrap();
    http.write_all(
        format!(
            "GET / HTTP/1.1\r\nHost: gw\r\n{}\r\n\r\n",
            "X-Pad: y\r\n".repeat(30)
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(closed_within(&mut http, Duration::from_secs(2)));
    // 3. A well-framed message that is not a Logon.
    let mut order = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    order.send("D", &nos("EARLY", "AAPL", "1", "1", Some("1")));
    assert!(order.closed_within(Duration::from_secs(2)));
    assert!(order.received.is_empty());
    // 4. A Logon with a wrong checksum (garbled) is not waited on.
    let mut garbled = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let mut logon = garbled.build("A", "98=0|108=30");
    let n = logon.len();
    logon[n - 2] = if logon[n - 2] == b'0' { b'1' } else { b'0' };
    garbled.send_raw(&logon);
    assert!(garbled.closed_within(Duration::from_secs(2)));
    // 5. A Logon larger than the pre-logon buffer (4096) is refused.
    let mut big = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    big.send("A", &format!("98=0|108=30|58={}", "z".repeat(3900)));
    assert!(big.closed_within(Duration::from_secs(2)));
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "all closed before the logon timeout"
    );
    assert!(counter(&gw, Counter::PreLogonGarbageCloses) >= 3);
    // A little leading noise (under the limit) before a real Logon is tolerated, and garbled
    // frames on an established session are still only ignored.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.send_raw(b"\r\n\r\n");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    c.send_raw(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01");
    c.send_raw(&[b'x'; 600]);
    trade(&mut c, "AFTER");
    c.logout();
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_silent_timeout() {
    let gw = start_with(
        "logon_timeout_ms = 10000\nsilent_timeout_ms = 300",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let mut idle = TcpStream::connect(gw.addr).unwrap();
    // A client that is slowly sending its Logon is not silent: it keeps the logon timeout.
    let mut slow = TcpStream::connect(gw.addr).unwrap();
    slow.write_all(b"8=FIX.4.4\x019=").unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(3)));
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(still_open(&mut slow));
    let mut c = client_trades(&gw, "CLIENT1", "QUIET");
    c.logout();
}

#[test]
fn a_connection_holds_only_the_small_buffers_until_it_logs_on() {
    let gw = start_with(
        "logon_timeout_ms = 20000\nsilent_timeout_ms = 20000",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let small = 2 * 4096; // logon_buffer_bytes, receive + send
    let idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(gw.addr).unwrap())
        .collect();
    assert!(eventually(5, || counter(&gw, Counter::ConnectionsAccepted) == 10));
    assert_eq!(counter(&gw, Counter::ConnectionBufferBytes), 10 * small);
    // Logged on: the full receive (16 KiB in the test config) and send (1 MiB) buffers.
    let mut c = client_trades(&gw, "CLIENT1", "BUF1");
    assert_eq!(
        counter(&gw, Counter::ConnectionBufferBytes),
        10 * small + 16384 + 1048576
    );
    c.logout();
    drop(idle);
    assert!(eventually(5, || counter(
        &gw,
        Counter::ConnectionBufferBytes
    ) == 0));
}

/// A CA, a server certificate for 127.0.0.1, and a rustls client trusting the CA.
fn tls_setup(dir: &Path) -> (String, Arc<rustls::ClientConfig>) {
    use portcullis::tls::dev::{self, DevCa};
    use rustls::pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let now = (portcullis::clock::system_utc().0 / 1_000_000_000) as i64;
    let ca = DevCa::generate("perimeter CA").unwrap();
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca_pem = pki.join("ca.pem");
    std::fs::write(&ca_pem, ca.cert_pem()).unwrap();
    let (c, k) = ca
        .issue_server(&["localhost", "127.0.0.1"], now - 86_400, now + 86_400)
        .unwrap();
    let server = dev::write_pair(&pki, "server", &c, &k).unwrap();
    let listener = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n\n",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (listener, Arc::new(cfg))
}

/// One full TLS handshake against `addr`, then the connection is dropped.
fn tls_handshake(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> bool {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    complete_handshake(&mut conn, &mut tcp, Duration::from_secs(10)).is_ok()
}

#[test]
fn a_tls_handshake_flood_does_not_stop_an_established_session_trading() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, client_cfg) = tls_setup(dir.path());
    let gw = util::start_in(dir, &format!("{listener}{SESSIONS}{}", sim("fill")));
    let tls_addr = gw.running.handle.listen_addrs[1];
    let mut c = client_trades(&gw, "CLIENT1", "TLS0");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two flooding threads, 150 handshakes each at most (bounded), while the session trades.
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let (cfg, stop) = (client_cfg.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..150 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    ok += u32::from(tls_handshake(tls_addr, &cfg));
                }
                ok
            })
        })
        .collect();
    assert!(eventually(10, || counter(&gw, Counter::TlsHandshakes) >= 10));
    for i in 0..200 {
        trade(&mut c, &format!("TLSF{i}"));
    }
    let during = counter(&gw, Counter::TlsHandshakes);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: u32 = floods.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        during >= 10,
        "the flood was running while the session traded"
    );
    assert!(
        done >= 10,
        "handshakes still complete under the budget: {done}"
    );
    trade(&mut c, "TLSEND");
    c.logout();
}

#[test]
fn a_slow_consumer_is_disconnected_and_its_orders_canceled_while_others_trade() {
    let gw = start_with(
        // Room for every order (repeated refusals would end the session for abuse instead).
        "slow_consumer_ms = 300\nsend_buffer_bytes = 65536\nmax_orders = 262144",
        &format!("{SESSIONS}{}", sim("ack")),
    );
    let mut other = client_trades_ack(&gw, "CLIENT1", "OTHER0");
    // CLIENT2 (cancel_on_disconnect) with a tiny receive window, then it stops reading.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&gw.addr.into()).unwrap();
    let stream: TcpStream = s.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut slow = Client::over(Box::new(stream), "FIX.4.4", "CLIENT2", "GW");
    slow.send("A", "98=0|108=30|141=Y");
    slow.expect("A");
    let mut sent = 0;
    let mut buf = Vec::new();
    // Bounded: the kernel buffers a few MB on loopback before our 64 KiB buffer fills.
    while counter(&gw, Counter::SlowConsumerDisconnects) == 0 && sent < 100_000 {
        for _ in 0..100 {
            buf.extend_from_slice(
                &slow.build("D", &nos(&format!("S{sent}"), "AAPL", "1", "1", Some("1"))),
            );
            sent += 1;
        }
        if slow.stream.write_all(&buf).is_err() {
            break; // the gateway closed it
        }
        buf.clear();
    }
    assert!(
        eventually(5, || counter(&gw, Counter::SlowConsumerDisconnects) == 1),
        "slow consumer disconnected after {sent} orders (in {}, closed {}, writes {})",
        counter(&gw, Counter::MessagesIn),
        counter(&gw, Counter::ConnectionsClosed),
        counter(&gw, Counter::SocketWrites)
    );
    assert!(eventually(5, || {
        let log = events(gw.dir.path());
        log.contains("slow-consumer session=FIX.4.4:CLIENT2->GW")
            && log.contains("cancel-on-disconnect session=FIX.4.4:CLIENT2->GW")
    }));
    assert!(counter(&gw, Counter::CancelOnDisconnect) >= 1);
    // The other session was never held up.
    for i in 1..20 {
        other.send("D", &nos(&format!("OTHER{i}"), "MSFT", "1", "1", Some("1")));
        assert_eq!(field(&other.expect("8"), 150).as_deref(), Some("0"));
    }
    other.logout();
}

fn client_trades_ack(gw: &Gw, sender: &str, cl: &str) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", sender, "GW");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    c.send("D", &nos(cl, "MSFT", "1", "1", Some("1")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    c
}

#[test]
fn a_huge_resend_is_served_completely_while_another_session_trades() {
    const ORDERS: u64 = 15_000; // two reports each: 30,000 stored messages
    let gw = start_with(
        "send_buffer_bytes = 65536\nmax_orders = 65536",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    // Orders in windows of 100, every report read.
    let mut got = 0;
    let mut sent = 0;
    while sent < ORDERS {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend_from_slice(
                &c.build("D", &nos(&format!("R{sent}"), "AAPL", "1", "1", Some("1"))),
            );
            sent += 1;
        }
        c.send_raw(&batch);
        while got < 2 * sent {
            c.expect("8");
            got += 1;
        }
    }
    let last = 1 + 2 * ORDERS; // Logon answer, then the reports
                               // Everything again, from 1 to infinity.
    c.send("2", "7=1|16=0");
    let mut other = client_trades(&gw, "CLIENT2", "SIDE0");
    let mut covered = 0u64; // all of 1..=covered arrived (resent or gap-filled)
    let mut side = 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while covered < last {
        assert!(
            Instant::now() < deadline,
            "resend stalled at {covered} of {last}"
        );
        let m = c
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("resend stopped at {covered} of {last}"));
        let seq: u64 = field(&m, 34).unwrap().parse().unwrap();
        match field(&m, 35).as_deref() {
            Some("4") => {
                assert_eq!(seq, covered + 1, "gap fill in order");
                assert_eq!(field(&m, 123).as_deref(), Some("Y"));
                covered = field(&m, 36).unwrap().parse::<u64>().unwrap() - 1;
            }
            Some("8") => {
                assert_eq!(seq, covered + 1, "resent in order, none missing");
                assert_eq!(field(&m, 43).as_deref(), Some("Y"), "PossDupFlag");
                covered = seq;
            }
            Some("0") => {}
            other => panic!("unexpected {other:?} during the resend"),
        }
        // The other session keeps trading during the resend.
        if covered % 3000 == 0 && side < 10 {
            trade(&mut other, &format!("SIDE{side}"));
            side += 1;
        }
    }
    assert!(side > 3, "the second session traded during the resend");
    // Live again after the resend.
    trade(&mut c, "R-AFTER");
    other.logout();
}

#[test]
fn a_dead_connection_processes_nothing_more() {
    let gw = start_with(
        "logon_timeout_ms = 10000\nsilent_timeout_ms = 10000",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    // A first frame that is refused, then a valid Logon and an order in the same write: the
    // connection is dead after the first, so the rest is never read as a Logon.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let mut bytes = c.build("D", &nos("FIRST", "AAPL", "1", "1", Some("1")));
    c.seq = 1;
    bytes.extend_from_slice(&c.build("A", "98=0|108=30|141=Y"));
    bytes.extend_from_slice(&c.build("D", &nos("SECOND", "AAPL", "1", "1", Some("1"))));
    c.send_raw(&bytes);
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(
        c.received.is_empty(),
        "nothing after the refused frame was processed"
    );
    assert_eq!(counter(&gw, Counter::LogonsAccepted), 0);
    assert_eq!(counter(&gw, Counter::OrdersReceived), 0);
    let mut c = client_trades(&gw, "CLIENT1", "LIVE");
    c.logout();
}

#[test]
fn logged_on_sessions_never_lack_a_slot_held_by_connections_that_did_not_log_on() {
    // 8 slots: at most 4 (half) for connections that have not logged on.
    let gw = start_with(
        "logon_timeout_ms = 20000\nsilent_timeout_ms = 20000\nmax_connections = 8",
        &format!("{SESSIONS}{}", sim("fill")),
    );
    let mut flood = Vec::new();
    for host in 3..=7 {
        for _ in 0..3 {
            flood.push(connect_from(Ipv4Addr::new(127, 0, 0, host), gw.addr));
        }
    }
    assert!(eventually(5, || counter(
        &gw,
        Counter::UnauthenticatedEvicted
    ) >= 11));
    // Three sessions log on one after another while the flood keeps its 4: each new client
    // evicts an idle connection, and once logged on it no longer counts against the cap.
    let mut a = client_trades(&gw, "CLIENT1", "SLOT1");
    let mut b = client_trades(&gw, "CLIENT2", "SLOT2");
    let mut c = Client::connect(gw.addr, "FIX.4.2", "CLIENT42", "GW");
    c.send("A", "98=0|108=30");
    c.expect("A");
    // More flood: it can only evict its own kind.
    for _ in 0..4 {
        flood.push(connect_from(Ipv4Addr::new(127, 0, 0, 8), gw.addr));
    }
    assert!(eventually(5, || counter(&gw, Counter::ConnectionsAccepted) >= 22));
    trade(&mut a, "SLOT3");
    trade(&mut b, "SLOT4");
    a.logout();
    b.logout();
}
