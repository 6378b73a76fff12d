//! gz-bench FILE [LEVELS...]: compresses FILE (in memory) into gzip with each
//! backend and level and prints CPU-seconds per GB of input and the output
//! size / input size. Every output is written to $GZ_BENCH_OUT/<name>.gz
//! when that variable is set, so that `zcat` can check it.
//!
//! Backends: miniz_oxide (flate2's default), zlib-rs (flate2's `zlib-rs`
//! feature), libdeflate (in members of CHUNK bytes, as a file written
//! piecewise would be), zlib-ng (with the `zlib-ng` feature, which needs
//! cmake; `compress2` on members of CHUNK bytes, as libdeflate).

use std::time::Duration;

const CHUNK: usize = 4 << 20;

fn cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn gzip_wrap(deflated: &[u8], input: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    out.extend_from_slice(deflated);
    let crc = libdeflater::Crc::new();
    let mut crc = crc;
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
}

fn miniz(input: &[u8], level: u8) -> Vec<u8> {
    // Whole-buffer raw deflate, as flate2's GzEncoder drives it (it also
    // computes the CRC, as here).
    let d = miniz_oxide::deflate::compress_to_vec(input, level);
    let mut out = Vec::with_capacity(d.len() + 18);
    gzip_wrap(&d, input, &mut out);
    out
}

fn zlibrs(input: &[u8], level: i32) -> Vec<u8> {
    // flate2 with its `zlib-rs` backend, streaming as the server's gzip_file does.
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(input.len()), flate2::Compression::new(level as u32));
    for c in input.chunks(64 * 1024) {
        e.write_all(c).expect("compress");
    }
    e.finish().expect("finish")
}

fn libdeflate(input: &[u8], level: i32) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"));
    let mut out = Vec::new();
    for chunk in input.chunks(CHUNK) {
        let at = out.len();
        out.resize(at + c.gzip_compress_bound(chunk.len()), 0);
        let n = c.gzip_compress(chunk, &mut out[at..]).expect("compress");
        out.truncate(at + n);
    }
    out
}

#[cfg(feature = "zlib-ng")]
fn zlibng(input: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for chunk in input.chunks(CHUNK) {
        // SAFETY: compressBound and compress2 read `chunk` and write at most
        // `n` bytes into `buf`, which holds that many.
        let mut n = unsafe { libz_ng_sys::compressBound(chunk.len() as _) } as usize;
        buf.resize(n, 0);
        let mut len = n as _;
        let rc = unsafe {
            libz_ng_sys::compress2(buf.as_mut_ptr(), &mut len, chunk.as_ptr(), chunk.len() as _, level)
        };
        assert_eq!(rc, libz_ng_sys::Z_OK, "compress2");
        n = len as usize;
        // A zlib stream: 2 bytes of header, raw deflate, 4 bytes of Adler-32.
        gzip_wrap(&buf[2..n - 4], chunk, &mut out);
    }
    out
}

#[cfg(not(feature = "zlib-ng"))]
fn zlibng(_: &[u8], _: i32) -> Vec<u8> {
    panic!("built without the zlib-ng feature (cargo build --release --features zlib-ng; needs cmake)")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = std::fs::read(&args[1]).expect("input");
    let spec: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        ["miniz:1", "miniz:6", "zlib-rs:1", "zlib-rs:6", "libdeflate:1", "libdeflate:6"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let reps: usize = std::env::var("GZ_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let gb = input.len() as f64 / 1e9;
    for s in spec {
        let (name, level) = s.split_once(':').expect("backend:level");
        let level: i32 = level.parse().expect("level");
        let mut best = f64::MAX;
        let mut size = 0;
        for _ in 0..reps {
            let t0 = cpu();
            let out = match name {
                "miniz" => miniz(&input, level as u8),
                "zlib-rs" => zlibrs(&input, level),
                "libdeflate" => libdeflate(&input, level),
                "zlib-ng" => zlibng(&input, level),
                _ => panic!("unknown backend {name}"),
            };
            let t = (cpu() - t0).as_secs_f64();
            best = best.min(t);
            size = out.len();
            if let Ok(dir) = std::env::var("GZ_BENCH_OUT") {
                std::fs::write(format!("{dir}/{name}-{level}.gz"), &out).expect("write");
            }
        }
        println!("{name} {level} {:.3} {:.5}", best / gb, size as f64 / input.len() as f64);
    }
}
