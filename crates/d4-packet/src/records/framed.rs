//! The shape pcap records, pcapng blocks and IPFIX messages share: a
//! fixed-size header, read in any split, that gives the length of a body
//! which is then passed over. Only the `N` header bytes are buffered.

/// Where a stream of header-then-body records stands.
#[derive(Clone, Debug)]
pub(super) struct Framed<const N: usize> {
    /// The header while it arrives.
    head: [u8; N],
    /// How much of `head` is filled.
    filled: usize,
    /// Bytes of the current body still to come.
    remaining: usize,
}

impl<const N: usize> Default for Framed<N> {
    fn default() -> Self {
        Framed {
            head: [0; N],
            filled: 0,
            remaining: 0,
        }
    }
}

/// What one [`Framed::step`] went over.
pub(super) enum Step<'a, const N: usize> {
    /// Body bytes passed over; `ended` once the body is complete.
    Body {
        /// The bytes, for a caller that keeps them.
        bytes: &'a [u8],
        /// Whether the body ended with them.
        ended: bool,
    },
    /// The header is whole: the caller gives the body's length with
    /// [`Framed::body`].
    Head([u8; N]),
    /// The input ended inside the header ([`Framed::partial`] holds it).
    Partial,
}

impl<const N: usize> Framed<N> {
    /// Goes over `data[*pos..]` (not empty) up to the end of the body under
    /// way, or of the header, or of `data`; advances `pos`.
    pub(super) fn step<'a>(&mut self, data: &'a [u8], pos: &mut usize) -> Step<'a, N> {
        let rest = &data[*pos..];
        if self.remaining > 0 {
            let take = self.remaining.min(rest.len());
            self.remaining -= take;
            *pos += take;
            return Step::Body {
                bytes: &rest[..take],
                ended: self.remaining == 0,
            };
        }
        let take = (N - self.filled).min(rest.len());
        self.head[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
        self.filled += take;
        *pos += take;
        if self.filled < N {
            return Step::Partial;
        }
        self.filled = 0;
        Step::Head(self.head)
    }

    /// The header bytes read so far (after [`Step::Partial`]).
    pub(super) fn partial(&self) -> &[u8] {
        &self.head[..self.filled]
    }

    /// Sets the length of the body after a [`Step::Head`]; true when it is
    /// empty (the record ended with its header).
    pub(super) fn body(&mut self, len: usize) -> bool {
        self.remaining = len;
        len == 0
    }
}
