//! `d4-client`: the sending side of a D4 sensor — frames a byte stream as
//! D4 and delivers it to a D4 server over TLS (or to stdout), across
//! dropped connections, restarting on a record boundary.
//!
//! [`run()`] takes a [`ClientConfig`] and any reader: `d4 client` gives it
//! stdin or the configured file, `d4 forward` the stream it makes of a
//! queue's items. It returns once the input has ended and, for a server,
//! the server has confirmed the end of the session (TLS close_notify;
//! `confirm` off: once it is sent).
//!
//! # Layout
//!
//! - [`config`]: the reference configuration directory (one file per setting,
//!   as the C client and d4-goclient read it) or a TOML file; the sensor
//!   UUID, created when missing.
//! - [`transport`]: destinations — stdout, or TLS to a server verified against
//!   `rootCA.crt` (`--insecure`: not verified) — and the capped exponential
//!   backoff with jitter between connection attempts.
//! - [`run`](mod@run): the send loop: reads up to 256 KiB at a time, cuts it into
//!   HMAC-signed frames of at most `snaplen` bytes (crate `d4-proto`) and
//!   flushes them in batches; a reader thread sends an empty frame after
//!   `keepalive_secs` of quiet input. The last flushed batches are kept as a
//!   replay window: after a drop it reconnects, sends the meta-header again
//!   (types 2/254), the bytes that restart the stream on a record boundary
//!   (pcap, pcapng, IPFIX, lines: `d4_packet::records::Resumption`, on the
//!   tracker the server cuts its files with), then the window.
//! - `echo`: warns once when a type-1 capture holds the sensor's own
//!   connection to its server (a capture that feeds itself).
//! - [`spool`]: the optional on-disk spool of what the server has not
//!   confirmed, bounded, sent first by the next run.
//! - [`folder`]: the `folder` source: closed files of a folder, each sent
//!   once (a journal of what the server confirmed), one session a batch.
//! - [`replay`]: the `pcap` source at a speed: a capture (pcap or pcapng)
//!   as a pcap stream paced by its timestamps.
//!
//! The `d4server` source (a Redis list of another server) lives in the
//! `d4` binary, which has the Redis client.

pub mod config;
mod echo;
pub mod folder;
pub mod replay;
pub mod run;
pub mod spool;
pub mod transport;

pub use config::{ClientConfig, Destination, FolderConfig, FolderDone, RedisAddr, Source};
pub use run::{run, run_until, RunStats};
