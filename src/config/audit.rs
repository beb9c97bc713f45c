//! COLD — `[audit]`: the tamper-evident audit trail (`src/trail`): where, rotation,
//! checkpoints, the queue and what happens when it is full.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// What a full trail queue does (`audit.on_full`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnFull {
    /// The record is lost (counted, and the loss is recorded); trading goes on.
    Drop,
    /// The record is lost (counted, recorded) and the gateway refuses new orders until the
    /// trail has caught up: nothing is traded that the trail cannot record.
    FailClosed,
}

impl OnFull {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::Drop => "drop",
            OnFull::FailClosed => "fail_closed",
        }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditCfg {
    /// Write the trail. Default true.
    pub enabled: bool,
    /// The trail folder; relative paths are under `gateway.data_dir`. Default `audit`.
    pub dir: PathBuf,
    /// Start a new file once the current one has this many bytes. Default 64 MiB (≈ 150k
    /// records: a file verifies in about a second).
    pub rotate_bytes: u64,
    /// Start a new file after this many seconds; 0: only by size. Default 86400 (a file a day).
    pub rotate_seconds: u64,
    /// Sign a checkpoint after this many records. Default 1000.
    pub checkpoint_every: u64,
    /// Sign a checkpoint this many seconds after the first unsigned record. Default 5: what
    /// can be cut from the end of the trail undetected by signature is at most 5 s of records.
    pub checkpoint_seconds: u64,
    /// `"fail_closed"` or `"drop"`. Default: `fail_closed` when `auth.required = true` (a
    /// production config), else `drop`; the embedded development default sets `drop`.
    pub on_full: Option<OnFull>,
    /// `fdatasync` the trail at most this often, ms (at a checkpoint, or by the writer's tick
    /// when records wait unsynced); file close always syncs. Default 1000: a host crash loses
    /// at most the last second of records; 0 syncs at every checkpoint (≈ 7 ms each here,
    /// which made the writer fall behind a flood at one checkpoint per 1000 records).
    pub sync_ms: u64,
    /// Records the queue into the trail thread holds. Default 65536 (≈ 3 s of a 10k orders/s
    /// burst at two records an order).
    pub queue_capacity: usize,
    /// Record every FIX and SBE message in and out (masked), client sessions and venue links.
    /// Default true.
    pub messages: bool,
    /// Bytes of the ring that carries them from the gateway thread to the trail thread
    /// (allocated and touched at start). Default 8 MiB: about 28k messages of 250 bytes, more
    /// than a second of a 10k orders/s burst at two messages an order. A full ring loses the
    /// message (counted in `AuditRingFull`, recorded) and, under `on_full = "fail_closed"`,
    /// refuses new orders until the trail has caught up.
    pub message_ring_bytes: usize,
    /// Messages of connections not logged on yet (Logons, Negotiates, whatever a stranger
    /// sends first) recorded per second, at most; the rest are counted
    /// (`AuditPrelogonUnrecorded`) and the trail says how many. Default 1000: a flood of logons
    /// from someone without a key cannot fill the ring and, under `fail_closed`, stop the
    /// sessions' trading (a ring too full for such a message loses it, counted, without
    /// lowering the healthy flag). Refused logons stay in the trail as events either way.
    pub prelogon_messages_per_second: u32,
    /// The checkpoint signing key's public half (64 hex digits), pinned: the gateway refuses to
    /// start with another key, and `audit verify --config` checks with it. Default: none (the
    /// key is created at first start and written to `<data_dir>/secrets/audit-signing.pub`).
    pub public_key: Option<String>,
}

impl Default for AuditCfg {
    fn default() -> Self {
        AuditCfg {
            enabled: true,
            dir: PathBuf::from("audit"),
            rotate_bytes: 64 << 20,
            rotate_seconds: 86_400,
            checkpoint_every: 1000,
            checkpoint_seconds: 5,
            sync_ms: 1000,
            on_full: None,
            queue_capacity: 65_536,
            messages: true,
            message_ring_bytes: 8 << 20,
            prelogon_messages_per_second: 1000,
            public_key: None,
        }
    }
}

impl AuditCfg {
    /// The trail folder under `data_dir`.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dir)
    }

    /// The policy in force for `cfg` (see `on_full`).
    pub fn on_full(&self, cfg: &super::Config) -> OnFull {
        self.on_full
            .unwrap_or(match cfg.auth.as_ref().is_some_and(|a| a.required) {
                true => OnFull::FailClosed,
                false => OnFull::Drop,
            })
    }

    pub fn limits(&self) -> crate::trail::writer::Limits {
        crate::trail::writer::Limits {
            rotate_bytes: self.rotate_bytes,
            rotate_after: Duration::from_secs(self.rotate_seconds),
            checkpoint_every: self.checkpoint_every,
            checkpoint_after: Duration::from_secs(self.checkpoint_seconds),
            sync_after: Duration::from_millis(self.sync_ms),
        }
    }

    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("audit.{key}"),
            problem,
        };
        if !(1024..=1 << 40).contains(&self.rotate_bytes) {
            return Err(err(
                "rotate_bytes",
                format!("{} is outside 1024..=1099511627776", self.rotate_bytes),
            ));
        }
        if self.rotate_seconds > 31 * 86_400 {
            return Err(err(
                "rotate_seconds",
                format!("{} is over 2678400 (31 days)", self.rotate_seconds),
            ));
        }
        if !(1..=1_000_000).contains(&self.checkpoint_every) {
            return Err(err(
                "checkpoint_every",
                format!("{} is outside 1..=1000000", self.checkpoint_every),
            ));
        }
        if !(1..=3600).contains(&self.checkpoint_seconds) {
            return Err(err(
                "checkpoint_seconds",
                format!("{} is outside 1..=3600", self.checkpoint_seconds),
            ));
        }
        if self.sync_ms > 3_600_000 {
            return Err(err(
                "sync_ms",
                format!("{} is over 3600000 (an hour)", self.sync_ms),
            ));
        }
        if !(16..=1 << 24).contains(&self.queue_capacity) {
            return Err(err(
                "queue_capacity",
                format!("{} is outside 16..=16777216", self.queue_capacity),
            ));
        }
        let ring = crate::handoff::messages::MIN_BYTES..=crate::handoff::messages::MAX_BYTES;
        if !ring.contains(&self.message_ring_bytes) {
            return Err(err(
                "message_ring_bytes",
                format!(
                    "{} is outside {}..={}",
                    self.message_ring_bytes,
                    ring.start(),
                    ring.end()
                ),
            ));
        }
        if self.prelogon_messages_per_second > 1_000_000 {
            return Err(err(
                "prelogon_messages_per_second",
                format!("{} is over 1000000", self.prelogon_messages_per_second),
            ));
        }
        if let Some(k) = &self.public_key {
            if crate::trail::sign::PublicKey::parse(k).is_none() {
                return Err(err(
                    "public_key",
                    format!("{k:?} is not 64 hex digits (an Ed25519 public key)"),
                ));
            }
        }
        if self.dir.as_os_str().is_empty() {
            return Err(err("dir", "is empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let d = AuditCfg::default();
        assert!(d.validate("f.toml").is_ok());
        let bad = |c: AuditCfg| c.validate("f.toml").unwrap_err().key;
        assert_eq!(
            bad(AuditCfg {
                rotate_bytes: 10,
                ..d.clone()
            }),
            "audit.rotate_bytes"
        );
        assert_eq!(
            bad(AuditCfg {
                checkpoint_every: 0,
                ..d.clone()
            }),
            "audit.checkpoint_every"
        );
        assert_eq!(
            bad(AuditCfg {
                checkpoint_seconds: 0,
                ..d.clone()
            }),
            "audit.checkpoint_seconds"
        );
        assert_eq!(
            bad(AuditCfg {
                queue_capacity: 1,
                ..d.clone()
            }),
            "audit.queue_capacity"
        );
        assert_eq!(
            bad(AuditCfg {
                public_key: Some("xyz".into()),
                ..d
            }),
            "audit.public_key"
        );
    }

    #[test]
    fn on_full_defaults_to_fail_closed_for_required_auth_and_drop_otherwise() {
        let dir = std::path::Path::new("/tmp/x");
        let dev = super::super::Config::embedded_default(dir);
        assert_eq!(dev.audit.on_full(&dev), OnFull::Drop);
        let mut prod = dev.clone();
        prod.audit.on_full = None;
        assert_eq!(prod.audit.on_full(&prod), OnFull::FailClosed);
        prod.auth = None;
        assert_eq!(prod.audit.on_full(&prod), OnFull::Drop);
        let parsed = super::super::Config::parse("[audit]\non_full = \"fail_closed\"\n", "t.toml");
        if let Ok(c) = parsed {
            assert_eq!(c.audit.on_full, Some(OnFull::FailClosed));
        }
        let e =
            super::super::Config::parse("[audit]\non_full = \"maybe\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
    }
}
