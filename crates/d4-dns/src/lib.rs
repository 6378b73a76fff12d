//! `d4-dns`: the real-time DNS monitor (the RaTA DNS chain of the D4
//! seeds — Speedy, Fievel, Gopher/Jerry, Remy — as one command family):
//! DNS messages from captures, serialized; windowed reducers per monitor;
//! an aggregator over several monitors with a live dashboard.
//!
//! # Layout
//!
//! - [`message`]: the message model — one DNS packet as the serializer
//!   writes it and the reducers read it: decoded from the wire
//!   (`d4_packet::dns`), written as JSON, read back.
//! - [`codec`]: the framing of a message stream: length-prefixed JSON or
//!   NDJSON, detected, read with bounds.
//! - [`input`]: captures in (through `d4_api::captures` and
//!   `d4_packet::dns::transport`), or serialized messages; pseudonymisation and replay pacing.
//! - [`serialize`]: captures → one JSON message per DNS packet, length
//!   prefixed or NDJSON, encoded by a pool of workers (`d4 dns serialize`).
//! - [`reduce`]: messages → windows of W messages and/or T seconds of
//!   packet time → the reducers' outputs on stdout, files, Redis channels,
//!   a D4 server (`d4 dns reduce`).
//! - [`aggregate`]: reducer outputs of several monitors → moving spans,
//!   JSON and a live page (`d4 dns aggregate`).
//! - [`cli`]: the `d4 dns` subcommands ([`DnsCmd`], [`run`]).

pub mod aggregate;
pub mod cli;
pub mod codec;
pub mod input;
pub mod message;
pub mod reduce;
pub mod serialize;

pub use cli::{run, DnsCmd};
