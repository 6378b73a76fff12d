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
//! - [`serve`]: the HTTP lookup server (`d4 pdns serve`); its rate limiter,
//!   cursors and NDJSON are `d4_api::lookup`'s.
//! - [`cli`]: the `d4 pdns` subcommands ([`PdnsCmd`], [`run`]).
//!
//! # Data flow
//!
//! `extract::Extractor` takes packets (link layer → IP → IPv4 fragments
//! through `d4_packet::flow::Defrag` → UDP, or TCP through
//! `d4_packet::flow::TcpStreams`, both on port 53; the 2-byte-framed DNS
//! messages of a TCP stream are read here) and calls back with one borrowed
//! `record::Rec` per answer (or per error response). `ingest::Ingester`
//! turns passivedns lines, COF lines and extracted records into normalised
//! [`record::Record`]s, merges them in a `store::Pending` map per record, and
//! applies it to `store::Store` in one redb write transaction (a point read,
//! merge and write per record, key order). The store keys records by
//! reversed name so that a name and a `*.suffix` are both prefix scans, with
//! a reverse index by rdata. `serve` is axum on a multi-thread tokio runtime;
//! lookups run in `spawn_blocking` (redb read transactions), in the store's
//! key order, and page with an opaque cursor: a page examines at most its
//! limit plus `serve::MAX_SKIP` entries. With `--ingest-queue` a thread
//! consumes the D4 server's queues over its management API (`d4_api::queue`) and is
//! the store's single writer. The binary owns the signals: long-running
//! subcommands get a [`cli::Shutdown`] and stop after the batch in hand.

pub mod cli;
pub mod cof;
pub mod extract;
pub mod ingest;
pub mod passivedns;
pub mod record;
pub mod serve;
pub mod store;

pub use cli::{run, PdnsCmd};
