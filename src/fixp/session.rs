//! HOT (application messages after Establish; everything else is cold) — the FIXP session state
//! machine, sans-IO (fix-specs/FIXP-SESSION.md).
//!
//! One logical session (one configured client `session`, its current uuid and the one before)
//! over successive connections. The client → gateway flow is idempotent (gaps are reported with
//! NotApplied, never recovered); the gateway → client flow is recoverable (every application
//! message is stored under its sequence number and retransmitted on request).
//!
//! ```text
//!            on_connect                 Negotiate ok               Establish ok
//!   Idle ───────────────► Connected ─────────────────► Negotiated ─────────────► Established
//!    ▲                        │   Establish ok (known uuid: re-establish)             │
//!    │                        └───────────────────────────────────────────────────────┤
//!    │  Close (after a reject, a Terminate exchange, a timeout, or on_disconnect)      │ we Terminate
//!    └──────────────────────────────────────────────── Terminating ◄───────────────────┘
//! ```
//!
//! Never does I/O, never reads the clock (callers pass `now`), never allocates after
//! [`Session::new`]: session messages leave as values through [`Outbox::session`], application
//! messages as bytes through [`Outbox::application`], and what the engine should audit or count
//! as [`Event`]s. Authentication is the caller's [`Verifier`] (production:
//! [`super::auth::KeyVerifier`] over the gateway's `Authenticator`).

use super::config::FixpConfig;
use super::msg::{
    ErrorCode, Establish, EstablishmentAck, EstablishmentReject, Name, Negotiate,
    NegotiationReject, NegotiationResponse, NotApplied, Retransmission, RetransmitReject,
    RetransmitRequest, Sequence, SessionMsg, Terminate, SIGNATURE_BYTES,
};
use super::sign::{establish_canonical, negotiate_canonical};
use crate::model::Nanos;
use crate::session::MessageStore;

/// The window of the retransmission budget (`retransmit_max_count` messages per window).
const RETRANSMIT_WINDOW: Nanos = Nanos::from_secs(1);

/// Which signed request a [`SignedRequest`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedKind {
    Negotiate,
    Establish,
}

/// A Negotiate or Establish for the [`Verifier`]: its identity fields and the canonical string
/// its signature must cover.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    pub kind: SignedKind,
    pub uuid: u64,
    /// The request_timestamp: checked against the allowed skew and the gateway's start.
    pub request_timestamp: Nanos,
    /// The session the request names; the key must be bound to it.
    pub session: &'a [u8],
    pub access_key_id: &'a [u8],
    pub signature: [u8; SIGNATURE_BYTES],
    /// The bytes the signature covers ([`super::sign`]).
    pub canonical: &'a [u8],
}

/// Authentication of Negotiate and Establish, provided by the caller.
pub trait Verifier {
    /// True when the signature, key, skew, replay cache, lockouts, allowlist and the key's
    /// binding to `req.session` all pass. A refusal's cause is the verifier's to audit; the
    /// client gets one answer for every cause.
    fn verify(&mut self, req: &SignedRequest<'_>, now: Nanos) -> bool;
    /// The session accepted a request `verify` passed: its signature must never be accepted
    /// again (replay cache). Not called when the session refuses it for another reason.
    fn accepted(&mut self, req: &SignedRequest<'_>, now: Nanos);
}

/// Where the session's output goes; the engine encodes and queues it for the socket.
pub trait Outbox {
    /// A session message to send.
    fn session(&mut self, msg: &SessionMsg);
    /// An application message to send: `bytes` as encoded and stored under `seq`. When
    /// `poss_retrans` is true it is a retransmission: the encoder sets PossRetrans in the copy
    /// it writes (the stored bytes stay as first sent).
    fn application(&mut self, seq: u64, bytes: &[u8], poss_retrans: bool);
    /// Something to audit or count.
    fn event(&mut self, event: Event);
}

/// What the session tells the engine besides messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new uuid was negotiated: persist uuid, previous_uuid, the key ([`Session::key`]) and
    /// `current_is_b` for [`Session::restore`].
    Negotiated {
        uuid: u64,
        previous_uuid: u64,
        previous_seq_no: u64,
        /// The second store (`slot_b`) now holds the current uuid.
        current_is_b: bool,
    },
    /// The connection is established; `resumed`: by an Establish alone (a reconnect).
    Established {
        uuid: u64,
        /// The client's next application sequence number we expect.
        next_inbound: u64,
        /// Our next application sequence number.
        next_outbound: u64,
        keep_alive_ms: u32,
        resumed: bool,
    },
    /// A NegotiationReject, EstablishmentReject or RetransmitReject was sent.
    Rejected { code: ErrorCode },
    /// Client messages `from_seq_no ..` (`count`) never arrived: NotApplied sent.
    GapDetected { from_seq_no: u64, count: u64 },
    /// A PossRetrans application message below the expected sequence number: ignored.
    DuplicateIgnored { seq: u64 },
    /// Nothing heard for one keep-alive interval: Sequence with keep_alive_interval_lapsed sent.
    KeepAliveWarning,
    /// A RetransmitRequest was served.
    Retransmitted {
        last_uuid: u64,
        from_seq_no: u64,
        count: u32,
    },
    /// The connection ended after a Terminate or a reject. `code`: the Terminate's (or
    /// reject's) code, the peer's when `by_peer`.
    Terminated { code: u16, by_peer: bool },
    /// The transport closed under a bound session without a Terminate exchange.
    Disconnected,
    /// The message store failed.
    StoreFailed,
}

/// What the engine does after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more than sending what went to the outbox.
    Continue,
    /// [`Session::on_application`] only: an in-order (or after-gap) application message to
    /// process now.
    Process,
    /// Send what went to the outbox, then close the connection. The session is already idle.
    Close,
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No connection bound.
    Idle,
    /// A connection is bound; Negotiate or Establish awaited.
    Connected,
    /// Negotiate accepted on this connection; Establish awaited.
    Negotiated,
    Established,
    /// We sent Terminate; the peer's Terminate (or a timeout) closes the connection.
    Terminating,
}

/// Why [`Session::send_application`] could not take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The encoder did not fit the scratch buffer (`scratch_bytes`).
    TooLarge,
    /// The store refused it; nothing was sent and the sequence number was not used.
    Store,
}

/// Event counts for monitoring. Monotonic; never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixpCounters {
    pub negotiations: u64,
    pub negotiation_rejects: u64,
    pub establishments: u64,
    pub establishment_rejects: u64,
    /// Application messages processed (Action::Process).
    pub app_received: u64,
    /// Application messages stored and (when established) sent.
    pub app_sent: u64,
    /// NotApplied sent.
    pub gaps: u64,
    /// PossRetrans duplicates ignored.
    pub duplicates_ignored: u64,
    /// Sequence sent as a heartbeat.
    pub heartbeats_sent: u64,
    /// Sequence with keep_alive_interval_lapsed sent.
    pub lapse_warnings: u64,
    pub retransmit_requests: u64,
    pub messages_retransmitted: u64,
    pub retransmit_rejects: u64,
    pub terminates_sent: u64,
    pub terminates_received: u64,
    pub store_errors: u64,
    /// Messages that arrived while no connection was bound (an engine bug).
    pub unbound_messages: u64,
}

/// One FIXP logical session over successive connections.
///
/// # Contract
/// - [`Session::on_connect`] when a connection reaches this session (found by the `session`
///   of its first Negotiate/Establish); `false` means the session is bound elsewhere: answer
///   with [`Session::refuse_in_use`] and close. A `session` naming no configured session:
///   [`refuse_unknown_session`] and close.
/// - Every decoded session message of that connection goes to [`Session::on_message`], every
///   application message's `(seq_num, poss_retrans)` to [`Session::on_application`] (process
///   the bytes only on [`Action::Process`]); a frame the codec refuses to
///   [`Session::terminate`] with [`ErrorCode::MalformedMessage`].
/// - [`Session::on_timer`] every loop turn (or at least every few milliseconds).
/// - On [`Action::Close`]: flush what went to the outbox, close; when the transport drops on
///   its own, [`Session::on_disconnect`].
/// - Outbound application messages only through [`Session::send_application`].
/// - Persistence: the two stores (`slot_a`, `slot_b`) keep sequence numbers and messages; on
///   [`Event::Negotiated`] persist the uuids, [`Session::key`] and `current_is_b`, and give
///   them back with [`Session::restore`] at start.
pub struct Session<S: MessageStore> {
    cfg: FixpConfig,
    /// Two stores that take turns: the current uuid's (its recoverable outbound flow, and the
    /// client's next sequence number as the store's "target" seq) and the previous uuid's
    /// (retransmission with last_uuid). A Negotiate resets the previous one's and swaps roles.
    slot_a: S,
    slot_b: S,
    /// `slot_b` holds the current uuid.
    current_is_b: bool,
    uuid: u64,
    previous_uuid: u64,
    /// The key the current uuid was negotiated with; Establish must use it.
    key: Name,
    state: State,
    connected_at: Nanos,
    keep_alive: Nanos,
    keep_alive_ms: u32,
    last_sent: Nanos,
    last_received: Nanos,
    /// Sequence(lapsed) sent since we last heard from the peer.
    lapse_warned: bool,
    terminate_sent_at: Nanos,
    terminate_code: ErrorCode,
    /// Retransmission budget: messages retransmitted in the window that started at
    /// `retransmit_window`.
    retransmit_window: Nanos,
    retransmitted_in_window: u64,
    scratch: Box<[u8]>,
    counters: FixpCounters,
}

impl<S: MessageStore> Session<S> {
    /// `slot_a` and `slot_b` keep the outbound messages of the current and the previous uuid,
    /// in turns ([`Event::Negotiated`] says which holds the current one; `slot_a` first).
    /// Allocates the scratch buffer; nothing is allocated afterwards.
    pub fn new(cfg: FixpConfig, slot_a: S, slot_b: S) -> Self {
        let scratch = vec![0u8; cfg.scratch_bytes].into_boxed_slice();
        Session {
            cfg,
            slot_a,
            slot_b,
            current_is_b: false,
            uuid: 0,
            previous_uuid: 0,
            key: Name::EMPTY,
            state: State::Idle,
            connected_at: Nanos::ZERO,
            keep_alive: Nanos::ZERO,
            keep_alive_ms: 0,
            last_sent: Nanos::ZERO,
            last_received: Nanos::ZERO,
            lapse_warned: false,
            terminate_sent_at: Nanos::ZERO,
            terminate_code: ErrorCode::Finished,
            retransmit_window: Nanos::ZERO,
            retransmitted_in_window: 0,
            scratch,
            counters: FixpCounters::default(),
        }
    }

    /// Cold, at start: the identity persisted from [`Event::Negotiated`] (uuids, the key, which
    /// slot holds the current uuid), so that the client can re-establish after a restart.
    pub fn restore(&mut self, uuid: u64, previous_uuid: u64, key: Name, current_is_b: bool) {
        self.uuid = uuid;
        self.previous_uuid = previous_uuid;
        self.key = key;
        self.current_is_b = current_is_b;
    }

    /// The current uuid's store.
    fn cur(&self) -> &S {
        if self.current_is_b {
            &self.slot_b
        } else {
            &self.slot_a
        }
    }
    fn cur_mut(&mut self) -> &mut S {
        if self.current_is_b {
            &mut self.slot_b
        } else {
            &mut self.slot_a
        }
    }
    /// The previous uuid's store.
    fn prev(&self) -> &S {
        if self.current_is_b {
            &self.slot_a
        } else {
            &self.slot_b
        }
    }

    pub fn config(&self) -> &FixpConfig {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
    /// True while a connection is bound.
    pub fn is_bound(&self) -> bool {
        self.state != State::Idle
    }
    /// Whether the second store (`slot_b`) holds the current uuid (persist it with the uuids,
    /// for [`Session::restore`]).
    pub fn current_is_b(&self) -> bool {
        self.current_is_b
    }
    /// The current uuid (0: never negotiated).
    pub fn uuid(&self) -> u64 {
        self.uuid
    }
    pub fn previous_uuid(&self) -> u64 {
        self.previous_uuid
    }
    /// The key the current uuid was negotiated with.
    pub fn key(&self) -> &Name {
        &self.key
    }
    /// The client's next application sequence number we expect.
    pub fn next_inbound_seq(&self) -> u64 {
        self.cur().next_target_seq()
    }
    /// Our next application sequence number.
    pub fn next_outbound_seq(&self) -> u64 {
        self.cur().next_sender_seq()
    }
    /// The agreed keep-alive interval, ms (0 before Establish).
    pub fn keep_alive_ms(&self) -> u32 {
        self.keep_alive_ms
    }
    pub fn counters(&self) -> &FixpCounters {
        &self.counters
    }
    /// Cold: gives the two stores back (`slot_a`, `slot_b`), e.g. to reopen the session.
    pub fn into_stores(self) -> (S, S) {
        (self.slot_a, self.slot_b)
    }

    /// The current uuid's store.
    pub fn store(&self) -> &S {
        self.cur()
    }

    /// Binds a new connection at `now`. `false` (nothing changes) when one is bound already.
    pub fn on_connect(&mut self, now: Nanos) -> bool {
        if self.state != State::Idle {
            return false;
        }
        self.state = State::Connected;
        self.connected_at = now;
        self.keep_alive = Nanos::ZERO;
        self.keep_alive_ms = 0;
        self.lapse_warned = false;
        true
    }

    /// The transport closed without a Terminate exchange (or after it): the session is idle.
    pub fn on_disconnect(&mut self, out: &mut impl Outbox) {
        if self.state != State::Idle {
            self.state = State::Idle;
            out.event(Event::Disconnected);
        }
    }

    /// A decoded session message from the bound connection.
    pub fn on_message(
        &mut self,
        msg: &SessionMsg,
        verifier: &mut impl Verifier,
        now: Nanos,
        out: &mut impl Outbox,
    ) -> Action {
        match self.state {
            State::Idle => {
                self.counters.unbound_messages += 1;
                return Action::Close;
            }
            State::Terminating => {
                // Only the peer's Terminate matters now; anything else is ignored (FIXP).
                if let SessionMsg::Terminate(_) = msg {
                    self.counters.terminates_received += 1;
                    return self.close(self.terminate_code.code(), false, out);
                }
                return Action::Continue;
            }
            State::Established => {
                self.last_received = now;
                self.lapse_warned = false;
            }
            State::Connected | State::Negotiated => {}
        }
        match msg {
            SessionMsg::Negotiate(m) => self.on_negotiate(m, verifier, now, out),
            SessionMsg::Establish(m) => self.on_establish(m, verifier, now, out),
            SessionMsg::Terminate(m) => {
                self.counters.terminates_received += 1;
                self.send(
                    out,
                    now,
                    &SessionMsg::Terminate(Terminate {
                        uuid: m.uuid,
                        request_timestamp: now.0,
                        error_code: ErrorCode::Finished.code(),
                        reason: ErrorCode::Finished.reason_text(),
                    }),
                );
                self.counters.terminates_sent += 1;
                self.close(m.error_code, true, out)
            }
            SessionMsg::Sequence(m) if self.state == State::Established => {
                self.on_sequence(m, now, out)
            }
            SessionMsg::RetransmitRequest(m) if self.state == State::Established => {
                self.on_retransmit_request(m, now, out);
                Action::Continue
            }
            SessionMsg::Sequence(_) | SessionMsg::RetransmitRequest(_) => {
                self.terminate(ErrorCode::NotEstablished, now, out)
            }
            SessionMsg::NegotiationResponse(_)
            | SessionMsg::NegotiationReject(_)
            | SessionMsg::EstablishmentAck(_)
            | SessionMsg::EstablishmentReject(_)
            | SessionMsg::Retransmission(_)
            | SessionMsg::RetransmitReject(_)
            | SessionMsg::NotApplied(_) => self.terminate(ErrorCode::UnexpectedMessage, now, out),
        }
    }

    /// An application message from the bound connection: its `seq_num` and `poss_retrans`.
    /// [`Action::Process`]: process its bytes now.
    #[inline]
    pub fn on_application(
        &mut self,
        seq: u64,
        poss_retrans: bool,
        now: Nanos,
        out: &mut impl Outbox,
    ) -> Action {
        if self.state != State::Established {
            return self.application_not_established(now, out);
        }
        self.last_received = now;
        self.lapse_warned = false;
        let expected = self.cur().next_target_seq();
        if seq == expected {
            self.cur_mut().set_next_target_seq(seq.saturating_add(1));
            self.counters.app_received += 1;
            return Action::Process;
        }
        self.application_out_of_sequence(seq, poss_retrans, expected, now, out)
    }

    /// Stores and (when established) sends an application message. `encode(seq, buf)` writes
    /// it with sequence number `seq` into `buf` and returns its length (`None`: did not fit).
    /// Returns `seq`. Not established: stored only (the client recovers it by
    /// RetransmitRequest after re-establishing).
    #[inline]
    pub fn send_application(
        &mut self,
        now: Nanos,
        out: &mut impl Outbox,
        encode: impl FnOnce(u64, &mut [u8]) -> Option<usize>,
    ) -> Result<u64, SendError> {
        let store = if self.current_is_b {
            &mut self.slot_b
        } else {
            &mut self.slot_a
        };
        let seq = store.next_sender_seq();
        let n = encode(seq, &mut self.scratch).ok_or(SendError::TooLarge)?;
        let bytes = self.scratch.get(..n).ok_or(SendError::TooLarge)?;
        if store.store_outbound(seq, bytes).is_err() {
            self.counters.store_errors += 1;
            out.event(Event::StoreFailed);
            return Err(SendError::Store);
        }
        self.counters.app_sent += 1;
        if self.state == State::Established {
            out.application(seq, bytes, false);
            self.last_sent = now;
        }
        Ok(seq)
    }

    /// Keep-alive (Sequence when we were silent, a lapse warning, Terminate after two silent
    /// intervals), the establish timeout and the wait for the peer's Terminate.
    pub fn on_timer(&mut self, now: Nanos, out: &mut impl Outbox) -> Action {
        match self.state {
            State::Idle => Action::Continue,
            State::Connected | State::Negotiated => {
                let limit = Nanos::from_millis(u64::from(self.cfg.establish_timeout_ms));
                if now.saturating_sub(self.connected_at) >= limit {
                    self.terminate(ErrorCode::EstablishTimeout, now, out)
                } else {
                    Action::Continue
                }
            }
            State::Terminating => {
                if now.saturating_sub(self.terminate_sent_at) >= self.terminate_wait() {
                    self.close(self.terminate_code.code(), false, out)
                } else {
                    Action::Continue
                }
            }
            State::Established => self.keep_alive_timer(now, out),
        }
    }

    /// Ends the connection from our side with `code`: established, Terminate and wait for the
    /// peer's (at most one keep-alive interval); before that, Terminate and close at once.
    #[cold]
    pub fn terminate(&mut self, code: ErrorCode, now: Nanos, out: &mut impl Outbox) -> Action {
        match self.state {
            State::Idle | State::Terminating => Action::Continue,
            State::Established => {
                self.send_terminate(code, now, out);
                self.state = State::Terminating;
                Action::Continue
            }
            State::Connected | State::Negotiated => {
                self.send_terminate(code, now, out);
                self.close(code.code(), false, out)
            }
        }
    }

    /// The answer to the first message of a connection that reached this session while it is
    /// bound to another: once the request authenticates, NegotiationReject/EstablishmentReject
    /// "session in use"; otherwise the same credentials reject as any failed authentication;
    /// anything else, Terminate. The engine closes the connection after it. The session itself
    /// is untouched.
    #[cold]
    pub fn refuse_in_use(
        &self,
        msg: &SessionMsg,
        verifier: &mut impl Verifier,
        now: Nanos,
        out: &mut impl Outbox,
    ) {
        match msg {
            SessionMsg::Negotiate(m) => {
                let canonical = negotiate_canonical(m);
                let req = negotiate_request(m, &canonical);
                let code = if verifier.verify(&req, now) {
                    ErrorCode::NegotiationSessionInUse
                } else {
                    ErrorCode::NegotiationCredentials
                };
                out.session(&negotiation_reject(m, code));
                out.event(Event::Rejected { code });
            }
            SessionMsg::Establish(m) => {
                let canonical = establish_canonical(m);
                let req = establish_request(m, &canonical);
                let code = if verifier.verify(&req, now) {
                    ErrorCode::EstablishSessionInUse
                } else {
                    ErrorCode::EstablishCredentials
                };
                out.session(&establishment_reject(m, 0, code));
                out.event(Event::Rejected { code });
            }
            _ => {
                let code = ErrorCode::NotEstablished;
                out.session(&SessionMsg::Terminate(Terminate {
                    uuid: 0,
                    request_timestamp: now.0,
                    error_code: code.code(),
                    reason: code.reason_text(),
                }));
            }
        }
    }

    // ---- Negotiate / Establish (cold) ----

    #[cold]
    fn on_negotiate(
        &mut self,
        m: &Negotiate,
        verifier: &mut impl Verifier,
        now: Nanos,
        out: &mut impl Outbox,
    ) -> Action {
        if self.state == State::Established {
            // An authenticated connection's mistake: refused, the session lives.
            self.reject_negotiate(m, ErrorCode::NegotiateWhileEstablished, out);
            return Action::Continue;
        }
        let canonical = negotiate_canonical(m);
        let req = negotiate_request(m, &canonical);
        let code = if !verifier.verify(&req, now) {
            Some(ErrorCode::NegotiationCredentials)
        } else if m.session != self.cfg.session {
            Some(ErrorCode::NegotiationSessionMismatch)
        } else if m.uuid == 0 {
            Some(ErrorCode::InvalidUuid)
        } else if m.uuid == self.uuid || m.uuid == self.previous_uuid {
            Some(ErrorCode::DuplicateUuid)
        } else if self.state == State::Negotiated {
            Some(ErrorCode::AlreadyNegotiated)
        } else {
            None
        };
        if let Some(code) = code {
            self.reject_negotiate(m, code, out);
            return self.close(code.code(), false, out);
        }
        // A new logical session: the current flow becomes the previous one.
        let previous_seq_no = if self.uuid == 0 {
            0
        } else {
            self.cur().next_sender_seq().saturating_sub(1)
        };
        self.current_is_b = !self.current_is_b;
        if self.cur_mut().reset(now.0).is_err() {
            self.current_is_b = !self.current_is_b;
            self.counters.store_errors += 1;
            out.event(Event::StoreFailed);
            self.reject_negotiate(m, ErrorCode::StoreFailure, out);
            return self.close(ErrorCode::StoreFailure.code(), false, out);
        }
        verifier.accepted(&req, now);
        self.previous_uuid = if self.uuid == 0 { 0 } else { self.uuid };
        self.uuid = m.uuid;
        self.key = m.access_key_id;
        self.state = State::Negotiated;
        self.counters.negotiations += 1;
        self.send(
            out,
            now,
            &SessionMsg::NegotiationResponse(NegotiationResponse {
                uuid: m.uuid,
                request_timestamp: m.request_timestamp,
                previous_seq_no,
                previous_uuid: self.previous_uuid,
            }),
        );
        out.event(Event::Negotiated {
            uuid: self.uuid,
            previous_uuid: self.previous_uuid,
            previous_seq_no,
            current_is_b: self.current_is_b,
        });
        Action::Continue
    }

    #[cold]
    fn on_establish(
        &mut self,
        m: &Establish,
        verifier: &mut impl Verifier,
        now: Nanos,
        out: &mut impl Outbox,
    ) -> Action {
        let expected = self.cur().next_target_seq();
        if self.state == State::Established {
            self.reject_establish(m, expected, ErrorCode::AlreadyEstablished, out);
            return Action::Continue;
        }
        let canonical = establish_canonical(m);
        let req = establish_request(m, &canonical);
        let ka = m.keep_alive_interval;
        let code = if !verifier.verify(&req, now) {
            Some(ErrorCode::EstablishCredentials)
        } else if m.session != self.cfg.session {
            Some(ErrorCode::EstablishSessionMismatch)
        } else if m.uuid == 0 || m.uuid != self.uuid {
            Some(ErrorCode::Unnegotiated)
        } else if m.access_key_id != self.key {
            Some(ErrorCode::KeyMismatch)
        } else if ka < self.cfg.keep_alive_min_ms || ka > self.cfg.keep_alive_max_ms {
            Some(ErrorCode::KeepAliveInterval)
        } else if m.next_seq_no == 0 {
            Some(ErrorCode::InvalidNextSeqNo)
        } else if m.next_seq_no < expected {
            Some(ErrorCode::EstablishSeqNoTooLow)
        } else {
            None
        };
        if let Some(code) = code {
            self.reject_establish(m, expected, code, out);
            return self.close(code.code(), false, out);
        }
        verifier.accepted(&req, now);
        let resumed = self.state == State::Connected;
        self.state = State::Established;
        self.keep_alive_ms = ka;
        self.keep_alive = Nanos::from_millis(u64::from(ka));
        self.last_received = now;
        self.lapse_warned = false;
        self.counters.establishments += 1;
        let previous_seq_no = if self.previous_uuid == 0 {
            0
        } else {
            self.prev().next_sender_seq().saturating_sub(1)
        };
        let next_outbound = self.cur().next_sender_seq();
        self.send(
            out,
            now,
            &SessionMsg::EstablishmentAck(EstablishmentAck {
                uuid: self.uuid,
                request_timestamp: m.request_timestamp,
                next_seq_no: next_outbound,
                previous_seq_no,
                previous_uuid: self.previous_uuid,
                keep_alive_interval: ka,
            }),
        );
        out.event(Event::Established {
            uuid: self.uuid,
            next_inbound: m.next_seq_no,
            next_outbound,
            keep_alive_ms: ka,
            resumed,
        });
        if m.next_seq_no > expected {
            // Messages the client numbered but we never received: not applied.
            self.cur_mut().set_next_target_seq(m.next_seq_no);
            self.not_applied(expected, m.next_seq_no - expected, now, out);
        }
        Action::Continue
    }

    fn reject_negotiate(&mut self, m: &Negotiate, code: ErrorCode, out: &mut impl Outbox) {
        self.counters.negotiation_rejects += 1;
        out.session(&negotiation_reject(m, code));
        out.event(Event::Rejected { code });
    }

    fn reject_establish(
        &mut self,
        m: &Establish,
        expected: u64,
        code: ErrorCode,
        out: &mut impl Outbox,
    ) {
        self.counters.establishment_rejects += 1;
        // An unauthenticated peer learns nothing of the session, not its sequence numbers.
        let expected = if code == ErrorCode::EstablishCredentials {
            0
        } else {
            expected
        };
        out.session(&establishment_reject(m, expected, code));
        out.event(Event::Rejected { code });
    }

    // ---- Established ----

    #[cold]
    fn application_not_established(&mut self, now: Nanos, out: &mut impl Outbox) -> Action {
        match self.state {
            State::Idle => {
                self.counters.unbound_messages += 1;
                Action::Close
            }
            // Messages after our Terminate are ignored (FIXP).
            State::Terminating => Action::Continue,
            _ => self.terminate(ErrorCode::NotEstablished, now, out),
        }
    }

    #[cold]
    fn application_out_of_sequence(
        &mut self,
        seq: u64,
        poss_retrans: bool,
        expected: u64,
        now: Nanos,
        out: &mut impl Outbox,
    ) -> Action {
        if seq > expected {
            // Idempotent flow: report the gap, apply the message.
            self.cur_mut().set_next_target_seq(seq.saturating_add(1));
            self.not_applied(expected, seq - expected, now, out);
            self.counters.app_received += 1;
            return Action::Process;
        }
        if poss_retrans {
            self.counters.duplicates_ignored += 1;
            out.event(Event::DuplicateIgnored { seq });
            return Action::Continue;
        }
        self.terminate(ErrorCode::SeqNoTooLow, now, out)
    }

    #[cold]
    fn on_sequence(&mut self, m: &Sequence, now: Nanos, out: &mut impl Outbox) -> Action {
        if m.uuid != self.uuid {
            return self.terminate(ErrorCode::WrongUuid, now, out);
        }
        let expected = self.cur().next_target_seq();
        if m.next_seq_no < expected {
            return self.terminate(ErrorCode::SeqNoTooLow, now, out);
        }
        if m.next_seq_no > expected {
            self.cur_mut().set_next_target_seq(m.next_seq_no);
            self.not_applied(expected, m.next_seq_no - expected, now, out);
        }
        Action::Continue
    }

    #[cold]
    fn on_retransmit_request(&mut self, m: &RetransmitRequest, now: Nanos, out: &mut impl Outbox) {
        self.counters.retransmit_requests += 1;
        let from_previous =
            m.last_uuid != 0 && m.last_uuid != self.uuid && m.last_uuid == self.previous_uuid;
        let known =
            m.uuid == self.uuid && (m.last_uuid == 0 || m.last_uuid == self.uuid || from_previous);
        // One budget of `retransmit_max_count` messages per second, whatever the requests.
        if now.saturating_sub(self.retransmit_window) >= RETRANSMIT_WINDOW {
            self.retransmit_window = now;
            self.retransmitted_in_window = 0;
        }
        let flow = if from_previous {
            self.prev()
        } else {
            self.cur()
        };
        let end = m.from_seq_no.checked_add(u64::from(m.msg_count));
        let budget = u64::from(self.cfg.retransmit_max_count);
        let code = if !known {
            Some(ErrorCode::UnknownUuid)
        } else if m.msg_count > self.cfg.retransmit_max_count {
            Some(ErrorCode::RequestLimitExceeded)
        } else if self.retransmitted_in_window + u64::from(m.msg_count) > budget {
            Some(ErrorCode::RetransmitRateExceeded)
        } else if m.from_seq_no == 0
            || m.msg_count == 0
            || end.is_none_or(|e| e > flow.next_sender_seq())
        {
            Some(ErrorCode::OutOfRange)
        } else if (m.from_seq_no..end.unwrap_or(0)).any(|s| flow.outbound(s).is_none()) {
            Some(ErrorCode::MessagesUnavailable)
        } else {
            None
        };
        if let Some(code) = code {
            self.counters.retransmit_rejects += 1;
            self.send(
                out,
                now,
                &SessionMsg::RetransmitReject(RetransmitReject {
                    uuid: m.uuid,
                    last_uuid: m.last_uuid,
                    request_timestamp: m.request_timestamp,
                    error_code: code.code(),
                    reason: code.reason_text(),
                }),
            );
            out.event(Event::Rejected { code });
            return;
        }
        out.session(&SessionMsg::Retransmission(Retransmission {
            uuid: m.uuid,
            last_uuid: m.last_uuid,
            request_timestamp: m.request_timestamp,
            from_seq_no: m.from_seq_no,
            msg_count: m.msg_count,
        }));
        for seq in m.from_seq_no..end.unwrap_or(0) {
            if let Some(bytes) = flow.outbound(seq) {
                out.application(seq, bytes, true);
            }
        }
        // FIXP: the real-time flow resumes with a Sequence.
        out.session(&SessionMsg::Sequence(Sequence {
            uuid: self.uuid,
            next_seq_no: self.cur().next_sender_seq(),
            keep_alive_interval_lapsed: false,
        }));
        self.last_sent = now;
        self.retransmitted_in_window += u64::from(m.msg_count);
        self.counters.messages_retransmitted += u64::from(m.msg_count);
        out.event(Event::Retransmitted {
            last_uuid: m.last_uuid,
            from_seq_no: m.from_seq_no,
            count: m.msg_count,
        });
    }

    fn keep_alive_timer(&mut self, now: Nanos, out: &mut impl Outbox) -> Action {
        let ka = self.keep_alive;
        let silent = now.saturating_sub(self.last_received);
        if silent >= ka.add(ka) {
            return self.terminate(ErrorCode::KeepAliveLapsed, now, out);
        }
        if silent >= ka && !self.lapse_warned {
            self.lapse_warned = true;
            self.counters.lapse_warnings += 1;
            self.sequence(true, now, out);
            out.event(Event::KeepAliveWarning);
        } else if now.saturating_sub(self.last_sent) >= ka {
            self.counters.heartbeats_sent += 1;
            self.sequence(false, now, out);
        }
        Action::Continue
    }

    #[cold]
    fn not_applied(&mut self, from_seq_no: u64, count: u64, now: Nanos, out: &mut impl Outbox) {
        self.counters.gaps += 1;
        self.send(
            out,
            now,
            &SessionMsg::NotApplied(NotApplied {
                uuid: self.uuid,
                from_seq_no,
                msg_count: u32::try_from(count).unwrap_or(u32::MAX),
            }),
        );
        out.event(Event::GapDetected { from_seq_no, count });
    }

    fn sequence(&mut self, lapsed: bool, now: Nanos, out: &mut impl Outbox) {
        self.send(
            out,
            now,
            &SessionMsg::Sequence(Sequence {
                uuid: self.uuid,
                next_seq_no: self.cur().next_sender_seq(),
                keep_alive_interval_lapsed: lapsed,
            }),
        );
    }

    // ---- Terminate ----

    fn send_terminate(&mut self, code: ErrorCode, now: Nanos, out: &mut impl Outbox) {
        self.counters.terminates_sent += 1;
        self.terminate_code = code;
        self.terminate_sent_at = now;
        // Before authentication the connection learns nothing of the session, not its uuid.
        let uuid = if self.state == State::Connected {
            0
        } else {
            self.uuid
        };
        self.send(
            out,
            now,
            &SessionMsg::Terminate(Terminate {
                uuid,
                request_timestamp: now.0,
                error_code: code.code(),
                reason: code.reason_text(),
            }),
        );
    }

    /// How long we wait for the peer's Terminate: one keep-alive interval (FIXP), or the
    /// establish timeout before one was agreed.
    fn terminate_wait(&self) -> Nanos {
        if self.keep_alive_ms > 0 {
            self.keep_alive
        } else {
            Nanos::from_millis(u64::from(self.cfg.establish_timeout_ms))
        }
    }

    fn close(&mut self, code: u16, by_peer: bool, out: &mut impl Outbox) -> Action {
        self.state = State::Idle;
        out.event(Event::Terminated { code, by_peer });
        Action::Close
    }

    fn send(&mut self, out: &mut impl Outbox, now: Nanos, msg: &SessionMsg) {
        out.session(msg);
        self.last_sent = now;
    }
}

/// The answer to the first message of a connection whose `session` names no configured FIXP
/// session: the request still goes through `verifier` (so the cause is audited and the failure
/// counts towards lockouts), and the answer is the one every failed authentication gets
/// (NegotiationReject 100 / EstablishmentReject 204, or Terminate 301 for any other message).
/// The engine closes the connection after it.
#[cold]
pub fn refuse_unknown_session(
    msg: &SessionMsg,
    verifier: &mut impl Verifier,
    now: Nanos,
    out: &mut impl Outbox,
) {
    let code = match msg {
        SessionMsg::Negotiate(m) => {
            let canonical = negotiate_canonical(m);
            let _ = verifier.verify(&negotiate_request(m, &canonical), now);
            let code = ErrorCode::NegotiationCredentials;
            out.session(&negotiation_reject(m, code));
            code
        }
        SessionMsg::Establish(m) => {
            let canonical = establish_canonical(m);
            let _ = verifier.verify(&establish_request(m, &canonical), now);
            let code = ErrorCode::EstablishCredentials;
            out.session(&establishment_reject(m, 0, code));
            code
        }
        _ => {
            let code = ErrorCode::NotEstablished;
            out.session(&SessionMsg::Terminate(Terminate {
                uuid: 0,
                request_timestamp: now.0,
                error_code: code.code(),
                reason: code.reason_text(),
            }));
            code
        }
    };
    out.event(Event::Rejected { code });
}

fn negotiate_request<'a>(m: &'a Negotiate, canonical: &'a [u8]) -> SignedRequest<'a> {
    SignedRequest {
        kind: SignedKind::Negotiate,
        uuid: m.uuid,
        request_timestamp: Nanos(m.request_timestamp),
        session: m.session.as_bytes(),
        access_key_id: m.access_key_id.as_bytes(),
        signature: m.hmac_signature,
        canonical,
    }
}

fn establish_request<'a>(m: &'a Establish, canonical: &'a [u8]) -> SignedRequest<'a> {
    SignedRequest {
        kind: SignedKind::Establish,
        uuid: m.uuid,
        request_timestamp: Nanos(m.request_timestamp),
        session: m.session.as_bytes(),
        access_key_id: m.access_key_id.as_bytes(),
        signature: m.hmac_signature,
        canonical,
    }
}

fn negotiation_reject(m: &Negotiate, code: ErrorCode) -> SessionMsg {
    SessionMsg::NegotiationReject(NegotiationReject {
        uuid: m.uuid,
        request_timestamp: m.request_timestamp,
        error_code: code.code(),
        reason: code.reason_text(),
    })
}

fn establishment_reject(m: &Establish, expected: u64, code: ErrorCode) -> SessionMsg {
    SessionMsg::EstablishmentReject(EstablishmentReject {
        uuid: m.uuid,
        request_timestamp: m.request_timestamp,
        next_seq_no: expected,
        error_code: code.code(),
        reason: code.reason_text(),
    })
}
