//! HOT — the rustls adapter: a connection's TLS state driven from the gateway thread's mio
//! loop, with no thread and no blocking call.
//!
//! Read: socket → `read_tls` → `process_new_packets` → `reader().read` into the connection's
//! receive buffer (the same buffer plaintext connections fill). Write: the connection's
//! `OutBuf` → `writer().write` → `write_tls` → socket. The handshake advances in the same calls.
//!
//! # Allocation
//! The rustls buffered API keeps plaintext and records in its own `Vec` chunks: each record
//! received allocates its plaintext chunk and each record sent allocates its encryption buffer
//! (rustls 0.23, *ring* provider). `tests/tls_alloc.rs` measures the count per order; the
//! plaintext path stays at zero.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

/// Largest amount of ciphertext rustls holds for sending before `writer().write` pushes back;
/// what does not fit stays in the connection's `OutBuf`.
pub const SEND_LIMIT_BYTES: usize = 64 * 1024;

/// Result of a TLS read pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRead {
    /// Progress or nothing to do; the connection lives.
    Open,
    /// The peer closed (close_notify or EOF) or the socket failed.
    Closed,
    /// The handshake or a record failed (bad certificate, protocol error): an alert was queued.
    Failed,
}

/// Reads ciphertext from `stream` and appends plaintext to `buf[*tail..]` until the socket
/// would block or `buf` is full.
pub fn read(
    tls: &mut rustls::Connection,
    stream: &mut TcpStream,
    buf: &mut [u8],
    tail: &mut usize,
) -> TlsRead {
    loop {
        let Some(spare) = buf.get_mut(*tail..) else {
            return TlsRead::Open;
        };
        if spare.is_empty() {
            return TlsRead::Open; // full: the caller frames, then reads again
        }
        match tls.reader().read(spare) {
            Ok(0) => return TlsRead::Closed, // close_notify
            Ok(n) => {
                *tail += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return TlsRead::Closed, // EOF without close_notify
        }
        match tls.read_tls(stream) {
            Ok(0) => return TlsRead::Closed,
            Ok(_) => {
                if tls.process_new_packets().is_err() {
                    // The alert rustls queued goes out best-effort before the close.
                    let _ = tls.write_tls(stream);
                    return TlsRead::Failed;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return TlsRead::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return TlsRead::Closed,
        }
    }
}

/// Moves `pending` plaintext into rustls and writes records until done or the socket would
/// block. Returns how many plaintext bytes rustls took.
pub fn flush(
    tls: &mut rustls::Connection,
    stream: &mut TcpStream,
    pending: &[u8],
) -> io::Result<usize> {
    let mut taken = 0;
    loop {
        if let Some(rest) = pending.get(taken..) {
            if !rest.is_empty() {
                taken += tls.writer().write(rest)?;
            }
        }
        if !tls.wants_write() {
            return Ok(taken);
        }
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// SHA-256 of the SubjectPublicKeyInfo of a DER certificate (the value `openssl x509 -pubkey |
/// openssl pkey -pubin -outform der | sha256sum` prints). Cold: called once per logon.
#[cold]
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(Sha256::digest(c.tbs_certificate.subject_pki.raw).into())
}

/// SPKI SHA-256 of the peer's end-entity certificate, if it presented one.
#[cold]
pub fn peer_spki_sha256(tls: &rustls::Connection) -> Option<[u8; 32]> {
    tls.peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(spki_sha256)
}

/// The subject of the peer's end-entity certificate, normalised (see [`normalise_subject`]).
/// Cold: called once per logon.
#[cold]
pub fn peer_subject(tls: &rustls::Connection) -> Option<String> {
    let cert = tls.peer_certificates()?.first()?;
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(normalise_subject(&c.subject().to_string()))
}

/// A subject written `C=GB, O=Firm, CN=trader1` or `C=GB,O=Firm,CN=trader1`: attributes in
/// certificate order, spaces around `,` and `=` dropped.
pub fn normalise_subject(s: &str) -> String {
    s.split(',')
        .map(|rdn| {
            let (k, v) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!("{}={}", k.trim(), v.trim())
        })
        .collect::<Vec<_>>()
        .join(",")
}
