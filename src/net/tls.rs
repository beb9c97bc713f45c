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

/// True when the peer's end-entity certificate's subject is exactly `want`: the same RDN
/// sequence, attribute types (OIDs) and values, compared structurally (never as display
/// text, where `O="Firm, CN=trader1"` would read like `O=Firm, CN=trader1`). Cold: once per
/// logon.
#[cold]
pub fn peer_subject_is(tls: &rustls::Connection, want: &Subject) -> bool {
    let Some(cert) = tls.peer_certificates().and_then(|c| c.first()) else {
        return false;
    };
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, c)) => Subject::from_name(c.subject()).as_ref() == Some(want),
        Err(_) => false,
    }
}

/// A distinguished name as an RDN sequence (certificate order): each RDN a list of
/// (attribute type OID in dotted form, value). Built from a certificate or parsed from the
/// configured `client_cert_subject` (`CN=trader1,O=Firm,C=GB`, RFC 4514 style).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject(pub Vec<Vec<(String, String)>>);

/// Short attribute names accepted in `client_cert_subject`, and their OIDs.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

impl Subject {
    /// The subject of a parsed certificate; `None` if a value is not a string type.
    pub fn from_name(name: &x509_parser::x509::X509Name<'_>) -> Option<Subject> {
        let mut rdns = Vec::new();
        for rdn in name.iter() {
            let mut set = Vec::new();
            for atv in rdn.iter() {
                let value = atv.as_str().ok()?;
                set.push((atv.attr_type().to_id_string(), value.to_owned()));
            }
            rdns.push(set);
        }
        Some(Subject(rdns))
    }

    /// Parses `TYPE=value` attributes separated by `,` (next RDN) or `+` (same RDN). TYPE is
    /// a short name (CN, O, OU, C, L, ST, DC, UID, emailAddress, ...) or a dotted OID; a value
    /// may be `"quoted"` (then `,` `+` `=` are literal) and `\` escapes the next character.
    /// Spaces around separators are ignored.
    pub fn parse(s: &str) -> Result<Subject, String> {
        let mut rdns: Vec<Vec<(String, String)>> = vec![Vec::new()];
        let mut chars = s.chars().peekable();
        loop {
            // TYPE
            let mut ty = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                ty.push(c);
            }
            let ty = ty.trim();
            if ty.is_empty() {
                return Err(format!(
                    "{s:?}: an attribute has no type (expected TYPE=value)"
                ));
            }
            let oid = attribute_oid(ty).ok_or_else(|| {
                format!("{s:?}: unknown attribute type {ty:?} (use a short name or a dotted OID)")
            })?;
            // value
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            let mut value = String::new();
            let mut end = None;
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().ok_or_else(|| dangling(s))?),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!("{s:?}: unterminated quoted value"));
                }
                for c in chars.by_ref() {
                    match c {
                        ',' | '+' => {
                            end = Some(c);
                            break;
                        }
                        ' ' => {}
                        _ => return Err(format!("{s:?}: text after a quoted value")),
                    }
                }
            } else {
                let mut trailing = 0;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            value.push(chars.next().ok_or_else(|| dangling(s))?);
                            trailing = 0;
                        }
                        ',' | '+' => {
                            end = Some(c);
                            break;
                        }
                        '=' | '"' => {
                            return Err(format!(
                                "{s:?}: {c:?} in a value must be escaped or quoted"
                            ))
                        }
                        c => {
                            value.push(c);
                            trailing = if c == ' ' { trailing + 1 } else { 0 };
                        }
                    }
                }
                value.truncate(value.len() - trailing);
            }
            if let Some(rdn) = rdns.last_mut() {
                rdn.push((oid, value));
            }
            match end {
                None => break,
                Some(',') => rdns.push(Vec::new()),
                Some(_) => {}
            }
        }
        Ok(Subject(rdns))
    }
}

fn dangling(s: &str) -> String {
    format!("{s:?}: '\\' at the end of a value")
}

fn attribute_oid(ty: &str) -> Option<String> {
    if let Some((_, oid)) = ATTRIBUTE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(ty))
    {
        return Some((*oid).to_owned());
    }
    let dotted = ty.split('.').count() >= 2
        && ty
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    dotted.then(|| ty.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdns(v: &[&[(&str, &str)]]) -> Subject {
        Subject(
            v.iter()
                .map(|r| r.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect())
                .collect(),
        )
    }

    #[test]
    fn parses_the_usual_forms_alike() {
        let want = rdns(&[
            &[("2.5.4.6", "GB")],
            &[("2.5.4.10", "Firm")],
            &[("2.5.4.3", "trader1")],
        ]);
        for s in [
            "C=GB,O=Firm,CN=trader1",
            "C=GB, O=Firm, CN=trader1",
            " c = GB ,o=\"Firm\", 2.5.4.3=trader1",
        ] {
            assert_eq!(Subject::parse(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn quoted_or_escaped_separators_stay_in_the_value() {
        let quoted = Subject::parse("O=\"Firm, CN=trader1\"").unwrap();
        assert_eq!(quoted, rdns(&[&[("2.5.4.10", "Firm, CN=trader1")]]));
        let escaped = Subject::parse("O=Firm\\, CN\\=trader1").unwrap();
        assert_eq!(escaped, quoted);
        let two = Subject::parse("O=Firm,CN=trader1").unwrap();
        assert_ne!(quoted, two, "one attribute holding a comma is not two RDNs");
        let multi = Subject::parse("CN=a+UID=b").unwrap();
        assert_eq!(
            multi,
            rdns(&[&[("2.5.4.3", "a"), ("0.9.2342.19200300.100.1.1", "b")]])
        );
        assert_ne!(multi, Subject::parse("CN=a,UID=b").unwrap());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for s in [
            "trader1",
            "=x",
            "XX=1",
            "CN=\"open",
            "CN=a\\",
            "CN=a=b",
            "CN=\"a\"b",
        ] {
            assert!(Subject::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn a_certificate_subject_compares_by_structure() {
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Firm, CN=trader1");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let got = Subject::from_name(parsed.subject()).unwrap();
        assert_eq!(got, Subject::parse("O=\"Firm, CN=trader1\"").unwrap());
        assert_ne!(got, Subject::parse("O=Firm,CN=trader1").unwrap());
        assert_ne!(got, Subject::parse("O=Firm, CN=trader1").unwrap());
    }
}
