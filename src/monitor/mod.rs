//! BOUNDARY — counters written by the gateway thread, read by cold threads (ops, reports).
//!
//! Each counter has a stable numeric id (its position in [`Counter`]); ids are never reused.
//! Writes are relaxed atomic adds on a cache-line-padded array: no locks, no allocation.

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
}

/// Number of counter slots.
pub const COUNTERS: usize = 96;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// The counter array. One per engine; shared with cold threads through an `Arc`.
pub struct Counters {
    slots: [Padded; COUNTERS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            slots: std::array::from_fn(|_| Padded::default()),
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
