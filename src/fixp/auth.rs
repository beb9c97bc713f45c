//! COLD (Negotiate and Establish only) — the production [`Verifier`]: FIXP signed requests
//! checked by the gateway's [`Authenticator`] exactly like a FIX Logon
//! ([`Authenticator::check_signed`]): the same key store and secrets, `auth.max_skew_ms`, not
//! before the gateway's start, the replay cache, lockouts per key+address and per address,
//! status and expiry, the key's binding to the session (its `comp_ids`) and its IP allowlist.
//!
//! The engine builds one per request (it borrows the `Authenticator`, the key snapshot and the
//! connection's peer address), passes it to `Session::on_message`, then audits
//! [`KeyVerifier::refused`] (the cause; the client only sees "authentication failed") or takes
//! [`KeyVerifier::verified_key`] as the session's principal.

use std::net::IpAddr;

use super::session::{SignedRequest, Verifier};
use crate::auth::logon::{Refused, SignedLogon};
use crate::auth::{Authenticator, KeyId, KeySnapshot};
use crate::model::Nanos;

/// [`Verifier`] over the gateway's [`Authenticator`] for one connection's request.
pub struct KeyVerifier<'a> {
    auth: &'a mut Authenticator,
    snap: &'a KeySnapshot,
    peer: IpAddr,
    /// The replay-cache entry of the request `verify` passed, until the session accepts it.
    pending: Option<([u8; 32], Nanos)>,
    verified: Option<KeyId>,
    refused: Option<Refused>,
    /// The replay-cache entry of the request the session accepted (for the engine to persist).
    remembered: Option<([u8; 32], Nanos)>,
}

impl<'a> KeyVerifier<'a> {
    pub fn new(auth: &'a mut Authenticator, snap: &'a KeySnapshot, peer: IpAddr) -> Self {
        KeyVerifier {
            auth,
            snap,
            peer,
            pending: None,
            verified: None,
            refused: None,
            remembered: None,
        }
    }

    /// Why the last request was refused (for the `auth-failed` audit event), if it was.
    pub fn refused(&self) -> Option<&Refused> {
        self.refused.as_ref()
    }

    /// The key of the last request that passed verification.
    pub fn verified_key(&self) -> Option<KeyId> {
        self.verified
    }

    /// The replay-cache entry (signature hash, until when) of the request the session
    /// accepted, if it accepted one: the engine persists it like a FIX Logon's.
    pub fn remembered(&self) -> Option<([u8; 32], Nanos)> {
        self.remembered
    }
}

impl Verifier for KeyVerifier<'_> {
    fn verify(&mut self, req: &SignedRequest<'_>, now: Nanos) -> bool {
        let logon = SignedLogon {
            key_id: req.access_key_id,
            signature: req.signature,
            sending_time: req.request_timestamp,
            prehash: req.canonical,
            comp_id: req.session,
        };
        self.pending = None;
        self.verified = None;
        self.refused = None;
        match self.auth.check_signed(self.snap, &logon, self.peer, now) {
            Ok(v) => {
                self.pending = Some(v.replay_entry());
                self.verified = Some(v.key.id);
                true
            }
            Err(r) => {
                self.refused = Some(r);
                false
            }
        }
    }

    fn accepted(&mut self, _req: &SignedRequest<'_>, now: Nanos) {
        if let Some(entry) = self.pending.take() {
            self.auth.remember_entry(entry, now);
            self.remembered = Some(entry);
        }
    }
}
