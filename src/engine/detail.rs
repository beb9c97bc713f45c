//! HOT — the FIX side of the order records (REG-1): the NewOrderSingle fields kept only for the
//! records (parties, instrument, currency, instructions), read into the desk's [`OrderDetail`].

use crate::fix::{tags, Message};
use crate::model::InlineStr;
use crate::order::OrderDetail;

/// OrdRejReason <103> = 99 (Other), and the text, of an invalid record-detail field.
type DetailError = (u32, &'static [u8]);

const OTHER: u32 = 99;

/// Reads the fields kept for the records (REG-1) from a NewOrderSingle: parties (PartyID <448>
/// with PartyRole <452>: 12/11 trader, 122 investment decision maker), SenderSubID <50>,
/// SecurityID <48> and its source <22>, Currency <15>, ExecInst <18>. A value too long to
/// keep is refused rather than cut (a record must not hold half an id).
pub(crate) fn parse_detail(msg: &Message<'_>, d: &mut OrderDetail) -> Result<(), DetailError> {
    // One pass over the fields (this runs for every order).
    let mut party: Option<&[u8]> = None;
    let mut trader_role = 0u8; // 2 = role 12 seen, 1 = role 11 seen
    let mut sender_sub_id: Option<&[u8]> = None;
    let too_long = |text: &'static [u8]| (OTHER, text);
    for f in msg.fields() {
        match f.tag {
            tags::PARTY_ID => party = Some(msg.value(f)),
            tags::PARTY_ROLE => {
                let Some(id) = party.take() else { continue };
                let field =
                    |v: &[u8]| InlineStr::new(v).ok_or(too_long(b"PartyID(448) longer than 24"));
                match msg.value(f) {
                    b"12" => {
                        d.trader = field(id)?;
                        trader_role = 2;
                    }
                    b"11" if trader_role < 2 => {
                        d.trader = field(id)?;
                        trader_role = 1;
                    }
                    b"122" => d.decision_maker = field(id)?,
                    _ => {}
                }
            }
            tags::SENDER_SUB_ID => sender_sub_id = Some(msg.value(f)),
            tags::SECURITY_ID => {
                d.security_id = InlineStr::new(msg.value(f))
                    .ok_or(too_long(b"SecurityID(48) longer than 24"))?;
            }
            tags::SECURITY_ID_SOURCE => {
                d.security_id_source = match msg.value(f) {
                    [c] => *c,
                    _ => return Err((OTHER, b"SecurityIDSource(22) must be one character")),
                };
            }
            tags::CURRENCY => {
                let v = msg.value(f);
                if v.len() != 3 || !v.iter().all(u8::is_ascii_alphabetic) {
                    return Err((OTHER, b"Currency(15) must be an ISO 4217 code (3 letters)"));
                }
                d.currency = InlineStr::new(v).unwrap_or_default();
            }
            tags::EXEC_INST => {
                d.exec_inst =
                    InlineStr::new(msg.value(f)).ok_or(too_long(b"ExecInst(18) longer than 16"))?;
            }
            _ => {}
        }
    }
    if trader_role == 0 {
        if let Some(v) = sender_sub_id {
            d.trader = InlineStr::new(v).ok_or(too_long(b"SenderSubID(50) longer than 24"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::with_trailer;

    fn detail(body: &str) -> Result<OrderDetail, DetailError> {
        let raw = format!(
            "8=FIX.4.4\x019=0\x0135=D\x0134=2\x0149=C\x0152=20240101-00:00:00\x0156=G\x01{}",
            body.replace('|', "\x01")
        );
        let msg = with_trailer(raw.as_bytes());
        let m = Message::decode(&msg).unwrap();
        let mut d = OrderDetail::default();
        parse_detail(&m, &mut d).map(|()| d)
    }

    #[test]
    fn parties_and_instrument_fields_are_kept() {
        let d = detail("50=DESK|11=A|453=3|448=T11|452=11|448=T12|452=12|448=DM|452=122|48=US0378331005|22=4|15=USD|18=6 G|55=AAPL|").unwrap();
        assert_eq!(
            d.trader.as_bytes(),
            b"T12",
            "role 12 wins over 11 and SenderSubID"
        );
        assert_eq!(d.decision_maker.as_bytes(), b"DM");
        assert_eq!(d.security_id.as_bytes(), b"US0378331005");
        assert_eq!(d.security_id_source, b'4');
        assert_eq!(d.currency.as_bytes(), b"USD");
        assert_eq!(d.exec_inst.as_bytes(), b"6 G");
        let d = detail("50=DESK|11=A|55=AAPL|").unwrap();
        assert_eq!(d.trader.as_bytes(), b"DESK");
    }

    #[test]
    fn unusable_detail_fields_are_refused_with_the_tag() {
        let (code, text) = detail("11=A|15=US|").unwrap_err();
        assert_eq!(code, 99);
        assert!(text.starts_with(b"Currency(15)"));
        let (_, text) = detail("11=A|48=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX|").unwrap_err();
        assert!(text.starts_with(b"SecurityID(48)"));
    }
}
