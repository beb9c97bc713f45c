//! The FIXP session driven directly: every transition and reject path, keep-alive timing with
//! a manual `now`, retransmission from a store, the signature's test vector, the production
//! verifier over a real `Authenticator`, and a property test over random message sequences.

use super::msg::*;
use super::sign::*;
use super::*;
use crate::model::Nanos;
use crate::session::{MemoryStore, MessageStore};

// ---- harness ----

/// Everything the session wrote.
#[derive(Default)]
struct Rec {
    msgs: Vec<SessionMsg>,
    apps: Vec<(u64, Vec<u8>, bool)>,
    events: Vec<Event>,
}

impl Outbox for Rec {
    fn session(&mut self, msg: &SessionMsg) {
        self.msgs.push(*msg);
    }
    fn application(&mut self, seq: u64, bytes: &[u8], poss_retrans: bool) {
        self.apps.push((seq, bytes.to_vec(), poss_retrans));
    }
    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

impl Rec {
    fn take(&mut self) -> Vec<SessionMsg> {
        self.apps.clear();
        self.events.clear();
        std::mem::take(&mut self.msgs)
    }
    /// The single message sent, which must carry `code`.
    fn only_code(&mut self) -> (&'static str, u16) {
        let m = self.take();
        assert_eq!(m.len(), 1, "one message: {m:?}");
        (
            m[0].name(),
            m[0].error_code().expect("a reject or Terminate"),
        )
    }
}

const SECRET: [u8; 32] = [7u8; 32];
const OTHER_SECRET: [u8; 32] = [8u8; 32];

/// A test verifier: the signature must be HMAC-SHA256 of the canonical string under SECRET (key
/// "client1-key") or OTHER_SECRET (key "client2-key"); `deny` refuses everything. Production
/// uses `KeyVerifier` (tested below over a real Authenticator).
#[derive(Default)]
struct FakeVerifier {
    deny: bool,
    verified: u32,
    accepted: Vec<SignedKind>,
}

impl Verifier for FakeVerifier {
    fn verify(&mut self, req: &SignedRequest<'_>, _now: Nanos) -> bool {
        let secret: &[u8] = match req.access_key_id {
            b"client1-key" => &SECRET,
            b"client2-key" => &OTHER_SECRET,
            _ => return false,
        };
        self.verified += 1;
        !self.deny && crate::auth::logon::mac(secret, req.canonical) == req.signature
    }
    fn accepted(&mut self, req: &SignedRequest<'_>, _now: Nanos) {
        self.accepted.push(req.kind);
    }
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn cfg() -> FixpConfig {
    FixpConfig::new(name("CLIENT1"))
}

const T0: Nanos = Nanos(1_768_487_400_000_000_000);
const UUID: u64 = 1_768_487_399_000_000_001;
const KA_MS: u32 = 10_000;
const KA: Nanos = Nanos::from_millis(KA_MS as u64);

fn ms(n: u64) -> Nanos {
    T0.add(Nanos::from_millis(n))
}

fn negotiate_as(uuid: u64, key: &str, secret: &[u8]) -> SessionMsg {
    let mut m = Negotiate {
        uuid,
        request_timestamp: T0.0,
        session: name("CLIENT1"),
        access_key_id: name(key),
        hmac_signature: [0; 32],
    };
    sign_negotiate(secret, &mut m);
    SessionMsg::Negotiate(m)
}

fn negotiate(uuid: u64) -> SessionMsg {
    negotiate_as(uuid, "client1-key", &SECRET)
}

fn establish_as(uuid: u64, next: u64, ka_ms: u32, key: &str, secret: &[u8]) -> SessionMsg {
    let mut m = Establish {
        uuid,
        request_timestamp: T0.0,
        session: name("CLIENT1"),
        access_key_id: name(key),
        next_seq_no: next,
        keep_alive_interval: ka_ms,
        hmac_signature: [0; 32],
    };
    sign_establish(secret, &mut m);
    SessionMsg::Establish(m)
}

fn establish(uuid: u64, next: u64) -> SessionMsg {
    establish_as(uuid, next, KA_MS, "client1-key", &SECRET)
}

fn session() -> Session<MemoryStore> {
    Session::new(cfg(), MemoryStore::new(), MemoryStore::new())
}

/// A session negotiated and established at T0, its outbox emptied.
fn established() -> (Session<MemoryStore>, FakeVerifier, Rec) {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    assert!(s.on_connect(T0));
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
        Action::Continue
    );
    assert_eq!(
        s.on_message(&establish(UUID, 1), &mut v, T0, &mut out),
        Action::Continue
    );
    assert_eq!(s.state(), State::Established);
    out.take();
    (s, v, out)
}

/// Sends `n` application messages whose bytes are "app<seq>".
fn send_apps(s: &mut Session<MemoryStore>, n: usize, now: Nanos, out: &mut Rec) {
    for _ in 0..n {
        s.send_application(now, out, |seq, buf| {
            let text = format!("app{seq}");
            buf.get_mut(..text.len())?.copy_from_slice(text.as_bytes());
            Some(text.len())
        })
        .unwrap();
    }
}

fn retransmit_request(uuid: u64, last_uuid: u64, from: u64, count: u32) -> SessionMsg {
    SessionMsg::RetransmitRequest(RetransmitRequest {
        uuid,
        last_uuid,
        request_timestamp: T0.0 + 77,
        from_seq_no: from,
        msg_count: count,
    })
}

fn terminate_msg(uuid: u64) -> SessionMsg {
    SessionMsg::Terminate(Terminate {
        uuid,
        request_timestamp: T0.0,
        error_code: ErrorCode::Finished.code(),
        reason: Reason::EMPTY,
    })
}

// ---- the signature ----

const VECTOR_NEGOTIATE_HEX: &str = "4e65676f74696174650a313736383438373430303030303030303030300a313736383438373339393030303030303030310a434c49454e54310a636c69656e74312d6b6579";
const VECTOR_NEGOTIATE_SIG: &str =
    "302bf81cf13b7401bc76a68d6b0e292aaf979ec1a7df1d85d453885620b52fd6";
const VECTOR_ESTABLISH_HEX: &str = "45737461626c6973680a313736383438373430303530303030303030300a313736383438373339393030303030303030310a434c49454e54310a636c69656e74312d6b65790a310a3130303030";
const VECTOR_ESTABLISH_SIG: &str =
    "f279b386f92bf0546817a9f57d6d644a6bea234cd5c6990df1f1925644e03769";

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn spec_test_vector_holds() {
    let spec = include_str!("../../fix-specs/FIXP-SESSION.md");
    for v in [
        VECTOR_NEGOTIATE_HEX,
        VECTOR_NEGOTIATE_SIG,
        VECTOR_ESTABLISH_HEX,
        VECTOR_ESTABLISH_SIG,
    ] {
        assert!(spec.contains(v), "the spec shows {v}");
    }
    let secret: Vec<u8> = (0u8..32).collect();
    let mut n = Negotiate {
        uuid: 1_768_487_399_000_000_001,
        request_timestamp: 1_768_487_400_000_000_000,
        session: name("CLIENT1"),
        access_key_id: name("client1-key"),
        hmac_signature: [0; 32],
    };
    assert_eq!(to_hex(&negotiate_canonical(&n)), VECTOR_NEGOTIATE_HEX);
    sign_negotiate(&secret, &mut n);
    assert_eq!(
        hex(&n.hmac_signature).as_slice(),
        VECTOR_NEGOTIATE_SIG.as_bytes()
    );
    let mut e = Establish {
        uuid: 1_768_487_399_000_000_001,
        request_timestamp: 1_768_487_400_500_000_000,
        session: name("CLIENT1"),
        access_key_id: name("client1-key"),
        next_seq_no: 1,
        keep_alive_interval: 10_000,
        hmac_signature: [0; 32],
    };
    assert_eq!(to_hex(&establish_canonical(&e)), VECTOR_ESTABLISH_HEX);
    sign_establish(&secret, &mut e);
    assert_eq!(
        hex(&e.hmac_signature).as_slice(),
        VECTOR_ESTABLISH_SIG.as_bytes()
    );
}

#[test]
fn canonical_strings_are_separated_by_message_name() {
    let SessionMsg::Negotiate(n) = negotiate(UUID) else {
        unreachable!()
    };
    let SessionMsg::Establish(e) = establish(UUID, 1) else {
        unreachable!()
    };
    assert!(negotiate_canonical(&n).starts_with(b"Negotiate\n"));
    assert!(establish_canonical(&e).starts_with(b"Establish\n"));
    // The longest possible Establish fits the fixed buffer.
    let long = Name::new(&[b'x'; 32]).unwrap();
    let e = Establish {
        uuid: u64::MAX,
        request_timestamp: u64::MAX,
        session: long,
        access_key_id: long,
        next_seq_no: u64::MAX,
        keep_alive_interval: u32::MAX,
        hmac_signature: [0; 32],
    };
    assert_eq!(establish_canonical(&e).len(), 9 + 21 * 3 + 33 * 2 + 11);
}

#[test]
fn every_error_code_has_a_unique_number_and_a_reason_of_at_most_64_bytes() {
    let mut seen = std::collections::HashSet::new();
    for c in ErrorCode::ALL {
        assert!(seen.insert(c.code()), "{c:?} number reused");
        assert!(!c.reason().is_empty() && c.reason().len() <= 64, "{c:?}");
        assert_eq!(c.reason_text().as_bytes(), c.reason().as_bytes());
        assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        let spec = include_str!("../../fix-specs/FIXP-SESSION.md");
        let row = format!("| {} | ", c.code());
        assert!(spec.contains(&row), "the spec documents code {}", c.code());
        assert!(
            spec.contains(c.reason()),
            "the spec shows the reason of {c:?}"
        );
    }
    assert_eq!(ErrorCode::from_code(9999), None);
}

#[test]
fn config_validation_names_the_key() {
    assert_eq!(cfg().validate(), Ok(()));
    let mut c = cfg();
    c.keep_alive_min_ms = 70_000;
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("fixp.keep_alive_min_ms"));
    let mut c = cfg();
    c.retransmit_max_count = 0;
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("fixp.retransmit_max_count"));
    let mut c = cfg();
    c.session = name("has space");
    assert!(c.validate().unwrap_err().starts_with("fixp session"));
}

// ---- Negotiate and Establish ----

#[test]
fn negotiate_then_establish_establishes_the_session() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    assert!(s.on_connect(T0));
    assert_eq!(s.state(), State::Connected);
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
        Action::Continue
    );
    assert_eq!(s.state(), State::Negotiated);
    assert_eq!(
        out.msgs,
        [SessionMsg::NegotiationResponse(NegotiationResponse {
            uuid: UUID,
            request_timestamp: T0.0,
            previous_seq_no: 0,
            previous_uuid: 0,
        })]
    );
    assert!(out.events.contains(&Event::Negotiated {
        uuid: UUID,
        previous_uuid: 0,
        previous_seq_no: 0,
        current_is_b: true,
    }));
    out.take();
    assert_eq!(
        s.on_message(&establish(UUID, 1), &mut v, ms(1), &mut out),
        Action::Continue
    );
    assert_eq!(s.state(), State::Established);
    assert_eq!(
        out.msgs,
        [SessionMsg::EstablishmentAck(EstablishmentAck {
            uuid: UUID,
            request_timestamp: T0.0,
            next_seq_no: 1,
            previous_seq_no: 0,
            previous_uuid: 0,
            keep_alive_interval: KA_MS,
        })]
    );
    assert!(out.events.contains(&Event::Established {
        uuid: UUID,
        next_inbound: 1,
        next_outbound: 1,
        keep_alive_ms: KA_MS,
        resumed: false,
    }));
    assert_eq!(v.accepted, [SignedKind::Negotiate, SignedKind::Establish]);
    assert_eq!(s.keep_alive_ms(), KA_MS);
    assert_eq!(s.key().as_bytes(), b"client1-key");
}

#[test]
fn a_failed_authentication_gets_one_answer_and_changes_nothing() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    // Wrong secret, unknown key, a verifier that refuses: the same reject, then close.
    for msg in [
        negotiate_as(UUID, "client1-key", &OTHER_SECRET),
        negotiate_as(UUID, "nobody", &SECRET),
    ] {
        s.on_connect(T0);
        assert_eq!(s.on_message(&msg, &mut v, T0, &mut out), Action::Close);
        let m = out.take();
        assert_eq!(
            m,
            [SessionMsg::NegotiationReject(NegotiationReject {
                uuid: UUID,
                request_timestamp: T0.0,
                error_code: ErrorCode::NegotiationCredentials.code(),
                reason: ErrorCode::NegotiationCredentials.reason_text(),
            })]
        );
        assert_eq!(s.state(), State::Idle);
        assert_eq!(s.uuid(), 0);
    }
    s.on_connect(T0);
    v.deny = true;
    assert_eq!(
        s.on_message(&establish(UUID, 1), &mut v, T0, &mut out),
        Action::Close
    );
    let m = out.take();
    let SessionMsg::EstablishmentReject(r) = m[0] else {
        panic!("{m:?}")
    };
    assert_eq!(r.error_code, ErrorCode::EstablishCredentials.code());
    assert_eq!(r.reason.as_bytes(), b"authentication failed");
    assert_eq!(
        r.next_seq_no, 0,
        "nothing about the session before authentication"
    );
    assert!(
        v.accepted.is_empty(),
        "a refused request is never remembered"
    );
}

#[test]
fn a_second_negotiate_for_a_known_uuid_is_rejected() {
    let (mut s, mut v, mut out) = established();
    // On the same connection once established: refused, the session lives.
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, ms(1), &mut out),
        Action::Continue
    );
    assert_eq!(
        out.only_code(),
        (
            "NegotiationReject",
            ErrorCode::NegotiateWhileEstablished.code()
        )
    );
    assert!(s.is_established());
    // On a new connection: the current uuid cannot be negotiated again.
    s.on_disconnect(&mut out);
    out.take();
    s.on_connect(ms(2));
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, ms(2), &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::DuplicateUuid.code())
    );
    // Nor the previous one after a new uuid.
    s.on_connect(ms(3));
    assert_eq!(
        s.on_message(&negotiate(UUID + 1), &mut v, ms(3), &mut out),
        Action::Continue
    );
    assert_eq!(s.previous_uuid(), UUID);
    s.on_disconnect(&mut out);
    out.take();
    s.on_connect(ms(4));
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, ms(4), &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::DuplicateUuid.code())
    );
    // The same uuid twice on one connection before Establish.
    s.on_connect(ms(5));
    assert_eq!(
        s.on_message(&negotiate(UUID + 2), &mut v, ms(5), &mut out),
        Action::Continue
    );
    out.take();
    assert_eq!(
        s.on_message(&negotiate(UUID + 2), &mut v, ms(5), &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::DuplicateUuid.code())
    );
}

#[test]
fn negotiate_rejects_uuid_zero_another_session_and_a_second_uuid_on_one_connection() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    assert_eq!(
        s.on_message(&negotiate(0), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::InvalidUuid.code())
    );
    let SessionMsg::Negotiate(mut other) = negotiate(UUID) else {
        unreachable!()
    };
    other.session = name("CLIENT9");
    sign_negotiate(&SECRET, &mut other);
    s.on_connect(T0);
    let r = s.on_message(&SessionMsg::Negotiate(other), &mut v, T0, &mut out);
    assert_eq!(r, Action::Close);
    assert_eq!(
        out.only_code(),
        (
            "NegotiationReject",
            ErrorCode::NegotiationSessionMismatch.code()
        )
    );
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    out.take();
    assert_eq!(
        s.on_message(&negotiate(UUID + 1), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::AlreadyNegotiated.code())
    );
    assert_eq!(s.uuid(), UUID);
}

#[test]
fn establish_needs_a_negotiated_uuid() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    assert_eq!(
        s.on_message(&establish(UUID, 1), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("EstablishmentReject", ErrorCode::Unnegotiated.code())
    );
    // Negotiated uuid A, Establish for B.
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    out.take();
    assert_eq!(
        s.on_message(&establish(UUID + 5, 1), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("EstablishmentReject", ErrorCode::Unnegotiated.code())
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn establish_with_another_key_than_the_negotiate_is_rejected() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    out.take();
    let e = establish_as(UUID, 1, KA_MS, "client2-key", &OTHER_SECRET);
    assert_eq!(s.on_message(&e, &mut v, T0, &mut out), Action::Close);
    assert_eq!(
        out.only_code(),
        ("EstablishmentReject", ErrorCode::KeyMismatch.code())
    );
}

#[test]
fn keep_alive_interval_outside_the_bounds_is_rejected() {
    for (ka, ok) in [
        (999, false),
        (1_000, true),
        (60_000, true),
        (60_001, false),
        (0, false),
    ] {
        let mut s = session();
        let mut v = FakeVerifier::default();
        let mut out = Rec::default();
        s.on_connect(T0);
        s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
        out.take();
        let e = establish_as(UUID, 1, ka, "client1-key", &SECRET);
        let r = s.on_message(&e, &mut v, T0, &mut out);
        if ok {
            assert_eq!(r, Action::Continue, "{ka}");
            assert_eq!(out.take()[0].name(), "EstablishmentAck");
        } else {
            assert_eq!(r, Action::Close, "{ka}");
            let m = out.take();
            let SessionMsg::EstablishmentReject(rej) = m[0] else {
                panic!("{m:?}")
            };
            assert_eq!(rej.error_code, ErrorCode::KeepAliveInterval.code());
            assert_eq!(rej.reason.as_bytes(), b"keep_alive_interval out of range");
            assert_eq!(rej.next_seq_no, 1);
        }
    }
}

#[test]
fn establish_next_seq_no_zero_or_below_expected_is_rejected_above_is_not_applied() {
    let (mut s, mut v, mut out) = established();
    for seq in 1..=5 {
        assert_eq!(
            s.on_application(seq, false, ms(1), &mut out),
            Action::Process
        );
    }
    s.on_disconnect(&mut out);
    out.take();
    for (next, code) in [
        (0, ErrorCode::InvalidNextSeqNo),
        (5, ErrorCode::EstablishSeqNoTooLow),
    ] {
        s.on_connect(ms(2));
        assert_eq!(
            s.on_message(&establish(UUID, next), &mut v, ms(2), &mut out),
            Action::Close
        );
        let m = out.take();
        let SessionMsg::EstablishmentReject(r) = m[0] else {
            panic!("{m:?}")
        };
        assert_eq!((r.error_code, r.next_seq_no), (code.code(), 6));
    }
    s.on_connect(ms(3));
    assert_eq!(
        s.on_message(&establish(UUID, 9), &mut v, ms(3), &mut out),
        Action::Continue
    );
    assert_eq!(out.msgs[0].name(), "EstablishmentAck");
    assert_eq!(
        out.msgs[1],
        SessionMsg::NotApplied(NotApplied {
            uuid: UUID,
            from_seq_no: 6,
            msg_count: 3
        })
    );
    assert!(out.events.contains(&Event::GapDetected {
        from_seq_no: 6,
        count: 3
    }));
    assert_eq!(s.next_inbound_seq(), 9);
}

#[test]
fn establish_on_an_established_session_is_rejected_and_the_session_lives() {
    let (mut s, mut v, mut out) = established();
    assert_eq!(
        s.on_message(&establish(UUID, 1), &mut v, ms(1), &mut out),
        Action::Continue
    );
    assert_eq!(
        out.only_code(),
        ("EstablishmentReject", ErrorCode::AlreadyEstablished.code())
    );
    assert!(s.is_established());
    assert_eq!(s.on_application(1, false, ms(2), &mut out), Action::Process);
}

#[test]
fn re_establishing_after_a_reconnect_resumes_both_flows() {
    let (mut s, mut v, mut out) = established();
    send_apps(&mut s, 3, ms(1), &mut out);
    assert_eq!(out.apps.len(), 3);
    for seq in 1..=2 {
        s.on_application(seq, false, ms(1), &mut out);
    }
    s.on_disconnect(&mut out);
    assert!(out.events.contains(&Event::Disconnected));
    out.take();
    // Sent while disconnected: stored, not sent.
    send_apps(&mut s, 1, ms(2), &mut out);
    assert!(out.apps.is_empty());
    assert!(s.on_connect(ms(3)));
    assert_eq!(
        s.on_message(&establish(UUID, 3), &mut v, ms(3), &mut out),
        Action::Continue
    );
    let SessionMsg::EstablishmentAck(ack) = out.msgs[0] else {
        panic!("{:?}", out.msgs)
    };
    assert_eq!((ack.uuid, ack.next_seq_no), (UUID, 5));
    assert!(out.events.contains(&Event::Established {
        uuid: UUID,
        next_inbound: 3,
        next_outbound: 5,
        keep_alive_ms: KA_MS,
        resumed: true,
    }));
    assert_eq!(s.on_application(3, false, ms(4), &mut out), Action::Process);
    // The client recovers what it missed.
    out.take();
    s.on_message(&retransmit_request(UUID, 0, 3, 2), &mut v, ms(5), &mut out);
    assert_eq!(
        out.apps,
        [(3, b"app3".to_vec(), true), (4, b"app4".to_vec(), true)]
    );
}

#[test]
fn a_new_uuid_starts_fresh_and_keeps_the_previous_flow_recoverable() {
    let (mut s, mut v, mut out) = established();
    send_apps(&mut s, 4, ms(1), &mut out);
    s.on_application(1, false, ms(1), &mut out);
    s.on_disconnect(&mut out);
    out.take();
    s.on_connect(ms(2));
    s.on_message(&negotiate(UUID + 1), &mut v, ms(2), &mut out);
    assert_eq!(
        out.take(),
        [SessionMsg::NegotiationResponse(NegotiationResponse {
            uuid: UUID + 1,
            request_timestamp: T0.0,
            previous_seq_no: 4,
            previous_uuid: UUID,
        })]
    );
    s.on_message(&establish(UUID + 1, 1), &mut v, ms(2), &mut out);
    let SessionMsg::EstablishmentAck(ack) = out.take()[0] else {
        panic!()
    };
    assert_eq!(
        (ack.next_seq_no, ack.previous_seq_no, ack.previous_uuid),
        (1, 4, UUID)
    );
    assert_eq!((s.next_inbound_seq(), s.next_outbound_seq()), (1, 1));
    s.on_message(
        &retransmit_request(UUID + 1, UUID, 2, 3),
        &mut v,
        ms(3),
        &mut out,
    );
    assert_eq!(
        out.msgs[0],
        SessionMsg::Retransmission(Retransmission {
            uuid: UUID + 1,
            last_uuid: UUID,
            request_timestamp: T0.0 + 77,
            from_seq_no: 2,
            msg_count: 3,
        })
    );
    let seqs: Vec<u64> = out.apps.iter().map(|a| a.0).collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert!(
        out.apps.iter().all(|a| a.2),
        "retransmissions carry PossRetrans"
    );
}

// ---- before Establish ----

#[test]
fn anything_but_negotiate_or_establish_before_establish_is_terminated() {
    let seq = SessionMsg::Sequence(Sequence {
        uuid: UUID,
        next_seq_no: 1,
        keep_alive_interval_lapsed: false,
    });
    for negotiated in [false, true] {
        for msg in [Some(seq), Some(retransmit_request(UUID, 0, 1, 1)), None] {
            let mut s = session();
            let mut v = FakeVerifier::default();
            let mut out = Rec::default();
            s.on_connect(T0);
            if negotiated {
                s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
                out.take();
            }
            let r = match msg {
                Some(m) => s.on_message(&m, &mut v, T0, &mut out),
                None => s.on_application(1, false, T0, &mut out),
            };
            assert_eq!(r, Action::Close, "no application message is processed");
            let m = out.take();
            let SessionMsg::Terminate(t) = m[0] else {
                panic!("{m:?}")
            };
            assert_eq!(t.error_code, ErrorCode::NotEstablished.code());
            assert_eq!(t.reason.as_bytes(), b"session not established");
            // Before authentication the Terminate does not reveal the uuid.
            assert_eq!(t.uuid, if negotiated { UUID } else { 0 });
            assert_eq!(s.state(), State::Idle);
        }
    }
}

#[test]
fn no_establish_within_the_timeout_terminates_the_connection() {
    let mut s = session();
    let mut out = Rec::default();
    s.on_connect(T0);
    assert_eq!(s.on_timer(ms(4_999), &mut out), Action::Continue);
    assert_eq!(s.on_timer(ms(5_000), &mut out), Action::Close);
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::EstablishTimeout.code())
    );
}

#[test]
fn a_message_on_an_idle_session_is_refused_without_an_answer() {
    let mut s = session();
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(s.on_application(1, false, T0, &mut out), Action::Close);
    assert!(out.msgs.is_empty());
    assert_eq!(s.counters().unbound_messages, 2);
}

#[test]
fn a_second_connection_to_a_bound_session_is_refused_after_authentication() {
    let (mut s, mut v, mut out) = established();
    // The engine's check: a bound session takes no second connection.
    assert!(!s.on_connect(ms(1)));
    s.refuse_in_use(&establish(UUID, 1), &mut v, ms(1), &mut out);
    assert_eq!(
        out.only_code(),
        (
            "EstablishmentReject",
            ErrorCode::EstablishSessionInUse.code()
        )
    );
    s.refuse_in_use(&negotiate(UUID + 1), &mut v, ms(1), &mut out);
    assert_eq!(
        out.only_code(),
        (
            "NegotiationReject",
            ErrorCode::NegotiationSessionInUse.code()
        )
    );
    // Without valid credentials it learns nothing, not even that the session is in use.
    let stranger = negotiate_as(UUID + 1, "client1-key", &OTHER_SECRET);
    s.refuse_in_use(&stranger, &mut v, ms(1), &mut out);
    assert_eq!(
        out.only_code(),
        (
            "NegotiationReject",
            ErrorCode::NegotiationCredentials.code()
        )
    );
    s.refuse_in_use(&terminate_msg(1), &mut v, ms(1), &mut out);
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::NotEstablished.code())
    );
    assert!(s.is_established());
    assert_eq!(v.accepted.len(), 2, "refusals are never remembered");
    assert_eq!(s.on_application(1, false, ms(2), &mut out), Action::Process);
}

#[test]
fn a_connection_naming_no_session_gets_the_credentials_answer() {
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    // Correctly signed or not, the answer is the same, and the verifier saw the request.
    refuse_unknown_session(&negotiate(UUID), &mut v, T0, &mut out);
    assert_eq!(
        out.only_code(),
        (
            "NegotiationReject",
            ErrorCode::NegotiationCredentials.code()
        )
    );
    refuse_unknown_session(&establish(UUID, 1), &mut v, T0, &mut out);
    let m = out.take();
    let SessionMsg::EstablishmentReject(r) = m[0] else {
        panic!("{m:?}")
    };
    assert_eq!((r.error_code, r.next_seq_no), (204, 0));
    refuse_unknown_session(&terminate_msg(3), &mut v, T0, &mut out);
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::NotEstablished.code())
    );
    assert_eq!(v.verified, 2);
    assert!(v.accepted.is_empty());
}

// ---- established: application flow ----

#[test]
fn application_messages_in_order_are_processed_and_gaps_are_not_applied() {
    let (mut s, _v, mut out) = established();
    assert_eq!(s.on_application(1, false, ms(1), &mut out), Action::Process);
    assert_eq!(s.on_application(2, false, ms(1), &mut out), Action::Process);
    assert!(out.msgs.is_empty());
    // Gap: 3..=4 missing; 5 is applied.
    assert_eq!(s.on_application(5, false, ms(2), &mut out), Action::Process);
    assert_eq!(
        out.take(),
        [SessionMsg::NotApplied(NotApplied {
            uuid: UUID,
            from_seq_no: 3,
            msg_count: 2
        })]
    );
    assert_eq!(s.next_inbound_seq(), 6);
    // A late PossRetrans copy of 3 is a duplicate: ignored, the session lives.
    assert_eq!(s.on_application(3, true, ms(3), &mut out), Action::Continue);
    assert!(out.msgs.is_empty());
    assert_eq!(s.counters().duplicates_ignored, 1);
    // Without PossRetrans a number below the expected one is a protocol violation.
    assert_eq!(
        s.on_application(4, false, ms(4), &mut out),
        Action::Continue
    );
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::SeqNoTooLow.code())
    );
    assert_eq!(s.state(), State::Terminating);
    // Nothing after our Terminate is processed.
    assert_eq!(
        s.on_application(6, false, ms(5), &mut out),
        Action::Continue
    );
    assert_eq!(s.counters().app_received, 3);
}

#[test]
fn a_client_sequence_moves_the_expected_number_forward_only() {
    let (mut s, mut v, mut out) = established();
    let seq = |uuid, next| {
        SessionMsg::Sequence(Sequence {
            uuid,
            next_seq_no: next,
            keep_alive_interval_lapsed: false,
        })
    };
    assert_eq!(
        s.on_message(&seq(UUID, 1), &mut v, ms(1), &mut out),
        Action::Continue
    );
    assert!(out.msgs.is_empty());
    s.on_message(&seq(UUID, 4), &mut v, ms(1), &mut out);
    assert_eq!(
        out.take(),
        [SessionMsg::NotApplied(NotApplied {
            uuid: UUID,
            from_seq_no: 1,
            msg_count: 3
        })]
    );
    assert_eq!(s.on_application(4, false, ms(2), &mut out), Action::Process);
    s.on_message(&seq(UUID, 2), &mut v, ms(3), &mut out);
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::SeqNoTooLow.code())
    );
    let (mut s, mut v, mut out) = established();
    s.on_message(&seq(UUID + 9, 1), &mut v, ms(1), &mut out);
    assert_eq!(out.only_code(), ("Terminate", ErrorCode::WrongUuid.code()));
}

#[test]
fn gateway_side_messages_from_the_client_are_terminated() {
    let ack = SessionMsg::EstablishmentAck(EstablishmentAck {
        uuid: UUID,
        request_timestamp: 0,
        next_seq_no: 1,
        previous_seq_no: 0,
        previous_uuid: 0,
        keep_alive_interval: 1,
    });
    let na = SessionMsg::NotApplied(NotApplied {
        uuid: UUID,
        from_seq_no: 1,
        msg_count: 1,
    });
    for m in [ack, na] {
        let (mut s, mut v, mut out) = established();
        assert_eq!(s.on_message(&m, &mut v, ms(1), &mut out), Action::Continue);
        assert_eq!(
            out.only_code(),
            ("Terminate", ErrorCode::UnexpectedMessage.code())
        );
        assert_eq!(s.state(), State::Terminating);
        // The peer's Terminate completes the exchange: no answer, close.
        assert_eq!(
            s.on_message(&terminate_msg(UUID), &mut v, ms(2), &mut out),
            Action::Close
        );
        assert!(out.msgs.is_empty());
        assert!(out.events.contains(&Event::Terminated {
            code: ErrorCode::UnexpectedMessage.code(),
            by_peer: false
        }));
        assert_eq!(s.state(), State::Idle);
    }
}

#[test]
fn a_terminate_from_the_peer_is_answered_and_closes() {
    let (mut s, mut v, mut out) = established();
    assert_eq!(
        s.on_message(&terminate_msg(UUID), &mut v, ms(1), &mut out),
        Action::Close
    );
    assert_eq!(out.msgs.len(), 1);
    let SessionMsg::Terminate(t) = out.msgs[0] else {
        panic!()
    };
    assert_eq!((t.uuid, t.error_code), (UUID, ErrorCode::Finished.code()));
    assert!(out.events.contains(&Event::Terminated {
        code: 0,
        by_peer: true
    }));
    assert_eq!(s.state(), State::Idle);
    // Before Establish too.
    out.take();
    s.on_connect(ms(2));
    assert_eq!(
        s.on_message(&terminate_msg(5), &mut v, ms(2), &mut out),
        Action::Close
    );
    assert_eq!(out.only_code(), ("Terminate", 0));
}

#[test]
fn our_terminate_waits_one_interval_for_the_answer() {
    let (mut s, _v, mut out) = established();
    assert_eq!(
        s.terminate(ErrorCode::CredentialRevoked, ms(1), &mut out),
        Action::Continue
    );
    assert_eq!(
        out.only_code(),
        ("Terminate", ErrorCode::CredentialRevoked.code())
    );
    // Application messages after it are stored but not sent.
    send_apps(&mut s, 1, ms(2), &mut out);
    assert!(out.apps.is_empty());
    assert_eq!(
        s.on_timer(ms(1).add(KA).saturating_sub(Nanos(1)), &mut out),
        Action::Continue
    );
    assert_eq!(s.on_timer(ms(1).add(KA), &mut out), Action::Close);
    assert!(out.msgs.is_empty());
}

// ---- keep-alive ----

#[test]
fn sequence_is_sent_as_heartbeat_after_one_silent_interval() {
    let (mut s, _v, mut out) = established();
    // The peer talks all the time; we are silent.
    let mut t = T0;
    let step = Nanos::from_millis(1_000);
    let mut heartbeats = Vec::new();
    for _ in 0..25 {
        t = t.add(step);
        s.on_application(s.next_inbound_seq(), false, t, &mut out);
        assert_eq!(s.on_timer(t, &mut out), Action::Continue);
        for m in out.take() {
            assert_eq!(
                m,
                SessionMsg::Sequence(Sequence {
                    uuid: UUID,
                    next_seq_no: 1,
                    keep_alive_interval_lapsed: false
                })
            );
            heartbeats.push(t);
        }
    }
    assert_eq!(heartbeats, [ms(10_000), ms(20_000)]);
    // An application message counts as traffic: no heartbeat for another interval.
    let (mut s, _v, mut out) = established();
    send_apps(&mut s, 1, ms(9_000), &mut out);
    out.take();
    s.on_application(1, false, ms(15_000), &mut out);
    assert_eq!(s.on_timer(ms(18_999), &mut out), Action::Continue);
    assert!(out.msgs.is_empty());
    s.on_timer(ms(19_000), &mut out);
    assert_eq!(out.take().len(), 1);
}

#[test]
fn peer_silence_warns_after_one_interval_and_terminates_after_two() {
    let (mut s, mut v, mut out) = established();
    assert_eq!(s.on_timer(ms(9_999), &mut out), Action::Continue);
    assert!(out.msgs.is_empty());
    assert_eq!(s.on_timer(ms(10_000), &mut out), Action::Continue);
    assert_eq!(
        out.msgs,
        [SessionMsg::Sequence(Sequence {
            uuid: UUID,
            next_seq_no: 1,
            keep_alive_interval_lapsed: true
        })]
    );
    assert!(out.events.contains(&Event::KeepAliveWarning));
    out.take();
    // The warning is sent once; our own heartbeat follows its own clock.
    assert_eq!(s.on_timer(ms(15_000), &mut out), Action::Continue);
    assert!(out.msgs.is_empty());
    assert_eq!(s.on_timer(ms(19_999), &mut out), Action::Continue);
    assert!(out.msgs.is_empty());
    assert_eq!(s.on_timer(ms(20_000), &mut out), Action::Continue);
    let m = out.take();
    let SessionMsg::Terminate(t) = m[0] else {
        panic!("{m:?}")
    };
    assert_eq!(t.error_code, ErrorCode::KeepAliveLapsed.code());
    assert_eq!(t.reason.as_bytes(), b"keep-alive lapsed");
    assert_eq!(s.state(), State::Terminating);
    assert_eq!(s.on_timer(ms(30_000), &mut out), Action::Close);
    // A peer that speaks after the warning resets it: no Terminate at two intervals.
    let (mut s, _, mut out) = established();
    s.on_timer(ms(10_000), &mut out);
    s.on_application(1, false, ms(12_000), &mut out);
    out.take();
    assert_eq!(s.on_timer(ms(20_000), &mut out), Action::Continue);
    assert_eq!(s.on_timer(ms(21_999), &mut out), Action::Continue);
    assert!(
        out.msgs.iter().all(|m| m.error_code().is_none()),
        "{:?}",
        out.msgs
    );
    assert!(s.is_established());
    // ... and the next warning comes one interval after it spoke.
    s.on_timer(ms(22_000), &mut out);
    assert!(out.msgs.contains(&SessionMsg::Sequence(Sequence {
        uuid: UUID,
        next_seq_no: 1,
        keep_alive_interval_lapsed: true
    })));
    let _ = &mut v;
}

// ---- retransmission ----

#[test]
fn a_retransmit_request_is_answered_from_the_store_then_sequence() {
    let (mut s, mut v, mut out) = established();
    send_apps(&mut s, 5, ms(1), &mut out);
    out.take();
    s.on_message(&retransmit_request(UUID, 0, 2, 3), &mut v, ms(2), &mut out);
    assert_eq!(
        out.msgs,
        [
            SessionMsg::Retransmission(Retransmission {
                uuid: UUID,
                last_uuid: 0,
                request_timestamp: T0.0 + 77,
                from_seq_no: 2,
                msg_count: 3,
            }),
            SessionMsg::Sequence(Sequence {
                uuid: UUID,
                next_seq_no: 6,
                keep_alive_interval_lapsed: false
            }),
        ]
    );
    assert_eq!(
        out.apps,
        [
            (2, b"app2".to_vec(), true),
            (3, b"app3".to_vec(), true),
            (4, b"app4".to_vec(), true)
        ]
    );
    assert!(out.events.contains(&Event::Retransmitted {
        last_uuid: 0,
        from_seq_no: 2,
        count: 3
    }));
    // The whole flow, last message included.
    out.take();
    s.on_message(
        &retransmit_request(UUID, UUID, 1, 5),
        &mut v,
        ms(3),
        &mut out,
    );
    assert_eq!(out.apps.len(), 5);
}

#[test]
fn retransmit_requests_out_of_bounds_are_rejected_with_a_reason() {
    let mut c = cfg();
    c.retransmit_max_count = 3;
    let mut s = Session::new(c, MemoryStore::new(), MemoryStore::new());
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    s.on_message(&establish(UUID, 1), &mut v, T0, &mut out);
    send_apps(&mut s, 5, ms(1), &mut out);
    out.take();
    for (req, code) in [
        (
            retransmit_request(UUID, 0, 1, 4),
            ErrorCode::RequestLimitExceeded,
        ),
        (
            retransmit_request(UUID + 1, 0, 1, 1),
            ErrorCode::UnknownUuid,
        ),
        (
            retransmit_request(UUID, 12345, 1, 1),
            ErrorCode::UnknownUuid,
        ),
        (retransmit_request(UUID, 0, 0, 1), ErrorCode::OutOfRange),
        (retransmit_request(UUID, 0, 1, 0), ErrorCode::OutOfRange),
        (retransmit_request(UUID, 0, 4, 3), ErrorCode::OutOfRange),
        (
            retransmit_request(UUID, 0, u64::MAX, 3),
            ErrorCode::OutOfRange,
        ),
    ] {
        assert_eq!(
            s.on_message(&req, &mut v, ms(2), &mut out),
            Action::Continue
        );
        let m = out.take();
        let SessionMsg::RetransmitReject(r) = m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(r.error_code, code.code(), "{req:?}");
        assert_eq!(r.reason.as_bytes(), code.reason().as_bytes());
        assert_eq!(r.request_timestamp, T0.0 + 77);
        assert!(
            s.is_established(),
            "a refused request does not end the session"
        );
    }
    assert_eq!(s.counters().retransmit_rejects, 7);
}

#[test]
fn retransmission_is_limited_to_a_budget_per_second() {
    let mut c = cfg();
    c.retransmit_max_count = 4;
    let mut s = Session::new(c, MemoryStore::new(), MemoryStore::new());
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    s.on_message(&establish(UUID, 1), &mut v, T0, &mut out);
    send_apps(&mut s, 5, ms(1), &mut out);
    out.take();
    s.on_message(&retransmit_request(UUID, 0, 1, 3), &mut v, ms(10), &mut out);
    assert_eq!(out.apps.len(), 3);
    out.take();
    // 3 + 2 > 4 within the second: refused, nothing sent.
    s.on_message(
        &retransmit_request(UUID, 0, 4, 2),
        &mut v,
        ms(500),
        &mut out,
    );
    assert!(out.apps.is_empty());
    assert_eq!(
        out.only_code(),
        ("RetransmitReject", ErrorCode::RetransmitRateExceeded.code())
    );
    s.on_message(
        &retransmit_request(UUID, 0, 4, 1),
        &mut v,
        ms(600),
        &mut out,
    );
    assert_eq!(out.apps.len(), 1);
    out.take();
    // A second later the budget is back.
    s.on_message(
        &retransmit_request(UUID, 0, 1, 4),
        &mut v,
        ms(1_010),
        &mut out,
    );
    assert_eq!(out.apps.len(), 4);
    assert!(s.is_established());
}

/// A store that lost its oldest messages (archived, trimmed).
struct TrimmedStore(MemoryStore, u64);

impl MessageStore for TrimmedStore {
    fn next_sender_seq(&self) -> u64 {
        self.0.next_sender_seq()
    }
    fn next_target_seq(&self) -> u64 {
        self.0.next_target_seq()
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.0.set_next_sender_seq(seq)
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.0.set_next_target_seq(seq)
    }
    fn store_outbound(&mut self, seq: u64, msg: &[u8]) -> std::io::Result<()> {
        self.0.store_outbound(seq, msg)
    }
    fn outbound(&self, seq: u64) -> Option<&[u8]> {
        if seq < self.1 {
            None
        } else {
            self.0.outbound(seq)
        }
    }
    fn reset(&mut self, now_ns: u64) -> std::io::Result<()> {
        self.0.reset(now_ns)
    }
}

#[test]
fn messages_no_longer_in_the_store_are_rejected_not_skipped() {
    // Negotiate swaps the two stores: both lost messages 1 and 2.
    let store = TrimmedStore(MemoryStore::new(), 3);
    let prev = TrimmedStore(MemoryStore::new(), 3);
    let mut s = Session::new(cfg(), store, prev);
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    s.on_message(&negotiate(UUID), &mut v, T0, &mut out);
    s.on_message(&establish(UUID, 1), &mut v, T0, &mut out);
    for _ in 0..4 {
        s.send_application(T0, &mut out, |_, buf| {
            *buf.first_mut()? = b'x';
            Some(1)
        })
        .unwrap();
    }
    out.take();
    s.on_message(&retransmit_request(UUID, 0, 2, 2), &mut v, ms(1), &mut out);
    assert!(out.apps.is_empty());
    assert_eq!(
        out.only_code(),
        ("RetransmitReject", ErrorCode::MessagesUnavailable.code())
    );
    s.on_message(&retransmit_request(UUID, 0, 3, 2), &mut v, ms(1), &mut out);
    assert_eq!(out.apps.len(), 2);
}

/// A store whose writes fail.
struct FailingStore(MemoryStore);

impl MessageStore for FailingStore {
    fn next_sender_seq(&self) -> u64 {
        self.0.next_sender_seq()
    }
    fn next_target_seq(&self) -> u64 {
        self.0.next_target_seq()
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.0.set_next_sender_seq(seq)
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.0.set_next_target_seq(seq)
    }
    fn store_outbound(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
    fn outbound(&self, seq: u64) -> Option<&[u8]> {
        self.0.outbound(seq)
    }
    fn reset(&mut self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
}

#[test]
fn store_failures_refuse_the_message_and_the_negotiation() {
    let mut s = Session::new(
        cfg(),
        FailingStore(MemoryStore::new()),
        FailingStore(MemoryStore::new()),
    );
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(T0);
    assert_eq!(
        s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
        Action::Close
    );
    assert_eq!(
        out.only_code(),
        ("NegotiationReject", ErrorCode::StoreFailure.code())
    );
    assert_eq!(s.uuid(), 0);
    assert!(v.accepted.is_empty());
    let r = s.send_application(T0, &mut out, |_, _| Some(0));
    assert_eq!(r, Err(SendError::Store));
    assert_eq!(s.next_outbound_seq(), 1, "the sequence number was not used");
    let r = s.send_application(T0, &mut out, |_, _| None);
    assert_eq!(r, Err(SendError::TooLarge));
}

#[test]
fn restored_identity_lets_the_client_re_establish_after_a_restart() {
    // Before the "restart": uuid A, then uuid B; the stores hold their flows.
    let (mut s, mut v, mut out) = established();
    send_apps(&mut s, 2, ms(1), &mut out);
    s.on_disconnect(&mut out);
    s.on_connect(ms(2));
    out.take();
    s.on_message(&negotiate(UUID + 1), &mut v, ms(2), &mut out);
    let negotiated = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::Negotiated { current_is_b, .. } => Some(*current_is_b),
            _ => None,
        })
        .unwrap();
    assert!(!negotiated, "the two stores take turns");
    s.on_message(&establish(UUID + 1, 1), &mut v, ms(2), &mut out);
    send_apps(&mut s, 3, ms(3), &mut out);
    // The "restart": a new session over the same two stores, the persisted identity restored.
    let (a, b) = s.into_stores();
    let mut s = Session::new(cfg(), a, b);
    s.restore(UUID + 1, UUID, name("client1-key"), negotiated);
    let mut v = FakeVerifier::default();
    let mut out = Rec::default();
    s.on_connect(ms(10));
    assert_eq!(
        s.on_message(&establish(UUID + 1, 1), &mut v, ms(10), &mut out),
        Action::Continue
    );
    let SessionMsg::EstablishmentAck(ack) = out.take()[0] else {
        panic!()
    };
    assert_eq!(
        (ack.next_seq_no, ack.previous_seq_no, ack.previous_uuid),
        (4, 2, UUID)
    );
    s.on_message(
        &retransmit_request(UUID + 1, UUID, 1, 2),
        &mut v,
        ms(11),
        &mut out,
    );
    assert_eq!(out.apps.len(), 2);
    assert_eq!(out.apps[1].1, b"app2");
}

// ---- the production verifier ----

mod key_verifier {
    use super::*;
    use crate::auth::keys::{KeyFile, KeyRecord, SecretRecord, Status};
    use crate::auth::{Authenticator, Failure, KeySnapshot, Policy};
    use base64::Engine as _;
    use std::net::IpAddr;

    fn snapshot() -> KeySnapshot {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut f = KeyFile::default();
        f.keys.push(KeyRecord {
            id: "client1-key".into(),
            secrets: vec![SecretRecord {
                secret: b64.encode(SECRET),
                not_after_ms: None,
            }],
            role: "trader".into(),
            scopes: vec![],
            comp_ids: vec!["CLIENT1".into()],
            accounts: vec![],
            symbols: vec![],
            allow: vec!["127.0.0.0/8".into()],
            tier: None,
            expires_ms: None,
            status: Status::Active,
            unlock_gen: 0,
            created_ms: 0,
            rotated_ms: None,
        });
        KeySnapshot::build(&f).unwrap()
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn signed_requests_pass_the_authenticator_once() {
        let snap = snapshot();
        let mut auth = Authenticator::new(Policy::default(), Nanos::ZERO);
        let mut s = session();
        let mut out = Rec::default();
        s.on_connect(T0);
        {
            let mut v = KeyVerifier::new(&mut auth, &snap, LOCAL);
            assert_eq!(
                s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
                Action::Continue
            );
            assert_eq!(v.verified_key().unwrap().as_bytes(), b"client1-key");
            assert!(v.refused().is_none());
        }
        // The same signed Negotiate again (another connection): a replay.
        s.on_disconnect(&mut out);
        s.on_connect(T0);
        {
            let mut v = KeyVerifier::new(&mut auth, &snap, LOCAL);
            assert_eq!(
                s.on_message(&negotiate(UUID), &mut v, T0, &mut out),
                Action::Close
            );
            assert_eq!(v.refused().unwrap().failure, Failure::Replayed);
        }
        // A refused-for-another-reason request is not burned: a fresh uuid from outside the
        // allowlist is refused, then accepted from inside.
        let outside: IpAddr = "10.1.1.1".parse().unwrap();
        s.on_connect(T0);
        {
            let mut v = KeyVerifier::new(&mut auth, &snap, outside);
            let r = s.on_message(&negotiate(UUID + 1), &mut v, T0, &mut out);
            assert_eq!(r, Action::Close);
            assert_eq!(v.refused().unwrap().failure, Failure::AddressNotAllowed);
        }
        s.on_connect(T0);
        out.take();
        {
            let mut v = KeyVerifier::new(&mut auth, &snap, LOCAL);
            let r = s.on_message(&negotiate(UUID + 1), &mut v, T0, &mut out);
            assert_eq!(r, Action::Continue);
            assert_eq!(out.take()[0].name(), "NegotiationResponse");
            let r = s.on_message(&establish(UUID + 1, 1), &mut v, T0, &mut out);
            assert_eq!(r, Action::Continue);
            assert!(s.is_established());
        }
        // Skew and binding go through the same checks.
        s.on_disconnect(&mut out);
        s.on_connect(T0);
        let late = T0.add(Nanos::from_secs(5));
        let mut v = KeyVerifier::new(&mut auth, &snap, LOCAL);
        assert_eq!(
            s.on_message(&establish(UUID + 1, 1), &mut v, late, &mut out),
            Action::Close
        );
        assert_eq!(v.refused().unwrap().failure, Failure::Skew);
    }
}

// ---- property: random input never panics, never processes before Establish ----

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Disconnect,
    Msg(SessionMsg),
    App(u64, bool),
    Send,
    Timer(u64),
    Terminate,
}

fn arb_name() -> impl proptest::strategy::Strategy<Value = Name> {
    use proptest::prelude::*;
    prop_oneof![
        Just(name("CLIENT1")),
        Just(name("client1-key")),
        Just(name("client2-key")),
        proptest::collection::vec(any::<u8>(), 0..=32).prop_map(|b| Name::new(&b).unwrap()),
    ]
}

fn arb_msg() -> impl proptest::strategy::Strategy<Value = SessionMsg> {
    use proptest::prelude::*;
    let uuid = prop_oneof![Just(0u64), Just(UUID), Just(UUID + 1), any::<u64>()];
    let seq = prop_oneof![0u64..8, any::<u64>()];
    let reason = Just(Reason::EMPTY);
    prop_oneof![
        (uuid.clone(), any::<bool>(), any::<bool>()).prop_map(|(u, good, other)| {
            let key = if other { "client2-key" } else { "client1-key" };
            negotiate_as(u, key, if good { &SECRET } else { &OTHER_SECRET })
        }),
        (
            uuid.clone(),
            seq.clone(),
            0u32..70_000,
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(u, n, ka, good, other)| {
                let key = if other { "client2-key" } else { "client1-key" };
                let secret: &[u8] = if good == other {
                    &OTHER_SECRET
                } else {
                    &SECRET
                };
                establish_as(u, n, ka, key, secret)
            }),
        (uuid.clone(), arb_name(), arb_name(), any::<[u8; 32]>()).prop_map(|(u, s, k, sig)| {
            SessionMsg::Negotiate(Negotiate {
                uuid: u,
                request_timestamp: T0.0,
                session: s,
                access_key_id: k,
                hmac_signature: sig,
            })
        }),
        (uuid.clone(), seq.clone(), any::<bool>()).prop_map(|(u, n, l)| {
            SessionMsg::Sequence(Sequence {
                uuid: u,
                next_seq_no: n,
                keep_alive_interval_lapsed: l,
            })
        }),
        (uuid.clone(), any::<u16>(), reason).prop_map(|(u, c, r)| {
            SessionMsg::Terminate(Terminate {
                uuid: u,
                request_timestamp: 0,
                error_code: c,
                reason: r,
            })
        }),
        (uuid.clone(), uuid.clone(), seq.clone(), any::<u32>())
            .prop_map(|(u, l, f, c)| retransmit_request(u, l, f, c)),
        (uuid.clone(), seq.clone(), any::<u32>()).prop_map(|(u, f, c)| {
            SessionMsg::NotApplied(NotApplied {
                uuid: u,
                from_seq_no: f,
                msg_count: c,
            })
        }),
        (uuid, seq, any::<u32>()).prop_map(|(u, f, c)| {
            SessionMsg::Retransmission(Retransmission {
                uuid: u,
                last_uuid: 0,
                request_timestamp: 0,
                from_seq_no: f,
                msg_count: c,
            })
        }),
    ]
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        1 => Just(Op::Connect),
        1 => Just(Op::Disconnect),
        6 => arb_msg().prop_map(Op::Msg),
        4 => (prop_oneof![0u64..10, any::<u64>()], any::<bool>()).prop_map(|(s, p)| Op::App(s, p)),
        2 => Just(Op::Send),
        2 => (0u64..30_000).prop_map(Op::Timer),
        1 => Just(Op::Terminate),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn random_session_traffic_never_panics_or_processes_before_establish(
        ops in proptest::collection::vec(arb_op(), 1..60)
    ) {
        let mut s = session();
        let mut v = FakeVerifier::default();
        let mut out = Rec::default();
        let mut now = T0;
        // An EstablishmentAck went out on the current connection.
        let mut acked = false;
        for op in ops {
            let before = out.msgs.len();
            let action = match op {
                Op::Connect => {
                    if s.on_connect(now) {
                        acked = false;
                    }
                    Action::Continue
                }
                Op::Disconnect => {
                    s.on_disconnect(&mut out);
                    Action::Close
                }
                Op::Msg(m) => s.on_message(&m, &mut v, now, &mut out),
                Op::App(seq, pr) => {
                    let a = s.on_application(seq, pr, now, &mut out);
                    if a == Action::Process {
                        proptest::prop_assert!(acked, "processed before Establish");
                        proptest::prop_assert!(s.is_established());
                    }
                    a
                }
                Op::Send => {
                    let _ = s.send_application(now, &mut out, |seq, buf| {
                        *buf.first_mut()? = (seq % 251) as u8;
                        Some(1)
                    });
                    Action::Continue
                }
                Op::Timer(dt) => {
                    now = now.add(Nanos::from_millis(dt));
                    s.on_timer(now, &mut out)
                }
                Op::Terminate => s.terminate(ErrorCode::Administrative, now, &mut out),
            };
            for m in &out.msgs[before..] {
                if let SessionMsg::EstablishmentAck(_) = m {
                    acked = true;
                }
                if let Some(code) = m.error_code() {
                    proptest::prop_assert!(ErrorCode::from_code(code).is_some());
                }
            }
            if action == Action::Close {
                acked = false;
                proptest::prop_assert_eq!(s.state(), State::Idle);
            }
            if !s.is_bound() {
                acked = false;
            }
            // Retransmissions never exceed the limit; only stored messages leave.
            proptest::prop_assert!(out.apps.len() <= 100_000);
        }
    }
}
