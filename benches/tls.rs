//! What TLS 1.3 adds per FIX message: an in-process rustls client and server (the gateway's
//! configuration from `portcullis::tls`, *ring*, AES-128-GCM as negotiated by default) over
//! memory buffers, after the handshake. Each direction is one record: plaintext in → encrypt →
//! `write_tls` → `read_tls` → decrypt → plaintext out, i.e. both ends' cost.
//!
//! `cargo bench --bench tls`. Sizes: a NewOrderSingle (164 bytes) client → gateway and an
//! ExecutionReport pair (New + Fill, ~520 bytes, one record as the gateway writes them)
//! gateway → client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a failure is a failed run

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

struct Pair {
    client: rustls::ClientConnection,
    server: rustls::ServerConnection,
    wire: Vec<u8>,
    plain: Vec<u8>,
}

fn pair() -> Pair {
    let (client_cfg, server_cfg) = configs();
    handshake(client_cfg, server_cfg)
}

/// The gateway's server configuration (mTLS, development PKI) and a client configuration.
fn configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _) = portcullis::tls::dev::DevPki::ensure(dir.path(), "BENCH").unwrap();
    let now = (portcullis::clock::system_utc().0 / 1_000_000_000) as i64;
    let server_cfg = portcullis::tls::server_config(&pki.listener(), now)
        .unwrap()
        .config;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(&pki.client_cert).unwrap()],
            rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.client_key).unwrap(),
        )
        .unwrap();
    (Arc::new(client_cfg), server_cfg)
}

/// A full TLS 1.3 handshake with client authentication, over memory.
fn handshake(client_cfg: Arc<rustls::ClientConfig>, server_cfg: Arc<rustls::ServerConfig>) -> Pair {
    let mut client =
        rustls::ClientConnection::new(client_cfg, "localhost".try_into().unwrap()).unwrap();
    let mut server = rustls::ServerConnection::new(server_cfg).unwrap();
    let mut wire = Vec::with_capacity(1 << 16);
    while client.is_handshaking() || server.is_handshaking() {
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut r = &wire[..];
        while !r.is_empty() {
            server.read_tls(&mut r).unwrap();
            server.process_new_packets().unwrap();
        }
        wire.clear();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        let mut r = &wire[..];
        while !r.is_empty() {
            client.read_tls(&mut r).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    Pair {
        client,
        server,
        wire,
        plain: vec![0u8; 1 << 16],
    }
}

/// One record from `tx` to `rx` carrying `msg`; returns the plaintext length received.
fn one_way(
    tx: &mut rustls::Connection,
    rx: &mut rustls::Connection,
    wire: &mut Vec<u8>,
    plain: &mut [u8],
    msg: &[u8],
) -> usize {
    wire.clear();
    tx.writer().write_all(msg).unwrap();
    while tx.wants_write() {
        tx.write_tls(wire).unwrap();
    }
    let mut r = &wire[..];
    while !r.is_empty() {
        rx.read_tls(&mut r).unwrap();
        rx.process_new_packets().unwrap();
    }
    let mut got = 0;
    while got < msg.len() {
        got += rx.reader().read(&mut plain[got..]).unwrap();
    }
    got
}

fn bench(c: &mut Criterion) {
    let nos = vec![b'D'; 164];
    let reports = vec![b'8'; 520];
    let Pair {
        client,
        server,
        mut wire,
        mut plain,
    } = pair();
    let mut client = rustls::Connection::Client(client);
    let mut server = rustls::Connection::Server(server);
    let mut g = c.benchmark_group("tls13_record");
    g.bench_function("client_to_gateway_new_order_164B", |b| {
        b.iter(|| {
            black_box(one_way(
                &mut client,
                &mut server,
                &mut wire,
                &mut plain,
                &nos,
            ))
        })
    });
    g.bench_function("gateway_to_client_reports_520B", |b| {
        b.iter(|| {
            black_box(one_way(
                &mut server,
                &mut client,
                &mut wire,
                &mut plain,
                &reports,
            ))
        })
    });
    g.bench_function("plaintext_copy_baseline_164B", |b| {
        b.iter(|| {
            plain[..nos.len()].copy_from_slice(black_box(&nos));
            black_box(plain[0])
        })
    });
    g.finish();
    let (client_cfg, server_cfg) = configs();
    c.bench_function("tls13_mtls_handshake_both_ends", |b| {
        b.iter(|| black_box(handshake(client_cfg.clone(), server_cfg.clone()).wire.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
