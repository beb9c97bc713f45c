//! BOUNDARY — risk control requests from cold threads (the control socket today, the ops port
//! later) to the gateway thread, and its answers. The gateway thread applies each request
//! between two messages, whole (a limit change is one snapshot, never half-applied), and
//! answers on the request's own reply channel.

use std::net::SocketAddr;

use crate::model::{Account, CompId, InlineStr, Nanos, Symbol};
use crate::risk::{AccountView, LimitChange, LimitsSpec, Position};
use crate::route::VenueName;

/// What a kill switch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillTarget {
    Global,
    Account(Account),
    Symbol(Symbol),
    /// A session (its key): index into the configured sessions.
    Session(u32),
}

/// A control action.
#[derive(Clone, Debug)]
pub enum ControlRequest {
    /// Block new orders and replaces in the scope and cancel every open order in it.
    Kill(KillTarget),
    /// Release a kill switch (open orders cancelled by the kill stay cancelled).
    Unkill(KillTarget),
    /// Re-enable an account the message rate limit disabled.
    EnableAccount(Account),
    /// Change limits: the fields set in `changes` replace the current ones, the rest stay;
    /// applied as one snapshot. With `for_ns`, a temporary change that reverts by itself.
    SetLimits {
        account: Account,
        changes: LimitsSpec,
        for_ns: Option<u64>,
    },
    /// An account's limits, exposure and state (and its position in `symbol`, if given).
    Show {
        account: Account,
        symbol: Option<Symbol>,
    },
    /// The state of configured client session `index` (answered by the shell).
    Session(u32),
    /// The state of venue `index` (answered by the desk).
    Venue(crate::model::VenueId),
}

/// A client session as the gateway thread sees it: who, connected from where, sequence numbers,
/// what waits to be sent.
#[derive(Clone, Copy, Debug)]
pub struct SessionView {
    pub index: u32,
    /// `FIX.4.4` or `FIX.4.2`.
    pub begin: &'static str,
    pub their_comp_id: CompId,
    pub our_comp_id: CompId,
    /// The API key it logged on with (empty: none, or not logged on under a key).
    pub key_id: InlineStr<32>,
    pub connected: bool,
    pub logged_on: bool,
    pub peer: Option<SocketAddr>,
    pub tls: bool,
    pub next_sender_seq: u64,
    pub next_target_seq: u64,
    /// Bytes written for the client and not yet taken by its socket.
    pub queued_bytes: u64,
    /// The kill switch of its key.
    pub killed: bool,
    /// A read-only drop-copy session.
    pub drop_copy: bool,
}

/// A venue as the desk sees it.
#[derive(Clone, Copy, Debug)]
pub struct VenueView {
    pub index: u16,
    pub name: VenueName,
    pub up: bool,
    /// Reached over a FIX link (else the in-process simulator).
    pub external: bool,
    pub open_orders: u32,
}

/// The gateway thread's answer.
#[derive(Clone, Copy, Debug)]
pub enum ControlReply {
    /// `was_on`: the switch was already in that state.
    Kill {
        target: KillTarget,
        on: bool,
        was_on: bool,
        orders_canceled: u32,
    },
    Enabled {
        account: Account,
        was_disabled: bool,
    },
    Limits(LimitChange),
    Show {
        view: AccountView,
        global_kill: bool,
        position: Option<Position>,
        now: Nanos,
    },
    Session(SessionView),
    Venue(VenueView),
    /// The request named something that does not exist, or asked for something invalid.
    Refused(&'static str),
}

/// A request with its audit number and the channel the answer goes to.
#[derive(Debug)]
pub struct ControlCall {
    /// Number of the control audit record (events.log lines carry it too).
    pub seq: u64,
    pub request: ControlRequest,
    pub reply: crossbeam_channel::Sender<ControlReply>,
}
