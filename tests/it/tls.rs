//! DATA-1, DATA-5, DATA-7: TLS listeners in the gateway loop — real handshakes on 127.0.0.1
//! with a rustls client (this file) and with `openssl s_client` (the `#[ignore]`d tests that
//! `.ci/run` runs after installing openssl).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use portcullis::tls::dev::{self, DevCa};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;

use crate::util::{self, complete_handshake, field, nos, Client, Gw, SESSIONS};

const DAY: i64 = 86_400;

fn now_unix() -> i64 {
    (portcullis::clock::system_utc().0 / 1_000_000_000) as i64
}

/// A CA with a server certificate for 127.0.0.1/localhost and two client certificates.
struct Pki {
    ca: DevCa,
    dir: PathBuf,
    ca_pem: PathBuf,
    server: portcullis::config::ListenerTls,
    client_a: (PathBuf, PathBuf),
    client_b: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let ca = DevCa::generate("it CA").unwrap();
    let now = now_unix();
    let dir = dir.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.cert_pem()).unwrap();
    let (c, k) = ca
        .issue_server(&["localhost", "127.0.0.1"], now - DAY, now + 90 * DAY)
        .unwrap();
    let server = dev::write_pair(&dir, "server", &c, &k).unwrap();
    let client = |name: &str| {
        let (c, k) = ca.issue_client(name, now - DAY, now + 90 * DAY).unwrap();
        let f = dev::write_pair(&dir, name, &c, &k).unwrap();
        (f.cert, f.key)
    };
    Pki {
        client_a: client("client-a"),
        client_b: client("client-b"),
        ca,
        dir,
        ca_pem,
        server,
    }
}

/// TOML of a TLS listener on an ephemeral port (listener[1]; listener[0] is the plaintext one
/// of `util::config`).
fn tls_listener(p: &Pki, mtls: bool) -> String {
    let mut s = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?}",
        p.server.cert.display().to_string(),
        p.server.key.display().to_string()
    );
    if mtls {
        s.push_str(&format!(
            ", client_ca = {:?}",
            p.ca_pem.display().to_string()
        ));
    }
    s.push_str(" }\n\n");
    s
}

fn tls_addr(gw: &Gw) -> SocketAddr {
    gw.running.handle.listen_addrs[1]
}

fn spki_hex(cert_pem: &Path) -> String {
    let der = CertificateDer::from_pem_file(cert_pem).unwrap();
    portcullis::tls::hex(&portcullis::tls::spki_sha256(&der).unwrap())
}

/// A rustls client configuration trusting `ca`, TLS 1.3 (or 1.2 only), with an optional
/// client certificate.
fn client_config(
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
    tls12_only: bool,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake (client side), or returns rustls's error.
fn handshake(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Result<TlsStream, String> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    complete_handshake(&mut conn, &mut tcp, Duration::from_secs(5))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn tls_client(stream: TlsStream, sender: &str) -> Client {
    Client::over(Box::new(stream), "FIX.4.4", sender, "GW")
}

fn trade(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "100", Some("10.5")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"), "{cl} new");
    assert_eq!(
        field(&c.expect("8"), 39).as_deref(),
        Some("2"),
        "{cl} filled"
    );
}

#[test]
fn order_round_trip_over_tls13() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let s = handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut c = tls_client(s, "CLIENT1");
    c.logon(30);
    for i in 0..20 {
        trade(&mut c, &format!("T{i}"));
    }
    c.logout();
    let counters = &gw.running.handle.counters;
    assert_eq!(counters.get(portcullis::monitor::Counter::TlsHandshakes), 1);
    // The plaintext loopback listener beside it keeps working.
    let mut plain = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    plain.logon(30);
    trade(&mut plain, "P1");
}

#[test]
fn plaintext_on_a_tls_port_is_dropped_without_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let mut c = Client::connect(tls_addr(&gw), "FIX.4.4", "CLIENT1", "GW");
    c.send("A", "98=0|108=30");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(
        !c.received.iter().any(|m| field(m, 35).is_some()),
        "no FIX answer"
    );
    assert!(
        gw.running
            .handle
            .counters
            .get(portcullis::monitor::Counter::TlsFailures)
            >= 1
    );
}

#[test]
fn tls12_is_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let Err(e) = handshake(tls_addr(&gw), client_config(&p.ca_pem, None, true)) else {
        panic!("TLS 1.2 must be refused");
    };
    assert!(e.contains("ProtocolVersion"), "{e}");
}

#[test]
fn tls12_can_be_enabled_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let listener = tls_listener(&p, false).replace(" }", ", tls12 = true }");
    let gw = util::start_in(dir, &format!("{listener}{SESSIONS}{}", util::sim("fill")));
    let s = handshake(tls_addr(&gw), client_config(&p.ca_pem, None, true)).unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = s.conn.negotiated_cipher_suite().unwrap().suite();
    assert!(format!("{suite:?}").contains("ECDHE") && format!("{suite:?}").contains("GCM"));
    let mut c = tls_client(s, "CLIENT1");
    c.logon(30);
    trade(&mut c, "X1");
}

#[test]
fn mtls_listener_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, true), util::sim("fill")),
    );
    // TLS 1.3: the client finishes its side first; the server's refusal arrives as an alert.
    let refused = match handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)) {
        Err(_) => true,
        Ok(s) => {
            let mut c = tls_client(s, "CLIENT1");
            c.send("A", "98=0|108=30");
            c.closed_within(Duration::from_secs(5)) && c.received.is_empty()
        }
    };
    assert!(refused, "a client without a certificate got in");
    // With a certificate of the configured CA it works.
    let s = handshake(
        tls_addr(&gw),
        client_config(&p.ca_pem, Some(&p.client_a), false),
    )
    .unwrap();
    let mut c = tls_client(s, "CLIENT1");
    c.logon(30);
    trade(&mut c, "M1");
}

#[test]
fn mtls_listener_refuses_a_certificate_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let other = DevCa::generate("stranger CA").unwrap();
    let now = now_unix();
    let (c, k) = other
        .issue_client("intruder", now - DAY, now + DAY)
        .unwrap();
    let f = dev::write_pair(&p.dir, "intruder", &c, &k).unwrap();
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, true), util::sim("fill")),
    );
    let refused = match handshake(
        tls_addr(&gw),
        client_config(&p.ca_pem, Some(&(f.cert, f.key)), false),
    ) {
        Err(_) => true,
        Ok(s) => {
            let mut c = tls_client(s, "CLIENT1");
            c.send("A", "98=0|108=30");
            c.closed_within(Duration::from_secs(5)) && c.received.is_empty()
        }
    };
    assert!(refused);
}

/// Sessions CLIENT1 and CLIENT2, bound to client certificates A and B.
fn bound_sessions(p: &Pki) -> String {
    format!(
        r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"
client_cert_spki_sha256 = "{}"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT2"
default_account = "ACC2"
client_cert_spki_sha256 = "{}"
"#,
        spki_hex(&p.client_a.0),
        spki_hex(&p.client_b.0)
    )
}

#[test]
fn a_certificate_bound_to_one_session_cannot_log_on_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!(
            "{}{}{}",
            tls_listener(&p, true),
            bound_sessions(&p),
            util::sim("fill")
        ),
    );
    // Certificate B, claiming CLIENT1: refused without an answer.
    let s = handshake(
        tls_addr(&gw),
        client_config(&p.ca_pem, Some(&p.client_b), false),
    )
    .unwrap();
    let mut c = tls_client(s, "CLIENT1");
    c.send("A", "98=0|108=30");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(
        c.received.is_empty(),
        "no Logon answer for a wrong certificate"
    );
    // The plaintext listener cannot reach a bound session at all.
    let mut plain = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    plain.send("A", "98=0|108=30");
    assert!(plain.closed_within(Duration::from_secs(5)));
    assert!(plain.received.is_empty());
    // Each certificate logs on to its own session.
    for (cert, sender) in [(&p.client_a, "CLIENT1"), (&p.client_b, "CLIENT2")] {
        let s = handshake(tls_addr(&gw), client_config(&p.ca_pem, Some(cert), false)).unwrap();
        let mut c = tls_client(s, sender);
        c.logon(30);
        trade(&mut c, &format!("B-{sender}"));
        c.logout();
    }
}

#[test]
fn an_expired_certificate_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let now = now_unix();
    let (c, k) =
        p.ca.issue_server(&["localhost"], now - 30 * DAY, now - DAY)
            .unwrap();
    let old = dev::write_pair(&p.dir, "expired", &c, &k).unwrap();
    let toml = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n{SESSIONS}{}",
        old.cert.display().to_string(),
        old.key.display().to_string(),
        util::sim("fill")
    );
    let cfg = util::config(dir.path(), &toml);
    let e = portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast())
        .err()
        .expect("an expired certificate must not load");
    let e = e.to_string();
    assert!(
        e.contains("listener[1].tls") && e.contains("expired on") && e.contains("expired.pem"),
        "{e}"
    );
}

#[test]
fn plaintext_off_loopback_needs_allow_plaintext() {
    // Off loopback, logons must also be signed (an [auth] section); this test is about TLS.
    let text = "[[listener]]\naddress = \"0.0.0.0:0\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n[auth]\nkey_store = \"k\"\nmaster_key = { provider = \"env\", var = \"PORTCULLIS_TEST_MASTER\" }\n";
    let e = portcullis::config::Config::parse(text, "t.toml").unwrap_err();
    assert_eq!(e.key, "listener[0].tls");
    assert!(e.problem.contains("allow_plaintext"), "{e}");
    let ok = text.replace("0.0.0.0:0\"", "0.0.0.0:0\"\nallow_plaintext = true");
    portcullis::config::Config::parse(&ok, "t.toml").unwrap();
}

#[test]
fn reload_swaps_the_certificate_for_new_connections_while_a_session_keeps_trading() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    // Reloads through `TlsListeners::reload_all`, what SIGHUP calls: the files are read on this
    // (cold) thread and the gateway thread gets the new configuration as a command.
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let first = handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap();
    let old_spki = peer_spki(&first);
    let mut trading = tls_client(first, "CLIENT1");
    trading.logon(30);
    trade(&mut trading, "R1");
    // New certificate and key in place of the old files.
    replace_server_cert(&p, 10);
    let results = gw.running.handle.tls.reload_all();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(gw.running.handle.tls.days_to_expiry(1), Some(10));
    // The command is applied on the gateway thread's next turn.
    let mut new_spki = old_spki;
    for _ in 0..50 {
        let s = handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap();
        new_spki = peer_spki(&s);
        if new_spki != old_spki {
            let mut c = tls_client(s, "CLIENT2");
            c.logon(30);
            trade(&mut c, "N1");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(
        new_spki, old_spki,
        "new connections still get the old certificate"
    );
    // The established session was not dropped and still trades.
    trade(&mut trading, "R2");
    trading.logout();
}

#[test]
fn a_bad_reload_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let before =
        peer_spki(&handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap());
    let now = now_unix();
    let (c, k) =
        p.ca.issue_server(&["localhost"], now - 10 * DAY, now - DAY)
            .unwrap();
    dev::write_pair(&p.dir, "server", &c, &k).unwrap();
    let results = gw.running.handle.tls.reload_all();
    let e = results[0].as_ref().expect_err("expired must be refused");
    assert!(
        e.contains("expired on") && e.contains("keeping the current certificate"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(100));
    let after =
        peer_spki(&handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap());
    assert_eq!(before, after);
}

#[test]
fn changed_files_are_reloaded_by_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let before =
        peer_spki(&handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap());
    let now = now_unix();
    let (c, k) =
        p.ca.issue_server(
            &["localhost", "127.0.0.1"],
            now - DAY,
            now + 20 * DAY + 3600,
        )
        .unwrap();
    // mtimes have (at least) 1 s resolution on some filesystems: make the change visible.
    std::thread::sleep(Duration::from_millis(1100));
    dev::write_pair(&p.dir, "server", &c, &k).unwrap();
    let mut after = before;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        after =
            peer_spki(&handshake(tls_addr(&gw), client_config(&p.ca_pem, None, false)).unwrap());
        if after != before {
            break;
        }
    }
    assert_ne!(before, after, "the watcher did not pick up the new files");
    assert_eq!(gw.running.handle.tls.days_to_expiry(1), Some(20));
    assert!(
        gw.running
            .handle
            .counters
            .get(portcullis::monitor::Counter::TlsReloads)
            >= 1
    );
}

#[test]
fn a_certificate_near_expiry_raises_an_event_and_shows_its_days() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    replace_server_cert(&p, 5);
    let data = dir.path().to_path_buf();
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    assert_eq!(gw.running.handle.tls.days_to_expiry(1), Some(5));
    assert_eq!(
        gw.running
            .handle
            .counters
            .get(portcullis::monitor::Counter::TlsCertDaysToExpiry),
        5
    );
    // The journal thread writes events to the event log.
    let mut found = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let log = std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("event"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect::<String>();
        if log.contains("cert-expiring listener=1 days-to-expiry=5") {
            found = true;
            break;
        }
    }
    assert!(found, "no cert-expiring event in the event log");
}

/// Writes a new server certificate and key (localhost, 127.0.0.1) over the listener's files,
/// valid from a day ago for `days` days and an hour from now.
fn replace_server_cert(p: &Pki, days: i64) {
    let now = now_unix();
    let (c, k) =
        p.ca.issue_server(
            &["localhost", "127.0.0.1"],
            now - DAY,
            now + days * DAY + 3600,
        )
        .unwrap();
    dev::write_pair(&p.dir, "server", &c, &k).unwrap();
}

fn peer_spki(s: &TlsStream) -> [u8; 32] {
    let chain = s.conn.peer_certificates().unwrap();
    portcullis::tls::spki_sha256(&chain[0]).unwrap()
}

// ---- openssl s_client (needs the openssl package; `.ci/run` installs it and runs these) ----

fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl not installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Keep stdin open long enough for the answer, then EOF ends s_client.
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn logon_bytes(sender: &str) -> Vec<u8> {
    let mut tmp = Client::over(
        Box::new(std::io::Cursor::new(Vec::new())),
        "FIX.4.4",
        sender,
        "GW",
    );
    tmp.build("A", "98=0|108=30")
}

#[test]
#[ignore = "needs openssl; run by .ci/run"]
fn openssl_s_client_tls13_exchanges_a_fix_logon() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, true), util::sim("fill")),
    );
    let ca = p.ca_pem.display().to_string();
    let (cert, key) = (
        p.client_a.0.display().to_string(),
        p.client_a.1.display().to_string(),
    );
    let (_, out) = s_client(
        tls_addr(&gw),
        &["-tls1_3", "-CAfile", &ca, "-cert", &cert, "-key", &key],
        &logon_bytes("CLIENT1"),
    );
    assert!(
        out.contains("35=A\u{1}") && out.contains("49=GW\u{1}"),
        "no Logon answer over openssl s_client: {out}"
    );
}

#[test]
#[ignore = "needs openssl; run by .ci/run"]
fn openssl_s_client_tls12_is_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, false), util::sim("fill")),
    );
    let ca = p.ca_pem.display().to_string();
    let (ok, out) = s_client(tls_addr(&gw), &["-tls1_2", "-CAfile", &ca], b"");
    assert!(!ok, "TLS 1.2 handshake succeeded: {out}");
    assert!(out.contains("protocol version"), "{out}");
}

#[test]
#[ignore = "needs openssl; run by .ci/run"]
fn openssl_s_client_without_a_certificate_is_refused_by_an_mtls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let gw = util::start_in(
        dir,
        &format!("{}{SESSIONS}{}", tls_listener(&p, true), util::sim("fill")),
    );
    let ca = p.ca_pem.display().to_string();
    let (_, out) = s_client(
        tls_addr(&gw),
        &["-tls1_3", "-CAfile", &ca],
        &logon_bytes("CLIENT1"),
    );
    assert!(
        !out.contains("35=A\u{1}"),
        "logged on without a certificate: {out}"
    );
    assert!(out.contains("certificate required"), "{out}");
}

// ---- the gateway as a TLS client of a FIX venue ----

/// The test plays a venue behind TLS with mTLS: accepts the gateway's connection and completes
/// the server side of the handshake.
fn accept_tls(
    l: &std::net::TcpListener,
    cfg: Arc<rustls::ServerConfig>,
) -> rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    let (mut tcp, _) = l.accept().unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut conn = rustls::ServerConnection::new(cfg).unwrap();
    if let Err(e) = complete_handshake(&mut conn, &mut tcp, Duration::from_secs(5)) {
        panic!("venue-side handshake failed: {e}");
    }
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn orders_reach_a_fix_venue_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    // The venue's side: its server certificate, and our CA for the gateway's client certificate.
    let mut files = p.server.clone();
    files.client_ca = Some(p.ca_pem.clone());
    let venue_cfg = portcullis::tls::server_config(&files, now_unix())
        .unwrap()
        .config;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let venue = format!(
        r#"{SESSIONS}
[[venue]]
name = "XVEN"
kind = "fix"
address = "127.0.0.1:{}"
our_comp_id = "GW"
their_comp_id = "VENUE"
reconnect_ms = 200
tls = {{ ca = {:?}, cert = {:?}, key = {:?}, server_name = "localhost" }}
"#,
        l.local_addr().unwrap().port(),
        p.ca_pem.display().to_string(),
        p.client_a.0.display().to_string(),
        p.client_a.1.display().to_string(),
    );
    let gw = util::start_in(dir, &venue);
    let s = accept_tls(&l, venue_cfg);
    let gateway_key = portcullis::tls::spki_sha256(&s.conn.peer_certificates().unwrap()[0]);
    assert_eq!(
        gateway_key.map(|k| portcullis::tls::hex(&k)),
        Some(spki_hex(&p.client_a.0)),
        "the gateway presented its client certificate"
    );
    let mut v = Client::over(Box::new(s), "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    // The venue logon may still be in flight: retry until the order is routed.
    let mut routed = None;
    for i in 0..50 {
        c.send("D", &nos(&format!("V{i}"), "AAPL", "1", "100", Some("10")));
        let m = c.expect("8");
        if field(&m, 150).as_deref() == Some("A") {
            routed = Some(v.expect("D"));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = routed.expect("no order reached the venue over TLS");
    assert_eq!(field(&d, 38).as_deref(), Some("100"));
}

/// A listener off loopback needs signed logons: an `[auth]` section (development file master
/// key, store and key next to the config file).
const OFF_LOOPBACK_AUTH: &str =
    "[auth]\nkey_store = \"keys.store\"\nmaster_key = { provider = \"file\", path = \"master.key\" }\n";

#[test]
fn check_config_loads_the_tls_files_and_names_an_expired_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let now = now_unix();
    let (c, k) =
        p.ca.issue_server(&["localhost"], now - 30 * DAY, now - 2 * DAY)
            .unwrap();
    let old = dev::write_pair(&p.dir, "stale", &c, &k).unwrap();
    let listener = |cert: &Path, key: &Path| {
        format!(
            "[[listener]]\naddress = \"0.0.0.0:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n{SESSIONS}{}{OFF_LOOPBACK_AUTH}",
            cert.display().to_string(),
            key.display().to_string(),
            util::sim("fill")
        )
    };
    let file = dir.path().join("p.toml");
    std::fs::write(&file, listener(&old.cert, &old.key)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key `listener[0].tls`") && err.contains("expired on"),
        "{err}"
    );
    std::fs::write(&file, listener(&p.server.cert, &p.server.key)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_warns_about_a_plaintext_listener_off_loopback() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[gateway]\nbusy_poll = false\n[[listener]]\naddress = \"0.0.0.0:0\"\nallow_plaintext = true\n{SESSIONS}{}[auth]\nkey_store = {:?}\nmaster_key = {{ provider = \"file\", path = {:?} }}\n",
            util::sim("fill"),
            dir.path().join("keys.store").display().to_string(),
            dir.path().join("master.key").display().to_string(),
        ),
    )
    .unwrap();
    // Off loopback, logons must be signed: the store needs a key before the gateway starts.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "keys",
            "add",
            "k1",
            "--comp-id",
            "CLIENT1",
            "--allow",
            "0.0.0.0/0",
        ])
        .arg("--secret-out")
        .arg(dir.path().join("k1.secret"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening on 0.0.0.0:"), "{first}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    std::thread::spawn(move || for _ in lines {});
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARNING") && err.contains("clear text") && err.contains("listener[0]"),
        "{err}"
    );
}

#[test]
fn the_embedded_default_speaks_mtls_out_of_the_box() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let tls: SocketAddr = first
        .split("tls://")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no tls:// listener in {first:?}"))
        .parse()
        .unwrap();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("openssl s_client");
        printed.push_str(&line);
        printed.push('\n');
        if done {
            break;
        }
    }
    let pki = dev::DevPki::paths(dir.path());
    assert!(
        printed.contains("created a development CA")
            && printed.contains(&format!("--connect {tls} --tls"))
            && printed.contains(&pki.client_key.display().to_string()),
        "{printed}"
    );
    let s = handshake(
        tls,
        client_config(
            &pki.ca,
            Some(&(pki.client_cert.clone(), pki.client_key.clone())),
            false,
        ),
    )
    .unwrap();
    // The embedded default also requires signed logons: the TLS hint names the development
    // key and its secret file like the plaintext one.
    let tls_hint = printed
        .lines()
        .find(|l| l.contains("fixclient") && l.contains("--tls"))
        .unwrap_or_else(|| panic!("no fixclient --tls hint in {printed}"));
    let word_after = |flag: &str| {
        let mut w = tls_hint.split_whitespace();
        w.by_ref().find(|x| *x == flag);
        w.next()
            .unwrap_or_else(|| panic!("{flag} in {tls_hint}"))
            .to_string()
    };
    let key_id = word_after("--key-id");
    let secret =
        portcullis::auth::admin::read_secret_file(Path::new(&word_after("--secret-file"))).unwrap();
    let mut c = Client::over(Box::new(s), "FIX.4.4", "CLIENT1", "PORTCULLIS");
    c.signed_logon(&key_id, &secret);
    c.send("D", &nos("E1", "AAPL", "1", "100", Some("10.5")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    // Without the client certificate: refused.
    let refused = match handshake(tls, client_config(&pki.ca, None, false)) {
        Err(_) => true,
        Ok(s) => {
            let mut c = Client::over(Box::new(s), "FIX.4.4", "CLIENT2", "PORTCULLIS");
            c.send("A", "98=0|108=30");
            c.closed_within(Duration::from_secs(5)) && c.received.is_empty()
        }
    };
    assert!(refused);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    std::thread::spawn(move || for _ in lines {});
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_venue_with_a_certificate_of_another_ca_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    // The venue presents a certificate from a CA the gateway does not trust.
    let stranger = DevCa::generate("stranger CA").unwrap();
    let now = now_unix();
    let (c, k) = stranger
        .issue_server(&["localhost"], now - DAY, now + DAY)
        .unwrap();
    let files = dev::write_pair(&p.dir, "stranger-venue", &c, &k).unwrap();
    let venue_cfg = portcullis::tls::server_config(&files, now).unwrap().config;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let venue = format!(
        r#"{SESSIONS}
[[venue]]
name = "XVEN"
kind = "fix"
address = "127.0.0.1:{}"
our_comp_id = "GW"
their_comp_id = "VENUE"
reconnect_ms = 200
tls = {{ ca = {:?}, server_name = "localhost" }}
"#,
        l.local_addr().unwrap().port(),
        p.ca_pem.display().to_string(),
    );
    let gw = util::start_in(dir, &venue);
    let (mut tcp, _) = l.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut conn = rustls::ServerConnection::new(venue_cfg).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut failed = None;
    while failed.is_none() && std::time::Instant::now() < deadline {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => failed = Some("eof".to_string()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => failed = Some(e.to_string()),
        }
    }
    let failed = failed.expect("the gateway accepted an untrusted venue certificate");
    assert!(
        failed.contains("UnknownCA") || failed.contains("eof"),
        "{failed}"
    );
    // Orders for the venue are refused while it is down.
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("U1", "AAPL", "1", "100", Some("10")));
    let r = c.expect("8");
    assert_eq!(field(&r, 39).as_deref(), Some("8"), "{}", util::show(&r));
    assert!(field(&r, 58).unwrap().contains("venue is down"));
    assert!(
        gw.running
            .handle
            .counters
            .get(portcullis::monitor::Counter::TlsFailures)
            >= 1
    );
}

#[test]
fn sighup_reloads_the_certificate_of_a_running_gateway() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[gateway]\nbusy_poll = false\ntls_watch_ms = 0\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n{SESSIONS}{}{}",
            p.server.cert.display().to_string(),
            p.server.key.display().to_string(),
            util::sim("fill"),
            util::permissive_risk()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr: SocketAddr = first
        .split("tls://")
        .nth(1)
        .unwrap_or_else(|| panic!("{first}"))
        .trim()
        .parse()
        .unwrap();
    let s = handshake(addr, client_config(&p.ca_pem, None, false)).unwrap();
    let before = peer_spki(&s);
    let mut trading = tls_client(s, "CLIENT1");
    trading.logon(30);
    trade(&mut trading, "H1");
    replace_server_cert(&p, 40);
    crate::util::signal(&child, "HUP");
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("SIGHUP: TLS") {
            said = line;
            break;
        }
    }
    assert!(
        said.contains("listener[0]: loaded") && said.contains("(40 days)"),
        "{said}"
    );
    let mut after = before;
    for _ in 0..50 {
        after = peer_spki(&handshake(addr, client_config(&p.ca_pem, None, false)).unwrap());
        if after != before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_ne!(before, after, "SIGHUP did not change the certificate");
    trade(&mut trading, "H2");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    trading.expect("5");
    std::thread::spawn(move || for _ in lines {});
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_session_bound_to_a_certificate_subject_accepts_only_that_subject() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path());
    let sessions = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"
client_cert_subject = "CN = client-a"
"#;
    let gw = util::start_in(
        dir,
        &format!("{}{sessions}{}", tls_listener(&p, true), util::sim("fill")),
    );
    let s = handshake(
        tls_addr(&gw),
        client_config(&p.ca_pem, Some(&p.client_b), false),
    )
    .unwrap();
    let mut c = tls_client(s, "CLIENT1");
    c.send("A", "98=0|108=30");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(
        c.received.is_empty(),
        "CN=client-b logged on as CN=client-a"
    );
    let s = handshake(
        tls_addr(&gw),
        client_config(&p.ca_pem, Some(&p.client_a), false),
    )
    .unwrap();
    let mut c = tls_client(s, "CLIENT1");
    c.logon(30);
    trade(&mut c, "S1");
}
