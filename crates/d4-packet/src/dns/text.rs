//! DNS in text: type, class and rcode mnemonics (IANA, the common part;
//! RFC 3597 `TYPE<n>` / `CLASS<n>` for the rest) and rdata in presentation
//! form (RFC 1035 and the later types' RFCs), from a message walked by
//! [`crate::dns`]. Shared by passive DNS (`d4 pdns`) and the DNS monitor
//! (`d4 dns`), so that both name things the same way.

use std::fmt::Write as _;
use std::ops::Range;

use super::{DnsError, Message};

/// Type mnemonics (RFC 1035 and later; IANA registry, the common part).
const TYPES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (13, "HINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (24, "SIG"),
    (25, "KEY"),
    (28, "AAAA"),
    (29, "LOC"),
    (33, "SRV"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (39, "DNAME"),
    (41, "OPT"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (99, "SPF"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
];

/// The mnemonic of a type, if it has one here (no allocation).
pub fn type_mnemonic(t: u16) -> Option<&'static str> {
    TYPES.iter().find(|(n, _)| *n == t).map(|(_, s)| *s)
}

/// The mnemonic of a type (`TYPE<n>` for one without, RFC 3597).
pub fn type_name(t: u16) -> std::borrow::Cow<'static, str> {
    match type_mnemonic(t) {
        Some(s) => s.into(),
        None => format!("TYPE{t}").into(),
    }
}

/// The type number of a mnemonic or `TYPE<n>`, case-insensitive.
pub fn type_code(s: &str) -> Option<u16> {
    if let Some((n, _)) = TYPES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
        return Some(*n);
    }
    s.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE"))?;
    s[4..].parse().ok()
}

/// The upper-case canonical mnemonic of a type string (`type65534` →
/// `TYPE65534`, `a` → `A`); anything else is kept upper-cased.
pub fn canonical_type(s: &str) -> String {
    match type_code(s) {
        Some(n) => type_name(n).into_owned(),
        None => s.to_ascii_uppercase(),
    }
}

/// The rcode mnemonic (RFC 1035, 2136, 6895).
pub fn rcode_name(r: u8) -> std::borrow::Cow<'static, str> {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        n => format!("RCODE{n}").into(),
    }
}

/// The class mnemonic.
pub fn class_name(c: u16) -> std::borrow::Cow<'static, str> {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        254 => "NONE".into(),
        255 => "ANY".into(),
        n => format!("CLASS{n}").into(),
    }
}

/// The class number of a mnemonic ([`class_name`]) or `CLASS<n>`,
/// case-insensitive.
pub fn class_code(s: &str) -> Option<u16> {
    for (n, m) in [(1, "IN"), (3, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY")] {
        if m.eq_ignore_ascii_case(s) {
            return Some(n);
        }
    }
    s.get(..5)
        .filter(|p| p.eq_ignore_ascii_case("CLASS"))
        .and_then(|_| s[5..].parse().ok())
}

/// The rcode number of a mnemonic ([`rcode_name`]) or `RCODE<n>`.
pub fn rcode_code(s: &str) -> Option<u8> {
    (0..=15u8)
        .find(|&r| rcode_name(r).eq_ignore_ascii_case(s))
        .or_else(|| {
            s.get(..5)
                .filter(|p| p.eq_ignore_ascii_case("RCODE"))
                .and_then(|_| s[5..].parse().ok())
        })
}

fn name(m: &Message<'_>, at: usize, out: &mut String, dot: bool) -> Result<usize, DnsError> {
    let (n, after) = m.name_at(at)?;
    let start = out.len();
    n.write_to(out, true);
    if dot && &out[start..] != "." {
        out.push('.');
    }
    Ok(after)
}

fn char_string(b: &[u8], at: usize, out: &mut String) -> Result<usize, DnsError> {
    let l = usize::from(*b.get(at).ok_or(DnsError::Truncated)?);
    let s = b.get(at + 1..at + 1 + l).ok_or(DnsError::Truncated)?;
    out.push('"');
    escaped(s, out);
    out.push('"');
    Ok(at + 1 + l)
}

/// Appends bytes in presentation form: `"` and `\\` escaped, printable ASCII
/// as is, anything else as `\DDD`.
fn escaped(s: &[u8], out: &mut String) {
    for &c in s {
        match c {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..=0x7e => out.push(char::from(c)),
            _ => {
                let _ = write!(out, "\\{c:03}");
            }
        }
    }
}

fn hex(b: &[u8], out: &mut String) {
    for x in b {
        let _ = write!(out, "{x:02X}");
    }
}

/// Standard base64 with padding.
pub fn base64(b: &[u8], out: &mut String) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

/// `YYYYMMDDHHmmSS` (UTC) of a 32-bit serial time (RFC 4034 3.2).
fn sig_time(t: u32, out: &mut String) {
    let t = i64::from(t);
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let _ = write!(
        out,
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
}

/// Whether rdata of type `t` holds domain names (then a bad name makes the
/// whole message malformed).
pub fn has_names(t: u16) -> bool {
    matches!(t, 2 | 5 | 6 | 12 | 15 | 17 | 18 | 33 | 35 | 36 | 39 | 46)
}

/// Writes the rdata at `r` of a record of type `t` in presentation form;
/// names with a trailing dot if `dot`. Types without a decoder, and rdata
/// that does not parse as its type, are written as `\# <len> <HEX>`
/// (RFC 3597) — except in types holding names, where a bad name (loop,
/// forward pointer, cut) is an error.
pub fn present(
    m: &Message<'_>,
    t: u16,
    r: Range<usize>,
    out: &mut String,
    dot: bool,
) -> Result<(), DnsError> {
    let start = out.len();
    if let Err(e) = present_typed(m, t, r.clone(), out, dot) {
        out.truncate(start);
        if has_names(t) {
            return Err(e);
        }
        let b = m.bytes().get(r).unwrap_or_default();
        let _ = write!(out, "\\# {} ", b.len());
        hex(b, out);
    }
    Ok(())
}

fn present_typed(
    m: &Message<'_>,
    t: u16,
    r: Range<usize>,
    out: &mut String,
    dot: bool,
) -> Result<(), DnsError> {
    let b = m.bytes();
    let rd = b.get(r.clone()).ok_or(DnsError::Truncated)?;
    let end = r.end;
    // Decoders must consume the rdata exactly.
    let exact = |p: usize| {
        if p == end {
            Ok(())
        } else {
            Err(DnsError::Truncated)
        }
    };
    match t {
        1 if rd.len() == 4 => {
            let a: [u8; 4] = rd.try_into().map_err(|_| DnsError::Truncated)?;
            let _ = write!(out, "{}", std::net::Ipv4Addr::from(a));
            Ok(())
        }
        28 if rd.len() == 16 => {
            let a: [u8; 16] = rd.try_into().map_err(|_| DnsError::Truncated)?;
            let _ = write!(out, "{}", std::net::Ipv6Addr::from(a));
            Ok(())
        }
        2 | 5 | 12 | 39 => exact(name(m, r.start, out, dot)?),
        15 | 18 | 36 => {
            let _ = write!(out, "{} ", m.u16_at(r.start)?);
            exact(name(m, r.start + 2, out, dot)?)
        }
        6 => {
            let p = name(m, r.start, out, dot)?;
            out.push(' ');
            let p = name(m, p, out, dot)?;
            for i in 0..5 {
                let _ = write!(out, " {}", m.u32_at(p + 4 * i)?);
            }
            exact(p + 20)
        }
        17 => {
            let p = name(m, r.start, out, dot)?;
            out.push(' ');
            exact(name(m, p, out, dot)?)
        }
        33 => {
            let _ = write!(
                out,
                "{} {} {} ",
                m.u16_at(r.start)?,
                m.u16_at(r.start + 2)?,
                m.u16_at(r.start + 4)?
            );
            exact(name(m, r.start + 6, out, dot)?)
        }
        16 | 99 | 13 => {
            let mut p = r.start;
            if p == end {
                return Err(DnsError::Truncated);
            }
            while p < end {
                if p != r.start {
                    out.push(' ');
                }
                p = char_string(b, p, out)?;
            }
            exact(p)
        }
        35 => {
            let _ = write!(out, "{} {} ", m.u16_at(r.start)?, m.u16_at(r.start + 2)?);
            let mut p = r.start + 4;
            for _ in 0..3 {
                p = char_string(b, p, out)?;
                out.push(' ');
            }
            exact(name(m, p, out, dot)?)
        }
        // DS and CDS (key tag, algorithm, digest type, digest in hex);
        // DNSKEY and CDNSKEY (flags, protocol, algorithm, key in base64).
        43 | 59 | 48 | 60 if rd.len() >= 4 => {
            let _ = write!(
                out,
                "{} {} {} ",
                u16::from_be_bytes([rd[0], rd[1]]),
                rd[2],
                rd[3]
            );
            if matches!(t, 43 | 59) {
                hex(&rd[4..], out);
            } else {
                base64(&rd[4..], out);
            }
            Ok(())
        }
        46 if rd.len() >= 18 => {
            let _ = write!(
                out,
                "{} {} {} {} ",
                type_name(u16::from_be_bytes([rd[0], rd[1]])),
                rd[2],
                rd[3],
                m.u32_at(r.start + 4)?
            );
            sig_time(m.u32_at(r.start + 8)?, out);
            out.push(' ');
            sig_time(m.u32_at(r.start + 12)?, out);
            let _ = write!(out, " {} ", m.u16_at(r.start + 16)?);
            let p = name(m, r.start + 18, out, dot)?;
            if p > end {
                return Err(DnsError::Truncated);
            }
            out.push(' ');
            base64(b.get(p..end).ok_or(DnsError::Truncated)?, out);
            Ok(())
        }
        257 if rd.len() >= 2 => {
            let tl = usize::from(rd[1]);
            let tag = rd.get(2..2 + tl).ok_or(DnsError::Truncated)?;
            if !tag.iter().all(u8::is_ascii_alphanumeric) {
                return Err(DnsError::Truncated);
            }
            let _ = write!(out, "{} {} \"", rd[0], String::from_utf8_lossy(tag));
            escaped(&rd[2 + tl..], out);
            out.push('"');
            Ok(())
        }
        _ => Err(DnsError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_both_ways() {
        assert_eq!(type_name(28), "AAAA");
        assert_eq!(type_name(65534), "TYPE65534");
        assert_eq!(type_mnemonic(65534), None);
        assert_eq!(type_code("type65534"), Some(65534));
        assert_eq!(type_code("https"), Some(65));
        assert_eq!(type_code("TYPEx"), None);
        assert_eq!(canonical_type("a"), "A");
        for c in [1, 3, 4, 254, 255, 4096] {
            assert_eq!(class_code(&class_name(c)), Some(c));
        }
        assert_eq!(class_code("in"), Some(1));
        assert_eq!(class_code("CLASSx"), None);
        for r in 0..16 {
            assert_eq!(rcode_code(&rcode_name(r)), Some(r));
        }
        assert_eq!(rcode_code("nxdomain"), Some(3));
    }

    #[test]
    fn base64_and_times() {
        let mut s = String::new();
        base64(b"foobar", &mut s);
        base64(b"fo", &mut s);
        assert_eq!(s, "Zm9vYmFyZm8=");
        let mut s = String::new();
        sig_time(1_573_665_066, &mut s);
        assert_eq!(s, "20191113171106");
    }
}
