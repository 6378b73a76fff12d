//! The record-boundary tracker on arbitrary bytes in arbitrary splits, for
//! each format: no panic; chunked feeding reaches the same boundaries and
//! the same errors as feeding everything at once; the server's cutter and
//! the sensor's resumption stand where the tracker stands, holding at most
//! their bound.
#![no_main]

use d4_packet::records::{Cutter, Format, Resumption, Tracker, MAX_HELD_RECORD};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 5] = [
    Format::Pcap,
    Format::Pcapng,
    Format::Ipfix,
    Format::Lines,
    Format::PcapOrText,
];

fuzz_target!(|data: &[u8]| {
    let [f, s1, s2, input @ ..] = data else {
        return;
    };
    let format = FORMATS[usize::from(*f) % FORMATS.len()];
    // Two alternating chunk sizes.
    let splits = [usize::from(*s1).max(1), usize::from(*s2).max(1)];
    let mut whole = Tracker::new(format);
    let whole_ok = whole.feed(input).is_ok();
    let mut t = Tracker::new(format);
    let mut cutter = Cutter::new(format);
    let mut resume = Resumption::new(Some(format));
    let mut handed = Vec::new();
    let (mut pos, mut i) = (0, 0);
    while pos < input.len() {
        let n = splits[i % 2].min(input.len() - pos);
        i += 1;
        let c = &input[pos..pos + n];
        pos += n;
        let a = t.feed(c);
        let b = cutter.push(c).map(|w| handed.extend_from_slice(w));
        let r = resume.sent(c);
        assert_eq!(a.is_err(), b.is_err());
        assert_eq!(a.is_err(), r.is_err());
        if a.is_err() {
            assert!(!whole_ok, "an error in pieces is an error at once");
            return;
        }
        let last = t.last_boundary();
        assert!(last <= pos as u64);
        // The cutter hands out whole records (or an over-long line).
        assert!(cutter.handed_out() >= last);
        assert_eq!(handed, input[..cutter.handed_out() as usize]);
        assert!(cutter.held().len() <= MAX_HELD_RECORD + n);
        let prefix = resume.prefix();
        let held = &input[last as usize..pos];
        if held.len() <= MAX_HELD_RECORD {
            assert_eq!(prefix, [t.preamble(), held].concat());
        }
        assert!(t.preamble().len() <= MAX_HELD_RECORD.max(24));
    }
    assert!(whole_ok, "no error in pieces, none at once");
    assert_eq!(whole.last_boundary(), t.last_boundary());
    assert_eq!(whole.preamble(), t.preamble());
    assert_eq!(whole.records(), t.records());
});
