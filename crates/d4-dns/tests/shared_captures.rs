//! The message model on the shared DNS captures, through the library:
//! every message the transport finds walks cleanly, and what is written
//! as JSON reads back to the same time, addresses, header and questions.

#![allow(clippy::unwrap_used)]

use d4_dns::message::{Message, Sections};
use d4_packet::capture::{CaptureReader, Packet};
use d4_packet::dns::transport::{Limits, Messages};

#[test]
fn every_message_walks_and_reads_back() {
    let Some(root) = d4_packet::testdata::shared("data/pcap") else {
        eprintln!("SKIPPED: ../shared/data/pcap not found");
        return;
    };
    let dir = root.join("data/pcap/dns");
    let mut total = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let f = std::fs::File::open(&path).unwrap();
        let mut r = CaptureReader::new(std::io::BufReader::new(f)).unwrap();
        let nanos = r.nanos();
        let mut t = Messages::new(Limits::default());
        let mut p = Packet::with_capacity();
        let (mut m, mut back, mut json) = (Message::new(), Message::new(), Vec::new());
        while r.next_into(&mut p).unwrap() {
            t.packet(&p, nanos, &mut |at, wire| {
                m.decode(wire, Sections::ALL)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                m.time_us = at.sec as i64 * 1_000_000 + i64::from(at.usec);
                (m.source, m.dest) = (at.src, at.dst);
                json.clear();
                m.write_json(&mut json);
                let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
                assert!(v["additionals"].is_array());
                back.read_json(&json).unwrap();
                assert_eq!(
                    (back.time_us, back.source, back.dest, back.id, back.flags),
                    (m.time_us, m.source, m.dest, m.id, m.flags)
                );
                assert!(back.queries().eq(m.queries()));
                total += 1;
            });
        }
    }
    // 82 + 82 + 82 + 14 + 42 + 85 (see the integration test for how they
    // were counted).
    assert_eq!(total, 387);
}
