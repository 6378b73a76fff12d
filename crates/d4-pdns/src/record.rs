//! DNS records as passive DNS sees them: type and rcode mnemonics, rdata in
//! presentation form, name and rdata normalisation, and the gamelinux
//! passivedns line format (`ts||client||server||class||query||type||answer||ttl||count`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use d4_packet::dns::{DnsError, Message};

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

/// The mnemonic of a type (`TYPE<n>` for one without, RFC 3597).
pub fn type_name(t: u16) -> std::borrow::Cow<'static, str> {
    match TYPES.iter().find(|(n, _)| *n == t) {
        Some((_, s)) => (*s).into(),
        None => format!("TYPE{t}").into(),
    }
}

/// The type number of a mnemonic or `TYPE<n>`, case-insensitive.
pub fn type_code(s: &str) -> Option<u16> {
    if let Some((n, _)) = TYPES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
        return Some(*n);
    }
    let d = s.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE"))?;
    let _ = d;
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

/// Normalises a name: lower case, no trailing dot (the root stays `.`).
pub fn normalize_name(s: &str) -> String {
    let t = s.trim().trim_end_matches('.').trim_end();
    if t.is_empty() {
        return ".".into();
    }
    t.to_ascii_lowercase()
}

/// Normalises rdata in presentation form for a type: addresses in their
/// canonical text; names lower-cased without trailing dot in the types
/// whose rdata holds names at known places; other types unchanged.
pub fn normalize_rdata(rrtype: &str, s: &str) -> String {
    let s = s.trim();
    let name_fields: &[usize] = match rrtype {
        // Rust's IPv4 parser takes only the canonical dotted quad (no
        // leading zeros), so a parsed one is returned as is.
        "A" if s.parse::<std::net::Ipv4Addr>().is_ok() => return s.to_string(),
        "A" | "AAAA" => {
            return match s.parse::<IpAddr>() {
                Ok(a) => a.to_string(),
                Err(_) => s.to_string(),
            }
        }
        "CNAME" | "NS" | "PTR" | "DNAME" => return normalize_name(s),
        "MX" | "AFSDB" | "KX" => &[1],
        "SRV" => &[3],
        "SOA" => &[0, 1],
        "RP" => &[0, 1],
        _ => return s.to_string(),
    };
    let toks: Vec<&str> = s.split_ascii_whitespace().collect();
    toks.iter()
        .enumerate()
        .map(|(i, t)| {
            if name_fields.contains(&i) {
                normalize_name(t)
            } else {
                (*t).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a name from the message (`dot`: with the trailing dot).
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

/// One record extracted from a DNS response, borrowed from the extractor's
/// buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec<'a> {
    /// Capture time, seconds.
    pub ts_sec: u64,
    /// Capture time, microseconds.
    pub ts_usec: u32,
    /// The resolver that asked (destination of the response).
    pub client: IpAddr,
    /// The server that answered.
    pub server: IpAddr,
    /// Class.
    pub class: u16,
    /// Owner name (lower case; trailing dot as the extractor was told).
    pub rrname: &'a str,
    /// Type (for an error response, the question type).
    pub rrtype: u16,
    /// Rdata in presentation form, or the rcode name of an error response.
    pub rdata: &'a str,
    /// TTL (0 for an error response).
    pub ttl: u32,
}

impl Rec<'_> {
    /// Writes the gamelinux passivedns line (default fields, count 1),
    /// newline included.
    pub fn write_line<W: std::io::Write + ?Sized>(&self, out: &mut W) -> std::io::Result<()> {
        writeln!(
            out,
            "{}.{:06}||{}||{}||{}||{}||{}||{}||{}||1",
            self.ts_sec,
            self.ts_usec,
            self.client,
            self.server,
            class_name(self.class),
            self.rrname,
            type_name(self.rrtype),
            self.rdata,
            self.ttl
        )
    }
}

/// One passive DNS record, (rrname, rrtype, rdata) seen `count` times
/// between `time_first` and `time_last` by `sensors`: what ingest merges,
/// what the store keeps and returns, and, through serde, one COF object
/// (see [`crate::cof`]: `sensors` is written `sensor_id`, left out when
/// empty).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Owner name (normalised: lower case, no trailing dot; `.` for the root).
    pub rrname: String,
    /// Type mnemonic (canonical: upper case, `TYPE<n>` when unknown).
    pub rrtype: String,
    /// Rdata in presentation form (normalised).
    pub rdata: String,
    /// First seen (seconds since the epoch).
    pub time_first: u64,
    /// Last seen (seconds since the epoch).
    pub time_last: u64,
    /// Times seen (COF: optional on input, 1 when absent).
    #[serde(default = "crate::cof::one", deserialize_with = "crate::cof::count")]
    pub count: u64,
    /// Sensors that saw it (COF: a string or an array on input).
    #[serde(
        rename = "sensor_id",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::cof::one_or_many"
    )]
    pub sensors: Vec<String>,
}

impl Record {
    /// From names and types in any case and with or without trailing dots.
    pub fn new(rrname: &str, rrtype: &str, rdata: &str, time: u64, count: u64) -> Record {
        let rrtype = canonical_type(rrtype);
        Record {
            rrname: normalize_name(rrname),
            rdata: normalize_rdata(&rrtype, rdata),
            rrtype,
            time_first: time,
            time_last: time,
            count,
            sensors: Vec::new(),
        }
    }
}

/// Why a passivedns line was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not 9 `||`-separated fields.
    #[error("expected 9 fields separated by ||, got {0}")]
    Fields(usize),
    /// A field that does not parse.
    #[error("bad {0} field")]
    Field(&'static str),
}

/// Parses a gamelinux passivedns line (default fields).
pub fn parse_line(line: &str) -> Result<Record, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut f = [""; 9];
    let mut n = 0;
    for (i, part) in line.split("||").enumerate() {
        if i < 9 {
            f[i] = part;
        }
        n = i + 1;
    }
    if n != 9 {
        return Err(LineError::Fields(n));
    }
    let ts = f[0].split('.').next().unwrap_or_default();
    let time: u64 = ts.parse().map_err(|_| LineError::Field("timestamp"))?;
    if f[4].is_empty() || f[4].len() > 1024 {
        return Err(LineError::Field("query"));
    }
    if f[5].is_empty() || f[5].len() > 32 {
        return Err(LineError::Field("type"));
    }
    if f[6].len() > 65_535 {
        return Err(LineError::Field("answer"));
    }
    let count: u64 = if f[8].is_empty() {
        1
    } else {
        f[8].parse().map_err(|_| LineError::Field("count"))?
    };
    Ok(Record::new(f[4], f[5], f[6], time, count.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_line_parses_and_normalises() {
        let o = parse_line(
            "1322849924.408856||10.1.1.1||8.8.8.8||IN||upload.YouTube.com.||A||74.125.43.117||46587||5",
        )
        .unwrap();
        assert_eq!(
            o,
            Record {
                rrname: "upload.youtube.com".into(),
                rrtype: "A".into(),
                rdata: "74.125.43.117".into(),
                time_first: 1322849924,
                time_last: 1322849924,
                count: 5,
                sensors: vec![],
            }
        );
        let o = parse_line("1||a||b||IN||x.org.||mx||10 MX.X.org.||60||1").unwrap();
        assert_eq!((o.rrtype.as_str(), o.rdata.as_str()), ("MX", "10 mx.x.org"));
        let o = parse_line("1||a||b||IN||x.org.||type65534||\\# 1 00||60||1").unwrap();
        assert_eq!(o.rrtype, "TYPE65534");
        let o = parse_line("1||a||b||IN||x.org.||A||010.1.1.1||60||1").unwrap();
        assert_eq!(o.rdata, "010.1.1.1", "not an address: kept as is");
        let o = parse_line("1||a||b||IN||x.org.||AAAA||2001:DB8:0::1||60||1").unwrap();
        assert_eq!(o.rdata, "2001:db8::1");
        assert_eq!(parse_line("1||a"), Err(LineError::Fields(2)));
        assert_eq!(
            parse_line("x||a||b||IN||x.org.||A||1.2.3.4||60||1"),
            Err(LineError::Field("timestamp"))
        );
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
        assert_eq!(type_code("type65534"), Some(65534));
        assert_eq!(type_code("https"), Some(65));
        assert_eq!(type_code("TYPEx"), None);
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name("Ex.COM."), "ex.com");
    }

    proptest::proptest! {
        #[test]
        fn normalising_is_idempotent(n in "[a-zA-Z0-9.-]{0,40}", t in "(A|AAAA|MX|SOA|CNAME|TXT|TYPE9)") {
            let once = normalize_name(&n);
            proptest::prop_assert_eq!(normalize_name(&once), once.clone());
            let r = normalize_rdata(&t, &format!("10 {n}"));
            proptest::prop_assert_eq!(normalize_rdata(&t, &r), r);
        }
    }
}
