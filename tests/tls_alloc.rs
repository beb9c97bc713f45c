//! What TLS adds to the gateway thread's allocations per order (DATA-1 with PERF-3): the same
//! counting allocator as `tests/alloc.rs`, over a TLS 1.3 session (rustls client in this
//! process, real socket), handshake excluded.
//!
//! rustls 0.23's buffered API allocates per record: the plaintext chunk of each record
//! received (`received_plaintext.append(payload.into_vec())`) and the encryption buffer of
//! each record sent (`PrefixedPayload`, which then sits in `sendable_tls` until written). These
//! are short-lived, same-size allocations (the allocator's thread cache, no syscall). The test
//! pins the figure so that a change which adds more fails: 2 per order (one NewOrderSingle
//! record in; the New + Fill reports leave in one record), with a little slack.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
#![allow(unsafe_code)] // a global allocator is unsafe by definition; it only forwards to System

#[path = "common/counting.rs"]
mod counting;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::fix::{frame, Frame, Message, TimePrecision, Writer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const WARMUP: usize = 5_000;
const MEASURED: usize = 20_000;
const WINDOW: usize = 1;

#[test]
fn tls_adds_a_bounded_number_of_allocations_per_order() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[gateway]
busy_poll = false
data_dir = {:?}
max_orders = 8192
segment_bytes = 268435456
session_segment_bytes = 4194304
flush_interval_ms = 0
tls_watch_ms = 0

[[listener]]
address = "127.0.0.1:0"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "LOAD"
default_account = "ACC"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "fill"

{}"#,
        dir.path().display().to_string(),
        // Pre-trade risk fails closed: the account and symbol need limits (far above the run).
        portcullis::config::risk::permissive_toml(&["ACC"], &["AAPL"])
    );
    let mut cfg = Config::parse(&text, "alloc.toml").unwrap();
    let (pki, _) =
        portcullis::tls::dev::add_dev_listener(&mut cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(&pki.client_cert).unwrap()],
        rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.client_key).unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(running.handle.listen_addrs[1]).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(client_cfg), "localhost".try_into().unwrap())
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut seq = 1u64;
    let mut out = vec![0u8; 512];
    type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
    let mut send = |s: &mut Tls, msg_type: &[u8], body: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new(&mut out, b"FIX.4.4", msg_type);
        w.uint(34, seq)
            .str(49, b"LOAD")
            .timestamp(52, portcullis::clock::system_utc(), TimePrecision::Millis)
            .str(56, b"GW");
        body(&mut w);
        let r = w.finish().unwrap();
        seq += 1;
        s.write_all(&out[r]).unwrap();
        s.flush().unwrap();
    };
    let mut inbuf = Vec::with_capacity(1 << 20);
    let mut read_some = |s: &mut Tls, fills: &mut usize| {
        let mut tmp = [0u8; 65536];
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "gateway closed the connection");
        inbuf.extend_from_slice(&tmp[..n]);
        let mut at = 0;
        while let Frame::Message { len, .. } = frame(&inbuf[at..], 1 << 16) {
            let m = Message::decode(&inbuf[at..at + len]).unwrap();
            if m.get(39) == Some(b"2") {
                *fills += 1;
            }
            assert_ne!(m.get(39), Some(&b"8"[..]), "order rejected");
            at += len;
        }
        inbuf.drain(..at);
    };
    send(&mut s, b"A", &|w| {
        w.str(98, b"0").str(108, b"30");
    });
    let (fills, allocs) = counting::drive(
        &mut s,
        (WARMUP, MEASURED, WINDOW),
        |s, id| send(s, b"D", &|w| counting::new_order(w, id)),
        &mut read_some,
    );
    running.stop();
    assert_eq!(fills, WARMUP + MEASURED);
    let per_order = allocs as f64 / MEASURED as f64;
    println!("TLS 1.3: {allocs} allocations on the gateway thread over {MEASURED} orders ({per_order:.2} per order)");
    assert!(
        allocs <= 2 * MEASURED as u64 + 100,
        "{allocs} allocations over {MEASURED} orders ({per_order:.2} per order)"
    );
}
