//! Proof that the store's steady-state write path does not allocate (STYLE §2): a counting global
//! allocator, armed per thread around 100k appends after warm-up.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use portcullis::store::{AppendLog, SessionStore, SessionStoreConfig};

#[path = "common/this_thread.rs"]
mod this_thread;
use this_thread::allocations_during;

const WARM_UP: u64 = 1_000;
const MEASURED: u64 = 100_000;
/// 64 MiB: 101k records of ≤ 232 bytes fit without a roll (a roll is allowed to allocate).
const SEGMENT_BYTES: usize = 64 << 20;

/// A ~200-byte ExecutionReport-like message with its MsgSeqNum patched in place.
fn patch_seq(msg: &mut [u8; 200], seq: u64) {
    let mut n = seq;
    for b in msg[20..30].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[test]
fn session_store_outbound_path_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let config = SessionStoreConfig {
        segment_bytes: SEGMENT_BYTES,
        index_capacity: 1 << 20,
    };
    let mut store = SessionStore::open_with(dir.path(), "FIX.4.4-GW-C1", &config, 1).unwrap();
    let mut msg = [b'x'; 200];
    for seq in 1..=WARM_UP {
        patch_seq(&mut msg, seq);
        store.store_outbound(seq, &msg).unwrap();
    }
    let mut failures = 0u64;
    let allocations = allocations_during(|| {
        for seq in WARM_UP + 1..=WARM_UP + MEASURED {
            patch_seq(&mut msg, seq);
            failures += u64::from(store.store_outbound(seq, &msg).is_err());
            store.set_next_target_seq(seq);
            failures += u64::from(store.outbound(seq).is_none());
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0);
    assert_eq!((store.segment_rolls(), store.index_grows()), (0, 0));
    assert_eq!(store.next_sender_seq(), WARM_UP + MEASURED + 1);
}

#[test]
fn append_log_append_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AppendLog::open(dir.path(), "journal", SEGMENT_BYTES).unwrap();
    let payload = [7u8; 200];
    for i in 0..WARM_UP {
        log.append(2, i, &payload).unwrap();
    }
    let mut failures = 0u64;
    let allocations = allocations_during(|| {
        for i in WARM_UP..WARM_UP + MEASURED {
            failures += u64::from(log.append(2, i, &payload).is_err());
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0);
    assert_eq!(log.segment_rolls(), 0);
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the two tests above against a counter that silently counts nothing.
    let allocations = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert!(allocations >= 1);
}
