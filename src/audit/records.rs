//! COLD — order records (REG-1) on disk: the journal thread turns each
//! [`OrderRecord`](crate::order::record::OrderRecord) into a [`RecordRow`] (names resolved,
//! prices and quantities as decimals, times as RFC 3339 UTC with nanoseconds) and appends it as
//! one JSON line to `<data_dir>/records/orders-YYYYMMDD.jsonl`, one file per UTC day of the
//! event. `portcullis report orders` reads them back (`crate::report`).
//!
//! Field meanings and their regulatory sources: `fix-specs/ORDER-RECORDS.md`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fix::encode::{civil_from_days, write_decimal};
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
    let mut out = String::new();
    write_rfc3339(&mut out, t);
    out
}

/// Appends [`rfc3339`] of `t` to `out` (nothing for zero).
fn write_rfc3339(out: &mut String, t: Nanos) {
    use std::fmt::Write as _;
    if t == Nanos::ZERO {
        return;
    }
    let secs = t.0 / 1_000_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.0 % 1_000_000_000
    );
}

/// Overwrites `f` with `v`, keeping its memory.
fn set(f: &mut String, v: &str) {
    f.clear();
    f.push_str(v);
}

/// Overwrites `f` with `v` (invalid UTF-8 replaced, as `Display` of an `InlineStr` does).
fn set_bytes(f: &mut String, v: &[u8]) {
    f.clear();
    match std::str::from_utf8(v) {
        Ok(v) => f.push_str(v),
        Err(_) => f.push_str(&String::from_utf8_lossy(v)),
    }
}

/// Overwrites `f` with `v` scaled by `decimals` (empty for `None`).
fn set_decimal(f: &mut String, v: Option<i64>, decimals: u32) {
    f.clear();
    if let Some(v) = v {
        let mut b = [0u8; 48];
        let n = write_decimal(&mut b, v, decimals);
        f.push_str(std::str::from_utf8(b.get(..n).unwrap_or_default()).unwrap_or_default());
    }
}

fn set_price(f: &mut String, p: Option<crate::model::Price>) {
    set_decimal(f, p.map(|p| p.0), PRICE_DECIMALS);
}

fn set_qty(f: &mut String, q: Option<crate::model::Qty>) {
    set_decimal(f, q.map(|q| q.0), QTY_DECIMALS);
}

fn set_time(f: &mut String, t: Nanos) {
    f.clear();
    write_rfc3339(f, t);
}

fn set_uint(f: &mut String, v: Option<u64>) {
    use std::fmt::Write as _;
    f.clear();
    if let Some(v) = v {
        let _ = write!(f, "{v}");
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

impl RecordRow {
    pub fn from_record(r: &OrderRecord, names: &Names) -> RecordRow {
        let mut row = RecordRow::default();
        row.fill(r, names);
        row
    }

    /// Overwrites every column with `r`, reusing the strings' memory: the journal thread keeps
    /// one row for all records (no allocation per record once the strings have grown).
    pub fn fill(&mut self, r: &OrderRecord, names: &Names) {
        use std::fmt::Write as _;
        let o = &r.order;
        let d = &o.detail;
        self.session.clear();
        match names.sessions.get(o.session.0 as usize) {
            Some(name) => self.session.push_str(name),
            None => {
                let _ = write!(self.session, "#{}", o.session.0);
            }
        }
        let client = self
            .session
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once("->"))
            .map_or("", |(c, _)| c);
        set(&mut self.client_comp_id, client);
        self.venue.clear();
        match names.venues.get(usize::from(o.venue)) {
            Some(name) => self.venue.push_str(name),
            None => {
                let _ = write!(self.venue, "#{}", o.venue);
            }
        }
        self.routing_decision.clear();
        let _ = match d.route {
            None => Ok(()),
            Some(RouteReason::Default) => {
                write!(self.routing_decision, "default: first venue {}", self.venue)
            }
            Some(RouteReason::ExDestination) => {
                write!(self.routing_decision, "ExDestination(100)={}", self.venue)
            }
            Some(RouteReason::Rule(i)) => write!(
                self.routing_decision,
                "route[{i}] {}",
                names.routes.get(usize::from(i)).map_or("", String::as_str)
            ),
        };
        set_time(&mut self.event_time, r.at);
        set(&mut self.event, r.event.as_str());
        set_bytes(&mut self.api_key_id, r.key_id.as_bytes());
        set_bytes(&mut self.account, o.account.as_bytes());
        set_bytes(&mut self.trader_id, d.trader.as_bytes());
        set_bytes(&mut self.decision_maker_id, d.decision_maker.as_bytes());
        set_bytes(&mut self.symbol, o.symbol.as_bytes());
        set_bytes(&mut self.security_id, d.security_id.as_bytes());
        self.security_id_source.clear();
        if d.security_id_source != 0 {
            self.security_id_source
                .push(char::from(d.security_id_source));
        }
        set(
            &mut self.side,
            match o.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
                Side::SellShort => "sell-short",
            },
        );
        set(
            &mut self.ord_type,
            match o.ord_type {
                OrdType::Market => "market",
                OrdType::Limit => "limit",
            },
        );
        set(
            &mut self.time_in_force,
            match o.tif {
                TimeInForce::Day => "day",
                TimeInForce::GoodTillCancel => "gtc",
                TimeInForce::ImmediateOrCancel => "ioc",
                TimeInForce::FillOrKill => "fok",
            },
        );
        set_bytes(&mut self.exec_inst, d.exec_inst.as_bytes());
        set_price(&mut self.price, o.price);
        set_bytes(&mut self.currency, d.currency.as_bytes());
        set_qty(&mut self.order_qty, Some(o.qty));
        set_qty(&mut self.cum_qty, Some(o.cum_qty));
        set_qty(&mut self.leaves_qty, Some(o.leaves()));
        set_qty(&mut self.last_qty, r.last.map(|(q, _)| q));
        set_price(&mut self.last_px, r.last.map(|(_, p)| p));
        set_price(&mut self.avg_px, (o.cum_qty.0 != 0).then(|| o.avg_px()));
        self.ord_status.clear();
        self.ord_status.push(char::from(o.status.to_fix()));
        set_bytes(&mut self.cl_ord_id, o.cl_ord_id.as_bytes());
        set_bytes(&mut self.orig_cl_ord_id, o.orig_cl_ord_id.as_bytes());
        set_bytes(&mut self.request_cl_ord_id, r.request_cl_ord_id.as_bytes());
        set_qty(&mut self.requested_qty, r.requested.map(|(q, _)| q));
        set_price(&mut self.requested_price, r.requested.and_then(|(_, p)| p));
        set_uint(&mut self.order_id, (o.order_id != 0).then_some(o.order_id));
        set_bytes(&mut self.venue_order_id, o.venue_order_id.as_bytes());
        set_time(&mut self.order_received_time, o.received_at);
        set_time(&mut self.instruction_received_time, o.times.instruction);
        set_time(&mut self.decision_time, o.times.decision);
        set_time(&mut self.sent_to_venue_time, o.times.sent);
        set_time(&mut self.venue_answer_time, o.times.venue);
        set_time(&mut self.sent_to_client_time, r.reported_at);
        set_uint(&mut self.reject_code, r.reject_code.map(u64::from));
        set_bytes(&mut self.text, r.text.as_bytes());
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
    /// The row every record is formatted into (its strings keep their memory).
    row: RecordRow,
    /// The open file and the UTC day (days since the epoch) it holds.
    open: Option<(u64, BufWriter<File>)>,
}

impl RecordWriter {
    /// Creates `<data_dir>/records`.
    pub fn new(data_dir: &Path, names: Names) -> io::Result<RecordWriter> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(RecordWriter {
            dir,
            names,
            row: RecordRow::default(),
            open: None,
        })
    }

    pub fn write(&mut self, r: &OrderRecord) -> io::Result<()> {
        // The file name is built only when the day changes (this runs for every record).
        let day = r.at.0 / 86_400_000_000_000;
        if self.open.as_ref().is_none_or(|(d, _)| *d != day) {
            self.flush()?;
            let path = file_for(&self.dir, r.at);
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            self.open = Some((day, BufWriter::with_capacity(1 << 16, f)));
        }
        self.row.fill(r, &self.names);
        if let Some((_, w)) = &mut self.open {
            serde_json::to_writer(&mut *w, &self.row).map_err(io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
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

    #[test]
    fn a_reused_row_keeps_nothing_of_the_previous_record() {
        use crate::model::{Account, Price, Qty, SessionId};
        use crate::order::record::Lifecycle;
        use crate::order::Order;
        let names = Names {
            sessions: vec!["FIX.4.4:C1->GW".into()],
            venues: vec!["SIM".into()],
            routes: vec![],
        };
        let mut full = Order::blank(SessionId(0), Account::new(b"ACC1").unwrap());
        full.price = Some(Price::from_units(10));
        full.qty = Qty::from_units(5);
        full.order_id = 7;
        full.detail.route = Some(RouteReason::Default);
        let mut fill = OrderRecord::new(Lifecycle::Fill, &full, Nanos(1_764_108_576_000_000_042));
        fill.last = Some((Qty::from_units(5), Price::from_units(10)));
        fill.reject_code = Some(99);
        let fill = fill.with_text(b"some text");
        let bare = OrderRecord::new(
            Lifecycle::New,
            &Order::blank(SessionId(3), Account::EMPTY),
            Nanos(1),
        );
        let mut row = RecordRow::from_record(&fill, &names);
        assert_eq!(row.last_qty, "5");
        assert_eq!(row.routing_decision, "default: first venue SIM");
        row.fill(&bare, &names);
        assert_eq!(row, RecordRow::from_record(&bare, &names));
        assert_eq!(row.session, "#3");
        assert!(row.last_qty.is_empty() && row.text.is_empty() && row.price.is_empty());
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
}
