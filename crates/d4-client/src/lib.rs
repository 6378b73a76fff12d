//! `d4-client`: the D4 sensor. It reads a byte stream (stdin or a file),
//! frames it as D4 and sends it to stdout or to a D4 server over TLS.
//!
//! # Layout
//!
//! - [`config`]: the reference configuration directory (one file per setting,
//!   as the C client and d4-goclient read it) or a TOML file; UUID creation.
//! - [`transport`]: destinations — stdout, or TLS to a server verified against
//!   `rootCA.crt` — and reconnection with capped exponential backoff.
//! - [`run`]: the send loop: read a chunk of at most `snaplen` bytes, frame,
//!   write; the frame in flight when a connection drops is sent again after
//!   reconnecting (with the meta-header first, for type 2/254 streams).

pub mod config;
pub mod run;
pub mod transport;

pub use config::{ClientConfig, Destination, Source};
pub use run::{run, RunStats};
