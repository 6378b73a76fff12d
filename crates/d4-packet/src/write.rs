//! Writing packets as one pcap stream, whatever they were read from.
//!
//! The first pcap input's global header is kept byte for byte (byte order,
//! time resolution, snaplen); without one (pcapng input, or packets from
//! elsewhere) the output is little-endian microsecond pcap with the first
//! packet's link type. Packets of later inputs are converted to the output's
//! byte order and time resolution. A pcap holds one link type: a packet of
//! another is refused with [`WriteError::LinkType`] (the caller says which
//! input and goes on).

use std::io::{self, Write};

use crate::capture::Packet;
use crate::pcap::GlobalHeader;

/// Why a packet was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The packet's link type is not the stream's.
    #[error("link type {got} in a pcap of link type {have} (a pcap holds one link type)")]
    LinkType {
        /// The stream's link type.
        have: u32,
        /// The packet's.
        got: u32,
    },
    /// The output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Clone, Copy, Debug)]
struct Format {
    big_endian: bool,
    nanos: bool,
    linktype: u32,
}

/// A pcap stream being written.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    format: Option<Format>,
    /// Packets written.
    pub packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// A writer that writes nothing until the first header or packet.
    pub fn new(out: W) -> PcapWriter<W> {
        PcapWriter {
            out,
            format: None,
            packets: 0,
        }
    }

    /// Offers an input's pcap header: written as the stream's own if nothing
    /// has been written yet (a pcap in, pcap out keeps its header).
    pub fn offer_header(&mut self, h: &GlobalHeader) -> io::Result<()> {
        if self.format.is_none() {
            self.out.write_all(&h.raw)?;
            self.format = Some(Format {
                big_endian: h.big_endian,
                nanos: h.nanos,
                linktype: h.linktype,
            });
        }
        Ok(())
    }

    /// The stream's link type, once known.
    pub fn linktype(&self) -> Option<u32> {
        self.format.map(|f| f.linktype)
    }

    /// Writes one packet; `nanos` says whether its `ts_frac` is in nanoseconds.
    pub fn write(&mut self, p: &Packet, nanos: bool) -> Result<(), WriteError> {
        let f = match self.format {
            Some(f) => f,
            None => {
                let mut h = [0u8; 24];
                h[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
                h[4..6].copy_from_slice(&2u16.to_le_bytes());
                h[6..8].copy_from_slice(&4u16.to_le_bytes());
                h[16..20].copy_from_slice(&262_144u32.to_le_bytes());
                h[20..24].copy_from_slice(&p.linktype.to_le_bytes());
                self.out.write_all(&h)?;
                let f = Format {
                    big_endian: false,
                    nanos: false,
                    linktype: p.linktype,
                };
                self.format = Some(f);
                f
            }
        };
        if p.linktype != f.linktype {
            return Err(WriteError::LinkType {
                have: f.linktype,
                got: p.linktype,
            });
        }
        let frac = match (nanos, f.nanos) {
            (true, false) => p.ts_frac / 1000,
            (false, true) => p.ts_frac.saturating_mul(1000),
            _ => p.ts_frac,
        };
        let len = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
        let mut rh = [0u8; 16];
        for (i, v) in [p.ts_sec, frac, len, p.orig_len.max(len)]
            .into_iter()
            .enumerate()
        {
            let b = if f.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            rh[4 * i..4 * i + 4].copy_from_slice(&b);
        }
        self.out.write_all(&rh)?;
        self.out.write_all(&p.data)?;
        self.packets += 1;
        Ok(())
    }

    /// The output, to flush or take back.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Takes the output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;

    fn pkt(linktype: u32, frac: u32, data: &[u8]) -> Packet {
        Packet {
            linktype,
            ts_sec: 7,
            ts_frac: frac,
            orig_len: data.len() as u32,
            data: data.to_vec(),
        }
    }

    #[test]
    fn keeps_the_first_header_converts_later_packets_refuses_other_link_types() {
        // A big-endian nanosecond header, as a pcap input would offer it.
        let mut raw = [0u8; 24];
        raw[..4].copy_from_slice(&0xa1b2_3c4du32.to_be_bytes());
        raw[4..6].copy_from_slice(&2u16.to_be_bytes());
        raw[6..8].copy_from_slice(&4u16.to_be_bytes());
        raw[16..20].copy_from_slice(&65535u32.to_be_bytes());
        raw[20..24].copy_from_slice(&1u32.to_be_bytes());
        let h = GlobalHeader::parse(&raw).unwrap();
        let mut w = PcapWriter::new(Vec::new());
        w.offer_header(&h).unwrap();
        w.write(&pkt(1, 5, b"abc"), false).unwrap(); // microseconds in
        w.offer_header(&h).unwrap(); // a second input: no second header
        assert!(matches!(
            w.write(&pkt(101, 0, b"x"), false),
            Err(WriteError::LinkType { have: 1, got: 101 })
        ));
        let out = w.into_inner();
        assert_eq!(&out[..24], &raw);
        let mut r = CaptureReader::new(&out[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts_sec, p.ts_frac, p.data.as_slice()),
            (7, 5000, &b"abc"[..])
        );
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn without_a_header_writes_little_endian_microseconds() {
        let mut w = PcapWriter::new(Vec::new());
        w.write(&pkt(113, 123_456_789, b"abcd"), true).unwrap();
        let out = w.into_inner();
        let mut r = CaptureReader::new(&out[..]).unwrap();
        assert_eq!(r.pcap_header().unwrap().linktype, 113);
        assert!(!r.pcap_header().unwrap().nanos);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.ts_frac, 123_456);
    }
}
