//! COLD (a measuring tool) — `loadgen table`: the JSON summaries of several systems, each
//! measured in one or more interleaved rounds (`compare.sh --rounds N`), as one table.
//!
//! On a shared or virtualised box stalls drift over minutes, so systems measured one after the
//! other are measured at different moments. With rounds, every system is measured once per
//! round, and:
//! - a system's row gives, per percentile, the **median over its rounds**;
//! - a ratio row (subject ÷ other) is the **median of the per-round ratios** — both measured in
//!   the same round, close in time — not the ratio of the medians;
//! - `--spread` lines print the per-round ratios of chosen percentiles, so their spread shows.
//!
//! The median of an even count is the mean of the two middle values. A round a system did not
//! measure (`-` in its file list) is left out of its medians and of that round's ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The percentiles a table shows, with their JSON keys.
pub const COLUMNS: [(&str, &str); 6] = [
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p99.9", "p99_9"),
    ("p99.99", "p99_99"),
    ("max", "max"),
];

/// One run (one system, one round): percentiles (µs), achieved rate, rejected, unanswered,
/// why it ended early.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub p: [f64; 6],
    pub achieved: f64,
    pub rejected: u64,
    pub unanswered: u64,
    pub ended: Option<String>,
}

/// A system: its label and its runs, round by round (None: that round measured nothing).
#[derive(Clone, Debug)]
pub struct System {
    pub label: String,
    pub rounds: Vec<Option<Run>>,
}

/// `LABEL=FILE[,FILE…]` as given on the command line: the i-th file is round i; `-` is a round
/// that measured nothing.
pub fn parse_system_arg(v: &str) -> Result<(String, Vec<Option<PathBuf>>), String> {
    match v.split_once('=') {
        Some((label, files)) if !label.is_empty() && !files.is_empty() => {
            let mut out = Vec::new();
            for f in files.split(',') {
                match f {
                    "" => return Err(format!("`{v}` has an empty file name")),
                    "-" => out.push(None),
                    f => out.push(Some(PathBuf::from(f))),
                }
            }
            Ok((label.to_string(), out))
        }
        _ => Err(format!("`{v}` is not LABEL=FILE[,FILE…]")),
    }
}

/// Reads one loadgen JSON summary.
pub fn read_run(path: &Path) -> Result<Run, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let lat = &v["latency_us"];
    let mut p = [0.0; 6];
    for (slot, (_, key)) in p.iter_mut().zip(COLUMNS) {
        *slot = lat[key].as_f64().ok_or_else(|| {
            format!(
                "{}: no latency_us.{key}: not a loadgen summary",
                path.display()
            )
        })?;
    }
    Ok(Run {
        p,
        achieved: v["achieved_rate"].as_f64().unwrap_or(0.0),
        rejected: v["rejected"].as_u64().unwrap_or(0),
        unanswered: v["unanswered"].as_u64().unwrap_or(0),
        ended: v["ended"].as_str().map(str::to_string),
    })
}

/// Reads a system's files (see [`parse_system_arg`]).
pub fn read_system(label: &str, files: &[Option<PathBuf>]) -> Result<System, String> {
    let rounds = files
        .iter()
        .map(|f| f.as_deref().map(read_run).transpose())
        .collect::<Result<_, _>>()?;
    Ok(System {
        label: label.to_string(),
        rounds,
    })
}

/// The median of `values` (the mean of the two middle ones for an even count); None if empty.
/// NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

impl System {
    /// Rounds it measured.
    pub fn measured(&self) -> usize {
        self.rounds.iter().flatten().count()
    }

    /// Per column, the median over its rounds (None: no round measured).
    pub fn medians(&self) -> Option<[f64; 6]> {
        let mut out = [0.0; 6];
        for (c, slot) in out.iter_mut().enumerate() {
            let vals: Vec<f64> = self
                .rounds
                .iter()
                .flatten()
                .filter_map(|r| r.p.get(c).copied())
                .collect();
            *slot = median(&vals)?;
        }
        Some(out)
    }

    /// Per round, `self`'s percentile `c` over `other`'s (None where either did not measure that
    /// round or the divisor is 0).
    pub fn round_ratios(&self, other: &System, c: usize) -> Vec<Option<f64>> {
        let n = self.rounds.len().max(other.rounds.len());
        (0..n)
            .map(|k| {
                let a = self.rounds.get(k)?.as_ref()?.p.get(c).copied()?;
                let b = other.rounds.get(k)?.as_ref()?.p.get(c).copied()?;
                (b > 0.0).then(|| a / b)
            })
            .collect()
    }

    /// The median of [`System::round_ratios`].
    pub fn ratio(&self, other: &System, c: usize) -> Option<f64> {
        let r: Vec<f64> = self.round_ratios(other, c).into_iter().flatten().collect();
        median(&r)
    }
}

/// `--spread COLUMN:LABEL`: the per-round ratios of each subject's COLUMN to LABEL's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    /// Index into [`COLUMNS`].
    pub column: usize,
    pub against: String,
}

impl Spread {
    pub fn parse(v: &str) -> Result<Spread, String> {
        let names = || {
            COLUMNS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (col, label) = v
            .split_once(':')
            .filter(|(c, l)| !c.is_empty() && !l.is_empty())
            .ok_or_else(|| format!("`{v}` is not COLUMN:LABEL (e.g. p99.9:floor-a)"))?;
        let column = COLUMNS
            .iter()
            .position(|(n, _)| *n == col)
            .ok_or_else(|| format!("`{col}` in `{v}` is not one of {}", names()))?;
        Ok(Spread {
            column,
            against: label.to_string(),
        })
    }
}

fn ratio_cell(t: &mut String, r: Option<f64>) {
    match r {
        Some(r) => {
            let _ = write!(t, " {r:>8.2}×");
        }
        None => {
            let _ = write!(t, " {:>9}", "-");
        }
    }
}

/// The table: one row per system (medians over rounds), then for each subject its ratio to
/// every other system (median of per-round ratios), then the `spreads` lines. Errors name a
/// subject or spread label that is no system.
pub fn render(
    systems: &[System],
    subjects: &[String],
    spreads: &[Spread],
) -> Result<String, String> {
    let find = |l: &str| systems.iter().find(|s| s.label == l);
    for s in subjects {
        find(s).ok_or_else(|| format!("--subject {s} names no run"))?;
    }
    for s in spreads {
        find(&s.against).ok_or_else(|| format!("--spread …:{} names no run", s.against))?;
    }
    let rounds = systems.iter().map(|s| s.rounds.len()).max().unwrap_or(1);
    let multi = rounds > 1;
    let w = systems
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut t = String::new();
    if multi {
        let _ = writeln!(
            t,
            "median over {rounds} interleaved rounds (rejected, unanswered: summed); ratios: median \
             of the per-round ratios"
        );
    }
    let _ = write!(t, "{:<w$}", "µs");
    for (name, _) in COLUMNS {
        let _ = write!(t, " {name:>9}");
    }
    let _ = write!(
        t,
        " {:>11} {:>8} {:>10}",
        "achieved/s", "rejected", "unanswered"
    );
    if multi {
        let _ = write!(t, " {:>7}", "rounds");
    }
    t.push('\n');
    for s in systems {
        let _ = write!(t, "{:<w$}", s.label);
        match s.medians() {
            Some(p) => {
                for v in p {
                    let _ = write!(t, " {v:>9.1}");
                }
            }
            None => {
                for _ in COLUMNS {
                    let _ = write!(t, " {:>9}", "-");
                }
            }
        }
        let runs: Vec<&Run> = s.rounds.iter().flatten().collect();
        let achieved: Vec<f64> = runs.iter().map(|r| r.achieved).collect();
        let _ = write!(
            t,
            " {:>11.0} {:>8} {:>10}",
            median(&achieved).unwrap_or(0.0),
            runs.iter().map(|r| r.rejected).sum::<u64>(),
            runs.iter().map(|r| r.unanswered).sum::<u64>(),
        );
        if multi {
            let _ = write!(t, " {:>7}", format!("{}/{}", s.measured(), rounds));
        }
        for (k, r) in s.rounds.iter().enumerate() {
            if let Some(e) = r.as_ref().and_then(|r| r.ended.as_deref()) {
                if multi {
                    let _ = write!(t, "  (round {} ended early: {e})", k + 1);
                } else {
                    let _ = write!(t, "  (ended early: {e})");
                }
            }
        }
        t.push('\n');
    }
    for label in subjects {
        let Some(subject) = find(label) else { continue };
        let _ = writeln!(t, "\n{} as a multiple of:", subject.label);
        for r in systems.iter().filter(|r| r.label != subject.label) {
            let _ = write!(t, "{:<w$}", r.label);
            for c in 0..COLUMNS.len() {
                ratio_cell(&mut t, subject.ratio(r, c));
            }
            t.push('\n');
        }
    }
    // (line label, subject, other, column) of every spread line.
    let mut lines = Vec::new();
    for label in subjects {
        let Some(subject) = find(label) else { continue };
        for sp in spreads {
            let Some(other) = find(&sp.against) else {
                continue;
            };
            if other.label != subject.label {
                let col = COLUMNS.get(sp.column).map_or("?", |c| c.0);
                let name = format!("{} {col} / {}", subject.label, other.label);
                lines.push((name, subject, other, sp.column));
            }
        }
    }
    if !lines.is_empty() {
        let lw = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
        let _ = write!(t, "\n{:<lw$}", "per round");
        for k in 1..=rounds {
            let _ = write!(t, " {:>9}", format!("r{k}"));
        }
        let _ = writeln!(t, "  {:>9}", "median");
        for (name, subject, other, c) in lines {
            let _ = write!(t, "{name:<lw$}");
            let per = subject.round_ratios(other, c);
            for k in 0..rounds {
                ratio_cell(&mut t, per.get(k).copied().flatten());
            }
            t.push_str("  ");
            ratio_cell(&mut t, subject.ratio(other, c));
            t.push('\n');
        }
    }
    Ok(t)
}
