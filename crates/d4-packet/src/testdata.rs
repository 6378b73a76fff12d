//! For tests only (hidden from the docs): where the project's shared test
//! data is — `../shared` next to the repository, or `$D4_SHARED` — so that
//! every crate's tests find the real captures and the reference vectors the
//! same way, and say "skipped" the same way when they are absent.

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
