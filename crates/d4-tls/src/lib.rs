//! `d4-tls`: passive SSL — TLS handshakes seen in captures turned into
//! fingerprints (JA3, JA3S, JA4), SNI, ALPN and certificates; the `ja3-jl`
//! JSON lines the D4 TLS sensor sends; a store of sessions, certificates and
//! fingerprints; and an HTTP lookup service over it.
//!
//! # Layout
//!
//! - [`record`]: the `ja3-jl` record (one JSON line per TLS session), as the
//!   reference sensor writes it, plus our extra keys.
//! - [`fingerprint`]: captures → TCP streams (`d4_packet::flow`) → TLS
//!   handshakes → records (`d4 tls fingerprint`).
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
pub mod ingest;
pub mod lookup;
pub mod record;
pub mod serve;
pub mod store;

pub use cli::{run, TlsCmd};
