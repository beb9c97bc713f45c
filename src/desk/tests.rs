//! The desk driven directly: intents in, outbox calls out — no socket, no session, no FIX.
//! Every lifecycle path (new, accept, fill, cancel, replace, status, mass cancel,
//! cancel-on-disconnect, recovery) and every refusal the desk decides (route, venue down,
//! duplicate, risk, permission, too late, pending) is checked here; the socket tests in
//! `tests/it` check the same behaviour through FIX.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::auth::Grants;
use crate::handoff::{ControlCall, ControlReply, ControlRequest, KillTarget};
use crate::model::{
    Account, ExecType, OrdStatus, OrdType, OrderIdStr, Price, Qty, Side, Symbol, TimeInForce,
    PRICE_SCALE,
};
use crate::order::record::Lifecycle;
use crate::risk::{
    Collar, KeyCaps, LimitsSpec, Notional, OrdTypeSet, RiskConfig, RiskCore, RiskLimits,
    SymbolSpec, TifSet,
};
use crate::route::Rule;
use crate::throttle::KeySlot;
use crate::venue::sim::{SimBehaviour, SimConfig};

const T0: Nanos = Nanos(1_700_000_000_000_000_000);

fn acct(s: &str) -> Account {
    Account::new(s.as_bytes()).unwrap()
}
fn sym(s: &str) -> Symbol {
    Symbol::new(s.as_bytes()).unwrap()
}

/// What the desk asked the outbox to do, in order.
#[derive(Clone, Debug, PartialEq)]
enum Out {
    Exec {
        session: u32,
        cl: String,
        orig: Option<String>,
        exec_type: ExecType,
        status: OrdStatus,
        rej: Option<u32>,
        text: Option<String>,
        copy: bool,
        cum: Qty,
    },
    CancelReject {
        session: u32,
        known: bool,
        cl: String,
        reason: u32,
        text: String,
    },
    Mass {
        session: u32,
        accepted: bool,
        affected: u64,
    },
    Venue {
        venue: crate::model::VenueId,
        key: OrderKey,
        req: VenueRequest,
    },
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Collects the desk's output; external venues answer `venue_answer`.
struct Collect {
    out: Vec<Out>,
    venue_answer: VenueSend,
}

impl Outbox for Collect {
    fn context(&self) -> Option<ReplyContext> {
        None
    }
    fn exec(
        &mut self,
        _orders: &OrderTable,
        _principals: &[DeskSession],
        order: &Order,
        e: &Exec<'_>,
        copy: bool,
        _now: Nanos,
    ) {
        self.out.push(Out::Exec {
            session: order.session.0,
            cl: s(e.cl_ord_id),
            orig: e.orig_cl_ord_id.map(s),
            exec_type: e.exec_type,
            status: e.status,
            rej: e.rej_reason,
            text: e.text.map(s),
            copy,
            cum: order.cum_qty,
        });
    }
    fn cancel_reject(
        &mut self,
        _orders: &OrderTable,
        session: SessionId,
        order: Option<&Order>,
        cl: &[u8],
        _orig: &[u8],
        _to: CancelRejectTo,
        reason: u32,
        text: &[u8],
        _now: Nanos,
    ) {
        self.out.push(Out::CancelReject {
            session: session.0,
            known: order.is_some(),
            cl: s(cl),
            reason,
            text: s(text),
        });
    }
    fn mass_cancel_report(&mut self, session: SessionId, r: &MassCancelReport<'_>, _now: Nanos) {
        self.out.push(Out::Mass {
            session: session.0,
            accepted: r.accepted,
            affected: r.affected,
        });
    }
    fn venue(
        &mut self,
        venue: crate::model::VenueId,
        key: OrderKey,
        _order: &Order,
        _n: u32,
        req: VenueRequest,
        _now: Nanos,
    ) -> VenueSend {
        self.out.push(Out::Venue { venue, key, req });
        self.venue_answer
    }
}

impl Collect {
    fn take(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }
}

/// Venues: 0 `ACK` (simulator, acknowledges only), 1 `FILL` (simulator, fills at once),
/// 2 `EXT` (external, down until told otherwise). Accounts `A` and `B` (roomy limits but a
/// credit limit of 20,000), symbol `AAPL` at 100. Session 0 trades `A`; session 1 trades `A`
/// and `B`.
struct Desk {
    desk: OrderDesk,
    out: Collect,
    events: EventRing,
    records: RecordRing,
    /// The audit trail's "healthy" flag (fail closed when false).
    audit: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn limits() -> RiskLimits {
    RiskLimits {
        max_order_qty: Qty::from_units(10_000),
        max_order_notional: Notional::from_units(1_000_000),
        collar: Collar {
            bps: Some(500),
            ticks: None,
        },
        reference_max_age: Nanos::from_secs(3600),
        credit_limit: Notional::from_units(20_000),
        max_long: Qty::from_units(100_000),
        max_short: Qty::from_units(100_000),
        max_open_orders: 1000,
        ord_types: OrdTypeSet::ALL,
        tifs: TifSet::ALL,
        duplicate_window: Nanos::ZERO,
        max_msgs: 10_000,
        rate_period: Nanos::from_secs(1),
    }
}

fn build(dir: &std::path::Path) -> (OrderDesk, EventRing, RecordRing, Arc<AtomicBool>) {
    let audit = Arc::new(AtomicBool::new(true));
    let accounts = [
        (acct("A"), LimitsSpec::from(limits())),
        (acct("B"), LimitsSpec::from(limits())),
    ];
    let symbols = [SymbolSpec {
        symbol: sym("AAPL"),
        tick_size: Price(PRICE_SCALE / 100),
        restricted: false,
    }];
    let mut risk = RiskCore::new(&RiskConfig {
        accounts: &accounts,
        symbols: &symbols,
        key_caps: &[(
            9,
            KeyCaps {
                max_order_qty: Qty::from_units(5),
                max_order_notional: Notional::from_units(1_000_000),
            },
        )],
        max_positions: 16,
        duplicate_slots: 4,
    })
    .unwrap();
    risk.set_reference(&sym("AAPL"), Price::from_units(100), T0)
        .unwrap();
    let sim = |behaviour| {
        Some(Box::new(SimVenue::new(SimConfig {
            behaviour,
            max_orders: 64,
            max_symbols: 16,
            max_orders_per_symbol: 64,
            default_fill_price: Price::from_units(100),
        })))
    };
    let names: Vec<VenueName> = ["ACK", "FILL", "EXT"]
        .iter()
        .map(|n| VenueName::new(n.as_bytes()).unwrap())
        .collect();
    let venues = vec![
        DeskVenue {
            name: names[0],
            up: true,
            sim: sim(SimBehaviour::AckOnly),
        },
        DeskVenue {
            name: names[1],
            up: true,
            sim: sim(SimBehaviour::FillImmediately),
        },
        DeskVenue {
            name: names[2],
            up: false,
            sim: None,
        },
    ];
    // Account B's orders go to FILL unless the client names a venue.
    let rules = vec![Rule {
        ex_destination: None,
        symbol: None,
        account: Some(acct("B")),
        venue: crate::model::VenueId(1),
    }];
    let grants0 = Grants::unauthenticated(KeySlot(0), acct("A"), &[], false);
    let grants1 = Grants::unauthenticated(KeySlot(1), acct("A"), &[acct("B")], false);
    let events = EventRing::new(1024);
    let records = RecordRing::new(1024);
    let desk = OrderDesk::new(
        DeskParts {
            orders: OrderTable::new(64),
            journal: Journal::open(&dir.join("journal"), 1 << 20).unwrap(),
            venues,
            router: Router::new(names, rules),
            risk,
            sessions: vec![
                DeskSession {
                    tag: 100,
                    grants: grants0,
                    killed: false,
                },
                DeskSession {
                    tag: 101,
                    grants: grants1,
                    killed: false,
                },
            ],
            clock: Clock::manual(T0),
            counters: Arc::new(Counters::default()),
            events: events.clone(),
            records: records.clone(),
            clock_status: Arc::new(ClockStatus::new(crate::clock::Policy::from_config(
                &crate::config::ClockCfg::default(),
            ))),
            clock_halt_text: b"clock not synchronised",
            audit_healthy: Some(audit.clone()),
        },
        T0,
    );
    (desk, events, records, audit)
}

impl Desk {
    fn new() -> Desk {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (desk, events, records, audit) = build(&dir);
        Desk {
            desk,
            audit,
            out: Collect {
                out: Vec::new(),
                venue_answer: VenueSend::Sent,
            },
            events,
            records,
            _dir: tmp,
            dir,
        }
    }

    fn order(session: u32, cl: &str, account: &str, side: Side, qty: i64, px: i64) -> Order {
        Order {
            cl_ord_id: OrderIdStr::new(cl.as_bytes()).unwrap(),
            account: acct(account),
            symbol: sym("AAPL"),
            side,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Day,
            price: Some(Price::from_units(px)),
            qty: Qty::from_units(qty),
            ..blank_order(SessionId(session), acct(account))
        }
    }

    fn new_order(&mut self, o: Order, dest: Option<&str>) -> Vec<Out> {
        self.desk
            .new_order(&mut self.out, o, dest.map(str::as_bytes), T0);
        self.out.take()
    }

    fn buy(&mut self, session: u32, cl: &str, account: &str, qty: i64) -> Vec<Out> {
        self.new_order(Desk::order(session, cl, account, Side::Buy, qty, 100), None)
    }

    fn cancel(&mut self, session: u32, cl: &str, orig: &str) -> Vec<Out> {
        let session = SessionId(session);
        self.desk
            .cancel(&mut self.out, session, cl.as_bytes(), orig.as_bytes(), T0);
        self.out.take()
    }

    fn replace(&mut self, session: u32, cl: &str, orig: &str, qty: i64, px: i64) -> Vec<Out> {
        let r = ReplaceIntent {
            cl: cl.as_bytes(),
            orig: orig.as_bytes(),
            qty: Qty::from_units(qty),
            price: Some(Price::from_units(px)),
            side: None,
            ord_type: None,
            symbol: None,
            account: None,
        };
        self.desk.replace(&mut self.out, SessionId(session), &r, T0);
        self.out.take()
    }

    fn records(&self) -> Vec<Lifecycle> {
        std::iter::from_fn(|| self.records.pop())
            .map(|r| r.event)
            .collect()
    }

    fn control(&mut self, request: ControlRequest) -> ControlReply {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.desk.on_control(
            &mut self.out,
            ControlCall {
                seq: 1,
                request,
                reply: tx,
            },
            T0,
        );
        rx.try_recv().unwrap()
    }
}

fn exec_types(out: &[Out]) -> Vec<(ExecType, OrdStatus)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Exec {
                exec_type, status, ..
            } => Some((*exec_type, *status)),
            _ => None,
        })
        .collect()
}

fn rejection(out: &[Out]) -> (u32, String) {
    match out {
        [Out::Exec {
            exec_type: ExecType::Rejected,
            rej: Some(code),
            text: Some(t),
            ..
        }] => (*code, t.clone()),
        other => panic!("expected one rejection, got {other:?}"),
    }
}

#[test]
fn a_new_order_is_journaled_routed_acknowledged_and_recorded() {
    let mut d = Desk::new();
    let out = d.buy(0, "N1", "A", 10);
    assert_eq!(exec_types(&out), [(ExecType::New, OrdStatus::New)]);
    assert_eq!(d.desk.open_orders(), 1);
    assert_eq!(d.records(), [Lifecycle::New, Lifecycle::Accepted]);
    let key = d
        .desk
        .orders()
        .lookup(SessionId(0), &OrderIdStr::new(b"N1").unwrap())
        .unwrap();
    let o = d.desk.orders().get(key).unwrap();
    assert_eq!(o.venue, crate::model::VenueId(0), "the default venue");
    assert!(o.times.decision >= o.times.instruction);
    assert_eq!(o.reserved_price, Price::from_units(100));
}

#[test]
fn a_fill_venue_fills_at_once_and_the_order_is_closed() {
    let mut d = Desk::new();
    let out = d.new_order(Desk::order(0, "F1", "A", Side::Buy, 10, 100), Some("FILL"));
    assert_eq!(
        exec_types(&out),
        [
            (ExecType::New, OrdStatus::New),
            (ExecType::Trade, OrdStatus::Filled)
        ]
    );
    assert_eq!(d.desk.open_orders(), 0);
    // Too late to cancel a filled order.
    let out = d.cancel(0, "C1", "F1");
    assert!(
        matches!(&out[..], [Out::CancelReject { reason: 0, known: true, text, .. }] if text == "order is no longer open")
    );
}

#[test]
fn route_rules_come_before_the_default_and_an_unknown_destination_is_refused() {
    let mut d = Desk::new();
    // Account B's rule routes to FILL.
    let out = d.buy(1, "B1", "B", 1);
    assert_eq!(
        exec_types(&out).last(),
        Some(&(ExecType::Trade, OrdStatus::Filled))
    );
    let (code, text) = rejection(&d.new_order(
        Desk::order(0, "X1", "A", Side::Buy, 1, 100),
        Some("NOWHERE"),
    ));
    assert_eq!(code, ord_rej_reason::BROKER_OPTION);
    assert_eq!(text, "unknown ExDestination(100)");
    assert_eq!(d.desk.open_orders(), 0);
}

#[test]
fn a_venue_that_is_down_refuses_new_orders() {
    let mut d = Desk::new();
    let (code, text) =
        rejection(&d.new_order(Desk::order(0, "D1", "A", Side::Buy, 1, 100), Some("EXT")));
    assert_eq!(code, ord_rej_reason::EXCHANGE_CLOSED);
    assert_eq!(text, "venue is down: order not routed");
    assert_eq!(d.records(), [Lifecycle::Rejected]);
}

#[test]
fn a_duplicate_cl_ord_id_on_the_session_is_refused_but_another_session_may_reuse_it() {
    let mut d = Desk::new();
    d.buy(0, "DUP", "A", 1);
    let (code, _) = rejection(&d.buy(0, "DUP", "A", 1));
    assert_eq!(code, ord_rej_reason::DUPLICATE_ORDER);
    assert_eq!(
        exec_types(&d.buy(1, "DUP", "A", 1)),
        [(ExecType::New, OrdStatus::New)]
    );
    assert_eq!(d.desk.open_orders(), 2);
}

#[test]
fn risk_refuses_with_the_check_and_leaves_the_credit_untouched() {
    let mut d = Desk::new();
    // 300 × 100 = 30,000 > the 20,000 credit limit.
    let (code, text) = rejection(&d.buy(0, "R1", "A", 300));
    assert_eq!(code, 3, "OrdRejReason 3: order exceeds limit");
    assert!(text.contains("credit"), "{text}");
    // The whole credit is still there: 199 × 100 fits.
    assert_eq!(
        exec_types(&d.buy(0, "R2", "A", 199)),
        [(ExecType::New, OrdStatus::New)]
    );
}

#[test]
fn orders_from_two_sessions_share_one_account_credit_limit() {
    // What one desk behind FIX and SBE guarantees: the account's credit is one.
    let mut d = Desk::new();
    assert_eq!(
        exec_types(&d.buy(0, "S0", "A", 150)),
        [(ExecType::New, OrdStatus::New)]
    );
    let (_, text) = rejection(&d.buy(1, "S1", "A", 100));
    assert!(text.contains("credit"), "{text}");
    // Cancelling the first frees the credit for the second session.
    let out = d.cancel(0, "S0C", "S0");
    assert_eq!(
        exec_types(&out),
        [(ExecType::Canceled, OrdStatus::Canceled)]
    );
    assert_eq!(
        exec_types(&d.buy(1, "S1b", "A", 100)),
        [(ExecType::New, OrdStatus::New)]
    );
}

#[test]
fn cancel_refusals_name_the_problem() {
    let mut d = Desk::new();
    d.buy(1, "B2", "B", 1); // filled at once (rule → FILL)
    d.buy(1, "A2", "A", 1);
    let reject = |out: Vec<Out>| match &out[..] {
        [Out::CancelReject {
            known,
            reason,
            text,
            ..
        }] => (*known, *reason, text.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reject(d.cancel(1, "", "A2")),
        (
            false,
            cxl_rej_reason::OTHER,
            "ClOrdID(11) and OrigClOrdID(41) are required (at most 40 characters)".into()
        )
    );
    assert_eq!(
        reject(d.cancel(1, "C", "NOPE")),
        (false, cxl_rej_reason::UNKNOWN_ORDER, "unknown order".into())
    );
    // Another session's order is unknown to this one.
    assert_eq!(
        reject(d.cancel(0, "C", "A2")),
        (false, cxl_rej_reason::UNKNOWN_ORDER, "unknown order".into())
    );
    // A ClOrdID this session already used.
    assert_eq!(
        reject(d.cancel(1, "A2", "A2")),
        (
            true,
            cxl_rej_reason::DUPLICATE_CL_ORD_ID,
            "duplicate ClOrdID(11) on this session".into()
        )
    );
    // The session lost account A: it may no longer cancel... unless the order is its key's
    // own; without keys, owners are empty, so the account grant decides.
    d.desk
        .session_mut(SessionId(1))
        .unwrap()
        .grants
        .accounts
        .retain(|a| a.as_bytes() != b"A");
    assert_eq!(
        reject(d.cancel(1, "C2", "A2")),
        (
            false,
            cxl_rej_reason::OTHER,
            "not permitted: account".into()
        )
    );
}

#[test]
fn a_cancel_at_an_external_venue_is_pending_until_it_answers() {
    let mut d = Desk::new();
    d.desk.venue_up(&mut d.out, crate::model::VenueId(2), T0);
    d.out.take();
    let out = d.new_order(Desk::order(0, "E1", "A", Side::Buy, 2, 100), Some("EXT"));
    let key = match &out[..] {
        [Out::Venue {
            venue: crate::model::VenueId(2),
            key,
            req: VenueRequest::New,
        }, Out::Exec {
            exec_type: ExecType::PendingNew,
            ..
        }] => *key,
        other => panic!("{other:?}"),
    };
    d.desk.apply_venue_events(
        &mut d.out,
        &[VenueEvent::Accepted {
            key,
            venue_order_id: Default::default(),
        }],
        T0,
    );
    assert_eq!(exec_types(&d.out.take()), [(ExecType::New, OrdStatus::New)]);
    // A partial fill, then the cancel.
    d.desk.apply_venue_events(
        &mut d.out,
        &[VenueEvent::Fill {
            key,
            qty: Qty::from_units(1),
            price: Price::from_units(100),
            exec_id: 0,
            leaves: Qty::from_units(1),
        }],
        T0,
    );
    assert_eq!(
        exec_types(&d.out.take()),
        [(ExecType::Trade, OrdStatus::PartiallyFilled)]
    );
    let out = d.cancel(0, "E1C", "E1");
    assert!(matches!(
        &out[..],
        [
            Out::Venue {
                req: VenueRequest::Cancel,
                ..
            },
            Out::Exec {
                exec_type: ExecType::PendingCancel,
                ..
            }
        ]
    ));
    // A second instruction while one is pending is refused.
    let out = d.cancel(0, "E1D", "E1");
    assert!(
        matches!(&out[..], [Out::CancelReject { reason, .. }] if *reason == cxl_rej_reason::ALREADY_PENDING)
    );
    d.desk.apply_venue_events(
        &mut d.out,
        &[VenueEvent::Canceled {
            key,
            canceled_qty: Qty::from_units(1),
        }],
        T0,
    );
    match &d.out.take()[..] {
        [Out::Exec {
            exec_type: ExecType::Canceled,
            cl,
            orig: Some(orig),
            cum,
            ..
        }] => {
            assert_eq!((cl.as_str(), orig.as_str()), ("E1C", "E1"));
            assert_eq!(*cum, Qty::from_units(1));
        }
        other => panic!("{other:?}"),
    }
    // The venue goes down: a new order for it is refused at once.
    d.desk.venue_down(crate::model::VenueId(2), T0, "test");
    let (code, _) =
        rejection(&d.new_order(Desk::order(0, "E2", "A", Side::Buy, 1, 100), Some("EXT")));
    assert_eq!(code, ord_rej_reason::EXCHANGE_CLOSED);
}

#[test]
fn an_external_venue_that_cannot_take_a_cancel_refuses_it_and_the_order_stays() {
    let mut d = Desk::new();
    d.desk.venue_up(&mut d.out, crate::model::VenueId(2), T0);
    d.new_order(Desk::order(0, "E3", "A", Side::Buy, 2, 100), Some("EXT"));
    d.out.venue_answer = VenueSend::Down;
    let out = d.cancel(0, "E3C", "E3");
    assert!(matches!(
        &out[..],
        [Out::Venue { .. }, Out::CancelReject { text, known: true, .. }] if text == "venue is down: cancel not sent"
    ));
    assert_eq!(d.desk.open_orders(), 1);
}

#[test]
fn a_replace_changes_terms_but_not_identity_and_risk_checks_the_new_terms() {
    let mut d = Desk::new();
    d.buy(0, "P1", "A", 10);
    let out = d.replace(0, "P2", "P1", 20, 101);
    match &out[..] {
        [Out::Exec {
            exec_type: ExecType::Replaced,
            cl,
            orig: Some(orig),
            ..
        }] => assert_eq!((cl.as_str(), orig.as_str()), ("P2", "P1")),
        other => panic!("{other:?}"),
    }
    let key = d
        .desk
        .orders()
        .lookup(SessionId(0), &OrderIdStr::new(b"P2").unwrap())
        .unwrap();
    assert_eq!(d.desk.orders().get(key).unwrap().qty, Qty::from_units(20));
    // Side may not change.
    let r = ReplaceIntent {
        cl: b"P3",
        orig: b"P2",
        qty: Qty::from_units(20),
        price: None,
        side: Some(Some(Side::Sell)),
        ord_type: None,
        symbol: None,
        account: None,
    };
    d.desk.replace(&mut d.out, SessionId(0), &r, T0);
    assert!(matches!(
        &d.out.take()[..],
        [Out::CancelReject { text, known: true, .. }] if text == "Side(54) cannot change on a replace"
    ));
    // Over the credit limit: refused by risk, the order keeps its terms.
    let out = d.replace(0, "P4", "P2", 500, 101);
    assert!(matches!(&out[..], [Out::CancelReject { text, .. }] if text.contains("credit")));
    assert_eq!(d.desk.orders().get(key).unwrap().qty, Qty::from_units(20));
    assert_eq!(
        d.records(),
        [
            Lifecycle::New,
            Lifecycle::Accepted,
            Lifecycle::ReplaceRequested,
            Lifecycle::Replaced,
            Lifecycle::ReplaceRejected,
            Lifecycle::ReplaceRejected
        ]
    );
}

#[test]
fn status_reports_a_known_order_refuses_a_foreign_one_and_rejects_an_unknown_one() {
    let mut d = Desk::new();
    d.buy(1, "Q1", "B", 1);
    let asked = blank_order(SessionId(1), Account::EMPTY);
    assert_eq!(
        d.desk.status(&mut d.out, SessionId(1), b"Q1", &asked, T0),
        Ok(())
    );
    assert_eq!(
        exec_types(&d.out.take()),
        [(ExecType::OrderStatus, OrdStatus::Filled)]
    );
    assert_eq!(
        d.desk.status(&mut d.out, SessionId(1), b"NOPE", &asked, T0),
        Ok(())
    );
    match &d.out.take()[..] {
        [Out::Exec {
            exec_type: ExecType::OrderStatus,
            status: OrdStatus::Rejected,
            rej: Some(r),
            ..
        }] => assert_eq!(*r, ord_rej_reason::UNKNOWN_ORDER),
        other => panic!("{other:?}"),
    }
    d.desk
        .session_mut(SessionId(1))
        .unwrap()
        .grants
        .accounts
        .clear();
    assert_eq!(
        d.desk.status(&mut d.out, SessionId(1), b"Q1", &asked, T0),
        Err(Denied)
    );
    assert!(d.out.take().is_empty(), "the shell answers a denial");
}

#[test]
fn mass_cancel_takes_the_sessions_open_orders_only() {
    let mut d = Desk::new();
    d.buy(0, "M1", "A", 1);
    d.buy(0, "M2", "A", 1);
    d.buy(1, "M3", "A", 1);
    d.desk
        .mass_cancel(&mut d.out, SessionId(0), b"MC", b'7', None, T0);
    let out = d.out.take();
    assert_eq!(
        out[0],
        Out::Mass {
            session: 0,
            accepted: true,
            affected: 2
        }
    );
    assert_eq!(
        exec_types(&out[1..]),
        [
            (ExecType::Canceled, OrdStatus::Canceled),
            (ExecType::Canceled, OrdStatus::Canceled)
        ]
    );
    assert_eq!(d.desk.open_orders(), 1);
    d.desk
        .mass_cancel(&mut d.out, SessionId(1), b"MC2", b'1', None, T0);
    assert_eq!(
        d.out.take(),
        [Out::Mass {
            session: 1,
            accepted: false,
            affected: 0
        }],
        "by symbol without a symbol"
    );
}

#[test]
fn cancel_on_disconnect_cancels_the_sessions_open_orders() {
    let mut d = Desk::new();
    d.buy(0, "K1", "A", 1);
    d.buy(1, "K2", "A", 1);
    d.desk.cancel_session_orders(&mut d.out, SessionId(0), T0);
    assert_eq!(
        exec_types(&d.out.take()),
        [(ExecType::Canceled, OrdStatus::Canceled)]
    );
    assert_eq!(d.desk.open_orders(), 1);
    assert!(std::iter::from_fn(|| d.events.pop())
        .any(|e| matches!(e, Event::CanceledOnDisconnect { orders: 1, .. })));
}

#[test]
fn an_account_kill_cancels_its_orders_and_refuses_new_ones_until_released() {
    let mut d = Desk::new();
    d.buy(0, "K1", "A", 1);
    d.buy(1, "K2", "B", 1);
    let reply = d.control(ControlRequest::Kill(KillTarget::Account(acct("A"))));
    assert!(matches!(
        reply,
        ControlReply::Kill {
            on: true,
            orders_canceled: 1,
            ..
        }
    ));
    assert_eq!(
        exec_types(&d.out.take()),
        [(ExecType::Canceled, OrdStatus::Canceled)]
    );
    let (_, text) = rejection(&d.buy(0, "K3", "A", 1));
    assert!(text.contains("kill"), "{text}");
    d.control(ControlRequest::Unkill(KillTarget::Account(acct("A"))));
    assert_eq!(
        exec_types(&d.buy(0, "K4", "A", 1)),
        [(ExecType::New, OrdStatus::New)]
    );
    // A session (key) kill refuses that session's new orders only.
    d.control(ControlRequest::Kill(KillTarget::Session(1)));
    let (_, text) = rejection(&d.buy(1, "K5", "A", 1));
    assert!(text.contains("kill"), "{text}");
    assert_eq!(
        exec_types(&d.buy(0, "K6", "A", 1)),
        [(ExecType::New, OrdStatus::New)]
    );
}

#[test]
fn refusals_before_the_desk_checks_skip_the_drop_copy_when_asked() {
    let mut d = Desk::new();
    let o = Desk::order(0, "Z1", "B", Side::Buy, 1, 100);
    d.desk.refuse(
        &mut d.out,
        &o,
        ord_rej_reason::OTHER,
        b"not permitted: account",
        false,
        T0,
    );
    match &d.out.take()[..] {
        [Out::Exec {
            copy: false,
            exec_type: ExecType::Rejected,
            ..
        }] => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(d.records(), [Lifecycle::Rejected], "the record keeps it");
}

#[test]
fn recovery_restores_open_orders_and_their_credit_from_the_journal() {
    let mut d = Desk::new();
    d.buy(0, "J1", "A", 150);
    d.buy(0, "J2", "A", 10);
    d.cancel(0, "J2C", "J2");
    d.desk.flush_journal();
    let (mut again, _, _, _) = build(&d.dir);
    let mut out = Collect {
        out: Vec::new(),
        venue_answer: VenueSend::Sent,
    };
    again.recover(&mut out, T0);
    assert_eq!(again.open_orders(), 1);
    // J1's reservation came back: 100 more would exceed the credit limit.
    let o = Desk::order(1, "J3", "A", Side::Buy, 100, 100);
    again.new_order(&mut out, o, None, T0);
    let out = out.take();
    assert!(
        matches!(out.last(), Some(Out::Exec { exec_type: ExecType::Rejected, text: Some(t), .. }) if t.contains("credit")),
        "{out:?}"
    );
}

#[test]
fn while_the_audit_trail_fails_closed_new_orders_and_replaces_are_refused_and_cancels_pass() {
    let mut d = Desk::new();
    d.buy(0, "T1", "A", 1);
    d.audit.store(false, std::sync::atomic::Ordering::Release);
    let (code, text) = rejection(&d.buy(0, "T2", "A", 1));
    assert_eq!(code, ord_rej_reason::OTHER);
    assert!(text.starts_with("audit trail unavailable"), "{text}");
    let out = d.replace(0, "T1R", "T1", 2, 100);
    assert!(
        matches!(&out[..], [Out::CancelReject { text, .. }] if text.starts_with("audit trail unavailable")),
        "{out:?}"
    );
    // Reducing exposure is always allowed.
    assert_eq!(
        exec_types(&d.cancel(0, "T1C", "T1")),
        [(ExecType::Canceled, OrdStatus::Canceled)]
    );
    d.audit.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(
        exec_types(&d.buy(0, "T3", "A", 1)),
        [(ExecType::New, OrdStatus::New)]
    );
}
