//! COLD — the composition root: turns a [`Config`] (parsed and validated once) into a running
//! engine's parts — listeners and their TLS, client sessions and their stores, the key store and
//! logon state, throttles, risk, venues and their links, the journal and the state files that
//! survive a restart — and assembles the order desk and the FIX shell around it. The hot
//! modules (`engine`, `desk`, ...) never read config, TLS files or audit state themselves.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mio::{Interest, Poll, Token};

use crate::clock::{Clock, ClockStatus};
use crate::config::{Config, Gateway, Protocol, SessionCfg, SimBehaviourCfg, VenueKind};
use crate::desk::{DeskParts, DeskSession, DeskVenue, OrderDesk};
use crate::engine::stores::AnyStore;
use crate::engine::venues::FixVenue;
use crate::engine::{AuthState, Engine, SessionSlot, Settings, ShellParts, LISTENER_BASE};
use crate::fix::BeginString;
use crate::handoff::{command_channel, CommandSender, EventRing, RecordRing};
use crate::model::{Account, CompId, Nanos, Price};
use crate::monitor::Counters;
use crate::net;
use crate::order::journal::{session_tag, Journal};
use crate::order::OrderTable;
use crate::route::{Router, Rule, VenueName};
use crate::session::{Role, Session, SessionConfig};
use crate::store::{SessionStore, SessionStoreConfig};
use crate::throttle::{AbuseConfig, AbuseDetector, KeySlot, ThrottleTable};
use crate::venue::sim::{SimBehaviour, SimConfig, SimVenue};

/// What a cold thread holds to watch and steer a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub counters: Arc<Counters>,
    /// The throttle table: lock-free, so cold threads apply live limit changes and read the
    /// daily counters to persist them without going through the gateway thread.
    pub throttle: Arc<ThrottleTable>,
    /// Session keys, by throttle slot (`KeySlot(i)` is session `i`).
    pub session_keys: Vec<String>,
    pub events: EventRing,
    pub commands: CommandSender,
    pub listen_addrs: Vec<SocketAddr>,
    pub stop: Arc<AtomicBool>,
    /// TLS listeners: certificate reload and days to expiry.
    pub tls: Arc<crate::tls::TlsListeners>,
    /// Clock sync status (CLOCK-2), written by the clock thread.
    pub clock_status: Arc<ClockStatus>,
    /// Order records (REG-1) for the journal thread.
    pub records: RecordRing,
}

/// Why an engine could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn start_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StartError {
    StartError(format!("{what}: {e}"))
}

impl From<&Gateway> for Settings {
    fn from(gw: &Gateway) -> Settings {
        Settings {
            busy_poll: gw.busy_poll,
            poll_timeout_ms: gw.poll_timeout_ms,
            max_connections: gw.max_connections,
            max_message_bytes: gw.max_message_bytes,
            recv_buffer_bytes: gw.recv_buffer_bytes,
            send_buffer_bytes: gw.send_buffer_bytes,
            logon_timeout_ms: gw.logon_timeout_ms,
            logon_buffer_bytes: gw.logon_buffer_bytes,
            logon_garbage_bytes: gw.logon_garbage_bytes,
            silent_timeout_ms: gw.silent_timeout_ms,
            spin_read_conns: gw.spin_read_conns,
            spin_poll_every: gw.spin_poll_every,
            warm_every_us: gw.warm_every_us,
            slow_consumer_ms: gw.slow_consumer_ms,
            tls_handshake_budget_us: gw.tls_handshake_budget_us,
            unauthenticated_cap: gw.unauthenticated_cap(),
            per_address_cap: gw.per_address_cap(),
        }
    }
}

/// Builds the engine: binds listeners, opens (and recovers) stores and the journal, loads the
/// key store and the state files, and preallocates every table. May allocate and fail.
pub fn engine(cfg: &Config, clock: Clock) -> Result<(Engine, EngineHandle), StartError> {
    let gw = cfg.gateway.clone();
    // Sustained throttle refusals end the session (0: never).
    let abuse = AbuseConfig {
        sustain_ns: match gw.throttle_logout_after_ms {
            0 => u64::MAX,
            ms => ms.saturating_mul(1_000_000),
        },
        quiet_ns: gw.throttle_logout_quiet_ms.saturating_mul(1_000_000),
    };
    let data = gw.data_dir.clone();
    // 0700 whatever the umask; a looser existing data folder is tightened (and reported).
    crate::files::private_dir(&data)
        .map_err(|e| start_err(format!("data_dir {}", data.display()), e))?;
    let poll = Poll::new().map_err(|e| start_err("epoll", e))?;
    let mut listeners = Vec::new();
    let mut listen_addrs = Vec::new();
    let mut tls_configs = Vec::new();
    let mut tls_loaded = Vec::new();
    let now_unix = (crate::clock::system_utc().0 / 1_000_000_000) as i64;
    for (i, l) in cfg.listeners.iter().enumerate() {
        match &l.tls {
            Some(t) => {
                let loaded = crate::tls::server_config(t, now_unix)
                    .map_err(|e| StartError(format!("listener[{i}].tls: {e}")))?;
                tls_loaded.push((i, t.clone(), loaded.not_after_unix));
                tls_configs.push(Some(loaded.config));
            }
            None => tls_configs.push(None),
        }
        let mut lst = net::listen(l.address)
            .map_err(|e| start_err(format!("listener[{i}] {}", l.address), e))?;
        poll.registry()
            .register(&mut lst, Token(LISTENER_BASE + i), Interest::READABLE)
            .map_err(|e| start_err("register listener", e))?;
        listen_addrs.push(
            lst.local_addr()
                .map_err(|e| start_err("listener address", e))?,
        );
        listeners.push(lst);
    }
    let now = clock.now();
    let sessions_dir = data.join("sessions");
    crate::files::private_dir(&sessions_dir).map_err(|e| start_err("sessions folder", e))?;
    let mut sessions = Vec::new();
    let mut principals: Vec<DeskSession> = Vec::new();
    for s in &cfg.sessions {
        let sbe = s.protocol == Protocol::Sbe;
        // An SBE session has no BeginString or our CompID: its FIX session is a placeholder
        // that never logs on (FIX Logons never reach an SBE session's slot).
        let begin = if sbe {
            BeginString::Fix44
        } else {
            BeginString::parse(s.begin_string.as_bytes())
                .ok_or_else(|| StartError(format!("session begin_string {:?}", s.begin_string)))?
        };
        let our = CompId::new(s.our_comp_id.as_bytes())
            .ok_or_else(|| StartError("our_comp_id too long".into()))?;
        let their = CompId::new(s.their_comp_id.as_bytes())
            .ok_or_else(|| StartError("their_comp_id too long".into()))?;
        let key = s.store_key();
        let bin = if sbe {
            Some(Box::new(binary_session(
                cfg,
                s,
                &key,
                &sessions_dir,
                gw.session_segment_bytes,
                now,
            )?))
        } else {
            None
        };
        let store = if s.persist && !sbe {
            let sc = SessionStoreConfig {
                segment_bytes: gw.session_segment_bytes,
                ..Default::default()
            };
            AnyStore::Disk(Box::new(
                SessionStore::open_with(&sessions_dir, &key, &sc, now.0)
                    .map_err(|e| start_err(format!("session store {key}"), e))?,
            ))
        } else {
            AnyStore::Memory(crate::session::MemoryStore::new())
        };
        let scfg = SessionConfig {
            begin_string: begin,
            our_comp_id: our,
            their_comp_id: their,
            role: Role::Acceptor,
            heartbeat_min_secs: s.heartbeat_min_secs,
            heartbeat_max_secs: s.heartbeat_max_secs,
            reset_on_logon: s.reset_on_logon,
            reset_on_logout: s.reset_on_logout,
            reset_on_disconnect: s.reset_on_disconnect,
            check_sending_time: s.check_sending_time,
            sending_time_window_ms: s.sending_time_window_ms,
            ..SessionConfig::default()
        };
        let default_account = s
            .default_account
            .as_deref()
            .and_then(|a| Account::new(a.as_bytes()))
            .unwrap_or(Account::EMPTY);
        let dev_any = s
            .dev_accounts
            .iter()
            .any(|a| a == crate::auth::keys::ANY_ACCOUNT);
        let dev_extra: Vec<Account> = s
            .dev_accounts
            .iter()
            .filter_map(|a| Account::new(a.as_bytes()))
            .filter(|a| !a.is_empty() && a.as_bytes() != b"*")
            .collect();
        let dev_grants = crate::auth::Grants::unauthenticated(
            KeySlot(sessions.len() as u32),
            default_account,
            &dev_extra,
            dev_any,
        );
        principals.push(DeskSession {
            tag: if sbe {
                session_tag(b"SBE", b"", their.as_bytes())
            } else {
                session_tag(begin.as_bytes(), our.as_bytes(), their.as_bytes())
            },
            grants: dev_grants.clone(),
            killed: false,
        });
        sessions.push(SessionSlot {
            session: Session::new(scfg, store),
            conn: None,
            begin,
            their_comp_id: their,
            our_comp_id: our,
            default_account,
            cancel_on_disconnect: s.cancel_on_disconnect,
            abuse: AbuseDetector::new(abuse),
            key: key.clone(),
            client_spki: s
                .client_cert_spki_sha256
                .as_deref()
                .and_then(crate::config::parse_sha256_hex),
            client_subject: match s.client_cert_subject.as_deref() {
                None => None,
                Some(x) => {
                    Some(net::tls::Subject::parse(x).map_err(|e| {
                        StartError(format!("session {key}: client_cert_subject: {e}"))
                    })?)
                }
            },
            dev_grants,
            seen: crate::order::seen::SeenClOrdIds::default(),
            drop_copy: s
                .drop_copy_accounts
                .iter()
                .filter_map(|a| Account::new(a.as_bytes()))
                .collect(),
            bin,
        });
    }
    let mut venues = Vec::new();
    let mut links = Vec::new();
    let mut names = Vec::new();
    for v in &cfg.venues {
        let name = VenueName::new(v.name.as_bytes())
            .ok_or_else(|| StartError(format!("venue name {:?} longer than 16", v.name)))?;
        names.push(name);
        let (sim, link) = match v.kind {
            VenueKind::Sim => {
                let behaviour = match v.behaviour.unwrap_or_default() {
                    SimBehaviourCfg::Ack => SimBehaviour::AckOnly,
                    SimBehaviourCfg::Partial => SimBehaviour::PartialFills {
                        slices: v.partial_slices.unwrap_or(2),
                    },
                    SimBehaviourCfg::Book => SimBehaviour::Book,
                    SimBehaviourCfg::Fill => SimBehaviour::FillImmediately,
                };
                let sim = SimVenue::new(SimConfig {
                    behaviour,
                    max_orders: gw.max_orders,
                    max_symbols: 4096,
                    max_orders_per_symbol: gw.max_orders.min(1 << 16),
                    default_fill_price: Price::from_units(100),
                });
                (Some(Box::new(sim)), None)
            }
            VenueKind::Fix => {
                let (Some(addr), Some(our), Some(their)) = (
                    v.address,
                    v.our_comp_id.as_deref(),
                    v.their_comp_id.as_deref(),
                ) else {
                    return Err(StartError(format!(
                        "venue {:?}: address and CompIDs are required",
                        v.name
                    )));
                };
                let our_id = CompId::new(our.as_bytes())
                    .ok_or_else(|| StartError("venue our_comp_id too long".into()))?;
                let their_id = CompId::new(their.as_bytes())
                    .ok_or_else(|| StartError("venue their_comp_id too long".into()))?;
                let key = format!("venue-{}-{}-{}", v.name, our, their);
                let sc = SessionStoreConfig {
                    segment_bytes: gw.session_segment_bytes,
                    ..Default::default()
                };
                let store = SessionStore::open_with(&sessions_dir, &key, &sc, now.0)
                    .map_err(|e| start_err(format!("venue session store {key}"), e))?;
                let tls = match &v.tls {
                    Some(t) => Some((
                        crate::tls::client_config(t, now_unix)
                            .map_err(|e| StartError(format!("venue {:?} tls: {e}", v.name)))?,
                        crate::tls::server_name(&t.server_name)
                            .map_err(|e| StartError(format!("venue {:?} tls: {e}", v.name)))?,
                    )),
                    None => None,
                };
                let scfg = SessionConfig {
                    begin_string: BeginString::Fix44,
                    our_comp_id: our_id,
                    their_comp_id: their_id,
                    role: Role::Initiator,
                    heartbeat_secs: v.heartbeat_secs.unwrap_or(30),
                    // Our dictionaries describe what clients may send us; a venue sends the
                    // reports we only ever send. Venue answers are parsed field by field
                    // (`venue::fix::parse_answer`) and anything unusable is counted.
                    validate: false,
                    ..SessionConfig::default()
                };
                let link = FixVenue {
                    addr,
                    session: Session::new(scfg, AnyStore::Disk(Box::new(store))),
                    conn: None,
                    reconnect: Nanos::from_millis(v.reconnect_ms.unwrap_or(1000)),
                    next_attempt: Nanos::ZERO,
                    unmatched: 0,
                    tls,
                };
                (None, Some(Box::new(link)))
            }
        };
        // An in-process venue is up from the start; a link once it is logged on.
        let up = sim.is_some();
        venues.push(DeskVenue { name, up, sim });
        links.push(link);
    }
    let rules = cfg
        .routes
        .iter()
        .filter_map(|r| {
            Some(Rule {
                ex_destination: r
                    .ex_destination
                    .as_deref()
                    .and_then(|d| VenueName::new(d.as_bytes())),
                symbol: r
                    .symbol
                    .as_deref()
                    .and_then(|s| crate::model::Symbol::new(s.as_bytes())),
                account: r
                    .account
                    .as_deref()
                    .and_then(|a| Account::new(a.as_bytes())),
                venue: names
                    .iter()
                    .position(|n| n.as_bytes() == r.venue.as_bytes())
                    .and_then(crate::model::VenueId::of)?,
            })
        })
        .collect();
    let tiers = cfg.tier_table();
    let max_keys = cfg.auth.as_ref().map_or(0, |a| a.max_keys as usize);
    let throttle = Arc::new(ThrottleTable::with_capacity(
        (sessions.len() + max_keys).max(1),
    ));
    for i in 0..sessions.len() {
        throttle
            .set_key_limits(KeySlot(i as u32), &cfg.session_limits(i, &tiers), now)
            .map_err(|e| StartError(format!("session[{i}] throttle limits: {e:?}")))?;
    }
    let mut session_keys: Vec<String> = sessions.iter().map(|s| s.key.clone()).collect();
    // Keys with their own tier draw from slots after the sessions'.
    let (auth, key_loader) = match &cfg.auth {
        None => (None, None),
        Some(a) => {
            let provider = a
                .provider(&data)
                .map_err(|e| StartError(format!("auth: {e}")))?;
            let path = a.store_path(&data);
            if !path.exists() {
                return Err(StartError(format!(
                    "auth: key store {} does not exist (create it with `portcullis keys add`)",
                    path.display()
                )));
            }
            let store = crate::auth::store::KeyStore::open(&path, &provider, false)
                .map_err(|e| StartError(format!("auth: {e}")))?;
            let mut loader = crate::auth::watch::Loader::new(
                store,
                tiers.clone(),
                sessions.len() as u32,
                a.max_keys,
            );
            loader.set_throttle(throttle.clone());
            loader.set_age_policy(a.max_key_age_ms(), a.key_age_warning_ms());
            let snap = loader
                .load()
                .map_err(|e| StartError(format!("auth: {e}")))?;
            for (slot, name) in loader.slot_names() {
                let slot = slot as usize;
                if session_keys.len() <= slot {
                    session_keys.resize(slot + 1, String::new());
                }
                if let Some(n) = session_keys.get_mut(slot) {
                    *n = name;
                }
            }
            let mut verifier = crate::auth::Authenticator::new(a.policy(), now);
            verifier.apply_unlocks(&snap);
            // Lockouts survive a restart (a restart must not reopen a brute-force window).
            let lockouts =
                crate::audit::lockouts::Lockouts::load(&data.join(crate::audit::lockouts::FILE))
                    .map_err(|e| StartError(format!("auth lockouts: {e}")))?;
            verifier.restore_lockouts(&lockouts.entries(), &snap, now);
            // So are accepted signatures still inside their skew window.
            let replays = crate::audit::lockouts::Replays::load(
                &data.join(crate::audit::lockouts::REPLAY_FILE),
            )
            .map_err(|e| StartError(format!("auth replay cache: {e}")))?;
            verifier.restore_replays(&replays.entries(), now);
            let snap = Arc::new(snap);
            loader.published(snap.clone());
            (
                Some(AuthState {
                    keys: snap,
                    verifier,
                    required: a.required,
                }),
                Some(loader),
            )
        }
    };
    // Everything else in the data folder that an older version or a hand copy left open
    // is tightened — after the key store and master key checks above, which refuse rather
    // than repair (a secret that was readable may have been read: the operator must know).
    match crate::files::tighten_tree(&data) {
        Ok(0) => {}
        Ok(n) => crate::say_err(format_args!(
            "portcullis: {n} file(s)/folder(s) under {} were open to group or others; \
             tightened to 0600/0700",
            data.display()
        )),
        Err(e) => return Err(start_err(format!("data_dir {}", data.display()), e)),
    }
    crate::audit::daily::load(
        &data.join(crate::audit::daily::FILE),
        &session_keys,
        &throttle,
    )
    .map_err(|e| start_err("throttle daily state", e))?;
    let journal = Journal::open(&data.join("journal"), gw.segment_bytes)
        .map_err(|e| start_err("order journal", e))?;
    let mut risk = cfg
        .risk_core(now)
        .map_err(|e| StartError(format!("risk: {e}")))?;
    // Kill switches and rate-limit trips survive a restart.
    let switches = crate::audit::switches::Switches::load(&data.join(crate::audit::switches::FILE))
        .map_err(|e| start_err("risk switches", e))?;
    for line in &switches.0 {
        let (kind, name) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let account = Account::new(name.as_bytes());
        let _ = match (kind, account) {
            ("global", _) => risk.kill(crate::risk::KillScope::Global),
            ("account", Some(a)) => risk.kill(crate::risk::KillScope::Account(a)),
            ("disabled", Some(a)) => risk.disable_account(&a),
            ("symbol", _) => match crate::model::Symbol::new(name.as_bytes()) {
                Some(s) => risk.kill(crate::risk::KillScope::Symbol(s)),
                None => Ok(()),
            },
            ("session", _) => {
                if let Some(i) = sessions.iter().position(|s| s.key == name) {
                    if let Some(p) = principals.get_mut(i) {
                        p.killed = true;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        };
    }
    let (cmd_tx, cmd_rx) = command_channel();
    let counters = Arc::new(Counters::default());
    let ring = EventRing::new(gw.event_ring);
    let records = RecordRing::new(gw.record_ring);
    let clock_status = Arc::new(ClockStatus::new(crate::clock::Policy::from_config(
        &cfg.clock,
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let tls = Arc::new(crate::tls::TlsListeners::new(
        tls_loaded,
        gw.tls_expiry_warn_days,
        cmd_tx.clone(),
        ring.clone(),
        counters.clone(),
    ));
    let desk = OrderDesk::new(
        DeskParts {
            orders: OrderTable::new(gw.max_orders),
            journal,
            venues,
            router: Router::new(names, rules),
            risk,
            sessions: principals,
            clock: clock.clone(),
            counters: counters.clone(),
            events: ring.clone(),
            records: records.clone(),
            clock_status: clock_status.clone(),
            clock_halt_text: crate::desk::records::clock_halt_text(cfg.clock.max_divergence_us),
            // The trail of this data folder (started before the gateway), under fail_closed.
            audit_healthy: crate::trail::attached(&gw.data_dir).map(|t| t.healthy()),
        },
        now,
    );
    // Every message in and out to the trail of this data folder (`audit.messages`).
    let messages = crate::trail::attached(&gw.data_dir)
        .filter(|_| cfg.audit.enabled && cfg.audit.messages)
        .and_then(|t| {
            t.attach_messages(
                cfg.audit.message_ring_bytes,
                cfg.sessions.iter().map(|s| s.display_name()).collect(),
                cfg.venues.iter().map(|v| v.name.clone()).collect(),
            )
        })
        .map(|(mut writer, fail_closed)| {
            writer.prefault();
            crate::engine::audit::MessageAudit::new(
                writer,
                fail_closed,
                cfg.audit.message_ring_bytes,
                cfg.audit.prelogon_messages_per_second,
            )
        });
    let mut engine = Engine::assemble(ShellParts {
        settings: Settings::from(&gw),
        poll,
        listeners,
        tls_configs,
        listener_sbe: cfg
            .listeners
            .iter()
            .map(|l| l.protocol == Protocol::Sbe)
            .collect(),
        sessions,
        desk,
        links,
        throttle: throttle.clone(),
        clock,
        counters: counters.clone(),
        events: ring.clone(),
        commands: cmd_rx,
        stop: stop.clone(),
        auth,
        key_loader,
        messages,
    });
    // Address blocks (`ctl block`, intrusion response) survive a restart until they run out.
    for (ip, until) in crate::ctl::load_blocks(&gw.data_dir, crate::clock::system_utc()) {
        engine.block_address(ip, until, now);
    }
    let handle = EngineHandle {
        counters,
        throttle,
        session_keys,
        events: ring,
        commands: cmd_tx,
        listen_addrs,
        stop,
        tls,
        clock_status,
        records,
    };
    Ok((engine, handle))
}

/// The FIXP side of SBE session `s`: its two message stores (current and previous uuid;
/// on disk when `persist`), its `[fixp]` settings, and the uuids and key of its last Negotiate
/// restored from `<key>.fixp`.
fn binary_session(
    cfg: &Config,
    s: &SessionCfg,
    key: &str,
    sessions_dir: &std::path::Path,
    segment_bytes: usize,
    now: Nanos,
) -> Result<crate::engine::binary::BinSession, StartError> {
    let name = crate::fixp::msg::Name::new(s.their_comp_id.as_bytes())
        .ok_or_else(|| StartError(format!("session {key}: name longer than 32")))?;
    let f = &cfg.fixp;
    let fcfg = crate::fixp::FixpConfig {
        keep_alive_min_ms: f.keep_alive_min_ms,
        keep_alive_max_ms: f.keep_alive_max_ms,
        retransmit_max_count: f.retransmit_max_count,
        establish_timeout_ms: f.establish_timeout_ms,
        ..crate::fixp::FixpConfig::new(name)
    };
    fcfg.validate()
        .map_err(|e| StartError(format!("session {key}: {e}")))?;
    let store = |slot: &str| -> Result<AnyStore, StartError> {
        if !s.persist {
            return Ok(AnyStore::Memory(crate::session::MemoryStore::new()));
        }
        let sc = SessionStoreConfig {
            segment_bytes,
            ..Default::default()
        };
        let name = format!("{key}-{slot}");
        SessionStore::open_with(sessions_dir, &name, &sc, now.0)
            .map(|st| AnyStore::Disk(Box::new(st)))
            .map_err(|e| start_err(format!("session store {name}"), e))
    };
    let mut fixp = crate::fixp::Session::new(fcfg, store("a")?, store("b")?);
    let state_path = s.persist.then(|| {
        sessions_dir.join(format!(
            "{}.fixp",
            crate::store::session_store::sanitize_key(key)
        ))
    });
    if let Some(path) = &state_path {
        let state = crate::engine::binary::BinSession::load_state(path).map_err(StartError)?;
        if let Some(st) = state {
            fixp.restore(st.uuid, st.previous_uuid, st.key, st.current_is_b);
        }
    }
    Ok(crate::engine::binary::BinSession { fixp, state_path })
}
