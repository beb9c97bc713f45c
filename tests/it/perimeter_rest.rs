//! Data at rest (issue 13): file and folder modes under a permissive umask, key store and
//! master key permissions, key store rollback, concurrent `keys` commands, rotation policy
//! (AUTH-9). Each attack is sent as the attacker would, and the legitimate client still logs
//! on and trades.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use portcullis::clock::Clock;

use crate::util::{config, config_text, field, nos, now_utc, sim, spawn_run, Client, SESSIONS};

const DAY_MS: u64 = 86_400_000;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A data folder and a config file (outside it) with a file-master-key `[auth]` section.
struct Env {
    dir: tempfile::TempDir,
    outside: tempfile::TempDir,
    cfg_path: PathBuf,
    extra: String,
}

impl Env {
    fn new(auth_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let extra = format!(
            "{SESSIONS}{}[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\npoll_ms = 50\nlockout_failures = 1000\n{auth_extra}\n",
            sim("fill")
        );
        let cfg_path = outside.path().join("portcullis.toml");
        std::fs::write(&cfg_path, config_text(dir.path(), &extra)).unwrap();
        Env {
            dir,
            outside,
            cfg_path,
            extra,
        }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    /// `portcullis keys ARGS --config ...`: (success, stdout, stderr).
    fn keys(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin())
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&self.cfg_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn keys_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.keys(args);
        assert!(ok, "keys {args:?} failed: {err}");
        out
    }

    /// `keys add ID --comp-id COMP --allow 127.0.0.0/8 --secret-out FILE`: the secret bytes.
    fn add(&self, id: &str, comp: &str) -> Vec<u8> {
        let path = self.outside.path().join(format!("{id}.secret"));
        self.keys_ok(&[
            "add",
            id,
            "--comp-id",
            comp,
            "--allow",
            "127.0.0.0/8",
            "--secret-out",
            path.to_str().unwrap(),
        ]);
        read_secret(&path)
    }

    fn rotate(&self, id: &str) -> Vec<u8> {
        let path = self.outside.path().join(format!("{id}.rotated"));
        self.keys_ok(&["rotate", id, "--secret-out", path.to_str().unwrap()]);
        read_secret(&path)
    }

    /// Starts the gateway in this process on the same data folder.
    fn start(&self) -> Result<portcullis::gateway::Running, String> {
        portcullis::gateway::start(&config(self.data(), &self.extra), Clock::fast())
            .map_err(|e| e.to_string())
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.data().join("events.log")).unwrap_or_default()
    }

    fn wait_event(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let e = self.events();
            if let Some(line) = e.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no event {needle:?} in:\n{}", self.events());
    }
}

fn read_secret(path: &Path) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(std::fs::read_to_string(path).unwrap().trim())
        .unwrap()
}

/// The legitimate client: a signed logon as CLIENT1 with `key`, one order filled.
fn logs_on_and_trades(addr: std::net::SocketAddr, key: &str, secret: &[u8], cl: &str) {
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon(key, secret);
    traded(&mut c, cl);
}

/// One order accepted and filled (the simulated venue fills), then a clean logout.
fn traded(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "100", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"));
    c.logout();
}

/// A signed Logon as CLIENT1 with `key` is refused: no Logon answer, the connection ends.
fn logon_refused(addr: std::net::SocketAddr, key: &str, secret: &[u8]) {
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    let m = c.signed_logon_bytes(key, secret, now_utc());
    c.send_raw(&m);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match c.recv_timeout(Duration::from_millis(200)) {
            Some(m) => assert_ne!(
                field(&m, 35).as_deref(),
                Some("A"),
                "logon with {key} must be refused"
            ),
            None => {
                if c.closed_within(Duration::from_millis(10)) {
                    return;
                }
            }
        }
    }
    panic!("the connection of a refused logon stays open");
}

/// Waits (5 s at most) until a logon with `key` is refused (a key change reaches the gateway
/// within `auth.poll_ms`).
fn wait_refused(addr: std::net::SocketAddr, key: &str, secret: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
        let m = c.signed_logon_bytes(key, secret, now_utc());
        c.send_raw(&m);
        match c.recv_timeout(Duration::from_secs(2)) {
            Some(a) if field(&a, 35).as_deref() == Some("A") => c.logout(),
            _ => return,
        }
        assert!(Instant::now() < deadline, "{key} still logs on");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every folder under (and including) `root` is 0700, every file and socket 0600.
fn assert_private_tree(root: &Path) -> usize {
    let mut seen = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // removed meanwhile (a temporary name renamed away)
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "folder {} is {mode:04o}", p.display());
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            assert_eq!(mode, 0o600, "file {} is {mode:04o}", p.display());
        }
        seen += 1;
    }
    seen
}

fn names_under(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        v.push(p.strip_prefix(root).unwrap().display().to_string());
    }
    v
}

/// `sh -c 'umask 000; exec portcullis ARGS'`.
fn under_umask_000(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(bin())
        .args(args);
    c
}

fn ctl(data: &Path, args: &[&str]) {
    let out = Command::new(bin())
        .arg("ctl")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn under_umask_000_the_binary_keeps_every_file_0600_and_every_folder_0700() {
    let env = Env::new("");
    // The data folder exists already, open to everyone: ours, so it is tightened.
    std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = env.cfg_path.to_str().unwrap();
    let secret_out = env.outside.path().join("k1.secret");
    let out = under_umask_000(&[
        "keys",
        "add",
        "k1",
        "--comp-id",
        "CLIENT1",
        "--allow",
        "127.0.0.1",
        "--secret-out",
        secret_out.to_str().unwrap(),
        "--config",
        cfg,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = read_secret(&secret_out);
    let (mut child, lines, addr) =
        spawn_run(under_umask_000(&["run", "--config", cfg]).stderr(Stdio::null()));
    std::thread::spawn(move || for _ in lines {});
    logs_on_and_trades(addr, "k1", &secret, "U1");
    // Control socket, its audit log and the risk switches file.
    ctl(
        env.data(),
        &[
            "kill",
            "--account",
            "ACC2",
            "--by",
            "test",
            "--reason",
            "modes",
        ],
    );
    ctl(
        env.data(),
        &[
            "unkill",
            "--account",
            "ACC2",
            "--by",
            "test",
            "--reason",
            "modes",
        ],
    );
    let running = names_under(env.data());
    for expect in [
        "keys.store",
        "master.key",
        "events.log",
        "control.sock",
        "control-audit.log",
        "risk-switches.state",
        "journal",
        "records",
        "sessions",
    ] {
        assert!(
            running.iter().any(|n| n == expect),
            "{expect} in {running:?}"
        );
    }
    assert_private_tree(env.data());
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let n = assert_private_tree(env.data());
    assert!(n > 12, "{:?}", names_under(env.data()));
    assert_eq!(
        std::fs::metadata(&secret_out).unwrap().permissions().mode() & 0o777,
        0o600,
        "--secret-out writes 0600 too"
    );
}

#[test]
fn under_umask_000_gateway_start_in_process_creates_private_files_and_tightens_ours() {
    let dir = tempfile::tempdir().unwrap();
    // Left over from an older version: a loose data folder and event log.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("events.log"), b"").unwrap();
    std::fs::set_permissions(
        dir.path().join("events.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let old_records = dir.path().join("records");
    std::fs::create_dir(&old_records).unwrap();
    std::fs::set_permissions(&old_records, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(old_records.join("orders-20250101.jsonl"), b"{}\n").unwrap();
    std::fs::set_permissions(
        old_records.join("orders-20250101.jsonl"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // SAFETY: umask(2) takes and returns an integer. Process-wide: other tests of this binary
    // may create looser files meanwhile, which only makes their own files less private.
    #[allow(unsafe_code)]
    let old = unsafe { libc::umask(0) };
    let started = portcullis::gateway::start(
        &config(dir.path(), &format!("{SESSIONS}{}", sim("fill"))),
        Clock::fast(),
    );
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(old);
    }
    let running = started.unwrap();
    let addr = running.handle.listen_addrs[0];
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    traded(&mut c, "L1");
    assert_private_tree(dir.path());
    running.stop();
    assert_private_tree(dir.path());
}

/// `portcullis run --config CFG` must fail (within 10 s) with stderr naming `file`.
fn run_refused(env: &Env, file: &str) {
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&env.cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "{err}");
            assert!(err.contains(file) && err.contains("chmod 600"), "{err}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started with {file} open to others");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_store_or_master_key_readable_by_others_stops_start_and_the_keys_cli() {
    let env = Env::new("");
    let secret = env.add("k1", "CLIENT1");
    for file in ["keys.store", "master.key"] {
        let p = env.data().join(file);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        run_refused(&env, file);
        let (ok, _, err) = env.keys(&["list"]);
        assert!(
            !ok && err.contains(file) && err.contains("chmod 600"),
            "{err}"
        );
        let (ok, _, err) = env.keys(&["add", "k2", "--comp-id", "CLIENT2", "--allow", "127.0.0.1"]);
        assert!(!ok && err.contains(file), "{err}");
        // Group-readable is refused too.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        run_refused(&env, file);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Fixed as the error says: the real client logs on and trades.
    let running = env.start().unwrap();
    logs_on_and_trades(running.handle.listen_addrs[0], "k1", &secret, "P1");
    assert!(
        !env.keys_ok(&["list"]).contains("k2"),
        "the refused add wrote nothing"
    );
}

#[test]
fn an_old_key_store_copied_back_is_refused_live_and_after_a_restart() {
    let env = Env::new("");
    let good = env.add("good", "CLIENT1");
    let stolen = env.add("stolen", "CLIENT1");
    let store = env.data().join("keys.store");
    let before_revoke = std::fs::read(&store).unwrap();
    let running = env.start().unwrap();
    let addr = running.handle.listen_addrs[0];
    logs_on_and_trades(addr, "stolen", &stolen, "R0");
    env.keys_ok(&["revoke", "stolen"]);
    wait_refused(addr, "stolen", &stolen);
    // The attack: the copy from before the revocation is put back (same master key, valid
    // authentication tag, older generation).
    let tmp = env.data().join("copy");
    std::fs::write(&tmp, &before_revoke).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &store).unwrap();
    let line = env.wait_event("key-store-refused");
    assert!(
        line.contains("rollback") && line.contains("generation=2"),
        "{line}"
    );
    assert!(
        running
            .handle
            .counters
            .get(portcullis::monitor::Counter::KeyStoreRefusals)
            >= 1
    );
    // Give the watcher more polls: the revoked key stays revoked.
    std::thread::sleep(Duration::from_millis(300));
    logon_refused(addr, "stolen", &stolen);
    logs_on_and_trades(addr, "good", &good, "R1");
    // The keys CLI refuses it too (it would otherwise write the revived key back, newer).
    let (ok, _, err) = env.keys(&["list"]);
    assert!(!ok && err.contains("older than generation 3"), "{err}");
    let (ok, _, _) = env.keys(&["unlock", "good"]);
    assert!(!ok);
    running.stop();
    // A restart refuses it: the generation mark outlives the process.
    let e = env
        .start()
        .err()
        .expect("a rolled-back store must not start");
    assert!(
        e.contains("older than generation 3") && e.contains("keys.store.generation"),
        "{e}"
    );
    // Deleting the mark is the documented way to accept an old store on purpose.
    std::fs::remove_file(env.data().join("keys.store.generation")).unwrap();
    let running = env.start().unwrap();
    logs_on_and_trades(running.handle.listen_addrs[0], "good", &good, "R2");
}

#[test]
fn eight_concurrent_keys_add_processes_all_land() {
    let env = Env::new("");
    env.add("first", "CLIENT1");
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(bin())
                .args(["keys", "add", &format!("c{i}"), "--comp-id", "CLIENT2"])
                .args(["--allow", "127.0.0.1", "--config"])
                .arg(&env.cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = env.keys_ok(&["list"]);
    for i in 0..8 {
        assert!(list.contains(&format!("c{i} ")), "c{i} lost:\n{list}");
    }
    let mark = std::fs::read_to_string(env.data().join("keys.store.generation")).unwrap();
    assert_eq!(mark.trim(), "9", "one generation per write");
    let leftovers: Vec<_> = names_under(env.data())
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Moves key `id`'s creation `days` into the past, as if it had been made then (the store is
/// rewritten through the library, under the master key, like `keys` would).
fn backdate(env: &Env, id: &str, days: u64) {
    let provider = portcullis::auth::provider::ProviderCfg::File {
        path: env.data().join("master.key"),
    };
    let store =
        portcullis::auth::store::KeyStore::open(&env.data().join("keys.store"), &provider, false)
            .unwrap();
    let _lock = store.lock().unwrap();
    let mut file = store.load().unwrap();
    let k = file.find_mut(id).unwrap();
    k.created_ms -= days * DAY_MS;
    store.save(&file).unwrap();
}

fn list_row(list: &str, id: &str) -> Vec<String> {
    list.lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("{id} in {list}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_key_past_its_maximum_age_is_refused_warned_before_and_rotate_resets_its_age() {
    let env = Env::new("max_key_age_days = 30\nkey_age_warning_days = 10\n");
    let old = env.add("old", "CLIENT1");
    let aging = env.add("aging", "CLIENT1");
    let fresh = env.add("fresh", "CLIENT1");
    backdate(&env, "old", 31);
    backdate(&env, "aging", 25);
    let list = env.keys_ok(&["list"]);
    assert!(
        list.contains("AGE (D)") && list.contains("LEFT (D)"),
        "{list}"
    );
    let row = list_row(&list, "old");
    assert_eq!(
        (row[2].as_str(), row[4].as_str(), row[5].as_str()),
        ("too-old", "31", "0"),
        "{list}"
    );
    let row = list_row(&list, "aging");
    assert_eq!(
        (row[2].as_str(), row[4].as_str(), row[5].as_str()),
        ("active", "25", "5"),
        "{list}"
    );
    assert_eq!(list_row(&list, "fresh")[4], "0");

    let running = env.start().unwrap();
    let addr = running.handle.listen_addrs[0];
    let line = env.wait_event("key-aging key=\"aging\"");
    assert!(line.contains("age-days=25 days-left=5"), "{line}");
    let line = env.wait_event("key-aging key=\"old\"");
    assert!(line.contains("state=expired"), "{line}");
    assert!(!env.events().contains("key-aging key=\"fresh\""));
    logon_refused(addr, "old", &old);
    env.wait_event("cause=\"key too old");
    // Keys inside the warning window still work; so does the fresh one.
    logs_on_and_trades(addr, "aging", &aging, "A1");
    logs_on_and_trades(addr, "fresh", &fresh, "A2");

    // Rotation starts the age again; the too-old secret gets no overlap.
    let rotated = env.rotate("old");
    let row = list_row(&env.keys_ok(&["list"]), "old");
    assert_eq!(
        (row[2].as_str(), row[4].as_str(), row[5].as_str()),
        ("active", "0", "30")
    );
    assert!(env
        .keys_ok(&["show", "old"])
        .contains("age:       0 days (30 days left)"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
        let m = c.signed_logon_bytes("old", &rotated, now_utc());
        c.send_raw(&m);
        if let Some(a) = c.recv_timeout(Duration::from_secs(2)) {
            if field(&a, 35).as_deref() == Some("A") {
                traded(&mut c, "A3");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the rotated key never logged on");
        std::thread::sleep(Duration::from_millis(100));
    }
    logon_refused(addr, "old", &old);
}
