//! `d4 maltrail match`'s trails parser on arbitrary files: no panic; every
//! line read is counted, each one a trail (of one kind, or a duplicate) or
//! refused with its number; and each trail parsed prints back to a trail
//! that parses to itself (network trails through their `Display`).
#![no_main]

use d4_analyzers::maltrail::trails::parse_trail;
use d4_analyzers::maltrail::{Trail, Trails};
use libfuzzer_sys::fuzz_target;

/// A trail as a trails file would write it.
fn text(t: &Trail) -> String {
    match t {
        Trail::Ip(a) => a.to_string(),
        Trail::Network(n) => n.to_string(),
        Trail::IpPort(std::net::IpAddr::V6(a), p) => format!("[{a}]:{p}"),
        Trail::IpPort(a, p) => format!("{a}:{p}"),
        Trail::Domain(d) => d.clone(),
        // With its scheme: `1.2.3.4/24` alone would be a network.
        Trail::Url(u) if !u.starts_with('/') => format!("http://{u}"),
        Trail::Url(u) => u.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut t = Trails::new();
    let mut last = 0;
    let mut bad = 0u64;
    let r = t.load(data, |b| {
        assert!(b.line > last, "bad lines in order, numbered from 1");
        assert!(!b.reason.is_empty());
        last = b.line;
        bad += 1;
    });
    assert!(r.is_ok(), "a slice never fails to read");
    let s = t.stats;
    assert_eq!(s.bad, bad);
    assert!(last <= s.lines);
    assert_eq!(
        t.len() as u64,
        s.ips + s.networks + s.ip_ports + s.domains + s.urls,
        "{s:?}"
    );
    // Each line's first field as a trail: printed and parsed back, the same.
    for line in data.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let field = line.split(',').next().unwrap_or_default();
        if let Ok(trail) = parse_trail(field) {
            let again = parse_trail(&text(&trail));
            assert_eq!(again.as_ref(), Ok(&trail), "{field:?}");
        }
    }
});
