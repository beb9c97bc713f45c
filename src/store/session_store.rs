//! `SessionStore`: the FIX session state that must survive a crash — next sender/target
//! MsgSeqNum <34>, the session's creation time, and every stored outbound message for resend.
//!
//! # Files (in `dir`, `<key>` = the sanitized session key)
//! - `<key>.session`: 128-byte header, two alternating 64-byte slots (layout below), mapped.
//! - `<key>.out.<segment:06>.log`: an [`AppendLog`] of outbound messages, `user` = MsgSeqNum.
//!
//! # Header slot layout (little-endian; slot 0 at byte 0, slot 1 at byte 64)
//! ```text
//! offset  size  field
//!      0     4  magic             "PCS1"
//!      4     4  crc               CRC-32C over bytes [8, 48) of the slot; written LAST
//!      8     8  generation        +1 per update; the valid slot with the higher one wins
//!     16     8  next_sender_seq
//!     24     8  next_target_seq
//!     32     8  creation_time_ns  session creation (or last reset), ns since the Unix epoch
//!     40     8  reserved          0
//!     48    16  unused
//! ```
//! An update writes the slot the current state is *not* in, so a write torn by a crash leaves
//! the other slot (the previous state) intact, and the torn one fails its CRC.
//!
//! # Recovery
//! The header's seq numbers win, except that `next_sender_seq` is raised to one past the highest
//! stored outbound seq: a crash between the log append and the header update loses nothing.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

use memmap2::MmapMut;

use super::crc::crc32c;
use super::log::{map_file, named, sync_dir, AppendLog, RecordPos, DEFAULT_SEGMENT_BYTES};

/// 1 Mi messages (8 MiB of positions): a full trading day of a busy session without a grow.
pub const DEFAULT_INDEX_CAPACITY: usize = 1 << 20;
/// [`AppendLog`] record kind of an outbound message.
pub const KIND_OUTBOUND: u16 = 1;

const HEADER_FILE_BYTES: usize = 128;
const SLOT_BYTES: usize = 64;
const MAGIC_AT: usize = 0;
const CRC_AT: usize = 4;
const GENERATION_AT: usize = 8;
const SENDER_AT: usize = 16;
const TARGET_AT: usize = 24;
const CREATION_AT: usize = 32;
const RESERVED_AT: usize = 40;
const CRC_END: usize = 48;
const SLOT_MAGIC: [u8; 4] = *b"PCS1";
/// Index slot of a seq that was never stored (admin messages, gaps).
const ABSENT: u64 = u64::MAX;

/// Sizes fixed at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStoreConfig {
    /// Bytes per outbound log segment; see [`AppendLog::open`].
    pub segment_bytes: usize,
    /// Outbound seqs indexed before the index must grow (a counted, allocating cold path).
    pub index_capacity: usize,
}

impl Default for SessionStoreConfig {
    fn default() -> Self {
        SessionStoreConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_capacity: DEFAULT_INDEX_CAPACITY,
        }
    }
}

/// Crash-safe FIX session state; see the module doc.
///
/// # Steady state
/// `store_outbound` and the seq setters write the mappings directly: no allocation, no syscall
/// (unless the log rolls or the index outgrows `index_capacity`, both counted).
#[derive(Debug)]
pub struct SessionStore {
    log: AppendLog,
    header: HeaderFile,
    index: OutboundIndex,
}

impl SessionStore {
    /// Opens with default index capacity. A fresh store gets `creation_time_ns` 0 ("unknown"):
    /// the store does not read the clock; use [`SessionStore::open_with`] to pass `now_ns`.
    pub fn open(dir: &Path, session_key: &str, segment_bytes: usize) -> io::Result<SessionStore> {
        let config = SessionStoreConfig {
            segment_bytes,
            ..SessionStoreConfig::default()
        };
        Self::open_with(dir, session_key, &config, 0)
    }

    /// Opens (or creates, starting at seqs 1/1 and `creation_time_ns = now_ns`) the store of
    /// `session_key` in `dir`, and rebuilds the resend index from the log.
    ///
    /// `session_key` (e.g. `FIX.4.4-GATEWAY-CLIENT1`) becomes a file name with every byte
    /// outside `[A-Za-z0-9._-]` replaced by `_`; keys differing only there share a store.
    ///
    /// # Errors
    /// I/O errors name the file. Refusing to guess seq numbers beats silently resetting them, so
    /// a header with no valid slot (and not all zero) is `InvalidData`, and a missing header
    /// next to a non-empty log is `NotFound`.
    pub fn open_with(
        dir: &Path,
        session_key: &str,
        config: &SessionStoreConfig,
        now_ns: u64,
    ) -> io::Result<SessionStore> {
        let key = sanitize_key(session_key);
        crate::files::private_dir(dir)?;
        let log = AppendLog::open(dir, &format!("{key}.out"), config.segment_bytes)?;
        let header_path = dir.join(format!("{key}.session"));
        if !log.is_empty() && !header_path.exists() {
            // Messages without seq numbers: starting at target 1 would silently reset the session.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: missing, but its outbound log has messages",
                    header_path.display()
                ),
            ));
        }
        let mut header = HeaderFile::open(header_path, now_ns)?;
        let mut index = OutboundIndex::with_capacity(config.index_capacity);
        let mut last_stored_seq = 0;
        for rec in log
            .iter()
            .filter(|r| r.kind == KIND_OUTBOUND && r.user != 0)
        {
            index.insert(rec.user, rec.pos);
            last_stored_seq = last_stored_seq.max(rec.user);
        }
        let floor = last_stored_seq.saturating_add(1);
        if header.state.next_sender_seq < floor {
            header.store(SeqState {
                next_sender_seq: floor,
                ..header.state
            });
        }
        Ok(SessionStore { log, header, index })
    }

    /// Stores outbound message `seq` for resend and makes `next_sender_seq` at least `seq + 1`
    /// (it never moves back here; lower it with [`SessionStore::set_next_sender_seq`]).
    ///
    /// Storing a seq again replaces the earlier copy for [`SessionStore::outbound`].
    ///
    /// # Errors
    /// `InvalidInput` for seq 0 or `u64::MAX`, or a message larger than a log segment; I/O errors
    /// from a segment roll. On error the seq numbers are unchanged.
    pub fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        if seq == 0 || seq == u64::MAX {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let pos = self.log.append(KIND_OUTBOUND, seq, msg)?;
        self.index.insert(seq, pos);
        if self.header.state.next_sender_seq <= seq {
            self.header.store(SeqState {
                next_sender_seq: seq + 1,
                ..self.header.state
            });
        }
        Ok(())
    }

    /// The stored message `seq`, if any.
    pub fn outbound(&self, seq: u64) -> Option<&[u8]> {
        let pos = self.index.position(seq)?;
        let rec = self.log.read(pos)?;
        (rec.kind == KIND_OUTBOUND && rec.user == seq).then_some(rec.payload)
    }

    /// Stored messages with `begin <= seq <= end_inclusive`, ascending; seqs never stored
    /// (admin messages) are absent, so the caller gap-fills them.
    ///
    /// FIX ResendRequest's EndSeqNo <16> = 0 means "to the end": pass `u64::MAX`.
    pub fn outbound_range(
        &self,
        begin: u64,
        end_inclusive: u64,
    ) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let (lo, hi) = self.index.bounds().map_or((1, 0), |(first, last)| {
            (begin.max(first), end_inclusive.min(last))
        });
        (lo..=hi).filter_map(move |seq| self.outbound(seq).map(|msg| (seq, msg)))
    }

    pub fn next_sender_seq(&self) -> u64 {
        self.header.state.next_sender_seq
    }

    pub fn next_target_seq(&self) -> u64 {
        self.header.state.next_target_seq
    }

    /// Session creation (or last reset) time; 0 if created by [`SessionStore::open`].
    pub fn creation_time_ns(&self) -> u64 {
        self.header.state.creation_time_ns
    }

    /// Advances (or, e.g. after SequenceReset, sets) our next MsgSeqNum without storing a
    /// message: admin messages are not stored.
    pub fn set_next_sender_seq(&mut self, seq: u64) {
        self.header.store(SeqState {
            next_sender_seq: seq,
            ..self.header.state
        });
    }

    /// Sets the next MsgSeqNum expected from the counterparty.
    pub fn set_next_target_seq(&mut self, seq: u64) {
        self.header.store(SeqState {
            next_target_seq: seq,
            ..self.header.state
        });
    }

    /// Sequence reset: archives the outbound log, both seqs back to 1, creation time `now_ns`.
    ///
    /// # Crash safety
    /// The log is archived before the header changes: a crash in between reopens with the old
    /// seqs and an empty (or partly archived) log, i.e. "not reset yet"; resend then gap-fills.
    #[cold]
    pub fn reset(&mut self, now_ns: u64) -> io::Result<()> {
        self.log.reset()?;
        self.index.clear();
        self.header.store(SeqState {
            generation: self.header.state.generation,
            next_sender_seq: 1,
            next_target_seq: 1,
            creation_time_ns: now_ns,
        });
        Ok(())
    }

    /// msyncs the log and the header (power-loss durability). Blocks for disk I/O.
    pub fn flush(&self) -> io::Result<()> {
        self.log.flush()?;
        self.header
            .map
            .flush()
            .map_err(|e| named(e, &self.header.path))
    }

    /// Times the resend index outgrew its capacity and reallocated.
    pub fn index_grows(&self) -> u64 {
        self.index.grows
    }

    /// Times the resend index was restarted by a seq below its first entry or a forward jump of
    /// more than `index_capacity`; older messages are then no longer found (resend gap-fills).
    pub fn index_restarts(&self) -> u64 {
        self.index.restarts
    }

    /// Times the outbound log rolled to a new segment since open.
    pub fn segment_rolls(&self) -> u64 {
        self.log.segment_rolls()
    }
}

/// `session_key` as a file name: bytes outside `[A-Za-z0-9._-]` become `_`; empty becomes `_`.
pub fn sanitize_key(session_key: &str) -> String {
    if session_key.is_empty() {
        return "_".to_owned();
    }
    session_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeqState {
    generation: u64,
    next_sender_seq: u64,
    next_target_seq: u64,
    creation_time_ns: u64,
}

#[derive(Debug)]
struct HeaderFile {
    path: PathBuf,
    /// Exactly `HEADER_FILE_BYTES` long (checked at open).
    map: MmapMut,
    /// Mirror of the newest valid slot: reads never touch the mapping.
    state: SeqState,
}

impl HeaderFile {
    #[cold]
    fn open(path: PathBuf, now_ns: u64) -> io::Result<HeaderFile> {
        let fresh = SeqState {
            generation: 1,
            next_sender_seq: 1,
            next_target_seq: 1,
            creation_time_ns: now_ns,
        };
        if !path.exists() {
            // Written whole under a temporary name, then renamed: the real name never holds a
            // half-initialised header.
            let mut image = [0u8; HEADER_FILE_BYTES];
            encode_slot(&mut image[..SLOT_BYTES], &fresh);
            let tmp = path.with_extension("session.tmp");
            let mut f = crate::files::open_private(
                OpenOptions::new().write(true).create(true).truncate(true),
                &tmp,
            )?;
            f.write_all(&image)
                .and_then(|()| f.sync_all())
                .map_err(|e| named(e, &tmp))?;
            fs::rename(&tmp, &path).map_err(|e| named(e, &tmp))?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| named(e, &path))?;
        crate::files::tighten_open(&file, &path)?;
        let file_bytes = file.metadata().map_err(|e| named(e, &path))?.len();
        if file_bytes != HEADER_FILE_BYTES as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {file_bytes} bytes, expected {HEADER_FILE_BYTES}",
                    path.display()
                ),
            ));
        }
        let map = map_file(&file, &path, true)?;
        let newest = map
            .chunks_exact(SLOT_BYTES)
            .filter_map(decode_slot)
            .max_by_key(|s| s.generation);
        let mut header = HeaderFile {
            path,
            map,
            state: fresh,
        };
        match newest {
            Some(state) => header.state = state,
            None if header.map.iter().all(|&b| b == 0) => {
                header.state.generation = 0;
                header.store(fresh);
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: no valid header slot", header.path.display()),
                ))
            }
        }
        Ok(header)
    }

    /// Writes `next` (its generation is ignored) into the slot not holding the current state.
    fn store(&mut self, next: SeqState) {
        let next = SeqState {
            generation: self.state.generation.wrapping_add(1),
            ..next
        };
        let slot_at = (next.generation % 2) as usize * SLOT_BYTES;
        // The mapping is HEADER_FILE_BYTES = 2 slots (checked at open), so this always matches.
        if let Some(slot) = self.map.get_mut(slot_at..slot_at + SLOT_BYTES) {
            encode_slot(slot, &next);
            self.state = next;
        }
    }
}

/// Writes a slot, CRC last (after a fence) so a torn write fails the check.
fn encode_slot(slot: &mut [u8], s: &SeqState) {
    slot[MAGIC_AT..CRC_AT].copy_from_slice(&SLOT_MAGIC);
    slot[GENERATION_AT..SENDER_AT].copy_from_slice(&s.generation.to_le_bytes());
    slot[SENDER_AT..TARGET_AT].copy_from_slice(&s.next_sender_seq.to_le_bytes());
    slot[TARGET_AT..CREATION_AT].copy_from_slice(&s.next_target_seq.to_le_bytes());
    slot[CREATION_AT..RESERVED_AT].copy_from_slice(&s.creation_time_ns.to_le_bytes());
    slot[RESERVED_AT..CRC_END].fill(0);
    let crc = crc32c(&slot[GENERATION_AT..CRC_END]);
    fence(Ordering::Release);
    slot[CRC_AT..GENERATION_AT].copy_from_slice(&crc.to_le_bytes());
}

fn decode_slot(slot: &[u8]) -> Option<SeqState> {
    let word = |at: usize| Some(u64::from_le_bytes(slot.get(at..at + 8)?.try_into().ok()?));
    let crc = u32::from_le_bytes(slot.get(CRC_AT..GENERATION_AT)?.try_into().ok()?);
    if slot.get(MAGIC_AT..CRC_AT)? != SLOT_MAGIC || crc32c(slot.get(GENERATION_AT..CRC_END)?) != crc
    {
        return None;
    }
    Some(SeqState {
        generation: word(GENERATION_AT)?,
        next_sender_seq: word(SENDER_AT)?,
        next_target_seq: word(TARGET_AT)?,
        creation_time_ns: word(CREATION_AT)?,
    })
}

/// seq → log position for resend, a dense table over `[base_seq, base_seq + len)`.
#[derive(Debug)]
struct OutboundIndex {
    /// `RecordPos` bits, or `ABSENT`; capacity reserved up front.
    positions: Vec<u64>,
    /// Seq of `positions[0]`; meaningful only when `positions` is non-empty.
    base_seq: u64,
    /// Largest forward jump absorbed by padding with `ABSENT`; beyond it the index restarts.
    max_jump: usize,
    grows: u64,
    restarts: u64,
}

impl OutboundIndex {
    fn with_capacity(capacity: usize) -> Self {
        OutboundIndex {
            positions: Vec::with_capacity(capacity),
            base_seq: 0,
            max_jump: capacity.max(1),
            grows: 0,
            restarts: 0,
        }
    }

    fn insert(&mut self, seq: u64, pos: RecordPos) {
        if self.positions.is_empty() {
            self.base_seq = seq;
        }
        let slot = seq
            .checked_sub(self.base_seq)
            .and_then(|d| usize::try_from(d).ok());
        let Some(slot) = slot else {
            return self.restart(seq, pos);
        };
        if let Some(entry) = self.positions.get_mut(slot) {
            *entry = pos.to_bits();
            return;
        }
        if slot - self.positions.len() > self.max_jump {
            return self.restart(seq, pos);
        }
        if slot >= self.positions.capacity() {
            self.grow(slot + 1);
        }
        self.positions.resize(slot, ABSENT);
        self.positions.push(pos.to_bits());
    }

    fn position(&self, seq: u64) -> Option<RecordPos> {
        let slot = usize::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        let bits = *self.positions.get(slot)?;
        (bits != ABSENT).then(|| RecordPos::from_bits(bits))
    }

    /// First and last indexed seq, if any.
    fn bounds(&self) -> Option<(u64, u64)> {
        let len = self.positions.len() as u64;
        (len > 0).then(|| (self.base_seq, self.base_seq + (len - 1)))
    }

    fn clear(&mut self) {
        self.positions.clear();
    }

    /// Doubles the capacity (at least to `needed`): an allocation, hence counted and cold.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        let extra = needed.max(self.positions.capacity() * 2) - self.positions.len();
        self.positions.reserve_exact(extra);
        self.grows += 1;
    }

    #[cold]
    #[inline(never)]
    fn restart(&mut self, seq: u64, pos: RecordPos) {
        self.positions.clear();
        self.base_seq = seq;
        self.positions.push(pos.to_bits());
        self.restarts += 1;
    }
}

#[cfg(test)]
// A failed unwrap is a failed test: exactly what it should be.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SMALL: usize = 4096;
    const KEY: &str = "FIX.4.4-GATEWAY-CLIENT1";

    fn msg(seq: u64) -> Vec<u8> {
        format!("8=FIX.4.4\x0135=8\x0134={seq}\x0158=fill {seq}\x01").into_bytes()
    }

    fn small(index_capacity: usize) -> SessionStoreConfig {
        SessionStoreConfig {
            segment_bytes: SMALL,
            index_capacity,
        }
    }

    #[test]
    fn fresh_store_starts_at_one_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::open_with(dir.path(), KEY, &small(16), 42).unwrap();
        assert_eq!(
            (
                s.next_sender_seq(),
                s.next_target_seq(),
                s.creation_time_ns()
            ),
            (1, 1, 42)
        );
        assert!(dir.path().join("FIX.4.4-GATEWAY-CLIENT1.session").exists());
        let s = SessionStore::open(dir.path(), "other", SMALL).unwrap();
        assert_eq!((s.next_sender_seq(), s.creation_time_ns()), (1, 0));
    }

    #[test]
    fn sanitizes_session_key_into_file_name() {
        assert_eq!(
            sanitize_key("FIX.4.4-GATEWAY-CLIENT1"),
            "FIX.4.4-GATEWAY-CLIENT1"
        );
        assert_eq!(sanitize_key("FIX.4.2:A/B C\\é"), "FIX.4.2_A_B_C__");
        assert_eq!(sanitize_key(""), "_");
        let dir = tempfile::tempdir().unwrap();
        SessionStore::open(dir.path(), "../escape", SMALL).unwrap();
        assert!(dir.path().join(".._escape.session").exists());
    }

    #[test]
    fn seq_numbers_and_messages_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SessionStore::open_with(dir.path(), KEY, &small(16), 7).unwrap();
            for seq in 1..=5 {
                s.store_outbound(seq, &msg(seq)).unwrap();
            }
            s.set_next_sender_seq(8); // two admin messages sent, not stored
            s.set_next_target_seq(31);
        }
        let s = SessionStore::open_with(dir.path(), KEY, &small(16), 999).unwrap();
        assert_eq!(
            (
                s.next_sender_seq(),
                s.next_target_seq(),
                s.creation_time_ns()
            ),
            (8, 31, 7)
        );
        for seq in 1..=5 {
            assert_eq!(s.outbound(seq), Some(&msg(seq)[..]));
        }
        assert_eq!(s.outbound(6), None);
    }

    #[test]
    fn store_outbound_advances_sender_seq_but_never_lowers_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        s.store_outbound(1, b"a").unwrap();
        assert_eq!(s.next_sender_seq(), 2);
        s.set_next_sender_seq(10);
        s.store_outbound(3, b"late").unwrap();
        assert_eq!(s.next_sender_seq(), 10);
        assert_eq!(
            s.store_outbound(0, b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn resend_range_skips_gaps_and_clamps_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!(s.outbound_range(1, u64::MAX).count(), 0);
        for seq in [1, 2, 4, 5, 9] {
            s.store_outbound(seq, &msg(seq)).unwrap();
        }
        let got: Vec<u64> = s.outbound_range(2, 9).map(|(seq, _)| seq).collect();
        assert_eq!(got, vec![2, 4, 5, 9]);
        let all: Vec<_> = s.outbound_range(0, u64::MAX).collect();
        assert_eq!(all.len(), 5);
        assert!(all.iter().all(|(seq, m)| *m == &msg(*seq)[..]));
        assert_eq!(s.outbound_range(6, 8).count(), 0);
        assert_eq!(s.outbound_range(10, 20).count(), 0);
        assert_eq!(s.outbound_range(5, 4).count(), 0);
    }

    #[test]
    fn resend_works_across_segments_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
            for seq in 1..=1000 {
                s.store_outbound(seq, &msg(seq)).unwrap();
            }
            assert!(s.segment_rolls() > 10, "{} rolls", s.segment_rolls());
        }
        let s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!(s.next_sender_seq(), 1001);
        let got: Vec<_> = s.outbound_range(100, 900).collect();
        assert_eq!(got.len(), 801);
        assert!(got.iter().all(|(seq, m)| *m == &msg(*seq)[..]));
    }

    #[test]
    fn log_beats_stale_header_for_sender_seq() {
        // As if the process died after the log append but before the header update.
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
            for seq in 1..=3 {
                s.store_outbound(seq, &msg(seq)).unwrap();
            }
            s.set_next_sender_seq(2);
        }
        let s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!(s.next_sender_seq(), 4);
    }

    #[test]
    fn state_survives_without_drop_or_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        for seq in 1..=20 {
            s.store_outbound(seq, &msg(seq)).unwrap();
        }
        s.set_next_target_seq(77);
        std::mem::forget(s);
        let s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq()), (21, 77));
        assert_eq!(s.outbound(20), Some(&msg(20)[..]));
    }

    #[test]
    fn torn_header_slot_falls_back_to_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.session");
        {
            let mut s = SessionStore::open(dir.path(), "s", SMALL).unwrap();
            s.set_next_target_seq(5);
            s.set_next_target_seq(6);
            s.flush().unwrap();
        }
        // Newest state (target 6) is generation 3, slot 1: tear its sender field.
        let mut bytes = fs::read(&path).unwrap();
        bytes[SLOT_BYTES + SENDER_AT] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        let s = SessionStore::open(dir.path(), "s", SMALL).unwrap();
        assert_eq!(s.next_target_seq(), 5);

        // Both slots torn: refuse to guess, name the file.
        bytes[SENDER_AT] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        let err = SessionStore::open(dir.path(), "s", SMALL).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("s.session"), "{err}");

        fs::write(&path, [0u8; 7]).unwrap();
        let err = SessionStore::open(dir.path(), "s", SMALL).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn refuses_a_log_whose_header_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open(dir.path(), "s", SMALL).unwrap();
        s.store_outbound(1, b"m").unwrap();
        drop(s);
        fs::remove_file(dir.path().join("s.session")).unwrap();
        let err = SessionStore::open(dir.path(), "s", SMALL).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("s.session"), "{err}");
    }

    #[test]
    fn reset_archives_messages_and_restarts_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open_with(dir.path(), KEY, &small(16), 1).unwrap();
        for seq in 1..=10 {
            s.store_outbound(seq, &msg(seq)).unwrap();
        }
        s.set_next_target_seq(12);
        s.reset(2_000).unwrap();
        assert_eq!(
            (
                s.next_sender_seq(),
                s.next_target_seq(),
                s.creation_time_ns()
            ),
            (1, 1, 2_000)
        );
        assert_eq!(s.outbound(3), None);
        s.store_outbound(1, b"after reset").unwrap();
        drop(s);

        let s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!(
            (
                s.next_sender_seq(),
                s.next_target_seq(),
                s.creation_time_ns()
            ),
            (2, 1, 2_000)
        );
        assert_eq!(s.outbound(1), Some(&b"after reset"[..]));
        assert_eq!(s.outbound(2), None);
        let archive = dir.path().join("archive").join(format!("{KEY}.out.000000"));
        assert_eq!(
            AppendLog::open(&archive, &format!("{KEY}.out"), SMALL)
                .unwrap()
                .iter()
                .count(),
            10
        );
    }

    #[test]
    fn index_grows_past_capacity_and_restarts_on_big_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open_with(dir.path(), KEY, &small(4), 0).unwrap();
        for seq in 1..=20 {
            s.store_outbound(seq, &msg(seq)).unwrap();
        }
        assert!(s.index_grows() >= 1);
        assert_eq!(s.index_restarts(), 0);
        assert_eq!(s.outbound_range(1, 20).count(), 20);
        // A jump well past the capacity restarts the index instead of allocating a huge table.
        s.store_outbound(1_000_000, b"far").unwrap();
        assert_eq!(s.index_restarts(), 1);
        assert_eq!(s.outbound(1_000_000), Some(&b"far"[..]));
        assert_eq!(s.outbound(20), None);
        assert_eq!(s.next_sender_seq(), 1_000_001);
        drop(s);
        // Replay reaches the same index.
        let s = SessionStore::open_with(dir.path(), KEY, &small(4), 0).unwrap();
        assert_eq!(s.outbound(1_000_000), Some(&b"far"[..]));
        assert_eq!(s.outbound(20), None);
        assert_eq!(s.next_sender_seq(), 1_000_001);
    }

    #[test]
    fn restoring_a_seq_replaces_the_earlier_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        s.store_outbound(1, b"first").unwrap();
        s.store_outbound(1, b"second").unwrap();
        assert_eq!(s.outbound(1), Some(&b"second"[..]));
        drop(s);
        let s = SessionStore::open(dir.path(), KEY, SMALL).unwrap();
        assert_eq!(s.outbound(1), Some(&b"second"[..]));
    }
}
