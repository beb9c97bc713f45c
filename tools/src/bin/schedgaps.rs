//! `schedgaps`: who preempts the spinning threads. Reads `perf script` output of a
//! `sched:sched_switch` trace on standard input (or a file) and prints, per spinning thread,
//! how often and how long it was switched out, the longest gaps with the tasks that ran in
//! them, and the tasks that took the spinners' CPUs. See tuning.md, "Who preempts the spinning
//! threads".
//!
//! ```text
//! perf record -e sched:sched_switch -a -o sched.data -- sleep 8     # during a load run
//! perf script -i sched.data | schedgaps --spinners portcullis-hot,loadgen
//! ```

use std::io::{BufRead, BufReader};
use std::process::ExitCode;

use clap::Parser;
use portcullis_tools::schedgaps::{analyse, parse_line};

#[derive(Parser)]
#[command(
    about = "Who takes the CPU from the spinning threads (reads `perf script` of a sched:sched_switch trace)"
)]
struct Args {
    /// Task names of the spinning threads, comma-separated (as /proc/<pid>/task/<tid>/comm
    /// shows them: the gateway's is `portcullis-hot`).
    #[arg(long, value_delimiter = ',', default_value = "portcullis-hot,loadgen")]
    spinners: Vec<String>,
    /// How many of the longest gaps to list.
    #[arg(long, default_value_t = 12)]
    longest: usize,
    /// `perf script` output to read instead of standard input.
    file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let input: Box<dyn BufRead> = match &a.file {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                eprintln!("schedgaps: {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let spinners: Vec<&str> = a.spinners.iter().map(String::as_str).collect();
    let mut read = 0u64;
    let switches = input
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| parse_line(&l))
        .inspect(|_| read += 1);
    let analysis = analyse(switches, &spinners);
    if read == 0 {
        eprintln!(
            "schedgaps: no sched:sched_switch lines read (record with `perf record -e sched:sched_switch -a`, then pipe `perf script`)"
        );
        return ExitCode::from(2);
    }
    if analysis.gaps.is_empty() {
        eprintln!(
            "schedgaps: {read} switches read, none of a spinner ({}): check the task names",
            a.spinners.join(",")
        );
        return ExitCode::from(2);
    }
    print!("{}", analysis.report(a.longest));
    ExitCode::SUCCESS
}
