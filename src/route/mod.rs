//! HOT — chooses the venue for an order: the first configured `[[route]]` rule whose conditions
//! (ExDestination <100>, symbol, account) all match; else the venue the ExDestination names (an
//! ExDestination that names none is refused); else the first venue. So a rule can redirect even
//! an explicit ExDestination (an alias, or a venue the firm routes elsewhere). Built once from
//! config (cold); lookups compare inline strings, no allocation.

use crate::model::{Account, InlineStr, Symbol};

/// A venue name (also what clients put in ExDestination).
pub type VenueName = InlineStr<16>;

/// One `[[route]]` rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub ex_destination: Option<VenueName>,
    pub symbol: Option<Symbol>,
    pub account: Option<Account>,
    pub venue: crate::model::VenueId,
}

/// Why no venue could be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// ExDestination names no venue and no rule maps it.
    UnknownDestination,
}

/// The routing table.
#[derive(Clone, Debug, Default)]
pub struct Router {
    venues: Vec<VenueName>,
    rules: Vec<Rule>,
}

impl Router {
    pub fn new(venues: Vec<VenueName>, rules: Vec<Rule>) -> Router {
        Router { venues, rules }
    }

    pub fn venue_name(&self, v: crate::model::VenueId) -> &[u8] {
        self.venues.get(v.index()).map_or(b"?", |n| n.as_bytes())
    }

    /// Picks the venue for an order. Returns the venue index and why it was chosen (recorded as
    /// best-execution evidence).
    pub fn route(
        &self,
        ex_destination: Option<&[u8]>,
        symbol: &Symbol,
        account: &Account,
    ) -> Result<(crate::model::VenueId, RouteReason), RouteError> {
        for (i, r) in self.rules.iter().enumerate() {
            let dest_ok = match (&r.ex_destination, ex_destination) {
                (Some(want), Some(got)) => want.as_bytes() == got,
                (Some(_), None) => false,
                (None, _) => true,
            };
            if dest_ok
                && r.symbol.is_none_or(|s| s == *symbol)
                && r.account.is_none_or(|a| a == *account)
            {
                return Ok((r.venue, RouteReason::Rule(i as u16)));
            }
        }
        if let Some(dest) = ex_destination {
            return match self
                .venues
                .iter()
                .position(|n| n.as_bytes() == dest)
                .and_then(crate::model::VenueId::of)
            {
                Some(v) => Ok((v, RouteReason::ExDestination)),
                None => Err(RouteError::UnknownDestination),
            };
        }
        Ok((crate::model::VenueId(0), RouteReason::Default))
    }
}

/// Why a venue was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteReason {
    Rule(u16),
    ExDestination,
    Default,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> VenueName {
        VenueName::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn rules_then_destination_then_default() {
        let r = Router::new(
            vec![n("SIM"), n("XNAS"), n("XLON")],
            vec![
                Rule {
                    ex_destination: None,
                    symbol: Symbol::new(b"VOD"),
                    account: None,
                    venue: crate::model::VenueId(2),
                },
                Rule {
                    ex_destination: Some(n("NASDAQ")),
                    symbol: None,
                    account: None,
                    venue: crate::model::VenueId(1),
                },
            ],
        );
        let acc = Account::EMPTY;
        let aapl = Symbol::new(b"AAPL").unwrap();
        assert_eq!(
            r.route(None, &Symbol::new(b"VOD").unwrap(), &acc),
            Ok((crate::model::VenueId(2), RouteReason::Rule(0)))
        );
        assert_eq!(
            r.route(Some(b"NASDAQ"), &aapl, &acc),
            Ok((crate::model::VenueId(1), RouteReason::Rule(1)))
        );
        assert_eq!(
            r.route(Some(b"XNAS"), &aapl, &acc),
            Ok((crate::model::VenueId(1), RouteReason::ExDestination))
        );
        assert_eq!(
            r.route(None, &aapl, &acc),
            Ok((crate::model::VenueId(0), RouteReason::Default))
        );
        assert_eq!(
            r.route(Some(b"NOPE"), &aapl, &acc),
            Err(RouteError::UnknownDestination)
        );
    }
}
