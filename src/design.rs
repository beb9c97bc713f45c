//! Design decisions, numbered. Each: the context, the choice, what it costs. Change the code
//! and this record together.
//!
//! # D1. One hot thread owns every socket and all order state
//! *Context*: an order touches a session, the order table, the venue and the journal; sharing
//! them across threads means locks or message passing on every order.
//! *Choice*: one pinned thread (`engine`) owns all of it and runs a duty cycle over mio.
//! Cold work (event log, fsync, later ops/audit/SIEM) runs on other threads fed by a lock-free
//! ring (`handoff::EventRing`); commands come back through a channel polled once per cycle.
//! *Cost*: one core's worth of throughput; sharding sessions across hot threads later needs the
//! shared per-key state (throttle buckets, account credit) to be atomics — which is why they are
//! designed that way from the start.
//!
//! # D2. Durable state is written by the hot thread through memory maps
//! *Context*: FIX requires sent messages and sequence numbers to survive restarts, and every
//! accepted order must be journaled before it is routed. A journal thread behind a queue cannot
//! guarantee "before routed"; a `write` syscall per message costs microseconds.
//! *Choice*: `store::AppendLog` preallocates segment files and maps them; the hot thread appends
//! with a `memcpy` and a CRC, writing the length word last. A process crash (`kill -9`) loses
//! nothing — the page cache holds the writes. The journal thread `fdatasync`s periodically for
//! OS-crash durability (`gateway.flush_interval_ms`).
//! *Cost*: a segment roll (create + map + pre-fault) happens on the hot thread (tens of ms per
//! 64 MiB); power loss can lose up to one flush interval. Pre-creating segments on the cold
//! thread is the next step.
//!
//! # D3. Journal snapshots, not events
//! *Context*: recovery must rebuild open orders exactly.
//! *Choice*: the journal stores a fixed-size snapshot of the order after each change (at most
//! one per order per venue-answer batch, plus one before routing); replay keeps the last per
//! slot. Reports reach the socket only after the batch is journaled (flush at the end of the
//! duty cycle).
//! *Cost*: ~220 bytes per snapshot; replay reads the whole journal at start.
//!
//! # D4. The framer follows the mature engines, not a cleverer rule
//! *Context*: a wrong BodyLength could be detected earlier by scanning for the trailer.
//! *Choice*: like QuickFIX, wait for BodyLength bytes, then take the first `SOH 10=` at or after
//! the declared end; a too-long length swallows the next message. Certification scripts depend
//! on exactly this (2m_BodyLengthValueNotCorrect).
//! *Cost*: a client that lies about BodyLength loses a second message, as it would elsewhere.
//!
//! # D5. Our own dictionaries, compiled to static tables
//! *Context*: validation (required fields, enums, formats, ordering, groups) must not allocate
//! and must match what we document to clients.
//! *Choice*: `fix-specs/*.dict` in a small text format → `tools/codegen` → `src/fix/generated`
//! (checked in, drift-tested); `fix::validate` follows QuickFIX's order of checks.
//! *Cost*: a new field or message is a dictionary edit and a regeneration.
//!
//! # D6. Venue ClOrdIDs carry the order's slot
//! *Context*: a venue's answers must find the order without a lookup table that could grow.
//! *Choice*: the gateway sends `<slot>.<OrderID>.<n>`; the OrderID tells a recycled slot's stale
//! answers apart; `n` numbers cancel/replace requests.
//! *Cost*: venue-side ClOrdIDs are ours, not the client's (the client's stay in our reports).
//!
//! # D7. Fixed capacities everywhere on the order path
//! *Context*: a `Vec` or map that grows allocates at the worst moment.
//! *Choice*: connections, orders, ClOrdID index (hashbrown reserved at twice the live maximum so
//! tombstone rehashes stay in place), venue books and event batches are sized at start;
//! exhaustion is a counted, answered refusal. `tests/alloc.rs` proves zero allocations on the
//! gateway thread over 100k orders through a real socket.
//! *Cost*: memory is committed up front (see `gateway.max_orders`).
//!
//! # D8. Throttle state is a shared lock-free table
//! *Context*: limits change live (tier changes, SIGHUP), daily counts must survive restarts,
//! and several hot threads may one day share a key.
//! *Choice*: `throttle::ThrottleTable` keeps every limit and counter in 128-byte-aligned atomic
//! lines (GCRA bucket word, day word, window rings); a limit's settings are one word, so a
//! check never sees half a change. Cold threads write limits and read daily counters directly
//! (journal thread: `throttle-daily.state` each flush interval and at stop).
//! *Cost*: SeqCst on the window cells (loom showed weaker orderings over-admit); a crash can
//! lose up to one interval of daily counting.
//!
//! # D9. TLS inside the gateway loop, with rustls's buffered API
//! *Context*: FIX over TLS (FIXS) must not add a proxy hop nor lose the client's identity, and
//! the gateway thread must neither block nor hand sockets to another thread.
//! *Choice*: rustls (*ring* provider) per connection in `net::Conn`, driven from the same mio
//! readiness: `read_tls` → `process_new_packets` → `reader().read` into the usual receive
//! buffer; `OutBuf` → `writer().write` → `write_tls`. TLS 1.3 only unless a listener enables 1.2
//! (ECDHE + AES-GCM). Certificates are loaded, validated (dates, key match) and rebuilt into an
//! `Arc<ServerConfig>` on cold threads; the gateway thread swaps the `Arc` on a command, so new
//! connections use the new certificate and established ones keep theirs. No resumption state.
//! *Cost*: the buffered API allocates per record (the received plaintext chunk, the encryption
//! buffer): 2 per order, pinned by `tests/tls_alloc.rs`; the plaintext path stays at zero.
//! rustls's unbuffered API would remove the receive-side one, not the encryption one (rustls
//! 0.23's `MessageEncrypter` returns an owned buffer).
//! # D10. Keys reach the gateway thread as whole snapshots; logons are verified there
//! *Context*: a revoke must bite within a second without a restart, the per-message permission
//! check must not lock or allocate, and a logon's verdict needs the lockout and replay state.
//! *Choice*: `auth::watch` (thread `portcullis-keys`) polls the encrypted key store, decrypts it
//! and sends an immutable `KeySnapshot` (`Command::Keys`); the gateway thread swaps it between
//! messages, logs out sessions whose key was revoked or expired, and copies each session's
//! grants (scope bitmask, inline account/symbol arrays, throttle slot) into its `SessionSlot`.
//! Signed logons are verified on the gateway thread in `bind_session` (cold path: ~18k
//! instructions, the same HMAC work for every refusal, so timing tells nothing). Every refused
//! Logon is a silent close. Lockout and replay state live in a fixed-size table and a cache on
//! the gateway thread; the journal thread persists them from the `AuthLockout` and
//! `Authenticated` events (`audit::lockouts`), and the engine restores them at start.
//! *Cost*: a logon flood competes with orders for the gateway thread (bounded by the connection
//! limits and the address lockout; a refusal costs one HMAC); a crash can lose the lockouts and
//! replay entries of the last event batch (SendingTime before the start still refuses replays).
//! # D11. Pre-trade risk lives on the gateway thread; control goes through the command channel
//! *Context*: 15c3-5 wants every order checked before it reaches a market, and limit changes,
//! kills and enables must never be seen half-applied by a check.
//! *Choice*: `risk::RiskCore` is owned by the engine and checked between throttle and routing;
//! its exposure moves with every venue answer (reserve at acceptance, release on cancel/reject,
//! move to executed on fill, undo of a refused replace). Control requests (`handoff::control`)
//! arrive as `Command::Control` with a reply channel and are applied between two messages,
//! whole. Today a Unix socket (`ctl.rs`, mode 0600) feeds them; the ops port will send the same
//! commands. Kill switches and rate-limit trips are persisted by the journal thread from the
//! events (`risk-switches.state`); reservations are rebuilt from the order journal, which
//! carries each order's reserved price.
//! *Cost*: per-account state is not shared between hot threads yet (one gateway thread); a
//! kill is answered only after the journal thread wrote it (a few milliseconds later than it
//! bites), so the operator's acknowledgement means it survives a crash.
//! # D12. Regulatory timestamps read the clock where the event happens
//! *Context*: the duty cycle reads the clock once and passes `now` down (cheap, deterministic
//! in tests), but RTS 25 wants the decision, the request to the venue, the venue answer and the
//! report each timestamped, in order, and a synchronous simulator answers within one `now`.
//! *Choice*: `now` stays the time an instruction was read; `engine/reg.rs` reads the fast clock
//! again at the decision, the venue request, the venue answer and each report (TSC read, no
//! syscall). Records travel in a bounded lock-free ring of their own (`handoff::RecordRing`):
//! at ~700 bytes they would bloat every small event in the event ring.
//! *Cost*: about five extra clock reads (~10–20 ns each) per filled order, and a record copy per
//! lifecycle event.
//!
//! # D13. The clock halt is one relaxed load, judged on the clock thread
//! *Context*: CLOCK-2 may stop new orders when the clock leaves its limit; the gateway thread
//! must not read the kernel or compute anything for that.
//! *Choice*: the clock thread judges each reading (`clock::status::assess`) and publishes a
//! padded `AtomicBool`; `on_new_order` loads it once. Tests force a state through the same path.
//! *Cost*: a breach is seen up to one `calibrate_ms` late.
