//! pcapng blocks: type (4 bytes), total length (4), body, total length
//! again. A section header block (SHB) sets the byte order of its section
//! through its byte-order magic; the SHB and the interface description
//! blocks (IDB) that follow are the section's *preamble*, kept so that a new
//! file or a resumed stream can start with them. Each block's end is a
//! boundary.
//!
//! Bounds: a block is 12 to [`MAX_BLOCK_LEN`] bytes and a multiple of 4;
//! the stream must start with an SHB; the preamble is at most
//! [`MAX_BLOCK_LEN`] bytes. Only the 12 header bytes of other blocks are
//! buffered.

use super::framed::{Framed, Step};
use super::{Progress, RecordError};

/// The SHB block type, the same bytes in both byte orders.
pub const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// The interface description block type.
pub const IDB_TYPE: u32 = 1;
/// The byte-order magic inside an SHB, as a number.
pub const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Largest block accepted (1 MiB), in a stream and in a file: also the most
/// a sensor or the server holds back waiting for a block's end.
pub const MAX_BLOCK_LEN: usize = 1024 * 1024;
/// Smallest block: type, length and the trailing length.
pub const MIN_BLOCK_LEN: usize = 12;

/// The byte order given by an SHB's byte-order magic: `Some(big_endian)`.
pub fn byte_order(magic: [u8; 4]) -> Option<bool> {
    if u32::from_be_bytes(magic) == BYTE_ORDER_MAGIC {
        Some(true)
    } else if u32::from_le_bytes(magic) == BYTE_ORDER_MAGIC {
        Some(false)
    } else {
        None
    }
}

/// The SHB block type as a number (its bytes read the same in both orders).
pub const SHB_TYPE: u32 = u32::from_le_bytes(SHB_MAGIC);

/// Builds one pcapng block, for writers and tests: `block_type`, the total
/// length, `body` padded with zeros to a multiple of 4, the total length
/// again, in the byte order asked for.
pub fn build_block(block_type: u32, body: &[u8], big_endian: bool) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let padded = body.len().next_multiple_of(4);
    let len = u32::try_from(MIN_BLOCK_LEN + padded).unwrap_or(u32::MAX);
    let mut b = Vec::with_capacity(MIN_BLOCK_LEN + padded);
    b.extend_from_slice(&w32(block_type));
    b.extend_from_slice(&w32(len));
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&w32(len));
    b
}

/// Builds a section header block whose body of `body_len` bytes (at least
/// 4) is the byte-order magic followed by zeros.
pub fn build_section_header(body_len: usize, big_endian: bool) -> Vec<u8> {
    let mut body = if big_endian {
        BYTE_ORDER_MAGIC.to_be_bytes().to_vec()
    } else {
        BYTE_ORDER_MAGIC.to_le_bytes().to_vec()
    };
    body.resize(body_len.max(4), 0);
    build_block(SHB_TYPE, &body, big_endian)
}

/// Where a pcapng stream stands.
#[derive(Clone, Debug, Default)]
pub(super) struct Pcapng {
    /// Byte order of the current section.
    big_endian: bool,
    /// Whether a block was started (the first must be an SHB).
    started: bool,
    /// The SHB and IDBs of the current section, whole.
    pub(super) preamble: Vec<u8>,
    /// Block headers (type, length, and the SHB's byte-order magic) and
    /// the rest of each block.
    framed: Framed<MIN_BLOCK_LEN>,
    /// Whether the current block belongs to the preamble (copied into
    /// `building` as it comes).
    keep: bool,
    /// The preamble block being read.
    building: Vec<u8>,
}

impl Pcapng {
    fn u32(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Scans `data`, which starts at stream offset `base`.
    pub(super) fn feed(
        &mut self,
        data: &[u8],
        base: u64,
        p: &mut Progress,
    ) -> Result<(), RecordError> {
        let mut pos = 0;
        while pos < data.len() {
            let h = match self.framed.step(data, &mut pos) {
                Step::Body { bytes, ended } => {
                    if self.keep {
                        self.building.extend_from_slice(bytes);
                    }
                    if ended {
                        self.block_done(base + pos as u64, p);
                    }
                    continue;
                }
                Step::Partial => {
                    let got = self.framed.partial();
                    if !self.started && got.len() >= 4 && got[..4] != SHB_MAGIC {
                        return Err(RecordError::NotPcapng);
                    }
                    continue;
                }
                Step::Head(h) => h,
            };
            let shb = h[..4] == SHB_MAGIC;
            if !self.started && !shb {
                return Err(RecordError::NotPcapng);
            }
            self.started = true;
            if shb {
                self.big_endian =
                    byte_order([h[8], h[9], h[10], h[11]]).ok_or(RecordError::PcapngByteOrder)?;
            }
            let ty = self.u32([h[0], h[1], h[2], h[3]]);
            let len = self.u32([h[4], h[5], h[6], h[7]]) as usize;
            if !(MIN_BLOCK_LEN..=MAX_BLOCK_LEN).contains(&len) || !len.is_multiple_of(4) {
                return Err(RecordError::PcapngBlockLen(len));
            }
            self.keep = shb || ty == IDB_TYPE;
            if self.keep {
                let before = if shb { 0 } else { self.preamble.len() };
                if before + len > MAX_BLOCK_LEN {
                    return Err(RecordError::PcapngPreamble);
                }
                self.building.clear();
                self.building.extend_from_slice(&h);
            }
            if self.framed.body(len - MIN_BLOCK_LEN) {
                self.block_done(base + pos as u64, p);
            }
        }
        Ok(())
    }

    /// A block ended at stream offset `at`.
    fn block_done(&mut self, at: u64, p: &mut Progress) {
        if self.keep {
            if self.building[..4] == SHB_MAGIC {
                self.preamble.clear();
            }
            self.preamble.append(&mut self.building);
            self.keep = false;
            p.preamble_changed = true;
        }
        p.boundary(at, true);
    }
}
