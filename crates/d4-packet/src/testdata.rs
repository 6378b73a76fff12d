//! For tests only (hidden from the docs): where the project's shared test
//! data is — `../shared` next to the repository, or `$D4_SHARED` — so that
//! every crate's tests find the real captures and the reference vectors the
//! same way, and say "skipped" the same way when they are absent; and
//! [`build`], frames and captures made by hand.

use std::path::PathBuf;

/// The shared folder, if `need` (a path inside it, e.g. `data/pcap`) is
/// there; otherwise prints that the test was skipped and returns `None`.
pub fn shared(need: &str) -> Option<PathBuf> {
    let root = std::env::var_os("D4_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if root.join(need).exists() {
        Some(root)
    } else {
        eprintln!(
            "skipped: ../shared/{need} not found (set D4_SHARED to run the tests on real data)"
        );
        None
    }
}

/// Frames and captures built by hand for tests (checksums left zero: the
/// analyzers do not check them).
pub mod build {
    /// An Ethernet frame carrying IPv4 `proto` from `src` to `dst`.
    pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        let total = u16::try_from(20 + l4.len()).unwrap_or(u16::MAX);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f.extend_from_slice(l4);
        f
    }

    /// An Ethernet frame carrying IPv6 `next` from `src` to `dst`.
    pub fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60;
        let len = u16::try_from(l4.len()).unwrap_or(u16::MAX);
        f[18..20].copy_from_slice(&len.to_be_bytes());
        f[20] = next;
        f[21] = 64;
        f[22..38].copy_from_slice(&src);
        f[38..54].copy_from_slice(&dst);
        f.extend_from_slice(l4);
        f
    }

    /// A UDP datagram.
    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(8 + payload.len());
        d.extend_from_slice(&sport.to_be_bytes());
        d.extend_from_slice(&dport.to_be_bytes());
        let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        d
    }

    /// A TCP segment (sequence 1, no options).
    pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0u8; 20];
        s[..2].copy_from_slice(&sport.to_be_bytes());
        s[2..4].copy_from_slice(&dport.to_be_bytes());
        s[7] = 1;
        s[12] = 5 << 4;
        s[13] = flags;
        s[14] = 0xff;
        s.extend_from_slice(payload);
        s
    }

    /// A DNS message with one question for `name` of `qtype`, class IN: a
    /// standard query, or a response (QR set) if `response`.
    pub fn dns(id: u16, name: &str, qtype: u16, response: bool) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[
            if response { 0x81 } else { 0x01 },
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        for l in name.split('.').filter(|l| !l.is_empty()) {
            m.push(u8::try_from(l.len()).unwrap_or(63));
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    /// A little-endian microsecond pcap (Ethernet) of `(seconds,
    /// microseconds, frame)`.
    pub fn pcap(frames: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (sec, usec, f) in frames {
            let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
            v.extend_from_slice(&sec.to_le_bytes());
            v.extend_from_slice(&usec.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }
}
