//! COLD — persistence of the throttle's daily quota counters across restarts.
//!
//! File `<data_dir>/throttle-daily.state`, one line per session:
//! `<session key> <order day> <order used> <cancel day> <cancel used> <other day> <other used>`.
//! Written by the journal thread every flush interval and at shutdown (write to a temporary
//! file, then rename, so a crash leaves the old or the new file, never half of one); read once
//! at start. What a crash can lose is at most one interval of counting.

use std::io;
use std::path::Path;

use crate::throttle::{DailyState, DayCount, KeySlot, ThrottleTable};

/// The file name inside the data folder.
pub const FILE: &str = "throttle-daily.state";

/// Writes the daily counters of every session.
pub fn save(path: &Path, keys: &[String], table: &ThrottleTable) -> io::Result<()> {
    let mut text = String::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(d) = table.daily_state(KeySlot(i as u32)) else {
            continue;
        };
        text.push_str(&format!(
            "{key} {} {} {} {} {} {}\n",
            d.order.day, d.order.used, d.cancel.day, d.cancel.used, d.other.day, d.other.used
        ));
    }
    crate::files::replace_private(path, text.as_bytes())
}

/// Restores the counters saved by [`save`] for the sessions still configured. A missing file
/// is a first start; a malformed line is an error naming the line.
pub fn load(path: &Path, keys: &[String], table: &ThrottleTable) -> io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let nums: Vec<u32> = words
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad(path, n))?;
        let [od, ou, cd, cu, xd, xu] = nums[..] else {
            return Err(bad(path, n));
        };
        let Some(slot) = keys.iter().position(|k| k == key) else {
            continue;
        };
        let state = DailyState {
            order: DayCount { day: od, used: ou },
            cancel: DayCount { day: cd, used: cu },
            other: DayCount { day: xd, used: xu },
        };
        table
            .restore_daily(KeySlot(slot as u32), state)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: line {}: {e:?}", path.display(), n + 1),
                )
            })?;
    }
    Ok(())
}

fn bad(path: &Path, n: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: line {} is not `<key> <6 numbers>`",
            path.display(),
            n + 1
        ),
    )
}
