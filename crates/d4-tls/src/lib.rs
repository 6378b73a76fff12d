//! `d4-tls`: passive SSL — TLS handshakes seen in captures turned into
//! fingerprints (JA3, JA3S, JA4), SNI, ALPN and certificates; the `ja3-jl`
//! JSON lines the D4 TLS sensor sends; a store of sessions, certificates and
//! fingerprints; and an HTTP lookup service over it.
//!
//! # Layout
//!
//! - [`record`]: the `ja3-jl` record (one JSON line per TLS session), as the
//!   reference sensor writes it, plus our extra keys.
//! - [`hello`]: the handshake messages fingerprints are made of
//!   (ClientHello, ServerHello, Certificate), parsed with every length
//!   checked, and the JA3, JA3S and JA4 strings.
//! - [`session`]: captured packets → TCP streams (`d4_packet::flow`) → TLS
//!   records and handshakes → one record per ClientHello
//!   ([`session::Fingerprinter`]).
//! - [`fingerprint`]: the `d4 tls fingerprint` command around it (inputs,
//!   queue, output files, statistics).
//! - [`ingest`]: `ja3-jl` queues or files → the store (`d4 tls ingest`).
//! - [`cert`]: DER certificates → their fields (x509-parser) and hashes.
//! - [`store`]: the embedded store (redb): sessions, certificates,
//!   fingerprints, and one index table of range-scannable keys.
//! - [`lookup`]: the lookups (checked input → one index range → a page).
//! - [`serve`]: the HTTP lookup service (`d4 tls serve`): JSON, NDJSON,
//!   HTML pages, OpenAPI; rate limits and cursors of `d4_api::lookup`.
//! - [`cli`]: the `d4 tls` subcommands ([`TlsCmd`], [`run`]).

pub mod cert;
pub mod cli;
pub mod fingerprint;
pub mod hello;
pub mod ingest;
pub mod lookup;
pub mod record;
pub mod serve;
pub mod session;
pub mod store;

pub use cli::{run, TlsCmd};
