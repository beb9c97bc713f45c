//! Logon verification cost (cold path, but a flood of logons must stay cheap): HMAC-SHA256 of the
//! prehash, a full good-logon check (parse fields, skew, HMAC, constant-time compare, replay
//! cache, status, CompID, allowlist), an unknown key (dummy-secret HMAC), and a locked-out
//! address (refused before any HMAC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use portcullis::auth::keys::{KeyFile, KeyRecord, SecretRecord, Status};
use portcullis::auth::logon::{prehash, sign};
use portcullis::auth::{Authenticator, KeySnapshot, Policy};
use portcullis::fix::{Message, TimePrecision, Writer};
use portcullis::model::Nanos;

const SECRET: [u8; 32] = [42u8; 32];
const NOW: Nanos = Nanos(1_768_487_400_000_000_000);
const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn snapshot() -> KeySnapshot {
    let mut f = KeyFile::default();
    f.keys.push(KeyRecord {
        id: "k1".into(),
        secrets: vec![SecretRecord {
            secret: base64::engine::general_purpose::STANDARD.encode(SECRET),
            not_after_ms: None,
        }],
        role: "trader".into(),
        scopes: vec![],
        comp_ids: vec!["CLIENT1".into()],
        accounts: vec![],
        symbols: vec![],
        allow: vec!["127.0.0.1".into()],
        tier: None,
        expires_ms: None,
        status: Status::Active,
        unlock_gen: 0,
        created_ms: 0,
        rotated_ms: None,
    });
    KeySnapshot::build(&f).unwrap()
}

fn logon(user: &str, seq: u64, secret: &[u8]) -> Vec<u8> {
    let mut ts = [0u8; 32];
    let n = portcullis::fix::encode::write_timestamp(&mut ts, NOW, TimePrecision::Millis);
    let seq_s = seq.to_string();
    let pre = prehash(
        &ts[..n],
        b"A",
        seq_s.as_bytes(),
        b"CLIENT1",
        b"PORTCULLIS",
        user.as_bytes(),
    );
    let sig = sign(secret, &pre);
    let mut buf = vec![0u8; 512];
    let mut w = Writer::new(&mut buf, b"FIX.4.4", b"A");
    w.uint(34, seq)
        .str(49, b"CLIENT1")
        .timestamp(52, NOW, TimePrecision::Millis)
        .str(56, b"PORTCULLIS")
        .uint(98, 0)
        .uint(108, 30)
        .str(553, user.as_bytes())
        .uint(95, sig.len() as u64)
        .str(96, sig.as_bytes());
    let r = w.finish().unwrap();
    buf[r].to_vec()
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let pre = prehash(
        b"20260115-14:30:00.000",
        b"A",
        b"1",
        b"CLIENT1",
        b"PORTCULLIS",
        b"k1",
    );
    c.bench_function("auth/hmac_sha256_prehash", |b| {
        b.iter(|| portcullis::auth::logon::mac(black_box(&SECRET), black_box(&pre)))
    });
    let mut seq = 0u64;
    let mut a = Authenticator::new(Policy::default(), Nanos::ZERO);
    c.bench_function("auth/verify_good_logon", |b| {
        b.iter_batched(
            || {
                seq += 1;
                logon("k1", seq, &SECRET)
            },
            |m| {
                let msg = Message::decode(&m).unwrap();
                assert!(a.check(&snap, &msg, LOCAL, NOW).is_ok());
            },
            BatchSize::SmallInput,
        )
    });
    // Refusals that never lock (a zero-length lockout) so every one runs the whole check: an
    // unknown key must cost what a bad signature costs (dummy-secret HMAC), and so must a
    // locked-out source below (the HMAC work comes before every decision).
    let never_locks = Policy {
        lockout: Nanos(0),
        ..Policy::default()
    };
    let unknown = logon("nobody", 1, &SECRET);
    let mut a = Authenticator::new(never_locks, Nanos::ZERO);
    c.bench_function("auth/refuse_unknown_key", |b| {
        b.iter(|| {
            let msg = Message::decode(&unknown).unwrap();
            assert!(a.check(&snap, &msg, LOCAL, NOW).is_err());
        })
    });
    let wrong = logon("k1", 1, &[7u8; 32]);
    let mut a = Authenticator::new(never_locks, Nanos::ZERO);
    c.bench_function("auth/refuse_bad_signature", |b| {
        b.iter(|| {
            let msg = Message::decode(&wrong).unwrap();
            assert!(a.check(&snap, &msg, LOCAL, NOW).is_err());
        })
    });
    let mut a = Authenticator::new(
        Policy {
            address_max_failures: 1,
            ..Policy::default()
        },
        Nanos::ZERO,
    );
    let bad = logon("k1", 1, &[0u8; 32]);
    let _ = a.check(&snap, &Message::decode(&bad).unwrap(), LOCAL, NOW);
    c.bench_function("auth/refuse_locked_out_address", |b| {
        b.iter(|| {
            let msg = Message::decode(&bad).unwrap();
            assert!(a.check(&snap, &msg, LOCAL, NOW).is_err());
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
