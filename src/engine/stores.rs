//! BOUNDARY — the session store the engine plugs into the session layer: the mmap'd
//! [`SessionStore`] for persistent sessions, [`MemoryStore`] for sessions configured without
//! persistence.

use std::io;

use crate::session::{MemoryStore, MessageStore};
use crate::store::SessionStore;

impl MessageStore for SessionStore {
    fn next_sender_seq(&self) -> u64 {
        SessionStore::next_sender_seq(self)
    }
    fn next_target_seq(&self) -> u64 {
        SessionStore::next_target_seq(self)
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        SessionStore::set_next_sender_seq(self, seq)
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        SessionStore::set_next_target_seq(self, seq)
    }
    fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        SessionStore::store_outbound(self, seq, msg)
    }
    fn outbound(&self, seq: u64) -> Option<&[u8]> {
        SessionStore::outbound(self, seq)
    }
    fn reset(&mut self, now_ns: u64) -> io::Result<()> {
        SessionStore::reset(self, now_ns)
    }
}

/// Either store, chosen per session by `persist`.
pub enum AnyStore {
    Disk(Box<SessionStore>),
    Memory(MemoryStore),
}

impl MessageStore for AnyStore {
    fn next_sender_seq(&self) -> u64 {
        match self {
            AnyStore::Disk(s) => s.next_sender_seq(),
            AnyStore::Memory(s) => s.next_sender_seq(),
        }
    }
    fn next_target_seq(&self) -> u64 {
        match self {
            AnyStore::Disk(s) => s.next_target_seq(),
            AnyStore::Memory(s) => s.next_target_seq(),
        }
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        match self {
            AnyStore::Disk(s) => s.set_next_sender_seq(seq),
            AnyStore::Memory(s) => s.set_next_sender_seq(seq),
        }
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        match self {
            AnyStore::Disk(s) => s.set_next_target_seq(seq),
            AnyStore::Memory(s) => s.set_next_target_seq(seq),
        }
    }
    fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        match self {
            AnyStore::Disk(s) => MessageStore::store_outbound(s.as_mut(), seq, msg),
            AnyStore::Memory(s) => s.store_outbound(seq, msg),
        }
    }
    fn outbound(&self, seq: u64) -> Option<&[u8]> {
        match self {
            AnyStore::Disk(s) => MessageStore::outbound(s.as_ref(), seq),
            AnyStore::Memory(s) => s.outbound(seq),
        }
    }
    fn reset(&mut self, now_ns: u64) -> io::Result<()> {
        match self {
            AnyStore::Disk(s) => MessageStore::reset(s.as_mut(), now_ns),
            AnyStore::Memory(s) => s.reset(now_ns),
        }
    }
}
