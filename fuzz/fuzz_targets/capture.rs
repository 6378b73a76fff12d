//! The capture reader and the frame rewriter on arbitrary files: no panic,
//! no unbounded allocation; every packet read can be rewritten.
#![no_main]

use d4_packet::capture::CaptureReader;
use d4_packet::rewrite::{rewrite_frame, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CaptureReader::new(data) else {
        return;
    };
    let flip = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v) => std::net::IpAddr::V4((!u32::from(v)).into()),
        std::net::IpAddr::V6(v) => std::net::IpAddr::V6((!u128::from(v)).into()),
    };
    while let Ok(Some(mut p)) = r.next_packet() {
        let scope = Scope {
            dns: true,
            ..Scope::default()
        };
        let _ = rewrite_frame(p.linktype, &mut p.data, scope, &flip);
    }
});
