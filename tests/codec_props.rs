//! Property tests of the FIX tag=value codec (`src/fix/`): encode/decode round trips, decimals,
//! timestamps, checksum, framing of arbitrary or corrupted bytes, and validation's fast path
//! against its precise path on mutated valid messages.

use portcullis::fix::checksum::checksum;
use portcullis::fix::decode::{parse_decimal, parse_timestamp};
use portcullis::fix::encode::{write_decimal, write_timestamp};
use portcullis::fix::testing::with_trailer;
use portcullis::fix::validate::{fast, validate, validate_precise, Invalid};
use portcullis::fix::{frame, BeginString, Frame, Message, TimePrecision, Writer};
use portcullis::fuzzing::{frames, DEFAULT_MAX_MSG_LEN, SMALL_MAX_MSG_LEN};
use portcullis::model::Nanos;
use proptest::prelude::*;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A body field: a tag other than 8, 9, 10 and 35 (which the writer or the framing owns) and a
/// value of printable ASCII (`=` included: only the first `=` of a field separates tag and value).
fn field() -> impl Strategy<Value = (i32, Vec<u8>)> {
    (
        (1i32..=9999).prop_filter("header/trailer tag", |t| !matches!(t, 8 | 9 | 10 | 35)),
        prop::collection::vec(0x20u8..=0x7e, 0..24),
    )
}

fn begin_string() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![Just(&b"FIX.4.4"[..]), Just(&b"FIX.4.2"[..])]
}

fn msg_type() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![b'0'..=b'9', b'A'..=b'Z', b'a'..=b'z'], 1..=2)
}

/// Encodes `fields` with [`Writer`]; returns the finished message.
fn encode(bs: &[u8], mt: &[u8], fields: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut w = Writer::new(&mut buf, bs, mt);
    for (tag, v) in fields {
        w.str(*tag, v);
    }
    let Ok(range) = w.finish() else {
        panic!("4 KiB holds any message of these fields");
    };
    buf[range].to_vec()
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A valid calendar date and time as `YYYYMMDD-HH:MM:SS` within `years`.
fn timestamp_text(years: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = String> {
    (years, 1u32..=12)
        .prop_flat_map(|(y, m)| (Just(y), Just(m), 1..=days_in_month(y, m)))
        .prop_flat_map(|(y, m, d)| (Just((y, m, d)), 0u32..24, 0u32..60, 0u32..60))
        .prop_map(|((y, m, d), h, mi, s)| format!("{y:04}{m:02}{d:02}-{h:02}:{mi:02}:{s:02}"))
}

fn precision() -> impl Strategy<Value = (TimePrecision, u64)> {
    prop_oneof![
        Just((TimePrecision::Seconds, NANOS_PER_SEC)),
        Just((TimePrecision::Millis, 1_000_000)),
        Just((TimePrecision::Micros, 1_000)),
        Just((TimePrecision::Nanos, 1)),
    ]
}

/// Bytes that look enough like FIX to get past the first checks of `frame`.
fn fixish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(1u8),
        4 => Just(b'='),
        2 => Just(b'8'),
        2 => Just(b'9'),
        2 => Just(b'1'),
        2 => Just(b'0'),
        4 => b'0'..=b'9',
        1 => any::<u8>(),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(byte.clone(), 0..600),
        (0u32..400, prop::collection::vec(byte, 0..600)).prop_map(|(n, tail)| {
            let mut v = format!("8=FIX.4.4\x019={n}\x01").into_bytes();
            v.extend(tail);
            v
        }),
    ]
}

proptest! {
    #[test]
    fn writer_output_frames_and_decodes_to_the_same_fields(
        bs in begin_string(),
        mt in msg_type(),
        fields in prop::collection::vec(field(), 0..60),
    ) {
        let msg = encode(bs, &mt, &fields);
        prop_assert_eq!(
            frame(&msg, DEFAULT_MAX_MSG_LEN),
            Frame::Message { len: msg.len(), body_length_ok: true, checksum_ok: true }
        );
        let m = Message::decode(&msg).expect("decodes");
        let got: Vec<(i32, &[u8])> = m.fields().iter().map(|f| (f.tag, m.value(f))).collect();
        prop_assert_eq!(got.len(), fields.len() + 4);
        prop_assert_eq!(got[0], (8, bs));
        prop_assert_eq!(got[1].0, 9);
        let body_len: usize = std::str::from_utf8(got[1].1).unwrap().parse().unwrap();
        let head = "8=".len() + bs.len() + "\x019=".len() + got[1].1.len() + 1;
        prop_assert_eq!(body_len, msg.len() - head - "10=NNN\x01".len());
        prop_assert_eq!(got[2], (35, &mt[..]));
        for ((tag, value), (want_tag, want_value)) in got[3..].iter().zip(&fields) {
            prop_assert_eq!(*tag, *want_tag);
            prop_assert_eq!(*value, &want_value[..]);
        }
        prop_assert_eq!(got[got.len() - 1].0, 10);
    }

    #[test]
    fn decimals_round_trip(
        v in prop_oneof![
            // i64::MIN is left out: see `decimal_i64_min_round_trips` below.
            (i64::MIN + 1)..=i64::MAX,
            -1_000_000i64..=1_000_000,
            Just(i64::MAX),
            Just(i64::MIN + 1),
        ],
        decimals in 0u32..=8,
    ) {
        let mut out = [0u8; 32];
        let n = write_decimal(&mut out, v, decimals);
        prop_assert_eq!(parse_decimal(&out[..n], decimals), Some(v), "{:?}", std::str::from_utf8(&out[..n]));
    }

    #[test]
    fn timestamps_round_trip_at_every_precision(t in any::<u64>(), (p, unit) in precision()) {
        // Nanos (u64) reaches 2554-07-21, so this covers every representable time from 1970.
        let t = Nanos(t - t % unit);
        let mut out = [0u8; 27];
        let n = write_timestamp(&mut out, t, p);
        prop_assert_eq!(parse_timestamp(&out[..n]), Some(t), "{:?}", std::str::from_utf8(&out[..n]));
    }

    #[test]
    fn timestamp_text_round_trips_for_years_1970_to_2553(
        text in timestamp_text(1970..=2553),
        (p, unit) in precision(),
        frac in 0u64..NANOS_PER_SEC,
    ) {
        let digits = match p {
            TimePrecision::Seconds => String::new(),
            _ => format!(".{:0w$}", frac / unit, w = (9 - unit.ilog10()) as usize),
        };
        let text = format!("{text}{digits}");
        let t = parse_timestamp(text.as_bytes());
        prop_assert!(t.is_some(), "{text}");
        let mut out = [0u8; 27];
        let n = write_timestamp(&mut out, t.unwrap_or_default(), p);
        prop_assert_eq!(&out[..n], text.as_bytes());
    }

    #[test]
    fn checksum_is_the_byte_sum_modulo_256(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let naive = bytes.iter().fold(0u32, |a, b| a + u32::from(*b)) % 256;
        prop_assert_eq!(u32::from(checksum(&bytes)), naive);
    }

    #[test]
    fn frame_never_panics_nor_overruns_on_arbitrary_bytes(bytes in fixish_bytes()) {
        // `frames` asserts every length is non-zero and within the buffer, and that it progresses.
        frames(&bytes, SMALL_MAX_MSG_LEN);
        frames(&bytes, DEFAULT_MAX_MSG_LEN);
        for cut in 0..bytes.len().min(64) {
            match frame(&bytes[cut..], SMALL_MAX_MSG_LEN) {
                Frame::Skip { len } | Frame::Message { len, .. } => {
                    prop_assert!(len > 0 && len <= bytes.len() - cut)
                }
                Frame::Incomplete | Frame::TooLarge => {}
            }
        }
    }

    #[test]
    fn a_single_corrupted_byte_is_never_a_good_message(
        bs in begin_string(),
        mt in msg_type(),
        fields in prop::collection::vec(field(), 0..20),
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let mut msg = encode(bs, &mt, &fields);
        let i = at.index(msg.len());
        msg[i] = msg[i].wrapping_add(delta);
        let f = frame(&msg, DEFAULT_MAX_MSG_LEN);
        prop_assert!(
            !matches!(
                f,
                Frame::Message { len, body_length_ok: true, checksum_ok: true } if len == msg.len()
            ),
            "byte {} corrupted, still {:?}", i, f
        );
        frames(&msg, DEFAULT_MAX_MSG_LEN);
    }
}

/// Known bug (reported to the codec owner): `parse_decimal` builds the magnitude as a positive
/// `i64` before negating, so the one value whose magnitude does not fit, `i64::MIN`, is written by
/// `write_decimal` but refused by `parse_decimal`.
#[test]
fn decimal_i64_min_round_trips() {
    for decimals in 0..=8 {
        let mut out = [0u8; 32];
        let n = write_decimal(&mut out, i64::MIN, decimals);
        assert_eq!(
            parse_decimal(&out[..n], decimals),
            Some(i64::MIN),
            "{decimals}"
        );
    }
}

/// Known bug (reported to the codec owner): a UTCTimestamp after 2554-07-21 does not fit `Nanos`;
/// `parse_timestamp` overflows (a panic in debug builds, a wrapped, wrong time in release) instead
/// of returning `None`.
#[test]
fn timestamps_beyond_nanos_are_refused() {
    for text in [
        &b"25540721-23:34:34"[..],
        b"26000101-00:00:00",
        b"99991231-23:59:59.999999999",
    ] {
        assert_eq!(
            parse_timestamp(text),
            None,
            "{:?}",
            std::str::from_utf8(text)
        );
    }
}

/// Known gap (reported to the codec owner): `TooLarge` is documented for "BodyLength (or the
/// distance to the trailer) exceeding the maximum", but a trailer found far beyond the declared end
/// in an already buffered stream is returned as one huge garbled `Message`, while the same stream
/// delivered in smaller reads yields `TooLarge`: the outcome depends on TCP segmentation.
#[test]
fn distant_trailer_is_too_large_however_the_bytes_arrive() {
    let mut stream = b"8=FIX.4.4\x019=5\x0135=0\x01".to_vec();
    stream.extend(std::iter::repeat_n(b'x', 1000));
    stream.extend(b"\x0110=000\x01");
    assert_eq!(frame(&stream[..300], SMALL_MAX_MSG_LEN), Frame::TooLarge);
    assert_eq!(frame(&stream, SMALL_MAX_MSG_LEN), Frame::TooLarge);
}

// ---------------------------------------------------------------------------------------------
// `fix::validate`: the fast path against the precise one.

/// A message as its version, MsgType and the (tag, value) list after 8, 9 and 35 (the trailer is
/// added when encoding).
type Sample = (BeginString, &'static str, Vec<(i32, &'static str)>);

/// Valid messages of the types the fast path is for.
fn valid_messages() -> Vec<Sample> {
    let session = [
        (34, "2"),
        (49, "TW"),
        (52, "20240101-00:00:00.123"),
        (56, "ISLD"),
    ];
    let with = |extra: &[(i32, &'static str)]| {
        let mut v = session.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let order = [
        (11, "ORD1"),
        (1, "ACC-7"),
        (55, "AAPL"),
        (54, "1"),
        (38, "100"),
        (40, "2"),
        (44, "187.25"),
        (59, "0"),
        (60, "20240101-00:00:00.122"),
    ];
    let cancel = [
        (41, "ORD1"),
        (11, "ORD2"),
        (55, "AAPL"),
        (54, "2"),
        (38, "100"),
        (60, "20240101-00:00:00"),
    ];
    let replace = [
        (41, "ORD1"),
        (11, "ORD3"),
        (55, "AAPL"),
        (54, "1"),
        (38, "200"),
        (40, "2"),
        (44, "187.5"),
        (21, "1"),
        (60, "20240101-00:00:00"),
    ];
    let f44 = BeginString::Fix44;
    let f42 = BeginString::Fix42;
    vec![
        (f44, "D", with(&order)),
        (
            f44,
            "D",
            with(&[
                (11, "X"),
                (55, "Y"),
                (54, "2"),
                (40, "1"),
                (60, "20240101-00:00:00"),
                (18, "1 G"),
                (167, "CS"),
                (126, "20240102-00:00:00"),
                (58, "hi"),
            ]),
        ),
        (
            f44,
            "D",
            with(&[
                (11, "S"),
                (55, "Y"),
                (54, "1"),
                (40, "4"),
                (44, "9.5"),
                (99, "9.75"),
                (60, "20240101-00:00:00"),
                (453, "1"),
                (448, "P"),
                (447, "D"),
                (452, "3"),
            ]),
        ),
        (f44, "F", with(&cancel)),
        (f44, "G", with(&replace)),
        (f44, "0", with(&[])),
        (f44, "0", with(&[(112, "T1")])),
        (f44, "1", with(&[(112, "T1")])),
        (
            f44,
            "j",
            with(&[(45, "3"), (372, "D"), (380, "3"), (58, "no")]),
        ),
        (
            f44,
            "8",
            with(&[
                (37, "O1"),
                (17, "E1"),
                (150, "0"),
                (39, "0"),
                (55, "X"),
                (54, "1"),
                (151, "1"),
                (14, "0"),
                (6, "0"),
            ]),
        ),
        (
            f42,
            "D",
            with(&[
                (11, "ORD1"),
                (21, "1"),
                (55, "AAPL"),
                (54, "1"),
                (38, "100"),
                (40, "2"),
                (44, "1.5"),
            ]),
        ),
        (
            f42,
            "F",
            with(&[
                (41, "ORD1"),
                (11, "ORD2"),
                (55, "AAPL"),
                (54, "2"),
                (38, "100"),
                (60, "20240101-00:00:00"),
            ]),
        ),
        (
            f42,
            "G",
            with(&[
                (41, "ORD1"),
                (11, "ORD3"),
                (21, "1"),
                (55, "AAPL"),
                (54, "1"),
                (38, "5"),
                (40, "1"),
                (60, "20240101-00:00:00"),
            ]),
        ),
        (f42, "0", with(&[])),
        (f42, "1", with(&[(112, "T1")])),
    ]
}

/// `8=..|9=..|35=<mt>|<fields>|10=..|` with BodyLength and CheckSum right.
fn fix_bytes(version: BeginString, mt: &str, fields: &[(i32, String)]) -> Vec<u8> {
    let mut text = format!(
        "8={}\x019=0\x0135={mt}\x01",
        std::str::from_utf8(version.as_bytes()).unwrap_or("")
    );
    for (t, v) in fields {
        text.push_str(&format!("{t}={v}\x01"));
    }
    with_trailer(text.as_bytes())
}

#[derive(Clone, Debug)]
enum Mutation {
    Drop(prop::sample::Index),
    Duplicate(prop::sample::Index, prop::sample::Index),
    Garble(prop::sample::Index, String),
    Insert(prop::sample::Index, i32, String),
    Move(prop::sample::Index, prop::sample::Index),
}

fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("2".to_string()),
        Just("Z".to_string()),
        Just("1e5".to_string()),
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("1 !".to_string()),
        Just("20240101-24:00:00".to_string()),
        Just("20240101-00:00:00".to_string()),
        "[-+. 0-9A-Za-z]{0,6}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    let tag = prop_oneof![
        // Unknown to the dictionaries, header and trailer, other messages', group counts and
        // members, conditional fields, NoHops (a header group).
        prop::sample::select(vec![
            0, -1, 999, 5000, 8191, 8192, 100_000, 8, 9, 10, 34, 35, 43, 49, 52, 56, 89, 93, 97,
            122, 627, 628, 11, 37, 38, 40, 41, 44, 54, 55, 58, 59, 99, 112, 152, 167, 21, 386, 336,
            453, 448, 447, 452, 78, 79, 80, 372, 380,
        ]),
        1..1000i32,
    ];
    prop_oneof![
        idx().prop_map(Mutation::Drop),
        (idx(), idx()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (idx(), garbage()).prop_map(|(a, v)| Mutation::Garble(a, v)),
        (idx(), tag, garbage()).prop_map(|(a, t, v)| Mutation::Insert(a, t, v)),
        (idx(), idx()).prop_map(|(a, b)| Mutation::Move(a, b)),
    ]
}

/// Applies `m` to the fields after MsgType (8, 9, 35 and the trailer's 10 stay in place).
fn mutate(fields: &mut Vec<(i32, String)>, m: &Mutation) {
    let n = fields.len();
    match m {
        Mutation::Drop(i) if n > 0 => {
            fields.remove(i.index(n));
        }
        Mutation::Duplicate(i, j) if n > 0 => {
            let f = fields[i.index(n)].clone();
            fields.insert(j.index(n + 1), f);
        }
        Mutation::Garble(i, v) if n > 0 => fields[i.index(n)].1 = v.clone(),
        Mutation::Insert(i, t, v) => fields.insert(i.index(n + 1), (*t, v.clone())),
        Mutation::Move(i, j) if n > 0 => {
            let f = fields.remove(i.index(n));
            fields.insert(j.index(n), f);
        }
        _ => {}
    }
}

#[test]
fn the_fast_path_accepts_the_valid_messages_without_groups() {
    for (version, mt, fields) in valid_messages() {
        let fields: Vec<(i32, String)> = fields.iter().map(|(t, v)| (*t, v.to_string())).collect();
        let bytes = fix_bytes(version, mt, &fields);
        let m = Message::decode(&bytes).expect("decodes");
        let with_group = fields.iter().any(|(t, _)| *t == 453);
        let outbound_only = mt == "8";
        let want = if outbound_only {
            Err(Invalid::UnsupportedMessageType)
        } else {
            Ok(())
        };
        assert_eq!(validate_precise(&m, version), want, "{version:?} {mt}");
        assert_eq!(
            fast::accepts(&m, version),
            !with_group && !outbound_only,
            "{version:?} {mt}"
        );
        assert_eq!(validate(&m, version), want, "{version:?} {mt}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fast path accepts only what the precise path accepts, so `validate` (fast, then
    /// precise) reports exactly what the precise path reports: same reason, same RefTagID.
    #[test]
    fn validate_fast_path_agrees_with_the_precise_path(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let messages = valid_messages();
        let (version, mt, fields) = &messages[which.index(messages.len())];
        let mut fields: Vec<(i32, String)> =
            fields.iter().map(|(t, v)| (*t, v.to_string())).collect();
        for m in &mutations {
            mutate(&mut fields, m);
        }
        let bytes = fix_bytes(*version, mt, &fields);
        let Ok(m) = Message::decode(&bytes) else {
            return Ok(());
        };
        let precise = validate_precise(&m, *version);
        if fast::accepts(&m, *version) {
            prop_assert_eq!(precise, Ok(()), "fast path accepted {:?}", fields);
        }
        prop_assert_eq!(validate(&m, *version), precise);
    }
}
