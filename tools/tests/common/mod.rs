//! Shared by the loadgen integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Starts `loadgen echo-server --mode MODE` on an ephemeral loopback port; returns the child
/// (kill it when done: it also exits when its client closes) and the address it printed.
pub fn echo_server(mode: &str) -> (Child, SocketAddr) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo-server", "--listen", "127.0.0.1:0", "--mode", mode])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (server, line.trim().parse().unwrap())
}
