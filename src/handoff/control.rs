//! BOUNDARY — risk control requests from cold threads (the control socket today, the ops port
//! later) to the gateway thread, and its answers. The gateway thread applies each request
//! between two messages, whole (a limit change is one snapshot, never half-applied), and
//! answers on the request's own reply channel.

use crate::model::{Account, Nanos, Symbol};
use crate::risk::{AccountView, LimitChange, LimitsSpec, Position};

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
