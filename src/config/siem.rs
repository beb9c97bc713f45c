//! COLD — `[siem]`: export of security events to a SIEM collector as syslog (RFC 5424) over
//! TCP (octet counting, RFC 6587 §3.4.1) or TLS (RFC 5425). Absent: nothing leaves the box.
//!
//! A SIEM link carries security events (refused logons, kills, key-store alarms), so it is
//! encrypted by default: `transport = "tcp"` is accepted for a loopback collector (a local
//! relay), and for any other address only with `allow_plaintext = true`.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// How the exporter reaches the collector.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SiemTransport {
    /// Plain TCP, octet-counted frames (RFC 6587 §3.4.1).
    Tcp,
    /// TLS (RFC 5425), octet-counted frames inside.
    Tls,
}

/// What the MSG part of each syslog message holds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SiemFormat {
    /// One JSON object: time, kind, severity, the event's fields, the event-log line.
    Json,
    /// ArcSight Common Event Format: `CEF:0|Portcullis|Portcullis|version|kind|name|sev|ext`.
    Cef,
}

/// Syslog facility (RFC 5424 §6.2.1), by its conventional name.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility's number (PRI = facility × 8 + severity).
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// Syslog severity (RFC 5424 §6.2.1), most severe first: `Emerg` < `Debug` in code order.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Emerg => "emerg",
            Severity::Alert => "alert",
            Severity::Crit => "crit",
            Severity::Err => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }

    /// At least as severe as `min` (a lower code is more severe).
    pub fn passes(self, min: Severity) -> bool {
        self.code() <= min.code()
    }
}

/// `[siem]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SiemCfg {
    /// The collector, `host:port` (an IP address or a DNS name, resolved at each connect).
    pub address: String,
    /// `"tls"` (default) or `"tcp"` (loopback only unless `allow_plaintext`).
    #[serde(default = "default_transport")]
    pub transport: SiemTransport,
    /// PEM file of the CA(s) the collector's certificate must chain to (required for TLS).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name the collector's certificate must carry. Default: the host part of `address`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Client certificate chain (PEM) for collectors that require mTLS; with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Also offer TLS 1.2 (ECDHE + AES-GCM only) for collectors without TLS 1.3. Default false.
    #[serde(default)]
    pub tls12: bool,
    /// Allow `transport = "tcp"` to a non-loopback collector. Default false.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// `"json"` (default) or `"cef"`.
    #[serde(default = "default_format")]
    pub format: SiemFormat,
    /// Syslog facility. Default `local0`.
    #[serde(default = "default_facility")]
    pub facility: Facility,
    /// Least severe event exported (`emerg` … `debug`). Default `info` (everything we emit).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Most bytes kept on disk (`<data_dir>/siem/spool`) while the collector is unreachable.
    /// Default 64 MiB.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// Events queued between the journal thread and the exporter. Default 8192.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Longest wait between reconnect attempts (the wait doubles from 100 ms), ms. Default
    /// 30000.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// HOSTNAME of the messages. Default: this machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Private enterprise number of the structured-data id `portcullis@N`. Default 32473
    /// (RFC 5612's number for documentation): set your organisation's own.
    #[serde(default = "default_enterprise_number")]
    pub enterprise_number: u32,
}

fn default_transport() -> SiemTransport {
    SiemTransport::Tls
}
fn default_format() -> SiemFormat {
    SiemFormat::Json
}
fn default_facility() -> Facility {
    Facility::Local0
}
fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_spool_max_bytes() -> u64 {
    64 << 20
}
fn default_queue_capacity() -> usize {
    8192
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_enterprise_number() -> u32 {
    32473
}

/// Smallest spool: room for a few hundred events (a message is a few hundred bytes; the
/// exporter refuses single messages above [`MAX_MESSAGE_BYTES`]).
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;
/// Largest message the exporter writes (longer event lines are cut); rsyslog's default
/// `maxMessageSize` is 8 KiB.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

impl SiemCfg {
    /// `address` split into host and port (IPv6 literals in brackets: `[::1]:6514`).
    pub fn host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.address.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().ok()?;
        if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
            return None;
        }
        Some((host, port))
    }

    /// Whether the collector is on this machine: a loopback IP literal or `localhost`.
    /// (A DNS name is not trusted to stay loopback.)
    pub fn is_loopback(&self) -> bool {
        match self.host_port() {
            Some((host, _)) => {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => false,
        }
    }

    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("siem.{key}"),
            problem,
        };
        if self.host_port().is_none() {
            return Err(err(
                "address",
                format!(
                    "{:?} is not host:port (e.g. \"siem.example.com:6514\", \"[::1]:6514\")",
                    self.address
                ),
            ));
        }
        match self.transport {
            SiemTransport::Tcp => {
                if !self.is_loopback() && !self.allow_plaintext {
                    return Err(err(
                        "transport",
                        format!(
                            "\"tcp\" to the non-loopback collector {} would send security events \
                             in clear text: use \"tls\" (with ca_file), or set \
                             siem.allow_plaintext = true",
                            self.address
                        ),
                    ));
                }
                for (key, set) in [
                    ("ca_file", self.ca_file.is_some()),
                    ("server_name", self.server_name.is_some()),
                    ("client_cert", self.client_cert.is_some()),
                    ("client_key", self.client_key.is_some()),
                ] {
                    if set {
                        return Err(err(key, "applies to transport = \"tls\" only".into()));
                    }
                }
            }
            SiemTransport::Tls => {
                if self.ca_file.is_none() {
                    return Err(err(
                        "ca_file",
                        "is required with transport = \"tls\" (the CA the collector's \
                         certificate chains to)"
                            .into(),
                    ));
                }
                match (&self.client_cert, &self.client_key) {
                    (Some(_), None) => {
                        return Err(err("client_key", "is required with client_cert".into()))
                    }
                    (None, Some(_)) => {
                        return Err(err("client_cert", "is required with client_key".into()))
                    }
                    _ => {}
                }
                if let Some(n) = &self.server_name {
                    if rustls_pki_types::ServerName::try_from(n.as_str()).is_err() {
                        return Err(err(
                            "server_name",
                            format!("{n:?} is neither a DNS name nor an IP address"),
                        ));
                    }
                }
            }
        }
        if self.spool_max_bytes < MIN_SPOOL_BYTES || self.spool_max_bytes > 1 << 40 {
            return Err(err(
                "spool_max_bytes",
                format!(
                    "{} is outside {MIN_SPOOL_BYTES}..={}",
                    self.spool_max_bytes,
                    1u64 << 40
                ),
            ));
        }
        if !(16..=1 << 20).contains(&self.queue_capacity) {
            return Err(err(
                "queue_capacity",
                format!("{} is outside 16..=1048576", self.queue_capacity),
            ));
        }
        if !(100..=3_600_000).contains(&self.reconnect_max_ms) {
            return Err(err(
                "reconnect_max_ms",
                format!("{} is outside 100..=3600000", self.reconnect_max_ms),
            ));
        }
        if let Some(h) = &self.hostname {
            // RFC 5424 HOSTNAME: 1*255PRINTUSASCII.
            if h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)) {
                return Err(err(
                    "hostname",
                    format!("{h:?} must be 1-255 printable ASCII characters without spaces"),
                ));
            }
        }
        if self.enterprise_number == 0 {
            return Err(err(
                "enterprise_number",
                "must be a private enterprise number (IANA), not 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SiemCfg, ConfigError> {
        #[derive(Deserialize)]
        struct W {
            siem: SiemCfg,
        }
        let w: W = toml::from_str(text).map_err(|e| ConfigError {
            file: "f.toml".into(),
            key: String::new(),
            problem: e.to_string(),
        })?;
        w.siem.validate("f.toml")?;
        Ok(w.siem)
    }

    fn key(text: &str) -> String {
        parse(text).unwrap_err().key
    }

    #[test]
    fn defaults_are_tls_json_local0() {
        let c =
            parse("[siem]\naddress = \"siem.example.com:6514\"\nca_file = \"ca.pem\"\n").unwrap();
        assert_eq!(c.transport, SiemTransport::Tls);
        assert_eq!(c.format, SiemFormat::Json);
        assert_eq!(c.facility, Facility::Local0);
        assert_eq!(c.min_severity, Severity::Info);
        assert_eq!(c.spool_max_bytes, 64 << 20);
        assert_eq!(c.host_port(), Some(("siem.example.com", 6514)));
        assert!(!c.is_loopback());
    }

    #[test]
    fn plaintext_only_to_loopback_unless_allowed() {
        assert!(parse("[siem]\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"\n").is_ok());
        assert!(parse("[siem]\naddress = \"[::1]:514\"\ntransport = \"tcp\"\n").is_ok());
        assert!(parse("[siem]\naddress = \"localhost:514\"\ntransport = \"tcp\"\n").is_ok());
        assert_eq!(
            key("[siem]\naddress = \"10.1.2.3:514\"\ntransport = \"tcp\"\n"),
            "siem.transport"
        );
        assert!(parse(
            "[siem]\naddress = \"10.1.2.3:514\"\ntransport = \"tcp\"\nallow_plaintext = true\n"
        )
        .is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(key("[siem]\naddress = \"nohost\"\n"), "siem.address");
        assert_eq!(key("[siem]\naddress = \"h:0\"\n"), "siem.address");
        assert_eq!(key("[siem]\naddress = \"h:6514\"\n"), "siem.ca_file");
        let tls = "[siem]\naddress = \"h:6514\"\nca_file = \"ca.pem\"\n";
        assert_eq!(
            key(&format!("{tls}client_cert = \"c.pem\"\n")),
            "siem.client_key"
        );
        assert_eq!(
            key(&format!("{tls}client_key = \"c.key\"\n")),
            "siem.client_cert"
        );
        assert_eq!(
            key(&format!("{tls}server_name = \"not a name\"\n")),
            "siem.server_name"
        );
        assert_eq!(
            key(&format!("{tls}spool_max_bytes = 1000\n")),
            "siem.spool_max_bytes"
        );
        assert_eq!(
            key(&format!("{tls}queue_capacity = 1\n")),
            "siem.queue_capacity"
        );
        assert_eq!(
            key(&format!("{tls}reconnect_max_ms = 1\n")),
            "siem.reconnect_max_ms"
        );
        assert_eq!(key(&format!("{tls}hostname = \"a b\"\n")), "siem.hostname");
        assert_eq!(
            key(&format!("{tls}enterprise_number = 0\n")),
            "siem.enterprise_number"
        );
        assert_eq!(
            key("[siem]\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"\nca_file = \"x\"\n"),
            "siem.ca_file"
        );
        // Unknown enum names and keys are refused by the parser.
        assert!(parse(&format!("{tls}format = \"xml\"\n")).is_err());
        assert!(parse(&format!("{tls}facility = \"local9\"\n")).is_err());
        assert!(parse(&format!("{tls}min_severity = \"loud\"\n")).is_err());
        assert!(parse(&format!("{tls}colour = 1\n")).is_err());
    }

    #[test]
    fn severity_order_and_codes() {
        assert!(Severity::Alert.passes(Severity::Warning));
        assert!(Severity::Warning.passes(Severity::Warning));
        assert!(!Severity::Info.passes(Severity::Warning));
        assert_eq!(Facility::Local0.code() * 8 + Severity::Notice.code(), 133);
        assert_eq!(Facility::Authpriv.code(), 10);
    }
}
