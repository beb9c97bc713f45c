//! HOT — the session state machine: logon, sequence numbers, heartbeats and test requests,
//! gaps (queue + ResendRequest), resend service, SequenceReset, Reject, Logout.
//!
//! The order of checks follows QuickFIX's `Session::next(const Message&)` and `verify()`, which
//! the certification scripts encode: BeginString, header CompIDs present, dictionary validation,
//! then per message type: logon state, SendingTime, CompIDs, MsgSeqNum too high, too low.

use arrayvec::ArrayVec;

use super::config::{Role, SessionConfig, QUEUE_ENTRIES};
use super::queue::InboundQueue;
use super::resend::{
    write_gap_fill, write_resend, ResendJob, Resent, RESEND_CHUNK_MESSAGES, RESEND_CHUNK_SEQS,
};
use super::{MessageStore, OutBuf};
use crate::fix::encode::write_u64;
use crate::fix::tags;
use crate::fix::validate::{validate, Invalid, SessionRejectReason};
use crate::fix::{BeginString, Message, MsgType, ReplyRouting, Writer};
use crate::model::Nanos;

/// What the engine does after [`Session::on_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Session business only; replies (if any) are in `out`.
    Handled,
    /// An in-sequence application message that passed the session checks: process it now.
    Application,
    /// The Logon was accepted (our answer is in `out`): the session is live.
    LoggedOn,
    /// Flush `out`, then close the connection. The session is already back to disconnected.
    Disconnect(DisconnectReason),
}

/// Why a session ends its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer sent Logout; we answered it.
    LogoutReceived,
    /// The peer answered our Logout.
    LogoutReplyReceived,
    /// MsgSeqNum <34> below the expected one without PossDupFlag: Logout sent.
    SeqTooLow,
    /// BeginString <8> is not this session's (before logon; after logon we send Logout first).
    BadBeginString,
    /// SenderCompID/TargetCompID do not name this session (before logon).
    CompIdProblem,
    /// The engine refused the Logon ([`Session::reject_logon`]) or the peer refused ours.
    LogonRejected,
    /// Nothing heard for 2.4 × HeartBtInt despite a TestRequest.
    HeartbeatTimeout,
    /// Initiator: no Logon answer within `logon_timeout_ms`.
    LogonTimeout,
    /// No Logout answer within `logout_timeout_ms`.
    LogoutTimeout,
    /// Acceptor: HeartBtInt <108> outside the configured range: Logout sent.
    BadHeartBtInt,
    /// The first message was not a Logon.
    NotLogon,
    /// The Logon failed validation or lacked a required field; nothing sent (as QuickFIX).
    InvalidLogon,
    /// The Logon's SendingTime <52> is outside the window; nothing sent (as QuickFIX).
    BadSendingTime,
    /// A Logon on a session that is already logged on, without ResetSeqNumFlag or refused by
    /// authentication: Reject and Logout sent.
    UnexpectedLogon,
    /// A second connection for a session that already has one (engine-level, 1b).
    AlreadyLoggedOn,
    /// Initiator: a Logon arrived that we did not ask for.
    UnsolicitedLogon,
    /// The message store failed; sequence numbers can no longer be trusted.
    StoreFailure,
}

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No connection, or a connection whose Logon has not arrived yet (acceptor).
    Disconnected,
    /// Initiator: Logon sent, answer awaited.
    LogonSent,
    LoggedOn,
    /// We sent Logout and await the answer (messages are still processed meanwhile).
    LogoutSent,
}

/// Why [`Session::send_app`] could not take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The message does not fit the scratch buffer (`scratch_bytes`).
    TooLarge,
    /// The store refused it; nothing was sent and the sequence number was not used.
    Store,
}

/// Event counts for monitoring. Monotonic; never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Frames ignored for bad BodyLength/CheckSum or undecodable content.
    pub garbled: u64,
    /// Reject <3> sent.
    pub rejects_sent: u64,
    /// BusinessMessageReject <j> sent by the session layer (validation).
    pub business_rejects_sent: u64,
    /// Reject <3> received.
    pub rejects_received: u64,
    /// ResendRequest <2> received.
    pub resend_requests_received: u64,
    /// Application messages resent with PossDupFlag=Y.
    pub messages_resent: u64,
    /// SequenceReset-GapFill sent.
    pub gap_fills_sent: u64,
    /// ResendRequest <2> sent.
    pub resend_requests_sent: u64,
    /// Messages queued ahead of a gap.
    pub queued: u64,
    /// Messages that could not be queued (queue full) or replayed (scratch too small).
    pub queue_overflow: u64,
    /// Messages that did not fit `out` (the peer will see a gap and ask again).
    pub out_overflow: u64,
    /// Duplicates (PossDupFlag=Y below the expected MsgSeqNum) ignored.
    pub duplicates_ignored: u64,
    /// TestRequest <1> sent because the peer was silent.
    pub test_requests_sent: u64,
    /// Heartbeat <0> sent (timer or TestRequest answer).
    pub heartbeats_sent: u64,
    /// Application messages sent or stored.
    pub app_messages_sent: u64,
    /// Store failures.
    pub store_errors: u64,
}

/// One FIX session over any number of successive connections.
///
/// # Contract
/// - Every decoded message from the peer goes to [`Session::on_message`]; frames that fail
///   BodyLength/CheckSum or decoding go to [`Session::on_garbled`] instead.
/// - After each `on_message`, call [`Session::take_queued`] until it returns `None`, decoding
///   each message it yields and passing it to `on_message` (which may queue more).
/// - Call [`Session::on_timer`] every loop turn (or at least every few milliseconds).
/// - On `Inbound::Disconnect` / `Some(reason)` from `on_timer`: flush `out`, close, and call
///   [`Session::on_disconnect`] (harmless when the session already knows).
pub struct Session<S: MessageStore> {
    cfg: SessionConfig,
    store: S,
    state: SessionState,
    /// Agreed HeartBtInt in nanoseconds; 0 = no heartbeats.
    heartbeat_ns: u64,
    last_sent: Nanos,
    last_received: Nanos,
    /// TestRequests sent since we last heard from the peer.
    test_requests: u32,
    logon_sent_at: Nanos,
    logout_sent_at: Nanos,
    /// We sent ResetSeqNumFlag=Y in our Logon (initiator).
    sent_reset: bool,
    /// Our outstanding ResendRequest: (BeginSeqNo, last seq we know is missing).
    resend_range: Option<(u64, u64)>,
    queue: InboundQueue,
    /// A resend we are serving that did not fit `out` at once.
    job: Option<ResendJob>,
    scratch: Box<[u8]>,
    counters: SessionCounters,
}

/// Longest Text <58> we compose ourselves.
type Text = ArrayVec<u8, 96>;

impl<S: MessageStore> Session<S> {
    /// Allocates the queue and scratch buffers; nothing is allocated afterwards.
    pub fn new(cfg: SessionConfig, store: S) -> Self {
        let queue = InboundQueue::new(cfg.queue_bytes, QUEUE_ENTRIES);
        let scratch = vec![0u8; cfg.scratch_bytes].into_boxed_slice();
        Session {
            cfg,
            store,
            state: SessionState::Disconnected,
            heartbeat_ns: 0,
            last_sent: Nanos::ZERO,
            last_received: Nanos::ZERO,
            test_requests: 0,
            logon_sent_at: Nanos::ZERO,
            logout_sent_at: Nanos::ZERO,
            sent_reset: false,
            resend_range: None,
            queue,
            job: None,
            scratch,
            counters: SessionCounters::default(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn state(&self) -> SessionState {
        self.state
    }
    /// True from the accepted Logon until the connection ends (also while our Logout is out).
    pub fn is_logged_on(&self) -> bool {
        matches!(
            self.state,
            SessionState::LoggedOn | SessionState::LogoutSent
        )
    }
    pub fn next_sender_seq(&self) -> u64 {
        self.store.next_sender_seq()
    }
    pub fn next_target_seq(&self) -> u64 {
        self.store.next_target_seq()
    }
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }
    /// Agreed HeartBtInt in seconds (0 before logon).
    pub fn heartbeat_secs(&self) -> u64 {
        self.heartbeat_ns / 1_000_000_000
    }
    /// Messages held ahead of a gap.
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }
    /// True while a ResendRequest of ours is unanswered.
    pub fn resend_requested(&self) -> bool {
        self.resend_range.is_some()
    }

    /// Engine helper for the first message on a new connection, once it found this session by
    /// CompIDs: `Err` means close the connection without answering and without touching the
    /// session (QuickFIX behaviour for wrong BeginString, unknown CompIDs, a first message that
    /// is not Logon, and a second connection for a session already connected).
    pub fn check_first_message(&self, msg: &Message<'_>) -> Result<(), DisconnectReason> {
        if msg.begin_string() != self.cfg.begin_string.as_bytes() {
            return Err(DisconnectReason::BadBeginString);
        }
        if !self.comp_ids_match(msg) {
            return Err(DisconnectReason::CompIdProblem);
        }
        if msg.msg_type() != MsgType::LOGON {
            return Err(DisconnectReason::NotLogon);
        }
        if self.state != SessionState::Disconnected {
            return Err(DisconnectReason::AlreadyLoggedOn);
        }
        Ok(())
    }

    /// A framed, decoded message from the peer. Replies go to `out`.
    pub fn on_message(&mut self, msg: &Message<'_>, now: Nanos, out: &mut OutBuf) -> Inbound {
        let r = self.next(msg, now, out);
        if let Inbound::Disconnect(reason) = r {
            self.disconnected(reason, now);
        }
        r
    }

    /// The next queued message that is now in sequence, copied into `scratch`; its length.
    /// Queued Logon and ResendRequest messages are consumed here (their sequence number is
    /// counted; QuickFIX does the same) and never returned.
    pub fn take_queued(&mut self, scratch: &mut [u8]) -> Option<usize> {
        loop {
            let expected = self.store.next_target_seq();
            self.queue.drop_below(expected);
            if !self.is_logged_on() {
                self.queue.clear();
                return None;
            }
            let bytes = self.queue.get(expected)?;
            let ty = Message::decode(bytes).map_or(MsgType::INVALID, |m| m.msg_type());
            if ty == MsgType::LOGON || ty == MsgType::RESEND_REQUEST {
                self.queue.remove(expected);
                self.store.set_next_target_seq(expected + 1);
                continue;
            }
            let n = bytes.len();
            let copied = match scratch.get_mut(..n) {
                Some(dst) => {
                    dst.copy_from_slice(bytes);
                    true
                }
                None => false,
            };
            self.queue.remove(expected);
            if copied {
                return Some(n);
            }
            self.counters.queue_overflow += 1;
            return None;
        }
    }

    /// A frame that failed BodyLength/CheckSum or decoding: ignored, MsgSeqNum not consumed.
    #[cold]
    pub fn on_garbled(&mut self) {
        self.counters.garbled += 1;
    }

    /// Heartbeats, TestRequests, timeouts; continues a resend that did not fit `out`.
    pub fn on_timer(&mut self, now: Nanos, out: &mut OutBuf) -> Option<DisconnectReason> {
        let r = self.timer(now, out);
        if let Some(reason) = r {
            self.disconnected(reason, now);
        }
        r
    }

    /// Sends (or, when not logged on, only stores and numbers) an application message. `body`
    /// writes the fields after the standard header. Returns its MsgSeqNum.
    ///
    /// A message that does not fit `out` is still stored: the peer will see the gap on the next
    /// message and ask for it again (counted in `out_overflow`).
    pub fn send_app(
        &mut self,
        msg_type: &[u8],
        now: Nanos,
        out: &mut OutBuf,
        body: impl FnOnce(&mut Writer),
    ) -> Result<u64, SendError> {
        self.send_app_routed(msg_type, &ReplyRouting::NONE, now, out, body)
    }

    /// [`Session::send_app`] with routing header fields: the reply to a message that carried
    /// OnBehalfOf*/DeliverTo* fields carries them swapped ([`ReplyRouting`]).
    pub fn send_app_routed(
        &mut self,
        msg_type: &[u8],
        routing: &ReplyRouting,
        now: Nanos,
        out: &mut OutBuf,
        body: impl FnOnce(&mut Writer),
    ) -> Result<u64, SendError> {
        let seq = self.store.next_sender_seq();
        let cfg = &self.cfg;
        let mut w = Writer::new(&mut self.scratch, cfg.begin_string.as_bytes(), msg_type);
        header(&mut w, cfg, seq, now);
        routing.write(&mut w);
        body(&mut w);
        let range = w.finish().map_err(|_| too_large())?;
        let bytes = self.scratch.get(range).ok_or_else(too_large)?;
        if self.store.store_outbound(seq, bytes).is_err() {
            self.counters.store_errors += 1;
            return Err(SendError::Store);
        }
        self.counters.app_messages_sent += 1;
        if self.is_logged_on() {
            if out.append(bytes) {
                self.last_sent = now;
            } else {
                self.counters.out_overflow += 1;
            }
        }
        Ok(seq)
    }

    /// BusinessMessageReject <j> (an application message: stored and resendable), with the
    /// refused message's routing fields swapped back (`routing`).
    #[allow(clippy::too_many_arguments)]
    pub fn send_business_reject(
        &mut self,
        routing: &ReplyRouting,
        ref_seq: u64,
        ref_msg_type: &[u8],
        ref_id: Option<&[u8]>,
        reason: u32,
        text: &[u8],
        now: Nanos,
        out: &mut OutBuf,
    ) -> Result<u64, SendError> {
        self.send_app_routed(b"j", routing, now, out, |w| {
            w.uint(tags::REF_SEQ_NUM, ref_seq);
            w.str(tags::REF_MSG_TYPE, ref_msg_type);
            if let Some(id) = ref_id {
                w.str(tags::BUSINESS_REJECT_REF_ID, id);
            }
            w.uint(tags::BUSINESS_REJECT_REASON, u64::from(reason));
            if !text.is_empty() {
                w.str(tags::TEXT, text);
            }
        })
    }

    /// Refuses a Logon the engine's authentication turned down: Logout with `text`; the session
    /// is back to disconnected and the engine closes the connection after flushing `out`.
    /// Call it *instead of* `on_message` for that Logon.
    pub fn reject_logon(&mut self, msg: &Message<'_>, text: &[u8], now: Nanos, out: &mut OutBuf) {
        let _ = msg;
        self.send_logout(text, now, out);
        self.disconnected(DisconnectReason::LogonRejected, now);
    }

    /// Refuses a Logon on an established session (without ResetSeqNumFlag(141)=Y, or one the
    /// engine's authentication turned down): Reject <3> then Logout, and the connection ends.
    /// Nothing is reset; the Logon does not consume its MsgSeqNum (as QuickFIX for Logon).
    /// Call it *instead of* `on_message` for that Logon.
    #[cold]
    pub fn reject_relogon(&mut self, msg: &Message<'_>, now: Nanos, out: &mut OutBuf) -> Inbound {
        let r = self.refuse_relogon(msg, now, out);
        if let Inbound::Disconnect(reason) = r {
            self.disconnected(reason, now);
        }
        r
    }

    #[cold]
    fn refuse_relogon(&mut self, msg: &Message<'_>, now: Nanos, out: &mut OutBuf) -> Inbound {
        const TEXT: &[u8] = b"Logon not accepted on an established session";
        self.reject(msg, SessionRejectReason::Other, None, TEXT, now, out);
        self.send_logout(TEXT, now, out);
        Inbound::Disconnect(DisconnectReason::UnexpectedLogon)
    }

    /// Starts a logout: Logout with `text`; the answer (or `logout_timeout_ms`) ends the
    /// connection. Does nothing unless logged on.
    pub fn logout(&mut self, text: &[u8], now: Nanos, out: &mut OutBuf) {
        if self.state == SessionState::LoggedOn {
            self.send_logout(text, now, out);
        }
    }

    /// Initiator: sends our Logon on a fresh connection.
    pub fn start_logon(&mut self, now: Nanos, out: &mut OutBuf) {
        self.start_logon_with(now, out, |_, _| {});
    }

    /// Initiator: like [`Session::start_logon`]; `extra` appends fields to the Logon after the
    /// standard ones and gets the MsgSeqNum and SendingTime the header carries (a signed
    /// logon signs them; fix-specs/SIGNED-LOGON.md).
    pub fn start_logon_with(
        &mut self,
        now: Nanos,
        out: &mut OutBuf,
        extra: impl FnOnce(&mut Writer, LogonHeader<'_>),
    ) {
        if self.cfg.reset_on_logon && !self.reset_seqs(now) {
            return;
        }
        let send_reset = self.cfg.reset_on_logon
            || ((self.cfg.reset_on_logout || self.cfg.reset_on_disconnect)
                && self.store.next_sender_seq() == 1
                && self.store.next_target_seq() == 1);
        let hb = self.cfg.heartbeat_secs;
        let seq = self.store.next_sender_seq();
        let mut ts = [0u8; 32];
        let ts_len = crate::fix::encode::write_timestamp(&mut ts, now, self.cfg.time_precision);
        let our = self.cfg.our_comp_id;
        let their = self.cfg.their_comp_id;
        self.send_admin(b"A", now, out, |w| {
            w.uint(tags::ENCRYPT_METHOD, 0);
            w.uint(tags::HEART_BT_INT, u64::from(hb));
            if send_reset {
                w.flag(tags::RESET_SEQ_NUM_FLAG, true);
            }
            extra(
                w,
                LogonHeader {
                    seq,
                    sending_time: ts.get(..ts_len).unwrap_or(b""),
                    sender: our.as_bytes(),
                    target: their.as_bytes(),
                },
            );
        });
        self.sent_reset = send_reset;
        self.heartbeat_ns = u64::from(hb) * 1_000_000_000;
        self.state = SessionState::LogonSent;
        self.logon_sent_at = now;
        self.last_received = now;
        self.test_requests = 0;
    }

    /// The connection is gone (either side noticed): back to disconnected.
    pub fn on_disconnect(&mut self, now: Nanos) {
        if self.state != SessionState::Disconnected {
            self.disconnected(DisconnectReason::LogoutReceived, now);
        }
    }

    // ---------------------------------------------------------------- inbound dispatch

    fn next(&mut self, msg: &Message<'_>, now: Nanos, out: &mut OutBuf) -> Inbound {
        let logged_on = self.is_logged_on();
        let ty = msg.msg_type();
        if msg.begin_string() != self.cfg.begin_string.as_bytes() {
            return self.bad_begin_string(msg, now, out);
        }
        for tag in [tags::SENDER_COMP_ID, tags::TARGET_COMP_ID] {
            if msg.get(tag).is_none() {
                return self.refuse(
                    msg,
                    SessionRejectReason::RequiredTagMissing,
                    Some(tag),
                    now,
                    out,
                );
            }
        }
        if self.cfg.validate {
            if let Err(invalid) = validate(msg, self.cfg.begin_string) {
                return self.invalid(msg, invalid, now, out);
            }
        }
        let seq = match msg.uint(tags::MSG_SEQ_NUM) {
            Ok(Some(seq)) => seq,
            Ok(None) => {
                let tag = Some(tags::MSG_SEQ_NUM);
                return self.refuse(msg, SessionRejectReason::RequiredTagMissing, tag, now, out);
            }
            Err(_) => {
                let tag = Some(tags::MSG_SEQ_NUM);
                let reason = SessionRejectReason::IncorrectDataFormatForValue;
                return self.refuse(msg, reason, tag, now, out);
            }
        };
        if ty == MsgType::LOGON {
            return self.on_logon(msg, seq, now, out);
        }
        if !logged_on {
            // QuickFIX `validLogonState`: only our own Logon's refusal may come before a Logon.
            if ty == MsgType::LOGOUT && self.state == SessionState::LogonSent {
                return Inbound::Disconnect(DisconnectReason::LogonRejected);
            }
            return Inbound::Disconnect(DisconnectReason::NotLogon);
        }
        match ty {
            MsgType::HEARTBEAT => {
                if let Err(r) = self.verify(msg, seq, now, out, true, true) {
                    return r;
                }
                self.incr_target();
                Inbound::Handled
            }
            MsgType::TEST_REQUEST => {
                if let Err(r) = self.verify(msg, seq, now, out, true, true) {
                    return r;
                }
                let id = msg.get(tags::TEST_REQ_ID);
                self.send_admin(b"0", now, out, |w| {
                    if let Some(id) = id {
                        w.str(tags::TEST_REQ_ID, id);
                    }
                });
                self.counters.heartbeats_sent += 1;
                self.incr_target();
                Inbound::Handled
            }
            MsgType::SEQUENCE_RESET => self.on_sequence_reset(msg, seq, now, out),
            MsgType::LOGOUT => self.on_logout(msg, seq, now, out),
            MsgType::RESEND_REQUEST => self.on_resend_request(msg, seq, now, out),
            MsgType::REJECT => {
                if let Err(r) = self.verify(msg, seq, now, out, false, true) {
                    return r;
                }
                self.counters.rejects_received += 1;
                self.incr_target();
                Inbound::Handled
            }
            _ => {
                if let Err(r) = self.verify(msg, seq, now, out, true, true) {
                    return r;
                }
                self.incr_target();
                Inbound::Application
            }
        }
    }

    /// QuickFIX `verify()`: SendingTime, CompIDs, then MsgSeqNum too high / too low. `Err` holds
    /// what `on_message` returns when the message must not be processed further.
    fn verify(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        now: Nanos,
        out: &mut OutBuf,
        check_high: bool,
        check_low: bool,
    ) -> Result<(), Inbound> {
        let logged_on = self.is_logged_on();
        match msg.timestamp(tags::SENDING_TIME) {
            Ok(Some(t)) => {
                if self.cfg.check_sending_time && !self.within_window(t, now) {
                    if !logged_on {
                        return Err(Inbound::Disconnect(DisconnectReason::BadSendingTime));
                    }
                    let reason = SessionRejectReason::SendingTimeAccuracyProblem;
                    self.reject(msg, reason, None, b"", now, out);
                    self.send_logout(b"", now, out);
                    return Err(Inbound::Handled);
                }
            }
            Ok(None) => {
                let reason = SessionRejectReason::RequiredTagMissing;
                return Err(self.refuse(msg, reason, Some(tags::SENDING_TIME), now, out));
            }
            Err(_) => {
                let reason = SessionRejectReason::IncorrectDataFormatForValue;
                return Err(self.refuse(msg, reason, Some(tags::SENDING_TIME), now, out));
            }
        }
        if !self.comp_ids_match(msg) {
            if !logged_on {
                return Err(Inbound::Disconnect(DisconnectReason::CompIdProblem));
            }
            self.reject(msg, SessionRejectReason::CompIdProblem, None, b"", now, out);
            self.send_logout(b"", now, out);
            return Err(Inbound::Handled);
        }
        let expected = self.store.next_target_seq();
        if check_high && seq > expected {
            self.target_too_high(msg, seq, now, out);
            return Err(Inbound::Handled);
        }
        if check_low && seq < expected {
            return Err(self.target_too_low(msg, seq, expected, now, out));
        }
        if check_high || check_low {
            if let Some((_, end)) = self.resend_range {
                if seq >= end {
                    self.resend_range = None;
                }
            }
        }
        self.last_received = now;
        self.test_requests = 0;
        Ok(())
    }

    fn on_logon(&mut self, msg: &Message<'_>, seq: u64, now: Nanos, out: &mut OutBuf) -> Inbound {
        let reset = msg.flag(tags::RESET_SEQ_NUM_FLAG) == Ok(Some(true));
        let was_logged_on = self.is_logged_on();
        if was_logged_on && !reset {
            return self.refuse_relogon(msg, now, out);
        }
        if self.cfg.role == Role::Initiator
            && self.state != SessionState::LogonSent
            && !reset
            && !was_logged_on
        {
            return Inbound::Disconnect(DisconnectReason::UnsolicitedLogon);
        }
        let must_reset = (reset && !self.sent_reset)
            || (self.cfg.role == Role::Acceptor && self.cfg.reset_on_logon && !was_logged_on);
        if must_reset && !self.reset_seqs(now) {
            return Inbound::Disconnect(DisconnectReason::StoreFailure);
        }
        if let Err(r) = self.verify(msg, seq, now, out, false, true) {
            return match r {
                Inbound::Handled if !was_logged_on => {
                    Inbound::Disconnect(DisconnectReason::InvalidLogon)
                }
                r => r,
            };
        }
        let hb = match self.cfg.role {
            Role::Initiator => u64::from(self.cfg.heartbeat_secs),
            Role::Acceptor => match msg.uint(tags::HEART_BT_INT) {
                Ok(Some(hb)) => hb,
                _ if was_logged_on => self.heartbeat_secs(),
                _ => return Inbound::Disconnect(DisconnectReason::InvalidLogon),
            },
        };
        if self.cfg.role == Role::Acceptor
            && !(u64::from(self.cfg.heartbeat_min_secs)..=u64::from(self.cfg.heartbeat_max_secs))
                .contains(&hb)
        {
            self.send_logout(b"HeartBtInt out of range", now, out);
            return Inbound::Disconnect(DisconnectReason::BadHeartBtInt);
        }
        self.heartbeat_ns = hb * 1_000_000_000;
        self.state = SessionState::LoggedOn;
        if self.cfg.role == Role::Acceptor || (reset && !self.sent_reset) {
            self.send_admin(b"A", now, out, |w| {
                w.uint(tags::ENCRYPT_METHOD, 0);
                w.uint(tags::HEART_BT_INT, hb);
                if reset {
                    w.flag(tags::RESET_SEQ_NUM_FLAG, true);
                }
            });
        }
        self.sent_reset = false;
        if !reset && seq > self.store.next_target_seq() {
            self.target_too_high(msg, seq, now, out);
        } else {
            self.incr_target();
        }
        Inbound::LoggedOn
    }

    fn on_logout(&mut self, msg: &Message<'_>, seq: u64, now: Nanos, out: &mut OutBuf) -> Inbound {
        if let Err(r) = self.verify(msg, seq, now, out, false, false) {
            return r;
        }
        let reply = self.state == SessionState::LogoutSent;
        if !reply {
            self.send_logout(b"", now, out);
        }
        self.incr_target();
        if self.cfg.reset_on_logout && !self.reset_seqs(now) {
            return Inbound::Disconnect(DisconnectReason::StoreFailure);
        }
        Inbound::Disconnect(if reply {
            DisconnectReason::LogoutReplyReceived
        } else {
            DisconnectReason::LogoutReceived
        })
    }

    fn on_sequence_reset(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        now: Nanos,
        out: &mut OutBuf,
    ) -> Inbound {
        let gap_fill = msg.flag(tags::GAP_FILL_FLAG) == Ok(Some(true));
        if let Err(r) = self.verify(msg, seq, now, out, gap_fill, gap_fill) {
            return r;
        }
        match msg.uint(tags::NEW_SEQ_NO) {
            Ok(Some(new)) => {
                let expected = self.store.next_target_seq();
                if new > expected {
                    self.store.set_next_target_seq(new);
                    self.queue.drop_below(new);
                    if matches!(self.resend_range, Some((_, end)) if end < new) {
                        self.resend_range = None;
                    }
                } else if new < expected {
                    let reason = SessionRejectReason::ValueIsIncorrect;
                    self.reject(msg, reason, None, b"", now, out);
                }
            }
            Ok(None) => {
                let reason = SessionRejectReason::RequiredTagMissing;
                self.reject(msg, reason, Some(tags::NEW_SEQ_NO), b"", now, out);
            }
            Err(_) => {
                let reason = SessionRejectReason::IncorrectDataFormatForValue;
                self.reject(msg, reason, Some(tags::NEW_SEQ_NO), b"", now, out);
            }
        }
        Inbound::Handled
    }

    fn on_resend_request(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        now: Nanos,
        out: &mut OutBuf,
    ) -> Inbound {
        if let Err(r) = self.verify(msg, seq, now, out, false, false) {
            return r;
        }
        let (begin, end) = match (msg.uint(tags::BEGIN_SEQ_NO), msg.uint(tags::END_SEQ_NO)) {
            (Ok(Some(b)), Ok(Some(e))) => (b, e),
            (Ok(None), _) => {
                let reason = SessionRejectReason::RequiredTagMissing;
                return self.refuse(msg, reason, Some(tags::BEGIN_SEQ_NO), now, out);
            }
            (_, Ok(None)) => {
                let reason = SessionRejectReason::RequiredTagMissing;
                return self.refuse(msg, reason, Some(tags::END_SEQ_NO), now, out);
            }
            (Err(_), _) => {
                let reason = SessionRejectReason::IncorrectDataFormatForValue;
                return self.refuse(msg, reason, Some(tags::BEGIN_SEQ_NO), now, out);
            }
            (_, Err(_)) => {
                let reason = SessionRejectReason::IncorrectDataFormatForValue;
                return self.refuse(msg, reason, Some(tags::END_SEQ_NO), now, out);
            }
        };
        self.counters.resend_requests_received += 1;
        let last = self.store.next_sender_seq().saturating_sub(1);
        let infinity = end == 0 || (self.cfg.begin_string == BeginString::Fix42 && end == 999_999);
        let end = if infinity || end > last { last } else { end };
        let begin = begin.max(1);
        if begin <= end {
            self.job = Some(ResendJob {
                next: begin,
                end,
                gap_from: None,
            });
            self.continue_resend(now, out);
        }
        let expected = self.store.next_target_seq();
        if seq == expected {
            self.incr_target();
        }
        Inbound::Handled
    }

    // ---------------------------------------------------------------- problems

    #[cold]
    #[inline(never)]
    fn bad_begin_string(&mut self, msg: &Message<'_>, now: Nanos, out: &mut OutBuf) -> Inbound {
        if !self.is_logged_on() {
            return Inbound::Disconnect(DisconnectReason::BadBeginString);
        }
        if msg.msg_type() == MsgType::LOGOUT {
            let seq = msg.seq_num().unwrap_or(0);
            return self.on_logout(msg, seq, now, out);
        }
        self.send_logout(b"Incorrect BeginString", now, out);
        self.incr_target();
        Inbound::Handled
    }

    /// A message the dictionary refused.
    #[cold]
    #[inline(never)]
    fn invalid(
        &mut self,
        msg: &Message<'_>,
        invalid: Invalid,
        now: Nanos,
        out: &mut OutBuf,
    ) -> Inbound {
        if !self.is_logged_on() {
            return Inbound::Disconnect(if msg.msg_type() == MsgType::LOGON {
                DisconnectReason::InvalidLogon
            } else {
                DisconnectReason::NotLogon
            });
        }
        match invalid {
            Invalid::Session { reason, tag, text } => {
                // QuickFIX names no RefTagID <371> for an invalid MsgType; scripts expect none.
                let tag = if reason == SessionRejectReason::InvalidMsgType {
                    None
                } else {
                    tag
                };
                self.reject(msg, reason, tag, text.as_bytes(), now, out);
            }
            Invalid::UnsupportedMessageType => {
                self.business_reject(msg, 3, b"Unsupported Message Type", None, now, out);
            }
            Invalid::ConditionallyRequiredFieldMissing { tag } => {
                if msg.msg_type().is_admin() {
                    let reason = SessionRejectReason::RequiredTagMissing;
                    self.reject(msg, reason, Some(tag), b"", now, out);
                } else {
                    let text = b"Conditionally required field missing";
                    self.business_reject(msg, 5, text, Some(tag), now, out);
                }
            }
        }
        Inbound::Handled
    }

    /// Reject when logged on; before logon a broken message ends the connection silently.
    #[cold]
    fn refuse(
        &mut self,
        msg: &Message<'_>,
        reason: SessionRejectReason,
        tag: Option<i32>,
        now: Nanos,
        out: &mut OutBuf,
    ) -> Inbound {
        if !self.is_logged_on() {
            return Inbound::Disconnect(if msg.msg_type() == MsgType::LOGON {
                DisconnectReason::InvalidLogon
            } else {
                DisconnectReason::NotLogon
            });
        }
        self.reject(msg, reason, tag, b"", now, out);
        Inbound::Handled
    }

    #[cold]
    fn target_too_high(&mut self, msg: &Message<'_>, seq: u64, now: Nanos, out: &mut OutBuf) {
        if self.queue.push(seq, msg.bytes()) {
            self.counters.queued += 1;
        } else {
            self.counters.queue_overflow += 1;
        }
        if let Some((begin, _)) = self.resend_range {
            if seq >= begin {
                return; // already asked for this gap
            }
        }
        let begin = self.store.next_target_seq();
        self.send_admin(b"2", now, out, |w| {
            w.uint(tags::BEGIN_SEQ_NO, begin);
            w.uint(tags::END_SEQ_NO, 0);
        });
        self.counters.resend_requests_sent += 1;
        self.resend_range = Some((begin, seq - 1));
    }

    #[cold]
    fn target_too_low(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        expected: u64,
        now: Nanos,
        out: &mut OutBuf,
    ) -> Inbound {
        if msg.flag(tags::POSS_DUP_FLAG) != Ok(Some(true)) {
            let mut text = Text::new();
            push_bytes(&mut text, b"MsgSeqNum too low, expecting ");
            push_u64(&mut text, expected);
            push_bytes(&mut text, b" but received ");
            push_u64(&mut text, seq);
            self.send_logout(&text, now, out);
            return Inbound::Disconnect(DisconnectReason::SeqTooLow);
        }
        if msg.msg_type() != MsgType::SEQUENCE_RESET {
            match (
                msg.timestamp(tags::ORIG_SENDING_TIME),
                msg.timestamp(tags::SENDING_TIME),
            ) {
                (Ok(None), _) => {
                    let reason = SessionRejectReason::RequiredTagMissing;
                    self.reject(msg, reason, Some(tags::ORIG_SENDING_TIME), b"", now, out);
                    return Inbound::Handled;
                }
                (Err(_), _) => {
                    let reason = SessionRejectReason::IncorrectDataFormatForValue;
                    self.reject(msg, reason, Some(tags::ORIG_SENDING_TIME), b"", now, out);
                    return Inbound::Handled;
                }
                (Ok(Some(orig)), Ok(Some(sending))) if orig > sending => {
                    let reason = SessionRejectReason::SendingTimeAccuracyProblem;
                    self.reject(msg, reason, None, b"", now, out);
                    self.send_logout(b"", now, out);
                    return Inbound::Handled;
                }
                _ => {}
            }
        }
        self.counters.duplicates_ignored += 1;
        Inbound::Handled
    }

    // ---------------------------------------------------------------- outbound

    /// Writes an admin message with the next MsgSeqNum (not stored: resends gap-fill it).
    fn send_admin(
        &mut self,
        msg_type: &[u8],
        now: Nanos,
        out: &mut OutBuf,
        body: impl FnOnce(&mut Writer),
    ) {
        self.send_admin_routed(msg_type, &ReplyRouting::NONE, now, out, body);
    }

    /// [`Session::send_admin`] with routing header fields (a session Reject answers with the
    /// rejected message's routing fields swapped back).
    fn send_admin_routed(
        &mut self,
        msg_type: &[u8],
        routing: &ReplyRouting,
        now: Nanos,
        out: &mut OutBuf,
        body: impl FnOnce(&mut Writer),
    ) {
        let seq = self.store.next_sender_seq();
        let cfg = &self.cfg;
        let written = out.append_with(|buf| {
            let mut w = Writer::new(buf, cfg.begin_string.as_bytes(), msg_type);
            header(&mut w, cfg, seq, now);
            routing.write(&mut w);
            body(&mut w);
            w.finish()
        });
        if written.is_none() {
            self.counters.out_overflow += 1;
        }
        self.store.set_next_sender_seq(seq + 1);
        self.last_sent = now;
    }

    fn send_logout(&mut self, text: &[u8], now: Nanos, out: &mut OutBuf) {
        self.send_admin(b"5", now, out, |w| {
            if !text.is_empty() {
                w.str(tags::TEXT, text);
            }
        });
        if self.is_logged_on() {
            self.state = SessionState::LogoutSent;
        }
        self.logout_sent_at = now;
    }

    /// Reject <3>. The rejected message consumed its MsgSeqNum when it was the expected one
    /// (not for Logon and SequenceReset, as QuickFIX).
    #[cold]
    fn reject(
        &mut self,
        msg: &Message<'_>,
        reason: SessionRejectReason,
        tag: Option<i32>,
        text: &[u8],
        now: Nanos,
        out: &mut OutBuf,
    ) {
        if !self.is_logged_on() {
            return; // QuickFIX: "Tried to send a reject while not logged on"
        }
        let ref_seq = msg.seq_num();
        let ref_type = msg.msg_type_bytes();
        // FIX 4.2 defines SessionRejectReason values 0..=11 only.
        let with_reason = self.cfg.begin_string != BeginString::Fix42 || (reason as u8) <= 11;
        let text = if text.is_empty() {
            reject_text(reason)
        } else {
            text
        };
        let routing = ReplyRouting::reply_to_lossy(msg);
        self.send_admin_routed(b"3", &routing, now, out, |w| {
            if let Some(s) = ref_seq {
                w.uint(tags::REF_SEQ_NUM, s);
            }
            if let Some(t) = tag {
                w.int(tags::REF_TAG_ID, i64::from(t));
            }
            if !ref_type.is_empty() {
                w.str(tags::REF_MSG_TYPE, ref_type);
            }
            if with_reason {
                w.uint(tags::SESSION_REJECT_REASON, reason as u64);
            }
            w.str(tags::TEXT, text);
        });
        self.counters.rejects_sent += 1;
        let ty = msg.msg_type();
        if ty != MsgType::LOGON
            && ty != MsgType::SEQUENCE_RESET
            && ref_seq == Some(self.store.next_target_seq())
        {
            self.incr_target();
        }
    }

    /// BusinessMessageReject <j> for a message the session refuses at application level.
    #[cold]
    fn business_reject(
        &mut self,
        msg: &Message<'_>,
        reason: u32,
        text: &[u8],
        tag: Option<i32>,
        now: Nanos,
        out: &mut OutBuf,
    ) {
        let ref_seq = msg.seq_num();
        let mut full = Text::new();
        push_bytes(&mut full, text);
        if let Some(t) = tag {
            push_bytes(&mut full, b" (");
            if t < 0 {
                push_bytes(&mut full, b"-");
            }
            push_u64(&mut full, u64::from(t.unsigned_abs()));
            push_bytes(&mut full, b")");
        }
        let r = self.send_business_reject(
            &ReplyRouting::reply_to_lossy(msg),
            ref_seq.unwrap_or(0),
            msg.msg_type_bytes(),
            None,
            reason,
            &full,
            now,
            out,
        );
        if r.is_ok() {
            self.counters.business_rejects_sent += 1;
        }
        if ref_seq.is_some() && ref_seq == Some(self.store.next_target_seq()) {
            self.incr_target();
        }
    }

    /// Serves one chunk of the current resend (see `resend.rs`, "Chunks"): at most
    /// `RESEND_CHUNK_MESSAGES` messages and `RESEND_CHUNK_SEQS` sequence numbers, and only
    /// while `out` is less than half full. The rest continues from `on_timer`.
    fn continue_resend(&mut self, now: Nanos, out: &mut OutBuf) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        let mut messages = 0;
        let mut seqs = 0;
        while job.next <= job.end {
            if messages >= RESEND_CHUNK_MESSAGES || seqs >= RESEND_CHUNK_SEQS {
                self.job = Some(job);
                return;
            }
            seqs += 1;
            let seq = job.next;
            let Some(stored) = self.store.outbound(seq) else {
                job.gap_from.get_or_insert(seq);
                job.next += 1;
                continue;
            };
            // Room for the message grown by PossDupFlag, OrigSendingTime and a new SendingTime,
            // plus a gap fill in front of it; half of `out` stays for live messages.
            if out.free() < stored.len() + 64 + 160 || out.pending().len() >= out.capacity() / 2 {
                self.job = Some(job);
                return;
            }
            messages += 1;
            let gap_from = job.gap_from;
            match write_resend(&self.cfg, stored, gap_from, now, out) {
                Resent::Message { gap_filled } => {
                    self.counters.messages_resent += 1;
                    if gap_filled {
                        self.counters.gap_fills_sent += 1;
                    }
                    job.gap_from = None;
                    self.last_sent = now;
                }
                Resent::Admin => {
                    job.gap_from.get_or_insert(seq);
                }
                Resent::NoRoom => {
                    self.job = Some(job);
                    return;
                }
            }
            job.next += 1;
        }
        if let Some(from) = job.gap_from {
            if !write_gap_fill(&self.cfg, from, job.end + 1, now, out) {
                self.job = Some(job);
                return;
            }
            self.counters.gap_fills_sent += 1;
            self.last_sent = now;
        }
    }

    fn timer(&mut self, now: Nanos, out: &mut OutBuf) -> Option<DisconnectReason> {
        match self.state {
            SessionState::Disconnected => None,
            SessionState::LogonSent => {
                let waited = now.saturating_sub(self.logon_sent_at).0;
                (waited >= self.cfg.logon_timeout_ms.saturating_mul(1_000_000))
                    .then_some(DisconnectReason::LogonTimeout)
            }
            SessionState::LoggedOn | SessionState::LogoutSent => {
                if self.job.is_some() {
                    self.continue_resend(now, out);
                }
                if self.state == SessionState::LogoutSent
                    && now.saturating_sub(self.logout_sent_at).0
                        >= self.cfg.logout_timeout_ms.saturating_mul(1_000_000)
                {
                    return Some(DisconnectReason::LogoutTimeout);
                }
                let hb = self.heartbeat_ns;
                if hb == 0 {
                    return None;
                }
                let since_received = now.saturating_sub(self.last_received).0;
                let since_sent = now.saturating_sub(self.last_sent).0;
                if since_received < hb && since_sent < hb {
                    return None;
                }
                // QuickFIX: TestRequest after 1.2 × HeartBtInt of silence, give up at 2.4 ×.
                if since_received >= hb * 24 / 10 {
                    return Some(DisconnectReason::HeartbeatTimeout);
                }
                if since_received >= hb * 12 / 10 * u64::from(self.test_requests + 1) {
                    self.send_admin(b"1", now, out, |w| {
                        w.str(tags::TEST_REQ_ID, b"TEST");
                    });
                    self.test_requests += 1;
                    self.counters.test_requests_sent += 1;
                } else if since_sent >= hb && self.test_requests == 0 {
                    self.send_admin(b"0", now, out, |_| {});
                    self.counters.heartbeats_sent += 1;
                }
                None
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    fn comp_ids_match(&self, msg: &Message<'_>) -> bool {
        msg.get(tags::SENDER_COMP_ID) == Some(self.cfg.their_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID) == Some(self.cfg.our_comp_id.as_bytes())
    }

    fn within_window(&self, sending: Nanos, now: Nanos) -> bool {
        let skew = if sending > now {
            sending.0 - now.0
        } else {
            now.0 - sending.0
        };
        skew <= self.cfg.sending_time_window_ms.saturating_mul(1_000_000)
    }

    fn incr_target(&mut self) {
        let next = self.store.next_target_seq() + 1;
        self.store.set_next_target_seq(next);
    }

    /// Both sequence numbers back to 1; everything keyed by them is dropped.
    fn reset_seqs(&mut self, now: Nanos) -> bool {
        self.queue.clear();
        self.resend_range = None;
        self.job = None;
        if self.store.reset(now.0).is_err() {
            self.counters.store_errors += 1;
            return false;
        }
        true
    }

    fn disconnected(&mut self, _reason: DisconnectReason, now: Nanos) {
        self.state = SessionState::Disconnected;
        self.queue.clear();
        self.resend_range = None;
        self.job = None;
        self.sent_reset = false;
        self.test_requests = 0;
        self.heartbeat_ns = 0;
        if self.cfg.reset_on_disconnect {
            self.reset_seqs(now);
        }
    }
}

/// The standard header after MsgType: 34, 49, 52, 56.
/// What the header of an outgoing Logon carries (for signing it).
#[derive(Clone, Copy, Debug)]
pub struct LogonHeader<'a> {
    /// MsgSeqNum <34>.
    pub seq: u64,
    /// SendingTime <52>, as written.
    pub sending_time: &'a [u8],
    /// SenderCompID <49>.
    pub sender: &'a [u8],
    /// TargetCompID <56>.
    pub target: &'a [u8],
}

pub(crate) fn header(w: &mut Writer<'_>, cfg: &SessionConfig, seq: u64, now: Nanos) {
    w.uint(tags::MSG_SEQ_NUM, seq)
        .str(tags::SENDER_COMP_ID, cfg.our_comp_id.as_bytes())
        .timestamp(tags::SENDING_TIME, now, cfg.time_precision)
        .str(tags::TARGET_COMP_ID, cfg.their_comp_id.as_bytes());
}

#[cold]
fn too_large() -> SendError {
    SendError::TooLarge
}

/// QuickFIX's Text <58> for each SessionRejectReason.
fn reject_text(reason: SessionRejectReason) -> &'static [u8] {
    use SessionRejectReason as R;
    match reason {
        R::InvalidTagNumber => b"Invalid tag number",
        R::RequiredTagMissing => b"Required tag missing",
        R::TagNotDefinedForMessageType => b"Tag not defined for this message type",
        R::UndefinedTag => b"Undefined Tag",
        R::TagSpecifiedWithoutAValue => b"Tag specified without a value",
        R::ValueIsIncorrect => b"Value is incorrect (out of range) for this tag",
        R::IncorrectDataFormatForValue => b"Incorrect data format for value",
        R::DecryptionProblem => b"Decryption problem",
        R::SignatureProblem => b"Signature problem",
        R::CompIdProblem => b"CompID problem",
        R::SendingTimeAccuracyProblem => b"SendingTime accuracy problem",
        R::InvalidMsgType => b"Invalid MsgType",
        R::XmlValidationError => b"XML Validation error",
        R::TagAppearsMoreThanOnce => b"Tag appears more than once",
        R::TagSpecifiedOutOfRequiredOrder => b"Tag specified out of required order",
        R::RepeatingGroupFieldsOutOfOrder => b"Repeating group fields out of order",
        R::IncorrectNumInGroupCountForRepeatingGroup => {
            b"Incorrect NumInGroup count for repeating group"
        }
        R::NonDataValueIncludesFieldDelimiter => b"Non Data value includes field delimiter",
        R::Other => b"Other",
    }
}

fn push_bytes(t: &mut Text, b: &[u8]) {
    let room = t.remaining_capacity().min(b.len());
    let _ = t.try_extend_from_slice(b.get(..room).unwrap_or_default());
}

fn push_u64(t: &mut Text, v: u64) {
    let mut digits = [0u8; 20];
    let n = write_u64(&mut digits, v);
    push_bytes(t, digits.get(..n).unwrap_or_default());
}
