//! Pre-trade risk: one full `RiskCore::check_new` (every check, then the reservation) for one
//! order of a random account out of 10,000, on a random symbol out of 50. Limits are roomy so
//! the measured path is the accept path, which runs every check; state grows as it would during
//! a trading day (positions fill the table, open notional accumulates).
//!
//! Run: `cargo bench --bench risk -- --warm-up-time 1 --measurement-time 3`.
//! - `risk/check_new_10k_accounts`: criterion's time per call (mean and confidence interval).
//! - `risk/check_new_10k_accounts_tail`: the same calls, each timed on its own with the TSC
//!   (quanta's raw counter, the timer's own cost measured and subtracted) into an HDR
//!   histogram; after criterion is done it prints p50 / p99 / p99.9 / max per call — the
//!   issue's target is p99 <= 100 ns.
//! - `risk/check_new_64_hot_accounts_tail`: the same check with orders of 64 of the 10,000
//!   accounts, whose state stays cached — the check's own cost without memory latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use portcullis::model::{Account, Nanos, OrdType, Price, Qty, Side, Symbol, TimeInForce};
use portcullis::risk::{
    Collar, KillScope, LimitsSpec, NewOrderView, Notional, OrdTypeSet, RiskConfig, RiskCore,
    RiskLimits, SymbolSpec, TifSet,
};

const ACCOUNTS: usize = 10_000;
const SYMBOLS: usize = 50;
const ORDERS: usize = 1 << 16;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn build() -> (RiskCore, Vec<Account>, Vec<(usize, NewOrderView)>) {
    let limits = RiskLimits {
        max_order_qty: Qty::from_units(1_000_000),
        max_order_notional: Notional::from_units(1_000_000_000),
        collar: Collar {
            bps: Some(1_000),
            ticks: Some(2_000),
        },
        reference_max_age: Nanos::from_secs(86_400),
        credit_limit: Notional::from_units(1_000_000_000_000),
        max_long: Qty::from_units(1_000_000_000_000),
        max_short: Qty::from_units(1_000_000_000_000),
        max_open_orders: u32::MAX,
        ord_types: OrdTypeSet::ALL,
        tifs: TifSet::ALL,
        duplicate_window: Nanos::from_millis(1),
        max_msgs: u32::MAX,
        rate_period: Nanos::from_secs(1),
    };
    let names: Vec<Account> = (0..ACCOUNTS)
        .map(|i| Account::new(format!("ACCT{i:05}").as_bytes()).unwrap())
        .collect();
    let accounts: Vec<(Account, LimitsSpec)> = names
        .iter()
        .map(|a| (*a, LimitsSpec::from(limits)))
        .collect();
    let symbols: Vec<SymbolSpec> = (0..SYMBOLS)
        .map(|i| SymbolSpec {
            symbol: Symbol::new(format!("SYM{i:03}").as_bytes()).unwrap(),
            tick_size: Price(1_000_000),
            restricted: false,
        })
        .collect();
    let mut core = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &symbols,
        key_caps: &[],
        max_positions: (ACCOUNTS * SYMBOLS) as u32,
        duplicate_slots: 4,
    })
    .unwrap();
    for s in &symbols {
        core.set_reference(&s.symbol, Price::from_units(100), Nanos::from_secs(1))
            .unwrap();
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let orders = (0..ORDERS)
        .map(|_| {
            let a = rng.below(ACCOUNTS);
            let o = NewOrderView {
                key: 1,
                symbol: symbols[rng.below(SYMBOLS)].symbol,
                side: if rng.next() & 1 == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                },
                ord_type: OrdType::Limit,
                tif: TimeInForce::Day,
                qty: Qty::from_units(1 + rng.below(1_000) as i64),
                price: Some(Price(9_500_000_000 + rng.below(1_000) as i64 * 1_000_000)),
            };
            (a, o)
        })
        .collect();
    (core, names, orders)
}

/// The median cost of two back-to-back raw TSC reads, in nanoseconds.
fn timer_overhead(clock: &quanta::Clock) -> u64 {
    let mut v: Vec<u64> = (0..100_001)
        .map(|_| {
            let t0 = clock.raw();
            let t1 = clock.raw();
            clock.delta_as_nanos(t0, t1)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// The state the benches of one run share (orders cycle through `i`, time advances).
struct Run<'a> {
    core: &'a mut RiskCore,
    names: &'a [Account],
    i: &'a mut usize,
    now: &'a mut Nanos,
    accepted: &'a mut u64,
}

/// `<name>_tail`: every `check_new` timed on its own with the TSC (read overhead subtracted)
/// into an HDR histogram, whose percentiles are printed after the bench.
fn tail(c: &mut Criterion, name: &str, r: &mut Run<'_>, orders: &[(usize, NewOrderView)]) {
    let clock = quanta::Clock::new();
    let overhead = timer_overhead(&clock);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    c.bench_function(&format!("{name}_tail"), |b| {
        b.iter_custom(|iters| {
            let mut total = 0u64;
            for _ in 0..iters {
                let (a, o) = &orders[*r.i & (ORDERS - 1)];
                *r.i = r.i.wrapping_add(1);
                *r.now = Nanos(r.now.0 + 1_000);
                let t0 = clock.raw();
                let v = r
                    .core
                    .check_new(black_box(&r.names[*a]), black_box(o), *r.now);
                let t1 = clock.raw();
                *r.accepted += u64::from(matches!(v, portcullis::risk::Verdict::Accept));
                let ns = clock.delta_as_nanos(t0, t1).saturating_sub(overhead);
                total += ns;
                let _ = hist.record(ns.max(1));
            }
            Duration::from_nanos(total)
        })
    });
    if !hist.is_empty() {
        println!(
            "{name} per call ({} calls, timer overhead {overhead} ns subtracted): \
             p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
            hist.len(),
            hist.value_at_quantile(0.50),
            hist.value_at_quantile(0.90),
            hist.value_at_quantile(0.99),
            hist.value_at_quantile(0.999),
            hist.max()
        );
    }
}

fn check_new(c: &mut Criterion) {
    let (mut core, names, orders) = build();
    let mut i = 0usize;
    let mut now = Nanos::from_secs(2);
    let mut accepted = 0u64;
    c.bench_function("risk/check_new_10k_accounts", |b| {
        b.iter(|| {
            let (a, o) = &orders[i & (ORDERS - 1)];
            i = i.wrapping_add(1);
            now = Nanos(now.0 + 1_000);
            let v = core.check_new(black_box(&names[*a]), black_box(o), now);
            accepted += u64::from(matches!(v, portcullis::risk::Verdict::Accept));
            v
        })
    });
    // Per-call tail: each call timed on its own.
    let mut state = Run {
        core: &mut core,
        names: &names,
        i: &mut i,
        now: &mut now,
        accepted: &mut accepted,
    };
    tail(c, "risk/check_new_10k_accounts", &mut state, &orders);
    // The same check when the account's lines are already cached: orders of 64 accounts
    // only (of the same 10,000), so what remains is the check's own work, not memory latency.
    let hot: Vec<(usize, NewOrderView)> = orders.iter().map(|(a, o)| (a % 64, *o)).collect();
    tail(c, "risk/check_new_64_hot_accounts", &mut state, &hot);
    // The measured path must be the accept path.
    assert!(
        accepted * 100 >= i as u64 * 99,
        "{accepted} of {i} accepted"
    );

    core.kill(KillScope::Global).unwrap();
    c.bench_function("risk/check_new_reject_killed", |b| {
        b.iter(|| {
            let (a, o) = &orders[i & (ORDERS - 1)];
            i = i.wrapping_add(1);
            now = Nanos(now.0 + 1_000);
            core.check_new(black_box(&names[*a]), black_box(o), now)
        })
    });
}

criterion_group!(benches, check_new);
criterion_main!(benches);
