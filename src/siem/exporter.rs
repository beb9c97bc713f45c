//! COLD — the exporter thread: takes entries from the journal thread's queue, formats them,
//! and delivers them to the collector, or to the spool while the collector is unreachable.
//!
//! # Order and delivery
//! One rule keeps the order: while the spool holds anything, new messages are appended to it
//! too, and the spool is replayed (oldest first) before anything is written directly. Delivery
//! is at least once: a batch whose write failed goes to the spool whole and is sent again, so
//! the collector may see a message twice (the `sequenceId` tells). Messages the kernel had
//! accepted for a collector that then crashed, or that accepts connections but never reads,
//! are beyond what syslog over TCP can know about (it has no acknowledgements; RELP would be
//! the next step). The exporter checks the socket for a close before each batch, so a
//! collector that shuts down is noticed before anything is written into the dead link, and a
//! write blocked for [`super::link::WRITE_TIMEOUT`] gives the link up and reconnects.
//!
//! # Losses are counted and announced
//! A message that does not fit in the spool, or that the journal thread could not queue, is
//! dropped and counted (`SiemDropped`); once the link is up and the spool replayed, a
//! `siem-dropped count=N` notice (severity warning) tells the collector how many and when.
//!
//! # Reconnects
//! After a failed connect, or a link lost, the exporter waits 100 ms, doubling up to
//! `reconnect_max_ms`, with ±25 % jitter (a fleet of gateways does not reconnect in step); a
//! write that succeeds resets the wait, so a link that breaks again before delivering anything
//! (a collector that refuses us after the handshake) keeps backing off. Link up/down transitions go to stderr once each, not per attempt.
//!
//! # Stopping
//! When the journal thread drops its feed the exporter delivers what is queued (or spools it),
//! replays the spool for at most [`FINAL_REPLAY`], syncs the spool and returns: nothing
//! undelivered is lost, it waits in the spool for the next start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::entry::{now_rfc3339, Entry};
use super::format::{frame, Formatter};
use super::link::{Link, Target};
use super::spool::Spool;
use crate::monitor::{Counter, Counters};

/// First wait after a failed connect.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest the exporter sleeps waiting for entries (it also checks the link then).
const TICK: Duration = Duration::from_millis(100);
/// Entries formatted and written per batch.
const BATCH: usize = 256;
/// Bytes of spool replayed per write.
const REPLAY_CHUNK: usize = 256 * 1024;
/// Longest a replay runs before new entries are taken again (they go to the spool meanwhile,
/// behind the replay, so order holds).
const REPLAY_SLICE: Duration = Duration::from_millis(200);
/// Longest the exporter keeps replaying at stop.
pub const FINAL_REPLAY: Duration = Duration::from_secs(3);

pub struct Exporter {
    pub rx: Receiver<Entry>,
    pub formatter: Formatter,
    pub spool: Spool,
    pub target: Target,
    pub counters: Arc<Counters>,
    /// Entries the journal thread could not queue (already in `SiemDropped`), not yet
    /// announced.
    pub queue_drops: Arc<AtomicU64>,
    pub reconnect_max: Duration,
}

/// Dropped messages not yet announced, and the times of the first and last.
#[derive(Default)]
struct Drops {
    count: u64,
    first: Option<String>,
    last: Option<String>,
}

impl Drops {
    fn add(&mut self, n: u64, time: &str) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.first.is_none() {
            self.first = Some(time.to_string());
        }
        self.last = Some(time.to_string());
    }
}

struct State {
    link: Option<Link>,
    ever_connected: bool,
    /// Whether the current outage was reported already.
    down_reported: bool,
    backoff: Duration,
    next_attempt: Instant,
    seq: u32,
    drops: Drops,
}

impl Exporter {
    pub fn run(mut self) {
        let mut st = State {
            link: None,
            ever_connected: false,
            down_reported: false,
            backoff: MIN_BACKOFF,
            next_attempt: crate::clock::monotonic(),
            seq: 0,
            drops: Drops::default(),
        };
        self.publish_gauge();
        loop {
            let (batch, input_closed) = self.take_batch(&st);
            let q = self.queue_drops.swap(0, Ordering::Relaxed);
            if q > 0 {
                st.drops.add(q, &now_rfc3339());
            }
            if let Some(l) = &mut st.link {
                if l.closed_by_peer() {
                    self.link_down(&mut st, "the collector closed the connection");
                }
            }
            if !batch.is_empty() {
                self.deliver(&mut st, &batch);
            }
            if st.link.is_none() && crate::clock::monotonic() >= st.next_attempt {
                self.try_connect(&mut st);
            }
            self.replay(&mut st, REPLAY_SLICE);
            self.announce_drops(&mut st);
            if let Err(e) = self.spool.sync() {
                crate::say_err(format_args!(
                    "portcullis: SIEM: cannot sync {}: {e}",
                    self.spool.path().display()
                ));
            }
            self.publish_gauge();
            if input_closed {
                self.finish(st);
                return;
            }
        }
    }

    /// Waits up to a tick for entries, then takes what else is queued (up to [`BATCH`]).
    /// Returns the batch and whether the journal side has gone (and everything is taken).
    fn take_batch(&self, st: &State) -> (Vec<Entry>, bool) {
        let mut wait = TICK;
        if st.link.is_none() {
            let until = st
                .next_attempt
                .saturating_duration_since(crate::clock::monotonic());
            wait = wait.min(until);
        } else if !self.spool.is_empty() {
            wait = Duration::ZERO;
        }
        let mut batch = Vec::new();
        let first = if wait.is_zero() {
            self.rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            self.rx.recv_timeout(wait)
        };
        match first {
            Ok(e) => batch.push(e),
            Err(RecvTimeoutError::Timeout) => return (batch, false),
            Err(RecvTimeoutError::Disconnected) => return (batch, true),
        }
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return (batch, true),
            }
        }
        (batch, false)
    }

    /// Formats `batch`; writes it to the collector if the link is up and nothing is spooled,
    /// else (or when the write fails) appends it to the spool.
    fn deliver(&mut self, st: &mut State, batch: &[Entry]) {
        let frames: Vec<(Vec<u8>, &Entry)> = batch
            .iter()
            .map(|e| {
                st.seq = if st.seq >= i32::MAX as u32 {
                    1
                } else {
                    st.seq + 1
                };
                let mut f = Vec::new();
                frame(&self.formatter.message(e, st.seq), &mut f);
                (f, e)
            })
            .collect();
        if self.spool.is_empty() {
            if let Some(l) = &mut st.link {
                let all: Vec<u8> = frames.iter().flat_map(|(f, _)| f.iter().copied()).collect();
                match l.send(&all) {
                    Ok(()) => {
                        self.counters.add(Counter::SiemSent, frames.len() as u64);
                        return;
                    }
                    Err(e) => self.link_down(st, &format!("write failed: {e}")),
                }
            }
        }
        for (f, e) in &frames {
            self.spool_frame(st, f, &e.time);
        }
    }

    fn spool_frame(&mut self, st: &mut State, frame: &[u8], time: &str) {
        match self.spool.append(frame) {
            Ok(true) => {}
            Ok(false) => {
                self.counters.inc(Counter::SiemDropped);
                st.drops.add(1, time);
            }
            Err(e) => {
                crate::say_err(format_args!(
                    "portcullis: SIEM: cannot write the spool {}: {e} (message dropped)",
                    self.spool.path().display()
                ));
                self.counters.inc(Counter::SiemDropped);
                st.drops.add(1, time);
            }
        }
    }

    fn try_connect(&mut self, st: &mut State) {
        match Link::connect(&self.target) {
            Ok(link) => {
                if st.ever_connected || st.down_reported {
                    self.counters.inc(Counter::SiemReconnects);
                }
                let spooled = self.spool.unsent();
                crate::say_err(format_args!(
                    "portcullis: SIEM: connected to {}{}",
                    self.target.describe(),
                    if spooled > 0 {
                        format!("; replaying {spooled} spooled bytes")
                    } else {
                        String::new()
                    }
                ));
                st.link = Some(link);
                st.ever_connected = true;
                st.down_reported = false;
            }
            Err(e) => {
                let wait = jitter(st.backoff);
                st.next_attempt = crate::clock::monotonic() + wait;
                if !st.down_reported {
                    crate::say_err(format_args!(
                        "portcullis: SIEM: collector {} unreachable: {e}; spooling to {} \
                         (retrying, at most every {} ms)",
                        self.target.describe(),
                        self.spool.path().display(),
                        self.reconnect_max.as_millis()
                    ));
                    st.down_reported = true;
                }
                st.backoff = (st.backoff * 2).min(self.reconnect_max);
            }
        }
    }

    fn link_down(&mut self, st: &mut State, why: &str) {
        if let Some(l) = st.link.take() {
            l.close();
        }
        crate::say_err(format_args!(
            "portcullis: SIEM: link to {} lost: {why}; spooling to {}",
            self.target.describe(),
            self.spool.path().display()
        ));
        st.down_reported = true;
        // A link that carried messages reconnects after MIN_BACKOFF (a collector restart is
        // the common case); one that breaks again before delivering anything backs off.
        st.next_attempt = crate::clock::monotonic() + jitter(st.backoff);
        st.backoff = (st.backoff * 2).min(self.reconnect_max);
    }

    /// Replays the spool for at most `budget` while the link holds.
    fn replay(&mut self, st: &mut State, budget: Duration) {
        let start = crate::clock::monotonic();
        while !self.spool.is_empty() && start.elapsed() < budget {
            let Some(link) = &mut st.link else { return };
            let (chunk, frames) = match self.spool.next_chunk(REPLAY_CHUNK) {
                Ok(c) => c,
                Err(e) => {
                    crate::say_err(format_args!(
                        "portcullis: SIEM: cannot read the spool {}: {e}",
                        self.spool.path().display()
                    ));
                    return;
                }
            };
            if let Err(e) = link.send(&chunk) {
                self.link_down(st, &format!("write failed during replay: {e}"));
                return;
            }
            self.counters.add(Counter::SiemSent, frames);
            st.backoff = MIN_BACKOFF;
            if let Err(e) = self.spool.delivered(chunk.len() as u64) {
                crate::say_err(format_args!(
                    "portcullis: SIEM: cannot record delivery in {}: {e} (a restart may \
                     send some messages twice)",
                    self.spool.path().display()
                ));
            }
            self.publish_gauge();
        }
    }

    /// Once the link is up and the spool replayed: tells the collector what was dropped.
    fn announce_drops(&mut self, st: &mut State) {
        if st.drops.count == 0 || st.link.is_none() || !self.spool.is_empty() {
            return;
        }
        let line = format!(
            "{} siem-dropped count={} first={} last={} reason=\"spool full \
             (siem.spool_max_bytes) or queue full (siem.queue_capacity)\"",
            fix_time_now(),
            st.drops.count,
            st.drops.first.as_deref().unwrap_or("-"),
            st.drops.last.as_deref().unwrap_or("-"),
        );
        let entry = Entry::parse(&line, &now_rfc3339());
        st.seq = if st.seq >= i32::MAX as u32 {
            1
        } else {
            st.seq + 1
        };
        let mut f = Vec::new();
        frame(&self.formatter.message(&entry, st.seq), &mut f);
        let Some(link) = &mut st.link else { return };
        match link.send(&f) {
            Ok(()) => {
                self.counters.inc(Counter::SiemSent);
                st.backoff = MIN_BACKOFF;
                st.drops = Drops::default();
            }
            Err(e) => self.link_down(st, &format!("write failed: {e}")),
        }
    }

    fn publish_gauge(&self) {
        self.counters
            .set(Counter::SiemSpooledBytes, self.spool.unsent());
    }

    /// The journal side is gone: replay what the time allows, keep the rest on disk.
    fn finish(&mut self, mut st: State) {
        if st.link.is_none()
            && !self.spool.is_empty()
            && crate::clock::monotonic() >= st.next_attempt
        {
            self.try_connect(&mut st);
        }
        self.replay(&mut st, FINAL_REPLAY);
        self.announce_drops(&mut st);
        let _ = self.spool.sync();
        self.publish_gauge();
        if let Some(l) = st.link.take() {
            l.close();
        }
        let c = &self.counters;
        crate::say(format_args!(
            "portcullis: SIEM export stopped — sent {}, dropped {}, reconnects {}, spooled bytes {}{}",
            c.get(Counter::SiemSent),
            c.get(Counter::SiemDropped),
            c.get(Counter::SiemReconnects),
            self.spool.unsent(),
            if self.spool.is_empty() {
                String::new()
            } else {
                format!(
                    " (kept in {} for the next start)",
                    self.spool.path().display()
                )
            }
        ));
    }
}

/// `d` ± 25 %, from the clock's low bits (no need for a good random source here).
fn jitter(d: Duration) -> Duration {
    let n = crate::clock::system_utc().0;
    let ms = d.as_millis() as u64;
    let span = ms / 2;
    if span == 0 {
        return d;
    }
    Duration::from_millis(ms - span / 2 + (n / 1000) % (span + 1))
}

/// Now in the event log's time format (`YYYYMMDD-HH:MM:SS.ffffff`).
fn fix_time_now() -> String {
    let mut b = [0u8; 27];
    let n = crate::fix::encode::write_timestamp(
        &mut b,
        crate::clock::system_utc(),
        crate::fix::encode::TimePrecision::Micros,
    );
    String::from_utf8_lossy(b.get(..n).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for ms in [100u64, 800, 30_000] {
            let j = jitter(Duration::from_millis(ms)).as_millis() as u64;
            assert!(j >= ms - ms / 4 && j <= ms + ms / 4, "{ms} -> {j}");
        }
    }
}
