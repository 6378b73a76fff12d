//! The real workers against the sensor's resumption, on the same streams cut
//! in many ways (sizes and rotation times from a seeded generator): what
//! the server stores ends where the sensor would restart, every file after
//! the first opens with the stream's preamble as of its opening, and what
//! the sensor would re-send is the preamble and the record the server left
//! out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use d4_packet::records::pcapng::{self, IDB_TYPE};
use d4_packet::records::{Format, Resumption};
use uuid::Uuid;

use super::{Compressor, Worker, WorkerCtx};
use crate::store::queues::Queues;
use crate::store::Db;

/// xorshift64: reproducible chunkings without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

fn pcap(n: usize) -> Vec<u8> {
    let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    v.resize(16, 0);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        let len = (i * 37 % 300) as u32;
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend(std::iter::repeat_n(i as u8, len as usize));
    }
    v
}

fn block(ty: Option<u32>, body: usize) -> Vec<u8> {
    match ty {
        None => pcapng::build_section_header(body, false),
        Some(t) => pcapng::build_block(t, &vec![5; body], false),
    }
}

fn pcapng(n: usize) -> (Vec<u8>, usize) {
    let pre = [
        block(None, 16),
        block(Some(IDB_TYPE), 8),
        block(Some(IDB_TYPE), 12),
    ]
    .concat();
    let mut v = pre.clone();
    for i in 0..n {
        v.extend_from_slice(&block(Some(6), i * 28 % 400));
    }
    (v, pre.len())
}

fn ipfix(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let len = 16 + i * 41 % 500;
        v.extend_from_slice(&[0, 10]);
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.resize(v.len() + len - 4, i as u8);
    }
    v
}

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let mut l = vec![b'a' + (i % 26) as u8; i * 13 % 90];
            l.push(b'\n');
            l
        })
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn workers_store_up_to_where_the_sensor_would_resume() {
    store_like_the_sensor(false);
}

/// The same streams with the session parking now and then (its file closed
/// while it is quiet, opened again to append when data flows, rotated
/// without being opened again when due): the same bytes in the same files.
#[test]
fn parked_workers_store_the_same_bytes() {
    store_like_the_sensor(true);
}

fn store_like_the_sensor(parking: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("store")).unwrap());
    let queues = Queues::open(db).unwrap();
    let (ng, ng_pre) = pcapng(40);
    // (type, stream, preamble length opening later files, bytes of the
    // stream not stored as data: the pcap worker writes its header as the
    // files' prefix only)
    let streams: Vec<(u8, Vec<u8>, usize, usize)> = vec![
        (1, pcap(60), 24, 24),
        (4, pcap(60), 24, 0),
        (5, ng, ng_pre, 0),
        (7, ipfix(60), 0, 0),
        (4, text(80), 0, 0),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (ty, stream, pre, skip) in &streams {
        for round in 0..40 {
            // Cut inside the last record too (the session dies there).
            let end = stream.len() - rng.next(30).min(stream.len() - 30);
            let input = &stream[..end];
            // One compressor per round, stopped before the files are read
            // (it deletes files left with no record).
            let compressor = Compressor::start(0, queues.clone());
            let ctx = Arc::new(WorkerCtx {
                data_root: dir.path().join("data"),
                rotation: Duration::from_secs(1),
                compressor: compressor.clone(),
                local_time: false,
            });
            let sensor_id = Uuid::new_v4();
            let mut worker = Worker::for_type(&ctx, sensor_id, *ty, None);
            let mut sensor = Resumption::new(Format::for_d4_type(*ty));
            let mut now = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
            let max = [1, 7, 64, 600, 5000][round % 5];
            let mut p = 0;
            while p < input.len() {
                let n = (1 + rng.next(max)).min(input.len() - p);
                let c = &input[p..p + n];
                worker.data(&Bytes::copy_from_slice(c), now).unwrap();
                sensor.sent(c).unwrap();
                p += n;
                if parking && rng.next(4) == 0 {
                    worker.park().unwrap();
                    assert!(!worker.file_open(), "type {ty}: parked, file closed");
                }
                if rng.next(3) == 0 {
                    now += chrono::Duration::seconds(1);
                }
            }
            worker.finish(now, false);
            drop(worker);
            compressor.shutdown();
            let t = sensor.tracker().unwrap();
            let boundary = t.last_boundary() as usize;
            let preamble = t.preamble().to_vec();
            assert_eq!(preamble.len(), *pre, "type {ty}");
            assert_eq!(
                sensor.prefix(),
                [&preamble[..], &input[boundary..]].concat()
            );
            let mut found = Vec::new();
            files(
                &ctx.data_root.join(sensor_id.simple().to_string()),
                &mut found,
            );
            found.sort();
            let mut stored = Vec::new();
            for (i, f) in found.iter().enumerate() {
                let b = std::fs::read(f).unwrap();
                // The pcap worker opens every file with the header; the
                // file worker every file but the first with the preamble as
                // of the rotation (here the preamble blocks open the stream,
                // so: as far as the stream was stored).
                let opening = match (*ty, i) {
                    (1, _) => *pre,
                    (_, 0) => 0,
                    _ => stored.len().min(*pre),
                };
                assert_eq!(b[..opening], preamble[..opening], "type {ty}, file {i}");
                stored.extend_from_slice(&b[opening..]);
            }
            let from = (*skip).min(boundary);
            assert_eq!(
                stored,
                input[from..boundary],
                "type {ty} round {round}: stored up to the sensor's boundary"
            );
        }
    }
}
