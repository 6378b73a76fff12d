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
