//! The `-r FILE|DIR` inputs of the capture commands: files as given,
//! directories walked recursively in name order.

use std::io;
use std::path::{Path, PathBuf};

/// The files of `inputs`, in order: a file (or a path that does not exist:
/// opening it reports that) as given, a directory's regular files walked in
/// name order. A directory that holds no file is an error: a command given
/// only empty folders has read nothing.
pub fn expand(inputs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let before = out.len();
            walk(p, &mut out)?;
            if out.len() == before {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{}: no file in this directory, nothing to read",
                        p.display()
                    ),
                ));
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read the directory {}: {e}", dir.display()),
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_name_order_and_empty_folders_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/2.pcap"), b"x").unwrap();
        std::fs::write(d.path().join("a/1.pcap"), b"x").unwrap();
        std::fs::create_dir(d.path().join("empty")).unwrap();
        let got = expand(&[d.path().join("a"), d.path().join("missing.pcap")]).unwrap();
        assert_eq!(
            got,
            [
                d.path().join("a/1.pcap"),
                d.path().join("a/b/2.pcap"),
                d.path().join("missing.pcap")
            ]
        );
        let e = expand(&[d.path().join("empty")]).unwrap_err();
        assert!(e.to_string().contains("no file in this directory"), "{e}");
    }
}

/// Calls `f` with each line of `r` (its `\n` kept), or with `None` for a
/// line longer than `max` bytes, which is skipped without being held in
/// memory: a reader of text lines from files or sensors stays bounded.
pub fn for_each_line<E: From<io::Error>>(
    r: impl io::Read,
    max: usize,
    mut f: impl FnMut(Option<&[u8]>) -> Result<(), E>,
) -> Result<(), E> {
    use io::{BufRead, Read};
    let mut r = io::BufReader::with_capacity(256 * 1024, r);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = (&mut r).take(max as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > max {
            // Skip the rest of the long line, a buffer at a time.
            loop {
                let buf = r.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        r.consume(i + 1);
                        break;
                    }
                    None => {
                        let k = buf.len();
                        r.consume(k);
                    }
                }
            }
            f(None)?;
        } else {
            f(Some(&line))?;
        }
    }
}

#[cfg(test)]
mod line_tests {
    #[test]
    fn long_lines_are_skipped_whole() {
        let input = format!("ab\n{}\ncd", "x".repeat(1000));
        let mut seen = Vec::new();
        super::for_each_line::<std::io::Error>(input.as_bytes(), 10, |l| {
            seen.push(l.map(|l| String::from_utf8_lossy(l).into_owned()));
            Ok(())
        })
        .unwrap_or_default();
        assert_eq!(
            seen,
            [Some("ab\n".to_string()), None, Some("cd".to_string())]
        );
    }
}
