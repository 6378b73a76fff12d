//! Gzip helpers: read files that may be compressed, compress rotated files.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

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

/// Compresses `src` into `dst` (written through a temporary name, then
/// renamed, so a reader never sees a half-written `.gz`).
pub fn gzip_file(src: &Path, dst: &Path, level: u32) -> io::Result<()> {
    let tmp = dst.with_extension("gz.part");
    {
        let mut input = BufReader::new(File::open(src)?);
        let out = BufWriter::new(File::create(&tmp)?);
        let mut enc = GzEncoder::new(out, Compression::new(level));
        io::copy(&mut input, &mut enc)?;
        let mut out = enc.finish()?;
        out.flush()?;
        out.get_ref().sync_all()?;
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
}
