//! Throttle behaviour with a manual clock: every `now` is chosen by the test.

use super::*;
use proptest::prelude::*;

/// 2024-01-01T00:00:00Z: aligned to a day, a second and a 100 ms slot.
const T0: Nanos = Nanos::from_secs(1_704_067_200);
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const KEY: KeySlot = KeySlot(0);

fn at(offset_ns: u64) -> Nanos {
    T0.add(Nanos(offset_ns))
}

/// One key whose orders have `order` limits; cancels and others unlimited.
fn table(order: Limits) -> ThrottleTable {
    table_reset(order, 0)
}

fn table_reset(order: Limits, day_reset_s: u32) -> ThrottleTable {
    ThrottleTable::with_limits(
        2,
        &KeyLimits {
            order,
            cancel: Limits::UNLIMITED,
            other: Limits::UNLIMITED,
            day_reset_s,
        },
    )
}

fn only(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::UNLIMITED;
    f(&mut l);
    l
}

fn order(t: &ThrottleTable, now: Nanos) -> Verdict {
    t.check(KEY, MsgClass::Order, now)
}

/// Admits `n` orders at `now`, then expects the next to be refused by `limit`; returns it.
fn fill(t: &ThrottleTable, now: Nanos, n: u32, limit: Limit) -> Verdict {
    for i in 0..n {
        assert_eq!(order(t, now), Verdict::Admit, "order {i} of {n}");
    }
    let v = order(t, now);
    match v {
        Verdict::Reject { limit: l, .. } => assert_eq!(l, limit, "{v:?}"),
        Verdict::Admit => panic!("order {n} admitted, expected a {limit:?} refusal"),
    }
    v
}

/// The refusal's retry time is exact: one ns before it is still refused (by the same limit),
/// at it the order passes; `retry_after_ms` rounds up to a time that also passes.
fn assert_retry_exact(t: &ThrottleTable, v: Verdict, now: Nanos, want_retry_at: Nanos) {
    let Verdict::Reject {
        limit,
        retry_after_ms,
        retry_at,
    } = v
    else {
        panic!("expected a refusal, got {v:?}");
    };
    assert_eq!(retry_at, want_retry_at, "{limit:?}");
    assert_eq!(
        retry_after_ms,
        (retry_at.0 - now.0).div_ceil(MS),
        "retry_after_ms rounds up"
    );
    match order(t, Nanos(retry_at.0 - 1)) {
        Verdict::Reject { limit: l, .. } => assert_eq!(l, limit),
        Verdict::Admit => panic!("admitted 1 ns before retry_at"),
    }
    assert_eq!(order(t, retry_at), Verdict::Admit, "refused at retry_at");
}

#[test]
fn key_slots_are_whole_128_byte_lines() {
    assert_eq!(std::mem::align_of::<KeyState>(), 128);
    assert_eq!(std::mem::size_of::<ClassHead>(), 128);
    assert_eq!(std::mem::size_of::<Ring>(), 128);
    assert_eq!(std::mem::size_of::<KeyState>(), 3 * 384);
}

#[test]
fn bucket_admits_burst_then_refuses_until_the_next_token() {
    let t = table(only(|l| {
        l.per_second = 10;
        l.burst = 5;
    }));
    let v = fill(&t, T0, 5, Limit::PerSecond);
    assert_retry_exact(&t, v, T0, at(100 * MS));
    // Steady state: one token per 100 ms.
    let v = fill(&t, at(200 * MS), 1, Limit::PerSecond);
    assert_retry_exact(&t, v, at(200 * MS), at(300 * MS));
    // Idle long enough refills to the burst, never beyond.
    fill(&t, at(60 * SEC), 5, Limit::PerSecond);
}

#[test]
fn bucket_rounds_the_refill_interval_up_so_the_rate_is_never_exceeded() {
    let t = table(only(|l| {
        l.per_second = 3; // 333,333,333.3 ns → 333,333,334 ns per token
        l.burst = 1;
    }));
    let v = fill(&t, T0, 1, Limit::PerSecond);
    assert_retry_exact(&t, v, T0, at(333_333_334));
}

#[test]
fn daily_quota_resets_at_the_configured_utc_time() {
    // Reset at 06:00 UTC.
    let t = table_reset(only(|l| l.per_day = 3), 6 * 3600);
    let one_am = at(3600 * SEC);
    let v = fill(&t, one_am, 3, Limit::Daily);
    assert_retry_exact(&t, v, one_am, at(6 * 3600 * SEC));
    // The new quota day began at 06:00: two more, then the next reset is tomorrow 06:00.
    let noon = at(12 * 3600 * SEC);
    let v = fill(&t, noon, 2, Limit::Daily);
    assert_retry_exact(&t, v, noon, at(30 * 3600 * SEC));
}

#[test]
fn window_1s_slides_in_100ms_slots() {
    let t = table(only(|l| l.window_1s = 3));
    for ms in [0, 250, 550] {
        assert_eq!(order(&t, at(ms * MS)), Verdict::Admit);
    }
    let v = order(&t, at(900 * MS));
    // The order at +0 leaves the window when slot 10 begins.
    assert_retry_exact(&t, v, at(900 * MS), at(1000 * MS));
    // Now at +250, +550, +1000: the next leaves with the +250 slot (slot 2 → 1.2 s).
    let v = order(&t, at(1100 * MS));
    assert_retry_exact(&t, v, at(1100 * MS), at(1200 * MS));
}

#[test]
fn window_10s_slides_in_1s_slots() {
    let t = table(only(|l| l.window_10s = 4));
    for s in [0, 3, 3, 7] {
        assert_eq!(order(&t, at(s * SEC + 500 * MS)), Verdict::Admit);
    }
    let v = order(&t, at(9 * SEC));
    assert_retry_exact(&t, v, at(9 * SEC), at(10 * SEC));
    // Two orders share the +3 s slot: both leave at 13 s, which is when one more fits.
    let v = order(&t, at(11 * SEC));
    assert_retry_exact(&t, v, at(11 * SEC), at(13 * SEC));
}

#[test]
fn window_refuses_a_burst_the_bucket_would_let_through() {
    let t = table(only(|l| {
        l.per_second = 1_000;
        l.burst = 1_000;
        l.window_1s = 50;
    }));
    fill(&t, T0, 50, Limit::Window1s);
}

#[test]
fn a_window_refusal_consumes_no_tokens_or_quota() {
    let t = table(Limits {
        per_second: 10,
        burst: 10,
        per_day: 100,
        window_1s: 3,
        window_10s: UNLIMITED,
    });
    fill(&t, T0, 3, Limit::Window1s);
    fill(&t, T0, 0, Limit::Window1s);
    assert_eq!(t.daily_state(KEY).unwrap().order.used, 3);
    // Lift the window: exactly the 7 remaining tokens of the burst pass.
    let mut l = *KeyLimits::BLOCKED.class(MsgClass::Order);
    l.per_second = 10;
    l.burst = 10;
    l.per_day = 100;
    l.window_1s = UNLIMITED;
    l.window_10s = UNLIMITED;
    t.set_limits(KEY, MsgClass::Order, &l, T0).unwrap();
    fill(&t, T0, 7, Limit::PerSecond);
    assert_eq!(t.daily_state(KEY).unwrap().order.used, 10);
}

#[test]
fn a_bucket_refusal_consumes_no_quota_or_window() {
    let t = table(Limits {
        per_second: 1,
        burst: 2,
        per_day: 20,
        window_1s: 10,
        window_10s: 10,
    });
    fill(&t, T0, 2, Limit::PerSecond);
    fill(&t, T0, 0, Limit::PerSecond);
    assert_eq!(t.daily_state(KEY).unwrap().order.used, 2);
    // The 10 s window holds the 2 admitted only: 8 more fit, one per refilled token.
    for s in 1..=8 {
        assert_eq!(order(&t, at(s * SEC)), Verdict::Admit, "at +{s}s");
    }
    let v = fill(&t, at(9 * SEC), 0, Limit::Window10s);
    assert_retry_exact(&t, v, at(9 * SEC), at(10 * SEC));
    assert_eq!(t.daily_state(KEY).unwrap().order.used, 11);
}

#[test]
fn a_daily_refusal_consumes_no_tokens() {
    let t = table(only(|l| {
        l.per_second = 1;
        l.burst = 5;
        l.per_day = 2;
    }));
    fill(&t, T0, 2, Limit::Daily);
    let mut l = only(|l| {
        l.per_second = 1;
        l.burst = 5;
    });
    l.per_day = 10;
    t.set_limits(KEY, MsgClass::Order, &l, T0).unwrap();
    fill(&t, T0, 3, Limit::PerSecond);
}

#[test]
fn refusal_names_the_limit_with_the_latest_retry() {
    let t = table(only(|l| {
        l.per_second = 1;
        l.burst = 1;
        l.per_day = 1;
    }));
    let noon = at(12 * 3600 * SEC);
    let v = fill(&t, noon, 1, Limit::Daily);
    // The bucket would pass at +1 s, but the quota only tomorrow: that is the answer.
    assert_retry_exact(&t, v, noon, at(24 * 3600 * SEC));
}

#[test]
fn zero_admits_nothing_and_unlimited_admits_everything() {
    let t = table(only(|l| l.window_10s = 0));
    let v = fill(&t, T0, 0, Limit::Window10s);
    assert_eq!(
        v,
        Verdict::Reject {
            limit: Limit::Window10s,
            retry_after_ms: u64::MAX,
            retry_at: NEVER
        }
    );
    let t = table(Limits::UNLIMITED);
    for _ in 0..100_000 {
        assert_eq!(order(&t, T0), Verdict::Admit);
    }
}

#[test]
fn fresh_slot_is_blocked_and_unknown_slot_is_refused_without_panic() {
    let t = ThrottleTable::with_capacity(3);
    for class in [MsgClass::Order, MsgClass::Cancel, MsgClass::Other] {
        let v = t.check(KeySlot(2), class, T0);
        assert!(
            matches!(
                v,
                Verdict::Reject {
                    retry_at: NEVER,
                    ..
                }
            ),
            "{v:?}"
        );
    }
    for key in [KeySlot(3), KeySlot(u32::MAX)] {
        assert_eq!(
            t.check(key, MsgClass::Cancel, T0),
            Verdict::Reject {
                limit: Limit::UnknownKey,
                retry_after_ms: u64::MAX,
                retry_at: NEVER
            }
        );
        assert_eq!(
            t.set_key_limits(key, &KeyLimits::BLOCKED, T0),
            Err(ThrottleError::UnknownKey(key))
        );
        assert_eq!(t.daily_state(key), None);
        assert!(t.restore_daily(key, DailyState::default()).is_err());
    }
    let mut bad = KeyLimits::BLOCKED;
    bad.day_reset_s = 86_400;
    assert_eq!(
        t.set_key_limits(KEY, &bad, T0),
        Err(ThrottleError::ResetTimeOutOfRange(86_400))
    );
}

#[test]
fn extreme_times_do_not_panic() {
    let t = table(Limits {
        per_second: 1,
        burst: 1,
        per_day: 1,
        window_1s: 1,
        window_10s: 1,
    });
    for now in [0, 1, u64::MAX - 1, u64::MAX, 1 << 63] {
        let _ = order(&t, Nanos(now));
    }
}

#[test]
fn tier_change_takes_effect_on_the_next_check() {
    let tiers = TierTable::stock();
    let standard = tiers.find("standard").unwrap();
    let institutional = tiers.find("institutional").unwrap();
    let t = ThrottleTable::with_capacity(4);
    t.apply_tier(KEY, &tiers, standard, &KeyOverrides::default(), T0)
        .unwrap();
    // Standard: burst 40 and 1 s window 40; the window's retry (+1 s) is the later one.
    fill(&t, T0, 40, Limit::Window1s);
    t.apply_tier(KEY, &tiers, institutional, &KeyOverrides::default(), T0)
        .unwrap();
    // The 40 tokens in use carry over: 1,000 − 40 more fit the institutional bucket, but its
    // 1 s window (1,000) holds the 40 already sent.
    fill(&t, T0, 960, Limit::Window1s);
    // And back down: the debt now exceeds the standard burst.
    t.apply_tier(KEY, &tiers, standard, &KeyOverrides::default(), T0)
        .unwrap();
    fill(&t, T0, 0, Limit::PerSecond);
}

#[test]
fn key_override_replaces_the_tier_class() {
    let tiers = TierTable::stock();
    let standard = tiers.find("standard").unwrap();
    let t = ThrottleTable::with_capacity(1);
    let overrides = KeyOverrides {
        order: Some(only(|l| {
            l.per_second = 1;
            l.burst = 3;
        })),
        ..KeyOverrides::default()
    };
    t.apply_tier(KEY, &tiers, standard, &overrides, T0).unwrap();
    fill(&t, T0, 3, Limit::PerSecond);
    // Cancels keep the tier's limits.
    for _ in 0..160 {
        assert_eq!(t.check(KEY, MsgClass::Cancel, T0), Verdict::Admit);
    }
}

#[test]
fn cancels_pass_when_orders_are_exhausted() {
    let tiers = TierTable::stock();
    let t = ThrottleTable::with_capacity(1);
    let standard = tiers.find("standard").unwrap();
    t.apply_tier(KEY, &tiers, standard, &KeyOverrides::default(), T0)
        .unwrap();
    fill(&t, T0, 40, Limit::Window1s);
    for i in 0..160 {
        assert_eq!(
            t.check(KEY, MsgClass::Cancel, T0),
            Verdict::Admit,
            "cancel {i}"
        );
    }
    assert!(!t.check(KEY, MsgClass::Order, T0).is_admit());
}

#[test]
fn tier_table_refuses_bad_names_duplicates_and_overflow() {
    let mut tiers = TierTable::stock();
    assert!(matches!(
        tiers.insert("standard", KeyLimits::BLOCKED),
        Err(TierError::Duplicate(_))
    ));
    assert_eq!(
        tiers.insert("", KeyLimits::BLOCKED),
        Err(TierError::BadName)
    );
    assert_eq!(
        tiers.insert("a-name-far-too-long-for-a-tier", KeyLimits::BLOCKED),
        Err(TierError::BadName)
    );
    for i in 3..MAX_TIERS {
        tiers.insert(&format!("t{i}"), KeyLimits::BLOCKED).unwrap();
    }
    assert_eq!(
        tiers.insert("one-more", KeyLimits::BLOCKED),
        Err(TierError::TableFull)
    );
    assert_eq!(
        tiers.resolve(TierId(200), &KeyOverrides::default()),
        Err(TierError::UnknownTier(TierId(200)))
    );
    assert_eq!(
        tiers.name(TierId(2)).map(|n| n.as_str()),
        Some("institutional")
    );
}

#[test]
fn daily_state_round_trips_through_plain_numbers() {
    let limits = only(|l| l.per_day = 5);
    let before = table(limits);
    for _ in 0..3 {
        assert_eq!(order(&before, T0), Verdict::Admit);
    }
    let saved = before.daily_state(KEY).unwrap();
    assert_eq!(
        saved.order,
        DayCount {
            day: 19_723,
            used: 3
        }
    );
    let after = table(limits);
    after.restore_daily(KEY, saved).unwrap();
    fill(&after, at(SEC), 2, Limit::Daily);
    // Restored state from an earlier day reads as a fresh quota.
    let later = table(limits);
    later.restore_daily(KEY, saved).unwrap();
    fill(&later, at(25 * 3600 * SEC), 5, Limit::Daily);
}

#[test]
fn abuse_detector_logs_out_after_sustained_refusals() {
    let mut d = AbuseDetector::new(AbuseConfig {
        sustain_ns: 10 * SEC,
        quiet_ns: SEC,
    });
    let reject = Verdict::reject(Limit::PerSecond, T0.0, T0.0);
    // A refusal every 500 ms, an admission in between: logout at exactly +10 s.
    for i in 0..20 {
        let now = at(i * 500 * MS);
        assert_eq!(d.observe(&reject, now), AbuseVerdict::Continue, "at {i}");
        assert_eq!(
            d.observe(&Verdict::Admit, at(i * 500 * MS + 1)),
            AbuseVerdict::Continue
        );
    }
    assert_eq!(d.observe(&reject, at(10 * SEC)), AbuseVerdict::Logout);
    // Afresh after a logout.
    assert_eq!(d.on_reject(at(10 * SEC + 1)), AbuseVerdict::Continue);
}

#[test]
fn abuse_detector_forgives_a_quiet_second() {
    let mut d = AbuseDetector::new(AbuseConfig {
        sustain_ns: 10 * SEC,
        quiet_ns: SEC,
    });
    for i in 0..=9 {
        assert_eq!(d.on_reject(at(i * SEC / 2)), AbuseVerdict::Continue);
    }
    // 1 s without a refusal (4.5 s → 5.5 s) ends the streak.
    assert!(!d.in_streak(at(5_500 * MS)));
    for i in 0..20 {
        assert_eq!(
            d.on_reject(at(5_500 * MS + i * SEC / 2)),
            AbuseVerdict::Continue
        );
    }
    assert_eq!(d.on_reject(at(15_500 * MS)), AbuseVerdict::Logout);
}

// ---------------------------------------------------------------------------------------------
// Property: whatever the timing and mix of classes, no class ever admits more than its bucket,
// windows and daily quota allow.
// ---------------------------------------------------------------------------------------------

const PROP_ORDER: Limits = Limits {
    per_second: 20,
    burst: 5,
    per_day: 300,
    window_1s: 12,
    window_10s: 60,
};
const PROP_CANCEL: Limits = Limits {
    per_second: 50,
    burst: 10,
    per_day: UNLIMITED,
    window_1s: 40,
    window_10s: UNLIMITED,
};

fn class_of(i: u8) -> MsgClass {
    match i % 3 {
        0 => MsgClass::Order,
        1 => MsgClass::Cancel,
        _ => MsgClass::Other,
    }
}

fn assert_within_limits(admitted: &[u64], l: &Limits, reset_ns: u64) {
    // Bucket: in any [t_i, t_j], admitted ≤ burst + rate × (t_j − t_i).
    for (i, &ti) in admitted.iter().enumerate() {
        for (j, &tj) in admitted.iter().enumerate().skip(i) {
            let n = (j - i + 1) as u128;
            let allowed = u128::from(l.burst)
                + u128::from(l.per_second) * u128::from(tj - ti) / 1_000_000_000;
            assert!(
                n <= allowed,
                "{n} admitted in [{ti}, {tj}], allowed {allowed}"
            );
        }
    }
    // Windows (10 slots) and day.
    for (limit, slot_ns) in [(l.window_1s, 100 * MS), (l.window_10s, SEC)] {
        if limit == UNLIMITED {
            continue;
        }
        for &t in admitted {
            let e = t / slot_ns;
            let n = admitted
                .iter()
                .filter(|&&u| u / slot_ns + 9 >= e && u / slot_ns <= e)
                .count();
            assert!(n as u64 <= u64::from(limit), "{n} in window ending {t}");
        }
    }
    if l.per_day != UNLIMITED {
        for &t in admitted {
            let day = (t - reset_ns) / (86_400 * SEC);
            let n = admitted
                .iter()
                .filter(|&&u| (u - reset_ns) / (86_400 * SEC) == day)
                .count();
            assert!(n as u64 <= u64::from(l.per_day), "{n} on day {day}");
        }
    }
}

proptest! {
    #[test]
    fn admissions_never_exceed_any_limit(
        steps in prop::collection::vec(
            (prop_oneof![
                8 => 0u64..20 * MS,
                3 => 0u64..2 * SEC,
                1 => 0u64..30 * 3600 * SEC,
            ], any::<u8>()),
            1..400,
        )
    ) {
        let reset_s = 7 * 3600;
        let t = ThrottleTable::with_limits(1, &KeyLimits {
            order: PROP_ORDER,
            cancel: PROP_CANCEL,
            other: PROP_ORDER,
            day_reset_s: reset_s,
        });
        let mut now = T0.0;
        let mut admitted: [Vec<u64>; 3] = Default::default();
        for (dt, c) in steps {
            now += dt;
            let class = class_of(c);
            let v = t.check(KEY, class, Nanos(now));
            match v {
                Verdict::Admit => admitted[usize::from(c % 3)].push(now),
                Verdict::Reject { retry_at, limit, .. } => {
                    prop_assert!(retry_at.0 > now, "{limit:?} retry {retry_at:?} not after now");
                }
            }
        }
        let reset_ns = u64::from(reset_s) * SEC;
        assert_within_limits(&admitted[0], &PROP_ORDER, reset_ns);
        assert_within_limits(&admitted[1], &PROP_CANCEL, reset_ns);
        assert_within_limits(&admitted[2], &PROP_ORDER, reset_ns);
    }

    /// The answer is exact, not just safe: a refusal is followed by admission at `retry_at`
    /// (nothing sent in between), and not one ns earlier.
    #[test]
    fn retry_at_is_exact_for_any_history(
        steps in prop::collection::vec((0u64..30 * MS, any::<bool>()), 1..200)
    ) {
        let t = table(PROP_ORDER);
        let mut now = T0.0;
        for (dt, probe) in steps {
            now += dt;
            if let Verdict::Reject { retry_at, .. } = order(&t, Nanos(now)) {
                if probe {
                    prop_assert!(!order(&t, Nanos(retry_at.0 - 1)).is_admit());
                    prop_assert_eq!(order(&t, retry_at), Verdict::Admit);
                    now = now.max(retry_at.0);
                }
            }
        }
    }
}
