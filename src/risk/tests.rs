use super::*;
use crate::model::PRICE_SCALE;

fn acct(s: &str) -> Account {
    Account::new(s.as_bytes()).unwrap()
}
fn sym(s: &str) -> Symbol {
    Symbol::new(s.as_bytes()).unwrap()
}
fn px(units: i64) -> Price {
    Price::from_units(units)
}
fn qty(units: i64) -> Qty {
    Qty::from_units(units)
}
fn text(r: &Reason) -> String {
    let mut buf = [0u8; 128];
    let n = r.write_text(&mut buf);
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Roomy limits: each test tightens the one it exercises.
fn limits() -> RiskLimits {
    RiskLimits {
        max_order_qty: qty(10_000),
        max_order_notional: Notional::from_units(1_000_000),
        collar: Collar {
            bps: Some(500),
            ticks: None,
        },
        reference_max_age: Nanos::from_secs(5),
        credit_limit: Notional::from_units(10_000_000),
        max_long: qty(100_000),
        max_short: qty(100_000),
        max_open_orders: 1000,
        ord_types: OrdTypeSet::ALL,
        tifs: TifSet::ALL,
        duplicate_window: Nanos::ZERO,
        max_msgs: 10_000,
        rate_period: Nanos::from_secs(1),
    }
}

const T0: Nanos = Nanos(1_000_000_000_000);

fn core_with(l: RiskLimits) -> RiskCore {
    let accounts = [
        (acct("A"), LimitsSpec::from(l)),
        (acct("B"), LimitsSpec::from(l)),
    ];
    let symbols = [
        SymbolSpec {
            symbol: sym("AAPL"),
            tick_size: Price(PRICE_SCALE / 100),
            restricted: false,
        },
        SymbolSpec {
            symbol: sym("MSFT"),
            tick_size: Price(PRICE_SCALE / 100),
            restricted: false,
        },
        SymbolSpec {
            symbol: sym("BAD"),
            tick_size: Price(PRICE_SCALE / 100),
            restricted: true,
        },
    ];
    let mut c = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &symbols,
        key_caps: &[(
            7,
            KeyCaps {
                max_order_qty: qty(50),
                max_order_notional: Notional::from_units(4_000),
            },
        )],
        max_positions: 16,
        duplicate_slots: 4,
    })
    .unwrap();
    c.set_reference(&sym("AAPL"), px(100), T0).unwrap();
    c.set_reference(&sym("MSFT"), px(200), T0).unwrap();
    c.set_reference(&sym("BAD"), px(10), T0).unwrap();
    c
}

fn buy(q: i64, p: i64) -> NewOrderView {
    NewOrderView {
        key: 1,
        symbol: sym("AAPL"),
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Day,
        qty: qty(q),
        price: Some(px(p)),
    }
}
fn sell(q: i64, p: i64) -> NewOrderView {
    NewOrderView {
        side: Side::Sell,
        ..buy(q, p)
    }
}

fn reject(c: &mut RiskCore, o: &NewOrderView, now: Nanos) -> Reason {
    match c.check_new(&acct("A"), o, now) {
        Verdict::Reject(r) => r,
        Verdict::Accept => panic!("accepted {o:?}"),
    }
}
fn accept(c: &mut RiskCore, o: &NewOrderView, now: Nanos) -> Reservation {
    c.admit_new(&acct("A"), o, now).unwrap()
}

// ---- construction ---------------------------------------------------------------------------

#[test]
fn missing_limit_is_a_construction_error_naming_account_and_limit() {
    let mut spec = LimitsSpec::from(limits());
    spec.credit_limit = None;
    let accounts = [
        (acct("OK"), LimitsSpec::from(limits())),
        (acct("ACME"), spec),
    ];
    let err = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &[],
        key_caps: &[],
        max_positions: 4,
        duplicate_slots: 4,
    })
    .err()
    .unwrap();
    assert_eq!(
        err,
        BuildError::MissingLimit {
            account: acct("ACME"),
            limit: LimitName::CreditLimit
        }
    );
    assert_eq!(
        err.to_string(),
        "risk: account ACME: limit credit_limit missing"
    );
}

#[test]
fn collar_without_band_and_zero_rate_period_are_refused() {
    let mut spec = LimitsSpec::from(limits());
    spec.collar_bps = None;
    assert_eq!(
        spec.build(acct("X")),
        Err(BuildError::MissingLimit {
            account: acct("X"),
            limit: LimitName::Collar
        })
    );
    let mut spec = LimitsSpec::from(limits());
    spec.rate_period = Some(Nanos::ZERO);
    assert_eq!(
        spec.build(acct("X")),
        Err(BuildError::InvalidLimit {
            account: acct("X"),
            limit: LimitName::RatePeriod
        })
    );
}

#[test]
fn duplicate_account_is_a_construction_error() {
    let accounts = [
        (acct("A"), LimitsSpec::from(limits())),
        (acct("A"), LimitsSpec::from(limits())),
    ];
    let err = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &[],
        key_caps: &[],
        max_positions: 4,
        duplicate_slots: 4,
    })
    .err();
    assert_eq!(err, Some(BuildError::DuplicateAccount(acct("A"))));
}

// ---- each check trips with its reason and numbers ------------------------------------------

#[test]
fn rejects_unknown_account_and_symbol() {
    let mut c = core_with(limits());
    assert_eq!(
        c.check_new(&acct("NOPE"), &buy(1, 100), T0),
        Verdict::Reject(Reason::UnknownAccount)
    );
    let o = NewOrderView {
        symbol: sym("ZZZ"),
        ..buy(1, 100)
    };
    assert_eq!(reject(&mut c, &o, T0), Reason::UnknownSymbol);
    assert_eq!(Reason::UnknownAccount.ord_rej_reason(), 15);
}

#[test]
fn rejects_order_above_quantity_limit() {
    let mut c = core_with(RiskLimits {
        max_order_qty: qty(1000),
        ..limits()
    });
    let r = reject(&mut c, &buy(1500, 100), T0);
    assert_eq!(
        r,
        Reason::MaxOrderQty {
            limit: qty(1000),
            value: qty(1500)
        }
    );
    assert_eq!(text(&r), "max order quantity exceeded: 1500 > 1000");
    assert_eq!(r.ord_rej_reason(), 3);
    accept(&mut c, &buy(1000, 100), T0);
}

#[test]
fn rejects_order_above_notional_limit() {
    let mut c = core_with(RiskLimits {
        max_order_qty: qty(20_000),
        max_order_notional: Notional::from_units(1_000_000),
        ..limits()
    });
    let r = reject(&mut c, &buy(12_500, 100), T0);
    assert_eq!(
        r,
        Reason::MaxOrderNotional {
            limit: Notional::from_units(1_000_000),
            value: Notional::from_units(1_250_000)
        }
    );
    assert_eq!(
        text(&r),
        "max order notional exceeded: 1250000.00 > 1000000.00"
    );
    accept(&mut c, &buy(10_000, 100), T0);
}

#[test]
fn per_key_caps_apply_on_top_of_account_limits() {
    let mut c = core_with(limits());
    let o = NewOrderView {
        key: 7,
        ..buy(60, 100)
    };
    assert_eq!(
        reject(&mut c, &o, T0),
        Reason::KeyMaxOrderQty {
            limit: qty(50),
            value: qty(60)
        }
    );
    let o = NewOrderView {
        key: 7,
        ..buy(45, 100)
    };
    let r = reject(&mut c, &o, T0);
    assert_eq!(
        r,
        Reason::KeyMaxOrderNotional {
            limit: Notional::from_units(4_000),
            value: Notional::from_units(4_500)
        }
    );
    // The same order on a key without caps passes.
    accept(&mut c, &buy(45, 100), T0);
}

#[test]
fn rejects_price_outside_collar_in_bps_and_ticks() {
    let mut c = core_with(limits()); // 500 bps around 100 → [95, 105]
    let r = reject(&mut c, &buy(1, 106), T0);
    assert_eq!(
        r,
        Reason::PriceCollar {
            low: px(95),
            high: px(105),
            value: px(106)
        }
    );
    assert_eq!(
        text(&r),
        "price outside collar: 106.00 not in [95.00, 105.00]"
    );
    assert!(matches!(
        reject(&mut c, &sell(1, 94), T0),
        Reason::PriceCollar { .. }
    ));
    accept(&mut c, &buy(1, 105), T0);
    accept(&mut c, &sell(1, 95), T0);

    // 500 bps and 20 ticks of 0.01: the tighter band (0.20) applies.
    let mut c = core_with(RiskLimits {
        collar: Collar {
            bps: Some(500),
            ticks: Some(20),
        },
        ..limits()
    });
    let r = reject(&mut c, &buy(1, 101), T0);
    assert_eq!(
        r,
        Reason::PriceCollar {
            low: Price(9_980_000_000),
            high: Price(10_020_000_000),
            value: px(101)
        }
    );
    assert_eq!(
        text(&r),
        "price outside collar: 101.00 not in [99.80, 100.20]"
    );
    accept(&mut c, &buy(1, 100), T0);
}

#[test]
fn stale_or_missing_reference_blocks_fresh_allows() {
    let mut c = core_with(limits()); // max age 5 s
    let late = T0.add(Nanos::from_secs(6));
    let r = reject(&mut c, &buy(1, 100), late);
    assert_eq!(
        r,
        Reason::ReferenceStale {
            max_age: Nanos::from_secs(5),
            age: Nanos::from_secs(6)
        }
    );
    assert_eq!(text(&r), "reference price stale: 6000ms > 5000ms");
    accept(&mut c, &buy(1, 100), T0.add(Nanos::from_secs(5)));
    c.set_reference(&sym("AAPL"), px(100), late).unwrap();
    accept(&mut c, &buy(2, 100), late);

    // A symbol never priced: fail closed.
    let accounts = [(acct("A"), LimitsSpec::from(limits()))];
    let symbols = [SymbolSpec {
        symbol: sym("NEW"),
        tick_size: Price(1),
        restricted: false,
    }];
    let mut c = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &symbols,
        key_caps: &[],
        max_positions: 4,
        duplicate_slots: 4,
    })
    .unwrap();
    let o = NewOrderView {
        symbol: sym("NEW"),
        ..buy(1, 100)
    };
    assert_eq!(reject(&mut c, &o, T0), Reason::ReferenceMissing);
}

#[test]
fn market_order_is_valued_at_reference_and_needs_one() {
    let mut c = core_with(RiskLimits {
        max_order_notional: Notional::from_units(10_000),
        ..limits()
    });
    let mkt = |q| NewOrderView {
        ord_type: OrdType::Market,
        price: None,
        ..buy(q, 0)
    };
    assert_eq!(
        reject(&mut c, &mkt(101), T0),
        Reason::MaxOrderNotional {
            limit: Notional::from_units(10_000),
            value: Notional::from_units(10_100)
        }
    );
    let res = accept(&mut c, &mkt(100), T0);
    assert_eq!(res.price, px(100));
    assert_eq!(res.notional, Notional::from_units(10_000));
    assert_eq!(
        c.exposure(&acct("A")).unwrap().open,
        Notional::from_units(10_000)
    );
    assert!(matches!(
        reject(&mut c, &mkt(1), T0.add(Nanos::from_secs(60))),
        Reason::ReferenceStale { .. }
    ));
}

#[test]
fn rejects_when_credit_limit_would_be_exceeded() {
    let mut c = core_with(RiskLimits {
        credit_limit: Notional::from_units(100_000),
        ..limits()
    });
    accept(&mut c, &buy(600, 100), T0); // 60,000 open
    accept(&mut c, &sell(300, 100), T0); // sells count too: 90,000
    let r = reject(&mut c, &buy(101, 100), T0);
    assert_eq!(
        r,
        Reason::CreditLimit {
            limit: Notional::from_units(100_000),
            value: Notional::from_units(100_100)
        }
    );
    assert_eq!(text(&r), "credit limit exceeded: 100100.00 > 100000.00");
    accept(&mut c, &buy(100, 100), T0); // exactly at the limit
}

#[test]
fn position_limit_counts_working_orders_long_and_short_apart() {
    let mut c = core_with(RiskLimits {
        max_long: qty(100),
        max_short: qty(50),
        ..limits()
    });
    accept(&mut c, &buy(60, 100), T0);
    assert_eq!(
        reject(&mut c, &buy(41, 100), T0),
        Reason::LongPositionLimit {
            limit: qty(100),
            value: qty(101)
        }
    );
    // Working buys do not use up the short side.
    accept(&mut c, &sell(50, 100), T0);
    let r = reject(&mut c, &sell(1, 100), T0);
    assert_eq!(
        r,
        Reason::ShortPositionLimit {
            limit: qty(50),
            value: qty(51)
        }
    );
    assert_eq!(text(&r), "short position limit exceeded: 51 > 50");
    // A filled buy moves into the executed position, which offsets shorts.
    c.on_fill(
        &acct("A"),
        &Fill {
            symbol: sym("AAPL"),
            side: Side::Buy,
            qty: qty(60),
            price: px(100),
            reserved_price: px(100),
            done: true,
        },
    )
    .unwrap();
    let p = c.position(&acct("A"), &sym("AAPL")).unwrap();
    assert_eq!((p.net, p.open_buy, p.open_sell), (qty(60).0, 0, qty(50).0));
    accept(&mut c, &sell(60, 100), T0); // short exposure 110 − 60 = 50
    assert!(matches!(
        reject(&mut c, &buy(41, 100), T0),
        Reason::LongPositionLimit { .. }
    ));
}

#[test]
fn rejects_above_max_open_orders_and_frees_on_cancel() {
    let mut c = core_with(RiskLimits {
        max_open_orders: 2,
        ..limits()
    });
    accept(&mut c, &buy(1, 100), T0);
    accept(&mut c, &buy(2, 100), T0);
    assert_eq!(
        reject(&mut c, &buy(3, 100), T0),
        Reason::MaxOpenOrders { limit: 2, value: 3 }
    );
    c.on_cancel(&acct("A"), &sym("AAPL"), Side::Buy, qty(1), px(100))
        .unwrap();
    accept(&mut c, &buy(3, 100), T0);
}

#[test]
fn rejects_restricted_symbol_and_disallowed_order_kinds() {
    let mut c = core_with(RiskLimits {
        ord_types: OrdTypeSet::NONE.with(OrdType::Limit),
        tifs: TifSet::NONE.with(TimeInForce::Day),
        ..limits()
    });
    let o = NewOrderView {
        symbol: sym("BAD"),
        ..buy(1, 10)
    };
    assert_eq!(reject(&mut c, &o, T0), Reason::RestrictedSymbol);
    c.set_restricted(&sym("BAD"), false).unwrap();
    accept(&mut c, &o, T0);
    let m = NewOrderView {
        ord_type: OrdType::Market,
        price: None,
        ..buy(1, 0)
    };
    let r = reject(&mut c, &m, T0);
    assert_eq!(
        r,
        Reason::OrdTypeNotAllowed {
            ord_type: OrdType::Market
        }
    );
    assert_eq!(r.ord_rej_reason(), 11);
    let ioc = NewOrderView {
        tif: TimeInForce::ImmediateOrCancel,
        ..buy(1, 100)
    };
    assert_eq!(
        reject(&mut c, &ioc, T0),
        Reason::TifNotAllowed {
            tif: TimeInForce::ImmediateOrCancel
        }
    );
}

#[test]
fn rejects_zero_quantity_and_limit_without_price() {
    let mut c = core_with(limits());
    assert_eq!(
        reject(&mut c, &buy(0, 100), T0),
        Reason::InvalidQty { value: Qty(0) }
    );
    let o = NewOrderView {
        price: None,
        ..buy(1, 100)
    };
    assert_eq!(reject(&mut c, &o, T0), Reason::InvalidPrice);
}

#[test]
fn duplicate_detected_within_window_not_after() {
    let mut c = core_with(RiskLimits {
        duplicate_window: Nanos::from_millis(500),
        ..limits()
    });
    accept(&mut c, &buy(10, 100), T0);
    let r = reject(&mut c, &buy(10, 100), T0.add(Nanos::from_millis(20)));
    assert_eq!(
        r,
        Reason::DuplicateOrder {
            window: Nanos::from_millis(500),
            age: Nanos::from_millis(20)
        }
    );
    assert_eq!(r.ord_rej_reason(), 6);
    // Different price, side or quantity: not a duplicate.
    accept(&mut c, &buy(10, 101), T0.add(Nanos::from_millis(20)));
    accept(&mut c, &sell(10, 100), T0.add(Nanos::from_millis(20)));
    accept(&mut c, &buy(11, 100), T0.add(Nanos::from_millis(20)));
    // Another account is not a duplicate.
    assert_eq!(
        c.check_new(&acct("B"), &buy(10, 100), T0.add(Nanos::from_millis(20))),
        Verdict::Accept
    );
    accept(&mut c, &buy(10, 100), T0.add(Nanos::from_millis(500)));
}

#[test]
fn rate_limit_disables_account_until_enabled() {
    let mut c = core_with(RiskLimits {
        max_msgs: 3,
        rate_period: Nanos::from_secs(1),
        ..limits()
    });
    for i in 0..3 {
        accept(&mut c, &buy(1 + i, 100), T0);
    }
    let r = reject(&mut c, &buy(9, 100), T0);
    assert_eq!(
        r,
        Reason::RateLimit {
            limit: 3,
            period: Nanos::from_secs(1)
        }
    );
    assert_eq!(
        text(&r),
        "message rate limit exceeded: more than 3 per 1000ms; account disabled"
    );
    assert!(c.is_disabled(&acct("A")));
    // Not re-enabled by time passing.
    let later = T0.add(Nanos::from_secs(3));
    c.set_reference(&sym("AAPL"), px(100), later).unwrap();
    assert_eq!(reject(&mut c, &buy(9, 100), later), Reason::AccountDisabled);
    // Cancels still release.
    c.on_cancel(&acct("A"), &sym("AAPL"), Side::Buy, qty(1), px(100))
        .unwrap();
    c.enable_account(&acct("A")).unwrap();
    accept(&mut c, &buy(9, 100), later);
    // Other accounts were never affected.
    assert!(!c.is_disabled(&acct("B")));
}

#[test]
fn rate_window_restarts_after_the_period() {
    let mut c = core_with(RiskLimits {
        max_msgs: 2,
        rate_period: Nanos::from_millis(100),
        ..limits()
    });
    accept(&mut c, &buy(1, 100), T0);
    accept(&mut c, &buy(2, 100), T0.add(Nanos::from_millis(50)));
    accept(&mut c, &buy(3, 100), T0.add(Nanos::from_millis(100)));
    accept(&mut c, &buy(4, 100), T0.add(Nanos::from_millis(150)));
    assert!(matches!(
        reject(&mut c, &buy(5, 100), T0.add(Nanos::from_millis(199))),
        Reason::RateLimit { .. }
    ));
}

#[test]
fn kill_and_unkill_per_scope_while_cancels_still_release() {
    let mut c = core_with(limits());
    accept(&mut c, &buy(10, 100), T0);
    let a = acct("A");
    let aapl = sym("AAPL");
    let msft = NewOrderView {
        symbol: sym("MSFT"),
        ..buy(1, 200)
    };

    c.kill(KillScope::Global).unwrap();
    assert!(c.is_killed(&a, &aapl));
    assert_eq!(reject(&mut c, &buy(1, 100), T0), Reason::KilledGlobal);
    assert_eq!(
        c.check_new(&acct("B"), &buy(1, 100), T0),
        Verdict::Reject(Reason::KilledGlobal)
    );
    c.on_cancel(&a, &aapl, Side::Buy, qty(10), px(100)).unwrap();
    assert_eq!(c.exposure(&a).unwrap().open, Notional::ZERO);
    c.unkill(KillScope::Global).unwrap();
    assert!(!c.is_killed(&a, &aapl));

    c.kill(KillScope::Account(a)).unwrap();
    assert_eq!(reject(&mut c, &buy(1, 100), T0), Reason::KilledAccount);
    assert_eq!(c.check_new(&acct("B"), &buy(1, 100), T0), Verdict::Accept);
    c.unkill(KillScope::Account(a)).unwrap();

    c.kill(KillScope::Symbol(aapl)).unwrap();
    assert!(c.is_killed(&acct("B"), &aapl));
    assert!(!c.is_killed(&a, &sym("MSFT")));
    assert_eq!(reject(&mut c, &buy(2, 100), T0), Reason::KilledSymbol);
    accept(&mut c, &msft, T0);
    c.unkill(KillScope::Symbol(aapl)).unwrap();
    accept(&mut c, &buy(2, 100), T0);

    assert!(c.is_killed(&acct("NOPE"), &aapl), "unknown fails closed");
    assert_eq!(
        c.kill(KillScope::Account(acct("NOPE"))),
        Err(RiskError::UnknownAccount)
    );
}

#[test]
fn temporary_raise_reverts_at_expiry_with_audit_records() {
    let base = RiskLimits {
        max_order_qty: qty(100),
        ..limits()
    };
    let mut c = core_with(base);
    let raised = RiskLimits {
        max_order_qty: qty(500),
        ..base
    };
    let until = T0.add(Nanos::from_secs(2));
    let change = c
        .raise_limits_until(&acct("A"), raised, until, "TICKET-42", T0)
        .unwrap();
    assert_eq!(change.before, base);
    assert_eq!(change.after, raised);
    assert_eq!(change.reason, "TICKET-42");
    assert_eq!(change.expires_at, Some(until));
    accept(&mut c, &buy(400, 100), T0.add(Nanos::from_secs(1)));

    c.set_reference(&sym("AAPL"), px(100), until).unwrap();
    assert_eq!(
        reject(&mut c, &buy(400, 100), until),
        Reason::MaxOrderQty {
            limit: qty(100),
            value: qty(400)
        }
    );
    assert_eq!(c.limits(&acct("A")), Some(&base));
    let mut seen = Vec::new();
    assert_eq!(c.drain_limit_changes(|ch| seen.push(*ch)), 0);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].before, raised);
    assert_eq!(seen[0].after, base);
    assert_eq!(seen[0].reason, "temporary raise expired");
    assert!(seen[0].seq > change.seq);

    // A permanent change replaces the limits whole and is not reverted.
    let ch = c.set_limits(&acct("A"), raised, "ops", until).unwrap();
    assert_eq!((ch.before, ch.after), (base, raised));
    accept(&mut c, &buy(401, 100), until.add(Nanos::from_secs(1)));
    assert_eq!(
        c.set_limits(
            &acct("A"),
            RiskLimits {
                max_msgs: 0,
                ..raised
            },
            "bad",
            until
        ),
        Err(RiskError::InvalidLimit(LimitName::MaxMsgs))
    );
}

#[test]
fn expire_raises_reverts_on_a_timer_without_any_order() {
    let base = RiskLimits {
        max_order_qty: qty(100),
        ..limits()
    };
    let mut c = core_with(base);
    let raised = RiskLimits {
        max_order_qty: qty(500),
        ..base
    };
    let until = T0.add(Nanos::from_secs(2));
    c.raise_limits_until(&acct("A"), raised, until, "T", T0)
        .unwrap();
    c.expire_raises(T0.add(Nanos::from_secs(1)));
    assert_eq!(c.limits(&acct("A")), Some(&raised), "not due yet");
    assert_eq!(c.drain_limit_changes(|_| {}), 0);
    c.expire_raises(until);
    assert_eq!(c.limits(&acct("A")), Some(&base));
    let mut seen = Vec::new();
    c.drain_limit_changes(|ch| seen.push(*ch));
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].before, seen[0].after), (raised, base));
    c.expire_raises(until.add(Nanos::from_secs(9)));
    c.drain_limit_changes(|ch| seen.push(*ch));
    assert_eq!(seen.len(), 1, "reverted once");
}

// ---- credit accounting ------------------------------------------------------------------------

#[test]
fn credit_exact_across_new_partial_fill_replace_cancel() {
    let mut c = core_with(limits());
    let a = acct("A");
    let aapl = sym("AAPL");
    let exp = |c: &RiskCore| c.exposure(&a).unwrap();
    // New 100 @ 100.
    let res = accept(&mut c, &buy(100, 100), T0);
    assert_eq!(exp(&c).open, Notional::from_units(10_000));
    // Partial fill 30 @ 99.5: open 70 × 100, executed 30 × 99.5.
    c.on_fill(
        &a,
        &Fill {
            symbol: aapl,
            side: Side::Buy,
            qty: qty(30),
            price: Price(9_950_000_000),
            reserved_price: res.price,
            done: false,
        },
    )
    .unwrap();
    assert_eq!(exp(&c).open, Notional::from_units(7_000));
    assert_eq!(exp(&c).executed, Notional(2_985 * PRICE_SCALE as i128));
    // Replace up: OrderQty 150 (open 120) @ 101 → open 12,120.
    let up = ReplaceView {
        key: 1,
        symbol: aapl,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Day,
        new_order_qty: qty(150),
        new_open_qty: qty(120),
        new_price: Some(px(101)),
        old: Reserved {
            open_qty: qty(70),
            price: px(100),
        },
    };
    assert_eq!(c.check_replace(&a, &up, T0), Verdict::Accept);
    assert_eq!(exp(&c).open, Notional::from_units(12_120));
    assert_eq!(c.position(&a, &aapl).unwrap().open_buy, qty(120).0);
    // Replace down: OrderQty 80 (open 50) @ 99 → open 4,950.
    let down = ReplaceView {
        new_order_qty: qty(80),
        new_open_qty: qty(50),
        new_price: Some(px(99)),
        old: Reserved {
            open_qty: qty(120),
            price: px(101),
        },
        ..up
    };
    assert_eq!(c.check_replace(&a, &down, T0), Verdict::Accept);
    assert_eq!(exp(&c).open, Notional::from_units(4_950));
    // The venue rejects the down-replace: back to 120 @ 101.
    c.undo_replace(
        &a,
        &aapl,
        Side::Buy,
        Reserved {
            open_qty: qty(50),
            price: px(99),
        },
        Reserved {
            open_qty: qty(120),
            price: px(101),
        },
    )
    .unwrap();
    assert_eq!(exp(&c).open, Notional::from_units(12_120));
    // Cancel: open back to exactly 0, executed stays, order no longer open.
    c.on_cancel(&a, &aapl, Side::Buy, qty(120), px(101))
        .unwrap();
    let e = exp(&c);
    assert_eq!(e.open, Notional::ZERO);
    assert_eq!(e.executed, Notional(2_985 * PRICE_SCALE as i128));
    assert_eq!(e.open_orders, 0);
    let p = c.position(&a, &aapl).unwrap();
    assert_eq!((p.net, p.open_buy, p.open_sell), (qty(30).0, 0, 0));
    assert_eq!(c.anomalies(), 0);
}

#[test]
fn replace_increase_is_checked_against_credit_decrease_always_passes() {
    let mut c = core_with(RiskLimits {
        credit_limit: Notional::from_units(10_000),
        ..limits()
    });
    let a = acct("A");
    accept(&mut c, &buy(90, 100), T0);
    let up = ReplaceView {
        key: 1,
        symbol: sym("AAPL"),
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Day,
        new_order_qty: qty(101),
        new_open_qty: qty(101),
        new_price: Some(px(100)),
        old: Reserved {
            open_qty: qty(90),
            price: px(100),
        },
    };
    assert_eq!(
        c.check_replace(&a, &up, T0),
        Verdict::Reject(Reason::CreditLimit {
            limit: Notional::from_units(10_000),
            value: Notional::from_units(10_100)
        })
    );
    // The rejected replace changed nothing.
    assert_eq!(c.exposure(&a).unwrap().open, Notional::from_units(9_000));
    let down = ReplaceView {
        new_order_qty: qty(10),
        new_open_qty: qty(10),
        ..up
    };
    assert_eq!(c.check_replace(&a, &down, T0), Verdict::Accept);
    assert_eq!(c.exposure(&a).unwrap().open, Notional::from_units(1_000));
}

#[test]
fn position_table_full_is_a_clear_reject() {
    let accounts = [(acct("A"), LimitsSpec::from(limits()))];
    let symbols = [
        SymbolSpec {
            symbol: sym("X"),
            tick_size: Price(1),
            restricted: false,
        },
        SymbolSpec {
            symbol: sym("Y"),
            tick_size: Price(1),
            restricted: false,
        },
    ];
    let mut c = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &symbols,
        key_caps: &[],
        max_positions: 1,
        duplicate_slots: 1,
    })
    .unwrap();
    c.set_reference(&sym("X"), px(100), T0).unwrap();
    c.set_reference(&sym("Y"), px(100), T0).unwrap();
    let x = NewOrderView {
        symbol: sym("X"),
        ..buy(1, 100)
    };
    let y = NewOrderView {
        symbol: sym("Y"),
        ..buy(1, 100)
    };
    accept(&mut c, &x, T0);
    let r = reject(&mut c, &y, T0);
    assert_eq!(r, Reason::PositionTableFull { capacity: 1 });
    assert_eq!(text(&r), "risk position table full: 1 positions");
    assert_eq!(c.exposure(&acct("A")).unwrap().open_orders, 1);
    let x2 = NewOrderView { qty: qty(2), ..x };
    accept(&mut c, &x2, T0);
}

#[test]
fn reason_text_truncates_into_a_short_buffer() {
    let r = Reason::MaxOrderNotional {
        limit: Notional::from_units(1_000_000),
        value: Notional::from_units(1_250_000),
    };
    let mut buf = [0u8; 10];
    assert_eq!(r.write_text(&mut buf), 10);
    assert_eq!(&buf, b"max order ");
    let neg = Reason::InvalidQty {
        value: Qty(-12_345),
    };
    assert_eq!(text(&neg), "order quantity must be positive: -1.2345");
}

// ---- property: credit accounting equals a from-scratch recomputation ------------------------

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        New {
            acct: u8,
            sell: bool,
            qty: i64,
            price: i64,
            market: bool,
        },
        Fill {
            order: usize,
            part: i64,
            price: i64,
        },
        Cancel {
            order: usize,
        },
        Replace {
            order: usize,
            qty: i64,
            price: i64,
        },
        Reference {
            price: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..2, any::<bool>(), 1i64..400, 96i64..104, prop::bool::weighted(0.2))
                .prop_map(|(acct, sell, qty, price, market)| Op::New { acct, sell, qty, price, market }),
            3 => (0usize..64, 1i64..100, 90i64..110)
                .prop_map(|(order, part, price)| Op::Fill { order, part, price }),
            2 => (0usize..64).prop_map(|order| Op::Cancel { order }),
            2 => (0usize..64, 1i64..400, 96i64..104)
                .prop_map(|(order, qty, price)| Op::Replace { order, qty, price }),
            1 => (97i64..103).prop_map(|price| Op::Reference { price }),
        ]
    }

    /// The test's own record of an order, as the engine would keep it.
    struct Model {
        acct: Account,
        side: Side,
        market: bool,
        order_qty: i64,
        cum: i64,
        reserved: Price,
        open: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn open_plus_executed_equals_recomputed_and_never_exceeds_credit(
            ops in prop::collection::vec(op(), 1..120)
        ) {
            let lim = RiskLimits {
                credit_limit: Notional::from_units(60_000),
                max_order_qty: qty(300),
                max_open_orders: 8,
                max_long: qty(1_000),
                max_short: qty(700),
                ..limits()
            };
            let mut c = core_with(lim);
            let names = [acct("A"), acct("B")];
            let aapl = sym("AAPL");
            let mut orders: Vec<Model> = Vec::new();
            let mut executed = [0i128; 2];
            // Fixed-point quantity units (10^-4) keep odd fractions in play.
            let q = |u: i64| Qty(u * QTY_SCALE / 4);
            for op in ops {
                match op {
                    Op::New { acct, sell, qty: n, price, market } => {
                        let a = names[usize::from(acct)];
                        let o = NewOrderView {
                            key: 1,
                            symbol: aapl,
                            side: if sell { Side::Sell } else { Side::Buy },
                            ord_type: if market { OrdType::Market } else { OrdType::Limit },
                            tif: TimeInForce::Day,
                            qty: q(n),
                            price: if market { None } else { Some(px(price)) },
                        };
                        let before = c.exposure(&a).unwrap();
                        if let Ok(res) = c.admit_new(&a, &o, T0) {
                            let after = c.exposure(&a).unwrap();
                            let st = &c.states[usize::from(acct)];
                            prop_assert!(st.open_raw + st.executed_raw <= lim.credit_limit.raw());
                            prop_assert_eq!(after.open_orders, before.open_orders + 1);
                            orders.push(Model {
                                acct: a, side: o.side, market, order_qty: o.qty.0, cum: 0,
                                reserved: res.price, open: true,
                            });
                        }
                    }
                    Op::Fill { order, part, price } => {
                        let Some(m) = orders.get_mut(order).filter(|m| m.open) else { continue };
                        let leaves = m.order_qty - m.cum;
                        let fq = (leaves * part / 100).max(1).min(leaves);
                        m.cum += fq;
                        let done = m.cum == m.order_qty;
                        m.open = !done;
                        c.on_fill(&m.acct, &Fill {
                            symbol: aapl, side: m.side, qty: Qty(fq), price: px(price),
                            reserved_price: m.reserved, done,
                        }).unwrap();
                        let i = usize::from(m.acct == names[1]);
                        executed[i] += raw_notional(px(price), Qty(fq));
                    }
                    Op::Cancel { order } => {
                        let Some(m) = orders.get_mut(order).filter(|m| m.open) else { continue };
                        m.open = false;
                        c.on_cancel(&m.acct, &aapl, m.side, Qty(m.order_qty - m.cum), m.reserved)
                            .unwrap();
                    }
                    Op::Replace { order, qty: n, price } => {
                        let Some(m) = orders.get_mut(order).filter(|m| m.open) else { continue };
                        let new_qty = q(n).0;
                        if new_qty <= m.cum {
                            continue;
                        }
                        let r = ReplaceView {
                            key: 1,
                            symbol: aapl,
                            side: m.side,
                            ord_type: if m.market { OrdType::Market } else { OrdType::Limit },
                            tif: TimeInForce::Day,
                            new_order_qty: Qty(new_qty),
                            new_open_qty: Qty(new_qty - m.cum),
                            new_price: if m.market { None } else { Some(px(price)) },
                            old: Reserved { open_qty: Qty(m.order_qty - m.cum), price: m.reserved },
                        };
                        let i = usize::from(m.acct == names[1]);
                        let before = c.states[i].open_raw;
                        if let Ok(res) = c.admit_replace(&m.acct, &r, T0) {
                            let st = &c.states[i];
                            if st.open_raw > before {
                                prop_assert!(st.open_raw + st.executed_raw <= lim.credit_limit.raw());
                            }
                            m.order_qty = new_qty;
                            m.reserved = res.price;
                        }
                    }
                    Op::Reference { price } => {
                        c.set_reference(&aapl, px(price), T0).unwrap();
                    }
                }
                // Recompute everything from the model and compare exactly (internal scale).
                for (i, a) in names.iter().enumerate() {
                    let st = &c.states[i];
                    let open: i128 = orders.iter()
                        .filter(|m| m.open && m.acct == *a)
                        .map(|m| raw_notional(m.reserved, Qty(m.order_qty - m.cum)))
                        .sum();
                    let n_open = orders.iter().filter(|m| m.open && m.acct == *a).count();
                    prop_assert_eq!(st.open_raw, open);
                    prop_assert_eq!(st.executed_raw, executed[i]);
                    prop_assert_eq!(st.open_orders as usize, n_open);
                    let open_buy: i64 = orders.iter()
                        .filter(|m| m.open && m.acct == *a && m.side == Side::Buy)
                        .map(|m| m.order_qty - m.cum).sum();
                    let pos = c.position(a, &aapl).unwrap();
                    prop_assert_eq!(pos.open_buy, open_buy);
                }
                prop_assert_eq!(c.anomalies(), 0);
            }
        }
    }
}
