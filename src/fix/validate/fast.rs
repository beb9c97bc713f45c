//! HOT — the fast path of [`super::validate`]: one pass over a message against tables computed
//! at compile time from the dictionaries, answering only "certainly valid" or "look again".
//!
//! [`accepts`] returns true only when the precise path ([`super::validate_precise`]) would return
//! `Ok(())`; on `false` the caller runs the precise path, which finds and names the first problem
//! in QuickFIX's order. So the fast path decides no error itself and cannot change a reason or a
//! RefTagID; `tests/codec_props.rs` compares both paths on mutated valid messages.
//!
//! It handles messages without repeating groups (a NumInGroup tag sends the message to the
//! precise path) of every type the dictionary defines and the gateway handles. Per field: one
//! `field_index` load, a rank/allowed/seen test on bitsets over field indices, and a value check
//! chosen when the table was built (non-empty only for free text, a 128-bit mask for one-character
//! enumerations, the format check for other fields without an enumeration, format and
//! enumeration otherwise). Then required fields are one
//! AND-NOT per 64 fields, and the conditions (Price when OrdType is Limit …) as in the precise
//! path. No allocation, no panic, no lazy initialisation: the tables are `static`s built by
//! `const fn`, so a dictionary that breaks their limits fails the build, not a session.

use super::super::decode::{Message, MsgType};
use super::super::dict::{dictionary, value_in_enum, Dictionary, Direction, FieldDef, FieldType};
use super::super::dict::{MessageDef, Place};
use super::super::generated::{fix42, fix44};
use super::super::BeginString;
use super::well_formed;

/// Bits per field-index bitset: a dictionary's `field_index` values (1-based) must stay below.
const FIELD_BITS: usize = 256;
const WORDS: usize = FIELD_BITS / 64;
/// Messages a dictionary may define field by field.
const MAX_MESSAGES: usize = 32;

type Bits = [u64; WORDS];

/// How a field's value is checked, decided once per dictionary field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Any non-empty value (free text types without an enumeration).
    NonEmpty,
    /// One ASCII character whose bit is set in `chars` (a Char or String field whose
    /// enumeration has only one-character values).
    OneChar,
    /// [`well_formed`] only: the field has no enumeration.
    Format,
    /// [`well_formed`] and [`value_in_enum`], as the precise path.
    Full,
}

#[derive(Clone, Copy, Debug)]
struct FieldCheck {
    /// Header 0, body 1, trailer 2: a message's fields never go down this rank.
    rank: u8,
    kind: Kind,
    chars: u128,
}

/// One defined message: the field indices allowed at its top level without a group (header,
/// trailer, its body fields except NumInGroup tags) and those it requires.
#[derive(Clone, Copy, Debug)]
struct MessageTable {
    allowed: Bits,
    required: Bits,
}

/// The fast-path tables of one dictionary, indexed like it.
#[derive(Debug)]
pub(super) struct Tables {
    /// By field index (`field_index[tag]`); entry 0 is unused (index 0 = unknown tag).
    fields: [FieldCheck; FIELD_BITS],
    /// Parallel to the dictionary's `messages`.
    messages: [MessageTable; MAX_MESSAGES],
}

static FIX42: Tables = Tables::build(&fix42::DICTIONARY);
static FIX44: Tables = Tables::build(&fix44::DICTIONARY);

const fn rank(p: Place) -> u8 {
    match p {
        Place::Header => 0,
        Place::Body => 1,
        Place::Trailer => 2,
    }
}

/// The mask of a one-character enumeration, or `None` when `f` needs the full check.
const fn one_char_mask(f: &FieldDef) -> Option<u128> {
    // Char: well-formed means one byte; String: anything is well-formed. Either way a value is
    // valid exactly when it is one of the (one-byte) enumerated values.
    if !matches!(f.ty, FieldType::Char | FieldType::String) || f.values.is_empty() {
        return None;
    }
    let mut mask = 0u128;
    let mut i = 0;
    while i < f.values.len() {
        let v = f.values[i];
        if v.len() != 1 || v[0] >= 128 {
            return None;
        }
        mask |= 1u128 << v[0];
        i += 1;
    }
    Some(mask)
}

const fn field_check(f: &FieldDef) -> FieldCheck {
    let free_text = matches!(
        f.ty,
        FieldType::String
            | FieldType::MultipleValueString
            | FieldType::Currency
            | FieldType::Exchange
            | FieldType::Country
            | FieldType::Language
            | FieldType::Data
    );
    let (kind, chars) = if free_text && f.values.is_empty() {
        (Kind::NonEmpty, 0)
    } else if let Some(mask) = one_char_mask(f) {
        (Kind::OneChar, mask)
    } else if f.values.is_empty() {
        (Kind::Format, 0)
    } else {
        (Kind::Full, 0)
    };
    FieldCheck {
        rank: rank(f.place),
        kind,
        chars,
    }
}

/// The field index of `tag`, which the dictionary must know (a codegen invariant; a violation
/// fails the build).
const fn index_of(d: &Dictionary, tag: i32) -> usize {
    assert!(tag > 0, "dictionary tables name a tag <= 0");
    let index = d.field_index[tag as usize] as usize;
    assert!(index > 0, "dictionary tables name an unknown tag");
    index
}

const fn set(bits: &mut Bits, index: usize) {
    bits[index / 64] |= 1u64 << (index % 64);
}

const fn clear(bits: &mut Bits, index: usize) {
    bits[index / 64] &= !(1u64 << (index % 64));
}

const fn message_table(d: &Dictionary, m: &MessageDef) -> MessageTable {
    let mut t = MessageTable {
        allowed: [0; WORDS],
        required: [0; WORDS],
    };
    let lists = [d.header, d.trailer, m.fields];
    let mut l = 0;
    while l < lists.len() {
        let list = lists[l];
        let mut i = 0;
        while i < list.len() {
            let index = index_of(d, list[i].tag);
            set(&mut t.allowed, index);
            if list[i].required {
                set(&mut t.required, index);
            }
            i += 1;
        }
        l += 1;
    }
    // Groups are the precise path's business: a NumInGroup tag is never "allowed" here (so a
    // message that has one, or requires one, always goes there).
    let mut g = 0;
    while g < m.groups.len() {
        clear(&mut t.allowed, index_of(d, m.groups[g].count_tag));
        g += 1;
    }
    t
}

impl Tables {
    const fn build(d: &Dictionary) -> Tables {
        assert!(
            d.fields.len() < FIELD_BITS,
            "raise FIELD_BITS: the dictionary defines more fields"
        );
        assert!(
            d.messages.len() <= MAX_MESSAGES,
            "raise MAX_MESSAGES: the dictionary defines more messages"
        );
        let unused = FieldCheck {
            rank: 0,
            kind: Kind::Full,
            chars: 0,
        };
        let mut t = Tables {
            fields: [unused; FIELD_BITS],
            messages: [MessageTable {
                allowed: [0; WORDS],
                required: [0; WORDS],
            }; MAX_MESSAGES],
        };
        let mut i = 0;
        while i < d.fields.len() {
            let f = &d.fields[i];
            assert!(
                index_of(d, f.tag) == i + 1,
                "field_index disagrees with fields"
            );
            t.fields[i + 1] = field_check(f);
            i += 1;
        }
        let mut m = 0;
        while m < d.messages.len() {
            t.messages[m] = message_table(d, &d.messages[m]);
            m += 1;
        }
        t
    }
}

fn tables(version: BeginString) -> &'static Tables {
    match version {
        BeginString::Fix42 => &FIX42,
        BeginString::Fix44 => &FIX44,
    }
}

fn has(bits: &Bits, index: usize) -> bool {
    bits.get(index / 64)
        .is_some_and(|w| w & (1u64 << (index % 64)) != 0)
}

/// True only when the precise path would accept `msg` (`Ok(())`); false means "run it".
pub fn accepts(msg: &Message<'_>, version: BeginString) -> bool {
    let d = dictionary(version);
    let t = tables(version);
    let msg_type = msg.msg_type();
    let Ok(m) = d
        .messages
        .binary_search_by_key(&msg_type.0, |m| m.msg_type.0)
    else {
        return false;
    };
    let (Some(def), Some(table)) = (d.messages.get(m), t.messages.get(m)) else {
        return false;
    };
    if def.direction != Direction::Inbound && msg_type != MsgType::BUSINESS_MESSAGE_REJECT {
        return false;
    }
    let mut seen: Bits = [0; WORDS];
    let mut section = 0u8;
    for f in msg.fields() {
        // An unknown tag (index 0, or outside the table) is never allowed.
        let Some(&index) = usize::try_from(f.tag)
            .ok()
            .and_then(|tag| d.field_index.get(tag))
        else {
            return false;
        };
        let index = usize::from(index);
        let word = index / 64;
        let bit = 1u64 << (index % 64);
        let (Some(check), Some(allowed), Some(seen)) = (
            t.fields.get(index),
            table.allowed.get(word),
            seen.get_mut(word),
        ) else {
            return false;
        };
        // Out of place, not allowed here (unknown, a group's or another message's), repeated.
        if check.rank < section || allowed & bit == 0 || *seen & bit != 0 {
            return false;
        }
        section = check.rank;
        *seen |= bit;
        let v = msg.value(f);
        let ok = match check.kind {
            Kind::NonEmpty => !v.is_empty(),
            Kind::OneChar => matches!(v, [c] if *c < 128 && check.chars & (1u128 << *c) != 0),
            Kind::Format => {
                !v.is_empty()
                    && index
                        .checked_sub(1)
                        .and_then(|i| d.fields.get(i))
                        .is_some_and(|def| well_formed(def.ty, v))
            }
            Kind::Full => {
                !v.is_empty()
                    && index
                        .checked_sub(1)
                        .and_then(|i| d.fields.get(i))
                        .is_some_and(|def| well_formed(def.ty, v) && value_in_enum(def, v))
            }
        };
        if !ok {
            return false;
        }
    }
    if table
        .required
        .iter()
        .zip(&seen)
        .any(|(required, seen)| required & !seen != 0)
    {
        return false;
    }
    def.conditions.iter().all(|c| {
        let triggered = msg
            .get(c.when_tag)
            .is_some_and(|v| c.when_values.contains(&v));
        let present = || {
            usize::try_from(c.tag)
                .ok()
                .and_then(|tag| d.field_index.get(tag))
                .is_some_and(|&index| index > 0 && has(&seen, usize::from(index)))
        };
        !triggered || present()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_classify_the_order_fields() {
        let d = dictionary(BeginString::Fix44);
        let t = tables(BeginString::Fix44);
        let check = |tag: i32| t.fields[usize::from(d.field_index[tag as usize])];
        assert_eq!(check(55).kind, Kind::NonEmpty);
        assert_eq!(check(54).kind, Kind::OneChar);
        assert_eq!(check(22).kind, Kind::OneChar);
        assert_eq!(check(38).kind, Kind::Format);
        assert_eq!(check(60).kind, Kind::Format);
        assert_eq!(check(18).kind, Kind::Full);
        assert!(check(54).chars & (1u128 << b'1') != 0 && check(54).chars & (1u128 << b'Z') == 0);
        assert_eq!((check(8).rank, check(55).rank, check(10).rank), (0, 1, 2));
        for version in [BeginString::Fix42, BeginString::Fix44] {
            let d = dictionary(version);
            let t = tables(version);
            for (m, def) in d.messages.iter().enumerate() {
                let table = &t.messages[m];
                for f in d.header.iter().chain(d.trailer).chain(def.fields) {
                    let index = usize::from(d.field_index[f.tag as usize]);
                    let group = def.group(f.tag).is_some();
                    assert_eq!(has(&table.allowed, index), !group, "{} {}", def.name, f.tag);
                    assert_eq!(has(&table.required, index), f.required);
                }
                let allowed: u32 = table.allowed.iter().map(|w| w.count_ones()).sum();
                let listed = d.header.len() + d.trailer.len() + def.fields.len() - def.groups.len();
                assert_eq!(allowed as usize, listed, "{}", def.name);
            }
        }
    }
}
