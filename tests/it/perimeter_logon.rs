//! Logon perimeter (issue 13), as an attacker would try it through real sockets and the real
//! `portcullis keys` CLI: lockout that cannot be turned against a client, lockouts surviving a
//! restart, uniform silent refusals that leave the session untouched, re-Logon on a live
//! session, replay across addresses and restarts, and frames behind a refused Logon. Every
//! test also shows the legitimate client still logs on and trades. Loopback only (other
//! attackers are other 127/8 source addresses).

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use portcullis::fix::{TimePrecision, Writer};
use portcullis::model::Nanos;

use crate::auth::Env;
use crate::util::*;

/// Asserts the uniform refusal: the gateway closes the connection without sending a byte.
pub(crate) fn assert_closed_silently(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "connection still open after 3 s");
        match c.stream.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break, // reset: closed
        }
    }
    assert!(
        got.is_empty(),
        "a refused Logon got an answer: {}",
        show(&got)
    );
}

/// A client whose socket is bound to source address `from` (e.g. 127.0.0.2).
fn connect_from(addr: SocketAddr, from: &str, sender: &str) -> Client {
    let ip: IpAddr = from.parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let tcp: TcpStream = sock.into();
    Client::from_stream(tcp, "FIX.4.4", sender, "GW")
}

/// A signed Logon (fix-specs/SIGNED-LOGON.md) at `at`, with or without ResetSeqNumFlag.
fn signed(c: &mut Client, key_id: &str, secret: &[u8], at: Nanos, reset: bool) -> Vec<u8> {
    let mut ts = [0u8; 32];
    let n = portcullis::fix::encode::write_timestamp(&mut ts, at, TimePrecision::Millis);
    let seq = c.seq.to_string();
    let pre = portcullis::auth::logon::prehash(
        &ts[..n],
        b"A",
        seq.as_bytes(),
        c.sender.as_bytes(),
        c.target.as_bytes(),
        key_id.as_bytes(),
    );
    let sig = portcullis::auth::logon::sign(secret, &pre);
    let mut buf = vec![0u8; 1024];
    let mut w = Writer::new(&mut buf, c.begin.as_bytes(), b"A");
    w.uint(34, c.seq)
        .str(49, c.sender.as_bytes())
        .timestamp(52, at, TimePrecision::Millis)
        .str(56, c.target.as_bytes())
        .uint(98, 0)
        .uint(108, 30);
    if reset {
        w.str(141, b"Y");
    }
    w.str(553, key_id.as_bytes())
        .uint(95, sig.len() as u64)
        .str(96, sig.as_bytes());
    let r = w.finish().unwrap();
    c.seq += 1;
    buf[r].to_vec()
}

fn trade(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "100", Some("10")));
    let er = c.expect("8");
    assert_eq!(field(&er, 150).as_deref(), Some("0"), "{}", show(&er));
}

/// Logs on as CLIENT1 from `from` with `key`, trades once and logs out.
fn client_trades(addr: SocketAddr, from: &str, key: &str, secret: &[u8], cl: &str) {
    let mut c = connect_from(addr, from, "CLIENT1");
    c.signed_logon(key, secret);
    trade(&mut c, cl);
    c.logout();
}

/// Sends `bytes` as the first write of a new connection from `from`; asserts a silent close.
fn attack(addr: SocketAddr, from: &str, sender: &str, bytes: impl FnOnce(&mut Client) -> Vec<u8>) {
    let mut c = connect_from(addr, from, sender);
    let m = bytes(&mut c);
    c.send_raw(&m);
    assert_closed_silently(&mut c);
}

/// Sends 20 Logons naming `key` (or a key id that does not exist) that need no secret to send:
/// unsigned, stale with a made-up signature, a signature that is not one, an unknown key id.
fn no_secret_logons(addr: SocketAddr, from: &str, key: &str) {
    let stale = || Nanos(now_utc().0 - 60_000_000_000);
    for i in 0..20 {
        attack(addr, from, "CLIENT1", |c| match i % 4 {
            0 => c.build("A", &format!("98=0|108=30|141=Y|553={key}")),
            1 => signed(c, key, &[0u8; 32], stale(), true),
            2 => c.build("A", &format!("98=0|108=30|141=Y|553={key}|95=4|96=AAAA")),
            _ => signed(c, &format!("{key}-x"), &[0u8; 32], now_utc(), true),
        });
    }
}

#[test]
fn failures_needing_no_secret_cannot_lock_a_client_out_and_wrong_signatures_lock_one_address() {
    let env = Env::new("lockout_failures = 3\nlockout_ms = 600000\n");
    let secret = env.add(
        "client1-dev",
        &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"],
    );
    let other = env.add(
        "client2-dev",
        &["--comp-id", "CLIENT2", "--allow", "127.0.0.0/8"],
    );
    let (gw, secrets, cfg_path) = env.start();
    let dir = gw.dir.path().to_path_buf();

    // The lever of the issue: logons naming client1's key from another address.
    no_secret_logons(gw.addr, "127.0.0.2", "client1-dev");
    wait_event(
        &dir,
        // The 20th failure (an unknown key id) locks the address.
        "auth-lockout what=address key=\"client1-dev-x\" peer=127.0.0.2",
    );
    client_trades(gw.addr, "127.0.0.1", "client1-dev", &secret, "L1");
    assert!(!events(&dir).contains("what=key-at-address"));

    // Wrong signatures (a guess at the secret) from 127.0.0.3 lock the key there only.
    for _ in 0..3 {
        attack(gw.addr, "127.0.0.3", "CLIENT1", |c| {
            signed(c, "client1-dev", &[9u8; 32], now_utc(), true)
        });
    }
    wait_event(
        &dir,
        "auth-lockout what=key-at-address key=\"client1-dev\" peer=127.0.0.3",
    );
    attack(gw.addr, "127.0.0.3", "CLIENT1", |c| {
        signed(c, "client1-dev", &secret, now_utc(), true)
    });
    wait_event(&dir, "cause=\"key locked out at this source address\"");
    client_trades(gw.addr, "127.0.0.1", "client1-dev", &secret, "L2");
    // Another key from the same address is not locked.
    let mut c2 = connect_from(gw.addr, "127.0.0.3", "CLIENT2");
    c2.signed_logon("client2-dev", &other);
    trade(&mut c2, "L3");
    c2.logout();

    // The operator unlocks the key; the unlock holds while the no-secret flood goes on.
    let env2 = Env {
        dir: tempfile::tempdir().unwrap(),
        secrets,
        cfg_path,
        extra: String::new(),
    };
    env2.keys_ok(&["unlock", "client1-dev"]);
    std::thread::sleep(Duration::from_millis(400));
    no_secret_logons(gw.addr, "127.0.0.4", "client1-dev");
    client_trades(gw.addr, "127.0.0.3", "client1-dev", &secret, "L4");
    client_trades(gw.addr, "127.0.0.1", "client1-dev", &secret, "L5");
}

/// Stops `gw` and starts a gateway again on the same data folder.
fn restart(gw: Gw, extra: &str) -> Gw {
    let Gw { running, dir, .. } = gw;
    drop(running);
    start_in(dir, extra)
}

fn wait_file(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never contained {needle:?}", path.display());
}

#[test]
fn a_locked_address_stays_locked_after_a_restart() {
    let env = Env::new("lockout_ms = 600000\n");
    let secret = env.add(
        "client1-dev",
        &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"],
    );
    let extra = env.extra.clone();
    let (gw, _secrets, _) = env.start();
    no_secret_logons(gw.addr, "127.0.0.2", "client1-dev");
    let state = gw.dir.path().join("auth-lockouts.state");
    wait_file(&state, "address 127.0.0.2 ");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the lockout state is private");

    let gw = restart(gw, &extra);
    // The right secret from the locked address is still refused after the restart ...
    attack(gw.addr, "127.0.0.2", "CLIENT1", |c| {
        signed(c, "client1-dev", &secret, now_utc(), true)
    });
    wait_event(gw.dir.path(), "cause=\"source address locked out\"");
    // ... while the client at its own address logs on and trades.
    client_trades(gw.addr, "127.0.0.1", "client1-dev", &secret, "R1");
}

#[test]
fn every_refusal_is_a_silent_close_that_leaves_the_session_untouched() {
    let env = Env::new("lockout_failures = 1000\nlockout_address_failures = 1000\n");
    let good = env.add("good", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let gone = env.add("gone", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    env.keys_ok(&["revoke", "gone"]);
    let far = env.add("far", &["--comp-id", "CLIENT1", "--allow", "10.0.0.0/8"]);
    let (gw, _s, _) = env.start();
    let dir = gw.dir.path().to_path_buf();

    // The real client: logs on, trades, logs out; its sequence numbers carry on.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let captured = signed(&mut c, "good", &good, now_utc(), true);
    c.send_raw(&captured);
    c.expect("A");
    trade(&mut c, "U1");
    c.send("5", "");
    let bye = c.expect("5");
    assert!(c.closed_within(Duration::from_secs(5)));
    let gateway_next: u64 = field(&bye, 34).unwrap().parse::<u64>().unwrap() + 1;
    let client_next = c.seq;

    // The attacks, each as the first write of a new connection (seq numbers an attacker would
    // pick: the real ones).
    type Build<'a> = Box<dyn Fn(&mut Client) -> Vec<u8> + 'a>;
    let cases: Vec<(&str, Build)> = vec![
        (
            "NOBODY",
            Box::new(|c| signed(c, "good", &good, now_utc(), false)),
        ),
        (
            "CLIENT1",
            Box::new(|c| signed(c, "good", &[1u8; 32], now_utc(), false)),
        ),
        (
            "CLIENT1",
            Box::new(|c| signed(c, "good", &good, Nanos(now_utc().0 - 10_000_000_000), false)),
        ),
        ("CLIENT1", Box::new(|_| captured.clone())),
        (
            "CLIENT1",
            Box::new(|c| signed(c, "gone", &gone, now_utc(), false)),
        ),
        (
            "CLIENT1",
            Box::new(|c| signed(c, "far", &far, now_utc(), false)),
        ),
        ("CLIENT1", Box::new(|c| c.build("A", "98=0|108=30"))),
    ];
    for (sender, build) in &cases {
        attack(gw.addr, "127.0.0.1", sender, |c| {
            c.seq = client_next;
            build(c)
        });
    }
    for cause in [
        "reason=\"no session configured for these CompIDs and BeginString\"",
        "cause=\"bad signature\"",
        "cause=\"SendingTime(52) outside the allowed skew\"",
        "cause=\"signature replayed\"",
        "cause=\"key revoked\"",
        "cause=\"source address not in the key's allowlist\"",
        "cause=\"Username(553) missing\"",
    ] {
        wait_event(&dir, cause);
    }
    assert!(
        events(&dir).contains("peer=127.0.0.1"),
        "refusal events name the peer"
    );

    // Already connected: the real client is on; a second connection is closed silently.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.seq = client_next;
    let m = signed(&mut c, "good", &good, now_utc(), false);
    c.send_raw(&m);
    let answer = c.expect("A");
    assert_eq!(
        field(&answer, 34).map(|s| s.parse::<u64>().unwrap()),
        Some(gateway_next),
        "no refusal consumed or reset a sequence number"
    );
    attack(gw.addr, "127.0.0.1", "CLIENT1", |a| {
        a.seq = client_next + 1;
        signed(a, "good", &good, now_utc(), false)
    });
    wait_event(
        &dir,
        "reason=\"session already logged on from another connection\"",
    );
    trade(&mut c, "U2");
    c.logout();
}

#[test]
fn a_second_logon_on_a_live_session_needs_a_signed_reset_under_the_same_key() {
    let env = Env::new("");
    let good = env.add("good", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let other = env.add("other", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let (gw, _s, _) = env.start();

    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("good", &good);
    trade(&mut c, "S1");
    trade(&mut c, "S2");
    // Unsigned 141=Y on the live session: Reject, then Logout, nothing reset.
    c.send("A", "98=0|108=30|141=Y");
    let reject = c.expect("3");
    assert_eq!(
        field(&reject, 372).as_deref(),
        Some("A"),
        "{}",
        show(&reject)
    );
    let bye = c.expect("5");
    assert!(c.closed_within(Duration::from_secs(5)));
    let gateway_next = field(&bye, 34).unwrap().parse::<u64>().unwrap() + 1;
    assert!(gateway_next > 2);
    // The Logon did not consume its MsgSeqNum: the client goes on from there.
    let client_next = c.seq - 1;
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.seq = client_next;
    let m = signed(&mut c, "good", &good, now_utc(), false);
    c.send_raw(&m);
    let answer = c.expect("A");
    assert_eq!(
        field(&answer, 34).map(|s| s.parse::<u64>().unwrap()),
        Some(gateway_next),
        "sequence numbers were not reset: {}",
        show(&answer)
    );
    trade(&mut c, "S3");

    // Signed 141=Y under another key bound to the same CompID: refused the same way.
    c.seq = 1;
    let m = signed(&mut c, "other", &other, now_utc(), true);
    c.send_raw(&m);
    c.expect("3");
    c.expect("5");
    assert!(c.closed_within(Duration::from_secs(5)));
    wait_event(gw.dir.path(), "cause=\"re-logon under a different key\"");

    // Signed 141=Y under the session's own key: the reset is accepted.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("good", &good);
    trade(&mut c, "S4");
    c.seq = 1;
    let m = signed(&mut c, "good", &good, now_utc(), true);
    c.send_raw(&m);
    let answer = c.expect("A");
    assert_eq!(field(&answer, 34).as_deref(), Some("1"));
    assert_eq!(field(&answer, 141).as_deref(), Some("Y"));
    trade(&mut c, "S5");
    c.logout();
    let refused = gw
        .running
        .handle
        .counters
        .get(portcullis::monitor::Counter::RelogonsRefused);
    assert_eq!(refused, 2, "the unsigned and the other-key re-logons");
}

#[test]
fn a_captured_logon_sent_from_a_wrong_address_does_not_burn_the_real_one() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.1/32"]);
    let (gw, _s, _) = env.start();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    let logon = signed(&mut c, "k1", &secret, now_utc(), true);
    attack(gw.addr, "127.0.0.2", "CLIENT1", |_| logon.clone());
    wait_event(
        gw.dir.path(),
        "cause=\"source address not in the key's allowlist\"",
    );
    c.send_raw(&logon);
    c.expect("A");
    trade(&mut c, "W1");
    c.logout();
}

#[test]
fn a_logon_captured_before_a_restart_is_refused_after_it() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let extra = env.extra.clone();
    let (gw, _s, _) = env.start();
    let mut captured = Vec::new();
    // A Logon signed now, and one whose SendingTime is 4.8 s ahead of the gateway (a client
    // clock running fast, still inside the 5 s skew): both captured on the wire.
    for ahead_ns in [0, 4_800_000_000] {
        let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
        let logon = signed(&mut c, "k1", &secret, Nanos(now_utc().0 + ahead_ns), true);
        c.send_raw(&logon);
        c.expect("A");
        c.logout();
        captured.push(logon);
    }
    let replay_state = gw.dir.path().join("auth-replay.state");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&replay_state).map_or(0, |t| t.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "replay cache not persisted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let gw = restart(gw, &extra);
    // Signed before the restart: refused for its SendingTime.
    attack(gw.addr, "127.0.0.1", "CLIENT1", |_| captured[0].clone());
    wait_event(
        gw.dir.path(),
        "cause=\"SendingTime(52) earlier than the gateway's start\"",
    );
    // Signed for a time after the restart: the persisted replay cache refuses it.
    attack(gw.addr, "127.0.0.1", "CLIENT1", |_| captured[1].clone());
    wait_event(gw.dir.path(), "cause=\"signature replayed\"");
    client_trades(gw.addr, "127.0.0.1", "k1", &secret, "C1");
}

#[test]
fn frames_behind_a_refused_logon_in_the_same_write_are_not_processed() {
    let env = Env::new("");
    let secret = env.add("k1", &["--comp-id", "CLIENT1", "--allow", "127.0.0.0/8"]);
    let (gw, _s, _) = env.start();
    let dir = gw.dir.path().to_path_buf();
    // A refused Logon (unknown CompID) with a good Logon and an order behind it, one write.
    attack(gw.addr, "127.0.0.1", "NOBODY", |c| {
        let mut bytes = signed(c, "k1", &secret, now_utc(), true);
        c.sender = "CLIENT1".into();
        c.seq = 1;
        bytes.extend(signed(c, "k1", &secret, now_utc(), true));
        bytes.extend(c.build("D", &nos("SNEAK1", "AAPL", "1", "100", Some("10"))));
        bytes
    });
    // A refused Logon (bad signature) with an order behind it.
    attack(gw.addr, "127.0.0.1", "CLIENT1", |c| {
        let mut bytes = signed(c, "k1", &[3u8; 32], now_utc(), true);
        bytes.extend(c.build("D", &nos("SNEAK2", "AAPL", "1", "100", Some("10"))));
        bytes
    });
    wait_event(&dir, "cause=\"bad signature\"");
    client_trades(gw.addr, "127.0.0.1", "k1", &secret, "F1");
    // The journal thread writes events.log behind the gateway thread: wait for the real logon.
    wait_event(&dir, "authenticated session=");
    let ev = events(&dir);
    assert!(!ev.contains("first message is not a Logon"), "{ev}");
    assert_eq!(ev.matches("authenticated session=").count(), 1, "{ev}");
    assert_eq!(ev.matches("logon-refused").count(), 1, "{ev}");
}

/// A CA (rcgen) and PEM files of a server certificate for 127.0.0.1 and of client
/// certificates with the given subjects (each a list of (type, value) RDNs, or one RDN).
mod pki {
    use std::path::Path;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    pub struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
        pub pem: String,
    }

    impl Ca {
        pub fn new() -> Ca {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name
                .push(DnType::CommonName, "spoof test CA");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = p.self_signed(&key).unwrap();
            Ca {
                pem: cert.pem(),
                cert,
                key,
            }
        }

        /// (certificate PEM, key PEM) for `sans` with the subject `dn` (one RDN per entry).
        pub fn issue(
            &self,
            sans: &[&str],
            dn: &[(DnType, &str)],
            client: bool,
        ) -> (String, String) {
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            for (t, v) in dn {
                p.distinguished_name.push(t.clone(), *v);
            }
            p.extended_key_usages = vec![if client {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            }];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    pub fn write(dir: &Path, name: &str, pem: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    }
}

/// Completes a TLS 1.3 handshake to `addr` trusting `ca_pem`, presenting `client` (cert, key
/// PEM); a FIX client over it.
fn tls_client(addr: SocketAddr, ca_pem: &str, client: &(String, String)) -> Client {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(client.0.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(client.1.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut conn = rustls::ClientConnection::new(
        std::sync::Arc::new(cfg),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    if let Err(e) = complete_handshake(&mut conn, &mut tcp, Duration::from_secs(5)) {
        panic!("handshake: {e}");
    }
    Client::over(
        Box::new(rustls::StreamOwned::new(conn, tcp)),
        "FIX.4.4",
        "CLIENT1",
        "GW",
    )
}

#[test]
fn a_certificate_whose_subject_only_reads_like_the_binding_cannot_log_on() {
    use rcgen::DnType;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new();
    let (scert, skey) = ca.issue(
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, "gw")],
        false,
    );
    let ca_path = pki::write(files.path(), "ca.pem", &ca.pem);
    let sessions = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?}, client_ca = {ca_path:?} }}\n\n\
         [[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"CLIENT1\"\n\
         default_account = \"ACC1\"\nclient_cert_subject = \"O=Firm, CN=trader1\"\n{}",
        pki::write(files.path(), "server.pem", &scert),
        pki::write(files.path(), "server.key", &skey),
        sim("ack")
    );
    let gw = start_in(dir, &sessions);
    let tls_addr = gw.running.handle.listen_addrs[1];
    // The attacker's certificate: one attribute O whose value is `Firm, CN=trader1`.
    let spoof = ca.issue(&[], &[(DnType::OrganizationName, "Firm, CN=trader1")], true);
    let mut c = tls_client(tls_addr, &ca.pem, &spoof);
    c.send("A", "98=0|108=30");
    assert_closed_silently(&mut c);
    wait_event(
        gw.dir.path(),
        "reason=\"client certificate subject does not match the session's binding\"",
    );
    // The client's certificate: O=Firm then CN=trader1, two RDNs.
    let real = ca.issue(
        &[],
        &[
            (DnType::OrganizationName, "Firm"),
            (DnType::CommonName, "trader1"),
        ],
        true,
    );
    let mut c = tls_client(tls_addr, &ca.pem, &real);
    c.logon(30);
    trade(&mut c, "T1");
    c.logout();
}
