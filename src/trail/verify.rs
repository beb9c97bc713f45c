//! COLD — `portcullis audit verify`: recomputes every record's hash and link, checks the
//! sequence, every checkpoint's signature against the pinned public key, the chaining of each
//! file to the one before, and that the trail ends closed; names the file, line and seq of every
//! problem.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::chain::{from_hex, from_hex32, kind, Record, GENESIS};
use super::sign::PublicKey;

/// Something wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; `None` for a whole-file problem.
    pub line: Option<usize>,
    pub seq: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(s) = self.seq {
            write!(f, " seq {s}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// One record read back, with where it was.
#[derive(Clone, Debug)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub record: Record,
}

/// The outcome of a verification.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Facts that are not failures (an unclean stop the next file vouches for, a live file).
    pub notes: Vec<String>,
    pub files: usize,
    pub records: u64,
    pub checkpoints: u64,
    /// Every readable record, in file and line order (for `audit trail`).
    pub all: Vec<Located>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How to verify.
pub struct Options {
    /// The key checkpoints must verify with.
    pub public_key: Option<PublicKey>,
    /// The files are the whole trail (a directory was given): its first file must start it.
    pub whole_trail: bool,
    /// The last file may still be being written (no close yet).
    pub live: bool,
    /// Keep every record in [`Report::all`].
    pub keep: bool,
}

/// What a file's `file-start` says about the file before it.
struct Start {
    previous_file: String,
    previous_last_seq: Option<u64>,
    previous_last_hash: Option<[u8; 32]>,
    previous_closed: bool,
    previous_trailing: u64,
}

/// The end of a file, for the next file to check against.
struct End {
    name: String,
    last_seq: Option<u64>,
    last_hash: Option<[u8; 32]>,
    closed: bool,
    trailing: u64,
    last_line: usize,
    /// Records after the last checkpoint: first seq and count.
    unsigned: Option<(u64, u64)>,
}

/// Verifies `files`, in chain order.
pub fn verify(files: &[PathBuf], opt: &Options) -> Report {
    let mut rep = Report::default();
    if opt.public_key.is_none() {
        rep.problems.push(Problem {
            file: String::new(),
            line: None,
            seq: None,
            what: "no public key to check checkpoint signatures with (pass --public-key, or \
                   set audit.public_key in --config)"
                .into(),
        });
    }
    let mut prev_end: Option<End> = None;
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                rep.problems.push(Problem {
                    file: name,
                    line: None,
                    seq: None,
                    what: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        rep.files += 1;
        let end = verify_file(&name, &bytes, i == 0, prev_end.take(), opt, &mut rep);
        prev_end = Some(end);
    }
    if let Some(end) = prev_end {
        finish_last(&end, opt, &mut rep);
    }
    rep
}

/// The end of the last file: it must be closed, unless `live`.
fn finish_last(end: &End, opt: &Options, rep: &mut Report) {
    let unsigned = end
        .unsigned
        .map(|(from, n)| {
            format!(
                "; {n} record(s) after the last checkpoint (seq {from}..{}) are not covered by a signature",
                from + n - 1
            )
        })
        .unwrap_or_default();
    if end.trailing > 0 {
        rep.problems.push(Problem {
            file: end.name.clone(),
            line: Some(end.last_line + 1),
            seq: None,
            what: format!(
                "truncated: the file ends mid-line ({} byte(s) after the last newline){unsigned}",
                end.trailing
            ),
        });
    } else if !end.closed {
        let what = format!(
            "truncated tail: the file ends at seq {} without file-close and a checkpoint{unsigned}",
            end.last_seq.map_or("?".into(), |s| s.to_string())
        );
        if opt.live {
            rep.notes
                .push(format!("{}: open (still being written): {what}", end.name));
        } else {
            rep.problems.push(Problem {
                file: end.name.clone(),
                line: Some(end.last_line),
                seq: end.last_seq,
                what,
            });
        }
    }
}

fn start_of(r: &Record) -> Start {
    let d = |k: &str| r.detail.get(k).cloned().unwrap_or_default();
    Start {
        previous_file: d("previous_file"),
        previous_last_seq: d("previous_last_seq").parse().ok(),
        previous_last_hash: from_hex32(&d("previous_last_hash")),
        previous_closed: d("previous_closed") == "true",
        previous_trailing: d("previous_trailing_bytes").parse().unwrap_or(0),
    }
}

fn verify_file(
    name: &str,
    bytes: &[u8],
    first: bool,
    prev: Option<End>,
    opt: &Options,
    rep: &mut Report,
) -> End {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let trailing = (bytes.len() - complete) as u64;
    let lines: Vec<&[u8]> = match bytes.get(..complete) {
        Some(b) if !b.is_empty() => b[..b.len() - 1].split(|&c| c == b'\n').collect(),
        _ => Vec::new(),
    };
    let recs: Vec<Option<Record>> = lines
        .iter()
        .map(|l| serde_json::from_slice::<Record>(l).ok())
        .collect();
    let problem = |rep: &mut Report, line: Option<usize>, seq: Option<u64>, what: String| {
        rep.problems.push(Problem {
            file: name.to_string(),
            line,
            seq,
            what,
        })
    };
    // Stored hash of each seq in this file (first occurrence), and where later seqs are.
    let mut hash_of: HashMap<u64, [u8; 32]> = HashMap::new();
    let mut later: HashMap<u64, usize> = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        if let Some(r) = r {
            later.entry(r.seq).or_insert(i);
            if let Some(h) = r.hash_bytes() {
                hash_of.entry(r.seq).or_insert(h);
            }
        }
    }
    // Where the chain comes from: the previous file's end, or the file-start's own claim.
    let start = recs
        .first()
        .and_then(|r| r.as_ref())
        .filter(|r| r.kind == kind::FILE_START);
    let (mut expected, mut before_hash): (Option<u64>, Option<[u8; 32]>) = (None, None);
    match start.map(start_of) {
        None => problem(
            rep,
            Some(1),
            recs.first().and_then(|r| r.as_ref()).map(|r| r.seq),
            "the file does not begin with a file-start record (its first line was modified, \
             removed or replaced)"
                .into(),
        ),
        Some(s) => {
            if s.previous_file.is_empty() {
                expected = Some(1);
                before_hash = Some(GENESIS);
                if let Some(p) = &prev {
                    problem(
                        rep,
                        Some(1),
                        Some(1),
                        format!("starts a new trail, but follows {}", p.name),
                    );
                }
            } else {
                expected = s.previous_last_seq.map(|q| q + 1);
                before_hash = s.previous_last_hash;
                match &prev {
                    None if first && opt.whole_trail => problem(
                        rep,
                        None,
                        None,
                        format!(
                            "missing file: the trail's first file here continues {} (seq {} and \
                             before), which is not in the folder",
                            s.previous_file,
                            s.previous_last_seq.map_or("?".into(), |q| q.to_string())
                        ),
                    ),
                    None => rep.notes.push(format!(
                        "{name}: continues {} (not given): verified from seq {} on",
                        s.previous_file,
                        expected.map_or("?".into(), |q| q.to_string())
                    )),
                    Some(p) => check_link(name, &s, p, rep),
                }
            }
        }
    }
    if let Some(p) = &prev {
        // The previous file ended unclosed: fine only when this file-start vouches for it.
        let vouched = start.map(start_of).is_some_and(|s| {
            !s.previous_closed
                && s.previous_file == p.name
                && s.previous_trailing == p.trailing
                && s.previous_last_seq == p.last_seq
        });
        if p.trailing > 0 || !p.closed {
            if vouched {
                rep.notes.push(format!(
                    "{}: did not close (the gateway stopped uncleanly); {name} records it and \
                     continues from its last record",
                    p.name
                ));
            } else {
                finish_last(
                    p,
                    &Options {
                        live: false,
                        ..*opt
                    },
                    rep,
                );
            }
        }
    }
    let first_seq = expected;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut last_seq: Option<u64> = None;
    let mut last_hash: Option<[u8; 32]> = None;
    let mut since_checkpoint: Option<(u64, u64)> = None;
    let mut kinds: Vec<String> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let line = i + 1;
        let Some(r) = r else {
            let text = String::from_utf8_lossy(lines.get(i).copied().unwrap_or_default());
            problem(
                rep,
                Some(line),
                None,
                format!(
                    "not a trail record (modified, inserted or cut): {:.80}",
                    text.trim()
                ),
            );
            continue;
        };
        rep.records += 1;
        let mut why: Vec<String> = Vec::new();
        let computed = r.compute_hash(&r.prev_bytes().unwrap_or([0xff; 32]));
        if r.hash_bytes() != Some(computed) {
            why.push("modified: its content does not match its hash".into());
        }
        // Link: `prev` must be the hash of the record with the previous seq.
        let want_prev = if Some(r.seq) == first_seq {
            before_hash
        } else {
            hash_of.get(&r.seq.wrapping_sub(1)).copied()
        };
        match want_prev {
            Some(h) if r.prev_bytes() != Some(h) => why.push(
                "chain broken: prev is not the hash of the record before it in the chain".into(),
            ),
            None if i > 0 => why.push(format!(
                "chain broken: the record before it (seq {}) is not in the file",
                r.seq.saturating_sub(1)
            )),
            _ => {}
        }
        match expected {
            Some(e) if r.seq == e => {}
            Some(e) if r.seq > e => {
                if (e..r.seq).all(|q| later.get(&q).is_some_and(|&at| at > i)) {
                    why.push(format!(
                        "out of order: seq {} comes before seq {e} (records reordered)",
                        r.seq
                    ));
                } else {
                    why.push(format!(
                        "records removed: seq {e}..{} missing before this line",
                        r.seq - 1
                    ));
                }
            }
            Some(_) if seen.contains(&r.seq) => {
                why.push(format!("duplicate seq {} (a record inserted)", r.seq))
            }
            Some(e) => why.push(format!(
                "out of order: seq {} after seq {} (records reordered)",
                r.seq,
                e - 1
            )),
            None => {}
        }
        if r.kind == kind::CHECKPOINT {
            rep.checkpoints += 1;
            check_checkpoint(r, last_seq, last_hash, opt, &mut why);
            since_checkpoint = None;
        } else {
            since_checkpoint = match since_checkpoint {
                Some((f, n)) => Some((f, n + 1)),
                None => Some((r.seq, 1)),
            };
        }
        if r.kind == kind::FILE_START && i > 0 {
            why.push("a file-start record in the middle of a file (inserted)".into());
        }
        if !why.is_empty() {
            problem(rep, Some(line), Some(r.seq), why.join("; "));
        }
        seen.insert(r.seq);
        expected = Some(expected.map_or(r.seq + 1, |e| e.max(r.seq + 1)));
        last_seq = Some(r.seq);
        last_hash = r.hash_bytes();
        kinds.push(r.kind.clone());
        if opt.keep {
            rep.all.push(super::verify::Located {
                file: name.to_string(),
                line,
                record: r.clone(),
            });
        }
    }
    let n = kinds.len();
    let closed = trailing == 0
        && n >= 2
        && kinds[n - 1] == kind::CHECKPOINT
        && kinds[n - 2] == kind::FILE_CLOSE;
    End {
        name: name.to_string(),
        last_seq,
        last_hash,
        closed,
        trailing,
        last_line: lines.len(),
        unsigned: since_checkpoint,
    }
}

/// A file-start against the end of the file before it.
fn check_link(name: &str, s: &Start, p: &End, rep: &mut Report) {
    let mut why = Vec::new();
    if s.previous_file != p.name {
        why.push(format!(
            "missing file: it continues {} (up to seq {}), but the file before it here is {} \
             (up to seq {}): a whole file was removed",
            s.previous_file,
            s.previous_last_seq.map_or("?".into(), |q| q.to_string()),
            p.name,
            p.last_seq.map_or("?".into(), |q| q.to_string()),
        ));
    } else if s.previous_last_seq != p.last_seq || s.previous_last_hash != p.last_hash {
        why.push(format!(
            "{} ends at seq {} but this file continues from seq {}: the end of {} was truncated \
             or changed",
            p.name,
            p.last_seq.map_or("?".into(), |q| q.to_string()),
            s.previous_last_seq.map_or("?".into(), |q| q.to_string()),
            p.name
        ));
    }
    if !why.is_empty() {
        rep.problems.push(Problem {
            file: name.to_string(),
            line: Some(1),
            seq: None,
            what: why.join("; "),
        });
    }
}

fn check_checkpoint(
    r: &Record,
    last_seq: Option<u64>,
    last_hash: Option<[u8; 32]>,
    opt: &Options,
    why: &mut Vec<String>,
) {
    let head_seq: Option<u64> = r.detail.get("head_seq").and_then(|s| s.parse().ok());
    let head = r.detail.get("head").and_then(|h| from_hex32(h));
    let sig = r.detail.get("signature").and_then(|s| from_hex(s));
    let (Some(head_seq), Some(head), Some(sig)) = (head_seq, head, sig) else {
        why.push("checkpoint without head_seq, head or signature".into());
        return;
    };
    if Some(head_seq) != last_seq || Some(head) != last_hash {
        why.push(format!(
            "checkpoint signs seq {head_seq}, which is not the record before it: records \
             before it were removed, inserted or rewritten"
        ));
    }
    if let Some(k) = &opt.public_key {
        if !k.verifies(head_seq, &head, &sig) {
            why.push(format!(
                "checkpoint signature does not verify with key {}: the records up to seq \
                 {head_seq} were rewritten, or signed with another key",
                k.id()
            ));
        }
    }
}

/// The files of `args` (files, or folders holding `trail-*.jsonl`), in chain order; whether a
/// folder was given (the whole trail).
pub fn collect(args: &[PathBuf]) -> Result<(Vec<PathBuf>, bool), String> {
    let mut files = Vec::new();
    let mut whole = false;
    for a in args {
        if a.is_dir() {
            whole = true;
            files.extend(super::writer::list(a).map_err(|e| format!("{}: {e}", a.display()))?);
        } else if a.exists() {
            files.push(a.clone());
        } else {
            return Err(format!("{}: no such file or folder", a.display()));
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.dedup();
    Ok((files, whole))
}

/// The public key to verify with: `--public-key` (hex or a file holding it), else
/// `audit.public_key` of the config, else `<data_dir>/secrets/audit-signing.pub` (said in a
/// note: a key stored beside the trail protects less than one pinned in the config).
pub fn find_key(
    arg: Option<&str>,
    config: Option<&crate::config::Config>,
    data_dir: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<Option<PublicKey>, String> {
    if let Some(a) = arg {
        let text = if Path::new(a).is_file() {
            std::fs::read_to_string(a).map_err(|e| format!("--public-key {a}: {e}"))?
        } else {
            a.to_string()
        };
        return PublicKey::parse(&text).map(Some).ok_or_else(|| {
            format!("--public-key: {a:?} is not 64 hex digits nor a file holding them")
        });
    }
    if let Some(p) = config.and_then(|c| c.audit.public_key.as_deref()) {
        return PublicKey::parse(p)
            .map(Some)
            .ok_or_else(|| "audit.public_key: must be 64 hex digits".to_string());
    }
    if let Some(d) = data_dir {
        let p = super::sign::pub_path(d);
        if let Ok(text) = std::fs::read_to_string(&p) {
            notes.push(format!(
                "public key from {} (pin it in audit.public_key or pass --public-key: a key \
                 kept beside the trail can be replaced with it)",
                p.display()
            ));
            return Ok(PublicKey::parse(&text));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Nanos;
    use crate::trail::sign::SigningKey;
    use crate::trail::writer::{self, FileWriter, Limits};
    use crate::trail::Entry;

    fn limits(rotate_bytes: u64) -> Limits {
        Limits {
            rotate_bytes,
            rotate_after: Duration::ZERO,
            checkpoint_every: 4,
            checkpoint_after: Duration::from_secs(3600),
            sync_after: Duration::ZERO,
        }
    }

    /// A closed trail of `n` records in `dir` (two runs: the second continues the first).
    fn trail(dir: &Path, n: u64, rotate_bytes: u64) -> PublicKey {
        let key = || SigningKey::from_seed(&[5; 32]).unwrap();
        let public = key().public();
        for run in 0..2 {
            let mut w = FileWriter::open(dir, limits(rotate_bytes), key()).unwrap();
            for i in 0..n / 2 {
                let e = Entry::new(Nanos(1_000 + i), "test", "gateway")
                    .subject("order_id", (run * 100 + i).to_string());
                w.write(&e).unwrap();
            }
            w.close("stop").unwrap();
        }
        public
    }

    fn check(dir: &Path, key: PublicKey) -> Report {
        let (files, whole) = collect(&[dir.to_path_buf()]).unwrap();
        verify(
            &files,
            &Options {
                public_key: Some(key),
                whole_trail: whole,
                live: false,
                keep: true,
            },
        )
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(p: &Path, l: &[String]) {
        std::fs::write(p, l.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_untouched_trail_verifies_and_rotation_chains_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = trail(dir.path(), 40, 2048);
        let files = writer::list(dir.path()).unwrap();
        assert!(files.len() >= 4, "{files:?}");
        let rep = check(dir.path(), key);
        assert!(rep.ok(), "{:?}", rep.problems);
        assert!(rep.checkpoints >= 10);
        // Each file after the first starts by naming the one before it and its last record.
        let second = lines(&files[1]);
        let start: Record = serde_json::from_str(&second[0]).unwrap();
        let first_name = files[0].file_name().unwrap().to_str().unwrap();
        assert_eq!(start.detail["previous_file"], first_name);
        let last: Record = serde_json::from_str(lines(&files[0]).last().unwrap()).unwrap();
        assert_eq!(start.prev, last.hash);
        assert_eq!(start.detail["previous_last_hash"], last.hash);
        // Another key does not verify the checkpoints.
        let other = SigningKey::from_seed(&[6; 32]).unwrap().public();
        assert!(!check(dir.path(), other).ok());
    }

    #[test]
    fn each_kind_of_tampering_is_named_with_file_line_and_seq() {
        let base = tempfile::tempdir().unwrap();
        let key = trail(base.path(), 20, 1 << 20);
        let files = writer::list(base.path()).unwrap();
        let f = &files[0];
        let orig = lines(f);
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let run = |l: Vec<String>| {
            write_lines(f, &l);
            let r = check(base.path(), key);
            write_lines(f, &orig);
            r
        };
        // Modified byte in record on line 3.
        let mut l = orig.clone();
        l[2] = l[2].replacen("\"test\"", "\"tesT\"", 1);
        let r = run(l);
        assert!(
            r.problems.iter().any(|p| p.file == name
                && p.line == Some(3)
                && p.seq == Some(3)
                && p.what.contains("modified")),
            "{:?}",
            r.problems
        );
        // Deleted line 4 (seq 4).
        let mut l = orig.clone();
        l.remove(3);
        let r = run(l);
        assert!(
            r.problems
                .iter()
                .any(|p| p.line == Some(4) && p.seq == Some(5) && p.what.contains("removed")),
            "{:?}",
            r.problems
        );
        // Inserted copy of line 2 after line 5.
        let mut l = orig.clone();
        l.insert(5, orig[1].clone());
        let r = run(l);
        assert!(
            r.problems
                .iter()
                .any(|p| p.line == Some(6) && p.what.contains("inserted")),
            "{:?}",
            r.problems
        );
        // Swapped lines 3 and 4.
        let mut l = orig.clone();
        l.swap(2, 3);
        let r = run(l);
        assert!(
            r.problems
                .iter()
                .any(|p| p.line == Some(3) && p.seq == Some(4) && p.what.contains("out of order")),
            "{:?}",
            r.problems
        );
        // Whole chain recomputed after a change: the checkpoint signature gives it away.
        let mut recs: Vec<Record> = orig
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        recs[2].actor = "someone-else".into();
        let mut head = GENESIS;
        for r in recs.iter_mut() {
            if r.kind == kind::CHECKPOINT {
                r.detail
                    .insert("head".into(), crate::trail::chain::hex(&head));
            }
            head = r.seal(&head);
        }
        let l: Vec<String> = recs
            .iter()
            .map(|r| String::from_utf8(r.line()).unwrap().trim_end().to_string())
            .collect();
        let r = run(l);
        assert!(
            r.problems
                .iter()
                .any(|p| p.what.contains("signature does not verify")),
            "{:?}",
            r.problems
        );
        // Truncated mid-line.
        let mut text = orig.join("\n");
        text.truncate(text.len() - 30);
        std::fs::write(f, &text).unwrap();
        let r = check(base.path(), key);
        write_lines(f, &orig);
        assert!(
            r.problems.iter().any(|p| p.what.contains("mid-line")),
            "{:?}",
            r.problems
        );
        assert!(check(base.path(), key).ok());
    }

    #[test]
    fn a_removed_middle_file_and_an_unclean_stop_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let key = trail(dir.path(), 40, 2048);
        let files = writer::list(dir.path()).unwrap();
        std::fs::remove_file(&files[1]).unwrap();
        let r = check(dir.path(), key);
        let gone = files[1].file_name().unwrap().to_str().unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.what.contains("missing file") && p.what.contains(gone)),
            "{:?}",
            r.problems
        );
        // A crash: the file ends without its close; the next run's file vouches for that end.
        let dir = tempfile::tempdir().unwrap();
        let k = || SigningKey::from_seed(&[5; 32]).unwrap();
        let mut w = FileWriter::open(dir.path(), limits(1 << 20), k()).unwrap();
        for i in 0..6 {
            w.write(&Entry::new(Nanos(i), "test", "gateway")).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let mut w = FileWriter::open(dir.path(), limits(1 << 20), k()).unwrap();
        w.write(&Entry::new(Nanos(9), "test", "gateway")).unwrap();
        w.close("stop").unwrap();
        let r = check(dir.path(), k().public());
        assert!(r.ok(), "{:?}", r.problems);
        assert!(
            r.notes.iter().any(|n| n.contains("did not close")),
            "{:?}",
            r.notes
        );
    }
}
