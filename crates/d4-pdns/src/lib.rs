//! `d4-pdns`: passive DNS — turn DNS traffic (captures, or gamelinux
//! passivedns lines from sensors) into a store of (rrname, rrtype, rdata)
//! with first/last seen and counts, and answer lookups in the Passive DNS
//! Common Output Format.
//!
//! # Layout
//!
//! - [`record`]: type/rcode mnemonics, rdata presentation, normalisation,
//!   the passivedns line format.
//! - [`extract`]: captured packets → records (`d4 pdns extract`), IPv4
//!   fragments and TCP streams put back by `d4_packet::flow`.
//! - [`cof`]: the Common Output Format (NDJSON) records.
//! - [`store`]: the embedded store (redb): upserts, indexes by name,
//!   name suffix and rdata, expiry.
//! - [`ingest`]: sources (files, stdin, D4 queues) → store (`d4 pdns ingest`).
//! - [`serve`]: the HTTP lookup server (`d4 pdns serve`).
//! - [`queue`]: popping a D4 server's analyzer queue over its API.
//! - [`cli`]: the `d4 pdns` subcommands ([`PdnsCmd`], [`run`]).

pub mod cli;
pub mod cof;
pub mod extract;
pub mod ingest;
pub mod queue;
pub mod record;
pub mod serve;
pub mod store;

pub use cli::{run, PdnsCmd};
