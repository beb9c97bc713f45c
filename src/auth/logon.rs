//! COLD (runs on the gateway thread at logon only) — the signed Logon (fix-specs/SIGNED-LOGON.md).
//!
//! RawData <96> = base64(HMAC-SHA256(secret, SendingTime <52> SOH MsgType <35> SOH MsgSeqNum <34>
//! SOH SenderCompID <49> SOH TargetCompID <56> SOH Username <553>)), RawDataLength <95> = its
//! length. [`Authenticator::check`] verifies a Logon against the key snapshot. It always does
//! the same HMAC work first (the key's secrets, or a dummy secret for an unknown id or an
//! unusable signature), then decides: lockout of the source address or of the (key, address)
//! pair, fields, skew (exclusive), SendingTime not before the gateway's start, the key, a
//! constant-time comparison, the replay cache, status, expiry, CompID binding and the IP
//! allowlist. Every failure has a `&'static str` cause for the audit stream; the client gets
//! nothing (the engine closes the connection). A failure counts against the source address;
//! only a wrong signature also counts against the (key, address) pair (`lockout.rs`). The
//! signature enters the replay cache only when the engine accepts the Logon
//! ([`Authenticator::remember`]).
//!
//! The checks themselves are protocol-neutral: [`Authenticator::check_signed`] takes a
//! [`SignedLogon`] (key id, signature, signing time, the signed bytes, the identity the key
//! must be bound to); the FIX [`Authenticator::check`] and the FIXP Negotiate/Establish
//! (`crate::fixp::auth`, fix-specs/FIXP-SESSION.md) both end there, so both share one key store,
//! replay cache and lockout table.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{Key, KeyId, KeySnapshot};
use super::lockout::{Limit, Locked, LockoutTable, Scope};
use crate::fix::{tags, Message};
use crate::model::Nanos;

type HmacSha256 = Hmac<Sha256>;

/// Tag numbers of the signed logon.
pub const USERNAME: i32 = 553;
pub const RAW_DATA_LENGTH: i32 = 95;
pub const RAW_DATA: i32 = 96;
/// Bytes of an HMAC-SHA256 signature; its base64 is 44 characters.
pub const SIGNATURE_BYTES: usize = 32;

/// The bytes that are signed: SendingTime, MsgType, MsgSeqNum, SenderCompID, TargetCompID and
/// Username joined by SOH (no trailing SOH).
pub fn prehash(
    sending_time: &[u8],
    msg_type: &[u8],
    seq: &[u8],
    sender: &[u8],
    target: &[u8],
    username: &[u8],
) -> Vec<u8> {
    let parts = [sending_time, msg_type, seq, sender, target, username];
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            v.push(1);
        }
        v.extend_from_slice(p);
    }
    v
}

/// HMAC-SHA256 of `data` under `secret`.
pub fn mac(secret: &[u8], data: &[u8]) -> [u8; SIGNATURE_BYTES] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0; SIGNATURE_BYTES],
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// base64 of the signature of `prehash` (what goes into RawData <96>).
pub fn sign(secret: &[u8], prehash: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, prehash))
}

/// Why a logon was refused (the audit cause; the client sees nothing, see "Refusals" in
/// fix-specs/SIGNED-LOGON.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    AddressLockedOut,
    KeyLockedOut,
    MissingUsername,
    MissingRawData,
    RawDataLengthMismatch,
    MalformedSignature,
    MissingSendingTime,
    Skew,
    BeforeStart,
    UnknownKey,
    BadSignature,
    Replayed,
    Revoked,
    Expired,
    /// Older than `auth.max_key_age_days` since its creation or last rotation (AUTH-9).
    TooOld,
    CompIdNotBound,
    AddressNotAllowed,
}

impl Failure {
    pub fn cause(self) -> &'static str {
        match self {
            Failure::AddressLockedOut => "source address locked out",
            Failure::KeyLockedOut => "key locked out at this source address",
            Failure::MissingUsername => "Username(553) missing",
            Failure::MissingRawData => "RawData(96) or RawDataLength(95) missing",
            Failure::RawDataLengthMismatch => "RawDataLength(95) does not match RawData(96)",
            Failure::MalformedSignature => "RawData(96) is not base64 of a 32-byte signature",
            Failure::MissingSendingTime => "SendingTime(52) missing or malformed",
            Failure::Skew => "SendingTime(52) outside the allowed skew",
            Failure::BeforeStart => "SendingTime(52) earlier than the gateway's start",
            Failure::UnknownKey => "unknown key id",
            Failure::BadSignature => "bad signature",
            Failure::Replayed => "signature replayed",
            Failure::Revoked => "key revoked",
            Failure::Expired => "key expired",
            Failure::TooOld => "key too old (auth.max_key_age_days): rotate it",
            Failure::CompIdNotBound => "SenderCompID not bound to the key",
            Failure::AddressNotAllowed => "source address not in the key's allowlist",
        }
    }

    /// Only a wrong signature for a known key needs a guess at the secret: it alone counts
    /// against the (key, source address) pair. Everything else counts against the address.
    pub fn guesses_secret(self) -> bool {
        self == Failure::BadSignature
    }
}

/// Lockout and skew settings.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Allowed |SendingTime − now|, exclusive: exactly `max_skew` away is refused.
    pub max_skew: Nanos,
    /// Wrong signatures for one key from one source address within `window` that lock that
    /// key at that address.
    pub max_failures: u32,
    /// Failed logons of any cause from one source address within `window` that lock the
    /// address.
    pub address_max_failures: u32,
    pub window: Nanos,
    /// How long a lockout lasts.
    pub lockout: Nanos,
    /// Scopes (addresses and key-address pairs) the lockout table tracks; fixed memory.
    pub table_entries: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_skew: Nanos::from_millis(5_000),
            max_failures: 5,
            address_max_failures: 20,
            window: Nanos::from_millis(60_000),
            lockout: Nanos::from_millis(300_000),
            table_entries: 16_384,
        }
    }
}

impl Policy {
    fn key_limit(&self) -> Limit {
        Limit {
            max_failures: self.max_failures,
            window: self.window,
            lockout: self.lockout,
        }
    }
    fn address_limit(&self) -> Limit {
        Limit {
            max_failures: self.address_max_failures,
            window: self.window,
            lockout: self.lockout,
        }
    }
}

/// What a failed check reports.
#[derive(Clone, Copy, Debug)]
pub struct Refused {
    pub failure: Failure,
    /// The key id the logon named (may be unknown or empty).
    pub key_id: KeyId,
    /// This failure locked the source address out.
    pub address_locked: Option<Lock>,
    /// This failure locked the key out at the source address.
    pub key_locked: Option<Lock>,
}

/// A lockout a failure started: until when, under which unlock generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    pub until: Nanos,
    pub generation: u64,
}

/// A Logon whose signature and key checks passed. Its signature is not yet remembered: call
/// [`Authenticator::remember`] once the Logon is accepted, so that a refusal for any other
/// reason does not burn the client's signature.
#[derive(Clone, Copy)]
pub struct Verified<'s> {
    pub key: &'s Key,
    /// SHA-256 of the signature (the replay cache's key).
    replay: [u8; 32],
    /// When the signature leaves the skew window (SendingTime + max_skew).
    until: Nanos,
}

impl Verified<'_> {
    /// The replay-cache entry this Logon makes once accepted: (SHA-256 of the signature, until).
    pub fn replay_entry(&self) -> ([u8; 32], Nanos) {
        (self.replay, self.until)
    }
}

/// Logon verification state: the lockout table and the replay cache. Owned by the gateway
/// thread.
pub struct Authenticator {
    pub policy: Policy,
    lockouts: LockoutTable,
    /// SHA-256 of the signatures of accepted logons, until their SendingTime leaves the skew
    /// window. Only accepted logons get in, so it holds at most the legitimate logons of one
    /// skew window. Persisted by the journal thread (`audit::lockouts`) and restored at start.
    replay: HashMap<[u8; 32], Nanos>,
    /// Unlock generations already applied.
    key_unlock: HashMap<KeyId, u64>,
    address_unlock: u64,
    next_sweep: Nanos,
    /// Logons signed before this (the gateway's start) are refused: with the persisted replay
    /// cache (which could lose the last entries in a crash) it stops a Logon captured before a
    /// restart.
    started_at: Nanos,
    dummy: [u8; 32],
}

impl Authenticator {
    /// `started_at`: the gateway's start (UTC); SendingTime earlier than it is refused.
    pub fn new(policy: Policy, started_at: Nanos) -> Authenticator {
        let mut dummy = [0u8; 32];
        let _ = getrandom::getrandom(&mut dummy);
        Authenticator {
            policy,
            lockouts: LockoutTable::new(policy.table_entries),
            replay: HashMap::new(),
            key_unlock: HashMap::new(),
            address_unlock: 0,
            next_sweep: Nanos::ZERO,
            started_at,
            dummy,
        }
    }

    /// Applies the unlock generations of a new snapshot (`portcullis keys unlock`): a key's
    /// unlock clears that key at every address, `--addresses` clears every address.
    pub fn apply_unlocks(&mut self, snap: &KeySnapshot) {
        for k in &snap.keys {
            let seen = self.key_unlock.entry(k.id).or_insert(k.unlock_gen);
            if *seen != k.unlock_gen {
                *seen = k.unlock_gen;
                let id = k.id;
                self.lockouts
                    .forget(|s| matches!(s, Scope::KeyAddress(x, _) if *x == id));
            }
        }
        if snap.address_unlock_gen != self.address_unlock {
            self.address_unlock = snap.address_unlock_gen;
            self.lockouts.forget(|s| matches!(s, Scope::Address(_)));
        }
    }

    /// Puts persisted lockouts back at start, dropping those an unlock since superseded
    /// (their generation is not the snapshot's) and those that ended.
    pub fn restore_lockouts(&mut self, locked: &[Locked], snap: &KeySnapshot, now: Nanos) {
        for l in locked {
            let current = match l.scope {
                Scope::Address(_) => Some(snap.address_unlock_gen),
                Scope::KeyAddress(id, _) => snap.get(id.as_bytes()).map(|k| k.unlock_gen),
            };
            if current == Some(l.generation) {
                self.lockouts.restore(l, now);
            }
        }
    }

    /// Lockout-table entries forgotten to make room so far.
    pub fn lockout_evictions(&self) -> u64 {
        self.lockouts.evictions()
    }

    /// The lockouts in force at `now`.
    pub fn lockouts(&self, now: Nanos) -> Vec<Locked> {
        self.lockouts.locked_entries(now)
    }

    /// True when the key is locked out at `peer` at `now`.
    pub fn key_locked(&self, id: &KeyId, peer: IpAddr, now: Nanos) -> bool {
        self.lockouts.locked(&Scope::KeyAddress(*id, peer), now)
    }

    /// True when the source address is locked out at `now`.
    pub fn address_locked(&self, peer: IpAddr, now: Nanos) -> bool {
        self.lockouts.locked(&Scope::Address(peer), now)
    }

    /// Remembers the signature of an accepted Logon: it can never be used again while its
    /// SendingTime is inside the skew window.
    pub fn remember(&mut self, v: &Verified<'_>, now: Nanos) {
        self.remember_entry(v.replay_entry(), now);
    }

    /// [`Authenticator::remember`] for a [`Verified::replay_entry`] kept after the snapshot
    /// it borrowed was released (a FIXP Negotiate/Establish accepted a step later).
    pub fn remember_entry(&mut self, (replay, until): ([u8; 32], Nanos), now: Nanos) {
        if now >= self.next_sweep {
            self.replay.retain(|_, until| *until > now);
            self.next_sweep = Nanos(now.0.saturating_add(1_000_000_000));
        }
        self.replay.insert(replay, until);
    }

    /// Puts persisted replay-cache entries back at start (those still inside their window).
    pub fn restore_replays(&mut self, entries: &[([u8; 32], Nanos)], now: Nanos) {
        for (id, until) in entries {
            if *until > now {
                self.replay.insert(*id, *until);
            }
        }
    }

    /// Verifies a FIX Logon from `peer` at `now` (UTC): reads Username <553>, RawDataLength
    /// <95>, RawData <96>, SendingTime <52> and the prehash fields, then does the work of
    /// [`Authenticator::check_signed`]. Every call, whatever the outcome, computes the same HMAC
    /// work (a dummy secret when there is no key or no usable signature), so the time taken does
    /// not tell which check failed or whether a key exists.
    pub fn check<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        msg: &Message<'_>,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<Verified<'s>, Refused> {
        let username = msg.get(USERNAME).unwrap_or(b"");
        let mut sig = [0u8; SIGNATURE_BYTES];
        let signature = match (msg.get(RAW_DATA_LENGTH), msg.get(RAW_DATA)) {
            (Some(len), Some(raw)) => {
                if crate::fix::decode::parse_uint(len) != Some(raw.len() as u64) {
                    Err(Failure::RawDataLengthMismatch)
                } else {
                    match base64::engine::general_purpose::STANDARD.decode_slice(raw, &mut sig) {
                        Ok(SIGNATURE_BYTES) => Ok(sig),
                        _ => Err(Failure::MalformedSignature),
                    }
                }
            }
            _ => Err(Failure::MissingRawData),
        };
        let pre = prehash(
            msg.get(tags::SENDING_TIME).unwrap_or(b""),
            msg.msg_type_bytes(),
            msg.get(tags::MSG_SEQ_NUM).unwrap_or(b""),
            msg.get(tags::SENDER_COMP_ID).unwrap_or(b""),
            msg.get(tags::TARGET_COMP_ID).unwrap_or(b""),
            username,
        );
        let fields = Fields {
            key_id: username,
            signature,
            sending_time: msg.timestamp(tags::SENDING_TIME).ok().flatten(),
            prehash: &pre,
            comp_id: msg.get(tags::SENDER_COMP_ID).unwrap_or(b""),
        };
        self.check_fields(snap, &fields, peer, now)
    }

    /// Verifies a signed logon of any protocol (FIX Logon, FIXP Negotiate/Establish) from
    /// `peer` at `now` (UTC): the same HMAC work whatever the outcome, then lockouts, fields,
    /// skew (exclusive), not before the gateway's start, the key, a constant-time comparison
    /// over every live secret, the replay cache, status, expiry, CompID binding and the IP
    /// allowlist; a failure counts against the address (and a wrong signature against the key
    /// at that address). Call [`Authenticator::remember`] once the logon is accepted.
    pub fn check_signed<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        logon: &SignedLogon<'_>,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<Verified<'s>, Refused> {
        let fields = Fields {
            key_id: logon.key_id,
            signature: Ok(logon.signature),
            sending_time: Some(logon.sending_time),
            prehash: logon.prehash,
            comp_id: logon.comp_id,
        };
        self.check_fields(snap, &fields, peer, now)
    }

    fn check_fields<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        fields: &Fields<'_>,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<Verified<'s>, Refused> {
        let key_id = KeyId::new(fields.key_id).unwrap_or(KeyId::EMPTY);
        match self.verify(snap, fields, &key_id, peer, now) {
            Ok(v) => Ok(v),
            Err(failure) => {
                let mut refused = Refused {
                    failure,
                    key_id,
                    address_locked: None,
                    key_locked: None,
                };
                if matches!(failure, Failure::AddressLockedOut | Failure::KeyLockedOut) {
                    return Err(refused);
                }
                let policy = self.policy;
                let scope = Scope::Address(peer);
                let generation = self.address_unlock;
                refused.address_locked = self
                    .lockouts
                    .fail(scope, now, &policy.address_limit(), generation)
                    .map(|until| Lock { until, generation });
                if failure.guesses_secret() {
                    if let Some(k) = snap.get(key_id.as_bytes()) {
                        let scope = Scope::KeyAddress(k.id, peer);
                        refused.key_locked = self
                            .lockouts
                            .fail(scope, now, &policy.key_limit(), k.unlock_gen)
                            .map(|until| Lock {
                                until,
                                generation: k.unlock_gen,
                            });
                    }
                }
                Err(refused)
            }
        }
    }

    fn verify<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        fields: &Fields<'_>,
        key_id: &KeyId,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<Verified<'s>, Failure> {
        let username = fields.key_id;
        let key = if username.is_empty() {
            None
        } else {
            snap.get(username)
        };
        let sig = fields.signature.unwrap_or([0u8; SIGNATURE_BYTES]);
        let pre = fields.prehash;
        // The same HMAC work whatever comes next: the key's secrets, or a dummy secret for an
        // unknown key or an unusable signature.
        let mut ok = subtle::Choice::from(0u8);
        match key {
            Some(k) if fields.signature.is_ok() => {
                for s in &k.secrets {
                    let expected = mac(&s.bytes, pre);
                    let live = subtle::Choice::from(u8::from(now.0 < s.not_after_ns));
                    ok |= expected.ct_eq(&sig) & live;
                }
            }
            _ => {
                let expected = mac(&self.dummy, pre);
                let _ = std::hint::black_box(expected.ct_eq(&sig));
            }
        }
        if self.address_locked(peer, now) {
            return Err(Failure::AddressLockedOut);
        }
        if self.key_locked(key_id, peer, now) {
            return Err(Failure::KeyLockedOut);
        }
        if username.is_empty() {
            return Err(Failure::MissingUsername);
        }
        fields.signature?;
        let sending_time = fields.sending_time.ok_or(Failure::MissingSendingTime)?;
        let skew = if sending_time > now {
            sending_time.saturating_sub(now)
        } else {
            now.saturating_sub(sending_time)
        };
        // Exclusive on both sides: a replay-cache entry lives until exactly SendingTime +
        // max_skew, and that instant is already refused here.
        if skew >= self.policy.max_skew {
            return Err(Failure::Skew);
        }
        if sending_time < self.started_at {
            return Err(Failure::BeforeStart);
        }
        let Some(key) = key else {
            return Err(Failure::UnknownKey);
        };
        if !bool::from(ok) {
            return Err(Failure::BadSignature);
        }
        let replay: [u8; 32] = Sha256::digest(sig).into();
        if self.replay.get(&replay).is_some_and(|until| *until > now) {
            return Err(Failure::Replayed);
        }
        if key.revoked {
            return Err(Failure::Revoked);
        }
        if key.is_expired(now.0) {
            return Err(if key.age_limited {
                Failure::TooOld
            } else {
                Failure::Expired
            });
        }
        if !key.comp_ids.iter().any(|c| c.as_bytes() == fields.comp_id) {
            return Err(Failure::CompIdNotBound);
        }
        if !key.allow.iter().any(|n| n.contains(peer)) {
            return Err(Failure::AddressNotAllowed);
        }
        Ok(Verified {
            key,
            replay,
            until: Nanos(sending_time.0.saturating_add(self.policy.max_skew.0)),
        })
    }
}

/// A signed logon of any protocol, for [`Authenticator::check_signed`]: the protocol decoded
/// its fields and built the bytes that were signed (its canonical string).
#[derive(Clone, Copy, Debug)]
pub struct SignedLogon<'a> {
    /// The API key id the logon names (Username <553> in FIX, the access key id in FIXP).
    pub key_id: &'a [u8],
    /// The HMAC-SHA256 signature as sent.
    pub signature: [u8; SIGNATURE_BYTES],
    /// When the client signed it (UTC): checked against `auth.max_skew_ms` and the start.
    pub sending_time: Nanos,
    /// The bytes the signature covers.
    pub prehash: &'a [u8],
    /// The client's identity the key must be bound to (SenderCompID <49>, the FIXP session).
    pub comp_id: &'a [u8],
}

/// What [`Authenticator::verify`] checks, with FIX's parse failures kept in place so that their
/// order against the other checks does not change.
struct Fields<'a> {
    key_id: &'a [u8],
    signature: Result<[u8; SIGNATURE_BYTES], Failure>,
    sending_time: Option<Nanos>,
    prehash: &'a [u8],
    comp_id: &'a [u8],
}

#[cfg(test)]
mod tests;
