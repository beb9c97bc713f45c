//! COLD — `portcullis ctl --url https://host:9880 ...`: the `ctl` verbs through a gateway's ops
//! port over HTTPS, so a remote operator never needs a shell on the gateway host.
//!
//! Login: `--user NAME`; the password from `PORTCULLIS_OPS_PASSWORD` and the TOTP code from
//! `PORTCULLIS_OPS_TOTP`, else asked on the terminal (echo off for the password). The token
//! the port returns is cached in a 0600 file until it expires
//! (`$XDG_CACHE_HOME/portcullis/` or `~/.cache/portcullis/`, one file per URL and user); a
//! refused cached token is dropped and the login done again. `--ca FILE` pins the port's CA:
//! only certificates it issued are accepted (without it, the public web roots).
//!
//! The operator's identity comes from the token: `--by` is not sent (the port records the
//! authenticated user). A limit raise through the port waits for a second risk officer (four
//! eyes): `ctl --url ... limits approve ID` approves it, `limits pending` lists them.
//!
//! Exit codes as for the socket: 0 applied, 1 refused (by the gateway or the port: role,
//! login, validation), 2 usage or not delivered (connection, TLS).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Decimal;
use crate::ctl::{parse_duration_ms, CtlAction, LimitChanges, LimitsAction, RiskAction};

/// Where and as whom.
#[derive(Clone, Debug)]
pub struct Remote {
    /// `https://host:port` (a trailing `/` is ignored).
    pub url: String,
    pub user: Option<String>,
    /// PEM file of the CA that issued the ops port's certificate (pinned).
    pub ca: Option<PathBuf>,
}

/// Environment variables read for a login.
pub const PASSWORD_ENV: &str = "PORTCULLIS_OPS_PASSWORD";
pub const TOTP_ENV: &str = "PORTCULLIS_OPS_TOTP";

/// A failure: exit code and message.
struct Fail(u8, String);

fn usage(m: impl Into<String>) -> Fail {
    Fail(2, m.into())
}

/// Runs one `ctl` verb through the ops port; the exit code.
pub fn run(remote: &Remote, action: CtlAction) -> u8 {
    match run_inner(remote, action) {
        Ok(code) => code,
        Err(Fail(code, m)) => {
            crate::say_err(format_args!("portcullis ctl: {m}"));
            code
        }
    }
}

/// What to ask the port: method, path, body, and the member of the answer to print.
struct Call {
    post: bool,
    path: String,
    body: Value,
    pick: Option<&'static str>,
}

fn post(path: impl Into<String>, body: Value) -> Call {
    Call {
        post: true,
        path: path.into(),
        body,
        pick: None,
    }
}

fn get(path: impl Into<String>, pick: Option<&'static str>) -> Call {
    Call {
        post: false,
        path: path.into(),
        body: Value::Null,
        pick,
    }
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scope_body(scope: &crate::ctl::Scope, reason: String) -> Value {
    let (scope, name) = scope.parts();
    json!({ "scope": scope, "name": name, "reason": reason })
}

fn call_of(action: CtlAction) -> Result<Call, Fail> {
    Ok(match action {
        CtlAction::Kill { scope, audit } => post("/api/v1/kill", scope_body(&scope, audit.reason)),
        CtlAction::Unkill { scope, audit } => {
            post("/api/v1/unkill", scope_body(&scope, audit.reason))
        }
        CtlAction::EnableAccount { account, audit } => post(
            format!("/api/v1/accounts/{}/enable", enc(&account)),
            json!({ "reason": audit.reason }),
        ),
        CtlAction::Limits { action } => match action {
            LimitsAction::Set {
                account,
                max_qty,
                max_notional,
                collar_bps,
                collar_ticks,
                reference_max_age_ms,
                credit_limit,
                max_long,
                max_short,
                max_open_orders,
                ord_types,
                time_in_force,
                duplicate_window_ms,
                max_msgs,
                rate_period_ms,
                until,
                audit,
            } => {
                let expires_in_s = until
                    .as_deref()
                    .map(parse_duration_ms)
                    .transpose()
                    .map_err(|e| usage(format!("--until {e}")))?
                    .map(|ms| ms.div_ceil(1000));
                let limits = LimitChanges {
                    max_order_qty: max_qty.map(Decimal::Str),
                    max_order_notional: max_notional.map(Decimal::Str),
                    collar_bps,
                    collar_ticks,
                    reference_max_age_ms,
                    credit_limit: credit_limit.map(Decimal::Str),
                    max_long: max_long.map(Decimal::Str),
                    max_short: max_short.map(Decimal::Str),
                    max_open_orders,
                    ord_types,
                    time_in_force,
                    duplicate_window_ms,
                    max_msgs,
                    rate_period_ms,
                };
                if limits.is_empty() {
                    return Err(usage(
                        "limits set: name at least one limit (e.g. --max-qty 500)",
                    ));
                }
                let mut body =
                    json!({ "account": account, "limits": limits, "reason": audit.reason });
                if let Some(s) = expires_in_s {
                    body["expires_in_s"] = json!(s);
                }
                post("/api/v1/limits", body)
            }
            LimitsAction::Approve { id } => post(format!("/api/v1/limits/{id}/approve"), json!({})),
            LimitsAction::Pending => get("/api/v1/limits/pending", Some("pending")),
        },
        CtlAction::Risk {
            action: RiskAction::Show { account, symbol },
        } => {
            let q = symbol.map_or(String::new(), |s| format!("?symbol={}", enc(&s)));
            get(format!("/api/v1/accounts/{}{q}", enc(&account)), None)
        }
        CtlAction::Sessions => get("/api/v1/sessions", Some("sessions")),
        CtlAction::Venues => get("/api/v1/venues", Some("venues")),
        CtlAction::Block {
            address,
            duration,
            audit,
        } => {
            let for_ms = parse_duration_ms(&duration).map_err(|e| usage(format!("--for {e}")))?;
            post(
                "/api/v1/block",
                json!({ "address": address, "for_ms": for_ms, "reason": audit.reason }),
            )
        }
        CtlAction::Unblock { address, audit } => post(
            "/api/v1/unblock",
            json!({ "address": address, "reason": audit.reason }),
        ),
    })
}

fn run_inner(remote: &Remote, action: CtlAction) -> Result<u8, Fail> {
    let base = remote.url.trim_end_matches('/').to_string();
    if !base.starts_with("https://") && !base.starts_with("http://") {
        return Err(usage(format!(
            "--url {base}: give the ops port's URL, e.g. https://gateway-host:9880"
        )));
    }
    let user = remote
        .user
        .clone()
        .ok_or_else(|| usage("--url needs --user NAME (an operator of the ops port)"))?;
    let call = call_of(action)?;
    let agent = agent(remote.ca.as_deref())?;
    let cache = cache_file(&base, &user);
    let mut token = cache.as_deref().and_then(cached_token);
    for attempt in 0..2 {
        let t = match token.take() {
            Some(t) => t,
            None => login(&agent, &base, &user, cache.as_deref())?,
        };
        let (status, body) = send(&agent, &base, &call, &t)?;
        if status == 401 && attempt == 0 {
            // A cached token that expired or was revoked: log in again once.
            if let Some(c) = &cache {
                let _ = std::fs::remove_file(c);
            }
            continue;
        }
        let shown = match call.pick {
            Some(k) if status == 200 => body.get(k).cloned().unwrap_or(body.clone()),
            _ => body.clone(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_else(|_| shown.to_string())
        );
        if status == 202 {
            if let Some(id) = body.get("id") {
                crate::say_err(format_args!(
                    "portcullis ctl: a raise waits for a second risk officer: \
                     portcullis ctl --url {base} --user OTHER limits approve {id}"
                ));
            }
        }
        let applied = (200..300).contains(&status) && body.get("ok") != Some(&Value::Bool(false));
        return Ok(if applied { 0 } else { 1 });
    }
    Err(Fail(1, "the ops port refused the new token".into()))
}

fn agent(ca: Option<&Path>) -> Result<ureq::Agent, Fail> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = ca {
        let certs = crate::tls::load_certs(ca).map_err(|e| usage(format!("--ca {e}")))?;
        if certs.is_empty() {
            return Err(usage(format!(
                "--ca {}: no certificate in it",
                ca.display()
            )));
        }
        let pinned: Vec<ureq::tls::Certificate<'static>> = certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&pinned));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into())
}

fn send(agent: &ureq::Agent, base: &str, call: &Call, token: &str) -> Result<(u16, Value), Fail> {
    let url = format!("{base}{}", call.path);
    let auth = format!("Bearer {token}");
    let r = if call.post {
        agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(call.body.to_string())
    } else {
        agent.get(&url).header("Authorization", &auth).call()
    };
    answer(r, &url)
}

fn answer(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> Result<(u16, Value), Fail> {
    let mut r = r.map_err(|e| Fail(2, format!("{url}: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .read_to_string()
        .map_err(|e| Fail(2, format!("{url}: {e}")))?;
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "error": text }));
    Ok((status, body))
}

fn login(
    agent: &ureq::Agent,
    base: &str,
    user: &str,
    cache: Option<&Path>,
) -> Result<String, Fail> {
    let password = secret_from(PASSWORD_ENV, &format!("password for {user}: "), false)?;
    let totp = secret_from(TOTP_ENV, "TOTP code (empty if none): ", true)?;
    let mut body = json!({ "user": user, "password": password.as_str() });
    if !totp.trim().is_empty() {
        body["totp"] = json!(totp.trim());
    }
    let url = format!("{base}/api/v1/login");
    let r = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string());
    if let Some(p) = body.get_mut("password") {
        *p = Value::Null;
    }
    let (status, v) = answer(r, &url)?;
    let token = match (status, v.get("token").and_then(Value::as_str)) {
        (200, Some(t)) => t.to_string(),
        _ => {
            let why = v.get("error").and_then(Value::as_str).unwrap_or("refused");
            return Err(Fail(1, format!("login as {user} refused: {why}")));
        }
    };
    if let Some(c) = cache {
        let line = json!({ "token": token, "exp": exp_of(&token) }).to_string();
        if let Err(e) = crate::files::write_private(c, line.as_bytes()) {
            crate::say_err(format_args!("portcullis ctl: token not cached: {e}"));
        }
    }
    Ok(token)
}

/// `exp` of a JWT, read without checking it (the port checks it; this only avoids sending a
/// token known to have expired).
fn exp_of(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// The cache file of this URL and user: `<cache>/portcullis/ops-token-<16 hex of SHA-256>`.
fn cache_file(base: &str, user: &str) -> Option<PathBuf> {
    use sha2::Digest as _;
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let h = sha2::Sha256::digest(format!("{base}\n{user}").as_bytes());
    let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(dir.join("portcullis").join(format!("ops-token-{hex}")))
}

/// A cached token still valid for at least 10 s.
fn cached_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let token = v.get("token")?.as_str()?.to_string();
    let exp = v
        .get("exp")
        .and_then(Value::as_u64)
        .or_else(|| exp_of(&token))?;
    let now_s = crate::clock::system_utc().0 / 1_000_000_000;
    (exp > now_s + 10).then_some(token)
}

/// A secret from `env`, else asked on the terminal (`visible`: echoed, for a TOTP code, which
/// is empty when there is no terminal).
fn secret_from(env: &str, prompt: &str, visible: bool) -> Result<Zeroizing<String>, Fail> {
    if let Some(v) = std::env::var_os(env) {
        return Ok(Zeroizing::new(v.to_string_lossy().into_owned()));
    }
    let tty = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(t) => t,
        // No terminal: a TOTP code is optional (a viewer needs none; the port says when one is).
        Err(_) if visible => return Ok(Zeroizing::new(String::new())),
        Err(_) => return Err(usage(format!("no terminal to ask on: set {env}"))),
    };
    let mut out = tty
        .try_clone()
        .map_err(|e| usage(format!("terminal: {e}")))?;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();
    // Echo off through stty(1) on the terminal: no unsafe termios calls here.
    let stty = |arg: &str| {
        tty.try_clone().ok().and_then(|t| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(t)
                .status()
                .ok()
        })
    };
    if !visible {
        let _ = stty("-echo");
    }
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if !visible {
        let _ = stty("echo");
        let _ = out.write_all(b"\n");
    }
    read.map_err(|e| usage(format!("terminal: {e}")))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(enc("ACC 1/../x"), "ACC%201%2F..%2Fx");
        assert_eq!(enc("AAPL.O-1_~"), "AAPL.O-1_~");
    }

    #[test]
    fn a_token_expiry_is_read_from_its_payload() {
        use base64::Engine as _;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1234}"#);
        assert_eq!(exp_of(&format!("h.{p}.s")), Some(1234));
        assert_eq!(exp_of("garbage"), None);
    }
}
