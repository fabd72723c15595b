//! A connection whose writes wait at most a while for the client to read.
//!
//! hyper times the reading of a request's head, not the writing of an answer: a client that
//! sends requests and never reads held its connection, and its slot of
//! `server.max_connections`, for good. [`WriteTimeout`] fails a write (or flush) that has
//! made no progress for the timeout; hyper then closes the connection. A client that reads
//! slowly but steadily is not cut off: each write that goes through starts the wait anew.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner` with writes that fail after `timeout` without progress.
pub(super) struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Running while a write waits for the client; none while writes go through.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    pub(super) fn new(inner: S, timeout: Duration) -> WriteTimeout<S> {
        WriteTimeout {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// A write's outcome, with the wait timed: ready clears it, pending starts it (once)
    /// and turns into an error when it runs out.
    fn timed<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.waiting = None;
            return r;
        }
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for server.timeout_seconds",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.timed(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.timed(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.timed(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.timed(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// On tokio's paused clock: a write to a peer that reads nothing fails after the
    /// timeout; one to a peer that reads a little now and then, never.
    #[tokio::test(start_paused = true)]
    async fn a_write_fails_only_after_the_timeout_without_progress() {
        let timeout = Duration::from_secs(10);
        let (ours, _silent) = tokio::io::duplex(64);
        let mut ours = WriteTimeout::new(ours, timeout);
        let start = tokio::time::Instant::now();
        let e = ours.write_all(&[0; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), timeout);

        let (ours, mut slow) = tokio::io::duplex(64);
        let mut ours = WriteTimeout::new(ours, timeout);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0; 64];
            while got < 4096 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                got += slow.read(&mut buf).await.unwrap();
            }
            got
        });
        ours.write_all(&[0; 4096]).await.unwrap();
        drop(ours);
        assert_eq!(reader.await.unwrap(), 4096);
    }
}
