//! COLD — per-key activity baselines (MON-1): for each API key (each session without
//! `[auth]`), an exponentially weighted mean and variance of its order rate, notional, reject
//! rate and distinct symbols per bucket of `ids.anomaly.bucket_ms`, and an hour-of-day profile
//! of when it is active. Runs on the detector thread (`portcullis-ids`), fed the gateway's
//! order decisions (REG-1 records, through the journal thread). Pure: time is the records'
//! own `at`, so tests drive it with synthetic streams.
//!
//! # Alerting
//! A bucket's value is compared while the bucket fills (a burst alerts at once, not when its
//! bucket ends): after `learning_buckets` buckets of baseline, a value above
//! `mean + k_sigma × σ` *and* at or above the metric's absolute floor raises one alert per
//! bucket and metric. σ is at least `min_sigma_fraction × mean` (a perfectly steady baseline
//! has no variance, and would otherwise alert on its first small wobble). Activity in an hour
//! of the day (UTC) that held less than `min_hour_share` of the key's active buckets raises
//! `off-hours-activity`, once per bucket.
//!
//! # Baseline update
//! When a key's first record of a new bucket arrives, the finished bucket is folded into the
//! baseline (`mean += α·d; var = (1−α)·(var + α·d²)` with `d = x − mean`), and so are the empty
//! buckets between (as zeros: an idle key's baseline decays; at most `8/α` of them, after
//! which the baseline is ≈ 0 anyway). The reject rate is folded only for buckets with orders.
//!
//! # Memory
//! At most `max_keys` keys (`ids.anomaly.max_keys`): a new key beyond it evicts the key seen
//! least recently. Per key: a fixed-size state (a 64-entry symbol set per bucket, 24 hour
//! counters), nothing that grows with its activity.

use std::collections::HashMap;

use super::rules::{Alert, Context, Subject};
use crate::config::ids::AnomalyCfg;
use crate::handoff::KeyIdStr;
use crate::model::{Nanos, PRICE_DECIMALS, QTY_DECIMALS};
use crate::order::record::{Lifecycle, OrderRecord};

/// What the baselines need of one order decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderFact {
    pub at: Nanos,
    /// The API key (empty without `[auth]`: the session is the subject then).
    pub key: KeyIdStr,
    pub session: u32,
    /// A hash of the symbol (distinct symbols are counted by hash).
    pub symbol: u64,
    /// Price × quantity in the instruments' units (0 for market orders: no price).
    pub notional: f64,
    /// A new order (accepted by the gateway's checks) or one it refused.
    pub order: bool,
    /// Refused by the gateway or the venue.
    pub refused: bool,
}

impl OrderFact {
    /// The fact of a REG-1 record, for the events the baselines count: orders the gateway
    /// accepted (`new`) or refused (`rejected`), and venue refusals (`venue-rejected`).
    pub fn of(r: &OrderRecord) -> Option<OrderFact> {
        let (order, refused) = match r.event {
            Lifecycle::New => (true, false),
            Lifecycle::Rejected => (true, true),
            Lifecycle::VenueRejected => (false, true),
            _ => return None,
        };
        let o = &r.order;
        let price = o
            .price
            .map_or(0.0, |p| p.0 as f64 / 10f64.powi(PRICE_DECIMALS as i32));
        let qty = o.qty.0 as f64 / 10f64.powi(QTY_DECIMALS as i32);
        Some(OrderFact {
            at: r.at,
            key: r.key_id,
            session: o.session.0,
            symbol: fnv1a(o.symbol.as_bytes()),
            notional: (price * qty).abs(),
            order,
            refused,
        })
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The measured metrics, in the order of [`METRICS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Orders,
    Notional,
    RejectRate,
    Symbols,
}

/// Each metric's alert kind.
const METRICS: [(Metric, &str); 4] = [
    (Metric::Orders, "order-rate-spike"),
    (Metric::Notional, "notional-spike"),
    (Metric::RejectRate, "reject-rate-spike"),
    (Metric::Symbols, "symbol-spread-spike"),
];

/// The rule name alerts carry (`rule` in the ops port's JSON, the trail and events.log).
pub const RULE: &str = "anomaly";
/// Off-hours activity's alert kind.
pub const OFF_HOURS: &str = "off-hours-activity";
/// Distinct symbols counted per bucket at most (the floor's default is 20).
const SYMBOLS: usize = 64;

/// An exponentially weighted mean and variance.
#[derive(Clone, Copy, Debug, Default)]
struct Ewma {
    mean: f64,
    var: f64,
    /// Values folded in.
    n: u64,
}

impl Ewma {
    fn fold(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        }
        self.n += 1;
    }
}

/// One key's state.
struct Baseline {
    /// The bucket being filled (`at / bucket_ns`).
    bucket: u64,
    orders: f64,
    notional: f64,
    refused: f64,
    symbols: [u64; SYMBOLS],
    distinct: usize,
    /// Metrics (bit i: METRICS[i]; bit 4: off-hours) that alerted in this bucket.
    alerted: u8,
    stats: [Ewma; 4],
    /// Buckets folded into the baseline (idle ones included).
    buckets: u64,
    /// Active buckets per hour of the day (UTC), and in all.
    hours: [u32; 24],
    active: u32,
    last_seen: Nanos,
}

impl Baseline {
    fn new(bucket: u64) -> Baseline {
        Baseline {
            bucket,
            orders: 0.0,
            notional: 0.0,
            refused: 0.0,
            symbols: [0; SYMBOLS],
            distinct: 0,
            alerted: 0,
            stats: [Ewma::default(); 4],
            buckets: 0,
            hours: [0; 24],
            active: 0,
            last_seen: Nanos::ZERO,
        }
    }

    fn value(&self, m: Metric) -> f64 {
        match m {
            Metric::Orders => self.orders,
            Metric::Notional => self.notional,
            Metric::RejectRate if self.orders > 0.0 => self.refused / self.orders,
            Metric::RejectRate => 0.0,
            Metric::Symbols => self.distinct as f64,
        }
    }
}

/// The baselines of every key.
pub struct Baselines {
    cfg: AnomalyCfg,
    bucket_ns: u64,
    keys: HashMap<Subject, Baseline>,
}

impl Baselines {
    pub fn new(cfg: &AnomalyCfg) -> Baselines {
        Baselines {
            cfg: cfg.clone(),
            bucket_ns: cfg.bucket_ms.max(1).saturating_mul(1_000_000),
            keys: HashMap::new(),
        }
    }

    /// Keys tracked now (≤ `max_keys`).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Feeds one order decision; the alerts it raises.
    pub fn observe(&mut self, f: &OrderFact) -> Vec<Alert> {
        let mut out = Vec::new();
        if !self.cfg.enabled {
            return out;
        }
        let subject = if f.key.as_str().is_empty() {
            Subject::Session(f.session)
        } else {
            Subject::Key(f.key.as_str().to_string())
        };
        let bucket = f.at.0 / self.bucket_ns;
        if !self.keys.contains_key(&subject) && self.keys.len() >= self.cfg.max_keys.max(1) {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, b)| b.last_seen)
                .map(|(s, _)| s.clone());
            if let Some(s) = oldest {
                self.keys.remove(&s);
            }
        }
        let cfg = &self.cfg;
        let bucket_ns = self.bucket_ns;
        let b = self
            .keys
            .entry(subject.clone())
            .or_insert_with(|| Baseline::new(bucket));
        b.last_seen = b.last_seen.max(f.at);
        if bucket > b.bucket {
            roll(b, bucket, cfg, bucket_ns);
        }
        // A record of an earlier bucket (out of order) counts in the current one.
        if f.order {
            b.orders += 1.0;
            b.notional += f.notional;
        }
        if f.refused {
            b.refused += 1.0;
        }
        if f.order && b.distinct < SYMBOLS && !b.symbols[..b.distinct].contains(&f.symbol) {
            b.symbols[b.distinct] = f.symbol;
            b.distinct += 1;
        }
        if b.buckets < u64::from(cfg.learning_buckets) {
            return out;
        }
        let ctx = Context {
            key_id: (!f.key.as_str().is_empty()).then(|| f.key.as_str().to_string()),
            address: None,
            session: Some(f.session),
        };
        for (i, (m, kind)) in METRICS.iter().enumerate() {
            let bit = 1u8 << i;
            if b.alerted & bit != 0 {
                continue;
            }
            let floor = match m {
                Metric::Orders => cfg.floor_orders,
                Metric::Notional => cfg.floor_notional,
                Metric::RejectRate => {
                    if b.orders < (cfg.floor_orders / 10.0).max(1.0) {
                        continue;
                    }
                    cfg.floor_reject_rate
                }
                Metric::Symbols => cfg.floor_symbols,
            };
            let Some(s) = b.stats.get(i) else { continue };
            let sigma = s.var.max(0.0).sqrt().max(cfg.min_sigma_fraction * s.mean);
            let limit = s.mean + cfg.k_sigma * sigma;
            let x = b.value(*m);
            if x > limit && x >= floor {
                b.alerted |= bit;
                // The reject rate is reported in percent (count and threshold are integers).
                let scale = if *m == Metric::RejectRate { 100.0 } else { 1.0 };
                out.push(Alert {
                    at: f.at,
                    kind,
                    rule: RULE,
                    severity: cfg.severity,
                    subject: subject.clone(),
                    count: (x * scale).round() as u64,
                    threshold: (limit.max(floor) * scale).ceil().min(f64::from(u32::MAX)) as u32,
                    window_ms: cfg.bucket_ms,
                    context: ctx.clone(),
                    note: format!(
                        "{} {:.4} this bucket against a baseline mean {:.4} sigma {:.4} over {} \
                         buckets (floor {})",
                        name(*m),
                        x,
                        s.mean,
                        sigma,
                        s.n,
                        floor
                    ),
                });
            }
        }
        let hour = ((bucket.saturating_mul(bucket_ns) / 3_600_000_000_000) % 24) as usize;
        let off = 1u8 << 4;
        if cfg.min_hour_share > 0.0 && b.alerted & off == 0 && b.active > 0 {
            let share = f64::from(b.hours[hour]) / f64::from(b.active);
            if share < cfg.min_hour_share {
                b.alerted |= off;
                out.push(Alert {
                    at: f.at,
                    kind: OFF_HOURS,
                    rule: RULE,
                    severity: cfg.severity,
                    subject: subject.clone(),
                    count: u64::from(b.hours[hour]),
                    threshold: (cfg.min_hour_share * f64::from(b.active)).ceil() as u32,
                    window_ms: cfg.bucket_ms,
                    context: ctx,
                    note: format!(
                        "active at {hour:02}:00-{:02}:00 UTC, where {} of its {} active buckets \
                         were",
                        (hour + 1) % 24,
                        b.hours[hour],
                        b.active
                    ),
                });
            }
        }
        out
    }
}

fn name(m: Metric) -> &'static str {
    match m {
        Metric::Orders => "orders",
        Metric::Notional => "notional",
        Metric::RejectRate => "reject rate",
        Metric::Symbols => "distinct symbols",
    }
}

/// Folds the finished bucket (and the idle ones up to `to`) into the baseline.
fn roll(b: &mut Baseline, to: u64, cfg: &AnomalyCfg, bucket_ns: u64) {
    let alpha = cfg.alpha;
    for (i, (m, _)) in METRICS.iter().enumerate() {
        if *m == Metric::RejectRate && b.orders == 0.0 {
            continue;
        }
        let x = b.value(*m);
        if let Some(s) = b.stats.get_mut(i) {
            s.fold(x, alpha);
        }
    }
    if b.orders > 0.0 {
        let hour = ((b.bucket.saturating_mul(bucket_ns) / 3_600_000_000_000) % 24) as usize;
        if let Some(h) = b.hours.get_mut(hour) {
            *h = h.saturating_add(1);
        }
        b.active = b.active.saturating_add(1);
    }
    b.buckets += 1;
    let cap = (8.0 / alpha).ceil() as u64;
    let idle = (to - b.bucket - 1).min(cap);
    for _ in 0..idle {
        for (i, (m, _)) in METRICS.iter().enumerate() {
            if *m == Metric::RejectRate {
                continue;
            }
            if let Some(s) = b.stats.get_mut(i) {
                s.fold(0.0, alpha);
            }
        }
    }
    b.buckets += to - b.bucket - 1;
    b.bucket = to;
    b.orders = 0.0;
    b.notional = 0.0;
    b.refused = 0.0;
    b.distinct = 0;
    b.alerted = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: u64 = 1_000_000_000;

    fn cfg() -> AnomalyCfg {
        AnomalyCfg {
            bucket_ms: 1000,
            learning_buckets: 20,
            floor_orders: 50.0,
            floor_notional: 10_000.0,
            floor_symbols: 5.0,
            min_hour_share: 0.0,
            ..AnomalyCfg::default()
        }
    }

    fn fact(key: &str, at: u64, symbol: u64, refused: bool) -> OrderFact {
        OrderFact {
            at: Nanos(at),
            key: KeyIdStr::new(key.as_bytes()).unwrap(),
            session: 0,
            symbol,
            notional: 100.0,
            order: true,
            refused,
        }
    }

    /// `per_bucket` orders a bucket for `buckets` buckets from bucket `from`; the alerts.
    fn steady(
        b: &mut Baselines,
        key: &str,
        from: u64,
        buckets: u64,
        per_bucket: u64,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        for k in from..from + buckets {
            // A little wobble: 90 % to 110 % of the rate.
            let n = per_bucket * (9 + k % 3) / 10;
            for i in 0..n {
                out.extend(b.observe(&fact(key, k * BUCKET + i * (BUCKET / n.max(1)), 1, false)));
            }
        }
        out
    }

    #[test]
    fn a_burst_after_learning_alerts_once_naming_the_key_and_a_steady_key_never_does() {
        let mut b = Baselines::new(&cfg());
        assert!(steady(&mut b, "steady", 0, 25, 20).is_empty());
        assert!(steady(&mut b, "bursty", 0, 25, 20).is_empty());
        // 200 orders in one bucket: 10x the baseline and above the floor of 50.
        let mut alerts = Vec::new();
        for i in 0..200 {
            alerts.extend(b.observe(&fact("bursty", 25 * BUCKET + i * 1000, 1, false)));
        }
        let kinds: Vec<&str> = alerts.iter().map(|a| a.kind).collect();
        assert!(kinds.contains(&"order-rate-spike"), "{alerts:?}");
        // Once per bucket and metric.
        assert_eq!(
            kinds.iter().filter(|k| **k == "order-rate-spike").count(),
            1
        );
        let a = alerts
            .iter()
            .find(|a| a.kind == "order-rate-spike")
            .unwrap();
        assert_eq!(a.subject, Subject::Key("bursty".into()));
        // It alerted as soon as the limit was crossed, not at 200.
        assert!(a.count < 200 && a.count >= 50, "{a:?}");
        assert!(steady(&mut b, "steady", 25, 10, 20).is_empty());
    }

    #[test]
    fn nothing_alerts_while_learning_or_below_the_floor() {
        let mut b = Baselines::new(&cfg());
        // Learning: a burst in bucket 5 of 20 is learned, not alerted.
        let mut alerts = steady(&mut b, "k", 0, 5, 2);
        for i in 0..500 {
            alerts.extend(b.observe(&fact("k", 5 * BUCKET + i, 1, false)));
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        // A quiet key: 1 order a bucket, then 40 (40 sigma, but under the floor of 50).
        let mut q = Baselines::new(&cfg());
        let mut alerts = steady(&mut q, "quiet", 0, 30, 1);
        for i in 0..40 {
            alerts.extend(q.observe(&fact("quiet", 30 * BUCKET + i, 1, false)));
        }
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    #[test]
    fn reject_rate_symbol_spread_and_notional_have_their_own_alerts() {
        let mut b = Baselines::new(&cfg());
        steady(&mut b, "k", 0, 25, 60);
        let mut alerts = Vec::new();
        // 60 orders, all refused, on 30 symbols, each 10x the usual notional.
        for i in 0..60u64 {
            let mut f = fact("k", 25 * BUCKET + i * 1000, i % 30, true);
            f.notional = 1000.0;
            alerts.extend(b.observe(&f));
        }
        let kinds: Vec<&str> = alerts.iter().map(|a| a.kind).collect();
        for k in ["reject-rate-spike", "symbol-spread-spike", "notional-spike"] {
            assert!(kinds.contains(&k), "{k}: {alerts:?}");
        }
        let r = alerts
            .iter()
            .find(|a| a.kind == "reject-rate-spike")
            .unwrap();
        assert_eq!(r.count, 100, "{r:?}");
    }

    #[test]
    fn activity_in_an_unusual_hour_alerts() {
        let mut c = cfg();
        c.bucket_ms = 3_600_000;
        c.learning_buckets = 24 * 5;
        c.min_hour_share = 0.01;
        let mut b = Baselines::new(&c);
        let hour = 3_600_000_000_000u64;
        let mut alerts = Vec::new();
        // Five days, trading 09:00-17:00 only.
        for day in 0..5u64 {
            for h in 9..17 {
                alerts.extend(b.observe(&fact("k", (day * 24 + h) * hour, 1, false)));
            }
        }
        assert!(alerts.is_empty(), "{alerts:?}");
        // Day 6 at 10:00: usual; at 03:00: not.
        assert!(b
            .observe(&fact("k", (5 * 24 + 10) * hour, 1, false))
            .is_empty());
        let a = b.observe(&fact("k", (6 * 24 + 3) * hour, 1, false));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, OFF_HOURS);
        assert!(a[0].note.contains("03:00-04:00"), "{}", a[0].note);
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let mut c = cfg();
        c.max_keys = 100;
        let mut b = Baselines::new(&c);
        for i in 0..10_000u64 {
            b.observe(&fact(&format!("key-{i}"), i * 1000, 1, false));
            assert!(b.keys() <= 100);
        }
        assert_eq!(b.keys(), 100);
        // The newest keys are the ones kept.
        assert!(b.keys.contains_key(&Subject::Key("key-9999".into())));
        assert!(!b.keys.contains_key(&Subject::Key("key-0".into())));
    }

    #[test]
    fn ewma_tracks_mean_and_variance() {
        let mut e = Ewma::default();
        for i in 0..10_000 {
            e.fold(if i % 2 == 0 { 9.0 } else { 11.0 }, 0.05);
        }
        assert!((e.mean - 10.0).abs() < 0.1, "{e:?}");
        assert!((e.var.sqrt() - 1.0).abs() < 0.1, "{e:?}");
    }
}
