//! IP flows, bounded: IPv4 fragments put back into datagrams ([`defrag`])
//! and TCP segments put back into contiguous byte streams, one per
//! direction ([`tcp`]). Every analyzer that reads beyond one packet (passive
//! DNS over TCP, TLS fingerprinting, the DNS monitor) uses these.
//!
//! Neither knows about ports or applications: the caller decides which
//! packets to hand in (all, or the flows it wants) and what to do with the
//! bytes. Both hold at most a configured number of entries (the stalest is
//! dropped to make room) and a bounded number of bytes and pieces per
//! entry, so hostile traffic costs bounded memory; what is dropped is
//! counted. Time is passed in (seconds), never read from the clock.

pub mod defrag;
pub mod tcp;

pub use defrag::{Defrag, DefragStats, FragKey};
pub use tcp::{FlowKey, TcpStats, TcpStreams};
