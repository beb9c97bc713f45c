//! COLD — the trail files: appends chained records to `<audit dir>/trail-<first seq>.jsonl`,
//! signs a checkpoint every `checkpoint_every` records or `checkpoint_seconds`, rotates by size
//! and age. Each file starts with a `file-start` record naming the previous file and its last
//! record (the chain runs on through it), and a complete file ends with `file-close` and a
//! checkpoint. Every run of the gateway starts a new file, so a file is only ever appended to by
//! one process; after a crash the new file records that the previous one did not close (and how
//! many bytes of a half-written line it ends with), which `verify` then accepts only for that
//! exact tail.
//!
//! Durability: the file is flushed after every batch and `fdatasync`ed at close and at a
//! checkpoint when the last sync is `sync_after` old (`audit.sync_ms`, default 1 s; a quiet
//! trail is synced by the tick), so a host crash loses at most the last `sync_after` of records.
//! A sync costs milliseconds here (≈ 7 ms on the development VM's disk): at every checkpoint
//! (every 1000 records) it took two thirds of the writer's time under a flood.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::chain::{hex, kind, Fields, Map, Record, GENESIS};
use super::sign::SigningKey;
use super::Entry;
use crate::model::Nanos;

/// File name prefix and suffix: `trail-00000000000000000001.jsonl` (sorts in chain order).
pub const PREFIX: &str = "trail-";
pub const SUFFIX: &str = ".jsonl";

/// The name of the file whose first record is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

/// The trail files in `dir`, in chain order.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Rotation and checkpoint settings.
#[derive(Clone, Debug)]
pub struct Limits {
    pub rotate_bytes: u64,
    /// Zero: never by age.
    pub rotate_after: Duration,
    pub checkpoint_every: u64,
    pub checkpoint_after: Duration,
    /// `fdatasync` at a checkpoint only when the last one is this old (and within this long
    /// after any record: [`FileWriter::tick`]); close always syncs. Zero: at every checkpoint.
    pub sync_after: Duration,
}

struct Open {
    name: String,
    out: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

/// The end of the trail found on disk at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub file: String,
    pub seq: u64,
    pub hash: [u8; 32],
    /// The file ended with `file-close` and a checkpoint.
    pub closed: bool,
    /// Bytes after the last newline (a line cut short by a crash).
    pub trailing_bytes: u64,
}

/// Reads the last complete record of the last file in `dir` (`None`: no trail yet).
pub fn read_tail(dir: &Path) -> Result<Option<Tail>, String> {
    let Some(last) = list(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .pop()
    else {
        return Ok(None);
    };
    let name = last
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut f = File::open(&last).map_err(|e| format!("{}: {e}", last.display()))?;
    // The last two lines are at most a few kilobytes; read a generous tail.
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(1 << 20);
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(from))
        .and_then(|_| f.read_to_end(&mut buf))
        .map_err(|e| format!("{}: {e}", last.display()))?;
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let trailing_bytes = (buf.len() - complete) as u64;
    let lines: Vec<&[u8]> = buf[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let parse = |l: &[u8]| serde_json::from_slice::<Record>(l).ok();
    let Some(last_rec) = lines.last().and_then(|l| parse(l)) else {
        return Err(format!(
            "{}: its last record is unreadable: check the trail with `portcullis audit verify {}` \
             (to start a new trail, move the folder aside)",
            last.display(),
            dir.display()
        ));
    };
    let hash = last_rec.hash_bytes().ok_or_else(|| {
        format!(
            "{}: the last record's hash is not hex: run `portcullis audit verify`",
            last.display()
        )
    })?;
    let before = lines.len().checked_sub(2).and_then(|i| lines.get(i));
    let closed = trailing_bytes == 0
        && last_rec.kind == kind::CHECKPOINT
        && before
            .and_then(|l| parse(l))
            .is_some_and(|r| r.kind == kind::FILE_CLOSE);
    Ok(Some(Tail {
        file: name,
        seq: last_rec.seq,
        hash,
        closed,
        trailing_bytes,
    }))
}

/// Appends records; one per process run (see the module header).
pub struct FileWriter {
    dir: PathBuf,
    limits: Limits,
    key: SigningKey,
    /// The last record written (0: none yet) and its hash.
    seq: u64,
    head: [u8; 32],
    /// What the next file-start records about the file before it.
    previous: BTreeMap<String, String>,
    open: Option<Open>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The last `fdatasync`, and whether lines were written since.
    last_sync: Instant,
    unsynced: bool,
    /// Checkpoints written (the `AuditCheckpoints` counter is raised by the caller).
    pub checkpoints: u64,
    /// Reused for every record: its RFC 3339 time, its canonical bytes (hashed) and its JSON
    /// line (no allocation per record once they have grown to the longest record).
    time: crate::audit::records::TimeText,
    time_buf: Vec<u8>,
    canonical: Vec<u8>,
    line: Vec<u8>,
}

fn now_utc() -> Nanos {
    crate::clock::system_utc()
}

impl FileWriter {
    /// Opens the trail in `dir` (created 0700), continuing the chain from its last record.
    pub fn open(dir: &Path, limits: Limits, key: SigningKey) -> Result<FileWriter, String> {
        crate::files::private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tail = read_tail(dir)?;
        let mut previous = BTreeMap::new();
        let (seq, head) = match &tail {
            Some(t) => {
                previous.insert("previous_file".into(), t.file.clone());
                previous.insert("previous_last_seq".into(), t.seq.to_string());
                previous.insert("previous_last_hash".into(), hex(&t.hash));
                previous.insert("previous_closed".into(), t.closed.to_string());
                previous.insert(
                    "previous_trailing_bytes".into(),
                    t.trailing_bytes.to_string(),
                );
                (t.seq, t.hash)
            }
            None => (0, GENESIS),
        };
        Ok(FileWriter {
            dir: dir.to_path_buf(),
            limits,
            key,
            seq,
            head,
            previous,
            open: None,
            since_checkpoint: 0,
            last_checkpoint: crate::clock::monotonic(),
            last_sync: crate::clock::monotonic(),
            unsynced: false,
            checkpoints: 0,
            time: Default::default(),
            time_buf: Vec::with_capacity(32),
            canonical: Vec::with_capacity(4096),
            line: Vec::with_capacity(4096),
        })
    }

    /// The last sequence number written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends one record (opening or rotating the file first, checkpointing after when due).
    pub fn write(&mut self, e: &Entry) -> io::Result<()> {
        self.write_fields(
            e.at,
            &e.kind,
            &e.actor,
            Map::Tree(&e.subject),
            Map::Tree(&e.detail),
        )
    }

    /// [`FileWriter::write`] of a record given by its fields (an order record's, taken out of
    /// its line without building an [`Entry`]).
    pub fn write_fields(
        &mut self,
        at: Nanos,
        what: &str,
        actor: &str,
        subject: Map<'_>,
        detail: Map<'_>,
    ) -> io::Result<()> {
        self.rotate_if_due()?;
        self.ensure_open()?;
        self.append(at, what, actor, subject, detail)?;
        if self.since_checkpoint >= self.limits.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Periodic work: a checkpoint when `checkpoint_seconds` passed with unsigned records,
    /// rotation by age; flushes buffered lines.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.since_checkpoint > 0
            && self.last_checkpoint.elapsed() >= self.limits.checkpoint_after
        {
            self.checkpoint()?;
        }
        self.rotate_if_due()?;
        self.flush()?;
        if self.unsynced && self.last_sync.elapsed() >= self.limits.sync_after {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(o) = &mut self.open {
            o.out.flush()?;
            o.out.get_ref().sync_data()?;
        }
        self.last_sync = crate::clock::monotonic();
        self.unsynced = false;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.open {
            Some(o) => o.out.flush(),
            None => Ok(()),
        }
    }

    /// Ends the current file: `file-close` (`reason`), a checkpoint, fdatasync.
    pub fn close(&mut self, reason: &str) -> io::Result<()> {
        if self.open.is_none() {
            return Ok(());
        }
        let mut d = BTreeMap::new();
        d.insert("reason".into(), reason.to_string());
        self.append(
            now_utc(),
            kind::FILE_CLOSE,
            "gateway",
            Map::Flat(&[]),
            Map::Tree(&d),
        )?;
        self.checkpoint()?;
        if let Some(o) = self.open.take() {
            self.previous.clear();
            self.previous.insert("previous_file".into(), o.name.clone());
            self.previous
                .insert("previous_last_seq".into(), self.seq.to_string());
            self.previous
                .insert("previous_last_hash".into(), hex(&self.head));
            self.previous
                .insert("previous_closed".into(), "true".into());
            self.previous
                .insert("previous_trailing_bytes".into(), "0".into());
            let f = o.out.into_inner().map_err(|e| e.into_error())?;
            f.sync_data()?;
            self.last_sync = crate::clock::monotonic();
            self.unsynced = false;
        }
        Ok(())
    }

    /// Forgets the open file after a write error: the next record starts a new file, which
    /// records that this one did not close.
    pub fn abandon(&mut self) {
        if self.open.take().is_none() {
            return;
        }
        self.previous.clear();
        if let Ok(Some(t)) = read_tail(&self.dir) {
            self.previous.insert("previous_file".into(), t.file);
            self.previous
                .insert("previous_last_seq".into(), t.seq.to_string());
            self.previous
                .insert("previous_last_hash".into(), hex(&t.hash));
            self.previous
                .insert("previous_closed".into(), "false".into());
            self.previous.insert(
                "previous_trailing_bytes".into(),
                t.trailing_bytes.to_string(),
            );
            // Records that never reached the file are gone: the chain continues from the disk.
            self.seq = t.seq;
            self.head = t.hash;
        }
    }

    fn rotate_if_due(&mut self) -> io::Result<()> {
        let due = self.open.as_ref().is_some_and(|o| {
            o.bytes >= self.limits.rotate_bytes
                || (!self.limits.rotate_after.is_zero()
                    && o.opened.elapsed() >= self.limits.rotate_after)
        });
        if due {
            self.close("rotate")?;
        }
        Ok(())
    }

    fn ensure_open(&mut self) -> io::Result<()> {
        if self.open.is_some() {
            return Ok(());
        }
        let name = file_name(self.seq + 1);
        let path = self.dir.join(&name);
        let file =
            crate::files::open_private(OpenOptions::new().create_new(true).append(true), &path)?;
        self.open = Some(Open {
            name: name.clone(),
            out: BufWriter::with_capacity(64 * 1024, file),
            bytes: 0,
            opened: crate::clock::monotonic(),
        });
        let mut d = std::mem::take(&mut self.previous);
        d.insert("file".into(), name);
        d.entry("previous_file".into()).or_default();
        self.append(
            now_utc(),
            kind::FILE_START,
            "gateway",
            Map::Flat(&[]),
            Map::Tree(&d),
        )?;
        Ok(())
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        let sig = self.key.sign(self.seq, &self.head);
        let mut d = BTreeMap::new();
        d.insert("head_seq".into(), self.seq.to_string());
        d.insert("head".into(), hex(&self.head));
        d.insert("key_id".into(), self.key.public().id());
        d.insert("signature".into(), hex(&sig));
        self.append(
            now_utc(),
            kind::CHECKPOINT,
            "gateway",
            Map::Flat(&[]),
            Map::Tree(&d),
        )?;
        self.since_checkpoint = 0;
        self.last_checkpoint = crate::clock::monotonic();
        self.checkpoints += 1;
        if self.last_sync.elapsed() >= self.limits.sync_after {
            self.sync()
        } else {
            self.flush()
        }
    }

    /// Chains and writes one record: hashed piece by piece and rendered into the reused line
    /// buffer (no [`Record`], no per-record allocation); the file's `BufWriter` turns a batch
    /// of records into one `write` per 64 KiB.
    fn append(
        &mut self,
        at: Nanos,
        what: &str,
        actor: &str,
        subject: Map<'_>,
        detail: Map<'_>,
    ) -> io::Result<()> {
        let Some(o) = &mut self.open else {
            return Err(io::Error::other("no open trail file"));
        };
        self.time_buf.clear();
        self.time.push(&mut self.time_buf, at);
        let f = Fields {
            seq: self.seq + 1,
            time_ns: at.0,
            time: &self.time_buf,
            kind: what,
            actor,
            subject,
            detail,
        };
        let h = f.hash_in(&self.head, &mut self.canonical);
        self.line.clear();
        f.line(&mut self.line, &self.head, &h);
        o.out.write_all(&self.line)?;
        o.bytes += self.line.len() as u64;
        self.unsynced = true;
        self.seq = f.seq;
        self.head = h;
        if what != kind::CHECKPOINT {
            self.since_checkpoint += 1;
        }
        Ok(())
    }
}
