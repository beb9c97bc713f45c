//! The ops status port (issue 14) over real HTTPS: a gateway with `[auth]` and `[ops]`,
//! operators made with the real `portcullis users` CLI, a rustls HTTPS client (ureq), FIX
//! clients with signed logons for the orders a kill must cancel.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// A gateway with the ops port, its operators and an HTTPS client that trusts its CA.
struct Ops {
    env: KeyEnv,
    gw: Option<Gw>,
    pki: tempfile::TempDir,
    agent: ureq::Agent,
    /// The last TOTP step used by each operator (a step is accepted once).
    steps: std::collections::HashMap<String, u64>,
    secrets: std::collections::HashMap<String, (String, String)>,
    /// The secret of key `k1` (CLIENT1; the gateway needs a key store to start).
    k1: Vec<u8>,
}

/// A response: status, headers we check, JSON body (or the text in `{"text": ...}`).
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    text: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn now_s() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000_000
}

const OPS_SESSIONS: &str = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT2"
default_account = "ACC2"
"#;

impl Ops {
    /// `ops_extra`: more `[ops]` keys.
    fn new(ops_extra: &str) -> Ops {
        Ops::with_venues(ops_extra, &sim("ack"))
    }

    /// [`Ops::new`] with these `[[venue]]` sections instead of one acknowledging simulator.
    fn with_venues(ops_extra: &str, venues: &str) -> Ops {
        let pki = tempfile::tempdir().unwrap();
        let (p, _) = portcullis::tls::dev::DevPki::ensure(pki.path(), "CLIENT1").unwrap();
        let after = format!(
            "[ops]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n{ops_extra}\n\n",
            p.server_cert.display().to_string(),
            p.server_key.display().to_string()
        );
        let env = KeyEnv::new(&format!("{OPS_SESSIONS}{venues}"), &after);
        let k1 = env.add("k1", "CLIENT1", &[]);
        let ca = std::fs::read(&p.ca).unwrap();
        let ca = ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Ops {
            env,
            gw: None,
            pki,
            agent,
            steps: Default::default(),
            secrets: Default::default(),
            k1,
        }
    }

    fn start(mut self) -> Ops {
        self.gw = Some(self.env.start());
        self
    }

    fn gw(&self) -> &Gw {
        self.gw.as_ref().unwrap()
    }

    fn base(&self) -> String {
        format!(
            "https://127.0.0.1:{}",
            self.gw().running.ops.as_ref().unwrap().addr.port()
        )
    }

    fn addr(&self) -> SocketAddr {
        self.gw().running.ops.as_ref().unwrap().addr
    }

    fn users_raw(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("users")
            .args(args)
            .arg("--config")
            .arg(&self.env.cfg_path)
            .output()
            .unwrap()
    }

    /// Adds an operator with the real CLI; remembers its password and TOTP secret.
    fn user(&mut self, name: &str, role: &str) {
        let pw = self.env.secrets.path().join(format!("{name}.pw"));
        let totp = self.env.secrets.path().join(format!("{name}.totp"));
        let out = self.users_raw(&[
            "add",
            name,
            "--role",
            role,
            "--password-out",
            pw.to_str().unwrap(),
            "--totp-out",
            totp.to_str().unwrap(),
            "--no-qr",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let uri = std::fs::read_to_string(&totp).unwrap();
        let secret = portcullis::ops::users::secret_of_uri(&uri).unwrap();
        self.secrets
            .insert(name.into(), (std::fs::read_to_string(&pw).unwrap(), secret));
    }

    /// A TOTP code this operator has not used yet (waits for the next step if needed).
    fn fresh_code(&mut self, name: &str) -> String {
        let secret = self.secrets[name].1.clone();
        loop {
            let now = now_s() / 30;
            // Never the previous step: a step boundary passing before the server checks the
            // code would take it out of the ±1 window.
            let step = self.steps.get(name).map_or(now, |s| (s + 1).max(now));
            if step <= now + 1 {
                self.steps.insert(name.into(), step);
                return portcullis::ops::users::totp_code(&secret, step * 30).unwrap();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Got {
        let url = format!("{}{path}", self.base());
        let auth = token.map(|t| format!("Bearer {t}"));
        let r = match (method, body) {
            ("GET", _) => {
                let mut rq = self.agent.get(&url);
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq.call()
            }
            (_, b) => {
                let mut rq = self.agent.post(&url);
                if let Some(a) = &auth {
                    rq = rq.header("Authorization", a);
                }
                rq.header("Content-Type", "application/json")
                    .send(b.map(|b| b.to_string()).unwrap_or_default())
            }
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Got {
            status,
            headers,
            body,
            text,
        }
    }

    fn get(&self, path: &str, token: &str) -> Got {
        self.call("GET", path, Some(token), None)
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Got {
        self.call("POST", path, Some(token), Some(body))
    }

    fn login_with(&self, name: &str, password: &str, totp: Option<&str>) -> Got {
        let mut b = json!({ "user": name, "password": password });
        if let Some(t) = totp {
            b["totp"] = json!(t);
        }
        self.call("POST", "/api/v1/login", None, Some(b))
    }

    /// Logs in with the operator's password and a fresh TOTP code; the token.
    fn login(&mut self, name: &str) -> String {
        let code = self.fresh_code(name);
        let pw = self.secrets[name].0.clone();
        let g = self.login_with(name, &pw, Some(&code));
        assert_eq!(g.status, 200, "login {name}: {}", g.text);
        g.body["token"].as_str().unwrap().to_string()
    }

    fn data(&self) -> PathBuf {
        self.gw().dir.path().to_path_buf()
    }
}

fn assert_security_headers(g: &Got, what: &str) {
    assert_eq!(
        g.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains"),
        "{what}"
    );
    assert_eq!(
        g.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(g.header("cache-control"), Some("no-store"), "{what}");
}

#[test]
fn login_needs_totp_for_privileged_roles_and_a_code_is_accepted_once() {
    let mut o = Ops::new("");
    o.user("alice", "admin");
    o.user("victor", "viewer");
    let mut o = o.start();
    let pw = o.secrets["alice"].0.clone();
    // No code: refused for an admin, and says why.
    let g = o.login_with("alice", &pw, None);
    assert_eq!(g.status, 401, "{}", g.text);
    assert!(
        g.body["error"].as_str().unwrap().contains("TOTP"),
        "{}",
        g.text
    );
    assert_security_headers(&g, "401");
    // Wrong password, wrong code: the same answer, no hint which.
    let code = o.fresh_code("alice");
    let g = o.login_with("alice", "wrong", Some(&code));
    assert_eq!(
        (g.status, g.body["error"].as_str()),
        (401, Some("invalid credentials"))
    );
    let g = o.login_with("alice", &pw, Some("000000"));
    assert_eq!(g.status, 401);
    // Right code: a token; the same code a second time: refused.
    let g = o.login_with("alice", &pw, Some(&code));
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["role"], "admin");
    assert!(g.body["expires_in"].as_u64().unwrap() <= 900);
    let token = g.body["token"].as_str().unwrap().to_string();
    let g = o.login_with("alice", &pw, Some(&code));
    assert_eq!(
        g.status, 401,
        "a reused TOTP code must be refused: {}",
        g.text
    );
    // A viewer needs no code.
    let vpw = o.secrets["victor"].0.clone();
    let g = o.login_with("victor", &vpw, None);
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["role"], "viewer");
    // Unknown user: the same answer as a wrong password.
    let g = o.login_with("mallory", "x", None);
    assert_eq!(
        (g.status, g.body["error"].as_str()),
        (401, Some("invalid credentials"))
    );
    // The token works; failures are counted.
    let g = o.get("/api/v1/whoami", &token);
    assert_eq!((g.status, g.body["user"].as_str()), (200, Some("alice")));
    let m = o.get("/metrics", &token).text;
    let failures: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_ops_auth_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 5, "{failures}");
    // Logins are audited with the user and never the password.
    let audit = std::fs::read_to_string(o.data().join("ops-audit.log")).unwrap();
    assert!(
        audit.contains("\"login\"") && audit.contains("login-refused"),
        "{audit}"
    );
    assert!(!audit.contains(&pw));
}

#[test]
fn forged_expired_none_other_algorithm_wrong_audience_and_revoked_tokens_are_refused() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let mut o = Ops::new("").start();
    o.user("alice", "risk-officer");
    let token = o.login("alice");
    assert_eq!(o.get("/api/v1/clock", &token).status, 200);
    // The real signing key, from the operator store (under the master key), to show that
    // each refusal is for its claim and not for the signature.
    let cfg = portcullis::config::Config::load(&o.env.cfg_path).unwrap();
    let store = portcullis::ops::users::UserStore::open(&cfg, false).unwrap();
    let key = store.load().unwrap().token_key().unwrap();
    let now = now_s();
    let claims = |aud: &str, iss: &str, iat: u64, exp: u64| {
        json!({ "iss": iss, "aud": aud, "sub": "alice", "role": "admin", "iat": iat, "exp": exp,
                "jti": format!("t{iat}{aud}{iss}") })
    };
    let sign = |alg: Algorithm, k: &[u8], c: &Value| {
        encode(&Header::new(alg), c, &EncodingKey::from_secret(k)).unwrap()
    };
    let good = sign(
        Algorithm::HS256,
        &key,
        &claims("portcullis-ops", "portcullis", now, now + 600),
    );
    assert_eq!(
        o.get("/api/v1/clock", &good).status,
        200,
        "control: a well-made token"
    );
    let b64 = |v: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let body = good.split('.').nth(1).unwrap();
    let refused = [
        (
            "alg none",
            format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "HS512",
            sign(
                Algorithm::HS512,
                &key,
                &claims("portcullis-ops", "portcullis", now, now + 600),
            ),
        ),
        (
            "forged",
            sign(
                Algorithm::HS256,
                &[1u8; 32],
                &claims("portcullis-ops", "portcullis", now, now + 600),
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                &key,
                &claims("other-service", "portcullis", now, now + 600),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                &key,
                &claims("portcullis-ops", "someone", now, now + 600),
            ),
        ),
        (
            "expired",
            sign(
                Algorithm::HS256,
                &key,
                &claims("portcullis-ops", "portcullis", now - 1000, now - 100),
            ),
        ),
        (
            "lives too long",
            sign(
                Algorithm::HS256,
                &key,
                &claims("portcullis-ops", "portcullis", now, now + 86_400),
            ),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, t) in &refused {
        let g = o.get("/api/v1/clock", t);
        assert_eq!(g.status, 401, "{what}: {}", g.text);
        assert!(g.body["error"].is_string(), "{what}");
        assert_security_headers(&g, what);
    }
    let g = o.call("GET", "/api/v1/clock", None, None);
    assert_eq!(g.status, 401, "no token");
    // Refresh needs a fresh code for a risk officer; the old token is revoked by it.
    let g = o.post("/api/v1/refresh", &token, json!({}));
    assert_eq!(g.status, 401, "{}", g.text);
    let code = o.fresh_code("alice");
    let g = o.post("/api/v1/refresh", &token, json!({ "totp": code }));
    assert_eq!(g.status, 200, "{}", g.text);
    let fresh = g.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        o.get("/api/v1/clock", &token).status,
        401,
        "refreshed token revoked"
    );
    // Logout revokes.
    assert_eq!(o.post("/api/v1/logout", &fresh, json!({})).status, 200);
    let g = o.get("/api/v1/clock", &fresh);
    assert_eq!(
        (g.status, g.body["error"].as_str()),
        (401, Some("token revoked"))
    );
}

#[test]
fn every_read_endpoint_answers_over_https_with_security_headers() {
    let mut o = Ops::new("").start();
    o.user("victor", "viewer");
    let pw = o.secrets["victor"].0.clone();
    let t = o.login_with("victor", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let g = o.call("GET", "/healthz", None, None);
    assert_eq!((g.status, g.body["status"].as_str()), (200, Some("ok")));
    assert_security_headers(&g, "healthz");
    assert_eq!(
        o.call("GET", "/metrics", None, None).status,
        401,
        "metrics need a token"
    );
    for path in [
        "/readyz",
        "/metrics",
        "/api/v1/whoami",
        "/api/v1/clock",
        "/api/v1/latency",
        "/api/v1/tls",
        "/api/v1/keys",
        "/api/v1/accounts",
        "/api/v1/accounts/ACC1",
        "/api/v1/sessions",
        "/api/v1/venues",
        "/api/v1/events",
        "/api/v1/alerts",
        "/api/v1/limits/pending",
    ] {
        let g = o.get(path, &t);
        assert_eq!(g.status, 200, "{path}: {}", g.text);
        assert_security_headers(&g, path);
    }
    let g = o.get("/readyz", &t);
    assert_eq!(g.body["ready"], true, "{}", g.text);
    let g = o.get("/api/v1/clock", &t);
    assert!(
        g.body["state"].is_string() && g.body["max_divergence_ns"].is_u64(),
        "{}",
        g.text
    );
    let g = o.get("/api/v1/tls", &t);
    let certs = g.body["certificates"].as_array().unwrap();
    assert!(
        certs
            .iter()
            .any(|c| c["name"] == "ops" && c["days_to_expiry"].as_i64() > Some(800)),
        "{}",
        g.text
    );
    let g = o.get("/api/v1/keys", &t);
    assert_eq!(g.body["keys"][0]["id"], "k1", "{}", g.text);
    let secret = std::fs::read_to_string(o.env.secrets.path().join("k1.secret")).unwrap();
    assert!(
        !g.text.contains(secret.trim()) && !g.text.contains("\"secret\""),
        "{}",
        g.text
    );
    let g = o.get("/api/v1/accounts", &t);
    assert_eq!(
        g.body["accounts"].as_array().unwrap().len(),
        3,
        "{}",
        g.text
    );
    let g = o.get("/api/v1/alerts", &t);
    assert!(g.body["alerts"].is_array(), "{}", g.text);
    let g = o.get("/api/v1/accounts/ACC1", &t);
    assert_eq!(g.body["killed"], false, "{}", g.text);
    assert!(g.body["limits"]["max_order_qty"].is_string());
    assert_eq!(o.get("/api/v1/accounts/NOPE", &t).status, 404);
    wait_event(&o.data(), "clock-sync");
    let g = o.get("/api/v1/events", &t);
    let next = g.body["next"].as_u64().unwrap();
    assert!(
        !g.body["events"].as_array().unwrap().is_empty(),
        "{}",
        g.text
    );
    let g = o.get(&format!("/api/v1/events?since={next}"), &t);
    assert_eq!(
        g.body["next"].as_u64(),
        Some(next),
        "nothing new: {}",
        g.text
    );
    assert_eq!(o.get("/api/v1/events?since=x", &t).status, 400);
    // The exposition: every sample line is `name value`, every counter is there.
    let m = o.get("/metrics", &t);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in m.text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("portcullis_"), "{line}");
        assert!(value.parse::<f64>().is_ok() || value == "NaN", "{line}");
    }
    for c in portcullis::monitor::Counter::ALL {
        let (name, _) = portcullis::ops::metric_name(*c);
        assert!(m.text.contains(&format!("\n{name} ")), "{c:?}");
    }
    assert!(m
        .text
        .contains("portcullis_certificate_remaining_seconds{certificate=\"ops\"} "));
    assert!(m.text.contains("portcullis_clock_divergence_seconds"));
    assert!(m.text.contains("portcullis_ops_requests_total"));
    // Unknown endpoint and bad bodies: JSON errors, the same headers.
    let g = o.get("/api/v1/nothing", &t);
    assert_eq!(g.status, 404);
    assert!(g.body["error"].is_string());
    assert_security_headers(&g, "404");
    let g = o.call("POST", "/api/v1/login", None, Some(json!({ "user": 5 })));
    assert_eq!(g.status, 400, "{}", g.text);
    let big = "x".repeat(20_000);
    let g = o.call("POST", "/api/v1/login", None, Some(json!({ "user": big })));
    assert_eq!(g.status, 413, "{}", g.text);
}

#[test]
fn sessions_and_venues_show_what_the_gateway_thread_sees() {
    let mut o = Ops::new("").start();
    let secret = o.k1.clone();
    o.user("victor", "viewer");
    let pw = o.secrets["victor"].0.clone();
    let t = o.login_with("victor", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = o.get("/api/v1/sessions", &t);
    let sessions = before.body["sessions"].as_array().unwrap().clone();
    assert!(!sessions.is_empty(), "{}", before.text);
    assert!(
        sessions.iter().all(|s| s["logged_on"] == false),
        "{}",
        before.text
    );
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("S1", "AAPL", "1", "1", Some("100")));
    c.expect("8");
    let g = o.get("/api/v1/sessions", &t);
    let s = g.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sender_comp_id"] == "CLIENT1")
        .unwrap_or_else(|| panic!("{}", g.text))
        .clone();
    assert_eq!(s["logged_on"], true, "{s}");
    assert_eq!(s["key_id"], "k1", "{s}");
    assert!(
        s["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{s}"
    );
    assert!(
        s["next_target_seq"].as_u64() >= Some(3),
        "logon and one order in: {s}"
    );
    assert!(s["next_sender_seq"].as_u64() >= Some(3), "{s}");
    let v = o.get("/api/v1/venues", &t);
    let venues = v.body["venues"].as_array().unwrap();
    assert!(
        venues.iter().any(|x| x["kind"] == "sim" && x["up"] == true),
        "{}",
        v.text
    );
    c.logout();
}

#[test]
fn a_viewer_cannot_kill_and_a_risk_officers_kill_cancels_open_orders() {
    let mut o = Ops::new("").start();
    let secret = o.k1.clone();
    o.user("victor", "viewer");
    o.user("rita", "risk-officer");
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    for i in 0..3 {
        c.send("D", &nos(&format!("K{i}"), "AAPL", "1", "1", Some("100")));
        let er = c.expect("8");
        assert_eq!(field(&er, 150).as_deref(), Some("0"), "{}", show(&er));
    }
    let vpw = o.secrets["victor"].0.clone();
    let vt = o.login_with("victor", &vpw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let kill = json!({ "scope": "account", "name": "ACC1", "reason": "runaway algo" });
    let g = o.post("/api/v1/kill", &vt, kill.clone());
    assert_eq!(g.status, 403, "{}", g.text);
    assert!(g.body["error"].as_str().unwrap().contains("viewer"));
    let rt = o.login("rita");
    let g = o.post("/api/v1/kill", &rt, kill);
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["orders_canceled"], 3, "{}", g.text);
    assert_eq!(g.body["before"]["killed"], false);
    assert_eq!(g.body["after"]["killed"], true);
    for _ in 0..3 {
        assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    }
    c.send("D", &nos("K9", "AAPL", "1", "1", Some("100")));
    let er = c.expect("8");
    assert_eq!(
        field(&er, 150).as_deref(),
        Some("8"),
        "refused under the kill: {}",
        show(&er)
    );
    let g = o.get("/api/v1/accounts/ACC1", &rt);
    assert_eq!(g.body["killed"], true);
    // Audited with the authenticated operator.
    let audit = std::fs::read_to_string(o.data().join("control-audit.log")).unwrap();
    assert!(
        audit.contains("rita (risk-officer, ops port from 127.0.0.1)"),
        "{audit}"
    );
    assert!(audit.contains("runaway algo"));
    // Unkill; an order goes through again. Bad scope: a JSON error.
    let g = o.post(
        "/api/v1/unkill",
        &rt,
        json!({ "scope": "account", "name": "ACC1", "reason": "fixed" }),
    );
    assert_eq!(g.status, 200, "{}", g.text);
    c.send("D", &nos("K10", "AAPL", "1", "1", Some("100")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    let g = o.post(
        "/api/v1/kill",
        &rt,
        json!({ "scope": "planet", "reason": "x" }),
    );
    assert_eq!(g.status, 422, "{}", g.text);
    // A key's sessions; enable-account answers too.
    let g = o.post(
        "/api/v1/kill",
        &rt,
        json!({ "scope": "key", "name": "k1", "reason": "key leak" }),
    );
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["sessions"][0]["orders_canceled"], 1, "{}", g.text);
    let g = o.post(
        "/api/v1/accounts/ACC1/enable",
        &rt,
        json!({ "reason": "ok" }),
    );
    assert_eq!(g.status, 200, "{}", g.text);
}

#[test]
fn a_limit_raise_waits_for_a_second_risk_officer_a_cut_applies_at_once_and_both_survive_a_restart()
{
    let mut o = Ops::new("").start();
    o.user("rita", "risk-officer");
    o.user("rob", "risk-officer");
    let rita = o.login("rita");
    let rob = o.login("rob");
    let qty = |o: &Ops, t: &str| {
        o.get("/api/v1/accounts/ACC1", t).body["limits"]["max_order_qty"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cut =
        json!({ "account": "ACC1", "limits": { "max_order_qty": 500 }, "reason": "volatility" });
    let g = o.post("/api/v1/limits", &rita, cut);
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(qty(&o, &rita), "500");
    let raise = json!({ "account": "ACC1", "limits": { "max_order_qty": 2000, "max_msgs": 5 }, "reason": "client request" });
    let g = o.post("/api/v1/limits", &rita, raise);
    assert_eq!(g.status, 202, "{}", g.text);
    assert_eq!(g.body["raised"], json!(["max_order_qty"]));
    let id = g.body["id"].as_u64().unwrap();
    assert_eq!(qty(&o, &rita), "500", "not applied before approval");
    let pending = o.get("/api/v1/limits/pending", &rob);
    assert_eq!(pending.body["pending"][0]["id"], id, "{}", pending.text);
    let g = o.post(&format!("/api/v1/limits/{id}/approve"), &rita, json!({}));
    assert_eq!(g.status, 403, "the requester cannot approve: {}", g.text);
    let g = o.post(&format!("/api/v1/limits/{id}/approve"), &rob, json!({}));
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(qty(&o, &rob), "2000");
    let g = o.post(&format!("/api/v1/limits/{id}/approve"), &rob, json!({}));
    assert_eq!(g.status, 404, "approved once");
    let audit = std::fs::read_to_string(o.data().join("control-audit.log")).unwrap();
    assert!(audit.contains("rita (requested) and rob"), "{audit}");
    // Restart on the same data folder: the approved limits are restored.
    let Ops {
        env,
        gw,
        pki,
        agent,
        steps,
        secrets,
        k1,
    } = o;
    let Gw { running, dir, .. } = gw.unwrap();
    drop(running);
    let mut o = Ops {
        gw: Some(start_in(dir, &env.extra)),
        env,
        pki,
        agent,
        steps,
        secrets,
        k1,
    };
    let rob = o.login("rob");
    let deadline = Instant::now() + Duration::from_secs(10);
    while qty(&o, &rob) != "2000" {
        assert!(
            Instant::now() < deadline,
            "limits not restored: {}",
            qty(&o, &rob)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let g = o.get("/api/v1/accounts/ACC1", &rob);
    assert_eq!(g.body["limits"]["max_msgs"], 5, "{}", g.text);
}

#[test]
fn a_burst_gets_429_with_retry_after() {
    let o = Ops::new("rate_per_address = 5").start();
    let mut limited = None;
    for _ in 0..40 {
        let g = o.call("GET", "/healthz", None, None);
        if g.status == 429 {
            limited = Some(g);
            break;
        }
        assert_eq!(g.status, 200);
    }
    let g = limited.expect("no 429 within 40 requests at 5/s");
    let after: u64 = g.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
    assert!(g.body["error"].as_str().unwrap().contains("too many"));
    assert_security_headers(&g, "429");
}

/// One HTTPS request from source address `from` (HTTP/1.1 written by hand: the client side
/// only needs a source address ureq cannot set); the status and body.
fn https_from(o: &Ops, from: IpAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect(&o.addr().into()).unwrap();
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in portcullis::tls::load_certs(&o.pki.path().join("tls/ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn an_attackers_failed_logins_do_not_lock_the_user_out_from_their_own_address() {
    let mut o = Ops::new("lockout_failures = 3\nlockout_address_failures = 50\nlogin_per_minute = 600\nrate_per_address = 1000").start();
    o.user("alice", "risk-officer");
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let bad = json!({ "user": "alice", "password": "guess", "totp": "123456" }).to_string();
    for _ in 0..3 {
        let (status, body) = https_from(&o, attacker, "POST", "/api/v1/login", &bad);
        assert_eq!(status, 401, "{body}");
    }
    // Locked at the attacker's address, even with the right password and code.
    let code = o.fresh_code("alice");
    let right =
        json!({ "user": "alice", "password": o.secrets["alice"].0, "totp": code }).to_string();
    let (status, body) = https_from(&o, attacker, "POST", "/api/v1/login", &right);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("failed logins"), "{body}");
    // Alice from her own address: in.
    let (status, body) = https_from(
        &o,
        "127.0.0.1".parse().unwrap(),
        "POST",
        "/api/v1/login",
        &right,
    );
    assert_eq!(status, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    let m = o.get("/metrics", t["token"].as_str().unwrap()).text;
    assert!(m.contains("portcullis_ops_login_lockouts_total 1"), "{m}");
}

#[test]
fn keys_revoke_and_tls_reload_are_for_admins() {
    let mut o = Ops::new("").start();
    o.user("rita", "risk-officer");
    o.user("ada", "admin");
    let rita = o.login("rita");
    let ada = o.login("ada");
    let revoke = json!({ "reason": "leaked in a ticket" });
    assert_eq!(
        o.post("/api/v1/keys/k1/revoke", &rita, revoke.clone())
            .status,
        403
    );
    assert_eq!(o.post("/api/v1/tls/reload", &rita, json!({})).status, 403);
    let g = o.post("/api/v1/keys/k1/revoke", &ada, revoke.clone());
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.body["before"]["status"], "active");
    let g = o.get("/api/v1/keys", &ada);
    assert_eq!(g.body["keys"][0]["status"], "revoked", "{}", g.text);
    assert_eq!(o.post("/api/v1/keys/nope/revoke", &ada, revoke).status, 404);
    let g = o.post("/api/v1/tls/reload", &ada, json!({}));
    assert_eq!(g.status, 200, "{}", g.text);
    let audit = std::fs::read_to_string(o.data().join("ops-audit.log")).unwrap();
    assert!(
        audit.contains("key-revoke") && audit.contains("tls-reload"),
        "{audit}"
    );
    // A lowered role applies to a live token at once; a removed operator's token dies.
    assert!(o.users_raw(&["set-role", "ada", "viewer"]).status.success());
    assert_eq!(o.post("/api/v1/tls/reload", &ada, json!({})).status, 403);
    assert!(o.users_raw(&["remove", "ada"]).status.success());
    assert_eq!(o.get("/api/v1/clock", &ada).status, 401);
}

#[test]
fn users_cli_prints_the_enrolment_lists_without_secrets_and_refuses_bad_input() {
    let o = Ops::new("");
    let out = o.users_raw(&["add", "carol", "--role", "risk-officer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("otpauth://totp/Portcullis:carol?"), "{text}");
    assert!(
        text.contains("issuer=Portcullis") && text.contains("secret="),
        "{text}"
    );
    assert!(
        text.contains('▀') || text.contains('▄') || text.contains('█'),
        "QR code: {text}"
    );
    let pw = text
        .split("store it now): ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let list = String::from_utf8_lossy(&o.users_raw(&["list"]).stdout).into_owned();
    assert!(
        list.contains("carol") && list.contains("risk-officer"),
        "{list}"
    );
    assert!(!list.contains(pw) && !list.contains("argon2"), "{list}");
    // The store is encrypted: neither the name's secrets nor the hash are readable in it.
    let store = std::fs::read(o.env.dir.path().join("operators.store")).unwrap();
    assert!(!String::from_utf8_lossy(&store).contains("argon2"));
    for (args, needle) in [
        (vec!["add", "dave", "--role", "root"], "role"),
        (vec!["add", "carol", "--role", "viewer"], "already exists"),
        (vec!["add", "bad name", "--role", "viewer"], "user name"),
        (vec!["remove", "nobody"], "no user"),
        (vec!["set-role", "carol", "god"], "role"),
    ] {
        let out = o.users_raw(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let out = o.users_raw(&["reset-mfa", "carol", "--no-qr"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("otpauth://"));
    assert!(o.users_raw(&["remove", "carol"]).status.success());
    let list = String::from_utf8_lossy(&o.users_raw(&["list"]).stdout).into_owned();
    assert!(!list.contains("carol"), "{list}");
}

#[test]
fn check_config_names_a_missing_ops_certificate() {
    let o = Ops::new("");
    let text = std::fs::read_to_string(&o.env.cfg_path)
        .unwrap()
        .replace("server.pem", "missing.pem");
    let path = o.env.secrets.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("key `ops.tls.cert`"), "{e}");
    let ok = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check-config")
        .arg(&o.env.cfg_path)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn ops_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (ops, key) in [
        (
            "[ops]\naddress = \"0.0.0.0:9880\"\nplaintext = true\n",
            "ops.plaintext",
        ),
        ("[ops]\n", "ops.tls"),
        (
            "[ops]\nplaintext = true\njwt_lifetime_s = 3600\n",
            "ops.jwt_lifetime_s",
        ),
    ] {
        let text = config_text(
            dir.path(),
            &format!("{OPS_SESSIONS}{}[auth]\nkey_store = \"k\"\nmaster_key = {{ provider = \"file\", path = \"m\" }}\n{ops}", sim("ack")),
        );
        let e = portcullis::config::Config::parse(&text, "t.toml").unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }
}

#[test]
fn the_embedded_default_prints_the_ops_url_and_its_dev_admin_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, _) = spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path()),
    );
    let mut url = None;
    let mut curl = None;
    for l in lines.by_ref().take(40) {
        let l = l.unwrap();
        if let Some(u) = l.trim().strip_prefix("ops: ") {
            url = Some(u.to_string());
        }
        if l.contains("TOKEN=$(curl") {
            curl = Some(l);
            break;
        }
    }
    let url = url.expect("no `ops: https://...` line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(curl.unwrap().contains("/api/v1/login"));
    let pw = std::fs::read_to_string(dir.path().join("secrets/ops-admin.password")).unwrap();
    let code = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["users", "totp-code", "--uri-file"])
        .arg(dir.path().join("secrets/ops-admin.totp"))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&code.stdout).trim().to_string();
    assert_eq!(code.len(), 6, "{code}");
    let (status, body) = {
        let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
        let ca = ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                    .build(),
            )
            .http_status_as_error(false)
            .build()
            .into();
        let port = url.rsplit(':').next().unwrap();
        let mut r = agent
            .post(&format!("https://127.0.0.1:{port}/api/v1/login"))
            .send(json!({ "user": "admin", "password": pw, "totp": code }).to_string())
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"role\":\"admin\""), "{body}");
}

#[test]
fn a_silent_connection_is_closed_after_the_request_deadline() {
    let o = Ops::new("request_timeout_ms = 300").start();
    // No TLS handshake at all, then a handshake and no request: both closed, each within the
    // deadline (generous margin for a loaded machine).
    let mut raw = TcpStream::connect(o.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(raw.read(&mut b).unwrap_or(0), 0, "closed without a byte");
    assert!(t.elapsed() < Duration::from_secs(8));
    let tcp = TcpStream::connect(o.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in portcullis::tls::load_certs(&o.pki.path().join("tls/ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.flush().unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(s.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3));
    // The port still answers, and counted the silent TCP connection on its own counter.
    assert_eq!(o.call("GET", "/healthz", None, None).status, 200);
    let c = &o.gw().running.handle.counters;
    assert!(c.get(portcullis::monitor::Counter::OpsTlsFailures) >= 1);
    assert_eq!(
        c.get(portcullis::monitor::Counter::TlsFailures),
        0,
        "FIX TLS counter untouched"
    );
}

#[test]
fn plaintext_on_loopback_without_mfa_works_and_sends_no_hsts() {
    let pki = tempfile::tempdir().unwrap();
    let env = KeyEnv::new(
        &format!("{OPS_SESSIONS}{}", sim("ack")),
        "[ops]\naddress = \"127.0.0.1:0\"\nplaintext = true\nmfa_required = false\n\n",
    );
    env.add("k1", "CLIENT1", &[]);
    let pw = env.secrets.path().join("ada.pw");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "users",
            "add",
            "ada",
            "--role",
            "admin",
            "--no-qr",
            "--password-out",
        ])
        .arg(&pw)
        .arg("--config")
        .arg(&env.cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut env = env;
    let gw = env.start();
    let port = gw.running.ops.as_ref().unwrap();
    assert!(
        port.url().starts_with("http://127.0.0.1:"),
        "{}",
        port.url()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!("{}/api/v1/login", port.url()))
        .send(
            json!({ "user": "ada", "password": std::fs::read_to_string(&pw).unwrap() }).to_string(),
        )
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "mfa_required = false: no code needed"
    );
    assert!(r.headers().get("strict-transport-security").is_none());
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    assert!(r
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("\"role\":\"admin\""));
    drop(pki);
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Real Prometheus (Debian's `prometheus` package; `.ci/run` installs it): `promtool check
/// metrics` accepts the exposition, and a running Prometheus scrapes `/metrics` over HTTPS
/// with a bearer token and the development CA, and answers a query with our counters.
#[test]
#[ignore = "needs Debian's prometheus package (promtool, prometheus): .ci/run installs it"]
fn prometheus_checks_and_scrapes_the_metrics() {
    use std::process::Stdio;
    let mut o = Ops::new("").start();
    o.user("scraper", "viewer");
    let pw = o.secrets["scraper"].0.clone();
    let token = o.login_with("scraper", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    // An order first, so the latency summaries carry numbers (not NaN) for promtool.
    let secret = o.k1.clone();
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("P1", "AAPL", "1", "1", Some("100")));
    c.expect("8");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = o.get("/metrics", &token).text;
        let n = sample(&m, "portcullis_order_latency_seconds_count").unwrap_or(0.0);
        if n >= 1.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("portcullis_order_latency_seconds{quantile=\"0.999\"} 0."),
        "{metrics}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A running Prometheus on a loopback port scrapes the port every second.
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: portcullis\n    scheme: https\n    authorization:\n      type: Bearer\n      credentials_file: {tf}\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        tf = token_file.display(),
        ca = o.pki.path().join("tls/ca.pem").display(),
        port = o.addr().port()
    );
    let cfg_path = work.path().join("prometheus.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let web = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            work.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let query = |q: &str| -> Value {
        plain
            .get(&format!("http://127.0.0.1:{web}/api/v1/query?query={q}"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last;
    let scraped = loop {
        last = query("portcullis_ops_requests_total");
        let up = query("up");
        let value = last["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
        if up["data"]["result"][0]["value"][1] == "1" && value.is_some_and(|v| v >= 1.0) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let targets = plain
        .get(&format!("http://127.0.0.1:{web}/api/v1/targets"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(
        scraped,
        "prometheus did not scrape: {last}\ntargets: {targets}"
    );
}

#[test]
fn readyz_answers_503_with_the_failing_item_while_the_clock_is_out_of_limits() {
    use portcullis::clock::status::SyncState;
    let mut o = Ops::new(
        "\n[clock]\ncalibrate_ms = 20\nmax_divergence_us = 250000\nunsynchronised_is_breach = true\n",
    )
    .start();
    o.user("victor", "viewer");
    let pw = o.secrets["victor"].0.clone();
    let t = o.login_with("victor", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let status = o.gw().running.handle.clock_status.clone();
    let wait = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let g = o.get("/readyz", &t);
            if g.status == want {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "readyz stays {}: {}",
                g.status,
                g.text
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    status.force(Some(SyncState::Synchronised));
    wait(200);
    status.force(Some(SyncState::Unsynchronised));
    let g = wait(503);
    assert_eq!(g.body["ready"], false);
    assert_eq!(g.body["failing"][0]["item"], "clock", "{}", g.text);
    assert_security_headers(&g, "503");
    let m = o.get("/metrics", &t).text;
    assert!(m.contains("portcullis_clock_divergence_seconds "), "{m}");
    status.force(Some(SyncState::Synchronised));
    wait(200);
}

/// `name{labels} value` of one sample in an exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// The in-gateway latency histograms (recorded on the gateway thread) fill from orders sent
/// over a socket, and read the same on `/metrics` and `/api/v1/latency`: the order series from
/// an in-process venue's answers and an external venue's, the venue round trip from a FIX venue
/// the test plays on a socket.
#[test]
fn latency_histograms_fill_from_orders_sent_through_a_socket() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let venues = format!(
        "{}[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"{}\"\nour_comp_id = \"GW\"\n\
         their_comp_id = \"VENUE\"\nheartbeat_secs = 30\nreconnect_ms = 200\n",
        sim("ack"),
        l.local_addr().unwrap()
    );
    let mut o = Ops::with_venues("", &venues).start();
    o.user("victor", "viewer");
    let pw = o.secrets["victor"].0.clone();
    let t = o.login_with("victor", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let empty = o.get("/metrics", &t).text;
    assert_eq!(
        sample(&empty, "portcullis_order_latency_seconds_count"),
        Some(0.0),
        "{empty}"
    );
    assert_eq!(
        sample(&empty, "portcullis_order_latency_seconds{quantile=\"0.5\"}").map(f64::is_nan),
        Some(true),
        "no sample yet: NaN"
    );
    // The venue: accept the gateway's link and its Logon.
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let secret = o.k1.clone();
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    const ORDERS: u64 = 50;
    for i in 0..ORDERS {
        c.send("D", &nos(&format!("L{i}"), "AAPL", "1", "1", Some("100")));
        c.expect("8");
    }
    // One order to the FIX venue: PendingNew at once (its first answer), New when the venue
    // acknowledges (the round trip).
    c.send(
        "D",
        &format!("{}|100=XVEN", nos("X1", "AAPL", "1", "1", Some("100"))),
    );
    let d = v.expect("D");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("A"));
    let cl = field(&d, 11).unwrap();
    v.send(
        "8",
        &format!("37=V1|11={cl}|17=E1|150=0|39=0|55=AAPL|54=1|38=1|151=1|14=0|6=0"),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    // The gateway thread hands its histograms over every 100 ms of its time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = o.get("/metrics", &t).text;
        let orders = sample(&m, "portcullis_order_latency_seconds_count").unwrap_or(0.0);
        let venue = sample(&m, "portcullis_venue_round_trip_seconds_count").unwrap_or(0.0);
        if (orders >= (ORDERS + 1) as f64 && venue >= 1.0) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&m, "portcullis_order_latency_seconds_count"),
        Some((ORDERS + 1) as f64),
        "every order's first answer timed once: {m}"
    );
    assert_eq!(
        sample(&m, "portcullis_venue_round_trip_seconds_count"),
        Some(1.0),
        "{m}"
    );
    for series in [
        "portcullis_order_latency_seconds",
        "portcullis_venue_round_trip_seconds",
    ] {
        let q: Vec<f64> = ["0.5", "0.9", "0.99", "0.999"]
            .iter()
            .map(|q| sample(&m, &format!("{series}{{quantile=\"{q}\"}}")).unwrap())
            .collect();
        let max = sample(&m, &series.replace("_seconds", "_max_seconds")).unwrap();
        let sum = sample(&m, &format!("{series}_sum")).unwrap();
        assert!(q[0] > 0.0 && sum > 0.0, "{series}: {m}");
        assert!(
            q.windows(2).all(|w| w[0] <= w[1]) && q[3] <= max,
            "{series}: quantiles grow up to the max: {q:?} {max}"
        );
        assert!(m.contains(&format!("# TYPE {series} summary\n")), "{m}");
    }
    let j = o.get("/api/v1/latency", &t);
    assert_eq!(j.status, 200, "{}", j.text);
    assert_eq!(j.body["order"]["count"], ORDERS + 1, "{}", j.text);
    assert_eq!(j.body["venue_round_trip"]["count"], 1, "{}", j.text);
    assert!(
        j.body["order"]["quantiles_us"]["p99.9"].as_f64() > Some(0.0),
        "{}",
        j.text
    );
    assert_security_headers(&j, "latency");
    c.logout();
}

/// The status page and its two files come from the binary with a strict CSP: no inline
/// script or style allowed, requests to this origin only, and the HTML loads nothing else.
#[test]
fn the_status_page_is_served_with_a_strict_content_security_policy() {
    let o = Ops::new("").start();
    let page = o.call("GET", "/", None, None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let csp = page.header("content-security-policy").unwrap().to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_security_headers(&page, "/");
    // Nothing inline, nothing from elsewhere.
    assert!(!page.text.contains("<script>") && !page.text.contains("style="));
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
    assert!(page.text.contains("src=\"/app.js\""));
    let js = o.call("GET", "/app.js", None, None);
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/javascript")));
    assert!(!js.text.contains("innerHTML"), "the page writes text only");
    let css = o.call("GET", "/app.css", None, None);
    assert_eq!(css.status, 200);
    assert!(!css.text.contains("url("), "no external assets");
}

/// A W3C WebDriver session on chromedriver's HTTP API (Debian's `chromium-driver`).
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: ureq::Agent,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // The ops port's certificate is the test's own development CA.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1400,1800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        } } });
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: {v}"))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let r = match body {
            Some(b) => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            None if method == "DELETE" => self.http.delete(&url).call(),
            None => self.http.get(&url).call(),
        };
        let text = r
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"))
    }

    fn s(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        let v = self.s("POST", "/url", Some(json!({ "url": url })));
        assert!(v["value"].is_null(), "open {url}: {v}");
    }

    fn find(&self, css: &str) -> String {
        let v = self.s(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.s("POST", &format!("/element/{e}/clear"), Some(json!({})));
        let v = self.s(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
        assert!(v["value"].is_null(), "type into {css}: {v}");
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        let v = self.s("POST", &format!("/element/{e}/click"), Some(json!({})));
        assert!(v["value"].is_null(), "click {css}: {v}");
    }

    /// `textContent` of the element `id` (hidden or not).
    fn text(&self, id: &str) -> String {
        let v = self.s(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
                "args": [id],
            })),
        );
        v["value"].as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 30 s) until `id`'s text satisfies `ok`; its last text.
    fn wait_text(&self, id: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.text(id);
            if ok(&t) || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The status page in headless Chromium (Debian's `chromium` and `chromium-driver`; `.ci/run`
/// installs them), driven through WebDriver: a viewer logs in, sees CLIENT1's session and the
/// live numbers, presses Kill and is told the role may not; a risk officer logs in with TOTP,
/// presses Kill for ACC1, and the API shows ACC1 killed. A screenshot is written to
/// `target/ops-status-page.png`.
#[test]
#[ignore = "needs Debian's chromium and chromium-driver: .ci/run installs them"]
fn the_status_page_in_chromium_logs_in_shows_sessions_and_kills_an_account() {
    let mut o = Ops::new("").start();
    let secret = o.k1.clone();
    o.user("victor", "viewer");
    o.user("rita", "risk-officer");
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("B1", "AAPL", "1", "1", Some("100")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));

    let b = Browser::start();
    b.open(&format!("{}/", o.base()));
    assert!(b.text("login-view").contains("Log in"));
    // A viewer: no TOTP needed; sees the session; may not kill.
    let vpw = o.secrets["victor"].0.clone();
    b.type_into("#login-user", "victor");
    b.type_into("#login-password", &vpw);
    b.click("#login-submit");
    let who = b.wait_text("who", |t| t.contains("viewer"));
    assert_eq!(who, "victor (viewer)", "{}", b.text("login-message"));
    let sessions = b.wait_text("sessions", |t| t.contains("CLIENT1") && t.contains("true"));
    assert!(
        sessions.contains("CLIENT1") && sessions.contains("k1"),
        "CLIENT1 logged on with k1: {sessions}"
    );
    let latency = b.wait_text("latency", |t| t.contains("µs") || t.contains("ms"));
    assert!(
        latency.contains("order in → first answer"),
        "live latency: {latency}"
    );
    let accounts = b.wait_text("accounts", |t| t.contains("ACC1"));
    assert!(accounts.contains("ACC1"), "{accounts}");
    b.type_into("#control-reason", "status page test");
    b.click("button[data-account=\"ACC1\"][data-action=\"kill\"]");
    let msg = b.wait_text("message", |t| t.contains("Not allowed"));
    assert!(
        msg.contains("Not allowed") && msg.contains("viewer") && msg.contains("risk-officer"),
        "a clear refusal: {msg}"
    );
    let t = o.login_with("victor", &vpw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(o.get("/api/v1/accounts/ACC1", &t).body["killed"], false);
    // A risk officer with password and TOTP kills ACC1 from its row.
    b.click("#logout");
    b.wait_text("who", str::is_empty);
    let code = o.fresh_code("rita");
    let rpw = o.secrets["rita"].0.clone();
    b.type_into("#login-user", "rita");
    b.type_into("#login-password", &rpw);
    b.type_into("#login-totp", &code);
    b.click("#login-submit");
    let who = b.wait_text("who", |t| t.contains("risk-officer"));
    assert_eq!(who, "rita (risk-officer)", "{}", b.text("login-message"));
    b.wait_text("accounts", |t| t.contains("ACC1"));
    b.type_into("#control-reason", "status page test");
    b.click("button[data-account=\"ACC1\"][data-action=\"kill\"]");
    let msg = b.wait_text("message", |t| t.contains("Killed"));
    assert!(msg.contains("Killed account ACC1"), "{msg}");
    assert_eq!(
        o.get("/api/v1/accounts/ACC1", &t).body["killed"],
        true,
        "the page's kill reached the gateway"
    );
    let kill_state = b.wait_text("kill-state", |t| t.contains("ACC1"));
    assert!(kill_state.contains("Killed accounts: ACC1"), "{kill_state}");
    // The order the client left open was canceled by the kill.
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    let shot = b.s("GET", "/screenshot", None);
    let png = b64(shot["value"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ops-status-page.png");
    let _ = std::fs::write(out, png);
}

impl Ops {
    /// `portcullis ctl --url <this port> --user NAME --ca <dev CA> ARGS`, the password and
    /// `totp` in the environment, tokens cached under `cache`.
    fn ctl_url(
        &self,
        name: &str,
        totp: Option<&str>,
        cache: &std::path::Path,
        args: &[&str],
    ) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(["ctl", "--url", &self.base(), "--user", name, "--ca"])
            .arg(self.pki.path().join("tls/ca.pem"))
            .args(args)
            .env("XDG_CACHE_HOME", cache)
            .env_remove("PORTCULLIS_OPS_PASSWORD")
            .env_remove("PORTCULLIS_OPS_TOTP")
            .stdin(std::process::Stdio::null());
        if let Some((pw, _)) = self.secrets.get(name) {
            cmd.env("PORTCULLIS_OPS_PASSWORD", pw);
        }
        if let Some(t) = totp {
            cmd.env("PORTCULLIS_OPS_TOTP", t);
        }
        cmd.output().unwrap()
    }
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `portcullis ctl --url`: the ctl verbs through the ops port over HTTPS, from the CLI binary,
/// with the port's CA pinned; the token is cached 0600 and reused without a new login; the
/// port's roles and four eyes apply; a port whose certificate another CA issued is refused.
#[test]
fn ctl_url_does_the_ctl_verbs_through_the_ops_port() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut o = Ops::new("").start();
    let secret = o.k1.clone();
    o.user("rita", "risk-officer");
    o.user("rob", "risk-officer");
    o.user("victor", "viewer");
    let cache = tempfile::tempdir().unwrap();
    let mut c = Client::connect(o.gw().addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    c.send("D", &nos("U1", "AAPL", "1", "1", Some("100")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));

    // Kill with a login (password + TOTP): applied, audited as rita, order canceled.
    let code = o.fresh_code("rita");
    let out = o.ctl_url(
        "rita",
        Some(&code),
        cache.path(),
        &["kill", "--account", "ACC1", "--reason", "remote kill"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["after"]["killed"], true, "{v}");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    let audit = std::fs::read_to_string(o.data().join("control-audit.log")).unwrap();
    assert!(
        audit.contains("rita (risk-officer, ops port from 127.0.0.1)")
            && audit.contains("remote kill"),
        "{audit}"
    );
    // The token is cached 0600; the next verbs need no password or code.
    let files: Vec<_> = std::fs::read_dir(cache.path().join("portcullis"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token cache mode {mode:o}");
    let rita_secrets = o.secrets.remove("rita").unwrap();
    let out = o.ctl_url("rita", None, cache.path(), &["sessions"]);
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|s| s["sender_comp_id"] == "CLIENT1" && s["logged_on"] == true),
        "{v}"
    );
    let out = o.ctl_url(
        "rita",
        None,
        cache.path(),
        &["risk", "show", "--account", "ACC1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["killed"], true, "{v}");
    let out = o.ctl_url("rita", None, cache.path(), &["venues"]);
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    // Blocking an address is for admins: the port refuses a risk officer (exit 1, why).
    let out = o.ctl_url(
        "rita",
        None,
        cache.path(),
        &["block", "10.9.9.9", "--for", "1m", "--reason", "scan"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("needs admin"),
        "{}",
        out_text(&out)
    );
    let out = o.ctl_url(
        "rita",
        None,
        cache.path(),
        &["unkill", "--account", "ACC1", "--reason", "remote unkill"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    // A raise waits for a second risk officer; rob approves it from his own CLI.
    let out = o.ctl_url(
        "rita",
        None,
        cache.path(),
        &[
            "limits",
            "set",
            "--account",
            "ACC1",
            "--max-qty",
            "2000000000",
            "--reason",
            "client request",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pending"], true, "{v}");
    let id = v["id"].as_u64().unwrap().to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits approve"));
    o.secrets.insert("rita".into(), rita_secrets);
    let code = o.fresh_code("rob");
    let out = o.ctl_url(
        "rob",
        Some(&code),
        cache.path(),
        &["limits", "approve", &id],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let t = o
        .login_with("victor", &o.secrets["victor"].0.clone(), None)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        o.get("/api/v1/accounts/ACC1", &t).body["limits"]["max_order_qty"],
        "2000000000",
        "the approved raise applied"
    );
    // A viewer is refused by the port (exit 1, the reason printed).
    let out = o.ctl_url(
        "victor",
        None,
        cache.path(),
        &["kill", "--account", "ACC1", "--reason", "not mine"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("viewer"),
        "{}",
        out_text(&out)
    );
    // A wrong password: refused login, exit 1, nothing cached for that user.
    o.secrets
        .insert("rob2".into(), ("wrong".into(), String::new()));
    let out = o.ctl_url("rob2", Some("123456"), cache.path(), &["sessions"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("login as rob2 refused"));
    // Another CA pinned: the TLS handshake fails, nothing is sent (exit 2).
    let other = tempfile::tempdir().unwrap();
    portcullis::tls::dev::DevPki::ensure(other.path(), "CLIENT1").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--url", &o.base(), "--user", "rita", "--ca"])
        .arg(other.path().join("tls/ca.pem"))
        .args(["sessions"])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    // Usage: --url without --user; approve on the local socket.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--url", &o.base(), "sessions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", out_text(&out));
    c.logout();
}

/// Stops the gateway of `o` and starts it again on the same data folder and config.
fn restart(o: Ops) -> Ops {
    let Ops {
        env,
        gw,
        pki,
        agent,
        steps,
        secrets,
        k1,
    } = o;
    let Gw { running, dir, .. } = gw.unwrap();
    drop(running);
    Ops {
        gw: Some(start_in(dir, &env.extra)),
        env,
        pki,
        agent,
        steps,
        secrets,
        k1,
    }
}

/// A logged-out token, a login lockout and a limit change made with `portcullis ctl` on the
/// control socket all survive a restart (files 0600 in the data folder).
#[test]
fn revocations_lockouts_and_ctl_limit_changes_survive_a_restart() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut o = Ops::new("lockout_failures = 3").start();
    o.user("victor", "viewer");
    o.user("wanda", "viewer");
    let vpw = o.secrets["victor"].0.clone();
    let t = o.login_with("victor", &vpw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(o.get("/api/v1/whoami", &t).status, 200);
    assert_eq!(o.post("/api/v1/logout", &t, json!({})).status, 200);
    assert_eq!(o.get("/api/v1/whoami", &t).status, 401);
    for _ in 0..3 {
        assert_eq!(o.login_with("wanda", "wrong", None).status, 401);
    }
    let wpw = o.secrets["wanda"].0.clone();
    assert_eq!(o.login_with("wanda", &wpw, None).status, 429, "locked");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["ctl", "--data-dir"])
        .arg(o.data())
        .args([
            "limits",
            "set",
            "--account",
            "ACC1",
            "--max-qty",
            "777",
            "--by",
            "carol",
            "--reason",
            "ctl cut",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    for f in ["ops-revoked.json", "ops-lockouts.json", "ops-limits.json"] {
        let mode = std::fs::metadata(o.data().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    let o = restart(o);
    let g = o.get("/api/v1/whoami", &t);
    assert_eq!(
        g.status, 401,
        "the logged-out token stays refused: {}",
        g.text
    );
    assert!(g.text.contains("revoked"), "{}", g.text);
    let g = o.login_with("wanda", &wpw, None);
    assert_eq!(g.status, 429, "the lockout survived: {}", g.text);
    let vt = o.login_with("victor", &vpw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = o.get("/api/v1/accounts/ACC1", &vt).body["limits"]["max_order_qty"].clone();
        if q == "777" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ctl limit change not restored: {q}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The port stays responsive while a client saturates the gateway with orders: a client
/// pipelining orders as fast as the gateway answers them, and a scraper reading `/metrics` and
/// `/api/v1/sessions` every 100 ms the whole time. Every scrape must succeed (200, complete);
/// the answer times are printed (`--nocapture`), never asserted.
#[test]
fn the_port_answers_every_scrape_while_orders_saturate_the_gateway() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The scraper reads 20 times a second: room above the default per-address limit.
    let mut o =
        Ops::with_venues("rate_per_address = 200\nrate_per_user = 200", &sim("fill")).start();
    o.user("scraper", "viewer");
    let pw = o.secrets["scraper"].0.clone();
    let token = o.login_with("scraper", &pw, None).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = o.k1.clone();
    let addr = o.gw().addr;
    let done = Arc::new(AtomicBool::new(false));
    const BATCHES: usize = 150;
    const WINDOW: usize = 32;
    let load = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
            c.signed_logon("k1", &secret);
            let mut answered = 0usize;
            for b in 0..BATCHES {
                for i in 0..WINDOW {
                    c.send(
                        "D",
                        &nos(&format!("Z{b}-{i}"), "AAPL", "1", "1", Some("100")),
                    );
                }
                // Each order's first report (New or a refusal); fills of earlier ones pass by.
                let mut first = std::collections::HashSet::new();
                while first.len() < WINDOW {
                    let m = c.expect_any(&["8", "j"]);
                    let cl = field(&m, 11).unwrap_or_default();
                    let st = field(&m, 150).unwrap_or_default();
                    if cl.starts_with(&format!("Z{b}-")) && st != "F" {
                        first.insert(cl);
                    }
                }
                answered += WINDOW;
            }
            done.store(true, Ordering::Relaxed);
            answered
        })
    };
    let mut times_us: Vec<u128> = Vec::new();
    let mut failures = Vec::new();
    while !done.load(Ordering::Relaxed) {
        for path in ["/metrics", "/api/v1/sessions"] {
            let t0 = Instant::now();
            let g = o.get(path, &token);
            times_us.push(t0.elapsed().as_micros());
            let complete = match path {
                "/metrics" => g.text.contains("portcullis_order_latency_seconds_count"),
                _ => g.body["sessions"].as_array().is_some_and(|s| !s.is_empty()),
            };
            if g.status != 200 || !complete {
                failures.push(format!("{path}: {} {}", g.status, g.text));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answered = load.join().unwrap();
    assert_eq!(answered, BATCHES * WINDOW);
    assert!(
        failures.is_empty(),
        "scrapes failed under load: {failures:?}"
    );
    assert!(
        times_us.len() >= 4,
        "scraped during the load: {}",
        times_us.len()
    );
    let m = o.get("/metrics", &token).text;
    let received = sample(&m, "portcullis_orders_received_total").unwrap();
    assert!(received >= (BATCHES * WINDOW) as f64, "{received}");
    times_us.sort_unstable();
    let q = |p: f64| times_us[((times_us.len() - 1) as f64 * p) as usize];
    eprintln!(
        "ops port under load: {} answers during {} orders: p50 {} us, p90 {} us, p99 {} us, max {} us",
        times_us.len(),
        BATCHES * WINDOW,
        q(0.5),
        q(0.9),
        q(0.99),
        times_us[times_us.len() - 1]
    );
}
