//! COLD — the client side of TLS for the tools: a rustls client configuration from command-line
//! files (CA, client certificate and key) with optional SPKI pinning of the server, and a
//! handshake that completes before the FIX session starts.
//!
//! Pinning (DATA-8): `--pin-spki HEX` is the SHA-256 of the server certificate's
//! SubjectPublicKeyInfo. A mismatch ends the handshake with a message naming both values. With a
//! pin and no `--ca`, the pin alone decides trust (the handshake signature is still checked
//! against the pinned key); with both, the chain must verify and the key must match.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// What the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM CA certificate(s) the server's chain must verify against.
    pub ca: Option<PathBuf>,
    /// Our client certificate (mTLS) and its key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// SHA-256 of the server's SubjectPublicKeyInfo, 64 hex digits.
    pub pin_spki: Option<String>,
    /// Name the server certificate must carry; default: the host of the address.
    pub server_name: Option<String>,
}

#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(want) = self.pin {
            let got = portcullis::tls::spki_sha256(end_entity).ok_or_else(|| {
                rustls::Error::General("the server certificate is not X.509".into())
            })?;
            if got != want {
                return Err(rustls::Error::General(format!(
                    "server certificate SPKI SHA-256 {} does not match the pinned {}: refusing \
                     to proceed",
                    portcullis::tls::hex(&got),
                    portcullis::tls::hex(&want)
                )));
            }
        }
        match &self.chain {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientTls {
    /// The rustls configuration (TLS 1.3, and 1.2 for older servers).
    pub fn config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = portcullis::tls::provider();
        let pin = match &self.pin_spki {
            Some(h) => Some(portcullis::config::parse_sha256_hex(h).ok_or_else(|| {
                format!("--pin-spki {h:?}: expected 64 hexadecimal digits (SHA-256)")
            })?),
            None => None,
        };
        let chain = match &self.ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in portcullis::tls::load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
                }
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?,
                )
            }
            None => None,
        };
        if chain.is_none() && pin.is_none() {
            return Err(
                "--tls needs --ca (the server's CA) or --pin-spki (its key), or both".into(),
            );
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                chain,
                pin,
                provider,
            }));
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    portcullis::tls::load_certs(cert)?,
                    portcullis::tls::load_key(key)?,
                )
                .map_err(|e| format!("{}: client certificate: {e}", cert.display()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("--cert and --key go together".into()),
        };
        Ok(Arc::new(config))
    }

    /// The name to verify: `--server-name`, else the host part of `addr` (`host:port`).
    pub fn name_for(&self, addr: &str) -> Result<ServerName<'static>, String> {
        let host = match &self.server_name {
            Some(n) => n.clone(),
            None => addr
                .rsplit_once(':')
                .map_or(addr, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        };
        ServerName::try_from(host.clone())
            .map_err(|_| format!("{host:?} is not a DNS name or IP address (use --server-name)"))
    }
}

/// Runs the handshake on a connected socket (which has a read timeout) within `timeout`.
pub fn handshake(
    stream: &mut TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    timeout: Duration,
) -> Result<ClientConnection, String> {
    let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let deadline = portcullis::clock::monotonic() + timeout;
    while conn.is_handshaking() {
        match conn.complete_io(stream) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        if portcullis::clock::monotonic() > deadline {
            return Err(format!("no handshake within {} ms", timeout.as_millis()));
        }
    }
    Ok(conn)
}

/// One line about an established connection: version, suite, the server key's pin value.
pub fn describe(conn: &ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        v => format!("{v:?}"),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let pin = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(portcullis::tls::spki_sha256)
        .map(|h| portcullis::tls::hex(&h))
        .unwrap_or_default();
    format!("{version} {suite}, server SPKI SHA-256 {pin}")
}
