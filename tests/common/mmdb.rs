//! A minimal MaxMind DB writer for tests (`#[path]`-included by src/ids/geo.rs's unit tests,
//! src/config/ids.rs's and tests/it): no downloaded GeoIP file is needed to test the
//! `[ids.geo] database` path, and no crate we use writes the format.
//!
//! The format (MaxMind DB 2.0, <https://maxmind.github.io/MaxMind-DB/>), as written here:
//!
//! ```text
//! search tree   node_count nodes of two records (bit 0, bit 1), each record_size bits:
//!                 24: [l23..l0][r23..r0]                      6 bytes a node
//!                 28: [l23..l0][l27..l24 r27..r24][r23..r0]   7 bytes
//!                 32: [l31..l0][r31..r0]                      8 bytes
//!               a record < node_count is a node number, == node_count "no data",
//!               > node_count the data at (record − node_count − 16) in the data section
//! separator     16 zero bytes
//! data section  values: a control byte (type << 5 | size; type 0 = extended, its type − 7
//!               in the next byte), size 29/30/31 adds 1/2/3 big-endian bytes (+29, +285,
//!               +65821); then the payload: utf-8 bytes, big-endian unsigned integers without
//!               leading zeros, map pairs (key string, value), array items
//! metadata      "\xAB\xCD\xEFMaxMind.com", then one map: node_count, record_size,
//!               ip_version, database_type, languages, description, binary_format_*, build_epoch
//! ```
//!
//! An IPv6 tree (`ip_version` 6) holds IPv4 networks at `::a.b.c.d/96+n`, and `::ffff:0:0/96`
//! leads to that same subtree, as MaxMind's own databases do. Networks are inserted in the
//! order given: insert the wider ones first (a wider network inserted later replaces what
//! was inside it).
#![allow(dead_code)] // each including crate uses a different part of it

use std::collections::HashMap;
use std::net::IpAddr;

/// A data-section value.
#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
}

/// A map value from `(key, value)` pairs.
pub fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    )
}

/// A string value.
pub fn text(s: &str) -> Value {
    Value::Str(s.to_string())
}

/// A GeoIP2-Country-shaped record: `continent.code`, `country.iso_code`,
/// `country.names.en`, `country.geoname_id`.
pub fn country(continent: &str, iso_code: &str, name: &str, geoname_id: u32) -> Value {
    map(&[
        ("continent", map(&[("code", text(continent))])),
        (
            "country",
            map(&[
                ("geoname_id", Value::U32(geoname_id)),
                ("iso_code", text(iso_code)),
                ("names", map(&[("en", text(name))])),
            ]),
        ),
    ])
}

const TYPE_STRING: u8 = 2;
const TYPE_UINT16: u8 = 5;
const TYPE_UINT32: u8 = 6;
const TYPE_MAP: u8 = 7;
const TYPE_UINT64: u8 = 9;
const TYPE_ARRAY: u8 = 11;
const TYPE_BOOL: u8 = 14;

const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
const SEPARATOR: usize = 16;

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        assert!(size < 65_821 + (1 << 24), "value too large: {size}");
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends `v`'s encoding to `out`.
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            control(out, TYPE_STRING, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(out, TYPE_UINT16, u64::from(*n)),
        Value::U32(n) => uint(out, TYPE_UINT32, u64::from(*n)),
        Value::U64(n) => uint(out, TYPE_UINT64, *n),
        Value::Bool(b) => control(out, TYPE_BOOL, usize::from(*b)),
        Value::Map(pairs) => {
            control(out, TYPE_MAP, pairs.len());
            for (k, v) in pairs {
                encode(out, &Value::Str(k.clone()));
                encode(out, v);
            }
        }
        Value::Array(items) => {
            control(out, TYPE_ARRAY, items.len());
            for v in items {
                encode(out, v);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    Empty,
    Node(usize),
    /// An offset in the data section.
    Data(usize),
}

/// A database being built: [`Writer::insert`] networks, then [`Writer::finish`].
pub struct Writer {
    ip_version: u16,
    record_size: Option<u16>,
    database_type: String,
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
    /// Encoded value → its offset, so equal values are stored once.
    offsets: HashMap<Vec<u8>, usize>,
}

impl Writer {
    /// An empty database for IPv4 only (`ip_version` 4) or for both (6).
    pub fn new(ip_version: u16) -> Writer {
        assert!(ip_version == 4 || ip_version == 6);
        Writer {
            ip_version,
            record_size: None,
            database_type: "Portcullis-Test-Country".into(),
            nodes: vec![[Record::Empty; 2]],
            data: Vec::new(),
            offsets: HashMap::new(),
        }
    }

    /// Forces the record size (24, 28 or 32 bits); by default the smallest that fits.
    pub fn record_size(mut self, bits: u16) -> Writer {
        assert!(matches!(bits, 24 | 28 | 32));
        self.record_size = Some(bits);
        self
    }

    fn width(&self) -> u32 {
        if self.ip_version == 4 {
            32
        } else {
            128
        }
    }

    /// Maps `cidr` (`a.b.c.d/n`, `v6::/n`; a bare address is a host) to `value`.
    pub fn insert(&mut self, cidr: &str, value: &Value) -> &mut Writer {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, ""));
        let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{cidr}: {e}"));
        let (bits, full) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let mut len: u32 = if len.is_empty() {
            full
        } else {
            len.parse().unwrap_or_else(|e| panic!("{cidr}: {e}"))
        };
        assert!(len <= full, "{cidr}: prefix too long");
        if self.ip_version == 4 {
            assert!(ip.is_ipv4(), "{cidr}: an IPv6 network in an IPv4 database");
        } else if ip.is_ipv4() {
            len += 96; // ::a.b.c.d/96+n
        }
        let mut bytes = Vec::new();
        encode(&mut bytes, value);
        let next = self.data.len();
        let offset = *self.offsets.entry(bytes.clone()).or_insert(next);
        if offset == next {
            self.data.extend_from_slice(&bytes);
        }
        self.set(bits, len, Record::Data(offset));
        self
    }

    /// Sets the record reached by the first `len` bits of `bits` (an address of the tree's
    /// width), creating nodes on the way; a data record met on the way is pushed down to
    /// both halves.
    fn set(&mut self, bits: u128, len: u32, record: Record) {
        let width = self.width();
        if len == 0 {
            self.nodes[0] = [record; 2];
            return;
        }
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (width - 1 - depth)) & 1) as usize;
            if depth == len - 1 {
                self.nodes[node][bit] = record;
                return;
            }
            node = match self.nodes[node][bit] {
                Record::Node(n) => n,
                inherited => {
                    let below = match inherited {
                        Record::Data(_) => [inherited; 2],
                        _ => [Record::Empty; 2],
                    };
                    self.nodes.push(below);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Record::Node(n);
                    n
                }
            };
        }
    }

    /// The record reached by the first `len` bits of `bits`, following nodes.
    fn get(&self, bits: u128, len: u32) -> Record {
        let width = self.width();
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (width - 1 - depth)) & 1) as usize;
            let r = self.nodes[node][bit];
            match r {
                Record::Node(n) if depth + 1 < len => node = n,
                _ => return r,
            }
        }
        Record::Node(node)
    }

    /// The database file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.ip_version == 6 {
            // ::ffff:0:0/96 (IPv4-mapped) leads to the IPv4 subtree at ::/96.
            let v4 = self.get(0, 96);
            if v4 != Record::Empty {
                self.set(0xffff_u128 << 32, 96, v4);
            }
        }
        let node_count = self.nodes.len();
        let largest = node_count + SEPARATOR + self.data.len();
        let record_size = self.record_size.unwrap_or(if largest < 1 << 24 {
            24
        } else if largest < 1 << 28 {
            28
        } else {
            32
        });
        assert!((largest as u64) < 1u64 << record_size, "tree too large");
        let value = |r: Record| -> u32 {
            let v = match r {
                Record::Empty => node_count,
                Record::Node(n) => n,
                Record::Data(off) => node_count + SEPARATOR + off,
            };
            v as u32
        };
        let mut out = Vec::new();
        for [l, r] in &self.nodes {
            let (l, r) = (value(*l), value(*r));
            match record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push(((l >> 24) as u8) << 4 | (r >> 24) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0; SEPARATOR]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = map(&[
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_796_601_600)),
            ("database_type", text(&self.database_type)),
            (
                "description",
                map(&[("en", text("Portcullis test database"))]),
            ),
            ("ip_version", Value::U16(self.ip_version)),
            ("languages", Value::Array(vec![text("en")])),
            ("node_count", Value::U32(node_count as u32)),
            ("record_size", Value::U16(record_size)),
        ]);
        encode(&mut out, &metadata);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(r: &maxminddb::Reader<Vec<u8>>, ip: &str) -> Option<String> {
        let found = r.lookup(ip.parse().unwrap()).unwrap();
        found
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .unwrap()
    }

    fn prefix(r: &maxminddb::Reader<Vec<u8>>, ip: &str) -> u8 {
        r.lookup(ip.parse().unwrap())
            .unwrap()
            .network()
            .unwrap()
            .prefix()
    }

    #[test]
    fn maxminddb_reads_an_ipv4_tree_at_each_record_size() {
        for bits in [24, 28, 32] {
            let mut w = Writer::new(4).record_size(bits);
            w.insert(
                "10.0.0.0/8",
                &country("EU", "GB", "United Kingdom", 2_635_167),
            )
            .insert(
                "10.1.0.0/16",
                &country("NA", "US", "United States", 6_252_001),
            )
            .insert("192.0.2.7", &country("OC", "AU", "Australia", 2_077_456));
            let r = maxminddb::Reader::from_source(w.finish()).unwrap();
            r.verify().unwrap_or_else(|e| panic!("{bits}: {e}"));
            let m = r.metadata();
            assert_eq!(
                (m.ip_version, m.record_size, m.binary_format_major_version),
                (4, bits, 2)
            );
            assert_eq!(m.database_type, "Portcullis-Test-Country");
            assert_eq!(m.languages, vec!["en".to_string()]);
            assert_eq!(iso(&r, "10.200.0.1").as_deref(), Some("GB"), "{bits}");
            assert_eq!(iso(&r, "10.1.2.3").as_deref(), Some("US"), "{bits}");
            assert_eq!(iso(&r, "192.0.2.7").as_deref(), Some("AU"), "{bits}");
            assert_eq!(iso(&r, "192.0.2.8"), None, "{bits}");
            assert_eq!(iso(&r, "11.0.0.1"), None, "{bits}");
            assert_eq!(prefix(&r, "10.1.2.3"), 16);
            assert_eq!(prefix(&r, "10.2.2.3"), 15, "the /8 split around the /16");
            assert_eq!(prefix(&r, "192.0.2.7"), 32);
            let found = r.lookup("10.1.2.3".parse().unwrap()).unwrap();
            let id: Option<u32> = found
                .decode_path(&[
                    maxminddb::PathElement::Key("country"),
                    maxminddb::PathElement::Key("geoname_id"),
                ])
                .unwrap();
            assert_eq!(id, Some(6_252_001));
        }
    }

    #[test]
    fn maxminddb_reads_an_ipv6_tree_with_ipv4_at_96_and_the_mapped_alias() {
        for bits in [24, 28, 32] {
            let mut w = Writer::new(6).record_size(bits);
            w.insert("127.0.0.0/8", &country("EU", "DE", "Germany", 2_921_044))
                .insert("127.0.0.2/32", &country("AS", "JP", "Japan", 1_861_060))
                .insert("2001:db8::/32", &country("SA", "BR", "Brazil", 3_469_034));
            let r = maxminddb::Reader::from_source(w.finish()).unwrap();
            r.verify().unwrap_or_else(|e| panic!("{bits}: {e}"));
            assert_eq!(r.metadata().ip_version, 6);
            assert_eq!(iso(&r, "127.0.0.1").as_deref(), Some("DE"), "{bits}");
            assert_eq!(iso(&r, "127.0.0.2").as_deref(), Some("JP"), "{bits}");
            assert_eq!(iso(&r, "::127.0.0.2").as_deref(), Some("JP"), "{bits}");
            assert_eq!(iso(&r, "::ffff:127.0.0.2").as_deref(), Some("JP"), "{bits}");
            assert_eq!(iso(&r, "::ffff:127.9.9.9").as_deref(), Some("DE"), "{bits}");
            assert_eq!(iso(&r, "2001:db8:1::1").as_deref(), Some("BR"), "{bits}");
            assert_eq!(iso(&r, "2001:db9::1"), None, "{bits}");
            assert_eq!(iso(&r, "10.0.0.1"), None, "{bits}");
            assert_eq!(
                prefix(&r, "127.0.0.2"),
                32,
                "IPv4 lookups report IPv4 prefixes"
            );
            assert_eq!(prefix(&r, "2001:db8::1"), 32);
        }
    }

    #[test]
    fn long_strings_use_the_extended_sizes_and_equal_values_are_stored_once() {
        let mut w = Writer::new(4);
        let names = ["x".repeat(28), "y".repeat(200), "z".repeat(70_000)];
        for (i, n) in names.iter().enumerate() {
            w.insert(&format!("10.0.{i}.0/24"), &map(&[("name", text(n))]));
        }
        let same = map(&[("name", text("same"))]);
        w.insert("10.1.0.0/24", &same).insert("10.2.0.0/24", &same);
        let bytes = w.finish();
        let r = maxminddb::Reader::from_source(bytes).unwrap();
        r.verify().unwrap();
        for (i, n) in names.iter().enumerate() {
            let found = r.lookup(format!("10.0.{i}.9").parse().unwrap()).unwrap();
            let got: Option<String> = found
                .decode_path(&[maxminddb::PathElement::Key("name")])
                .unwrap();
            assert_eq!(got.as_deref(), Some(n.as_str()));
        }
        let a = r.lookup("10.1.0.1".parse().unwrap()).unwrap().offset();
        let b = r.lookup("10.2.0.1".parse().unwrap()).unwrap().offset();
        assert!(a.is_some() && a == b, "{a:?} {b:?}");
    }

    #[test]
    fn a_wider_network_inserted_later_replaces_what_was_inside_it() {
        let mut w = Writer::new(4);
        w.insert("10.1.0.0/16", &country("NA", "US", "United States", 1))
            .insert("10.0.0.0/8", &country("EU", "GB", "United Kingdom", 2));
        let r = maxminddb::Reader::from_source(w.finish()).unwrap();
        assert_eq!(iso(&r, "10.1.0.1").as_deref(), Some("GB"));
    }
}
