//! Golden vectors (the FIX SBE 1.0 standard's worked example and our own NewOrderSingle), header
//! and length refusals, versioning, and "no input panics" properties. The round trip of every
//! message is generated with the codec (`generated.rs`, `mod tests`).

use proptest::prelude::*;

use super::generated::*;
use super::*;

/// The bytes of a `.hex` file: pairs of hex digits, whitespace ignored, `#` to end of line a
/// comment.
fn hex_file(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

const STANDARD_EXAMPLE: &str = include_str!("../../fix-specs/sbe/golden/sbe-standard-example.hex");
const OUR_NEW_ORDER: &str =
    include_str!("../../fix-specs/sbe/golden/portcullis-new-order-single.hex");

// ------------------------------------------------------------------------ golden: the standard

#[test]
fn the_standard_example_decodes_field_by_field() {
    use super::golden_generated as ex;
    let bytes = hex_file(STANDARD_EXAMPLE);
    assert_eq!(bytes.len(), 68);
    assert_eq!(frame(&bytes, DEFAULT_MAX_FRAME), Frame::Complete(68));
    let h = Header::read(&bytes[SOFH_LENGTH..]).unwrap();
    assert_eq!(
        h,
        Header {
            block_length: 54,
            template_id: 99,
            schema_id: 91,
            version: 0
        }
    );
    assert_eq!((ex::SCHEMA_ID, ex::SCHEMA_VERSION), (91, 0));
    let ex::Message::NewOrderSingle(d) = ex::Message::wrap(h.template_id, &bytes[14..]).unwrap();
    assert_eq!(d.cl_ord_id(), b"ORD00001");
    assert_eq!(d.account(), b"ACCT01");
    assert_eq!(d.symbol(), b"GEM4");
    assert_eq!(d.side(), Some(ex::SideEnum::Buy));
    // The dump's bytes 80 16 b3 3b 13 65 29 15; the standard's table prints a different value
    // (2018-04-30T14:32:01.248Z, bytes 00 b8 63 e7 34 3d 2a 15) — see fix-specs/sbe/README.md "Golden vectors".
    assert_eq!(d.transact_time(), 1_524_861_082_122_000_000);
    assert_eq!(d.order_qty(), 7);
    assert_eq!(ex::NewOrderSingleDecoder::ORDER_QTY_EXPONENT, 0);
    assert_eq!(d.ord_type(), Some(ex::OrdTypeEnum::Limit));
    assert_eq!(d.price(), Some(99_610));
    assert_eq!(ex::NewOrderSingleDecoder::PRICE_EXPONENT, -3, "99.610");
    assert_eq!(d.stop_px(), None, "null: mantissa -2^63");
}

#[test]
fn the_standard_example_encodes_byte_for_byte() {
    use super::golden_generated as ex;
    let expected = hex_file(STANDARD_EXAMPLE);
    let mut out = [0xAAu8; ex::NewOrderSingleEncoder::FRAME_LENGTH];
    let mut e = ex::NewOrderSingleEncoder::frame(&mut out).unwrap();
    e.set_cl_ord_id(b"ORD00001").unwrap();
    e.set_account(b"ACCT01").unwrap();
    e.set_symbol(b"GEM4").unwrap();
    e.set_side(ex::SideEnum::Buy)
        .set_transact_time(1_524_861_082_122_000_000)
        .set_order_qty(7)
        .set_ord_type(ex::OrdTypeEnum::Limit)
        .set_price(Some(99_610));
    // StopPx stays null: `frame` writes nulls into every optional field.
    assert_eq!(out.as_slice(), expected.as_slice());
}

// ------------------------------------------------------------------------ golden: our own

/// The values of `fix-specs/sbe/golden/portcullis-new-order-single.hex` (README "Golden vector").
fn encode_our_new_order(out: &mut [u8]) -> usize {
    let mut e = NewOrderSingleEncoder::frame(out).unwrap();
    e.set_seq_num(1)
        .set_sending_time(1_700_000_000_123_456_789)
        .set_poss_retrans(BooleanFlag::False)
        .set_order_qty(model::Qty::from_units(100).0)
        .set_price(Some(10_125_000_000)) // 101.25
        .set_transact_time(1_700_000_000_123_000_000)
        .set_side(Side::Buy)
        .set_ord_type(OrdType::Limit)
        .set_time_in_force(TimeInForce::Day)
        .set_security_id_source(b'4');
    e.set_cl_ord_id(b"ORD-0001").unwrap();
    e.set_account(b"ACC1").unwrap();
    e.set_symbol(b"AAPL").unwrap();
    e.set_ex_destination(b"SIM").unwrap();
    e.set_trader_id(b"TRADER7").unwrap();
    e.set_decision_maker_id(b"DM1").unwrap();
    e.set_security_id(b"US0378331005").unwrap();
    e.set_currency(b"USD").unwrap();
    NewOrderSingleEncoder::FRAME_LENGTH
}

#[test]
fn our_new_order_single_encodes_to_the_golden_vector() {
    let expected = hex_file(OUR_NEW_ORDER);
    let mut out = [0x55u8; 300];
    let n = encode_our_new_order(&mut out);
    assert_eq!(n, 246);
    assert_eq!(&out[..n], expected.as_slice());
    assert_eq!(out[n], 0x55, "nothing written past the frame");
}

#[test]
fn our_golden_vector_decodes_to_its_values() {
    let bytes = hex_file(OUR_NEW_ORDER);
    let Ok(Message::NewOrderSingle(d)) = decode(&bytes) else {
        panic!("not a NewOrderSingle")
    };
    assert_eq!(d.seq_num(), 1);
    assert_eq!(d.sending_time(), 1_700_000_000_123_456_789);
    assert_eq!(d.poss_retrans(), Some(BooleanFlag::False));
    assert_eq!(model::Qty(d.order_qty()), model::Qty::from_units(100));
    assert_eq!(
        d.price().map(model::Price),
        Some(model::Price(10_125_000_000))
    );
    assert_eq!(
        (
            NewOrderSingleDecoder::PRICE_EXPONENT,
            NewOrderSingleDecoder::ORDER_QTY_EXPONENT
        ),
        (-(model::PRICE_DECIMALS as i8), -(model::QTY_DECIMALS as i8)),
        "the wire decimals are the model's fixed point: conversion is a copy"
    );
    assert_eq!(d.side().map(model::Side::from), Some(model::Side::Buy));
    assert_eq!(
        d.ord_type().map(model::OrdType::from),
        Some(model::OrdType::Limit)
    );
    assert_eq!(d.time_in_force(), Some(TimeInForce::Day));
    assert_eq!(d.cl_ord_id(), b"ORD-0001");
    assert_eq!(d.account(), b"ACC1");
    assert_eq!(d.symbol(), b"AAPL");
    assert_eq!(d.ex_destination(), b"SIM");
    assert_eq!(d.trader_id(), b"TRADER7");
    assert_eq!(d.decision_maker_id(), b"DM1");
    assert_eq!(d.security_id(), b"US0378331005");
    assert_eq!(d.security_id_source(), b'4');
    assert_eq!(d.currency(), b"USD");
    assert_eq!(d.exec_inst(), b"");
}

/// The hex dump in the ```text block after `heading` in the spec README (each line: hex bytes,
/// then four spaces and a note).
fn readme_vector(heading: &str) -> Vec<u8> {
    let readme = include_str!("../../fix-specs/sbe/README.md");
    let after = &readme[readme.find(heading).unwrap()..];
    let block = &after[after.find("```text\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let hex: String = block
        .lines()
        .map(|l| l.split("    ").next().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    hex_file(&hex)
}

#[test]
fn the_spec_readme_shows_the_golden_vectors() {
    assert_eq!(
        readme_vector("**The standard's worked example**"),
        hex_file(STANDARD_EXAMPLE)
    );
    assert_eq!(
        readme_vector("**Our NewOrderSingle**"),
        hex_file(OUR_NEW_ORDER)
    );
}

// ------------------------------------------------------------------------ refusals

/// A frame of `template_id` with a zeroed block of `block_length` bytes and this header.
fn raw_frame(template_id: u16, block_length: u16, schema_id: u16, version: u16) -> Vec<u8> {
    let len = SOFH_LENGTH + HEADER_LENGTH + usize::from(block_length);
    let mut v = vec![0u8; len];
    wire::put_headers(&mut v, len, block_length, template_id, schema_id, version);
    v
}

#[test]
fn every_template_decodes_as_itself() {
    for t in TEMPLATE_IDS {
        let bl = block_length(t).unwrap();
        let f = raw_frame(t, bl, SCHEMA_ID, SCHEMA_VERSION);
        let m = decode(&f).unwrap();
        assert_eq!(m.template_id(), t);
    }
}

#[test]
fn short_frames_are_refused() {
    let good = raw_frame(1, 232, SCHEMA_ID, 1);
    for n in [0, 1, 5, 6, 13] {
        assert!(
            matches!(
                decode(&good[..n]),
                Err(SbeError::Short { .. }) | Err(SbeError::LengthMismatch { .. })
            ),
            "{n} bytes"
        );
    }
    // A SOFH that states the whole frame, over fewer bytes.
    assert_eq!(
        decode(&good[..100]).err(),
        Some(SbeError::LengthMismatch {
            stated: 246,
            actual: 100
        })
    );
    // SOFH consistent with the bytes, but the block cut short of its blockLength.
    let mut cut = good[..100].to_vec();
    cut[..4].copy_from_slice(&100u32.to_be_bytes());
    assert_eq!(
        decode(&cut).err(),
        Some(SbeError::Short { len: 94, need: 240 })
    );
    assert_eq!(
        decode_message(&good[6..10]).err(),
        Some(SbeError::Short { len: 4, need: 8 })
    );
}

#[test]
fn a_wrong_encoding_type_is_refused() {
    let mut f = raw_frame(1, 232, SCHEMA_ID, 1);
    f[4..6].copy_from_slice(&0x50EBu16.to_be_bytes());
    assert_eq!(
        decode(&f).err(),
        Some(SbeError::WrongEncodingType { found: 0x50EB })
    );
    assert_eq!(
        frame(&f, DEFAULT_MAX_FRAME),
        Frame::Invalid(SbeError::WrongEncodingType { found: 0x50EB })
    );
}

#[test]
fn an_unknown_template_is_refused() {
    for t in [0u16, 6, 16, 23, 499, 511, 512, 514, u16::MAX] {
        let f = raw_frame(t, 64, SCHEMA_ID, 1);
        assert_eq!(
            decode(&f).err(),
            Some(SbeError::UnknownTemplate { found: t }),
            "{t}"
        );
    }
}

#[test]
fn a_block_length_below_the_message_is_refused() {
    let f = raw_frame(1, 231, SCHEMA_ID, 1);
    assert_eq!(
        decode(&f).err(),
        Some(SbeError::WrongBlockLength {
            template_id: 1,
            found: 231,
            need: 232
        })
    );
    assert_eq!(
        SbeError::WrongBlockLength {
            template_id: 1,
            found: 231,
            need: 232
        }
        .error_code(),
        SessionErrorCode::WrongBlockLength
    );
}

#[test]
fn a_longer_block_from_a_newer_minor_layout_is_read_and_its_tail_skipped() {
    let mut long = raw_frame(1, 232, SCHEMA_ID, 1);
    let n = encode_our_new_order(&mut long);
    assert_eq!(n, long.len());
    // The same message with 16 more block bytes (fields we do not know) after ours.
    let mut f = long.clone();
    f.extend_from_slice(&[0xEE; 16]);
    let len = f.len();
    wire::put_headers(&mut f, len, 248, 1, SCHEMA_ID, 1);
    let Ok(Message::NewOrderSingle(d)) = decode(&f) else {
        panic!("refused a longer block")
    };
    assert_eq!(d.cl_ord_id(), b"ORD-0001");
    assert_eq!(d.block().len(), 248);
}

#[test]
fn bytes_after_the_block_are_refused() {
    let mut f = raw_frame(506, 24, SCHEMA_ID, 1);
    f.push(0);
    let len = f.len();
    f[..4].copy_from_slice(&(len as u32).to_be_bytes());
    assert_eq!(
        decode(&f).err(),
        Some(SbeError::LengthMismatch {
            stated: 38,
            actual: 39
        })
    );
}

#[test]
fn schema_and_version_mismatches_are_refused() {
    assert_eq!(
        decode(&raw_frame(1, 232, 91, 1)).err(),
        Some(SbeError::WrongSchema { found: 91 })
    );
    assert_eq!(
        decode(&raw_frame(1, 232, SCHEMA_ID, 2)).err(),
        Some(SbeError::UnsupportedVersion { found: 2 })
    );
    // An older version with the full block is read (every field is in version 1's block).
    assert!(decode(&raw_frame(1, 232, SCHEMA_ID, 0)).is_ok());
    assert_eq!(
        SbeError::UnsupportedVersion { found: 2 }.error_code(),
        SessionErrorCode::SchemaMismatch
    );
}

#[test]
fn every_error_has_a_reason_that_fits_the_text_field() {
    let all = [
        SbeError::Short { len: 0, need: 14 },
        SbeError::WrongEncodingType { found: 0 },
        SbeError::Oversize {
            len: 5000,
            max: 4096,
        },
        SbeError::LengthBelowHeaders { len: 3 },
        SbeError::LengthMismatch {
            stated: 1,
            actual: 2,
        },
        SbeError::WrongSchema { found: 1 },
        SbeError::UnsupportedVersion { found: 9 },
        SbeError::UnknownTemplate { found: 7 },
        SbeError::WrongBlockLength {
            template_id: 1,
            found: 0,
            need: 232,
        },
        SbeError::ValueTooLong {
            offset: 52,
            len: 21,
            max: 20,
        },
        SbeError::BufferTooSmall { len: 0, need: 246 },
    ];
    for e in all {
        let r = e.reason();
        assert!(!r.is_empty() && r.len() <= 64, "{e:?}: {r}");
        let mut enc = [0u8; TerminateEncoder::FRAME_LENGTH];
        TerminateEncoder::frame(&mut enc)
            .unwrap()
            .set_error_code(e.error_code())
            .set_reason(r.as_bytes())
            .unwrap();
        let Ok(Message::Terminate(t)) = decode(&enc) else {
            panic!("Terminate")
        };
        assert_eq!(t.reason(), r.as_bytes());
    }
}

#[test]
fn encoders_refuse_small_buffers_and_long_values() {
    let mut small = [0u8; 245];
    assert_eq!(
        NewOrderSingleEncoder::frame(&mut small).err(),
        Some(SbeError::BufferTooSmall {
            len: 245,
            need: 246
        })
    );
    assert!(NewOrderSingleEncoder::wrap(&mut small[..231]).is_err());
    let mut out = [0u8; 246];
    let mut e = NewOrderSingleEncoder::frame(&mut out).unwrap();
    // ClOrdID is char[20] over SBE (FIX takes 40): 21 characters cannot be expressed.
    assert_eq!(
        e.set_cl_ord_id(&[b'X'; 21]).err(),
        Some(SbeError::ValueTooLong {
            offset: 52,
            len: 21,
            max: 20
        })
    );
    assert!(e.set_cl_ord_id(&[b'X'; 20]).is_ok());
}

#[test]
fn enums_answer_none_for_values_outside_the_schema() {
    let mut f = raw_frame(1, 232, SCHEMA_ID, 1);
    f[14 + 48] = b'9'; // side
    let Ok(Message::NewOrderSingle(d)) = decode(&f) else {
        panic!()
    };
    assert_eq!(d.side(), None);
    assert_eq!(d.side_raw(), b'9');
    for v in 0..=255u8 {
        if let Some(s) = Side::from_u8(v) {
            assert_eq!(s.to_u8(), v);
        }
    }
    for c in SessionErrorCode::ALL {
        assert_eq!(SessionErrorCode::from_u16(c.to_u16()), Some(c));
    }
}

#[test]
fn model_enums_convert_both_ways() {
    for s in Side::ALL {
        assert_eq!(Side::from(model::Side::from(s)), s);
        assert_eq!(
            model::Side::from(s).to_fix(),
            s.to_u8(),
            "same letters as FIX"
        );
    }
    for t in OrdType::ALL {
        assert_eq!(model::OrdType::from(t).to_fix(), t.to_u8());
    }
    for t in TimeInForce::ALL {
        assert_eq!(model::TimeInForce::from(t).to_fix(), t.to_u8());
        assert_eq!(TimeInForce::from(model::TimeInForce::from(t)), t);
    }
    for s in OrdStatus::ALL {
        let m = model::OrdStatus::from_fix(s.to_u8()).unwrap();
        assert_eq!(OrdStatus::from(m), s);
    }
    for t in ExecType::ALL {
        let back = [
            model::ExecType::New,
            model::ExecType::Canceled,
            model::ExecType::Replaced,
            model::ExecType::PendingCancel,
            model::ExecType::Rejected,
            model::ExecType::PendingNew,
            model::ExecType::Expired,
            model::ExecType::Trade,
            model::ExecType::PendingReplace,
            model::ExecType::OrderStatus,
        ]
        .into_iter()
        .find(|m| m.to_fix() == t.to_u8())
        .unwrap();
        assert_eq!(ExecType::from(back), t);
    }
}

// ------------------------------------------------------------------------ no input panics

#[test]
fn the_fuzz_seeds_run_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz/seeds/sbe_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        crate::fuzzing::sbe_decode(&bytes);
        n += 1;
    }
    assert!(n >= 5, "seed files missing");
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        crate::fuzzing::sbe_decode(&bytes);
    }

    /// Valid SOFH and header for a real template, arbitrary block: decoding and reading every
    /// field never panics, and a correct frame always decodes.
    #[test]
    fn any_block_behind_a_valid_header_decodes(
        t in 0..TEMPLATE_IDS.len(),
        extra in 0usize..24,
        fill in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let id = TEMPLATE_IDS[t];
        let bl = block_length(id).unwrap() + extra as u16;
        let mut f = raw_frame(id, bl, SCHEMA_ID, SCHEMA_VERSION);
        for (b, x) in f[14..].iter_mut().zip(&fill) {
            *b = *x;
        }
        let m = decode(&f).unwrap();
        prop_assert_eq!(m.template_id(), id);
        crate::fuzzing::sbe_decode(&f);
    }

    /// Whatever the header says, `decode` answers (never panics) and accepts only frames whose
    /// block is at least the template's.
    #[test]
    fn decode_checks_every_header_field(
        template in any::<u16>(),
        bl in any::<u16>(),
        schema in prop_oneof![Just(SCHEMA_ID), any::<u16>()],
        version in 0u16..4,
        len in 0usize..300,
    ) {
        let mut f = vec![0u8; len.max(14)];
        let n = f.len();
        wire::put_headers(&mut f, n, bl, template, schema, version);
        if let Ok(m) = decode(&f) {
            prop_assert_eq!(schema, SCHEMA_ID);
            prop_assert!(version <= SCHEMA_VERSION);
            prop_assert!(bl >= block_length(template).unwrap());
            prop_assert_eq!(n, 14 + usize::from(bl));
            m.read_all_fields();
        }
    }
}

#[test]
fn the_schemas_session_error_codes_are_the_session_layers() {
    // One list: the FIXP session (src/fixp) chooses the codes, the schema carries them.
    use crate::fixp::ErrorCode;
    assert_eq!(SessionErrorCode::ALL.len(), ErrorCode::ALL.len());
    for c in ErrorCode::ALL {
        let s = SessionErrorCode::from_u16(c.code())
            .unwrap_or_else(|| panic!("{c:?} ({}) missing from the schema", c.code()));
        assert_eq!(format!("{s:?}"), format!("{c:?}"), "code {}", c.code());
    }
}
