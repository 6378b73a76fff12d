//! The TLS handshake parsers on arbitrary bytes: no panic; a ClientHello
//! that parses gives a JA3 of five fields with no stray `-` and a JA4 of
//! the fixed shape, and builds back to a body that parses to the same
//! fields.
#![no_main]

use d4_tls::hello::{certificates, client_hello, server_hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = client_hello(data) {
        let ja3 = h.ja3();
        assert_eq!(ja3.matches(',').count(), 4);
        assert!(!ja3.contains("--") && !ja3.contains("-,") && !ja3.ends_with('-'));
        assert_eq!(h.ja4().len(), 36);
        // Extensions whose content is not kept are built empty; the fields
        // kept come back the same when each kept extension appears once.
        let kept = [0u16, 10, 11, 13, 16, 43];
        if kept
            .iter()
            .all(|k| h.extensions.iter().filter(|e| *e == k).count() <= 1)
            && h.sni.as_ref().is_none_or(|s| !s.contains('\u{fffd}'))
        {
            if let Ok(back) = client_hello(&h.build()) {
                assert_eq!(back.ja3(), ja3);
            }
        }
    }
    if let Ok(s) = server_hello(data) {
        assert_eq!(s.ja3s().matches(',').count(), 2);
    }
    if let Ok(list) = certificates(data) {
        assert!(list.iter().map(|c| c.len()).sum::<usize>() <= data.len());
    }
});
