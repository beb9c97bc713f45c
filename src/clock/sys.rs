//! COLD — the kernel's view of time, through FFI: `adjtimex(2)` (NTP/PTP discipline state) and
//! a PTP hardware clock (`/dev/ptp*`) read as a dynamic POSIX clock. Only the clock thread and
//! the `portcullis clock status` command call these; never the gateway thread.
//!
//! This is one of the few modules allowed `unsafe` (see `lib.rs`): the libc calls take raw
//! pointers. Each block is a single call on a stack value we own.
#![allow(unsafe_code)] // FFI to adjtimex(2) and clock_gettime(2); reasons at each block

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What `adjtimex` reports (read-only: `modes = 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTime {
    /// Return value: clock state, `TIME_OK` (0) … `TIME_ERROR` (5).
    pub state: i32,
    /// `status` bits (`STA_UNSYNC` = 0x40, `STA_NANO` = 0x2000, `STA_PLL` = 0x1 …).
    pub status: i32,
    /// Maximum error bound, µs (grows by 500 µs/s while nobody disciplines the clock).
    pub maxerror_us: i64,
    /// Estimated error, µs (set by the discipline daemon: chronyd, ntpd, phc2sys).
    pub esterror_us: i64,
    /// Current offset being slewed out, ns (µs × 1000 unless `STA_NANO`).
    pub offset_ns: i64,
    /// TAI − UTC, seconds (0 when no daemon set it).
    pub tai_s: i32,
}

/// `STA_UNSYNC`: the clock is not synchronised (set at boot, cleared by a discipline daemon).
pub const STA_UNSYNC: i32 = 0x0040;
/// `STA_NANO`: `offset` is in nanoseconds.
pub const STA_NANO: i32 = 0x2000;
/// `TIME_ERROR`: the clock is unsynchronised (or a PPS error).
pub const TIME_ERROR: i32 = 5;

impl KernelTime {
    /// The kernel says the system clock is not disciplined.
    pub fn unsynchronised(&self) -> bool {
        self.state == TIME_ERROR || self.status & STA_UNSYNC != 0
    }
}

/// Reads the kernel clock discipline state (no privilege needed: `modes = 0` changes nothing).
#[cfg(target_os = "linux")]
pub fn kernel_time() -> io::Result<KernelTime> {
    // SAFETY: `timex` is a plain C struct of integers (and private padding); all-zero bytes are
    // a valid value, and `modes = 0` makes adjtimex a pure read.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the duration of the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    let nano = tx.status & STA_NANO != 0;
    Ok(KernelTime {
        state,
        status: tx.status,
        maxerror_us: tx.maxerror as i64,
        esterror_us: tx.esterror as i64,
        offset_ns: if nano {
            tx.offset as i64
        } else {
            (tx.offset as i64).saturating_mul(1000)
        },
        tai_s: tx.tai,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn kernel_time() -> io::Result<KernelTime> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "adjtimex is Linux-only",
    ))
}

/// One reading of a PTP hardware clock against CLOCK_REALTIME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhcReading {
    /// PHC − system clock, ns (ptp4l runs the PHC on TAI: expect ≈ TAI − UTC seconds).
    pub offset_ns: i64,
    /// Width of the system-clock bracket around the PHC read, ns (the reading's uncertainty).
    pub delay_ns: u64,
}

/// The first `/dev/ptpN` device, if any.
pub fn find_phc() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/dev")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("ptp"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

#[cfg(target_os = "linux")]
fn gettime(id: libc::clockid_t) -> io::Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec; an invalid clock id only makes the
    // call fail with EINVAL.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// PHC − CLOCK_REALTIME, the best of a few bracketed reads (the narrowest bracket wins).
#[cfg(target_os = "linux")]
pub fn phc_offset(device: &Path) -> io::Result<PhcReading> {
    let file = File::open(device)?;
    // The dynamic POSIX clock id of an open PHC character device (linux/posix-timers.h
    // FD_TO_CLOCKID): ((~fd) << 3) | CLOCKFD, CLOCKFD = 3.
    let id: libc::clockid_t = ((!file.as_raw_fd()) << 3) | 3;
    let mut best: Option<PhcReading> = None;
    for _ in 0..5 {
        let a = gettime(libc::CLOCK_REALTIME)?;
        let phc = gettime(id)?;
        let b = gettime(libc::CLOCK_REALTIME)?;
        let r = PhcReading {
            offset_ns: (phc - (a + b) / 2) as i64,
            delay_ns: (b - a).max(0) as u64,
        };
        if best.is_none_or(|x| r.delay_ns < x.delay_ns) {
            best = Some(r);
        }
    }
    drop(file);
    best.ok_or_else(|| io::Error::other("no PHC reading"))
}

#[cfg(not(target_os = "linux"))]
pub fn phc_offset(_device: &Path) -> io::Result<PhcReading> {
    let _ = File::open;
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "PHC is Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_time_reads_on_linux() {
        // Whatever the machine's sync state, the read itself works without privilege.
        let k = kernel_time().unwrap();
        assert!((0..=5).contains(&k.state), "{k:?}");
        assert!(k.maxerror_us >= 0);
    }

    #[test]
    fn unsynchronised_flag_and_state() {
        let mut k = KernelTime::default();
        assert!(!k.unsynchronised());
        k.status = STA_UNSYNC | 1;
        assert!(k.unsynchronised());
        k.status = 1;
        k.state = TIME_ERROR;
        assert!(k.unsynchronised());
    }

    #[test]
    fn a_missing_phc_is_an_error_not_a_reading() {
        assert!(phc_offset(Path::new("/dev/ptp-does-not-exist")).is_err());
    }
}
