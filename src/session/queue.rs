//! HOT — inbound messages that arrived ahead of a sequence gap, held until the gap is filled.
//!
//! A preallocated byte arena plus a preallocated index; nothing grows after construction. When
//! either is full the message is not queued (the caller counts it): it will be detected as a gap
//! again and requested again, which is slower but correct.

/// One queued message: its MsgSeqNum <34> and where its bytes lie in the arena.
#[derive(Clone, Copy, Debug)]
struct Entry {
    seq: u64,
    start: usize,
    len: usize,
}

/// Out-of-order inbound messages keyed by MsgSeqNum.
#[derive(Debug)]
pub(crate) struct InboundQueue {
    arena: Box<[u8]>,
    used: usize,
    /// In arena order (ascending `start`), so compaction is a forward copy.
    entries: Vec<Entry>,
    max_entries: usize,
}

impl InboundQueue {
    pub(crate) fn new(bytes: usize, max_entries: usize) -> InboundQueue {
        InboundQueue {
            arena: vec![0u8; bytes].into_boxed_slice(),
            used: 0,
            entries: Vec::with_capacity(max_entries),
            max_entries,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Queues `msg` under `seq`; `false` when it did not fit. A seq already queued is kept as is
    /// (the first copy wins; `true`).
    pub(crate) fn push(&mut self, seq: u64, msg: &[u8]) -> bool {
        if self.entries.iter().any(|e| e.seq == seq) {
            return true;
        }
        if self.entries.len() >= self.max_entries || msg.len() > self.arena.len() {
            return false;
        }
        if self.arena.len() - self.used < msg.len() {
            self.compact();
            if self.arena.len() - self.used < msg.len() {
                return false;
            }
        }
        let start = self.used;
        let Some(dst) = self.arena.get_mut(start..start + msg.len()) else {
            return false;
        };
        dst.copy_from_slice(msg);
        self.used += msg.len();
        self.entries.push(Entry {
            seq,
            start,
            len: msg.len(),
        });
        true
    }

    /// Drops every message below `seq` (they were gap-filled or reset away).
    pub(crate) fn drop_below(&mut self, seq: u64) {
        self.entries.retain(|e| e.seq >= seq);
        if self.entries.is_empty() {
            self.used = 0;
        }
    }

    /// The bytes queued under `seq`, if any.
    pub(crate) fn get(&self, seq: u64) -> Option<&[u8]> {
        let e = self.entries.iter().find(|e| e.seq == seq)?;
        self.arena.get(e.start..e.start + e.len)
    }

    /// Removes the message queued under `seq`.
    pub(crate) fn remove(&mut self, seq: u64) {
        self.entries.retain(|e| e.seq != seq);
        if self.entries.is_empty() {
            self.used = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.used = 0;
    }

    /// Moves the live messages to the front of the arena.
    #[cold]
    fn compact(&mut self) {
        let mut to = 0;
        for e in self.entries.iter_mut() {
            self.arena.copy_within(e.start..e.start + e.len, to);
            e.start = to;
            to += e.len;
        }
        self.used = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_messages_by_seq_and_compacts_when_full() {
        let mut q = InboundQueue::new(10, 4);
        assert!(q.push(5, b"aaaa"));
        assert!(q.push(6, b"bbbb"));
        assert!(!q.push(7, b"cccc"), "arena full");
        q.remove(5);
        assert!(q.push(7, b"cccc"), "compaction made room");
        assert_eq!(q.get(6), Some(&b"bbbb"[..]));
        assert_eq!(q.get(7), Some(&b"cccc"[..]));
        q.drop_below(7);
        assert_eq!(q.get(6), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn refuses_beyond_entry_limit() {
        let mut q = InboundQueue::new(100, 2);
        assert!(q.push(1, b"a"));
        assert!(q.push(2, b"b"));
        assert!(!q.push(3, b"c"));
        assert!(q.push(2, b"x"), "duplicate seq is not an error");
        assert_eq!(q.get(2), Some(&b"b"[..]));
    }
}
