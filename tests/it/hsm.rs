//! The key store with its master key in an HSM: SoftHSM2 through PKCS#11, a token initialised
//! in a temporary folder. Needs the softhsm2 package; `.ci/run` installs it and runs these.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

const PIN_VAR: &str = "PORTCULLIS_TEST_HSM_PIN";
const PIN: &str = "26491";

fn module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libsofthsm2.so (apt-get install softhsm2)")
}

/// A SoftHSM2 configuration and an initialised token `portcullis` under `dir`.
fn token(dir: &Path) -> PathBuf {
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

fn hsm_auth() -> String {
    format!(
        "[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"pkcs11\", module = {:?}, token_label = \"portcullis\", pin_env = \"{PIN_VAR}\" }}\npoll_ms = 50\n",
        module().display().to_string()
    )
}

#[test]
#[ignore = "needs softhsm2; run by .ci/run"]
fn hsm_backed_key_store_round_trips_and_the_master_key_never_leaves_the_token() {
    let hsm = tempfile::tempdir().unwrap();
    let conf = token(hsm.path());
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let extra = format!("{SESSIONS}{}{}", sim("fill"), hsm_auth());
    let cfg_path = secrets.path().join("portcullis.toml");
    std::fs::write(&cfg_path, config_text(dir.path(), &extra)).unwrap();
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env("SOFTHSM2_CONF", &conf)
            .env(PIN_VAR, PIN)
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&cfg_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first `keys add` generates the AES master key inside the token and wraps the
    // store's data key with it.
    let secret_file = secrets.path().join("k1.secret");
    let (ok, _, err) = keys(&[
        "add",
        "k1",
        "--comp-id",
        "CLIENT1",
        "--allow",
        "127.0.0.1",
        "--secret-out",
        secret_file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, list, err) = keys(&["list"]);
    assert!(ok && list.contains("k1"), "{err}");
    // Without the PIN the store does not open.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env("SOFTHSM2_CONF", &conf)
        .env_remove(PIN_VAR)
        .args(["keys", "list", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(PIN_VAR));

    // The gateway binary opens the store through the token and verifies a signed logon.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env("SOFTHSM2_CONF", &conf)
        .env(PIN_VAR, PIN)
        .args(["run", "--config"])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    {
        use std::io::Read;
        let mut stdout = child.stdout.take().unwrap();
        let mut b = [0u8; 1];
        while stdout.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
            first.push(b[0]);
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
    }
    let first = String::from_utf8(first).unwrap();
    let addr: std::net::SocketAddr = first
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("gateway did not start: {first}"));
    let secret = portcullis::auth::admin::read_secret_file(&secret_file).unwrap();
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("H1", "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"), "filled");
    c.logout();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());

    // In this process: the master key is an AES key the token will not export.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    std::env::set_var(PIN_VAR, PIN);
    let cfg = portcullis::config::Config::load(&cfg_path).unwrap();
    let provider = cfg.auth.as_ref().unwrap().provider(dir.path()).unwrap();
    let master = portcullis::auth::provider::MasterKey::open(&provider, false).unwrap();
    let portcullis::auth::provider::MasterKey::Pkcs11(token) = &master else {
        panic!("not the pkcs11 provider");
    };
    assert_eq!(
        token.key_protection().unwrap(),
        (false, true),
        "(extractable, sensitive)"
    );
    // A store written under another token's key is refused.
    let store = dir.path().join("keys.store");
    let mut bytes = std::fs::read(&store).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&store, &bytes).unwrap();
    let (ok, _, err) = keys(&["list"]);
    assert!(!ok && err.contains("does not unwrap"), "{err}");
}
