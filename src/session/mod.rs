//! HOT — the FIX session layer, sans-IO: logon, sequence numbers, heartbeats and test requests,
//! resend (both ways), sequence reset, session-level reject, logout.
//!
//! Owns one session's state. Runs on the gateway thread; never does I/O, never reads the clock
//! (callers pass `now`), never allocates after construction. Persistence goes through the
//! [`MessageStore`] trait (the engine plugs in the mmap store; tests use [`MemoryStore`]).
//! Replies are written into an [`OutBuf`] the caller flushes to the socket.
//!
//! Files: `config.rs` (settings and defaults), `state.rs` (the state machine), `resend.rs`
//! (serving ResendRequests), `queue.rs` (messages ahead of a gap), `script.rs` + `tests.rs`
//! (a scenario runner in the style of QuickFIX's acceptance `.def` files, and the scenarios).
#![warn(clippy::indexing_slicing, clippy::panic)]

use std::io;

mod config;
mod queue;
mod resend;
mod state;

#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

pub use config::{Role, SessionConfig, QUEUE_ENTRIES};
pub use state::{
    DisconnectReason, Inbound, LogonHeader, SendError, Session, SessionCounters, SessionState,
};

/// Persistence a session needs: sequence numbers and outbound messages, for resend.
pub trait MessageStore {
    fn next_sender_seq(&self) -> u64;
    fn next_target_seq(&self) -> u64;
    fn set_next_sender_seq(&mut self, seq: u64);
    fn set_next_target_seq(&mut self, seq: u64);
    /// Stores an outbound application message under `seq` and sets next sender seq to `seq + 1`.
    fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> io::Result<()>;
    /// A stored outbound message; `None` for seq numbers never stored (admin messages).
    fn outbound(&self, seq: u64) -> Option<&[u8]>;
    /// Both sequence numbers back to 1, stored messages discarded (archived).
    fn reset(&mut self, now_ns: u64) -> io::Result<()>;
}

/// A preallocated outbound byte buffer for one connection. The engine drains it to the socket.
#[derive(Debug)]
pub struct OutBuf {
    buf: Box<[u8]>,
    len: usize,
    /// The first `audited` pending bytes were handed to the audit trail's message ring
    /// ([`OutBuf::unaudited`]).
    audited: usize,
}

impl OutBuf {
    pub fn with_capacity(bytes: usize) -> OutBuf {
        OutBuf {
            buf: vec![0u8; bytes].into_boxed_slice(),
            len: 0,
            audited: 0,
        }
    }
    /// Pending bytes not yet handed to the audit trail: whole messages appended since the last
    /// [`OutBuf::mark_audited`].
    pub fn unaudited(&self) -> &[u8] {
        self.buf.get(self.audited..self.len).unwrap_or_default()
    }
    /// Everything pending has been handed to the audit trail.
    pub fn mark_audited(&mut self) {
        self.audited = self.len;
    }
    /// Bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        // `len <= buf.len()` always holds; `get` keeps the hot path free of panics anyway.
        self.buf.get(..self.len).unwrap_or_default()
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Drops the first `n` bytes (they were written to the socket).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
        self.audited = self.audited.saturating_sub(n);
    }
    pub fn clear(&mut self) {
        self.len = 0;
        self.audited = 0;
    }
    /// Drops everything after the first `len` pending bytes (undoes a partial append).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        self.audited = self.audited.min(self.len);
    }
    /// Lets `write` fill the free space; it returns the range it wrote (which may start after a
    /// gap, as [`crate::fix::Writer::finish`] leaves one). The bytes are moved to close the gap.
    /// Returns the range of the new message within [`OutBuf::pending`], or `None` when it did not
    /// fit (nothing is appended then).
    pub fn append_with<E>(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<core::ops::Range<usize>, E>,
    ) -> Option<core::ops::Range<usize>> {
        let spare = self.buf.get_mut(self.len..)?;
        let r = write(spare).ok()?;
        let n = r.end - r.start;
        let at = self.len;
        self.buf.copy_within(at + r.start..at + r.end, at);
        self.len += n;
        Some(at..at + n)
    }
    /// Appends ready-made bytes; `false` when they do not fit.
    pub fn append(&mut self, bytes: &[u8]) -> bool {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                true
            }
            None => false,
        }
    }
    /// Free bytes left.
    pub fn free(&self) -> usize {
        self.buf.len() - self.len
    }
    /// Size of the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Cold (once, at logon): replaces the buffer with a larger one of `bytes`, keeping what
    /// is pending. A smaller size changes nothing.
    #[cold]
    pub fn grow(&mut self, bytes: usize) {
        if bytes <= self.buf.len() {
            return;
        }
        let mut buf = vec![0u8; bytes].into_boxed_slice();
        if let (Some(dst), Some(src)) = (buf.get_mut(..self.len), self.buf.get(..self.len)) {
            dst.copy_from_slice(src);
        }
        self.buf = buf;
    }
}

/// An in-memory [`MessageStore`] for tests and for sessions configured without persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    next_sender: u64,
    next_target: u64,
    messages: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            next_sender: 1,
            next_target: 1,
            messages: Default::default(),
        }
    }
}

impl MessageStore for MemoryStore {
    fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }
    fn next_target_seq(&self) -> u64 {
        self.next_target
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.next_sender = seq;
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.next_target = seq;
    }
    fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        self.messages.insert(seq, msg.to_vec());
        self.next_sender = seq + 1;
        Ok(())
    }
    fn outbound(&self, seq: u64) -> Option<&[u8]> {
        self.messages.get(&seq).map(Vec::as_slice)
    }
    fn reset(&mut self, _now_ns: u64) -> io::Result<()> {
        *self = MemoryStore::new();
        Ok(())
    }
}
