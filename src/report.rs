//! COLD — `portcullis report orders`: exports the order records (REG-1) of a time range from
//! `<data_dir>/records/` as CSV or JSON. Reads files only; never talks to a running gateway.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::audit::records::{rfc3339, RecordRow, DIR};
use crate::config::Config;
use crate::fix::decode::days_from_civil;
use crate::model::Nanos;

/// `portcullis report …`.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Order records (every lifecycle event, MiFID II RTS 24 / CAT-style fields) in a time range.
    Orders(OrdersArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct OrdersArgs {
    /// Start, inclusive: RFC 3339 UTC (2026-11-25T09:00:00Z) or a date (2026-11-25 = midnight).
    #[arg(long)]
    pub from: String,
    /// End, exclusive: same forms (a date means its midnight: `--to 2026-11-26` ends the 25th).
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Data folder of the gateway (default: gateway.data_dir of --config, else
    /// ./portcullis-data).
    #[arg(long, conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file whose gateway.data_dir holds the records.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs a report command; errors go to stderr with exit status 2.
pub fn run(cmd: ReportCmd) -> ExitCode {
    match cmd {
        ReportCmd::Orders(a) => match orders(&a, &mut io::stdout().lock()) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis report orders: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`.
pub fn parse_time(s: &str) -> Result<Nanos, String> {
    let bad = || {
        format!("{s:?} is not an RFC 3339 UTC time (2026-11-25T09:00:00Z) or a date (2026-11-25)")
    };
    let num = |t: &str| -> Result<u32, String> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    // Nanoseconds since 1970 in a u64 reach into 2554; the range stays well inside.
    if !(1970..=2500).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("{}; years 1970-2500", bad()));
    }
    let days = days_from_civil(i64::from(y), m, d);
    let mut ns = (days as u64) * 86_400_000_000_000;
    if let Some(t) = time {
        let t = t
            .strip_suffix('Z')
            .or_else(|| t.strip_suffix('z'))
            .or_else(|| t.strip_suffix("+00:00"))
            .ok_or_else(|| format!("{s:?}: give the time in UTC (ending in Z)"))?;
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut tp = hms.split(':');
        let (Some(h), Some(mi), Some(sec), None) = (tp.next(), tp.next(), tp.next(), tp.next())
        else {
            return Err(bad());
        };
        let (h, mi, sec) = (num(h)?, num(mi)?, num(sec)?);
        if h > 23 || mi > 59 || sec > 60 || frac.len() > 9 {
            return Err(bad());
        }
        let mut f = 0u64;
        if !frac.is_empty() {
            // At most 9 digits: below 10^9, no overflow.
            f = u64::from(num(frac)?) * 10u64.pow(9 - frac.len() as u32);
        }
        ns += (u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(sec)) * 1_000_000_000 + f;
    }
    Ok(Nanos(ns))
}

/// The data folder the arguments point at.
fn data_dir(a: &OrdersArgs) -> Result<PathBuf, String> {
    if let Some(d) = &a.data_dir {
        return Ok(d.clone());
    }
    if let Some(c) = &a.config {
        return Config::load(c)
            .map(|c| c.gateway.data_dir)
            .map_err(|e| e.to_string());
    }
    Ok(PathBuf::from("./portcullis-data"))
}

/// Every record with `from <= event_time < to`, in file order (time order within a day).
pub fn read_rows(data_dir: &Path, from: Nanos, to: Nanos) -> Result<Vec<RecordRow>, String> {
    let dir = data_dir.join(DIR);
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        format!(
            "{}: {e} (no order records: is this the gateway's data folder?)",
            dir.display()
        )
    })?;
    let first_day = rfc3339(from).get(..10).unwrap_or("").replace('-', "");
    let last_day = rfc3339(Nanos(to.0.saturating_sub(1)))
        .get(..10)
        .unwrap_or("")
        .replace('-', "");
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let day = name
                .strip_prefix("orders-")?
                .strip_suffix(".jsonl")?
                .to_string();
            (day.len() == 8 && day >= first_day && day <= last_day).then(|| (day, e.path()))
        })
        .collect();
    files.sort();
    let (lo, hi) = (rfc3339(from), rfc3339(to));
    let mut rows = Vec::new();
    for (_, path) in files {
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, line) in io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let row: RecordRow = match serde_json::from_str(&line) {
                Ok(r) => r,
                // A crash can leave the last line half-written: skip only that one.
                Err(e) if e.is_eof() => continue,
                Err(e) => return Err(format!("{}: line {}: {e}", path.display(), i + 1)),
            };
            if row.event_time >= lo && (to.0 == 0 || row.event_time < hi) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Writes `rows` as CSV with a header line (columns: [`RecordRow::COLUMNS`]).
pub fn write_csv(rows: &[RecordRow], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", RecordRow::COLUMNS.join(","))?;
    for r in rows {
        let line: Vec<String> = r.values().iter().map(|v| csv_field(v)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

/// `portcullis report orders`; returns how many records it wrote.
pub fn orders(a: &OrdersArgs, out: &mut impl Write) -> Result<usize, String> {
    let from = parse_time(&a.from).map_err(|e| format!("--from: {e}"))?;
    let to = parse_time(&a.to).map_err(|e| format!("--to: {e}"))?;
    if to <= from {
        return Err(format!("--to ({}) must be after --from ({})", a.to, a.from));
    }
    let rows = read_rows(&data_dir(a)?, from, to)?;
    match a.format {
        Format::Csv => write_csv(&rows, out).map_err(|e| e.to_string())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| e.to_string())?;
            writeln!(out).map_err(|e| e.to_string())?;
        }
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_dates_or_rfc3339_utc() {
        assert_eq!(parse_time("1970-01-02").unwrap(), Nanos::from_secs(86_400));
        assert_eq!(
            parse_time("1970-01-01T00:00:01.5Z").unwrap(),
            Nanos(1_500_000_000)
        );
        assert_eq!(
            parse_time("1970-01-01T01:00:00+00:00").unwrap(),
            Nanos::from_secs(3600)
        );
        assert!(parse_time("1970-01-01T01:00:00+02:00")
            .unwrap_err()
            .contains("UTC"));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("9999-01-01").unwrap_err().contains("1970-2500"));
        assert!(parse_time("2500-12-31T23:59:60.999999999Z").is_ok());
        assert_eq!(
            rfc3339(parse_time("2026-11-25T22:09:36.123456789Z").unwrap()),
            "2026-11-25T22:09:36.123456789Z"
        );
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
