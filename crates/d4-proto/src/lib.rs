//! `d4-proto`: the D4 encapsulation protocol, version 1 — and nothing else.
//!
//! This crate turns bytes into D4 frames and frames into bytes. It performs no
//! I/O and reads no clock: timestamps are passed in, buffers are handed over
//! by the caller. The server, the sensor and the fuzzer all drive the same code.
//!
//! # Layout
//!
//! - [`header`]: the 62-byte header (`version`, `type`, `uuid`, little-endian
//!   `timestamp`, 32-byte `hmac`, little-endian `size`) and its codec.
//! - [`hmac`]: HMAC-SHA-256 over the frame with the hmac field zeroed (by
//!   offset), constant-time verification, and the key-file rule.
//! - [`encoder`]: builds frames for one sensor stream (the sensor side).
//! - [`decoder`]: a sans-IO reassembler: bytes in, in any split; frames or
//!   typed errors out. The untrusted `size` is bounded before any payload is
//!   buffered.
//! - [`types`]: the D4 type numbers and their names.
//! - [`meta`]: the type-2 meta-header that announces a type-254 stream.
//! - [`sensor_uuid`]: UUID rules (version 4 only, keyed as 32 lower-case hex).
//!
//! # Example
//!
//! ```
//! use d4_proto::{Decoder, FrameEncoder, Signer};
//! let uuid = uuid::Uuid::parse_str("9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01").unwrap();
//! let enc = FrameEncoder::new(Signer::new(b"private key to change"), 1, 3, uuid);
//! let mut wire = Vec::new();
//! enc.encode_into(1704067200, b"hello\n", &mut wire);
//!
//! let mut dec = Decoder::new(1_000_000);
//! dec.push(&wire[..10]);
//! assert!(dec.next_frame().unwrap().is_none()); // incomplete: wait for more
//! dec.push(&wire[10..]);
//! let frame = dec.next_frame().unwrap().unwrap();
//! assert_eq!(&frame.payload[..], b"hello\n");
//! assert!(Signer::new(b"private key to change").verify(&frame.header_bytes, &frame.payload));
//! ```

pub mod decoder;
pub mod encoder;
pub mod header;
pub mod hmac;
pub mod meta;
pub mod sensor_uuid;
pub mod types;

pub use decoder::{DecodeError, Decoder, Frame};
pub use encoder::FrameEncoder;
pub use header::{Header, HEADER_LEN};
pub use hmac::{key_file_oddities, key_from_file_bytes, Signer, DEFAULT_KEY};
pub use meta::{MetaError, MetaHeader, MetaHeaderBuilder};
pub use sensor_uuid::{is_v4, uuid_key, UuidError};
pub use types::D4Type;

/// The only protocol version in existence.
pub const VERSION: u8 = 1;

/// The reference server's payload size limit (it disconnects above it).
pub const DEFAULT_MAX_SIZE: u32 = 1_000_000;

/// The largest snaplen the reference C client accepts.
pub const MAX_SNAPLEN: usize = 65_535;

/// The default snaplen of d4-goclient (and ours).
pub const DEFAULT_SNAPLEN: usize = 4096;
