//! HOT — connections: non-blocking TCP sockets registered with mio, their receive buffers and
//! pending output, in a preallocated slab indexed by mio `Token`.
//!
//! Owned by the gateway thread. Per message it does only the socket reads and writes. Buffers
//! are allocated cold: a client connection starts with small ones (`logon_buffer_bytes`, room
//! for a Logon and its answer) and gets the full ones once its session is bound
//! ([`Conn::grow_buffers`]), so a connection that never logs on costs little memory.

pub mod tls;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};

use crate::model::{Nanos, SessionId};
use crate::session::OutBuf;

/// One client or venue connection.
pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Received bytes not yet consumed: `inbuf[head..tail]`.
    pub inbuf: Box<[u8]>,
    pub head: usize,
    pub tail: usize,
    pub out: OutBuf,
    /// Index of the session bound by a successful first Logon.
    pub session: Option<SessionId>,
    pub opened_at: Nanos,
    /// Close once `out` is flushed (after a Logout or a refusal).
    pub closing: bool,
    /// Peer closed or the socket failed: close now.
    pub dead: bool,
    /// A connection we opened to an external venue (index of the venue).
    pub venue: Option<crate::model::VenueId>,
    /// Outbound connect not yet completed.
    pub connecting: bool,
    /// TLS state when the listener (or venue) uses TLS; `None` for plaintext. Boxed: rustls
    /// connection state is large and most slots are empty.
    pub tls: Option<Box<rustls::Connection>>,
    /// The TLS handshake or a record failed (counted once by the engine).
    pub tls_failed: bool,
    /// When bytes last arrived (busy-poll hot-set admission; `Nanos::ZERO` before any).
    pub last_rx: Nanos,
    /// Engine-wide accept number: tells a connection from a later one in the same slot.
    pub serial: u64,
    /// Any plaintext byte received (a connection that sent nothing meets the silent timeout).
    pub got_bytes: bool,
    /// Before logon: bytes skipped outside any FIX frame.
    pub junk_bytes: usize,
    /// Since when the send buffer has stayed above ¾ full (`Nanos::ZERO`: it is not).
    pub backlog_since: Nanos,
    /// TLS handshake work waits in the engine's queue (the per-cycle budget was spent).
    pub tls_queued: bool,
    /// Its socket may hold more bytes than one read pass took: read again next duty cycle.
    pub read_deferred: bool,
    /// Accepted on an SBE listener: SBE frames over FIXP, not FIX.
    pub sbe: bool,
}

/// What a read pass found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes were appended (or none were waiting).
    Open,
    /// The peer closed the connection or the socket failed.
    Closed,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        recv_bytes: usize,
        send_bytes: usize,
        now: Nanos,
    ) -> Conn {
        Conn {
            stream,
            peer,
            inbuf: vec![0u8; recv_bytes].into_boxed_slice(),
            head: 0,
            tail: 0,
            out: OutBuf::with_capacity(send_bytes),
            session: None,
            opened_at: now,
            closing: false,
            dead: false,
            venue: None,
            connecting: false,
            tls: None,
            tls_failed: false,
            last_rx: Nanos::ZERO,
            serial: 0,
            got_bytes: false,
            junk_bytes: 0,
            backlog_since: Nanos::ZERO,
            tls_queued: false,
            read_deferred: false,
            sbe: false,
        }
    }

    /// Cold (once, when the session is bound): full-size buffers in place of the small
    /// pre-logon ones; unread input moves to the start of the new receive buffer.
    #[cold]
    pub fn grow_buffers(&mut self, recv_bytes: usize, send_bytes: usize) {
        if recv_bytes > self.inbuf.len() {
            let mut inbuf = vec![0u8; recv_bytes].into_boxed_slice();
            let n = self.tail - self.head;
            if let (Some(dst), Some(src)) =
                (inbuf.get_mut(..n), self.inbuf.get(self.head..self.tail))
            {
                dst.copy_from_slice(src);
            }
            self.inbuf = inbuf;
            self.head = 0;
            self.tail = n;
        }
        self.out.grow(send_bytes);
    }

    /// Bytes of receive and send buffer this connection holds.
    pub fn buffer_bytes(&self) -> usize {
        self.inbuf.len() + self.out.capacity()
    }

    /// Reads until the socket would block or the buffer is full. Compacts consumed bytes first.
    pub fn read(&mut self) -> ReadOutcome {
        if self.head > 0 {
            self.inbuf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if let Some(t) = self.tls.as_deref_mut() {
            return match tls::read(t, &mut self.stream, &mut self.inbuf, &mut self.tail) {
                tls::TlsRead::Open => ReadOutcome::Open,
                tls::TlsRead::Closed => ReadOutcome::Closed,
                tls::TlsRead::Failed => {
                    self.tls_failed = true;
                    ReadOutcome::Closed
                }
            };
        }
        loop {
            let Some(spare) = self.inbuf.get_mut(self.tail..) else {
                return ReadOutcome::Open;
            };
            if spare.is_empty() {
                return ReadOutcome::Open; // full: the caller frames, then reads again
            }
            match self.stream.read(spare) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => self.tail += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Busy-poll hot set: exactly one non-blocking `read` of a plaintext socket (compacting
    /// consumed bytes first), whatever it returns. A short read is not retried: the next duty
    /// cycle reads again. `Open` with nothing new when the socket had nothing (EAGAIN) or the
    /// buffer is full.
    #[inline]
    pub fn read_once(&mut self) -> ReadOutcome {
        if self.head > 0 {
            self.inbuf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        let Some(spare) = self.inbuf.get_mut(self.tail..) else {
            return ReadOutcome::Open;
        };
        if spare.is_empty() {
            return ReadOutcome::Open;
        }
        match self.stream.read(spare) {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => {
                self.tail += n;
                ReadOutcome::Open
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                ReadOutcome::Open
            }
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// Writes pending output until done or the socket would block.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(t) = self.tls.as_deref_mut() {
            let n = tls::flush(t, &mut self.stream, self.out.pending())?;
            self.out.consume(n);
            return Ok(());
        }
        while !self.out.is_empty() {
            match self.stream.write(self.out.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Nothing is waiting to be sent: neither plaintext in `out` nor TLS records.
    pub fn all_sent(&self) -> bool {
        self.out.is_empty() && !self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// TLS records (handshake messages, alerts) are waiting for the socket.
    pub fn tls_wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// The TLS handshake finished on this connection.
    pub fn tls_established(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| !t.is_handshaking())
    }

    /// Sends a TLS close_notify (best effort) before the socket is dropped.
    #[cold]
    pub fn close_notify(&mut self) {
        if let Some(t) = self.tls.as_deref_mut() {
            if !t.is_handshaking() {
                t.send_close_notify();
            }
            let _ = t.write_tls(&mut self.stream);
        }
    }

    pub fn buffered(&self) -> &[u8] {
        self.inbuf.get(self.head..self.tail).unwrap_or(&[])
    }
}

/// Binds a listening socket with SO_REUSEADDR (a restarted gateway must not wait out
/// TIME_WAIT) and a deep backlog.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(TcpListener::from_std(s.into()))
}

/// Socket options for an order connection: no Nagle (it adds tens of ms to the tail).
pub fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)
}

/// Starts a non-blocking connect.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    tune(&s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_grow_at_logon_keeping_unread_and_unsent_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(TcpStream::from_std(server), peer, 4096, 4096, Nanos(1));
        assert_eq!(
            conn.buffer_bytes(),
            8192,
            "before logon: the small buffers only"
        );
        conn.inbuf[10..15].copy_from_slice(b"8=FIX");
        conn.head = 10;
        conn.tail = 15;
        assert!(conn.out.append(b"reply"));
        conn.grow_buffers(65536, 1 << 20);
        assert_eq!(conn.buffer_bytes(), 65536 + (1 << 20));
        assert_eq!(conn.buffered(), b"8=FIX");
        assert_eq!(conn.out.pending(), b"reply");
        conn.grow_buffers(1024, 1024);
        assert_eq!(conn.buffer_bytes(), 65536 + (1 << 20), "never shrinks");
        drop(client);
    }
}
