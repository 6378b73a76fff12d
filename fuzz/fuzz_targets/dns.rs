//! The DNS message walker on arbitrary bytes: no panic, rdata ranges inside
//! the message, every name renderable.
#![no_main]

use d4_packet::dns::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        for q in m.questions().flatten() {
            let _ = q.name.to_string_lower();
        }
        for r in m.records().flatten() {
            let _ = r.name.to_string_lower();
            assert!(r.rdata.end <= data.len());
            // Names inside rdata, as the passive DNS extractor reads them.
            let _ = m.name_at(r.rdata.start).map(|(n, _)| n.to_string_lower());
        }
    }
});
