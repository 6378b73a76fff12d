//! The DNS message walker on arbitrary bytes, strict and lax: no panic,
//! rdata ranges inside the message, every name renderable; the lax walk
//! yields at least the records the strict one accepts, the same ones
//! first, and exactly them (with no stop) when the strict walk is clean.
#![no_main]

use d4_packet::dns::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut strict = Vec::new();
    let mut strict_clean = false;
    if let Ok(m) = Message::parse(data) {
        for q in m.questions().flatten() {
            let _ = q.name.to_string_lower();
        }
        strict_clean = m.records().all(|r| r.is_ok());
        for r in m.records().map_while(Result::ok) {
            let _ = r.name.to_string_lower();
            assert!(r.rdata.end <= data.len());
            // Names inside rdata, as the passive DNS extractor reads them.
            let _ = m.name_at(r.rdata.start).map(|(n, _)| n.to_string_lower());
            strict.push((r.section, r.rtype, r.class, r.ttl, r.rdata));
        }
    }
    let Ok(m) = Message::parse_lax(data) else {
        assert!(data.len() < 12);
        return;
    };
    let mut walk = m.records_lax();
    let lax: Vec<_> = walk
        .by_ref()
        .map(|r| {
            let _ = r.name.to_string_lower();
            assert!(r.rdata.end <= data.len());
            (r.section, r.rtype, r.class, r.ttl, r.rdata)
        })
        .collect();
    assert!(lax.len() >= strict.len());
    assert_eq!(lax[..strict.len()], strict[..]);
    if strict_clean {
        assert_eq!(lax, strict);
        assert!(walk.stop().is_none());
    } else if let Some(stop) = walk.stop() {
        assert!(stop.at <= data.len());
    }
});
