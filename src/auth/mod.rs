//! COLD, except [`scope`]'s per-message check (HOT) — session security.
//!
//! Owns: API key records and their compiled snapshot (`keys`), scopes and roles (`scope`), CIDR
//! allowlists (`cidr`), signed-logon verification with skew, replay cache and lockout
//! (`logon`), the encrypted key store and its master-key providers (`store`, `provider`), the
//! live reload watcher (`watch`) and masking of sensitive values (`mask`).
//!
//! The gateway thread runs `logon` at Logon time only (cold: may allocate) and the scope
//! bitmask check per application message (hot: one AND, no allocation). Key snapshots reach
//! the gateway thread whole through `handoff::Command::Keys`. Secrets are zeroized on drop and
//! never written to logs, events or error messages.

pub mod admin;
pub mod cidr;
pub mod keys;
pub mod lockout;
pub mod logon;
pub mod mask;
pub mod provider;
pub mod scope;
pub mod store;
pub mod watch;

pub use keys::{Key, KeyId, KeySnapshot};
pub use logon::{Authenticator, Failure, Policy, SignedLogon};
pub use scope::{Grants, Role, Scopes};
