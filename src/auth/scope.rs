//! HOT (the per-message check) / COLD (parsing) — scopes and roles.
//!
//! A key's permissions are a bitmask ([`Scopes`]) checked per application message with one AND;
//! roles are named default sets. Never allocates on the check.

/// A set of permissions, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(pub u8);

impl Scopes {
    /// NewOrderSingle <D>.
    pub const ORDERS_NEW: Scopes = Scopes(1);
    /// OrderCancelRequest <F> and OrderMassCancelRequest <q>.
    pub const ORDERS_CANCEL: Scopes = Scopes(2);
    /// OrderCancelReplaceRequest <G>.
    pub const ORDERS_REPLACE: Scopes = Scopes(4);
    /// OrderStatusRequest <H> and drop copy (a drop-copy session's key needs it).
    pub const ORDERS_READ: Scopes = Scopes(8);
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes(15);

    /// Every scope name, with its bit.
    pub const NAMES: [(&'static str, Scopes); 4] = [
        ("orders:new", Scopes::ORDERS_NEW),
        ("orders:cancel", Scopes::ORDERS_CANCEL),
        ("orders:replace", Scopes::ORDERS_REPLACE),
        ("orders:read", Scopes::ORDERS_READ),
    ];

    #[inline]
    pub const fn contains(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// The scope named `name` (`orders:new`, ...).
    pub fn parse(name: &str) -> Option<Scopes> {
        Scopes::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    /// The name of a single-bit scope ("orders:new"); "?" otherwise.
    pub fn name(self) -> &'static str {
        Scopes::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }

    /// Names of the scopes in the set, for listings.
    pub fn names(self) -> Vec<&'static str> {
        Scopes::NAMES
            .iter()
            .filter(|(_, s)| self.contains(*s))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// A key's role: the default scopes when the key names none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// New, cancel, replace, read.
    Trader,
    /// Read only.
    Viewer,
    /// Cancel and read: can pull orders, cannot add risk.
    RiskOfficer,
    /// Everything.
    Admin,
}

impl Role {
    pub const NAMES: [(&'static str, Role); 4] = [
        ("trader", Role::Trader),
        ("viewer", Role::Viewer),
        ("risk-officer", Role::RiskOfficer),
        ("admin", Role::Admin),
    ];

    pub fn parse(name: &str) -> Option<Role> {
        Role::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
    }

    pub fn name(self) -> &'static str {
        Role::NAMES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn default_scopes(self) -> Scopes {
        match self {
            Role::Trader | Role::Admin => Scopes::ALL,
            Role::Viewer => Scopes::ORDERS_READ,
            Role::RiskOfficer => Scopes::ORDERS_CANCEL.union(Scopes::ORDERS_READ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_default_scopes() {
        assert!(Role::Trader.default_scopes().contains(Scopes::ORDERS_NEW));
        assert!(!Role::Viewer.default_scopes().contains(Scopes::ORDERS_NEW));
        assert!(Role::Viewer.default_scopes().contains(Scopes::ORDERS_READ));
        let r = Role::RiskOfficer.default_scopes();
        assert!(r.contains(Scopes::ORDERS_CANCEL) && !r.contains(Scopes::ORDERS_REPLACE));
        assert_eq!(Role::parse("risk-officer"), Some(Role::RiskOfficer));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn scope_names_round_trip() {
        for (n, s) in Scopes::NAMES {
            assert_eq!(Scopes::parse(n), Some(s));
            assert_eq!(s.name(), n);
        }
        assert_eq!(Scopes::parse("orders:delete"), None);
        assert_eq!(Scopes::ALL.names().len(), 4);
    }

    fn key(id: &str, accounts: &[&str], any: bool) -> crate::auth::Key {
        crate::auth::Key {
            id: crate::auth::KeyId::new(id.as_bytes()).unwrap(),
            secrets: arrayvec::ArrayVec::new(),
            role: Role::Trader,
            scopes: Scopes::ALL,
            comp_ids: vec![],
            accounts: accounts
                .iter()
                .map(|a| crate::model::Account::new(a.as_bytes()).unwrap())
                .collect(),
            any_account: any,
            symbols: arrayvec::ArrayVec::new(),
            allow: vec![],
            tier: None,
            expires_ns: u64::MAX,
            revoked: false,
            unlock_gen: 0,
            throttle_slot: None,
            age_from_ms: 0,
            age_limited: false,
        }
    }

    fn acc(a: &str) -> crate::model::Account {
        crate::model::Account::new(a.as_bytes()).unwrap()
    }

    #[test]
    fn a_key_without_a_grant_trades_only_its_sessions_default_account() {
        let slot = crate::throttle::KeySlot(0);
        let g = Grants::from_key(&key("k", &[], false), slot, acc("DEF"));
        assert!(g.allows_account(b"DEF"));
        assert!(!g.allows_account(b"OTHER") && !g.allows_account(b""));
        let g = Grants::from_key(&key("k", &["A", "B"], false), slot, acc("DEF"));
        assert!(g.allows_account(b"A") && g.allows_account(b"B"));
        assert!(
            !g.allows_account(b"DEF"),
            "a named grant does not add the default"
        );
        let g = Grants::from_key(&key("k", &[], true), slot, acc("DEF"));
        assert!(g.allows_account(b"DEF") && g.allows_account(b"ANYTHING"));
        let dev = Grants::unauthenticated(slot, acc("DEF"), &[acc("X")], false);
        assert!(dev.allows_account(b"DEF") && dev.allows_account(b"X"));
        assert!(!dev.allows_account(b"Y"));
        assert!(Grants::unauthenticated(slot, acc("DEF"), &[], true).allows_account(b"Y"));
    }

    #[test]
    fn an_order_is_managed_under_a_grant_of_its_account_or_by_its_own_key() {
        let slot = crate::throttle::KeySlot(0);
        let k = crate::auth::KeyId::new(b"k").unwrap();
        let other = crate::auth::KeyId::new(b"other").unwrap();
        let g = Grants::from_key(&key("k", &["A"], false), slot, acc("DEF"));
        assert!(g.may_manage(&acc("A"), &other));
        assert!(
            g.may_manage(&acc("LOST"), &k),
            "its own order in a lost account"
        );
        assert!(!g.may_manage(&acc("LOST"), &other));
        let empty = crate::auth::KeyId::EMPTY;
        assert!(
            !g.may_manage(&acc("LOST"), &empty),
            "a recovered order: grant only"
        );
        let dev = Grants::unauthenticated(slot, acc("DEF"), &[], false);
        assert!(
            !dev.may_manage(&acc("LOST"), &empty),
            "no key is nobody's owner"
        );
    }
}

/// What a logged-on session may do: its key's scopes, account and symbol grants, expiry and
/// throttle slot. Held inline in the session slot; read per application message (HOT).
///
/// # Accounts (least privilege)
/// A session may name only the accounts in `accounts`, or any when `any_account` (an explicit
/// `"*"` grant). A key stored with no accounts gets its session's `default_account` only; an
/// unauthenticated development session gets its `default_account` plus the session's
/// `dev_accounts`. Instructions about an existing order (cancel, replace, status) are checked
/// against the account the order was accepted under, see [`Grants::may_manage`].
#[derive(Clone, Debug)]
pub struct Grants {
    /// The authenticated key; empty for an unauthenticated (development) session.
    pub key_id: crate::model::InlineStr<32>,
    pub scopes: Scopes,
    /// Accounts <1> orders may name (unless `any_account`).
    pub accounts: arrayvec::ArrayVec<crate::model::Account, { super::keys::MAX_GRANTS }>,
    /// An explicit any-account grant (`"*"`).
    pub any_account: bool,
    /// Symbols <55> orders may name; empty: any.
    pub symbols: arrayvec::ArrayVec<crate::model::Symbol, { super::keys::MAX_GRANTS }>,
    /// Nanoseconds since the Unix epoch when the key expires (`u64::MAX`: never).
    pub expires_ns: u64,
    /// The throttle buckets the session's messages draw from.
    pub throttle: crate::throttle::KeySlot,
}

impl Grants {
    /// No key (a development session without signed logons): every scope, the session's
    /// `default_account` and the `extra` accounts (`any`: every account), the session's own
    /// throttle slot.
    pub fn unauthenticated(
        session_slot: crate::throttle::KeySlot,
        default_account: crate::model::Account,
        extra: &[crate::model::Account],
        any: bool,
    ) -> Grants {
        let mut accounts = arrayvec::ArrayVec::new();
        accounts.push(default_account);
        for a in extra {
            if !accounts.contains(a) {
                // Config validation bounds `extra` to MAX_GRANTS - 1 names.
                let _ = accounts.try_push(*a);
            }
        }
        Grants {
            key_id: crate::model::InlineStr::EMPTY,
            scopes: Scopes::ALL,
            accounts,
            any_account: any,
            symbols: arrayvec::ArrayVec::new(),
            expires_ns: u64::MAX,
            throttle: session_slot,
        }
    }

    /// The grants of key `k` on a session whose own throttle slot is `session_slot` (used
    /// when the key has no tier of its own) and whose default account is `default_account`
    /// (the only account of a key without an account grant).
    pub fn from_key(
        k: &super::Key,
        session_slot: crate::throttle::KeySlot,
        default_account: crate::model::Account,
    ) -> Grants {
        let mut accounts = k.accounts.clone();
        if accounts.is_empty() && !k.any_account {
            accounts.push(default_account);
        }
        Grants {
            key_id: k.id,
            scopes: k.scopes,
            accounts,
            any_account: k.any_account,
            symbols: k.symbols.clone(),
            expires_ns: k.expires_ns,
            throttle: k
                .throttle_slot
                .map_or(session_slot, crate::throttle::KeySlot),
        }
    }

    /// Whether orders may name account `a` (one flag and one short inline scan).
    #[inline]
    pub fn allows_account(&self, a: &[u8]) -> bool {
        self.any_account || self.accounts.iter().any(|x| x.as_bytes() == a)
    }

    /// Whether this session may cancel (or ask the status of) an existing order accepted under
    /// `account` by key `owner` (empty: no key): its account is granted, or the order is this
    /// key's own (so a key that lost an account can still pull the orders it left there).
    #[inline]
    pub fn may_manage(&self, account: &crate::model::Account, owner: &super::KeyId) -> bool {
        self.allows_account(account.as_bytes()) || (!owner.is_empty() && *owner == self.key_id)
    }

    #[inline]
    pub fn allows_symbol(&self, s: &[u8]) -> bool {
        self.symbols.is_empty() || self.symbols.iter().any(|x| x.as_bytes() == s)
    }
}
