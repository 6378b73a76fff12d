//! Gzip helpers: read files that may be compressed, compress rotated files.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// Opens `path` for reading, transparently gunzipping it if it starts with the
/// gzip magic (whatever its name).
pub fn open_maybe_gz(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    maybe_gunzip(BufReader::new(File::open(path)?))
}

/// Any reader, gunzipped when it starts with the gzip magic (several
/// concatenated members are read as one stream).
pub fn maybe_gunzip<R: Read + Send + 'static>(mut r: R) -> io::Result<Box<dyn Read + Send>> {
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut r, &mut magic)?;
    let chained = io::Cursor::new(magic[..n].to_vec()).chain(r);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(chained)))
    } else {
        Ok(Box::new(chained))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Bytes compressed at a time by [`gzip_file`]: one gzip member each.
const MEMBER: usize = 4 << 20;

/// Compresses `src` into `dst` (written through a temporary name, then
/// renamed, so a reader never sees a half-written `.gz`).
///
/// The encoder is libdeflate's (`level` 1 to 9, as gzip's; libdeflate at 1
/// compresses real captures within 1–2 % of `gzip -6` at a fifth of
/// miniz_oxide's CPU at 6: docs/BENCHMARKS.md, "Ingest path"). It works on
/// whole buffers, so the file is compressed [`MEMBER`] bytes at a time, each
/// a gzip member of its own: the `.gz` is one stream of several members, as
/// `cat a.gz b.gz` makes, read whole by `zcat`, Python's `gzip`, Go's
/// `gzip.Reader` and [`open_maybe_gz`].
pub fn gzip_file(src: &Path, dst: &Path, level: u32) -> io::Result<()> {
    let tmp = dst.with_extension("gz.part");
    {
        let lvl = libdeflater::CompressionLvl::new(level.clamp(1, 12) as i32)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        let mut enc = libdeflater::Compressor::new(lvl);
        let mut input = File::open(src)?;
        let mut out = File::create(&tmp)?;
        let mut chunk = vec![0u8; MEMBER];
        let mut packed = vec![0u8; enc.gzip_compress_bound(MEMBER)];
        let mut first = true;
        loop {
            let n = read_up_to(&mut input, &mut chunk)?;
            if n == 0 && !first {
                break;
            }
            first = false;
            let m = enc
                .gzip_compress(&chunk[..n], &mut packed)
                .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
            out.write_all(&packed[..m])?;
            if n < chunk.len() {
                break;
            }
        }
        out.sync_all()?;
    }
    std::fs::rename(&tmp, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plain_passthrough() {
        let d = std::env::temp_dir().join(format!("d4gz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let src = d.join("a.txt");
        std::fs::write(&src, b"line\n".repeat(1000)).unwrap();
        let gz = d.join("a.txt.gz");
        gzip_file(&src, &gz, 6).unwrap();
        let mut back = Vec::new();
        open_maybe_gz(&gz).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"line\n".repeat(1000));
        let mut plain = Vec::new();
        open_maybe_gz(&src)
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, back);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A file over one member's worth is several members, read back whole;
    /// an empty file is one empty member.
    #[test]
    fn members_read_back_as_one_stream() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..MEMBER * 2 + 12345)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[(i % 3) + 1])
            .collect();
        for (name, bytes) in [
            ("big", &data[..]),
            ("empty", &[][..]),
            ("exact", &data[..MEMBER]),
        ] {
            let src = d.path().join(name);
            std::fs::write(&src, bytes).unwrap();
            let gz = d.path().join(format!("{name}.gz"));
            gzip_file(&src, &gz, 1).unwrap();
            let mut back = Vec::new();
            open_maybe_gz(&gz).unwrap().read_to_end(&mut back).unwrap();
            assert!(back == bytes, "{name}");
            assert!(!gz.with_extension("gz.part").exists());
            other_readers_read_it_whole(&gz, bytes);
        }
    }

    /// `zcat` and Python's `gzip` (what the reference analyzers use) read
    /// every member, when they are installed.
    fn other_readers_read_it_whole(gz: &Path, bytes: &[u8]) {
        let py = "import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())";
        for (prog, args) in [("zcat", vec![]), ("python3", vec!["-c", py])] {
            let out = std::process::Command::new(prog).args(args).arg(gz).output();
            match out {
                Ok(o) => {
                    assert!(o.status.success(), "{prog} {}", gz.display());
                    assert!(o.stdout == bytes, "{prog} read {} bytes", o.stdout.len());
                }
                Err(e) => eprintln!("skipped: {prog} not run ({e})"),
            }
        }
    }
}
