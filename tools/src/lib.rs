//! COLD — code shared by the `fixclient` and `venue` tools: a FIX connection over a std
//! `TcpStream` driven by the library's own session layer ([`link`]), and the readable form in
//! which both tools print messages ([`show`]).
//!
//! These are operator and test tools, not the hot path: they may allocate, block and print.
//! They still never panic on bytes a peer sends.

pub mod link;
pub mod loadgen;
pub mod schedgaps;
pub mod show;
pub mod tls;

/// UTC now, through the library's clock module (the only code allowed to read time).
pub fn now() -> portcullis::model::Nanos {
    portcullis::clock::system_utc()
}
