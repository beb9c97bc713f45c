//! COLD — `[control]`: who may use the control socket (`<data_dir>/control.sock`, `portcullis
//! ctl`) and the per-client bounds that keep one client from delaying another's kill.

use serde::Deserialize;

use super::ConfigError;

/// `[control]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlCfg {
    /// User ids whose processes may use the control socket, checked with SO_PEERCRED on every
    /// connection. Default (absent): the gateway's own effective uid only. When given, exactly
    /// these uids — root (0) included only if listed, like ssh's `AllowUsers`: root passes the
    /// socket's 0600 file mode, not this list. The mode stays 0600, so the list narrows who may
    /// connect (root, the gateway's own uid) and never widens it.
    pub allowed_uids: Option<Vec<u32>>,
    /// Clients served at once, each on its own thread. Default 8. When all are taken, the
    /// oldest one that is not waiting for the gateway is closed to make room; a new client is
    /// refused only while this many requests are being applied.
    pub max_clients: usize,
    /// Longest request line, bytes (the newline excluded); the server never reads more than
    /// this plus one before deciding. Default 16384 (a request is a few hundred bytes).
    pub max_line_bytes: usize,
    /// How long a connected client may stay silent (before its first request, and between
    /// answers and the next request), ms. Default 10000.
    pub idle_timeout_ms: u64,
    /// Once a request's first byte has arrived the whole line must arrive within this; writing
    /// an answer must finish within it too, ms. Default 2000.
    pub io_timeout_ms: u64,
}

impl Default for ControlCfg {
    fn default() -> Self {
        ControlCfg {
            allowed_uids: None,
            max_clients: 8,
            max_line_bytes: 16 * 1024,
            idle_timeout_ms: 10_000,
            io_timeout_ms: 2_000,
        }
    }
}

impl ControlCfg {
    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("control.{key}"),
            problem,
        };
        if self.allowed_uids.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                "allowed_uids",
                "is empty: nobody could use the control socket (leave it out for the gateway's own uid)".into(),
            ));
        }
        if !(1..=256).contains(&self.max_clients) {
            return Err(err(
                "max_clients",
                format!("{} is outside 1..=256", self.max_clients),
            ));
        }
        if !(256..=1 << 20).contains(&self.max_line_bytes) {
            return Err(err(
                "max_line_bytes",
                format!("{} is outside 256..=1048576", self.max_line_bytes),
            ));
        }
        for (key, v) in [
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("io_timeout_ms", self.io_timeout_ms),
        ] {
            if !(10..=3_600_000).contains(&v) {
                return Err(err(key, format!("{v} is outside 10..=3600000")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let bad = |c: ControlCfg| c.validate("f.toml").unwrap_err().key;
        let d = ControlCfg::default();
        assert!(d.validate("f.toml").is_ok());
        assert_eq!(
            bad(ControlCfg {
                allowed_uids: Some(vec![]),
                ..d.clone()
            }),
            "control.allowed_uids"
        );
        assert_eq!(
            bad(ControlCfg {
                max_clients: 0,
                ..d.clone()
            }),
            "control.max_clients"
        );
        assert_eq!(
            bad(ControlCfg {
                max_line_bytes: 10,
                ..d.clone()
            }),
            "control.max_line_bytes"
        );
        assert_eq!(
            bad(ControlCfg {
                io_timeout_ms: 0,
                ..d
            }),
            "control.io_timeout_ms"
        );
    }
}
