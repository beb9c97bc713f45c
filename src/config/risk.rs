//! COLD — the risk part of the configuration: `[[account]]` (every limit required: a missing one
//! is a config error naming the key, never "unlimited"), `[[symbol]]` (tick size, restricted
//! flag, reference price) and `[risk]` (table sizes), turned into the risk core's types.

use serde::Deserialize;

use super::{Config, ConfigError};
use crate::model::{Account, Nanos, OrdType, Price, Qty, Symbol, TimeInForce};
use crate::risk::{
    BuildError, KeyCaps, LimitName, LimitsSpec, Notional, OrdTypeSet, RiskConfig, RiskCore,
    SymbolSpec, TifSet,
};

/// A decimal number in the config: a TOML integer, float or string ("1000000.25"). Strings are
/// exact; floats are read through their shortest decimal form.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(untagged)]
pub enum Decimal {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Decimal {
    /// The value scaled by 10^`decimals`, exactly; `None` for more fractional digits than that
    /// (unless zeros), a malformed string or an overflow.
    pub fn scaled(&self, decimals: u32) -> Option<i128> {
        let text = match self {
            Decimal::Int(i) => i.to_string(),
            Decimal::Float(f) if f.is_finite() => format!("{f}"),
            Decimal::Float(_) => return None,
            Decimal::Str(s) => s.trim().to_string(),
        };
        parse_scaled(&text, decimals)
    }
}

fn parse_scaled(text: &str, decimals: u32) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.len() > 24 {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let mut n = 0u32;
    for b in frac.bytes() {
        if n < decimals {
            v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
            n += 1;
        } else if b != b'0' {
            return None;
        }
    }
    while n < decimals {
        v = v.checked_mul(10)?;
        n += 1;
    }
    Some(if neg { -v } else { v })
}

/// `[[account]]`: one trading account and every limit it trades under.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountCfg {
    /// Account(1) value (or a session's `default_account`), 1–24 characters.
    pub name: String,
    /// Largest OrderQty(38) of one order.
    pub max_order_qty: Option<Decimal>,
    /// Largest price × quantity of one order, in the account currency.
    pub max_order_notional: Option<Decimal>,
    /// Price collar half-width in basis points of the reference price.
    pub collar_bps: Option<u32>,
    /// Price collar half-width in ticks (the symbol's tick_size).
    pub collar_ticks: Option<u32>,
    /// Oldest venue reference price an order may be checked against.
    pub reference_max_age_ms: Option<u64>,
    /// Open + executed notional, buys and sells, in the account currency.
    pub credit_limit: Option<Decimal>,
    /// Per symbol: executed position + working buys.
    pub max_long: Option<Decimal>,
    /// Per symbol: working sells − executed position.
    pub max_short: Option<Decimal>,
    pub max_open_orders: Option<u32>,
    /// Allowed OrdType(40): "market", "limit".
    pub ord_types: Option<Vec<String>>,
    /// Allowed TimeInForce(59): "day", "gtc", "ioc", "fok".
    pub time_in_force: Option<Vec<String>>,
    /// Same side/symbol/qty/price within this window is a duplicate; 0 turns the check off.
    pub duplicate_window_ms: Option<u64>,
    /// More than this many new orders and replaces in `rate_period_ms` disables the account
    /// until `portcullis ctl enable-account`.
    pub max_msgs: Option<u32>,
    pub rate_period_ms: Option<u64>,
}

/// `[[symbol]]`: a tradable instrument. Orders for symbols not listed are rejected.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolCfg {
    pub symbol: String,
    /// Price increment, for tick collars.
    pub tick_size: Decimal,
    /// On the restricted list: every new order is rejected.
    #[serde(default)]
    pub restricted: bool,
    /// A reference price: with `reference_source = "venue"` the starting value (it ages like a
    /// venue price); with "config" the fixed reference.
    #[serde(default)]
    pub reference_price: Option<Decimal>,
    /// "venue" (default): last trade / mid from the venue, or a fill price; goes stale after
    /// the account's `reference_max_age_ms`. "config": `reference_price`, never stale.
    #[serde(default)]
    pub reference_source: Option<String>,
}

/// `[risk]`: sizes of the risk tables.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskCfg {
    /// Distinct (account, symbol) positions held at once; a new one beyond is rejected.
    pub max_positions: u32,
    /// Recent orders per account compared for duplicate-order detection.
    pub duplicate_slots: u32,
}

impl Default for RiskCfg {
    fn default() -> Self {
        RiskCfg {
            max_positions: 1 << 16,
            duplicate_slots: 16,
        }
    }
}

/// The risk tables built from config, plus what the engine applies after building the core.
pub struct RiskTables {
    pub accounts: Vec<(Account, LimitsSpec)>,
    pub symbols: Vec<SymbolSpec>,
    /// (symbol, price, pinned): reference prices to publish at start.
    pub references: Vec<(Symbol, Price, bool)>,
    /// Per-key caps, by session index.
    pub key_caps: Vec<(u32, KeyCaps)>,
}

fn ord_type_set(v: &[String]) -> Result<OrdTypeSet, String> {
    let mut set = OrdTypeSet::NONE;
    for t in v {
        set = set.with(match t.as_str() {
            "market" => OrdType::Market,
            "limit" => OrdType::Limit,
            other => return Err(format!("{other:?} is not \"market\" or \"limit\"")),
        });
    }
    Ok(set)
}

fn tif_set(v: &[String]) -> Result<TifSet, String> {
    let mut set = TifSet::NONE;
    for t in v {
        set = set.with(match t.as_str() {
            "day" => TimeInForce::Day,
            "gtc" => TimeInForce::GoodTillCancel,
            "ioc" => TimeInForce::ImmediateOrCancel,
            "fok" => TimeInForce::FillOrKill,
            other => return Err(format!("{other:?} is not one of day, gtc, ioc, fok")),
        });
    }
    Ok(set)
}

/// The config key of a limit (the collar has two).
fn limit_key(l: LimitName) -> &'static str {
    match l {
        LimitName::Collar => "collar_bps",
        other => other.as_str(),
    }
}

impl AccountCfg {
    /// The limits as a spec (missing ones stay `None`), or the key of a malformed value.
    pub fn spec(&self) -> Result<LimitsSpec, (&'static str, String)> {
        let qty = |k: &'static str, v: &Option<Decimal>| -> Result<Option<Qty>, _> {
            v.as_ref()
                .map(|d| {
                    d.scaled(crate::model::QTY_DECIMALS)
                        .and_then(|x| i64::try_from(x).ok())
                        .map(Qty)
                        .ok_or((k, format!("{d:?} is not a quantity (at most 4 decimals)")))
                })
                .transpose()
        };
        let money = |k: &'static str, v: &Option<Decimal>| -> Result<Option<Notional>, _> {
            v.as_ref()
                .map(|d| {
                    d.scaled(crate::model::PRICE_DECIMALS)
                        .map(Notional)
                        .ok_or((k, format!("{d:?} is not an amount (at most 8 decimals)")))
                })
                .transpose()
        };
        Ok(LimitsSpec {
            max_order_qty: qty("max_order_qty", &self.max_order_qty)?,
            max_order_notional: money("max_order_notional", &self.max_order_notional)?,
            collar_bps: self.collar_bps,
            collar_ticks: self.collar_ticks,
            reference_max_age: self.reference_max_age_ms.map(Nanos::from_millis),
            credit_limit: money("credit_limit", &self.credit_limit)?,
            max_long: qty("max_long", &self.max_long)?,
            max_short: qty("max_short", &self.max_short)?,
            max_open_orders: self.max_open_orders,
            ord_types: self
                .ord_types
                .as_deref()
                .map(ord_type_set)
                .transpose()
                .map_err(|e| ("ord_types", e))?,
            tifs: self
                .time_in_force
                .as_deref()
                .map(tif_set)
                .transpose()
                .map_err(|e| ("time_in_force", e))?,
            duplicate_window: self.duplicate_window_ms.map(Nanos::from_millis),
            max_msgs: self.max_msgs,
            rate_period: self.rate_period_ms.map(Nanos::from_millis),
        })
    }
}

impl Config {
    /// The risk tables, validated: every account has every limit, names fit, symbols are
    /// unique with a positive tick size. Errors name the key.
    pub fn risk_tables(&self, file: &str) -> Result<RiskTables, ConfigError> {
        let err = |key: String, problem: String| ConfigError {
            file: file.to_string(),
            key,
            problem,
        };
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for (i, a) in self.accounts.iter().enumerate() {
            let key = |k: &str| format!("account[{i}].{k}");
            let Some(name) = Account::new(a.name.as_bytes()).filter(|n| !n.is_empty()) else {
                return Err(err(
                    key("name"),
                    format!("{:?} must be 1–24 characters", a.name),
                ));
            };
            if accounts.iter().any(|(n, _)| *n == name) {
                return Err(err(
                    key("name"),
                    format!("account {:?} is configured twice", a.name),
                ));
            }
            let spec = a.spec().map_err(|(k, p)| err(key(k), p))?;
            match spec.build(name) {
                Ok(_) => {}
                Err(BuildError::MissingLimit { limit, .. }) => {
                    return Err(err(
                        key(limit_key(limit)),
                        format!(
                            "missing: every account needs every limit (account {:?}){}",
                            a.name,
                            if limit == LimitName::Collar {
                                "; set collar_bps and/or collar_ticks"
                            } else {
                                ""
                            }
                        ),
                    ))
                }
                Err(BuildError::InvalidLimit { limit, .. }) => {
                    return Err(err(
                        key(limit_key(limit)),
                        "invalid: must be positive (credit and position limits: ≥ 0)".into(),
                    ))
                }
                Err(e) => return Err(err(key("name"), e.to_string())),
            }
            accounts.push((name, spec));
        }
        let mut symbols: Vec<SymbolSpec> = Vec::with_capacity(self.symbols.len());
        let mut references = Vec::new();
        for (i, s) in self.symbols.iter().enumerate() {
            let key = |k: &str| format!("symbol[{i}].{k}");
            let Some(symbol) = Symbol::new(s.symbol.as_bytes()).filter(|n| !n.is_empty()) else {
                return Err(err(
                    key("symbol"),
                    format!("{:?} must be 1–24 characters", s.symbol),
                ));
            };
            if symbols.iter().any(|x| x.symbol == symbol) {
                return Err(err(
                    key("symbol"),
                    format!("symbol {:?} is configured twice", s.symbol),
                ));
            }
            let price = |k: &str, d: &Decimal| {
                d.scaled(crate::model::PRICE_DECIMALS)
                    .and_then(|v| i64::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .map(Price)
                    .ok_or_else(|| {
                        err(
                            key(k),
                            format!("{d:?} is not a positive price (at most 8 decimals)"),
                        )
                    })
            };
            let tick_size = price("tick_size", &s.tick_size)?;
            let pinned = match s.reference_source.as_deref().unwrap_or("venue") {
                "venue" => false,
                "config" => true,
                other => {
                    return Err(err(
                        key("reference_source"),
                        format!("{other:?} is not \"venue\" or \"config\""),
                    ))
                }
            };
            match &s.reference_price {
                Some(d) => references.push((symbol, price("reference_price", d)?, pinned)),
                None if pinned => {
                    return Err(err(
                        key("reference_price"),
                        "is required with reference_source = \"config\"".into(),
                    ))
                }
                None => {}
            }
            symbols.push(SymbolSpec {
                symbol,
                tick_size,
                restricted: s.restricted,
            });
        }
        let mut key_caps = Vec::new();
        for (i, s) in self.sessions.iter().enumerate() {
            if s.key_max_order_qty.is_none() && s.key_max_order_notional.is_none() {
                continue;
            }
            let key = |k: &str| format!("session[{i}].{k}");
            let max_order_qty = match &s.key_max_order_qty {
                Some(d) => d
                    .scaled(crate::model::QTY_DECIMALS)
                    .and_then(|v| i64::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .map(Qty)
                    .ok_or_else(|| {
                        err(
                            key("key_max_order_qty"),
                            format!("{d:?} is not a positive quantity (at most 4 decimals)"),
                        )
                    })?,
                None => Qty(i64::MAX),
            };
            let max_order_notional = match &s.key_max_order_notional {
                Some(d) => d
                    .scaled(crate::model::PRICE_DECIMALS)
                    .filter(|v| *v > 0)
                    .map(Notional)
                    .ok_or_else(|| {
                        err(
                            key("key_max_order_notional"),
                            format!("{d:?} is not a positive amount (at most 8 decimals)"),
                        )
                    })?,
                None => Notional(i128::MAX / 1_000_000),
            };
            key_caps.push((
                i as u32,
                KeyCaps {
                    max_order_qty,
                    max_order_notional,
                },
            ));
        }
        if self.risk.max_positions == 0 {
            return Err(err(
                "risk.max_positions".into(),
                "must be at least 1".into(),
            ));
        }
        if self.risk.duplicate_slots == 0 || self.risk.duplicate_slots > 1024 {
            return Err(err(
                "risk.duplicate_slots".into(),
                format!("{} is outside 1..=1024", self.risk.duplicate_slots),
            ));
        }
        Ok(RiskTables {
            accounts,
            symbols,
            references,
            key_caps,
        })
    }

    /// Builds the risk core from the config (references published as of `now`).
    pub fn risk_core(&self, now: Nanos) -> Result<RiskCore, ConfigError> {
        let t = self.risk_tables("config")?;
        let cfg = RiskConfig {
            accounts: &t.accounts,
            symbols: &t.symbols,
            key_caps: &t.key_caps,
            max_positions: self.risk.max_positions,
            duplicate_slots: self.risk.duplicate_slots,
        };
        let mut core = RiskCore::new(&cfg).map_err(|e| ConfigError {
            file: "config".into(),
            key: "risk".into(),
            problem: e.to_string(),
        })?;
        for (symbol, price, pinned) in t.references {
            let r = if pinned {
                core.pin_reference(&symbol, price)
            } else {
                core.set_reference(&symbol, price, now)
            };
            // Symbols and prices were validated above.
            let _ = r;
        }
        Ok(core)
    }
}

/// Tests, benchmarks and demos only: `[[account]]`s with limits far above anything they send
/// (no duplicate window) and `[[symbol]]`s with a fixed reference price of 100 and a collar
/// wide enough for any positive price — risk on, nothing refused.
#[doc(hidden)]
pub fn permissive_toml(accounts: &[&str], symbols: &[&str]) -> String {
    let mut s = String::new();
    for a in accounts {
        s.push_str(&format!(
            "[[account]]\nname = \"{a}\"\nmax_order_qty = 1000000000\nmax_order_notional = 1000000000000\ncollar_bps = 100000000\nreference_max_age_ms = 3600000\ncredit_limit = 1000000000000000\nmax_long = 1000000000\nmax_short = 1000000000\nmax_open_orders = 1000000\nord_types = [\"market\", \"limit\"]\ntime_in_force = [\"day\", \"gtc\", \"ioc\", \"fok\"]\nduplicate_window_ms = 0\nmax_msgs = 1000000000\nrate_period_ms = 1000\n\n"
        ));
    }
    for sym in symbols {
        s.push_str(&format!(
            "[[symbol]]\nsymbol = \"{sym}\"\ntick_size = \"0.0001\"\nreference_price = 100\nreference_source = \"config\"\n\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_scaled("10.25", 4), Some(102_500));
        assert_eq!(parse_scaled("10.250000", 4), Some(102_500));
        assert_eq!(parse_scaled("10.25001", 4), None);
        assert_eq!(parse_scaled("-3", 2), Some(-300));
        assert_eq!(parse_scaled("1e5", 2), None);
        assert_eq!(Decimal::Float(0.1).scaled(8), Some(10_000_000));
        assert_eq!(Decimal::Int(7).scaled(8), Some(700_000_000));
    }
}
