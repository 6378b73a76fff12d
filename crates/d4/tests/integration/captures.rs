//! Test data: captures built by hand (no file of ../shared needed), and
//! stored streams read back.

use crate::harness::{Sensor, Server};

/// A pcap built by hand (Ethernet/IPv4/TCP): 192.0.2.1 sends a SYN then a RST
/// (an initiator), 203.0.113.9 answers with a SYN-ACK (a victim of a spoofed flood).
pub fn backscatter_capture() -> Vec<u8> {
    let frame = |src: [u8; 4], fl: u8| {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 8;
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&[198, 51, 100, 1]);
        f[34..36].copy_from_slice(&443u16.to_be_bytes());
        f[47] = fl;
        f
    };
    let mut cap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cap.extend_from_slice(&65535u32.to_le_bytes());
    cap.extend_from_slice(&1u32.to_le_bytes());
    for (t, f) in [
        (1u32, frame([192, 0, 2, 1], 0x02)),
        (2, frame([203, 0, 113, 9], 0x12)),
        (3, frame([192, 0, 2, 1], 0x04)),
    ] {
        cap.extend_from_slice(&t.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        cap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        cap.extend_from_slice(&f);
    }
    cap
}

/// Every stored byte of a sensor's type-`ty` stream today (files gunzipped).
pub fn stored(s: &Server, sensor: &Sensor, ty: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(s.day_dir(&sensor.uuid, ty)) else {
        return out;
    };
    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    files.sort();
    for p in files.into_iter().filter(|p| p.is_file()) {
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        if p.to_string_lossy().ends_with(".gz") {
            let mut d = flate2::read::MultiGzDecoder::new(f);
            let _ = std::io::Read::read_to_end(&mut d, &mut out);
        } else {
            let _ = std::io::Read::read_to_end(&mut { f }, &mut out);
        }
    }
    out
}
