//! Captured packets → TLS sessions → `ja3-jl` records.
//!
//! Link layer and IP (`d4_packet::decode`), IPv4 fragments
//! (`d4_packet::flow::Defrag`), TCP streams, one per direction
//! (`d4_packet::flow::TcpStreams`: out of order, retransmissions), then the
//! TLS record layer and handshake messages reassembled across records.
//! TLS is recognised by content, not by port: a direction whose first bytes
//! are a handshake record (`16 03 00..04`). An SSLv2-format CLIENT-HELLO is
//! counted ([`Stats::sslv2_hellos`]) and gives no record (its fields are not
//! those of a TLS ClientHello, and the reference sensor skips it too).
//!
//! One record per ClientHello, with the ServerHello that answers it: a
//! connection that goes through a HelloRetryRequest gives two records (the
//! first ClientHello with the HelloRetryRequest's JA3S, the second with the
//! ServerHello's); a ClientHello sent twice without an answer in between
//! gives a record without JA3S for the first. A record is written when its
//! handshake is over for us: after the Certificate (TLS ≤ 1.2), at the
//! ServerHello of TLS 1.3 (its certificates are encrypted), at the first
//! non-handshake record from the server, at ServerHelloDone, at a FIN or
//! RST, when the connection idles out, or at the end of the input. Both
//! directions are then no longer reassembled (the rest is bulk data).

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;

use crate::hello::{self, hex, md5_hex, msg, ServerHello};
use crate::record::{Cert, Record};
use d4_packet::capture::Packet;
use d4_packet::decode::{self, flags};
use d4_packet::flow::{Defrag, FlowKey, TcpStreams};

/// Largest TLS record fragment accepted (2^14 plus the expansion allowed to
/// a protected record).
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Most handshake bytes held per direction (a long certificate chain).
const MAX_HANDSHAKE: usize = 256 * 1024;
/// Seconds without a packet before a connection is written and forgotten.
const IDLE: u64 = 300;

/// What the fingerprinter saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets given.
    pub packets: u64,
    /// TCP directions recognised as TLS (a handshake record first).
    pub flows: u64,
    /// ClientHello messages.
    pub client_hellos: u64,
    /// ServerHello messages (HelloRetryRequests included).
    pub server_hellos: u64,
    /// Certificates read from Certificate messages.
    pub certificates: u64,
    /// Records written.
    pub records: u64,
    /// Malformed records or handshake messages (the direction is dropped),
    /// and certificates that are not one whole DER value (kept as sent).
    pub malformed: u64,
    /// SSLv2-format CLIENT-HELLOs (counted, no record).
    pub sslv2_hellos: u64,
    /// TCP directions dropped by the reassembler (table full, buffer limit).
    pub flows_dropped: u64,
}

/// Limits of a [`Fingerprinter`].
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// TCP flow directions (and TLS connections) tracked at once.
    pub max_flows: usize,
    /// Bytes buffered per TCP direction.
    pub max_flow_buffer: usize,
    /// IPv4 datagrams in reassembly at once.
    pub max_fragmented: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_flows: 65_536,
            max_flow_buffer: 256 * 1024,
            max_fragmented: 4096,
        }
    }
}

/// The TLS state of one direction.
struct Dir {
    /// Handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
    /// This direction sent ChangeCipherSpec: what follows is encrypted.
    ccs: bool,
    /// When bytes last came (for eviction).
    last_seen: u64,
}

/// One connection, keyed by its client → server direction.
struct Session {
    /// The record being filled (client side set at the ClientHello).
    rec: Record,
    /// A ServerHello answered the current ClientHello.
    answered: bool,
    /// The last ServerHello was a HelloRetryRequest: a second ClientHello
    /// follows (after a ChangeCipherSpec in compatibility mode).
    retry: bool,
    /// The negotiated version (ServerHello).
    version: u16,
    /// When the ClientHello came (ordering at the end).
    first_seen: u64,
    /// When a packet last came.
    last_seen: u64,
}

/// Turns packets into `ja3-jl` records.
pub struct Fingerprinter {
    defrag: Defrag,
    streams: TcpStreams,
    dirs: HashMap<FlowKey, Dir>,
    sessions: HashMap<FlowKey, Session>,
    /// Directions to stop reassembling after the current segment.
    done: Vec<FlowKey>,
    max_flows: usize,
    last_sweep: u64,
    /// Counters.
    pub stats: Stats,
}

fn rev(k: &FlowKey) -> FlowKey {
    (k.2, k.3, k.0, k.1)
}

impl Fingerprinter {
    /// A new fingerprinter.
    pub fn new(c: Config) -> Fingerprinter {
        Fingerprinter {
            defrag: Defrag::new(c.max_fragmented, 30),
            streams: TcpStreams::new(c.max_flows, c.max_flow_buffer.max(2 * MAX_RECORD)),
            dirs: HashMap::new(),
            sessions: HashMap::new(),
            done: Vec::new(),
            max_flows: c.max_flows.max(1),
            last_sweep: 0,
            stats: Stats::default(),
        }
    }

    /// Connections with a ClientHello not yet written.
    pub fn pending(&self) -> usize {
        self.sessions.len()
    }

    /// One captured packet; `nanos` when its fraction is nanoseconds.
    pub fn packet(&mut self, p: &Packet, nanos: bool, emit: &mut dyn FnMut(&Record)) {
        let usec = if nanos { p.ts_frac / 1000 } else { p.ts_frac };
        self.frame(p.linktype, u64::from(p.ts_sec), usec, &p.data, emit);
    }

    /// One frame of `linktype` captured at `sec`.`usec`.
    pub fn frame(
        &mut self,
        linktype: u32,
        sec: u64,
        usec: u32,
        frame: &[u8],
        emit: &mut dyn FnMut(&Record),
    ) {
        self.stats.packets += 1;
        if sec > self.last_sweep + 60 {
            self.sweep(sec, emit);
        }
        let Some(ip) = decode::ip(linktype, frame) else {
            return;
        };
        if ip.proto != 6 {
            return;
        }
        match ip.fragment {
            None => self.tcp(sec, usec, ip.src, ip.dst, ip.payload, emit),
            Some(f) => {
                let key = (ip.src, ip.dst, f.id, ip.proto);
                if let Some(d) = self.defrag.push(sec, key, f, ip.payload) {
                    self.tcp(sec, usec, ip.src, ip.dst, &d, emit);
                }
            }
        }
    }

    /// Writes every connection still pending (end of input), oldest first.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&Record)) {
        let mut all: Vec<(FlowKey, Session)> = self.sessions.drain().collect();
        all.sort_by_key(|(_, s)| s.first_seen);
        for (_, s) in all {
            self.stats.records += 1;
            emit(&s.rec);
        }
        self.dirs.clear();
    }

    /// Writes and forgets idle connections; forgets idle directions.
    fn sweep(&mut self, now: u64, emit: &mut dyn FnMut(&Record)) {
        self.defrag.expire(now);
        self.streams.expire(now, IDLE);
        self.dirs
            .retain(|_, d| now.saturating_sub(d.last_seen) <= IDLE);
        let mut idle: Vec<FlowKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_seen) > IDLE)
            .map(|(k, _)| *k)
            .collect();
        idle.sort_by_key(|k| self.sessions.get(k).map(|s| s.first_seen));
        for k in idle {
            self.write(&k, emit);
        }
        self.last_sweep = now;
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        sec: u64,
        usec: u32,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        emit: &mut dyn FnMut(&Record),
    ) {
        let Some(seg) = decode::tcp_segment(l4) else {
            return;
        };
        let key = (src, seg.sport, dst, seg.dport);
        if self.dirs.len() >= self.max_flows && !self.dirs.contains_key(&key) {
            // Forget the stalest half of the directions (rare: a flood).
            let mut ages: Vec<u64> = self.dirs.values().map(|d| d.last_seen).collect();
            let mid = ages.len() / 2;
            let cut = *ages.select_nth_unstable(mid).1;
            self.dirs.retain(|_, d| d.last_seen > cut);
        }
        if self.sessions.len() >= self.max_flows {
            let mut ages: Vec<(u64, FlowKey)> = self
                .sessions
                .iter()
                .map(|(k, s)| (s.last_seen, *k))
                .collect();
            ages.sort_unstable();
            for (_, k) in ages.into_iter().take(self.max_flows / 16 + 1) {
                self.write(&k, emit);
            }
        }
        let mut ctx = Ctx {
            dirs: &mut self.dirs,
            sessions: &mut self.sessions,
            done: &mut self.done,
            stats: &mut self.stats,
            emit,
            key,
            sec,
            ts: timestamp(sec, usec),
        };
        self.streams.segment(sec, key, &seg, &mut |b| ctx.bytes(b));
        for k in [key, rev(&key)] {
            if let Some(s) = self.sessions.get_mut(&k) {
                s.last_seen = sec;
            }
        }
        if seg.flags & (flags::FIN | flags::RST) != 0 {
            // The connection ends: what we have of it is written.
            self.dirs.remove(&key);
            if self.sessions.contains_key(&key) {
                self.write(&key, emit);
            } else if self.sessions.contains_key(&rev(&key)) {
                self.write(&rev(&key), emit);
            }
        }
        for k in self.done.drain(..) {
            self.streams.ignore(&k);
            self.dirs.remove(&k);
        }
        self.stats.flows_dropped = self.streams.stats.flows_dropped;
    }

    /// Writes the record of connection `key` and stops following it.
    fn write(&mut self, key: &FlowKey, emit: &mut dyn FnMut(&Record)) {
        if let Some(s) = self.sessions.remove(key) {
            self.stats.records += 1;
            emit(&s.rec);
        }
        for k in [*key, rev(key)] {
            self.streams.ignore(&k);
            self.dirs.remove(&k);
        }
    }
}

/// RFC 3339 with microseconds, UTC.
fn timestamp(sec: u64, usec: u32) -> String {
    let t = i64::try_from(sec)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, usec.min(999_999) * 1000))
        .unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What the stream callback needs of the fingerprinter.
struct Ctx<'a, 'e> {
    dirs: &'a mut HashMap<FlowKey, Dir>,
    sessions: &'a mut HashMap<FlowKey, Session>,
    done: &'a mut Vec<FlowKey>,
    stats: &'a mut Stats,
    emit: &'a mut (dyn FnMut(&Record) + 'e),
    /// The direction the bytes are of.
    key: FlowKey,
    sec: u64,
    /// The packet's time, RFC 3339.
    ts: String,
}

/// Whether `b` starts like an SSLv2-format CLIENT-HELLO (2-byte header with
/// the high bit set, message type 1, a version of SSL 2 to TLS 1.2).
fn sslv2_hello(b: &[u8]) -> bool {
    b.len() >= 5
        && b[0] & 0x80 != 0
        && b[2] == 1
        && matches!(u16::from_be_bytes([b[3], b[4]]), 0x0002 | 0x0300..=0x0303)
}

impl Ctx<'_, '_> {
    /// Stream bytes of direction `key`; returns how many were consumed.
    fn bytes(&mut self, b: &[u8]) -> usize {
        if !self.dirs.contains_key(&self.key) {
            if b.len() < 3 {
                return 0;
            }
            if b[0] == 22 && b[1] == 3 && b[2] <= 4 {
                self.stats.flows += 1;
                self.dirs.insert(
                    self.key,
                    Dir {
                        hs: Vec::new(),
                        ccs: false,
                        last_seen: self.sec,
                    },
                );
            } else {
                if sslv2_hello(b) {
                    self.stats.sslv2_hellos += 1;
                }
                self.done.push(self.key);
                return b.len();
            }
        }
        let mut used = 0;
        while let Some(h) = b.get(used..used + 5) {
            let (ctype, len) = (h[0], usize::from(u16::from_be_bytes([h[3], h[4]])));
            if h[1] != 3 || len > MAX_RECORD || !(20..=24).contains(&ctype) {
                self.stats.malformed += 1;
                return self.stop(b.len());
            }
            let Some(frag) = b.get(used + 5..used + 5 + len) else {
                break; // the rest of the record is to come
            };
            used += 5 + len;
            if !self.record(ctype, frag) {
                return self.stop(b.len());
            }
        }
        if let Some(d) = self.dirs.get_mut(&self.key) {
            d.last_seen = self.sec;
        }
        used
    }

    /// No more of this direction.
    fn stop(&mut self, n: usize) -> usize {
        self.done.push(self.key);
        self.dirs.remove(&self.key);
        n
    }

    /// One TLS record; false when the direction is of no more interest.
    fn record(&mut self, ctype: u8, frag: &[u8]) -> bool {
        let client = self.sessions.contains_key(&self.key);
        // Between a HelloRetryRequest and the ServerHello, both sides may
        // send a ChangeCipherSpec (compatibility mode) and go on in clear.
        let retry = self
            .sessions
            .get(&self.key)
            .or_else(|| self.sessions.get(&rev(&self.key)))
            .is_some_and(|s| s.retry);
        let Some(d) = self.dirs.get_mut(&self.key) else {
            return false;
        };
        match ctype {
            22 if !d.ccs || retry => {
                if d.hs.len() + frag.len() > MAX_HANDSHAKE {
                    self.stats.malformed += 1;
                    return false;
                }
                d.hs.extend_from_slice(frag);
                let hs = std::mem::take(&mut d.hs);
                let mut at = 0;
                let mut go = true;
                while let Some(h) = hs.get(at..at + 4) {
                    let l = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
                    if l > MAX_HANDSHAKE {
                        self.stats.malformed += 1;
                        return false;
                    }
                    let Some(body) = hs.get(at + 4..at + 4 + l) else {
                        break;
                    };
                    at += 4 + l;
                    go = self.handshake(h[0], body);
                    if !go {
                        break;
                    }
                }
                if go {
                    if let Some(d) = self.dirs.get_mut(&self.key) {
                        d.hs = hs.get(at..).unwrap_or_default().to_vec();
                    }
                }
                go
            }
            20 => {
                d.ccs = true;
                // A client in compatibility mode sends ChangeCipherSpec
                // before its second ClientHello; otherwise what follows
                // is encrypted.
                if retry {
                    return true;
                }
                self.non_handshake(client)
            }
            _ => self.non_handshake(client),
        }
    }

    /// A non-handshake record (or encrypted handshake): from the server, the
    /// handshake is over for us; from the client, its direction is.
    fn non_handshake(&mut self, client: bool) -> bool {
        if !client {
            let k = rev(&self.key);
            self.write(&k);
        }
        false
    }

    /// Writes the record of connection `k` and stops following both sides.
    fn write(&mut self, k: &FlowKey) {
        if let Some(s) = self.sessions.remove(k) {
            self.stats.records += 1;
            (self.emit)(&s.rec);
        }
        self.done.push(*k);
        self.done.push(rev(k));
    }

    /// One handshake message; false when the direction is of no more
    /// interest.
    fn handshake(&mut self, t: u8, body: &[u8]) -> bool {
        match t {
            msg::CLIENT_HELLO => {
                self.stats.client_hellos += 1;
                let ch = match hello::client_hello(body) {
                    Ok(h) => h,
                    Err(_) => {
                        self.stats.malformed += 1;
                        return false;
                    }
                };
                // A previous ClientHello of this connection is written first.
                let mut retry = false;
                if let Some(s) = self.sessions.remove(&self.key) {
                    retry = s.retry;
                    self.stats.records += 1;
                    (self.emit)(&s.rec);
                }
                let (c, s) = (self.key, rev(&self.key));
                let ja3 = ch.ja3();
                let rec = Record {
                    server_ip: s.0.to_string(),
                    server_port: s.1.to_string(),
                    client_ip: c.0.to_string(),
                    client_port: c.1.to_string(),
                    timestamp: self.ts.clone(),
                    ja3_digest: md5_hex(&ja3),
                    ja3,
                    ja4: ch.ja4(),
                    sni: ch.sni.clone().unwrap_or_default(),
                    alpn: ch
                        .alpn
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect(),
                    ..Record::default()
                };
                self.sessions.insert(
                    c,
                    Session {
                        rec,
                        answered: false,
                        retry,
                        version: 0,
                        first_seen: self.sec,
                        last_seen: self.sec,
                    },
                );
                true
            }
            msg::SERVER_HELLO => {
                self.stats.server_hellos += 1;
                let sh: ServerHello = match hello::server_hello(body) {
                    Ok(h) => h,
                    Err(_) => {
                        self.stats.malformed += 1;
                        return false;
                    }
                };
                let k = rev(&self.key);
                let Some(s) = self.sessions.get_mut(&k) else {
                    return false; // no ClientHello seen: nothing to pair with
                };
                if s.answered {
                    return false; // a second answer to one ClientHello
                }
                s.answered = true;
                s.rec.ja3s = sh.ja3s();
                s.rec.ja3s_digest = md5_hex(&s.rec.ja3s);
                s.version = sh.negotiated();
                s.retry = sh.retry;
                if sh.retry {
                    return true; // the second ClientHello comes
                }
                let v = s.version;
                if v == 0x0304 || v >> 8 == 0x7f {
                    // TLS 1.3 (or a draft): the rest is encrypted.
                    self.write(&k);
                    return false;
                }
                true
            }
            msg::CERTIFICATE => {
                let k = rev(&self.key);
                let Some(s) = self.sessions.get_mut(&k) else {
                    return false;
                };
                match hello::certificates(body) {
                    Ok(list) => {
                        for der in list {
                            self.stats.certificates += 1;
                            // Kept as sent, counted when not one DER value.
                            if !hello::der_whole(der) {
                                self.stats.malformed += 1;
                            }
                            s.rec.certificates.push(Cert {
                                cert_hash: hex(&crate::cert::sha1(der)),
                                raw: base64::engine::general_purpose::STANDARD.encode(der),
                                sha256: hex(&crate::cert::sha256(der)),
                            });
                        }
                    }
                    Err(_) => self.stats.malformed += 1,
                }
                self.write(&k);
                false
            }
            // ServerHelloDone without a Certificate (anonymous, PSK).
            14 => {
                let k = rev(&self.key);
                if self.sessions.contains_key(&k) {
                    self.write(&k);
                    return false;
                }
                true
            }
            _ => true,
        }
    }
}
