//! The 62-byte D4 header and its codec.

use uuid::Uuid;

/// Length of a D4 header on the wire.
pub const HEADER_LEN: usize = 62;

/// Offset of the 32-byte HMAC field.
pub const HMAC_OFFSET: usize = 26;
/// Length of the HMAC field.
pub const HMAC_LEN: usize = 32;
/// Offset of the little-endian `size` field.
pub const SIZE_OFFSET: usize = 58;

/// A decoded D4 header. Every field is as it came off the wire: nothing here is
/// verified (see [`crate::Signer::verify`] and the server's policy checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Protocol version (1).
    pub version: u8,
    /// D4 type number (see [`crate::D4Type`]).
    pub ty: u8,
    /// Sensor UUID (raw RFC 4122 bytes on the wire).
    pub uuid: Uuid,
    /// Unix seconds at encapsulation, little-endian on the wire.
    pub timestamp: u64,
    /// HMAC-SHA-256 of the frame with this field zeroed.
    pub hmac: [u8; HMAC_LEN],
    /// Payload length, little-endian on the wire. Untrusted: bound it before use.
    pub size: u32,
}

impl Header {
    /// Decodes the fixed-size header. Infallible: every bit pattern is a header;
    /// whether it is an acceptable one is the caller's policy.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[2..18]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[18..26]);
        let mut hmac = [0u8; HMAC_LEN];
        hmac.copy_from_slice(&b[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN]);
        let mut size = [0u8; 4];
        size.copy_from_slice(&b[SIZE_OFFSET..HEADER_LEN]);
        Header {
            version: b[0],
            ty: b[1],
            uuid: Uuid::from_bytes(uuid),
            timestamp: u64::from_le_bytes(ts),
            hmac,
            size: u32::from_le_bytes(size),
        }
    }

    /// Decodes a header from the front of `b`, if at least 62 bytes are there.
    pub fn parse_prefix(b: &[u8]) -> Option<Header> {
        let fixed: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::parse(fixed))
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.version;
        b[1] = self.ty;
        b[2..18].copy_from_slice(self.uuid.as_bytes());
        b[18..26].copy_from_slice(&self.timestamp.to_le_bytes());
        b[HMAC_OFFSET..HMAC_OFFSET + HMAC_LEN].copy_from_slice(&self.hmac);
        b[SIZE_OFFSET..HEADER_LEN].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_little_endian_at_their_offsets() {
        let h = Header {
            version: 1,
            ty: 254,
            uuid: Uuid::from_bytes([7; 16]),
            timestamp: 0x0102_0304_0506_0708,
            hmac: [0xaa; 32],
            size: 0x0a0b_0c0d,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 254);
        assert_eq!(&b[18..26], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[58..62], &[0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(Header::parse(&b), h);
        assert_eq!(Header::parse_prefix(&b[..61]), None);
    }
}
