//! The `portcullis` command line: config validation errors name the key; the embedded default
//! starts with no file and prints a working client command.

use std::process::Command;

use crate::util::*;

#[test]
fn check_config_names_the_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\nmax_orders = 0\n[[listener]]\naddress = \"127.0.0.1:0\"\n[[venue]]\nname = \"S\"\nkind = \"sim\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.max_orders"), "{err}");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[gateway]\nbusy_pol = true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "run refuses a bad file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy_pol"));
    let good = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/portcullis.example.toml"
        ))
        .output()
        .unwrap();
    assert!(good.status.success());
}

#[test]
fn embedded_default_starts_and_prints_how_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, addr) = crate::util::spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path()),
    );
    let mut hint = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("fixclient") {
            hint = line;
            break;
        }
    }
    assert!(
        hint.contains(&format!("--connect {addr}")) && hint.contains("--sender CLIENT1"),
        "{hint}"
    );
    // The embedded default requires signed logons: the hint names the development key and
    // the file its secret was written to.
    let word_after = |flag: &str| {
        let mut w = hint.split_whitespace();
        w.by_ref().find(|x| *x == flag);
        w.next()
            .unwrap_or_else(|| panic!("{flag} in {hint}"))
            .to_string()
    };
    let key_id = word_after("--key-id");
    let secret = portcullis::auth::admin::read_secret_file(std::path::Path::new(&word_after(
        "--secret-file",
    )))
    .unwrap();
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "PORTCULLIS");
    c.signed_logon(&key_id, &secret);
    c.send("D", &nos("E1", "AAPL", "1", "100", Some("10.5")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(
        field(&c.expect("8"), 39).as_deref(),
        Some("2"),
        "the default venue fills"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    c.expect("5");
    std::thread::spawn(move || for _ in lines {});
    assert!(child.wait().unwrap().success());
}
