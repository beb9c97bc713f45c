//! Integration tests: one binary, a module per feature, through real sockets and the real CLI.
// Test code may unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests time their own waits; the time ban is for the gateway.
#![allow(clippy::disallowed_methods)]

mod audit_trail;
mod auth;
mod badinput;
mod cli;
mod clock;
mod dropcopy;
mod hsm;
mod ops;
mod orders;
mod perimeter_accounts;
mod perimeter_conns;
mod perimeter_ctl;
mod perimeter_logon;
mod perimeter_rest;
// `portcullis preflight` (issue 15).
mod preflight;
mod records;
mod recovery;
mod risk;
mod routes;
// Binary order entry, client side (issue 16).
mod sbe;
// SBE over FIXP into the order desk (issue 16 part 2).
mod sbe_desk;
// Intrusion detection and response (issue 15).
mod ids;
// A MaxMind-format database writer for the geography tests (issue 15, MON-2).
#[path = "../common/mmdb.rs"]
mod mmdb;
// SIEM export (issue 15).
mod siem;
mod spin;
mod throttle;
mod tls;
mod util;
mod venue;
