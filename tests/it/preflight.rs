//! `portcullis preflight` through the real binary: the embedded default's data folder (after a
//! real `portcullis run`) fails with the expected items named; `examples/production.toml`, its
//! placeholders filled with generated certificates, passes; with SoftHSM2 (`.ci/run`'s HSM
//! step), a real HSM-backed key store passes and an any-account grant in it fails.
//!
//! The clock item is judged from `--clock-status-file` (a saved `portcullis clock status`):
//! CI runners and this machine are not synchronised, so a live measurement would fail there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portcullis::tls::dev::{self, DevCa};

use crate::util::*;

const DAY: i64 = 86_400;
const SYNCED: &str = "sync: synchronised\ndivergence: 12.500 µs\n";
const UNSYNCED: &str = "sync: unsynchronised\ndivergence: unknown\n";
const PIN_VAR: &str = "PORTCULLIS_HSM_PIN";
const PIN: &str = "31337";

fn now_unix() -> i64 {
    (now_utc().0 / 1_000_000_000) as i64
}

fn clock_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("clock-status.txt");
    std::fs::write(&p, text).unwrap();
    p
}

fn preflight(args: &[&str], clock: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("preflight")
        .args(args)
        .arg("--clock-status-file")
        .arg(clock)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn fails(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn the_embedded_default_fails_preflight_with_the_items_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A real first start: the development key store, certificates and operator.
    let (mut child, _lines, _addr) = spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stderr(std::process::Stdio::null()),
    );
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let clock = clock_file(dir.path(), SYNCED);
    let (code, out) = preflight(&["--data-dir", data.to_str().unwrap()], &clock, &[]);
    assert_eq!(code, 1, "{out}");
    let fails = fails(&out);
    for needle in [
        "[auth.master_key.provider]",
        "development keys in the key store (found client1-dev, client2-dev, client42-dev, bin1-dev)",
        "no development operators (the embedded default's admin password is on disk)",
        "[session[1].tier]",
        "[clock.on_divergence]",
        "[clock.unsynchronised_is_breach]",
        "[audit.on_full]",
        "[audit.public_key]",
        "SIEM export configured [siem]",
    ] {
        assert!(
            fails.iter().any(|l| l.contains(needle)),
            "no FAIL naming {needle:?} in:\n{out}"
        );
    }
    // What the embedded default does right passes: loopback listener, signed logons, limits,
    // file modes.
    for needle in ["[auth.required]", "[session[0].tier]", "mode 0700"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("PASS") && l.contains(needle)),
            "no PASS naming {needle:?} in:\n{out}"
        );
    }
    assert!(out.contains("preflight: "), "{out}");
}

/// Certificates for every TLS endpoint of the production example, under `certs`.
fn certificates(certs: &Path, not_after: i64) {
    let ca = DevCa::generate("preflight test CA").unwrap();
    let now = now_unix();
    portcullis::files::private_dir(certs).unwrap();
    for name in ["clients-ca", "venue-ca", "siem-ca"] {
        portcullis::files::write_private(
            &certs.join(format!("{name}.pem")),
            ca.cert_pem().as_bytes(),
        )
        .unwrap();
    }
    for (name, server) in [
        ("gateway", true),
        ("ops", true),
        ("venue-client", false),
        ("siem-client", false),
    ] {
        let (c, k) = if server {
            ca.issue_server(&["gateway.internal"], now - DAY, not_after)
        } else {
            ca.issue_client(name, now - DAY, not_after)
        }
        .unwrap();
        dev::write_pair(certs, name, &c, &k).unwrap();
    }
}

/// `examples/production.toml` with its placeholders filled in; returns the config path.
fn production(dir: &Path, cert_days: i64) -> PathBuf {
    let data = dir.join("data");
    portcullis::files::private_dir(&data).unwrap();
    let certs = dir.join("certs");
    certificates(&certs, now_unix() + cert_days * DAY);
    let text = include_str!("../../examples/production.toml")
        .replace("@DATA_DIR@", data.to_str().unwrap())
        .replace("@CERT_DIR@", certs.to_str().unwrap())
        .replace("@LISTEN@", "10.11.12.13:9878")
        .replace("@OPS_LISTEN@", "10.11.12.13:9880")
        .replace("@VENUE@", "10.11.12.14:9900")
        .replace("@SIEM@", "siem.internal:6514")
        .replace("@PKCS11_MODULE@", &hsm_module().display().to_string())
        .replace("@AUDIT_PUBLIC_KEY@", &"5a".repeat(32));
    assert!(
        !text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains('@')),
        "a placeholder is left:\n{text}"
    );
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn hsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

#[test]
fn the_production_example_passes_preflight_and_each_breach_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production(dir.path(), 365);
    let cfg_arg = ["--config", cfg.to_str().unwrap()];
    let (code, out) = preflight(&cfg_arg, &clock_file(dir.path(), SYNCED), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(fails(&out).is_empty(), "{out}");
    assert!(!out.contains("WARN"), "{out}");
    for needle in [
        "PASS  TLS on FIX listener 10.11.12.13:9878",
        "PASS  mTLS to venue XVEN",
        "PASS  mTLS to the SIEM collector",
        "PASS  non-development master key provider (pkcs11)",
        "PASS  clock synchronised within 1000 µs (now 12.500 µs)",
        "PASS  certificate",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }

    // The same deployment with an unsynchronised clock fails, naming the key.
    let (code, out) = preflight(&cfg_arg, &clock_file(dir.path(), UNSYNCED), &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        fails(&out),
        vec!["FAIL  clock synchronised within 1000 µs (now unsynchronised) [clock.max_divergence_us] — fix: discipline the clock (chrony/ptp4l+phc2sys) until `portcullis clock status` says within limit"]
    );

    // A private key readable by the group fails with the chmod that fixes it.
    let key = dir.path().join("certs/ops.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, out) = preflight(&cfg_arg, &clock_file(dir.path(), SYNCED), &[]);
    assert_eq!(code, 1, "{out}");
    let f = fails(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(
        f[0].contains("[ops.tls.key]") && f[0].contains(&format!("chmod 600 {}", key.display())),
        "{out}"
    );

    // Certificates expiring within 30 days fail (every one of the four).
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = production(dir2.path(), 20);
    let (code, out) = preflight(
        &["--config", cfg2.to_str().unwrap()],
        &clock_file(dir2.path(), SYNCED),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let f = fails(&out);
    assert_eq!(f.len(), 4, "{out}");
    assert!(f.iter().all(|l| l.contains("valid > 30 days")), "{out}");

    // A bad clock status file is a clear error, not a verdict.
    std::fs::write(dir.path().join("bad.txt"), "hello").unwrap();
    let (code, out) = preflight(&cfg_arg, &dir.path().join("bad.txt"), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--clock-status-file"), "{out}");
}

/// A SoftHSM2 configuration with an initialised token `portcullis` under `dir`.
fn softhsm_token(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", "portcullis"])
        .args(["--pin", PIN, "--so-pin", "73519"])
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

#[test]
#[ignore = "needs softhsm2; run by .ci/run (HSM step)"]
fn the_production_example_with_an_hsm_key_store_passes_and_an_any_account_grant_fails() {
    let hsm = tempfile::tempdir().unwrap();
    let conf = softhsm_token(hsm.path());
    let dir = tempfile::tempdir().unwrap();
    let cfg = production(dir.path(), 365);
    let conf_s = conf.to_str().unwrap();
    let env = [("SOFTHSM2_CONF", conf_s), (PIN_VAR, PIN)];
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .envs(env)
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    keys(&[
        "add",
        "client1-prod",
        "--comp-id",
        "CLIENT1",
        "--account",
        "ACC-CLIENT1",
        "--allow",
        "10.0.0.0/8",
    ]);
    let cfg_arg = ["--config", cfg.to_str().unwrap()];
    let clock = clock_file(dir.path(), SYNCED);
    let (code, out) = preflight(&cfg_arg, &clock, &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS  no development keys in the key store"),
        "{out}"
    );
    // Without the PIN the store cannot be read: a FAIL saying so, not a pass.
    let (code, out) = preflight(&cfg_arg, &clock, &[("SOFTHSM2_CONF", conf_s)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        fails(&out).iter().any(|l| l.contains("key store readable")),
        "{out}"
    );
    keys(&[
        "add",
        "wide",
        "--comp-id",
        "CLIENT1",
        "--account",
        "*",
        "--allow",
        "10.0.0.0/8",
    ]);
    let (code, out) = preflight(&cfg_arg, &clock, &env);
    assert_eq!(code, 1, "{out}");
    let f = fails(&out);
    assert_eq!(f.len(), 1, "{out}");
    assert!(
        f[0].contains("any-account") && f[0].contains("wide"),
        "{out}"
    );
}
