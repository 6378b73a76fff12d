//! Notices a sensor that captures its own upload: `tcpdump -i any -w - |
//! d4 client` on a host that reaches its server through a captured
//! interface sends every frame it sent again, growing without bound. The
//! sensor knows the server's address and port, so it looks at the first
//! packets of a type-1 (pcap) stream and warns once, with the filter to add.
//!
//! The check is cheap and bounded: it keeps at most [`SAMPLE`] bytes of one
//! packet at a time, and stops after [`CHECKED`] packets or its warning.

use std::net::SocketAddr;

use d4_packet::pcap::{GlobalHeader, GLOBAL_HEADER_LEN, MAX_RECORD_LEN, RECORD_HEADER_LEN};

/// Bytes of each packet looked at (link, IP and TCP headers).
const SAMPLE: usize = 128;
/// Packets looked at before the check gives up.
pub(crate) const CHECKED: u64 = 200_000;

/// Where in the pcap stream the walker is.
enum Step {
    /// The 24-byte global header, so far.
    Global(Vec<u8>),
    /// A 16-byte record header, so far.
    Record(Vec<u8>),
    /// The start of a packet (`want` bytes kept of it), then `skip` more.
    Packet { want: usize, skip: usize },
    /// Not a pcap stream we can follow, or done.
    Off,
}

/// Looks for the sensor's own connection in the capture it sends.
pub(crate) struct EchoCheck {
    step: Step,
    header: Option<GlobalHeader>,
    sample: Vec<u8>,
    server: Option<SocketAddr>,
    packets: u64,
    /// The warning, once given (for tests and the run's report).
    pub(crate) warned: Option<String>,
}

impl EchoCheck {
    /// A check for a pcap stream (`enabled`: the sensor sends type 1 to a server).
    pub(crate) fn new(enabled: bool) -> EchoCheck {
        EchoCheck {
            step: if enabled {
                Step::Global(Vec::with_capacity(GLOBAL_HEADER_LEN))
            } else {
                Step::Off
            },
            header: None,
            sample: Vec::with_capacity(SAMPLE),
            server: None,
            packets: 0,
            warned: None,
        }
    }

    /// The server the sensor is connected to.
    pub(crate) fn server(&mut self, addr: Option<SocketAddr>) {
        if addr.is_some() {
            self.server = addr;
        }
    }

    /// Looks at the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.step {
                Step::Off => return,
                Step::Global(b) => {
                    let n = (GLOBAL_HEADER_LEN - b.len()).min(data.len());
                    b.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if b.len() == GLOBAL_HEADER_LEN {
                        let mut raw = [0u8; GLOBAL_HEADER_LEN];
                        raw.copy_from_slice(b);
                        self.step = match GlobalHeader::parse(&raw) {
                            Ok(h) => {
                                self.header = Some(h);
                                Step::Record(Vec::with_capacity(RECORD_HEADER_LEN))
                            }
                            Err(_) => Step::Off,
                        };
                    }
                }
                Step::Record(b) => {
                    let n = (RECORD_HEADER_LEN - b.len()).min(data.len());
                    b.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if b.len() == RECORD_HEADER_LEN {
                        let big = self.header.as_ref().is_some_and(|h| h.big_endian);
                        let raw = [b[8], b[9], b[10], b[11]];
                        let caplen = if big {
                            u32::from_be_bytes(raw)
                        } else {
                            u32::from_le_bytes(raw)
                        };
                        if caplen > MAX_RECORD_LEN {
                            self.step = Step::Off;
                            return;
                        }
                        let caplen = caplen as usize;
                        self.sample.clear();
                        let want = caplen.min(SAMPLE);
                        self.step = Step::Packet {
                            want,
                            skip: caplen - want,
                        };
                        if want == 0 {
                            self.packet_done();
                        }
                    }
                }
                Step::Packet { want, skip } => {
                    if self.sample.len() < *want {
                        let n = (*want - self.sample.len()).min(data.len());
                        self.sample.extend_from_slice(&data[..n]);
                        data = &data[n..];
                    } else {
                        let n = (*skip).min(data.len());
                        *skip -= n;
                        data = &data[n..];
                    }
                    if self.sample.len() == *want && *skip == 0 {
                        self.packet_done();
                    }
                }
            }
        }
    }

    /// One packet's sample is in: is it the sensor's own connection?
    fn packet_done(&mut self) {
        self.packets += 1;
        self.step = Step::Record(Vec::with_capacity(RECORD_HEADER_LEN));
        let (Some(server), Some(h)) = (self.server, &self.header) else {
            return;
        };
        if let Some(t) = d4_packet::decode::tcp(h.linktype, &self.sample) {
            let ip = server.ip().to_canonical();
            let port = server.port();
            let to = t.dst.to_canonical() == ip && t.dport == port;
            let from = t.src.to_canonical() == ip && t.sport == port;
            if to || from {
                let msg = format!(
                    "the capture this sensor sends contains its own connection to the server \
                     ({ip} port {port}): every frame would be sent again, without end. \
                     Exclude it in the capture filter, e.g. \
                     tcpdump -w - 'not (host {ip} and tcp port {port})' | d4 client …"
                );
                tracing::warn!("{msg}");
                self.warned = Some(msg);
                self.step = Step::Off;
                return;
            }
        }
        if self.packets >= CHECKED {
            self.step = Step::Off;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP packet from 10.0.0.1:50000 to `dst`.
    fn tcp_packet(dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&dst);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&50000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x10;
        f
    }

    fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for p in packets {
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn warns_once_on_its_own_connection_fed_in_any_split() {
        let server: SocketAddr = "192.0.2.7:4443".parse().unwrap();
        let other = tcp_packet([192, 0, 2, 7], 443);
        let own = tcp_packet([192, 0, 2, 7], 4443);
        let stream = pcap(&[other.clone(), other, own]);
        for split in [1, 7, 16, 1000] {
            let mut c = EchoCheck::new(true);
            c.server(Some(server));
            for chunk in stream.chunks(split) {
                c.feed(chunk);
            }
            let w = c.warned.expect("warned");
            assert!(w.contains("not (host 192.0.2.7 and tcp port 4443)"), "{w}");
        }
    }

    #[test]
    fn silent_on_other_traffic_text_and_hostile_sizes() {
        let server: SocketAddr = "192.0.2.7:4443".parse().unwrap();
        let mut c = EchoCheck::new(true);
        c.server(Some(server));
        c.feed(&pcap(&[
            tcp_packet([192, 0, 2, 8], 4443),
            tcp_packet([192, 0, 2, 7], 80),
        ]));
        assert!(c.warned.is_none());
        // Not pcap: the check turns itself off.
        let mut c = EchoCheck::new(true);
        c.server(Some(server));
        c.feed(b"hello world, this is not a capture at all\n");
        assert!(matches!(c.step, Step::Off));
        // A record that claims 4 GB: off, nothing allocated.
        let mut s = pcap(&[]);
        s.extend_from_slice(&[0; 8]);
        s.extend_from_slice(&u32::MAX.to_le_bytes());
        s.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut c = EchoCheck::new(true);
        c.feed(&s);
        assert!(matches!(c.step, Step::Off));
    }
}
