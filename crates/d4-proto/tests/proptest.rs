#![allow(clippy::unwrap_used)]
//! Property tests: encode → decode round trips in any split, and the decoder
//! never panics or over-allocates on arbitrary bytes.

use d4_proto::{Decoder, FrameEncoder, Signer, HEADER_LEN};
use proptest::prelude::*;
use uuid::Uuid;

proptest! {
    #[test]
    fn round_trip_in_any_split(
        key in proptest::collection::vec(any::<u8>(), 0..100),
        ty in any::<u8>(),
        uuid in any::<[u8; 16]>(),
        ts in any::<u64>(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        split in 1usize..200,
    ) {
        let signer = Signer::new(&key);
        let enc = FrameEncoder::new(signer.clone(), 1, ty, Uuid::from_bytes(uuid));
        let mut wire = Vec::new();
        for p in &payloads {
            enc.encode_into(ts, p, &mut wire);
        }
        let mut dec = Decoder::new(1_000_000);
        let mut got = Vec::new();
        for chunk in wire.chunks(split) {
            dec.push(chunk);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got.len(), payloads.len());
        for (f, p) in got.iter().zip(&payloads) {
            prop_assert_eq!(&f.payload[..], &p[..]);
            prop_assert_eq!(f.header.ty, ty);
            prop_assert_eq!(f.header.timestamp, ts);
            prop_assert!(signer.verify(&f.header_bytes, &f.payload));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        max in 0u32..2000,
    ) {
        let mut dec = Decoder::new(max);
        for chunk in bytes.chunks(37) {
            dec.push(chunk);
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => prop_assert!(f.payload.len() <= max as usize),
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            prop_assert!(dec.buffered() <= HEADER_LEN + max as usize + 37);
        }
    }
}
