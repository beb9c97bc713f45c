//! HOT — the ClOrdIDs a session used most recently, refused ones included: what a
//! PossResend <97> = Y message is checked against besides the order table (an instruction
//! refused before it reached the table leaves no order behind, but its resend must not get a
//! second report either). A fixed ring; never allocates.

use crate::model::OrderIdStr;

/// How many recent ClOrdIDs a session remembers (a resend comes soon after the original;
/// the order table covers every accepted instruction for much longer).
pub const SEEN_CL_ORD_IDS: usize = 64;

/// A fixed ring of a session's most recent ClOrdIDs.
#[derive(Clone, Debug)]
pub struct SeenClOrdIds {
    ids: [OrderIdStr; SEEN_CL_ORD_IDS],
    next: usize,
}

impl Default for SeenClOrdIds {
    fn default() -> Self {
        SeenClOrdIds {
            ids: [OrderIdStr::EMPTY; SEEN_CL_ORD_IDS],
            next: 0,
        }
    }
}

impl SeenClOrdIds {
    /// Remembers `cl` (ignored when empty or longer than a ClOrdID may be), forgetting the
    /// oldest.
    #[inline]
    pub fn remember(&mut self, cl: &[u8]) {
        let Some(id) = OrderIdStr::new(cl).filter(|c| !c.is_empty()) else {
            return;
        };
        if let Some(slot) = self.ids.get_mut(self.next) {
            *slot = id;
        }
        self.next = (self.next + 1) % SEEN_CL_ORD_IDS;
    }

    /// Whether `cl` is among the remembered ClOrdIDs (cold: PossResend messages only).
    pub fn contains(&self, cl: &[u8]) -> bool {
        !cl.is_empty() && self.ids.iter().any(|id| id.as_bytes() == cl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_most_recent_and_forgets_the_oldest() {
        let mut s = SeenClOrdIds::default();
        assert!(!s.contains(b"A") && !s.contains(b""));
        s.remember(b"A");
        assert!(s.contains(b"A"));
        for i in 0..SEEN_CL_ORD_IDS {
            s.remember(format!("X{i}").as_bytes());
        }
        assert!(!s.contains(b"A"), "the oldest is forgotten");
        assert!(s.contains(format!("X{}", SEEN_CL_ORD_IDS - 1).as_bytes()));
        s.remember(b"");
        s.remember(&[b'L'; 41]);
        assert!(s.contains(b"X1"), "empty and over-long ids take no slot");
    }
}
