//! COLD — `[clock]`: calibration interval, the allowed divergence from UTC and what a breach does
//! (CLOCK-2, MiFID II RTS 25).

use serde::Deserialize;

use super::ConfigError;

/// What a divergence beyond `max_divergence_us` does.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnDivergence {
    /// Record an event (events.log) on every change of state; keep trading.
    #[default]
    Alert,
    /// Also refuse new orders (ExecutionReport 39=8, 103=99) until the clock is back in limits.
    Halt,
}

/// `[clock]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClockCfg {
    /// How often the clock thread recalibrates the fast clock against CLOCK_REALTIME and reads
    /// the kernel's sync state, ms. Default 100. Each calibration re-anchors the fast clock and
    /// re-measures its rate (quanta's start-up TSC calibration was off by 100–500 ppm on our
    /// VMs); what is left between two calibrations (`calibration drift`, typically under 1 µs)
    /// counts in the divergence estimate. A calibration costs a few µs of a cold thread.
    pub calibrate_ms: u64,
    /// Largest allowed estimated divergence from UTC, µs. RTS 25 Annex Table 2: 100 for HFT
    /// (high-frequency algorithmic trading), 1000 for other algorithmic/electronic trading.
    pub max_divergence_us: u64,
    /// What a breach does: "alert" (default) or "halt" new orders.
    pub on_divergence: OnDivergence,
    /// Whether a clock the kernel reports as unsynchronised (or whose state cannot be read)
    /// counts as a breach. Default false: it is reported and alerted, but without a divergence
    /// figure it does not halt — so development boxes and CI runners without NTP/PTP still
    /// trade. Production with `on_divergence = "halt"` should set it true.
    pub unsynchronised_is_breach: bool,
    /// PTP hardware clock to compare with the system clock. Default: the first `/dev/ptpN`;
    /// "none" disables the comparison.
    pub ptp_device: Option<String>,
}

impl Default for ClockCfg {
    fn default() -> Self {
        ClockCfg {
            calibrate_ms: 100,
            max_divergence_us: 1000,
            on_divergence: OnDivergence::Alert,
            unsynchronised_is_breach: false,
            ptp_device: None,
        }
    }
}

impl ClockCfg {
    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("clock.{key}"),
            problem,
        };
        if !(10..=60_000).contains(&self.calibrate_ms) {
            return Err(err(
                "calibrate_ms",
                format!("{} is outside 10..=60000", self.calibrate_ms),
            ));
        }
        if !(1..=10_000_000).contains(&self.max_divergence_us) {
            return Err(err(
                "max_divergence_us",
                format!(
                    "{} is outside 1..=10000000 (RTS 25: 100 for HFT, 1000 otherwise)",
                    self.max_divergence_us
                ),
            ));
        }
        if let Some(d) = &self.ptp_device {
            if d.is_empty() {
                return Err(err(
                    "ptp_device",
                    "must be a device path or \"none\"".into(),
                ));
            }
        }
        Ok(())
    }
}
