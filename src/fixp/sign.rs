//! COLD (Negotiate and Establish only) — the signed FIXP requests' canonical strings
//! (fix-specs/FIXP-SESSION.md, "Signature").
//!
//! The signature is HMAC-SHA256 under the API key's secret (base64-decoded, the same key store
//! and keys as the FIX signed Logon) over the request's fields in decimal/ASCII joined by `\n`,
//! led by the message name so that a Negotiate signature never verifies as an Establish (nor
//! as a FIX Logon, whose prehash starts with a timestamp):
//!
//! ```text
//! Negotiate \n request_timestamp \n uuid \n session \n access_key_id
//! Establish \n request_timestamp \n uuid \n session \n access_key_id \n next_seq_no \n keep_alive_interval
//! ```
//!
//! No allocation: the string is built in a fixed [`Canonical`] buffer (the longest, an
//! Establish, is 10 + 21 + 21 + 33 + 33 + 21 + 10 = 149 bytes).

use arrayvec::ArrayVec;

use super::msg::{Establish, Negotiate, SIGNATURE_BYTES};
use crate::fix::encode::write_u64;

/// A canonical string: the bytes that are signed.
pub type Canonical = ArrayVec<u8, 160>;

/// The bytes a Negotiate's signature covers.
pub fn negotiate_canonical(m: &Negotiate) -> Canonical {
    let mut c = Canonical::new();
    put(&mut c, b"Negotiate");
    field_u64(&mut c, m.request_timestamp);
    field_u64(&mut c, m.uuid);
    field(&mut c, m.session.as_bytes());
    field(&mut c, m.access_key_id.as_bytes());
    c
}

/// The bytes an Establish's signature covers.
pub fn establish_canonical(m: &Establish) -> Canonical {
    let mut c = Canonical::new();
    put(&mut c, b"Establish");
    field_u64(&mut c, m.request_timestamp);
    field_u64(&mut c, m.uuid);
    field(&mut c, m.session.as_bytes());
    field(&mut c, m.access_key_id.as_bytes());
    field_u64(&mut c, m.next_seq_no);
    field_u64(&mut c, u64::from(m.keep_alive_interval));
    c
}

/// Client side (tools, tests): signs a Negotiate with the decoded secret.
pub fn sign_negotiate(secret: &[u8], m: &mut Negotiate) {
    m.hmac_signature = crate::auth::logon::mac(secret, &negotiate_canonical(m));
}

/// Client side (tools, tests): signs an Establish with the decoded secret.
pub fn sign_establish(secret: &[u8], m: &mut Establish) {
    m.hmac_signature = crate::auth::logon::mac(secret, &establish_canonical(m));
}

/// Lowercase hex of a signature (spec and test output).
pub fn hex(sig: &[u8; SIGNATURE_BYTES]) -> ArrayVec<u8, 64> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = ArrayVec::new();
    for b in sig {
        for nibble in [b >> 4, b & 15] {
            out.push(DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'?'));
        }
    }
    out
}

fn put(c: &mut Canonical, bytes: &[u8]) {
    // Cannot fail: the fields are bounded (module header) and the buffer holds the longest.
    let _ = c.try_extend_from_slice(bytes);
}

fn field(c: &mut Canonical, bytes: &[u8]) {
    put(c, b"\n");
    put(c, bytes);
}

fn field_u64(c: &mut Canonical, v: u64) {
    let mut b = [0u8; 20];
    let n = write_u64(&mut b, v);
    field(c, b.get(..n).unwrap_or_default());
}
