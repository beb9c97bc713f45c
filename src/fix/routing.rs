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
        values: [InlineStr::EMPTY; 6],
    };

    pub fn is_empty(&self) -> bool {
        self.values.iter().all(InlineStr::is_empty)
    }

    /// The routing of a reply to `msg` (one pass over its fields).
    ///
    /// # Errors
    /// The tag of a routing field whose value is longer than [`ROUTING_VALUE_BYTES`].
    #[inline]
    pub fn reply_to(msg: &Message<'_>) -> Result<ReplyRouting, i32> {
        let mut r = ReplyRouting::NONE;
        for f in msg.fields() {
            // Routing tags are all in 115..=145: one compare skips the rest.
            if !(tags::ON_BEHALF_OF_COMP_ID..=tags::DELIVER_TO_LOCATION_ID).contains(&f.tag) {
                continue;
            }
            if let Some(i) = INBOUND_TAGS.iter().position(|t| *t == f.tag) {
                let v = InlineStr::new(msg.value(f)).ok_or(f.tag)?;
                if let Some(slot) = r.values.get_mut(i) {
                    *slot = v;
                }
            }
        }
        Ok(r)
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
                if let Some(slot) = r.values.get_mut(i) {
                    *slot = v;
                }
            }
        }
        r
    }

    /// Writes the fields (header fields: call right after the standard header).
    #[inline]
    pub fn write(&self, w: &mut Writer<'_>) {
        for (t, v) in REPLY_TAGS.iter().zip(&self.values) {
            if !v.is_empty() {
                w.str(*t as u32, v.as_bytes());
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
        let r = ReplyRouting::reply_to(&msg).unwrap();
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
