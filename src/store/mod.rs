//! BOUNDARY — crash-safe persistence: FIX session seq numbers, outbound messages for resend, and
//! a general append-only record log. Written by the hot thread through memory maps: no allocation
//! or syscall per append in steady state; recovery reads everything back at start.
//!
//! Owns the files under the gateway's data directory. A `memcpy` into a shared file mapping
//! survives `kill -9` (the page cache keeps it), so the hot thread persists without waiting on
//! anyone. [`AppendLog::flush`] / [`SessionStore::flush`] (msync) add power-loss durability and
//! block on the disk, so they must never run inside the hot duty cycle's latency budget.
//!
//! Must never: allocate or make a syscall on the steady-state append path (segment roll and
//! index growth are the `#[cold]`, counted exceptions); panic on file contents (a corrupt tail
//! is end-of-log; a corrupt header is an `io::Error` naming the file).
//!
//! The one `unsafe` is mapping a file (`log::map_file`): its soundness rests on no other process
//! truncating or rewriting our files while mapped.

pub(crate) mod crc;
pub mod log;
pub mod session_store;

pub use log::{AppendLog, Record, RecordPos, DEFAULT_SEGMENT_BYTES};
pub use session_store::{SessionStore, SessionStoreConfig, DEFAULT_INDEX_CAPACITY};
