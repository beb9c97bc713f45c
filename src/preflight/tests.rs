//! One test (at least) per checklist item, on configurations parsed like `--config` does.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const ACCOUNT: &str = r#"
[[account]]
name = "ACC1"
max_order_qty = 100
max_order_notional = 1000
collar_bps = 100
reference_max_age_ms = 60000
credit_limit = 10000
max_long = 100
max_short = 100
max_open_orders = 10
ord_types = ["limit"]
time_in_force = ["day"]
duplicate_window_ms = 0
max_msgs = 100
rate_period_ms = 1000
"#;

const SESSION: &str = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "C1"
default_account = "ACC1"
tier = "standard"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "fill"
"#;

const AUTH: &str = r#"
[auth]
key_store = "keys.store"
master_key = { provider = "pkcs11", module = "/usr/lib/softhsm/libsofthsm2.so", token_label = "t", pin_env = "PIN", key_label = "k" }
"#;

fn cfg(extra: &str) -> Config {
    let text = format!(
        "[gateway]\ndata_dir = \"/nonexistent/preflight\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n{SESSION}{ACCOUNT}{extra}"
    );
    match Config::parse(&text, "test.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn verdicts(checks: &[Check]) -> Vec<(Verdict, String)> {
    checks
        .iter()
        .map(|c| (c.verdict, c.concerns.clone()))
        .collect()
}

fn failed(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.concerns.clone())
        .collect()
}

#[test]
fn a_plaintext_listener_off_loopback_fails_naming_its_key() {
    let c = cfg(&format!(
        "{AUTH}[[listener]]\naddress = \"0.0.0.0:9000\"\nallow_plaintext = true\n"
    ));
    let checks = listeners_tls(&c);
    assert_eq!(
        verdicts(&checks),
        vec![
            (Verdict::Pass, "listener[0].tls".into()),
            (Verdict::Fail, "listener[1].tls".into())
        ]
    );
    assert!(checks[1].fix.contains("tls = {"));
    assert!(checks[1]
        .to_string()
        .starts_with("FAIL  TLS on FIX listener 0.0.0.0:9000"));
}

#[test]
fn tls12_allowances_fail() {
    let c = cfg("[[listener]]\naddress = \"127.0.0.1:1\"\ntls = { cert = \"c\", key = \"k\", tls12 = true }\n\
         [[listener]]\naddress = \"127.0.0.1:2\"\ntls = { cert = \"c\", key = \"k\" }\n");
    assert_eq!(failed(&tls13_only(&c)), vec!["listener[1].tls.tls12"]);
    let c = cfg("[siem]\naddress = \"127.0.0.1:6514\"\nca_file = \"ca.pem\"\ntls12 = true\n");
    assert_eq!(failed(&tls13_only(&c)), vec!["siem.tls12"]);
}

#[test]
fn internal_links_need_client_certificates() {
    let venue = |tls: &str| {
        format!(
            "[[venue]]\nname = \"X\"\nkind = \"fix\"\naddress = \"10.0.0.1:9000\"\nour_comp_id = \"A\"\ntheir_comp_id = \"B\"\n{tls}\n"
        )
    };
    let c = cfg(&venue(""));
    assert_eq!(failed(&mtls_internal(&c)), vec!["venue[1].tls"]);
    let c = cfg(&venue("tls = { ca = \"ca\", server_name = \"x\" }"));
    assert_eq!(failed(&mtls_internal(&c)), vec!["venue[1].tls"]);
    let c = cfg(&venue(
        "tls = { ca = \"ca\", cert = \"c\", key = \"k\", server_name = \"x\" }",
    ));
    assert!(failed(&mtls_internal(&c)).is_empty());
    let c = cfg("[siem]\naddress = \"127.0.0.1:6514\"\nca_file = \"ca.pem\"\n");
    assert_eq!(failed(&mtls_internal(&c)), vec!["siem.client_cert"]);
    let c = cfg("[siem]\naddress = \"127.0.0.1:6514\"\nca_file = \"ca.pem\"\nclient_cert = \"c\"\nclient_key = \"k\"\n");
    assert!(failed(&mtls_internal(&c)).is_empty());
}

#[test]
fn development_master_key_and_optional_auth_fail() {
    assert_eq!(failed(&auth_and_master_key(&cfg(""))), vec!["auth"]);
    let file = "[auth]\nkey_store = \"keys.store\"\nmaster_key = { provider = \"file\", path = \"m.key\" }\nrequired = false\n";
    assert_eq!(
        failed(&auth_and_master_key(&cfg(file))),
        vec!["auth.required", "auth.master_key.provider"]
    );
    let env =
        "[auth]\nkey_store = \"keys.store\"\nmaster_key = { provider = \"env\", var = \"MK\" }\n";
    assert_eq!(
        failed(&auth_and_master_key(&cfg(env))),
        vec!["auth.master_key.provider"]
    );
    assert!(failed(&auth_and_master_key(&cfg(AUTH))).is_empty());
}

#[test]
fn ops_port_needs_mfa_short_tokens_and_tls() {
    let ops = |body: &str| cfg(&format!("{AUTH}[ops]\n{body}\n"));
    let c = ops("tls = { cert = \"c\", key = \"k\" }\nmfa_required = false\njwt_lifetime_s = 600");
    assert_eq!(failed(&ops_port(&c)), vec!["ops.mfa_required"]);
    let c = ops("tls = { cert = \"c\", key = \"k\" }");
    assert!(failed(&ops_port(&c)).is_empty());
    let c = ops("plaintext = true");
    let checks = ops_port(&c);
    assert_eq!(checks[2].verdict, Verdict::Warn, "plaintext on loopback");
    // The config refuses a longer lifetime and a plaintext port off loopback; the checks
    // still judge a configuration built some other way.
    let mut c = ops("tls = { cert = \"c\", key = \"k\" }");
    if let Some(o) = c.ops.as_mut() {
        o.jwt_lifetime_s = 3600;
        o.plaintext = true;
        o.address = "10.1.1.1:9880".parse().unwrap_or(o.address);
    }
    assert_eq!(
        failed(&ops_port(&c)),
        vec!["ops.jwt_lifetime_s", "ops.plaintext"]
    );
    assert_eq!(ops_port(&cfg(""))[0].verdict, Verdict::Warn, "no ops port");
}

#[test]
fn sessions_without_tier_or_accounts_without_limits_fail() {
    let c = cfg("[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"C2\"\ndev_accounts = [\"*\"]\n");
    assert_eq!(
        failed(&limits_and_throttles(&c)),
        vec!["session[1].dev_accounts", "session[1].tier"]
    );
    assert!(failed(&limits_and_throttles(&cfg(""))).is_empty());
    let mut c = cfg("");
    c.accounts.clear();
    assert_eq!(
        failed(&limits_and_throttles(&c)),
        vec!["account", "session[0].default_account"]
    );
}

#[test]
fn the_clock_policy_must_halt_and_the_clock_must_be_within_its_limit() {
    assert_eq!(
        failed(&clock_policy(&cfg(""))),
        vec!["clock.on_divergence", "clock.unsynchronised_is_breach"]
    );
    let c = cfg("[clock]\non_divergence = \"halt\"\nunsynchronised_is_breach = true\nmax_divergence_us = 100\n");
    assert!(failed(&clock_policy(&c)).is_empty());
    let at = |synchronised, divergence_ns| ClockReading {
        synchronised,
        divergence_ns,
    };
    assert_eq!(
        clock_now(&c, &at(true, Some(99_999))).verdict,
        Verdict::Pass
    );
    assert_eq!(
        clock_now(&c, &at(true, Some(100_001))).verdict,
        Verdict::Fail
    );
    assert_eq!(clock_now(&c, &at(false, None)).verdict, Verdict::Fail);
    assert_eq!(clock_now(&c, &at(true, None)).verdict, Verdict::Fail);
}

#[test]
fn a_saved_clock_status_is_parsed_and_garbage_is_refused() {
    let r = parse_clock_status("sync: synchronised\ndivergence: 12.345 µs\nlimit: 100.000 µs\n");
    assert_eq!(
        r,
        Ok(ClockReading {
            synchronised: true,
            divergence_ns: Some(12_345)
        })
    );
    let r = parse_clock_status("sync: unsynchronised\ndivergence: unknown\n");
    assert_eq!(
        r,
        Ok(ClockReading {
            synchronised: false,
            divergence_ns: None
        })
    );
    assert!(parse_clock_status("sync: synchronised\n").is_err());
    assert!(parse_clock_status("sync: synchronised\ndivergence: 12 ms\n").is_err());
    assert!(parse_clock_status("sync: synchronised\ndivergence: x.1 µs\n").is_err());
}

#[test]
fn the_audit_trail_must_fail_closed_with_a_pinned_key() {
    assert_eq!(
        failed(&audit_trail(&cfg(""))),
        vec!["audit.on_full", "audit.public_key"],
        "no [auth]: on_full defaults to drop"
    );
    let key = "ab".repeat(32);
    let c = cfg(&format!("{AUTH}[audit]\npublic_key = \"{key}\"\n"));
    assert!(
        failed(&audit_trail(&c)).is_empty(),
        "auth.required: fail_closed by default"
    );
    let c = cfg(&format!(
        "{AUTH}[audit]\non_full = \"drop\"\npublic_key = \"{key}\"\n"
    ));
    assert_eq!(failed(&audit_trail(&c)), vec!["audit.on_full"]);
    let c = cfg("[audit]\nenabled = false\n");
    assert_eq!(failed(&audit_trail(&c)), vec!["audit.enabled"]);
}

#[test]
fn siem_must_be_configured_over_tls() {
    assert_eq!(siem(&cfg("")).verdict, Verdict::Fail);
    let c = cfg("[siem]\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"\n");
    assert_eq!(siem(&c).concerns, "siem.transport");
    assert_eq!(siem(&c).verdict, Verdict::Fail);
    let c = cfg("[siem]\naddress = \"127.0.0.1:6514\"\nca_file = \"ca.pem\"\n");
    assert_eq!(siem(&c).verdict, Verdict::Pass);
}

fn with_data(extra: &str, data: &Path) -> Config {
    let mut c = cfg(extra);
    c.gateway.data_dir = data.to_path_buf();
    c
}

#[test]
fn development_keys_and_any_account_grants_in_the_store_fail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let file_auth = "[auth]\nkey_store = \"keys.store\"\nmaster_key = { provider = \"file\", path = \"master.key\" }\n";
    let c = with_data(file_auth, &data);
    assert!(failed(&key_store(&c)).is_empty(), "no store yet");
    // What the embedded default creates: C1's development key.
    let dev = crate::auth::admin::ensure_dev_store(&c, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dev[0].id, "c1-dev");
    let checks = key_store(&c);
    assert_eq!(checks[0].verdict, Verdict::Fail);
    assert!(checks[0].item.contains("c1-dev"), "{}", checks[0]);
    assert_eq!(checks[1].verdict, Verdict::Pass);
    crate::auth::admin::revoke(&c, "c1-dev").unwrap_or_else(|e| panic!("{e}"));
    let spec = crate::auth::admin::KeySpec {
        comp_ids: vec!["C1".into()],
        role: "trader".into(),
        accounts: vec!["*".into()],
        allow: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    crate::auth::admin::add(&c, "prod1", &spec, 1).unwrap_or_else(|e| panic!("{e}"));
    let checks = key_store(&c);
    assert_eq!(
        checks[0].verdict,
        Verdict::Pass,
        "a revoked development key cannot log on: {}",
        checks[0]
    );
    assert_eq!(checks[1].verdict, Verdict::Fail);
    assert!(checks[1].item.contains("prod1"), "{}", checks[1]);
}

#[test]
fn the_development_admin_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let c = with_data("", &data);
    assert_eq!(operator_store(&c).verdict, Verdict::Pass);
    crate::files::private_dir(&data.join("secrets")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(data.join("secrets/ops-admin.password"), "pw").unwrap_or_else(|e| panic!("{e}"));
    let check = operator_store(&c);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.fix.contains("users remove admin"), "{check}");
}

#[test]
fn certificates_near_expiry_fail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = crate::tls::dev::DevCa::generate("ca").unwrap_or_else(|e| panic!("{e}"));
    let now = 1_900_000_000;
    let day = 86_400;
    let pair = |name: &str, days: i64| {
        let (c, k) = ca
            .issue_server(&["localhost"], now - day, now + days * day)
            .unwrap_or_else(|e| panic!("{e}"));
        crate::tls::dev::write_pair(dir.path(), name, &c, &k).unwrap_or_else(|e| panic!("{e}"))
    };
    let (long, short) = (pair("long", 31), pair("short", 29));
    let c = cfg(&format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\ntls = {{ cert = {:?}, key = {:?} }}\n\
         [[listener]]\naddress = \"127.0.0.1:2\"\ntls = {{ cert = {:?}, key = {:?} }}\n\
         [[listener]]\naddress = \"127.0.0.1:3\"\ntls = {{ cert = \"/nonexistent.pem\", key = \"k\" }}\n",
        long.cert, long.key, short.cert, short.key
    ));
    assert_eq!(
        verdicts(&cert_expiry(&c, now)),
        vec![
            (Verdict::Pass, "listener[1].tls.cert".into()),
            (Verdict::Fail, "listener[2].tls.cert".into()),
            (Verdict::Fail, "listener[3].tls.cert".into()),
        ]
    );
}

#[test]
fn open_data_folders_and_secret_files_fail() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let c = with_data(AUTH, &data);
    assert_eq!(
        failed(&permissions(&c)),
        vec!["gateway.data_dir"],
        "missing"
    );
    crate::files::private_dir(&data).unwrap_or_else(|e| panic!("{e}"));
    crate::files::write_private(&data.join("keys.store"), b"x").unwrap_or_else(|e| panic!("{e}"));
    assert!(failed(&permissions(&c)).is_empty());
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    chmod(&data.join("keys.store"), 0o644);
    let checks = permissions(&c);
    assert_eq!(failed(&checks), vec!["auth.key_store"]);
    assert!(checks.iter().any(|c| c.fix.starts_with("chmod 600")));
    chmod(&data, 0o755);
    assert_eq!(
        failed(&permissions(&c)),
        vec!["gateway.data_dir", "auth.key_store"]
    );
}

#[test]
fn every_item_runs_and_one_failure_is_enough() {
    let c = cfg("");
    let clock = ClockReading {
        synchronised: true,
        divergence_ns: Some(1),
    };
    let checks = run_checks(&c, &clock, 0);
    assert!(checks.iter().any(|c| c.verdict == Verdict::Fail));
    for key in ["auth", "clock.on_divergence", "siem", "audit.public_key"] {
        assert!(failed(&checks).iter().any(|k| k == key), "{key}");
    }
}

/// `(file, test)` for every `` `path.rs::name` `` reference in a document.
fn test_references(doc: &str) -> Vec<(String, String)> {
    doc.split('`')
        .filter_map(|span| {
            let (file, name) = span.split_once("::")?;
            let named = file.ends_with(".rs")
                && (file.starts_with("tests/") || file.starts_with("src/"))
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            named.then(|| (file.to_string(), name.to_string()))
        })
        .collect()
}

/// Whether `source` defines a test function `name` (a `#[test]` within the few lines above it).
fn defines_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    lines.iter().enumerate().any(|(i, l)| {
        l.trim_start().starts_with(&format!("fn {name}("))
            && lines[i.saturating_sub(4)..i]
                .iter()
                .any(|a| a.trim() == "#[test]")
    })
}

#[test]
fn compliance_matrix_names_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/compliance.md"))
        .unwrap_or_else(|e| panic!("docs/compliance.md: {e}"));
    let refs = test_references(&doc);
    assert!(refs.len() >= 60, "only {} test references", refs.len());
    let mut missing = Vec::new();
    for (file, name) in &refs {
        let source = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        if !defines_test(&source, name) {
            missing.push(format!("{file}::{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "named tests that do not exist: {missing:?}"
    );
    // Every clause the matrix must cover has its row.
    for clause in [
        "| (c)(1)(i) |",
        "| (c)(1)(ii) |",
        "| (c)(2)(i) |",
        "| (c)(2)(ii) |",
        "| (c)(2)(iii) |",
        "| (c)(2)(iv) |",
        "| (d) |",
        "| (e) |",
    ]
    .into_iter()
    .map(String::from)
    .chain((12..=20).map(|a| format!("| Art {a} |")))
    .chain((1..=4).map(|a| format!("| Art {a} |")))
    {
        assert!(doc.contains(&clause), "no row {clause:?}");
    }
}

#[test]
fn the_matrix_check_catches_a_missing_test() {
    let doc = "x `src/preflight/tests.rs::siem_must_be_configured_over_tls` and \
               `src/preflight/tests.rs::no_such_test` and `tests/it/nope.rs::x`";
    let refs = test_references(doc);
    assert_eq!(refs.len(), 3);
    let source = include_str!("tests.rs");
    assert!(defines_test(source, &refs[0].1));
    assert!(!defines_test(source, &refs[1].1));
    // A helper that is not a #[test] does not count.
    assert!(!defines_test(source, "failed"));
}
