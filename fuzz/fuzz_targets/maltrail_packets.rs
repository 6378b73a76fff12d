//! `d4 maltrail match`'s matcher on arbitrary TCP and UDP segments of a
//! few flows (HTTP on port 80, DNS on port 53, both directions, any
//! sequence numbers, SYN/FIN/RST, IPv4 fragments): no panic, and every
//! event names a trail, a kind and a trail's info and reference.
#![no_main]

use d4_analyzers::maltrail::{Matcher, Trails};
use libfuzzer_sys::fuzz_target;

const TRAILS: &str = "evil.example,malware,x\n/gate.php,c2,x\nurl.example/a,c2,x\n10.0.0.0/30,net,x\n10.0.0.9,ip,x\n10.0.0.2:80,port,x\n";

/// A raw-IP (link type 101) IPv4 frame: TCP (or UDP) between 10.0.0.1 and
/// 10.0.0.2, ports 40000 and `port`.
fn frame(c: u8, seq: u32, data: &[u8]) -> Vec<u8> {
    let port: u16 = if c & 0x10 != 0 { 53 } else { 80 };
    let (sp, dp) = if c & 0x80 != 0 { (40000, port) } else { (port, 40000) };
    let (src, dst) = if c & 0x80 != 0 {
        ([10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1])
    };
    let udp = c & 0x08 != 0;
    let l4 = if udp { 8 } else { 20 };
    let total = 20 + l4 + data.len();
    // A fragment now and then: more-fragments set, or an offset.
    let frag: u16 = match c & 0x07 {
        6 => 0x2000,
        7 => (seq & 0x1fff) as u16,
        _ => 0,
    };
    let mut f = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1];
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, if udp { 17 } else { 6 }, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&u16::to_be_bytes(sp));
    f.extend_from_slice(&u16::to_be_bytes(dp));
    if udp {
        f.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    } else {
        let flags = match c & 0x60 {
            0x20 => 0x02,
            0x40 => 0x11,
            0x60 => 0x04,
            _ => 0x18,
        };
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    }
    f.extend_from_slice(data);
    f
}

fuzz_target!(|data: &[u8]| {
    let mut trails = Trails::new();
    trails
        .load(TRAILS.as_bytes(), |b| panic!("{b:?}"))
        .unwrap_or_default();
    let mut m = Matcher::new(trails, 0);
    let mut events = 0u64;
    // Pieces: [control][seq hi][seq lo][len] then len bytes.
    let mut rest = data;
    let mut t = 1_800_000_000u64;
    while rest.len() >= 4 {
        let (c, seq, len) = (
            rest[0],
            u32::from(u16::from_be_bytes([rest[1], rest[2]])),
            usize::from(rest[3]),
        );
        let body = &rest[4..];
        let n = len.min(body.len());
        let f = frame(c, seq, &body[..n]);
        m.frame(101, t, 0, &f, &mut |e| {
            events += 1;
            assert!(!e.trail.is_empty());
            assert!(["IP", "IPORT", "DNS", "URL"].contains(&e.kind));
            assert!(e.info.len() <= 7 && e.reference == "x", "{e:?}");
        });
        t += u64::from(c & 0x03) * 100;
        rest = &body[n..];
    }
    assert_eq!(m.stats().events, events);
});
