//! COLD — messages in a form people read: the message type by name, then the fields that matter
//! for it in a fixed order, enumerated values followed by their meaning:
//!
//! ```text
//! ExecutionReport 11=C1 150=0(New) 39=0(New) 55=AAPL 54=1 38=100 44=10.5 14=0 151=100 6=0
//! ```

use portcullis::fix::{tags, Message};

/// Header and trailer tags never shown in the readable form.
const HEADER_TAGS: [i32; 8] = [8, 9, 35, 34, 49, 56, 52, 10];

/// The name of a MsgType <35> value.
pub fn msg_type_name(t: &[u8]) -> String {
    let name = match t {
        b"0" => "Heartbeat",
        b"1" => "TestRequest",
        b"2" => "ResendRequest",
        b"3" => "Reject",
        b"4" => "SequenceReset",
        b"5" => "Logout",
        b"8" => "ExecutionReport",
        b"9" => "OrderCancelReject",
        b"A" => "Logon",
        b"D" => "NewOrderSingle",
        b"F" => "OrderCancelRequest",
        b"G" => "OrderCancelReplaceRequest",
        b"H" => "OrderStatusRequest",
        b"j" => "BusinessMessageReject",
        b"q" => "OrderMassCancelRequest",
        b"r" => "OrderMassCancelReport",
        other => return format!("MsgType({})", String::from_utf8_lossy(other)),
    };
    name.to_string()
}

/// Tags shown for a message type, in this order; `None` = every body field in wire order.
fn shown_tags(t: &[u8]) -> Option<&'static [i32]> {
    Some(match t {
        b"8" => &[
            11, 41, 150, 39, 55, 54, 38, 44, 32, 31, 14, 151, 6, 37, 103, 58,
        ],
        b"9" => &[11, 41, 37, 39, 434, 102, 58],
        b"3" => &[45, 372, 371, 373, 58],
        b"j" => &[45, 372, 379, 380, 58],
        b"r" => &[11, 37, 530, 531, 532, 533, 58],
        b"D" => &[11, 55, 54, 38, 40, 44, 59, 1, 100],
        b"F" => &[11, 41, 55, 54, 38],
        b"G" => &[11, 41, 55, 54, 38, 40, 44],
        b"H" => &[11, 55, 54],
        _ => return None,
    })
}

/// Meaning of an enumerated value, for the tags where it helps.
fn meaning(tag: i32, v: &[u8]) -> Option<&'static str> {
    Some(match (tag, v) {
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"0") => "New",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"1") => "PartiallyFilled",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"2") => "Filled",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"3") => "DoneForDay",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"4") => "Canceled",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"5") => "Replaced",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"6") => "PendingCancel",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"8") => "Rejected",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"A") => "PendingNew",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"C") => "Expired",
        (tags::EXEC_TYPE | tags::ORD_STATUS, b"E") => "PendingReplace",
        (tags::EXEC_TYPE, b"F") => "Trade",
        (tags::EXEC_TYPE, b"I") => "OrderStatus",
        (tags::CXL_REJ_RESPONSE_TO, b"1") => "Cancel",
        (tags::CXL_REJ_RESPONSE_TO, b"2") => "Replace",
        (tags::MASS_CANCEL_RESPONSE, b"0") => "Rejected",
        _ => return None,
    })
}

/// `Name tag=value ...` for a decoded message.
pub fn readable(m: &Message<'_>) -> String {
    let t = m.msg_type_bytes();
    let mut s = msg_type_name(t);
    let mut push = |tag: i32, v: &[u8]| {
        s.push(' ');
        s.push_str(&tag.to_string());
        s.push('=');
        // Signatures and passwords are never printed (DATA-4).
        if portcullis::auth::mask::SECRET_TAGS.contains(&tag) {
            s.push_str("***");
            return;
        }
        s.push_str(&String::from_utf8_lossy(v));
        if let Some(name) = meaning(tag, v) {
            s.push('(');
            s.push_str(name);
            s.push(')');
        }
    };
    match shown_tags(t) {
        Some(list) => {
            for &tag in list {
                if let Some(v) = m.get(tag) {
                    push(tag, v);
                }
            }
        }
        None => {
            for f in m.fields() {
                if !HEADER_TAGS.contains(&f.tag) {
                    push(f.tag, m.value(f));
                }
            }
        }
    }
    if m.get(tags::POSS_DUP_FLAG) == Some(b"Y") {
        s.push_str(" (PossDup)");
    }
    s
}

/// The readable form of raw bytes; undecodable bytes are shown raw.
pub fn readable_bytes(bytes: &[u8]) -> String {
    match Message::decode(bytes) {
        Ok(m) => readable(&m),
        Err(e) => format!("undecodable ({e:?}): {}", raw(bytes)),
    }
}

/// The message with SOH shown as `|`.
pub fn raw(bytes: &[u8]) -> String {
    let masked = portcullis::auth::mask::fix_message(bytes);
    String::from_utf8_lossy(&masked).replace('\x01', "|")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portcullis::fix::testing::with_trailer;

    #[test]
    fn execution_report_reads_like_the_readme() {
        let b = with_trailer(b"8=FIX.4.4\x019=0\x0135=8\x0134=2\x0149=GW\x0152=20240101-00:00:00\x0156=C\x0137=7\x0111=C1\x0117=7.1\x01150=0\x0139=0\x0155=AAPL\x0154=1\x0138=100\x0140=2\x0144=10.5\x01151=100\x0114=0\x016=0\x01");
        let m = Message::decode(&b).unwrap();
        assert_eq!(
            readable(&m),
            "ExecutionReport 11=C1 150=0(New) 39=0(New) 55=AAPL 54=1 38=100 44=10.5 14=0 151=100 6=0 37=7"
        );
    }

    #[test]
    fn unknown_types_show_every_body_field() {
        let b = with_trailer(
            b"8=FIX.4.4\x019=0\x0135=A\x0134=1\x0149=GW\x0152=20240101-00:00:00\x0156=C\x0198=0\x01108=30\x01",
        );
        assert_eq!(readable_bytes(&b), "Logon 98=0 108=30");
    }
}
