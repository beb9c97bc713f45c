//! COLD (a measuring tool) — the parts of `loadgen` that do not touch a socket: the open-loop
//! schedule, the per-order bookkeeping with the coordinated-omission correction, and the
//! reports (table, `.hgrm`, JSON).
//!
//! Orders are numbered 0, 1, 2, …; everything about order `i` lives at index `i` of vectors
//! allocated (and touched) before the run, so the measuring path does no hashing and no
//! allocation.

use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

pub mod plot;
pub mod rounds;
pub mod sbe;
pub mod stalls;
pub mod wire;

use stalls::{Stalls, UNTIMED};

pub const NS_PER_S: u64 = 1_000_000_000;

/// Intended send time of order `i` at `rate` orders/s, in ns after the start: `i·1e9/rate`,
/// integer arithmetic (no drift from adding a rounded period).
pub fn intended_ns(i: u64, rate: u64) -> u64 {
    let ns = u128::from(i) * u128::from(NS_PER_S) / u128::from(rate.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Orders an open-loop run of `seconds` at `rate` sends: `rate·seconds`, rounded down.
pub fn orders_for(rate: u64, seconds_ns: u64) -> u64 {
    let n = u128::from(rate) * u128::from(seconds_ns) / u128::from(NS_PER_S);
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// SenderCompID of session `s` (0-based) of `n`: `base` itself for one session, else `base`
/// followed by `s + 1` in at least four digits (`LOAD0001`, `LOAD0002`, …) — the names
/// `loadgen gen-config` gives the gateway.
pub fn sender_comp_id(base: &str, s: usize, n: usize) -> String {
    if n <= 1 {
        return base.to_string();
    }
    let width = n.to_string().len().max(4);
    format!("{base}{:0width$}", s + 1)
}

/// What an entry of the load asks the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// NewOrderSingle (D).
    New,
    /// OrderCancelRequest (F) of an order this session has open.
    Cancel,
    /// OrderCancelReplaceRequest (G) of an order this session has open.
    Replace,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::New, Op::Cancel, Op::Replace];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::New => "new",
            Op::Cancel => "cancel",
            Op::Replace => "replace",
        }
    }
}

/// The share of new / cancel / replace in the load, as weights (`new=90,cancel=5,replace=5`).
/// Entry `i` gets its kind from a hash of `i`: the same run gets the same sequence, every
/// session sees every kind, and each kind's share converges on its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    pub new: u32,
    pub cancel: u32,
    pub replace: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            new: 100,
            cancel: 0,
            replace: 0,
        }
    }
}

impl Mix {
    /// `new=90,cancel=5,replace=5`; a kind not named has weight 0; some weight must be > 0 and
    /// `new` must be, as cancels and replaces need open orders.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut m = Mix {
            new: 0,
            cancel: 0,
            replace: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not kind=weight (e.g. new=90)"))?;
            let w: u32 = v
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| format!("`{v}` in `{part}` is not a weight in 0..=1000000"))?;
            match k.trim() {
                "new" => m.new = w,
                "cancel" => m.cancel = w,
                "replace" => m.replace = w,
                other => return Err(format!("`{other}` is not one of new, cancel, replace")),
            }
        }
        if m.new == 0 {
            return Err("the mix needs new > 0 (cancels and replaces need open orders)".into());
        }
        Ok(m)
    }

    fn total(&self) -> u64 {
        u64::from(self.new) + u64::from(self.cancel) + u64::from(self.replace)
    }

    /// The kind of entry `i`.
    pub fn op(&self, i: u64) -> Op {
        let h = splitmix64(i) % self.total().max(1);
        if h < u64::from(self.new) {
            Op::New
        } else if h < u64::from(self.new) + u64::from(self.cancel) {
            Op::Cancel
        } else {
            Op::Replace
        }
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "new={},cancel={},replace={}",
            self.new, self.cancel, self.replace
        )
    }
}

/// A well-mixing 64-bit hash (splitmix64's finaliser).
fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Order state.
const UNSENT: u8 = 0;
const IN_FLIGHT: u8 = 1;
const ACKED: u8 = 2;
const REJECTED: u8 = 3;

/// What an answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first answer to this order: counted (and timed if it was an ack).
    First,
    /// A later answer (a fill after the New): ignored.
    Repeat,
    /// An index we never sent: ignored.
    Unknown,
}

/// Per-order intended send times and states, the latency histogram and the counts.
pub struct Recorder {
    intended: Vec<u64>,
    state: Vec<u8>,
    op: Vec<Op>,
    /// Latency of each timed order (acked, intended at or after the warm-up), ns; [`UNTIMED`]
    /// for the others. The stall episodes and the timeline are computed from it after the run.
    latency: Vec<u64>,
    /// Per kind (index `Op as usize`): sent, acked, rejected.
    by_op: [OpCounts; 3],
    /// Latencies of acknowledged orders intended at or after the warm-up, in ns.
    pub hist: Histogram<u64>,
    warmup_ns: u64,
    /// The run's zero on the clock `answer` is given (intended times are relative to it).
    pub origin_ns: u64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    /// Sent at or after the warm-up.
    pub measured_sent: u64,
    /// First answer of a measured order (ack or reject), latest, ns after the start.
    pub last_measured_answer_ns: u64,
    /// An order is stalled when its latency exceeds this (ns): see [`Recorder::stalls`].
    pub stall_ns: u64,
}

/// The default stall threshold (`--stall-us`), ns.
pub const DEFAULT_STALL_NS: u64 = 200_000;

impl Recorder {
    /// Room for `capacity` orders; the vectors are written once so their pages are faulted in
    /// before the run, not during it.
    pub fn new(capacity: usize, warmup_ns: u64) -> Result<Recorder, String> {
        let hist = Histogram::new_with_bounds(1, 3_600 * NS_PER_S, 3)
            .map_err(|e| format!("histogram: {e}"))?;
        let mut intended = Vec::new();
        intended
            .try_reserve_exact(capacity)
            .map_err(|e| format!("cannot allocate {capacity} orders: {e}"))?;
        intended.resize(capacity, u64::MAX);
        let mut state = Vec::new();
        state
            .try_reserve_exact(capacity)
            .map_err(|e| format!("cannot allocate {capacity} orders: {e}"))?;
        // `resize` writes every element (unlike `vec![0; n]`, which may map zero pages lazily).
        state.resize(capacity, UNSENT);
        let mut op = Vec::new();
        op.try_reserve_exact(capacity)
            .map_err(|e| format!("cannot allocate {capacity} orders: {e}"))?;
        op.resize(capacity, Op::New);
        let mut latency = Vec::new();
        latency
            .try_reserve_exact(capacity)
            .map_err(|e| format!("cannot allocate {capacity} orders: {e}"))?;
        latency.resize(capacity, UNTIMED);
        Ok(Recorder {
            intended,
            state,
            op,
            latency,
            by_op: [OpCounts::default(); 3],
            hist,
            warmup_ns,
            origin_ns: 0,
            sent: 0,
            acked: 0,
            rejected: 0,
            measured_sent: 0,
            last_measured_answer_ns: 0,
            stall_ns: DEFAULT_STALL_NS,
        })
    }

    pub fn capacity(&self) -> usize {
        self.intended.len()
    }

    /// Orders sent and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.acked - self.rejected
    }

    /// Order `i` goes out; `intended_ns` is when it was meant to (open loop) or now (closed
    /// loop). Returns false (and records nothing) past the capacity or for an index sent twice.
    pub fn sent(&mut self, i: usize, intended_ns: u64) -> bool {
        self.sent_op(i, intended_ns, Op::New)
    }

    /// [`Recorder::sent`] for an entry of kind `op`.
    pub fn sent_op(&mut self, i: usize, intended_ns: u64, op: Op) -> bool {
        match (
            self.intended.get_mut(i),
            self.state.get_mut(i),
            self.op.get_mut(i),
        ) {
            (Some(t), Some(s), Some(o)) if *s == UNSENT => {
                *t = intended_ns;
                *s = IN_FLIGHT;
                *o = op;
                self.by_op[op.index()].sent += 1;
                self.sent += 1;
                if intended_ns >= self.warmup_ns {
                    self.measured_sent += 1;
                }
                true
            }
            _ => false,
        }
    }

    /// The kind of entry `i`, once sent.
    pub fn op(&self, i: usize) -> Option<Op> {
        match self.state.get(i) {
            Some(&s) if s != UNSENT => self.op.get(i).copied(),
            _ => None,
        }
    }

    /// An answer to order `i` arrived at `now_ns` (on the clock `origin_ns` is read from). The first answer counts: an ack records
    /// `now − intended` — so an ack held up by a stall counts the stall against every order that
    /// was due during it, not just the one sent before it — and a reject is counted, not timed.
    pub fn answer(&mut self, i: usize, now_ns: u64, ok: bool) -> Answer {
        let now_ns = now_ns.saturating_sub(self.origin_ns);
        let (Some(&t), Some(s)) = (self.intended.get(i), self.state.get_mut(i)) else {
            return Answer::Unknown;
        };
        match *s {
            UNSENT => return Answer::Unknown,
            IN_FLIGHT => {}
            _ => return Answer::Repeat,
        }
        let measured = t >= self.warmup_ns;
        let op = self.op.get(i).copied().unwrap_or(Op::New).index();
        if ok {
            *s = ACKED;
            self.acked += 1;
            self.by_op[op].acked += 1;
            if measured {
                let lat = now_ns.saturating_sub(t).max(1);
                self.hist.saturating_record(lat);
                if let Some(slot) = self.latency.get_mut(i) {
                    *slot = lat;
                }
            }
        } else {
            *s = REJECTED;
            self.rejected += 1;
            self.by_op[op].rejected += 1;
        }
        if measured {
            self.last_measured_answer_ns = self.last_measured_answer_ns.max(now_ns);
        }
        Answer::First
    }

    /// The summary of a finished run.
    pub fn summary(&self, run: RunInfo) -> Summary {
        let h = &self.hist;
        let us = |ns: u64| ns as f64 / 1_000.0;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(p))
            }
        };
        let span_ns = self.last_measured_answer_ns.saturating_sub(self.warmup_ns);
        let answered = h.len() + self.measured_rejected();
        let achieved_rate = if span_ns == 0 {
            0.0
        } else {
            answered as f64 * NS_PER_S as f64 / span_ns as f64
        };
        Summary {
            mode: run.mode,
            sessions: run.sessions,
            mix: run.mix.to_string(),
            by_op: Op::ALL
                .iter()
                .map(|o| (o.name().to_string(), self.by_op[o.index()]))
                .filter(|(_, c)| c.sent > 0)
                .collect(),
            closed_loop: run.closed_loop,
            target_rate: run.target_rate,
            window: run.window,
            duration_s: run.duration_s,
            warmup_s: run.warmup_s,
            nproc: run.nproc,
            sent: self.sent,
            acked: self.acked,
            rejected: self.rejected,
            unanswered: self.in_flight(),
            measured: h.len(),
            achieved_rate,
            latency_us: Percentiles {
                min: if h.is_empty() { 0.0 } else { us(h.min()) },
                mean: us(h.mean() as u64),
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                p99_99: q(0.9999),
                max: if h.is_empty() { 0.0 } else { us(h.max()) },
            },
            stalls: self.stalls(),
            ended: run.ended,
        }
    }

    /// Stall episodes of the timed orders over [`Recorder::stall_ns`] ([`stalls::find`]).
    pub fn stalls(&self) -> Stalls {
        stalls::find(&self.intended, &self.latency, self.stall_ns)
    }

    /// The timed orders in buckets of `width_ms` by intended send time ([`stalls::timeline`]).
    pub fn timeline(&self, width_ms: u64) -> Vec<stalls::Bucket> {
        stalls::timeline(&self.intended, &self.latency, width_ms)
    }

    fn measured_rejected(&self) -> u64 {
        self.intended
            .iter()
            .zip(&self.state)
            .filter(|(t, s)| **s == REJECTED && **t >= self.warmup_ns)
            .count() as u64
    }
}

/// Counts of one kind of entry.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct OpCounts {
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
}

/// What the recorder does not know about the run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub mode: String,
    /// Connections the load was spread over.
    pub sessions: usize,
    pub mix: Mix,
    pub closed_loop: bool,
    /// Open loop: the offered rate.
    pub target_rate: Option<u64>,
    /// Closed loop: orders kept in flight.
    pub window: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// CPUs of the machine (read before the thread is pinned: pinning narrows what
    /// `available_parallelism` sees to one).
    pub nproc: usize,
    /// Why the run ended early, if it did.
    pub ended: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

/// The JSON summary (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub mode: String,
    pub sessions: usize,
    /// Weights of new / cancel / replace.
    pub mix: String,
    /// Sent / acked / rejected per kind that was sent (a cancel or replace due when its
    /// session had no open order is sent as a new order and counted as one).
    pub by_op: std::collections::BTreeMap<String, OpCounts>,
    pub closed_loop: bool,
    pub target_rate: Option<u64>,
    pub window: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub nproc: usize,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub unanswered: u64,
    /// Acks timed (after the warm-up).
    pub measured: u64,
    /// Answers per second of measured orders, from the end of the warm-up to the last answer.
    pub achieved_rate: f64,
    pub latency_us: Percentiles,
    /// Episodes of consecutive timed orders over the stall threshold (`--stall-us`).
    pub stalls: Stalls,
    pub ended: Option<String>,
}

impl Summary {
    /// The human table.
    pub fn table(&self) -> String {
        let p = &self.latency_us;
        let load = match (self.closed_loop, self.target_rate, self.window) {
            (true, _, Some(w)) => format!("closed loop, window {w}"),
            (true, _, None) => "closed loop".to_string(),
            (false, Some(r), _) => format!("open loop, {r}/s offered"),
            (false, None, _) => "open loop".to_string(),
        };
        let mut s = format!(
            "loadgen {}: {load}, {} session(s), {} s measured after {} s warm-up, nproc {}\n",
            self.mode, self.sessions, self.duration_s, self.warmup_s, self.nproc
        );
        if self.by_op.len() > 1 || self.by_op.keys().any(|k| k != "new") {
            let parts: Vec<String> = self
                .by_op
                .iter()
                .map(|(k, c)| format!("{k} {}/{}/{}", c.sent, c.acked, c.rejected))
                .collect();
            s.push_str(&format!(
                "mix {} — sent/acked/rejected: {}\n",
                self.mix,
                parts.join(", ")
            ));
        }
        s.push_str(&format!(
            "sent {}  acked {}  rejected {}  unanswered {}  measured {}  achieved {:.1}/s\n",
            self.sent,
            self.acked,
            self.rejected,
            self.unanswered,
            self.measured,
            self.achieved_rate
        ));
        s.push_str(&format!(
            "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}   (µs, from the intended send time)\n",
            "p50", "p90", "p99", "p99.9", "p99.99", "max"
        ));
        s.push_str(&format!(
            "{:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}\n",
            p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max
        ));
        let st = &self.stalls;
        s.push_str(&format!(
            "stall episodes (consecutive orders over {} µs): {}, {:.1} ms in all\n",
            st.threshold_us, st.episodes, st.total_ms
        ));
        for e in &st.longest {
            s.push_str(&format!(
                "  at {:>9.1} ms: {:>8.2} ms long, worst {:>9.1} µs, {} orders\n",
                e.start_ms, e.duration_ms, e.worst_us, e.orders
            ));
        }
        if let Some(e) = &self.ended {
            s.push_str(&format!("run ended early: {e}\n"));
        }
        s
    }
}

/// Writes the classic HdrHistogram percentile distribution (`.hgrm`), values in µs from a
/// histogram in ns: `Value Percentile TotalCount 1/(1-Percentile)`, the last line at 1.0.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    let us = |ns: u64| ns as f64 / 1_000.0;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    let mut last_q = 0.0;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            last_q = q;
            if q < 1.0 {
                writeln!(
                    out,
                    "{:12.3} {:14.12} {:10} {:14.2}",
                    us(v.value_iterated_to()),
                    q,
                    total,
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(
                    out,
                    "{:12.3} {:14.12} {:10}",
                    us(v.value_iterated_to()),
                    q,
                    total
                )?;
            }
        }
    }
    if last_q < 1.0 {
        writeln!(out, "{:12.3} {:14.12} {:10}", us(h.max()), 1.0, h.len())?;
    }
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1_000.0,
        h.stdev() / 1_000.0
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        us(h.max()),
        h.len()
    )?;
    Ok(())
}
