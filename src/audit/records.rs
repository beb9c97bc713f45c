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

fn decimal(v: i64, decimals: u32) -> String {
    let mut b = [0u8; 48];
    let n = write_decimal(&mut b, v, decimals);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

fn price(p: Option<crate::model::Price>) -> String {
    p.map_or(String::new(), |p| decimal(p.0, PRICE_DECIMALS))
}

fn qty(q: crate::model::Qty) -> String {
    decimal(q.0, QTY_DECIMALS)
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
        let o = &r.order;
        let d = &o.detail;
        let session = names
            .sessions
            .get(o.session.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{}", o.session.0));
        let client = session
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once("->"))
            .map_or(String::new(), |(c, _)| c.to_string());
        let venue = names
            .venues
            .get(usize::from(o.venue))
            .cloned()
            .unwrap_or_else(|| format!("#{}", o.venue));
        let routing_decision = match d.route {
            None => String::new(),
            Some(RouteReason::Default) => format!("default: first venue {venue}"),
            Some(RouteReason::ExDestination) => format!("ExDestination(100)={venue}"),
            Some(RouteReason::Rule(i)) => format!(
                "route[{i}] {}",
                names.routes.get(usize::from(i)).map_or("", String::as_str)
            ),
        };
        RecordRow {
            event_time: rfc3339(r.at),
            event: r.event.as_str().to_string(),
            session,
            client_comp_id: client,
            api_key_id: r.key_id.to_string(),
            account: o.account.to_string(),
            trader_id: d.trader.to_string(),
            decision_maker_id: d.decision_maker.to_string(),
            symbol: o.symbol.to_string(),
            security_id: d.security_id.to_string(),
            security_id_source: if d.security_id_source == 0 {
                String::new()
            } else {
                char::from(d.security_id_source).to_string()
            },
            side: match o.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
                Side::SellShort => "sell-short",
            }
            .into(),
            ord_type: match o.ord_type {
                OrdType::Market => "market",
                OrdType::Limit => "limit",
            }
            .into(),
            time_in_force: match o.tif {
                TimeInForce::Day => "day",
                TimeInForce::GoodTillCancel => "gtc",
                TimeInForce::ImmediateOrCancel => "ioc",
                TimeInForce::FillOrKill => "fok",
            }
            .into(),
            exec_inst: d.exec_inst.to_string(),
            price: price(o.price),
            currency: d.currency.to_string(),
            order_qty: qty(o.qty),
            cum_qty: qty(o.cum_qty),
            leaves_qty: qty(o.leaves()),
            last_qty: r.last.map_or(String::new(), |(q, _)| qty(q)),
            last_px: r.last.map_or(String::new(), |(_, p)| price(Some(p))),
            avg_px: if o.cum_qty.0 == 0 {
                String::new()
            } else {
                price(Some(o.avg_px()))
            },
            ord_status: char::from(o.status.to_fix()).to_string(),
            cl_ord_id: o.cl_ord_id.to_string(),
            orig_cl_ord_id: o.orig_cl_ord_id.to_string(),
            request_cl_ord_id: r.request_cl_ord_id.to_string(),
            requested_qty: r.requested.map_or(String::new(), |(q, _)| qty(q)),
            requested_price: r.requested.map_or(String::new(), |(_, p)| price(p)),
            order_id: if o.order_id == 0 {
                String::new()
            } else {
                o.order_id.to_string()
            },
            venue,
            venue_order_id: o.venue_order_id.to_string(),
            routing_decision,
            order_received_time: rfc3339(o.received_at),
            instruction_received_time: rfc3339(o.times.instruction),
            decision_time: rfc3339(o.times.decision),
            sent_to_venue_time: rfc3339(o.times.sent),
            venue_answer_time: rfc3339(o.times.venue),
            sent_to_client_time: rfc3339(r.reported_at),
            reject_code: r.reject_code.map_or(String::new(), |c| c.to_string()),
            text: r.text.to_string(),
        }
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
        let row = RecordRow::from_record(r, &self.names);
        if let Some((_, w)) = &mut self.open {
            serde_json::to_writer(&mut *w, &row).map_err(io::Error::other)?;
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
