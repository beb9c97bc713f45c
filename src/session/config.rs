//! HOT (read-only after start) — the settings of one FIX session, with defaults that match the
//! mature engines (QuickFIX's `MaxLatency`, `LogonTimeout`, `LogoutTimeout`) so certification
//! scripts written against them behave the same against us.

use crate::fix::{BeginString, TimePrecision};
use crate::model::CompId;

/// Which side opens the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We wait for the client's Logon <A> and answer it.
    Acceptor,
    /// We send the first Logon <A> (venue connections).
    Initiator,
}

/// Settings of one session. Built once at start from the config file; never changed after.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// BeginString <8> this session speaks; a message with another value is refused.
    pub begin_string: BeginString,
    /// SenderCompID <49> we write (the peer's TargetCompID <56>).
    pub our_comp_id: CompId,
    /// SenderCompID <49> the peer writes (our TargetCompID <56>).
    pub their_comp_id: CompId,
    pub role: Role,
    /// Initiator: HeartBtInt <108> we ask for, seconds. Acceptor: ignored (the client's wins).
    pub heartbeat_secs: u32,
    /// Acceptor: smallest HeartBtInt <108> a client may ask for, seconds. Below → Logout.
    pub heartbeat_min_secs: u32,
    /// Acceptor: largest HeartBtInt <108> a client may ask for, seconds. Above → Logout.
    pub heartbeat_max_secs: u32,
    /// Both sequence numbers back to 1 before every Logon (acceptor: on receiving it).
    pub reset_on_logon: bool,
    /// Both sequence numbers back to 1 after a Logout exchange.
    pub reset_on_logout: bool,
    /// Both sequence numbers back to 1 whenever the connection goes away.
    pub reset_on_disconnect: bool,
    /// Refuse messages whose SendingTime <52> is further than `sending_time_window_ms` from
    /// our clock (Reject 373=10, then Logout).
    pub check_sending_time: bool,
    /// Allowed |SendingTime − now|, milliseconds.
    pub sending_time_window_ms: u64,
    /// Initiator: how long to wait for the Logon answer, milliseconds.
    pub logon_timeout_ms: u64,
    /// How long to wait for the Logout answer after we sent Logout, milliseconds.
    pub logout_timeout_ms: u64,
    /// Digits after the seconds in SendingTime <52> / OrigSendingTime <122> we write.
    pub time_precision: TimePrecision,
    /// Check every inbound message against the dictionary (`fix::validate`) before dispatch.
    pub validate: bool,
    /// Bytes reserved for inbound messages that arrived ahead of a gap.
    pub queue_bytes: usize,
    /// Bytes of the scratch buffer used to encode one outbound message; bounds message size.
    pub scratch_bytes: usize,
}

/// Entries (messages) the ahead-of-gap queue may hold, whatever their size.
pub const QUEUE_ENTRIES: usize = 1024;

impl Default for SessionConfig {
    /// A FIX 4.4 acceptor with the QuickFIX defaults. CompIDs are empty: set them.
    fn default() -> Self {
        SessionConfig {
            begin_string: BeginString::Fix44,
            our_comp_id: CompId::EMPTY,
            their_comp_id: CompId::EMPTY,
            role: Role::Acceptor,
            // 30 s: the usual value in rules of engagement; only used when we initiate.
            heartbeat_secs: 30,
            // 1 s: below that heartbeats cost more than the orders; 0 (no heartbeats) is refused
            // because we must detect dead peers to cancel on disconnect.
            heartbeat_min_secs: 1,
            // 300 s: a peer silent for 2.4 × 300 s = 12 min is dead; longer hides outages.
            heartbeat_max_secs: 300,
            reset_on_logon: false,
            reset_on_logout: false,
            reset_on_disconnect: false,
            check_sending_time: true,
            // 120 000 ms = QuickFIX MaxLatency (120 s): tolerates unsynchronised client clocks.
            sending_time_window_ms: 120_000,
            // 10 000 ms = QuickFIX LogonTimeout.
            logon_timeout_ms: 10_000,
            // 2 000 ms = QuickFIX LogoutTimeout: the peer answers a Logout at once or never.
            logout_timeout_ms: 2_000,
            time_precision: TimePrecision::Millis,
            validate: true,
            // 1 MiB = 1024 queued messages × ~1 KiB: enough to bridge a gap of a few thousand
            // small messages; when full, later messages are dropped and requested again.
            queue_bytes: 1 << 20,
            // 16 KiB: the largest message we accept or send (orders are < 1 KiB).
            scratch_bytes: 16 << 10,
        }
    }
}
