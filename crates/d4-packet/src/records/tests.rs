//! The tracker against streams built here, whose record ends are known:
//! every split gives the same boundaries, and the sensor's [`Resumption`]
//! and the server's [`Cutter`] agree with them and with each other.

use proptest::prelude::*;

use super::*;

/// A record of a built stream: where it is, and whether it opens
/// (`Some(true)`) or extends (`Some(false)`) the preamble.
#[derive(Clone, Debug)]
struct Rec {
    start: usize,
    end: usize,
    pre: Option<bool>,
}

#[derive(Clone, Debug, Default)]
struct Built {
    bytes: Vec<u8>,
    recs: Vec<Rec>,
}

impl Built {
    fn push(&mut self, b: &[u8], pre: Option<bool>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        self.recs.push(Rec {
            start,
            end: self.bytes.len(),
            pre,
        });
    }

    /// The last record end at or before `p`.
    fn boundary(&self, p: usize) -> usize {
        self.recs
            .iter()
            .map(|r| r.end)
            .filter(|&e| e <= p)
            .max()
            .unwrap_or(0)
    }

    /// The preamble as of `p`.
    fn preamble(&self, p: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.recs.iter().filter(|r| r.end <= p) {
            match r.pre {
                Some(true) => out = self.bytes[r.start..r.end].to_vec(),
                Some(false) => out.extend_from_slice(&self.bytes[r.start..r.end]),
                None => {}
            }
        }
        out
    }
}

fn pcap_header(big: bool) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut h = w32(crate::pcap::PCAP_MAGIC).to_vec();
    h.extend_from_slice(&w16(2));
    h.extend_from_slice(&w16(4));
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&w32(65535));
    h.extend_from_slice(&w32(1));
    h
}

fn pcap(sizes: &[usize], big: bool) -> Built {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut b = Built::default();
    b.push(&pcap_header(big), Some(true));
    for (i, &len) in sizes.iter().enumerate() {
        let mut r = w32(i as u32).to_vec();
        r.extend_from_slice(&w32(0));
        r.extend_from_slice(&w32(len as u32));
        r.extend_from_slice(&w32(len as u32));
        r.extend(std::iter::repeat_n(i as u8, len));
        b.push(&r, None);
    }
    b
}

fn block(ty: u32, body: usize, big: bool) -> Vec<u8> {
    if ty == 0 {
        pcapng::build_section_header(body, big)
    } else {
        pcapng::build_block(ty, &vec![7; body], big)
    }
}

/// pcapng: sections (byte order, interfaces, packets), packets are EPBs.
fn pcapng(sections: &[(bool, usize, Vec<usize>)]) -> Built {
    let mut b = Built::default();
    for (big, idbs, packets) in sections {
        b.push(&block(0, 16, *big), Some(true));
        for _ in 0..*idbs {
            b.push(&block(pcapng::IDB_TYPE, 8, *big), Some(false));
        }
        for &p in packets {
            b.push(&block(6, p, *big), None);
        }
    }
    b
}

fn ipfix(sizes: &[usize]) -> Built {
    let mut b = Built::default();
    for &len in sizes {
        let len = len.max(ipfix::IPFIX_HEADER_LEN);
        let mut m = vec![0, 10];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.resize(len, 0x55);
        b.push(&m, None);
    }
    b
}

fn lines(sizes: &[usize]) -> Built {
    let mut b = Built::default();
    for &len in sizes {
        let mut l = vec![b'x'; len];
        l.push(b'\n');
        b.push(&l, None);
    }
    b
}

/// Feeds `b` (and `tail`, bytes of a record that never ends) in `chunks`
/// to a sensor's resumption and a server's cutter; checks after every
/// chunk that both stand at the last record end and agree.
fn check(format: Format, b: &Built, tail: &[u8], chunks: &[usize]) {
    let input = [b.bytes.as_slice(), tail].concat();
    let mut sensor = Resumption::new(Some(format));
    let mut server = Cutter::new(format);
    let mut written = Vec::new();
    let (mut p, mut i) = (0, 0);
    while p < input.len() {
        let n = chunks[i % chunks.len()].clamp(1, input.len() - p);
        i += 1;
        let c = &input[p..p + n];
        p += n;
        sensor.sent(c).unwrap();
        written.extend_from_slice(server.push(c).unwrap());
        // Type 4 decides on its first four bytes: no boundary before.
        let want = if format == Format::PcapOrText && p < 4 {
            0
        } else {
            b.boundary(p)
        };
        let t = sensor.tracker().unwrap();
        assert_eq!(t.last_boundary(), want as u64, "sensor at {p}");
        assert_eq!(server.handed_out(), want as u64, "server at {p}");
        assert_eq!(written, input[..want], "server's records at {p}");
        assert_eq!(t.preamble(), b.preamble(p), "preamble at {p}");
        assert_eq!(server.tracker().preamble(), t.preamble());
        let held = [b.preamble(p).as_slice(), &input[want..p]].concat();
        assert_eq!(sensor.prefix(), held, "resumption at {p}");
        assert_eq!(server.held(), &input[want..p]);
    }
    // All at once.
    let mut t = Tracker::new(format);
    let fed = t.feed(&input).unwrap();
    let want = if format == Format::PcapOrText && input.len() < 4 {
        0
    } else {
        b.boundary(input.len())
    };
    assert_eq!(t.last_boundary(), want as u64);
    assert_eq!(fed.boundary, (want > 0).then_some(want as u64));
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..300, 1..20)
}

proptest! {
    #[test]
    fn pcap_sensor_and_server_agree(
        sizes in prop::collection::vec(0usize..200, 0..20),
        big: bool,
        cut in 0usize..40,
        ch in chunks(),
    ) {
        let b = pcap(&sizes, big);
        let tail = pcap(&[30], big).bytes[24..24 + cut].to_vec();
        check(Format::Pcap, &b, &tail, &ch);
        check(Format::PcapOrText, &b, &tail, &ch);
    }

    #[test]
    fn pcapng_sensor_and_server_agree(
        sections in prop::collection::vec(
            (any::<bool>(), 0usize..3, prop::collection::vec(0usize..120, 0..8)), 1..4),
        cut in 0usize..50,
        ch in chunks(),
    ) {
        let b = pcapng(&sections);
        let tail = block(6, 40, sections[sections.len() - 1].0)[..cut].to_vec();
        check(Format::Pcapng, &b, &tail, &ch);
    }

    #[test]
    fn ipfix_sensor_and_server_agree(
        sizes in prop::collection::vec(16usize..400, 0..20),
        cut in 0usize..30,
        ch in chunks(),
    ) {
        let b = ipfix(&sizes);
        let tail = ipfix(&[100]).bytes[..cut].to_vec();
        check(Format::Ipfix, &b, &tail, &ch);
    }

    #[test]
    fn lines_sensor_and_server_agree(
        sizes in prop::collection::vec(0usize..100, 0..30),
        cut in 0usize..30,
        ch in chunks(),
    ) {
        // Text for type 4 must not start with a pcap magic: lines of 'x' do not.
        let b = lines(&sizes);
        let tail = vec![b'y'; cut];
        check(Format::Lines, &b, &tail, &ch);
        check(Format::PcapOrText, &b, &tail, &ch);
    }
}

#[test]
fn type4_decides_on_four_bytes_split_anywhere() {
    let b = lines(&[1, 0, 2]);
    for step in 1..5 {
        check(Format::PcapOrText, &b, b"", &[step]);
    }
    let mut t = Tracker::new(Format::PcapOrText);
    t.feed(b"ab").unwrap();
    assert_eq!(t.followed(), Format::PcapOrText);
    assert_eq!(t.feed(b"\ncd").unwrap().boundary, Some(3));
    assert_eq!(t.followed(), Format::Lines);
    let mut t = Tracker::new(Format::PcapOrText);
    t.feed(&pcap_header(true)[..5]).unwrap();
    assert_eq!(t.followed(), Format::Pcap);
}

#[test]
fn corrupt_streams_are_errors() {
    let e = |f: Format, b: &[u8]| Tracker::new(f).feed(b).unwrap_err();
    assert!(matches!(
        e(Format::Pcap, b"hello world"),
        RecordError::Pcap(PcapError::BadMagic(_))
    ));
    assert!(matches!(
        e(Format::Pcap, &pcapng::SHB_MAGIC),
        RecordError::Pcap(PcapError::Pcapng)
    ));
    let mut cap = pcap(&[4], false).bytes;
    cap.extend_from_slice(&[0; 8]);
    cap.extend_from_slice(&u32::MAX.to_le_bytes());
    cap.extend_from_slice(&[0; 4]);
    assert!(matches!(
        e(Format::Pcap, &cap),
        RecordError::Pcap(PcapError::RecordTooLong { index: 1, .. })
    ));
    assert_eq!(
        e(Format::Pcapng, b"GET / HTTP/1.1\r\n\r\n"),
        RecordError::NotPcapng
    );
    let mut ng = pcapng(&[(false, 1, vec![])]).bytes;
    // A block of 14 bytes (not a multiple of 4), then one over the bound.
    for len in [14u32, (pcapng::MAX_BLOCK_LEN + 4) as u32] {
        let mut s = ng.clone();
        s.extend_from_slice(&6u32.to_le_bytes());
        s.extend_from_slice(&len.to_le_bytes());
        s.extend_from_slice(&[0; 4]);
        assert_eq!(
            e(Format::Pcapng, &s),
            RecordError::PcapngBlockLen(len as usize)
        );
    }
    ng[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(e(Format::Pcapng, &ng), RecordError::PcapngByteOrder);
    assert_eq!(
        e(Format::Ipfix, &[0, 10, 0, 3]),
        RecordError::IpfixTooShort(3)
    );
}

#[test]
fn over_long_lines_are_passed_on_and_forgotten() {
    let big = vec![b'z'; MAX_HELD_RECORD + 10];
    let mut c = Cutter::new(Format::Lines);
    assert!(c.push(&big[..MAX_HELD_RECORD]).unwrap().is_empty());
    assert_eq!(c.push(&big[MAX_HELD_RECORD..]).unwrap().len(), big.len());
    assert_eq!(c.push(b"zz\nab").unwrap(), b"zz\n");
    let mut r = Resumption::new(Some(Format::Lines));
    r.sent(&big).unwrap();
    assert!(r.prefix().is_empty(), "nothing kept over the bound");
    r.sent(b"\nab").unwrap();
    assert_eq!(r.prefix(), b"ab");
    assert!(Resumption::new(None).prefix().is_empty());
}

#[test]
fn pcap_preamble_is_the_global_header() {
    let b = pcap(&[10, 0, 5], false);
    let mut t = Tracker::new(Format::Pcap);
    let fed = t.feed(&b.bytes[..30]).unwrap();
    assert_eq!(fed.boundary, Some(24));
    assert!(fed.preamble_changed);
    assert_eq!(t.preamble(), &b.bytes[..24]);
    assert_eq!(t.pcap_header().map(|h| h.linktype), Some(1));
    t.feed(&b.bytes[30..]).unwrap();
    assert_eq!(t.records(), 3);
    assert!(t.at_boundary());
}
