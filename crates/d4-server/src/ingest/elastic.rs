//! Elastic buffers for a session's input: small while a sensor is quiet,
//! grown while its traffic fills them, given back when it parks.
//!
//! rustls reads the socket 4 KiB at a time; [`ElasticReader`] sits between
//! it and the socket so that a busy stream costs one system call per
//! 128 KiB. Its buffer is allocated on the first read (4 KiB), doubles each
//! time a read fills it (up to 128 KiB) and is freed by
//! [`ElasticReader::release`] once the session parks. [`Chunk`] does the
//! same for the room the session makes in the frame decoder before each
//! read (4 KiB to 64 KiB).
//!
//! While parked a session waits for the socket to become readable
//! ([`ElasticReader::readable`]) without holding either buffer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// First socket buffer, and the size after a park.
const SOCKET_MIN: usize = 4 * 1024;
/// Largest socket buffer (one system call per 128 KiB under load).
const SOCKET_MAX: usize = 128 * 1024;

/// A read buffer in front of a session's socket that grows with traffic and
/// is released when the session parks.
pub(crate) struct ElasticReader {
    inner: TcpStream,
    /// Read but not yet handed to rustls: `buf[pos..filled]`.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// The size of the next allocation.
    size: usize,
}

impl ElasticReader {
    /// Wraps a socket; nothing is allocated before the first read.
    pub(crate) fn new(inner: TcpStream) -> ElasticReader {
        ElasticReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            size: SOCKET_MIN,
        }
    }

    /// Frees the buffer if it holds nothing (the session parks); the next
    /// read starts small again. Returns whether it was freed.
    pub(crate) fn release(&mut self) -> bool {
        if self.pos < self.filled {
            return false;
        }
        self.buf = Vec::new();
        self.pos = 0;
        self.filled = 0;
        self.size = SOCKET_MIN;
        true
    }

    /// Bytes allocated for the buffer.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Waits until the socket has something to read (data, end of stream or
    /// an error), holding no buffer meanwhile.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await
    }
}

impl AsyncRead for ElasticReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.pos == me.filled {
            if out.remaining() >= SOCKET_MAX {
                // A read as large as the largest buffer needs none in between
                // (rustls's never are: they must grow the buffer).
                return Pin::new(&mut me.inner).poll_read(cx, out);
            }
            if me.buf.len() != me.size {
                me.buf = vec![0; me.size];
            }
            let mut rb = ReadBuf::new(&mut me.buf);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            me.pos = 0;
            me.filled = n;
            if n == me.size {
                // Traffic filled it: the next one is larger.
                me.size = (me.size * 2).min(SOCKET_MAX);
            }
        }
        let n = out.remaining().min(me.filled - me.pos);
        out.put_slice(&me.buf[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ElasticReader {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The room made in the frame decoder before each read: 4 KiB at first and
/// after a park, doubled each time a read fills it, up to 64 KiB.
#[derive(Debug)]
pub(crate) struct Chunk(usize);

impl Chunk {
    const MIN: usize = 4 * 1024;
    const MAX: usize = 64 * 1024;

    /// The smallest chunk.
    pub(crate) fn new() -> Chunk {
        Chunk(Chunk::MIN)
    }

    /// Bytes to reserve before the next read.
    pub(crate) fn get(&self) -> usize {
        self.0
    }

    /// A read returned `n` bytes into `room` bytes of space.
    pub(crate) fn read(&mut self, n: usize, room: usize) {
        if n > 0 && n >= room {
            self.0 = (self.0 * 2).min(Chunk::MAX);
        }
    }

    /// Back to the smallest chunk (the session parks).
    pub(crate) fn reset(&mut self) {
        self.0 = Chunk::MIN;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn grows_with_traffic_and_is_released_when_empty() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut tx = TcpStream::connect(addr).await.unwrap();
        let (rx, _) = l.accept().await.unwrap();
        let mut r = ElasticReader::new(rx);
        assert_eq!(r.capacity(), 0, "nothing before the first read");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let send = data.clone();
        let w = tokio::spawn(async move {
            tx.write_all(&send).await.unwrap();
            tx
        });
        // rustls's reads: 4 KiB at a time.
        let mut got = Vec::new();
        let mut most = 0;
        while got.len() < data.len() {
            let mut b = [0u8; 4096];
            let n = r.read(&mut b).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
            most = most.max(r.capacity());
        }
        assert_eq!(got, data);
        assert!(most > SOCKET_MIN, "grew under load: {most}");
        assert!(most <= SOCKET_MAX);
        assert!(r.release());
        assert_eq!(r.capacity(), 0);
        // Quiet: readable only once something arrives.
        let mut tx = w.await.unwrap();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(100), r.readable());
        assert!(quiet.await.is_err());
        tx.write_all(b"x").await.unwrap();
        r.readable().await.unwrap();
        let mut b = [0u8; 16];
        assert_eq!(r.read(&mut b).await.unwrap(), 1);
        assert_eq!(r.capacity(), SOCKET_MIN, "small again after a release");
    }

    #[test]
    fn chunk_doubles_when_filled_and_resets() {
        let mut c = Chunk::new();
        c.read(100, 4096);
        assert_eq!(c.get(), 4096);
        for _ in 0..10 {
            let room = c.get();
            c.read(room, room);
        }
        assert_eq!(c.get(), 64 * 1024);
        c.reset();
        assert_eq!(c.get(), 4096);
    }
}
