//! HOT — the connection slab: every open connection by its [`ConnId`], which is also its mio
//! [`Token`] (tokens at and above `LISTENER_BASE` name listeners instead), and the set of
//! connections with output to flush at the end of the duty cycle.
//!
//! Owned by the gateway thread. Sized once at startup (`gateway.max_connections` slots): opening
//! and closing a connection only moves an id between the slab and its free list, never grows
//! either.

use mio::Token;

use super::LISTENER_BASE;
use crate::model::ConnId;
use crate::net::Conn;

impl From<ConnId> for Token {
    #[inline]
    fn from(c: ConnId) -> Token {
        Token(c.index())
    }
}

/// What a poll token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A connection slot.
    Conn(ConnId),
    /// A listener, by its index in the engine's listener list (registered as
    /// `LISTENER_BASE + index` by the builder).
    Listener(usize),
}

impl Source {
    #[inline]
    pub(crate) fn of(token: Token) -> Source {
        match token.0.checked_sub(LISTENER_BASE) {
            Some(listener) => Source::Listener(listener),
            // Below LISTENER_BASE (2^30): fits a `ConnId`.
            None => Source::Conn(ConnId::of(token.0)),
        }
    }
}

/// Every connection slot, open or free.
pub(crate) struct Conns {
    slots: Vec<Option<Conn>>,
    /// Free slots; the lowest is taken first.
    free: Vec<ConnId>,
}

impl Conns {
    /// `capacity` slots, all free (`capacity` ≤ 65 536, checked by `config`). Cold.
    pub(crate) fn new(capacity: usize) -> Conns {
        Conns {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().map(ConnId::of).collect(),
        }
    }

    /// Connection `c`, if its slot is open.
    #[inline]
    pub(crate) fn get(&self, c: ConnId) -> Option<&Conn> {
        self.slots.get(c.index()).and_then(Option::as_ref)
    }

    /// Connection `c`, if its slot is open.
    #[inline]
    pub(crate) fn get_mut(&mut self, c: ConnId) -> Option<&mut Conn> {
        self.slots.get_mut(c.index()).and_then(Option::as_mut)
    }

    /// Number of slots, open or free.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether a slot is free for a new connection.
    pub(crate) fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Takes a free slot for a connection about to be [`fill`](Conns::fill)ed; give it back
    /// with [`unreserve`](Conns::unreserve) if that does not happen.
    pub(crate) fn reserve(&mut self) -> Option<ConnId> {
        self.free.pop()
    }

    /// Returns a reserved slot that was never filled.
    pub(crate) fn unreserve(&mut self, c: ConnId) {
        self.free.push(c);
    }

    /// Puts `conn` into the reserved slot `c`.
    pub(crate) fn fill(&mut self, c: ConnId, conn: Conn) {
        if let Some(slot) = self.slots.get_mut(c.index()) {
            *slot = Some(conn);
        }
    }

    /// Takes connection `c` out of its slot, which is free again. `None`: it was not open.
    pub(crate) fn remove(&mut self, c: ConnId) -> Option<Conn> {
        let conn = self.slots.get_mut(c.index()).and_then(Option::take)?;
        self.free.push(c);
        Some(conn)
    }

    /// Every slot's id, open or free. Borrows nothing: the slab may be changed while iterating.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnId> + use<> {
        (0..self.slots.len()).map(ConnId::of)
    }

    /// The open connections.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }

    /// The highest open slot.
    pub(crate) fn last(&self) -> Option<ConnId> {
        self.slots.iter().rposition(Option::is_some).map(ConnId::of)
    }
}

/// Connections with output to flush at the end of the duty cycle, each once.
#[derive(Default)]
pub(crate) struct Dirty(Vec<ConnId>);

impl Dirty {
    /// Room for `n` connections (every slot): marking never allocates. Cold.
    pub(crate) fn with_capacity(n: usize) -> Dirty {
        Dirty(Vec::with_capacity(n))
    }

    /// Marks `c` for the flush (once; beyond the capacity it is not marked).
    #[inline]
    pub(crate) fn mark(&mut self, c: ConnId) {
        if !self.0.contains(&c) && self.0.len() < self.0.capacity() {
            self.0.push(c);
        }
    }

    /// The marked connections, in marking order.
    pub(crate) fn as_slice(&self) -> &[ConnId] {
        &self.0
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Nanos;

    #[test]
    fn tokens_below_the_listener_base_are_connections() {
        let c = ConnId::of(7);
        assert_eq!(Source::of(Token::from(c)), Source::Conn(c));
        assert_eq!(
            Source::of(Token(LISTENER_BASE - 1)),
            Source::Conn(ConnId::of(LISTENER_BASE - 1))
        );
        assert_eq!(Source::of(Token(LISTENER_BASE)), Source::Listener(0));
        assert_eq!(Source::of(Token(LISTENER_BASE + 3)), Source::Listener(3));
    }

    #[test]
    fn slots_are_handed_out_lowest_first_and_returned_when_unused() {
        let mut conns = Conns::new(3);
        assert_eq!(conns.reserve(), Some(ConnId(0)));
        assert_eq!(conns.reserve(), Some(ConnId(1)));
        conns.unreserve(ConnId(1));
        assert_eq!(conns.reserve(), Some(ConnId(1)));
        assert_eq!(conns.reserve(), Some(ConnId(2)));
        assert!(!conns.has_free());
        assert_eq!(conns.reserve(), None);
        // Nothing was filled: removing frees nothing.
        assert!(conns.remove(ConnId(2)).is_none());
        assert!(!conns.has_free());
        assert_eq!(conns.last(), None);
        assert_eq!(
            conns.ids().collect::<Vec<_>>(),
            [ConnId(0), ConnId(1), ConnId(2)]
        );
    }

    #[test]
    fn a_filled_slot_is_open_until_removed_and_then_handed_out_again() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let conn = Conn::new(
            mio::net::TcpStream::from_std(stream),
            addr,
            64,
            64,
            Nanos::ZERO,
        );
        let mut conns = Conns::new(2);
        let c = conns.reserve().unwrap();
        conns.fill(c, conn);
        assert!(conns.get(c).is_some_and(|conn| conn.peer == addr));
        assert_eq!(conns.last(), Some(c));
        assert_eq!(conns.iter().count(), 1);
        assert!(conns.remove(c).is_some());
        assert!(conns.get_mut(c).is_none());
        assert_eq!(conns.last(), None);
        assert!(conns.remove(c).is_none());
        // Freed once (a second remove frees nothing): the lowest slot first, then the other.
        assert_eq!(conns.reserve(), Some(c));
        assert_eq!(conns.reserve(), Some(ConnId(1)));
        assert_eq!(conns.reserve(), None);
    }

    #[test]
    fn dirty_marks_each_connection_once_and_never_grows() {
        let mut d = Dirty::with_capacity(2);
        let cap = d.0.capacity();
        d.mark(ConnId(1));
        d.mark(ConnId(1));
        d.mark(ConnId(0));
        assert_eq!(d.as_slice(), [ConnId(1), ConnId(0)]);
        for i in 2..100 {
            d.mark(ConnId(i));
        }
        assert_eq!(d.0.capacity(), cap);
        assert_eq!(d.as_slice().len(), cap);
        d.clear();
        assert!(d.as_slice().is_empty());
    }
}
