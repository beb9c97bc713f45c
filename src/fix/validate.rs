//! HOT — checks a decoded message against our FIX dictionary (`fix-specs/`, compiled into
//! `generated/`) and names the first problem as the session layer must report it.
//!
//! Owns no state; runs on the gateway thread; never allocates (fixed-size stack arrays only),
//! never panics on wire bytes, never reads the clock.
//!
//! # Order of checks
//! When a message has several problems, the one reported is the one QuickFIX reports
//! (`DataDictionary::validate`: structure, MsgType, required fields, then `iterate` per field):
//! 1. **Structure** (message order): a header field after a body or trailer field, or a body
//!    field after a trailer field → 14, RefTagID = that field. Header fields interleaved among
//!    themselves, and body fields in any order, are fine (QuickFIX `15_`).
//! 2. **MsgType** not valid for the FIX version → 11, RefTagID 35.
//! 3. **Group framing** (message order, as QuickFIX/J's parser): an entry that does not start
//!    with the group's delimiter, or a member repeated within one entry → 15, RefTagID = member.
//! 4. **Required fields** missing → 1: header (by tag), trailer, body (by tag), then each group
//!    entry's required members.
//! 5. **Per field**, header fields by tag, then trailer, then body, then group members in
//!    message order; for each field: repeated outside a group → 13; empty → 4; bad format → 6;
//!    value not in the enumeration → 5; tag unknown to the dictionary (≤ 0, 999, 5000 …) → 0;
//!    known tag not allowed in this message → 2; a NumInGroup whose count differs from the
//!    entries that follow → 16.
//! 6. **Conditionally required** application fields (e.g. Price when OrdType is Limit) →
//!    [`Invalid::ConditionallyRequiredFieldMissing`].
//! 7. A MsgType the version knows but we do not handle — listed `unsupported`, or a message we
//!    only send — → [`Invalid::UnsupportedMessageType`]. Header and trailer of such a message
//!    are still checked (steps 1–5); the body of an `unsupported` type is not, since the
//!    dictionary does not describe it.
//!
//! # Fast path
//! [`validate`] first asks [`fast::accepts`], one pass over compile-time tables (rank, allowed,
//! seen and required bitsets per message type, a value check chosen per field), whether the
//! message is certainly valid; only when it cannot say so (a problem, a repeating group, a type
//! we refuse) does [`validate_precise`] run the checks above in order. The fast path never
//! produces an error itself, so the reported reason and RefTagID are the precise path's.
//!
//! # FIX 4.2
//! FIX 4.2's SessionRejectReason <373> stops at 11. `validate` still names the precise reason;
//! [`SessionRejectReason::wire_value`] returns `None` for 13..=17 and 99 on a 4.2 session, and
//! the Reject then carries RefTagID <371> and Text <58> without 373 — what QuickFIX sends
//! (`test/definitions/server/fix42/14h_RepeatedTag.def`, `14i_…`).

use super::decode::{parse_timestamp, parse_uint, Field, Message, MsgType, MAX_FIELDS};
use super::dict::{
    dictionary, value_in_enum, Dictionary, Direction, FieldType, GroupDef, MessageDef, Place,
    MAX_TAG,
};
use super::BeginString;

pub mod fast;

/// SessionRejectReason <373>.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SessionRejectReason {
    InvalidTagNumber = 0,
    RequiredTagMissing = 1,
    TagNotDefinedForMessageType = 2,
    UndefinedTag = 3,
    TagSpecifiedWithoutAValue = 4,
    ValueIsIncorrect = 5,
    IncorrectDataFormatForValue = 6,
    DecryptionProblem = 7,
    SignatureProblem = 8,
    CompIdProblem = 9,
    SendingTimeAccuracyProblem = 10,
    InvalidMsgType = 11,
    XmlValidationError = 12,
    TagAppearsMoreThanOnce = 13,
    TagSpecifiedOutOfRequiredOrder = 14,
    RepeatingGroupFieldsOutOfOrder = 15,
    IncorrectNumInGroupCountForRepeatingGroup = 16,
    NonDataValueIncludesFieldDelimiter = 17,
    Other = 99,
}

/// What is wrong with a message, for a Reject <3> or BusinessMessageReject <j>.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Answer with Reject <3>: reason, RefTagID <371> if a tag is at fault, and Text <58>.
    Session {
        reason: SessionRejectReason,
        tag: Option<i32>,
        text: &'static str,
    },
    /// A MsgType the dictionary knows but this gateway does not handle: BusinessMessageReject
    /// <j> with BusinessRejectReason <380> = 3 (unsupported message type).
    UnsupportedMessageType,
    /// An application message without a conditionally required field: BusinessMessageReject
    /// with 380 = 5 and the tag.
    ConditionallyRequiredFieldMissing { tag: i32 },
}

impl SessionRejectReason {
    /// The Text <58> QuickFIX sends with this reason.
    pub const fn text(self) -> &'static str {
        match self {
            Self::InvalidTagNumber => "Invalid tag number",
            Self::RequiredTagMissing => "Required tag missing",
            Self::TagNotDefinedForMessageType => "Tag not defined for this message type",
            Self::UndefinedTag => "Undefined Tag",
            Self::TagSpecifiedWithoutAValue => "Tag specified without a value",
            Self::ValueIsIncorrect => "Value is incorrect (out of range) for this tag",
            Self::IncorrectDataFormatForValue => "Incorrect data format for value",
            Self::DecryptionProblem => "Decryption problem",
            Self::SignatureProblem => "Signature problem",
            Self::CompIdProblem => "CompID problem",
            Self::SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            Self::InvalidMsgType => "Invalid MsgType",
            Self::XmlValidationError => "XML validation error",
            Self::TagAppearsMoreThanOnce => "Tag appears more than once",
            Self::TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            Self::RepeatingGroupFieldsOutOfOrder => "Repeating group fields out of order",
            Self::IncorrectNumInGroupCountForRepeatingGroup => {
                "Incorrect NumInGroup count for repeating group"
            }
            Self::NonDataValueIncludesFieldDelimiter => "Non-data value includes field delimiter",
            Self::Other => "Other",
        }
    }

    /// The value to put in SessionRejectReason <373> on a `version` session, or `None` to omit
    /// 373: FIX 4.2 defines only 0..=11, so 12..=17 and 99 are sent as RefTagID + Text only.
    pub const fn wire_value(self, version: BeginString) -> Option<u8> {
        let v = self as u8;
        match version {
            BeginString::Fix42 if v > Self::InvalidMsgType as u8 => None,
            _ => Some(v),
        }
    }
}

/// Validates `msg` for the session's FIX version. `Ok(())` when it may be processed.
///
/// A valid message without repeating groups is accepted by [`fast::accepts`] in one pass over
/// compile-time tables; anything else (a problem, a group, a type we refuse) goes to
/// [`validate_precise`], which names the problem. Both give the same result for every message.
#[inline]
pub fn validate(msg: &Message<'_>, version: BeginString) -> Result<(), Invalid> {
    if fast::accepts(msg, version) {
        return Ok(());
    }
    validate_precise(msg, version)
}

/// [`validate`] without the fast path: the checks in the order the module doc gives. Public
/// so that tests can hold the fast path to it.
#[inline(never)]
pub fn validate_precise(msg: &Message<'_>, version: BeginString) -> Result<(), Invalid> {
    let d = dictionary(version);
    let fields = msg.fields();

    // 1. Header, body, trailer in that order.
    check_structure(d, fields)?;

    // 2. MsgType. `def` is None for a known type without a definition (body not checked).
    let def = match d.message(msg.msg_type()) {
        Some(def) => Some(def),
        None if d.is_known_unsupported(msg.msg_type()) => None,
        None => return Err(reject(SessionRejectReason::InvalidMsgType, 35)),
    };

    // 3. Group framing and top-level presence, in message order.
    let mut scan = Scan::new();
    scan.run(msg, def);
    if let Some(tag) = scan.group_out_of_order {
        return Err(reject(
            SessionRejectReason::RepeatingGroupFieldsOutOfOrder,
            tag,
        ));
    }

    // 4. Required fields.
    let required = d
        .header()
        .iter()
        .chain(d.trailer())
        .chain(def.map_or(&[][..], |m| m.fields));
    for f in required {
        if f.required && !scan.present.contains(f.tag) {
            return Err(reject(SessionRejectReason::RequiredTagMissing, f.tag));
        }
    }
    if let Some(tag) = scan.group_required_missing {
        return Err(reject(SessionRejectReason::RequiredTagMissing, tag));
    }

    // 5. Per-field checks, QuickFIX's iteration order.
    check_fields(d, def, msg, &scan)?;

    // 6, 7.
    let Some(def) = def else {
        return Err(Invalid::UnsupportedMessageType);
    };
    // A BusinessMessageReject is never answered with another (two peers would reject each
    // other's rejects forever): it passes to the application, which only records it.
    if def.direction != Direction::Inbound && msg.msg_type() != MsgType::BUSINESS_MESSAGE_REJECT {
        return Err(Invalid::UnsupportedMessageType);
    }
    for c in def.conditions {
        let triggered = msg
            .get(c.when_tag)
            .is_some_and(|v| c.when_values.contains(&v));
        if triggered && !scan.present.contains(c.tag) {
            return Err(Invalid::ConditionallyRequiredFieldMissing { tag: c.tag });
        }
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn reject(reason: SessionRejectReason, tag: i32) -> Invalid {
    Invalid::Session {
        reason,
        tag: Some(tag),
        text: reason.text(),
    }
}

fn place(d: &Dictionary, tag: i32) -> Place {
    d.field(tag).map_or(Place::Body, |f| f.place)
}

/// Step 1, as QuickFIX's `Message::setString` tracks it: the first field out of place.
fn check_structure(d: &Dictionary, fields: &[Field]) -> Result<(), Invalid> {
    let mut section = Place::Header;
    for f in fields {
        match (place(d, f.tag), section) {
            (Place::Header, Place::Header) => {}
            (Place::Header, _) | (Place::Body, Place::Trailer) => {
                return Err(reject(
                    SessionRejectReason::TagSpecifiedOutOfRequiredOrder,
                    f.tag,
                ));
            }
            (p, _) => section = p,
        }
    }
    Ok(())
}

// Field positions fit in a u8 (the sort below stores them so).
const _: () = assert!(MAX_FIELDS <= 256);

/// Tags below this are tracked for presence; the dictionaries define none above it.
const TRACKED_TAGS: usize = MAX_TAG as usize + 1;
const _: () = assert!(TRACKED_TAGS % 64 == 0);

/// Presence bitset over tags `0..TRACKED_TAGS` (1 KiB on the stack).
struct TagSet([u64; TRACKED_TAGS / 64]);

impl TagSet {
    fn insert(&mut self, tag: i32) {
        if let Some(word) = usize::try_from(tag)
            .ok()
            .and_then(|t| self.0.get_mut(t / 64))
        {
            *word |= 1u64 << (tag % 64);
        }
    }
    fn contains(&self, tag: i32) -> bool {
        usize::try_from(tag)
            .ok()
            .and_then(|t| self.0.get(t / 64))
            .is_some_and(|word| word & (1u64 << (tag % 64)) != 0)
    }
}

/// What step 3 learns in one pass over the message.
struct Scan {
    /// Tags present outside groups.
    present: TagSet,
    /// Field positions inside a group entry.
    in_group: [bool; MAX_FIELDS],
    /// Field positions of NumInGroup fields whose count is not the number of entries.
    count_mismatch: [bool; MAX_FIELDS],
    group_out_of_order: Option<i32>,
    group_required_missing: Option<i32>,
}

/// The group being read: its definition, declared count, position of its NumInGroup field,
/// entries so far and the members (bit = member index) seen in the current entry.
struct OpenGroup {
    def: &'static GroupDef,
    declared: u64,
    count_pos: usize,
    entries: u64,
    seen: u64,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            present: TagSet([0; TRACKED_TAGS / 64]),
            in_group: [false; MAX_FIELDS],
            count_mismatch: [false; MAX_FIELDS],
            group_out_of_order: None,
            group_required_missing: None,
        }
    }

    fn run(&mut self, msg: &Message<'_>, def: Option<&'static MessageDef>) {
        let mut open: Option<OpenGroup> = None;
        for (pos, f) in msg.fields().iter().enumerate() {
            if let Some(g) = open.as_mut() {
                if let Some(member) = g.def.members.iter().position(|m| m.tag == f.tag) {
                    self.member(g, pos, member, f.tag);
                    continue;
                }
                if let Some(g) = open.take() {
                    self.close(g);
                }
            }
            self.present.insert(f.tag);
            let group = def.and_then(|m| m.group(f.tag));
            if let (Some(group), Some(declared)) = (group, parse_uint(msg.value(f))) {
                open = Some(OpenGroup {
                    def: group,
                    declared,
                    count_pos: pos,
                    entries: 0,
                    seen: 0,
                });
            }
        }
        if let Some(g) = open {
            self.close(g);
        }
    }

    fn member(&mut self, g: &mut OpenGroup, pos: usize, member: usize, tag: i32) {
        if let Some(flag) = self.in_group.get_mut(pos) {
            *flag = true;
        }
        // Invariant (codegen): a group has at most 64 members; checked_shl keeps it panic-free.
        let bit = 1u64.checked_shl(member as u32).unwrap_or(0);
        if member == 0 {
            if g.entries > 0 {
                self.close_entry(g);
            }
            g.entries += 1;
            g.seen = bit;
        } else if g.entries == 0 || g.seen & bit != 0 {
            self.group_out_of_order.get_or_insert(tag);
        } else {
            g.seen |= bit;
        }
    }

    fn close_entry(&mut self, g: &OpenGroup) {
        for (i, m) in g.def.members.iter().enumerate() {
            let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
            if m.required && g.seen & bit == 0 {
                self.group_required_missing.get_or_insert(m.tag);
            }
        }
    }

    fn close(&mut self, g: OpenGroup) {
        if g.entries > 0 {
            self.close_entry(&g);
        }
        if g.entries != g.declared {
            if let Some(flag) = self.count_mismatch.get_mut(g.count_pos) {
                *flag = true;
            }
        }
    }
}

/// Step 5.
fn check_fields(
    d: &Dictionary,
    def: Option<&MessageDef>,
    msg: &Message<'_>,
    scan: &Scan,
) -> Result<(), Invalid> {
    let fields = msg.fields();
    let rank = |p: Place| match p {
        Place::Header => 0u8,
        Place::Trailer => 1,
        Place::Body => 2,
    };
    // Fast path: check every field in message order. A valid message (the common case) passes
    // here without the sort below; only a message with a problem pays for the ordered pass that
    // decides which problem QuickFIX would report first.
    if fields.len() <= 32 && fields_valid_in_message_order(d, def, msg, scan) {
        return Ok(());
    }
    // Top-level field positions, sorted by (header < trailer < body, tag, position). The sort
    // key is computed once per field: a dictionary lookup per comparison costs thousands of
    // instructions on a typical order.
    let mut keys = [0u64; MAX_FIELDS];
    let mut n = 0usize;
    for (pos, f) in fields.iter().enumerate() {
        let in_group = scan.in_group.get(pos).copied().unwrap_or(false);
        let p = place(d, f.tag);
        let skip_body = def.is_none() && p == Place::Body;
        if !in_group && !skip_body {
            if let Some(slot) = keys.get_mut(n) {
                // rank (2 bits) | tag + 2^31 (32 bits, order-preserving for negative tags) | pos
                let tag = u64::from((f.tag as u32) ^ 0x8000_0000);
                *slot = (u64::from(rank(p)) << 48) | (tag << 16) | pos as u64;
                n += 1;
            }
        }
    }
    let keys = keys.get_mut(..n).unwrap_or_default();
    keys.sort_unstable();
    let mut order = [0u8; MAX_FIELDS];
    for (slot, k) in order.iter_mut().zip(keys.iter()) {
        *slot = (*k & 0xffff) as u8;
    }
    let order = order.get(..n).unwrap_or_default();

    let mut previous: Option<i32> = None;
    for &pos in order.iter() {
        let Some(f) = fields.get(usize::from(pos)) else {
            continue;
        };
        if previous == Some(f.tag) {
            return Err(reject(SessionRejectReason::TagAppearsMoreThanOnce, f.tag));
        }
        previous = Some(f.tag);
        check_value(d, msg, f)?;
        if d.field(f.tag).is_none() {
            return Err(reject(SessionRejectReason::InvalidTagNumber, f.tag));
        }
        if let Some(def) = def {
            if place(d, f.tag) == Place::Body && def.field(f.tag).is_none() {
                return Err(reject(
                    SessionRejectReason::TagNotDefinedForMessageType,
                    f.tag,
                ));
            }
        }
        if scan
            .count_mismatch
            .get(usize::from(pos))
            .copied()
            .unwrap_or(false)
        {
            return Err(reject(
                SessionRejectReason::IncorrectNumInGroupCountForRepeatingGroup,
                f.tag,
            ));
        }
    }
    for (pos, f) in fields.iter().enumerate() {
        if scan.in_group.get(pos).copied().unwrap_or(false) {
            check_value(d, msg, f)?;
        }
    }
    Ok(())
}

/// True when no top-level or group field has a problem `check_fields` would report, checked in
/// message order. Returning false only means "look again in QuickFIX's order".
fn fields_valid_in_message_order(
    d: &Dictionary,
    def: Option<&MessageDef>,
    msg: &Message<'_>,
    scan: &Scan,
) -> bool {
    let fields = msg.fields();
    for (pos, f) in fields.iter().enumerate() {
        if scan.in_group.get(pos).copied().unwrap_or(false) {
            if check_value(d, msg, f).is_err() {
                return false;
            }
            continue;
        }
        let p = place(d, f.tag);
        if def.is_none() && p == Place::Body {
            continue;
        }
        let repeated = fields
            .iter()
            .take(pos)
            .enumerate()
            .any(|(q, g)| g.tag == f.tag && !scan.in_group.get(q).copied().unwrap_or(false));
        if repeated
            || check_value(d, msg, f).is_err()
            || d.field(f.tag).is_none()
            || def.is_some_and(|def| p == Place::Body && def.field(f.tag).is_none())
            || scan.count_mismatch.get(pos).copied().unwrap_or(false)
        {
            return false;
        }
    }
    true
}

/// Empty → 4, format → 6, enumeration → 5 (QuickFIX: `checkHasValue`, `checkValidFormat`,
/// `checkValue`). A tag the dictionary does not know passes; the caller rejects it next.
fn check_value(d: &Dictionary, msg: &Message<'_>, f: &Field) -> Result<(), Invalid> {
    let value = msg.value(f);
    if value.is_empty() {
        return Err(reject(
            SessionRejectReason::TagSpecifiedWithoutAValue,
            f.tag,
        ));
    }
    if let Some(def) = d.field(f.tag) {
        if !well_formed(def.ty, value) {
            return Err(reject(
                SessionRejectReason::IncorrectDataFormatForValue,
                f.tag,
            ));
        }
        if !value_in_enum(def, value) {
            return Err(reject(SessionRejectReason::ValueIsIncorrect, f.tag));
        }
    }
    Ok(())
}

/// Whether a non-empty `v` has the syntax of `ty` (FIX 4.4 Vol. 1 "Data types"; as strict as
/// QuickFIX's converters: no `+` sign, no exponent, no spaces).
pub fn well_formed(ty: FieldType, v: &[u8]) -> bool {
    match ty {
        FieldType::Int => integer(v.strip_prefix(b"-").unwrap_or(v)),
        FieldType::SeqNum | FieldType::Length | FieldType::NumInGroup => integer(v),
        FieldType::DayOfMonth => integer(v) && matches!(parse_uint(v), Some(1..=31)),
        FieldType::Qty
        | FieldType::Price
        | FieldType::PriceOffset
        | FieldType::Amt
        | FieldType::Percentage
        | FieldType::Float => decimal(v),
        FieldType::Char => v.len() == 1,
        FieldType::Boolean => v == b"Y" || v == b"N",
        FieldType::MultipleCharValue => v.split(|b| *b == b' ').all(|c| c.len() == 1),
        FieldType::String
        | FieldType::MultipleValueString
        | FieldType::Currency
        | FieldType::Exchange
        | FieldType::Country
        | FieldType::Language
        | FieldType::Data => true,
        FieldType::UtcTimestamp => parse_timestamp(v).is_some(),
        FieldType::UtcTimeOnly => time_of_day(v),
        FieldType::UtcDateOnly | FieldType::LocalMktDate => date(v),
        FieldType::MonthYear => month_year(v),
    }
}

/// 1..=18 ASCII digits.
fn integer(v: &[u8]) -> bool {
    (1..=18).contains(&v.len()) && v.iter().all(u8::is_ascii_digit)
}

/// `-?digits[.digits]` with at least one digit (`1.`, `.5` and leading zeros accepted).
fn decimal(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let mut dots = 0;
    let mut digits = 0;
    for b in v {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

fn number(v: &[u8], range: core::ops::Range<usize>) -> Option<u64> {
    let part = v.get(range)?;
    if part.iter().all(u8::is_ascii_digit) {
        parse_uint(part)
    } else {
        None
    }
}

/// `YYYYMMDD`.
fn date(v: &[u8]) -> bool {
    v.len() == 8
        && number(v, 0..4).is_some()
        && matches!(number(v, 4..6), Some(1..=12))
        && matches!(number(v, 6..8), Some(1..=31))
}

/// `HH:MM:SS[.sss|.ssssss|.sssssssss]`.
fn time_of_day(v: &[u8]) -> bool {
    let fraction_ok = match v.get(8..) {
        Some([]) => true,
        Some([b'.', frac @ ..]) => {
            matches!(frac.len(), 3 | 6 | 9) && frac.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    fraction_ok
        && v.get(2) == Some(&b':')
        && v.get(5) == Some(&b':')
        && matches!(number(v, 0..2), Some(0..=23))
        && matches!(number(v, 3..5), Some(0..=59))
        && matches!(number(v, 6..8), Some(0..=60))
}

/// `YYYYMM`, `YYYYMMDD` or `YYYYMMwN` (week 1..=5).
fn month_year(v: &[u8]) -> bool {
    let month_ok = number(v, 0..4).is_some() && matches!(number(v, 4..6), Some(1..=12));
    month_ok
        && match v.get(6..) {
            Some([]) => true,
            Some([b'w', b'1'..=b'5']) => true,
            Some(day @ [_, _]) => matches!(number(day, 0..2), Some(1..=31)),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;
    use proptest::prelude::*;
    use SessionRejectReason as R;

    const H44: &str = "8=FIX.4.4|9=0|35=";
    const H42: &str = "8=FIX.4.2|9=0|35=";
    const SESSION: &str = "34=2|49=TW|52=20240101-00:00:00|56=ISLD|";
    const ORDER: &str = "11=ID|21=1|38=200.00|40=1|54=1|55=INTC|60=20240101-00:00:00|";

    /// `8=..|9=..|35=<rest>` with `|` for SOH, framed with BodyLength and CheckSum.
    fn check(version: BeginString, rest: &str) -> Result<(), Invalid> {
        let head = if version == BeginString::Fix44 {
            H44
        } else {
            H42
        };
        let bytes = with_trailer(format!("{head}{rest}").replace('|', "\x01").as_bytes());
        validate(&Message::decode(&bytes).unwrap(), version)
    }
    fn v44(rest: &str) -> Result<(), Invalid> {
        check(BeginString::Fix44, rest)
    }
    fn v42(rest: &str) -> Result<(), Invalid> {
        check(BeginString::Fix42, rest)
    }
    fn session(reason: SessionRejectReason, tag: i32) -> Result<(), Invalid> {
        Err(Invalid::Session {
            reason,
            tag: Some(tag),
            text: reason.text(),
        })
    }
    fn order(extra: &str) -> String {
        format!("D|{SESSION}{ORDER}{extra}")
    }

    #[test]
    fn accepts_well_formed_admin_and_order_messages() {
        assert_eq!(v44(&format!("0|{SESSION}")), Ok(()));
        assert_eq!(v44(&format!("1|{SESSION}112=T1|")), Ok(()));
        assert_eq!(
            v44(&format!("A|{SESSION}98=0|108=30|141=Y|553=u|554=p|789=5|")),
            Ok(())
        );
        assert_eq!(v44(&format!("2|{SESSION}7=1|16=0|")), Ok(()));
        assert_eq!(v44(&format!("4|{SESSION}123=Y|36=10|")), Ok(()));
        assert_eq!(
            v44(&format!("3|{SESSION}45=2|371=55|372=0|373=2|58=x|")),
            Ok(())
        );
        assert_eq!(v44(&format!("5|{SESSION}58=bye|")), Ok(()));
        assert_eq!(v44(&order("")), Ok(()));
        assert_eq!(v44(&format!("D|{SESSION}11=ID|38=5|40=2|44=10.5|54=1|55=X|60=20240101-00:00:00.123|59=6|126=20240102-00:00:00|18=1 G|1=ACC|100=XNAS|167=CS|48=US1|22=4|111=1|")), Ok(()));
        assert_eq!(
            v44(&format!(
                "F|{SESSION}41=A|11=B|54=2|55=X|60=20240101-00:00:00|"
            )),
            Ok(())
        );
        assert_eq!(
            v44(&format!(
                "G|{SESSION}41=A|11=B|54=2|55=X|60=20240101-00:00:00|40=1|38=3|"
            )),
            Ok(())
        );
        assert_eq!(v44(&format!("H|{SESSION}11=B|54=2|55=X|")), Ok(()));
        assert_eq!(
            v44(&format!("q|{SESSION}11=B|530=7|60=20240101-00:00:00|")),
            Ok(())
        );
    }

    #[test]
    fn header_fields_may_be_interleaved_and_body_fields_reordered() {
        // QuickFIX 15_HeaderAndBodyFieldsOrderedDifferently (plus OrderQty, which we require).
        let msg = "D|49=TW|34=3|56=ISLD|52=20240101-00:00:00|40=1|55=MSFT|60=20240101-00:00:00|54=1|21=3|11=id|38=1|";
        assert_eq!(v44(msg), Ok(()));
    }

    #[test]
    fn rejects_tags_unknown_to_the_dictionary_as_invalid_tag_number() {
        // QuickFIX 14a_BadField.
        for tag in [999, 0, -1, 5000, 100_000_000] {
            assert_eq!(
                v44(&format!("0|{SESSION}{tag}=HI|")),
                session(R::InvalidTagNumber, tag)
            );
        }
    }

    #[test]
    fn rejects_required_tag_missing_in_header_and_body() {
        // QuickFIX 14b_RequiredFieldMissing.
        assert_eq!(
            v44("0|34=2|49=TW|52=20240101-00:00:00|"),
            session(R::RequiredTagMissing, 56)
        );
        assert_eq!(
            v44("0|34=2|49=TW|56=ISLD|"),
            session(R::RequiredTagMissing, 52)
        );
        let no_symbol = format!("D|{SESSION}11=ID|21=1|38=1|40=1|54=1|60=20240101-00:00:00|");
        assert_eq!(v44(&no_symbol), session(R::RequiredTagMissing, 55));
        // OrderQty is not session-required (as in QuickFIX's dictionary): the order layer
        // answers a missing one with an ExecutionReport reject.
        let no_qty = format!("D|{SESSION}11=ID|21=1|40=1|54=1|55=X|60=20240101-00:00:00|");
        assert_eq!(v44(&no_qty), Ok(()));
        assert_eq!(
            v44(&format!("1|{SESSION}")),
            session(R::RequiredTagMissing, 112)
        );
        assert_eq!(
            v44(&format!("A|{SESSION}98=0|")),
            session(R::RequiredTagMissing, 108)
        );
        // Header requirements are reported before body ones, lowest tag first.
        assert_eq!(v44("1|49=TW|56=ISLD|"), session(R::RequiredTagMissing, 34));
    }

    #[test]
    fn rejects_known_tag_not_defined_for_the_message_type() {
        // QuickFIX 14c_TagNotDefinedForMsgType.
        assert_eq!(
            v44(&format!("0|{SESSION}55=MSFT|")),
            session(R::TagNotDefinedForMessageType, 55)
        );
        assert_eq!(
            v44(&order("152=100|")),
            session(R::TagNotDefinedForMessageType, 152)
        );
    }

    #[test]
    fn rejects_tag_without_value() {
        // QuickFIX 14d_TagSpecifiedWithoutValue.
        assert_eq!(
            v44("0|34=2|49=TW|52=20240101-00:00:00|56=|"),
            session(R::TagSpecifiedWithoutAValue, 56)
        );
        assert_eq!(
            v44(&order("58=|")),
            session(R::TagSpecifiedWithoutAValue, 58)
        );
        // Empty beats unknown, as in QuickFIX (checkHasValue runs before checkValidTagNumber).
        assert_eq!(
            v44(&order("999=|")),
            session(R::TagSpecifiedWithoutAValue, 999)
        );
    }

    #[test]
    fn rejects_values_outside_the_enumeration() {
        // QuickFIX 14e_IncorrectEnumValue.
        let d =
            format!("D|{SESSION}11=ID|21=4|38=002000.00|40=1|54=1|55=INTC|60=20240101-00:00:00|");
        assert_eq!(v44(&d), session(R::ValueIsIncorrect, 21));
        assert_eq!(v44(&order("167=BOO|")), session(R::ValueIsIncorrect, 167));
        assert_eq!(v44(&order("167=CS|")), Ok(()));
        assert_eq!(v44(&order("59=9|")), session(R::ValueIsIncorrect, 59));
        assert_eq!(v44(&order("18=1 !|")), session(R::ValueIsIncorrect, 18));
        assert_eq!(
            v44(&format!("A|{SESSION}98=7|108=30|")),
            session(R::ValueIsIncorrect, 98)
        );
    }

    #[test]
    fn rejects_values_in_the_wrong_format() {
        // QuickFIX 14f_IncorrectDataFormat: a leading + on a Qty.
        assert_eq!(
            v44(&order("").replace("38=200.00", "38=+200.00")),
            session(R::IncorrectDataFormatForValue, 38)
        );
        let cases = [
            ("44=1e5|", 44),
            ("44=1.2.3|", 44),
            ("44=-|", 44),
            ("111=ten|", 111),
            ("126=20240101 00:00:00|", 126),
            ("126=20241301-00:00:00|", 126),
            ("114=y|", 114),
            ("59=00|", 59),
            ("64=2024011|", 64),
            ("200=202413|", 200),
            ("453=x|", 453),
        ];
        for (extra, tag) in cases {
            assert_eq!(
                v44(&order(extra)),
                session(R::IncorrectDataFormatForValue, tag),
                "{extra}"
            );
        }
        assert_eq!(
            v44(&format!("A|{SESSION}98=0|108=3O|")),
            session(R::IncorrectDataFormatForValue, 108)
        );
        assert_eq!(
            v44(&format!("4|{SESSION}123=YES|36=10|")),
            session(R::IncorrectDataFormatForValue, 123)
        );
        assert_eq!(
            v44("0|34=x|49=TW|52=20240101-00:00:00|56=ISLD|"),
            session(R::IncorrectDataFormatForValue, 34)
        );
        assert_eq!(v44(&order("200=202401w2|64=20240131|44=-0.5|")), Ok(()));
    }

    #[test]
    fn rejects_header_fields_after_the_body_and_body_fields_after_the_trailer() {
        // QuickFIX 14g_HeaderBodyTrailerFieldsOutOfOrder.
        let all_body_first = format!("D|{ORDER}{SESSION}");
        assert_eq!(
            v44(&all_body_first),
            session(R::TagSpecifiedOutOfRequiredOrder, 34)
        );
        let one_body_first = "D|55=MSFT|34=3|49=TW|52=20240101-00:00:00|56=ISLD|11=id|21=3|38=1|40=1|54=1|60=20240101-00:00:00|";
        assert_eq!(
            v44(one_body_first),
            session(R::TagSpecifiedOutOfRequiredOrder, 34)
        );
        assert_eq!(
            v44(&order("93=2|58=x|89=ab|")),
            session(R::TagSpecifiedOutOfRequiredOrder, 58)
        );
        // An unknown tag counts as body: the header after it is out of order.
        assert_eq!(
            v44("0|999=1|34=2|49=TW|52=20240101-00:00:00|56=ISLD|"),
            session(R::TagSpecifiedOutOfRequiredOrder, 34)
        );
        assert_eq!(v44(&order("93=2|89=ab|")), Ok(()));
    }

    #[test]
    fn rejects_a_tag_repeated_outside_a_group() {
        // QuickFIX 14h_RepeatedTag.
        let d =
            format!("D|{SESSION}11=ID|21=1|40=1|40=2|54=1|38=200.00|55=INTC|60=20240101-00:00:00|");
        assert_eq!(v44(&d), session(R::TagAppearsMoreThanOnce, 40));
        assert_eq!(
            v44(&format!("0|{SESSION}49=TW|")),
            session(R::TagAppearsMoreThanOnce, 49)
        );
    }

    #[test]
    fn checks_repeating_group_counts_and_delimiters() {
        // QuickFIX 14i_RepeatingGroupCountNotEqual.
        let d = format!("D|{SESSION}11=ID|21=1|40=1|54=1|38=200.00|55=INTC|386=3|336=PRE-OPEN|336=AFTER-HOURS|60=20240101-00:00:00|");
        assert_eq!(
            v44(&d),
            session(R::IncorrectNumInGroupCountForRepeatingGroup, 386)
        );
        assert_eq!(
            v44(&order("453=1|")),
            session(R::IncorrectNumInGroupCountForRepeatingGroup, 453)
        );
        assert_eq!(
            v44(&order("453=1|448=A|448=B|")),
            session(R::IncorrectNumInGroupCountForRepeatingGroup, 453)
        );
        // 21_RepeatingGroupSpecifierWithValueOfZero.
        assert_eq!(v44(&order("453=0|")), Ok(()));
        assert_eq!(
            v44(&order(
                "453=2|448=A|447=D|452=1|448=B|452=3|78=1|79=X|80=5|"
            )),
            Ok(())
        );
        // An entry must start with the delimiter; a member may not repeat within an entry.
        assert_eq!(
            v44(&order("453=1|447=D|448=A|")),
            session(R::RepeatingGroupFieldsOutOfOrder, 447)
        );
        assert_eq!(
            v44(&order("453=1|448=A|447=D|447=D|")),
            session(R::RepeatingGroupFieldsOutOfOrder, 447)
        );
        // Group members are checked like other fields; outside their group they are not allowed.
        assert_eq!(
            v44(&order("453=1|448=A|447=!|")),
            session(R::ValueIsIncorrect, 447)
        );
        assert_eq!(
            v44(&order("453=1|448=|")),
            session(R::TagSpecifiedWithoutAValue, 448)
        );
        assert_eq!(
            v44(&order("448=A|")),
            session(R::TagNotDefinedForMessageType, 448)
        );
        // Repeats across entries are not "more than once".
        assert_eq!(
            v44(&format!(
                "A|{SESSION}98=0|108=30|384=2|372=D|385=R|372=F|385=R|"
            )),
            Ok(())
        );
    }

    #[test]
    fn rejects_invalid_msg_types_and_refuses_unsupported_ones() {
        // QuickFIX 2q_MsgTypeNotValid and 2r_UnregisteredMsgType.
        for t in ["*", "ZZ", "", "ABCDEFGHIJ"] {
            assert_eq!(
                v44(&format!("{t}|{SESSION}")),
                session(R::InvalidMsgType, 35),
                "{t}"
            );
        }
        let exec = format!("8|{SESSION}37=id|17=id|150=0|39=0|55=WLRI|54=1|151=100|14=0|6=0.0|");
        assert_eq!(v44(&exec), Err(Invalid::UnsupportedMessageType));
        assert_eq!(
            v44(&format!("S|{SESSION}117=Q1|55=X|")),
            Err(Invalid::UnsupportedMessageType)
        );
        assert_eq!(
            v44(&format!("V|{SESSION}262=1|")),
            Err(Invalid::UnsupportedMessageType)
        );
        // The header of an unsupported type is still the session's business.
        assert_eq!(
            v44("S|34=2|49=TW|56=ISLD|117=Q1|"),
            session(R::RequiredTagMissing, 52)
        );
        for t in ["9", "j", "r"] {
            let refused = v44(&format!("{t}|{SESSION}"));
            assert!(matches!(
                refused,
                Err(Invalid::Session {
                    reason: R::RequiredTagMissing,
                    ..
                })
            ));
        }
        // ... except a BusinessMessageReject: answering it would start a reject loop.
        let bmr = format!("j|{SESSION}45=1|372=D|380=3|");
        assert_eq!(v44(&bmr), Ok(()));
        // A message we only send is validated before it is refused.
        assert_eq!(
            v44(&format!("8|{SESSION}37=id|")),
            session(R::RequiredTagMissing, 6)
        );
    }

    #[test]
    fn requires_price_and_stop_price_by_order_type() {
        assert_eq!(
            v44(&order("").replace("40=1", "40=2")),
            Err(Invalid::ConditionallyRequiredFieldMissing { tag: 44 })
        );
        assert_eq!(
            v44(&order("44=1|").replace("40=1", "40=4")),
            Err(Invalid::ConditionallyRequiredFieldMissing { tag: 99 })
        );
        assert_eq!(v44(&order("44=1|99=2|").replace("40=1", "40=4")), Ok(()));
    }

    #[test]
    fn reports_the_check_quickfix_runs_first() {
        // Structure beats everything, MsgType beats required, required beats field checks.
        assert_eq!(
            v44("ZZ|55=X|34=2|"),
            session(R::TagSpecifiedOutOfRequiredOrder, 34)
        );
        assert_eq!(v44("ZZ|34=2|"), session(R::InvalidMsgType, 35));
        assert_eq!(
            v44("0|34=2|49=TW|52=20240101-00:00:00|999=1|"),
            session(R::RequiredTagMissing, 56)
        );
        // Field checks run header first, then body by ascending tag.
        assert_eq!(
            v44(&order("999=1|44=x|")),
            session(R::IncorrectDataFormatForValue, 44)
        );
        assert_eq!(
            v44(&order("5000=1|58=|").replace("49=TW", "49=")),
            session(R::TagSpecifiedWithoutAValue, 49)
        );
    }

    #[test]
    fn fix42_differences() {
        let s = SESSION;
        let d42 = format!("D|{s}11=ID|21=1|38=200.00|40=1|54=1|55=INTC|");
        // TransactTime is optional on a 4.2 order, HandlInst is required.
        assert_eq!(v42(&d42), Ok(()));
        assert_eq!(
            v42(&d42.replace("21=1|", "")),
            session(R::RequiredTagMissing, 21)
        );
        assert_eq!(
            v44(&format!(
                "D|{s}11=ID|38=200.00|40=1|54=1|55=INTC|60=20240101-00:00:00|"
            )),
            Ok(())
        );
        // Mass cancel and Parties do not exist in 4.2.
        assert_eq!(
            v42(&format!("q|{s}11=B|530=7|")),
            session(R::InvalidMsgType, 35)
        );
        assert_eq!(
            v42(&format!("{}453=0|", d42)),
            session(R::InvalidTagNumber, 453)
        );
        assert_eq!(
            v42(&format!(
                "8|{s}37=1|17=1|20=0|150=0|39=0|55=X|54=1|151=1|14=0|6=0|"
            )),
            Err(Invalid::UnsupportedMessageType)
        );
        assert_eq!(v42(&format!("{}63=3|", d42)), Ok(()));
        assert_eq!(
            v42(&format!("{}54=B|", d42.replace("54=1|", ""))),
            session(R::ValueIsIncorrect, 54)
        );
        // QuickFIX 14h/14i for 4.2: the reason is known, but 373 is not sent (4.2 stops at 11).
        let dup = format!("D|{s}11=ID|21=1|40=1|40=2|54=1|38=200.00|55=INTC|");
        assert_eq!(v42(&dup), session(R::TagAppearsMoreThanOnce, 40));
        assert_eq!(
            R::TagAppearsMoreThanOnce.wire_value(BeginString::Fix42),
            None
        );
        assert_eq!(
            R::IncorrectNumInGroupCountForRepeatingGroup.wire_value(BeginString::Fix42),
            None
        );
        assert_eq!(R::InvalidMsgType.wire_value(BeginString::Fix42), Some(11));
        assert_eq!(
            R::TagAppearsMoreThanOnce.wire_value(BeginString::Fix44),
            Some(13)
        );
        let groups = format!("{}386=3|336=A|336=B|", d42);
        assert_eq!(
            v42(&groups),
            session(R::IncorrectNumInGroupCountForRepeatingGroup, 386)
        );
    }

    #[test]
    fn checks_formats_by_type() {
        use FieldType as T;
        let ok = [
            (T::Int, "-12"),
            (T::SeqNum, "007"),
            (T::Qty, "1."),
            (T::Price, ".5"),
            (T::Float, "-0.25"),
            (T::Char, "x"),
            (T::Boolean, "N"),
            (T::UtcTimestamp, "20240229-23:59:60.123456"),
            (T::UtcTimeOnly, "23:59:59.999"),
            (T::UtcDateOnly, "20240229"),
            (T::MonthYear, "202402"),
            (T::MonthYear, "20240215"),
            (T::DayOfMonth, "31"),
            (T::MultipleCharValue, "a b"),
        ];
        for (ty, v) in ok {
            assert!(well_formed(ty, v.as_bytes()), "{ty:?} {v}");
        }
        let bad = [
            (T::Int, "+1"),
            (T::Int, "1-"),
            (T::SeqNum, "-1"),
            (T::Length, "1234567890123456789"),
            (T::Qty, "1,5"),
            (T::Price, "."),
            (T::Char, "ab"),
            (T::Boolean, "1"),
            (T::UtcTimestamp, "20240229-24:00:00"),
            (T::UtcTimestamp, "20240229-23:59:59.1"),
            (T::UtcTimeOnly, "23:59"),
            (T::UtcDateOnly, "2024-02-29"),
            (T::LocalMktDate, "20240230x"),
            (T::MonthYear, "202400"),
            (T::MonthYear, "202401w9"),
            (T::DayOfMonth, "0"),
            (T::MultipleCharValue, "ab c"),
        ];
        for (ty, v) in bad {
            assert!(!well_formed(ty, v.as_bytes()), "{ty:?} {v}");
        }
    }

    fn tag() -> impl Strategy<Value = i32> {
        prop_oneof![
            prop::sample::select(vec![
                1, 7, 8, 9, 10, 11, 16, 18, 21, 34, 35, 36, 38, 40, 44, 49, 52, 54, 55, 56, 58, 60,
                78, 79, 80, 89, 93, 98, 108, 112, 123, 386, 336, 447, 448, 452, 453, 530, 999,
            ]),
            any::<i32>().prop_map(|t| t % 10_000),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("20240101-00:00:00".to_string()),
            "[0-9]{1,3}",
            "[-+.0-9A-Za-z ]{0,6}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_field_lists(
            msg_type in prop::sample::select(vec!["0", "A", "D", "G", "8", "q", "S", "ZZ", ""]),
            body in prop::collection::vec((tag(), value()), 0..40),
            fix42 in any::<bool>(),
            with_header in any::<bool>(),
        ) {
            let mut rest = format!("{msg_type}|");
            if with_header {
                rest.push_str(SESSION);
            }
            for (t, v) in &body {
                rest.push_str(&format!("{t}={v}|"));
            }
            let version = if fix42 { BeginString::Fix42 } else { BeginString::Fix44 };
            let head = if fix42 { H42 } else { H44 };
            let bytes = with_trailer(format!("{head}{rest}").replace('|', "\x01").as_bytes());
            if let Ok(m) = Message::decode(&bytes) {
                let _ = validate(&m, version);
            }
        }
    }
}
