//! COLD — the ops port's HTTP server: accept, TLS, HTTP/1.1 (hyper), limits, routing.
//!
//! Request flow: accept (at most `ops.max_connections` at once; more are closed) → TLS 1.3
//! handshake (within `ops.request_timeout_ms`) → hyper reads the head (same deadline) → the
//! body is read up to `ops.max_body_bytes` (413 beyond) within the deadline → per-address rate
//! limit → the handler runs on the blocking pool → security headers on every answer.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::guard::{Lockout, LoginGuard, RateLimiter};
use super::limits::{self, Approvals, Pending};
use super::token::{Claims, Tokens};
use super::users::{self, Role, UserStore};
use crate::build::EngineHandle;
use crate::clock::status::ClockStatus;
use crate::config::{Config, OpsCfg};
use crate::ctl::{self, LimitChanges};
use crate::monitor::{Counter, Counters, Kind};

/// HSTS: two years, subdomains (issue 14).
const HSTS: &str = "max-age=63072000; includeSubDomains";
/// Most bytes of events.log one `/api/v1/events` answer carries.
const EVENTS_MAX_BYTES: u64 = 64 * 1024;
/// The status page (`GET /`): one HTML file, one script, one style sheet, all from this
/// binary; no external fetches, no inline script or style (see [`PAGE_CSP`]).
const PAGE_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/app.js");
const PAGE_CSS: &str = include_str!("page/app.css");
/// The page's Content-Security-Policy: its own script and style only, requests to this origin
/// only, no frames, no form posts anywhere, no base-URI change.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";
/// The ops audit log (logins, logouts, key revocations, TLS reloads, limit requests).
pub const AUDIT_LOG: &str = "ops-audit.log";

fn now_ms() -> u64 {
    crate::clock::system_utc().0 / 1_000_000
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every request shares.
pub struct State {
    ops: OpsCfg,
    cfg: Config,
    https: bool,
    tls: Option<RwLock<Arc<rustls::ServerConfig>>>,
    counters: Arc<Counters>,
    listeners: Arc<crate::tls::TlsListeners>,
    clock: Arc<ClockStatus>,
    listen_addrs: Vec<SocketAddr>,
    data_dir: PathBuf,
    socket: PathBuf,
    /// Behind a lock: a PKCS#11 master key's session is not shared between threads.
    store: Mutex<UserStore>,
    tokens: Tokens,
    guards: Mutex<Guards>,
    approvals: Mutex<Approvals>,
    audit_lock: Mutex<()>,
}

struct Guards {
    address: RateLimiter<IpAddr>,
    user: RateLimiter<String>,
    login: RateLimiter<IpAddr>,
    lockout: LoginGuard,
}

fn server_tls(ops: &OpsCfg) -> Result<Option<rustls::ServerConfig>, String> {
    let Some(t) = &ops.tls else {
        return Ok(None);
    };
    let certs = crate::tls::load_certs(&t.cert).map_err(|e| format!("ops.tls.cert: {e}"))?;
    let key = crate::tls::load_key(&t.key).map_err(|e| format!("ops.tls.key: {e}"))?;
    let mut c = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("ops.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("ops.tls: {e}"))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(c))
}

impl State {
    pub fn new(cfg: &Config, ops: &OpsCfg, handle: &EngineHandle) -> Result<State, String> {
        let store = UserStore::open(cfg, false)?;
        // The token key is created with the store (first `users add`, or here).
        let file = store.modify(|f| Ok(f.clone()))?;
        if file.users.is_empty() {
            crate::say_err(format_args!(
                "portcullis: ops port: no operators yet (add one with `portcullis users add NAME \
                 --role risk-officer`)"
            ));
        }
        let data_dir = &cfg.gateway.data_dir;
        let tokens = Tokens::new(
            &file.token_key()?,
            &ops.issuer,
            &ops.audience,
            ops.jwt_lifetime_s,
        )
        .persisted(&data_dir.join(super::token::REVOKED_FILE), now_ms() / 1000)?;
        let tls = server_tls(ops)?.map(|c| RwLock::new(Arc::new(c)));
        Ok(State {
            https: tls.is_some(),
            tls,
            ops: ops.clone(),
            cfg: cfg.clone(),
            counters: handle.counters.clone(),
            listeners: handle.tls.clone(),
            clock: handle.clock_status.clone(),
            listen_addrs: handle.listen_addrs.clone(),
            data_dir: cfg.gateway.data_dir.clone(),
            socket: cfg.gateway.data_dir.join(ctl::SOCKET),
            store: Mutex::new(store),
            tokens,
            guards: Mutex::new(Guards {
                address: RateLimiter::new(
                    f64::from(ops.rate_per_address),
                    f64::from(ops.rate_per_address) * 2.0,
                ),
                user: RateLimiter::new(
                    f64::from(ops.rate_per_user),
                    f64::from(ops.rate_per_user) * 2.0,
                ),
                login: RateLimiter::new(
                    f64::from(ops.login_per_minute) / 60.0,
                    f64::from(ops.login_per_minute),
                ),
                lockout: LoginGuard::new(
                    ops.lockout_failures,
                    ops.lockout_address_failures,
                    ops.lockout_ms,
                )
                .persisted(&data_dir.join(super::guard::LOCKOUTS_FILE), now_ms())?,
            }),
            approvals: Mutex::new(Approvals::default()),
            audit_lock: Mutex::new(()),
        })
    }
}

// ---- the thread --------------------------------------------------------------------------

/// The `portcullis-ops` thread: a current-thread runtime until `stop` or `gateway_stop`.
pub fn run(
    listener: std::net::TcpListener,
    state: State,
    stop: Arc<AtomicBool>,
    gateway_stop: Arc<AtomicBool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(16)
        .thread_name("portcullis-ops-work")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::say_err(format_args!("portcullis: ops port: no runtime: {e}"));
            return;
        }
    };
    let state = Arc::new(state);
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                crate::say_err(format_args!("portcullis: ops port: {e}"));
                return;
            }
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(state.ops.max_connections));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, peer)) = accepted else { continue };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        // Every slot taken: this connection is closed unanswered.
                        state.counters.inc(Counter::OpsRateLimited);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let st = state.clone();
                    tokio::spawn(async move {
                        connection(st, tcp, peer).await;
                        drop(permit);
                    });
                }
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) || gateway_stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        }
    });
    // Connections still open are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_millis(200));
}

async fn connection(state: Arc<State>, tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let deadline = Duration::from_millis(state.ops.request_timeout_ms);
    let tls = state.tls.as_ref().map(|t| {
        t.read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    });
    match tls {
        Some(cfg) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => http(state, s, peer).await,
                _ => state.counters.inc(Counter::OpsTlsFailures),
            }
        }
        None => http(state, tcp, peer).await,
    }
}

async fn http<IO>(state: Arc<State>, io: IO, peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Duration::from_millis(state.ops.request_timeout_ms);
    let st = state.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(answer(st, req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(deadline)
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    let _ = conn.await;
}

/// The Prometheus name and type of a counter: `portcullis_<name>_total` for counters, the
/// name alone for gauges, in base units (seconds) where the counter holds another unit.
pub fn metric_name(c: Counter) -> (String, &'static str) {
    match c {
        Counter::MaxDutyCycleNs => ("portcullis_max_duty_cycle_seconds".into(), "gauge"),
        // Whole days, exported × 86400.
        Counter::TlsCertDaysToExpiry => ("portcullis_tls_cert_remaining_seconds".into(), "gauge"),
        _ => match c.kind() {
            Kind::Total => (format!("portcullis_{}_total", c.name()), "counter"),
            Kind::Gauge => (format!("portcullis_{}", c.name()), "gauge"),
        },
    }
}

// ---- answers -----------------------------------------------------------------------------

/// What a handler answers.
enum Reply {
    Json(StatusCode, Value),
    /// 429 (or a lockout) with `Retry-After` seconds.
    Retry(StatusCode, Value, u64),
    /// Prometheus text exposition.
    Metrics(String),
    /// A file of the status page: content type, body.
    Page(&'static str, &'static str),
}

fn err(status: StatusCode, message: impl Into<String>) -> Reply {
    Reply::Json(status, json!({ "error": message.into() }))
}

fn ok(v: Value) -> Reply {
    Reply::Json(StatusCode::OK, v)
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    state.counters.inc(Counter::OpsRequests);
    let deadline = Duration::from_millis(state.ops.request_timeout_ms);
    let (parts, body) = req.into_parts();
    let limit = state.ops.max_body_bytes;
    let reply = match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => err(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        ),
        Ok(Err(_)) => err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {limit} bytes (ops.max_body_bytes)"),
        ),
        Ok(Ok(b)) => {
            let body = b.to_bytes();
            let st = state.clone();
            let ask = Ask {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                bearer: parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| t.trim().to_string()),
                body,
                peer,
            };
            match tokio::task::spawn_blocking(move || st.handle(&ask)).await {
                Ok(r) => r,
                Err(_) => err(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            }
        }
    };
    state.respond(reply)
}

/// One request, as the handler sees it.
struct Ask {
    method: Method,
    path: String,
    query: Option<String>,
    bearer: Option<String>,
    body: Bytes,
    peer: SocketAddr,
}

impl Ask {
    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Reply> {
        serde_json::from_slice(&self.body).map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                crate::auth::mask::free_text(&format!("bad request body: {e}")),
            )
        })
    }
    fn query(&self, key: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_string())
        })
    }
}

/// An authenticated operator.
struct Who {
    claims: Claims,
    role: Role,
}

impl Who {
    fn by(&self, peer: SocketAddr) -> String {
        format!(
            "{} ({}, ops port from {})",
            self.claims.sub,
            self.role.as_str(),
            peer.ip()
        )
    }
}

#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    totp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    scope: String,
    #[serde(default)]
    name: Option<String>,
    reason: String,
}

/// `POST /api/v1/block` and `/unblock` (what `portcullis ctl block|unblock` sends).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    address: String,
    /// How long a block lasts (ms); not for an unblock.
    #[serde(default)]
    for_ms: Option<u64>,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    account: String,
    limits: LimitChanges,
    reason: String,
    /// A temporary change: reverts by itself after this many seconds.
    #[serde(default)]
    expires_in_s: Option<u64>,
}

fn status_of(v: &Value) -> StatusCode {
    if v.get("ok") == Some(&Value::Bool(true)) {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

impl State {
    fn respond(&self, reply: Reply) -> Response<Full<Bytes>> {
        let (status, body, ctype, retry) = match reply {
            Reply::Json(s, v) => (s, v.to_string(), "application/json", None),
            Reply::Retry(s, v, after) => (s, v.to_string(), "application/json", Some(after)),
            Reply::Metrics(text) => (
                StatusCode::OK,
                text,
                "text/plain; version=0.0.4; charset=utf-8",
                None,
            ),
            Reply::Page(ctype, body) => (StatusCode::OK, body.to_string(), ctype, None),
        };
        let page = ctype.starts_with("text/html");
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if page {
                PAGE_CSP
            } else {
                "default-src 'none'; frame-ancestors 'none'"
            }),
        );
        if page {
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if self.https {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-ops\""),
            );
        }
        r
    }

    fn audit(&self, line: Value) {
        use std::io::Write as _;
        let mut line = line;
        if let Some(o) = line.as_object_mut() {
            o.insert("at_ms".into(), json!(now_ms()));
        }
        let path = self.data_dir.join(AUDIT_LOG);
        let _one = lock(&self.audit_lock);
        let written = crate::files::open_private(
            std::fs::OpenOptions::new().create(true).append(true),
            &path,
        )
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            crate::say_err(format_args!(
                "portcullis: ops audit log {}: {e}",
                path.display()
            ));
        }
    }

    fn limited(&self, what: &str, after: u64) -> Reply {
        self.counters.inc(Counter::OpsRateLimited);
        Reply::Retry(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": format!("too many requests ({what}); retry after {after} s") }),
            after,
        )
    }

    /// The whole request: rate limit, route, authenticate, authorise, act.
    fn handle(&self, ask: &Ask) -> Reply {
        let ip = ask.peer.ip();
        if let Err(after) = lock(&self.guards).address.take(&ip, now_ms()) {
            return self.limited("per address, ops.rate_per_address", after);
        }
        let path = ask.path.trim_end_matches('/');
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let m = &ask.method;
        match (m, segs.as_slice()) {
            (&Method::GET, ["healthz"]) => return ok(json!({ "status": "ok" })),
            // The status page itself is public; everything it shows needs a login.
            (&Method::GET, [] | ["index.html"]) => {
                return Reply::Page("text/html; charset=utf-8", PAGE_HTML)
            }
            (&Method::GET, ["app.js"]) => {
                return Reply::Page("text/javascript; charset=utf-8", PAGE_JS)
            }
            (&Method::GET, ["app.css"]) => return Reply::Page("text/css; charset=utf-8", PAGE_CSS),
            (&Method::POST, ["api", "v1", "login"]) => return self.login(ask),
            (&Method::GET, ["metrics"]) if self.ops.metrics_public => {
                return Reply::Metrics(self.metrics())
            }
            _ => {}
        }
        // Everything else needs a token.
        let who = match self.authenticate(ask) {
            Ok(w) => w,
            Err(r) => return r,
        };
        if let Err(after) = lock(&self.guards).user.take(&who.claims.sub, now_ms()) {
            return self.limited("per user, ops.rate_per_user", after);
        }
        let need = |role: Role| -> Result<(), Reply> {
            if who.role >= role {
                Ok(())
            } else {
                Err(err(
                    StatusCode::FORBIDDEN,
                    format!(
                        "role {} may not do this (needs {})",
                        who.role.as_str(),
                        role.as_str()
                    ),
                ))
            }
        };
        let r = (|| -> Result<Reply, Reply> {
            Ok(match (m, segs.as_slice()) {
                (&Method::POST, ["api", "v1", "refresh"]) => self.refresh(ask, &who)?,
                (&Method::POST, ["api", "v1", "logout"]) => {
                    self.revoke(&who.claims);
                    self.audit(json!({ "action": "logout", "user": who.claims.sub, "peer": ip.to_string() }));
                    ok(json!({ "ok": true, "revoked": who.claims.jti }))
                }
                (&Method::GET, ["api", "v1", "whoami"]) => ok(json!({
                    "user": who.claims.sub, "role": who.role.as_str(), "expires": who.claims.exp,
                })),
                (&Method::GET, ["readyz"]) => self.readyz(),
                (&Method::GET, ["metrics"]) => Reply::Metrics(self.metrics()),
                (&Method::GET, ["api", "v1", "clock"]) => ok(self.clock_json()),
                (&Method::GET, ["api", "v1", "latency"]) => ok(self.latency_json()),
                (&Method::GET, ["api", "v1", "tls"]) => ok(self.tls_json()),
                (&Method::GET, ["api", "v1", "keys"]) => self.keys_json()?,
                (&Method::GET, ["api", "v1", "accounts"]) => self.accounts_json()?,
                (&Method::GET, ["api", "v1", "sessions"]) => {
                    ok(json!({ "sessions": self.listing(true)? }))
                }
                (&Method::GET, ["api", "v1", "venues"]) => {
                    ok(json!({ "venues": self.listing(false)? }))
                }
                (&Method::GET, ["api", "v1", "accounts", a]) => self.account_json(a, ask)?,
                (&Method::GET, ["api", "v1", "events"]) => self.events_json(ask)?,
                // Intrusion detection (src/ids): the recent alerts and what was done.
                (&Method::GET, ["api", "v1", "alerts"]) => ok(json!({
                    "alerts": self.socket.parent().map(crate::ids::recent_json),
                })),
                (&Method::GET, ["api", "v1", "limits", "pending"]) => {
                    let mut a = lock(&self.approvals);
                    self.expire_pending(&mut a);
                    ok(json!({ "pending": a.list() }))
                }
                (&Method::POST, ["api", "v1", "kill"]) => {
                    need(Role::RiskOfficer)?;
                    self.kill(ask, &who, true)?
                }
                (&Method::POST, ["api", "v1", "unkill"]) => {
                    need(Role::RiskOfficer)?;
                    self.kill(ask, &who, false)?
                }
                (&Method::POST, ["api", "v1", "accounts", a, "enable"]) => {
                    need(Role::RiskOfficer)?;
                    let b: ReasonBody = ask.json()?;
                    let v = self.control(&ctl::Request::EnableAccount {
                        account: a.to_string(),
                        by: who.by(ask.peer),
                        reason: b.reason,
                    })?;
                    Reply::Json(status_of(&v), v)
                }
                (&Method::POST, ["api", "v1", "limits"]) => {
                    need(Role::RiskOfficer)?;
                    self.limits(ask, &who)?
                }
                (&Method::POST, ["api", "v1", "limits", id, "approve"]) => {
                    need(Role::RiskOfficer)?;
                    self.approve(ask, &who, id)?
                }
                (&Method::POST, ["api", "v1", "keys", id, "revoke"]) => {
                    need(Role::Admin)?;
                    self.revoke_key(ask, &who, id)?
                }
                (&Method::POST, ["api", "v1", "block"]) => {
                    need(Role::Admin)?;
                    let b: BlockBody = ask.json()?;
                    let for_ms = b
                        .for_ms
                        .filter(|ms| *ms > 0)
                        .ok_or_else(|| err(StatusCode::BAD_REQUEST, "for_ms (> 0) is required"))?;
                    let v = self.control(&ctl::Request::Block {
                        address: b.address,
                        for_ms,
                        by: who.by(ask.peer),
                        reason: b.reason,
                    })?;
                    Reply::Json(status_of(&v), v)
                }
                (&Method::POST, ["api", "v1", "unblock"]) => {
                    need(Role::Admin)?;
                    let b: BlockBody = ask.json()?;
                    let v = self.control(&ctl::Request::Unblock {
                        address: b.address,
                        by: who.by(ask.peer),
                        reason: b.reason,
                    })?;
                    Reply::Json(status_of(&v), v)
                }
                (&Method::POST, ["api", "v1", "tls", "reload"]) => {
                    need(Role::Admin)?;
                    self.reload_tls(ask, &who)
                }
                _ => err(StatusCode::NOT_FOUND, format!("no endpoint {m} {path}")),
            })
        })();
        r.unwrap_or_else(|e| e)
    }

    // ---- authentication -----------------------------------------------------------------

    /// Revokes a token; a revocation the file did not take still holds until a restart.
    fn revoke(&self, c: &Claims) {
        if let Err(e) = self.tokens.revoke(c) {
            crate::say_err(format_args!(
                "portcullis: ops port: revocation not saved (it holds until a restart): {e}"
            ));
        }
    }

    fn unauthorized(&self, message: &str) -> Reply {
        self.counters.inc(Counter::OpsAuthFailures);
        err(StatusCode::UNAUTHORIZED, message)
    }

    fn authenticate(&self, ask: &Ask) -> Result<Who, Reply> {
        let Some(t) = &ask.bearer else {
            return Err(self.unauthorized(
                "authentication required: Authorization: Bearer <token from POST /api/v1/login>",
            ));
        };
        let claims = self
            .tokens
            .check(t, now_ms() / 1000)
            .map_err(|e| self.unauthorized(e.message()))?;
        // The operator must still exist; a lowered role applies at once.
        let file = lock(&self.store)
            .load()
            .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "operator store unreadable"))?;
        let Some(u) = file.find(&claims.sub) else {
            return Err(self.unauthorized("operator no longer exists"));
        };
        let role = u.role.min(claims.role);
        Ok(Who { claims, role })
    }

    fn login(&self, ask: &Ask) -> Reply {
        let ip = ask.peer.ip();
        let now = now_ms();
        if let Err(after) = lock(&self.guards).login.take(&ip, now) {
            return self.limited("logins per address, ops.login_per_minute", after);
        }
        let b: LoginBody = match ask.json() {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Some(until) = lock(&self.guards).lockout.locked(&b.user, ip, now) {
            self.counters.inc(Counter::OpsAuthFailures);
            let after = until.saturating_sub(now).div_ceil(1000).max(1);
            return Reply::Retry(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": format!("too many failed logins for this user from this address; retry after {after} s") }),
                after,
            );
        }
        let r = self.check_login(&b, now / 1000);
        let user_shown = crate::auth::mask::free_text(&b.user);
        match r {
            Ok(role) => {
                lock(&self.guards).lockout.succeeded(&b.user, ip);
                match self.tokens.issue(&b.user, role, now / 1000) {
                    Ok((token, c)) => {
                        self.audit(json!({ "action": "login", "user": user_shown, "role": role.as_str(), "peer": ip.to_string(), "jti": c.jti }));
                        ok(json!({
                            "token": token, "token_type": "Bearer", "expires_in": self.tokens.lifetime_s(),
                            "user": b.user, "role": role.as_str(),
                        }))
                    }
                    Err(_) => err(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue a token"),
                }
            }
            Err(why) => {
                self.counters.inc(Counter::OpsAuthFailures);
                let l = lock(&self.guards).lockout.failed(&b.user, ip, now);
                if matches!(l, Lockout::Locked { .. }) {
                    self.counters.inc(Counter::OpsLoginLockouts);
                }
                self.audit(json!({ "action": "login-refused", "user": user_shown, "peer": ip.to_string(), "why": why.as_str(), "locked": matches!(l, Lockout::Locked { .. }) }));
                let msg = match why {
                    users::LoginFailure::TotpMissing => "a TOTP code is required for this user",
                    _ => "invalid credentials",
                };
                err(StatusCode::UNAUTHORIZED, msg)
            }
        }
    }

    /// Password (outside the store's lock: Argon2 takes tens of ms), then TOTP where needed.
    fn check_login(&self, b: &LoginBody, now_s: u64) -> Result<Role, users::LoginFailure> {
        use users::LoginFailure as F;
        let user = lock(&self.store)
            .load()
            .ok()
            .and_then(|f| f.find(&b.user).map(|u| (u.role, u.password_hash.clone())));
        let Some((role, hash)) = user else {
            // As slow as a known user's answer.
            let _ = users::verify_password(users::dummy_hash(), &b.password);
            return Err(F::UnknownUser);
        };
        if !users::verify_password(&hash, &b.password) {
            return Err(F::BadPassword);
        }
        match b.totp.as_deref().filter(|c| !c.is_empty()) {
            Some(code) => users::use_totp(&lock(&self.store), &b.user, code, now_s)?,
            None if self.ops.mfa_required && role.privileged() => return Err(F::TotpMissing),
            None => {}
        }
        Ok(role)
    }

    fn refresh(&self, ask: &Ask, who: &Who) -> Result<Reply, Reply> {
        let b: RefreshBody = if ask.body.is_empty() {
            RefreshBody::default()
        } else {
            ask.json()?
        };
        let now = now_ms();
        if self.ops.mfa_required && who.role.privileged() {
            let Some(code) = b.totp.filter(|c| !c.is_empty()) else {
                return Err(self.unauthorized("a fresh TOTP code is required to refresh"));
            };
            let used = users::use_totp(&lock(&self.store), &who.claims.sub, &code, now / 1000);
            if let Err(e) = used {
                self.audit(json!({ "action": "refresh-refused", "user": who.claims.sub, "why": e.as_str() }));
                return Err(self.unauthorized("invalid TOTP code"));
            }
        }
        let (token, _) = self
            .tokens
            .issue(&who.claims.sub, who.role, now / 1000)
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue a token"))?;
        self.revoke(&who.claims);
        Ok(ok(json!({
            "token": token, "token_type": "Bearer", "expires_in": self.tokens.lifetime_s(),
            "user": who.claims.sub, "role": who.role.as_str(),
        })))
    }

    // ---- reads --------------------------------------------------------------------------

    fn control(&self, req: &ctl::Request) -> Result<Value, Reply> {
        ctl::call(&self.socket, req).map_err(|e| {
            crate::say_err(format_args!("portcullis: ops port: control socket: {e}"));
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway's control path did not answer",
            )
        })
    }

    /// Every configured session (`sessions`) or venue, as the gateway thread sees it now: one
    /// control request each (config order).
    fn listing(&self, sessions: bool) -> Result<Vec<Value>, Reply> {
        let n = if sessions {
            self.cfg.sessions.len()
        } else {
            self.cfg.venues.len()
        };
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let req = if sessions {
                ctl::Request::SessionShow { index: i as u32 }
            } else {
                ctl::Request::VenueShow { index: i as u16 }
            };
            let mut v = self.control(&req)?;
            if v.get("ok") != Some(&Value::Bool(true)) {
                return Err(err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway did not describe every item",
                ));
            }
            if let Some(o) = v.as_object_mut() {
                o.remove("ok");
                o.remove("seq");
            }
            out.push(v);
        }
        Ok(out)
    }

    fn clock_json(&self) -> Value {
        let s = self.clock.snapshot();
        json!({
            "state": s.state.as_str(),
            "divergence_ns": s.divergence_ns,
            "max_divergence_ns": s.policy.max_divergence_ns,
            "breach": s.breach,
            "halted": s.halted,
            "maxerror_ns": s.maxerror_ns,
            "esterror_ns": s.esterror_ns,
            "kernel_offset_ns": s.kernel_offset_ns,
            "phc_offset_ns": s.phc_offset_ns,
            "updated_at_ns": s.updated_at.0,
            "summary": s.one_line(),
        })
    }

    fn ops_cert(&self) -> Option<Value> {
        let t = self.ops.tls.as_ref()?;
        let now = (now_ms() / 1000) as i64;
        let certs = crate::tls::load_certs(&t.cert).ok()?;
        let first = certs.first()?;
        let (_, not_after) = crate::tls::validity(first).ok()?;
        Some(json!({
            "name": "ops",
            "cert": t.cert.display().to_string(),
            "subject": crate::tls::subject(first),
            "not_after": crate::tls::utc_date(not_after),
            "not_after_unix": not_after,
            "days_to_expiry": crate::tls::days_left(not_after, now),
        }))
    }

    fn tls_json(&self) -> Value {
        let now = (now_ms() / 1000) as i64;
        let mut list: Vec<Value> = self
            .listeners
            .certs
            .iter()
            .map(|c| {
                let na = c.not_after_unix.load(Ordering::Relaxed);
                json!({
                    "name": format!("listener[{}]", c.listener),
                    "address": self.listen_addrs.get(c.listener).map(|a| a.to_string()),
                    "cert": c.files.cert.display().to_string(),
                    "not_after": crate::tls::utc_date(na),
                    "not_after_unix": na,
                    "days_to_expiry": crate::tls::days_left(na, now),
                    "reloads": c.reloads.load(Ordering::Relaxed),
                })
            })
            .collect();
        list.extend(self.ops_cert());
        json!({ "certificates": list, "warn_days": self.listeners.warn_days })
    }

    fn readyz(&self) -> Reply {
        let mut failing = Vec::new();
        if self.listen_addrs.is_empty() {
            failing.push(json!({ "item": "listeners", "problem": "no listener bound" }));
        }
        let c = self.clock.snapshot();
        if c.breach || c.halted {
            failing.push(json!({ "item": "clock", "problem": c.one_line() }));
        }
        let probe = self.data_dir.join(".ops-ready-probe");
        match crate::files::write_private(&probe, b"ok") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => failing.push(
                json!({ "item": "data_dir", "problem": format!("not writable: {}", e.kind()) }),
            ),
        }
        // Venue links: an external venue that is down refuses every order routed to it.
        match self.listing(false) {
            Ok(venues) => {
                for v in venues.iter().filter(|v| v["up"] == Value::Bool(false)) {
                    failing.push(json!({ "item": "venue", "problem": format!("{} is down", v["name"].as_str().unwrap_or("?")) }));
                }
            }
            Err(_) => failing
                .push(json!({ "item": "gateway", "problem": "the gateway thread did not answer" })),
        }
        let now = (now_ms() / 1000) as i64;
        for cert in self.tls_json()["certificates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if cert["not_after_unix"].as_i64().is_some_and(|t| t <= now) {
                failing.push(json!({ "item": "tls", "problem": format!("{} expired", cert["name"].as_str().unwrap_or("?")) }));
            }
        }
        if failing.is_empty() {
            ok(json!({ "ready": true }))
        } else {
            Reply::Json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ready": false, "failing": failing }),
            )
        }
    }

    fn metrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        for c in Counter::ALL {
            let (name, kind) = metric_name(*c);
            let v = self.counters.get(*c);
            let value = match c {
                Counter::MaxDutyCycleNs => format!("{}", v as f64 / 1e9),
                Counter::TlsCertDaysToExpiry => format!("{}", v.saturating_mul(86_400)),
                _ => v.to_string(),
            };
            out.push_str(&format!(
                "# HELP {name} {}\n# TYPE {name} {kind}\n{name} {value}\n",
                c.help()
            ));
        }
        self.latency_metrics(&mut out);
        let s = self.clock.snapshot();
        out.push_str(
            "# HELP portcullis_clock_divergence_seconds Estimated divergence of the clock from UTC (NaN: unknown)\n# TYPE portcullis_clock_divergence_seconds gauge\n",
        );
        match s.divergence_ns {
            Some(ns) => out.push_str(&format!(
                "portcullis_clock_divergence_seconds {}\n",
                ns as f64 / 1e9
            )),
            None => out.push_str("portcullis_clock_divergence_seconds NaN\n"),
        }
        out.push_str("# HELP portcullis_clock_halted Whether new orders are halted for the clock (CLOCK-2)\n# TYPE portcullis_clock_halted gauge\n");
        out.push_str(&format!("portcullis_clock_halted {}\n", u8::from(s.halted)));
        let certs = self.tls_json();
        let certs: Vec<(String, i64)> = certs["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.replace(['"', '\\', '\n'], "_"),
                    c["not_after_unix"].as_i64()?,
                ))
            })
            .collect();
        let now = (now_ms() / 1000) as i64;
        out.push_str("# HELP portcullis_certificate_expiry_timestamp_seconds When each TLS certificate expires (Unix time)\n# TYPE portcullis_certificate_expiry_timestamp_seconds gauge\n");
        for (n, t) in &certs {
            out.push_str(&format!(
                "portcullis_certificate_expiry_timestamp_seconds{{certificate=\"{n}\"}} {t}\n"
            ));
        }
        out.push_str("# HELP portcullis_certificate_remaining_seconds Time left until each TLS certificate expires (negative: expired)\n# TYPE portcullis_certificate_remaining_seconds gauge\n");
        for (n, t) in &certs {
            out.push_str(&format!(
                "portcullis_certificate_remaining_seconds{{certificate=\"{n}\"}} {}\n",
                t - now
            ));
        }
        out
    }

    /// The in-gateway latency histograms (`monitor::latency`) as Prometheus summaries (window
    /// quantiles, `_count`/`_sum` since start) and a `_max_seconds` gauge beside each.
    fn latency_metrics(&self, out: &mut String) {
        use crate::monitor::latency::{Series, QUANTILES};
        let secs = |ns: Option<u64>| {
            ns.map_or_else(|| "NaN".to_string(), |v| (v as f64 / 1e9).to_string())
        };
        let all = self.counters.latency.snapshot(now_ms());
        for (series, s) in Series::ALL.iter().zip(all.iter()) {
            let name = series.metric();
            out.push_str(&format!(
                "# HELP {name} {}\n# TYPE {name} summary\n",
                series.help()
            ));
            for (q, v) in QUANTILES.iter().zip(s.quantiles_ns.iter()) {
                out.push_str(&format!("{name}{{quantile=\"{q}\"}} {}\n", secs(*v)));
            }
            out.push_str(&format!(
                "{name}_sum {}\n{name}_count {}\n",
                s.sum_ns as f64 / 1e9,
                s.count
            ));
            let max = name.replace("_seconds", "_max_seconds");
            out.push_str(&format!(
                "# HELP {max} Largest sample in the quantile window (NaN: none)\n# TYPE {max} gauge\n{max} {}\n",
                secs(s.max_ns)
            ));
        }
    }

    /// `GET /api/v1/latency`: both series, in microseconds.
    fn latency_json(&self) -> Value {
        use crate::monitor::latency::{Series, WINDOW_MS};
        let us = |ns: Option<u64>| ns.map(|v| v as f64 / 1e3);
        let all = self.counters.latency.snapshot(now_ms());
        let mut o = serde_json::Map::new();
        for (series, s) in Series::ALL.iter().zip(all.iter()) {
            let q: serde_json::Map<String, Value> = ["p50", "p90", "p99", "p99.9"]
                .iter()
                .zip(s.quantiles_ns.iter())
                .map(|(q, v)| ((*q).to_string(), json!(us(*v))))
                .collect();
            o.insert(
                series.key().into(),
                json!({
                    "count": s.count,
                    "sum_us": s.sum_ns as f64 / 1e3,
                    "window_count": s.window_count,
                    "quantiles_us": q,
                    "max_us": us(s.max_ns),
                }),
            );
        }
        o.insert("unit".into(), json!("microseconds"));
        o.insert(
            "window_s".into(),
            json!([WINDOW_MS / 1000, 2 * WINDOW_MS / 1000]),
        );
        Value::Object(o)
    }

    fn keys_json(&self) -> Result<Reply, Reply> {
        let (ks, _) = crate::auth::admin::open_store(&self.cfg, false)
            .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"))?;
        let file = ks
            .load()
            .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "key store unreadable"))?;
        let keys: Vec<Value> = file
            .keys
            .iter()
            .map(|k| {
                json!({
                    "id": k.id,
                    "role": k.role,
                    "status": k.status,
                    "scopes": k.scopes,
                    "comp_ids": k.comp_ids,
                    "accounts": k.accounts.iter().map(|a| if a == crate::auth::keys::ANY_ACCOUNT { a.clone() } else { crate::auth::mask::account(a) }).collect::<Vec<_>>(),
                    "symbols": k.symbols,
                    "allow": k.allow,
                    "tier": k.tier,
                    "expires_ms": k.expires_ms,
                    "created_ms": k.created_ms,
                    "rotated_ms": k.rotated_ms,
                    "secrets": k.secrets.iter().map(|s| json!({ "not_after_ms": s.not_after_ms })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(ok(json!({ "keys": keys })))
    }

    fn show(&self, account: &str, symbol: Option<String>) -> Result<Value, Reply> {
        let v = self.control(&ctl::Request::RiskShow {
            account: account.to_string(),
            symbol,
        })?;
        if v.get("ok") != Some(&Value::Bool(true)) {
            return Err(Reply::Json(StatusCode::NOT_FOUND, v));
        }
        Ok(v)
    }

    fn account_json(&self, account: &str, ask: &Ask) -> Result<Reply, Reply> {
        let mut v = self.show(account, ask.query("symbol"))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("account".into(), json!(crate::auth::mask::account(account)));
        }
        Ok(ok(v))
    }

    fn accounts_json(&self) -> Result<Reply, Reply> {
        let mut out = Vec::new();
        for a in &self.cfg.accounts {
            let mut v = self.show(&a.name, None)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("account".into(), json!(crate::auth::mask::account(&a.name)));
            }
            out.push(v);
        }
        Ok(ok(json!({ "accounts": out })))
    }

    /// events.log from byte offset `since` (default: its last 64 KiB), whole lines, masked.
    fn events_json(&self, ask: &Ask) -> Result<Reply, Reply> {
        let since: Option<u64> = match ask.query("since") {
            Some(s) => Some(s.parse().map_err(|_| {
                err(
                    StatusCode::BAD_REQUEST,
                    "since must be a byte offset (the `next` of the last answer)",
                )
            })?),
            None => None,
        };
        let path = self.data_dir.join("events.log");
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return Ok(ok(json!({ "events": [], "next": 0 }))),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        // A file shorter than the cursor was rotated: start again from its beginning.
        let start = match since {
            Some(s) if s <= len => s,
            Some(_) => 0,
            None => len.saturating_sub(EVENTS_MAX_BYTES),
        };
        let end = len.min(start + EVENTS_MAX_BYTES);
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "events.log unreadable"))?;
        // Whole lines only: a partial first line (tail start) and last line are left out.
        let mut from = 0;
        if since.is_none() && start > 0 {
            from = buf
                .iter()
                .position(|b| *b == b'\n')
                .map_or(buf.len(), |i| i + 1);
        }
        let to = buf
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(from, |i| i + 1)
            .max(from);
        let text = String::from_utf8_lossy(buf.get(from..to).unwrap_or_default());
        let events: Vec<String> = text.lines().map(crate::auth::mask::free_text).collect();
        Ok(ok(json!({ "events": events, "next": start + to as u64 })))
    }

    // ---- controls -----------------------------------------------------------------------

    fn kill(&self, ask: &Ask, who: &Who, on: bool) -> Result<Reply, Reply> {
        let b: KillBody = ask.json()?;
        let by = who.by(ask.peer);
        let make = |scope: String, name: Option<String>| {
            if on {
                ctl::Request::Kill {
                    scope,
                    name,
                    by: by.clone(),
                    reason: b.reason.clone(),
                }
            } else {
                ctl::Request::Unkill {
                    scope,
                    name,
                    by: by.clone(),
                    reason: b.reason.clone(),
                }
            }
        };
        if b.scope == "key" {
            // A key's sessions: those whose client CompID the key may log on as.
            let id = b.name.clone().ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "scope \"key\" needs a key id in name",
                )
            })?;
            let (ks, _) = crate::auth::admin::open_store(&self.cfg, false)
                .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"))?;
            let file = ks
                .load()
                .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "key store unreadable"))?;
            let key = file
                .keys
                .iter()
                .find(|k| k.id == id)
                .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no key {id:?}")))?;
            let sessions: Vec<String> = self
                .cfg
                .sessions
                .iter()
                .filter(|s| key.comp_ids.contains(&s.their_comp_id))
                .map(|s| s.store_key())
                .collect();
            if sessions.is_empty() {
                return Err(err(
                    StatusCode::NOT_FOUND,
                    format!("key {id:?} has no configured session"),
                ));
            }
            let mut answers = Vec::new();
            let mut all_ok = true;
            for s in sessions {
                let v = self.control(&make("session".into(), Some(s)))?;
                all_ok &= v.get("ok") == Some(&Value::Bool(true));
                answers.push(v);
            }
            let v = json!({ "ok": all_ok, "key": id, "sessions": answers });
            return Ok(Reply::Json(status_of(&v), v));
        }
        let v = self.control(&make(b.scope.clone(), b.name.clone()))?;
        Ok(Reply::Json(status_of(&v), v))
    }

    fn expire_pending(&self, a: &mut Approvals) {
        for p in a.expire(now_ms()) {
            self.audit(json!({ "action": "limits-raise-expired", "request": p.json() }));
        }
    }

    fn apply_limits(&self, p: &Pending, by: String) -> Result<Value, Reply> {
        let v = self.control(&ctl::Request::LimitsSet {
            account: p.account.clone(),
            limits: p.limits.clone(),
            for_ms: p.for_ms,
            by,
            reason: p.reason.clone(),
        })?;
        // The control socket keeps permanent changes for a restart (`ctl` persist_limits).
        Ok(v)
    }

    fn limits(&self, ask: &Ask, who: &Who) -> Result<Reply, Reply> {
        let b: LimitsBody = ask.json()?;
        if b.reason.trim().is_empty() {
            return Err(err(StatusCode::BAD_REQUEST, "reason is required"));
        }
        if b.expires_in_s == Some(0) {
            return Err(err(StatusCode::BAD_REQUEST, "expires_in_s must be > 0"));
        }
        let current = self.show(&b.account, None)?;
        let raised = limits::raised_fields(&current["limits"], &b.limits)
            .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
        let now = now_ms();
        let p = Pending {
            id: 0,
            account: b.account.clone(),
            limits: b.limits,
            for_ms: b.expires_in_s.map(|s| s.saturating_mul(1000)),
            requested_by: who.claims.sub.clone(),
            reason: b.reason,
            raised: raised.clone(),
            created_ms: now,
            expires_ms: now + self.ops.approval_ttl_s * 1000,
        };
        if raised.is_empty() {
            // A cut (or no change): at once.
            let v = self.apply_limits(&p, who.by(ask.peer))?;
            return Ok(Reply::Json(status_of(&v), v));
        }
        let mut a = lock(&self.approvals);
        self.expire_pending(&mut a);
        let id = a
            .add(p.clone())
            .map_err(|e| err(StatusCode::TOO_MANY_REQUESTS, e))?;
        let mut p = p;
        p.id = id;
        self.audit(json!({ "action": "limits-raise-requested", "user": who.claims.sub, "peer": ask.peer.ip().to_string(), "request": p.json() }));
        Ok(Reply::Json(
            StatusCode::ACCEPTED,
            json!({
                "ok": true, "pending": true, "id": id, "raised": raised,
                "expires_ms": p.expires_ms,
                "message": "a raise needs a second, different risk officer: POST /api/v1/limits/{id}/approve",
            }),
        ))
    }

    fn approve(&self, ask: &Ask, who: &Who, id: &str) -> Result<Reply, Reply> {
        let id: u64 = id
            .parse()
            .map_err(|_| err(StatusCode::NOT_FOUND, "no such pending request"))?;
        let p = {
            let mut a = lock(&self.approvals);
            self.expire_pending(&mut a);
            let p = a.take(id).ok_or_else(|| {
                err(
                    StatusCode::NOT_FOUND,
                    "no such pending request (approved, or expired)",
                )
            })?;
            if p.requested_by == who.claims.sub {
                a.put_back(p);
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "four eyes: the requester cannot approve their own raise",
                ));
            }
            p
        };
        let by = format!("{} (requested) and {}", p.requested_by, who.by(ask.peer));
        self.audit(json!({ "action": "limits-raise-approved", "user": who.claims.sub, "peer": ask.peer.ip().to_string(), "request": p.json() }));
        let v = self.apply_limits(&p, by)?;
        Ok(Reply::Json(status_of(&v), v))
    }

    fn revoke_key(&self, ask: &Ask, who: &Who, id: &str) -> Result<Reply, Reply> {
        let b: ReasonBody = ask.json()?;
        if b.reason.trim().is_empty() {
            return Err(err(StatusCode::BAD_REQUEST, "reason is required"));
        }
        let before = crate::auth::admin::open_store(&self.cfg, false)
            .and_then(|(ks, _)| ks.load().map_err(String::from))
            .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "key store unavailable"))?
            .keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.status)
            .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no key {id:?}")))?;
        let r = crate::auth::admin::revoke(&self.cfg, id);
        self.audit(json!({
            "action": "key-revoke", "user": who.claims.sub, "peer": ask.peer.ip().to_string(),
            "key": id, "reason": crate::auth::mask::free_text(&b.reason),
            "before": { "status": before },
            "after": { "status": if r.is_ok() { json!("revoked") } else { json!(before) } },
            "error": r.as_ref().err(),
        }));
        match r {
            Ok(()) => Ok(ok(json!({
                "ok": true, "key": id, "before": { "status": before }, "after": { "status": "revoked" },
                "message": "logons refused and live sessions logged out within auth.poll_ms",
            }))),
            Err(_) => Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("key {id:?} could not be revoked"),
            )),
        }
    }

    fn reload_tls(&self, ask: &Ask, who: &Who) -> Reply {
        let mut results: Vec<Value> = self
            .listeners
            .reload_all()
            .into_iter()
            .map(|r| match r {
                Ok(line) => json!({ "ok": true, "result": line }),
                Err(e) => json!({ "ok": false, "error": e }),
            })
            .collect();
        if let Some(lock_) = &self.tls {
            match server_tls(&self.ops) {
                Ok(Some(c)) => {
                    if let Ok(mut w) = lock_.write() {
                        *w = Arc::new(c);
                    }
                    results.push(json!({ "ok": true, "result": "ops port certificate reloaded" }));
                }
                Ok(None) => {}
                Err(e) => results.push(
                    json!({ "ok": false, "error": format!("ops port kept its certificate: {e}") }),
                ),
            }
        }
        let all_ok = results.iter().all(|r| r["ok"] == Value::Bool(true));
        self.audit(json!({ "action": "tls-reload", "user": who.claims.sub, "peer": ask.peer.ip().to_string(), "results": results }));
        Reply::Json(
            if all_ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            json!({ "ok": all_ok, "results": results }),
        )
    }
}

#[cfg(test)]
mod tests {
    /// Every route `handle` serves is in the OpenAPI document (keep them together).
    #[test]
    fn openapi_lists_every_route() {
        let doc = include_str!("../../docs/ops-openapi.yaml");
        for path in [
            "/:",
            "/app.js:",
            "/app.css:",
            "/healthz:",
            "/readyz:",
            "/metrics:",
            "/api/v1/login:",
            "/api/v1/refresh:",
            "/api/v1/logout:",
            "/api/v1/whoami:",
            "/api/v1/clock:",
            "/api/v1/latency:",
            "/api/v1/tls:",
            "/api/v1/tls/reload:",
            "/api/v1/block:",
            "/api/v1/unblock:",
            "/api/v1/keys:",
            "/api/v1/keys/{id}/revoke:",
            "/api/v1/accounts:",
            "/api/v1/sessions:",
            "/api/v1/venues:",
            "/api/v1/accounts/{account}:",
            "/api/v1/accounts/{account}/enable:",
            "/api/v1/events:",
            "/api/v1/alerts:",
            "/api/v1/kill:",
            "/api/v1/unkill:",
            "/api/v1/limits:",
            "/api/v1/limits/pending:",
            "/api/v1/limits/{id}/approve:",
        ] {
            assert!(doc.contains(&format!("\n  {path}\n")), "{path} missing");
        }
    }
}
