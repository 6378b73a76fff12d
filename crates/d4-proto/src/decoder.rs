//! Sans-IO frame reassembly: bytes in, in any split; frames or typed errors out.

use bytes::{Buf, Bytes, BytesMut};

use crate::header::{Header, HEADER_LEN};

/// A complete frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The decoded header.
    pub header: Header,
    /// The raw header bytes, for HMAC verification.
    pub header_bytes: [u8; HEADER_LEN],
    /// The payload (`header.size` bytes), shared with the receive buffer.
    pub payload: Bytes,
}

/// Why a byte stream is not a D4 stream. After an error the decoder is
/// poisoned: the stream has lost framing and must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The announced payload is larger than the configured limit.
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    Oversized {
        /// The `size` field.
        size: u32,
        /// The limit in force.
        max: u32,
    },
    /// A previous error ended this stream.
    #[error("stream already failed: {0}")]
    Poisoned(Box<DecodeError>),
}

/// Reassembles D4 frames from a byte stream.
///
/// Memory is bounded: the buffer holds at most one incomplete frame (whose
/// `size` was checked against `max_size` as soon as its header arrived) plus
/// whatever the caller pushed in one go. Nothing is allocated from the
/// untrusted `size` field.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes received and not yet returned as frames.
    buf: BytesMut,
    /// Largest payload accepted, checked before any payload is awaited.
    max_size: u32,
    /// The error that ended the stream, returned again on every later call.
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder that refuses payloads above `max_size` bytes.
    pub fn new(max_size: u32) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            max_size,
            failed: None,
        }
    }

    /// Changes the payload limit (e.g. once the sensor is known).
    pub fn set_max_size(&mut self, max_size: u32) {
        self.max_size = max_size;
    }

    /// Appends received bytes (dropped once the stream has failed).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading into it directly (`read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Frees the receive buffer if it holds nothing (a quiet stream), so
    /// that an idle connection holds no buffer; returns whether it did. The
    /// next read makes room again.
    pub fn shrink_if_empty(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.buf = BytesMut::new();
        true
    }

    /// Bytes allocated for the receive buffer.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes buffered and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bytes buffered (an incomplete frame, after [`Decoder::next_frame`]
    /// returned `Ok(None)`).
    pub fn buffered_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether an incomplete frame is buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The header of the next frame, as soon as its 62 bytes are in (before the
    /// payload is). Lets a caller run its policy checks on a header before
    /// waiting for (and buffering) the payload.
    pub fn pending_header(&self) -> Option<Header> {
        Header::parse_prefix(&self.buf)
    }

    /// How many more bytes the next frame needs (header and payload), if known.
    pub fn missing(&self) -> usize {
        match self.pending_header() {
            None => HEADER_LEN - self.buf.len(),
            Some(h) => (HEADER_LEN + h.size as usize).saturating_sub(self.buf.len()),
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(DecodeError::Poisoned(Box::new(e.clone())));
        }
        let Some(header) = self.pending_header() else {
            return Ok(None);
        };
        if header.size > self.max_size {
            let e = DecodeError::Oversized {
                size: header.size,
                max: self.max_size,
            };
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
            return Err(e);
        }
        let total = HEADER_LEN + header.size as usize;
        if self.buf.len() < total {
            // The buffer grows with the bytes that actually arrive, not with
            // the announced size.
            return Ok(None);
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&self.buf[..HEADER_LEN]);
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(header.size as usize).freeze();
        Ok(Some(Frame {
            header,
            header_bytes,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameEncoder, Signer};
    use uuid::Uuid;

    fn wire(n: usize) -> Vec<u8> {
        let enc = FrameEncoder::new(Signer::new(b"k"), 1, 3, Uuid::from_bytes([4; 16]));
        let mut out = Vec::new();
        for i in 0..n {
            enc.encode_into(i as u64, &vec![b'x'; i * 7], &mut out);
        }
        out
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let w = wire(20);
        let mut d = Decoder::new(1_000_000);
        let mut got = Vec::new();
        for b in &w {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        let mut d2 = Decoder::new(1_000_000);
        d2.push(&w);
        let mut all = Vec::new();
        while let Some(f) = d2.next_frame().unwrap() {
            all.push(f);
        }
        assert_eq!(got.len(), 20);
        assert_eq!(got, all);
        assert!(!d.has_partial());
    }

    #[test]
    fn oversized_is_refused_before_the_payload_arrives_and_poisons() {
        let enc = FrameEncoder::new(Signer::new(b"k"), 1, 3, Uuid::from_bytes([4; 16]));
        let h = enc.header(0, &[0u8; 2000]);
        let mut d = Decoder::new(1000);
        d.push(&h);
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::Oversized {
                size: 2000,
                max: 1000
            })
        );
        assert!(matches!(d.next_frame(), Err(DecodeError::Poisoned(_))));
        assert!(d.buffered() <= 64 * 1024);
    }

    #[test]
    fn shrinks_only_when_empty() {
        let w = wire(3);
        let mut d = Decoder::new(1_000_000);
        assert_eq!(d.capacity(), 0, "nothing allocated before bytes arrive");
        d.push(&w[..w.len() - 1]);
        while d.next_frame().unwrap().is_some() {}
        assert!(!d.shrink_if_empty(), "a partial frame is kept");
        d.push(&w[w.len() - 1..]);
        assert!(d.next_frame().unwrap().is_some());
        assert!(d.shrink_if_empty());
        assert_eq!(d.capacity(), 0);
        d.push(&w);
        assert_eq!(std::iter::from_fn(|| d.next_frame().unwrap()).count(), 3);
    }

    #[test]
    fn zero_size_frame_is_legal() {
        let w = wire(1);
        let mut d = Decoder::new(0);
        d.push(&w);
        let f = d.next_frame().unwrap().unwrap();
        assert!(f.payload.is_empty());
    }
}
