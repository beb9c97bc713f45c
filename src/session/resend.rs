//! HOT — serving the peer's ResendRequest: stored application messages go out again with
//! PossDupFlag <43> = Y, OrigSendingTime <122> = their first SendingTime and a new SendingTime;
//! admin messages and sequence numbers we never stored collapse into one
//! SequenceReset-GapFill (MsgSeqNum = first seq of the gap, NewSeqNo <36> = the next seq sent).
//!
//! # Chunks
//! A resend is served in chunks, one per call: the ResendRequest's own handling, then every
//! `on_timer` (the engine runs timers once a millisecond). A chunk stops after
//! [`RESEND_CHUNK_MESSAGES`] messages, after [`RESEND_CHUNK_SEQS`] sequence numbers looked at
//! (a long run of admin messages becomes one gap fill, but each number costs a lookup), or
//! when the outbound buffer is half full — the other half stays for the session's live
//! messages, and a peer that does not read its resend meets the slow-consumer limit. So a
//! ResendRequest for 1..0 over 100k stored messages costs the gateway thread one bounded
//! chunk per millisecond, never a stall of the other sessions.

use super::state::header;
use super::{OutBuf, SessionConfig};
use crate::fix::tags;
use crate::fix::{Message, Writer};
use crate::model::Nanos;

/// Most messages resent per chunk: 64 × ~1 µs to encode each keeps a chunk well under the
/// 1 ms timer period (64k messages a second, a 100k-message resend in under 2 s).
pub(crate) const RESEND_CHUNK_MESSAGES: u32 = 64;
/// Most sequence numbers looked up per chunk (gaps are cheap, but not free).
pub(crate) const RESEND_CHUNK_SEQS: u32 = 4096;

/// A resend in progress: `next..=end` remain; `gap_from` starts a pending gap fill.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResendJob {
    pub(crate) next: u64,
    pub(crate) end: u64,
    pub(crate) gap_from: Option<u64>,
}

/// What [`write_resend`] did with one stored message.
pub(crate) enum Resent {
    /// Resent (after a gap fill for `gap_from` when there was one).
    Message { gap_filled: bool },
    /// Not an application message (or unreadable): part of a gap.
    Admin,
    /// `out` is full; nothing was written.
    NoRoom,
}

/// Header fields we rewrite on a resend; everything else is copied as stored.
fn rewritten(tag: i32) -> bool {
    matches!(
        tag,
        tags::BEGIN_STRING
            | tags::BODY_LENGTH
            | tags::MSG_TYPE
            | tags::MSG_SEQ_NUM
            | tags::SENDER_COMP_ID
            | tags::SENDING_TIME
            | tags::TARGET_COMP_ID
            | tags::POSS_DUP_FLAG
            | tags::ORIG_SENDING_TIME
            | tags::CHECK_SUM
    )
}

/// Resends the stored message `stored`, preceded by a gap fill from `gap_from` when set.
pub(crate) fn write_resend(
    cfg: &SessionConfig,
    stored: &[u8],
    gap_from: Option<u64>,
    now: Nanos,
    out: &mut OutBuf,
) -> Resent {
    let Ok(m) = Message::decode(stored) else {
        return Resent::Admin;
    };
    let Some(seq) = m.seq_num() else {
        return Resent::Admin;
    };
    if m.msg_type().is_admin() {
        return Resent::Admin;
    }
    let mark = out.pending().len();
    let gap_filled = match gap_from {
        Some(from) => {
            if !write_gap_fill(cfg, from, seq, now, out) {
                return Resent::NoRoom;
            }
            true
        }
        None => false,
    };
    let orig = m.get(tags::SENDING_TIME);
    let written = out.append_with(|buf| {
        let mut w = Writer::new(buf, cfg.begin_string.as_bytes(), m.msg_type_bytes());
        header(&mut w, cfg, seq, now);
        w.flag(tags::POSS_DUP_FLAG, true);
        if let Some(orig) = orig {
            w.str(tags::ORIG_SENDING_TIME, orig);
        }
        for f in m.fields() {
            if f.tag > 0 && !rewritten(f.tag) {
                w.str(f.tag, m.value(f));
            }
        }
        w.finish()
    });
    if written.is_none() {
        if gap_filled {
            out.truncate(mark);
        }
        return Resent::NoRoom;
    }
    Resent::Message { gap_filled }
}

/// SequenceReset-GapFill: MsgSeqNum `from`, NewSeqNo `to`. `false` when `out` is full.
pub(crate) fn write_gap_fill(
    cfg: &SessionConfig,
    from: u64,
    to: u64,
    now: Nanos,
    out: &mut OutBuf,
) -> bool {
    out.append_with(|buf| {
        let mut w = Writer::new(buf, cfg.begin_string.as_bytes(), b"4");
        header(&mut w, cfg, from, now);
        w.flag(tags::POSS_DUP_FLAG, true)
            .timestamp(tags::ORIG_SENDING_TIME, now, cfg.time_precision)
            .uint(tags::NEW_SEQ_NO, to)
            .flag(tags::GAP_FILL_FLAG, true);
        w.finish()
    })
    .is_some()
}
