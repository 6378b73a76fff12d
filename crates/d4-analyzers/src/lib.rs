//! `d4-analyzers`: the analyzers of spec 03/04 as libraries (bytes and
//! packets in, findings out); the `d4` CLI gives each a thin command.
//!
//! # Layout
//!
//! - [`backscatter`]: DDoS backscatter — TCP answers from hosts that never
//!   sent a SYN are the replies of a spoofed-source flood's victims.
//! - [`victims`]: per-victim summaries of backscatter over time windows.
//! - [`maltrail`]: Maltrail trails (IP, IP:port, domain, URL) applied to
//!   packets, events as Maltrail's sensor logs them.

pub mod backscatter;
pub mod maltrail;
pub mod victims;
