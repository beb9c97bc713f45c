//! COLD — geographic anomalies (MON-2): each accepted logon's source address is mapped to a
//! region through the `[[ids.region]]` table (longest matching prefix wins; an address in no
//! block has no region and is not judged). Per key:
//!
//! - `new-region`: after `ids.geo.learning_logons` logons with a region, a logon from a region
//!   the key has not logged on from before;
//! - `impossible-travel`: a logon from another region than the key's previous logon, sooner
//!   than `ids.geo.travel_ms` after it (judged from the first logon on: it needs no baseline).
//!
//! Runs on the detector thread (`portcullis-ids`); pure (time is the events' own `at`).
//! Memory: at most `max_keys` keys (the least recently seen is forgotten) and
//! `max_regions_per_key` regions a key (the oldest is forgotten).
//!
//! MaxMind-format databases are not read (no well-kept Rust crate writes one for a test to
//! build, so that path could not be tested here): the CIDR table is the region source.

use std::collections::HashMap;
use std::net::IpAddr;

use super::rules::{Alert, Context, Subject};
use crate::config::ids::{parse_cidr, GeoCfg, RegionCfg, Severity};
use crate::model::Nanos;

/// The rule name geographic alerts carry.
pub const RULE: &str = "geo";
pub const NEW_REGION: &str = "new-region";
pub const IMPOSSIBLE_TRAVEL: &str = "impossible-travel";

/// The `[[ids.region]]` table, longest prefixes first.
pub struct Regions {
    blocks: Vec<(IpAddr, u8, String)>,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip.to_canonical() {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl Regions {
    pub fn new(table: &[RegionCfg]) -> Regions {
        let mut blocks: Vec<(IpAddr, u8, String)> = table
            .iter()
            .filter_map(|r| {
                let (ip, len) = parse_cidr(&r.cidr)?;
                Some((ip.to_canonical(), len, r.region.trim().to_string()))
            })
            .collect();
        blocks.sort_by_key(|b| std::cmp::Reverse(b.1));
        Regions { blocks }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The region of `ip`, if a block holds it.
    pub fn region(&self, ip: IpAddr) -> Option<&str> {
        let (x, width) = bits(ip);
        self.blocks.iter().find_map(|(net, len, region)| {
            let (n, w) = bits(*net);
            if w != width {
                return None;
            }
            let shift = u32::from(width - (*len).min(width));
            let same = if shift >= 128 {
                true
            } else {
                (x >> shift) == (n >> shift)
            };
            same.then_some(region.as_str())
        })
    }
}

struct KeyGeo {
    /// Regions logged on from, oldest first.
    regions: Vec<String>,
    logons: u64,
    /// The previous logon's region and time.
    last: Option<(String, Nanos)>,
    last_seen: Nanos,
}

/// The geographic state of every key.
pub struct Geo {
    cfg: GeoCfg,
    regions: Regions,
    keys: HashMap<String, KeyGeo>,
}

fn one_higher(s: Severity) -> Severity {
    match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

impl Geo {
    pub fn new(cfg: &GeoCfg, table: &[RegionCfg]) -> Geo {
        Geo {
            cfg: cfg.clone(),
            regions: Regions::new(table),
            keys: HashMap::new(),
        }
    }

    /// Keys tracked now (≤ `max_keys`).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// An accepted logon of `key` (session index `session`) from `peer` at `at`; the alerts.
    pub fn logon(&mut self, key: &str, session: u32, peer: IpAddr, at: Nanos) -> Vec<Alert> {
        let mut out = Vec::new();
        if !self.cfg.enabled || key.is_empty() {
            return out;
        }
        let Some(region) = self.regions.region(peer) else {
            return out;
        };
        let region = region.to_string();
        if !self.keys.contains_key(key) && self.keys.len() >= self.cfg.max_keys.max(1) {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, k)| k.last_seen)
                .map(|(s, _)| s.clone());
            if let Some(s) = oldest {
                self.keys.remove(&s);
            }
        }
        let k = self.keys.entry(key.to_string()).or_insert_with(|| KeyGeo {
            regions: Vec::new(),
            logons: 0,
            last: None,
            last_seen: at,
        });
        k.last_seen = k.last_seen.max(at);
        let ctx = Context {
            key_id: Some(key.to_string()),
            address: Some(peer),
            session: Some(session),
        };
        let alert = |kind, severity, count, threshold, window_ms, note| Alert {
            at,
            kind,
            rule: RULE,
            severity,
            subject: Subject::Key(key.to_string()),
            count,
            threshold,
            window_ms,
            context: ctx.clone(),
            note,
        };
        let known = k.regions.contains(&region);
        if !known && k.logons >= u64::from(self.cfg.learning_logons) {
            out.push(alert(
                NEW_REGION,
                self.cfg.severity,
                k.logons,
                self.cfg.learning_logons,
                0,
                format!(
                    "logon from {peer} in region {region}; known regions: {}",
                    k.regions.join(", ")
                ),
            ));
        }
        if let Some((prev, t)) = &k.last {
            let gap_ms = at.0.saturating_sub(t.0) / 1_000_000;
            if *prev != region && self.cfg.travel_ms > 0 && gap_ms < self.cfg.travel_ms {
                out.push(alert(
                    IMPOSSIBLE_TRAVEL,
                    one_higher(self.cfg.severity),
                    gap_ms,
                    u32::try_from(self.cfg.travel_ms).unwrap_or(u32::MAX),
                    self.cfg.travel_ms,
                    format!(
                        "logon from {peer} in region {region} {gap_ms} ms after one in region \
                         {prev} (at least {} ms expected)",
                        self.cfg.travel_ms
                    ),
                ));
            }
        }
        if !known {
            if k.regions.len() >= self.cfg.max_regions_per_key.max(1) {
                k.regions.remove(0);
            }
            k.regions.push(region.clone());
        }
        k.logons += 1;
        k.last = Some((region, at));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn table() -> Vec<RegionCfg> {
        let r = |cidr: &str, region: &str| RegionCfg {
            cidr: cidr.into(),
            region: region.into(),
        };
        vec![
            r("127.0.0.0/8", "eu-london"),
            r("127.0.0.2/32", "us-east"),
            r("10.0.0.0/8", "eu-london"),
            r("2001:db8::/32", "ap-tokyo"),
        ]
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_names_the_region() {
        let r = Regions::new(&table());
        assert_eq!(r.region(ip("127.0.0.1")), Some("eu-london"));
        assert_eq!(r.region(ip("127.0.0.2")), Some("us-east"));
        assert_eq!(r.region(ip("::ffff:127.0.0.2")), Some("us-east"));
        assert_eq!(r.region(ip("2001:db8::5")), Some("ap-tokyo"));
        assert_eq!(r.region(ip("192.168.1.1")), None);
        let all = Regions::new(&[RegionCfg {
            cidr: "0.0.0.0/0".into(),
            region: "world".into(),
        }]);
        assert_eq!(all.region(ip("8.8.8.8")), Some("world"));
        assert_eq!(all.region(ip("::1")), None);
    }

    #[test]
    fn a_new_region_after_learning_alerts_and_a_known_one_does_not() {
        let cfg = GeoCfg {
            learning_logons: 3,
            travel_ms: 0,
            ..GeoCfg::default()
        };
        let mut g = Geo::new(&cfg, &table());
        // Learning: london, then tokyo (learned, no alert), then london again.
        for (i, a) in ["127.0.0.1", "2001:db8::1", "10.1.1.1"].iter().enumerate() {
            assert!(g.logon("k", 0, ip(a), Nanos(i as u64 * MIN)).is_empty());
        }
        assert!(g
            .logon("k", 0, ip("2001:db8::9"), Nanos(10 * MIN))
            .is_empty());
        let a = g.logon("k", 0, ip("127.0.0.2"), Nanos(20 * MIN));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, NEW_REGION);
        assert_eq!(a[0].subject, Subject::Key("k".into()));
        assert!(a[0].note.contains("us-east"), "{}", a[0].note);
        // Known from now on; another key is unaffected; no region, no judgement.
        assert!(g.logon("k", 0, ip("127.0.0.2"), Nanos(30 * MIN)).is_empty());
        assert!(g
            .logon("other", 1, ip("127.0.0.2"), Nanos(30 * MIN))
            .is_empty());
        assert!(g
            .logon("k", 0, ip("192.168.0.1"), Nanos(40 * MIN))
            .is_empty());
    }

    #[test]
    fn two_regions_faster_than_travel_allows_alert_even_while_learning() {
        let cfg = GeoCfg {
            learning_logons: 100,
            travel_ms: 3_600_000,
            ..GeoCfg::default()
        };
        let mut g = Geo::new(&cfg, &table());
        assert!(g.logon("k", 0, ip("127.0.0.1"), Nanos(0)).is_empty());
        let a = g.logon("k", 0, ip("127.0.0.2"), Nanos(5 * MIN));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, IMPOSSIBLE_TRAVEL);
        assert_eq!(a[0].count, 5 * 60_000);
        assert_eq!(a[0].severity, Severity::High);
        // Back in london two hours later: plausible.
        assert!(g
            .logon("k", 0, ip("127.0.0.1"), Nanos(125 * MIN))
            .is_empty());
    }

    #[test]
    fn memory_is_bounded_by_max_keys_and_regions_per_key() {
        let cfg = GeoCfg {
            max_keys: 50,
            max_regions_per_key: 2,
            travel_ms: 0,
            ..GeoCfg::default()
        };
        let table: Vec<RegionCfg> = (0..10)
            .map(|i| RegionCfg {
                cidr: format!("10.{i}.0.0/16"),
                region: format!("r{i}"),
            })
            .collect();
        let mut g = Geo::new(&cfg, &table);
        for i in 0..5_000u64 {
            g.logon(&format!("k{i}"), 0, ip("10.0.0.1"), Nanos(i));
            assert!(g.keys() <= 50);
        }
        for i in 0..10u64 {
            g.logon("k4999", 0, ip(&format!("10.{i}.0.1")), Nanos(10_000 + i));
        }
        assert_eq!(g.keys.get("k4999").map(|k| k.regions.len()), Some(2));
    }
}
