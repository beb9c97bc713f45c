//! COLD — the journal thread: drains the hot thread's event ring into an append-only event log
//! (`<data_dir>/events.log`, one line per event, UTC timestamps) and periodically flushes the
//! memory-mapped stores to disk (`fdatasync`), so an OS crash loses at most one interval.
//! Account ids appear masked (all but the last 4 characters), as everywhere in logs, and so do
//! card numbers in text a client chose (CompIDs, key ids). From the same events it keeps the state files that must survive a restart: `risk-switches.state`
//! (`switches`) and `auth-lockouts.state` (`lockouts`).
//!
//! Never blocks the hot thread: it only pops from the lock-free ring. When the ring overflowed,
//! the number of lost events is written to the log (the counter `EventRingFull`).

pub mod daily;
pub mod lockouts;
pub mod records;
pub mod switches;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::fix::encode::{write_timestamp, TimePrecision};
use crate::handoff::{Event, EventRing};
use crate::model::Nanos;
use crate::monitor::{Counter, Counters};

/// Settings of the journal thread.
pub struct JournalThread {
    pub data_dir: PathBuf,
    pub flush_interval: Duration,
    /// Display names of the sessions, by index.
    pub session_names: Vec<String>,
    pub venue_names: Vec<String>,
    /// The throttle table and the session keys of its slots, to persist daily quotas.
    pub throttle: Option<(Arc<crate::throttle::ThrottleTable>, Vec<String>)>,
    /// Order records (REG-1) to write under `<data_dir>/records/`, and the `[[route]]` rule
    /// descriptions they name.
    pub records: Option<(crate::handoff::RecordRing, Vec<String>)>,
    /// The highest control request number (`seq`) whose switch change is on disk: raised
    /// after `risk-switches.state` was written, so `portcullis ctl` can answer a kill only
    /// once it survives a crash.
    pub control_persisted: Arc<std::sync::atomic::AtomicU64>,
}

fn ts(t: Nanos) -> String {
    let mut b = [0u8; 27];
    let n = write_timestamp(&mut b, t, TimePrecision::Micros);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// One line of the event log.
pub fn render(e: &Event, sessions: &[String], venues: &[String]) -> String {
    let sname = |s: &crate::model::SessionId| {
        sessions
            .get(s.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{}", s.0))
    };
    let vname = |v: &crate::model::VenueId| {
        venues
            .get(v.index())
            .cloned()
            .unwrap_or_else(|| format!("#{}", v.0))
    };
    match e {
        Event::LoggedOn { session, peer, at } => {
            format!("{} logon session={} peer={peer}", ts(*at), sname(session))
        }
        Event::LogonRefused {
            their_comp_id,
            key_id,
            peer,
            reason,
            at,
        } => {
            format!(
                "{} logon-refused sender={:?} key={:?} peer={peer} reason={:?}",
                ts(*at),
                their_comp_id.as_str(),
                key_id.as_str(),
                reason.text()
            )
        }
        Event::Disconnected {
            session,
            reason,
            at,
        } => format!(
            "{} disconnect session={} reason={reason:?}",
            ts(*at),
            sname(session)
        ),
        Event::OrderRejected {
            session,
            reason,
            at,
        } => format!(
            "{} order-rejected session={} reason={reason:?}",
            ts(*at),
            sname(session)
        ),
        Event::Throttled { session, limit, at } => {
            format!(
                "{} throttled session={} limit={limit:?}",
                ts(*at),
                sname(session)
            )
        }
        Event::CanceledOnDisconnect {
            session,
            orders,
            at,
        } => {
            format!(
                "{} cancel-on-disconnect session={} orders={orders}",
                ts(*at),
                sname(session)
            )
        }
        Event::VenueUp { venue, at } => format!("{} venue-up venue={}", ts(*at), vname(venue)),
        Event::VenueDown { venue, reason, at } => format!(
            "{} venue-down venue={} reason={reason:?}",
            ts(*at),
            vname(venue)
        ),
        Event::ConnectionsShed {
            refused_per_address,
            evicted,
            garbage,
            peer,
            at,
        } => format!(
            "{} connections-shed refused-per-address={refused_per_address} \
             evicted-unauthenticated={evicted} garbage-or-silent={garbage} last-peer={peer}",
            ts(*at)
        ),
        Event::SlowConsumer {
            session,
            pending_bytes,
            at,
        } => format!(
            "{} slow-consumer session={} pending-bytes={pending_bytes}",
            ts(*at),
            sname(session)
        ),
        Event::AuthFailed {
            session,
            key_id,
            peer,
            cause,
            at,
        } => format!(
            "{} auth-failed session={} key={:?} peer={peer} cause={cause:?}",
            ts(*at),
            sname(session),
            key_id.as_str()
        ),
        Event::AuthLockout {
            key_id,
            peer,
            key,
            until,
            at,
            ..
        } => format!(
            "{} auth-lockout {} key={:?} peer={peer} until={}",
            ts(*at),
            if *key { "what=key-at-address" } else { "what=address" },
            key_id.as_str(),
            ts(*until)
        ),
        Event::Authenticated {
            session,
            key_id,
            at,
            ..
        } => format!(
            "{} authenticated session={} key={:?}",
            ts(*at),
            sname(session),
            key_id.as_str()
        ),
        Event::CredentialLogout {
            session,
            key_id,
            cause,
            at,
        } => format!(
            "{} credential-logout session={} key={:?} cause={cause:?}",
            ts(*at),
            sname(session),
            key_id.as_str()
        ),
        Event::PermissionDenied {
            session,
            permission,
            at,
        } => format!(
            "{} permission-denied session={} missing={permission}",
            ts(*at),
            sname(session)
        ),
        Event::JournalError { key, at } => {
            format!("{} journal-error order-slot={}", ts(*at), key.0)
        }
        Event::TlsReloaded {
            listener,
            days_left,
            at,
        } => format!(
            "{} tls-reloaded listener={listener} days-to-expiry={days_left}",
            ts(*at)
        ),
        Event::CertExpiring {
            listener,
            days_left,
            at,
        } => format!(
            "{} cert-expiring listener={listener} days-to-expiry={days_left}",
            ts(*at)
        ),
        Event::RiskRejected {
            session,
            account,
            reason,
            at,
        } => {
            let mut text = [0u8; 128];
            let n = reason.write_text(&mut text);
            format!(
                "{} risk-reject session={} account={:?} reason={:?}",
                ts(*at),
                sname(session),
                crate::auth::mask::account(account.as_str()),
                String::from_utf8_lossy(text.get(..n).unwrap_or_default())
            )
        }
        Event::Kill {
            target,
            on,
            orders,
            seq,
            at,
        } => format!(
            "{} {} scope={} orders-canceled={orders} control-seq={seq}",
            ts(*at),
            if *on { "kill" } else { "unkill" },
            target_name(target, sessions)
        ),
        Event::LimitsChanged {
            account,
            change,
            temporary,
            expired,
            seq,
            at,
        } => format!(
            "{} limits-changed account={:?} change={change} {} control-seq={seq}",
            ts(*at),
            crate::auth::mask::account(account.as_str()),
            if *expired {
                "temporary-raise-expired"
            } else if *temporary {
                "temporary"
            } else {
                "permanent"
            }
        ),
        Event::AccountEnabled { account, seq, at } => format!(
            "{} account-enabled account={:?} control-seq={seq}",
            ts(*at),
            crate::auth::mask::account(account.as_str())
        ),
        Event::ReconciliationMismatch {
            account,
            venue,
            what,
            at,
        } => format!(
            "{} ALERT reconciliation-mismatch account={:?} venue={} what={what:?} action=account-killed",
            ts(*at),
            crate::auth::mask::account(account.as_str()),
            vname(venue)
        ),
        Event::ClockSync {
            state,
            divergence_ns,
            breach,
            halted,
            at,
        } => {
            let div = if *divergence_ns == u64::MAX {
                "unknown".to_string()
            } else {
                format!("{}us", divergence_ns / 1000)
            };
            format!(
                "{} clock-sync state={} divergence={div} within-limit={} new-orders={}",
                ts(*at),
                state.as_str(),
                !breach,
                if *halted { "halted" } else { "allowed" }
            )
        }
        Event::KeyStoreRefused {
            cause,
            generation,
            newest,
            at,
        } => {
            let g = if *generation == u64::MAX {
                "unknown".to_string()
            } else {
                generation.to_string()
            };
            format!(
                "{} key-store-refused cause={cause:?} generation={g} newest-seen={newest} \
                 (the running keys stay in force)",
                ts(*at)
            )
        }
        Event::KeyAging {
            key_id,
            age_days,
            days_left,
            at,
        } => {
            if *days_left > 0 {
                format!(
                    "{} key-aging key={:?} age-days={age_days} days-left={days_left} \
                     (rotate it: portcullis keys rotate)",
                    ts(*at),
                    key_id.as_str()
                )
            } else {
                format!(
                    "{} key-aging key={:?} age-days={age_days} days-left=0 state=expired \
                     (logons refused: key too old; rotate it)",
                    ts(*at),
                    key_id.as_str()
                )
            }
        }
    }
}

/// `line` with card numbers masked when its event carries text a client chose (a CompID or a
/// key id from a Logon, DATA-4) or a key id (`key-aging`). The other events hold only the
/// gateway's own words and numbers (a 16-digit `control-seq` must not be taken for a card).
fn masked_line(e: &Event, line: String) -> String {
    let from_the_wire = matches!(
        e,
        Event::LogonRefused { .. }
            | Event::AuthFailed { .. }
            | Event::AuthLockout { .. }
            | Event::Authenticated { .. }
            | Event::CredentialLogout { .. }
            | Event::KeyAging { .. }
    );
    if from_the_wire {
        crate::auth::mask::free_text(&line)
    } else {
        line
    }
}

/// A kill scope as text: `global`, `account:A`, `symbol:S`, `session:NAME`.
pub fn target_name(t: &crate::handoff::KillTarget, sessions: &[String]) -> String {
    use crate::handoff::KillTarget;
    match t {
        KillTarget::Global => "global".into(),
        KillTarget::Account(a) => format!("account:{}", crate::auth::mask::account(a.as_str())),
        KillTarget::Symbol(s) => format!("symbol:{}", s.as_str()),
        KillTarget::Session(i) => format!(
            "session:{}",
            sessions
                .get(*i as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        ),
    }
}

/// fdatasync every store file under `dir` (mmap'd pages reach the disk through the page cache).
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if path.file_name().is_some_and(|n| n != "archive") {
                sync_tree(&path)?;
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "log" || e == "session")
        {
            File::open(&path)?.sync_data()?;
        }
    }
    Ok(())
}

impl JournalThread {
    /// Starts the thread; it runs until `stop` is set and the ring is drained.
    pub fn spawn(
        self,
        ring: EventRing,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        let file = crate::files::open_private(
            OpenOptions::new().create(true).append(true),
            &self.data_dir.join("events.log"),
        )?;
        // SIEM export (issue 15): the exporter registered for this data folder, if any.
        let siem = crate::siem::claim(&self.data_dir, &counters)?;
        // Intrusion detection (issue 15, src/ids): every event to the detector; never waits.
        let mut ids = crate::ids::claim(&self.data_dir, &counters)?;
        let mut records = match &self.records {
            Some((ring, routes)) => {
                let names = records::Names {
                    sessions: self.session_names.clone(),
                    venues: self.venue_names.clone(),
                    routes: routes.clone(),
                };
                Some((
                    ring.clone(),
                    records::RecordWriter::new(&self.data_dir, names)?,
                ))
            }
            None => None,
        };
        // Audit trail (src/trail): every event and order record also becomes a trail record.
        let trail = crate::trail::attached(&self.data_dir).map(|t| {
            t.use_counters(&counters);
            let names = records::Names {
                sessions: self.session_names.clone(),
                venues: self.venue_names.clone(),
                routes: self
                    .records
                    .as_ref()
                    .map(|r| r.1.clone())
                    .unwrap_or_default(),
            };
            (t, names)
        });
        std::thread::Builder::new()
            .name("portcullis-journal".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                let switches_path = self.data_dir.join(switches::FILE);
                let mut switches = switches::Switches::load(&switches_path).unwrap_or_default();
                let lockouts_path = self.data_dir.join(lockouts::FILE);
                let mut lockouts = lockouts::Lockouts::load(&lockouts_path).unwrap_or_default();
                let replays_path = self.data_dir.join(lockouts::REPLAY_FILE);
                let mut replays = lockouts::Replays::load(&replays_path).unwrap_or_default();
                let keys: Vec<String> = self
                    .throttle
                    .as_ref()
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default();
                let mut reported_drops = 0;
                let mut reported_lost_records = 0;
                // Reused buffers for reading order lines into trail records (src/trail).
                let mut lines = crate::trail::order_line::OrderLines::default();
                let mut last_sync = crate::clock::monotonic();
                loop {
                    let stopping = stop.load(Ordering::Relaxed);
                    let mut n = 0;
                    let mut switched = false;
                    let mut locked = false;
                    let mut accepted = false;
                    let mut control_seq = 0;
                    while let Some(e) = ring.pop() {
                        let line = render(&e, &self.session_names, &self.venue_names);
                        let _ = writeln!(out, "{}", masked_line(&e, line));
                        if let Some((t, n)) = &trail {
                            t.send(crate::trail::from_event(&e, &n.sessions, &n.venues));
                        }
                        // SIEM export (issue 15): the same masked line; never waits.
                        if let Some(siem) = &siem {
                            siem.offer(&masked_line(
                                &e,
                                render(&e, &self.session_names, &self.venue_names),
                            ));
                        }
                        if let Some(ids) = &mut ids {
                            ids.offer(&e);
                        }
                        switched |= switches.apply(&e, &keys);
                        locked |= lockouts.apply(&e);
                        accepted |= replays.apply(&e);
                        if let Event::Kill { seq, .. } | Event::AccountEnabled { seq, .. } = e {
                            control_seq = control_seq.max(seq);
                        }
                        n += 1;
                    }
                    // Intrusion detection: its alerts and actions, to events.log and the SIEM.
                    if let Some(ids) = &mut ids {
                        for line in ids.lines() {
                            let _ = writeln!(out, "{line}");
                            if let Some(siem) = &siem {
                                siem.offer(&line);
                            }
                            n += 1;
                        }
                    }
                    let saved = !switched || {
                        match switches.save(&switches_path) {
                            Ok(()) => true,
                            Err(e) => {
                                let now = ts(crate::clock::system_utc());
                                let _ = writeln!(out, "{now} risk-switches-not-saved error={e}");
                                false
                            }
                        }
                    };
                    if accepted {
                        let now = crate::clock::system_utc();
                        if let Err(e) = replays.save(&replays_path, now) {
                            let _ = writeln!(out, "{} auth-replay-not-saved error={e}", ts(now));
                        }
                    }
                    if locked {
                        let now = crate::clock::system_utc();
                        if let Err(e) = lockouts.save(&lockouts_path, now) {
                            let _ = writeln!(out, "{} auth-lockouts-not-saved error={e}", ts(now));
                        }
                    }
                    if saved && control_seq > 0 {
                        self.control_persisted
                            .fetch_max(control_seq, Ordering::Release);
                    }
                    if let Some((ring, writer)) = &mut records {
                        let mut wrote = false;
                        while let Some(r) = ring.pop() {
                            let written = writer.write(&r);
                            if let Some((t, n)) = &trail {
                                // Read here into reused buffers, packed for the trail thread.
                                match written {
                                    Ok(()) => t.send_order_line(&mut lines, r.at, writer.line()),
                                    Err(_) => t.send(crate::trail::from_order(&r, n)),
                                };
                            }
                            // Per-key baselines (src/ids/anomaly.rs); never waits.
                            if let Some(ids) = &mut ids {
                                ids.offer_order(&r);
                            }
                            if let Err(e) = written {
                                let now = ts(crate::clock::system_utc());
                                let _ = writeln!(out, "{now} order-record-not-written error={e}");
                            }
                            wrote = true;
                            n += 1;
                        }
                        if wrote {
                            let _ = writer.flush();
                        }
                    }
                    let lost = counters.get(Counter::RecordRingFull);
                    if lost > reported_lost_records {
                        let _ = writeln!(
                            out,
                            "{} order-records-dropped count={}",
                            ts(crate::clock::system_utc()),
                            lost - reported_lost_records
                        );
                        reported_lost_records = lost;
                    }
                    let drops = counters.get(Counter::EventRingFull);
                    if drops > reported_drops {
                        let _ = writeln!(
                            out,
                            "{} events-dropped count={}",
                            ts(crate::clock::system_utc()),
                            drops - reported_drops
                        );
                        reported_drops = drops;
                    }
                    if n > 0 {
                        let _ = out.flush();
                    }
                    let interval = if self.flush_interval.is_zero() {
                        Duration::from_secs(1)
                    } else {
                        self.flush_interval
                    };
                    if stopping || last_sync.elapsed() >= interval {
                        if let Some((table, keys)) = &self.throttle {
                            let path = self.data_dir.join(daily::FILE);
                            if let Err(e) = daily::save(&path, keys, table) {
                                let now = ts(crate::clock::system_utc());
                                let _ = writeln!(out, "{now} throttle-state-not-saved error={e}");
                            }
                        }
                        if !self.flush_interval.is_zero() {
                            let _ = sync_tree(&self.data_dir);
                            if let Some((_, writer)) = &mut records {
                                let _ = writer.sync();
                            }
                        }
                        last_sync = crate::clock::monotonic();
                    }
                    if stopping {
                        let _ = out.flush();
                        let _ = sync_tree(&self.data_dir);
                        if let Some((_, writer)) = &mut records {
                            let _ = writer.sync();
                        }
                        return;
                    }
                    // Parked most of the time: an idle cold thread must not steal the hot core.
                    std::thread::sleep(Duration::from_millis(if n > 0 { 1 } else { 20 }));
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, SessionId};

    #[test]
    fn account_ids_are_masked_in_event_lines() {
        let account = Account::new(b"ACC-123456789").unwrap();
        let line = render(
            &Event::RiskRejected {
                session: SessionId(0),
                account,
                reason: crate::risk::Reason::UnknownAccount,
                at: Nanos(0),
            },
            &["S".to_string()],
            &[],
        );
        assert!(line.contains("account=\"*********6789\""), "{line}");
        assert!(!line.contains("ACC-123456789"), "{line}");
        let kill = render(
            &Event::Kill {
                target: crate::handoff::KillTarget::Account(account),
                on: true,
                orders: 0,
                seq: 1,
                at: Nanos(0),
            },
            &[],
            &[],
        );
        assert!(kill.contains("scope=account:*********6789"), "{kill}");
        // A card number sent as a CompID is masked; a 16-digit control-seq is not a card.
        let refused = Event::LogonRefused {
            their_comp_id: crate::model::CompId::new(b"4111111111111111").unwrap(),
            key_id: crate::auth::KeyId::new(b"5500005555555559").unwrap(),
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            reason: crate::handoff::LogonRefusal::NoSession,
            at: Nanos(0),
        };
        let line = masked_line(&refused, render(&refused, &[], &[]));
        assert!(line.contains("sender=\"************1111\""), "{line}");
        assert!(!line.contains("5500005555555559"), "{line}");
        let kill = Event::Kill {
            target: crate::handoff::KillTarget::Global,
            on: true,
            orders: 0,
            seq: 4_111_111_111_111_111,
            at: Nanos(0),
        };
        let line = masked_line(&kill, render(&kill, &[], &[]));
        assert!(line.contains("control-seq=4111111111111111"), "{line}");
    }
}
