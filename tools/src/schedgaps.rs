//! `schedgaps`: who takes the CPU from the spinning threads. Reads the text of `perf script`
//! over a `perf record -e sched:sched_switch -a` trace and reports, for each spinning thread
//! (the gateway's `portcullis-hot`, the load generator), every interval it spent switched out
//! ("gap"), how long, and which tasks ran on its CPU meanwhile.
//!
//! On a machine with as many spinning threads as cores, every other runnable task runs by
//! preempting a spinner, and the orders that arrive meanwhile wait: the gaps are the latency
//! tail. `tuning.md` ("Who preempts the spinning threads") shows how to record the trace.

use std::collections::HashMap;
use std::fmt::Write as _;

/// One `sched:sched_switch` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Switch {
    pub cpu: u32,
    /// Seconds (perf's clock).
    pub time: f64,
    pub prev_comm: String,
    pub prev_pid: u32,
    /// `R` (preempted, still runnable), `S`/`D` (went to sleep), …
    pub prev_state: String,
    pub next_comm: String,
    pub next_pid: u32,
}

/// The value after `key` up to the next ` <word>=` key (task names may contain spaces).
fn field<'a>(line: &'a str, key: &str, next_key: Option<&str>) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = match next_key {
        Some(k) => rest.find(k)?,
        None => rest.find(' ').unwrap_or(rest.len()),
    };
    Some(rest[..end].trim_end())
}

/// Parses one line of `perf script` output; `None` for anything that is not a sched_switch.
pub fn parse_line(line: &str) -> Option<Switch> {
    let at = line.find(": sched:sched_switch:")?;
    let head = &line[..at];
    let open = head.rfind('[')?;
    let close = head[open..].find(']')? + open;
    let cpu = head[open + 1..close].trim().parse().ok()?;
    let time = head[close + 1..]
        .trim()
        .trim_end_matches(':')
        .parse()
        .ok()?;
    let body = &line[at..];
    Some(Switch {
        cpu,
        time,
        prev_comm: field(body, "prev_comm=", Some(" prev_pid="))?.to_string(),
        prev_pid: field(body, "prev_pid=", None)?.parse().ok()?,
        prev_state: field(body, "prev_state=", None)?.to_string(),
        next_comm: field(body, "next_comm=", Some(" next_pid="))?.to_string(),
        next_pid: field(body, "next_pid=", None)?.parse().ok()?,
    })
}

/// One interval a spinning thread spent switched out.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub spinner: String,
    pub cpu: u32,
    /// When it was switched out, seconds (perf's clock).
    pub start: f64,
    pub seconds: f64,
    /// How it left: `R` = preempted (the usual case for a spinner).
    pub state: String,
    /// Tasks that ran on its CPU during the gap, with their time, longest first.
    pub ran: Vec<(String, f64)>,
}

/// Time other tasks took on the spinners' CPUs while a spinner was out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Intruder {
    pub seconds: f64,
    pub runs: u64,
    pub longest: f64,
}

/// The whole trace, analysed.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Seconds between the first and the last switch read.
    pub span: f64,
    pub gaps: Vec<Gap>,
    pub intruders: HashMap<String, Intruder>,
}

/// A spinner switched out: its CPU, since when, how it left, its name, what ran since.
type Out = (u32, f64, String, String, Vec<(String, f64)>);

/// Collects the gaps of the threads whose name is in `spinners` (exact task names, as
/// `/proc/<pid>/task/<tid>/comm` shows them: 15 characters at most).
pub fn analyse(switches: impl IntoIterator<Item = Switch>, spinners: &[&str]) -> Analysis {
    let is_spinner = |c: &str| spinners.contains(&c);
    // Per CPU: the task switched in last, and when.
    let mut running: HashMap<u32, (String, f64)> = HashMap::new();
    // Per spinner pid out: (cpu, when, state, name, tasks that ran there since).
    let mut out: HashMap<u32, Out> = HashMap::new();
    let mut a = Analysis::default();
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for s in switches {
        if first.is_nan() {
            first = s.time;
        }
        last = s.time;
        // The task leaving ran from its switch-in until now.
        if let Some((started, since)) = running.get(&s.cpu) {
            // The task leaving should be the one that came in last; when it is not, the trace
            // lost the switches in between and the interval belongs to either.
            let comm = if *started == s.prev_comm {
                started.clone()
            } else {
                format!("{started}..{} (switches lost)", s.prev_comm)
            };
            if !is_spinner(&comm) {
                let d = s.time - since;
                for (cpu, _, _, _, ran) in out.values_mut() {
                    if *cpu == s.cpu {
                        ran.push((comm.clone(), d));
                    }
                }
                if out.values().any(|(cpu, ..)| *cpu == s.cpu) {
                    let e = a.intruders.entry(comm).or_default();
                    e.seconds += d;
                    e.runs += 1;
                    e.longest = e.longest.max(d);
                }
            }
        }
        if is_spinner(&s.prev_comm) {
            out.insert(
                s.prev_pid,
                (
                    s.cpu,
                    s.time,
                    s.prev_state.clone(),
                    s.prev_comm.clone(),
                    Vec::new(),
                ),
            );
        }
        if is_spinner(&s.next_comm) {
            if let Some((cpu, start, state, name, ran)) = out.remove(&s.next_pid) {
                let mut merged: Vec<(String, f64)> = Vec::new();
                for (c, d) in ran {
                    match merged.iter_mut().find(|(m, _)| *m == c) {
                        Some((_, t)) => *t += d,
                        None => merged.push((c, d)),
                    }
                }
                merged.sort_by(|x, y| y.1.total_cmp(&x.1));
                a.gaps.push(Gap {
                    spinner: name,
                    cpu,
                    start,
                    seconds: s.time - start,
                    state,
                    ran: merged,
                });
            }
        }
        running.insert(s.cpu, (s.next_comm.clone(), s.time));
    }
    if !first.is_nan() {
        a.span = last - first;
    }
    a
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

impl Analysis {
    /// The report: per spinner, the longest gaps, the intruders.
    pub fn report(&self, longest: usize) -> String {
        let mut s = String::new();
        let us = |x: f64| x * 1e6;
        let _ = writeln!(s, "trace: {:.2} s", self.span);
        let mut names: Vec<&str> = self.gaps.iter().map(|g| g.spinner.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            let mut d: Vec<f64> = self
                .gaps
                .iter()
                .filter(|g| g.spinner == n)
                .map(|g| g.seconds)
                .collect();
            d.sort_by(f64::total_cmp);
            let total: f64 = d.iter().sum();
            let share = if self.span > 0.0 {
                100.0 * total / self.span
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "{n}: switched out {} times, {:.1} ms in all ({share:.2} % of the trace); gap p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                d.len(),
                total * 1e3,
                us(percentile(&d, 0.5)),
                us(percentile(&d, 0.99)),
                us(d.last().copied().unwrap_or(0.0)),
            );
        }
        let mut gaps: Vec<&Gap> = self.gaps.iter().collect();
        gaps.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
        let _ = writeln!(s, "longest gaps (µs; who ran meanwhile, µs):");
        for g in gaps.iter().take(longest) {
            let who: Vec<String> = g
                .ran
                .iter()
                .take(3)
                .map(|(c, d)| format!("{c} {:.0}", us(*d)))
                .collect();
            let _ = writeln!(
                s,
                "  {:>8.0}  {} cpu{} at {:.3} ({}): {}",
                us(g.seconds),
                g.spinner,
                g.cpu,
                g.start,
                if g.state == "R" {
                    "preempted".to_string()
                } else {
                    format!("state {}", g.state)
                },
                who.join(", ")
            );
        }
        let mut intr: Vec<(&String, &Intruder)> = self.intruders.iter().collect();
        intr.sort_by(|x, y| y.1.seconds.total_cmp(&x.1.seconds));
        let _ = writeln!(
            s,
            "tasks that ran while a spinner was out: ms in all, runs, longest run µs"
        );
        for (c, i) in intr.iter().take(15) {
            let _ = writeln!(
                s,
                "  {c:<24} {:>9.2} {:>7} {:>9.0}",
                i.seconds * 1e3,
                i.runs,
                us(i.longest)
            );
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sw(cpu: u32, t: f64, prev: (&str, u32, &str), next: (&str, u32)) -> String {
        format!(
            "{:>16} {:>6} [{cpu:03}] {t:.6}: sched:sched_switch: prev_comm={} prev_pid={} prev_prio=120 prev_state={} ==> next_comm={} next_pid={} next_prio=120",
            prev.0, prev.1, prev.0, prev.1, prev.2, next.0, next.1
        )
    }

    #[test]
    fn parses_perf_script_lines_with_spaces_in_task_names() {
        let l = sw(
            1,
            38641.280074,
            ("lto cgu.0.rcgu.", 705, "R"),
            ("loadgen", 9),
        );
        let s = parse_line(&l).unwrap();
        assert_eq!(s.cpu, 1);
        assert!((s.time - 38641.280074).abs() < 1e-9);
        assert_eq!(s.prev_comm, "lto cgu.0.rcgu.");
        assert_eq!((s.prev_pid, s.prev_state.as_str()), (705, "R"));
        assert_eq!((s.next_comm.as_str(), s.next_pid), ("loadgen", 9));
        assert_eq!(
            parse_line("  perf 1 [000] 1.0: sched:sched_wakeup: comm=x"),
            None
        );
    }

    #[test]
    fn gaps_name_who_ran_and_for_how_long() {
        let lines = [
            sw(
                0,
                10.000000,
                ("portcullis-hot", 7, "R"),
                ("portcullis-jour", 8),
            ),
            sw(
                0,
                10.000050,
                ("portcullis-jour", 8, "S"),
                ("kworker/0:1", 9),
            ),
            sw(
                0,
                10.000060,
                ("kworker/0:1", 9, "I"),
                ("portcullis-jour", 8),
            ),
            sw(
                0,
                10.000080,
                ("portcullis-jour", 8, "S"),
                ("portcullis-hot", 7),
            ),
            // A second, longer gap on the other CPU for the load generator.
            sw(1, 10.001000, ("loadgen", 5, "R"), ("portcullis-segm", 6)),
            sw(1, 10.004000, ("portcullis-segm", 6, "S"), ("loadgen", 5)),
        ];
        let a = analyse(
            lines.iter().filter_map(|l| parse_line(l)),
            &["portcullis-hot", "loadgen"],
        );
        assert_eq!(a.gaps.len(), 2);
        let hot = &a.gaps[0];
        assert_eq!(
            (hot.spinner.as_str(), hot.cpu, hot.state.as_str()),
            ("portcullis-hot", 0, "R")
        );
        assert!((hot.seconds - 80e-6).abs() < 1e-9);
        assert_eq!(hot.ran[0].0, "portcullis-jour");
        assert!((hot.ran[0].1 - 70e-6).abs() < 1e-9);
        assert_eq!(hot.ran[1].0, "kworker/0:1");
        let lg = &a.gaps[1];
        assert!((lg.seconds - 3e-3).abs() < 1e-9);
        assert_eq!(lg.ran, vec![("portcullis-segm".to_string(), lg.ran[0].1)]);
        let j = &a.intruders["portcullis-jour"];
        assert_eq!(j.runs, 2);
        assert!((j.seconds - 70e-6).abs() < 1e-9 && (j.longest - 50e-6).abs() < 1e-9);
        assert!((a.intruders["portcullis-segm"].longest - 3e-3).abs() < 1e-9);
        let r = a.report(5);
        assert!(r.contains("portcullis-hot: switched out 1 times"), "{r}");
        assert!(
            r.lines().nth(4).unwrap().contains("3000  loadgen cpu1"),
            "{r}"
        );
    }
}
