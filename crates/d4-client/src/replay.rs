//! The `pcap` source at a speed: a capture replayed as a pcap stream (its
//! global header, then its records), each record released when its
//! timestamp, divided by the speed, is due since the first one (`speed` 1:
//! the capture's pace; 4: four times faster; 0 is not paced: `d4 client`
//! then sends the file's bytes as they are).
//!
//! A pcap input comes out byte for byte (its header is kept); a pcapng
//! input is converted to pcap (microseconds) by the same reader and writer
//! as `d4 anonymize` (`d4_packet::capture`, `d4_packet::write`), and
//! refused, with the reason, if its interfaces have different link types.
//! A timestamp earlier than the one before is sent at once. The pacing is
//! `d4_packet::pace::Pacer`'s, the one `d4 dns` uses too.

use anyhow::{Context, Result};
use d4_packet::capture::{CaptureReader, Packet};
use d4_packet::pace::{timestamp_ns, Pacer};
use d4_packet::write::PcapWriter;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// A capture, paced.
pub struct Replay {
    cap: CaptureReader<BufReader<std::fs::File>>,
    out: PcapWriter<Vec<u8>>,
    /// Bytes of `out` already handed out.
    pos: usize,
    pacer: Pacer,
    nanos: bool,
    packet: Packet,
    name: String,
}

impl Replay {
    /// Opens `path` (pcap or pcapng) to replay at `speed` (> 0).
    pub fn open(path: &Path, speed: f64) -> Result<Replay> {
        let pacer = Pacer::new(speed)?;
        let f = std::fs::File::open(path)
            .with_context(|| format!("cannot open the capture {}", path.display()))?;
        let cap = CaptureReader::new(BufReader::with_capacity(256 * 1024, f))
            .with_context(|| format!("{}: cannot replay it", path.display()))?;
        let mut out = PcapWriter::new(Vec::with_capacity(256 * 1024));
        if let Some(h) = cap.pcap_header() {
            out.offer_header(h)?;
        }
        Ok(Replay {
            nanos: cap.nanos(),
            cap,
            out,
            pos: 0,
            pacer,
            packet: Packet::with_capacity(),
            name: path.display().to_string(),
        })
    }

    /// Waits until the current packet is due.
    fn pace(&mut self) {
        let p = &self.packet;
        self.pacer
            .wait(timestamp_ns(p.ts_sec, p.ts_frac, self.nanos));
    }
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let pending = &self.out.get_mut()[self.pos..];
            if !pending.is_empty() {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                self.pos += n;
                return Ok(n);
            }
            self.out.get_mut().clear();
            self.pos = 0;
            let more = self.cap.next_into(&mut self.packet).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.name))
            })?;
            if !more {
                return Ok(0);
            }
            self.pace();
            self.out.write(&self.packet, self.nanos).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: cannot replay it as pcap: {e}", self.name),
                )
            })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A pcap of `n` packets, `gap_ms` apart.
    fn capture(n: u32, gap_ms: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..n {
            let us = i * gap_ms * 1000;
            for x in [1000 + us / 1_000_000, us % 1_000_000, 60, 60] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&[i as u8; 60]);
        }
        v
    }

    #[test]
    fn same_bytes_and_paced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.pcap");
        let cap = capture(5, 100); // 400 ms
        std::fs::write(&p, &cap).unwrap();
        let t = Instant::now();
        let mut out = Vec::new();
        Replay::open(&p, 2.0)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, cap);
        assert!(
            t.elapsed() >= Duration::from_millis(180),
            "{:?}",
            t.elapsed()
        );
        std::fs::write(&p, b"not a capture").unwrap();
        let e = format!("{:#}", Replay::open(&p, 1.0).err().unwrap());
        assert!(e.contains("not a pcap"), "{e}");
        assert!(Replay::open(&p, -1.0).is_err());
    }
}
