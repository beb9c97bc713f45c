//! `portcullis` — load config, build, pin threads, run. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ignores a closed stdout: a gateway whose terminal or pipe went away keeps
/// trading (`println!` panics on EPIPE).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use portcullis::clock::Clock;
use portcullis::config::Config;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Low-latency FIX order gateway with inline pre-trade controls"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway. Without --config: the embedded default (loopback, simulated venue).
    Run {
        /// Configuration file (TOML); see portcullis.example.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data folder (stores, journal, event log); overrides gateway.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Block in epoll instead of busy-polling (overrides gateway.busy_poll).
        #[arg(long)]
        blocking: bool,
        /// Listen address for the first listener (overrides listener[0].address).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Embedded default only: address of the TLS listener (default 127.0.0.1:9879; with
        /// --listen and port 0, port 0 too).
        #[arg(long)]
        listen_tls: Option<std::net::SocketAddr>,
        /// Embedded default only: address of the ops status port (default 127.0.0.1:9880;
        /// with --listen and port 0, port 0 too).
        #[arg(long)]
        listen_ops: Option<std::net::SocketAddr>,
        /// Embedded default only: address of the binary (SBE over FIXP) listener (default
        /// 127.0.0.1:9881; with --listen and port 0, port 0 too).
        #[arg(long)]
        listen_sbe: Option<std::net::SocketAddr>,
    },
    /// Validate a configuration file and exit.
    CheckConfig { config: PathBuf },
    /// Manage API keys in the encrypted key store ([auth] of the config). A running gateway
    /// applies changes within auth.poll_ms (default 200 ms).
    Keys {
        /// Configuration file; without it, the embedded default (store under --data-dir).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Data folder; overrides gateway.data_dir.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: KeysCmd,
    },
    /// Risk controls of a running gateway: kill, unkill, enable-account, limits, risk show.
    Ctl(Box<portcullis::ctl::CtlArgs>),
    /// Reports from the data folder (REG-1 order records).
    #[command(subcommand)]
    Report(portcullis::report::ReportCmd),
    /// The clock: sync status and estimated divergence from UTC (CLOCK-2).
    #[command(subcommand)]
    Clock(portcullis::clock::cli::ClockCmd),
    /// Operators of the ops status port: add, list, remove, reset-mfa, set-role.
    Users(Box<portcullis::ops::users::UsersArgs>),
    /// The tamper-evident audit trail: verify files, rebuild a timeline (order, key, session,
    /// address).
    #[command(subcommand)]
    Audit(portcullis::trail::cli::AuditCmd),
    /// Check a deployment against the production checklist (REG-2): PASS/WARN/FAIL per item
    /// with the fix; exit 1 if any item fails. Without --config: the embedded default.
    Preflight {
        /// Configuration file; without it, the embedded default (data under --data-dir).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data folder; overrides gateway.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A saved `portcullis clock status` output to judge instead of measuring the clock
        /// here (e.g. taken on the production host).
        #[arg(long)]
        clock_status_file: Option<PathBuf>,
    },
}

/// `portcullis keys ...`.
#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key; prints its secret once.
    Add {
        /// Key id (1–32 of letters, digits, '.', '_', '-'): the client's Username(553).
        id: String,
        /// SenderCompID(49) the key may log on as (repeatable).
        #[arg(long = "comp-id", required = true)]
        comp_ids: Vec<String>,
        /// Role: trader, viewer, risk-officer, admin (default scopes).
        #[arg(long, default_value = "trader")]
        role: String,
        /// Scope instead of the role's defaults: orders:new, orders:cancel, orders:replace,
        /// orders:read (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Account(1) orders may name (repeatable); '*' alone: any account (an explicit
        /// grant, shown by `keys show` and warned about by `run`); none: only the
        /// default_account of the session the key logs on to.
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// Symbol(55) orders may name (repeatable); none: any.
        #[arg(long = "symbol")]
        symbols: Vec<String>,
        /// CIDR logons may come from (repeatable), e.g. 10.0.0.0/8, 2001:db8::/32.
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
        /// Throttle tier of the key (shared by its sessions); default: each session's.
        #[arg(long)]
        tier: Option<String>,
        /// Expire the key this many seconds from now.
        #[arg(long)]
        expires_in_secs: Option<u64>,
        /// Also write the secret to this file (mode 0600).
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Create many keys at once (`<prefix>000001` …), in one rewrite of the store: for
    /// large stores (scale tests), where `add` per key would rewrite the store every time.
    Generate {
        /// How many keys (1–1000000).
        #[arg(long)]
        count: u64,
        /// Key id prefix; ids are the prefix and a zero-padded number from 1.
        #[arg(long, default_value = "bulk")]
        prefix: String,
        /// SenderCompID(49) every key may log on as (repeatable).
        #[arg(long = "comp-id", required = true)]
        comp_ids: Vec<String>,
        /// Role: trader, viewer, risk-officer, admin.
        #[arg(long, default_value = "trader")]
        role: String,
        /// Account(1) every key may name (repeatable); '*' alone: any account; none: only
        /// each session's default_account.
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// CIDR logons may come from (repeatable).
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
        /// Write `id secret` lines here (mode 0600). Without it the secrets are not kept
        /// anywhere but the store.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
    },
    /// List keys (never secrets).
    List,
    /// Show one key (never its secrets).
    Show { id: String },
    /// Change a key's permissions (each given option replaces the stored list).
    Set {
        id: String,
        #[arg(long = "comp-id")]
        comp_ids: Vec<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Account(1) orders may name (replaces the list); '*' alone: any account.
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// Grant every account (stored as accounts = ["*"]; same as `--account '*'`).
        #[arg(long)]
        any_account: bool,
        #[arg(long = "symbol")]
        symbols: Vec<String>,
        /// Allow any symbol again.
        #[arg(long)]
        any_symbol: bool,
        #[arg(long = "allow")]
        allow: Vec<String>,
        #[arg(long)]
        tier: Option<String>,
    },
    /// New secret (printed once); the old one works for the overlap.
    Rotate {
        id: String,
        /// Overlap, milliseconds (default auth.rotation_overlap_ms).
        #[arg(long)]
        overlap_ms: Option<u64>,
        /// Also write the new secret to this file (mode 0600).
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// Revoke a key: logons refused, live sessions logged out.
    Revoke { id: String },
    /// Expire a key now (or in --in-secs).
    Expire {
        id: String,
        #[arg(long)]
        in_secs: Option<u64>,
    },
    /// Clear a key's lockouts (at every source address), or with --addresses every
    /// source-address lockout.
    Unlock {
        #[arg(required_unless_present = "addresses")]
        id: Option<String>,
        #[arg(long)]
        addresses: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::CheckConfig { config } => match Config::load(&config) {
            Ok(cfg) => match portcullis::tls::check_files(&cfg)
                .and_then(|()| portcullis::ops::check_files(&cfg))
                .and_then(|()| {
                    // SIEM export (issue 15): its TLS files too.
                    cfg.siem
                        .as_ref()
                        .map_or(Ok(()), |s| portcullis::siem::prepare(s).map(drop))
                }) {
                Ok(()) => {
                    say!("{}: ok", config.display());
                    ExitCode::SUCCESS
                }
                Err((key, problem)) => {
                    eprintln!("portcullis: {}: key `{key}`: {problem}", config.display());
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Report(r) => portcullis::report::run(r),
        Cmd::Clock(c) => portcullis::clock::cli::run(c),
        Cmd::Audit(a) => ExitCode::from(a.run()),
        Cmd::Preflight {
            config,
            data_dir,
            clock_status_file,
        } => match load_config(config.as_deref(), data_dir) {
            Ok(cfg) => ExitCode::from(portcullis::preflight::run(
                &cfg,
                clock_status_file.as_deref(),
            )),
            Err(code) => code,
        },
        Cmd::Run {
            config,
            data_dir,
            blocking,
            listen,
            listen_tls,
            listen_ops,
            listen_sbe,
        } => {
            // Files at rest: nothing for group or others, whatever the caller's umask.
            portcullis::files::restrict_umask();
            run(
                config,
                data_dir,
                blocking,
                listen,
                [listen_tls, listen_ops, listen_sbe],
            )
        }
        Cmd::Keys {
            config,
            data_dir,
            action,
        } => {
            portcullis::files::restrict_umask();
            keys(config, data_dir, action)
        }
        Cmd::Ctl(args) => ExitCode::from(args.run()),
        Cmd::Users(args) => {
            portcullis::files::restrict_umask();
            ExitCode::from(args.run())
        }
    }
}

fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}

/// The config file, or without one the embedded default (its data under `data_dir`, default
/// `./portcullis-data`); `data_dir` overrides `gateway.data_dir`. A bad file is reported here.
fn load_config(
    config: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> Result<Config, ExitCode> {
    let mut cfg = match config {
        Some(path) => Config::load(path).map_err(|e| {
            eprintln!("portcullis: {e}");
            ExitCode::from(2)
        })?,
        None => Config::embedded_default(
            &data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./portcullis-data")),
        ),
    };
    if let Some(d) = data_dir {
        cfg.gateway.data_dir = d;
    }
    Ok(cfg)
}

fn keys(config: Option<PathBuf>, data_dir: Option<PathBuf>, action: KeysCmd) -> ExitCode {
    use portcullis::auth::admin;
    let cfg = match load_config(config.as_deref(), data_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let now = now_ms();
    // The secret goes straight to stdout, never into a String of ours (nothing to zeroize
    // but the `Zeroizing` it came in); what is returned is the rest of the answer.
    let secret_shown = |id: &str, secret: &str, out: Option<PathBuf>| -> Result<String, String> {
        if let Some(p) = &out {
            portcullis::auth::store::write_private(p, secret.as_bytes())
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        say!("key {id}: secret (shown once, store it now): {secret}");
        Ok(out
            .map(|p| format!("  also written to {}", p.display()))
            .unwrap_or_default())
    };
    let r: Result<String, String> = match action {
        KeysCmd::Add {
            id,
            comp_ids,
            role,
            scopes,
            accounts,
            symbols,
            allow,
            tier,
            expires_in_secs,
            secret_out,
        } => {
            let spec = admin::KeySpec {
                comp_ids,
                role,
                scopes,
                accounts,
                symbols,
                allow,
                tier,
                expires_ms: expires_in_secs.map(|s| now + s * 1000),
            };
            admin::add(&cfg, &id, &spec, now).and_then(|s| secret_shown(&id, &s, secret_out))
        }
        KeysCmd::Generate {
            count,
            prefix,
            comp_ids,
            role,
            accounts,
            allow,
            secrets_out,
        } => {
            let spec = admin::KeySpec {
                comp_ids,
                role,
                accounts,
                allow,
                ..Default::default()
            };
            admin::generate(&cfg, &prefix, count, &spec, now).and_then(|made| {
                let (first, last) = match (made.first(), made.last()) {
                    (Some(f), Some(l)) => (f.0.clone(), l.0.clone()),
                    _ => return Err("no key was made".to_string()),
                };
                let kept = match &secrets_out {
                    Some(p) => {
                        // Sized exactly: a grown String would leave secrets in freed memory.
                        let len = made.iter().map(|(id, s)| id.len() + s.len() + 2).sum();
                        let mut text = zeroize::Zeroizing::new(String::with_capacity(len));
                        for (id, secret) in &made {
                            text.push_str(id);
                            text.push(' ');
                            text.push_str(secret);
                            text.push('\n');
                        }
                        portcullis::auth::store::write_private(p, text.as_bytes())
                            .map_err(|e| format!("{}: {e}", p.display()))?;
                        format!("secrets (`id secret` lines) written to {}", p.display())
                    }
                    None => "secrets not kept (no --secrets-out)".to_string(),
                };
                Ok(format!(
                    "{} keys added: {first} … {last}; {kept}",
                    made.len()
                ))
            })
        }
        KeysCmd::List => admin::list(&cfg, now),
        KeysCmd::Show { id } => admin::show(&cfg, &id, now),
        KeysCmd::Set {
            id,
            comp_ids,
            role,
            scopes,
            accounts,
            any_account,
            symbols,
            any_symbol,
            allow,
            tier,
        } => {
            let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let change = admin::KeyChange {
                comp_ids: some(comp_ids),
                role,
                scopes: some(scopes),
                accounts: if any_account {
                    Some(vec![portcullis::auth::keys::ANY_ACCOUNT.to_string()])
                } else {
                    some(accounts)
                },
                symbols: if any_symbol {
                    Some(Vec::new())
                } else {
                    some(symbols)
                },
                allow: some(allow),
                tier: tier.map(Some),
            };
            admin::set(&cfg, &id, &change).map(|()| format!("key {id}: updated"))
        }
        KeysCmd::Rotate {
            id,
            overlap_ms,
            secret_out,
        } => admin::rotate(&cfg, &id, overlap_ms, now)
            .and_then(|s| secret_shown(&id, &s, secret_out)),
        KeysCmd::Revoke { id } => admin::revoke(&cfg, &id).map(|()| format!("key {id}: revoked")),
        KeysCmd::Expire { id, in_secs } => {
            let at = now + in_secs.unwrap_or(0) * 1000;
            admin::expire(&cfg, &id, at).map(|()| format!("key {id}: expires at {at} ms"))
        }
        KeysCmd::Unlock { id, addresses } => {
            let id = if addresses { None } else { id };
            admin::unlock(&cfg, id.as_deref()).map(|()| match id {
                Some(id) => format!("key {id}: lockouts cleared at every source address"),
                None => "source-address lockouts cleared".to_string(),
            })
        }
    };
    match r {
        Ok(text) => {
            if !text.trim_end().is_empty() {
                say!("{}", text.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis keys: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGHUP, TLS part: re-reads every TLS listener's certificate, key and client CA; new
/// connections use them, established sessions keep theirs. A refused file keeps the old one.
fn reload_tls(handle: &portcullis::build::EngineHandle) {
    for r in handle.tls.reload_all() {
        match r {
            Ok(line) => say!("portcullis: SIGHUP: TLS {line}"),
            Err(e) => eprintln!("portcullis: SIGHUP: TLS {e}"),
        }
    }
}

/// SIGHUP: re-reads the configuration file and applies its throttle tiers and per-session
/// limits live (the throttle table is lock-free; the gateway thread sees the new limits at its
/// next check). Everything else in the file needs a restart.
fn reload(config: Option<&std::path::Path>, running: &portcullis::gateway::Running) {
    let handle = &running.handle;
    let Some(path) = config else {
        say!("portcullis: SIGHUP: running on the embedded default, nothing to reload");
        return;
    };
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: SIGHUP: {e}; keeping the current limits");
            return;
        }
    };
    let tiers = cfg.tier_table();
    let now = portcullis::clock::system_utc();
    let mut applied = 0;
    for (i, s) in cfg.sessions.iter().enumerate() {
        let key = s.store_key();
        let Some(slot) = handle.session_keys.iter().position(|k| *k == key) else {
            eprintln!("portcullis: SIGHUP: session {key} is new; sessions are added at restart");
            continue;
        };
        let limits = cfg.session_limits(i, &tiers);
        match handle.throttle.set_key_limits(
            portcullis::throttle::KeySlot(slot as u32),
            &limits,
            now,
        ) {
            Ok(()) => applied += 1,
            Err(e) => eprintln!("portcullis: SIGHUP: session {key}: {e:?}"),
        }
    }
    // Keys with a tier of their own: the key store watcher re-applies the new tiers on its
    // next poll (auth.poll_ms).
    let keys = match &running.key_tiers {
        Some(pending) => match pending.lock() {
            Ok(mut p) => {
                *p = Some(tiers);
                " and the keys' own tiers"
            }
            Err(_) => "",
        },
        None => "",
    };
    say!(
        "portcullis: SIGHUP: throttle limits reloaded for {applied} session(s){keys} from {}",
        path.display()
    );
}

fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    blocking: bool,
    listen: Option<std::net::SocketAddr>,
    [listen_tls, listen_ops, listen_sbe]: [Option<std::net::SocketAddr>; 3],
) -> ExitCode {
    let embedded = config.is_none();
    let mut cfg = match load_config(config.as_deref(), data_dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if blocking {
        cfg.gateway.busy_poll = false;
    }
    if let (Some(addr), Some(l)) = (listen, cfg.listeners.first_mut()) {
        l.address = addr;
    }
    if embedded {
        // The embedded default's binary listener follows --listen's port 0 like the others.
        let sbe_addr = listen_sbe.or(match listen {
            Some(a) if a.port() == 0 => Some(a),
            _ => None,
        });
        if let (Some(addr), Some(l)) = (
            sbe_addr,
            cfg.listeners
                .iter_mut()
                .find(|l| l.protocol == portcullis::config::Protocol::Sbe),
        ) {
            l.address = addr;
        }
    }
    let mut dev_pki = None;
    if embedded {
        let tls_addr = listen_tls.unwrap_or_else(|| match listen {
            Some(a) if a.port() == 0 => a,
            _ => portcullis::tls::dev::DEFAULT_TLS_ADDRESS
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 9879))),
        });
        match portcullis::tls::dev::add_dev_listener(&mut cfg, tls_addr) {
            Ok((pki, created)) => dev_pki = Some((pki, created)),
            Err(e) => {
                eprintln!("portcullis: cannot create the development certificates: {e}");
                return ExitCode::from(1);
            }
        }
    } else if listen_tls.is_some() || listen_ops.is_some() || listen_sbe.is_some() {
        eprintln!(
            "portcullis: --listen-tls, --listen-ops and --listen-sbe apply to the embedded \
             default only"
        );
        return ExitCode::from(2);
    }
    for (i, l) in cfg.listeners.iter().enumerate() {
        if l.tls.is_none() && !l.address.ip().is_loopback() {
            eprintln!(
                "portcullis: WARNING: listener[{i}] {} accepts FIX in clear text on a \
                 non-loopback address (allow_plaintext = true): orders and credentials cross \
                 the network unencrypted",
                l.address
            );
        }
    }
    if let Err((key, problem)) = cfg.check_auth_exposure() {
        eprintln!("portcullis: --listen: key `{key}`: {problem}");
        return ExitCode::from(2);
    }
    let dev_keys = if embedded {
        match portcullis::auth::admin::ensure_dev_store(&cfg, now_ms()) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("portcullis: cannot create the development key store: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        Vec::new()
    };
    // The embedded default's ops port: the development certificate, a development admin.
    let mut dev_admin = None;
    if let (true, Some((pki, _))) = (embedded, &dev_pki) {
        let ops_addr = listen_ops.unwrap_or_else(|| match listen {
            Some(a) if a.port() == 0 => a,
            _ => std::net::SocketAddr::from(([127, 0, 0, 1], 9880)),
        });
        match portcullis::ops::add_dev_ops(&mut cfg, ops_addr, pki, now_ms()) {
            Ok(files) => dev_admin = Some(files),
            Err(e) => {
                eprintln!("portcullis: cannot create the development operator: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if cfg.ops.as_ref().is_some_and(|o| !o.mfa_required) {
        eprintln!(
            "portcullis: WARNING: ops.mfa_required = false: risk officers and admins log in to \
             the ops port with a password alone"
        );
    }
    if portcullis::auth::admin::is_development(&cfg) {
        eprintln!(
            "portcullis: WARNING: the key store's master key comes from a development provider \
             (file/env), not an HSM: do not use this for real credentials"
        );
    }
    if cfg.auth.is_some() {
        // A store that cannot be read is reported by the gateway's own load below.
        if let Ok(ids) = portcullis::auth::admin::any_account_keys(&cfg) {
            if !ids.is_empty() {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                eprintln!(
                    "portcullis: {}",
                    portcullis::auth::admin::any_account_warning(&ids)
                );
            }
        }
    }
    match &cfg.auth {
        None => eprintln!(
            "portcullis: WARNING: no [auth] section: logons are NOT authenticated (loopback only)"
        ),
        Some(a) if !a.required => eprintln!(
            "portcullis: WARNING: auth.required = false: unsigned logons are accepted (loopback only)"
        ),
        Some(_) => {}
    }
    if cfg.auth.as_ref().is_some_and(|a| a.max_key_age_days == 0) {
        eprintln!(
            "portcullis: WARNING: auth.max_key_age_days = 0: keys never age out (AUTH-9 rotation \
             policy off)"
        );
    }
    let data_dir = cfg.gateway.data_dir.clone();
    let trail_note = |kind: &str, detail: &[(&str, String)]| {
        portcullis::trail::note(&data_dir, kind, detail);
    };
    let config_detail = || {
        let mut d = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
        match &config {
            Some(p) => {
                d.push(("config", p.display().to_string()));
                if let Ok(bytes) = std::fs::read(p) {
                    d.push(("config_sha256", portcullis::trail::sha256_hex(&bytes)));
                }
            }
            None => d.push(("config", "embedded default".to_string())),
        }
        d
    };
    let mut running = match portcullis::gateway::start(&cfg, Clock::fast()) {
        Ok(r) => r,
        Err(e) => {
            // gateway::start recorded the failure in the audit trail, if it had started one.
            eprintln!("portcullis: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    trail_note("gateway-start", &config_detail());
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, running.handle.stop.clone()) {
            eprintln!("portcullis: cannot install signal handler: {e}");
        }
    }
    // TLS listeners first, marked `tls://`, then binary ones, marked `sbe://` (`sbe+tls://`
    // with TLS): the last address stays the plaintext FIX one that scripts (and tests) parse
    // from this line.
    let mut addrs: Vec<String> = Vec::new();
    for (tls, sbe) in [(true, false), (true, true), (false, true), (false, false)] {
        for (a, l) in running.handle.listen_addrs.iter().zip(&cfg.listeners) {
            let is_sbe = l.protocol == portcullis::config::Protocol::Sbe;
            if l.tls.is_some() == tls && is_sbe == sbe {
                addrs.push(match (tls, sbe) {
                    (true, false) => format!("tls://{a}"),
                    (true, true) => format!("sbe+tls://{a}"),
                    (false, true) => format!("sbe://{a}"),
                    (false, false) => a.to_string(),
                });
            }
        }
    }
    say!(
        "portcullis {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", ")
    );
    say!("  data folder: {}", cfg.gateway.data_dir.display());
    if let Some(t) = &running.trail {
        say!(
            "  audit trail: {} (on_full = {}; checkpoint key {}: pin it as audit.public_key)",
            t.dir.display(),
            t.on_full.as_str(),
            t.public_key
        );
    }
    if let Some((pki, true)) = &dev_pki {
        say!(
            "  created a development CA and certificates in {}",
            pki.dir.display()
        );
    }
    say!(
        "  mode: {}{}",
        if cfg.gateway.busy_poll {
            "busy-poll (owns a core)"
        } else {
            "blocking"
        },
        cfg.gateway
            .cpu
            .map(|c| format!(", pinned to CPU {c}"))
            .unwrap_or_default()
    );
    for s in &cfg.sessions {
        say!("  session {}", s.display_name());
    }
    for v in &cfg.venues {
        say!("  venue {} ({})", v.name, v.kind);
    }
    say!("  {}", running.handle.clock_status.snapshot().one_line());
    if let Some(ops) = &running.ops {
        say!("  ops: {}", ops.url());
    }
    if embedded {
        if let (Some(addr), Some(s)) = (running.handle.listen_addrs.first(), cfg.sessions.first()) {
            say!("Try it:");
            let sign = dev_keys
                .iter()
                .find(|k| k.comp_id == s.their_comp_id)
                .map(|k| {
                    format!(
                        " --key-id {} --secret-file {}",
                        k.id,
                        k.secret_file.display()
                    )
                })
                .unwrap_or_default();
            say!(
                "  cargo run -p portcullis-tools --bin fixclient -- --connect {addr} --sender {} --target {}{sign} --reset order --symbol AAPL --side buy --qty 100 --price 10.5",
                s.their_comp_id, s.our_comp_id
            );
            let sbe = cfg
                .listeners
                .iter()
                .position(|l| l.protocol == portcullis::config::Protocol::Sbe)
                .and_then(|i| running.handle.listen_addrs.get(i))
                .zip(
                    cfg.sessions
                        .iter()
                        .find(|s| s.protocol == portcullis::config::Protocol::Sbe),
                );
            if let Some((sbe_addr, bs)) = sbe {
                let sign = dev_keys
                    .iter()
                    .find(|k| k.comp_id == bs.their_comp_id)
                    .map(|k| {
                        format!(
                            " --key-id {} --secret-file {}",
                            k.id,
                            k.secret_file.display()
                        )
                    })
                    .unwrap_or_default();
                say!(
                    "Binary order entry (SBE over FIXP, port {}):",
                    sbe_addr.port()
                );
                say!(
                    "  cargo run -p portcullis-tools --bin fixclient -- --sbe --connect {sbe_addr} --session {}{sign} order --symbol AAPL --side buy --qty 100 --price 10.5",
                    bs.their_comp_id
                );
            }
            let tls_addr = cfg
                .listeners
                .iter()
                .position(|l| l.tls.is_some())
                .and_then(|i| running.handle.listen_addrs.get(i));
            if let (Some((pki, _)), Some(tls_addr)) = (&dev_pki, tls_addr) {
                say!(
                    "Over TLS 1.3 with the development client certificate (mTLS, port {}):",
                    tls_addr.port()
                );
                say!(
                    "  cargo run -p portcullis-tools --bin fixclient -- --connect {tls_addr} --tls --ca {} --cert {} --key {} --sender {} --target {}{sign} --reset order --symbol AAPL --side buy --qty 100 --price 10.5",
                    pki.ca.display(),
                    pki.client_cert.display(),
                    pki.client_key.display(),
                    s.their_comp_id,
                    s.our_comp_id
                );
                say!(
                    "  openssl s_client -connect {tls_addr} -tls1_3 -CAfile {} -cert {} -key {}",
                    pki.ca.display(),
                    pki.client_cert.display(),
                    pki.client_key.display()
                );
            }
        }
    }
    if let (Some(ops), Some((pw, totp)), Some((pki, _))) = (&running.ops, &dev_admin, &dev_pki) {
        say!(
            "Ops port (development admin `admin`; password in {}, TOTP secret in {}):",
            pw.display(),
            totp.display()
        );
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "portcullis".into());
        say!(
            "  TOKEN=$(curl -s --cacert {ca} {url}/api/v1/login -d \"{{\\\"user\\\":\\\"admin\\\",\\\"password\\\":\\\"$(cat {pw})\\\",\\\"totp\\\":\\\"$({exe} users totp-code --uri-file {totp})\\\"}}\" | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')",
            ca = pki.ca.display(),
            url = ops.url(),
            pw = pw.display(),
            totp = totp.display(),
        );
        say!(
            "  curl --cacert {} -s -H \"Authorization: Bearer $TOKEN\" {}/api/v1/accounts",
            pki.ca.display(),
            ops.url()
        );
    }
    say!(
        "Ctrl-C or SIGTERM logs sessions out and stops; SIGHUP reloads throttle tiers and limits, TLS certificates and the geo database."
    );
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        eprintln!("portcullis: cannot install SIGHUP handler: {e}");
    }
    while !running.is_finished() {
        if hup.swap(false, std::sync::atomic::Ordering::Relaxed) {
            trail_note("config-reload", &config_detail());
            reload(config.as_deref(), &running);
            reload_tls(&running.handle);
            // `[ids.geo] database`, if any: the detector thread reads the file again.
            portcullis::ids::reload_geo(running.data_dir());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    running.join();
    let counters = running.handle.counters.clone();
    let c = &counters;
    {
        use portcullis::monitor::Counter as K;
        trail_note(
            "gateway-stop",
            &[
                ("orders_received", c.get(K::OrdersReceived).to_string()),
                ("orders_rejected", c.get(K::OrdersRejected).to_string()),
                ("audit_records_lost", c.get(K::AuditRingFull).to_string()),
            ],
        );
        running.stop_trail();
    }
    use portcullis::monitor::Counter as K;
    say!(
        "portcullis: stopped — orders received {}, rejected {}, fills {}, throttled {}, garbled {}, longest working duty cycle {} µs",
        c.get(K::OrdersReceived),
        c.get(K::OrdersRejected),
        c.get(K::Fills),
        c.get(K::ThrottleRejects),
        c.get(K::GarbledMessages),
        c.get(K::MaxDutyCycleNs) / 1000
    );
    ExitCode::SUCCESS
}
