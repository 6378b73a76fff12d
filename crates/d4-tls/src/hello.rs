//! TLS handshake messages as fingerprints need them: the ClientHello and
//! ServerHello fields (raw extension order, unknown extensions included),
//! the Certificate message's chain, and the JA3, JA3S and JA4 strings built
//! from them.
//!
//! A small parser of our own: every length is checked against what is left
//! before anything is read or allocated, and a message that does not walk
//! cleanly is an error ([`Malformed`]), never a panic.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// A handshake message that does not walk cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

/// Handshake message types read here.
pub mod msg {
    /// ClientHello.
    pub const CLIENT_HELLO: u8 = 1;
    /// ServerHello (and HelloRetryRequest, a ServerHello with a fixed random).
    pub const SERVER_HELLO: u8 = 2;
    /// Certificate.
    pub const CERTIFICATE: u8 = 11;
}

/// The random of a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Whether a 16-bit value is a GREASE value (RFC 8701: 0x?a?a, both bytes
/// equal).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A cursor over a message, every read bounds-checked.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if n > self.0.len() {
            return Err(Malformed(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize, Malformed> {
        let b = self.take(3, what)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    /// A vector with a 1-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }
    /// A vector with a 2-byte length.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The u16 values of a list (odd length: malformed).
fn u16s(b: &[u8], what: &'static str) -> Result<Vec<u16>, Malformed> {
    if !b.len().is_multiple_of(2) {
        return Err(Malformed(what));
    }
    Ok(b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// The fields of a ClientHello fingerprints are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` (0x0303 for TLS 1.2 and 1.3).
    pub version: u16,
    /// Cipher suites, in order, GREASE included.
    pub ciphers: Vec<u16>,
    /// Extension types, in order, GREASE and unknown ones included.
    pub extensions: Vec<u16>,
    /// supported_groups (10), in order.
    pub curves: Vec<u16>,
    /// ec_point_formats (11), in order.
    pub point_formats: Vec<u8>,
    /// server_name (0): the first host_name, if any.
    pub sni: Option<String>,
    /// application_layer_protocol_negotiation (16), in order.
    pub alpn: Vec<Vec<u8>>,
    /// supported_versions (43), in order.
    pub versions: Vec<u16>,
    /// signature_algorithms (13), in order.
    pub sig_algs: Vec<u16>,
}

/// The fields of a ServerHello fingerprints are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// `legacy_version`.
    pub version: u16,
    /// The chosen cipher suite.
    pub cipher: u16,
    /// Extension types, in order.
    pub extensions: Vec<u16>,
    /// supported_versions (43): the version chosen (TLS 1.3).
    pub selected_version: Option<u16>,
    /// A HelloRetryRequest (the client sends a second ClientHello).
    pub retry: bool,
}

impl ServerHello {
    /// The version negotiated (supported_versions, else legacy_version).
    pub fn negotiated(&self) -> u16 {
        self.selected_version.unwrap_or(self.version)
    }
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn client_hello(body: &[u8]) -> Result<ClientHello, Malformed> {
    let mut c = Cur(body);
    let mut h = ClientHello {
        version: c.u16("client hello version")?,
        ..ClientHello::default()
    };
    c.take(32, "client hello random")?;
    c.vec8("client hello session id")?;
    h.ciphers = u16s(c.vec16("cipher suites")?, "cipher suites")?;
    c.vec8("compression methods")?;
    if c.is_empty() {
        return Ok(h); // no extensions (SSLv3, old TLS)
    }
    let mut ext = Cur(c.vec16("extensions")?);
    while !ext.is_empty() {
        let t = ext.u16("extension type")?;
        let data = ext.vec16("extension data")?;
        h.extensions.push(t);
        let mut d = Cur(data);
        match t {
            0 => {
                let mut list = Cur(d.vec16("server name list")?);
                while !list.is_empty() {
                    let kind = list.u8("server name type")?;
                    let name = list.vec16("server name")?;
                    if kind == 0 && h.sni.is_none() {
                        h.sni = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            10 => h.curves = u16s(d.vec16("supported groups")?, "supported groups")?,
            11 => h.point_formats = d.vec8("point formats")?.to_vec(),
            13 => h.sig_algs = u16s(d.vec16("signature algorithms")?, "signature algorithms")?,
            16 => {
                let mut list = Cur(d.vec16("alpn list")?);
                while !list.is_empty() {
                    h.alpn.push(list.vec8("alpn protocol")?.to_vec());
                }
            }
            43 => h.versions = u16s(d.vec8("supported versions")?, "supported versions")?,
            _ => {}
        }
    }
    if !c.is_empty() {
        return Err(Malformed("client hello trailing bytes"));
    }
    Ok(h)
}

/// Parses a ServerHello body (after the 4-byte handshake header).
pub fn server_hello(body: &[u8]) -> Result<ServerHello, Malformed> {
    let mut c = Cur(body);
    let mut h = ServerHello {
        version: c.u16("server hello version")?,
        ..ServerHello::default()
    };
    h.retry = c.take(32, "server hello random")? == HRR_RANDOM;
    c.vec8("server hello session id")?;
    h.cipher = c.u16("server hello cipher")?;
    c.u8("server hello compression")?;
    if c.is_empty() {
        return Ok(h);
    }
    let mut ext = Cur(c.vec16("server hello extensions")?);
    while !ext.is_empty() {
        let t = ext.u16("extension type")?;
        let data = ext.vec16("extension data")?;
        h.extensions.push(t);
        if t == 43 {
            // Draft versions (0x7fxx) and TLS 1.3 alike.
            let mut d = Cur(data);
            h.selected_version = Some(d.u16("selected version")?);
        }
    }
    if !c.is_empty() {
        return Err(Malformed("server hello trailing bytes"));
    }
    Ok(h)
}

/// The DER certificates of a (TLS ≤ 1.2) Certificate message body, leaf
/// first.
pub fn certificates(body: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let mut c = Cur(body);
    let n = c.u24("certificate list length")?;
    let mut list = Cur(c.take(n, "certificate list")?);
    let mut out = Vec::new();
    while !list.is_empty() {
        let l = list.u24("certificate length")?;
        out.push(list.take(l, "certificate")?);
    }
    Ok(out)
}

/// Whether `der` is one whole DER SEQUENCE (a certificate's outer header:
/// tag 0x30, a definite length of at most 4 bytes, and exactly that many
/// bytes after it). Only the header is checked, not the content.
pub fn der_whole(der: &[u8]) -> bool {
    let (Some(&0x30), Some(&l0)) = (der.first(), der.get(1)) else {
        return false;
    };
    let (len, head) = if l0 < 0x80 {
        (usize::from(l0), 2)
    } else {
        let n = usize::from(l0 & 0x7f);
        let Some(b) = der.get(2..2 + n).filter(|_| (1..=4).contains(&n)) else {
            return false;
        };
        (
            b.iter().fold(0usize, |a, x| a << 8 | usize::from(*x)),
            2 + n,
        )
    };
    der.len().checked_sub(head) == Some(len)
}

/// Decimal values, `-`-joined, GREASE left out.
fn dash(out: &mut String, vals: impl Iterator<Item = u16>) {
    let mut first = true;
    for v in vals.filter(|v| !is_grease(*v)) {
        if !first {
            out.push('-');
        }
        first = false;
        out.push_str(&v.to_string());
    }
}

/// MD5, hex.
pub fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(H[usize::from(x >> 4)]));
        s.push(char::from(H[usize::from(x & 15)]));
    }
    s
}

impl ClientHello {
    /// The JA3 string: `version,ciphers,extensions,curves,pointformats`.
    pub fn ja3(&self) -> String {
        let mut s = self.version.to_string();
        s.push(',');
        dash(&mut s, self.ciphers.iter().copied());
        s.push(',');
        dash(&mut s, self.extensions.iter().copied());
        s.push(',');
        dash(&mut s, self.curves.iter().copied());
        s.push(',');
        dash(&mut s, self.point_formats.iter().map(|p| u16::from(*p)));
        s
    }

    /// The JA4 fingerprint (FoxIO's JA4 TLS client fingerprint, over TCP).
    pub fn ja4(&self) -> String {
        let version = self
            .versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.version);
        let v = match version {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0002 => "s2",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|c| !is_grease(*c))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| !is_grease(*e))
            .collect();
        let alpn = match self.alpn.first() {
            Some(p) if !p.is_empty() => {
                let (f, l) = (p[0], p[p.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", char::from(f), char::from(l))
                } else {
                    // Non-alphanumeric: the first and last hex digits.
                    let h = hex(&[f, l]);
                    format!("{}{}", &h[..1], &h[3..])
                }
            }
            _ => "00".to_string(),
        };
        let a = format!(
            "t{v}{}{:02}{:02}{alpn}",
            if self.sni.is_some() || self.extensions.contains(&0) {
                'd'
            } else {
                'i'
            },
            ciphers.len().min(99),
            exts.len().min(99),
        );
        let mut sorted = ciphers;
        sorted.sort_unstable();
        let b = hash12(&hex_list(&sorted));
        let mut sorted: Vec<u16> = exts.into_iter().filter(|e| *e != 0 && *e != 16).collect();
        sorted.sort_unstable();
        let c = if sorted.is_empty() {
            "000000000000".to_string()
        } else {
            let mut s = hex_list(&sorted);
            let sig: Vec<u16> = self
                .sig_algs
                .iter()
                .copied()
                .filter(|x| !is_grease(*x))
                .collect();
            if !sig.is_empty() {
                s.push('_');
                s.push_str(&hex_list(&sig));
            }
            hash12(&s)
        };
        format!("{a}_{b}_{c}")
    }

    /// Builds a ClientHello body with these fields (a zero random, no
    /// session id, null compression), in extension order; extensions whose
    /// content is not kept here are written empty. For tests and benches:
    /// `client_hello(&h.build())` gives `h` back.
    pub fn build(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&[0; 32]);
        b.push(0);
        put16(&mut b, &be16(&self.ciphers));
        b.extend_from_slice(&[1, 0]);
        let mut ext = Vec::new();
        let mut sni_done = false;
        for t in &self.extensions {
            let mut d = Vec::new();
            match t {
                0 if !sni_done => {
                    sni_done = true;
                    let mut list = Vec::new();
                    if let Some(n) = &self.sni {
                        list.push(0);
                        put16(&mut list, n.as_bytes());
                    }
                    put16(&mut d, &list);
                }
                10 => put16(&mut d, &be16(&self.curves)),
                11 => put8(&mut d, &self.point_formats),
                13 => put16(&mut d, &be16(&self.sig_algs)),
                16 => {
                    let mut list = Vec::new();
                    for p in &self.alpn {
                        put8(&mut list, p);
                    }
                    put16(&mut d, &list);
                }
                43 => put8(&mut d, &be16(&self.versions)),
                _ => {}
            }
            ext.extend_from_slice(&t.to_be_bytes());
            put16(&mut ext, &d);
        }
        put16(&mut b, &ext);
        b
    }
}

impl ServerHello {
    /// The JA3S string: `version,cipher,extensions`.
    pub fn ja3s(&self) -> String {
        let mut s = format!("{},{},", self.version, self.cipher);
        dash(&mut s, self.extensions.iter().copied());
        s
    }
}

fn be16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn put8(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b.len().min(255) as u8);
    out.extend_from_slice(&b[..b.len().min(255)]);
}

fn put16(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len().min(0xffff);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

/// 4-digit lower-case hex values, comma-joined.
fn hex_list(v: &[u16]) -> String {
    v.iter()
        .map(|x| format!("{x:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// SHA-256 of `s`, the first 12 hex digits; `000000000000` for nothing.
fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_string();
    }
    let mut h = hex(&Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grease() {
        for v in [0x0a0a, 0x1a1a, 0xfafa, 0x4a4a] {
            assert!(is_grease(v));
        }
        for v in [0x0a1a, 0x000a, 0x1301, 0xaaaa - 1] {
            assert!(!is_grease(v));
        }
    }

    fn sample() -> ClientHello {
        ClientHello {
            version: 0x0303,
            ciphers: vec![0x2a2a, 0x1301, 0x1302, 0xc02f],
            extensions: vec![0x3a3a, 0, 10, 11, 13, 16, 43, 0xff01, 0xfafa],
            curves: vec![0x4a4a, 29, 23],
            point_formats: vec![0],
            sni: Some("example.com".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            versions: vec![0x5a5a, 0x0304, 0x0303],
            sig_algs: vec![0x0403, 0x0804],
        }
    }

    #[test]
    fn ja3_leaves_grease_out_with_no_trailing_dash() {
        let h = sample();
        assert_eq!(
            h.ja3(),
            "771,4865-4866-49199,0-10-11-13-16-43-65281,29-23,0"
        );
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        let ja4 = h.ja4();
        assert!(ja4.starts_with("t13d0307h2_"), "{ja4}");
        // b: sha256("1301,1302,c02f")[:12]; c: 000a,000b,000d,002b,ff01_0403,0804.
        let b = hash12("1301,1302,c02f");
        let c = hash12("000a,000b,000d,002b,ff01_0403,0804");
        assert_eq!(ja4, format!("t13d0307h2_{b}_{c}"));
    }

    #[test]
    fn hello_retry_request_is_recognised() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&HRR_RANDOM);
        b.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
        let s = server_hello(&b).unwrap();
        assert!(s.retry);
        assert_eq!(s.negotiated(), 0x0304);
        assert_eq!(s.ja3s(), "771,4865,43");
    }

    #[test]
    fn der_headers() {
        assert!(der_whole(&[0x30, 0x02, 1, 2]));
        assert!(der_whole(&[0x30, 0x81, 0x01, 9]));
        assert!(!der_whole(&[0x30, 0x82, 0x01])); // cut length
        assert!(!der_whole(&[0x30, 0x03, 1, 2])); // short
        assert!(!der_whole(&[0x31, 0x00]));
        assert!(!der_whole(&[0x30, 0x80])); // indefinite
    }

    proptest! {
        #[test]
        fn parsers_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = client_hello(&b);
            let _ = server_hello(&b);
            let _ = certificates(&b);
            let _ = der_whole(&b);
        }

        #[test]
        fn build_then_parse_gives_the_fields(
            version: u16,
            ciphers in prop::collection::vec(any::<u16>(), 0..40),
            unknown in prop::collection::vec(100u16..0xfe00, 0..10),
            curves in prop::collection::vec(any::<u16>(), 0..10),
            pf in prop::collection::vec(any::<u8>(), 0..4),
            sni in proptest::option::of("[a-z0-9.-]{1,40}"),
            alpn in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..10), 0..3),
            versions in prop::collection::vec(any::<u16>(), 0..5),
            sig in prop::collection::vec(any::<u16>(), 0..10),
        ) {
            let mut extensions = vec![0, 10, 11, 13, 16, 43];
            extensions.extend(unknown);
            let h = ClientHello {
                version, ciphers, extensions, curves, point_formats: pf,
                sni, alpn, versions, sig_algs: sig,
            };
            let back = client_hello(&h.build()).unwrap();
            prop_assert_eq!(&back, &h);
            let ja3 = back.ja3();
            prop_assert_eq!(ja3.matches(',').count(), 4);
            prop_assert!(!ja3.contains(",-") && !ja3.contains("-,") && !ja3.ends_with('-'));
            prop_assert!(!ja3.contains("--"));
            prop_assert_eq!(back.ja4().len(), 36);
        }
    }
}
