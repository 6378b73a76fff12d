//! The message model of the DNS monitor: one DNS packet as the serializer
//! writes it and the reducers read it — when, from and to whom, the header
//! id and flags, and the sections asked for — decoded from the wire
//! (through `d4_packet::dns`, strict), written as one JSON object, and read
//! back from one.
//!
//! A [`Message`] is reused from packet to packet: its names and rdata live
//! in one text buffer, its sections in vectors of offsets, so that a steady
//! stream allocates nothing per message.
//!
//! The JSON object (keys in this order; sections only those chosen):
//!
//! ```text
//! {"source":"192.0.2.1","dest":"198.51.100.53","id":"0x1a2b","flags":"0x0100",
//!  "time":1700000000.123456,
//!  "queries":[{"qname":"example.com","qtype":"A","qclass":"IN"}],
//!  "answers":[{"name":"example.com","type":"A","class":"IN","ttl":300,"data":"192.0.2.7"}],
//!  "authorities":[{"name":"example.com","type":"NS","class":"IN","ns":["a.iana-servers.net"]}],
//!  "additionals":[{"name":"a.iana-servers.net","type":"A","class":"IN","ttl":300,"data":"199.43.135.53"}]}
//! ```
//!
//! Names are lower-case, without the trailing dot (the root is `.`), bytes
//! outside letters, digits and `-_*/` escaped as `\DDD`; types, classes as
//! mnemonics (`TYPE65534`, `CLASS4096` for those without, RFC 3597); rdata
//! in presentation form (`d4_packet::dns::text`). Authorities are grouped
//! by RRset (owner, type, class), `ns` holding the rdata of each record of
//! the set (the name servers of an NS set; the SOA of a negative answer).
//! A malformed message written anyway (`d4 dns serialize --malformed`)
//! carries `"malformed":true` and no sections.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use d4_packet::dns::text::{class_code, class_name, has_names, present, type_code, type_name};
use d4_packet::dns::{DnsError, Message as Wire, Section};

/// The sections a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sections(u8);

impl Sections {
    /// The question section.
    pub const QUERIES: Sections = Sections(1);
    /// The answer section.
    pub const ANSWERS: Sections = Sections(2);
    /// The authority section.
    pub const AUTHORITIES: Sections = Sections(4);
    /// The additional section.
    pub const ADDITIONALS: Sections = Sections(8);
    /// What the reference serializer writes: queries, answers, authorities.
    pub const DEFAULT: Sections = Sections(7);
    /// Every section.
    pub const ALL: Sections = Sections(15);

    const NAMES: [(&'static str, Sections); 4] = [
        ("queries", Sections::QUERIES),
        ("answers", Sections::ANSWERS),
        ("authorities", Sections::AUTHORITIES),
        ("additionals", Sections::ADDITIONALS),
    ];

    /// Whether `s` is among these.
    pub fn has(self, s: Sections) -> bool {
        self.0 & s.0 == s.0
    }

    /// A comma-separated list: `queries,answers,authorities,additionals`
    /// (or `all`).
    pub fn parse(s: &str) -> Result<Sections, String> {
        let mut v = 0;
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                v |= Sections::ALL.0;
                continue;
            }
            match Sections::NAMES.iter().find(|(n, _)| *n == w) {
                Some((_, x)) => v |= x.0,
                None => {
                    return Err(format!(
                        "{w:?} is not a section (queries, answers, authorities, additionals, all)"
                    ))
                }
            }
        }
        Ok(Sections(v))
    }
}

/// Where a string is in the message's text buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span(u32, u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Question {
    name: Span,
    qtype: u16,
    qclass: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rr {
    name: Span,
    rtype: u16,
    class: u16,
    ttl: u32,
    data: Span,
}

/// One question, borrowed from its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// QNAME (see the module doc for its form).
    pub qname: &'a str,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// One resource record, borrowed from its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Owner name.
    pub name: &'a str,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// Rdata in presentation form.
    pub data: &'a str,
}

/// One DNS message (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Capture time, microseconds since the epoch.
    pub time_us: i64,
    /// Who sent it.
    pub source: IpAddr,
    /// To whom.
    pub dest: IpAddr,
    /// Transaction id.
    pub id: u16,
    /// The header's flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Not a well-formed DNS message: the reducers count it as such and
    /// nothing else; `id` and `flags` hold only if `has_header`.
    pub malformed: bool,
    /// The 12-byte header was there (always, unless malformed).
    pub has_header: bool,
    /// The sections this message carries (the others are left out of its
    /// JSON, not written empty).
    pub sections: Sections,
    /// Names and rdata, one after the other.
    text: String,
    queries: Vec<Question>,
    answers: Vec<Rr>,
    authorities: Vec<Rr>,
    additionals: Vec<Rr>,
    /// Rdata of sections not kept, presented only to check its names.
    scratch: String,
}

impl Default for Message {
    fn default() -> Message {
        Message::new()
    }
}

const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Type numbers of A, NS, SOA and MX (what `QueriesWithUnderscoredName`
/// looks at), and the others the reducers name.
pub mod qtype {
    /// A.
    pub const A: u16 = 1;
    /// NS.
    pub const NS: u16 = 2;
    /// SOA.
    pub const SOA: u16 = 6;
    /// MX.
    pub const MX: u16 = 15;
    /// AAAA.
    pub const AAAA: u16 = 28;
}

impl Message {
    /// An empty message (no sections, unspecified addresses).
    pub fn new() -> Message {
        Message {
            time_us: 0,
            source: UNSPECIFIED,
            dest: UNSPECIFIED,
            id: 0,
            flags: 0,
            malformed: false,
            has_header: false,
            sections: Sections(0),
            text: String::new(),
            queries: Vec::new(),
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Empties it for the next message (its buffers are kept).
    pub fn clear(&mut self) {
        self.id = 0;
        self.flags = 0;
        self.malformed = false;
        self.has_header = false;
        self.sections = Sections(0);
        self.text.clear();
        self.queries.clear();
        self.answers.clear();
        self.authorities.clear();
        self.additionals.clear();
    }

    /// A response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The header rcode.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }

    /// The questions.
    pub fn queries(&self) -> impl ExactSizeIterator<Item = Query<'_>> + '_ {
        self.queries.iter().map(|q| Query {
            qname: self.str(q.name),
            qtype: q.qtype,
            qclass: q.qclass,
        })
    }

    /// The first question.
    pub fn first_query(&self) -> Option<Query<'_>> {
        self.queries().next()
    }

    /// The records of `section` (one of answers, authorities, additionals).
    pub fn records(&self, section: Sections) -> impl Iterator<Item = Record<'_>> + '_ {
        let v: &[Rr] = match section {
            Sections::ANSWERS => &self.answers,
            Sections::AUTHORITIES => &self.authorities,
            Sections::ADDITIONALS => &self.additionals,
            _ => &[],
        };
        v.iter().map(|r| self.record(r))
    }

    fn record(&self, r: &Rr) -> Record<'_> {
        Record {
            name: self.str(r.name),
            rtype: r.rtype,
            class: r.class,
            ttl: r.ttl,
            data: self.str(r.data),
        }
    }

    fn str(&self, s: Span) -> &str {
        self.text.get(s.0 as usize..s.1 as usize).unwrap_or("")
    }

    fn push_text(&mut self, s: &str) -> Span {
        let a = self.text.len() as u32;
        self.text.push_str(s);
        Span(a, self.text.len() as u32)
    }

    /// Adds a question (builds messages by hand: tests, benches, JSON).
    pub fn push_query(&mut self, qname: &str, qtype: u16, qclass: u16) {
        let name = self.push_text(qname);
        self.sections.0 |= Sections::QUERIES.0;
        self.queries.push(Question {
            name,
            qtype,
            qclass,
        });
    }

    /// Decodes a DNS message from the wire, keeping the sections in
    /// `want`; time and addresses are the caller's. A message that does not
    /// walk cleanly (strict mode: header, counts, every question and
    /// record, the names inside every record's rdata, whatever `want` is)
    /// is marked malformed, its sections dropped, and the error returned.
    pub fn decode(&mut self, wire: &[u8], want: Sections) -> Result<(), DnsError> {
        self.clear();
        let r = self.decode_inner(wire, want);
        if r.is_err() {
            self.malformed = true;
            self.sections = Sections(0);
            self.text.clear();
            self.queries.clear();
            self.answers.clear();
            self.authorities.clear();
            self.additionals.clear();
        }
        r
    }

    fn decode_inner(&mut self, wire: &[u8], want: Sections) -> Result<(), DnsError> {
        let lax = Wire::parse_lax(wire)?;
        (self.id, self.flags, self.has_header) = (lax.header.id, lax.header.flags, true);
        let m = Wire::parse(wire)?;
        self.sections = want;
        for q in m.questions() {
            let q = q?;
            if want.has(Sections::QUERIES) {
                let a = self.text.len() as u32;
                q.name.write_to(&mut self.text, true);
                self.queries.push(Question {
                    name: Span(a, self.text.len() as u32),
                    qtype: q.qtype,
                    qclass: q.qclass,
                });
            }
        }
        for r in m.records() {
            let r = r?;
            let (flag, list) = match r.section {
                Section::Answer => (Sections::ANSWERS, &mut self.answers),
                Section::Authority => (Sections::AUTHORITIES, &mut self.authorities),
                Section::Additional => (Sections::ADDITIONALS, &mut self.additionals),
            };
            if want.has(flag) {
                let a = self.text.len() as u32;
                r.name.write_to(&mut self.text, true);
                let name = Span(a, self.text.len() as u32);
                let d = self.text.len() as u32;
                present(&m, r.rtype, r.rdata.clone(), &mut self.text, false)?;
                list.push(Rr {
                    name,
                    rtype: r.rtype,
                    class: r.class,
                    ttl: r.ttl,
                    data: Span(d, self.text.len() as u32),
                });
            } else if has_names(r.rtype) {
                self.scratch.clear();
                present(&m, r.rtype, r.rdata, &mut self.scratch, false)?;
            }
        }
        Ok(())
    }

    /// Appends the message's JSON object (the module doc's form) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"source\":\"");
        push_ip(out, self.source);
        out.extend_from_slice(b"\",\"dest\":\"");
        push_ip(out, self.dest);
        out.push(b'"');
        if self.has_header {
            out.extend_from_slice(b",\"id\":\"0x");
            push_hex4(out, self.id);
            out.extend_from_slice(b"\",\"flags\":\"0x");
            push_hex4(out, self.flags);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"time\":");
        push_time(out, self.time_us);
        if self.malformed {
            out.extend_from_slice(b",\"malformed\":true}");
            return;
        }
        if self.sections.has(Sections::QUERIES) {
            out.extend_from_slice(b",\"queries\":[");
            for (i, q) in self.queries().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"qname\":");
                json_str(out, q.qname);
                out.extend_from_slice(b",\"qtype\":");
                json_str(out, &type_name(q.qtype));
                out.extend_from_slice(b",\"qclass\":");
                json_str(out, &class_name(q.qclass));
                out.push(b'}');
            }
            out.push(b']');
        }
        self.write_records(out, Sections::ANSWERS, b",\"answers\":[", &self.answers);
        self.write_authorities(out);
        self.write_records(
            out,
            Sections::ADDITIONALS,
            b",\"additionals\":[",
            &self.additionals,
        );
        out.push(b'}');
    }

    fn write_records(&self, out: &mut Vec<u8>, flag: Sections, key: &[u8], list: &[Rr]) {
        if !self.sections.has(flag) {
            return;
        }
        out.extend_from_slice(key);
        for (i, r) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let r = self.record(r);
            out.extend_from_slice(b"{\"name\":");
            json_str(out, r.name);
            out.extend_from_slice(b",\"type\":");
            json_str(out, &type_name(r.rtype));
            out.extend_from_slice(b",\"class\":");
            json_str(out, &class_name(r.class));
            out.extend_from_slice(b",\"ttl\":");
            push_u64(out, u64::from(r.ttl));
            out.extend_from_slice(b",\"data\":");
            json_str(out, r.data);
            out.push(b'}');
        }
        out.push(b']');
    }

    /// The authority section, one object per RRset, in order of first
    /// appearance.
    fn write_authorities(&self, out: &mut Vec<u8>) {
        if !self.sections.has(Sections::AUTHORITIES) {
            return;
        }
        out.extend_from_slice(b",\"authorities\":[");
        let recs = &self.authorities;
        let same = |a: &Rr, b: &Rr| {
            a.rtype == b.rtype && a.class == b.class && self.str(a.name) == self.str(b.name)
        };
        let mut first = true;
        for (i, r) in recs.iter().enumerate() {
            if recs[..i].iter().any(|p| same(p, r)) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(b"{\"name\":");
            json_str(out, self.str(r.name));
            out.extend_from_slice(b",\"type\":");
            json_str(out, &type_name(r.rtype));
            out.extend_from_slice(b",\"class\":");
            json_str(out, &class_name(r.class));
            out.extend_from_slice(b",\"ns\":[");
            for (j, x) in recs[i..].iter().filter(|x| same(x, r)).enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                json_str(out, self.str(x.data));
            }
            out.extend_from_slice(b"]}");
        }
        out.push(b']');
    }

    /// Reads a message from its JSON object (as [`Message::write_json`]
    /// writes it, or the reference serializer's: numbers for types and
    /// classes, an id and flags in hex with or without `0x`, or as
    /// numbers). Only what the reducers use is kept: time, addresses, id,
    /// flags, `malformed` and the queries; the other sections are skipped.
    pub fn read_json(&mut self, json: &[u8]) -> Result<(), ReadError> {
        self.clear();
        let w: JsonMessage<'_> = serde_json::from_slice(json).map_err(ReadError::Json)?;
        self.source = w
            .source
            .parse()
            .map_err(|_| ReadError::Field("source", w.source.to_string()))?;
        self.dest = w
            .dest
            .parse()
            .map_err(|_| ReadError::Field("dest", w.dest.to_string()))?;
        self.time_us = match w.time {
            Some(t) if t.is_finite() => (t * 1e6).round() as i64,
            Some(t) => return Err(ReadError::Field("time", t.to_string())),
            None => 0,
        };
        self.has_header = w.id.is_some() || w.flags.is_some();
        self.id = w.id.map_or(0, |x| x.0);
        self.flags = w.flags.map_or(0, |x| x.0);
        self.malformed = w.malformed;
        for q in &w.queries {
            self.push_query(&q.qname, q.qtype.0, q.qclass.0);
        }
        Ok(())
    }
}

/// Why a serialized message could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Not JSON, or not the shape of a message.
    #[error("not a DNS message object: {0}")]
    Json(serde_json::Error),
    /// A field of the right type with a wrong value.
    #[error("bad {0}: {1:?}")]
    Field(&'static str, String),
}

#[derive(serde::Deserialize)]
struct JsonMessage<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    dest: Cow<'a, str>,
    #[serde(default)]
    id: Option<Hex16>,
    #[serde(default)]
    flags: Option<Hex16>,
    #[serde(default)]
    time: Option<f64>,
    #[serde(default)]
    malformed: bool,
    #[serde(default, borrow)]
    queries: Vec<JsonQuery<'a>>,
}

#[derive(serde::Deserialize)]
struct JsonQuery<'a> {
    #[serde(borrow)]
    qname: Cow<'a, str>,
    qtype: TypeCode,
    #[serde(default = "in_class")]
    qclass: ClassCode,
}

fn in_class() -> ClassCode {
    ClassCode(1)
}

/// A u16 as hex text (`0x1a2b`, `1a2b`) or a number.
struct Hex16(u16);
/// A type as its mnemonic, `TYPE<n>`, or a number.
struct TypeCode(u16);
/// A class as its mnemonic, `CLASS<n>`, or a number.
struct ClassCode(u16);

macro_rules! code_visitor {
    ($t:ident, $what:expr, $from_str:expr) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
                        u16::try_from(v)
                            .map($t)
                            .map_err(|_| E::custom(format!("{v} is over 65535")))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        let f: fn(&str) -> Option<u16> = $from_str;
                        f(v).map($t)
                            .ok_or_else(|| E::custom(format!("{v:?} is not {}", $what)))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

code_visitor!(Hex16, "a 16-bit number (hex text or a number)", |s| {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u16::from_str_radix(h, 16).ok()
});
code_visitor!(TypeCode, "a DNS type (mnemonic or number)", |s| type_code(
    s
)
.or_else(|| s.parse().ok()));
code_visitor!(ClassCode, "a DNS class (mnemonic or number)", |s| {
    class_code(s).or_else(|| s.parse().ok())
});

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
}

/// Appends four lower-case hex digits.
pub fn push_hex4(out: &mut Vec<u8>, v: u16) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for s in [12, 8, 4, 0] {
        out.push(H[usize::from((v >> s) & 0xf)]);
    }
}

/// Appends an address in its canonical text.
pub fn push_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(o));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends a time in microseconds as seconds with six decimals.
pub fn push_time(out: &mut Vec<u8>, us: i64) {
    if us < 0 {
        out.push(b'-');
    }
    let a = us.unsigned_abs();
    push_u64(out, a / 1_000_000);
    out.push(b'.');
    let mut d = [b'0'; 6];
    let mut f = a % 1_000_000;
    for i in (0..6).rev() {
        d[i] = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&d);
}

/// Appends `s` as a JSON string (quotes, backslashes and control
/// characters escaped).
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20) {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[from..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{c:04x}");
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4_packet::testdata::build::dns;

    /// A response: example.com A, one answer, an NS RRset of two in the
    /// authority section, one additional.
    fn response() -> Vec<u8> {
        let mut m = vec![0x1a, 0x2b, 0x81, 0x80, 0, 1, 0, 1, 0, 2, 0, 1];
        m.extend_from_slice(b"\x07Example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 7]);
        m.extend_from_slice(&[0xc0, 12, 0, 2, 0, 1, 0, 0, 1, 44, 0, 4, 1, b'a', 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 12, 0, 2, 0, 1, 0, 0, 1, 44, 0, 4, 1, b'b', 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 57, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 1]);
        m
    }

    fn json(m: &Message) -> serde_json::Value {
        let mut out = Vec::new();
        m.write_json(&mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    #[test]
    fn decodes_and_writes_every_section() {
        let mut m = Message::new();
        m.decode(&response(), Sections::ALL).unwrap();
        m.source = "198.51.100.53".parse().unwrap();
        m.dest = "192.0.2.1".parse().unwrap();
        m.time_us = 1_700_000_000_000_001;
        assert_eq!(
            json(&m),
            serde_json::json!({
                "source": "198.51.100.53", "dest": "192.0.2.1", "id": "0x1a2b",
                "flags": "0x8180", "time": 1_700_000_000.000_001,
                "queries": [{"qname": "example.com", "qtype": "A", "qclass": "IN"}],
                "answers": [{"name": "example.com", "type": "A", "class": "IN", "ttl": 300, "data": "192.0.2.7"}],
                "authorities": [{"name": "example.com", "type": "NS", "class": "IN", "ns": ["a.example.com", "b.example.com"]}],
                "additionals": [{"name": "a.example.com", "type": "A", "class": "IN", "ttl": 60, "data": "198.51.100.1"}],
            })
        );
        // The default sections, then the queries alone.
        m.decode(&response(), Sections::DEFAULT).unwrap();
        let v = json(&m);
        assert!(v.get("additionals").is_none() && v["authorities"].is_array());
        m.decode(&dns(5, "a_b.example", 6, false), Sections::QUERIES)
            .unwrap();
        let v = json(&m);
        assert_eq!(v["queries"][0]["qtype"], "SOA");
        assert!(v.get("answers").is_none());
        assert!(!m.is_response());
    }

    #[test]
    fn malformed_is_marked_whatever_the_sections() {
        let mut m = Message::new();
        let mut bad = response();
        // The second NS rdata points forward: bad in the authority
        // section, even when only the queries are kept.
        let l = bad.len();
        bad[l - 17] = 200;
        for want in [Sections::QUERIES, Sections::ALL] {
            assert!(m.decode(&bad, want).is_err());
            assert!(m.malformed && m.has_header);
            assert_eq!(m.queries().len(), 0);
            assert_eq!(
                json(&m),
                serde_json::json!({"source": "0.0.0.0", "dest": "0.0.0.0", "id": "0x1a2b",
                    "flags": "0x8180", "time": 0.0, "malformed": true})
            );
        }
        assert!(m.decode(&[1, 2, 3], Sections::ALL).is_err());
        assert!(m.malformed && !m.has_header);
        // Reused: a good one after a bad one is whole.
        m.decode(&response(), Sections::QUERIES).unwrap();
        assert!(!m.malformed);
        assert_eq!(m.first_query().map(|q| q.qname), Some("example.com"));
    }

    #[test]
    fn reads_back_what_it_writes_and_the_reference_forms() {
        let mut m = Message::new();
        m.decode(&response(), Sections::DEFAULT).unwrap();
        m.source = "2001:db8::1".parse().unwrap();
        m.time_us = 1_500_000_000_250_000;
        let mut out = Vec::new();
        m.write_json(&mut out);
        let mut r = Message::new();
        r.read_json(&out).unwrap();
        assert_eq!(
            (r.source, r.time_us, r.id, r.flags, r.has_header),
            (m.source, m.time_us, m.id, m.flags, true)
        );
        assert_eq!(
            r.queries().collect::<Vec<_>>(),
            m.queries().collect::<Vec<_>>()
        );
        r.read_json(br#"{"source":"10.0.0.1","dest":"10.0.0.2","id":"1a2b","flags":256,"queries":[{"qname":"x.org","qtype":"28","qclass":1},{"qname":"y","qtype":"TYPE65534"}]}"#).unwrap();
        assert_eq!((r.id, r.flags, r.time_us), (0x1a2b, 256, 0));
        let q: Vec<_> = r.queries().map(|q| (q.qtype, q.qclass)).collect();
        assert_eq!(q, [(28, 1), (65534, 1)]);
        for bad in [
            &br#"{"source":"x","dest":"10.0.0.2"}"#[..],
            br#"{"dest":"10.0.0.2"}"#,
            br#"{"source":"10.0.0.1","dest":"10.0.0.2","queries":[{"qname":"a","qtype":"NOPE"}]}"#,
            br#"{"source":"10.0.0.1","dest":"10.0.0.2","id":70000}"#,
            b"[1]",
        ] {
            assert!(
                r.read_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn numbers_addresses_and_times() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_hex4(&mut out, 0x0a0f);
        out.push(b' ');
        push_ip(&mut out, "10.200.0.255".parse().unwrap());
        out.push(b' ');
        push_ip(&mut out, "2001:db8::1".parse().unwrap());
        out.push(b' ');
        push_time(&mut out, 1_700_000_000_000_042);
        out.push(b' ');
        push_time(&mut out, -1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 18446744073709551615 0a0f 10.200.0.255 2001:db8::1 1700000000.000042 -0.000001"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\u{1}d");
        assert_eq!(out, br#""a\"b\\c\u0001d""#);
        let v: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, "a\"b\\c\u{1}d");
        assert_eq!(Sections::parse("queries, answers").unwrap(), Sections(3));
        assert_eq!(Sections::parse("all").unwrap(), Sections::ALL);
        assert!(Sections::parse("questions").is_err());
    }
}
