//! D4 type numbers.

/// The D4 types defined by the protocol. Unknown numbers are kept as
/// [`D4Type::Other`] so that policy (not parsing) decides about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum D4Type {
    /// 0: reserved, always rejected.
    Reserved,
    /// 1: a libpcap 2.4 stream (global header, then records).
    Pcap,
    /// 2: meta-header (JSON) announcing a type-254 stream.
    MetaHeader,
    /// 3: generic log lines.
    Log,
    /// 4: dnscap output.
    Dnscap,
    /// 5: pcapng.
    Pcapng,
    /// 6: NDJSON / JSON Lines.
    Ndjson,
    /// 7: YAF (IPFIX).
    Yaf,
    /// 8: passivedns CSV lines.
    PassiveDns,
    /// 254: the type named by the preceding meta-header.
    Extended,
    /// Any other number.
    Other(u8),
}

impl D4Type {
    /// Every defined type except the reserved 0: the default accepted set.
    pub const DEFINED: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 254];

    /// The type for a number.
    pub fn from_u8(n: u8) -> D4Type {
        match n {
            0 => D4Type::Reserved,
            1 => D4Type::Pcap,
            2 => D4Type::MetaHeader,
            3 => D4Type::Log,
            4 => D4Type::Dnscap,
            5 => D4Type::Pcapng,
            6 => D4Type::Ndjson,
            7 => D4Type::Yaf,
            8 => D4Type::PassiveDns,
            254 => D4Type::Extended,
            n => D4Type::Other(n),
        }
    }

    /// The number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            D4Type::Reserved => 0,
            D4Type::Pcap => 1,
            D4Type::MetaHeader => 2,
            D4Type::Log => 3,
            D4Type::Dnscap => 4,
            D4Type::Pcapng => 5,
            D4Type::Ndjson => 6,
            D4Type::Yaf => 7,
            D4Type::PassiveDns => 8,
            D4Type::Extended => 254,
            D4Type::Other(n) => n,
        }
    }

    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            D4Type::Reserved => "reserved",
            D4Type::Pcap => "pcap",
            D4Type::MetaHeader => "meta-header",
            D4Type::Log => "log",
            D4Type::Dnscap => "dnscap",
            D4Type::Pcapng => "pcapng",
            D4Type::Ndjson => "ndjson",
            D4Type::Yaf => "yaf",
            D4Type::PassiveDns => "passivedns",
            D4Type::Extended => "extended",
            D4Type::Other(_) => "unknown",
        }
    }
}

impl std::fmt::Display for D4Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.as_u8(), self.name())
    }
}
