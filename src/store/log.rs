//! `AppendLog`: a segmented, preallocated, memory-mapped append-only record log.
//!
//! # Files
//! `<dir>/<name>.<segment:06>.log`, each `segment_bytes` long, created sparse-then-prefaulted and
//! mapped shared. A record never straddles segments: when the next one does not fit, the log rolls
//! to a fresh segment (the `#[cold]` path: file creation, `mmap`, page faults).
//!
//! # Record layout (little-endian, records start 8-byte aligned)
//! ```text
//! offset  size  field
//!      0     4  len       header + payload bytes, unpadded (≥ 20). 0 = no more records here.
//!                         Written LAST, after a Release fence.
//!      4     4  crc       CRC-32C over bytes [8, len): kind, reserved, user and payload
//!      8     2  kind      caller's record type
//!     10     2  reserved  0
//!     12     8  user      caller's word (the session store puts MsgSeqNum here)
//!     20     n  payload
//!   20+n     .  zero padding to the next multiple of 8
//! ```
//!
//! # Crash model
//! - `kill -9`: stores that executed are in the page cache and survive; a record whose `len` word
//!   was not yet stored reads as end-of-log. The fence keeps the compiler and CPU from moving the
//!   `len` store ahead of the payload.
//! - Power loss without [`AppendLog::flush`]: writeback order of pages is arbitrary, so `len` may
//!   reach disk without its payload; the CRC rejects such a record.
//! - Recovery ([`AppendLog::open`]) takes, per segment, the prefix of valid records. In the last
//!   segment everything after that prefix is zeroed, so bytes of a discarded tail can never be
//!   re-read as a valid record once new, shorter records are written over it.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use super::crc::Crc32c;

/// 64 MiB: ~300k FIX messages of ~200 bytes per segment, so a busy session rolls a few times a
/// day, and a roll's one-off cost (create + prefault 16k pages) stays in the tens of milliseconds.
pub const DEFAULT_SEGMENT_BYTES: usize = 64 << 20;
/// Smallest accepted `segment_bytes`: one page.
pub const MIN_SEGMENT_BYTES: usize = 4096;
/// Largest accepted `segment_bytes`: record offsets and `len` are `u32`.
pub const MAX_SEGMENT_BYTES: usize = 1 << 31;
/// Bytes before the payload (see the layout table).
pub const RECORD_HEADER_BYTES: usize = 20;

const LEN_AT: usize = 0;
const CRC_AT: usize = 4;
const KIND_AT: usize = 8;
const RESERVED_AT: usize = 10;
const USER_AT: usize = 12;
const PAYLOAD_AT: usize = RECORD_HEADER_BYTES;
/// Prefault stride; 4 KiB is the smallest page on every target we run on.
const PAGE_BYTES: usize = 4096;
/// The segment helper write-faults this many pages, then sleeps `PACE_SLEEP`.
const PACE_PAGES: usize = 16;
const PACE_SLEEP: std::time::Duration = std::time::Duration::from_micros(200);
/// Pacing never lasts longer than this (a starved helper would otherwise make the gateway
/// thread wait at its roll): the rest of the segment is faulted in one go. Within it, the
/// helper paces for half the time the writer took to fill the first half of its active segment
/// (the time left before it needs the next one is about that long again). Paced, a 64 MiB
/// segment takes ≈ 0.3 s on a quiet 2-core box (1024 bursts); a fixed 150 ms used to cut that
/// short at 10k orders/s and fault the last half in one 20 ms run, which a `sched_switch` trace
/// showed as the longest preemption of the spinning threads.
const PACE_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a record lives: segment index (within this log, since open or reset) and byte offset.
///
/// Valid until the next [`AppendLog::reset`]; not meaningful across processes (recovery rebuilds
/// positions by scanning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordPos(u64);

impl RecordPos {
    fn new(segment: usize, offset: usize) -> Self {
        RecordPos(((segment as u64) << 32) | offset as u64)
    }
    fn segment(self) -> usize {
        (self.0 >> 32) as usize
    }
    fn offset(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    /// Packed form, for callers that keep positions in a preallocated `u64` table.
    pub fn to_bits(self) -> u64 {
        self.0
    }
    pub fn from_bits(bits: u64) -> Self {
        RecordPos(bits)
    }
}

/// One valid record, borrowing the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u16,
    pub user: u64,
    pub payload: &'a [u8],
    pub pos: RecordPos,
}

/// Segmented mmap append-only log; see the module doc for layout and crash model.
///
/// Single owner: `append` needs `&mut self`, and the type is `!Sync`.
///
/// # Steady state
/// `append` is a bounds check, a CRC and a `memcpy` into the mapping: no allocation, no syscall.
/// Page faults can still occur on first touch of a page after the kernel has written it back
/// (it write-protects clean pages of a shared mapping to track re-dirtying); prefaulting at
/// segment creation only removes the first fault.
#[derive(Debug)]
pub struct AppendLog {
    dir: PathBuf,
    name: String,
    segment_bytes: usize,
    /// Full segments, oldest first; never written again.
    sealed: Vec<Segment>,
    /// The segment appends go to; its index in positions is `sealed.len()`.
    active: Segment,
    /// Next append offset in `active`; everything from here on is zero.
    write_offset: usize,
    /// Sealed segments already msync'ed (they never change again).
    flushed_sealed: Cell<usize>,
    segment_rolls: u64,
    /// The next segment, created ahead of time on a helper thread.
    spare: Option<Spare>,
    /// Rolls that had to wait for, or do, the segment creation themselves.
    slow_rolls: u64,
    /// When the active segment became active (paces the helper: see [`PACE_BUDGET`]).
    active_since: std::time::Instant,
}

/// The next segment of a log, created (and pre-faulted) ahead of time by one process-wide helper
/// thread while the active segment is still half empty, so the hot thread's roll is a swap, not
/// file creation, `ftruncate`, `mmap` and tens of thousands of page faults. Threads share page
/// tables: pages the helper touched are mapped for the hot thread too.
#[derive(Debug)]
struct Spare {
    dir: Arc<PathBuf>,
    name: Arc<str>,
    done: crossbeam_channel::Sender<io::Result<Segment>>,
    ready: crossbeam_channel::Receiver<io::Result<Segment>>,
    requested: bool,
    /// Set once the active segment is three quarters full and its successor was requested but
    /// may not be ready: the helper stops pausing between bursts (see [`Segment::create_paced`]).
    hurry: Arc<AtomicBool>,
    hurried: bool,
}

/// One request to the segment helper. Every field is a clone of an `Arc` or a channel handle,
/// so asking costs no allocation on the hot thread.
struct SegmentJob {
    dir: Arc<PathBuf>,
    name: Arc<str>,
    number: u32,
    segment_bytes: usize,
    done: crossbeam_channel::Sender<io::Result<Segment>>,
    hurry: Arc<AtomicBool>,
    /// Pause between bursts only until then.
    pace_until: std::time::Instant,
}

/// The helper thread's queue, started on first use.
fn segment_helper() -> Option<&'static crossbeam_channel::Sender<SegmentJob>> {
    static HELPER: std::sync::OnceLock<Option<crossbeam_channel::Sender<SegmentJob>>> =
        std::sync::OnceLock::new();
    HELPER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded::<SegmentJob>(1024);
            std::thread::Builder::new()
                .name("portcullis-segments".into())
                .spawn(move || {
                    for job in rx {
                        let seg = Segment::create_paced(
                            &job.dir,
                            &job.name,
                            job.number,
                            job.segment_bytes,
                            Some((&job.hurry, job.pace_until)),
                        );
                        let _ = job.done.send(seg);
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

#[derive(Debug)]
struct Segment {
    number: u32,
    path: PathBuf,
    map: MmapMut,
}

impl Spare {
    fn new(dir: &Path, name: &str) -> Spare {
        let (done, ready) = crossbeam_channel::bounded(1);
        Spare {
            dir: Arc::new(dir.to_path_buf()),
            name: Arc::from(name),
            done,
            ready,
            requested: false,
            hurry: Arc::new(AtomicBool::new(false)),
            hurried: false,
        }
    }
}

/// A segment the helper is still making for this log is waited for (told to hurry): no helper
/// work on a log's files outlives the log, so a log opened again on the same files in this
/// process (a restart in tests, a reset) never finds its next segment half made, nor has the
/// helper write into a segment it already took.
impl Drop for AppendLog {
    fn drop(&mut self) {
        if let Some(spare) = &mut self.spare {
            if spare.requested {
                spare.requested = false;
                spare.hurry.store(true, Ordering::Relaxed);
                let _ = spare.ready.recv_timeout(std::time::Duration::from_secs(30));
            }
        }
    }
}

impl AppendLog {
    /// Opens (or creates) the log `name` in `dir` and recovers it.
    ///
    /// Every segment is scanned; each contributes its prefix of valid records. The next append
    /// goes right after the last valid record of the last segment, and the rest of that segment is
    /// zeroed. Existing segments keep their on-disk size; new ones get `segment_bytes`.
    ///
    /// # Errors
    /// `InvalidInput` if `segment_bytes` is not a multiple of 8 in
    /// [`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`]; I/O errors name the file.
    pub fn open(dir: &Path, name: &str, segment_bytes: usize) -> io::Result<AppendLog> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes)
            || segment_bytes % 8 != 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "log {name}: segment_bytes {segment_bytes} must be a multiple of 8 in \
                     {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}"
                ),
            ));
        }
        crate::files::private_dir(dir)?;
        let mut numbers = list_segments(dir, name)?;
        numbers.sort_unstable();

        // Room for 1024 more segments: a roll must not grow this on the gateway thread.
        let mut sealed = Vec::with_capacity(numbers.len() + 1024);
        for &number in &numbers {
            sealed.push(Segment::open(dir, name, number)?);
        }
        let active = match sealed.pop() {
            Some(seg) => seg,
            None => Segment::create(dir, name, 0, segment_bytes)?,
        };
        let write_offset = valid_prefix_end(&active.map);
        let mut log = AppendLog {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            segment_bytes,
            sealed,
            active,
            write_offset,
            flushed_sealed: Cell::new(0),
            segment_rolls: 0,
            // Start the helper now (cold) rather than on the hot thread's first request.
            spare: segment_helper().map(|_| Spare::new(dir, name)),
            slow_rolls: 0,
            active_since: crate::clock::monotonic(),
        };
        log.zero_tail();
        Ok(log)
    }

    /// Appends one record and returns where it went.
    ///
    /// No allocation; no syscall unless the active segment is full (then it rolls).
    ///
    /// # Errors
    /// `InvalidInput` if the record (header + payload) cannot fit in an empty segment; I/O errors
    /// from rolling to a new segment. On error nothing was written.
    pub fn append(&mut self, kind: u16, user: u64, payload: &[u8]) -> io::Result<RecordPos> {
        let len = RECORD_HEADER_BYTES + payload.len();
        if len > self.segment_bytes {
            // Also bounds len ≤ u32::MAX, since segment_bytes ≤ MAX_SEGMENT_BYTES.
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let padded = align8(len);
        if self.active.map.len().saturating_sub(self.write_offset) < padded {
            self.roll()?;
        }
        let offset = self.write_offset;
        let Some(rec) = self.active.map.get_mut(offset..offset + padded) else {
            // Unreachable: roll() left a fresh segment_bytes segment and len ≤ segment_bytes.
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let (head, body) = rec.split_at_mut(PAYLOAD_AT);
        head[KIND_AT..RESERVED_AT].copy_from_slice(&kind.to_le_bytes());
        head[RESERVED_AT..USER_AT].copy_from_slice(&0u16.to_le_bytes());
        head[USER_AT..PAYLOAD_AT].copy_from_slice(&user.to_le_bytes());
        body[..payload.len()].copy_from_slice(payload);
        // Padding is already zero: the region past write_offset is always zero.
        let crc = Crc32c::new()
            .update(&head[KIND_AT..])
            .update(payload)
            .finish();
        head[CRC_AT..KIND_AT].copy_from_slice(&crc.to_le_bytes());
        // The len word publishes the record; nothing before it may be reordered after it.
        fence(Ordering::Release);
        head[LEN_AT..CRC_AT].copy_from_slice(&(len as u32).to_le_bytes());
        self.write_offset = offset + padded;
        self.request_spare();
        Ok(RecordPos::new(self.sealed.len(), offset))
    }

    /// Every valid record, oldest first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            log: self,
            segment: 0,
            offset: 0,
        }
    }

    /// The record at `pos`, if `pos` came from this log since its last reset.
    pub fn read(&self, pos: RecordPos) -> Option<Record<'_>> {
        let (map, end) = self.segment_view(pos.segment())?;
        if pos.offset() >= end || pos.offset() % 8 != 0 {
            return None;
        }
        decode(map, end, pos.offset()).map(|(kind, user, payload, _)| Record {
            kind,
            user,
            payload,
            pos,
        })
    }

    /// msyncs (synchronously) every segment written since the last flush: survives power loss.
    ///
    /// Blocks for disk I/O; call it off the hot path's latency budget (e.g. on a timer or before
    /// acknowledging something that must survive power loss).
    pub fn flush(&self) -> io::Result<()> {
        for seg in self.sealed.iter().skip(self.flushed_sealed.get()) {
            seg.map.flush().map_err(|e| named(e, &seg.path))?;
            self.flushed_sealed.set(self.flushed_sealed.get() + 1);
        }
        if self.write_offset > 0 {
            self.active
                .map
                .flush_range(0, self.write_offset)
                .map_err(|e| named(e, &self.active.path))?;
        }
        Ok(())
    }

    /// Archives every segment into `<dir>/archive/<name>.<n:06>/` (first unused `n`) and starts
    /// an empty log. Positions from before the reset become invalid.
    ///
    /// # Crash safety
    /// Segments move newest first, so a crash part-way leaves a valid prefix of the old log in
    /// place (the reset simply has not happened yet); retrying archives the rest.
    #[cold]
    pub fn reset(&mut self) -> io::Result<()> {
        let archive_root = self.dir.join("archive");
        crate::files::private_dir(&archive_root)?;
        let mut n = 0u32;
        let target = loop {
            let candidate = archive_root.join(format!("{}.{n:06}", self.name));
            match std::fs::DirBuilder::new()
                .mode(crate::files::DIR_MODE)
                .create(&candidate)
            {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(named(e, &candidate)),
            }
        };
        // Create the new segment under a number above every old one, so that until the old
        // files are gone a crash leaves them, not the empty one, as the log's prefix.
        let fresh = self.next_segment()?;
        let old_active = std::mem::replace(&mut self.active, fresh);
        self.sealed.push(old_active);
        for seg in self.sealed.drain(..).rev() {
            let file_name = seg.path.file_name().map(PathBuf::from).unwrap_or_default();
            let dest = target.join(file_name);
            drop(seg.map);
            fs::rename(&seg.path, &dest).map_err(|e| named(e, &seg.path))?;
        }
        sync_dir(&self.dir)?;
        // Renumber the fresh segment to 0 so a reset log looks like a new one.
        let zero_path = segment_path(&self.dir, &self.name, 0);
        fs::rename(&self.active.path, &zero_path).map_err(|e| named(e, &self.active.path))?;
        self.active.path = zero_path;
        self.active.number = 0;
        sync_dir(&self.dir)?;
        self.write_offset = 0;
        self.flushed_sealed.set(0);
        self.active_since = crate::clock::monotonic();
        Ok(())
    }

    /// Times the log moved to a new segment since open (monitoring: each one stalled the writer).
    pub fn segment_rolls(&self) -> u64 {
        self.segment_rolls
    }

    /// Number of segment files currently in the log.
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// True when no record has been appended since creation or reset.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.write_offset == 0
    }

    /// Asks the helper thread for the next segment once the active one is half full, and tells
    /// it to hurry once the active one is three quarters full.
    #[inline]
    fn request_spare(&mut self) {
        let Some(spare) = &mut self.spare else { return };
        if spare.requested {
            if !spare.hurried && self.write_offset > self.active.map.len() / 4 * 3 {
                spare.hurry.store(true, Ordering::Relaxed);
                spare.hurried = true;
            }
            return;
        }
        if self.write_offset <= self.active.map.len() / 2 {
            return;
        }
        let (Some(helper), Some(number)) = (segment_helper(), self.active.number.checked_add(1))
        else {
            return;
        };
        // The first half took this long; the second will take about as long again.
        let now = crate::clock::monotonic();
        let half = now.saturating_duration_since(self.active_since);
        let job = SegmentJob {
            dir: spare.dir.clone(),
            name: spare.name.clone(),
            number,
            segment_bytes: self.segment_bytes,
            done: spare.done.clone(),
            hurry: spare.hurry.clone(),
            pace_until: now + (half / 2).min(PACE_BUDGET),
        };
        spare.requested = helper.try_send(job).is_ok();
    }

    /// The segment after the active one: the helper's if it made it (waiting for it if it is
    /// still at work — creating the same file here would race with it), else created here.
    #[cold]
    fn next_segment(&mut self) -> io::Result<Segment> {
        let next = self
            .active
            .number
            .checked_add(1)
            .ok_or_else(too_many_segments)?;
        if let Some(spare) = &mut self.spare {
            if spare.requested {
                spare.requested = false;
                spare.hurried = false;
                spare.hurry.store(false, Ordering::Relaxed);
                match spare.ready.try_recv() {
                    Ok(Ok(seg)) if seg.number == next => return Ok(seg),
                    Ok(_) => {}
                    Err(_) => {
                        self.slow_rolls += 1;
                        // Polled, not a blocking `recv`: blocking registers the thread with the
                        // channel's waker list, which allocates on the gateway thread the first
                        // time (tests/alloc.rs saw 2 allocations when the helper was starved of
                        // CPU by the cold threads). The helper stops pacing meanwhile.
                        spare.hurry.store(true, Ordering::Relaxed);
                        let got = loop {
                            match spare.ready.try_recv() {
                                Ok(r) => break Some(r),
                                Err(crossbeam_channel::TryRecvError::Empty) => {
                                    std::thread::yield_now()
                                }
                                Err(crossbeam_channel::TryRecvError::Disconnected) => break None,
                            }
                        };
                        spare.hurry.store(false, Ordering::Relaxed);
                        if let Some(Ok(seg)) = got {
                            if seg.number == next {
                                return Ok(seg);
                            }
                        }
                    }
                }
            }
        }
        self.slow_rolls += 1;
        Segment::create(&self.dir, &self.name, next, self.segment_bytes)
    }

    /// Rolls that found no segment ready (they waited for or created it on the calling thread).
    pub fn slow_rolls(&self) -> u64 {
        self.slow_rolls
    }

    #[cold]
    #[inline(never)]
    fn roll(&mut self) -> io::Result<()> {
        let fresh = self.next_segment()?;
        // Start writeback of the full segment now so a later flush() has less to wait for.
        let full = std::mem::replace(&mut self.active, fresh);
        let _ = full.map.flush_async();
        self.sealed.push(full);
        self.write_offset = 0;
        self.segment_rolls += 1;
        self.active_since = crate::clock::monotonic();
        Ok(())
    }

    /// Zeroes the active segment past the last valid record (only if something is there), and
    /// write-faults its pages now rather than during the first appends after recovery.
    #[cold]
    fn zero_tail(&mut self) {
        if let Some(tail) = self.active.map.get_mut(self.write_offset..) {
            // OR-fold per page vectorises; `any(b != 0)` byte by byte made opening a fresh
            // 64 MiB segment take a noticeable fraction of a second.
            if tail
                .chunks(PAGE_BYTES)
                .any(|page| page.iter().fold(0u8, |acc, b| acc | b) != 0)
            {
                tail.fill(0);
            }
            for page in tail.chunks_mut(PAGE_BYTES) {
                page[0] = 0;
            }
        }
    }

    /// The mapping of segment `index` and the end of its readable area.
    fn segment_view(&self, index: usize) -> Option<(&[u8], usize)> {
        match index.cmp(&self.sealed.len()) {
            std::cmp::Ordering::Less => {
                let map = &self.sealed.get(index)?.map;
                Some((&map[..], map.len()))
            }
            std::cmp::Ordering::Equal => Some((&self.active.map[..], self.write_offset)),
            std::cmp::Ordering::Greater => None,
        }
    }
}

/// Iterator over every valid record of an [`AppendLog`], oldest first.
#[derive(Debug)]
pub struct Iter<'a> {
    log: &'a AppendLog,
    segment: usize,
    offset: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        loop {
            let (map, end) = self.log.segment_view(self.segment)?;
            if let Some((kind, user, payload, next)) = decode(map, end, self.offset) {
                let pos = RecordPos::new(self.segment, self.offset);
                self.offset = next;
                return Some(Record {
                    kind,
                    user,
                    payload,
                    pos,
                });
            }
            // End of this segment's valid prefix: on to the next segment.
            self.segment += 1;
            self.offset = 0;
        }
    }
}

/// Decodes the record at `offset` if it is complete and valid within `map[..end]`; returns it and
/// the offset of the next record. Never panics on arbitrary bytes.
fn decode(map: &[u8], end: usize, offset: usize) -> Option<(u16, u64, &[u8], usize)> {
    let area = map.get(offset..end)?;
    let head = area.get(..PAYLOAD_AT)?;
    let len = u32::from_le_bytes(head[LEN_AT..CRC_AT].try_into().ok()?) as usize;
    if len < RECORD_HEADER_BYTES || len > area.len() {
        return None;
    }
    let crc = u32::from_le_bytes(head[CRC_AT..KIND_AT].try_into().ok()?);
    let kind = u16::from_le_bytes(head[KIND_AT..RESERVED_AT].try_into().ok()?);
    let reserved = u16::from_le_bytes(head[RESERVED_AT..USER_AT].try_into().ok()?);
    let user = u64::from_le_bytes(head[USER_AT..PAYLOAD_AT].try_into().ok()?);
    let payload = area.get(PAYLOAD_AT..len)?;
    if reserved != 0
        || Crc32c::new()
            .update(&head[KIND_AT..])
            .update(payload)
            .finish()
            != crc
    {
        return None;
    }
    Some((kind, user, payload, offset + align8(len)))
}

/// End of the valid prefix of a segment.
fn valid_prefix_end(map: &[u8]) -> usize {
    let mut offset = 0;
    while let Some((_, _, _, next)) = decode(map, map.len(), offset) {
        offset = next;
    }
    offset.min(map.len())
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl Segment {
    /// Creates `<name>.<number>.log` at `segment_bytes`, mapped and prefaulted.
    ///
    /// Created under a temporary name and renamed into place, so a crash never leaves a
    /// half-sized segment under the real name.
    fn create(dir: &Path, name: &str, number: u32, segment_bytes: usize) -> io::Result<Segment> {
        Segment::create_paced(dir, name, number, segment_bytes, None)
    }

    /// [`Segment::create`]; `paced` (the segment helper, working ahead of need, with the log's
    /// hurry flag) write-faults the pages in bursts of `PACE_PAGES` with a short sleep between
    /// them. On a box with a spinning thread per core the helper runs by preempting one of them:
    /// one burst of ~50 µs at a time instead of the whole segment (milliseconds) in one go.
    /// Pacing stops at the job's `pace_until` (half the time the writer took for its first
    /// half, at most `PACE_BUDGET`) or when the writer raises the hurry flag (its active segment
    /// is three quarters full), so the segment is ready before the active one fills.
    fn create_paced(
        dir: &Path,
        name: &str,
        number: u32,
        segment_bytes: usize,
        paced: Option<(&AtomicBool, std::time::Instant)>,
    ) -> io::Result<Segment> {
        let path = segment_path(dir, name, number);
        let tmp = path.with_extension("log.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(crate::files::FILE_MODE)
            .open(&tmp)
            .map_err(|e| named(e, &tmp))?;
        file.set_len(segment_bytes as u64)
            .map_err(|e| named(e, &tmp))?;
        fs::rename(&tmp, &path).map_err(|e| named(e, &tmp))?;
        sync_dir(dir)?;
        // Not MAP_POPULATE: a shared mapping is populated read-only, and the writes below would
        // fault every page a second time.
        let mut map = map_file(&file, &path, false)?;
        // Each fault reads in only its own page: with the default readahead, sequential faults
        // on the new (sparse) file grow the read-around window, so one fault allocated and
        // zeroed hundreds of KiB in one go (`filemap_fault` → `page_cache_ra_order` → `memset`
        // in a `perf record` of this thread) and the pacing below bounded nothing.
        let _ = map.advise(memmap2::Advice::Random);
        // One write per page takes the write faults (and page-cache allocation) now, at roll
        // time, instead of on the hot path's next appends.
        for (i, page) in map.chunks_mut(PAGE_BYTES).enumerate() {
            page[0] = 0;
            if i % PACE_PAGES == PACE_PAGES - 1
                && paced.is_some_and(|(hurry, until)| {
                    !hurry.load(Ordering::Relaxed) && crate::clock::monotonic() < until
                })
            {
                std::thread::sleep(PACE_SLEEP);
            }
        }
        Ok(Segment { number, path, map })
    }

    fn open(dir: &Path, name: &str, number: u32) -> io::Result<Segment> {
        let path = segment_path(dir, name, number);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| named(e, &path))?;
        crate::files::tighten_open(&file, &path)?;
        let file_bytes = file.metadata().map_err(|e| named(e, &path))?.len();
        if file_bytes > MAX_SEGMENT_BYTES as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {file_bytes} bytes exceeds {MAX_SEGMENT_BYTES}",
                    path.display()
                ),
            ));
        }
        let map = map_file(&file, &path, false)?;
        Ok(Segment { number, path, map })
    }
}

/// Maps `file` shared and writable.
///
/// `populate` asks the kernel to map every page now (MAP_POPULATE) rather than on first touch.
#[allow(unsafe_code)]
pub(super) fn map_file(file: &File, path: &Path, populate: bool) -> io::Result<MmapMut> {
    let mut options = MmapOptions::new();
    if populate {
        options.populate();
    }
    // SAFETY: memmap2 requires that nothing else modifies or truncates the file while it is
    // mapped. The store's files live in the gateway's private data directory, are opened and
    // sized only by this module, and are never truncated or resized after mapping (rolls create
    // new files; reset renames, which does not touch the data). Running two gateways on the same
    // data directory breaks this and is a deployment error.
    let map = unsafe { options.map_mut(file) };
    map.map_err(|e| named(e, path))
}

/// Segment numbers of `name` present in `dir` (unsorted).
#[cold]
fn list_segments(dir: &Path, name: &str) -> io::Result<Vec<u32>> {
    let prefix = format!("{name}.");
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| named(e, dir))? {
        let entry = entry.map_err(|e| named(e, dir))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(digits) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".log"))
        else {
            continue;
        };
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = digits.parse::<u32>() {
                numbers.push(n);
            }
        }
    }
    Ok(numbers)
}

fn segment_path(dir: &Path, name: &str, number: u32) -> PathBuf {
    dir.join(format!("{name}.{number:06}.log"))
}

/// Makes renames and creations in `dir` durable (the directory entry is data too).
#[cold]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| named(e, dir))
}

/// Wraps an I/O error with the path it concerns.
#[cold]
pub(super) fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cold]
fn too_many_segments() -> io::Error {
    io::Error::other("log segment number exhausted (u32)")
}

#[cfg(test)]
// A failed unwrap is a failed test: exactly what it should be.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Seek, SeekFrom, Write};

    const SMALL: usize = 4096;

    fn collect(log: &AppendLog) -> Vec<(u16, u64, Vec<u8>)> {
        log.iter()
            .map(|r| (r.kind, r.user, r.payload.to_vec()))
            .collect()
    }

    fn payload(i: u64, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i as usize * 131 + j * 7) as u8).collect()
    }

    /// Overwrites bytes of a segment file behind the log's back (simulates a torn write).
    fn poke(dir: &Path, name: &str, segment: u32, offset: u64, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .write(true)
            .open(segment_path(dir, name, segment))
            .unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn appended_records_read_back_by_iter_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert!(log.is_empty());
        let a = log.append(1, 10, b"hello").unwrap();
        let b = log.append(2, 20, b"").unwrap();
        let c = log.append(3, 30, &[0xAB; 100]).unwrap();
        assert_eq!(
            collect(&log),
            vec![
                (1, 10, b"hello".to_vec()),
                (2, 20, vec![]),
                (3, 30, vec![0xAB; 100])
            ]
        );
        let rb = log.read(b).unwrap();
        assert_eq!((rb.kind, rb.user, rb.payload, rb.pos), (2, 20, &b""[..], b));
        assert_eq!(log.read(a).unwrap().payload, b"hello");
        assert_eq!(log.read(c).unwrap().payload, &[0xAB; 100][..]);
        assert!(
            log.read(RecordPos::new(0, 8)).is_none(),
            "mid-record offset"
        );
        assert!(log.read(RecordPos::new(5, 0)).is_none(), "no such segment");
        assert!(log.read(RecordPos::new(0, 4000)).is_none(), "past the end");
        log.flush().unwrap();
    }

    #[test]
    fn reopen_recovers_records_and_appends_after_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
            for i in 0..5 {
                log.append(7, i, &payload(i, 33)).unwrap();
            }
        }
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(log.iter().count(), 5);
        log.append(7, 5, &payload(5, 33)).unwrap();
        drop(log);
        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let expect: Vec<_> = (0..6).map(|i| (7, i, payload(i, 33))).collect();
        assert_eq!(collect(&log), expect);
    }

    #[test]
    fn data_survives_without_drop_or_flush() {
        // Closest a unit test gets to kill -9: no Drop, no msync, mapping leaked.
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        for i in 0..50 {
            log.append(1, i, &payload(i, 90)).unwrap();
        }
        std::mem::forget(log);
        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let expect: Vec<_> = (0..50).map(|i| (1, i, payload(i, 90))).collect();
        assert_eq!(collect(&log), expect);
    }

    #[test]
    fn torn_tail_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        for i in 0..3 {
            log.append(1, i, &payload(i, 12)).unwrap();
        }
        let tail = log.write_offset as u64;
        drop(log);
        // A record whose len landed but whose body did not: plausible len, wrong crc.
        let mut torn = vec![0u8; 64];
        torn[..4].copy_from_slice(&60u32.to_le_bytes());
        torn[20..40].fill(0xEE);
        poke(dir.path(), "t", 0, tail, &torn);

        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(log.iter().count(), 3);
        assert_eq!(log.write_offset as u64, tail);
        let pos = log.append(2, 99, b"after").unwrap();
        assert_eq!(pos, RecordPos::new(0, tail as usize));
        drop(log);
        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let recs = collect(&log);
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[3], (2, 99, b"after".to_vec()));
    }

    #[test]
    fn corrupt_record_truncates_and_later_records_never_resurrect() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        log.append(1, 0, &payload(0, 40)).unwrap();
        let b = log.append(1, 1, &payload(1, 40)).unwrap();
        log.append(1, 2, &payload(2, 40)).unwrap();
        drop(log);
        // Flip one payload byte of the middle record: its crc no longer matches.
        poke(
            dir.path(),
            "t",
            0,
            (b.offset() + PAYLOAD_AT + 3) as u64,
            &[0xFF],
        );

        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(collect(&log), vec![(1, 0, payload(0, 40))]);
        // Same size as the discarded record: the old third record would sit exactly where the
        // next one is looked for, unless recovery zeroed it.
        log.append(3, 9, &payload(9, 40)).unwrap();
        drop(log);
        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(
            collect(&log),
            vec![(1, 0, payload(0, 40)), (3, 9, payload(9, 40))]
        );
    }

    #[test]
    fn garbage_len_is_end_of_log_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        log.append(1, 1, b"x").unwrap();
        let tail = log.write_offset as u64;
        drop(log);
        for len in [1u32, 19, 4096, u32::MAX] {
            poke(dir.path(), "t", 0, tail, &len.to_le_bytes());
            let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
            assert_eq!(log.iter().count(), 1, "len {len}");
        }
    }

    #[test]
    fn a_roll_takes_the_segment_prepared_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let p = payload(1, 100);
        let mut i = 0u64;
        // Past half the segment: the helper thread is asked for the next one.
        while log.write_offset <= SMALL / 2 {
            log.append(1, i, &p).unwrap();
            i += 1;
        }
        // Wait until the helper handed the segment over (it paces its page faults, so the file
        // exists well before it is done), then fill the segment and roll.
        for _ in 0..2500 {
            if log.spare.as_ref().is_some_and(|s| !s.ready.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        while log.segment_rolls() == 0 {
            log.append(1, i, &p).unwrap();
            i += 1;
        }
        assert_eq!(log.slow_rolls(), 0, "the prepared segment was used");
        drop(log);
        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(
            log.iter().count() as u64,
            i,
            "every record readable after reopen"
        );
    }

    #[test]
    fn rolls_across_segments_and_recovers_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let mut expect = Vec::new();
        for i in 0..1000u64 {
            let p = payload(i, (i % 200) as usize);
            let pos = log.append((i % 3) as u16, i, &p).unwrap();
            assert_eq!(log.read(pos).unwrap().user, i);
            expect.push(((i % 3) as u16, i, p));
        }
        assert!(log.segment_count() > 20, "{} segments", log.segment_count());
        assert_eq!(log.segment_rolls() as usize, log.segment_count() - 1);
        assert_eq!(collect(&log), expect);
        drop(log);
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(collect(&log), expect);
        log.append(9, 1000, b"more").unwrap();
        expect.push((9, 1000, b"more".to_vec()));
        drop(log);
        assert_eq!(
            collect(&AppendLog::open(dir.path(), "t", SMALL).unwrap()),
            expect
        );
    }

    #[test]
    fn record_larger_than_a_segment_is_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        let err = log
            .append(1, 1, &[0; SMALL - RECORD_HEADER_BYTES + 1])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Exactly one segment's worth fits.
        log.append(1, 2, &[1; SMALL - RECORD_HEADER_BYTES]).unwrap();
        assert_eq!(log.iter().count(), 1);
    }

    #[test]
    fn rejects_bad_segment_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [0, 100, SMALL + 4, MAX_SEGMENT_BYTES + 8] {
            let err = AppendLog::open(dir.path(), "t", bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn reset_archives_segments_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        for i in 0..100 {
            log.append(1, i, &payload(i, 100)).unwrap();
        }
        let old_segments = log.segment_count();
        log.reset().unwrap();
        assert!(log.is_empty());
        assert_eq!(log.iter().count(), 0);
        log.append(1, 1, b"fresh").unwrap();
        log.reset().unwrap();
        log.append(1, 2, b"fresher").unwrap();
        drop(log);

        let log = AppendLog::open(dir.path(), "t", SMALL).unwrap();
        assert_eq!(collect(&log), vec![(1, 2, b"fresher".to_vec())]);
        assert_eq!(log.segment_count(), 1);
        let first = dir.path().join("archive/t.000000");
        assert_eq!(fs::read_dir(&first).unwrap().count(), old_segments);
        let archived = AppendLog::open(&first, "t", SMALL).unwrap();
        assert_eq!(archived.iter().count(), 100);
        let second = AppendLog::open(&dir.path().join("archive/t.000001"), "t", SMALL).unwrap();
        assert_eq!(collect(&second), vec![(1, 1, b"fresh".to_vec())]);
    }

    #[test]
    fn logs_with_overlapping_names_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AppendLog::open(dir.path(), "a", SMALL).unwrap();
        let mut ab = AppendLog::open(dir.path(), "a.000001", SMALL).unwrap();
        a.append(1, 1, b"a").unwrap();
        ab.append(2, 2, b"ab").unwrap();
        drop((a, ab));
        assert_eq!(
            AppendLog::open(dir.path(), "a", SMALL)
                .unwrap()
                .iter()
                .count(),
            1
        );
        assert_eq!(
            AppendLog::open(dir.path(), "a.000001", SMALL)
                .unwrap()
                .iter()
                .count(),
            1
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn arbitrary_records_survive_reopen(
            records in proptest::collection::vec(
                (any::<u16>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..600)),
                0..60,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut log = AppendLog::open(dir.path(), "p", SMALL).unwrap();
            for (kind, user, p) in &records {
                log.append(*kind, *user, p).unwrap();
            }
            drop(log);
            let log = AppendLog::open(dir.path(), "p", SMALL).unwrap();
            prop_assert_eq!(collect(&log), records);
        }
    }
}
