//! BOUNDARY — every FIX and SBE message in and out, from the gateway thread to the audit trail's
//! thread (MON-1, issue 15): a single-producer single-consumer ring of variable-length records
//! in preallocated memory.
//!
//! The ring is an array of `AtomicU64` words: the gateway thread stores a record's words with
//! plain (`Relaxed`) stores — an ordinary `mov` on x86-64 — and publishes them with one
//! `Release` store of its tail; the trail thread reads up to the tail it loaded with `Acquire`
//! and hands the space back with a `Release` store of its head. No lock, no allocation, no
//! syscall, no `unsafe`. A record is [`HEADER_WORDS`] words of metadata and the message's bytes
//! rounded up to whole words; records wrap around the end of the array word by word.
//!
//! Full: the record is refused, counted in [`MessageWriter::lost`] and the caller decides (the
//! engine counts `AuditRingFull` and, under `audit.on_full = "fail_closed"`, lowers the trail's
//! healthy flag so the order desk refuses new orders until the trail has caught up).
//!
//! Must never: block or allocate on the writer's side; let the reader see a record before all
//! its words are stored; hand the writer space the reader has not finished with.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::model::{Nanos, SessionId, VenueId};

/// Words of metadata before a record's bytes.
pub const HEADER_WORDS: usize = 5;

/// Smallest and largest ring the config may ask for.
pub const MIN_BYTES: usize = 4096;
pub const MAX_BYTES: usize = 1 << 30;

const NONE16: u64 = 0xFFFF;
const NONE32: u64 = 0xFFFF_FFFF;
const OUTBOUND: u64 = 1;
const SBE: u64 = 2;
const V4: u64 = 4;

/// What the trail needs to know about a message besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub at: Nanos,
    /// The client session bound to the connection (`None` before its Logon/Negotiate is taken,
    /// and on venue links).
    pub session: Option<SessionId>,
    /// The venue of a venue link.
    pub venue: Option<VenueId>,
    /// Sent by the gateway (else received).
    pub outbound: bool,
    /// SBE frames (SOFH-framed) rather than FIX.
    pub sbe: bool,
    pub peer: SocketAddr,
}

impl Meta {
    /// A session's or a venue link's: not a connection that has not logged on yet.
    pub fn bound(&self) -> bool {
        self.session.is_some() || self.venue.is_some()
    }
}

/// A word on its own cache line (head and tail never share one).
#[repr(align(128))]
struct Padded(AtomicU64);

struct Shared {
    words: Box<[AtomicU64]>,
    /// Words written (published by the writer).
    tail: Padded,
    /// Words consumed (handed back by the reader).
    head: Padded,
    /// Records of sessions and venue links refused because the ring was full, not yet taken
    /// by the reader (what `fail_closed` answers for).
    lost: Padded,
    /// The same for connections not logged on yet (an attacker's flood must not lower the
    /// trail's healthy flag: counted and recorded, nothing more).
    lost_unbound: Padded,
}

/// The gateway thread's end.
pub struct MessageWriter {
    shared: Arc<Shared>,
    mask: u64,
    tail: u64,
    /// The reader's head as last loaded (reloaded only when the ring looks full).
    head: u64,
}

/// The trail thread's end.
pub struct MessageReader {
    shared: Arc<Shared>,
    mask: u64,
    head: u64,
}

/// A ring of at least `bytes` bytes (rounded up to a power of two words, within
/// [`MIN_BYTES`]..=[`MAX_BYTES`]), all of it allocated and written here.
pub fn ring(bytes: usize) -> (MessageWriter, MessageReader) {
    let words = bytes
        .clamp(MIN_BYTES, MAX_BYTES)
        .div_ceil(8)
        .next_power_of_two();
    let shared = Arc::new(Shared {
        words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        tail: Padded(AtomicU64::new(0)),
        head: Padded(AtomicU64::new(0)),
        lost: Padded(AtomicU64::new(0)),
        lost_unbound: Padded(AtomicU64::new(0)),
    });
    let mask = words as u64 - 1;
    (
        MessageWriter {
            shared: shared.clone(),
            mask,
            tail: 0,
            head: 0,
        },
        MessageReader {
            shared,
            mask,
            head: 0,
        },
    )
}

fn header(meta: &Meta, len: usize) -> [u64; HEADER_WORDS] {
    let session = meta.session.map_or(NONE32, |s| u64::from(s.0));
    let venue = meta.venue.map_or(NONE16, |v| u64::from(v.0));
    let (ip, v4) = match meta.peer.ip() {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), V4),
        IpAddr::V6(a) => (a.octets(), 0),
    };
    let flags = (u64::from(meta.outbound) * OUTBOUND) | (u64::from(meta.sbe) * SBE) | v4;
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&ip[..8]);
    hi.copy_from_slice(&ip[8..]);
    [
        len as u64 | (session << 32),
        meta.at.0,
        flags | (u64::from(meta.peer.port()) << 8) | (venue << 24),
        u64::from_le_bytes(lo),
        u64::from_le_bytes(hi),
    ]
}

fn meta_of(h: &[u64; HEADER_WORDS]) -> (Meta, usize) {
    let session = h[0] >> 32;
    let venue = (h[2] >> 24) & NONE16;
    let mut ip = [0u8; 16];
    ip[..8].copy_from_slice(&h[3].to_le_bytes());
    ip[8..].copy_from_slice(&h[4].to_le_bytes());
    let v6 = Ipv6Addr::from(ip);
    let ip = match (h[2] & V4 != 0, v6.to_ipv4_mapped()) {
        (true, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    };
    (
        Meta {
            at: Nanos(h[1]),
            session: (session != NONE32).then_some(SessionId(session as u32)),
            venue: (venue != NONE16).then_some(VenueId(venue as u16)),
            outbound: h[2] & OUTBOUND != 0,
            sbe: h[2] & SBE != 0,
            peer: SocketAddr::new(ip, ((h[2] >> 8) & 0xFFFF) as u16),
        },
        (h[0] & 0xFFFF_FFFF) as usize,
    )
}

/// Up to 8 bytes as a little-endian word (zero-padded).
#[inline(always)]
fn word(c: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(c) {
        Ok(w) => u64::from_le_bytes(w),
        Err(_) => {
            let mut w = [0u8; 8];
            let n = c.len().min(8);
            w[..n].copy_from_slice(&c[..n]);
            u64::from_le_bytes(w)
        }
    }
}

/// Where the first whole message of `bytes` ends, by its length field only (FIX: BodyLength;
/// SBE: the SOFH's message length); `None` when `bytes` does not start with one that fits.
/// Splits a record of several messages (a connection's output of one duty cycle).
pub fn message_end(bytes: &[u8], sbe: bool) -> Option<usize> {
    if sbe {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        return (len >= 4 && len <= bytes.len()).then_some(len);
    }
    // 8=<begin>\x019=<n>\x01, then the body and the 7-byte trailer.
    let after_begin = bytes.iter().position(|b| *b == 1)? + 1;
    let rest = bytes.get(after_begin..)?.strip_prefix(b"9=")?;
    let digits = rest.iter().position(|b| *b == 1)?;
    let body = crate::fix::decode::parse_uint(rest.get(..digits)?)? as usize;
    let end = (after_begin + 2 + digits + 1)
        .checked_add(body)?
        .checked_add(7)?;
    (end <= bytes.len()).then_some(end)
}

impl MessageWriter {
    /// Copies `bytes` (one or more whole messages of one connection) into the ring; `false`
    /// when it has no room (counted in [`MessageWriter::lost`]; nothing is written).
    #[inline]
    pub fn push(&mut self, meta: &Meta, bytes: &[u8]) -> bool {
        let need = (HEADER_WORDS + bytes.len().div_ceil(8)) as u64;
        let size = self.mask + 1;
        let bound = meta.bound();
        // A connection not logged on yet may fill half the ring at most: the other half stays
        // for the sessions whatever strangers send.
        let room = if bound { size } else { size / 2 };
        if need > room || bytes.len() > u32::MAX as usize {
            return self.refuse(bound);
        }
        if self.tail + need - self.head > room {
            self.head = self.shared.head.0.load(Ordering::Acquire);
            if self.tail + need - self.head > room {
                return self.refuse(bound);
            }
        }
        let (words, mask) = (&self.shared.words, self.mask);
        let head = header(meta, bytes.len());
        let start = (self.tail & mask) as usize;
        match words.get(start..start + need as usize) {
            // The usual case: the record does not wrap; one bounds check, a load and a store
            // per word.
            Some(dst) => {
                let (h, body) = dst.split_at(HEADER_WORDS);
                for (d, w) in h.iter().zip(head) {
                    d.store(w, Ordering::Relaxed);
                }
                let mut chunks = bytes.chunks_exact(8);
                let mut body = body.iter();
                // Chunks first: when they run out, no slot of `body` has been taken.
                for (c, d) in (&mut chunks).zip(&mut body) {
                    d.store(word(c), Ordering::Relaxed);
                }
                if let Some(d) = body.next() {
                    d.store(word(chunks.remainder()), Ordering::Relaxed);
                }
            }
            None => {
                let mut at = self.tail;
                let mut put = |w: u64| {
                    if let Some(slot) = words.get((at & mask) as usize) {
                        slot.store(w, Ordering::Relaxed);
                    }
                    at += 1;
                };
                head.into_iter().for_each(&mut put);
                bytes.chunks(8).map(word).for_each(put);
            }
        }
        self.tail += need;
        self.shared.tail.0.store(self.tail, Ordering::Release);
        true
    }

    #[cold]
    fn refuse(&mut self, bound: bool) -> bool {
        if bound {
            // Counted before the caller lowers the trail's healthy flag; the trail raises it
            // and then reads this (both SeqCst), so a refusal that races the raise is seen.
            self.shared.lost.0.fetch_add(1, Ordering::SeqCst);
        } else {
            self.shared.lost_unbound.0.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    /// Records refused since the reader last took the count.
    pub fn lost(&self) -> u64 {
        self.shared.lost.0.load(Ordering::Relaxed)
            + self.shared.lost_unbound.0.load(Ordering::Relaxed)
    }

    /// Writes every word once more (the allocation's pages are then resident and writable:
    /// no page fault on the gateway thread later). Call before the ring is in use.
    pub fn prefault(&mut self) {
        for w in self.shared.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }
}

impl MessageReader {
    /// The next record's metadata, its bytes in `out` (replacing what it held); `None` when
    /// the ring is empty.
    pub fn pop(&mut self, out: &mut Vec<u8>) -> Option<Meta> {
        let tail = self.shared.tail.0.load(Ordering::Acquire);
        if tail.saturating_sub(self.head) < HEADER_WORDS as u64 {
            return None;
        }
        let words = &self.shared.words;
        let word = |i: u64| {
            words
                .get((i & self.mask) as usize)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        };
        let mut h = [0u64; HEADER_WORDS];
        for (k, w) in h.iter_mut().enumerate() {
            *w = word(self.head + k as u64);
        }
        let (meta, len) = meta_of(&h);
        let need = (HEADER_WORDS + len.div_ceil(8)) as u64;
        if tail - self.head < need {
            // Cannot happen with one writer publishing whole records; if it did, the rest is
            // unreadable: skip to the tail rather than read garbage forever.
            self.release(tail);
            return None;
        }
        out.clear();
        out.resize(len, 0);
        let first = self.head + HEADER_WORDS as u64;
        for (k, chunk) in out.chunks_mut(8).enumerate() {
            let b = word(first + k as u64).to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.release(self.head + need);
        Some(meta)
    }

    fn release(&mut self, head: u64) {
        self.head = head;
        self.shared.head.0.store(head, Ordering::Release);
    }

    /// Takes the count of records refused since the last call (sessions', venues' and those
    /// of connections not logged on yet).
    pub fn take_lost(&self) -> u64 {
        self.shared.lost.0.swap(0, Ordering::SeqCst)
            + self.shared.lost_unbound.0.swap(0, Ordering::Relaxed)
    }

    /// Records of sessions and venue links refused and not yet taken by
    /// [`MessageReader::take_lost`] (those of connections not logged on yet do not count).
    pub fn pending_lost(&self) -> u64 {
        self.shared.lost.0.load(Ordering::SeqCst)
    }

    /// How full the ring is, from 0 to 1.
    pub fn fill(&self) -> f64 {
        let tail = self.shared.tail.0.load(Ordering::Acquire);
        (tail.saturating_sub(self.head)) as f64 / (self.mask + 1) as f64
    }

    /// The ring's size in bytes.
    pub fn capacity_bytes(&self) -> usize {
        (self.mask as usize + 1) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(i: u64, outbound: bool) -> Meta {
        Meta {
            at: Nanos(i),
            // Bound (a session or a venue, or both): the whole ring is theirs.
            session: (i % 3 != 0 || i % 5 != 0).then_some(SessionId((i % 7) as u32)),
            venue: (i % 5 == 0).then_some(VenueId(2)),
            outbound,
            sbe: i % 2 == 0,
            peer: if i % 4 == 0 {
                SocketAddr::from(([10, 1, 2, 3], (i % 60_000) as u16))
            } else {
                SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 5))
            },
        }
    }

    #[test]
    fn records_come_out_as_they_went_in_across_the_wrap() {
        let (mut w, mut r) = ring(MIN_BYTES);
        let mut out = Vec::new();
        for i in 0..10_000u64 {
            let bytes: Vec<u8> = (0..(i % 300) as usize)
                .map(|k| (k + i as usize) as u8)
                .collect();
            assert!(w.push(&meta(i, i % 2 == 1), &bytes));
            let m = r.pop(&mut out).expect("a record");
            assert_eq!(m, meta(i, i % 2 == 1));
            assert_eq!(out, bytes);
            assert!(r.pop(&mut out).is_none());
        }
    }

    #[test]
    fn a_full_ring_refuses_counts_and_takes_again_once_read() {
        let (mut w, mut r) = ring(MIN_BYTES);
        let msg = [7u8; 200];
        let mut n = 0;
        while w.push(&meta(n, false), &msg) {
            n += 1;
        }
        // 4096 bytes = 512 words; a record is 5 + 25 words.
        assert_eq!(n, 512 / 30);
        assert_eq!(w.lost(), 1);
        assert!(
            !w.push(&meta(0, false), &[0u8; MIN_BYTES]),
            "larger than the ring"
        );
        assert_eq!(r.take_lost(), 2);
        assert_eq!(r.take_lost(), 0);
        let mut out = Vec::new();
        assert_eq!(r.pop(&mut out).map(|m| m.at), Some(Nanos(0)));
        assert!(w.push(&meta(99, false), &msg), "room again after one read");
        assert!(r.fill() > 0.9);
    }

    #[test]
    fn refusals_before_logon_are_counted_apart() {
        let (mut w, mut r) = ring(MIN_BYTES);
        let unbound = Meta {
            session: None,
            venue: None,
            ..meta(1, false)
        };
        let mut n = 0;
        while w.push(&unbound, &[1u8; 100]) {
            n += 1;
        }
        // 18 words a record: half of 512 words holds 14.
        assert_eq!(n, 14, "strangers get half the ring");
        assert_eq!(
            r.pending_lost(),
            0,
            "a flood before logon is not the sessions' loss"
        );
        let mut m = 0;
        while w.push(&meta(1, false), &[1u8; 100]) {
            m += 1;
        }
        assert_eq!(m, 14, "the other half is the sessions'");
        assert_eq!(r.pending_lost(), 1);
        assert_eq!(r.take_lost(), 2, "both are recorded as lost");
        assert_eq!(r.pending_lost(), 0);
        let mut out = Vec::new();
        assert_eq!(
            r.pop(&mut out),
            Some(unbound),
            "a stranger's record reads back whole"
        );
        assert_eq!(out, [1u8; 100]);
    }

    #[test]
    fn a_reader_on_another_thread_sees_every_record_whole_and_in_order() {
        let (mut w, mut r) = ring(MIN_BYTES);
        let n = 200_000u64;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut next = 0u64;
            while next < n {
                match r.pop(&mut out) {
                    Some(m) => {
                        assert_eq!(m.at, Nanos(next));
                        let len = (next % 61) as usize;
                        assert_eq!(out.len(), len);
                        assert!(out.iter().all(|b| *b == next as u8), "record {next}");
                        next += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
            r.take_lost()
        });
        let mut refused = 0;
        for i in 0..n {
            let bytes = vec![i as u8; (i % 61) as usize];
            while !w.push(&meta(i, false), &bytes) {
                refused += 1;
                std::thread::yield_now();
            }
        }
        // Every refused push was retried and counted once.
        assert_eq!(reader.join().expect("reader"), refused);
    }

    #[test]
    fn message_ends_are_read_from_the_length_fields() {
        let hb = b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01";
        assert_eq!(message_end(hb, false), Some(hb.len()));
        let mut two = hb.to_vec();
        two.extend_from_slice(hb);
        assert_eq!(message_end(&two, false), Some(hb.len()));
        assert_eq!(message_end(&hb[..hb.len() - 1], false), None);
        assert_eq!(message_end(b"8=FIX.4.4\x019=x\x01", false), None);
        assert_eq!(
            message_end(b"8=FIX.4.4\x019=99999999999999999999\x01", false),
            None
        );
        assert_eq!(message_end(b"garbage", false), None);
        let sbe = [0u8, 0, 0, 6, 0xeb, 0x50, 9, 9];
        assert_eq!(message_end(&sbe, true), Some(6));
        assert_eq!(message_end(&sbe[..5], true), None);
        assert_eq!(message_end(&[0, 0, 0, 2], true), None);
    }

    proptest! {
        #[test]
        fn any_sequence_of_pushes_and_pops_keeps_order_and_bytes(
            ops in proptest::collection::vec((any::<bool>(), 0usize..900), 1..300)
        ) {
            let (mut w, mut r) = ring(MIN_BYTES);
            let mut queued = std::collections::VecDeque::new();
            let mut out = Vec::new();
            for (i, (push, len)) in ops.into_iter().enumerate() {
                if push {
                    let bytes: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
                    let m = meta(i as u64, len % 2 == 0);
                    let used: usize = queued
                        .iter()
                        .map(|(_, b): &(Meta, Vec<u8>)| HEADER_WORDS + b.len().div_ceil(8))
                        .sum();
                    let fits = used + HEADER_WORDS + len.div_ceil(8) <= MIN_BYTES / 8;
                    prop_assert_eq!(w.push(&m, &bytes), fits);
                    if fits {
                        queued.push_back((m, bytes));
                    }
                } else {
                    let got = r.pop(&mut out);
                    match queued.pop_front() {
                        Some((m, bytes)) => {
                            prop_assert_eq!(got, Some(m));
                            prop_assert_eq!(&out, &bytes);
                        }
                        None => prop_assert!(got.is_none()),
                    }
                }
            }
        }
    }
}
