//! HMAC-SHA-256 of D4 frames, and how a key file becomes a key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::header::{HEADER_LEN, HMAC_LEN, HMAC_OFFSET};

/// The reference default pre-shared key.
pub const DEFAULT_KEY: &[u8] = b"private key to change";

/// Turns the bytes of a `key` file into the key: one trailing `\n` is
/// stripped, then one trailing `\r` (as d4-goclient does; the C client strips
/// the last newline only). Anything else, including further newlines, is key.
pub fn key_from_file_bytes(raw: &[u8]) -> Vec<u8> {
    let k = raw.strip_suffix(b"\n").unwrap_or(raw);
    let k = k.strip_suffix(b"\r").unwrap_or(k);
    k.to_vec()
}

/// A keyed HMAC-SHA-256 state, prepared once per key and cloned per frame
/// (cloning skips re-hashing the key pads).
#[derive(Clone)]
pub struct Signer {
    /// The HMAC state right after keying.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<key>)")
    }
}

impl Signer {
    /// Prepares a signer for `key` (any length: HMAC hashes keys over 64 bytes).
    pub fn new(key: &[u8]) -> Signer {
        // HMAC accepts keys of any length; this cannot fail.
        let mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Signer { mac }
    }

    fn keyed(&self, header: &[u8; HEADER_LEN], payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&header[..HMAC_OFFSET]);
        mac.update(&[0u8; HMAC_LEN]);
        mac.update(&header[HMAC_OFFSET + HMAC_LEN..]);
        mac.update(payload);
        mac
    }

    /// The HMAC of a frame: `header` with its hmac field taken as zero (whatever
    /// it holds), then `payload`.
    pub fn sign(&self, header: &[u8; HEADER_LEN], payload: &[u8]) -> [u8; HMAC_LEN] {
        self.keyed(header, payload).finalize().into_bytes().into()
    }

    /// Whether the hmac field of `header` is the HMAC of the frame, compared in
    /// constant time.
    pub fn verify(&self, header: &[u8; HEADER_LEN], payload: &[u8]) -> bool {
        self.keyed(header, payload)
            .verify_slice(&header[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN])
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_rule() {
        assert_eq!(key_from_file_bytes(b"abc\n"), b"abc");
        assert_eq!(key_from_file_bytes(b"abc\r\n"), b"abc");
        assert_eq!(key_from_file_bytes(b"abc"), b"abc");
        assert_eq!(key_from_file_bytes(b"abc\n\n"), b"abc\n");
        assert_eq!(key_from_file_bytes(b""), b"");
    }

    #[test]
    fn verify_ignores_nothing_but_the_hmac_field() {
        let s = Signer::new(DEFAULT_KEY);
        let mut h = [3u8; HEADER_LEN];
        let tag = s.sign(&h, b"payload");
        h[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].copy_from_slice(&tag);
        assert!(s.verify(&h, b"payload"));
        assert!(!s.verify(&h, b"payloaD"));
        assert!(!Signer::new(b"other").verify(&h, b"payload"));
        h[0] ^= 1;
        assert!(!s.verify(&h, b"payload"));
    }
}
