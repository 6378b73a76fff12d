//! Text streams (D4 types 2, 3, 6, 8, 254 and type 4 from `dnscap -g`):
//! a record ends with `\n`. No state but the position: the last newline of
//! each chunk is the boundary (lines are not counted). Bounds: none here
//! (a line may be any length); what holds back a partial line bounds it
//! ([`super::MAX_HELD_RECORD`]).

use super::Progress;

/// Scans `data`, which starts at stream offset `base`.
pub(super) fn feed(data: &[u8], base: u64, p: &mut Progress) {
    if let Some(i) = data.iter().rposition(|&c| c == b'\n') {
        p.boundary(base + i as u64 + 1, false);
    }
}
