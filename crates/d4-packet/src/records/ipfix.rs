//! IPFIX (RFC 7011) messages, as YAF writes them (D4 type 7): each message
//! starts with a 16-byte header whose 16-bit big-endian length at offset 2
//! covers the whole message. Bounds: a message is 16 to 65,535 bytes by
//! construction; a length under 16 is a corrupt stream. Nothing is buffered
//! but the first four header bytes.

use super::framed::{Framed, Step};
use super::{Progress, RecordError};

/// Length of the IPFIX message header.
pub const IPFIX_HEADER_LEN: usize = 16;

/// Where an IPFIX stream stands.
#[derive(Clone, Debug, Default)]
pub(super) struct Ipfix {
    /// Version and length (the first four header bytes), then the rest of
    /// the message.
    framed: Framed<4>,
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
            match self.framed.step(data, &mut pos) {
                Step::Body { ended: true, .. } => p.boundary(base + pos as u64, true),
                Step::Body { .. } | Step::Partial => {}
                Step::Head(h) => {
                    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
                    if len < IPFIX_HEADER_LEN {
                        return Err(RecordError::IpfixTooShort(len));
                    }
                    self.framed.body(len - 4);
                }
            }
        }
        Ok(())
    }
}
