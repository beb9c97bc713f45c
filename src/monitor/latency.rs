//! BOUNDARY — in-gateway latency histograms (issue 14): recorded by the gateway thread into
//! hdrhistogram with no allocation and no lock, handed whole to cold readers (the ops port).
//!
//! Two series, in nanoseconds of the gateway's clock:
//! - **wire** (`portcullis_order_latency_seconds`): an order's wire-in — the duty cycle's clock
//!   reading taken just before the read that brought the order in (the desk stamps it as the
//!   order's `received_at`) — to its wire-out — the clock read right after the flush that wrote
//!   the order's first answer (its first ExecutionReport: New from the simulator, PendingNew
//!   for an external venue, or Rejected) to the client's socket. An order refused before the
//!   order table counts too (its Rejected is its first answer).
//! - **venue** (`portcullis_venue_round_trip_seconds`): a request to an external FIX venue
//!   (new, cancel, replace; not status) written onto the venue link → the duty cycle that read
//!   the venue's first answer about it. Matched by the venue ClOrdID (`<slot>.<OrderID>.<n>`),
//!   in a fixed table of [`VENUE_SLOTS`] entries: a request whose entry was overwritten before
//!   its answer (more than that many in flight) is not timed.
//!
//! # Handoff (hot → cold)
//! The gateway thread owns one [`Interval`] (both histograms and their sums) and records into
//! it. Every [`SWAP_EVERY`] of gateway time (checked on the 1 ms timer pass) it takes an empty
//! interval from the exchange's `empty` queue and pushes the one it filled onto `full`: two
//! bounded lock-free queues (crossbeam `ArrayQueue`) holding [`INTERVALS`] intervals allocated
//! when the engine is assembled; the swap moves a struct, it does not allocate. When no empty
//! interval is there (no cold reader drained them) it keeps recording into the one it has:
//! nothing is lost, a reader sees it later. Cold readers ([`Exchange::snapshot`]) drain `full`,
//! add each interval into a lifetime aggregate and a sliding window behind a `Mutex` that only
//! cold threads take, reset it and give it back on `empty`.
//!
//! # Quantiles
//! Quantiles and the maximum are over a sliding window of the last [`WINDOW_MS`]–2×[`WINDOW_MS`]
//! (two generations), like a Prometheus client's summary; `_count` and `_sum` are since start.
//! Values are clamped to [`HIGHEST_NS`] (an answer slower than that counts as that).
//!
//! Must never: allocate, lock or read the clock on the gateway thread's recording path (the
//! caller passes `now`), or block the gateway thread on a reader.

use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;

use super::{Counter, Counters};
use crate::model::Nanos;

/// Highest value tracked: 10 s (slower samples are recorded as 10 s).
pub const HIGHEST_NS: u64 = 10_000_000_000;
/// Significant figures kept: 3 (each value within 0.1 %).
pub const SIGNIFICANT_FIGURES: u8 = 3;
/// Intervals in circulation between the gateway thread and the readers (one recording, the
/// others full or empty): a reader that drains every second keeps up with a swap every 100 ms
/// with one in hand.
pub const INTERVALS: usize = 4;
/// How often the gateway thread hands its interval over (gateway time).
pub const SWAP_EVERY: Nanos = Nanos::from_millis(100);
/// The window quantiles are computed over: one generation (two are kept).
pub const WINDOW_MS: u64 = 30_000;
/// First answers encoded in one duty cycle and timed at its flush, at most (more are counted
/// in `latency_samples_lost`).
pub const PENDING: usize = 4096;
/// Venue requests remembered for the round trip (a power of two).
pub const VENUE_SLOTS: usize = 4096;
/// The quantiles exported.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The two series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// Order in → its first answer out.
    Wire,
    /// External venue request out → the venue's first answer in.
    Venue,
}

impl Series {
    pub const ALL: [Series; 2] = [Series::Wire, Series::Venue];

    /// Prometheus family name (seconds).
    pub fn metric(self) -> &'static str {
        match self {
            Series::Wire => "portcullis_order_latency_seconds",
            Series::Venue => "portcullis_venue_round_trip_seconds",
        }
    }

    /// JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Series::Wire => "order",
            Series::Venue => "venue_round_trip",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Series::Wire => {
                "Order in (the read) to its first answer out (the write), measured in the gateway"
            }
            Series::Venue => {
                "External venue request written to the venue's first answer read, measured in \
                 the gateway"
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Fixed bounds, no auto-resize: recording never allocates. The bounds are constants that
    // hdrhistogram accepts (1 ≤ low, high ≥ 2 × low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGNIFICANT_FIGURES)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// One series' samples over some time: the histogram and the exact sum.
pub struct Samples {
    pub histogram: Histogram<u64>,
    pub sum_ns: u64,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            histogram: histogram(),
            sum_ns: 0,
        }
    }
    #[inline]
    fn record(&mut self, ns: u64) {
        self.histogram.saturating_record(ns.max(1));
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }
    fn absorb(&mut self, other: &Samples) {
        // Same bounds on both sides: `add` cannot fail or resize.
        let _ = self.histogram.add(&other.histogram);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }
    fn reset(&mut self) {
        self.histogram.reset();
        self.sum_ns = 0;
    }
    fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }
}

/// What the gateway thread records into between two handoffs.
pub struct Interval {
    wire: Samples,
    venue: Samples,
}

impl Interval {
    fn new() -> Interval {
        Interval {
            wire: Samples::new(),
            venue: Samples::new(),
        }
    }
    fn series(&self, s: Series) -> &Samples {
        match s {
            Series::Wire => &self.wire,
            Series::Venue => &self.venue,
        }
    }
    fn is_empty(&self) -> bool {
        self.wire.is_empty() && self.venue.is_empty()
    }
    fn reset(&mut self) {
        self.wire.reset();
        self.venue.reset();
    }
}

/// The cold side's aggregates.
struct Aggregate {
    lifetime: Interval,
    /// The window: the generation filling now and the one before it.
    current: Interval,
    previous: Interval,
    /// When `current` started (ms, system clock).
    current_since_ms: u64,
}

/// The queues between the gateway thread and the readers, and the readers' aggregates. Lives
/// in [`Counters`] (`counters.latency`), so every cold thread that can read counters can read
/// latencies. Allocates nothing until an engine attaches a [`Recorder`].
pub struct Exchange {
    full: ArrayQueue<Interval>,
    empty: ArrayQueue<Interval>,
    cold: Mutex<Option<Aggregate>>,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            full: ArrayQueue::new(INTERVALS),
            empty: ArrayQueue::new(INTERVALS),
            cold: Mutex::new(None),
        }
    }
}

/// One series as a reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Samples since start and their sum (ns).
    pub count: u64,
    pub sum_ns: u64,
    /// Samples in the window.
    pub window_count: u64,
    /// Quantiles over the window ([`QUANTILES`] order), ns; `None` when the window is empty.
    pub quantiles_ns: [Option<u64>; 4],
    /// Largest sample in the window, ns.
    pub max_ns: Option<u64>,
}

impl Exchange {
    /// Drains what the gateway thread handed over and summarises both series. Cold: allocates
    /// and takes a lock (only readers take it). `now_ms` is the system clock, for the window.
    pub fn snapshot(&self, now_ms: u64) -> [Summary; 2] {
        let mut guard = self
            .cold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let agg = guard.get_or_insert_with(|| Aggregate {
            lifetime: Interval::new(),
            current: Interval::new(),
            previous: Interval::new(),
            current_since_ms: now_ms,
        });
        if now_ms.saturating_sub(agg.current_since_ms) >= WINDOW_MS {
            std::mem::swap(&mut agg.current, &mut agg.previous);
            agg.current.reset();
            if now_ms.saturating_sub(agg.current_since_ms) >= 2 * WINDOW_MS {
                agg.previous.reset(); // nothing read for a whole window: it is all stale
            }
            agg.current_since_ms = now_ms;
        }
        while let Some(mut iv) = self.full.pop() {
            for s in Series::ALL {
                let part = iv.series(s);
                series_mut(&mut agg.lifetime, s).absorb(part);
                series_mut(&mut agg.current, s).absorb(part);
            }
            iv.reset();
            // Room is certain (as many slots as intervals); if not, the interval is dropped.
            let _ = self.empty.push(iv);
        }
        Series::ALL.map(|s| {
            let mut window = Samples::new();
            window.absorb(agg.current.series(s));
            window.absorb(agg.previous.series(s));
            let life = agg.lifetime.series(s);
            let h = &window.histogram;
            let some = !h.is_empty();
            Summary {
                count: life.histogram.len(),
                sum_ns: life.sum_ns,
                window_count: h.len(),
                quantiles_ns: QUANTILES.map(|q| some.then(|| h.value_at_quantile(q))),
                max_ns: some.then(|| h.max()),
            }
        })
    }
}

fn series_mut(iv: &mut Interval, s: Series) -> &mut Samples {
    match s {
        Series::Wire => &mut iv.wire,
        Series::Venue => &mut iv.venue,
    }
}

/// A venue request waiting for its answer.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    order_id: u64,
    key: u32,
    n: u32,
    at: Nanos,
}

/// The gateway thread's side. Created (allocating everything it will use) when the engine is
/// assembled; every method after that is allocation-free.
///
/// # Calling contract
/// - [`answered`](Self::answered) when a client order's first answer is encoded into a
///   connected session's buffer; [`flushed`](Self::flushed) after the duty cycle's flush, with
///   the clock read then (only when [`has_pending`](Self::has_pending)).
/// - [`venue_sent`](Self::venue_sent) when a request is encoded onto a venue link;
///   [`venue_answered`](Self::venue_answered) when an answer about it is read.
/// - [`tick`](Self::tick) on the timer pass.
pub struct Recorder {
    now: Interval,
    counters: Arc<Counters>,
    last_swap: Nanos,
    /// `received_at` of the first answers encoded this duty cycle.
    pending: Box<[Nanos; PENDING]>,
    pending_len: usize,
    venue: Box<[Sent]>,
}

impl Recorder {
    /// Allocates the intervals and gives the spare ones to `counters.latency`. Cold.
    pub fn new(counters: Arc<Counters>) -> Recorder {
        for _ in 1..INTERVALS {
            let _ = counters.latency.empty.push(Interval::new());
        }
        Recorder {
            now: Interval::new(),
            counters,
            last_swap: Nanos::ZERO,
            pending: Box::new([Nanos::ZERO; PENDING]),
            pending_len: 0,
            venue: vec![Sent::default(); VENUE_SLOTS].into_boxed_slice(),
        }
    }

    /// A client order's first answer (received at `received_at`) went into a connection's
    /// buffer; it is timed at the end of the duty cycle's flush.
    #[inline]
    pub fn answered(&mut self, received_at: Nanos) {
        match self.pending.get_mut(self.pending_len) {
            Some(slot) if received_at != Nanos::ZERO => {
                *slot = received_at;
                self.pending_len += 1;
            }
            Some(_) => {}
            None => self.lost(),
        }
    }

    /// Whether answers wait for [`flushed`](Self::flushed).
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending_len != 0
    }

    /// The duty cycle's flush is done at `now`: every answer encoded since is timed.
    #[inline]
    pub fn flushed(&mut self, now: Nanos) {
        let n = self.pending_len;
        self.pending_len = 0;
        for t in self.pending.iter().take(n) {
            self.now.wire.record(now.saturating_sub(*t).0);
        }
    }

    #[cold]
    fn lost(&self) {
        self.counters.inc(Counter::LatencySamplesLost);
    }

    #[inline]
    fn venue_slot(key: u32, n: u32) -> usize {
        // Slots are recycled densely from 0: the key spreads well on its own; `n` shifts a
        // cancel or replace of the same order to another entry.
        (key as usize ^ (n as usize).wrapping_mul(0x9E37)) & (VENUE_SLOTS - 1)
    }

    /// Request `n` (0: the order itself) about order `order_id` in slot `key` was written to
    /// its venue at `now`.
    #[inline]
    pub fn venue_sent(&mut self, key: u32, order_id: u64, n: u32, now: Nanos) {
        if let Some(s) = self.venue.get_mut(Self::venue_slot(key, n)) {
            *s = Sent {
                order_id,
                key,
                n,
                at: now,
            };
        }
    }

    /// A venue answer carrying request `n` of order `order_id` in slot `key` was read at
    /// `now`: the first one for a remembered request is timed.
    #[inline]
    pub fn venue_answered(&mut self, key: u32, order_id: u64, n: u32, now: Nanos) {
        let Some(s) = self.venue.get_mut(Self::venue_slot(key, n)) else {
            return;
        };
        if s.at != Nanos::ZERO && s.key == key && s.n == n && s.order_id == order_id {
            let at = s.at;
            s.at = Nanos::ZERO;
            self.now.venue.record(now.saturating_sub(at).0);
        }
    }

    /// The timer pass: every [`SWAP_EVERY`], hands the recorded interval over when a reader
    /// has given an empty one back.
    #[inline]
    pub fn tick(&mut self, now: Nanos) {
        if now.saturating_sub(self.last_swap) < SWAP_EVERY || self.now.is_empty() {
            return;
        }
        self.last_swap = now;
        if let Some(fresh) = self.counters.latency.empty.pop() {
            let full = std::mem::replace(&mut self.now, fresh);
            if let Err(mut back) = self.counters.latency.full.push(full) {
                // Cannot happen (as many slots as intervals); keep the samples anyway.
                std::mem::swap(&mut self.now, &mut back);
                let _ = self.counters.latency.empty.push(back);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_reach_the_reader_after_a_swap_and_the_window_drops_old_ones() {
        let counters = Arc::new(Counters::default());
        let mut r = Recorder::new(counters.clone());
        for us in 1..=100u64 {
            r.answered(Nanos(1_000));
            r.flushed(Nanos(1_000 + us * 1_000));
        }
        r.venue_sent(7, 42, 0, Nanos(5_000));
        r.venue_answered(7, 41, 0, Nanos(6_000)); // another order in the slot: not timed
        r.venue_answered(7, 42, 0, Nanos(9_000));
        r.venue_answered(7, 42, 0, Nanos(19_000)); // a second answer: not timed
                                                   // Nothing handed over yet.
        let [w, v] = counters.latency.snapshot(1_000);
        assert_eq!((w.count, v.count), (0, 0));
        assert_eq!(w.max_ns, None);
        r.tick(Nanos::from_millis(200));
        let [w, v] = counters.latency.snapshot(2_000);
        assert_eq!(w.count, 100);
        assert_eq!(w.sum_ns, (1..=100u64).map(|u| u * 1_000).sum::<u64>());
        let p50 = w.quantiles_ns[0].unwrap();
        assert!((49_900..=50_100).contains(&p50), "p50 {p50}");
        assert!(w.max_ns.unwrap() >= 100_000 && w.max_ns.unwrap() < 100_100);
        assert_eq!((v.count, v.sum_ns), (1, 4_000));
        // Two windows later the quantiles are gone, the totals stay.
        let [w, _] = counters.latency.snapshot(2_000 + 2 * WINDOW_MS);
        assert_eq!((w.count, w.window_count, w.max_ns), (100, 0, None));
    }

    #[test]
    fn the_gateway_side_keeps_recording_when_no_reader_drains() {
        let counters = Arc::new(Counters::default());
        let mut r = Recorder::new(counters.clone());
        for i in 1..=(INTERVALS as u64 * 3) {
            r.answered(Nanos(1));
            r.flushed(Nanos(11));
            r.tick(Nanos::from_millis(i * 200));
        }
        let [w, _] = counters.latency.snapshot(0);
        // INTERVALS - 1 handed over; the rest is still being recorded, not lost.
        assert_eq!(w.count, INTERVALS as u64 - 1);
        r.tick(Nanos::from_millis(10_000));
        let [w, _] = counters.latency.snapshot(0);
        assert_eq!(w.count, INTERVALS as u64 * 3);
    }

    #[test]
    fn answers_beyond_the_pending_table_are_counted_as_lost() {
        let counters = Arc::new(Counters::default());
        let mut r = Recorder::new(counters.clone());
        for _ in 0..PENDING + 3 {
            r.answered(Nanos(1));
        }
        assert_eq!(counters.get(Counter::LatencySamplesLost), 3);
        r.flushed(Nanos(2));
        assert!(!r.has_pending());
    }
}
