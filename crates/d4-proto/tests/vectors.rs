#![allow(clippy::unwrap_used)]
//! Conformance against the streams written by the reference C client
//! (`../shared/vectors`): every stream decodes and verifies; frozen and edge
//! streams re-encode byte for byte from their inputs.

use std::path::PathBuf;

use d4_proto::{key_from_file_bytes, Decoder, FrameEncoder, Signer, HEADER_LEN};
use serde_json::Value;

fn shared() -> Option<PathBuf> {
    d4_packet::testdata::shared("vectors/vectors.json")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Option<(PathBuf, Vec<Value>)> {
    let root = shared()?.join("vectors");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(root.join("vectors.json")).unwrap()).unwrap();
    let v = doc["vectors"].as_array().unwrap().clone();
    assert!(v.len() >= 30, "expected the full vector set");
    Some((root, v))
}

#[test]
fn every_stream_decodes_and_verifies_as_documented() {
    let Some((root, vectors)) = vectors() else {
        return;
    };
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let cfg = &v["config"];
        let key = key_from_file_bytes(&hex(cfg["key_file_hex"].as_str().unwrap()));
        assert_eq!(
            key,
            cfg["key_effective"].as_str().unwrap().as_bytes(),
            "{id}"
        );
        let signer = Signer::new(&key);
        let wire = std::fs::read(root.join(v["output"].as_str().unwrap())).unwrap();
        // Feed in awkward splits: 1, 7, 61, 62, 63 ... bytes.
        let mut dec = Decoder::new(1_000_000);
        let mut frames = Vec::new();
        let mut off = 0;
        let mut step = 1;
        while off < wire.len() {
            let end = (off + step).min(wire.len());
            dec.push(&wire[off..end]);
            off = end;
            step = step * 3 % 97 + 1;
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert!(!dec.has_partial(), "{id}: trailing bytes");
        let packets = v["packets"].as_array().unwrap();
        assert_eq!(frames.len(), packets.len(), "{id}");
        let mut payload = Vec::new();
        for (f, p) in frames.iter().zip(packets) {
            assert_eq!(f.header.version as u64, p["version"].as_u64().unwrap());
            assert_eq!(f.header.ty as u64, p["type"].as_u64().unwrap());
            assert_eq!(f.header.uuid.to_string(), p["uuid"].as_str().unwrap());
            assert_eq!(f.header.timestamp, p["timestamp"].as_u64().unwrap());
            assert_eq!(f.header.size as u64, p["size"].as_u64().unwrap());
            assert_eq!(f.header.hmac.to_vec(), hex(p["hmac"].as_str().unwrap()));
            assert_eq!(
                signer.verify(&f.header_bytes, &f.payload),
                p["hmac_ok"].as_bool().unwrap(),
                "{id}"
            );
            payload.extend_from_slice(&f.payload);
        }
        let input = std::fs::read(root.join(v["input"].as_str().unwrap())).unwrap();
        assert_eq!(payload, input, "{id}: payloads concatenate to the input");
        // The reference ends every stream with one empty frame.
        assert_eq!(frames.last().unwrap().header.size, 0, "{id}");
    }
}

#[test]
fn frozen_and_edge_streams_reencode_byte_for_byte() {
    let Some((root, vectors)) = vectors() else {
        return;
    };
    let mut checked = 0;
    for v in vectors {
        if v["timestamps"] != "frozen" {
            continue;
        }
        let id = v["id"].as_str().unwrap();
        let cfg = &v["config"];
        let key = key_from_file_bytes(&hex(cfg["key_file_hex"].as_str().unwrap()));
        let uuid = uuid::Uuid::parse_str(cfg["uuid"].as_str().unwrap()).unwrap();
        let ty = cfg["type"].as_u64().unwrap() as u8;
        let snaplen = cfg["snaplen"].as_u64().unwrap() as usize;
        let enc = FrameEncoder::new(Signer::new(&key), 1, ty, uuid);
        let input = std::fs::read(root.join(v["input"].as_str().unwrap())).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(snaplen) {
            enc.encode_into(1_704_067_200, chunk, &mut out);
        }
        enc.encode_into(1_704_067_200, b"", &mut out);
        let want = std::fs::read(root.join(v["output"].as_str().unwrap())).unwrap();
        assert_eq!(out.len(), want.len(), "{id}");
        assert!(out == want, "{id}: bytes differ");
        assert_eq!(out[..HEADER_LEN], want[..HEADER_LEN]);
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} frozen/edge vectors");
}
