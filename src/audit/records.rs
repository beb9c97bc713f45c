//! COLD — order records (REG-1) on disk: the journal thread writes each
//! [`OrderRecord`](crate::order::record::OrderRecord) as one JSON line ([`LineWriter`]: names
//! resolved, prices and quantities as decimals, times as RFC 3339 UTC with nanoseconds, empty
//! columns left out) to `<data_dir>/records/orders-YYYYMMDD.jsonl`, one file per UTC day of the
//! event. `portcullis report orders` reads them back as [`RecordRow`]s (`crate::report`).
//!
//! Card numbers in the free-text `text` column are masked (all but the last 4 digits) as the
//! line is written; identifiers (ClOrdID, account, ...) are kept exactly as sent.
//!
//! Field meanings and their regulatory sources: `fix-specs/ORDER-RECORDS.md`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fix::encode::{civil_from_days, write_decimal, write_u64};
use crate::model::{Nanos, OrdType, Side, TimeInForce, PRICE_DECIMALS, QTY_DECIMALS};
use crate::order::record::OrderRecord;
use crate::route::RouteReason;

/// Folder of the records files, under the data folder.
pub const DIR: &str = "records";

/// Defines [`RecordRow`] with one `String` per column, plus its column names and values in
/// declaration order (the CSV column order; JSON objects keep it too).
macro_rules! record_row {
    ($( $(#[$m:meta])* $f:ident, )*) => {
        /// One order record as written and exported. A column missing from an older file
        /// reads as empty.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct RecordRow {
            $( $(#[$m])* pub $f: String, )*
        }
        impl RecordRow {
            /// Column names, in order.
            pub const COLUMNS: &'static [&'static str] = &[$(stringify!($f)),*];
            /// Values, in [`RecordRow::COLUMNS`] order.
            pub fn values(&self) -> Vec<&str> {
                vec![$(self.$f.as_str()),*]
            }
        }
    };
}

record_row! {
    /// When the event happened, RFC 3339 UTC with nanoseconds (fixed width: sorts as text).
    event_time,
    /// Lifecycle event (`new`, `accepted`, `replaced`, `fill`, …).
    event,
    /// Client session `BeginString:SenderCompID->TargetCompID` (the client's identification).
    session,
    client_comp_id,
    /// The API key the session logged on with (Username <553>); empty without `[auth]`.
    api_key_id,
    /// Account <1>.
    account,
    trader_id,
    decision_maker_id,
    /// Symbol <55>.
    symbol,
    security_id,
    security_id_source,
    /// `buy`, `sell`, `sell-short`.
    side,
    ord_type,
    time_in_force,
    exec_inst,
    price,
    currency,
    order_qty,
    cum_qty,
    leaves_qty,
    last_qty,
    last_px,
    avg_px,
    ord_status,
    cl_ord_id,
    orig_cl_ord_id,
    request_cl_ord_id,
    requested_qty,
    requested_price,
    order_id,
    venue,
    venue_order_id,
    routing_decision,
    order_received_time,
    instruction_received_time,
    decision_time,
    sent_to_venue_time,
    venue_answer_time,
    sent_to_client_time,
    reject_code,
    text,
}

/// `2026-11-25T22:09:36.123456789Z`; empty for zero (not yet).
pub fn rfc3339(t: Nanos) -> String {
    let mut out = Vec::with_capacity(30);
    TimeText::default().push(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// RFC 3339 UTC times with nanoseconds, written without `core::fmt`: the date and time of day
/// of the last whole second are kept, so the many timestamps of one second cost a copy and
/// nine digits each.
#[derive(Default)]
pub(crate) struct TimeText {
    /// The whole second `text` holds, plus one (0 = nothing yet).
    sec_plus_one: u64,
    /// `YYYY-MM-DDTHH:MM:SS.`
    text: [u8; 20],
}

impl TimeText {
    /// Appends `t` (nothing for zero).
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, t: Nanos) {
        if t == Nanos::ZERO {
            return;
        }
        let secs = t.0 / 1_000_000_000;
        if self.sec_plus_one != secs + 1 {
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let s = secs % 86_400;
            let t = &mut self.text;
            let y = y.clamp(0, 9999) as u32;
            digits(&mut t[0..4], y);
            t[4] = b'-';
            digits(&mut t[5..7], m);
            t[7] = b'-';
            digits(&mut t[8..10], d);
            t[10] = b'T';
            digits(&mut t[11..13], (s / 3600) as u32);
            t[13] = b':';
            digits(&mut t[14..16], (s / 60 % 60) as u32);
            t[16] = b':';
            digits(&mut t[17..19], (s % 60) as u32);
            t[19] = b'.';
            self.sec_plus_one = secs + 1;
        }
        out.extend_from_slice(&self.text);
        let mut ns = [0u8; 9];
        digits(&mut ns, (t.0 % 1_000_000_000) as u32);
        out.extend_from_slice(&ns);
        out.push(b'Z');
    }
}

/// Writes `v` zero-padded to exactly `out.len()` digits (higher digits dropped).
fn digits(out: &mut [u8], mut v: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Names the rows refer to: sessions and venues by index, `[[route]]` rules by index.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub sessions: Vec<String>,
    pub venues: Vec<String>,
    /// A description of each `[[route]]` (its conditions).
    pub routes: Vec<String>,
}

/// Formats [`OrderRecord`]s as JSON lines — the object [`RecordRow`] reads back — without
/// serde or `core::fmt`. The journal thread runs this for every record (≈ 20k a second at 10k
/// orders/s with the `ack` venue); with serde and `write!` it cost ≈ 3.5 µs a record, which on a
/// small machine is time taken from a spinning core. Columns with no value are left out of the
/// line (a reader takes a missing column as empty): about half the bytes to write.
#[derive(Default)]
pub struct LineWriter {
    time: TimeText,
}

impl LineWriter {
    /// Replaces `out` with `r` as one JSON object (columns in [`RecordRow::COLUMNS`] order) and a
    /// newline.
    pub fn line(&mut self, out: &mut Vec<u8>, r: &OrderRecord, names: &Names) {
        let o = &r.order;
        let d = &o.detail;
        out.clear();
        out.push(b'{');
        self.time_field(out, "event_time", r.at);
        str_field(out, "event", r.event.as_str().as_bytes());
        let mut num = [0u8; 24];
        let session: &[u8] = match names.sessions.get(o.session.index()) {
            Some(name) => name.as_bytes(),
            None => hash_number(&mut num, u64::from(o.session.0)),
        };
        str_field(out, "session", session);
        // `BeginString:SenderCompID->TargetCompID`: the client is the SenderCompID.
        let client = std::str::from_utf8(session)
            .ok()
            .and_then(|s| s.split_once(':'))
            .and_then(|(_, rest)| rest.split_once("->"))
            .map_or("", |(c, _)| c);
        str_field(out, "client_comp_id", client.as_bytes());
        str_field(out, "api_key_id", r.key_id.as_bytes());
        str_field(out, "account", o.account.as_bytes());
        str_field(out, "trader_id", d.trader.as_bytes());
        str_field(out, "decision_maker_id", d.decision_maker.as_bytes());
        str_field(out, "symbol", o.symbol.as_bytes());
        str_field(out, "security_id", d.security_id.as_bytes());
        if d.security_id_source != 0 {
            str_field(out, "security_id_source", &[d.security_id_source]);
        }
        let side: &[u8] = match o.side {
            Side::Buy => b"buy",
            Side::Sell => b"sell",
            Side::SellShort => b"sell-short",
        };
        str_field(out, "side", side);
        let ord_type: &[u8] = match o.ord_type {
            OrdType::Market => b"market",
            OrdType::Limit => b"limit",
        };
        str_field(out, "ord_type", ord_type);
        let tif: &[u8] = match o.tif {
            TimeInForce::Day => b"day",
            TimeInForce::GoodTillCancel => b"gtc",
            TimeInForce::ImmediateOrCancel => b"ioc",
            TimeInForce::FillOrKill => b"fok",
        };
        str_field(out, "time_in_force", tif);
        str_field(out, "exec_inst", d.exec_inst.as_bytes());
        decimal_field(out, "price", o.price.map(|p| p.0), PRICE_DECIMALS);
        str_field(out, "currency", d.currency.as_bytes());
        decimal_field(out, "order_qty", Some(o.qty.0), QTY_DECIMALS);
        decimal_field(out, "cum_qty", Some(o.cum_qty.0), QTY_DECIMALS);
        decimal_field(out, "leaves_qty", Some(o.leaves().0), QTY_DECIMALS);
        decimal_field(out, "last_qty", r.last.map(|(q, _)| q.0), QTY_DECIMALS);
        decimal_field(out, "last_px", r.last.map(|(_, p)| p.0), PRICE_DECIMALS);
        let avg = (o.cum_qty.0 != 0).then(|| o.avg_px().0);
        decimal_field(out, "avg_px", avg, PRICE_DECIMALS);
        str_field(out, "ord_status", &[o.status.to_fix()]);
        str_field(out, "cl_ord_id", o.cl_ord_id.as_bytes());
        str_field(out, "orig_cl_ord_id", o.orig_cl_ord_id.as_bytes());
        str_field(out, "request_cl_ord_id", r.request_cl_ord_id.as_bytes());
        let requested_qty = r.requested.map(|(q, _)| q.0);
        decimal_field(out, "requested_qty", requested_qty, QTY_DECIMALS);
        let requested_price = r.requested.and_then(|(_, p)| p).map(|p| p.0);
        decimal_field(out, "requested_price", requested_price, PRICE_DECIMALS);
        if o.order_id != 0 {
            let n = write_u64(&mut num, o.order_id);
            str_field(out, "order_id", num.get(..n).unwrap_or_default());
        }
        let mut vnum = [0u8; 24];
        let venue: &[u8] = match names.venues.get(o.venue.index()) {
            Some(name) => name.as_bytes(),
            None => hash_number(&mut vnum, u64::from(o.venue.0)),
        };
        str_field(out, "venue", venue);
        str_field(out, "venue_order_id", o.venue_order_id.as_bytes());
        if let Some(route) = d.route {
            key(out, "routing_decision");
            out.push(b'"');
            match route {
                RouteReason::Default => {
                    out.extend_from_slice(b"default: first venue ");
                    escape(out, venue);
                }
                RouteReason::ExDestination => {
                    out.extend_from_slice(b"ExDestination(100)=");
                    escape(out, venue);
                }
                RouteReason::Rule(i) => {
                    out.extend_from_slice(b"route[");
                    let n = write_u64(&mut num, u64::from(i));
                    out.extend_from_slice(num.get(..n).unwrap_or_default());
                    out.extend_from_slice(b"] ");
                    let desc = names.routes.get(usize::from(i)).map_or("", String::as_str);
                    escape(out, desc.as_bytes());
                }
            }
            out.extend_from_slice(b"\",");
        }
        self.time_field(out, "order_received_time", o.received_at);
        self.time_field(out, "instruction_received_time", o.times.instruction);
        self.time_field(out, "decision_time", o.times.decision);
        self.time_field(out, "sent_to_venue_time", o.times.sent);
        self.time_field(out, "venue_answer_time", o.times.venue);
        self.time_field(out, "sent_to_client_time", r.reported_at);
        if let Some(code) = r.reject_code {
            let n = write_u64(&mut num, u64::from(code));
            str_field(out, "reject_code", num.get(..n).unwrap_or_default());
        }
        // Free text (a venue's reason, or ours): card numbers masked here, on the journal
        // thread, whatever produced it (DATA-4).
        let mut text = [0u8; 128];
        let t = r.text.as_bytes();
        let n = t.len().min(text.len());
        if let (Some(dst), Some(src)) = (text.get_mut(..n), t.get(..n)) {
            dst.copy_from_slice(src);
            crate::auth::mask::card_numbers(dst);
            str_field(out, "text", dst);
        }
        // The last `,` (or the `{` of an empty object) closes the object.
        match out.last_mut() {
            Some(b) if *b == b',' => *b = b'}',
            _ => out.push(b'}'),
        }
        out.push(b'\n');
    }

    fn time_field(&mut self, out: &mut Vec<u8>, name: &str, t: Nanos) {
        if t != Nanos::ZERO {
            key(out, name);
            out.push(b'"');
            self.time.push(out, t);
            out.extend_from_slice(b"\",");
        }
    }
}

/// `"name":`
fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `"name":"v",` — nothing when `v` is empty.
fn str_field(out: &mut Vec<u8>, name: &str, v: &[u8]) {
    if v.is_empty() {
        return;
    }
    key(out, name);
    out.push(b'"');
    escape(out, v);
    out.extend_from_slice(b"\",");
}

/// `v` scaled by `decimals` as a string column; nothing for `None`.
fn decimal_field(out: &mut Vec<u8>, name: &str, v: Option<i64>, decimals: u32) {
    if let Some(v) = v {
        let mut b = [0u8; 48];
        let n = write_decimal(&mut b, v, decimals);
        str_field(out, name, b.get(..n).unwrap_or_default());
    }
}

/// `#n`, for a session or venue index with no name.
fn hash_number(buf: &mut [u8; 24], n: u64) -> &[u8] {
    buf[0] = b'#';
    let len = write_u64(&mut buf[1..], n);
    buf.get(..len + 1).unwrap_or_default()
}

/// Appends `v` as the inside of a JSON string. Printable ASCII without `"` or `\` (every field
/// the gateway itself produces) is copied as it is; anything else goes through the careful path:
/// invalid UTF-8 replaced by U+FFFD, `"` `\` and control characters escaped.
fn escape(out: &mut Vec<u8>, v: &[u8]) {
    if v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(v);
        return;
    }
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let c = c as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[c >> 4]);
                out.push(HEX[c & 15]);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

impl RecordRow {
    /// The row `portcullis report` reads back for `r`: its JSON line, parsed.
    pub fn from_record(r: &OrderRecord, names: &Names) -> RecordRow {
        let mut line = Vec::new();
        LineWriter::default().line(&mut line, r, names);
        serde_json::from_slice(&line).unwrap_or_default()
    }
}

/// The records file of the UTC day of `t`.
pub fn file_for(dir: &Path, t: Nanos) -> PathBuf {
    let (y, m, d) = civil_from_days((t.0 / 86_400_000_000_000) as i64);
    dir.join(format!("orders-{y:04}{m:02}{d:02}.jsonl"))
}

/// Appends rows to the day's file; switches files when the day changes.
pub struct RecordWriter {
    dir: PathBuf,
    names: Names,
    lines: LineWriter,
    /// The line every record is formatted into (it keeps its memory).
    line: Vec<u8>,
    /// The open file and the UTC day (days since the epoch) it holds.
    open: Option<(u64, BufWriter<File>)>,
}

impl RecordWriter {
    /// Creates `<data_dir>/records`.
    pub fn new(data_dir: &Path, names: Names) -> io::Result<RecordWriter> {
        let dir = data_dir.join(DIR);
        crate::files::private_dir(&dir)?;
        Ok(RecordWriter {
            dir,
            names,
            lines: LineWriter::default(),
            line: Vec::with_capacity(4096),
            open: None,
        })
    }

    pub fn write(&mut self, r: &OrderRecord) -> io::Result<()> {
        // The file name is built only when the day changes (this runs for every record).
        let day = r.at.0 / 86_400_000_000_000;
        if self.open.as_ref().is_none_or(|(d, _)| *d != day) {
            self.flush()?;
            let path = file_for(&self.dir, r.at);
            let f =
                crate::files::open_private(OpenOptions::new().create(true).append(true), &path)?;
            self.open = Some((day, BufWriter::with_capacity(1 << 16, f)));
        }
        self.lines.line(&mut self.line, r, &self.names);
        if let Some((_, w)) = &mut self.open {
            w.write_all(&self.line)?;
        }
        Ok(())
    }

    /// The line the last [`RecordWriter::write`] that succeeded wrote (the audit trail's order
    /// record is made from it rather than formatted a second time).
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((_, w)) = &mut self.open {
            w.flush()?;
        }
        Ok(())
    }

    /// Flushes and fdatasyncs the open file.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some((_, w)) = &mut self.open {
            w.get_ref().sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, InlineStr, OrdStatus, Price, Qty, SessionId};
    use crate::order::record::Lifecycle;
    use crate::order::Order;
    use proptest::prelude::*;

    fn names() -> Names {
        Names {
            sessions: vec!["FIX.4.4:C1->GW".into()],
            venues: vec!["SIM".into()],
            routes: vec!["symbol=AAPL".into()],
        }
    }

    fn line_of(r: &OrderRecord, names: &Names) -> String {
        let mut out = Vec::new();
        LineWriter::default().line(&mut out, r, names);
        String::from_utf8(out).unwrap()
    }

    /// The reference formatting of a time, with `core::fmt` (what the line writer replaced).
    fn slow_rfc3339(t: Nanos) -> String {
        if t == Nanos::ZERO {
            return String::new();
        }
        let secs = t.0 / 1_000_000_000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let s = secs % 86_400;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
            s / 3600,
            s / 60 % 60,
            s % 60,
            t.0 % 1_000_000_000
        )
    }

    #[test]
    fn a_full_record_reads_back_column_by_column() {
        let mut o = Order::blank(SessionId(0), Account::new(b"ACC1").unwrap());
        o.cl_ord_id = InlineStr::new(b"C-2").unwrap();
        o.orig_cl_ord_id = InlineStr::new(b"C-1").unwrap();
        o.symbol = InlineStr::new(b"AAPL").unwrap();
        o.side = Side::SellShort;
        o.tif = TimeInForce::ImmediateOrCancel;
        o.price = Some(Price::from_units(10));
        o.qty = Qty::from_units(5);
        o.cum_qty = Qty::from_units(2);
        o.filled_notional = i128::from(Price::from_units(10).0) * 2;
        o.status = OrdStatus::PartiallyFilled;
        o.order_id = 7;
        o.venue_order_id = InlineStr::new(b"V9a").unwrap();
        o.received_at = Nanos(1_764_108_576_000_000_001);
        o.times.venue = Nanos(1_764_108_577_000_000_002);
        o.detail.route = Some(RouteReason::Rule(0));
        o.detail.security_id_source = b'4';
        o.detail.currency = InlineStr::new(b"USD").unwrap();
        let mut r = OrderRecord::new(Lifecycle::PartialFill, &o, Nanos(1_764_108_576_000_000_042));
        r.last = Some((Qty::from_units(2), Price::from_units(10)));
        r.reject_code = Some(99);
        r.key_id = InlineStr::new(b"desk-1").unwrap();
        let r = r.with_text(b"some text");
        let line = line_of(&r, &names());
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let row: RecordRow = serde_json::from_str(&line).unwrap();
        let want = [
            ("event_time", "2025-11-25T22:09:36.000000042Z"),
            ("event", "partial-fill"),
            ("session", "FIX.4.4:C1->GW"),
            ("client_comp_id", "C1"),
            ("api_key_id", "desk-1"),
            ("account", "ACC1"),
            ("symbol", "AAPL"),
            ("security_id_source", "4"),
            ("side", "sell-short"),
            ("ord_type", "limit"),
            ("time_in_force", "ioc"),
            ("price", "10"),
            ("currency", "USD"),
            ("order_qty", "5"),
            ("cum_qty", "2"),
            ("leaves_qty", "3"),
            ("last_qty", "2"),
            ("last_px", "10"),
            ("avg_px", "10"),
            ("ord_status", "1"),
            ("cl_ord_id", "C-2"),
            ("orig_cl_ord_id", "C-1"),
            ("order_id", "7"),
            ("venue", "SIM"),
            ("venue_order_id", "V9a"),
            ("routing_decision", "route[0] symbol=AAPL"),
            ("order_received_time", "2025-11-25T22:09:36.000000001Z"),
            ("venue_answer_time", "2025-11-25T22:09:37.000000002Z"),
            ("reject_code", "99"),
            ("text", "some text"),
        ];
        for (col, v) in RecordRow::COLUMNS.iter().zip(row.values()) {
            let expected = want.iter().find(|(c, _)| c == col).map_or("", |(_, v)| *v);
            assert_eq!(v, expected, "column {col}");
        }
        // Columns appear in COLUMNS order, empty ones left out.
        let keys: Vec<&str> = RecordRow::COLUMNS
            .iter()
            .copied()
            .filter(|c| line.contains(&format!("\"{c}\":")))
            .collect();
        let mut at = 0;
        for k in &keys {
            let p = line.find(&format!("\"{k}\":")).unwrap();
            assert!(p >= at, "{k} out of order in {line}");
            at = p;
        }
        assert_eq!(keys.len(), want.len(), "{line}");
    }

    #[test]
    fn a_reused_writer_keeps_nothing_of_the_previous_record() {
        let names = names();
        let mut full = Order::blank(SessionId(0), Account::new(b"ACC1").unwrap());
        full.price = Some(Price::from_units(10));
        full.detail.route = Some(RouteReason::Default);
        let full = OrderRecord::new(Lifecycle::Fill, &full, Nanos(1_764_108_576_000_000_042))
            .with_text(b"some text");
        let mut bare = Order::blank(SessionId(3), Account::EMPTY);
        bare.venue = crate::model::VenueId(5);
        bare.detail.route = Some(RouteReason::ExDestination);
        let bare = OrderRecord::new(Lifecycle::New, &bare, Nanos(1));
        let mut w = LineWriter::default();
        let mut out = Vec::new();
        w.line(&mut out, &full, &names);
        let row: RecordRow = serde_json::from_slice(&out).unwrap();
        assert_eq!(row.routing_decision, "default: first venue SIM");
        w.line(&mut out, &bare, &names);
        let row: RecordRow = serde_json::from_slice(&out).unwrap();
        assert_eq!(row, RecordRow::from_record(&bare, &names));
        assert_eq!(row.session, "#3");
        assert_eq!(row.venue, "#5");
        assert_eq!(row.routing_decision, "ExDestination(100)=#5");
        assert_eq!(row.event_time, "1970-01-01T00:00:00.000000001Z");
        assert!(row.text.is_empty() && row.price.is_empty() && row.account.is_empty());
    }

    #[test]
    fn card_numbers_in_the_text_column_are_masked() {
        let o = Order::blank(SessionId(0), Account::new(b"ACC1").unwrap());
        let r = OrderRecord::new(Lifecycle::VenueRejected, &o, Nanos(1))
            .with_text(b"rejected by the venue: card 4111 1111 1111 1111 declined");
        let row = RecordRow::from_record(&r, &names());
        assert_eq!(
            row.text,
            "rejected by the venue: card **** **** **** 1111 declined"
        );
    }

    #[test]
    fn quotes_backslashes_controls_and_bad_utf8_in_text_are_escaped() {
        let o = Order::blank(SessionId(0), Account::new(b"A\"1").unwrap());
        let r = OrderRecord::new(Lifecycle::Rejected, &o, Nanos(5))
            .with_text(b"a\"b\\c\x01d\nz\xffq\xc3\xa9");
        let row = RecordRow::from_record(&r, &names());
        assert_eq!(row.text, "a\"b\\c\u{1}d\nz\u{fffd}q\u{e9}");
        assert_eq!(row.account, "A\"1");
    }

    #[test]
    fn times_are_fixed_width_rfc3339_and_files_are_per_utc_day() {
        let t = Nanos(1_764_108_576_000_000_042); // 2025-11-25T22:09:36.000000042Z
        assert_eq!(rfc3339(t), "2025-11-25T22:09:36.000000042Z");
        assert_eq!(rfc3339(Nanos::ZERO), "");
        assert_eq!(
            file_for(Path::new("r"), t),
            Path::new("r").join("orders-20251125.jsonl")
        );
        assert!(rfc3339(Nanos(t.0 + 1)) > rfc3339(t));
    }

    fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..=max)
    }

    proptest! {
        /// Whatever the record holds, its line is one valid JSON object that reads back to the
        /// record's values: strings as given (invalid UTF-8 replaced), times as the reference
        /// formatting gives them — also when consecutive lines share a second or go back.
        #[test]
        fn every_line_reads_back_to_its_record(
            account in text(24),
            text58 in text(128),
            cl in text(40),
            times in prop::collection::vec(prop_oneof![Just(0u64), 0u64..4_102_444_800_000_000_000], 8),
            qty in any::<i64>(),
            price in proptest::option::of(any::<i64>()),
            session in 0u32..3,
            code in proptest::option::of(any::<u32>()),
        ) {
            let mut o = Order::blank(SessionId(session), Account::new(&account).unwrap());
            o.cl_ord_id = InlineStr::new(&cl).unwrap();
            o.qty = Qty(qty);
            o.price = price.map(Price);
            o.received_at = Nanos(times[1]);
            o.times.instruction = Nanos(times[2]);
            o.times.decision = Nanos(times[3]);
            o.times.sent = Nanos(times[4]);
            o.times.venue = Nanos(times[5]);
            let mut r = OrderRecord::new(Lifecycle::Canceled, &o, Nanos(times[0]));
            r.reported_at = Nanos(times[6]);
            r.reject_code = code;
            let r = r.with_text(&text58);
            let mut w = LineWriter::default();
            let mut out = Vec::new();
            // Warm the time cache with another second first.
            let other = OrderRecord::new(Lifecycle::New, &o, Nanos(times[7]));
            w.line(&mut out, &other, &names());
            w.line(&mut out, &r, &names());
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            let row: RecordRow = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&row.account, &String::from_utf8_lossy(&account));
            prop_assert_eq!(
                &row.text,
                &crate::auth::mask::free_text(&String::from_utf8_lossy(&text58))
            );
            prop_assert_eq!(&row.cl_ord_id, &String::from_utf8_lossy(&cl));
            prop_assert_eq!(&row.event_time, &slow_rfc3339(Nanos(times[0])));
            prop_assert_eq!(&row.order_received_time, &slow_rfc3339(Nanos(times[1])));
            prop_assert_eq!(&row.instruction_received_time, &slow_rfc3339(Nanos(times[2])));
            prop_assert_eq!(&row.decision_time, &slow_rfc3339(Nanos(times[3])));
            prop_assert_eq!(&row.sent_to_venue_time, &slow_rfc3339(Nanos(times[4])));
            prop_assert_eq!(&row.venue_answer_time, &slow_rfc3339(Nanos(times[5])));
            prop_assert_eq!(&row.sent_to_client_time, &slow_rfc3339(Nanos(times[6])));
            let mut b = [0u8; 48];
            let n = write_decimal(&mut b, qty, QTY_DECIMALS);
            prop_assert_eq!(row.order_qty.as_bytes(), &b[..n]);
            let want_price = price.map(|p| {
                let n = write_decimal(&mut b, p, PRICE_DECIMALS);
                String::from_utf8(b[..n].to_vec()).unwrap()
            });
            prop_assert_eq!(row.price, want_price.unwrap_or_default());
            prop_assert_eq!(row.reject_code, code.map(|c| c.to_string()).unwrap_or_default());
            let want_session = if session == 0 { "FIX.4.4:C1->GW".to_string() } else { format!("#{session}") };
            prop_assert_eq!(row.session, want_session);
        }
    }
}
