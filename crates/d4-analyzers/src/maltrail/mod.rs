//! Maltrail trails applied to captured packets (`d4 maltrail match`): the
//! events a Maltrail sensor would log, as Maltrail's event lines, so that a
//! D4 server can run detection on the raw captures of its sensors.
//!
//! What is looked at, as Maltrail's sensor (`sensor.py`) does:
//!
//! - TCP: a connection's SYN (SYN without ACK): the destination, then the
//!   source, as `IP:port`, then `IP` or network trails (type `IPORT` or
//!   `IP`; a network's event names the address, as Maltrail's expansion of
//!   a range into addresses gives). An HTTP request that starts a segment
//!   (or follows a request head in the stream), its head reassembled across
//!   segments (out of order and retransmitted segments handled, by
//!   `d4_packet::flow::TcpStreams`): its `Host` as a domain (type `DNS`,
//!   protocol `TCP`) and its URL (type `URL`): the path and Maltrail's
//!   variants of it (no query, up to `=`, no extension, the folder, the
//!   last part) and every folder above, alone or after the host (the last
//!   part alone only).
//! - UDP: every datagram, as `IP:port`, `IP` and network trails.
//! - DNS: a standard query (QR 0, opcode 0) on UDP or TCP port 53 (TCP
//!   reassembled, several messages a segment or one across segments; IPv4
//!   fragments put back: `d4_packet::dns::transport`, as `d4 pdns` and
//!   `d4 dns` read them): its question's name and each of its parent
//!   domains, longest first (type `DNS`; a subdomain's trail is written
//!   `(sub).evil.example`, as Maltrail does).
//! - ICMP and ICMPv6 echo requests, as `IP` trails (ports `-`).
//!
//! IPv4 fragments other than the first carry no port: only DNS reads them
//! (reassembled).
//!
//! Throttling, as Maltrail's `log_event`: within a window of capture time
//! (1 s by default, Maltrail's with one process), an event is dropped when
//! its trail was already reported with the same source or destination
//! address. Window 0 reports every match.
//!
//! Unlike Maltrail, IP trails are reported whatever their info says
//! (Maltrail's sensor skips "attacker" addresses as destinations and
//! "malware" ones as sources), and there are no heuristics, whitelists or
//! condensed port scans: only the trails.
//!
//! Bounds: the DNS transport's (`Limits::default()`); HTTP: at most 32,768
//! directions followed (the stalest dropped to make room), each holding at
//! most 96 KiB, forgotten after 300 s of capture time without a segment.
//!
//! # Layout
//!
//! - [`trails`]: the trails file, parsed and sorted by kind.
//! - `cidr`: network trails ([`Network`]) and their longest-prefix table.
//! - `http`: where a request head ends in a stream, the request it holds,
//!   the URL forms looked up.
//! - this file: [`Matcher`] (packets → [`Event`]s) and the event line.

mod cidr;
mod http;
pub mod trails;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use d4_packet::capture::Packet;
use d4_packet::decode::flags::{ACK, FIN, RST, SYN};
use d4_packet::decode::{self, TcpSegment};
use d4_packet::dns::transport::{Limits, Messages, DNS_PORT};
use d4_packet::dns::Message;
use d4_packet::flow::TcpStreams;
use foldhash::fast::RandomState;

pub use cidr::Network;
pub use trails::{BadLine, LoadStats, Trail, Trails};

/// Maltrail's `TIME_FORMAT`, the first field of an event line (local time,
/// then `.` and the microseconds).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// TCP directions followed for HTTP request heads at once (the stalest
/// are dropped to make room).
const HTTP_FLOWS: usize = 32_768;

/// Bytes held per direction followed for HTTP: a head of up to
/// [`http::MAX_HEAD`] and the segments after a gap, or one largest
/// segment (offloaded captures hold up to 64 KiB in one).
const HTTP_FLOW_BUFFER: usize = 96 * 1024;

/// Seconds of capture time between expiries of idle HTTP directions.
const SWEEP: u64 = 60;

/// Seconds without a segment after which a direction is forgotten.
const IDLE: u64 = 300;

/// Most (address, trail) pairs remembered in a throttling window; past it
/// the window starts afresh (more events, never less detection).
const MAX_THROTTLE: usize = 1 << 20;

/// One event, as Maltrail logs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Capture time, seconds.
    pub sec: u64,
    /// Microseconds.
    pub usec: u32,
    /// Source address.
    pub src: IpAddr,
    /// Source port (`None` for ICMP).
    pub sport: Option<u16>,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: Option<u16>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPV6`.
    pub proto: &'static str,
    /// `IP`, `IPORT`, `DNS`, `URL`.
    pub kind: &'static str,
    /// What matched, in Maltrail's form.
    pub trail: &'a str,
    /// The trail's info (second column of the trails file).
    pub info: &'a str,
    /// The trail's reference (third column).
    pub reference: &'a str,
}

impl Event<'_> {
    /// Appends the event line (with its `\n`) as Maltrail's sensor writes
    /// it: `"YYYY-MM-DD HH:MM:SS.uuuuuu" SENSOR src_ip src_port dst_ip
    /// dst_port PROTO TYPE TRAIL INFO REFERENCE`, the time in `tz`, each
    /// field `-` when empty (or a port 0) and in double quotes (`""` for a
    /// quote) when it holds a space or a quote; CR and LF made spaces.
    pub fn write_line<Tz>(&self, tz: &Tz, sensor: &str, out: &mut String)
    where
        Tz: chrono::TimeZone,
        Tz::Offset: std::fmt::Display,
    {
        let secs = i64::try_from(self.sec).unwrap_or(i64::MAX);
        let time = match tz.timestamp_opt(secs, 0).earliest() {
            Some(t) => t.format(TIME_FORMAT).to_string(),
            None => "1970-01-01 00:00:00".to_string(),
        };
        field(out, &format!("{time}.{:06}", self.usec.min(999_999)));
        let port = |p: Option<u16>| p.filter(|&p| p != 0).map(|p| p.to_string());
        for f in [
            sensor,
            &self.src.to_string(),
            port(self.sport).as_deref().unwrap_or("-"),
            &self.dst.to_string(),
            port(self.dport).as_deref().unwrap_or("-"),
            self.proto,
            self.kind,
            self.trail,
            self.info,
            self.reference,
        ] {
            out.push(' ');
            field(out, f);
        }
        out.push('\n');
    }
}

/// Maltrail's `safe_value`: `-` for nothing, quoted when it holds a space
/// or a quote; line breaks become spaces.
fn field(out: &mut String, v: &str) {
    if v.is_empty() {
        out.push('-');
        return;
    }
    let quote = v.contains([' ', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    for c in v.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    if quote {
        out.push('"');
    }
}

/// What the matcher saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets given.
    pub packets: u64,
    /// DNS queries looked at.
    pub dns_queries: u64,
    /// DNS messages on port 53 that did not parse.
    pub malformed_dns: u64,
    /// HTTP requests looked at.
    pub http_requests: u64,
    /// Events reported.
    pub events: u64,
    /// Events dropped by throttling.
    pub throttled: u64,
    /// TCP directions dropped by the reassemblers (DNS and HTTP: table
    /// full, buffer limit, a gap that did not fill).
    pub flows_dropped: u64,
}

/// Maltrail's log throttling (see the module documentation).
struct Throttle {
    window: u64,
    bucket: u64,
    seen: HashSet<(IpAddr, Box<str>), RandomState>,
}

impl Throttle {
    fn allow(&mut self, sec: u64, src: IpAddr, dst: IpAddr, trail: &str) -> bool {
        if self.window == 0 {
            return true;
        }
        let b = sec / self.window;
        if b != self.bucket || self.seen.len() >= MAX_THROTTLE {
            self.bucket = b;
            self.seen.clear();
        }
        let key = |a: IpAddr| (a, Box::<str>::from(trail));
        if self.seen.contains(&key(src)) || self.seen.contains(&key(dst)) {
            return false;
        }
        self.seen.insert(key(src));
        self.seen.insert(key(dst));
        true
    }
}

/// Where a packet goes, for its event.
#[derive(Clone, Copy)]
struct Flow {
    sec: u64,
    usec: u32,
    src: IpAddr,
    sport: Option<u16>,
    dst: IpAddr,
    dport: Option<u16>,
    proto: &'static str,
}

/// Packets in, events out.
pub struct Matcher {
    /// The trails and what looks them up.
    core: Core,
    /// DNS messages of UDP and TCP port 53 (TCP reassembled, IPv4
    /// fragments put back), as `d4 pdns` and `d4 dns` read them.
    dns: Messages,
    /// TCP directions followed for HTTP request heads: from a connection's
    /// SYN, or from a segment that starts like a request, until a segment
    /// that does not (a direction that is not HTTP, or a body).
    http: TcpStreams,
    /// Capture time of the last expiry of idle HTTP directions.
    last_sweep: u64,
}

/// The trails, what matched, and the event being made.
struct Core {
    trails: Trails,
    throttle: Throttle,
    /// The trail text of the event being made.
    text: String,
    /// A DNS name or a URL being looked up.
    scratch: String,
    /// Counters.
    stats: Stats,
}

impl Matcher {
    /// A matcher of `trails`, throttling over windows of `throttle`
    /// seconds (0: none).
    pub fn new(trails: Trails, throttle: u64) -> Matcher {
        Matcher {
            core: Core {
                trails,
                throttle: Throttle {
                    window: throttle,
                    bucket: u64::MAX,
                    seen: HashSet::default(),
                },
                text: String::new(),
                scratch: String::new(),
                stats: Stats::default(),
            },
            dns: Messages::new(Limits::default()),
            http: TcpStreams::new(HTTP_FLOWS, HTTP_FLOW_BUFFER),
            last_sweep: 0,
        }
    }

    /// The trails.
    pub fn trails(&self) -> &Trails {
        &self.core.trails
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            flows_dropped: self.dns.stats.flows_dropped + self.http.stats.flows_dropped,
            ..self.core.stats
        }
    }

    /// One captured packet; `nanos` when its fraction is nanoseconds.
    pub fn packet(&mut self, p: &Packet, nanos: bool, emit: &mut dyn FnMut(&Event<'_>)) {
        let usec = p.usec(nanos);
        self.frame(p.linktype, u64::from(p.ts_sec), usec, &p.data, emit);
    }

    /// One frame of `linktype` captured at `sec`.`usec`.
    pub fn frame(
        &mut self,
        linktype: u32,
        sec: u64,
        usec: u32,
        frame: &[u8],
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        self.core.stats.packets += 1;
        if sec > self.last_sweep.saturating_add(SWEEP) {
            self.http.expire(sec, IDLE);
            self.last_sweep = sec;
        }
        let Some(ip) = decode::ip(linktype, frame) else {
            return;
        };
        if let Some(fragment) = ip.fragment {
            // DNS in a fragmented datagram: put back together by the
            // transport; the first fragment's ports still count below.
            if ip.proto == 6 || ip.proto == 17 {
                self.dns_frame(linktype, sec, usec, frame, emit);
            }
            if fragment.offset != 0 {
                return;
            }
        }
        let whole = ip.fragment.is_none();
        let mut f = Flow {
            sec,
            usec,
            src: ip.src,
            sport: None,
            dst: ip.dst,
            dport: None,
            proto: "",
        };
        match ip.proto {
            6 => {
                let Some(seg) = decode::tcp_segment(ip.payload) else {
                    return;
                };
                (f.proto, f.sport, f.dport) = ("TCP", Some(seg.sport), Some(seg.dport));
                if seg.flags & (SYN | ACK | RST | FIN) == SYN {
                    self.core.addresses(&f, emit);
                }
                if whole {
                    self.http(&f, &seg, emit);
                    if seg.sport == DNS_PORT || seg.dport == DNS_PORT {
                        self.dns_frame(linktype, sec, usec, frame, emit);
                    }
                }
            }
            17 => {
                let Some((sport, dport, _)) = decode::udp(ip.payload) else {
                    return;
                };
                (f.proto, f.sport, f.dport) = ("UDP", Some(sport), Some(dport));
                self.core.addresses(&f, emit);
                if whole && (sport == DNS_PORT || dport == DNS_PORT) {
                    self.dns_frame(linktype, sec, usec, frame, emit);
                }
            }
            1 if ip.payload.first() == Some(&8) => {
                f.proto = "ICMP";
                self.core.addresses(&f, emit);
            }
            58 if ip.payload.first() == Some(&128) => {
                f.proto = "ICMPV6";
                self.core.addresses(&f, emit);
            }
            _ => {}
        }
    }

    /// The DNS messages of a frame (UDP, TCP reassembled, fragments).
    fn dns_frame(
        &mut self,
        linktype: u32,
        sec: u64,
        usec: u32,
        frame: &[u8],
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        let core = &mut self.core;
        self.dns
            .frame(linktype, sec, usec, frame, &mut |at, message| {
                let f = Flow {
                    sec: at.sec,
                    usec: at.usec,
                    src: at.src,
                    sport: Some(at.sport),
                    dst: at.dst,
                    dport: Some(at.dport),
                    proto: if at.tcp { "TCP" } else { "UDP" },
                };
                core.dns(&f, message, emit);
            });
    }

    /// A TCP segment, for the HTTP request heads of its direction: the
    /// directions followed get every segment (reassembled: out of order,
    /// retransmitted), the others only a SYN or a segment that starts like
    /// a request. A direction whose bytes stop looking like requests is
    /// forgotten.
    fn http(&mut self, f: &Flow, seg: &TcpSegment<'_>, emit: &mut dyn FnMut(&Event<'_>)) {
        let start = seg.flags & (SYN | ACK) == SYN;
        let closing = seg.flags & (FIN | RST) != 0;
        if seg.data.is_empty() && !start && !closing {
            return;
        }
        let key = (f.src, seg.sport, f.dst, seg.dport);
        if !start && !http::may_start(seg.data) && !self.http.tracks(&key) {
            return;
        }
        let core = &mut self.core;
        let mut lost = false;
        self.http.segment(f.sec, key, seg, &mut |b| {
            let mut at = 0;
            loop {
                match http::head(&b[at..]) {
                    http::Head::Partial => return at,
                    http::Head::No => {
                        lost = true;
                        return b.len();
                    }
                    http::Head::Complete(n) => {
                        let end = (at + n).min(b.len());
                        core.http(f, &b[at..end], emit);
                        at = end;
                        if at == b.len() {
                            return at;
                        }
                    }
                }
            }
        });
        if lost {
            self.http.forget(&key);
        }
    }
}

impl Core {
    /// IP:port, IP and network trails: the destination, then the source;
    /// one event.
    fn addresses(&mut self, f: &Flow, emit: &mut dyn FnMut(&Event<'_>)) {
        let t = &self.trails;
        for (a, port) in [(f.dst, f.dport), (f.src, f.sport)] {
            if let Some(&m) = port.and_then(|p| t.ip_ports.get(&(a, p))) {
                self.text.clear();
                match (a, port) {
                    (IpAddr::V6(v6), Some(p)) => {
                        let _ = write!(self.text, "[{v6}]:{p}");
                    }
                    (a, Some(p)) => {
                        let _ = write!(self.text, "{a}:{p}");
                    }
                    _ => {}
                }
                return self.report(f, "IPORT", m, emit);
            }
            // A network trail is the addresses it holds (Maltrail expands
            // it into them): the event names the address.
            if let Some(m) = t.ips.get(&a).copied().or_else(|| t.networks.get(a)) {
                self.text.clear();
                let _ = write!(self.text, "{a}");
                return self.report(f, "IP", m, emit);
            }
        }
    }

    /// The question of a standard DNS query.
    fn dns(&mut self, f: &Flow, data: &[u8], emit: &mut dyn FnMut(&Event<'_>)) {
        let m = match Message::parse_lax(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed_dns += 1;
                return;
            }
        };
        if m.header.is_response() || m.header.opcode() != 0 {
            return;
        }
        let Some(q) = m.question() else {
            return;
        };
        self.stats.dns_queries += 1;
        let mut name = std::mem::take(&mut self.scratch);
        name.clear();
        q.name.write_to(&mut name, true);
        self.domain(f, &name, emit);
        self.scratch = name;
    }

    /// A name and its parents, longest first, as domain trails (`DNS`).
    fn domain(&mut self, f: &Flow, name: &str, emit: &mut dyn FnMut(&Event<'_>)) {
        // Names with escapes (bytes a domain does not hold) and the root
        // are not looked up (Maltrail checks names against its pattern).
        if name.contains('\\') || name == "." || self.trails.domains.is_empty() {
            return;
        }
        let mut at = 0;
        loop {
            let d = &name[at..];
            if let Some(&m) = self.trails.domains.get(d) {
                self.text.clear();
                if at == 0 {
                    self.text.push_str(d);
                } else {
                    let _ = write!(self.text, "({}).{d}", &name[..at - 1]);
                }
                return self.report(f, "DNS", m, emit);
            }
            match d.find('.') {
                Some(i) => at += i + 1,
                None => return,
            }
        }
    }

    /// An HTTP request's head: its Host as a domain, then its URL.
    fn http(&mut self, f: &Flow, head: &[u8], emit: &mut dyn FnMut(&Event<'_>)) {
        let Some(r) = http::request(head) else {
            return;
        };
        self.stats.http_requests += 1;
        let host = match &r.host {
            Some(h) => h.clone(),
            None => f.dst.to_string(),
        };
        if r.host.is_some() && host.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let name = host.split(':').next().unwrap_or_default();
            self.domain(f, name, emit);
        }
        if self.trails.urls.is_empty() {
            return;
        }
        let mut key = std::mem::take(&mut self.scratch);
        for form in http::url_forms(&r.path) {
            for with_host in [false, true] {
                // After the host, only forms the URL starts with (not its
                // last part alone, which Maltrail also tries there).
                if with_host && !r.path.starts_with(form) {
                    continue;
                }
                key.clear();
                if with_host {
                    key.push_str(&host);
                }
                key.push_str(form);
                if let Some(&m) = self.trails.urls.get(key.as_str()) {
                    let url = format!("{host}{}", r.path);
                    http::url_trail(&url, &key, &mut self.text);
                    self.report(f, "URL", m, emit);
                    self.scratch = key;
                    return;
                }
            }
        }
        self.scratch = key;
    }

    /// Reports the event of trail `m` whose text is in `self.text`.
    fn report(&mut self, f: &Flow, kind: &'static str, m: u32, emit: &mut dyn FnMut(&Event<'_>)) {
        if !self.throttle.allow(f.sec, f.src, f.dst, &self.text) {
            self.stats.throttled += 1;
            return;
        }
        self.stats.events += 1;
        let (info, reference) = self.trails.meta(m);
        emit(&Event {
            sec: f.sec,
            usec: f.usec,
            src: f.src,
            sport: f.sport,
            dst: f.dst,
            dport: f.dport,
            proto: f.proto,
            kind,
            trail: &self.text,
            info,
            reference,
        });
    }
}

#[cfg(test)]
mod tests;
