//! Maltrail trails: the `trail,info,reference` lines of its `trails.csv`
//! (CSV, fields with commas in double quotes, `""` inside them), sorted by
//! kind into hash maps: IP addresses, networks (CIDR, [`super::cidr`]),
//! IP:port pairs, domains (matched with their subdomains) and URLs
//! (`host/path`, or `/path` for any host).
//!
//! A trail is lower-cased as Maltrail compares. A later line for the same
//! trail replaces the earlier one (Maltrail loads them into a dict). Blank
//! lines and `#` comments are skipped; any other line that does not give a
//! trail is refused with the reason, and the rest still load.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use foldhash::fast::RandomState;

use super::cidr::{Network, Networks};

/// Longest trails line read (a longer one is refused, not held).
pub const MAX_LINE: usize = 16 * 1024;

/// Longest domain name (RFC 1035, presentation form without the final dot).
const MAX_NAME: usize = 253;

/// One trail, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trail {
    /// An address: traffic from or to it.
    Ip(IpAddr),
    /// A network (CIDR): traffic from or to any address inside it.
    Network(Network),
    /// An address and port: traffic from or to that service.
    IpPort(IpAddr, u16),
    /// A domain: DNS queries and HTTP Host headers for it or a subdomain.
    Domain(String),
    /// A URL, `host/path` or `/path` (any host), lower-cased, without a
    /// scheme or a final `/`: HTTP requests to it or below it.
    Url(String),
}

/// How many trails of each kind are loaded, and what was refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Lines read (blank lines and comments included).
    pub lines: u64,
    /// IP trails.
    pub ips: u64,
    /// Network (CIDR) trails.
    pub networks: u64,
    /// IP:port trails.
    pub ip_ports: u64,
    /// Domain trails.
    pub domains: u64,
    /// URL trails.
    pub urls: u64,
    /// Lines whose trail was already loaded (the later line's info kept).
    pub duplicates: u64,
    /// Lines refused.
    pub bad: u64,
}

/// A refused line: its number (from 1) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Line number in its file, from 1.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The loaded trails. Each trail maps to an index into `meta`, the
/// distinct (info, reference) pairs (feeds give thousands of trails the
/// same pair).
#[derive(Debug, Default)]
pub struct Trails {
    pub(crate) ips: HashMap<IpAddr, u32, RandomState>,
    pub(crate) networks: Networks,
    pub(crate) ip_ports: HashMap<(IpAddr, u16), u32, RandomState>,
    pub(crate) domains: HashMap<Box<str>, u32, RandomState>,
    pub(crate) urls: HashMap<Box<str>, u32, RandomState>,
    meta: Vec<(Box<str>, Box<str>)>,
    interned: HashMap<(Box<str>, Box<str>), u32, RandomState>,
    /// Counters of what was loaded.
    pub stats: LoadStats,
}

impl Trails {
    /// No trail.
    pub fn new() -> Trails {
        Trails::default()
    }

    /// Trails loaded.
    pub fn len(&self) -> usize {
        self.ips.len()
            + self.networks.len()
            + self.ip_ports.len()
            + self.domains.len()
            + self.urls.len()
    }

    /// Whether no trail is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (info, reference) of a trail's index.
    pub(crate) fn meta(&self, i: u32) -> (&str, &str) {
        self.meta
            .get(i as usize)
            .map_or(("", ""), |(a, b)| (a.as_ref(), b.as_ref()))
    }

    /// Loads the lines of a trails file; calls `bad` for each refused line.
    /// Fails only if the reader does.
    pub fn load(&mut self, r: impl io::Read, mut bad: impl FnMut(BadLine)) -> io::Result<()> {
        let mut n = 0u64;
        d4_packet::inputs::for_each_line::<io::Error>(r, MAX_LINE, |l| {
            n += 1;
            self.stats.lines += 1;
            let r = match l {
                None => Err(format!("longer than {MAX_LINE} bytes")),
                Some(l) => match std::str::from_utf8(l) {
                    Ok(l) => self.add_line(l),
                    Err(_) => Err("not UTF-8 text".into()),
                },
            };
            if let Err(reason) = r {
                self.stats.bad += 1;
                bad(BadLine { line: n, reason });
            }
            Ok(())
        })
    }

    /// Adds one `trail,info,reference` line (blank lines and `#` comments
    /// add nothing).
    pub fn add_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            return Ok(());
        }
        let f = csv_fields(line)?;
        let [trail, info, reference] = <[String; 3]>::try_from(f).map_err(|f| {
            format!(
                "{} fields, not 3 (trail,info,reference): {}",
                f.len(),
                shorten(line)
            )
        })?;
        let t = parse_trail(&trail).map_err(|e| format!("{e}: {}", shorten(&trail)))?;
        self.add(t, &info, &reference);
        Ok(())
    }

    /// Adds a trail with its info and reference.
    pub fn add(&mut self, t: Trail, info: &str, reference: &str) {
        let key = (Box::from(info.trim()), Box::from(reference.trim()));
        let next = self.meta.len() as u32;
        let m = *self.interned.entry(key.clone()).or_insert(next);
        if m == next {
            self.meta.push(key);
        }
        let (old, counter) = match t {
            Trail::Ip(a) => (self.ips.insert(a, m), &mut self.stats.ips),
            Trail::Network(n) => (self.networks.insert(n, m), &mut self.stats.networks),
            Trail::IpPort(a, p) => (self.ip_ports.insert((a, p), m), &mut self.stats.ip_ports),
            Trail::Domain(d) => (self.domains.insert(d.into(), m), &mut self.stats.domains),
            Trail::Url(u) => (self.urls.insert(u.into(), m), &mut self.stats.urls),
        };
        match old {
            Some(_) => self.stats.duplicates += 1,
            None => *counter += 1,
        }
    }
}

/// A line cut for a message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// The fields of a CSV line (`,` separated; a field in double quotes may
/// hold commas and `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(format!("a quote is not closed: {}", shorten(line)));
    }
    out.push(cur);
    Ok(out)
}

/// Parses a trail: an IP address, a network (`192.0.2.0/24`,
/// `2001:db8::/32`: an address, `/` and digits), `IP:port`
/// (`[IPv6]:port`), a URL (`host/path`, `/path`, an `http://` or
/// `https://` scheme dropped) or a domain.
pub fn parse_trail(t: &str) -> Result<Trail, String> {
    let t = t.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Err("empty trail".into());
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a trail holds no space".into());
    }
    let (t, schemed) = match t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
    {
        Some(rest) => (rest.to_string(), true),
        None => (t, false),
    };
    if let Some(slash) = t.find('/') {
        let (host, path) = t.split_at(slash);
        let len = path.trim_end_matches('/');
        if !schemed
            && host.parse::<IpAddr>().is_ok()
            && len.len() > 1
            && len[1..].bytes().all(|b| b.is_ascii_digit())
        {
            return format!("{host}{len}").parse().map(Trail::Network);
        }
        if !host.is_empty() {
            check_host(host)?;
        }
        let url = t.trim_end_matches('/');
        if url.is_empty() {
            return Err("the path / alone would match every request".into());
        }
        if url.len() == host.len() {
            // `evil.example/`: the host itself.
            return domain_or_ip(host);
        }
        return Ok(Trail::Url(url.to_string()));
    }
    if schemed {
        return domain_or_ip(&t);
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(Trail::Ip(a));
    }
    if let Some((a, p)) = ip_port(&t) {
        return Ok(Trail::IpPort(a, p));
    }
    domain(&t).map(Trail::Domain)
}

/// A URL's host: a domain or an address, with a port or not.
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() || ip_port(host).is_some() {
        return Ok(());
    }
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p.parse::<u16>().is_ok() => n,
        _ => host,
    };
    domain(name).map(|_| ())
}

/// A trail with no path: an address or a domain.
fn domain_or_ip(t: &str) -> Result<Trail, String> {
    match t.parse::<IpAddr>() {
        Ok(a) => Ok(Trail::Ip(a)),
        Err(_) => domain(t).map(Trail::Domain),
    }
}

/// `1.2.3.4:80` or `[2001:db8::1]:80`.
fn ip_port(t: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = t.rsplit_once(':')?;
    let p = p.parse::<u16>().ok()?;
    let a = match a.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(v6.parse().ok()?),
        None => IpAddr::V4(a.parse().ok()?),
    };
    Some((a, p))
}

/// A domain: letters, digits, `-`, `_` in dot-separated labels of 1 to 63
/// bytes, one final dot allowed; not all digits (an address that did not
/// parse).
fn domain(t: &str) -> Result<String, String> {
    let d = t.strip_suffix('.').unwrap_or(t);
    if d.is_empty() || d.len() > MAX_NAME {
        return Err("not a domain (length)".into());
    }
    for l in d.split('.') {
        if l.is_empty() || l.len() > 63 {
            return Err("not a domain (an empty or overlong label)".into());
        }
        if !l
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err("not an IP address, IP:port, URL or domain".into());
        }
    }
    if d.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not an IP address".into());
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str) -> Trail {
        parse_trail(t).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn kinds() {
        assert_eq!(
            p("1.2.3.4"),
            Trail::Ip("1.2.3.4".parse().unwrap_or(IpAddr::from([0; 4])))
        );
        assert_eq!(
            p("2001:DB8::1"),
            Trail::Ip("2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4])))
        );
        assert_eq!(
            p("1.2.3.4:8080"),
            Trail::IpPort(IpAddr::from([1, 2, 3, 4]), 8080)
        );
        assert!(matches!(p("[2001:db8::1]:53"), Trail::IpPort(_, 53)));
        assert_eq!(p("Evil.Example."), Trail::Domain("evil.example".into()));
        assert_eq!(p("ex_1.example"), Trail::Domain("ex_1.example".into()));
        assert_eq!(
            p("evil.example/Gate.php"),
            Trail::Url("evil.example/gate.php".into())
        );
        assert_eq!(
            p("http://evil.example/x/"),
            Trail::Url("evil.example/x".into())
        );
        assert_eq!(p("/x/y.php"), Trail::Url("/x/y.php".into()));
        assert_eq!(
            p("203.0.113.5/gate.php"),
            Trail::Url("203.0.113.5/gate.php".into())
        );
        assert_eq!(
            p("evil.example:8080/a"),
            Trail::Url("evil.example:8080/a".into())
        );
        assert_eq!(
            p("https://evil.example"),
            Trail::Domain("evil.example".into())
        );
        assert_eq!(p("evil.example/"), Trail::Domain("evil.example".into()));
        let net = |s: &str| s.parse::<Network>().map(Trail::Network);
        assert_eq!(Ok(p("192.0.2.0/24")), net("192.0.2.0/24"));
        assert_eq!(
            Ok(p("192.0.2.9/24/")),
            net("192.0.2.0/24"),
            "host bits cleared"
        );
        assert_eq!(Ok(p("2001:DB8::/32")), net("2001:db8::/32"));
        assert_eq!(
            p("http://192.0.2.1/24"),
            Trail::Url("192.0.2.1/24".into()),
            "with a scheme, a URL"
        );
        assert_eq!(p("192.0.2.1/24x"), Trail::Url("192.0.2.1/24x".into()));
    }

    #[test]
    fn refused() {
        for (t, why) in [
            ("", "empty"),
            ("a b", "space"),
            ("10.0.0.0/33", "prefix length 33 is over 32"),
            ("2001:db8::/200", "prefix length 200 is over 128"),
            ("10.0.0.0/0", "every address"),
            ("/", "every request"),
            ("1.2.3.256", "not an IP address"),
            ("evil..example", "label"),
            ("ev!l.example", "not an IP address, IP:port"),
            ("bad host/x", "space"),
            ("b@d/x", "not an IP"),
        ] {
            let e = parse_trail(t).expect_err(t);
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    #[test]
    fn lines_csv_duplicates_and_bad_lines() {
        let mut t = Trails::new();
        let text = "# comment\n\n1.2.3.4,known attacker,(custom)\n\"evil.example\",\"malware, stage 2\",\"abuse.ch\"\nevil.example,\"malware \"\"x\"\"\",abuse.ch\nonly,two\nnot a trail,x,y\n\"open,x,y\n/gate.php,malware,(static)\r\n";
        let mut bad = Vec::new();
        t.load(text.as_bytes(), |b| bad.push(b)).unwrap_or_default();
        assert_eq!(t.len(), 3);
        assert_eq!(t.stats.lines, 9);
        assert_eq!(
            (
                t.stats.ips,
                t.stats.domains,
                t.stats.urls,
                t.stats.duplicates,
                t.stats.bad
            ),
            (1, 1, 1, 1, 3)
        );
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [6, 7, 8]);
        assert!(bad[0].reason.contains("2 fields"), "{:?}", bad[0]);
        assert!(bad[1].reason.contains("space"), "{:?}", bad[1]);
        assert!(bad[2].reason.contains("quote"), "{:?}", bad[2]);
        let m = t.domains.get("evil.example").copied().unwrap_or(u32::MAX);
        assert_eq!(
            t.meta(m),
            ("malware \"x\"", "abuse.ch"),
            "the later line wins"
        );
        let m = t.urls.get("/gate.php").copied().unwrap_or(u32::MAX);
        assert_eq!(t.meta(m), ("malware", "(static)"));
    }

    #[test]
    fn long_and_binary_lines_are_refused_not_fatal() {
        let mut text = "x".repeat(MAX_LINE + 10).into_bytes();
        text.extend_from_slice(b"\n\xff\xfe,a,b\n1.2.3.4,a,b\n");
        let mut t = Trails::new();
        let mut bad = Vec::new();
        t.load(&text[..], |b| bad.push(b)).unwrap_or_default();
        assert_eq!(t.len(), 1);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].reason.contains("longer"));
        assert!(bad[1].reason.contains("UTF-8"));
    }
}
