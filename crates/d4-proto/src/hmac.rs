//! HMAC-SHA-256 of D4 frames, and how a key file becomes a key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::header::{HEADER_LEN, HMAC_LEN, HMAC_OFFSET};

/// The reference default pre-shared key.
pub const DEFAULT_KEY: &[u8] = b"private key to change";

/// Turns the bytes of a `key` file into the key as the C client (d4-core's
/// `d4`, the de-facto standard) does: one trailing `\n` is stripped, and the
/// key ends at the first NUL byte (it is a C string). A `\r` is key (the Go
/// client strips a final one: see [`key_file_oddities`]). Anything else,
/// including further newlines, is key.
pub fn key_from_file_bytes(raw: &[u8]) -> Vec<u8> {
    let k = raw.strip_suffix(b"\n").unwrap_or(raw);
    let k = k.split(|b| *b == 0).next().unwrap_or(k);
    k.to_vec()
}

/// What in a `key` file's bytes makes the reference clients disagree on
/// the key, in words (for a warning at start): a `\r` (kept by the C client
/// and by d4, stripped at the end by the Go client) or a NUL byte (the C
/// client and d4 stop there).
pub fn key_file_oddities(raw: &[u8]) -> Vec<String> {
    let k = raw.strip_suffix(b"\n").unwrap_or(raw);
    let mut out = Vec::new();
    if let Some(at) = k.iter().position(|b| *b == 0) {
        out.push(format!(
            "it has a NUL byte at offset {at}: the key is the {at} bytes before it, as the C \
             client reads it"
        ));
    }
    let kept = k.split(|b| *b == 0).next().unwrap_or(k);
    if kept.contains(&b'\r') {
        out.push(
            "it has a carriage return (\\r, a Windows line end?): it is part of the key, as the \
             C client reads it (the Go client strips a final one); remove it if the server's \
             key has none"
                .to_string(),
        );
    }
    out
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
        // As the C client: `\r` is key, a NUL ends it.
        assert_eq!(key_from_file_bytes(b"abc\r\n"), b"abc\r");
        assert_eq!(key_from_file_bytes(b"ab\0cd\n"), b"ab");
        assert_eq!(key_file_oddities(b"abc\n"), Vec::<String>::new());
        assert_eq!(key_file_oddities(b"abc\r\n").len(), 1);
        assert_eq!(key_file_oddities(b"a\0b\r\n").len(), 1);
        assert!(key_file_oddities(b"a\0b\n")[0].contains("offset 1"));
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
