//! COLD — the development PKI: a CA, a server certificate for localhost/127.0.0.1 and a client
//! certificate, generated with rcgen into the data folder so the embedded default speaks TLS
//! out of the box. Also used by tests to issue certificates with chosen names and dates.
//!
//! Not for production: anyone with the data folder holds the keys. The CA key is not kept, so
//! new certificates need a new CA (delete `<data>/tls/` and restart).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::config::ListenerTls;

const DAY_SECS: i64 = 86_400;

/// A CA that can issue certificates.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ts(unix: i64) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| format!("date {unix}: {e}"))
}

fn err(e: rcgen::Error) -> String {
    format!("certificate generation: {e}")
}

impl DevCa {
    /// A new self-signed CA (ECDSA P-256), valid from yesterday for ten years.
    pub fn generate(common_name: &str) -> Result<DevCa, String> {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.distinguished_name
            .push(DnType::CommonName, common_name.to_string());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = now_unix();
        p.not_before = ts(now - DAY_SECS)?;
        p.not_after = ts(now + 3650 * DAY_SECS)?;
        let cert = p.self_signed(&key).map_err(err)?;
        Ok(DevCa { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) valid between the two Unix
    /// times: (certificate PEM, private key PEM).
    pub fn issue_server(
        &self,
        names: &[&str],
        not_before: i64,
        not_after: i64,
    ) -> Result<(String, String), String> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names.clone()).map_err(err)?;
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(p, not_before, not_after)
    }

    /// A client certificate with subject CN `common_name`.
    pub fn issue_client(
        &self,
        common_name: &str,
        not_before: i64,
        not_after: i64,
    ) -> Result<(String, String), String> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.distinguished_name
            .push(DnType::CommonName, common_name.to_string());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p, not_before, not_after)
    }

    fn sign(
        &self,
        mut p: CertificateParams,
        not_before: i64,
        not_after: i64,
    ) -> Result<(String, String), String> {
        p.not_before = ts(not_before)?;
        p.not_after = ts(not_after)?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err)?;
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn now_unix() -> i64 {
    (crate::clock::system_utc().0 / 1_000_000_000) as i64
}

/// Writes `NAME.pem` and `NAME.key` (mode 0600) into `dir`; returns them as listener files.
pub fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Result<ListenerTls, String> {
    crate::files::private_dir(dir).map_err(|e| e.to_string())?;
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    write(&c, cert)?;
    write(&k, key)?;
    Ok(ListenerTls {
        cert: c,
        key: k,
        client_ca: None,
        tls12: false,
    })
}

/// Certificates and keys alike are written 0600 through a unique temporary name and renamed
/// into place (a watcher never sees half a file); the certificates are public, but every file
/// in the data folder is private to the gateway's user.
fn write(path: &Path, text: &str) -> Result<(), String> {
    crate::files::write_private(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Files of the development PKI under `<data>/tls/`.
#[derive(Clone, Debug)]
pub struct DevPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl DevPki {
    /// Where the files live under data folder `data`.
    pub fn paths(data: &Path) -> DevPki {
        let dir = data.join("tls");
        DevPki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            dir,
        }
    }

    /// Creates the CA, a server certificate (localhost, 127.0.0.1; 825 days) and a client
    /// certificate (CN `client_cn`; 825 days) unless all files already exist. Returns whether
    /// it created them.
    pub fn ensure(data: &Path, client_cn: &str) -> Result<(DevPki, bool), String> {
        let p = DevPki::paths(data);
        let all = [
            &p.ca,
            &p.server_cert,
            &p.server_key,
            &p.client_cert,
            &p.client_key,
        ];
        if all.iter().all(|f| f.exists()) {
            return Ok((p, false));
        }
        let ca = DevCa::generate("Portcullis development CA")?;
        let now = now_unix();
        let (sc, sk) = ca.issue_server(
            &["localhost", "127.0.0.1"],
            now - DAY_SECS,
            now + 825 * DAY_SECS,
        )?;
        let (cc, ck) = ca.issue_client(client_cn, now - DAY_SECS, now + 825 * DAY_SECS)?;
        crate::files::private_dir(&p.dir).map_err(|e| e.to_string())?;
        write(&p.ca, &ca.cert_pem())?;
        write(&p.server_cert, &sc)?;
        write(&p.server_key, &sk)?;
        write(&p.client_cert, &cc)?;
        write(&p.client_key, &ck)?;
        Ok((p, true))
    }

    /// The listener TLS section for these files (mTLS: clients need a certificate of this CA).
    pub fn listener(&self) -> ListenerTls {
        ListenerTls {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: Some(self.ca.clone()),
            tls12: false,
        }
    }
}

/// Where the embedded default's TLS listener listens unless `--listen-tls` says otherwise.
pub const DEFAULT_TLS_ADDRESS: &str = "127.0.0.1:9879";

/// The embedded default's TLS: creates the development PKI under the data folder (first run)
/// and adds an mTLS listener at `address` whose clients need the development client
/// certificate (CN = the first session's SenderCompID).
pub fn add_dev_listener(
    cfg: &mut crate::config::Config,
    address: std::net::SocketAddr,
) -> Result<(DevPki, bool), String> {
    let cn = cfg
        .sessions
        .first()
        .map_or_else(|| "CLIENT1".to_string(), |s| s.their_comp_id.clone());
    let (pki, created) = DevPki::ensure(&cfg.gateway.data_dir, &cn)?;
    cfg.listeners.push(crate::config::Listener {
        address,
        tls: Some(pki.listener()),
        allow_plaintext: false,
        protocol: crate::config::Protocol::Fix,
    });
    Ok((pki, created))
}
