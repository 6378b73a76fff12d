//! `d4-dns`: the real-time DNS monitor (the RaTA DNS chain of the D4
//! seeds — Speedy, Fievel, Gopher/Jerry, Remy — as one command family):
//! DNS messages from captures, serialized; windowed reducers per monitor;
//! an aggregator over several monitors with a live dashboard.
//!
//! # Layout
//!
//! - [`serialize`]: captures → one JSON message per DNS packet, length
//!   prefixed or NDJSON (`d4 dns serialize`).
//! - [`reduce`]: messages → windows of W messages and/or T seconds of
//!   packet time → the reducers' outputs (`d4 dns reduce`).
//! - [`aggregate`]: reducer outputs of several monitors → moving spans,
//!   JSON and a live page (`d4 dns aggregate`).
//! - [`cli`]: the `d4 dns` subcommands ([`DnsCmd`], [`run`]).

pub mod aggregate;
pub mod cli;
pub mod reduce;
pub mod serialize;

pub use cli::{run, DnsCmd};
