//! Types stored as files and announced by path (4 dnscap, 5 pcapng, 7 YAF):
//! bytes are written as they come, and files are cut only between records.

use chrono::{DateTime, Utc};

use super::{Output, Rotator};
use crate::queues::QueueType;

/// Bytes held back waiting for the end of a record, at most (then written
/// as they are: a file may then be cut inside an over-long record).
const MAX_PENDING: usize = 1024 * 1024;

/// Where records end.
pub enum Framing {
    /// Decided by the first bytes: a pcap stream (dnscap `-w -`) or text (`-g`).
    Auto,
    /// Text: records end with `\n`.
    Lines,
    /// A libpcap stream; new files start with its global header.
    Pcap {
        /// Byte order of the record headers.
        big_endian: bool,
        /// The global header, once seen.
        preamble: Vec<u8>,
    },
    /// pcapng blocks; the section header and interface blocks are kept to
    /// open every new file with them.
    Pcapng {
        /// Byte order of the current section.
        big_endian: bool,
        /// SHB and IDBs of the current section.
        preamble: Vec<u8>,
    },
    /// IPFIX messages (16-bit length at offset 2).
    Ipfix,
}

impl Framing {
    /// pcapng framing.
    pub fn pcapng() -> Framing {
        Framing::Pcapng {
            big_endian: false,
            preamble: Vec::new(),
        }
    }

    /// Length of the whole records at the front of `b`, of which the bytes
    /// from `fresh` on are new (earlier ones hold no record end); updates the
    /// preamble.
    fn whole(&mut self, b: &[u8], fresh: usize) -> Result<usize, String> {
        if let Framing::Auto = self {
            let Some(m) = b.get(..4) else { return Ok(0) };
            *self = match m {
                [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Framing::Pcap {
                    big_endian: false,
                    preamble: Vec::new(),
                },
                [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Framing::Pcap {
                    big_endian: true,
                    preamble: Vec::new(),
                },
                _ => Framing::Lines,
            };
        }
        match self {
            Framing::Auto => Ok(0),
            Framing::Lines => Ok(b[fresh.min(b.len())..]
                .iter()
                .rposition(|&c| c == b'\n')
                .map(|i| fresh + i + 1)
                .unwrap_or(0)),
            Framing::Pcap {
                big_endian,
                preamble,
            } => {
                let mut pos = 0;
                if preamble.is_empty() {
                    let Some(h) = b.get(..24) else { return Ok(0) };
                    preamble.extend_from_slice(h);
                    pos = 24;
                }
                while let Some(h) = b.get(pos..pos + 16) {
                    let l = [h[8], h[9], h[10], h[11]];
                    let len = if *big_endian {
                        u32::from_be_bytes(l)
                    } else {
                        u32::from_le_bytes(l)
                    } as usize;
                    if len > d4_packet::MAX_RECORD_LEN as usize {
                        return Err(format!("pcap record of {len} bytes: the stream is corrupt"));
                    }
                    if pos + 16 + len > b.len() {
                        break;
                    }
                    pos += 16 + len;
                }
                Ok(pos)
            }
            Framing::Ipfix => {
                let mut pos = 0;
                while let Some(h) = b.get(pos..pos + 4) {
                    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
                    if len < 16 {
                        return Err(format!(
                            "IPFIX message of length {len} (less than a header)"
                        ));
                    }
                    if pos + len > b.len() {
                        break;
                    }
                    pos += len;
                }
                Ok(pos)
            }
            Framing::Pcapng {
                big_endian,
                preamble,
            } => {
                let mut pos = 0;
                while let Some(h) = b.get(pos..pos + 12) {
                    let ty_le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                    if ty_le == 0x0a0d_0d0a {
                        *big_endian = match [h[8], h[9], h[10], h[11]] {
                            [0x4d, 0x3c, 0x2b, 0x1a] => false,
                            [0x1a, 0x2b, 0x3c, 0x4d] => true,
                            _ => {
                                return Err(
                                    "pcapng section header with a bad byte-order magic".into()
                                )
                            }
                        };
                        preamble.clear();
                    }
                    let rd = |x: [u8; 4]| {
                        if *big_endian {
                            u32::from_be_bytes(x)
                        } else {
                            u32::from_le_bytes(x)
                        }
                    };
                    let ty = rd([h[0], h[1], h[2], h[3]]);
                    let len = rd([h[4], h[5], h[6], h[7]]) as usize;
                    if len < 12 || !len.is_multiple_of(4) || len > MAX_PENDING {
                        return Err(format!(
                            "pcapng block of length {len}: the stream is corrupt"
                        ));
                    }
                    if pos + len > b.len() {
                        break;
                    }
                    if ty == 0x0a0d_0d0a || ty == 1 {
                        preamble.extend_from_slice(&b[pos..pos + len]);
                    }
                    pos += len;
                }
                if pos == 0
                    && b.len() >= 4
                    && preamble.is_empty()
                    && u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 0x0a0d_0d0a
                {
                    return Err("not a pcapng stream (no section header block first)".into());
                }
                Ok(pos)
            }
        }
    }
}

/// Stores a stream into rotated files, cut between records.
pub struct FileWorker {
    files: Rotator,
    framing: Framing,
    pending: Vec<u8>,
}

impl FileWorker {
    /// The file rotator.
    pub fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// A worker writing through `files`.
    pub fn new(files: Rotator, framing: Framing) -> FileWorker {
        FileWorker {
            files,
            framing,
            pending: Vec::new(),
        }
    }

    /// The queue type (file paths are announced there).
    pub fn queue_type(&self) -> QueueType {
        match self.framing {
            Framing::Auto | Framing::Lines | Framing::Pcap { .. } => QueueType::Type(4),
            Framing::Pcapng { .. } => QueueType::Type(5),
            Framing::Ipfix => QueueType::Type(7),
        }
    }

    /// Handles one payload.
    pub fn data(&mut self, payload: &[u8], now: DateTime<Utc>) -> Result<Output, String> {
        let fresh = self.pending.len();
        self.pending.extend_from_slice(payload);
        // The preamble as of before these bytes opens a file rotated while writing them.
        let n = self.framing.whole(&self.pending, fresh)?;
        let n = if n == 0 && self.pending.len() > MAX_PENDING {
            self.pending.len()
        } else {
            n
        };
        if n > 0 {
            // A new pcapng file must not repeat a preamble it starts with.
            // A new file must not repeat a preamble it starts with.
            if self.files.current_path().is_none() {
                self.files.set_prefix(Vec::new());
            }
            self.files
                .write(&self.pending[..n], now)
                .map_err(|e| format!("cannot store data: {e}"))?;
            if let Framing::Pcapng { preamble, .. } | Framing::Pcap { preamble, .. } = &self.framing
            {
                self.files.set_prefix(preamble.clone());
            }
            self.pending.drain(..n);
        }
        Ok(Output::default())
    }

    /// Closes the file. An unfinished last record is stored only after a
    /// clean end of text streams (binary records cut short are not records).
    pub fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            if clean && matches!(self.framing, Framing::Lines) {
                if let Err(e) = self.files.write(&rest, now) {
                    tracing::error!("{e}");
                }
            } else {
                tracing::warn!(
                    "session ended inside a record: {} bytes not stored",
                    rest.len()
                );
            }
        }
        self.files.rotate();
        Output::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ty: u32, body: usize) -> Vec<u8> {
        let len = (12 + body) as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        if ty == 0x0a0d_0d0a {
            b.extend_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a]);
            b.extend(std::iter::repeat_n(0, body - 4));
        } else {
            b.extend(std::iter::repeat_n(7, body));
        }
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn pcapng_cuts_between_blocks_and_keeps_the_preamble() {
        let shb = block(0x0a0d_0d0a, 16);
        let idb = block(1, 8);
        let epb = block(6, 40);
        let stream = [shb.clone(), idb.clone(), epb.clone(), epb.clone()].concat();
        let mut f = Framing::pcapng();
        // Cut inside the last block: only the whole ones count.
        assert_eq!(
            f.whole(&stream[..stream.len() - 3], 0).unwrap(),
            stream.len() - epb.len()
        );
        let Framing::Pcapng { preamble, .. } = &f else {
            unreachable!()
        };
        assert_eq!(preamble, &[shb, idb].concat());
        assert!(Framing::pcapng()
            .whole(b"GET / HTTP/1.1\r\n\r\n", 0)
            .is_err());
    }

    #[test]
    fn ipfix_and_lines() {
        let msg = |len: u16| {
            let mut m = vec![0, 10];
            m.extend_from_slice(&len.to_be_bytes());
            m.resize(len as usize, 0);
            m
        };
        let s = [msg(16), msg(40), msg(30)].concat();
        assert_eq!(Framing::Ipfix.whole(&s[..s.len() - 1], 0).unwrap(), 56);
        assert!(Framing::Ipfix.whole(&[0, 10, 0, 3], 0).is_err());
        assert_eq!(Framing::Lines.whole(b"a\nb\nc", 0).unwrap(), 4);
        assert_eq!(
            Framing::Lines.whole(b"a\nbc", 2).unwrap(),
            0,
            "only new bytes are scanned"
        );
        let mut auto = Framing::Auto;
        assert_eq!(auto.whole(b"text\nmore", 0).unwrap(), 5);
        assert!(matches!(auto, Framing::Lines));
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.resize(24, 0);
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&4u32.to_le_bytes());
        pcap.extend_from_slice(&4u32.to_le_bytes());
        pcap.extend_from_slice(b"abcd");
        let mut auto = Framing::Auto;
        assert_eq!(auto.whole(&pcap[..pcap.len() - 1], 0).unwrap(), 24);
        assert!(matches!(auto, Framing::Pcap { .. }));
    }
}
