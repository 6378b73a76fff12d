//! The libpcap 2.4 file format: its magic numbers, its global header and
//! the bound on a record's length. Record boundaries in a pcap stream are
//! found by [`crate::records`].

/// Length of the pcap global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Length of a pcap record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest record accepted: libpcap's own MAXIMUM_SNAPLEN (262,144 bytes).
pub const MAX_RECORD_LEN: u32 = 262_144;

/// The global header of a pcap stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalHeader {
    /// The 24 bytes as received (written unchanged at the top of every file).
    pub raw: [u8; GLOBAL_HEADER_LEN],
    /// Whether multi-byte fields are big-endian.
    pub big_endian: bool,
    /// Whether timestamps are in nanoseconds (magic `a1b23c4d`).
    pub nanos: bool,
    /// The capture snaplen.
    pub snaplen: u32,
    /// The link type.
    pub linktype: u32,
}

impl GlobalHeader {
    /// Parses and validates a global header.
    pub fn parse(raw: &[u8; GLOBAL_HEADER_LEN]) -> Result<GlobalHeader, PcapError> {
        let (big_endian, nanos) = check_magic([raw[0], raw[1], raw[2], raw[3]])?;
        let u16_at = |o: usize| {
            let b = [raw[o], raw[o + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |o: usize| read_u32(&raw[o..o + 4], big_endian);
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(PcapError::BadVersion(major, minor));
        }
        Ok(GlobalHeader {
            raw: *raw,
            big_endian,
            nanos,
            snaplen: u32_at(16),
            linktype: u32_at(20),
        })
    }
}

/// The pcap magic number (microsecond timestamps), as a number: the file
/// starts with it in the writer's byte order.
pub const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
/// The pcap magic number of nanosecond-resolution files.
pub const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// Recognises a pcap magic number: (big-endian, nanosecond timestamps).
pub fn check_magic(magic: [u8; 4]) -> Result<(bool, bool), PcapError> {
    let be = u32::from_be_bytes(magic);
    let le = u32::from_le_bytes(magic);
    match (be, le) {
        (_, PCAP_MAGIC) => Ok((false, false)),
        (PCAP_MAGIC, _) => Ok((true, false)),
        (_, PCAP_MAGIC_NANOS) => Ok((false, true)),
        (PCAP_MAGIC_NANOS, _) => Ok((true, true)),
        _ if magic == crate::records::pcapng::SHB_MAGIC => Err(PcapError::Pcapng),
        _ => Err(PcapError::BadMagic(be)),
    }
}

/// Whether the first four bytes of a stream are a pcap magic number.
pub fn is_pcap_magic(magic: [u8; 4]) -> bool {
    check_magic(magic).is_ok()
}

/// A u32 in the given byte order from the first 4 bytes of `b`.
pub(crate) fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Why a byte stream is not a pcap stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    /// The first four bytes are no pcap magic number.
    #[error(
        "not a pcap stream (magic 0x{0:08x}); type 1 carries libpcap captures, e.g. `tcpdump -w -`"
    )]
    BadMagic(u32),
    /// A pcapng stream where pcap was expected.
    #[error(
        "this is a pcapng stream: send it as D4 type 5, or capture with `tcpdump -w -` (pcap)"
    )]
    Pcapng,
    /// A pcap version other than 2.x.
    #[error("unsupported pcap version {0}.{1}")]
    BadVersion(u16, u16),
    /// A record header announcing an impossible length.
    #[error(
        "record {index} announces {len} bytes (more than {MAX_RECORD_LEN}): the stream is corrupt"
    )]
    RecordTooLong {
        /// 0-based record index in the stream.
        index: u64,
        /// The announced captured length.
        len: u32,
    },
}
