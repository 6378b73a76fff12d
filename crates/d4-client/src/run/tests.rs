use d4_packet::records::pcapng::{self, IDB_TYPE};

use super::send::send_with_keepalive;
use super::*;

fn pcapng_block(ty: Option<u32>, body: usize) -> Vec<u8> {
    match ty {
        None => pcapng::build_section_header(body, false),
        Some(t) => pcapng::build_block(t, &vec![7; body], false),
    }
}

#[test]
fn resume_restarts_pcapng_with_its_preamble_and_the_cut_block() {
    let shb = pcapng_block(None, 16);
    let idb = pcapng_block(Some(IDB_TYPE), 8);
    let epb = pcapng_block(Some(6), 40);
    let stream = [shb.clone(), idb.clone(), epb.clone(), epb.clone()].concat();
    let mut r = Resume::for_type(5, true);
    let cut = stream.len() - 10;
    for c in stream[..cut].chunks(7) {
        r.sent(c);
    }
    let want = [shb, idb, epb[..epb.len() - 10].to_vec()].concat();
    assert_eq!(r.prefix(), want);
}

#[test]
fn resume_ipfix_lines_and_type4() {
    let msg = |len: u16| {
        let mut m = vec![0, 10];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(len as usize, 1);
        m
    };
    let mut r = Resume::for_type(7, true);
    r.sent(&[msg(20), msg(30)[..12].to_vec()].concat());
    assert_eq!(r.prefix(), msg(30)[..12].to_vec());
    let mut r = Resume::for_type(3, true);
    r.sent(b"one\ntw");
    assert_eq!(r.prefix(), b"tw");
    let mut r = Resume::for_type(4, true);
    r.sent(&[0xd4, 0xc3]);
    assert_eq!(r.prefix(), vec![0xd4, 0xc3]);
    let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    hdr.resize(24, 0);
    r.sent(&hdr[2..]);
    r.sent(&[1, 2, 3]);
    assert_eq!(r.0.tracker().map(|t| t.followed()), Some(Format::Pcap));
    assert_eq!(r.prefix(), [hdr, vec![1, 2, 3]].concat());
    assert!(Resume::for_type(3, false).0.tracker().is_none());
}

/// Lines for ever, at most 4 KiB a read; counts what was read.
struct Lines {
    i: u64,
    pending: Vec<u8>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.len() < 4096 {
            self.pending
                .extend_from_slice(format!("line {} of the input\n", self.i).as_bytes());
            self.i += 1;
        }
        let n = buf.len().min(4096);
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }
}

fn lines_prefix(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    while v.len() < n {
        v.extend_from_slice(format!("line {i} of the input\n").as_bytes());
        i += 1;
    }
    v.truncate(n);
    v
}

#[test]
fn a_spool_write_error_during_an_outage_keeps_the_spool_and_stops_reading() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut cfg = ClientConfig::defaults(uuid::Uuid::new_v4());
    cfg.destination = Destination::Server(addr);
    cfg.insecure = true;
    cfg.ty = 3;
    cfg.max_backoff_secs = 1;
    cfg.max_retries = Some(3);
    cfg.spool_dir = Some(dir.clone());
    cfg.spool_max_bytes = 4 * crate::spool::MIN_SPOOL_BYTES;
    let mut sp = Spool::open(&dir, cfg.spool_max_bytes, 3).unwrap();
    // The disk fills after 100 kB.
    sp.fail_over = Some(100_000);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let input = Lines {
        i: 0,
        pending: Vec::new(),
        read: read.clone(),
    };
    let r = send(&cfg, input, &|| false, Some(sp));
    let e = r.expect_err("the server never confirmed");
    assert!(format!("{e:#}").contains("giving up"), "{e:#}");
    // What the spool took before the error is kept, whole and in order.
    let sp = Spool::open(&dir, cfg.spool_max_bytes, 3).unwrap();
    let mut back = Vec::new();
    sp.reader().unwrap().read_to_end(&mut back).unwrap();
    assert!(back.len() > 90_000, "{} bytes kept", back.len());
    assert_eq!(back, lines_prefix(back.len()));
    // Then the input waited (back-pressure): at most the reader's
    // four buffers more were read.
    let read = read.load(std::sync::atomic::Ordering::SeqCst);
    assert!(read <= back.len() as u64 + 5 * 4096, "{read} bytes read");
}

/// Hands over its chunks, then says so and stays quiet (a blocked read).
struct Handed {
    chunks: VecDeque<&'static [u8]>,
    all: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Read for Handed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.chunks.pop_front() {
            Some(c) => {
                buf[..c.len()].copy_from_slice(c);
                Ok(c.len())
            }
            None => {
                // Every chunk went into the channel before this read.
                self.all.store(true, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(30));
                Ok(0)
            }
        }
    }
}

#[test]
fn on_a_stop_the_chunks_the_reader_handed_over_are_sent_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = ClientConfig::defaults(uuid::Uuid::new_v4());
    cfg.ty = 3;
    let all = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = all.clone();
    // The stop comes once the reader has handed over all it read and
    // before the send loop took any of it.
    let stop = move || {
        let end = Instant::now() + Duration::from_secs(10);
        while !seen.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    };
    let mut s = Stream::new(&cfg, &stop, None).unwrap();
    let out = d.path().join("frames");
    s.sink = Some(Sink::Stdout(std::fs::File::create(&out).unwrap()));
    let chunks: [&'static [u8]; 3] = [b"first chunk\n", b"second chunk\n", b"third chunk\n"];
    let input = Handed {
        chunks: chunks.iter().copied().collect(),
        all,
    };
    send_with_keepalive(&mut s, &cfg, input, READ_SIZE).unwrap();
    s.finish().unwrap();
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    assert_eq!(s.stats.bytes, total as u64);
    let frames = std::fs::read(&out).unwrap();
    let mut at = 0;
    for c in chunks {
        let i = frames[at..]
            .windows(c.len())
            .position(|w| w == c)
            .unwrap_or_else(|| panic!("{:?} not sent", String::from_utf8_lossy(c)));
        at += i + c.len();
    }
}
