//! COLD (runs on the gateway thread at logon only) — the signed Logon (fix-specs/SIGNED-LOGON.md).
//!
//! RawData <96> = base64(HMAC-SHA256(secret, SendingTime <52> SOH MsgType <35> SOH MsgSeqNum <34>
//! SOH SenderCompID <49> SOH TargetCompID <56> SOH Username <553>)), RawDataLength <95> = its
//! length. [`Authenticator::check`] verifies a Logon against the key snapshot: lockout first
//! (no HMAC for a locked key or address), then fields, skew, the key (a dummy secret for unknown
//! ids, so both cost the same), a constant-time comparison, the replay cache, status, expiry,
//! CompID binding and the IP allowlist. Every failure has a `&'static str` cause for the audit
//! stream; the client only ever sees "authentication failed".

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::keys::{Key, KeyId, KeySnapshot};
use crate::fix::{tags, Message};
use crate::model::Nanos;

type HmacSha256 = Hmac<Sha256>;

/// Tag numbers of the signed logon.
pub const USERNAME: i32 = 553;
pub const RAW_DATA_LENGTH: i32 = 95;
pub const RAW_DATA: i32 = 96;
/// Source addresses tracked for lockout before idle ones are forgotten.
pub const MAX_TRACKED_ADDRESSES: usize = 1 << 16;
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

/// Why a logon was refused (the audit cause; the client sees only "authentication failed").
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
            Failure::KeyLockedOut => "key locked out",
            Failure::MissingUsername => "Username(553) missing",
            Failure::MissingRawData => "RawData(96) or RawDataLength(95) missing",
            Failure::RawDataLengthMismatch => "RawDataLength(95) does not match RawData(96)",
            Failure::MalformedSignature => "RawData(96) is not base64 of a 32-byte signature",
            Failure::MissingSendingTime => "SendingTime(52) missing or malformed",
            Failure::Skew => "SendingTime(52) outside the allowed skew",
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
}

/// Lockout and skew settings.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Allowed |SendingTime − now|.
    pub max_skew: Nanos,
    /// Failures within `window` that lock a key or a source address.
    pub max_failures: u32,
    pub window: Nanos,
    /// How long a lockout lasts.
    pub lockout: Nanos,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_skew: Nanos::from_millis(5_000),
            max_failures: 5,
            window: Nanos::from_millis(60_000),
            lockout: Nanos::from_millis(300_000),
        }
    }
}

#[derive(Default)]
struct Strikes {
    /// Times of recent failures (pruned to the window).
    failures: Vec<Nanos>,
    locked_until: Nanos,
}

impl Strikes {
    fn locked(&self, now: Nanos) -> bool {
        now < self.locked_until
    }
    /// Records a failure; true when this one starts a lockout.
    fn fail(&mut self, now: Nanos, p: &Policy) -> bool {
        let since = now.saturating_sub(p.window);
        self.failures.retain(|t| *t >= since);
        self.failures.push(now);
        if self.failures.len() as u32 >= p.max_failures && !self.locked(now) {
            self.locked_until = Nanos(now.0.saturating_add(p.lockout.0));
            self.failures.clear();
            return true;
        }
        false
    }
}

/// What a failed check reports.
#[derive(Clone, Copy, Debug)]
pub struct Refused {
    pub failure: Failure,
    /// The key id the logon named (may be unknown or empty).
    pub key_id: KeyId,
    /// This failure locked the key (`Some(false)`: the address) out.
    pub locked: Option<bool>,
}

/// Logon verification state: lockout tables and the replay cache. Owned by the gateway thread.
pub struct Authenticator {
    pub policy: Policy,
    by_key: HashMap<KeyId, Strikes>,
    by_addr: HashMap<IpAddr, Strikes>,
    /// Signatures seen, until their SendingTime leaves the skew window.
    replay: HashMap<[u8; SIGNATURE_BYTES], Nanos>,
    /// Unlock generations already applied.
    key_unlock: HashMap<KeyId, u64>,
    address_unlock: u64,
    next_sweep: Nanos,
    /// Scratch strikes for unknown key ids (equal work, nothing kept).
    unknown: Strikes,
    dummy: [u8; 32],
}

impl Authenticator {
    pub fn new(policy: Policy) -> Authenticator {
        let mut dummy = [0u8; 32];
        let _ = getrandom::getrandom(&mut dummy);
        Authenticator {
            policy,
            by_key: HashMap::new(),
            by_addr: HashMap::new(),
            replay: HashMap::new(),
            key_unlock: HashMap::new(),
            address_unlock: 0,
            next_sweep: Nanos::ZERO,
            unknown: Strikes::default(),
            dummy,
        }
    }

    /// Applies the unlock generations of a new snapshot (`portcullis keys unlock`).
    pub fn apply_unlocks(&mut self, snap: &KeySnapshot) {
        for k in &snap.keys {
            let seen = self.key_unlock.entry(k.id).or_insert(k.unlock_gen);
            if *seen != k.unlock_gen {
                *seen = k.unlock_gen;
                self.by_key.remove(&k.id);
            }
        }
        if snap.address_unlock_gen != self.address_unlock {
            self.address_unlock = snap.address_unlock_gen;
            self.by_addr.clear();
        }
    }

    /// True when the key is locked out at `now`.
    pub fn key_locked(&self, id: &KeyId, now: Nanos) -> bool {
        self.by_key.get(id).is_some_and(|s| s.locked(now))
    }

    /// Verifies a Logon from `peer` at `now` (UTC). `Ok` gives the key.
    pub fn check<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        msg: &Message<'_>,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<&'s Key, Refused> {
        let key_id = msg
            .get(USERNAME)
            .and_then(KeyId::new)
            .unwrap_or(KeyId::EMPTY);
        let r = self.verify(snap, msg, &key_id, peer, now);
        match r {
            Ok(k) => Ok(k),
            Err(failure) => {
                let mut locked = None;
                if !matches!(failure, Failure::AddressLockedOut | Failure::KeyLockedOut) {
                    let policy = self.policy;
                    // Failures from many addresses must not grow the table without bound:
                    // forget addresses that are neither locked nor failing recently.
                    if self.by_addr.len() >= MAX_TRACKED_ADDRESSES {
                        let since = now.saturating_sub(policy.window);
                        self.by_addr.retain(|_, s| {
                            s.locked(now) || s.failures.last().is_some_and(|t| *t >= since)
                        });
                    }
                    if self.by_addr.entry(peer).or_default().fail(now, &policy) {
                        locked = Some(false);
                    }
                    if !key_id.is_empty() && snap.get(key_id.as_bytes()).is_some() {
                        if self.by_key.entry(key_id).or_default().fail(now, &policy) {
                            locked = Some(true);
                        }
                    } else {
                        // Unknown ids are not tracked (they would grow the table), but cost
                        // the same bookkeeping as known ones.
                        use std::hash::BuildHasher as _;
                        let _ = std::hint::black_box(self.by_key.hasher().hash_one(key_id));
                        let _ = self.unknown.fail(now, &policy);
                        self.unknown.failures.clear();
                        self.unknown.locked_until = Nanos::ZERO;
                    }
                }
                Err(Refused {
                    failure,
                    key_id,
                    locked,
                })
            }
        }
    }

    fn verify<'s>(
        &mut self,
        snap: &'s KeySnapshot,
        msg: &Message<'_>,
        key_id: &KeyId,
        peer: IpAddr,
        now: Nanos,
    ) -> Result<&'s Key, Failure> {
        // A locked address or key costs a map lookup, never an HMAC.
        if self.by_addr.get(&peer).is_some_and(|s| s.locked(now)) {
            return Err(Failure::AddressLockedOut);
        }
        if self.key_locked(key_id, now) {
            return Err(Failure::KeyLockedOut);
        }
        let username = msg.get(USERNAME).ok_or(Failure::MissingUsername)?;
        if username.is_empty() {
            return Err(Failure::MissingUsername);
        }
        let (Some(len), Some(raw)) = (msg.get(RAW_DATA_LENGTH), msg.get(RAW_DATA)) else {
            return Err(Failure::MissingRawData);
        };
        if crate::fix::decode::parse_uint(len) != Some(raw.len() as u64) {
            return Err(Failure::RawDataLengthMismatch);
        }
        let mut sig = [0u8; SIGNATURE_BYTES];
        match base64::engine::general_purpose::STANDARD.decode_slice(raw, &mut sig) {
            Ok(SIGNATURE_BYTES) => {}
            _ => return Err(Failure::MalformedSignature),
        }
        let sending_time_raw = msg.get(tags::SENDING_TIME).unwrap_or(b"");
        let sending_time = msg
            .timestamp(tags::SENDING_TIME)
            .ok()
            .flatten()
            .ok_or(Failure::MissingSendingTime)?;
        let skew = if sending_time > now {
            sending_time.saturating_sub(now)
        } else {
            now.saturating_sub(sending_time)
        };
        if skew > self.policy.max_skew {
            return Err(Failure::Skew);
        }
        let pre = prehash(
            sending_time_raw,
            msg.msg_type_bytes(),
            msg.get(tags::MSG_SEQ_NUM).unwrap_or(b""),
            msg.get(tags::SENDER_COMP_ID).unwrap_or(b""),
            msg.get(tags::TARGET_COMP_ID).unwrap_or(b""),
            username,
        );
        let key = snap.get(username);
        // Unknown id: the same HMAC against a dummy secret, so the answer takes as long.
        let mut ok = subtle::Choice::from(0u8);
        match key {
            Some(k) => {
                for s in &k.secrets {
                    let expected = mac(&s.bytes, &pre);
                    let live = subtle::Choice::from(u8::from(now.0 < s.not_after_ns));
                    ok |= expected.ct_eq(&sig) & live;
                }
            }
            None => {
                let expected = mac(&self.dummy, &pre);
                let _ = expected.ct_eq(&sig);
            }
        }
        let Some(key) = key else {
            return Err(Failure::UnknownKey);
        };
        if !bool::from(ok) {
            return Err(Failure::BadSignature);
        }
        // Never accept a signature twice while its SendingTime is inside the window. Expired
        // entries are swept at most once a second (only valid signatures get in, so the cache
        // holds at most the legitimate logons of one skew window).
        if now >= self.next_sweep {
            self.replay.retain(|_, until| *until > now);
            self.next_sweep = Nanos(now.0.saturating_add(1_000_000_000));
        }
        let until = Nanos(sending_time.0.saturating_add(self.policy.max_skew.0));
        if let Some(prev) = self.replay.insert(sig, until) {
            if prev > now {
                return Err(Failure::Replayed);
            }
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
        let sender = msg.get(tags::SENDER_COMP_ID).unwrap_or(b"");
        if !key.comp_ids.iter().any(|c| c.as_bytes() == sender) {
            return Err(Failure::CompIdNotBound);
        }
        if !key.allow.iter().any(|n| n.contains(peer)) {
            return Err(Failure::AddressNotAllowed);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests;
