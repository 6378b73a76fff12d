//! gamelinux passivedns's choice of records and of the answer field, for
//! `d4 pdns extract`'s lines: passivedns prints one field of the rdata
//! (`ldns_rr_rdf(rr, offset)`), not the whole presentation form: MX the
//! exchange, SRV the target, SOA the MNAME, RP the mailbox, NAPTR the
//! order, TXT the first string; and by default only A, AAAA, PTR, CNAME,
//! DNAME, NAPTR, RP and SRV (its `-X 46PCDNRS`). COF output and the store
//! keep every type in full presentation form.

/// The record types passivedns selects, by its `-X` letters.
const FLAGS: [(char, u16); 12] = [
    ('4', 1),
    ('6', 28),
    ('P', 12),
    ('C', 5),
    ('D', 39),
    ('N', 35),
    ('R', 17),
    ('S', 33),
    ('T', 16),
    ('O', 6),
    ('M', 15),
    ('n', 2),
];

/// passivedns's default `-X`.
pub const DEFAULT_FLAGS: &str = "46PCDNRS";

/// A set of record types chosen with passivedns's `-X` letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Select(u16);

impl Default for Select {
    fn default() -> Select {
        // The default letters are all known.
        Select::parse(DEFAULT_FLAGS).unwrap_or(Select(0))
    }
}

impl Select {
    /// Parses `-X` letters (`4` A, `6` AAAA, `P` PTR, `C` CNAME, `D` DNAME,
    /// `N` NAPTR, `R` RP, `S` SRV, `T` TXT, `O` SOA, `M` MX, `n` NS).
    pub fn parse(letters: &str) -> Result<Select, String> {
        let mut bits = 0u16;
        for c in letters.chars() {
            let i = FLAGS
                .iter()
                .position(|(f, _)| *f == c)
                .ok_or_else(|| format!("unknown record type letter {c:?} (known: 46PCDNRSTOMn)"))?;
            bits |= 1 << i;
        }
        if bits == 0 {
            return Err("no record type letters".into());
        }
        Ok(Select(bits))
    }

    /// Whether records of type `t` are printed.
    pub fn contains(self, t: u16) -> bool {
        FLAGS
            .iter()
            .enumerate()
            .any(|(i, (_, ty))| *ty == t && self.0 & (1 << i) != 0)
    }
}

/// The answer passivedns prints for a record of type `t` whose rdata in
/// presentation form is `full` (names in presentation form hold no space).
pub fn answer(t: u16, full: &str) -> &str {
    let field = |i: usize| full.split(' ').nth(i).unwrap_or(full);
    match t {
        // MX: preference exchange; SRV: priority weight port target.
        15 => field(1),
        33 => field(3),
        // SOA: the MNAME; RP: the mailbox; NAPTR: the order.
        6 | 17 | 35 => field(0),
        16 => first_string(full),
        _ => full,
    }
}

/// The first quoted string of TXT rdata, quotes included.
fn first_string(full: &str) -> &str {
    let b = full.as_bytes();
    if b.first() != Some(&b'"') {
        return full;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return &full[..=i],
            _ => i += 1,
        }
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_passivedns_prints_them() {
        assert_eq!(answer(15, "10 mx.example.org."), "mx.example.org.");
        assert_eq!(answer(33, "0 5 5060 sip.example.org."), "sip.example.org.");
        assert_eq!(
            answer(6, "ns1.example.org. hostmaster.example.org. 1 2 3 4 5"),
            "ns1.example.org."
        );
        assert_eq!(
            answer(17, "admin.example.org. txt.example.org."),
            "admin.example.org."
        );
        assert_eq!(
            answer(35, "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.org."),
            "100"
        );
        assert_eq!(answer(16, "\"v=spf1 -all\" \"x\""), "\"v=spf1 -all\"");
        assert_eq!(answer(16, "\"a \\\" b\" \"c\""), "\"a \\\" b\"");
        assert_eq!(answer(1, "192.0.2.1"), "192.0.2.1");
        assert_eq!(answer(5, "a.example."), "a.example.");
    }

    #[test]
    fn default_selection_is_passivedns_default() {
        let s = Select::default();
        for t in [1, 28, 12, 5, 39, 35, 17, 33] {
            assert!(s.contains(t), "{t}");
        }
        for t in [16, 6, 15, 2, 99] {
            assert!(!s.contains(t), "{t}");
        }
        assert!(Select::parse("M").unwrap().contains(15));
        assert!(Select::parse("x").is_err());
    }
}
