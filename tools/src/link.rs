//! COLD — one FIX connection: a `TcpStream` (TCP_NODELAY, blocking with a short read timeout or
//! non-blocking), a receive buffer that [`portcullis::fix::frame`] splits into messages, and the
//! [`OutBuf`] the session layer writes into.
//!
//! The session itself ([`Session`]) is kept apart from the socket so that an acceptor can keep
//! it (sequence numbers, stored messages) across connections; [`receive`] feeds it one message
//! plus the messages queued behind a gap that this message closed.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portcullis::fix::{frame, Frame, Message};
use portcullis::model::Nanos;
use portcullis::session::{Inbound, MessageStore, OutBuf, Session};

/// Largest message either tool accepts (the library's default `scratch_bytes`).
pub const MAX_MESSAGE_BYTES: usize = 16 << 10;
/// Outbound buffer: room for a resend of a few hundred orders before the socket drains it.
pub const OUT_BYTES: usize = 1 << 20;

/// What the front of the receive buffer held.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed message (BodyLength and CheckSum correct).
    Message(Vec<u8>),
    /// A message with a bad BodyLength or CheckSum: the session ignores it.
    Garbled(Vec<u8>),
    /// The peer announced a message larger than [`MAX_MESSAGE_BYTES`]: close the connection.
    TooLarge,
}

/// A socket and its buffers.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    /// TLS over `stream` (fixclient `--tls`), handshake already done.
    tls: Option<Box<rustls::ClientConnection>>,
    rx: Vec<u8>,
    pub out: OutBuf,
    /// The peer closed its side, or the socket failed.
    pub closed: bool,
    /// Why TLS ended the connection (an alert from the peer, a bad record), if it did.
    pub tls_error: Option<String>,
}

impl Link {
    /// Wraps a connected stream: TCP_NODELAY; `read_timeout` `None` makes it non-blocking.
    pub fn new(stream: TcpStream, read_timeout: Option<Duration>) -> io::Result<Link> {
        stream.set_nodelay(true)?;
        match read_timeout {
            Some(t) => stream.set_read_timeout(Some(t))?,
            None => stream.set_nonblocking(true)?,
        }
        Ok(Link {
            stream,
            tls: None,
            tls_error: None,
            rx: Vec::with_capacity(64 << 10),
            out: OutBuf::with_capacity(OUT_BYTES),
            closed: false,
        })
    }

    /// Wraps a stream on which a TLS handshake was completed (see `crate::tls::handshake`).
    pub fn with_tls(
        stream: TcpStream,
        tls: rustls::ClientConnection,
        read_timeout: Option<Duration>,
    ) -> io::Result<Link> {
        let mut link = Link::new(stream, read_timeout)?;
        link.tls = Some(Box::new(tls));
        Ok(link)
    }

    pub fn peer(&self) -> String {
        self.stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string())
    }

    /// One read: waits up to the read timeout (blocking mode) or not at all. Returns the number
    /// of bytes read; 0 also when nothing was there. Sets `closed` on EOF or error.
    pub fn read(&mut self) -> usize {
        if self.closed {
            return 0;
        }
        let mut tmp = [0u8; 16 << 10];
        let got = match self.tls.as_deref_mut() {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).read(&mut tmp),
            None => self.stream.read(&mut tmp),
        };
        match got {
            Ok(0) => {
                self.closed = true;
                0
            }
            Ok(n) => {
                self.rx.extend_from_slice(tmp.get(..n).unwrap_or_default());
                n
            }
            Err(e) if is_transient(&e) => 0,
            Err(e) => {
                if self.tls.is_some() {
                    self.tls_error = Some(e.to_string());
                }
                self.closed = true;
                0
            }
        }
    }

    /// The next complete message in the receive buffer, if any; garbage is dropped.
    pub fn next_incoming(&mut self) -> Option<Incoming> {
        loop {
            match frame(&self.rx, MAX_MESSAGE_BYTES) {
                Frame::Incomplete => return None,
                Frame::Skip { len } => {
                    self.rx.drain(..len.min(self.rx.len()));
                }
                Frame::TooLarge => {
                    self.rx.clear();
                    return Some(Incoming::TooLarge);
                }
                Frame::Message {
                    len,
                    body_length_ok,
                    checksum_ok,
                } => {
                    let bytes: Vec<u8> = self.rx.drain(..len.min(self.rx.len())).collect();
                    return Some(if body_length_ok && checksum_ok {
                        Incoming::Message(bytes)
                    } else {
                        Incoming::Garbled(bytes)
                    });
                }
            }
        }
    }

    /// Writes as much of `out` as the socket takes now. A blocking socket takes it all.
    pub fn flush(&mut self) {
        while !self.out.is_empty() && !self.closed {
            let wrote = match self.tls.as_deref_mut() {
                Some(tls) => {
                    let mut s = rustls::Stream::new(tls, &mut self.stream);
                    s.write(self.out.pending())
                        .and_then(|n| s.flush().map(|()| n))
                }
                None => self.stream.write(self.out.pending()),
            };
            match wrote {
                Ok(0) => self.closed = true,
                Ok(n) => self.out.consume(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient(&e) => return,
                Err(_) => self.closed = true,
            }
        }
    }

    /// Closes both directions (what is still in `out` is lost: flush first).
    pub fn shutdown(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut self.stream);
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.closed = true;
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Feeds one framed message to `session`, then every message queued behind a gap it closed.
/// Returns each message the session processed with its verdict, stopping after a
/// `Disconnect`. A message that does not decode is counted as garbled and returned as nothing.
pub fn receive<S: MessageStore>(
    session: &mut Session<S>,
    out: &mut OutBuf,
    bytes: Vec<u8>,
    now: Nanos,
) -> Vec<(Vec<u8>, Inbound)> {
    let mut done = Vec::new();
    let inbound = match Message::decode(&bytes) {
        Ok(m) => session.on_message(&m, now, out),
        Err(_) => {
            session.on_garbled();
            return done;
        }
    };
    let go_on = !matches!(inbound, Inbound::Disconnect(_));
    done.push((bytes, inbound));
    if !go_on {
        return done;
    }
    let mut scratch = vec![0u8; MAX_MESSAGE_BYTES];
    while let Some(n) = session.take_queued(&mut scratch) {
        let Some(queued) = scratch.get(..n).map(<[u8]>::to_vec) else {
            break;
        };
        let inbound = match Message::decode(&queued) {
            Ok(m) => session.on_message(&m, now, out),
            Err(_) => continue,
        };
        let stop = matches!(inbound, Inbound::Disconnect(_));
        done.push((queued, inbound));
        if stop {
            break;
        }
    }
    done
}
