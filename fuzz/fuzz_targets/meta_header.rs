//! Meta-header parsing on arbitrary bytes: no panic; an accepted type name is
//! always safe as a path component.
#![no_main]

use d4_proto::MetaHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = MetaHeader::parse(data) {
        assert!(!m.ty.contains('/') && !m.ty.starts_with('.') && !m.ty.is_empty());
    }
});
