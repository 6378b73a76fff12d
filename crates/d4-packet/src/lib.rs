//! `d4-packet`: capture formats as D4 carries them — a streaming pcap
//! validator that cuts a byte stream on record boundaries, and gzip helpers.
//!
//! # Layout
//!
//! - [`pcap`]: [`PcapSplitter`] checks a libpcap stream's global header and
//!   returns only whole records, however the bytes were split in transit.
//!   Record lengths are bounded before anything is buffered for them.
//!   [`PcapScanner`] finds the same record boundaries without copying; the
//!   sensor and the server use it (the splitter is its test oracle).
//! - [`gz`]: open a file that may be gzip-compressed, compress a file.
//! - [`capture`]: reading pcap and pcapng files as a stream of packets.
//! - [`decode`]: the TCP facts of a frame (addresses, ports, flags, TTL);
//!   the IP layer (addresses, protocol, IPv4 fragment fields, payload), UDP
//!   and TCP segments.
//! - [`dns`]: a zero-copy, bounded DNS message walker (records with the
//!   byte range of their rdata).
//! - [`anon`]: address pseudonymisation (Crypto-PAn, `--pnat` rules).
//! - [`rewrite`]: rewriting the addresses inside a captured frame with its
//!   checksums kept correct.
//! - [`write`]: packets from any input written as one pcap stream.

pub mod anon;
pub mod capture;
pub mod decode;
pub mod dns;
pub mod gz;
pub mod pcap;
pub mod rewrite;
pub mod write;

pub use pcap::{GlobalHeader, PcapError, PcapScanner, PcapSplitter, Scan, MAX_RECORD_LEN};
