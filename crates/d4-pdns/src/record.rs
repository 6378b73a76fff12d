//! DNS records as passive DNS sees them: type and rcode mnemonics, rdata in
//! presentation form, name and rdata normalisation, and the gamelinux
//! passivedns line format (`ts||client||server||class||query||type||answer||ttl||count`).

use std::net::IpAddr;

// The mnemonics and rdata presentation live in `d4_packet::dns::text`
// (shared with the DNS monitor); re-exported here, where passive DNS
// always found them.
pub use d4_packet::dns::text::{
    base64, canonical_type, class_name, has_names, present, rcode_name, type_code, type_name,
};

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
    fn types_and_names() {
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
