//! COLD — the exporter's connection to the collector: TCP, or TLS (rustls) over TCP, with
//! blocking writes under a timeout.
//!
//! A syslog collector never writes to us, so anything readable on the socket means it is going
//! away: [`Link::closed_by_peer`] looks (without blocking) before every batch, so a collector
//! that closed the connection is noticed before messages are written into a dead socket.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Longest wait for a TCP connect (per resolved address) and for the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write may block: a collector that stops reading for this long is taken as down
/// (what was being written goes to the spool and is sent again after the reconnect).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Target {
    /// `host:port` plus `tls` or `tcp`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}:{} ({})",
            self.host,
            self.port,
            if self.tls.is_some() { "tls" } else { "tcp" }
        )
    }
}

pub enum Link {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Link {
    /// Resolves the host, connects (first address that answers), and completes the TLS
    /// handshake (certificate chain and name checked by rustls).
    pub fn connect(t: &Target) -> Result<Link, String> {
        let addrs = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", t.host))?;
        let mut last = format!("{} resolves to no address", t.host);
        let mut sock = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {a}: {e}"),
            }
        }
        let mut sock = sock.ok_or(last)?;
        let io = |e: io::Error| format!("socket: {e}");
        sock.set_nodelay(true).map_err(io)?;
        sock.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
        sock.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(io)?;
        match &t.tls {
            None => Ok(Link::Tcp(sock)),
            Some((cfg, name)) => {
                let mut conn = ClientConnection::new(cfg.clone(), name.clone())
                    .map_err(|e| format!("TLS: {e}"))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock)
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                }
                if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                    confirm_tls13(&mut conn, &mut sock)?;
                }
                Ok(Link::Tls(Box::new(StreamOwned::new(conn, sock))))
            }
        }
    }

    /// Writes all of `buf` (blocking, at most [`WRITE_TIMEOUT`] per write call) and flushes
    /// the TLS records out.
    pub fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Link::Tcp(s) => s.write_all(buf),
            Link::Tls(s) => {
                s.write_all(buf)?;
                s.flush()?;
                while s.conn.wants_write() {
                    s.conn.write_tls(&mut s.sock)?;
                }
                Ok(())
            }
        }
    }

    /// Whether the collector closed (or broke) the connection: reads what is there without
    /// blocking. TLS records (session tickets) are processed; a close_notify, EOF, error or
    /// any application data counts as closed.
    pub fn closed_by_peer(&mut self) -> bool {
        let sock = match self {
            Link::Tcp(s) => &*s,
            Link::Tls(s) => &s.sock,
        };
        if sock.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self {
            Link::Tcp(s) => tcp_closed(s),
            Link::Tls(s) => tls_closed(s),
        };
        let sock = match self {
            Link::Tcp(s) => &*s,
            Link::Tls(s) => &s.sock,
        };
        closed || sock.set_nonblocking(false).is_err()
    }

    /// Sends a TLS close_notify (best effort) before the link is dropped.
    pub fn close(mut self) {
        if let Link::Tls(s) = &mut self {
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }
}

/// How long a TLS 1.3 connect waits for the collector's first records after the handshake.
pub const CONFIRM_WAIT: Duration = Duration::from_millis(500);

/// In TLS 1.3 the server checks the client certificate only after the client's Finished, so a
/// collector that refuses ours (missing, wrong CA) says so with an alert after the handshake
/// looked complete here — anything written before that alert would be lost. So wait (at most
/// [`CONFIRM_WAIT`]) for the server's first records: session tickets mean it accepted us, an
/// alert or a close that it did not. Silence is taken as accepted (some servers send no
/// tickets).
fn confirm_tls13(conn: &mut ClientConnection, sock: &mut TcpStream) -> Result<(), String> {
    let io = |e: io::Error| format!("socket: {e}");
    sock.set_read_timeout(Some(CONFIRM_WAIT)).map_err(io)?;
    let result = match conn.read_tls(sock) {
        Ok(0) => Err(
            "the collector closed the connection after the TLS handshake (does it \
                      require a client certificate, or refuse ours?)"
                .to_string(),
        ),
        Ok(_) => match conn.process_new_packets() {
            Ok(state) if state.peer_has_closed() => {
                Err("the collector closed the TLS session after the handshake".to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(format!("TLS, after the handshake: {e}")),
        },
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("TLS, after the handshake: {e}")),
    };
    sock.set_read_timeout(None).map_err(io)?;
    result
}

fn tcp_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

fn tls_closed(s: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => return true,
            Ok(_) => {
                if s.conn.process_new_packets().is_err() {
                    return true;
                }
                let mut b = [0u8; 512];
                match s.conn.reader().read(&mut b) {
                    // Application data from a syslog collector, or a clean close_notify.
                    Ok(_) => return true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return true,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
