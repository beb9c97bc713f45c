//! Portcullis — a low-latency FIX/binary order gateway with inline pre-trade controls.
//!
//! ```text
//!            HOT: one pinned thread, busy-polling mio — an I/O shell (engine/) around a sans-IO
//!            order desk (desk/)
//!  client ──► net ──► fix::frame ──► fix::decode ──► session ──► engine::app ──► desk ──► route ──► risk
//!  socket     read    BodyLength/    borrowed       seq nums,    scope, throttle, intents  journal ──► venue
//!            (+TLS)   CheckSum       field view     admin msgs   FIX → intent              records    sim, or a
//!             │                                                    ▲ (same gate)                      FIX link
//!             └─► sbe::frame ─► sbe::decode ─► fixp::Session ─► engine::binary: SBE → intent
//!    ▲
//!    └──── flush ◄── session / fixp ◄── fix::encode / engine::sbe_out ◄── engine::wire (Outbox) ◄── desk reports
//!                                                          │
//!                        handoff (bounded SPSC rings, never blocks the hot thread)
//!            COLD: build (config → parts), journal thread (audit/), key-store and TLS watchers,
//!                  control socket (ctl), clock calibration
//! ```
//!
//! The layout and one order's path with file names: `docs/architecture.md`.
//!
//! Modules are marked HOT, BOUNDARY or COLD in their first doc line. Hot modules never import
//! cold ones; cold → hot goes only through `handoff`. Numbered design decisions: [`design`].
//!
//! # Lint policy
//! `unsafe_code` is denied crate-wide (Cargo.toml `[lints]`), with `unsafe_op_in_unsafe_fn`,
//! `clippy::undocumented_unsafe_blocks` and `clippy::multiple_unsafe_ops_per_block`. The items
//! allowed to opt out, each with a `// SAFETY:` comment:
//! - `store::log::map_file` — mapping a segment file (memmap2's `map_mut` is unsafe because
//!   another process could truncate the file; the data folder is private to the gateway).
//! - `clock::sys` — FFI reads of the kernel's time discipline (`adjtimex`) and of a PTP hardware
//!   clock (`clock_gettime` on its dynamic clock id): libc takes raw pointers. Cold only: the
//!   clock thread and `portcullis clock status` call it, never the gateway thread.
//! - `ctl::sys` — `getsockopt(SO_PEERCRED)` (the control socket's peer uid/pid, checked against
//!   `control.allowed_uids`; std's `UnixStream::peer_cred` is not stable) and `geteuid`: libc
//!   takes raw pointers. Cold only: the control thread, once per accepted connection.
//! - `files` — `umask(2)` (files at rest are private whatever the caller's umask), `flock(2)`
//!   (`portcullis keys` serialises read-modify-write of the key store) and `geteuid(2)` (a
//!   secret file owned by another user is refused). std has no umask; one integer call each.
//! - `risk::prefetch` — a cache prefetch hint (`_mm_prefetch`) for the risk tables on the
//!   gateway thread, and `madvise(MADV_HUGEPAGE)` on them at start.
//!
//! `unwrap`/`expect` warn everywhere (tests excepted, `.clippy.toml`); reading time is allowed
//! only in `clock` (`disallowed-methods`).
#![forbid(unsafe_op_in_unsafe_fn)]

/// One line to stdout from a cold thread. A closed stdout (a detached terminal, a pipe whose
/// reader went away) is ignored: `println!` would panic there and take the thread down.
pub fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{args}");
}

/// [`say`] for stderr: a closed stderr is ignored too (`eprintln!` would panic).
pub fn say_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{args}");
}

pub mod audit;
pub mod auth;
pub mod build;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod design;
pub mod desk;
pub mod engine;
pub mod files;
pub mod fix;
pub mod fixp;
pub mod gateway;
pub mod handoff;
pub mod model;
pub mod monitor;
pub mod net;
pub mod ops;
pub mod order;
pub mod report;
pub mod risk;
pub mod route;
pub mod sbe;
pub mod session;
// SIEM export (issue 15).
pub mod siem;
// Intrusion detection and response (issue 15).
pub mod ids;
pub mod store;
// Production checklist (`portcullis preflight`, REG-2).
pub mod preflight;
pub mod throttle;
pub mod tls;
pub mod trail;
pub mod venue;

/// Entry points for `cargo fuzz` targets (tools/fuzz); not a stable API.
#[doc(hidden)]
pub mod fuzzing;
