//! COLD — geographic anomalies (MON-2): each accepted logon's source address is mapped to a
//! region, and a key's regions are judged. Per key:
//!
//! - `new-region`: after `ids.geo.learning_logons` logons with a region, a logon from a region
//!   the key has not logged on from before;
//! - `impossible-travel`: a logon from another region than the key's previous logon, sooner
//!   than `ids.geo.travel_ms` after it (judged from the first logon on: it needs no baseline).
//!
//! # Where a region comes from ([`Locator`])
//!
//! 1. The `[[ids.region]]` table ([`Regions`]): the longest matching prefix wins.
//! 2. Else, when `[ids.geo] database` names a MaxMind-format file (GeoIP2/GeoLite2 `.mmdb`,
//!    read with the `maxminddb` crate, [`Database`]), the value at `ids.geo.field` (default
//!    `country.iso_code`; `continent.code`, `city.names.en`, `subdivisions.0.iso_code`, ...)
//!    of the address's record: text, or a number (`country.geoname_id`) as its decimal text.
//!
//! The table wins where both know an address, so a few blocks (the office, a VPN exit, the
//! co-location site) can be named or corrected over a bought database. An address neither
//! knows has no region and is not judged (nor is one whose record lacks the field).
//!
//! The database file is read whole into memory once, by the detector thread at its start
//! ([`Geo::load_database`]; never by the gateway thread), after the config load has checked it
//! ([`Database::open`]: readable, a MaxMind DB, and the field present in some record). It is not
//! re-read on SIGHUP: the SIGHUP reload (src/main.rs) applies throttle tiers and TLS files only
//! and has no hook into the detector; a new database file takes a restart.
//!
//! Runs on the detector thread (`portcullis-ids`); pure (time is the events' own `at`).
//! Memory: at most `max_keys` keys (the least recently seen is forgotten) and
//! `max_regions_per_key` regions a key (the oldest is forgotten); the database's file size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::PathElement;

use super::rules::{Alert, Context, Subject};
use crate::config::ids::{parse_cidr, FieldPath, FieldStep, GeoCfg, RegionCfg, Severity};
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

/// Database records [`Database::open`] reads at most looking for one that has the field: a
/// field the database has shows in its first records, and one absent from this many is a
/// wrong path (the check stays bounded however large the file).
pub const FIELD_SCAN_LIMIT: usize = 100_000;

/// Why `[ids.geo] database` cannot be used; `key` is the config key to name.
#[derive(Debug)]
pub struct DatabaseError {
    pub key: &'static str,
    pub problem: String,
}

/// A MaxMind-format database, in memory, and the field read as the region.
pub struct Database {
    reader: maxminddb::Reader<Vec<u8>>,
    field: FieldPath,
}

fn steps(field: &FieldPath) -> Vec<PathElement<'_>> {
    field
        .steps
        .iter()
        .map(|s| match s {
            FieldStep::Key(k) => PathElement::Key(k),
            FieldStep::Index(i) => PathElement::Index(*i),
        })
        .collect()
}

/// The region text of a record's value: text (trimmed, not empty) or a number.
fn region_text(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Ok` when some record (of the first [`FIELD_SCAN_LIMIT`]) has `field` as text or a number;
/// else the problem, to follow the file's name.
fn check_field(reader: &maxminddb::Reader<Vec<u8>>, field: &FieldPath) -> Result<(), String> {
    let networks = reader
        .networks(maxminddb::WithinOptions::default())
        .map_err(|e| format!(": cannot walk its networks: {e}"))?;
    let path_steps = steps(field);
    let mut seen = 0usize;
    let mut other = None;
    for found in networks.take(FIELD_SCAN_LIMIT) {
        let found = found.map_err(|e| format!(" is damaged: {e}"))?;
        seen += 1;
        let v = match found.decode_path::<serde_json::Value>(&path_steps) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                // A value serde_json cannot hold (a map keyed oddly, a u128): not a region.
                other.get_or_insert(format!("unreadable ({e})"));
                continue;
            }
        };
        let kind = match &v {
            serde_json::Value::Object(_) => "a map",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Null => "null",
            _ => "empty text",
        };
        if region_text(v).is_some() {
            return Ok(());
        }
        other.get_or_insert(kind.to_string());
    }
    Err(match other {
        Some(kind) => format!(
            ": ids.geo.field {:?} is {kind} there, not text or a number \
             (name a value inside it, e.g. \"country.iso_code\")",
            field.text
        ),
        None => format!(
            ": none of the {seen} records read has the field {:?} \
             (ids.geo.field; e.g. \"country.iso_code\", \"continent.code\")",
            field.text
        ),
    })
}

impl Database {
    /// Reads `path` whole and checks it: a MaxMind DB whose records (some of the first
    /// [`FIELD_SCAN_LIMIT`]) have `field` as text or a number.
    pub fn open(path: &Path, field: &FieldPath) -> Result<Database, DatabaseError> {
        let db = |problem: String| DatabaseError {
            key: "ids.geo.database",
            problem,
        };
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| db(format!("cannot read {shown}: {e}")))?;
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| db(format!("{shown} is not a MaxMind DB file: {e}")))?;
        check_field(&reader, field).map_err(|e| db(format!("{shown}{e}")))?;
        Ok(Database {
            reader,
            field: field.clone(),
        })
    }

    /// The region of `ip` in the database, if its record has the field. An IPv4-mapped IPv6
    /// address is looked up as IPv4.
    pub fn region(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        let found = self.reader.lookup(ip).ok()?;
        let v = found
            .decode_path::<serde_json::Value>(&steps(&self.field))
            .ok()??;
        region_text(v)
    }

    /// `type=T ip-version=V build-epoch=E field=F` for the events line.
    pub fn describe(&self) -> String {
        let m = self.reader.metadata();
        format!(
            "type={:?} ip-version={} build-epoch={} field={}",
            m.database_type, m.ip_version, m.build_epoch, self.field.text
        )
    }
}

/// Where regions come from: the `[[ids.region]]` table first, then the database.
pub struct Locator {
    table: Regions,
    database: Option<Database>,
}

impl Locator {
    pub fn new(table: &[RegionCfg], database: Option<Database>) -> Locator {
        Locator {
            table: Regions::new(table),
            database,
        }
    }

    /// The region of `ip`: the table's longest matching block, else the database's record.
    pub fn region(&self, ip: IpAddr) -> Option<String> {
        if let Some(r) = self.table.region(ip) {
            return Some(r.to_string());
        }
        self.database.as_ref().and_then(|d| d.region(ip))
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
    locator: Locator,
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
    /// Regions from `table` only; [`Geo::load_database`] adds `cfg.database`.
    pub fn new(cfg: &GeoCfg, table: &[RegionCfg]) -> Geo {
        Geo {
            cfg: cfg.clone(),
            locator: Locator::new(table, None),
            keys: HashMap::new(),
        }
    }

    /// Reads `ids.geo.database`, if configured and enabled (the detector thread calls it once
    /// at its start, before its first event). `Ok(Some(description))` when loaded; on an error
    /// the table alone is used.
    pub fn load_database(&mut self) -> Result<Option<String>, DatabaseError> {
        let Some(path) = self.cfg.database.as_ref().filter(|_| self.cfg.enabled) else {
            return Ok(None);
        };
        let db = Database::open(path, &self.cfg.field)?;
        let what = format!("path={} {}", path.display(), db.describe());
        self.locator.database = Some(db);
        Ok(Some(what))
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
        let Some(region) = self.locator.region(peer) else {
            return out;
        };
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

/// The test database writer (also used by src/config/ids.rs's tests and tests/it).
#[cfg(test)]
#[path = "../../tests/common/mmdb.rs"]
pub(crate) mod mmdb;

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    /// An IPv6 database (IPv4 at ::/96): 127.0.0.0/8 in DE (Europe), 127.0.0.2 in JP (Asia),
    /// 2001:db8::/32 in BR; and the file it is written to.
    fn database(dir: &Path) -> std::path::PathBuf {
        let mut w = mmdb::Writer::new(6);
        w.insert(
            "127.0.0.0/8",
            &mmdb::country("EU", "DE", "Germany", 2_921_044),
        )
        .insert(
            "127.0.0.2/32",
            &mmdb::country("AS", "JP", "Japan", 1_861_060),
        )
        .insert(
            "2001:db8::/32",
            &mmdb::country("SA", "BR", "Brazil", 3_469_034),
        );
        let path = dir.join("test.mmdb");
        std::fs::write(&path, w.finish()).unwrap();
        path
    }

    fn field(text: &str) -> FieldPath {
        FieldPath::try_from(text.to_string()).unwrap()
    }

    #[test]
    fn the_database_field_names_the_region_and_the_table_wins_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path());
        let db = Database::open(&path, &FieldPath::default()).unwrap();
        assert_eq!(db.region(ip("127.0.0.1")).as_deref(), Some("DE"));
        assert_eq!(db.region(ip("127.0.0.2")).as_deref(), Some("JP"));
        assert_eq!(db.region(ip("::ffff:127.0.0.2")).as_deref(), Some("JP"));
        assert_eq!(db.region(ip("2001:db8::7")).as_deref(), Some("BR"));
        assert_eq!(db.region(ip("192.0.2.1")), None);
        for (f, want) in [
            ("continent.code", "AS"),
            ("country.names.en", "Japan"),
            ("country.geoname_id", "1861060"),
        ] {
            let db = Database::open(&path, &field(f)).unwrap();
            assert_eq!(db.region(ip("127.0.0.2")).as_deref(), Some(want), "{f}");
        }
        let table = [RegionCfg {
            cidr: "127.0.0.2/32".into(),
            region: "us-east".into(),
        }];
        let both = Locator::new(&table, Some(db_default(&path)));
        assert_eq!(both.region(ip("127.0.0.2")).as_deref(), Some("us-east"));
        assert_eq!(both.region(ip("127.0.0.1")).as_deref(), Some("DE"));
        assert_eq!(both.region(ip("10.0.0.1")), None);
    }

    fn db_default(path: &Path) -> Database {
        Database::open(path, &FieldPath::default()).unwrap()
    }

    #[test]
    fn an_unusable_database_is_refused_naming_the_key_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(dir.path());
        let problem = |p: &Path, f: &str| match Database::open(p, &field(f)) {
            Ok(_) => panic!("{} {f} accepted", p.display()),
            Err(e) => {
                assert_eq!(e.key, "ids.geo.database");
                e.problem
            }
        };
        let e = problem(&dir.path().join("absent.mmdb"), "country.iso_code");
        assert!(e.contains("cannot read"), "{e}");
        let garbage = dir.path().join("garbage.mmdb");
        std::fs::write(&garbage, b"not a database at all\n".repeat(100)).unwrap();
        let e = problem(&garbage, "country.iso_code");
        assert!(e.contains("is not a MaxMind DB file"), "{e}");
        let e = problem(&path, "city.names.en");
        // 127.0.0.0/8 around 127.0.0.2/32 is 24 networks, + that /32 + 2001:db8::/32.
        assert!(
            e.contains("none of the 26 records") && e.contains("city.names.en"),
            "{e}"
        );
        let e = problem(&path, "country.names");
        assert!(e.contains("is a map"), "{e}");
        assert!(FieldPath::try_from("country..iso_code".to_string()).is_err());
        assert_eq!(
            field("subdivisions.0.iso_code").steps,
            vec![
                FieldStep::Key("subdivisions".into()),
                FieldStep::Index(0),
                FieldStep::Key("iso_code".into())
            ]
        );
    }

    #[test]
    fn a_geo_with_its_database_loaded_judges_database_regions() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GeoCfg {
            database: Some(database(dir.path())),
            learning_logons: 100,
            ..GeoCfg::default()
        };
        let mut g = Geo::new(&cfg, &[]);
        // Before loading: no region known, nothing judged.
        assert!(g.logon("k", 0, ip("127.0.0.1"), Nanos(0)).is_empty());
        assert!(g.logon("k", 0, ip("127.0.0.2"), Nanos(MIN)).is_empty());
        let what = g.load_database().unwrap().unwrap();
        assert!(what.contains("field=country.iso_code"), "{what}");
        assert!(g.logon("k", 0, ip("127.0.0.1"), Nanos(2 * MIN)).is_empty());
        let a = g.logon("k", 0, ip("127.0.0.2"), Nanos(3 * MIN));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, IMPOSSIBLE_TRAVEL);
        assert!(
            a[0].note.contains("region JP") && a[0].note.contains("region DE"),
            "{}",
            a[0].note
        );
        let off = GeoCfg {
            enabled: false,
            ..cfg
        };
        assert!(Geo::new(&off, &[]).load_database().unwrap().is_none());
    }

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
