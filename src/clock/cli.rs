//! COLD — `portcullis clock status`: measures the clock once (three calibrations 100 ms apart
//! for the rate and the drift, the kernel's discipline state, the PHC if any) and prints the status the clock
//! thread of a gateway with the same `[clock]` section would publish. Exit status 0 when within
//! the limit, 1 on a breach, 2 on a configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::status::{ClockStatus, Policy};
use super::thread::{measure, ptp_device};
use super::{system_utc, Clock};
use crate::config::{ClockCfg, Config};

/// `portcullis clock …`.
#[derive(Subcommand, Debug)]
pub enum ClockCmd {
    /// Sync state, estimated divergence from UTC, drift and PTP offset, judged against the
    /// `[clock]` limits of --config (or the defaults).
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Configuration file whose `[clock]` section sets the limit and the PTP device.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(cmd: ClockCmd) -> ExitCode {
    let ClockCmd::Status(a) = cmd;
    let cfg = match &a.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c.clock,
            Err(e) => {
                eprintln!("portcullis clock status: {e}");
                return ExitCode::from(2);
            }
        },
        None => ClockCfg::default(),
    };
    let clock = Clock::fast();
    let ptp = ptp_device(&cfg);
    let status = ClockStatus::new(Policy::from_config(&cfg));
    // Three calibrations 100 ms apart: the first measures the rate, the third's drift shows
    // what is left once it is corrected.
    for _ in 0..2 {
        let _ = measure(&clock, ptp.as_deref());
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = status.publish(measure(&clock, ptp.as_deref()), system_utc());
    print!("{}", status.snapshot());
    if let Some(p) = &ptp {
        println!("ptp device: {}", p.display());
    }
    println!("drift interval: 100 ms");
    if a.breach {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
