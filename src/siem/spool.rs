//! COLD — the on-disk spool of the SIEM exporter: messages not yet delivered, kept while the
//! collector is unreachable and replayed in order when it is back.
//!
//! `<data_dir>/siem/spool` holds octet-counted frames exactly as they go on the wire (replay
//! copies bytes); `<data_dir>/siem/spool.pos` holds how many leading bytes were delivered
//! already (absent: none). Folder 0700, files 0600.
//!
//! # Bounds
//! The file never grows past `max_bytes`: an append that would not fit first compacts the file
//! (drops the delivered prefix, through a temporary file and a rename), and is refused if it
//! still does not fit — the caller counts it as dropped. A frame cut short by a crash is cut
//! off at open (reported), never replayed.
//!
//! # Durability
//! Appends reach the disk at [`Spool::sync`] (the exporter calls it once per batch); delivery
//! progress is written after each replayed chunk, so a restart replays at most one chunk twice
//! (delivery is at least once).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::unframe;

/// File names inside `<data_dir>/siem/`.
pub const SPOOL: &str = "spool";
pub const POS: &str = "spool.pos";

pub struct Spool {
    path: PathBuf,
    pos_path: PathBuf,
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Bytes at the start already delivered.
    pos: u64,
    max_bytes: u64,
    /// Appended since the last sync.
    dirty: bool,
}

impl Spool {
    /// Opens (creating) the spool in `dir`. Returns the spool and a note when a torn tail or a
    /// bad position file was repaired.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Spool, Option<String>)> {
        crate::files::private_dir(dir)?;
        let path = dir.join(SPOOL);
        let pos_path = dir.join(POS);
        let mut file = crate::files::open_private(
            OpenOptions::new().read(true).write(true).create(true),
            &path,
        )?;
        let len = file.metadata()?.len();
        let mut note = None;
        let mut pos = match std::fs::read_to_string(&pos_path) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or(u64::MAX),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if pos > len {
            note = Some(format!(
                "{}: delivered position {pos} beyond the file ({len} bytes): replaying it all",
                pos_path.display()
            ));
            pos = 0;
        }
        // Walk the undelivered frames (headers only: the spool may be large); cut a torn or
        // garbled tail.
        let good = whole_frames_end(&mut file, pos, len)?;
        if good < len {
            file.set_len(good)?;
            file.sync_data()?;
            let msg = format!(
                "{}: {} bytes after offset {good} are not whole frames (cut short by a crash?) \
                 and were discarded",
                path.display(),
                len - good
            );
            note = Some(match note {
                Some(n) => format!("{n}; {msg}"),
                None => msg,
            });
        }
        let len = good;
        file.seek(SeekFrom::End(0))?;
        let mut s = Spool {
            path,
            pos_path,
            file,
            len,
            pos,
            max_bytes,
            dirty: false,
        };
        if s.pos == s.len && s.len > 0 {
            s.reset()?;
        }
        Ok((s, note))
    }

    /// Bytes waiting for delivery.
    pub fn unsent(&self) -> u64 {
        self.len - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.unsent() == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one frame; `Ok(false)` when it does not fit under `max_bytes` even after
    /// compaction (the caller drops and counts it).
    pub fn append(&mut self, frame: &[u8]) -> io::Result<bool> {
        let n = frame.len() as u64;
        if self.len + n > self.max_bytes && self.pos > 0 {
            self.compact()?;
        }
        if self.len + n > self.max_bytes {
            return Ok(false);
        }
        self.file.seek(SeekFrom::Start(self.len))?;
        if let Err(e) = self.file.write_all(frame) {
            // Leave no partial frame behind.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += n;
        self.dirty = true;
        Ok(true)
    }

    /// Makes appends durable (fdatasync), if there were any.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The next undelivered whole frames, at most `max` bytes (but at least one frame), and
    /// how many frames that is.
    pub fn next_chunk(&mut self, max: usize) -> io::Result<(Vec<u8>, u64)> {
        let want = self.unsent().min(max.max(super::MAX_FRAME_BYTES) as u64) as usize;
        let mut buf = vec![0u8; want];
        self.file.seek(SeekFrom::Start(self.pos))?;
        self.file.read_exact(&mut buf)?;
        let mut whole = 0usize;
        let mut frames = 0u64;
        while let Some((_, n)) = buf.get(whole..).and_then(unframe) {
            if whole > 0 && whole + n > max {
                break;
            }
            whole += n;
            frames += 1;
        }
        if frames == 0 && !buf.is_empty() {
            // One frame longer than `max` and than any message we write (an older
            // version's): read it whole. `open` checked that every frame is.
            buf = vec![0u8; self.unsent() as usize];
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read_exact(&mut buf)?;
            if let Some((_, n)) = unframe(&buf) {
                buf.truncate(n);
                return Ok((buf, 1));
            }
            return Err(io::Error::other(format!(
                "{}: no whole frame at offset {}",
                self.path.display(),
                self.pos
            )));
        }
        buf.truncate(whole);
        Ok((buf, frames))
    }

    /// Marks `n` more bytes delivered. All delivered: the file is emptied.
    pub fn delivered(&mut self, n: u64) -> io::Result<()> {
        self.pos = (self.pos + n).min(self.len);
        if self.pos == self.len {
            self.reset()
        } else {
            crate::files::replace_private(&self.pos_path, self.pos.to_string().as_bytes())
        }
    }

    /// Empties the spool: everything in it was delivered.
    fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.len = 0;
        self.pos = 0;
        self.dirty = false;
        match std::fs::remove_file(&self.pos_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Rewrites the file without its delivered prefix: the tail is copied to a temporary file
    /// and synced, the position file removed, then the temporary renamed over the spool. A
    /// crash in between leaves the old file without a position: its delivered prefix is
    /// replayed again (at least once), never a frame skipped.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = crate::files::temp_name(&self.path)?;
        let result = (|| {
            let mut out =
                crate::files::open_private(OpenOptions::new().write(true).create_new(true), &tmp)?;
            self.file.seek(SeekFrom::Start(self.pos))?;
            let copied = io::copy(&mut (&self.file).take(self.len - self.pos), &mut out)?;
            out.sync_all()?;
            drop(out);
            match std::fs::remove_file(&self.pos_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            std::fs::rename(&tmp, &self.path)?;
            Ok(copied)
        })();
        let copied = match result {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.file =
            crate::files::open_private(OpenOptions::new().read(true).write(true), &self.path)?;
        self.len = copied;
        self.pos = 0;
        self.dirty = false;
        Ok(())
    }
}

/// The offset after the last whole frame from `pos` on (a file of `len` bytes), reading each
/// frame's length header and seeking past its body.
fn whole_frames_end(file: &mut File, pos: u64, len: u64) -> io::Result<u64> {
    let mut r = io::BufReader::new(&*file);
    r.seek(SeekFrom::Start(pos))?;
    let mut at = pos;
    loop {
        // `LEN SP`: 1-10 digits, no leading zero.
        let mut digits = 0usize;
        let mut n: u64 = 0;
        let mut byte = [0u8; 1];
        loop {
            if r.read(&mut byte)? == 0 {
                return Ok(at);
            }
            match byte[0] {
                b' ' if digits > 0 => break,
                d @ b'0'..=b'9' if digits < 10 && !(digits == 0 && d == b'0') => {
                    n = n * 10 + u64::from(d - b'0');
                    digits += 1;
                }
                _ => return Ok(at),
            }
        }
        let end = at + digits as u64 + 1 + n;
        if end > len {
            return Ok(at);
        }
        r.seek_relative(i64::try_from(n).map_err(io::Error::other)?)?;
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siem::format::frame;

    fn f(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        frame(text.as_bytes(), &mut out);
        out
    }

    #[test]
    fn appends_replays_in_order_and_empties_when_delivered() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("siem");
        let (mut s, note) = Spool::open(dir.as_path(), 64 * 1024).unwrap();
        assert!(note.is_none());
        for i in 0..10 {
            assert!(s.append(&f(&format!("message {i}"))).unwrap());
        }
        s.sync().unwrap();
        let (chunk, frames) = s.next_chunk(40).unwrap();
        // Whole frames only: three of 11 bytes fit in 40.
        assert_eq!(frames, 3);
        assert_eq!(
            chunk,
            [f("message 0"), f("message 1"), f("message 2")].concat()
        );
        s.delivered(chunk.len() as u64).unwrap();
        // A restart resumes after what was delivered.
        drop(s);
        let (mut s, _) = Spool::open(dir.as_path(), 64 * 1024).unwrap();
        let (chunk, frames) = s.next_chunk(1 << 20).unwrap();
        assert_eq!(frames, 7);
        assert!(chunk.starts_with(&f("message 3")));
        s.delivered(chunk.len() as u64).unwrap();
        assert!(s.is_empty());
        assert_eq!(
            std::fs::metadata(dir.as_path().join(SPOOL)).unwrap().len(),
            0
        );
        assert!(!dir.as_path().join(POS).exists());
    }

    #[test]
    fn never_grows_past_its_bound_and_compacts_the_delivered_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("siem");
        let max = 64 * 1024;
        let (mut s, _) = Spool::open(dir.as_path(), max).unwrap();
        let one = f(&"x".repeat(1000));
        let mut accepted = 0;
        while s.append(&one).unwrap() {
            accepted += 1;
        }
        assert_eq!(accepted, max as usize / one.len());
        assert!(std::fs::metadata(s.path()).unwrap().len() <= max);
        assert!(!s.append(&one).unwrap(), "still full");
        // Deliver 10 frames: now an append compacts and fits.
        let (chunk, frames) = s.next_chunk(10 * one.len()).unwrap();
        assert_eq!(frames, 10);
        s.delivered(chunk.len() as u64).unwrap();
        assert!(s.append(&f("newest")).unwrap());
        assert!(std::fs::metadata(s.path()).unwrap().len() <= max);
        assert_eq!(s.unsent(), (accepted - 10) as u64 * one.len() as u64 + 8);
        // Order kept across the compaction: the oldest undelivered first, the newest last.
        let (all, n) = s.next_chunk(max as usize).unwrap();
        assert_eq!(n, accepted as u64 - 10 + 1);
        assert!(all.ends_with(&f("newest")));
        assert!(all.starts_with(&one));
        // Private modes.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.path()), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_torn_tail_is_cut_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("siem");
        let (mut s, _) = Spool::open(dir.as_path(), 64 * 1024).unwrap();
        s.append(&f("whole")).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut raw = OpenOptions::new()
            .append(true)
            .open(dir.as_path().join(SPOOL))
            .unwrap();
        raw.write_all(b"30 cut sh").unwrap();
        drop(raw);
        let (mut s, note) = Spool::open(dir.as_path(), 64 * 1024).unwrap();
        assert!(note.unwrap().contains("9 bytes after offset 7"));
        let (chunk, n) = s.next_chunk(1024).unwrap();
        assert_eq!((chunk, n), (f("whole"), 1));
        // A position beyond the file replays everything.
        std::fs::write(dir.as_path().join(POS), b"999").unwrap();
        let (s, note) = Spool::open(dir.as_path(), 64 * 1024).unwrap();
        assert!(note.unwrap().contains("replaying it all"));
        assert_eq!(s.unsent(), 7);
    }
}
