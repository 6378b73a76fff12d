//! A zero-copy, bounded walker over DNS wire-format messages (RFC 1035).
//!
//! [`Message::parse`] checks the 12-byte header; [`Message::questions`] and
//! [`Message::records`] iterate the sections lazily, borrowing the message.
//! Each [`Record`] gives its owner name, type, class, TTL and the byte range
//! of its rdata *within the message*, so a caller can decode the rdata or
//! rewrite it in place (an A/AAAA address keeps its length).
//!
//! Two modes over the same walk, as etherparse's `SlicedPacket` and
//! `LaxSlicedPacket`: strict ([`Message::parse`], [`Message::records`])
//! refuses a message whose counts cannot fit and reports every fault as an
//! error; lax ([`Message::parse_lax`], [`Message::records_lax`]) reads a
//! message cut short (a snaplen-cut capture) as far as it goes: it yields
//! the records that are whole and says where and why it stopped
//! ([`Stop`]); it steps over names without following their pointers, so a
//! bad pointer does not hide the records after it. The address rewriter uses the lax mode, the passive DNS
//! extractor the strict one.
//!
//! Untrusted input is bounded: names follow compression pointers only
//! backwards (so a loop is impossible) and at most [`MAX_POINTERS`] times,
//! labels are at most 63 bytes and names at most 255; the section counts
//! must fit in the message length before anything is walked; every failure
//! is a typed [`DnsError`], never a panic, and nothing is allocated in
//! proportion to a count.
//!
//! Around the walker: [`transport`] finds the messages in captured frames
//! (UDP and TCP port 53, fragments and streams reassembled); [`text`] names
//! types, classes and rcodes and writes rdata in presentation form.

pub mod text;
pub mod transport;

use std::fmt::Write as _;
use std::ops::Range;

/// Most compression pointers followed in one name.
pub const MAX_POINTERS: usize = 64;
/// Longest name on the wire (RFC 1035 2.3.4), length octets included.
pub const MAX_NAME_LEN: usize = 255;
/// DNS header length.
pub const HEADER_LEN: usize = 12;

/// Why a message cannot be walked (further).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The message ends inside a header, name, record or rdata.
    #[error("message truncated")]
    Truncated,
    /// A compression pointer that does not point strictly backwards.
    #[error("compression pointer to offset {target} not before it (at {at})")]
    ForwardPointer {
        /// Where the pointer is.
        at: usize,
        /// Where it points.
        target: usize,
    },
    /// More compression pointers in one name than [`MAX_POINTERS`].
    #[error("too many compression pointers in one name")]
    PointerLoop,
    /// A name longer than 255 bytes.
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// A label type other than a length (0b00) or pointer (0b11).
    #[error("reserved label type 0x{0:02x}")]
    BadLabel(u8),
    /// Section counts that cannot fit in the message.
    #[error("section counts ({0} entries) cannot fit in {1} bytes")]
    AbsurdCounts(usize, usize),
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// Flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

impl Header {
    /// A response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    /// The opcode (0 = standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }
    /// Truncated (TC).
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
    /// The header rcode (4 bits; EDNS extended rcodes not included).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }
}

/// A parsed header over the whole message.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    /// The header.
    pub header: Header,
}

/// A name inside a message (not copied): validated when it comes from
/// [`Name::parse`] (the strict walk); from [`Name::skip`] (the lax walk)
/// only its own labels were checked, and its labels may end early.
#[derive(Clone, Copy, Debug)]
pub struct Name<'a> {
    msg: &'a [u8],
    start: usize,
}

/// One question.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    /// QNAME.
    pub name: Name<'a>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// Which section a record is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer,
    /// Authority.
    Authority,
    /// Additional.
    Additional,
}

/// One resource record.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// Its section.
    pub section: Section,
    /// Owner name.
    pub name: Name<'a>,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// Where the rdata is in the message.
    pub rdata: Range<usize>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, DnsError> {
    let s = b.get(at..at + 2).ok_or(DnsError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Result<u32, DnsError> {
    let s = b.get(at..at + 4).ok_or(DnsError::Truncated)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> Message<'a> {
    /// Checks the header and that the section counts can fit (a question
    /// takes at least 5 bytes, a record at least 11).
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, DnsError> {
        let m = Message::parse_lax(buf)?;
        let h = &m.header;
        let rr = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
        let need = usize::from(h.qdcount) * 5 + rr * 11;
        if need > buf.len() - HEADER_LEN {
            return Err(DnsError::AbsurdCounts(
                usize::from(h.qdcount) + rr,
                buf.len(),
            ));
        }
        Ok(m)
    }

    /// Lax mode: checks only that the 12-byte header is there; the section
    /// counts may announce more than the message holds (it was cut). Walk
    /// it with [`Message::records_lax`].
    pub fn parse_lax(buf: &'a [u8]) -> Result<Message<'a>, DnsError> {
        if buf.len() < HEADER_LEN {
            return Err(DnsError::Truncated);
        }
        Ok(Message {
            buf,
            header: Header {
                id: be16(buf, 0)?,
                flags: be16(buf, 2)?,
                qdcount: be16(buf, 4)?,
                ancount: be16(buf, 6)?,
                nscount: be16(buf, 8)?,
                arcount: be16(buf, 10)?,
            },
        })
    }

    /// Lax walk: the records of the three sections that are whole, in
    /// order, stopping at the first that is not (cut, or malformed); then
    /// [`LaxRecords::stop`] says where and why. Never yields a record whose
    /// name or rdata runs past the end of the message. Names are only
    /// stepped over ([`Name::skip`]: their compression pointers are not
    /// followed), so a record whose owner name points somewhere wrong is
    /// still yielded with its rdata — the rewriter must find every address
    /// — and its name may render short. On a well-formed message it yields
    /// exactly the strict walk's records.
    pub fn records_lax(&self) -> LaxRecords<'a> {
        LaxRecords {
            inner: self.records_in(true),
            stop: None,
        }
    }

    /// The message bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The questions.
    pub fn questions(&self) -> Questions<'a> {
        self.questions_in(false)
    }

    fn questions_in(&self, lax: bool) -> Questions<'a> {
        Questions {
            buf: self.buf,
            pos: HEADER_LEN,
            left: self.header.qdcount,
            failed: false,
            lax,
        }
    }

    /// The first question, if any and well-formed.
    pub fn question(&self) -> Option<Question<'a>> {
        self.questions().next().and_then(Result::ok)
    }

    /// The records of all three sections, in order (the questions are
    /// walked first to find where they start).
    pub fn records(&self) -> Records<'a> {
        self.records_in(false)
    }

    fn records_in(&self, lax: bool) -> Records<'a> {
        let mut q = self.questions_in(lax);
        let mut failed = None;
        for r in q.by_ref() {
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
        }
        Records {
            buf: self.buf,
            pos: q.pos,
            section: None,
            left: [
                self.header.ancount,
                self.header.nscount,
                self.header.arcount,
            ],
            pending_error: failed,
            done: false,
            lax,
        }
    }

    /// Parses the name at `at` (e.g. inside rdata): the name and the offset
    /// just after it.
    pub fn name_at(&self, at: usize) -> Result<(Name<'a>, usize), DnsError> {
        Name::parse(self.buf, at)
    }

    /// A big-endian u16 at `at`.
    pub fn u16_at(&self, at: usize) -> Result<u16, DnsError> {
        be16(self.buf, at)
    }

    /// A big-endian u32 at `at`.
    pub fn u32_at(&self, at: usize) -> Result<u32, DnsError> {
        be32(self.buf, at)
    }
}

impl<'a> Name<'a> {
    /// Validates the name at `start`; returns it and the offset after its
    /// in-place part (after the first pointer, or after the root label).
    pub fn parse(msg: &'a [u8], start: usize) -> Result<(Name<'a>, usize), DnsError> {
        let mut pos = start;
        let mut end = None;
        let mut len = 1usize; // the root label
        let mut jumps = 0;
        loop {
            let b = *msg.get(pos).ok_or(DnsError::Truncated)?;
            match b >> 6 {
                0 => {
                    if b == 0 {
                        let after = end.unwrap_or(pos + 1);
                        return Ok((Name { msg, start }, after));
                    }
                    let l = usize::from(b);
                    len += l + 1;
                    if len > MAX_NAME_LEN {
                        return Err(DnsError::NameTooLong);
                    }
                    if pos + 1 + l >= msg.len() {
                        return Err(DnsError::Truncated);
                    }
                    pos += 1 + l;
                }
                3 => {
                    let target = usize::from(be16(msg, pos)? & 0x3fff);
                    if target >= pos {
                        return Err(DnsError::ForwardPointer { at: pos, target });
                    }
                    jumps += 1;
                    if jumps > MAX_POINTERS {
                        return Err(DnsError::PointerLoop);
                    }
                    if end.is_none() {
                        end = Some(pos + 2);
                    }
                    pos = target;
                }
                _ => return Err(DnsError::BadLabel(b)),
            }
        }
    }

    /// Steps over the name at `start` without following its compression
    /// pointer (lax mode): the name and the offset just after its in-place
    /// part. Checks only that its own labels are there and well-typed (at
    /// most 127 of them); the name it denotes is not validated, so its
    /// labels may end early.
    pub fn skip(msg: &'a [u8], start: usize) -> Result<(Name<'a>, usize), DnsError> {
        let mut o = start;
        for _ in 0..128 {
            let l = *msg.get(o).ok_or(DnsError::Truncated)?;
            match l >> 6 {
                0 if l == 0 => return Ok((Name { msg, start }, o + 1)),
                0 => o += 1 + usize::from(l),
                3 if o + 2 <= msg.len() => return Ok((Name { msg, start }, o + 2)),
                3 => return Err(DnsError::Truncated),
                _ => return Err(DnsError::BadLabel(l)),
            }
        }
        Err(DnsError::NameTooLong)
    }

    /// [`Name::parse`], or [`Name::skip`] in lax mode.
    fn read(msg: &'a [u8], start: usize, lax: bool) -> Result<(Name<'a>, usize), DnsError> {
        if lax {
            Name::skip(msg, start)
        } else {
            Name::parse(msg, start)
        }
    }

    /// The labels, in order (the root label not included). Bounded like
    /// [`Name::parse`]; a name from [`Name::skip`] stops at a pointer that
    /// is not backwards.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: self.start,
            jumps: 0,
            len: 1,
        }
    }

    /// Writes the name in presentation form without the trailing dot
    /// (the root is `.`), lower-cased if `lower`; bytes other than letters,
    /// digits, `-`, `_`, `*`, `/` are escaped as `\DDD`, dots inside labels
    /// and backslashes as `\.` and `\\`.
    pub fn write_to(&self, out: &mut String, lower: bool) {
        let mut first = true;
        for l in self.labels() {
            if !first {
                out.push('.');
            }
            first = false;
            for &c in l {
                let c = if lower { c.to_ascii_lowercase() } else { c };
                match c {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'*' | b'/' => {
                        out.push(char::from(c))
                    }
                    b'.' | b'\\' => {
                        out.push('\\');
                        out.push(char::from(c));
                    }
                    _ => {
                        let _ = write!(out, "\\{c:03}");
                    }
                }
            }
        }
        if first {
            out.push('.');
        }
    }

    /// The name as a new string (see [`Name::write_to`]).
    pub fn to_string_lower(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s, true);
        s
    }
}

/// Labels of a [`Name`].
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Pointers followed so far (at most [`MAX_POINTERS`]).
    jumps: usize,
    /// Name length so far, root label included (at most [`MAX_NAME_LEN`]).
    len: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        // Bounded over the whole name as `Name::parse` is (pointers and
        // length), so that a name it did not validate (`Name::skip`) cannot
        // loop: backwards pointers alone do not end a walk that moves
        // forwards along labels in between.
        loop {
            let b = *self.msg.get(self.pos)?;
            match b >> 6 {
                0 if b == 0 => return None,
                0 => {
                    let l = usize::from(b);
                    self.len += l + 1;
                    if self.len > MAX_NAME_LEN {
                        return None;
                    }
                    let s = self.msg.get(self.pos + 1..self.pos + 1 + l)?;
                    self.pos += 1 + l;
                    return Some(s);
                }
                3 => {
                    let t = usize::from(be16(self.msg, self.pos).ok()? & 0x3fff);
                    self.jumps += 1;
                    if t >= self.pos || self.jumps > MAX_POINTERS {
                        return None;
                    }
                    self.pos = t;
                }
                _ => return None,
            }
        }
    }
}

/// Iterator over the questions.
#[derive(Clone, Debug)]
pub struct Questions<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u16,
    failed: bool,
    /// Names stepped over, not followed (lax mode).
    lax: bool,
}

impl<'a> Iterator for Questions<'a> {
    type Item = Result<Question<'a>, DnsError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let (name, after) = Name::read(self.buf, self.pos, self.lax)?;
            let qtype = be16(self.buf, after)?;
            let qclass = be16(self.buf, after + 2)?;
            self.pos = after + 4;
            Ok(Question {
                name,
                qtype,
                qclass,
            })
        })();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Iterator over the records of the three sections; stops after an error.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The section of the last entry walked (`None`: the questions).
    section: Option<Section>,
    left: [u16; 3],
    pending_error: Option<DnsError>,
    done: bool,
    /// Names stepped over, not followed (lax mode).
    lax: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, DnsError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        let i = self.left.iter().position(|&n| n > 0)?;
        self.left[i] -= 1;
        let section = [Section::Answer, Section::Authority, Section::Additional][i];
        self.section = Some(section);
        let r = (|| {
            let (name, after) = Name::read(self.buf, self.pos, self.lax)?;
            let rtype = be16(self.buf, after)?;
            let class = be16(self.buf, after + 2)?;
            let ttl = be32(self.buf, after + 4)?;
            let rdlen = usize::from(be16(self.buf, after + 8)?);
            let start = after + 10;
            if start + rdlen > self.buf.len() {
                return Err(DnsError::Truncated);
            }
            self.pos = start + rdlen;
            Ok(Record {
                section,
                name,
                rtype,
                class,
                ttl,
                rdata: start..start + rdlen,
            })
        })();
        self.done = r.is_err();
        Some(r)
    }
}

/// Where and why a lax walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Offset in the message of the entry that could not be read.
    pub at: usize,
    /// Its section (`None`: a question).
    pub section: Option<Section>,
    /// Why.
    pub error: DnsError,
}

/// The whole records of a message, lax mode (see [`Message::records_lax`]).
#[derive(Clone, Debug)]
pub struct LaxRecords<'a> {
    inner: Records<'a>,
    stop: Option<Stop>,
}

impl LaxRecords<'_> {
    /// Where and why the walk stopped, once it has (`None` while walking,
    /// and when every record announced was whole).
    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }
}

impl<'a> Iterator for LaxRecords<'a> {
    type Item = Record<'a>;
    fn next(&mut self) -> Option<Record<'a>> {
        match self.inner.next()? {
            Ok(r) => Some(r),
            Err(error) => {
                self.stop = Some(Stop {
                    at: self.inner.pos,
                    section: self.inner.section,
                    error,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response for www.example.com A with a CNAME and an A answer,
    /// names compressed.
    fn sample() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07Example\x03com\x00");
        m.extend_from_slice(&[0, 1, 0, 1]);
        // www.example.com CNAME example.com (pointer to offset 16)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
        // example.com A 192.0.2.1 (owner is a pointer to the pointer above)
        m.extend_from_slice(&[0xc0, 16, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 1]);
        m
    }

    #[test]
    fn walks_a_response() {
        let m = sample();
        let msg = Message::parse(&m).unwrap();
        assert!(msg.header.is_response());
        assert_eq!(msg.header.rcode(), 0);
        let q = msg.question().unwrap();
        assert_eq!(q.name.to_string_lower(), "www.example.com");
        assert_eq!((q.qtype, q.qclass), (1, 1));
        let rs: Vec<_> = msg.records().map(Result::unwrap).collect();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].rtype, 5);
        assert_eq!(rs[0].ttl, 60);
        let (target, _) = msg.name_at(rs[0].rdata.start).unwrap();
        assert_eq!(target.to_string_lower(), "example.com");
        assert_eq!(rs[1].name.to_string_lower(), "example.com");
        assert_eq!(&m[rs[1].rdata.clone()], &[192, 0, 2, 1]);
        assert_eq!(rs[1].ttl, 256);
        let mut s = String::new();
        rs[1].name.write_to(&mut s, false);
        assert_eq!(s, "Example.com");
    }

    #[test]
    fn hostile_names_are_errors() {
        // Pointer to itself.
        let mut m = vec![0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(Message::parse(&m).unwrap().question().map(|_| ()), None);
        assert_eq!(
            Message::parse(&m)
                .unwrap()
                .questions()
                .next()
                .unwrap()
                .unwrap_err(),
            DnsError::ForwardPointer { at: 12, target: 12 }
        );
        // Forward pointer.
        m[13] = 16;
        assert!(matches!(
            Message::parse(&m).unwrap().questions().next().unwrap(),
            Err(DnsError::ForwardPointer { .. })
        ));
        // Reserved label type.
        m[12] = 0x80;
        assert_eq!(
            Message::parse(&m)
                .unwrap()
                .questions()
                .next()
                .unwrap()
                .unwrap_err(),
            DnsError::BadLabel(0x80)
        );
        // A name over 255 bytes: 5 labels of 63.
        let mut m = vec![0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(
            Message::parse(&m)
                .unwrap()
                .questions()
                .next()
                .unwrap()
                .unwrap_err(),
            DnsError::NameTooLong
        );
        // Absurd counts.
        let m = [0, 0, 0x80, 0, 0xfb, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        assert!(matches!(
            Message::parse(&m),
            Err(DnsError::AbsurdCounts(64259, 17))
        ));
        assert_eq!(Message::parse(&[0; 11]).unwrap_err(), DnsError::Truncated);
    }

    #[test]
    fn rdata_past_the_end_and_every_cut() {
        let m = sample();
        for cut in 0..m.len() {
            if let Ok(msg) = Message::parse(&m[..cut]) {
                let n = msg.records().filter(Result::is_ok).count();
                assert!(n < 2, "cut at {cut} still gave both records");
            }
        }
        let mut m = sample();
        let l = m.len();
        m[l - 5] = 5; // rdlength 5 with 4 bytes left
        let r: Vec<_> = Message::parse(&m).unwrap().records().collect();
        assert_eq!(
            r.last().unwrap().as_ref().unwrap_err(),
            &DnsError::Truncated
        );
    }

    #[test]
    fn lax_steps_over_a_bad_pointer_strict_stops_there() {
        let mut m = sample();
        // The CNAME's owner points forward (to its own rdata).
        m[34] = 45;
        let strict: Vec<_> = Message::parse(&m).unwrap().records().collect();
        assert!(matches!(strict[0], Err(DnsError::ForwardPointer { .. })));
        let msg = Message::parse_lax(&m).unwrap();
        let mut lax = msg.records_lax();
        let rs: Vec<_> = lax.by_ref().collect();
        assert_eq!(rs.len(), 2);
        assert_eq!(&m[rs[1].rdata.clone()], &[192, 0, 2, 1]);
        assert_eq!(lax.stop(), None);
        // Cut inside the A record's rdata: one record, stopped there.
        let cut = Message::parse_lax(&m[..m.len() - 2]).unwrap();
        let mut lax = cut.records_lax();
        assert_eq!(lax.by_ref().count(), 1);
        assert_eq!(
            lax.stop(),
            Some(Stop {
                at: 47,
                section: Some(Section::Answer),
                error: DnsError::Truncated
            })
        );
    }

    #[test]
    fn an_unvalidated_name_cannot_loop() {
        // A label, then a pointer back to it: forever, were the walk not
        // bounded over the whole name.
        let m = [1, b'a', 0xc0, 0];
        let (n, after) = Name::skip(&m, 0).unwrap();
        assert_eq!(after, 4);
        assert!(Name::parse(&m, 0).is_err());
        assert_eq!(n.labels().count(), MAX_POINTERS + 1);
        assert!(n.to_string_lower().len() < MAX_NAME_LEN);
    }

    #[test]
    fn escapes_odd_bytes() {
        let m = b"\x04a.b\xff\x00";
        let (n, after) = Name::parse(m, 0).unwrap();
        assert_eq!(after, 6);
        assert_eq!(n.to_string_lower(), "a\\.b\\255");
        let (root, _) = Name::parse(b"\x00", 0).unwrap();
        assert_eq!(root.to_string_lower(), ".");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(m) = Message::parse(&b) {
                for q in m.questions().flatten() {
                    let _ = q.name.to_string_lower();
                }
                for r in m.records().flatten() {
                    let _ = r.name.to_string_lower();
                    assert!(r.rdata.end <= b.len());
                }
            }
            // Lax: never past the end, and the strict walk's records first.
            if let Ok(m) = Message::parse_lax(&b) {
                let strict: Vec<_> = Message::parse(&b)
                    .map(|s| s.records().map_while(Result::ok).map(|r| r.rdata).collect())
                    .unwrap_or_default();
                let lax: Vec<_> = m.records_lax().map(|r| r.rdata).collect();
                assert!(lax.iter().all(|r| r.end <= b.len()));
                assert_eq!(&lax[..strict.len()], &strict[..]);
            }
        }
    }
}
