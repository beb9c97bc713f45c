//! BOUNDARY — counters written by the gateway thread, read by cold threads (ops, reports).
//!
//! Each counter has a stable numeric id (its position in [`Counter`]); ids are never reused.
//! Writes are relaxed atomic adds on a cache-line-padded array: no locks, no allocation.
//! Latency histograms ([`latency`]) are handed over whole through lock-free queues.

pub mod latency;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counter ids. Append only; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    ConnectionsAccepted = 0,
    ConnectionsRefused = 1,
    ConnectionsClosed = 2,
    MessagesIn = 3,
    /// Flushes that wrote bytes to a socket (one may carry many messages).
    SocketWrites = 4,
    GarbledMessages = 5,
    OversizedMessages = 6,
    LogonsAccepted = 7,
    LogonsRefused = 8,
    OrdersReceived = 9,
    OrdersAccepted = 10,
    OrdersRejected = 11,
    CancelsReceived = 12,
    ReplacesReceived = 13,
    Fills = 14,
    CancelRejects = 15,
    BusinessRejects = 16,
    VenueDownRejects = 17,
    OrderTableFull = 18,
    EventRingFull = 19,
    OutBufferFull = 20,
    DutyCycles = 21,
    MaxDutyCycleNs = 22,
    CancelOnDisconnect = 23,
    MassCancels = 24,
    JournalErrors = 25,
    LogonTimeouts = 26,
    VenueConnects = 27,
    VenueDisconnects = 28,
    BusinessRejectsReceived = 29,
    ThrottleRejects = 30,
    ThrottleLogouts = 31,
    PollErrors = 32,
    // 48..: TLS (ids kept apart from the block other features append to).
    /// TLS handshakes completed.
    TlsHandshakes = 48,
    /// TLS handshakes (or records) that failed: bad or missing client certificate, protocol
    /// version refused, garbage.
    TlsFailures = 49,
    /// Successful certificate reloads.
    TlsReloads = 50,
    /// Gauge: whole days until the earliest TLS listener certificate expires (0 if expired).
    TlsCertDaysToExpiry = 51,
    /// Logons refused by authentication (also counted in LogonsRefused).
    AuthFailures = 33,
    /// Keys or source addresses locked out after repeated failures.
    AuthLockouts = 34,
    /// Application messages refused for a missing permission (scope, account, symbol).
    PermissionDenied = 35,
    /// Sessions logged out because their key was revoked or expired.
    CredentialLogouts = 36,
    /// Logon lockout-table entries forgotten because the table was full (the least recently
    /// failed first): a steady rise means `auth.lockout_table_entries` is too small for the
    /// sources failing within `auth.lockout_ms`.
    LockoutEvictions = 54,
    /// Logons on an established session refused (Reject then Logout): not a 141=Y reset, or
    /// one that did not verify under the session's key.
    RelogonsRefused = 55,
    // 40..=47: pre-trade risk (ids chosen apart from other branches' additions).
    /// New orders and replaces refused by a pre-trade risk check (kills included).
    RiskRejects = 40,
    /// Open orders sent cancels by a kill switch.
    KillCancels = 41,
    /// Reconciliation mismatches (each one kills the account).
    ReconciliationMismatches = 42,
    /// Control requests (kill, unkill, enable, limits, show) applied.
    ControlRequests = 43,
    /// Order records (REG-1) lost because the record ring was full.
    RecordRingFull = 37,
    /// New orders refused because the clock is out of its divergence limit (CLOCK-2 halt).
    ClockHaltRejects = 38,
    /// Application messages with PossResend(97)=Y whose ClOrdID the session had already
    /// used: not processed again, no second report.
    PossResendDuplicates = 52,
    /// Instructions refused because the key is not granted the account (the message's, or
    /// for a cancel, replace or status request the order's): also in PermissionDenied.
    AccountDenied = 53,
    // 56..=61: connection hygiene (issue 13, "no client can starve another").
    /// Connections closed because their source address already had
    /// `max_connections_per_address` connections not logged on (the address's oldest one is
    /// closed for the newcomer).
    ConnectionsRefusedPerAddress = 56,
    /// Connections not logged on evicted (oldest first) to make room under
    /// `max_unauthenticated` or for lack of a free slot.
    UnauthenticatedEvicted = 57,
    /// Connections closed before logon for garbage: bytes outside a FIX frame beyond
    /// `logon_garbage_bytes`, or a garbled frame. (Silent ones count in `LogonTimeouts`.)
    PreLogonGarbageCloses = 58,
    /// Sessions disconnected as slow consumers (send buffer above ¾ for `slow_consumer_ms`).
    SlowConsumerDisconnects = 59,
    /// Gauge: bytes of receive and send buffers held by client connections now.
    ConnectionBufferBytes = 60,
    /// Duty cycles that left TLS handshakes waiting because `tls_handshake_budget_us` was spent.
    TlsHandshakesDeferred = 61,
    /// Control socket connections refused or closed by the server: a peer uid not in
    /// `control.allowed_uids`, a line over `max_line_bytes`, a deadline missed (idle, line,
    /// answer write), evicted to make room, or refused while every slot was applying a request.
    ControlClosed = 63,
    /// Changed key stores the watcher refused (older generation: rollback; open to group or
    /// others; unreadable, tampered or invalid). The running keys stayed in force.
    KeyStoreRefusals = 62,
    // 72..=79: the ops status port (issue 14).
    /// HTTP requests the ops port answered (any status).
    OpsRequests = 72,
    /// Ops port logins refused (wrong user, password or TOTP code, replayed code) and requests
    /// with a refused token.
    OpsAuthFailures = 73,
    /// Ops port requests answered 429 (per-address, per-user or login rate limit).
    OpsRateLimited = 74,
    /// Ops port lockouts started (a user at an address, or an address, after failed logins).
    OpsLoginLockouts = 75,
    /// Ops port connections closed before a request: TLS handshake failed or not finished
    /// within `ops.request_timeout_ms` (scanners, plain HTTP to the HTTPS port).
    OpsTlsFailures = 76,
    /// Order answers not timed for the latency histogram because more than
    /// `monitor::latency::PENDING` first answers were encoded in one duty cycle.
    LatencySamplesLost = 77,
    // 64..=67: the audit trail (src/trail).
    /// Records written to the audit trail.
    AuditRecords = 64,
    /// Records lost or refused because the trail's queue was full (see `audit.on_full`).
    AuditRingFull = 65,
    /// Audit trail writes that failed (the file is abandoned; the next record starts a new one).
    AuditWriteErrors = 66,
    /// Signed audit trail checkpoints written.
    AuditCheckpoints = 67,
    // 68..=71: SIEM export (issue 15, src/siem).
    /// Syslog messages written to the SIEM collector (replays from the spool included).
    SiemSent = 68,
    /// Events not exported: the spool was full (`siem.spool_max_bytes`) or the exporter's
    /// queue was (`siem.queue_capacity`). Announced to the collector as `siem-dropped`.
    SiemDropped = 69,
    /// Gauge: bytes in the SIEM spool waiting for the collector.
    SiemSpooledBytes = 70,
    /// Times the SIEM link was re-established after it had been down.
    SiemReconnects = 71,
    /// New orders and replaces refused because the audit trail could not keep up
    /// (`audit.on_full = "fail_closed"`).
    AuditHaltRejects = 80,
    // 81..=84: intrusion detection and response (issue 15, src/ids).
    /// Alerts raised by the intrusion detection rules.
    IdsAlerts = 81,
    /// Automatic response actions taken (block, revoke, kill), successful or not.
    IdsActions = 82,
    /// Gauge: source addresses blocked right now (`portcullis ctl unblock` lifts one).
    AddressBlocks = 83,
    /// Client connections closed at accept because their source address is blocked.
    BlockedConnections = 84,
    // 85..=89: SBE order entry over FIXP (issue 16, src/engine/binary.rs).
    /// FIXP sessions established (Establish accepted).
    FixpEstablished = 85,
    /// NegotiationReject and EstablishmentReject sent.
    FixpRejects = 86,
    /// Terminate sent by the gateway for a session error (not an orderly end).
    FixpTerminates = 87,
    /// FIXP session state or message store writes that failed.
    FixpStoreErrors = 88,
    /// SBE frames the codec refused (bad header, length, template, schema, version).
    SbeMalformed = 89,
    /// Messages on connections not logged on yet that were not recorded in the audit trail:
    /// over `audit.prelogon_messages_per_second` (a flood of logons cannot crowd out the
    /// sessions' messages).
    AuditPrelogonUnrecorded = 90,
}

/// How a counter reads in a Prometheus exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows.
    Total,
    /// A level that goes up and down (or a maximum).
    Gauge,
}

impl Counter {
    /// Every counter, for exporters (the ops port's `/metrics`). Append new ones here too.
    pub const ALL: &'static [Counter] = &[
        Counter::ConnectionsAccepted,
        Counter::ConnectionsRefused,
        Counter::ConnectionsClosed,
        Counter::MessagesIn,
        Counter::SocketWrites,
        Counter::GarbledMessages,
        Counter::OversizedMessages,
        Counter::LogonsAccepted,
        Counter::LogonsRefused,
        Counter::OrdersReceived,
        Counter::OrdersAccepted,
        Counter::OrdersRejected,
        Counter::CancelsReceived,
        Counter::ReplacesReceived,
        Counter::Fills,
        Counter::CancelRejects,
        Counter::BusinessRejects,
        Counter::VenueDownRejects,
        Counter::OrderTableFull,
        Counter::EventRingFull,
        Counter::OutBufferFull,
        Counter::DutyCycles,
        Counter::MaxDutyCycleNs,
        Counter::CancelOnDisconnect,
        Counter::MassCancels,
        Counter::JournalErrors,
        Counter::LogonTimeouts,
        Counter::VenueConnects,
        Counter::VenueDisconnects,
        Counter::BusinessRejectsReceived,
        Counter::ThrottleRejects,
        Counter::ThrottleLogouts,
        Counter::PollErrors,
        Counter::AuthFailures,
        Counter::AuthLockouts,
        Counter::PermissionDenied,
        Counter::CredentialLogouts,
        Counter::RecordRingFull,
        Counter::ClockHaltRejects,
        Counter::RiskRejects,
        Counter::KillCancels,
        Counter::ReconciliationMismatches,
        Counter::ControlRequests,
        Counter::TlsHandshakes,
        Counter::TlsFailures,
        Counter::TlsReloads,
        Counter::TlsCertDaysToExpiry,
        Counter::PossResendDuplicates,
        Counter::AccountDenied,
        Counter::LockoutEvictions,
        Counter::RelogonsRefused,
        Counter::ConnectionsRefusedPerAddress,
        Counter::UnauthenticatedEvicted,
        Counter::PreLogonGarbageCloses,
        Counter::SlowConsumerDisconnects,
        Counter::ConnectionBufferBytes,
        Counter::TlsHandshakesDeferred,
        Counter::KeyStoreRefusals,
        Counter::ControlClosed,
        Counter::OpsRequests,
        Counter::OpsAuthFailures,
        Counter::OpsRateLimited,
        Counter::OpsLoginLockouts,
        Counter::OpsTlsFailures,
        Counter::LatencySamplesLost,
        Counter::AuditRecords,
        Counter::AuditRingFull,
        Counter::AuditWriteErrors,
        Counter::AuditCheckpoints,
        Counter::SiemSent,
        Counter::SiemDropped,
        Counter::SiemSpooledBytes,
        Counter::SiemReconnects,
        Counter::AuditHaltRejects,
        Counter::IdsAlerts,
        Counter::IdsActions,
        Counter::AddressBlocks,
        Counter::BlockedConnections,
        Counter::FixpEstablished,
        Counter::FixpRejects,
        Counter::FixpTerminates,
        Counter::FixpStoreErrors,
        Counter::SbeMalformed,
        Counter::AuditPrelogonUnrecorded,
    ];

    /// Snake-case name (`orders_received`), stable like the id.
    pub fn name(self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::with_capacity(debug.len() + 8);
        for (i, c) in debug.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    pub fn kind(self) -> Kind {
        match self {
            Counter::MaxDutyCycleNs
            | Counter::TlsCertDaysToExpiry
            | Counter::ConnectionBufferBytes
            | Counter::SiemSpooledBytes
            | Counter::AddressBlocks => Kind::Gauge,
            _ => Kind::Total,
        }
    }

    /// One line of help for exporters.
    pub fn help(self) -> &'static str {
        use Counter as C;
        match self {
            C::ConnectionsAccepted => "Client connections accepted",
            C::ConnectionsRefused => "Client connections refused",
            C::ConnectionsClosed => "Client connections closed",
            C::MessagesIn => "FIX messages received",
            C::SocketWrites => "Flushes that wrote bytes to a socket",
            C::GarbledMessages => "Garbled FIX messages",
            C::OversizedMessages => "FIX messages over gateway.max_message_bytes",
            C::LogonsAccepted => "Logons accepted",
            C::LogonsRefused => "Logons refused",
            C::OrdersReceived => "New orders received",
            C::OrdersAccepted => "New orders accepted",
            C::OrdersRejected => "New orders rejected",
            C::CancelsReceived => "Cancel requests received",
            C::ReplacesReceived => "Cancel/replace requests received",
            C::Fills => "Fills reported",
            C::CancelRejects => "Cancel rejects sent",
            C::BusinessRejects => "Business message rejects sent",
            C::VenueDownRejects => "Orders rejected because the venue was down",
            C::OrderTableFull => "Orders rejected because the order table was full",
            C::EventRingFull => "Events dropped because the event ring was full",
            C::OutBufferFull => "Messages refused because an output buffer was full",
            C::DutyCycles => "Gateway duty cycles",
            C::MaxDutyCycleNs => "Longest working duty cycle, nanoseconds",
            C::CancelOnDisconnect => "Orders cancelled on disconnect",
            C::MassCancels => "Mass cancel requests",
            C::JournalErrors => "Journal write errors",
            C::LogonTimeouts => "Connections closed for no logon in time",
            C::VenueConnects => "Venue connections made",
            C::VenueDisconnects => "Venue disconnections",
            C::BusinessRejectsReceived => "Business message rejects received from venues",
            C::ThrottleRejects => "Messages refused by the throttle",
            C::ThrottleLogouts => "Sessions logged out by the throttle",
            C::PollErrors => "Poller errors",
            C::AuthFailures => "Logons refused by authentication",
            C::AuthLockouts => "Keys or addresses locked out after failed logons",
            C::PermissionDenied => "Messages refused for a missing permission",
            C::CredentialLogouts => "Sessions logged out for a revoked or expired key",
            C::RecordRingFull => "Order records lost because the record ring was full",
            C::ClockHaltRejects => "Orders refused while the clock is out of its limit",
            C::RiskRejects => "Orders and replaces refused by pre-trade risk",
            C::KillCancels => "Open orders cancelled by a kill switch",
            C::ReconciliationMismatches => "Reconciliation mismatches",
            C::ControlRequests => "Control requests applied",
            C::TlsHandshakes => "TLS handshakes completed",
            C::TlsFailures => "TLS handshakes or records that failed",
            C::TlsReloads => "TLS certificate reloads",
            C::TlsCertDaysToExpiry => "Days until the earliest TLS listener certificate expires",
            C::PossResendDuplicates => "PossResend messages already processed",
            C::AccountDenied => "Instructions refused for an account not granted to the key",
            C::LockoutEvictions => "Logon lockout entries forgotten because the table was full",
            C::RelogonsRefused => "Logons on an established session refused",
            C::ConnectionsRefusedPerAddress => "Connections closed by the per-address limit",
            C::UnauthenticatedEvicted => "Connections not logged on evicted to make room",
            C::PreLogonGarbageCloses => "Connections closed for garbage before logon",
            C::SlowConsumerDisconnects => "Sessions disconnected as slow consumers",
            C::ConnectionBufferBytes => "Bytes of buffers held by client connections",
            C::TlsHandshakesDeferred => "Duty cycles that deferred TLS handshakes",
            C::KeyStoreRefusals => "Changed key stores refused by the watcher",
            C::ControlClosed => "Control socket connections refused or closed",
            C::OpsRequests => "HTTP requests answered by the ops port",
            C::OpsAuthFailures => "Ops port logins and tokens refused",
            C::OpsRateLimited => "Ops port requests answered 429",
            C::OpsLoginLockouts => "Ops port login lockouts started",
            C::OpsTlsFailures => "Ops port TLS handshakes failed or timed out",
            C::LatencySamplesLost => "Order answers not timed for the latency histogram",
            C::AuditRecords => "Records written to the audit trail",
            C::AuditRingFull => {
                "Audit records lost or refused because the trail queue or the message ring was full"
            }
            C::AuditWriteErrors => "Audit trail writes that failed",
            C::AuditCheckpoints => "Signed audit trail checkpoints written",
            C::SiemSent => "Syslog messages written to the SIEM collector",
            C::SiemDropped => "Events not exported to the SIEM (spool or queue full)",
            C::SiemSpooledBytes => "Bytes in the SIEM spool waiting for the collector",
            C::SiemReconnects => "SIEM link re-established after being down",
            C::AuditHaltRejects => "Orders and replaces refused while the audit trail fails closed",
            C::IdsAlerts => "Intrusion detection alerts raised",
            C::IdsActions => "Automatic intrusion response actions taken",
            C::AddressBlocks => "Source addresses blocked now",
            C::BlockedConnections => "Connections closed at accept from a blocked address",
            C::FixpEstablished => "FIXP sessions established",
            C::FixpRejects => "FIXP NegotiationReject and EstablishmentReject sent",
            C::FixpTerminates => "FIXP Terminate sent for a session error",
            C::FixpStoreErrors => "FIXP session state or message store writes that failed",
            C::SbeMalformed => "SBE frames the codec refused",
            C::AuditPrelogonUnrecorded => {
                "Messages before logon not recorded in the audit trail (over the per-second budget)"
            }
        }
    }
}

/// Number of counter slots.
pub const COUNTERS: usize = 96;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// The counter array. One per engine; shared with cold threads through an `Arc`.
pub struct Counters {
    slots: [Padded; COUNTERS],
    /// The latency histograms' handoff (the gateway thread's [`latency::Recorder`] → readers).
    pub latency: latency::Exchange,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            slots: std::array::from_fn(|_| Padded::default()),
            latency: latency::Exchange::default(),
        }
    }
}

impl Counters {
    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        if let Some(s) = self.slots.get(c as usize) {
            s.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    #[inline]
    pub fn max(&self, c: Counter, v: u64) {
        if let Some(s) = self.slots.get(c as usize) {
            s.0.fetch_max(v, Ordering::Relaxed);
        }
    }
    /// Sets a gauge.
    #[inline]
    pub fn set(&self, c: Counter, v: u64) {
        if let Some(s) = self.slots.get(c as usize) {
            s.0.store(v, Ordering::Relaxed);
        }
    }
    pub fn get(&self, c: Counter) -> u64 {
        self.slots
            .get(c as usize)
            .map_or(0, |s| s.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_listed_once_with_a_distinct_name() {
        let mut ids: Vec<usize> = Counter::ALL.iter().map(|c| *c as usize).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Counter::ALL.len(), "a counter listed twice");
        assert!(ids.iter().all(|i| *i < COUNTERS));
        let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
        assert_eq!(Counter::OpsLoginLockouts.name(), "ops_login_lockouts");
        assert_eq!(Counter::MaxDutyCycleNs.kind(), Kind::Gauge);
    }
}
