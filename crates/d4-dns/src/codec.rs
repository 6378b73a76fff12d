//! The two encodings of a stream of serialized messages: length-prefixed
//! JSON (the reference serializer's: the ASCII decimal byte length N of
//! the JSON, then exactly N bytes of JSON, no separator:
//! `129{"source":...}`) and NDJSON (one object a line). [`Framing::detect`]
//! tells them apart by the first byte (a digit, or `{`); [`FrameReader`]
//! reads either, bounded: a length prefix is untrusted, so one over
//! [`MAX_JSON`] is refused before anything is allocated for it.

use std::fmt;
use std::io::{self, BufRead};

/// Largest JSON of one message (a DNS message is at most 65,535 bytes;
/// its JSON, with every byte escaped, stays well under this).
pub const MAX_JSON: usize = 4 << 20;

/// Most digits of a length prefix (MAX_JSON has 7).
const MAX_DIGITS: usize = 7;

/// How the messages of a stream are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `N{...N bytes...}`, no separator.
    LengthPrefixed,
    /// One JSON object a line.
    Ndjson,
}

impl Framing {
    /// The framing a stream starting with `first` has (white space before
    /// is the caller's to skip): a digit, length-prefixed; `{`, NDJSON.
    pub fn detect(first: u8) -> Option<Framing> {
        match first {
            b'0'..=b'9' => Some(Framing::LengthPrefixed),
            b'{' => Some(Framing::Ndjson),
            _ => None,
        }
    }
}

/// Appends one message's `json` to `out`, framed.
pub fn write_frame(out: &mut Vec<u8>, framing: Framing, json: &[u8]) {
    match framing {
        Framing::LengthPrefixed => {
            let mut digits = [0u8; 20];
            let mut n = json.len();
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.extend_from_slice(&digits[i..]);
            out.extend_from_slice(json);
        }
        Framing::Ndjson => {
            out.extend_from_slice(json);
            out.push(b'\n');
        }
    }
}

/// Why a stream of messages cannot be read further.
#[derive(Debug)]
pub struct FrameError {
    /// Byte offset in the stream where the fault is.
    pub offset: u64,
    /// What it is.
    pub kind: FrameErrorKind,
}

/// The faults of a stream of messages.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameErrorKind {
    /// Neither a length prefix nor `{` where a message starts.
    NotAMessage(u8),
    /// A length prefix over [`MAX_JSON`], or a line longer.
    TooLong(u64),
    /// The stream ends inside a message.
    Truncated,
    /// The reader failed.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match &self.kind {
            FrameErrorKind::NotAMessage(b) => write!(
                f,
                "expected a length prefix (digits) or a JSON object, found byte 0x{b:02x}"
            ),
            FrameErrorKind::TooLong(n) => {
                write!(
                    f,
                    "a message of {n} bytes or more, over the bound of {MAX_JSON}"
                )
            }
            FrameErrorKind::Truncated => f.write_str("the input ends inside a message"),
            FrameErrorKind::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads framed messages from a buffered reader.
pub struct FrameReader<R: BufRead> {
    r: R,
    framing: Option<Framing>,
    /// Bytes consumed so far (for error offsets).
    offset: u64,
}

impl<R: BufRead> FrameReader<R> {
    /// Over `r`; the framing is told from the first message.
    pub fn new(r: R) -> FrameReader<R> {
        FrameReader {
            r,
            framing: None,
            offset: 0,
        }
    }

    /// The framing, once the first message was read.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    fn err(&self, kind: FrameErrorKind) -> FrameError {
        FrameError {
            offset: self.offset,
            kind,
        }
    }

    /// The next byte, not consumed (`None` at the end).
    fn peek(&mut self) -> Result<Option<u8>, FrameError> {
        loop {
            match self.r.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(FrameErrorKind::Io(e))),
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.offset += n as u64;
    }

    /// Reads the next message's JSON into `buf` (replacing what it held);
    /// false at the end of the stream. White space between messages is
    /// skipped.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
        buf.clear();
        let first = loop {
            match self.peek()? {
                None => return Ok(false),
                Some(b) if b.is_ascii_whitespace() => self.consume(1),
                Some(b) => break b,
            }
        };
        let framing = match self.framing {
            Some(f) => f,
            None => {
                let f = Framing::detect(first)
                    .ok_or_else(|| self.err(FrameErrorKind::NotAMessage(first)))?;
                self.framing = Some(f);
                f
            }
        };
        match framing {
            Framing::LengthPrefixed => self.length_prefixed(buf),
            Framing::Ndjson => self.line(buf),
        }
        .map(|_| true)
    }

    fn length_prefixed(&mut self, buf: &mut Vec<u8>) -> Result<(), FrameError> {
        let mut n: u64 = 0;
        let mut digits = 0;
        loop {
            match self.peek()? {
                Some(b @ b'0'..=b'9') => {
                    n = n * 10 + u64::from(b - b'0');
                    digits += 1;
                    if digits > MAX_DIGITS || n > MAX_JSON as u64 {
                        return Err(self.err(FrameErrorKind::TooLong(n)));
                    }
                    self.consume(1);
                }
                Some(b) if digits == 0 => return Err(self.err(FrameErrorKind::NotAMessage(b))),
                Some(_) => break,
                None => return Err(self.err(FrameErrorKind::Truncated)),
            }
        }
        // Bounded above: at most MAX_JSON.
        let n = n as usize;
        buf.reserve(n);
        while buf.len() < n {
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(FrameErrorKind::Io(e))),
            };
            if avail.is_empty() {
                return Err(self.err(FrameErrorKind::Truncated));
            }
            let take = avail.len().min(n - buf.len());
            buf.extend_from_slice(&avail[..take]);
            self.consume(take);
        }
        Ok(())
    }

    fn line(&mut self, buf: &mut Vec<u8>) -> Result<(), FrameError> {
        loop {
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(FrameErrorKind::Io(e))),
            };
            if avail.is_empty() {
                // A last line without its newline is whole.
                return Ok(());
            }
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            let body = if done { take - 1 } else { take };
            if buf.len() + body > MAX_JSON {
                return Err(self.err(FrameErrorKind::TooLong((buf.len() + body) as u64)));
            }
            buf.extend_from_slice(&avail[..body]);
            self.consume(take);
            if done {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut r = FrameReader::new(b);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while r.next(&mut buf)? {
            out.push(buf.clone());
        }
        Ok(out)
    }

    #[test]
    fn both_framings_and_their_faults() {
        let mut s = Vec::new();
        for j in [&b"{\"a\":1}"[..], b"{}", b"{\"b\":\"x\"}"] {
            write_frame(&mut s, Framing::LengthPrefixed, j);
        }
        assert_eq!(s, b"7{\"a\":1}2{}9{\"b\":\"x\"}");
        assert_eq!(read_all(&s).unwrap().len(), 3);
        let mut n = Vec::new();
        write_frame(&mut n, Framing::Ndjson, b"{\"a\":1}");
        n.extend_from_slice(b"\n{}");
        assert_eq!(
            read_all(&n).unwrap(),
            [b"{\"a\":1}".to_vec(), b"{}".to_vec()]
        );
        assert!(read_all(b"").unwrap().is_empty());
        let e = read_all(b"9{}").unwrap_err();
        assert!(matches!(e.kind, FrameErrorKind::Truncated), "{e}");
        let e = read_all(b"99999999{").unwrap_err();
        assert!(matches!(e.kind, FrameErrorKind::TooLong(_)), "{e}");
        let e = read_all(b"2{}x").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.to_string().contains("found byte 0x78"), "{e}");
        assert!(read_all(b"\x89PNG").is_err());
    }

    proptest::proptest! {
        /// Encode, then decode with an independent reader (digits, then
        /// exactly N bytes): the same messages back, every prefix exact.
        #[test]
        fn length_prefixed_round_trip(msgs in proptest::collection::vec(
            proptest::collection::btree_map("[a-z_\"\\\\\u{e9}]{0,8}", "[ -~\u{1}\u{e9}]{0,40}", 0..5), 0..20)) {
            let jsons: Vec<Vec<u8>> = msgs.iter().map(|m| serde_json::to_vec(m).unwrap_or_default()).collect();
            let mut s = Vec::new();
            for j in &jsons {
                write_frame(&mut s, Framing::LengthPrefixed, j);
            }
            // Independent decoding.
            let mut at = 0;
            let mut back = Vec::new();
            while at < s.len() {
                let d = s[at..].iter().take_while(|b| b.is_ascii_digit()).count();
                let n: usize = std::str::from_utf8(&s[at..at + d]).unwrap_or("x").parse().unwrap_or(usize::MAX);
                at += d;
                let body = &s[at..at + n];
                let v: std::collections::BTreeMap<String, String> = serde_json::from_slice(body).unwrap_or_default();
                back.push(v);
                at += n;
            }
            proptest::prop_assert_eq!(&back, &msgs);
            // And this module's reader agrees.
            proptest::prop_assert_eq!(read_all(&s).map_err(|e| e.to_string()).unwrap_or_default(), jsons);
        }
    }
}
