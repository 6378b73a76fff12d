//! The streaming pcap splitter and scanner on arbitrary bytes: no panic,
//! bounded buffering, and both agree on the records and the errors.
#![no_main]

use d4_packet::{PcapScanner, PcapSplitter, MAX_RECORD_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut sp = PcapSplitter::new();
    let mut sc = PcapScanner::new();
    for chunk in data.get(1..).unwrap_or(&[]).chunks(split) {
        let a = sp.push(chunk).map(|s| s.count);
        let b = sc.feed(chunk);
        assert_eq!(a.is_err(), b.is_err());
        if a.is_err() {
            return;
        }
        assert_eq!(sp.records(), sc.records());
        assert!(sp.pending() <= 16 + MAX_RECORD_LEN as usize + split + 24);
    }
});
