//! COLD — persistence of logon lockouts across restarts: a restart must not reopen a
//! brute-force window (AUTH-8). The journal thread keeps the lockouts in force from the
//! `AuthLockout` events and rewrites `<data_dir>/auth-lockouts.state` after each batch that
//! carried one (temporary file created 0600, fdatasync, rename). The engine reads it once at
//! start and keeps only the entries still running whose unlock generation is the key store's
//! (an entry an operator unlocked since is dropped then).
//!
//! The replay cache is kept the same way in `auth-replay.state` ([`Replays`]).
//!
//! One lockout per line, times in UTC nanoseconds:
//! `address <ip> <until_ns> <generation>` or `key <ip> <until_ns> <generation> <key id>`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

use crate::auth::lockout::{Locked, Scope};
use crate::auth::KeyId;
use crate::handoff::Event;
use crate::model::Nanos;

/// The file name inside the data folder.
pub const FILE: &str = "auth-lockouts.state";
/// Most lockouts kept in the file; beyond it those ending soonest are dropped (each needs
/// `lockout_address_failures` failed logons, so this is far beyond any real incident).
pub const MAX_ENTRIES: usize = 1 << 16;

/// The lockouts in force, by scope.
#[derive(Default, Debug)]
pub struct Lockouts(pub HashMap<Scope, Locked>);

impl Lockouts {
    /// Applies `e`; true when it started a lockout.
    pub fn apply(&mut self, e: &Event) -> bool {
        let Event::AuthLockout {
            key_id,
            peer,
            key,
            until,
            generation,
            ..
        } = e
        else {
            return false;
        };
        let scope = if *key {
            Scope::KeyAddress(*key_id, *peer)
        } else {
            Scope::Address(*peer)
        };
        self.0.insert(
            scope,
            Locked {
                scope,
                until: *until,
                generation: *generation,
            },
        );
        true
    }

    /// Drops the lockouts that ended by `now` (and the soonest-ending beyond
    /// [`MAX_ENTRIES`]), then writes the rest atomically with mode 0600.
    pub fn save(&mut self, path: &Path, now: Nanos) -> io::Result<()> {
        self.0.retain(|_, l| l.until > now);
        if self.0.len() > MAX_ENTRIES {
            let mut v: Vec<Locked> = self.0.values().copied().collect();
            v.sort_by_key(|l| std::cmp::Reverse(l.until));
            v.truncate(MAX_ENTRIES);
            self.0 = v.into_iter().map(|l| (l.scope, l)).collect();
        }
        let mut text = String::new();
        for l in self.0.values() {
            text.push_str(&line(l));
            text.push('\n');
        }
        write_private(path, &text)
    }

    /// Reads the file; a missing file means no lockout. A line that does not parse is an
    /// error naming the file and the line.
    pub fn load(path: &Path) -> Result<Lockouts, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lockouts::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut out = Lockouts::default();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let locked = parse(l).ok_or_else(|| {
                format!(
                    "{} line {}: {l:?} is not a lockout (delete the file to clear every lockout)",
                    path.display(),
                    i + 1
                )
            })?;
            out.0.insert(locked.scope, locked);
        }
        Ok(out)
    }

    pub fn entries(&self) -> Vec<Locked> {
        self.0.values().copied().collect()
    }
}

/// Writes `text` to `path` atomically (a temporary file created 0600, fdatasync, rename).
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    // A stale temporary file may exist with a wider mode: mode() applies only at creation.
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

/// The replay file's name inside the data folder.
pub const REPLAY_FILE: &str = "auth-replay.state";

/// Accepted signatures still inside their skew window, by SHA-256 of the signature (never the
/// signature itself): a Logon captured before a restart stays refused after it. One per line:
/// `<sha256 hex> <until_ns>`. Only accepted logons get in, so the file holds at most the
/// legitimate logons of one skew window (`MAX_ENTRIES` bounds it regardless).
#[derive(Default, Debug)]
pub struct Replays(pub HashMap<[u8; 32], Nanos>);

impl Replays {
    /// Applies `e`; true when it was an accepted Logon.
    pub fn apply(&mut self, e: &Event) -> bool {
        let Event::Authenticated {
            replay,
            replay_until,
            ..
        } = e
        else {
            return false;
        };
        self.0.insert(*replay, *replay_until);
        true
    }

    /// Drops the entries whose window ended by `now` (and the soonest-ending beyond
    /// [`MAX_ENTRIES`]), then writes the rest atomically with mode 0600.
    pub fn save(&mut self, path: &Path, now: Nanos) -> io::Result<()> {
        self.0.retain(|_, until| *until > now);
        if self.0.len() > MAX_ENTRIES {
            let mut v: Vec<([u8; 32], Nanos)> = self.0.iter().map(|(k, u)| (*k, *u)).collect();
            v.sort_by_key(|(_, u)| std::cmp::Reverse(*u));
            v.truncate(MAX_ENTRIES);
            self.0 = v.into_iter().collect();
        }
        let mut text = String::new();
        for (id, until) in &self.0 {
            for b in id {
                text.push_str(&format!("{b:02x}"));
            }
            text.push_str(&format!(" {}\n", until.0));
        }
        write_private(path, &text)
    }

    /// Reads the file; missing means empty. A line that does not parse is an error naming the
    /// file and the line.
    pub fn load(path: &Path) -> Result<Replays, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replays::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut out = Replays::default();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let parsed = l.split_once(' ').and_then(|(h, u)| {
                let until = Nanos(u.parse().ok()?);
                let mut id = [0u8; 32];
                if h.len() != 64 {
                    return None;
                }
                for (j, b) in id.iter_mut().enumerate() {
                    *b = u8::from_str_radix(h.get(2 * j..2 * j + 2)?, 16).ok()?;
                }
                Some((id, until))
            });
            let (id, until) = parsed.ok_or_else(|| {
                format!(
                    "{} line {}: {l:?} is not a replay entry (delete the file to clear it)",
                    path.display(),
                    i + 1
                )
            })?;
            out.0.insert(id, until);
        }
        Ok(out)
    }

    pub fn entries(&self) -> Vec<([u8; 32], Nanos)> {
        self.0.iter().map(|(k, u)| (*k, *u)).collect()
    }
}

fn line(l: &Locked) -> String {
    match l.scope {
        Scope::Address(a) => format!("address {a} {} {}", l.until.0, l.generation),
        Scope::KeyAddress(k, a) => {
            format!("key {a} {} {} {}", l.until.0, l.generation, k.as_str())
        }
    }
}

fn parse(l: &str) -> Option<Locked> {
    let mut f = l.splitn(5, ' ');
    let kind = f.next()?;
    let peer: IpAddr = f.next()?.parse().ok()?;
    let until = Nanos(f.next()?.parse().ok()?);
    let generation = f.next()?.parse().ok()?;
    let scope = match kind {
        "address" => {
            if f.next().is_some() {
                return None;
            }
            Scope::Address(peer)
        }
        "key" => Scope::KeyAddress(KeyId::new(f.next()?.as_bytes())?, peer),
        _ => return None,
    };
    Some(Locked {
        scope,
        until,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_0600_and_loads_what_is_still_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut l = Lockouts::default();
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let id = KeyId::new(b"client1-dev").unwrap();
        let ev = |key, peer, until| Event::AuthLockout {
            key_id: id,
            peer,
            key,
            until: Nanos(until),
            generation: 3,
            at: Nanos(1),
        };
        assert!(l.apply(&ev(true, peer, 100)));
        assert!(l.apply(&ev(false, v6, 200)));
        assert!(l.apply(&ev(false, peer, 10)));
        l.save(&path, Nanos(50)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Lockouts::load(&path).unwrap();
        assert_eq!(back.0.len(), 2);
        assert_eq!(
            back.0
                .get(&Scope::KeyAddress(id, peer))
                .map(|l| (l.until, l.generation)),
            Some((Nanos(100), 3))
        );
        assert!(back.0.contains_key(&Scope::Address(v6)));
        std::fs::write(&path, "address nowhere 1 2\n").unwrap();
        let err = Lockouts::load(&path).unwrap_err();
        assert!(err.contains(FILE) && err.contains("line 1"), "{err}");
    }

    #[test]
    fn replay_entries_round_trip_without_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLAY_FILE);
        let mut r = Replays::default();
        let ev = |id: u8, until| Event::Authenticated {
            session: crate::model::SessionId(0),
            key_id: KeyId::new(b"k").unwrap(),
            replay: [id; 32],
            replay_until: Nanos(until),
            at: Nanos(1),
        };
        assert!(r.apply(&ev(1, 100)));
        assert!(r.apply(&ev(2, 10)));
        r.save(&path, Nanos(50)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Replays::load(&path).unwrap();
        assert_eq!(back.entries(), vec![([1u8; 32], Nanos(100))]);
        std::fs::write(&path, "zz 1\n").unwrap();
        assert!(Replays::load(&path).unwrap_err().contains("line 1"));
    }
}
