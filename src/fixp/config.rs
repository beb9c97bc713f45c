//! COLD — a FIXP session's settings (fix-specs/FIXP-SESSION.md; the keys are documented in
//! tuning.md and portcullis.example.toml once the engine serves FIXP).

use super::msg::Name;

/// One FIXP session's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixpConfig {
    /// The session (the client's SenderCompID as configured, bound to its keys' `comp_ids`).
    pub session: Name,
    /// Smallest keep_alive_interval an Establish may ask for, ms. Default 1000: a client that
    /// wants to be told of a dead link within a second may; below that, Sequence traffic and
    /// timer jitter start to cost more than they tell.
    pub keep_alive_min_ms: u32,
    /// Largest keep_alive_interval, ms. Default 60 000 (iLink 3's ceiling): a dead peer holds
    /// the session at most two intervals (2 min) before Terminate.
    pub keep_alive_max_ms: u32,
    /// Most messages one RetransmitRequest may ask for, and most messages retransmitted per
    /// second in all. Default 1000: at ~200 bytes per ExecutionReport, 200 KB per second,
    /// which a socket buffer absorbs without stalling the real-time flow, and which bounds the
    /// gateway thread's time one client can claim by asking again and again; a client
    /// recovers a longer gap in several requests over several seconds.
    pub retransmit_max_count: u32,
    /// A connection that has not established within this many ms of connecting is terminated.
    /// Default 5000: the same budget as the FIX logon timeout; nobody holds a socket
    /// unauthenticated for longer.
    pub establish_timeout_ms: u32,
    /// Bytes of the scratch buffer an outbound application message is encoded into (the
    /// largest message the session sends). Default 1024.
    pub scratch_bytes: usize,
}

impl FixpConfig {
    /// Defaults for `session`.
    pub fn new(session: Name) -> FixpConfig {
        FixpConfig {
            session,
            keep_alive_min_ms: 1_000,
            keep_alive_max_ms: 60_000,
            retransmit_max_count: 1_000,
            establish_timeout_ms: 5_000,
            scratch_bytes: 1_024,
        }
    }

    /// Checks the bounds; the error names the key.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.session.is_empty() || !self.session.as_bytes().iter().all(|b| b.is_ascii_graphic())
        {
            return Err("fixp session: 1 to 32 printable ASCII characters, no spaces");
        }
        if self.keep_alive_min_ms == 0 || self.keep_alive_min_ms > self.keep_alive_max_ms {
            return Err("fixp.keep_alive_min_ms: must be at least 1 and at most keep_alive_max_ms");
        }
        if self.retransmit_max_count == 0 {
            return Err("fixp.retransmit_max_count: must be at least 1");
        }
        if self.establish_timeout_ms == 0 {
            return Err("fixp.establish_timeout_ms: must be at least 1");
        }
        if self.scratch_bytes < 64 {
            return Err("fixp.scratch_bytes: must be at least 64");
        }
        Ok(())
    }
}
