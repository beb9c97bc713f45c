//! COLD (fuzzing only) — the `fixp_session` fuzz target's body (`tools/fuzz/`): arbitrary bytes
//! become a sequence of connects, disconnects, session messages, application messages, sends,
//! timer ticks and gateway Terminates driving one [`Session`]; it panics only when an invariant
//! breaks. Replayable as an ordinary test (no nightly toolchain needed).

use super::msg::{
    ErrorCode, Establish, Name, Negotiate, NotApplied, Reason, RetransmitRequest, Sequence,
    SessionMsg, Terminate,
};
use super::session::{Action, Event, Outbox, Session, SignedRequest, State, Verifier};
use super::FixpConfig;
use crate::model::Nanos;
use crate::session::MemoryStore;

/// Reads fields from the fuzzer's bytes; past the end every read is 0.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        // Mostly small numbers (sequence numbers, uuids that collide), sometimes anything.
        match self.u8() {
            0..=199 => u64::from(self.u8() % 8),
            200..=249 => 1_000 + u64::from(self.u8() % 4),
            _ => (0..8).fold(0u64, |v, _| v << 8 | u64::from(self.u8())),
        }
    }
    fn u32(&mut self) -> u32 {
        u32::try_from(self.u64() & 0xffff_ffff).unwrap_or(0)
    }
    fn name(&mut self) -> Name {
        match self.u8() % 4 {
            0 => Name::new(b"client1-key").unwrap_or(Name::EMPTY),
            1 => Name::new(b"client2-key").unwrap_or(Name::EMPTY),
            2 => Name::new(b"OTHER").unwrap_or(Name::EMPTY),
            _ => Name::new(b"CLIENT1").unwrap_or(Name::EMPTY),
        }
    }
}

/// Accepts a request when its signature's first byte is even (the signature path itself is
/// fuzzed through the canonical string builders).
struct ByteVerifier;

impl Verifier for ByteVerifier {
    fn verify(&mut self, req: &SignedRequest<'_>, _now: Nanos) -> bool {
        std::hint::black_box(req.canonical.len()) > 0 && req.signature[0] % 2 == 0
    }
    fn accepted(&mut self, _req: &SignedRequest<'_>, _now: Nanos) {}
}

#[derive(Default)]
struct Seen {
    acked: bool,
    apps: u64,
    last_retransmission: Option<u32>,
    retransmitted: u32,
}

impl Outbox for Seen {
    fn session(&mut self, msg: &SessionMsg) {
        if let Some(code) = msg.error_code() {
            assert!(ErrorCode::from_code(code).is_some(), "unknown code {code}");
        }
        match msg {
            SessionMsg::EstablishmentAck(_) => self.acked = true,
            SessionMsg::Retransmission(r) => {
                self.last_retransmission = Some(r.msg_count);
                self.retransmitted = 0;
            }
            SessionMsg::Sequence(_) => {
                if let Some(n) = self.last_retransmission.take() {
                    assert_eq!(
                        n, self.retransmitted,
                        "Retransmission count = messages sent"
                    );
                }
            }
            _ => {}
        }
    }
    fn application(&mut self, _seq: u64, _bytes: &[u8], poss_retrans: bool) {
        assert!(self.acked, "application message sent before Establish");
        if poss_retrans {
            self.retransmitted += 1;
        }
        self.apps += 1;
    }
    fn event(&mut self, _event: Event) {}
}

/// The fuzz target. Panics if a session call panics, if an application message is processed or
/// sent before an EstablishmentAck on the current connection, if `Close` leaves the session
/// bound, if a reject or Terminate carries an unknown code, or if a Retransmission announces a
/// count other than the messages that follow it.
pub fn session(data: &[u8]) {
    std::hint::black_box(run(data));
}

/// [`session`]; returns how many application messages were processed (for the test below).
fn run(data: &[u8]) -> u64 {
    let mut processed = 0;
    let mut cfg = FixpConfig::new(Name::new(b"CLIENT1").unwrap_or(Name::EMPTY));
    cfg.retransmit_max_count = 16;
    let mut s = Session::new(cfg, MemoryStore::new(), MemoryStore::new());
    let mut out = Seen::default();
    let mut now = Nanos::from_secs(1_768_487_400);
    let mut b = Bytes(data);
    let mut steps = 0;
    while !b.0.is_empty() && steps < 4_096 {
        steps += 1;
        let action = match b.u8() % 16 {
            0 => {
                if s.on_connect(now) {
                    out.acked = false;
                }
                Action::Continue
            }
            1 => {
                s.on_disconnect(&mut out);
                Action::Close
            }
            2 | 3 => {
                let m = Negotiate {
                    uuid: b.u64(),
                    request_timestamp: b.u64(),
                    session: b.name(),
                    access_key_id: b.name(),
                    hmac_signature: [b.u8(); 32],
                };
                s.on_message(&SessionMsg::Negotiate(m), &mut ByteVerifier, now, &mut out)
            }
            4 | 5 => {
                let m = Establish {
                    uuid: b.u64(),
                    request_timestamp: b.u64(),
                    session: b.name(),
                    access_key_id: b.name(),
                    next_seq_no: b.u64(),
                    keep_alive_interval: u32::from(b.u8()) * 500,
                    hmac_signature: [b.u8(); 32],
                };
                s.on_message(&SessionMsg::Establish(m), &mut ByteVerifier, now, &mut out)
            }
            6 => {
                let m = SessionMsg::Sequence(Sequence {
                    uuid: b.u64(),
                    next_seq_no: b.u64(),
                    keep_alive_interval_lapsed: b.u8() % 2 == 0,
                });
                s.on_message(&m, &mut ByteVerifier, now, &mut out)
            }
            7 => {
                let m = SessionMsg::RetransmitRequest(RetransmitRequest {
                    uuid: b.u64(),
                    last_uuid: b.u64(),
                    request_timestamp: b.u64(),
                    from_seq_no: b.u64(),
                    msg_count: b.u32(),
                });
                s.on_message(&m, &mut ByteVerifier, now, &mut out)
            }
            8 => {
                let m = SessionMsg::Terminate(Terminate {
                    uuid: b.u64(),
                    request_timestamp: 0,
                    error_code: u16::from(b.u8()),
                    reason: Reason::EMPTY,
                });
                s.on_message(&m, &mut ByteVerifier, now, &mut out)
            }
            9 => {
                let m = SessionMsg::NotApplied(NotApplied {
                    uuid: b.u64(),
                    from_seq_no: b.u64(),
                    msg_count: b.u32(),
                });
                s.on_message(&m, &mut ByteVerifier, now, &mut out)
            }
            10..=12 => {
                let a = s.on_application(b.u64(), b.u8() % 2 == 0, now, &mut out);
                if a == Action::Process {
                    assert!(
                        out.acked && s.is_established(),
                        "processed before Establish"
                    );
                    processed += 1;
                }
                a
            }
            13 => {
                let len = usize::from(b.u8());
                let _ = s.send_application(now, &mut out, |seq, buf| {
                    let dst = buf.get_mut(..len)?;
                    dst.fill((seq % 251) as u8);
                    Some(len)
                });
                Action::Continue
            }
            14 => {
                now = now.add(Nanos::from_millis(u64::from(b.u8()) * 250));
                s.on_timer(now, &mut out)
            }
            _ => s.terminate(ErrorCode::Administrative, now, &mut out),
        };
        if action == Action::Close {
            assert_eq!(s.state(), State::Idle, "Close leaves the session idle");
            out.acked = false;
        }
        if !s.is_bound() {
            out.acked = false;
        }
    }
    processed
}

#[cfg(test)]
mod tests {
    /// Connect, a Negotiate and an Establish that pass (uuid 1, session CLIENT1, key
    /// client1-key, even signature byte, keep-alive 2000 ms), application message 1.
    const ESTABLISH_THEN_ORDER: &[u8] = &[
        0, 2, 0, 1, 0, 0, 3, 0, 0, 4, 0, 1, 0, 0, 3, 0, 0, 1, 4, 0, 10, 0, 1, 1,
    ];

    #[test]
    fn fuzz_body_reaches_the_established_state() {
        assert_eq!(super::run(&[]), 0);
        assert_eq!(super::run(ESTABLISH_THEN_ORDER), 1);
        // Random tails after it: no invariant breaks.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut data = ESTABLISH_THEN_ORDER.to_vec();
            data.extend((0..512).map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 32) as u8
            }));
            assert!(super::run(&data) >= 1);
        }
    }
}
