//! The hash an erasure's audit record keeps of the erased user id
//! (ADR-037): HMAC-SHA256 under the project's own key, kept in its
//! database. Without the key, a record's hash cannot be matched against
//! hashes of guessed ids (emails, numeric ids), and records of the same
//! user id in two projects or deployments do not link.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex HMAC-SHA256 of `user_id` under `key`.
pub fn user_hash(key: &[u8], user_id: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            user_hash(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(user_hash(b"k1", "u"), user_hash(b"k2", "u"));
    }
}
