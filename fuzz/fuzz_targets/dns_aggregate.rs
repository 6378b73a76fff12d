//! `d4 dns aggregate` on arbitrary lines: each one an envelope taken or
//! refused (counted), the state queried in every span after each, no
//! panic, the bounds held.
#![no_main]

use d4_dns::aggregate::spans::{Aggregator, Limits, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_servers: 4,
        max_names: 32,
        max_entries: 64,
        max_bucket_names: 8,
        max_findings: 16,
        ..Limits::default()
    };
    let mut a = Aggregator::new(limits);
    let mut now = 1_800_000_000;
    for line in data.split(|b| *b == b'\n') {
        let _ = a.take(line, now);
        now += 3;
        for span in Span::ALL {
            let _ = a.summary(span, now, 5);
            let _ = a.clients(span, now, 5);
        }
        let u = a.usage();
        assert!(u.servers <= 4 && u.names <= 32 && u.entries <= 64 && u.findings <= 16);
    }
});
