//! COLD — `portcullis.toml` → a typed, validated [`Config`].
//!
//! Every key is documented in `portcullis.example.toml` with its unit, default and reason.
//! Unknown keys are errors (a typo must not silently fall back to a default); semantic errors
//! name the key and the bad value.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod audit;
mod auth;
mod clock;
mod control;
mod limits;
pub mod risk;
// SIEM export (issue 15).
pub mod siem;
// Intrusion detection and response (issue 15, src/ids).
pub mod ids;

pub use risk::{AccountCfg, Decimal, RiskCfg, SymbolCfg};

pub use auth::{AuthCfg, MasterKeyCfg};

pub use clock::{ClockCfg, OnDivergence};

pub use control::ControlCfg;
// Audit trail (src/trail).
pub use audit::{AuditCfg, OnFull};

// The ops status port (issue 14).
mod ops;
pub use ops::{OpsCfg, OpsTls};

pub use siem::SiemCfg;

use crate::fix::BeginString;

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: key `{}`: {}", self.file, self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole gateway configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    #[serde(default, rename = "session")]
    pub sessions: Vec<SessionCfg>,
    #[serde(default, rename = "venue")]
    pub venues: Vec<VenueCfg>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteCfg>,
    /// Throttle tiers. Absent: the stock tiers `standard`, `professional`, `institutional`.
    #[serde(default, rename = "tier")]
    pub tiers: Vec<TierCfg>,
    /// Session security (signed logon, key store). Absent: logons are not authenticated, which
    /// is allowed only when every listener is on loopback (development and tests).
    #[serde(default)]
    pub auth: Option<AuthCfg>,
    /// Trading accounts and their pre-trade limits (RISK-1/2). An order for an account not
    /// listed is rejected.
    #[serde(default, rename = "account")]
    pub accounts: Vec<AccountCfg>,
    /// Tradable symbols (tick size, restricted flag, reference price).
    #[serde(default, rename = "symbol")]
    pub symbols: Vec<SymbolCfg>,
    #[serde(default)]
    pub risk: RiskCfg,
    /// `[clock]`: calibration, allowed divergence from UTC, action on breach.
    #[serde(default)]
    pub clock: ClockCfg,
    /// `[control]`: who may use the control socket, per-client bounds.
    #[serde(default)]
    pub control: ControlCfg,
    /// `[ops]`: the ops status port (HTTPS). Absent: no port.
    #[serde(default)]
    pub ops: Option<OpsCfg>,
    /// `[audit]`: the tamper-evident audit trail (rotation, checkpoints, queue, on_full).
    #[serde(default)]
    pub audit: AuditCfg,
    /// `[siem]`: security events to a syslog collector (RFC 5424 over TCP/TLS). Absent: none.
    #[serde(default)]
    pub siem: Option<SiemCfg>,
    /// `[ids]`: intrusion detection rules and response policies (src/ids).
    #[serde(default)]
    pub ids: ids::IdsCfg,
    /// `[fixp]`: the FIXP session layer of SBE sessions.
    #[serde(default)]
    pub fixp: FixpCfg,
}

/// One message class's throttle limits. An absent field is not limited; 0 admits nothing.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsCfg {
    /// Token bucket refill, messages per second.
    pub per_second: Option<u32>,
    /// Token bucket capacity: messages admitted at once after a quiet period.
    pub burst: Option<u32>,
    /// Messages per day (the day starts at the tier's `day_reset_utc`).
    pub per_day: Option<u32>,
    /// Messages in any sliding 1 s window.
    pub window_1s: Option<u32>,
    /// Messages in any sliding 10 s window.
    pub window_10s: Option<u32>,
}

/// `[[tier]]`: named throttle limits that sessions refer to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierCfg {
    pub name: String,
    /// NewOrderSingle and OrderCancelReplaceRequest.
    #[serde(default)]
    pub orders: LimitsCfg,
    /// OrderCancelRequest and OrderMassCancelRequest (keep these generous: they reduce risk).
    #[serde(default)]
    pub cancels: LimitsCfg,
    /// Every other application message (status requests).
    #[serde(default)]
    pub other: LimitsCfg,
    /// When the daily quotas reset, "HH:MM" UTC. Default "00:00".
    #[serde(default)]
    pub day_reset_utc: Option<String>,
}

/// `[gateway]`: the hot loop and its limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// Folder for session stores, the order journal and the event log.
    pub data_dir: PathBuf,
    /// CPU to pin the gateway thread to; none = not pinned.
    pub cpu: Option<usize>,
    /// CPUs for every other thread of the gateway (journal, audit trail, segment helper, ops
    /// port, detection…). Default: every CPU but `cpu`, when that leaves two or more; else (or
    /// without `cpu`) not restricted. With a single CPU left, the cold threads would queue on
    /// it behind whatever else runs there, and the hot thread waits for one of them when a
    /// session store rolls to its next segment (tuning.md "Cold threads").
    pub cold_cpus: Option<Vec<usize>>,
    /// true: poll with a zero timeout and never sleep (owns a core). false: block in epoll with
    /// `poll_timeout_ms` (tests, small boxes).
    pub busy_poll: bool,
    /// Blocking mode: longest sleep in epoll, which also bounds timer resolution.
    pub poll_timeout_ms: u64,
    /// Most client connections at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Orders held in the order table (live + recently finished).
    pub max_orders: usize,
    /// Largest FIX message accepted; larger → Logout and disconnect.
    pub max_message_bytes: usize,
    /// Per-connection receive buffer. Must hold at least two maximum-size messages.
    pub recv_buffer_bytes: usize,
    /// Per-connection send buffer (replies and resends waiting for the socket).
    pub send_buffer_bytes: usize,
    /// A connection that has not completed a Logon within this time is closed (slowloris).
    pub logon_timeout_ms: u64,
    /// Size of each order-journal / message-store segment file.
    pub segment_bytes: usize,
    /// Segment size of each session's message store (sent messages, for resend). Smaller than
    /// the journal's: every session keeps one segment mapped and pre-faulted, and a sequence
    /// reset (ResetSeqNumFlag) creates a fresh one on the gateway thread.
    pub session_segment_bytes: usize,
    /// How often the journal thread msyncs the stores (power-loss durability). 0 = never.
    pub flush_interval_ms: u64,
    /// Hot → cold event ring capacity (events).
    pub event_ring: usize,
    /// TLS certificates expiring within this many days raise a `cert-expiring` event.
    pub tls_expiry_warn_days: u32,
    /// How often a cold thread checks TLS certificate and key files for changes (and reloads
    /// them). 0 = only on SIGHUP or a command.
    pub tls_watch_ms: u64,
    /// Hot → journal order-record ring capacity (records of ~700 bytes, preallocated: 16384 ≈
    /// 11 MiB). The journal thread drains it every 1–20 ms; an order makes 2–4 records.
    pub record_ring: usize,
    /// Busy-poll mode: how many recently active plaintext client connections the hot loop reads
    /// directly (one non-blocking `read` each per duty cycle, no readiness syscall). 0 = off:
    /// every read waits for an epoll event. Ignored when `busy_poll = false`.
    pub spin_read_conns: usize,
    /// Busy-poll mode with a non-empty hot set: the zero-timeout epoll (accepts, cold
    /// connections, venues, writability) runs once every this many duty cycles. 1 = every cycle.
    pub spin_poll_every: u32,
    /// Busy-poll mode: an idle duty cycle runs the side-effect-free part of the order path over a
    /// canned order (decode, validate, encode a report) at most once every this many µs, to keep
    /// its code and data in the core's caches (`engine::warm`). 0 = off. Ignored when
    /// `busy_poll = false`.
    pub warm_every_us: u64,
    /// Most connections from one source IP address that have not logged on yet; one more is
    /// closed at once (counted). Logged-on sessions do not count. Default 16, at most
    /// [`Gateway::unauthenticated_cap`].
    pub max_connections_per_address: Option<usize>,
    /// Most connections (all addresses) that have not logged on yet. One more evicts the
    /// oldest of them, so a flood cannot keep a real client from logging on. Default 256, at
    /// most half of `max_connections`.
    pub max_unauthenticated: Option<usize>,
    /// Receive and send buffer of a connection that has not logged on (a Logon, its answer).
    /// The full `recv_buffer_bytes` / `send_buffer_bytes` come at logon. A larger Logon is
    /// refused.
    pub logon_buffer_bytes: usize,
    /// Before logon: bytes outside any FIX frame (no `8=FIX` start) tolerated; one more closes
    /// the connection. A frame other than a Logon (or garbled) before logon closes it at once.
    pub logon_garbage_bytes: usize,
    /// A connection that has sent no bytes at all within this time is closed (shorter than
    /// `logon_timeout_ms`, which bounds a Logon that is being sent).
    pub silent_timeout_ms: u64,
    /// A logged-on session whose send buffer stays above ¾ full this long (the peer does not
    /// read) is disconnected as a slow consumer (cancel-on-disconnect applies).
    pub slow_consumer_ms: u64,
    /// TLS handshake CPU time the gateway thread may spend per millisecond, µs (a token bucket
    /// with this burst). Handshakes beyond it wait for the next duty cycles.
    pub tls_handshake_budget_us: u64,
    /// A session whose messages keep being refused by its throttle this long (no pause of
    /// `throttle_logout_quiet_ms`) is logged out. 0: never.
    pub throttle_logout_after_ms: u64,
    /// A pause in throttle refusals this long ends the streak.
    pub throttle_logout_quiet_ms: u64,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            data_dir: PathBuf::from("./portcullis-data"),
            cpu: None,
            cold_cpus: None,
            busy_poll: false,
            poll_timeout_ms: 1,
            max_connections: 1024,
            max_orders: 1 << 18,
            max_message_bytes: 8192,
            recv_buffer_bytes: 64 * 1024,
            send_buffer_bytes: 1 << 20,
            logon_timeout_ms: 10_000,
            segment_bytes: 64 << 20,
            session_segment_bytes: 8 << 20,
            flush_interval_ms: 1000,
            event_ring: 1 << 16,
            tls_expiry_warn_days: 30,
            tls_watch_ms: 2000,
            record_ring: 1 << 14,
            spin_read_conns: 8,
            spin_poll_every: 16,
            warm_every_us: 20,
            max_connections_per_address: None,
            max_unauthenticated: None,
            logon_buffer_bytes: 4096,
            logon_garbage_bytes: 256,
            silent_timeout_ms: 3000,
            slow_consumer_ms: 5000,
            tls_handshake_budget_us: 100,
            throttle_logout_after_ms: 10_000,
            throttle_logout_quiet_ms: 1_000,
        }
    }
}

impl Gateway {
    /// Connections that have not logged on yet, at most: `max_unauthenticated`, or 256 but no
    /// more than half the slots (the other half stays for sessions and venues).
    pub fn unauthenticated_cap(&self) -> usize {
        self.max_unauthenticated
            .unwrap_or_else(|| (self.max_connections / 2).clamp(1, 256))
    }

    /// Connections not logged on yet from one source address, at most:
    /// `max_connections_per_address`, or 16 (within [`Gateway::unauthenticated_cap`]).
    pub fn per_address_cap(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or_else(|| self.unauthenticated_cap().min(16))
    }
}

/// `[[listener]]`: a FIX acceptor socket.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: SocketAddr,
    /// TLS on this listener (TLS 1.3; 1.2 only when `tls12 = true`). None: plaintext, which is
    /// allowed only on a loopback address unless `allow_plaintext = true`.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Allow a plaintext listener on a non-loopback address (`portcullis run` warns).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// What clients speak on this listener: `"fix"` (FIX 4.2/4.4 tag=value, the default) or
    /// `"sbe"` (SBE over FIXP, fix-specs/FIXP-SESSION.md).
    #[serde(default)]
    pub protocol: Protocol,
}

/// The wire protocol of a listener or a session.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// FIX 4.2 / 4.4 tag=value.
    #[default]
    Fix,
    /// Simple Binary Encoding over a FIXP session.
    Sbe,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Fix => "fix",
            Protocol::Sbe => "sbe",
        }
    }
}

/// `[fixp]`: the FIXP session layer of every `protocol = "sbe"` session.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FixpCfg {
    /// The shortest and longest keep-alive interval an Establish may ask for (ms).
    pub keep_alive_min_ms: u32,
    pub keep_alive_max_ms: u32,
    /// The most messages one RetransmitRequest may ask for, and per second in all.
    pub retransmit_max_count: u32,
    /// A connection that has not established within this is terminated (ms).
    pub establish_timeout_ms: u32,
}

impl Default for FixpCfg {
    fn default() -> Self {
        FixpCfg {
            keep_alive_min_ms: 1_000,
            keep_alive_max_ms: 60_000,
            retransmit_max_count: 1_000,
            establish_timeout_ms: 5_000,
        }
    }
}

/// `[[listener]] tls = { ... }`: the server certificate, and the client CA for mTLS.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf.
    pub key: PathBuf,
    /// PEM CA certificate(s). Present: every client must present a certificate signed by one
    /// of them (mTLS); absent: no client certificate is asked for.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Also accept TLS 1.2 (ECDHE with AES-GCM only, as FIXS recommends). Default false.
    #[serde(default)]
    pub tls12: bool,
}

/// `[[venue]] tls = { ... }`: TLS to an external FIX venue.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VenueTls {
    /// PEM CA certificate(s) the venue's certificate must chain to.
    pub ca: PathBuf,
    /// Our client certificate (PEM chain) for venues that require mTLS; needs `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the venue's certificate must carry (DNS name or IP address).
    pub server_name: String,
}

/// `[[session]]`: one FIX session a client may log on to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCfg {
    /// `"fix"` (the default) or `"sbe"`: an SBE session is a FIXP session named
    /// `their_comp_id`, reached through a `protocol = "sbe"` listener; it has no
    /// `begin_string` or `our_comp_id`.
    #[serde(default)]
    pub protocol: Protocol,
    /// "FIX.4.4" or "FIX.4.2" (FIX sessions only).
    #[serde(default)]
    pub begin_string: String,
    /// Our CompID: the client's TargetCompID(56) (FIX sessions only).
    #[serde(default)]
    pub our_comp_id: String,
    /// The client's SenderCompID(49); for an SBE session, the FIXP session name its
    /// Negotiate and Establish carry.
    pub their_comp_id: String,
    /// Account used when an order carries no Account(1).
    #[serde(default)]
    pub default_account: Option<String>,
    /// Unauthenticated development logons only (no `[auth]`, or `auth.required = false` and an
    /// unsigned Logon; loopback): accounts the session may name besides `default_account`;
    /// `["*"]` alone: any. Default: none (least privilege: `default_account` only). A session
    /// logged on under a key gets the key's account grant instead.
    #[serde(default)]
    pub dev_accounts: Vec<String>,
    #[serde(default = "default_hb_min")]
    pub heartbeat_min_secs: u32,
    #[serde(default = "default_hb_max")]
    pub heartbeat_max_secs: u32,
    #[serde(default)]
    pub reset_on_logon: bool,
    #[serde(default)]
    pub reset_on_logout: bool,
    #[serde(default)]
    pub reset_on_disconnect: bool,
    #[serde(default = "default_true")]
    pub check_sending_time: bool,
    #[serde(default = "default_window")]
    pub sending_time_window_ms: u64,
    /// Cancel the session's open orders when it disconnects or stops heartbeating.
    #[serde(default)]
    pub cancel_on_disconnect: bool,
    /// Keep sequence numbers and sent messages on disk (resend across restarts).
    #[serde(default = "default_true")]
    pub persist: bool,
    /// Throttle tier (a `[[tier]]` name, or a stock tier). None: the session is not throttled.
    #[serde(default)]
    pub tier: Option<String>,
    /// Per-session replacement of the tier's order limits (the whole class).
    #[serde(default)]
    pub order_limits: Option<LimitsCfg>,
    /// Per-session replacement of the tier's cancel limits.
    #[serde(default)]
    pub cancel_limits: Option<LimitsCfg>,
    /// Per-session replacement of the tier's limits for other messages.
    #[serde(default)]
    pub other_limits: Option<LimitsCfg>,
    /// mTLS binding: the SHA-256 of the client certificate's SubjectPublicKeyInfo, 64 hex
    /// digits. Set: this session's Logon is refused unless it arrives over a TLS connection
    /// whose client certificate has this key. (The API key store will carry this binding
    /// per key; until then it lives with the session.)
    #[serde(default)]
    pub client_cert_spki_sha256: Option<String>,
    /// mTLS binding by name: the client certificate's subject must be exactly this RDN
    /// sequence (attribute types and values, compared structurally, never as display text),
    /// written as RFC 4514-style attributes in certificate order, e.g. "CN=trader1" or
    /// "C=GB, O=Firm, CN=trader1" (spaces after commas optional; `"quoted"` values and `\`
    /// escapes for `,` `+` `=`; `+` joins attributes of one RDN). Weaker than the SPKI binding
    /// (a CA can issue another certificate with the same subject); both may be set.
    #[serde(default)]
    pub client_cert_subject: Option<String>,
    /// Drop copy (15c3-5 (c)(2)(iv)): a non-empty list makes this a read-only session that
    /// receives a copy of every ExecutionReport for these accounts (each a configured
    /// `[[account]]`); its application messages are refused with a BusinessMessageReject.
    #[serde(default)]
    pub drop_copy_accounts: Vec<String>,
    /// Per-key cap on OrderQty(38), checked besides the account's limit (optional).
    #[serde(default)]
    pub key_max_order_qty: Option<Decimal>,
    /// Per-key cap on an order's notional, besides the account's limit (optional).
    #[serde(default)]
    pub key_max_order_notional: Option<Decimal>,
}

impl SessionCfg {
    /// The session's stable name, used for its stores and persisted state:
    /// `FIX.4.4-OUR-THEIR`, or `SBE-THEIR` for an SBE session.
    pub fn store_key(&self) -> String {
        match self.protocol {
            Protocol::Fix => format!(
                "{}-{}-{}",
                self.begin_string, self.our_comp_id, self.their_comp_id
            ),
            Protocol::Sbe => format!("SBE-{}", self.their_comp_id),
        }
    }

    /// How banners and listings name it: `FIX.4.4:THEIR->OUR`, or `SBE:THEIR`.
    pub fn display_name(&self) -> String {
        match self.protocol {
            Protocol::Fix => format!(
                "{}:{}->{}",
                self.begin_string, self.their_comp_id, self.our_comp_id
            ),
            Protocol::Sbe => format!("SBE:{}", self.their_comp_id),
        }
    }
}

fn default_hb_min() -> u32 {
    1
}
fn default_hb_max() -> u32 {
    300
}
fn default_true() -> bool {
    true
}
fn default_window() -> u64 {
    120_000
}

/// The dotted name of the key whose value starts at byte `at` of `text` (`venue[0].behaviour`,
/// `gateway.busy_poll`), as far as a line-by-line reading of tables and keys can tell; `None`
/// when `at` is not on a `key = value` line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if at >= start && at < end {
            let key = t.split('=').next()?.trim();
            if key.is_empty() || key.starts_with('#') || !t.contains('=') {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
        start = end;
    }
    None
}

/// `[[venue]] kind`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VenueKind {
    /// The embedded simulated venue.
    Sim,
    /// A FIX 4.4 initiator session to an external venue.
    Fix,
}

impl std::fmt::Display for VenueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VenueKind::Sim => "sim",
            VenueKind::Fix => "fix",
        })
    }
}

/// `[[venue]] behaviour` of a simulated venue.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SimBehaviourCfg {
    /// Acknowledge, never fill.
    Ack,
    /// Fill at once.
    #[default]
    Fill,
    /// Fill in `partial_slices` parts.
    Partial,
    /// Match against a book of resting orders.
    Book,
}

/// `[[venue]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueCfg {
    /// Name used by routes and shown in reports (e.g. a MIC).
    pub name: String,
    /// "sim" (embedded simulated venue) or "fix" (FIX 4.4 initiator to an external venue).
    pub kind: VenueKind,
    /// sim: "ack", "fill" (the default), "partial" or "book".
    #[serde(default)]
    pub behaviour: Option<SimBehaviourCfg>,
    /// sim "partial": fills per order.
    #[serde(default)]
    pub partial_slices: Option<u32>,
    /// fix: where the venue listens.
    #[serde(default)]
    pub address: Option<SocketAddr>,
    #[serde(default)]
    pub our_comp_id: Option<String>,
    #[serde(default)]
    pub their_comp_id: Option<String>,
    #[serde(default)]
    pub heartbeat_secs: Option<u32>,
    /// fix: wait between reconnect attempts.
    #[serde(default)]
    pub reconnect_ms: Option<u64>,
    /// fix: connect over TLS.
    #[serde(default)]
    pub tls: Option<VenueTls>,
}

/// `[[route]]`: the first route whose conditions all match picks the venue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCfg {
    pub venue: String,
    #[serde(default)]
    pub ex_destination: Option<String>,
    #[serde(default)]
    pub symbol: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let key = e
                .span()
                .and_then(|s| key_at(text, s.start))
                .or_else(|| {
                    e.span()
                        .and_then(|s| text.get(s))
                        .map(|s| s.trim().chars().take(60).collect::<String>())
                })
                .unwrap_or_default();
            ConfigError {
                file: file.to_string(),
                key,
                problem: msg,
            }
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// The embedded default: loopback listeners (FIX on 9878, SBE over FIXP on 9881), two
    /// FIX 4.4, one FIX 4.2 and one SBE client session, the simulated venue filling every
    /// order.
    pub fn embedded_default(data_dir: &Path) -> Config {
        let mut cfg = Config::parse(EMBEDDED_DEFAULT, "<embedded default>")
            .unwrap_or_else(|e| unreachable_config(&e));
        cfg.gateway.data_dir = data_dir.to_path_buf();
        cfg
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, problem: String| ConfigError {
            file: file.to_string(),
            key,
            problem,
        };
        self.clock.validate(file)?;
        self.control.validate(file)?;
        if let Some(o) = &self.ops {
            o.validate(file, self.auth.is_some())?;
        }
        self.audit.validate(file)?;
        if let Some(siem) = &self.siem {
            siem.validate(file)?;
        }
        self.ids.validate(file)?;
        let g = &self.gateway;
        if g.max_message_bytes < 256 {
            return Err(err(
                "gateway.max_message_bytes".into(),
                format!("{} is below the minimum of 256", g.max_message_bytes),
            ));
        }
        if g.recv_buffer_bytes < 2 * g.max_message_bytes {
            return Err(err(
                "gateway.recv_buffer_bytes".into(),
                format!(
                    "{} must be at least twice gateway.max_message_bytes ({})",
                    g.recv_buffer_bytes, g.max_message_bytes
                ),
            ));
        }
        if g.send_buffer_bytes < 4 * g.max_message_bytes {
            return Err(err(
                "gateway.send_buffer_bytes".into(),
                format!(
                    "{} must be at least 4 × gateway.max_message_bytes",
                    g.send_buffer_bytes
                ),
            ));
        }
        if g.max_orders == 0 || g.max_orders > 1 << 26 {
            return Err(err(
                "gateway.max_orders".into(),
                format!("{} is outside 1..=67108864", g.max_orders),
            ));
        }
        if g.max_connections == 0 || g.max_connections > 65_536 {
            return Err(err(
                "gateway.max_connections".into(),
                format!("{} is outside 1..=65536", g.max_connections),
            ));
        }
        if g.spin_read_conns > 256 {
            return Err(err(
                "gateway.spin_read_conns".into(),
                format!(
                    "{} is above 256 (each hot connection costs a read syscall per duty cycle)",
                    g.spin_read_conns
                ),
            ));
        }
        if g.spin_poll_every == 0 || g.spin_poll_every > 4096 {
            return Err(err(
                "gateway.spin_poll_every".into(),
                format!("{} is outside 1..=4096", g.spin_poll_every),
            ));
        }
        if let Some(n) = g.max_unauthenticated {
            if n == 0 || n >= g.max_connections {
                return Err(err(
                    "gateway.max_unauthenticated".into(),
                    format!(
                        "{n} must be at least 1 and below gateway.max_connections ({}): the \
                         other slots are for logged-on sessions and venues",
                        g.max_connections
                    ),
                ));
            }
        }
        if let Some(n) = g.max_connections_per_address {
            if n == 0 || n > g.unauthenticated_cap() {
                return Err(err(
                    "gateway.max_connections_per_address".into(),
                    format!(
                        "{n} must be at least 1 and at most gateway.max_unauthenticated ({})",
                        g.unauthenticated_cap()
                    ),
                ));
            }
        }
        if g.logon_buffer_bytes < 1024 || g.logon_buffer_bytes > g.recv_buffer_bytes {
            return Err(err(
                "gateway.logon_buffer_bytes".into(),
                format!(
                    "{} must be at least 1024 and at most gateway.recv_buffer_bytes ({})",
                    g.logon_buffer_bytes, g.recv_buffer_bytes
                ),
            ));
        }
        if g.logon_garbage_bytes > g.logon_buffer_bytes {
            return Err(err(
                "gateway.logon_garbage_bytes".into(),
                format!(
                    "{} is above gateway.logon_buffer_bytes ({})",
                    g.logon_garbage_bytes, g.logon_buffer_bytes
                ),
            ));
        }
        if g.silent_timeout_ms == 0 {
            return Err(err(
                "gateway.silent_timeout_ms".into(),
                "0 would close every connection at once".into(),
            ));
        }
        if !(100..=600_000).contains(&g.slow_consumer_ms) {
            return Err(err(
                "gateway.slow_consumer_ms".into(),
                format!("{} is outside 100..=600000", g.slow_consumer_ms),
            ));
        }
        if !(10..=1000).contains(&g.tls_handshake_budget_us) {
            return Err(err(
                "gateway.tls_handshake_budget_us".into(),
                format!(
                    "{} is outside 10..=1000 (µs of handshake work per ms)",
                    g.tls_handshake_budget_us
                ),
            ));
        }
        if g.throttle_logout_after_ms > 3_600_000 {
            return Err(err(
                "gateway.throttle_logout_after_ms".into(),
                format!(
                    "{} is above 3600000 (1 h); 0 turns the logout off",
                    g.throttle_logout_after_ms
                ),
            ));
        }
        if g.throttle_logout_after_ms > 0
            && !(1..=g.throttle_logout_after_ms).contains(&g.throttle_logout_quiet_ms)
        {
            return Err(err(
                "gateway.throttle_logout_quiet_ms".into(),
                format!(
                    "{} is outside 1..=throttle_logout_after_ms ({})",
                    g.throttle_logout_quiet_ms, g.throttle_logout_after_ms
                ),
            ));
        }
        if g.session_segment_bytes < 1 << 20 {
            return Err(err(
                "gateway.session_segment_bytes".into(),
                format!("{} is below 1 MiB", g.session_segment_bytes),
            ));
        }
        if g.segment_bytes < 1 << 20 {
            return Err(err(
                "gateway.segment_bytes".into(),
                format!("{} is below 1 MiB", g.segment_bytes),
            ));
        }
        if let Some(cpu) = g.cpu {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cpu >= n {
                return Err(err(
                    "gateway.cpu".into(),
                    format!("CPU {cpu} does not exist (this machine has {n})"),
                ));
            }
        }
        if let Some(cold) = &g.cold_cpus {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cold.is_empty() {
                return Err(err(
                    "gateway.cold_cpus".into(),
                    "is empty: name at least one CPU (or leave it out)".into(),
                ));
            }
            if let Some(cpu) = cold.iter().find(|&&c| c >= n) {
                return Err(err(
                    "gateway.cold_cpus".into(),
                    format!("CPU {cpu} does not exist (this machine has {n})"),
                ));
            }
        }
        if self.listeners.is_empty() {
            return Err(err(
                "listener".into(),
                "at least one [[listener]] is required".into(),
            ));
        }
        let f = &self.fixp;
        for (k, bad, why) in [
            (
                "keep_alive_min_ms",
                f.keep_alive_min_ms == 0 || f.keep_alive_min_ms > f.keep_alive_max_ms,
                "must be at least 1 and at most fixp.keep_alive_max_ms",
            ),
            (
                "retransmit_max_count",
                f.retransmit_max_count == 0,
                "must be at least 1",
            ),
            (
                "establish_timeout_ms",
                f.establish_timeout_ms == 0,
                "must be at least 1",
            ),
        ] {
            if bad {
                return Err(err(format!("fixp.{k}"), why.to_string()));
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.tls.is_none() && !l.allow_plaintext && !l.address.ip().is_loopback() {
                return Err(err(
                    format!("listener[{i}].tls"),
                    format!(
                        "{} is not a loopback address: configure tls, or set \
                         allow_plaintext = true to accept FIX in clear text",
                        l.address
                    ),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.sessions.iter().enumerate() {
            let key = |k: &str| format!("session[{i}].{k}");
            let names: &[(&str, &String)] = match s.protocol {
                Protocol::Fix => {
                    if BeginString::parse(s.begin_string.as_bytes()).is_none() {
                        return Err(err(
                            key("begin_string"),
                            format!("{:?} is not FIX.4.2 or FIX.4.4", s.begin_string),
                        ));
                    }
                    &[
                        ("our_comp_id", &s.our_comp_id),
                        ("their_comp_id", &s.their_comp_id),
                    ]
                }
                Protocol::Sbe => {
                    for (k, v) in [
                        ("begin_string", &s.begin_string),
                        ("our_comp_id", &s.our_comp_id),
                    ] {
                        if !v.is_empty() {
                            return Err(err(
                                key(k),
                                "not used by a protocol = \"sbe\" session (its name is \
                                 their_comp_id)"
                                    .to_string(),
                            ));
                        }
                    }
                    if !s.drop_copy_accounts.is_empty() {
                        return Err(err(
                            key("drop_copy_accounts"),
                            "a drop copy is a FIX session; protocol = \"sbe\" sessions trade"
                                .to_string(),
                        ));
                    }
                    if !self.listeners.iter().any(|l| l.protocol == Protocol::Sbe) {
                        return Err(err(
                            key("protocol"),
                            "an SBE session needs a [[listener]] with protocol = \"sbe\""
                                .to_string(),
                        ));
                    }
                    &[("their_comp_id", &s.their_comp_id)]
                }
            };
            for &(k, v) in names {
                if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(err(
                        key(k),
                        format!("{v:?} must be 1–32 printable ASCII characters"),
                    ));
                }
            }
            if s.heartbeat_min_secs == 0 || s.heartbeat_min_secs > s.heartbeat_max_secs {
                return Err(err(
                    key("heartbeat_min_secs"),
                    format!(
                        "{} must be ≥ 1 and ≤ heartbeat_max_secs ({})",
                        s.heartbeat_min_secs, s.heartbeat_max_secs
                    ),
                ));
            }
            if !seen.insert(s.store_key()) {
                return Err(err(
                    key("their_comp_id"),
                    format!("session {} is configured twice", s.display_name()),
                ));
            }
            if let Some(h) = &s.client_cert_spki_sha256 {
                if parse_sha256_hex(h).is_none() {
                    return Err(err(
                        key("client_cert_spki_sha256"),
                        format!("{h:?} is not 64 hexadecimal digits"),
                    ));
                }
            }
            if let Some(subj) = &s.client_cert_subject {
                if let Err(e) = crate::net::tls::Subject::parse(subj) {
                    return Err(err(
                        key("client_cert_subject"),
                        format!("{e}; expected a subject like \"CN=trader1,O=Firm\""),
                    ));
                }
            }
            if let Some(a) = &s.default_account {
                if a.is_empty() || a.len() > 24 {
                    return Err(err(
                        key("default_account"),
                        format!("{a:?} must be 1–24 characters"),
                    ));
                }
            }
            if s.dev_accounts.len() >= crate::auth::keys::MAX_GRANTS {
                return Err(err(
                    key("dev_accounts"),
                    format!(
                        "at most {} accounts (or [\"*\"])",
                        crate::auth::keys::MAX_GRANTS - 1
                    ),
                ));
            }
            for a in &s.dev_accounts {
                if a == crate::auth::keys::ANY_ACCOUNT {
                    if s.dev_accounts.len() > 1 {
                        return Err(err(
                            key("dev_accounts"),
                            "\"*\" (any account) cannot be combined with named accounts".into(),
                        ));
                    }
                } else if a.is_empty() || a.len() > 24 {
                    return Err(err(
                        key("dev_accounts"),
                        format!("{a:?} must be 1–24 characters"),
                    ));
                }
            }
        }
        if self.venues.is_empty() {
            return Err(err(
                "venue".into(),
                "at least one [[venue]] is required".into(),
            ));
        }
        if self.venues.len() > 64 {
            return Err(err("venue".into(), "at most 64 venues".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, v) in self.venues.iter().enumerate() {
            let key = |k: &str| format!("venue[{i}].{k}");
            if !names.insert(v.name.clone()) {
                return Err(err(
                    key("name"),
                    format!("{:?} is used by two venues", v.name),
                ));
            }
            match v.kind {
                VenueKind::Sim => {
                    if v.partial_slices == Some(0) {
                        return Err(err(key("partial_slices"), "must be at least 1".into()));
                    }
                }
                VenueKind::Fix => {
                    if let Some(t) = &v.tls {
                        if t.cert.is_some() != t.key.is_some() {
                            return Err(err(
                                key("tls.key"),
                                "a client certificate needs both cert and key".into(),
                            ));
                        }
                        if rustls_pki_types::ServerName::try_from(t.server_name.as_str()).is_err() {
                            return Err(err(
                                key("tls.server_name"),
                                format!("{:?} is not a DNS name or IP address", t.server_name),
                            ));
                        }
                    }
                    for (k, present) in [
                        ("address", v.address.is_some()),
                        ("our_comp_id", v.our_comp_id.is_some()),
                        ("their_comp_id", v.their_comp_id.is_some()),
                    ] {
                        if !present {
                            return Err(err(key(k), "is required for kind = \"fix\"".into()));
                        }
                    }
                }
            }
        }
        let mut tier_names = vec![
            "standard".to_string(),
            "professional".to_string(),
            "institutional".to_string(),
        ];
        if !self.tiers.is_empty() {
            tier_names.clear();
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.name.is_empty() || t.name.len() > 24 {
                return Err(err(
                    format!("tier[{i}].name"),
                    format!("{:?} must be 1–24 characters", t.name),
                ));
            }
            if tier_names.contains(&t.name) {
                return Err(err(
                    format!("tier[{i}].name"),
                    format!("{:?} is defined twice", t.name),
                ));
            }
            if let Some(r) = &t.day_reset_utc {
                if parse_hhmm(r).is_none() {
                    return Err(err(
                        format!("tier[{i}].day_reset_utc"),
                        format!("{r:?} is not HH:MM (UTC)"),
                    ));
                }
            }
            tier_names.push(t.name.clone());
        }
        if tier_names.len() > 16 {
            return Err(err("tier".into(), "at most 16 tiers".into()));
        }
        for (i, s) in self.sessions.iter().enumerate() {
            if let Some(t) = &s.tier {
                if !tier_names.contains(t) {
                    return Err(err(
                        format!("session[{i}].tier"),
                        format!("{t:?} is not a tier (known: {})", tier_names.join(", ")),
                    ));
                }
            } else if s.order_limits.is_some()
                || s.cancel_limits.is_some()
                || s.other_limits.is_some()
            {
                return Err(err(
                    format!("session[{i}].tier"),
                    "limits overrides need a tier".into(),
                ));
            }
        }
        if let Err((key, problem)) = self.check_auth_exposure() {
            return Err(err(key, problem));
        }
        if let Some(a) = &self.auth {
            a.provider(Path::new("."))
                .map_err(|e| err("auth.master_key".into(), e))?;
            if a.max_skew_ms == 0 || a.max_skew_ms > 300_000 {
                return Err(err(
                    "auth.max_skew_ms".into(),
                    format!("{} is outside 1..=300000", a.max_skew_ms),
                ));
            }
            if a.poll_ms == 0 || a.poll_ms > 1000 {
                return Err(err(
                    "auth.poll_ms".into(),
                    format!(
                        "{} is outside 1..=1000 (changes must apply within 1 s)",
                        a.poll_ms
                    ),
                ));
            }
            if a.max_keys > 65_536 {
                return Err(err("auth.max_keys".into(), "at most 65536".into()));
            }
            if a.max_key_age_days > 3650 {
                return Err(err(
                    "auth.max_key_age_days".into(),
                    format!(
                        "{} is above 3650 (10 years; 0 means no maximum age)",
                        a.max_key_age_days
                    ),
                ));
            }
            if a.max_key_age_days > 0 && a.key_age_warning_days >= a.max_key_age_days {
                return Err(err(
                    "auth.key_age_warning_days".into(),
                    format!(
                        "{} must be below auth.max_key_age_days ({})",
                        a.key_age_warning_days, a.max_key_age_days
                    ),
                ));
            }
            if a.lockout_failures == 0 {
                return Err(err(
                    "auth.lockout_failures".into(),
                    "0 is not at least 1".into(),
                ));
            }
            if a.lockout_address_failures == 0 {
                return Err(err(
                    "auth.lockout_address_failures".into(),
                    "0 is not at least 1".into(),
                ));
            }
            if !(16..=4_194_304).contains(&a.lockout_table_entries) {
                return Err(err(
                    "auth.lockout_table_entries".into(),
                    format!("{} is outside 16..=4194304", a.lockout_table_entries),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !names.contains(&r.venue) {
                return Err(err(
                    format!("route[{i}].venue"),
                    format!("{:?} is not a configured venue", r.venue),
                ));
            }
        }
        self.risk_tables(file)?;
        for (i, s) in self.sessions.iter().enumerate() {
            for a in &s.drop_copy_accounts {
                if !self.accounts.iter().any(|x| x.name == *a) {
                    return Err(err(
                        format!("session[{i}].drop_copy_accounts"),
                        format!("{a:?} is not a configured [[account]]"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// 64 hex digits → 32 bytes (an SPKI SHA-256 pin).
pub fn parse_sha256_hex(v: &str) -> Option<[u8; 32]> {
    let v = v.trim();
    if v.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(v.as_bytes().chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl Config {
    /// Unauthenticated logons (no `[auth]`, or `auth.required = false`) are allowed only when
    /// every listener is on loopback. `Err((key, problem))`. `portcullis run` checks it again
    /// after `--listen`.
    pub fn check_auth_exposure(&self) -> Result<(), (String, String)> {
        let loopback_only = self.listeners.iter().all(|l| l.address.ip().is_loopback());
        match &self.auth {
            None if !loopback_only => Err((
                "auth".into(),
                "an [auth] section is required when a listener is not on loopback".into(),
            )),
            Some(a) if !a.required && !loopback_only => Err((
                "auth.required".into(),
                "false is allowed only when every listener is on loopback".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// "HH:MM" → seconds after midnight.
pub fn parse_hhmm(v: &str) -> Option<u32> {
    let (h, m) = v.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && v.len() == 5).then_some(h * 3600 + m * 60)
}

#[cold]
fn unreachable_config(e: &ConfigError) -> ! {
    // The embedded default is a constant checked by a unit test; failing here is a build bug.
    panic!("embedded default configuration is invalid: {e}")
}

/// The configuration `portcullis run` uses when no file is given.
pub const EMBEDDED_DEFAULT: &str = r#"
[gateway]
busy_poll = true

[[listener]]
address = "127.0.0.1:9878"

# Binary order entry: SBE over FIXP (fix-specs/FIXP-SESSION.md, fix-specs/sbe/).
[[listener]]
address = "127.0.0.1:9881"
protocol = "sbe"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "PORTCULLIS"
their_comp_id = "CLIENT1"
default_account = "ACC-CLIENT1"
cancel_on_disconnect = true
tier = "professional"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "PORTCULLIS"
their_comp_id = "CLIENT2"
default_account = "ACC-CLIENT2"

[[session]]
begin_string = "FIX.4.2"
our_comp_id = "PORTCULLIS"
their_comp_id = "CLIENT42"
default_account = "ACC-CLIENT42"

# The binary session BIN1 trades CLIENT1's account: one account, one credit limit, whichever
# protocol the order comes in.
[[session]]
protocol = "sbe"
their_comp_id = "BIN1"
default_account = "ACC-CLIENT1"
cancel_on_disconnect = true
tier = "professional"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "fill"

# Development: a full audit queue loses records (counted) rather than stopping trading.
[audit]
on_full = "drop"

# Development key store: created on first start under the data folder, with one key per
# session; the master key is a file next to it (development only: `portcullis run` warns).
[auth]
key_store = "keys.store"
master_key = { provider = "file", path = "master.key" }
required = true
# Pre-trade risk (demo limits). Orders for other accounts or symbols are rejected.
[[account]]
name = "ACC-CLIENT1"
max_order_qty = 10000
max_order_notional = 1000000
collar_bps = 1000
reference_max_age_ms = 60000
credit_limit = 10000000
max_long = 100000
max_short = 100000
max_open_orders = 1000
ord_types = ["market", "limit"]
time_in_force = ["day", "gtc", "ioc", "fok"]
duplicate_window_ms = 0
max_msgs = 1000
rate_period_ms = 1000

[[account]]
name = "ACC-CLIENT2"
max_order_qty = 10000
max_order_notional = 1000000
collar_bps = 1000
reference_max_age_ms = 60000
credit_limit = 10000000
max_long = 100000
max_short = 100000
max_open_orders = 1000
ord_types = ["market", "limit"]
time_in_force = ["day", "gtc", "ioc", "fok"]
duplicate_window_ms = 0
max_msgs = 1000
rate_period_ms = 1000

[[account]]
name = "ACC-CLIENT42"
max_order_qty = 10000
max_order_notional = 1000000
collar_bps = 1000
reference_max_age_ms = 60000
credit_limit = 10000000
max_long = 100000
max_short = 100000
max_open_orders = 1000
ord_types = ["market", "limit"]
time_in_force = ["day", "gtc", "ioc", "fok"]
duplicate_window_ms = 0
max_msgs = 1000
rate_period_ms = 1000

[[symbol]]
symbol = "AAPL"
tick_size = "0.01"
reference_price = "10.50"
reference_source = "config"

[[symbol]]
symbol = "MSFT"
tick_size = "0.01"
reference_price = "300"
reference_source = "config"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default(Path::new("/tmp/x"));
        assert_eq!(c.sessions.len(), 4);
        assert_eq!(c.venues[0].kind, VenueKind::Sim);
        assert_eq!(c.sessions[3].protocol, Protocol::Sbe);
        assert_eq!(c.sessions[3].store_key(), "SBE-BIN1");
        assert_eq!(c.listeners[1].protocol, Protocol::Sbe);
    }

    #[test]
    fn sbe_sessions_are_checked_by_key() {
        let base = "[[listener]]\naddress = \"127.0.0.1:9878\"\n\
                    [[venue]]\nname = \"S\"\nkind = \"sim\"\n";
        let sbe_listener = "[[listener]]\naddress = \"127.0.0.1:9881\"\nprotocol = \"sbe\"\n";
        let session = "[[session]]\nprotocol = \"sbe\"\ntheir_comp_id = \"BIN1\"\n";
        let cases = [
            (format!("{base}{session}"), "session[0].protocol"),
            (
                format!("{base}{sbe_listener}{session}begin_string = \"FIX.4.4\"\n"),
                "session[0].begin_string",
            ),
            (
                format!("{base}{sbe_listener}{session}our_comp_id = \"GW\"\n"),
                "session[0].our_comp_id",
            ),
            (
                format!("{base}{sbe_listener}{session}drop_copy_accounts = [\"A\"]\n"),
                "session[0].drop_copy_accounts",
            ),
            (
                format!("{base}{sbe_listener}{session}{session}"),
                "session[1].their_comp_id",
            ),
            (
                format!("{base}{sbe_listener}[[session]]\nprotocol = \"sbe\"\ntheir_comp_id = \"B N\"\n"),
                "session[0].their_comp_id",
            ),
            (
                format!("{base}{sbe_listener}{session}[fixp]\nkeep_alive_min_ms = 0\n"),
                "fixp.keep_alive_min_ms",
            ),
            (
                format!("{base}[[listener]]\naddress = \"127.0.0.1:1\"\nprotocol = \"binary\"\n"),
                "listener",
            ),
        ];
        for (text, key) in cases {
            let e = Config::parse(&text, "t.toml").expect_err(key);
            assert!(
                e.key.starts_with(key),
                "{key}: got {} ({})",
                e.key,
                e.problem
            );
        }
        // A FIX session and an SBE session may share a name: they are different sessions.
        let ok = format!(
            "{base}{sbe_listener}{session}[[session]]\nbegin_string = \"FIX.4.4\"\n\
             our_comp_id = \"GW\"\ntheir_comp_id = \"BIN1\"\n"
        );
        Config::parse(&ok, "t.toml").expect("fix and sbe sessions of one name");
    }

    #[test]
    fn cold_cpus_name_their_key_when_empty_or_absent_from_the_machine() {
        let base =
            "[[listener]]\naddress = \"127.0.0.1:9878\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n";
        for bad in ["cold_cpus = []", "cold_cpus = [0, 4096]"] {
            let e = Config::parse(&format!("[gateway]\n{bad}\n{base}"), "t.toml").unwrap_err();
            assert_eq!(e.key, "gateway.cold_cpus", "{bad}: {}", e.problem);
        }
        let c = Config::parse(&format!("[gateway]\ncold_cpus = [0]\n{base}"), "t.toml").unwrap();
        assert_eq!(c.gateway.cold_cpus, Some(vec![0]));
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../portcullis.example.toml");
        let c = Config::parse(text, "portcullis.example.toml").unwrap();
        assert_eq!(
            c.gateway.max_orders,
            Gateway::default().max_orders,
            "example shows the defaults"
        );
        assert_eq!(c.gateway.segment_bytes, Gateway::default().segment_bytes);
    }

    #[test]
    fn connection_hygiene_keys_are_validated_by_name() {
        let base =
            "[[listener]]\naddress = \"127.0.0.1:9878\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n";
        for (gw, key) in [
            (
                "max_connections = 64\nmax_unauthenticated = 64",
                "gateway.max_unauthenticated",
            ),
            ("max_unauthenticated = 0", "gateway.max_unauthenticated"),
            (
                "max_unauthenticated = 8\nmax_connections_per_address = 9",
                "gateway.max_connections_per_address",
            ),
            (
                "max_connections_per_address = 0",
                "gateway.max_connections_per_address",
            ),
            ("logon_buffer_bytes = 512", "gateway.logon_buffer_bytes"),
            ("logon_buffer_bytes = 131072", "gateway.logon_buffer_bytes"),
            ("logon_garbage_bytes = 5000", "gateway.logon_garbage_bytes"),
            ("silent_timeout_ms = 0", "gateway.silent_timeout_ms"),
            ("slow_consumer_ms = 10", "gateway.slow_consumer_ms"),
            (
                "tls_handshake_budget_us = 0",
                "gateway.tls_handshake_budget_us",
            ),
            (
                "tls_handshake_budget_us = 2000",
                "gateway.tls_handshake_budget_us",
            ),
            (
                "throttle_logout_after_ms = 4000000",
                "gateway.throttle_logout_after_ms",
            ),
            (
                "throttle_logout_quiet_ms = 0",
                "gateway.throttle_logout_quiet_ms",
            ),
            (
                "throttle_logout_after_ms = 500\nthrottle_logout_quiet_ms = 600",
                "gateway.throttle_logout_quiet_ms",
            ),
        ] {
            let e = Config::parse(&format!("[gateway]\n{gw}\n{base}"), "t.toml").unwrap_err();
            assert_eq!(e.key, key, "{gw}: {e}");
        }
        let c = Config::parse(
            &format!("[gateway]\nmax_connections = 40\n{base}"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            c.gateway.unauthenticated_cap(),
            20,
            "half the slots by default"
        );
        assert_eq!(c.gateway.per_address_cap(), 16);
    }

    #[test]
    fn unauthenticated_logons_only_on_loopback() {
        let open =
            "[[listener]]\naddress = \"0.0.0.0:9878\"\nallow_plaintext = true\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n";
        let e = Config::parse(open, "t.toml").unwrap_err();
        assert_eq!(e.key, "auth");
        let e = Config::parse(
            &format!("{open}[auth]\nkey_store = \"k\"\nrequired = false\nmaster_key = {{ provider = \"env\", var = \"X\" }}\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "auth.required");
        let e = Config::parse(
            &format!("{open}[auth]\nkey_store = \"k\"\nmaster_key = {{ provider = \"hsm\" }}\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "auth.master_key");
        assert!(Config::parse(
            &format!("{open}[auth]\nkey_store = \"k\"\nmaster_key = {{ provider = \"env\", var = \"X\" }}\n"),
            "t.toml",
        )
        .is_ok());
    }

    #[test]
    fn the_key_age_policy_defaults_to_90_and_14_days_and_bad_values_name_their_key() {
        let base = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n[auth]\nkey_store = \"k\"\nmaster_key = { provider = \"env\", var = \"X\" }\n";
        let c = Config::parse(base, "t.toml").unwrap();
        let a = c.auth.unwrap();
        assert_eq!((a.max_key_age_days, a.key_age_warning_days), (90, 14));
        assert_eq!(a.max_key_age_ms(), 90 * 86_400_000);
        let e = Config::parse(&format!("{base}max_key_age_days = 4000\n"), "t.toml").unwrap_err();
        assert_eq!(e.key, "auth.max_key_age_days");
        let e = Config::parse(
            &format!("{base}max_key_age_days = 10\nkey_age_warning_days = 10\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "auth.key_age_warning_days");
        let off = Config::parse(&format!("{base}max_key_age_days = 0\n"), "t.toml").unwrap();
        assert_eq!(off.auth.unwrap().max_key_age_ms(), 0);
    }

    #[test]
    fn bad_lockout_settings_and_subjects_are_errors_naming_the_key() {
        let base = "[[listener]]\naddress = \"127.0.0.1:9878\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n[auth]\nkey_store = \"k\"\nmaster_key = { provider = \"env\", var = \"X\" }\n";
        for (line, key) in [
            ("lockout_table_entries = 0", "auth.lockout_table_entries"),
            (
                "lockout_table_entries = 99999999",
                "auth.lockout_table_entries",
            ),
            (
                "lockout_address_failures = 0",
                "auth.lockout_address_failures",
            ),
            ("lockout_failures = 0", "auth.lockout_failures"),
        ] {
            let e = Config::parse(&format!("{base}{line}\n"), "t.toml").unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        let session = |subject: &str| {
            format!(
                "[[listener]]\naddress = \"127.0.0.1:9878\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n\
                 [[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"C\"\n\
                 client_cert_subject = {subject:?}\n"
            )
        };
        let e = Config::parse(&session("O=\"Firm, CN=x"), "t.toml").unwrap_err();
        assert!(e.key.ends_with("client_cert_subject"), "{e}");
        assert!(Config::parse(&session("O=\"Firm, CN=x\""), "t.toml").is_ok());
    }

    #[test]
    fn a_missing_account_limit_is_an_error_naming_the_key() {
        let base = EMBEDDED_DEFAULT.replacen("credit_limit = 10000000\n", "", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "account[0].credit_limit", "{e}");
        let base = EMBEDDED_DEFAULT.replacen("collar_bps = 1000\n", "", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "account[0].collar_bps", "{e}");
        let base = EMBEDDED_DEFAULT.replacen("max_order_qty = 10000", "max_order_qty = 0", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "account[0].max_order_qty", "{e}");
        let base = EMBEDDED_DEFAULT.replacen("\"ioc\", ", "\"ioc\", \"gtd\", ", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "account[0].time_in_force", "{e}");
        let base = EMBEDDED_DEFAULT.replacen("tick_size = \"0.01\"", "tick_size = 0", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "symbol[0].tick_size", "{e}");
        let base = EMBEDDED_DEFAULT.replacen(
            "default_account = \"ACC-CLIENT2\"",
            "drop_copy_accounts = [\"ACC-NOPE\"]",
            1,
        );
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "session[1].drop_copy_accounts", "{e}");
        for bad in ["[\"*\", \"ACC-X\"]", "[\"\"]"] {
            let base = EMBEDDED_DEFAULT.replacen(
                "default_account = \"ACC-CLIENT2\"",
                &format!("default_account = \"ACC-CLIENT2\"\ndev_accounts = {bad}"),
                1,
            );
            let e = Config::parse(&base, "t.toml").unwrap_err();
            assert_eq!(e.key, "session[1].dev_accounts", "{e}");
        }
        let ok = EMBEDDED_DEFAULT.replacen(
            "default_account = \"ACC-CLIENT2\"",
            "default_account = \"ACC-CLIENT2\"\ndev_accounts = [\"*\"]",
            1,
        );
        assert!(Config::parse(&ok, "t.toml").is_ok());
        let base = EMBEDDED_DEFAULT.replacen("reference_price = \"10.50\"\n", "", 1);
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "symbol[0].reference_price", "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[gateway]\nbusy_pol = true\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("busy_pol"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = EMBEDDED_DEFAULT.replace("behaviour = \"fill\"", "behaviour = \"teleport\"");
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "venue[0].behaviour");
        assert!(
            e.to_string().contains("`ack`, `fill`, `partial`, `book`"),
            "{e}"
        );
        let base = EMBEDDED_DEFAULT.replace("kind = \"sim\"", "kind = \"telepathy\"");
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "venue[0].kind", "{e}");
        let base = EMBEDDED_DEFAULT.replace("FIX.4.2", "FIX.5.0");
        let e = Config::parse(&base, "t.toml").unwrap_err();
        assert_eq!(e.key, "session[2].begin_string");
        let e = Config::parse(
            &format!("{EMBEDDED_DEFAULT}\n[[route]]\nvenue = \"NOPE\"\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "route[0].venue");
    }

    #[test]
    fn clock_section_is_validated_with_its_key() {
        let c = Config::parse(EMBEDDED_DEFAULT, "t.toml").unwrap();
        assert_eq!(c.clock, ClockCfg::default());
        let text = format!("{EMBEDDED_DEFAULT}\n[clock]\nmax_divergence_us = 0\n");
        let e = Config::parse(&text, "t.toml").unwrap_err();
        assert_eq!(e.key, "clock.max_divergence_us");
        let text = format!("{EMBEDDED_DEFAULT}\n[clock]\non_divergence = \"panic\"\n");
        let e = Config::parse(&text, "t.toml").unwrap_err();
        assert!(e.to_string().contains("halt"), "{e}");
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[clock]\nmax_divergence_us = 100\non_divergence = \"halt\"\n"
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(c.clock.on_divergence, OnDivergence::Halt);
    }
}
