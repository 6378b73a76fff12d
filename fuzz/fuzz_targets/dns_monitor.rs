//! `d4 dns` on arbitrary bytes: a DNS message decoded (strict, every
//! section), written as the serializer's JSON and read back as the
//! reducers read it, with the same questions; and the same bytes as a
//! serialized stream (length-prefixed or NDJSON, told by the first byte):
//! frames read with bounds, each message parsed or refused, no panic.
#![no_main]

use d4_dns::codec::FrameReader;
use d4_dns::message::{Message, Sections};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut m = Message::new();
    let _ = m.decode(data, Sections::ALL);
    let mut json = Vec::new();
    m.write_json(&mut json);
    let mut back = Message::new();
    back.read_json(&json).expect("the serializer's JSON reads back");
    assert!(m.queries().eq(back.queries()));
    assert_eq!(m.is_response(), back.is_response());
    assert_eq!(m.rcode(), back.rcode());

    let mut frames = FrameReader::new(data);
    let mut buf = Vec::new();
    while let Ok(true) = frames.next(&mut buf) {
        let _ = back.read_json(&buf);
    }
});
