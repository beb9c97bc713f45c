//! COLD (a measuring tool) — the binary load client: N FIXP sessions over SBE
//! (fix-specs/FIXP-SESSION.md) behind the same [`Wire`] trait as the FIX initiator, through the
//! library's sans-IO client (`portcullis::fixp::client::ClientSession`): signed Negotiate then
//! Establish per session, NewOrderSingle / OrderCancelRequest / OrderCancelReplaceRequest,
//! Sequence keep-alives, Terminate at the end.
//!
//! As on the FIX wire, everything about entry `i` lives at index `i` of vectors sized before
//! the run and the client session appends frames to the driver's buffer, so the measuring loop
//! does not allocate. A frame that does not decode ends that session (the binary stream cannot
//! resynchronise); an answer naming an order we never sent is ignored.

use portcullis::fixp::client::{
    describe_session, CancelSpec, ClientEvent, ClientSession, Credentials, OrderSpec, ReplaceSpec,
    Report,
};
use portcullis::fixp::{ErrorCode, SessionMsg};
use portcullis::model::{Nanos, OrdType, Price, Qty, Side, TimeInForce};
use portcullis::sbe::{self, Frame};

use super::wire::{Live, Signer, Wire};
use super::{Answer, Op, Recorder};

/// What the binary load client is told.
#[derive(Debug)]
pub struct SbeConfig {
    /// Each session's name (its `their_comp_id` in the gateway config) and signing key, one
    /// entry per session.
    pub credentials: Vec<Credentials>,
    /// keep_alive_interval asked for in Establish, ms.
    pub keep_alive_ms: u32,
    /// Used in turn (by the order's index); AAPL if empty.
    pub symbols: Vec<String>,
    /// Account, used in turn; none (the session's default) if empty.
    pub accounts: Vec<String>,
    /// UTC at the driver clock's zero.
    pub utc0: u64,
    /// Unique per run (milliseconds); the ClOrdIDs derive from it.
    pub run_id: u64,
}

impl SbeConfig {
    /// The credentials of sessions `names` signed with `signers`: one key for all, or one per
    /// session. An error names what is missing or cannot be sent.
    pub fn credentials(names: &[String], signers: &[Signer]) -> Result<Vec<Credentials>, String> {
        let mut out = Vec::with_capacity(names.len());
        for (s, name) in names.iter().enumerate() {
            let signer = match signers.len() {
                0 => None,
                1 => signers.first(),
                _ => signers.get(s),
            }
            .ok_or_else(|| {
                format!("SBE session {name} needs a key (--key-id/--secret-file or --keys-file)")
            })?;
            out.push(
                Credentials::new(name, &signer.key_id, signer.secret.clone())
                    .map_err(|e| format!("session {name}: {e}"))?,
            );
        }
        Ok(out)
    }
}

struct Sess {
    cs: ClientSession,
    live: Live,
    /// Entries sent on this session.
    sent: usize,
    terminate_sent: bool,
    terminate_answered: bool,
    ended: Option<String>,
}

/// SBE over FIXP for N sessions.
pub struct Sbe {
    utc0: u64,
    /// ClOrdID = prefix + decimal entry index, at most 20 characters (SBE's ClOrdID).
    prefix: Vec<u8>,
    symbols: Vec<String>,
    accounts: Vec<String>,
    sessions: Vec<Sess>,
    /// Our sequence number of entry `i` (BusinessMessageReject names it by RefSeqNum).
    entry_seq: Vec<u64>,
    /// The entry that created the order entry `i` cancels or replaces.
    entry_orig: Vec<u32>,
}

impl Sbe {
    /// Room for `capacity` entries.
    pub fn new(c: SbeConfig, capacity: usize) -> Sbe {
        let sessions = c
            .credentials
            .into_iter()
            .enumerate()
            .map(|(s, creds)| {
                // A uuid per run and session: never one the gateway saw before.
                let uuid = c.utc0.saturating_add(s as u64).max(1);
                let mut cs = ClientSession::new(creds, uuid);
                cs.set_keep_alive_ms(c.keep_alive_ms);
                Sess {
                    cs,
                    live: Live::new(),
                    sent: 0,
                    terminate_sent: false,
                    terminate_answered: false,
                    ended: None,
                }
            })
            .collect();
        // 6 hex digits of the run id and a dash leave 13 digits for the entry index.
        let prefix = format!("{:06x}-", c.run_id & 0xff_ffff).into_bytes();
        Sbe {
            utc0: c.utc0,
            prefix,
            symbols: c.symbols,
            accounts: c.accounts,
            sessions,
            entry_seq: vec![u64::MAX; capacity],
            entry_orig: vec![0; capacity],
        }
    }

    fn t(&self, now_ns: u64) -> Nanos {
        Nanos(self.utc0 + now_ns)
    }

    fn order_index(&self, cl: &[u8]) -> Option<usize> {
        let digits = cl.strip_prefix(self.prefix.as_slice())?;
        usize::try_from(portcullis::fix::decode::parse_uint(digits)?).ok()
    }

    fn entry_of_seq(&self, s: usize, seq: u64) -> Option<usize> {
        let n = self.sessions.len().max(1);
        let sent = self.sessions.get(s)?.sent;
        let (mut lo, mut hi) = (0usize, sent);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let i = s + mid * n;
            let v = *self.entry_seq.get(i)?;
            match v.cmp(&seq) {
                std::cmp::Ordering::Equal => return Some(i),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    fn opened(&mut self, s: usize, i: usize, rec: &Recorder) {
        let orig = match rec.op(i) {
            Some(Op::New) => i,
            Some(Op::Replace) => self.entry_orig.get(i).map_or(i, |o| *o as usize),
            _ => return,
        };
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.live.push(i, orig);
        }
    }

    fn on_event(
        &mut self,
        s: usize,
        ev: ClientEvent,
        now_ns: u64,
        out: &mut Vec<u8>,
        rec: &mut Recorder,
    ) {
        match ev {
            ClientEvent::Report(Report::Exec(e)) => {
                let Some(i) = self.order_index(e.cl_ord_id.as_bytes()) else {
                    return;
                };
                let ok = e.ord_status != b'8';
                if rec.answer(i, now_ns, ok) == Answer::First && ok {
                    self.opened(s, i, rec);
                }
            }
            ClientEvent::Report(Report::CancelReject(c)) => {
                if let Some(i) = self.order_index(c.cl_ord_id.as_bytes()) {
                    rec.answer(i, now_ns, false);
                }
            }
            ClientEvent::Report(Report::BusinessReject(b)) => {
                let i = self
                    .order_index(b.ref_id.as_bytes())
                    .or_else(|| self.entry_of_seq(s, b.ref_seq_num));
                if let Some(i) = i {
                    rec.answer(i, now_ns, false);
                }
            }
            ClientEvent::Report(Report::MassCancel(_)) | ClientEvent::Unexpected { .. } => {}
            ClientEvent::Session(m) => {
                let t = self.t(now_ns);
                let Some(sess) = self.sessions.get_mut(s) else {
                    return;
                };
                match m {
                    SessionMsg::NegotiationResponse(_) => sess.cs.establish(t, out),
                    SessionMsg::NegotiationReject(_) | SessionMsg::EstablishmentReject(_) => {
                        sess.ended = Some(describe_session(&m));
                    }
                    SessionMsg::Terminate(_) if sess.terminate_sent => {
                        sess.terminate_answered = true;
                    }
                    SessionMsg::Terminate(_) => {
                        sess.ended = Some(describe_session(&m));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The `orig`-th of `list` in turn; `default` if empty.
fn in_turn<'a>(list: &'a [String], orig: usize, default: &'a str) -> &'a str {
    match list.len() {
        0 => default,
        k => list.get(orig % k).map_or(default, String::as_str),
    }
}

/// ClOrdID `prefix` + `i` into `buf`; returns its length.
fn cl_ord_id(buf: &mut [u8; 32], prefix: &[u8], i: usize) -> usize {
    let mut n = 0;
    for (d, s) in buf.iter_mut().zip(prefix.iter()) {
        *d = *s;
        n += 1;
    }
    n + portcullis::fix::encode::write_u64(buf.get_mut(n..).unwrap_or_default(), i as u64)
}

impl Wire for Sbe {
    fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn start(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let t = self.t(now_ns);
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.cs.open(t, out);
        }
    }

    fn ready(&self, s: usize) -> bool {
        self.sessions.get(s).is_some_and(|x| x.cs.is_established())
    }

    fn order(&mut self, s: usize, i: usize, op: Op, now_ns: u64, out: &mut Vec<u8>) -> Op {
        let target = match op {
            Op::New => None,
            Op::Cancel | Op::Replace => self.sessions.get_mut(s).and_then(|x| x.live.pop()),
        };
        let (op, orig) = match target {
            Some((cur, orig)) => (op, Some((cur, orig))),
            None => (Op::New, None),
        };
        let base = orig.map_or(i, |(_, o)| o);
        let mut id = [0u8; 32];
        let n = cl_ord_id(&mut id, &self.prefix, i);
        let mut orig_id = [0u8; 32];
        let orig_n = orig.map_or(0, |(cur, _)| cl_ord_id(&mut orig_id, &self.prefix, cur));
        // Both are ASCII digits after an ASCII prefix.
        let cl = std::str::from_utf8(id.get(..n).unwrap_or_default()).unwrap_or_default();
        let orig_cl =
            std::str::from_utf8(orig_id.get(..orig_n).unwrap_or_default()).unwrap_or_default();
        let side = if base.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let t = self.t(now_ns);
        // Disjoint fields: the specs borrow the lists, the session is borrowed mutably.
        let symbol = in_turn(&self.symbols, base, "AAPL");
        let account = in_turn(&self.accounts, base, "");
        let price = Price::from_units(10);
        let result = {
            let Some(sess) = self.sessions.get_mut(s) else {
                return op;
            };
            match op {
                Op::New => {
                    let mut o = OrderSpec::limit(cl, symbol, side, Qty::from_units(100), price);
                    o.account = account;
                    sess.cs.new_order(&o, t, out)
                }
                Op::Cancel => sess.cs.cancel(
                    &CancelSpec {
                        cl_ord_id: cl,
                        orig_cl_ord_id: orig_cl,
                        side,
                        account,
                        symbol,
                    },
                    t,
                    out,
                ),
                // Alternate 150 / 200 so every replace changes the quantity.
                Op::Replace => sess.cs.replace(
                    &ReplaceSpec {
                        cl_ord_id: cl,
                        orig_cl_ord_id: orig_cl,
                        side,
                        ord_type: OrdType::Limit,
                        tif: TimeInForce::Day,
                        qty: Qty::from_units(150 + 50 * (i as i64 % 2)),
                        price: Some(price),
                        account,
                        symbol,
                    },
                    t,
                    out,
                ),
            }
        };
        let seq = match result {
            Ok(seq) => seq,
            Err(e) => {
                if let Some(sess) = self.sessions.get_mut(s) {
                    sess.ended = Some(format!("cannot send entry {i}: {e}"));
                }
                return op;
            }
        };
        if let Some(x) = self.entry_seq.get_mut(i) {
            *x = seq;
        }
        if let Some(x) = self.entry_orig.get_mut(i) {
            *x = u32::try_from(base).unwrap_or(u32::MAX);
        }
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.sent += 1;
        }
        op
    }

    fn incoming(
        &mut self,
        s: usize,
        rx: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        rec: &mut Recorder,
    ) -> usize {
        let mut pos = 0;
        let t = self.t(now_ns);
        loop {
            let rest = rx.get(pos..).unwrap_or_default();
            match sbe::frame(rest, sbe::DEFAULT_MAX_FRAME) {
                Frame::Incomplete => return pos,
                Frame::Invalid(e) => {
                    if let Some(sess) = self.sessions.get_mut(s) {
                        sess.ended = Some(format!("the gateway sent a bad frame: {e}"));
                    }
                    return rx.len();
                }
                Frame::Complete(len) => {
                    let bytes = rest.get(..len).unwrap_or_default();
                    pos += len.max(1);
                    let ev = match self.sessions.get_mut(s) {
                        Some(sess) => sess.cs.on_frame(bytes, t, out),
                        None => continue,
                    };
                    match ev {
                        Ok(ev) => self.on_event(s, ev, now_ns, out, rec),
                        Err(e) => {
                            if let Some(sess) = self.sessions.get_mut(s) {
                                sess.ended = Some(format!("the gateway sent a bad frame: {e}"));
                            }
                            return rx.len();
                        }
                    }
                }
            }
        }
    }

    fn idle(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let t = self.t(now_ns);
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.cs.on_timer(t, out);
        }
    }

    fn stop(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let t = self.t(now_ns);
        let Some(sess) = self.sessions.get_mut(s) else {
            return;
        };
        if sess.ended.is_none() {
            sess.terminate_sent = true;
            sess.cs.terminate(ErrorCode::Finished, t, out);
        }
    }

    fn stopped(&self, s: usize) -> bool {
        self.sessions
            .get(s)
            .is_none_or(|x| x.terminate_answered || x.ended.is_some())
    }

    fn ended(&self, s: usize) -> Option<&str> {
        self.sessions.get(s).and_then(|x| x.ended.as_deref())
    }

    fn notes(&self) -> Option<String> {
        let gaps: u64 = self.sessions.iter().map(|x| x.cs.gaps()).sum();
        (gaps > 0).then(|| {
            format!(
                "{gaps} of the gateway's application message(s) never arrived (sequence gaps; \
                 not asked for again)"
            )
        })
    }
}
