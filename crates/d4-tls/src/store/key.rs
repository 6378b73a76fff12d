//! The keys of the `idx` and `fps` tables (see the store's layout).

use std::net::IpAddr;

use crate::cert::{CertInfo, Links};

/// Sessions by JA3 digest.
pub const JA3: u8 = 1;
/// Sessions by JA3S digest.
pub const JA3S: u8 = 2;
/// Sessions by JA4.
pub const JA4: u8 = 3;
/// Sessions by certificate (SHA-1).
pub const CERT: u8 = 4;
/// Sessions by client or server address.
pub const IP: u8 = 5;
/// SNI and SAN names, labels reversed.
pub const NAME: u8 = 6;
/// Certificates by subject name hash.
pub const SUBJECT: u8 = 7;
/// Certificates by issuer name hash.
pub const ISSUER: u8 = 8;
/// Certificates by subject key identifier.
pub const SKI: u8 = 9;

/// Name entry of a session's SNI.
pub const TAG_SNI: u8 = 0;
/// Name entry of a certificate's SAN.
pub const TAG_SAN: u8 = 1;

/// `ja3`, `ja3s`, `ja4`.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        JA3 => "ja3",
        JA3S => "ja3s",
        _ => "ja4",
    }
}

/// The smallest key greater than every key starting with `p` (`None`: there
/// is none).
pub fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Hex → bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    d4_api::lookup::parse_cursor(s, 64)
}

/// An address as 16 bytes (IPv4 mapped into IPv6).
pub fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// The key of a fingerprint in `fps`, and the prefix of its sessions in `idx`.
pub fn fp(kind: u8, fp: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(fp.len() + 2);
    k.push(kind);
    k.extend_from_slice(fp.as_bytes());
    k.push(0);
    k
}

/// `kind|fp|0|id`.
pub fn fp_session(kind: u8, f: &str, id: u64, k: &mut Vec<u8>) {
    k.clear();
    k.push(kind);
    k.extend_from_slice(f.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
}

/// `CERT|sha1|id`.
pub fn cert_session(sha1: &[u8; 20], id: u64, k: &mut Vec<u8>) {
    k.clear();
    k.push(CERT);
    k.extend_from_slice(sha1);
    k.extend_from_slice(&id.to_be_bytes());
}

/// `IP|addr16|id`.
pub fn ip_session(a: IpAddr, id: u64, k: &mut Vec<u8>) {
    k.clear();
    k.push(IP);
    k.extend_from_slice(&ip16(a));
    k.extend_from_slice(&id.to_be_bytes());
}

/// `www.example.com` → `com.example.www` appended to `out`.
pub fn reversed(name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(d4_api::lookup::reverse_name(name).as_bytes());
}

/// `NAME|revname|0|tag|ref`.
pub fn name(n: &str, tag: u8, rf: &[u8], k: &mut Vec<u8>) {
    k.clear();
    k.push(NAME);
    reversed(n, k);
    k.push(0);
    k.push(tag);
    k.extend_from_slice(rf);
}

/// The prefix of a name's entries (`exact`), or of every name under it.
pub fn name_prefix(n: &str, exact: bool) -> Vec<u8> {
    let mut k = vec![NAME];
    reversed(n, &mut k);
    k.push(if exact { 0 } else { b'.' });
    k
}

/// A name entry's name, tag and reference.
pub fn split_name(k: &[u8]) -> Option<(String, u8, &[u8])> {
    let body = k.get(1..)?;
    let z = body.iter().position(|&b| b == 0)?;
    let rev = std::str::from_utf8(&body[..z]).ok()?;
    let tag = *body.get(z + 1)?;
    Some((d4_api::lookup::reverse_name(rev), tag, body.get(z + 2..)?))
}

/// The session id at the end of a session index key.
pub fn trailing_id(k: &[u8]) -> Option<u64> {
    let t = k.get(k.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(t.try_into().ok()?))
}

/// `kind|hash` (subject or issuer name links).
pub fn name_link(kind: u8, h: &[u8; 16]) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(h);
    k
}

/// The index entries of a new certificate: names (SANs, or the subject
/// CN without SANs) and chain links.
pub fn cert_entries(info: &CertInfo, links: &Links, sha1: &[u8; 20]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = info.sans.iter().map(String::as_str).collect();
    if names.is_empty() {
        names.extend(info.subject_cn.as_deref());
    }
    for n in names {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if n.is_empty() || n.len() > 253 || n.contains('\0') {
            continue;
        }
        let mut k = Vec::new();
        name(&n, TAG_SAN, sha1, &mut k);
        out.push(k);
    }
    for (kind, h) in [(SUBJECT, links.subject), (ISSUER, links.issuer)] {
        if let Some(h) = h {
            let mut k = name_link(kind, &h);
            k.extend_from_slice(sha1);
            out.push(k);
        }
    }
    if let Some(ski) = &links.ski {
        let mut k = vec![SKI, ski.len().min(255) as u8];
        k.extend_from_slice(&ski[..ski.len().min(255)]);
        k.extend_from_slice(sha1);
        out.push(k);
    }
    out
}
