//! COLD — files at rest: the data folder and everything in it are private to the gateway's user.
//!
//! - Folders are created 0700 and files 0600 whatever the process umask: modes are given
//!   explicitly where we create (so library users such as tests calling `gateway::start` get
//!   them too), and `portcullis run` / `portcullis keys` also set the umask to 0o077 at start
//!   ([`restrict_umask`]) for anything a library creates behind our back.
//! - A folder or file of ours found with group or other bits (made by an older version, or by
//!   hand) is tightened; each tightening is reported on stderr ([`private_dir`], [`open_private`],
//!   and [`tighten_tree`] over the whole data folder at start).
//! - Secrets we read but do not own the creation of (the key store, a file master key) are
//!   refused when group or others may read or write them, or when another user owns them — as
//!   ssh does with private keys ([`check_secret_file`]).
//! - Whole-file replacement: a unique temporary name (O_EXCL, random suffix), fsync, rename,
//!   fsync of the folder ([`write_private`]). Never a fixed `.tmp` name: two writers would share
//!   it, and another user could plant it.
//! - An exclusive advisory lock (`flock`) for read-modify-write of a shared file ([`Lock`]).
//!
//! Must never: loosen a mode; tighten a folder that is not ours (a parent such as `/tmp`).
//!
//! `unsafe`: the three libc calls `umask`, `flock` and `geteuid` (listed in `lib.rs`); each is a
//! single call with integer arguments.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every folder we create: owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file we create: owner read/write only.
pub const FILE_MODE: u32 = 0o600;
/// Bits that must be clear: any access by group or others.
const OPEN_TO_OTHERS: u32 = 0o077;

/// Sets the process umask to 0o077 (nothing for group or others). `portcullis run` and
/// `portcullis keys` call it first thing; the explicit modes below do not depend on it.
#[allow(unsafe_code)] // umask(2): one call, an integer in and out, no pointers
pub fn restrict_umask() {
    // SAFETY: umask takes and returns a plain mode_t; it cannot fail and touches no memory.
    let _ = unsafe { libc::umask(0o077) };
}

/// The effective user id of this process.
#[allow(unsafe_code)] // geteuid(2): no arguments, cannot fail
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and returns an integer; it is always successful.
    unsafe { libc::geteuid() }
}

/// Creates folder `path` (and missing parents) with mode 0700; an existing `path` with group
/// or other bits is tightened to 0700 and the change is reported. Parents that already exist
/// are left alone (they are not ours: `/tmp`, a home folder).
pub fn private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| named(e, path))?;
    let meta = std::fs::metadata(path).map_err(|e| named(e, path))?;
    tighten(path, meta.mode(), DIR_MODE, "folder")
}

/// Tightens everything under the folder `root` (not following symbolic links): folders with
/// group or other bits to 0700, files and sockets to 0600 — what an older version, a restore or
/// a hand copy left behind (past days' records, archived session logs). Entries another user
/// owns are left alone (we could not change them). Returns how many entries were tightened;
/// the caller reports the total.
pub fn tighten_tree(root: &Path) -> io::Result<usize> {
    let me = euid();
    let mut tightened = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| named(e, &dir))? {
            let entry = entry.map_err(|e| named(e, &dir))?;
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue; // gone meanwhile
            };
            let ft = meta.file_type();
            if ft.is_symlink() {
                continue;
            }
            let want = if ft.is_dir() {
                stack.push(path.clone());
                DIR_MODE
            } else {
                FILE_MODE
            };
            if meta.mode() & OPEN_TO_OTHERS != 0 && meta.uid() == me {
                std::fs::set_permissions(&path, Permissions::from_mode(want))
                    .map_err(|e| named(e, &path))?;
                tightened += 1;
            }
        }
    }
    Ok(tightened)
}

/// Opens (creating with mode 0600) the file `opts` describes; an existing file with group or
/// other bits is tightened to 0600 and the change is reported.
pub fn open_private(opts: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let f = opts
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| named(e, path))?;
    tighten_open(&f, path)?;
    Ok(f)
}

/// Tightens an open file of ours to 0600 if group or others have any access (reported).
pub fn tighten_open(f: &File, path: &Path) -> io::Result<()> {
    let mode = f.metadata().map_err(|e| named(e, path))?.mode();
    if mode & OPEN_TO_OTHERS != 0 {
        f.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| named(e, path))?;
        report(path, mode, FILE_MODE, "file");
    }
    Ok(())
}

fn tighten(path: &Path, mode: u32, want: u32, what: &str) -> io::Result<()> {
    if mode & OPEN_TO_OTHERS != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(want)).map_err(|e| named(e, path))?;
        report(path, mode, want, what);
    }
    Ok(())
}

#[cold]
fn report(path: &Path, mode: u32, want: u32, what: &str) {
    crate::say_err(format_args!(
        "portcullis: {what} {} had mode {:04o} (group or others had access); tightened to {want:04o}",
        path.display(),
        mode & 0o7777
    ));
}

/// A unique temporary name beside `path`: `.<name>.<pid>.<random>.tmp`.
pub fn temp_name(path: &Path) -> io::Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::getrandom(&mut r).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_le_bytes(r)
    )))
}

/// Writes `bytes` to `path` (mode 0600) through a unique temporary file: write, fsync, rename,
/// fsync of the folder. A reader sees the old or the new file, never half of one. A missing
/// parent folder is created 0700; an existing one is left as it is.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_private(path, bytes)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// [`write_private`] without the folder fsync: for state rewritten every second (the rename
/// reaches the disk with the next folder sync; until then a crash leaves the previous file).
pub fn replace_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| named(e, dir))?;
    }
    let tmp = temp_name(path)?;
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(named(e, path));
    }
    Ok(())
}

/// Refuses a secret file (`what`: "key store", "master key file") that group or others may
/// access or that another user owns — the error names the file and the fix, like ssh.
pub fn check_secret_file(path: &Path, what: &str) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{what} {}: {e}", path.display())),
    };
    let mode = meta.mode() & 0o7777;
    if mode & OPEN_TO_OTHERS != 0 {
        return Err(format!(
            "{what} {p} has mode {mode:04o}: group or others may access it; refusing to use \
             it (fix: `chmod 600 {p}`)",
            p = path.display()
        ));
    }
    let me = euid();
    if meta.uid() != me && me != 0 {
        return Err(format!(
            "{what} {p} is owned by uid {}, not by this user (uid {me}); refusing to use it \
             (fix: `chown {me} {p}`)",
            meta.uid(),
            p = path.display()
        ));
    }
    Ok(())
}

/// An exclusive `flock` held until dropped (closing the file releases it).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until this process holds the exclusive lock on `path` (created 0600 if missing).
    /// Advisory: only code that takes the same lock is kept out.
    pub fn exclusive(path: &Path) -> io::Result<Lock> {
        let f = open_private(OpenOptions::new().read(true).write(true).create(true), path)?;
        Lock::on(f, path)
    }

    /// Blocks until this process holds the exclusive lock on the open file or folder `f`.
    pub fn on(f: File, path: &Path) -> io::Result<Lock> {
        use std::os::fd::AsRawFd;
        loop {
            if flock_exclusive(f.as_raw_fd()) == 0 {
                return Ok(Lock { _file: f });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(named(e, path));
            }
        }
    }
}

#[allow(unsafe_code)] // flock(2): an fd we own (borrowed for the call) and a constant
fn flock_exclusive(fd: std::os::fd::RawFd) -> i32 {
    // SAFETY: `fd` is open for the whole call (the caller holds its `File`); flock touches no
    // memory of ours.
    unsafe { libc::flock(fd, libc::LOCK_EX) }
}

#[cold]
fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn private_dir_creates_0700_and_tightens_only_the_leaf() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), Permissions::from_mode(0o755)).unwrap();
        let d = t.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(t.path()), 0o755, "an existing parent is not ours");
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700, "our own folder is tightened");
    }

    #[test]
    fn tighten_tree_closes_everything_below_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("theirs"), b"x").unwrap();
        std::fs::set_permissions(outside.path().join("theirs"), Permissions::from_mode(0o644))
            .unwrap();
        let d = t.path().join("records/archive");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("old.jsonl"), b"x").unwrap();
        std::fs::set_permissions(d.join("old.jsonl"), Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(outside.path().join("theirs"), t.path().join("link")).unwrap();
        assert!(tighten_tree(t.path()).unwrap() >= 2);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("old.jsonl")), 0o600);
        assert_eq!(
            mode(&outside.path().join("theirs")),
            0o644,
            "links are not followed"
        );
        assert_eq!(tighten_tree(t.path()).unwrap(), 0);
    }

    #[test]
    fn files_are_0600_and_loose_ones_tightened() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f.log");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        open_private(OpenOptions::new().append(true).create(true), &p).unwrap();
        assert_eq!(mode(&p), 0o600);
        let q = t.path().join("new/g");
        write_private(&q, b"secret").unwrap();
        assert_eq!(mode(&q), 0o600);
        assert_eq!(std::fs::read(&q).unwrap(), b"secret");
        let names: Vec<_> = std::fs::read_dir(t.path().join("new")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        assert_ne!(temp_name(&q).unwrap(), temp_name(&q).unwrap());
    }

    #[test]
    fn secret_files_open_to_others_are_refused_with_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("master.key");
        std::fs::write(&p, b"k").unwrap();
        for m in [0o644, 0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&p, Permissions::from_mode(m)).unwrap();
            let e = check_secret_file(&p, "master key file").unwrap_err();
            assert!(e.contains("chmod 600") && e.contains("master.key"), "{e}");
        }
        std::fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&p, "master key file").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o400)).unwrap();
        check_secret_file(&p, "master key file").unwrap();
    }

    #[test]
    fn the_lock_is_exclusive_between_holders() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.lock");
        let held = Lock::exclusive(&p).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        let h = std::thread::spawn(move || {
            let _l = Lock::exclusive(&q).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        h.join().unwrap();
        assert_eq!(mode(&p), 0o600);
    }
}
