//! HOT — the routing header fields of a reply (FIX Transport, "third-party addressing").
//!
//! A message that carries OnBehalfOfCompID/SubID/LocationID <115>/<116>/<144> is answered with
//! the same values as DeliverToCompID/SubID/LocationID <128>/<129>/<145>, and DeliverTo* on
//! the inbound comes back as OnBehalfOf*. [`ReplyRouting`] holds the swapped values inline
//! (no heap), so an order can keep them for the reports that follow it later (fills).
//! Never allocates, never reads time.

use super::{tags, Message, Writer};
use crate::model::InlineStr;

/// Longest routing value we keep (CompIDs are at most 32 characters here too).
pub const ROUTING_VALUE_BYTES: usize = 32;

/// Inbound routing tags, in the order of [`REPLY_TAGS`].
const INBOUND_TAGS: [i32; 6] = [
    tags::ON_BEHALF_OF_COMP_ID,
    tags::ON_BEHALF_OF_SUB_ID,
    tags::ON_BEHALF_OF_LOCATION_ID,
    tags::DELIVER_TO_COMP_ID,
    tags::DELIVER_TO_SUB_ID,
    tags::DELIVER_TO_LOCATION_ID,
];

/// The tag each inbound routing field is written back as.
const REPLY_TAGS: [i32; 6] = [
    tags::DELIVER_TO_COMP_ID,
    tags::DELIVER_TO_SUB_ID,
    tags::DELIVER_TO_LOCATION_ID,
    tags::ON_BEHALF_OF_COMP_ID,
    tags::ON_BEHALF_OF_SUB_ID,
    tags::ON_BEHALF_OF_LOCATION_ID,
];

/// The routing header fields a reply carries: the inbound message's, swapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRouting {
    /// Bit `i` set: `values[i]` is sent. The common message carries no routing fields, and
    /// this byte is all its answers look at.
    present: u8,
    /// Values indexed like [`REPLY_TAGS`]; empty: not sent.
    values: [InlineStr<ROUTING_VALUE_BYTES>; 6],
}

impl Default for ReplyRouting {
    fn default() -> Self {
        ReplyRouting::NONE
    }
}

impl ReplyRouting {
    /// No routing fields.
    pub const NONE: ReplyRouting = ReplyRouting {
        present: 0,
        values: [InlineStr::EMPTY; 6],
    };

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// `Some` only when there are fields to send: callers that keep or pass the routing copy
    /// its 200 bytes only then.
    #[inline]
    pub fn non_empty(&self) -> Option<ReplyRouting> {
        if self.is_empty() {
            None
        } else {
            Some(*self)
        }
    }

    /// The routing to write for `r` (nothing for `None`).
    #[inline]
    pub fn or_none(r: &Option<ReplyRouting>) -> &ReplyRouting {
        r.as_ref().unwrap_or(&ReplyRouting::NONE)
    }

    #[inline]
    fn set(&mut self, i: usize, v: InlineStr<ROUTING_VALUE_BYTES>) {
        if let Some(slot) = self.values.get_mut(i) {
            *slot = v;
            if v.is_empty() {
                self.present &= !(1 << i);
            } else {
                self.present |= 1 << i;
            }
        }
    }

    /// The routing of a reply to `msg` (one pass over its fields); `None` when it carries no
    /// routing field (nothing is built or copied then).
    ///
    /// # Errors
    /// The tag of a routing field whose value is longer than [`ROUTING_VALUE_BYTES`].
    #[inline]
    pub fn reply_to(msg: &Message<'_>) -> Result<Option<ReplyRouting>, i32> {
        let mut r: Option<ReplyRouting> = None;
        for f in msg.fields() {
            // Routing tags are all in 115..=145: one compare skips the rest.
            if !(tags::ON_BEHALF_OF_COMP_ID..=tags::DELIVER_TO_LOCATION_ID).contains(&f.tag) {
                continue;
            }
            if let Some(i) = INBOUND_TAGS.iter().position(|t| *t == f.tag) {
                let v = InlineStr::new(msg.value(f)).ok_or(f.tag)?;
                r.get_or_insert(ReplyRouting::NONE).set(i, v);
            }
        }
        Ok(r.filter(|r| !r.is_empty()))
    }

    /// Like [`ReplyRouting::reply_to`], dropping a value that is too long (for answers that
    /// must go out anyway, such as the Reject of that very message).
    #[inline]
    pub fn reply_to_lossy(msg: &Message<'_>) -> ReplyRouting {
        let mut r = ReplyRouting::NONE;
        for f in msg.fields() {
            if !(tags::ON_BEHALF_OF_COMP_ID..=tags::DELIVER_TO_LOCATION_ID).contains(&f.tag) {
                continue;
            }
            if let (Some(i), Some(v)) = (
                INBOUND_TAGS.iter().position(|t| *t == f.tag),
                InlineStr::new(msg.value(f)),
            ) {
                r.set(i, v);
            }
        }
        r
    }

    /// Writes the fields (header fields: call right after the standard header).
    #[inline]
    pub fn write(&self, w: &mut Writer<'_>) {
        if self.present == 0 {
            return;
        }
        for (t, v) in REPLY_TAGS.iter().zip(&self.values) {
            if !v.is_empty() {
                w.str(*t, v.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

    #[test]
    fn on_behalf_of_comes_back_as_deliver_to_and_the_reverse() {
        let m = with_trailer(b"8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x01115=FIRM\x01116=DESK\x01144=LDN\x01128=BROKER\x0111=A\x01");
        let msg = Message::decode(&m).unwrap();
        let r = ReplyRouting::reply_to(&msg).unwrap().unwrap();
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", b"8");
        r.write(&mut w);
        let range = w.finish().unwrap();
        let out = Message::decode(&buf[range]).unwrap();
        assert_eq!(out.get(128), Some(&b"FIRM"[..]));
        assert_eq!(out.get(129), Some(&b"DESK"[..]));
        assert_eq!(out.get(145), Some(&b"LDN"[..]));
        assert_eq!(out.get(115), Some(&b"BROKER"[..]));
        assert_eq!(out.get(116), None);
        assert!(ReplyRouting::NONE.is_empty() && !r.is_empty());
    }

    #[test]
    fn an_over_long_value_names_its_tag() {
        let long = [b'X'; 33];
        let mut raw =
            b"8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x01116="
                .to_vec();
        raw.extend_from_slice(&long);
        raw.extend_from_slice(b"\x0111=A\x01");
        let m = with_trailer(&raw);
        let msg = Message::decode(&m).unwrap();
        assert_eq!(ReplyRouting::reply_to(&msg), Err(116));
        assert!(ReplyRouting::reply_to_lossy(&msg).is_empty());
    }
}
