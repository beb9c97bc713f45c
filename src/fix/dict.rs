//! HOT — the FIX dictionaries (`fix-specs/FIX44.dict`, `FIX42.dict`) as static tables, compiled by
//! `tools/codegen` into `generated/`, with the lookups [`super::validate`] and the session layer
//! need.
//!
//! Owns no state and no thread: every table is a `&'static` slice built at compile time, so a
//! lookup never allocates, never locks and never fails to be there.
//!
//! # Table invariants (checked by `codegen` when it writes the tables, and by the tests below)
//! - `fields` is sorted by tag, tags unique; `field_index[tag]` is the position in `fields` plus
//!   one, or 0 for a tag the dictionary does not know. `field_index` covers 0..=max tag.
//! - `header`, `trailer`, each message's `fields` and `groups` are sorted by tag.
//! - `messages` and `unsupported` are sorted by packed [`MsgType`]; no MsgType is in both.
//! - Every tag a table names is in `fields`; a group's count tag is in its message's `fields`,
//!   its members are not; a group has 1..=64 members and the first is the delimiter.

use super::decode::MsgType;
use super::BeginString;

/// Highest tag a dictionary may define (codegen refuses more): `validate` tracks tag presence in
/// a fixed bitset of `MAX_TAG + 1` bits, so a required field above it could never be found.
pub const MAX_TAG: i32 = 8191;

/// A FIX data type, as it decides the accepted value format (see `validate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Int,
    SeqNum,
    Length,
    NumInGroup,
    DayOfMonth,
    Qty,
    Price,
    PriceOffset,
    Amt,
    Percentage,
    Float,
    Char,
    Boolean,
    String,
    MultipleCharValue,
    MultipleValueString,
    Currency,
    Exchange,
    Country,
    Language,
    Data,
    UtcTimestamp,
    UtcTimeOnly,
    UtcDateOnly,
    LocalMktDate,
    MonthYear,
}

/// Where a field belongs in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Header,
    Body,
    Trailer,
}

/// One field of the dictionary.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    pub tag: i32,
    pub name: &'static str,
    pub ty: FieldType,
    pub place: Place,
    /// Allowed values, sorted bytewise; empty when any well-formed value is allowed. For
    /// multiple-value types each space-separated element must be one of them.
    pub values: &'static [&'static [u8]],
}

/// A field's use in the header, the trailer, a message or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRef {
    pub tag: i32,
    pub required: bool,
}

/// A repeating group: `count_tag` (NumInGroup) followed by `count` entries of `members`.
#[derive(Clone, Copy, Debug)]
pub struct GroupDef {
    pub count_tag: i32,
    pub required: bool,
    /// In dictionary order; `members[0]` is the delimiter that starts every entry.
    pub members: &'static [FieldRef],
}

/// `tag` is required when `when_tag` has one of `when_values` (e.g. Price when OrdType is Limit).
#[derive(Clone, Copy, Debug)]
pub struct Condition {
    pub tag: i32,
    pub when_tag: i32,
    pub when_values: &'static [&'static [u8]],
}

/// Session (admin) or application message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Admin,
    App,
}

/// Whether the gateway processes a message of this type when it receives one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We receive and handle it.
    Inbound,
    /// We only send it; received, it is validated and then refused as an unsupported type.
    Outbound,
}

/// One message type the dictionary defines field by field.
#[derive(Clone, Copy, Debug)]
pub struct MessageDef {
    pub msg_type: MsgType,
    pub name: &'static str,
    pub category: Category,
    pub direction: Direction,
    /// Body fields (group count tags included, group members not), sorted by tag.
    pub fields: &'static [FieldRef],
    /// Sorted by count tag.
    pub groups: &'static [GroupDef],
    pub conditions: &'static [Condition],
}

impl MessageDef {
    /// The body field `tag` at the top level of this message (not inside a group).
    pub fn field(&self, tag: i32) -> Option<&'static FieldRef> {
        let fields: &'static [FieldRef] = self.fields;
        fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .and_then(|i| fields.get(i))
    }
    /// The group whose NumInGroup tag is `count_tag`.
    pub fn group(&self, count_tag: i32) -> Option<&'static GroupDef> {
        let groups: &'static [GroupDef] = self.groups;
        groups
            .binary_search_by_key(&count_tag, |g| g.count_tag)
            .ok()
            .and_then(|i| groups.get(i))
    }
}

/// A MsgType of the FIX version that the gateway does not handle (BusinessMessageReject 380=3).
#[derive(Clone, Copy, Debug)]
pub struct KnownType {
    pub msg_type: MsgType,
    pub name: &'static str,
}

/// One FIX version's dictionary. Obtain it with [`dictionary`].
#[derive(Debug)]
pub struct Dictionary {
    pub(crate) version: BeginString,
    pub(crate) fields: &'static [FieldDef],
    pub(crate) field_index: &'static [u16],
    pub(crate) header: &'static [FieldRef],
    pub(crate) trailer: &'static [FieldRef],
    pub(crate) messages: &'static [MessageDef],
    pub(crate) unsupported: &'static [KnownType],
}

/// The dictionary for `version`.
pub fn dictionary(version: BeginString) -> &'static Dictionary {
    match version {
        BeginString::Fix42 => &super::generated::fix42::DICTIONARY,
        BeginString::Fix44 => &super::generated::fix44::DICTIONARY,
    }
}

impl Dictionary {
    pub fn version(&self) -> BeginString {
        self.version
    }
    /// The field `tag`, or `None` for a tag this version does not define (or `tag <= 0`).
    #[inline]
    pub fn field(&self, tag: i32) -> Option<&'static FieldDef> {
        let slot = usize::try_from(tag).ok()?;
        let index = usize::from(*self.field_index.get(slot)?).checked_sub(1)?;
        self.fields.get(index)
    }
    /// The type of field `tag`.
    #[inline]
    pub fn field_type(&self, tag: i32) -> Option<FieldType> {
        self.field(tag).map(|f| f.ty)
    }
    /// Whether `value` is allowed for `tag`: `None` if the tag is unknown, `Some(true)` when the
    /// field has no enumeration. Checks each element of a multiple-value field.
    pub fn is_allowed_value(&self, tag: i32, value: &[u8]) -> Option<bool> {
        self.field(tag).map(|f| value_in_enum(f, value))
    }
    pub fn is_header_field(&self, tag: i32) -> bool {
        self.field(tag).is_some_and(|f| f.place == Place::Header)
    }
    pub fn is_trailer_field(&self, tag: i32) -> bool {
        self.field(tag).is_some_and(|f| f.place == Place::Trailer)
    }
    /// Header fields, sorted by tag.
    pub fn header(&self) -> &'static [FieldRef] {
        self.header
    }
    /// Trailer fields, sorted by tag.
    pub fn trailer(&self) -> &'static [FieldRef] {
        self.trailer
    }
    /// The message defined field by field for `msg_type`.
    pub fn message(&self, msg_type: MsgType) -> Option<&'static MessageDef> {
        let messages: &'static [MessageDef] = self.messages;
        messages
            .binary_search_by_key(&msg_type.0, |m| m.msg_type.0)
            .ok()
            .and_then(|i| messages.get(i))
    }
    /// All messages the dictionary defines, sorted by packed MsgType.
    pub fn messages(&self) -> &'static [MessageDef] {
        self.messages
    }
    /// A MsgType valid in this FIX version that the gateway does not handle.
    pub fn is_known_unsupported(&self, msg_type: MsgType) -> bool {
        self.unsupported
            .binary_search_by_key(&msg_type.0, |k| k.msg_type.0)
            .is_ok()
    }
    /// A MsgType valid in this FIX version, handled by us or not.
    pub fn is_known_msg_type(&self, msg_type: MsgType) -> bool {
        self.message(msg_type).is_some() || self.is_known_unsupported(msg_type)
    }
    /// Whether the gateway processes received messages of this type.
    pub fn is_handled(&self, msg_type: MsgType) -> bool {
        self.message(msg_type)
            .is_some_and(|m| m.direction == Direction::Inbound)
    }
}

/// `value` against `f`'s enumeration (element-wise for multiple-value types).
pub(crate) fn value_in_enum(f: &FieldDef, value: &[u8]) -> bool {
    if f.values.is_empty() {
        return true;
    }
    let one = |v: &[u8]| f.values.binary_search(&v).is_ok();
    match f.ty {
        FieldType::MultipleValueString | FieldType::MultipleCharValue => {
            value.split(|b| *b == b' ').all(one)
        }
        _ => one(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [&'static Dictionary; 2] {
        [
            dictionary(BeginString::Fix42),
            dictionary(BeginString::Fix44),
        ]
    }

    #[test]
    fn tables_keep_their_sort_and_reference_invariants() {
        for d in both() {
            assert!(d.fields.windows(2).all(|w| w[0].tag < w[1].tag));
            assert!(d.fields.iter().all(|f| (1..=MAX_TAG).contains(&f.tag)));
            for (i, f) in d.fields.iter().enumerate() {
                assert_eq!(usize::from(d.field_index[f.tag as usize]), i + 1);
                assert!(f.values.windows(2).all(|w| w[0] < w[1]), "{}", f.name);
            }
            let known = |t: i32| d.field(t).is_some();
            for list in [d.header, d.trailer] {
                assert!(list.windows(2).all(|w| w[0].tag < w[1].tag));
                assert!(list.iter().all(|f| known(f.tag)));
            }
            assert!(d
                .messages
                .windows(2)
                .all(|w| w[0].msg_type.0 < w[1].msg_type.0));
            assert!(d
                .unsupported
                .windows(2)
                .all(|w| w[0].msg_type.0 < w[1].msg_type.0));
            for m in d.messages {
                assert!(!d.is_known_unsupported(m.msg_type), "{}", m.name);
                assert!(
                    m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
                    "{}",
                    m.name
                );
                assert!(m
                    .fields
                    .iter()
                    .all(|f| known(f.tag) && d.field(f.tag).unwrap().place == Place::Body));
                assert!(m.groups.windows(2).all(|w| w[0].count_tag < w[1].count_tag));
                for g in m.groups {
                    assert!(m.field(g.count_tag).is_some());
                    assert!((1..=64).contains(&g.members.len()));
                    assert!(g
                        .members
                        .iter()
                        .all(|f| known(f.tag) && m.field(f.tag).is_none()));
                }
            }
        }
    }

    #[test]
    fn looks_up_fields_types_and_enums() {
        let d = dictionary(BeginString::Fix44);
        assert_eq!(d.version(), BeginString::Fix44);
        assert_eq!(d.field_type(38), Some(FieldType::Qty));
        assert_eq!(d.field_type(52), Some(FieldType::UtcTimestamp));
        assert_eq!(d.field(54).map(|f| f.name), Some("Side"));
        assert!(d.field(0).is_none() && d.field(-1).is_none() && d.field(999).is_none());
        assert!(d.field(5000).is_none() && d.field(i32::MAX).is_none());
        assert_eq!(d.is_allowed_value(54, b"1"), Some(true));
        assert_eq!(d.is_allowed_value(54, b"Z"), Some(false));
        assert_eq!(d.is_allowed_value(55, b"anything"), Some(true));
        assert_eq!(d.is_allowed_value(18, b"1 G"), Some(true));
        assert_eq!(d.is_allowed_value(18, b"1 !"), Some(false));
        assert_eq!(d.is_allowed_value(999, b"1"), None);
        assert!(d.is_header_field(52) && !d.is_header_field(55) && d.is_trailer_field(10));
        assert!(d.header().iter().any(|f| f.tag == 52 && f.required));
    }

    #[test]
    fn knows_handled_sent_and_unsupported_message_types() {
        let d44 = dictionary(BeginString::Fix44);
        let d42 = dictionary(BeginString::Fix42);
        assert!(d44.is_handled(MsgType::NEW_ORDER_SINGLE));
        assert!(d44.is_handled(MsgType::ORDER_MASS_CANCEL_REQUEST));
        assert!(!d44.is_handled(MsgType::EXECUTION_REPORT));
        assert!(d44.message(MsgType::EXECUTION_REPORT).is_some());
        assert!(d44.is_known_unsupported(MsgType::pack(b"S")));
        assert!(d44.is_known_unsupported(MsgType::pack(b"AE")));
        assert!(!d44.is_known_msg_type(MsgType::pack(b"ZZ")));
        // Mass cancel is FIX 4.3+: a 4.2 session has never heard of it.
        assert!(!d42.is_known_msg_type(MsgType::ORDER_MASS_CANCEL_REQUEST));
        assert!(d42.is_known_unsupported(MsgType::pack(b"V")));
        let nos = d44.message(MsgType::NEW_ORDER_SINGLE).unwrap();
        // OrderQty is optional at the session level (CashOrderQty may stand in); the gateway
        // answers a missing one with an ExecutionReport reject.
        assert!(!nos.field(38).unwrap().required && !nos.field(21).unwrap().required);
        assert_eq!(nos.group(453).map(|g| g.members[0].tag), Some(448));
        let nos42 = d42.message(MsgType::NEW_ORDER_SINGLE).unwrap();
        assert!(nos42.field(21).unwrap().required && !nos42.field(60).unwrap().required);
    }
}
