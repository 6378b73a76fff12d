//! Building frames for one sensor stream.

use uuid::Uuid;

use crate::header::{Header, HEADER_LEN, HMAC_LEN, HMAC_OFFSET};
use crate::hmac::Signer;

/// Frames payloads for one (version, type, uuid, key) stream.
#[derive(Clone, Debug)]
pub struct FrameEncoder {
    /// Keyed HMAC state shared by every frame of the stream.
    signer: Signer,
    /// Header bytes 0..26 (version, type, uuid; timestamp filled per frame).
    template: [u8; HEADER_LEN],
}

impl FrameEncoder {
    /// An encoder for frames of type `ty` from sensor `uuid`.
    pub fn new(signer: Signer, version: u8, ty: u8, uuid: Uuid) -> FrameEncoder {
        let template = Header {
            version,
            ty,
            uuid,
            timestamp: 0,
            hmac: [0; HMAC_LEN],
            size: 0,
        }
        .to_bytes();
        FrameEncoder { signer, template }
    }

    /// The same stream with another type (for the 2 → 254 switch).
    pub fn with_type(&self, ty: u8) -> FrameEncoder {
        let mut e = self.clone();
        e.template[1] = ty;
        e
    }

    /// The signed header for `payload` at `timestamp`. The payload is not copied:
    /// write the header, then the payload (vectored writes welcome).
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` bytes (callers cut at snaplen).
    pub fn header(&self, timestamp: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
        let size = u32::try_from(payload.len()).expect("payload longer than u32::MAX");
        let mut h = self.template;
        h[18..26].copy_from_slice(&timestamp.to_le_bytes());
        h[58..62].copy_from_slice(&size.to_le_bytes());
        let tag = self.signer.sign(&h, payload);
        h[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].copy_from_slice(&tag);
        h
    }

    /// Appends a whole frame (header, then payload) to `out`.
    pub fn encode_into(&self, timestamp: u64, payload: &[u8], out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + payload.len());
        out.extend_from_slice(&self.header(timestamp, payload));
        out.extend_from_slice(payload);
    }
}
