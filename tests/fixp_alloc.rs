//! Proof that an established FIXP session's application path does not allocate (STYLE §2):
//! a counting global allocator, armed per thread around 100k rounds (an application message
//! in, one stored and sent, a timer tick) over the real mmap session store after warm-up.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use portcullis::fixp::msg::{Establish, Name, Negotiate, SessionMsg};
use portcullis::fixp::sign::{sign_establish, sign_negotiate};
use portcullis::fixp::{
    Action, Event, FixpConfig, Outbox, Session, SignedRequest, State, Verifier,
};
use portcullis::model::Nanos;
use portcullis::store::{SessionStore, SessionStoreConfig};

#[path = "common/this_thread.rs"]
mod this_thread;
use this_thread::allocations_during;

const WARM_UP: u64 = 1_000;
const MEASURED: u64 = 100_000;
/// 64 MiB: 101k records of ≤ 232 bytes fit without a roll (a roll is allowed to allocate).
const SEGMENT_BYTES: usize = 64 << 20;
const T0: Nanos = Nanos(1_768_487_400_000_000_000);

/// An outbox like the engine's: copies into a preallocated buffer, counts.
struct Wire {
    buf: Box<[u8]>,
    len: usize,
    session_msgs: u64,
    app_msgs: u64,
    terminated: bool,
}

impl Outbox for Wire {
    fn session(&mut self, _msg: &SessionMsg) {
        self.session_msgs += 1;
    }
    fn application(&mut self, _seq: u64, bytes: &[u8], _poss_retrans: bool) {
        if self.len + bytes.len() > self.buf.len() {
            self.len = 0;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.app_msgs += 1;
    }
    fn event(&mut self, event: Event) {
        self.terminated |= matches!(event, Event::Terminated { .. });
    }
}

/// Accepts every request (the signature path is cold and tested in the library).
struct Accept;

impl Verifier for Accept {
    fn verify(&mut self, _req: &SignedRequest<'_>, _now: Nanos) -> bool {
        true
    }
    fn accepted(&mut self, _req: &SignedRequest<'_>, _now: Nanos) {}
}

fn established(dir: &std::path::Path) -> (Session<SessionStore>, Wire) {
    let config = SessionStoreConfig {
        segment_bytes: SEGMENT_BYTES,
        index_capacity: 1 << 20,
    };
    let store = SessionStore::open_with(dir, "FIXP-CLIENT1-a", &config, 1).unwrap();
    let previous = SessionStore::open_with(dir, "FIXP-CLIENT1-b", &config, 1).unwrap();
    let session = Name::new(b"CLIENT1").unwrap();
    let key = Name::new(b"client1-key").unwrap();
    let mut s = Session::new(FixpConfig::new(session), store, previous);
    let mut out = Wire {
        buf: vec![0u8; 1 << 16].into_boxed_slice(),
        len: 0,
        session_msgs: 0,
        app_msgs: 0,
        terminated: false,
    };
    let mut n = Negotiate {
        uuid: 7,
        request_timestamp: T0.0,
        session,
        access_key_id: key,
        hmac_signature: [0; 32],
    };
    sign_negotiate(&[1; 32], &mut n);
    let mut e = Establish {
        uuid: 7,
        request_timestamp: T0.0,
        session,
        access_key_id: key,
        next_seq_no: 1,
        keep_alive_interval: 1_000,
        hmac_signature: [0; 32],
    };
    sign_establish(&[1; 32], &mut e);
    assert!(s.on_connect(T0));
    s.on_message(&SessionMsg::Negotiate(n), &mut Accept, T0, &mut out);
    s.on_message(&SessionMsg::Establish(e), &mut Accept, T0, &mut out);
    assert_eq!(s.state(), State::Established);
    (s, out)
}

/// One round: a timer tick, the client's order in, our ~200-byte report out. Every 500 rounds
/// a keep-alive interval passes first, so the tick sends a Sequence (lapse warning) too.
fn round(s: &mut Session<SessionStore>, out: &mut Wire, i: u64, failures: &mut u64) {
    let now = T0.add(Nanos::from_millis(i / 500 * 1_000));
    *failures += u64::from(s.on_timer(now, out) != Action::Continue);
    if s.on_application(i, false, now, out) != Action::Process {
        *failures += 1;
    }
    let sent = s.send_application(now, out, |seq, buf| {
        let msg = buf.get_mut(..200)?;
        msg.fill(b'x');
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        Some(200)
    });
    *failures += u64::from(sent.is_err());
}

#[test]
fn established_fixp_session_application_path_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut out) = established(dir.path());
    let mut failures = 0u64;
    for i in 1..=WARM_UP {
        round(&mut s, &mut out, i, &mut failures);
    }
    let allocations = allocations_during(|| {
        for i in WARM_UP + 1..=WARM_UP + MEASURED {
            round(&mut s, &mut out, i, &mut failures);
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0);
    assert!(!out.terminated);
    assert_eq!(out.app_msgs, WARM_UP + MEASURED);
    assert_eq!(s.next_outbound_seq(), WARM_UP + MEASURED + 1);
    assert_eq!(s.counters().app_received, WARM_UP + MEASURED);
    // Sequence messages went out: the keep-alive path was measured too.
    assert!(s.counters().lapse_warnings >= MEASURED / 500);
    assert!(out.session_msgs >= MEASURED / 500);
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the test above against a counter that silently counts nothing.
    let allocations = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert!(allocations >= 1);
}
