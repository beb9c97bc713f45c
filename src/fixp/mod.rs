//! HOT (application messages after Establish) / COLD (Negotiate, Establish, retransmission) —
//! the FIXP session layer for SBE order entry, sans-IO (fix-specs/FIXP-SESSION.md).
//!
//! Modelled on the FIX Performance Session Layer 1.1 as CME iLink 3 uses it: Negotiate creates
//! a logical session (a uuid), Establish binds it to a connection, Sequence is the heartbeat,
//! Terminate unbinds; the client's flow is idempotent (gaps answered with NotApplied), ours is
//! recoverable (RetransmitRequest answered from the store). Negotiate and Establish are signed
//! with HMAC-SHA256 under the API key's secret and verified by the same `auth::Authenticator`
//! (key store, skew, replay cache, lockouts) as the FIX Logon.
//!
//! Owns one logical session's state per [`Session`]. Runs on the gateway thread; never does
//! I/O, never reads the clock, never allocates after construction. Must never: deliver an
//! application message before Establish, answer an unauthenticated connection with anything
//! about the session (uuid, sequence numbers, whether it exists), or panic on any input.
//!
//! Files: `msg.rs` (the session messages as plain structs, the error codes), `sign.rs` (the
//! canonical strings that are signed), `config.rs`, `session.rs` (the state machine), `auth.rs`
//! (the production [`Verifier`] over the `Authenticator`), `fuzz.rs` (the `fixp_session` fuzz
//! target's body), `tests.rs`.
#![warn(clippy::indexing_slicing, clippy::panic)]

pub mod auth;
pub mod client;
mod config;
#[doc(hidden)]
pub mod fuzz;
pub mod msg;
mod session;
pub mod sign;
pub mod wire;

#[cfg(test)]
mod tests;

pub use auth::KeyVerifier;
pub use config::FixpConfig;
pub use msg::{ErrorCode, SessionMsg};
pub use session::{
    refuse_unknown_session, Action, Event, FixpCounters, Outbox, SendError, Session, SignedKind,
    SignedRequest, State, Verifier,
};
