use super::*;
use crate::auth::keys::{KeyFile, KeyRecord, SecretRecord, Status};
use crate::auth::lockout::Scope;
use crate::fix::{TimePrecision, Writer};

/// The worked example of fix-specs/SIGNED-LOGON.md.
const VECTOR_SECRET_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const VECTOR_PREHASH_HEX: &str = "32303236303131352d31343a33303a30302e3030300141013101434c49454e543101504f525443554c4c495301636c69656e74312d6b6579";
const VECTOR_SIGNATURE: &str = "auVOg47OakA2eGOdaB8PDSWWfuOvvInqvSpbNaEy7Ps=";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn spec_test_vector_holds() {
    let spec = include_str!("../../../fix-specs/SIGNED-LOGON.md");
    for v in [VECTOR_SECRET_B64, VECTOR_PREHASH_HEX, VECTOR_SIGNATURE] {
        assert!(spec.contains(v), "the spec shows {v}");
    }
    let secret = base64::engine::general_purpose::STANDARD
        .decode(VECTOR_SECRET_B64)
        .unwrap();
    assert_eq!(secret, (0u8..32).collect::<Vec<_>>());
    let pre = prehash(
        b"20260115-14:30:00.000",
        b"A",
        b"1",
        b"CLIENT1",
        b"PORTCULLIS",
        b"client1-key",
    );
    assert_eq!(hex(&pre), VECTOR_PREHASH_HEX);
    assert_eq!(sign(&secret, &pre), VECTOR_SIGNATURE);
}

const T0: Nanos = Nanos(1_768_487_400_000_000_000); // 2026-01-15T14:30:00Z

fn snapshot(secrets: &[(&[u8], Option<u64>)], status: Status) -> KeySnapshot {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut f = KeyFile::default();
    f.keys.push(KeyRecord {
        id: "client1-key".into(),
        secrets: secrets
            .iter()
            .map(|(s, end)| SecretRecord {
                secret: b64.encode(s),
                not_after_ms: *end,
            })
            .collect(),
        role: "trader".into(),
        scopes: vec![],
        comp_ids: vec!["CLIENT1".into()],
        accounts: vec![],
        symbols: vec![],
        allow: vec!["127.0.0.0/8".into(), "::1".into()],
        tier: None,
        expires_ms: None,
        status,
        unlock_gen: 0,
        created_ms: 0,
        rotated_ms: None,
    });
    KeySnapshot::build(&f).unwrap()
}

/// A Logon signed with `secret` (or carrying `sig` verbatim).
fn logon(buf: &mut Vec<u8>, sender: &str, user: &str, seq: u64, at: Nanos, secret: &[u8]) {
    let mut ts = [0u8; 32];
    let n = crate::fix::encode::write_timestamp(&mut ts, at, TimePrecision::Millis);
    let pre = prehash(
        &ts[..n],
        b"A",
        seq.to_string().as_bytes(),
        sender.as_bytes(),
        b"PORTCULLIS",
        user.as_bytes(),
    );
    let sig = sign(secret, &pre);
    raw_logon(buf, sender, user, seq, at, Some(&sig));
}

fn raw_logon(buf: &mut Vec<u8>, sender: &str, user: &str, seq: u64, at: Nanos, sig: Option<&str>) {
    buf.resize(1024, 0);
    let mut w = Writer::new(buf, b"FIX.4.4", b"A");
    w.uint(34, seq)
        .str(49, sender.as_bytes())
        .timestamp(52, at, TimePrecision::Millis)
        .str(56, b"PORTCULLIS")
        .uint(98, 0)
        .uint(108, 30);
    if !user.is_empty() {
        w.str(553, user.as_bytes());
    }
    if let Some(s) = sig {
        w.uint(95, s.len() as u64).str(96, s.as_bytes());
    }
    let r = w.finish().unwrap();
    let v = buf[r].to_vec();
    *buf = v;
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const SECRET: &[u8] = &[7u8; 32];

fn check(
    a: &mut Authenticator,
    s: &KeySnapshot,
    buf: &[u8],
    peer: IpAddr,
    now: Nanos,
) -> Result<(), Failure> {
    let m = Message::decode(buf).unwrap();
    a.check(s, &m, peer, now).map(|_| ()).map_err(|r| r.failure)
}

/// `check`, and on success the engine's acceptance (the signature is remembered).
fn accept(
    a: &mut Authenticator,
    s: &KeySnapshot,
    buf: &[u8],
    peer: IpAddr,
    now: Nanos,
) -> Result<(), Failure> {
    let m = Message::decode(buf).unwrap();
    let v = a.check(s, &m, peer, now).map_err(|r| r.failure)?;
    a.remember(&v, now);
    Ok(())
}

#[test]
fn accepts_a_good_signature_once() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, SECRET);
    assert_eq!(accept(&mut a, &s, &b, LOCAL, T0), Ok(()));
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Err(Failure::Replayed));
}

#[test]
fn a_signature_is_burned_only_by_an_accepted_logon() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, SECRET);
    // Captured and sent first from an address outside the allowlist: refused, not burned.
    let outside: IpAddr = "10.9.9.9".parse().unwrap();
    assert_eq!(
        check(&mut a, &s, &b, outside, T0),
        Err(Failure::AddressNotAllowed)
    );
    // Verified but not accepted (the engine refused it for another reason): not burned.
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
    assert_eq!(accept(&mut a, &s, &b, LOCAL, T0), Ok(()));
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Err(Failure::Replayed));
}

#[test]
fn skew_is_exclusive_on_both_sides_and_replay_covers_the_whole_window() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let skew = Policy::default().max_skew;
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    let mut b = Vec::new();
    // SendingTime exactly max_skew before or after now: refused.
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, SECRET);
    let late = Nanos(T0.0 + skew.0);
    assert_eq!(check(&mut a, &s, &b, LOCAL, late), Err(Failure::Skew));
    let early = Nanos(T0.0 - skew.0);
    assert_eq!(check(&mut a, &s, &b, LOCAL, early), Err(Failure::Skew));
    // One millisecond inside: accepted; a replay at the last instant inside is refused.
    let inside = Nanos(T0.0 + skew.0 - 1_000_000);
    assert_eq!(accept(&mut a, &s, &b, LOCAL, inside), Ok(()));
    assert_eq!(
        check(&mut a, &s, &b, LOCAL, Nanos(late.0 - 1)),
        Err(Failure::Replayed)
    );
    // At SendingTime + max_skew the cache entry ends, and the skew check already refuses.
    assert_eq!(check(&mut a, &s, &b, LOCAL, late), Err(Failure::Skew));
    let future = Nanos(T0.0 - skew.0 + 1_000_000);
    logon(&mut b, "CLIENT1", "client1-key", 2, T0, SECRET);
    assert_eq!(accept(&mut a, &s, &b, LOCAL, future), Ok(()));
}

#[test]
fn a_logon_signed_before_the_gateway_started_is_refused() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let start = Nanos(T0.0 + 1_000_000);
    let mut a = Authenticator::new(Policy::default(), start);
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, SECRET);
    assert_eq!(
        check(&mut a, &s, &b, LOCAL, Nanos(T0.0 + 2_000_000)),
        Err(Failure::BeforeStart)
    );
    logon(&mut b, "CLIENT1", "client1-key", 2, start, SECRET);
    assert_eq!(
        check(&mut a, &s, &b, LOCAL, Nanos(T0.0 + 2_000_000)),
        Ok(())
    );
}

#[test]
fn refuses_each_bad_logon_with_its_cause() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(
        Policy {
            max_failures: 1000,
            address_max_failures: 1000,
            ..Policy::default()
        },
        Nanos::ZERO,
    );
    let mut b = Vec::new();
    type Build = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(Build, IpAddr, Failure)> = vec![
        (
            Box::new(|b| logon(b, "CLIENT1", "client1-key", 2, T0, &[8u8; 32])),
            LOCAL,
            Failure::BadSignature,
        ),
        (
            Box::new(|b| logon(b, "CLIENT1", "nobody", 3, T0, SECRET)),
            LOCAL,
            Failure::UnknownKey,
        ),
        (
            Box::new(|b| logon(b, "CLIENT2", "client1-key", 4, T0, SECRET)),
            LOCAL,
            Failure::CompIdNotBound,
        ),
        (
            Box::new(|b| logon(b, "CLIENT1", "client1-key", 5, T0, SECRET)),
            "10.0.0.1".parse().unwrap(),
            Failure::AddressNotAllowed,
        ),
        (
            Box::new(|b| {
                logon(
                    b,
                    "CLIENT1",
                    "client1-key",
                    6,
                    Nanos(T0.0 - 6_000_000_000),
                    SECRET,
                )
            }),
            LOCAL,
            Failure::Skew,
        ),
        (
            Box::new(|b| raw_logon(b, "CLIENT1", "", 7, T0, Some("x"))),
            LOCAL,
            Failure::MissingUsername,
        ),
        (
            Box::new(|b| raw_logon(b, "CLIENT1", "client1-key", 8, T0, None)),
            LOCAL,
            Failure::MissingRawData,
        ),
        (
            Box::new(|b| raw_logon(b, "CLIENT1", "client1-key", 9, T0, Some("!!!notbase64!!!"))),
            LOCAL,
            Failure::MalformedSignature,
        ),
        (
            Box::new(|b| raw_logon(b, "CLIENT1", "client1-key", 10, T0, Some("AAAA"))),
            LOCAL,
            Failure::MalformedSignature,
        ),
    ];
    for (build, peer, want) in cases {
        build(&mut b);
        assert_eq!(check(&mut a, &s, &b, peer, T0), Err(want));
    }
}

#[test]
fn revoked_and_expired_keys_are_refused() {
    let s = snapshot(&[(SECRET, None)], Status::Revoked);
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, SECRET);
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Err(Failure::Revoked));
}

#[test]
fn rotation_overlap_accepts_both_secrets_until_the_old_one_ends() {
    let old: &[u8] = &[1u8; 32];
    let new: &[u8] = &[2u8; 32];
    let end_ms = T0.0 / 1_000_000 + 1000;
    let s = snapshot(&[(new, None), (old, Some(end_ms))], Status::Active);
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 1, T0, old);
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
    logon(&mut b, "CLIENT1", "client1-key", 2, T0, new);
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
    let later = Nanos(T0.0 + 2_000_000_000);
    logon(&mut b, "CLIENT1", "client1-key", 3, later, old);
    assert_eq!(
        check(&mut a, &s, &b, LOCAL, later),
        Err(Failure::BadSignature)
    );
    logon(&mut b, "CLIENT1", "client1-key", 4, later, new);
    assert_eq!(check(&mut a, &s, &b, LOCAL, later), Ok(()));
}

fn lockout_policy() -> Policy {
    Policy {
        max_failures: 3,
        address_max_failures: 6,
        window: Nanos::from_millis(60_000),
        lockout: Nanos::from_millis(10_000),
        ..Policy::default()
    }
}

#[test]
fn failures_needing_no_secret_lock_only_the_source_address() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(lockout_policy(), Nanos::ZERO);
    a.apply_unlocks(&s);
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let mut b = Vec::new();
    let stale = Nanos(T0.0 - 60_000_000_000);
    for i in 0..20 {
        match i % 3 {
            0 => raw_logon(&mut b, "CLIENT1", "client1-key", i, T0, None),
            1 => logon(&mut b, "CLIENT1", "client1-key", i, stale, SECRET),
            _ => raw_logon(&mut b, "CLIENT1", "client1-key", i, T0, Some("AAAA")),
        }
        let _ = check(&mut a, &s, &b, attacker, T0);
    }
    let id = KeyId::new(b"client1-key").unwrap();
    assert!(a.address_locked(attacker, T0));
    assert!(!a.key_locked(&id, attacker, T0));
    assert!(!a.key_locked(&id, LOCAL, T0));
    logon(&mut b, "CLIENT1", "client1-key", 100, T0, SECRET);
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
    assert_eq!(
        check(&mut a, &s, &b, attacker, T0),
        Err(Failure::AddressLockedOut)
    );
}

/// Address lockout out of the way, to watch the (key, address) lockout alone.
fn key_policy() -> Policy {
    Policy {
        address_max_failures: 100,
        ..lockout_policy()
    }
}

#[test]
fn wrong_signatures_lock_the_key_at_that_address_only() {
    let mut s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(key_policy(), Nanos::ZERO);
    a.apply_unlocks(&s);
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let id = KeyId::new(b"client1-key").unwrap();
    let mut b = Vec::new();
    let mut locks = Vec::new();
    for i in 0..3 {
        logon(&mut b, "CLIENT1", "client1-key", i, T0, &[9u8; 32]);
        let m = Message::decode(&b).unwrap();
        let r = a.check(&s, &m, attacker, T0).err().unwrap();
        assert_eq!(r.failure, Failure::BadSignature);
        locks.push(r.key_locked);
    }
    assert_eq!(locks[..2], [None, None]);
    assert!(locks[2].is_some());
    assert!(a
        .lockouts(T0)
        .iter()
        .any(|l| l.scope == Scope::KeyAddress(id, attacker)));
    // The right secret from the attacker's address: still refused, without counting.
    logon(&mut b, "CLIENT1", "client1-key", 10, T0, SECRET);
    assert_eq!(
        check(&mut a, &s, &b, attacker, T0),
        Err(Failure::KeyLockedOut)
    );
    assert!(!a.address_locked(attacker, T0));
    // The client at its own address is untouched.
    logon(&mut b, "CLIENT1", "client1-key", 11, T0, SECRET);
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
    // Time clears it.
    let later = Nanos(T0.0 + 10_000_000_001);
    logon(&mut b, "CLIENT1", "client1-key", 12, later, SECRET);
    assert_eq!(check(&mut a, &s, &b, attacker, later), Ok(()));
    // An unlock generation clears it too, and holds.
    for i in 20..23 {
        logon(&mut b, "CLIENT1", "client1-key", i, later, &[9u8; 32]);
        let _ = check(&mut a, &s, &b, attacker, later);
    }
    assert!(a.key_locked(&id, attacker, later));
    let saved = a.lockouts(later);
    s.keys[0].unlock_gen = 1;
    a.apply_unlocks(&s);
    logon(&mut b, "CLIENT1", "client1-key", 30, later, SECRET);
    assert_eq!(check(&mut a, &s, &b, attacker, later), Ok(()));
    // A persisted lock taken before the unlock does not come back at a restart ...
    let mut restarted = Authenticator::new(key_policy(), Nanos::ZERO);
    restarted.apply_unlocks(&s);
    restarted.restore_lockouts(&saved, &s, later);
    assert!(!restarted.key_locked(&id, attacker, later));
    // ... one taken under the current generation does.
    s.keys[0].unlock_gen = 0;
    let mut restarted = Authenticator::new(key_policy(), Nanos::ZERO);
    restarted.apply_unlocks(&s);
    restarted.restore_lockouts(&saved, &s, later);
    assert!(restarted.key_locked(&id, attacker, later));
}

proptest::proptest! {
    /// Whatever a client puts in the signed fields, verification answers without panicking
    /// and never accepts a logon not signed with the key's secret.
    #[test]
    fn arbitrary_logon_fields_never_panic_or_pass(
        user in proptest::collection::vec(0x20u8..0x7f, 0..40),
        len in proptest::collection::vec(0x20u8..0x7f, 0..4),
        raw in proptest::collection::vec(0x20u8..0x7f, 0..60),
        time in proptest::collection::vec(0x20u8..0x7f, 0..26),
    ) {
        let s = snapshot(&[(SECRET, None)], Status::Active);
        let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", b"A");
        w.uint(34, 1)
            .str(49, b"CLIENT1")
            .str(52, &time)
            .str(56, b"PORTCULLIS")
            .uint(98, 0)
            .uint(108, 30)
            .str(553, &user)
            .str(95, &len)
            .str(96, &raw);
        if let Ok(r) = w.finish() {
            let bytes = buf[r].to_vec();
            if let Ok(m) = Message::decode(&bytes) {
                proptest::prop_assert!(a.check(&s, &m, LOCAL, T0).is_err());
            }
        }
    }
}

/// `check_signed` with the bytes a non-FIX protocol signed.
fn signed<'a>(pre: &'a [u8], sig: [u8; 32], at: Nanos, comp_id: &'a [u8]) -> SignedLogon<'a> {
    SignedLogon {
        key_id: b"client1-key",
        signature: sig,
        sending_time: at,
        prehash: pre,
        comp_id,
    }
}

#[test]
fn check_signed_applies_the_same_checks_and_state_as_fix_logons() {
    let s = snapshot(&[(SECRET, None)], Status::Active);
    let mut a = Authenticator::new(key_policy(), Nanos::ZERO);
    a.apply_unlocks(&s);
    let pre = b"Negotiate\n1768487400000000000\n42\nCLIENT1\nclient1-key";
    let good = mac(SECRET, pre);
    let run = |a: &mut Authenticator, l: &SignedLogon<'_>, peer: IpAddr, now: Nanos| {
        a.check_signed(&s, l, peer, now).map_err(|r| r.failure)
    };
    // Bound to the key's CompID, inside the skew, once.
    let l = signed(pre, good, T0, b"CLIENT1");
    assert_eq!(
        run(&mut a, &signed(pre, good, T0, b"CLIENT2"), LOCAL, T0).err(),
        Some(Failure::CompIdNotBound)
    );
    let skewed = Nanos(T0.0 + 5_000_000_000);
    assert_eq!(
        run(&mut a, &signed(pre, good, T0, b"CLIENT1"), LOCAL, skewed).err(),
        Some(Failure::Skew)
    );
    let v = run(&mut a, &l, LOCAL, T0).expect("verifies");
    a.remember_entry(v.replay_entry(), T0);
    assert_eq!(run(&mut a, &l, LOCAL, T0).err(), Some(Failure::Replayed));
    // A wrong signature locks the key at that address, for FIX logons too.
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(
            run(&mut a, &signed(pre, [9; 32], T0, b"CLIENT1"), attacker, T0).err(),
            Some(Failure::BadSignature)
        );
    }
    let id = KeyId::new(b"client1-key").unwrap();
    assert!(a.key_locked(&id, attacker, T0));
    let mut b = Vec::new();
    logon(&mut b, "CLIENT1", "client1-key", 7, T0, SECRET);
    assert_eq!(
        check(&mut a, &s, &b, attacker, T0),
        Err(Failure::KeyLockedOut)
    );
    assert_eq!(check(&mut a, &s, &b, LOCAL, T0), Ok(()));
}
