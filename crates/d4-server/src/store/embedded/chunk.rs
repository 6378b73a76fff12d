//! Queue items stored a chunk at a time: the items one commit pushes to a
//! queue, in order, as one value of the `queue_chunks` table, keyed by the
//! queue UUID and the number of the chunk's first item (see
//! [`item_key`]). One B-tree insert per chunk instead of one per item is
//! what makes line types (one item per line) cheap.
//!
//! A chunk is `[1][count: u32 LE][end offset of each item: u32 LE ...][items]`,
//! so any item is read without looking at the others. Chunks of a queue are
//! contiguous: a chunk covers the numbers from its key up to the next
//! chunk's key (the last one up to the queue's tail). Items below the
//! queue's head are gone even while their chunk is still stored: a chunk
//! is deleted once every item in it is below the head (popped, acknowledged
//! or dropped by `max_size`), in the transaction that moves the head.

use anyhow::{bail, Result};
use redb::{ReadableTable, Table};

use crate::store::db::item_key;

/// Most items in one chunk.
pub(crate) const CHUNK_ITEMS: usize = 1024;
/// A chunk is closed once its items hold this many bytes (one item may be
/// bigger: it is then a chunk of its own).
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

/// The format byte of a chunk.
const FORMAT: u8 = 1;
/// Bytes before the offsets.
const HEAD: usize = 5;

/// Encodes `items` as one chunk into `out` (cleared first).
pub(crate) fn encode<T: AsRef<[u8]>>(items: &[T], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let data: usize = items.iter().map(|i| i.as_ref().len()).sum();
    let Ok(count) = u32::try_from(items.len()) else {
        bail!("too many items for one chunk: {}", items.len());
    };
    if u32::try_from(data).is_err() {
        bail!("too many bytes for one chunk: {data}");
    }
    out.reserve(HEAD + 4 * items.len() + data);
    out.push(FORMAT);
    out.extend_from_slice(&count.to_le_bytes());
    let mut end = 0u32;
    for i in items {
        // Cannot overflow: the sum fits in a u32 (checked above).
        end += i.as_ref().len() as u32;
        out.extend_from_slice(&end.to_le_bytes());
    }
    for i in items {
        out.extend_from_slice(i.as_ref());
    }
    Ok(())
}

/// A stored chunk, read in place.
pub(crate) struct Chunk<'a> {
    /// Item end offsets (4 bytes each).
    ends: &'a [u8],
    /// The items, one after the other.
    data: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// Reads a chunk's header (the items are checked as they are read).
    pub(crate) fn parse(v: &'a [u8]) -> Result<Chunk<'a>> {
        if v.len() < HEAD || v[0] != FORMAT {
            bail!("a queue chunk is corrupt (format)");
        }
        let count = u32::from_le_bytes([v[1], v[2], v[3], v[4]]) as usize;
        let Some(rest) = v.get(HEAD..) else {
            bail!("a queue chunk is corrupt (short)");
        };
        if rest.len() / 4 < count {
            bail!("a queue chunk is corrupt (count)");
        }
        let (ends, data) = rest.split_at(4 * count);
        Ok(Chunk { ends, data })
    }

    /// Items in the chunk.
    pub(crate) fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// Item `i` (`None` past the end, or if the chunk is corrupt there).
    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = |j: usize| -> Option<usize> {
            let b = self.ends.get(4 * j..4 * j + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let start = if i == 0 { 0 } else { end(i - 1)? };
        let stop = end(i)?;
        self.data.get(start..stop)
    }
}

/// The table of chunks.
pub(crate) type Chunks<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Appends `items` to queue `queue` from number `tail` on, in chunks of at
/// most [`CHUNK_ITEMS`] items and about [`CHUNK_BYTES`] bytes; `buf` is
/// reused between calls.
pub(crate) fn append<T: AsRef<[u8]>>(
    t: &mut Chunks<'_>,
    queue: &[u8; 16],
    mut tail: u64,
    items: &[T],
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut rest = items;
    while !rest.is_empty() {
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len() && n < CHUNK_ITEMS && (n == 0 || bytes < CHUNK_BYTES) {
            bytes += rest[n].as_ref().len();
            n += 1;
        }
        let (now, later) = rest.split_at(n);
        encode(now, buf)?;
        t.insert(item_key(queue, tail).as_slice(), buf.as_slice())?;
        tail += n as u64;
        rest = later;
    }
    Ok(())
}

/// Visits the items of `queue` numbered `from` and above, in order, while
/// `f` returns `true`. Numbers that have no item (there are none in a
/// consistent store) are skipped.
pub(crate) fn scan<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    queue: &[u8; 16],
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> bool,
) -> Result<()> {
    let lo = item_key(queue, 0);
    let hi = item_key(queue, u64::MAX);
    // The chunk holding `from`: the last one starting at or below it.
    let start = match t
        .range(lo.as_slice()..=item_key(queue, from).as_slice())?
        .next_back()
    {
        Some(e) => key_seq(e?.0.value()),
        None => from,
    };
    for e in t.range(item_key(queue, start).as_slice()..=hi.as_slice())? {
        let (k, v) = e?;
        let first = key_seq(k.value());
        let c = Chunk::parse(v.value())?;
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        for i in skip..c.len() {
            let Some(item) = c.get(i) else {
                bail!("a queue chunk is corrupt (offsets)");
            };
            if !f(first + i as u64, item) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Deletes the chunks of `queue` whose items are all below `head` (every
/// chunk if the queue is empty, `head >= tail`).
pub(crate) fn drop_below(t: &mut Chunks<'_>, queue: &[u8; 16], head: u64, tail: u64) -> Result<()> {
    let lo = item_key(queue, 0);
    if head >= tail {
        clear(t, queue)?;
        return Ok(());
    }
    let holding = match t
        .range(lo.as_slice()..=item_key(queue, head).as_slice())?
        .next_back()
    {
        Some(e) => key_seq(e?.0.value()),
        None => return Ok(()),
    };
    if holding > 0 {
        t.retain_in(
            lo.as_slice()..item_key(queue, holding).as_slice(),
            |_, _| false,
        )?;
    }
    Ok(())
}

/// Deletes every chunk of `queue`.
pub(crate) fn clear(t: &mut Chunks<'_>, queue: &[u8; 16]) -> Result<()> {
    let lo = item_key(queue, 0);
    let hi = item_key(queue, u64::MAX);
    t.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)?;
    Ok(())
}

/// The item number in a chunk key (0 if the key is malformed).
fn key_seq(k: &[u8]) -> u64 {
    k.get(16..24)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    #[test]
    fn encode_and_read_back() {
        let items: Vec<&[u8]> = vec![b"one", b"", b"three", b"4"];
        let mut buf = Vec::new();
        encode(&items, &mut buf).unwrap();
        let c = Chunk::parse(&buf).unwrap();
        assert_eq!(c.len(), 4);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(c.get(i).unwrap(), *item);
        }
        assert!(c.get(4).is_none());
        encode::<&[u8]>(&[], &mut buf).unwrap();
        assert_eq!(Chunk::parse(&buf).unwrap().len(), 0);
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        assert!(Chunk::parse(b"").is_err());
        assert!(Chunk::parse(b"\x02\0\0\0\0").is_err());
        assert!(Chunk::parse(b"\x01\x05\0\0\0").is_err());
        // An offset past the data: that item is missing, no panic.
        let c = Chunk::parse(b"\x01\x02\0\0\0\x02\0\0\0\xff\0\0\0ab").unwrap();
        assert_eq!(c.get(0), Some(&b"ab"[..]));
        assert_eq!(c.get(1), None);
        // Offsets going backwards.
        let c = Chunk::parse(b"\x01\x02\0\0\0\x02\0\0\0\x01\0\0\0ab").unwrap();
        assert_eq!(c.get(1), None);
    }

    #[test]
    fn append_scan_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let def = redb::TableDefinition::<&[u8], &[u8]>::new("c");
        let q = [7u8; 16];
        let other = [8u8; 16];
        let items: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("item {i}").into_bytes())
            .collect();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(def).unwrap();
            let mut buf = Vec::new();
            append(&mut t, &q, 0, &items[..2500], &mut buf).unwrap();
            append(&mut t, &q, 2500, &items[2500..], &mut buf).unwrap();
            append(&mut t, &other, 0, &items[..1], &mut buf).unwrap();
            // 1024 + 1024 + 452, then 500: four chunks.
            assert_eq!(t.len().unwrap(), 5);
            let mut seen = Vec::new();
            scan(&t, &q, 1500, |n, v| {
                seen.push((n, v.to_vec()));
                seen.len() < 1200
            })
            .unwrap();
            assert_eq!(seen.len(), 1200);
            assert_eq!(seen[0], (1500, b"item 1500".to_vec()));
            assert_eq!(seen[1199], (2699, b"item 2699".to_vec()));
            drop_below(&mut t, &q, 2100, 3000).unwrap();
            // The chunk starting at 2048 holds 2100; those below it went.
            assert_eq!(t.len().unwrap(), 3);
            let mut first = None;
            scan(&t, &q, 2100, |n, v| {
                first = Some((n, v.to_vec()));
                false
            })
            .unwrap();
            assert_eq!(first, Some((2100, b"item 2100".to_vec())));
            drop_below(&mut t, &q, 3000, 3000).unwrap();
            assert_eq!(t.len().unwrap(), 1, "the other queue's chunk stays");
        }
        tx.commit().unwrap();
    }
}
