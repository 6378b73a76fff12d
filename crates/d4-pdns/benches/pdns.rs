//! Benchmarks of extract and ingest (filled in below).
fn main() {}
