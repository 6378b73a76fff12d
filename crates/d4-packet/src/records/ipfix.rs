//! IPFIX (RFC 7011) messages, as YAF writes them (D4 type 7): each message
//! starts with a 16-byte header whose 16-bit big-endian length at offset 2
//! covers the whole message. Bounds: a message is 16 to 65,535 bytes by
//! construction; a length under 16 is a corrupt stream. Nothing is buffered
//! but the first four header bytes.

use super::{Progress, RecordError};

/// Length of the IPFIX message header.
pub const IPFIX_HEADER_LEN: usize = 16;

/// Where an IPFIX stream stands.
#[derive(Clone, Debug, Default)]
pub(super) struct Ipfix {
    /// Version and length while they arrive.
    head: [u8; 4],
    /// How much of `head` is filled.
    head_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl Ipfix {
    /// Scans `data`, which starts at stream offset `base`.
    pub(super) fn feed(
        &mut self,
        data: &[u8],
        base: u64,
        p: &mut Progress,
    ) -> Result<(), RecordError> {
        let mut pos = 0;
        while pos < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() - pos);
                self.remaining -= take;
                pos += take;
                if self.remaining == 0 {
                    p.boundary(base + pos as u64, true);
                }
                continue;
            }
            let take = (4 - self.head_len).min(data.len() - pos);
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[pos..pos + take]);
            self.head_len += take;
            pos += take;
            if self.head_len < 4 {
                break;
            }
            self.head_len = 0;
            let len = usize::from(u16::from_be_bytes([self.head[2], self.head[3]]));
            if len < IPFIX_HEADER_LEN {
                return Err(RecordError::IpfixTooShort(len));
            }
            self.remaining = len - 4;
        }
        Ok(())
    }
}
