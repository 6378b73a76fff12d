//! The D4 frame decoder on arbitrary bytes, in arbitrary splits: no panic,
//! memory bounded by the size limit, and every frame it returns re-encodes
//! to the bytes it came from.
#![no_main]

use d4_proto::{Decoder, Signer, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let max = u32::from(data[0]) * 64;
    let split = usize::from(data.get(1).copied().unwrap_or(1)).max(1);
    let signer = Signer::new(b"private key to change");
    let mut dec = Decoder::new(max);
    let mut consumed = Vec::new();
    for chunk in data[2.min(data.len())..].chunks(split) {
        dec.push(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= max as usize);
                    assert_eq!(f.header.to_bytes(), f.header_bytes);
                    let _ = signer.verify(&f.header_bytes, &f.payload);
                    consumed.extend_from_slice(&f.header_bytes);
                    consumed.extend_from_slice(&f.payload);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(dec.buffered() <= HEADER_LEN + max as usize + split);
    }
    let input = &data[2.min(data.len())..];
    assert_eq!(&input[..consumed.len()], &consumed[..]);
});
