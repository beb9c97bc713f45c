//! COLD (a measuring tool) — stall episodes and the per-10-ms timeline of a finished run, from
//! each measured order's latency (kept by [`super::Recorder`] in a vector allocated before the
//! run). A one-off 20 ms hypervisor stall shows as one episode of ≈ 20 ms and a few hot
//! buckets; a periodic cost (a flush every second, a timer) shows as many episodes at a regular
//! spacing. Computed after the run: it may allocate.

use std::io::{self, Write};

use serde::Serialize;

/// The latency slot of an order that was not timed (unsent, rejected, unanswered, warm-up).
pub const UNTIMED: u64 = u64::MAX;

/// Episodes reported by length (the longest first).
pub const LONGEST: usize = 5;

/// One stall episode: consecutive timed orders (in intended-send order) whose latency exceeded
/// the threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    /// Intended send time of its first order, ms after the run's start (warm-up included).
    pub start_ms: f64,
    /// From that time to the latest answer of its orders, ms.
    pub duration_ms: f64,
    /// Its worst latency, µs.
    pub worst_us: f64,
    /// Orders in it.
    pub orders: u64,
}

/// The stall episodes of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stalls {
    /// The threshold (`--stall-us`): an order is stalled when its latency exceeds it.
    pub threshold_us: f64,
    /// Episodes found.
    pub episodes: u64,
    /// Sum of their durations, ms.
    pub total_ms: f64,
    /// The [`LONGEST`] longest, longest first (by start time among equals).
    pub longest: Vec<Episode>,
}

const NS_PER_MS: f64 = 1e6;

/// The episodes in `latency_ns` (per order, [`UNTIMED`] for orders not timed) with the orders'
/// intended send times `intended_ns` (same index; non-decreasing over the timed orders, as the
/// schedule numbers them). Untimed orders neither extend nor end an episode. An episode lasts
/// from its first order's intended time to the latest `intended + latency` of its orders.
pub fn find(intended_ns: &[u64], latency_ns: &[u64], threshold_ns: u64) -> Stalls {
    let mut episodes = 0u64;
    let mut total_ns = 0u128;
    let mut longest: Vec<Episode> = Vec::with_capacity(LONGEST + 1);
    // The open episode: start, latest answer, worst latency, orders.
    let mut open: Option<(u64, u64, u64, u64)> = None;
    let mut close = |ep: (u64, u64, u64, u64)| {
        let (start, end, worst, orders) = ep;
        let dur = end.saturating_sub(start);
        episodes += 1;
        total_ns += u128::from(dur);
        let e = Episode {
            start_ms: start as f64 / NS_PER_MS,
            duration_ms: dur as f64 / NS_PER_MS,
            worst_us: worst as f64 / 1e3,
            orders,
        };
        // Stable: an episode goes after the earlier ones of the same length.
        let at = longest
            .iter()
            .position(|l| l.duration_ms < e.duration_ms)
            .unwrap_or(longest.len());
        if at < LONGEST {
            longest.insert(at, e);
            longest.truncate(LONGEST);
        }
    };
    for (&t, &lat) in intended_ns.iter().zip(latency_ns) {
        if lat == UNTIMED {
            continue;
        }
        if lat > threshold_ns {
            let answered = t.saturating_add(lat);
            open = Some(match open {
                None => (t, answered, lat, 1),
                Some((s, e, w, n)) => (s, e.max(answered), w.max(lat), n + 1),
            });
        } else if let Some(ep) = open.take() {
            close(ep);
        }
    }
    if let Some(ep) = open.take() {
        close(ep);
    }
    Stalls {
        threshold_us: threshold_ns as f64 / 1e3,
        episodes,
        total_ms: total_ns as f64 / NS_PER_MS,
        longest,
    }
}

/// One bucket of the timeline: the timed orders intended in `[start_ms, start_ms + width)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub start_ms: u64,
    pub orders: u64,
    /// Worst latency, µs (0 for an empty bucket).
    pub max_us: f64,
    /// Median latency (nearest rank: the ⌈n/2⌉-th smallest), µs (0 for an empty bucket).
    pub p50_us: f64,
}

/// The timed orders in buckets of `width_ms` by intended send time, from the bucket of the
/// first timed order to that of the last (empty buckets between them included).
pub fn timeline(intended_ns: &[u64], latency_ns: &[u64], width_ms: u64) -> Vec<Bucket> {
    let width_ns = width_ms.max(1).saturating_mul(1_000_000);
    let timed = || {
        intended_ns
            .iter()
            .zip(latency_ns)
            .filter(|(_, &l)| l != UNTIMED)
    };
    let (Some(first), Some(last)) = (
        timed().map(|(&t, _)| t / width_ns).min(),
        timed().map(|(&t, _)| t / width_ns).max(),
    ) else {
        return Vec::new();
    };
    let n = usize::try_from(last - first + 1).unwrap_or(0);
    let mut lats: Vec<Vec<u64>> = vec![Vec::new(); n];
    for (&t, &l) in timed() {
        if let Some(b) = usize::try_from(t / width_ns - first)
            .ok()
            .and_then(|i| lats.get_mut(i))
        {
            b.push(l);
        }
    }
    lats.into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            let start_ms = (first + i as u64) * width_ms.max(1);
            if v.is_empty() {
                return Bucket {
                    start_ms,
                    orders: 0,
                    max_us: 0.0,
                    p50_us: 0.0,
                };
            }
            let mid = (v.len() - 1) / 2;
            let (_, p50, _) = v.select_nth_unstable(mid);
            let p50 = *p50;
            Bucket {
                start_ms,
                orders: v.len() as u64,
                max_us: v.iter().copied().max().unwrap_or(0) as f64 / 1e3,
                p50_us: p50 as f64 / 1e3,
            }
        })
        .collect()
}

/// The timeline as CSV: `start_ms,orders,max_us,p50_us`.
pub fn write_timeline_csv(buckets: &[Bucket], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "start_ms,orders,max_us,p50_us")?;
    for b in buckets {
        writeln!(
            out,
            "{},{},{:.1},{:.1}",
            b.start_ms, b.orders, b.max_us, b.p50_us
        )?;
    }
    Ok(())
}
