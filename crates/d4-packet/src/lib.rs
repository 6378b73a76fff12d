//! `d4-packet`: capture formats as D4 carries them — record boundaries in
//! streams, capture files, DNS messages, IP flows — shared by the sensor, the
//! server and every analyzer.
//!
//! # Layout
//!
//! - [`records`]: where whole records end in a stream (pcap, pcapng, IPFIX,
//!   lines, type 4 pcap-or-text), in any split, with one set of bounds:
//!   [`records::Tracker`], and on it [`records::Cutter`] (the server writes
//!   whole records) and [`records::Resumption`] (the sensor restarts on a
//!   boundary). Crash recovery and the pcap worker use the tracker too.
//! - [`pcap`]: the pcap magic numbers and global header.
//! - [`gz`]: open a file that may be gzip-compressed, compress a file.
//! - [`capture`]: reading pcap and pcapng files as a stream of packets.
//! - [`decode`]: the TCP facts of a frame (addresses, ports, flags, TTL);
//!   the IP layer (addresses, protocol, IPv4 fragment fields, payload), UDP
//!   and TCP segments.
//! - [`dns`]: a zero-copy, bounded DNS message walker (records with the
//!   byte range of their rdata), strict or lax (a cut message read as far
//!   as it goes); [`dns::transport`], the DNS messages of captured frames
//!   (UDP and TCP port 53, reassembled); [`dns::text`], mnemonics and rdata
//!   in presentation form.
//! - [`flow`]: IPv4 defragmentation and TCP reassembly (contiguous bytes per
//!   direction, out-of-order and retransmitted segments handled), bounded
//!   and port-agnostic, for every analyzer that reads flows.
//! - [`pace`]: replay at a speed — a [`pace::Pacer`] waits until each
//!   packet's timestamp is due (`d4 client`'s pcap source, `d4 dns`).
//! - [`anon`]: address pseudonymisation (Crypto-PAn, `--pnat` rules).
//! - [`rewrite`]: rewriting the addresses inside a captured frame with its
//!   checksums kept correct.
//! - [`write`](mod@write): packets from any input written as one pcap stream.

pub mod anon;
pub mod capture;
pub mod decode;
pub mod dns;
pub mod flow;
pub mod gz;
pub mod inputs;
pub mod pace;
pub mod pcap;
pub mod records;
pub mod rewrite;
#[doc(hidden)]
pub mod testdata;
pub mod write;

pub use pcap::{GlobalHeader, PcapError, MAX_RECORD_LEN};
pub use records::{Format, RecordError, Tracker};
