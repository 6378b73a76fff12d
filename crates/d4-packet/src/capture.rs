//! Reading captures as a stream of packets: pcap (either byte order,
//! micro- or nanosecond) and pcapng (sections of either byte order, several
//! interfaces), from any reader (gunzip first with [`crate::gz`]).
//! Lengths are bounded before anything is allocated for them; a corrupt or
//! cut file yields its good packets, then an error that says where. The
//! bounds are those of [`crate::records`] (a pcap record at most
//! [`MAX_RECORD_LEN`], a pcapng block at most [`MAX_BLOCK_LEN`]).

use std::io::{self, Read};

use crate::pcap::{read_u32 as u32_at, GlobalHeader, GLOBAL_HEADER_LEN, MAX_RECORD_LEN};
use crate::records::pcapng::{byte_order, IDB_TYPE, MAX_BLOCK_LEN, SHB_MAGIC};

/// One packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Link type of the interface it was captured on.
    pub linktype: u32,
    /// Seconds.
    pub ts_sec: u32,
    /// Fraction: microseconds, or nanoseconds for nanosecond pcap input.
    pub ts_frac: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

impl Packet {
    /// An empty packet with room for a 64 KiB frame, to be filled by
    /// [`CaptureReader::next_into`] again and again.
    pub fn with_capacity() -> Packet {
        Packet {
            linktype: 0,
            ts_sec: 0,
            ts_frac: 0,
            orig_len: 0,
            data: Vec::with_capacity(65_536),
        }
    }

    /// The fraction in microseconds (`nanos`: it is in nanoseconds).
    pub fn usec(&self, nanos: bool) -> u32 {
        if nanos {
            self.ts_frac / 1000
        } else {
            self.ts_frac
        }
    }
}

/// Why a capture cannot be read (further).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// Neither pcap nor pcapng: the first bytes (up to 4; fewer when the
    /// input is that short).
    #[error("not a pcap or pcapng capture: {}", describe_start(.0))]
    Format(Vec<u8>),
    /// A length field that cannot be right.
    #[error("corrupt capture after {packets} packets: {what}")]
    Corrupt {
        /// Packets read before.
        packets: u64,
        /// What was wrong.
        what: String,
    },
    /// The file ends inside a record.
    #[error("capture cut short after {packets} packets (inside a record)")]
    Truncated {
        /// Packets read before.
        packets: u64,
    },
    /// A read error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

enum Kind {
    Pcap(GlobalHeader),
    Pcapng {
        big_endian: bool,
        /// Per interface: link type and timestamp units per second.
        interfaces: Vec<(u32, u64)>,
    },
}

/// A streaming capture reader.
pub struct CaptureReader<R: Read> {
    r: R,
    kind: Kind,
    packets: u64,
}

/// Reads exactly `buf.len()` bytes; Ok(false) at a clean end before the first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) if n == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short")),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads up to `buf.len()` bytes: fewer only at the end of the input.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How an input that is not a capture starts, for its error message:
/// "empty", its text when printable (`"hello"`), else its bytes in hex.
fn describe_start(b: &[u8]) -> String {
    if b.is_empty() {
        return "it is empty".into();
    }
    if b.iter()
        .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\n' || *c == b'\t')
    {
        format!("it starts with the text {:?}", String::from_utf8_lossy(b))
    } else {
        format!("first bytes {b:02x?}")
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and recognises the format.
    pub fn new(mut r: R) -> Result<CaptureReader<R>, CaptureError> {
        let mut magic = [0u8; 4];
        let got = read_some(&mut r, &mut magic)?;
        if got < magic.len() {
            // Empty, or shorter than any capture's magic number.
            return Err(CaptureError::Format(magic[..got].to_vec()));
        }
        if magic == SHB_MAGIC {
            let mut c = CaptureReader {
                r,
                kind: Kind::Pcapng {
                    big_endian: false,
                    interfaces: Vec::new(),
                },
                packets: 0,
            };
            c.section()?;
            return Ok(c);
        }
        if crate::pcap::check_magic(magic).is_err() {
            return Err(CaptureError::Format(magic.to_vec()));
        }
        let mut raw = [0u8; GLOBAL_HEADER_LEN];
        raw[..4].copy_from_slice(&magic);
        if !read_full(&mut r, &mut raw[4..]).map_err(|_| CaptureError::Truncated { packets: 0 })? {
            return Err(CaptureError::Truncated { packets: 0 });
        }
        let h = GlobalHeader::parse(&raw).map_err(|_| CaptureError::Format(magic.to_vec()))?;
        Ok(CaptureReader {
            r,
            kind: Kind::Pcap(h),
            packets: 0,
        })
    }

    /// The pcap global header, for pcap input.
    pub fn pcap_header(&self) -> Option<&GlobalHeader> {
        match &self.kind {
            Kind::Pcap(h) => Some(h),
            Kind::Pcapng { .. } => None,
        }
    }

    /// Whether packets' `ts_frac` is in nanoseconds (nanosecond pcap input).
    pub fn nanos(&self) -> bool {
        matches!(&self.kind, Kind::Pcap(h) if h.nanos)
    }

    fn corrupt(&self, what: impl Into<String>) -> CaptureError {
        CaptureError::Corrupt {
            packets: self.packets,
            what: what.into(),
        }
    }

    fn cut(&self, e: io::Error) -> CaptureError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            CaptureError::Truncated {
                packets: self.packets,
            }
        } else {
            CaptureError::Io(e)
        }
    }

    /// Reads the rest of the first section header block (its type is read).
    fn section(&mut self) -> Result<(), CaptureError> {
        let mut len = [0u8; 4];
        read_full(&mut self.r, &mut len).map_err(|e| self.cut(e))?;
        self.section_rest(len)
    }

    /// Reads a section header block after its type and length fields: the
    /// byte-order magic decides how `len` reads; interfaces start anew.
    fn section_rest(&mut self, len: [u8; 4]) -> Result<(), CaptureError> {
        let mut m = [0u8; 4];
        read_full(&mut self.r, &mut m).map_err(|e| self.cut(e))?;
        let Some(big) = byte_order(m) else {
            return Err(self.corrupt("pcapng section header with a bad byte-order magic"));
        };
        let len = u32_at(&len, big) as usize;
        if !(28..=MAX_BLOCK_LEN).contains(&len) || !len.is_multiple_of(4) {
            return Err(self.corrupt(format!("pcapng section header of length {len}")));
        }
        let mut rest = vec![0u8; len - 12];
        read_full(&mut self.r, &mut rest).map_err(|e| self.cut(e))?;
        self.kind = Kind::Pcapng {
            big_endian: big,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// The next packet, `Ok(None)` at the end.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, CaptureError> {
        let mut p = Packet {
            linktype: 0,
            ts_sec: 0,
            ts_frac: 0,
            orig_len: 0,
            data: Vec::new(),
        };
        Ok(self.next_into(&mut p)?.then_some(p))
    }

    /// Reads the next packet into `p`, reusing its buffer; false at the end.
    pub fn next_into(&mut self, p: &mut Packet) -> Result<bool, CaptureError> {
        loop {
            match &self.kind {
                Kind::Pcap(h) => {
                    let h = *h;
                    let mut rh = [0u8; 16];
                    match read_full(&mut self.r, &mut rh) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => return Err(self.cut(e)),
                    }
                    let incl = u32_at(&rh[8..12], h.big_endian);
                    if incl > MAX_RECORD_LEN {
                        return Err(self.corrupt(format!("record of {incl} bytes")));
                    }
                    p.data.resize(incl as usize, 0);
                    read_full(&mut self.r, &mut p.data).map_err(|e| self.cut(e))?;
                    self.packets += 1;
                    p.linktype = h.linktype;
                    p.ts_sec = u32_at(&rh[0..4], h.big_endian);
                    p.ts_frac = u32_at(&rh[4..8], h.big_endian);
                    p.orig_len = u32_at(&rh[12..16], h.big_endian);
                    return Ok(true);
                }
                Kind::Pcapng { big_endian, .. } => {
                    let big = *big_endian;
                    let mut bh = [0u8; 8];
                    match read_full(&mut self.r, &mut bh) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => return Err(self.cut(e)),
                    }
                    if bh[..4] == SHB_MAGIC {
                        // A new section, maybe of the other byte order.
                        self.section_rest([bh[4], bh[5], bh[6], bh[7]])?;
                        continue;
                    }
                    let ty = u32_at(&bh[..4], big);
                    let len = u32_at(&bh[4..8], big) as usize;
                    if !(12..=MAX_BLOCK_LEN).contains(&len) || !len.is_multiple_of(4) {
                        return Err(self.corrupt(format!("pcapng block of length {len}")));
                    }
                    let mut body = vec![0u8; len - 8];
                    read_full(&mut self.r, &mut body).map_err(|e| self.cut(e))?;
                    let body = &body[..len - 12]; // without the trailing length
                    match ty {
                        IDB_TYPE => {
                            if body.len() < 8 {
                                return Err(self.corrupt("short interface description block"));
                            }
                            let lt = u32::from(if big {
                                u16::from_be_bytes([body[0], body[1]])
                            } else {
                                u16::from_le_bytes([body[0], body[1]])
                            });
                            let res = tsresol(&body[8..], big);
                            if let Kind::Pcapng { interfaces, .. } = &mut self.kind {
                                interfaces.push((lt, res));
                            }
                        }
                        6 => {
                            if body.len() < 20 {
                                return Err(self.corrupt("short enhanced packet block"));
                            }
                            let iface = u32_at(&body[0..4], big) as usize;
                            let ts = (u64::from(u32_at(&body[4..8], big)) << 32)
                                | u64::from(u32_at(&body[8..12], big));
                            let cap = u32_at(&body[12..16], big) as usize;
                            let orig = u32_at(&body[16..20], big);
                            let Some(data) = body.get(20..20 + cap) else {
                                return Err(self.corrupt(
                                    "enhanced packet block shorter than its captured length",
                                ));
                            };
                            let Kind::Pcapng { interfaces, .. } = &self.kind else {
                                unreachable!()
                            };
                            let Some(&(lt, res)) = interfaces.get(iface) else {
                                return Err(
                                    self.corrupt(format!("packet on undeclared interface {iface}"))
                                );
                            };
                            self.packets += 1;
                            let (sec, usec) = (ts / res, (ts % res) * 1_000_000 / res);
                            p.linktype = lt;
                            p.ts_sec = sec as u32;
                            p.ts_frac = usec as u32;
                            p.orig_len = orig;
                            p.data.clear();
                            p.data.extend_from_slice(data);
                            return Ok(true);
                        }
                        3 => {
                            if body.len() < 4 {
                                return Err(self.corrupt("short simple packet block"));
                            }
                            let orig = u32_at(&body[0..4], big);
                            let Kind::Pcapng { interfaces, .. } = &self.kind else {
                                unreachable!()
                            };
                            let Some(&(lt, _)) = interfaces.first() else {
                                return Err(
                                    self.corrupt("simple packet block before any interface")
                                );
                            };
                            let cap = (orig as usize).min(body.len() - 4);
                            self.packets += 1;
                            p.linktype = lt;
                            p.ts_sec = 0;
                            p.ts_frac = 0;
                            p.orig_len = orig;
                            p.data.clear();
                            p.data.extend_from_slice(&body[4..4 + cap]);
                            return Ok(true);
                        }
                        _ => {} // statistics, name resolution, custom...: skipped
                    }
                }
            }
        }
    }
}

/// Timestamp units per second from an interface block's options.
fn tsresol(mut opts: &[u8], big: bool) -> u64 {
    let rd16 = |b: &[u8]| {
        if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    while opts.len() >= 4 {
        let code = rd16(&opts[0..2]);
        let len = usize::from(rd16(&opts[2..4]));
        let Some(v) = opts.get(4..4 + len) else { break };
        if code == 9 && len >= 1 {
            let r = v[0];
            let e = u32::from(r & 0x7f);
            let units = if r & 0x80 == 0 {
                10u64.checked_pow(e)
            } else {
                2u64.checked_pow(e)
            };
            return units.filter(|u| *u > 0).unwrap_or(1_000_000);
        }
        if code == 0 {
            break;
        }
        opts = &opts[(4 + len).div_ceil(4) * 4..];
    }
    1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(n: usize, big: bool) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut v = w32(0xa1b2_c3d4).to_vec();
        v.extend_from_slice(&if big {
            2u16.to_be_bytes()
        } else {
            2u16.to_le_bytes()
        });
        v.extend_from_slice(&if big {
            4u16.to_be_bytes()
        } else {
            4u16.to_le_bytes()
        });
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&w32(65535));
        v.extend_from_slice(&w32(1));
        for i in 0..n {
            v.extend_from_slice(&w32(i as u32));
            v.extend_from_slice(&w32(7));
            v.extend_from_slice(&w32(3));
            v.extend_from_slice(&w32(60));
            v.extend_from_slice(&[i as u8; 3]);
        }
        v
    }

    #[test]
    fn pcap_both_orders_and_a_cut_file() {
        for big in [false, true] {
            let p = pcap(5, big);
            let mut r = CaptureReader::new(&p[..]).unwrap();
            let mut n = 0;
            while let Some(pk) = r.next_packet().unwrap() {
                assert_eq!(pk.data, vec![n as u8; 3]);
                assert_eq!(
                    (pk.ts_sec, pk.ts_frac, pk.orig_len, pk.linktype),
                    (n, 7, 60, 1)
                );
                n += 1;
            }
            assert_eq!(n, 5);
            let mut r = CaptureReader::new(&p[..p.len() - 1]).unwrap();
            let mut got = 0;
            let err = loop {
                match r.next_packet() {
                    Ok(Some(_)) => got += 1,
                    Ok(None) => panic!("cut file read to the end"),
                    Err(e) => break e,
                }
            };
            assert_eq!(got, 4);
            assert!(
                matches!(err, CaptureError::Truncated { packets: 4 }),
                "{err}"
            );
        }
        assert!(matches!(
            CaptureReader::new(&b"hello world, not a capture"[..]),
            Err(CaptureError::Format(_))
        ));
    }

    #[test]
    fn shared_pcapng_samples_read_whole() {
        let Some(root) = crate::testdata::shared("data/pcap") else {
            return;
        };
        let root = root.join("data/pcap");
        for (name, want) in [
            ("pcapng/pcapnggen__be_test001.pcapng", 4),
            ("pcapng/pcapnggen__le_test100.pcapng", 5),
            ("pcapng/pcapnggen__le_test202.pcapng", 8),
            ("pcapng/tcpdump__empty.pcapng", 0),
            ("tls/ja4__tls-handshake.pcapng", 193),
            ("dns/dnscap__dns.pcap", 133),
            ("mixed/tcpdump__pptp.pcap", 23),
        ] {
            let f = std::fs::read(root.join(name)).unwrap();
            let mut r = CaptureReader::new(&f[..]).unwrap();
            let mut n = 0;
            while let Some(_p) = r.next_packet().unwrap() {
                n += 1;
            }
            assert_eq!(n, want, "{name}");
        }
    }
}
