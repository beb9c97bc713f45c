//! `fixclient --tls` against an in-process gateway with an mTLS listener (the development PKI
//! of the embedded default): a full order over TLS 1.3, SPKI pinning (a mismatch refuses with
//! a clear message), and the gateway's refusal of a client without a certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::process::Command;

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::gateway::Running;
use portcullis::tls::dev::DevPki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

struct Gw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    running: Running,
    tls_addr: SocketAddr,
    pki: DevPki,
    #[allow(dead_code)] // held for its Drop, which deletes the data folder
    dir: tempfile::TempDir,
}

fn gateway() -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nmax_orders = 4096\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"CLIENT1\"\ndefault_account = \"ACC1\"\n\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"fill\"\n\n{}",
        dir.path().display().to_string(),
        portcullis::config::risk::permissive_toml(&["ACC1"], &["AAPL"]),
    );
    let mut cfg = Config::parse(&text, "test.toml").unwrap();
    let (pki, created) =
        portcullis::tls::dev::add_dev_listener(&mut cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(created);
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let tls_addr = running.handle.listen_addrs[1];
    Gw {
        running,
        tls_addr,
        pki,
        dir,
    }
}

fn server_pin(gw: &Gw) -> String {
    let der = CertificateDer::from_pem_file(&gw.pki.server_cert).unwrap();
    portcullis::tls::hex(&portcullis::tls::spki_sha256(&der).unwrap())
}

fn fixclient(gw: &Gw, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args(["--connect", &gw.tls_addr.to_string(), "--sender", "CLIENT1"])
        .args(["--target", "GW", "--timeout-ms", "3000", "--reset"])
        .args(args)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("--- stdout\n{o}--- stderr\n{e}");
    (out.status.code().unwrap_or(-1), o, e)
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[test]
fn order_over_mtls_with_the_right_pin() {
    let gw = gateway();
    let pin = server_pin(&gw);
    let (code, out, _) = fixclient(
        &gw,
        &[
            "--tls",
            "--ca",
            &path(&gw.pki.ca),
            "--cert",
            &path(&gw.pki.client_cert),
            "--key",
            &path(&gw.pki.client_key),
            "--pin-spki",
            &pin,
            "order",
            "--symbol",
            "AAPL",
            "--side",
            "buy",
            "--qty",
            "100",
            "--price",
            "10.5",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("TLS: TLS 1.3"), "{out}");
    assert!(out.contains(&pin), "prints the server's pin: {out}");
    assert!(out.contains("filled 1"), "{out}");
}

#[test]
fn a_pin_mismatch_refuses_to_proceed() {
    let gw = gateway();
    let wrong = "ab".repeat(32);
    let (code, out, err) = fixclient(
        &gw,
        &[
            "--tls",
            "--ca",
            &path(&gw.pki.ca),
            "--cert",
            &path(&gw.pki.client_cert),
            "--key",
            &path(&gw.pki.client_key),
            "--pin-spki",
            &wrong,
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("does not match the pinned") && err.contains(&wrong),
        "{err}"
    );
    assert!(
        !out.contains("Logon"),
        "nothing sent after a pin mismatch: {out}"
    );
    // The pin alone (no CA) is enough trust when it matches.
    let (code, _, err) = fixclient(
        &gw,
        &[
            "--tls",
            "--pin-spki",
            &server_pin(&gw),
            "--cert",
            &path(&gw.pki.client_cert),
            "--key",
            &path(&gw.pki.client_key),
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn without_a_client_certificate_the_gateway_refuses() {
    let gw = gateway();
    let (code, _, err) = fixclient(&gw, &["--tls", "--ca", &path(&gw.pki.ca)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("TLS") && err.contains("CertificateRequired"),
        "{err}"
    );
}

#[test]
fn tls_options_without_tls_or_trust_are_usage_errors() {
    let gw = gateway();
    let (code, _, err) = fixclient(&gw, &["--ca", &path(&gw.pki.ca)]);
    assert_eq!(code, 2);
    assert!(err.contains("need --tls"), "{err}");
    let (code, _, err) = fixclient(&gw, &["--tls"]);
    assert_eq!(code, 2);
    assert!(err.contains("--ca") && err.contains("--pin-spki"), "{err}");
    let (code, _, err) = fixclient(&gw, &["--tls", "--pin-spki", "xyz"]);
    assert_eq!(code, 2);
    assert!(err.contains("64 hexadecimal"), "{err}");
}
