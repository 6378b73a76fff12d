//! The TLS fingerprinter on arbitrary TCP segments of one connection, both
//! directions, any order and overlap: no panic, and it writes at most one
//! record per ClientHello.
#![no_main]

use d4_tls::session::{Config, Fingerprinter};
use libfuzzer_sys::fuzz_target;

/// A raw-IP (link type 101) IPv4 frame carrying one TCP segment.
fn frame(to_server: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if to_server {
        ([10, 0, 0, 1], [10, 0, 0, 2], 40000u16, 443u16)
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1], 443, 40000)
    };
    let total = 40 + data.len();
    let mut f = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(data);
    f
}

fuzz_target!(|data: &[u8]| {
    let mut x = Fingerprinter::new(Config {
        max_flows: 8,
        max_flow_buffer: 1 << 16,
        max_fragmented: 8,
    });
    let mut records = 0u64;
    let mut emit = |_: &d4_tls::record::Record| records += 1;
    // Pieces: [control][offset hi][offset lo][len] then len bytes.
    let mut rest = data;
    let mut t = 0;
    while rest.len() >= 4 {
        let (c, off, len) = (
            rest[0],
            u16::from_be_bytes([rest[1], rest[2]]),
            usize::from(rest[3]),
        );
        let body = &rest[4..];
        let n = len.min(body.len()) as usize;
        let flags = if c & 0x40 != 0 {
            0x02
        } else if c & 0x20 != 0 {
            0x11
        } else {
            0x18
        };
        let f = frame(c & 0x80 != 0, u32::from(off), flags, &body[..n]);
        x.frame(101, t, 0, &f, &mut emit);
        t += u64::from(c & 0x0f);
        rest = &body[n..];
    }
    x.finish(&mut emit);
    assert!(records <= x.stats.client_hellos);
});
