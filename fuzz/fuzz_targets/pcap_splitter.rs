//! The streaming pcap splitter on arbitrary bytes: no panic, only whole
//! records out, bounded buffering.
#![no_main]

use d4_packet::{PcapSplitter, MAX_RECORD_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut s = PcapSplitter::new();
    for chunk in data.get(1..).unwrap_or(&[]).chunks(split) {
        match s.push(chunk) {
            Ok(sp) => {
                let _ = sp.count;
            }
            Err(_) => return,
        }
        assert!(s.pending() <= 16 + MAX_RECORD_LEN as usize + split + 24);
    }
});
