//! Connection limits: Vault's `http_*` listener timeouts, the TLS handshake timeout, the
//! connection cap and the accept back-off.
//!
//! hyper's own header timeout is not used: it starts again as soon as a keep-alive connection
//! goes idle, so an idle connection would be closed after `http_read_header_timeout` instead of
//! `http_idle_timeout`. Instead every connection has a [`ConnWatch`] that follows it through
//! three phases, as Go's `net/http` (and so Vault) does:
//!
//! ```text
//!   Head ── request headers parsed ──▶ Busy ── last request handled ──▶ Idle
//!    ▲  (http_read_header_timeout)     (no limit here; the body     (http_idle_timeout)
//!    │                                  read has http_read_timeout)     │
//!    └──────────────────── first byte of the next request ──────────────┘  (HTTP/1 only)
//! ```
//!
//! A connection starts in `Head` once its TLS handshake is done. A `Head` deadline closes the
//! connection at once (a slowloris client gets no answer, as from Go); an `Idle` deadline shuts
//! it down gracefully (HTTP/2 `GOAWAY`), then closes it after [`CLOSE_GRACE`]. On HTTP/2 only
//! requests move the phases: frames between requests (pings, window updates) do not keep a
//! connection alive. Response writes that make no progress for `http_write_timeout` fail the
//! connection ([`Watched`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How long an idle connection that was asked to shut down may take to do so.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// First and largest pause after a failed `accept` (Go's `net/http` uses the same).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The limits of one listener (the server fills them from its configuration, whose defaults are
/// Vault's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// From the first byte of a request (or the connection's start) to its last header byte.
    pub read_header_timeout: Duration,
    /// From the end of the headers to the end of the body, waiting for body budget included.
    pub read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a response write may make no progress; `None`: no limit (Vault's default).
    pub write_timeout: Option<Duration>,
    pub tls_handshake_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

/// Which deadline of a connection has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `http_read_header_timeout`: close now.
    Header,
    /// `http_idle_timeout`: shut down gracefully.
    Idle,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Busy,
    Head { since: Instant },
    Idle { since: Instant },
}

struct WatchState {
    phase: Phase,
    in_flight: usize,
    h2: bool,
}

/// Where one connection is in its life, shared by its IO wrapper, its service and its watchdog.
pub struct ConnWatch {
    state: Mutex<WatchState>,
    /// Signalled when a deadline may have moved earlier.
    changed: Notify,
}

impl Default for ConnWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnWatch {
    /// A connection that has just started: waiting for its first request's headers.
    pub fn new() -> Self {
        Self::started_at(Instant::now())
    }

    fn started_at(now: Instant) -> Self {
        Self {
            state: Mutex::new(WatchState { phase: Phase::Head { since: now }, in_flight: 0, h2: false }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        // The critical sections only assign fields; a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: on an idle HTTP/1 connection, the next request has started.
    pub fn on_read(&self) {
        self.read_at(Instant::now())
    }

    fn read_at(&self, now: Instant) {
        let mut st = self.lock();
        if let (Phase::Idle { .. }, false) = (st.phase, st.h2) {
            st.phase = Phase::Head { since: now };
            drop(st);
            self.changed.notify_one();
        }
    }

    /// Response bytes were written: an HTTP/1 connection still sending a response is not idle.
    pub fn on_write(&self) {
        self.wrote_at(Instant::now())
    }

    fn wrote_at(&self, now: Instant) {
        let mut st = self.lock();
        if let (Phase::Idle { .. }, false) = (st.phase, st.h2) {
            st.phase = Phase::Idle { since: now };
        }
    }

    /// A request's headers have been parsed and its handler starts.
    pub fn request_started(&self, version: http::Version) {
        let mut st = self.lock();
        st.in_flight += 1;
        st.h2 |= version == http::Version::HTTP_2;
        st.phase = Phase::Busy;
    }

    /// A request's handler has finished.
    pub fn request_finished(&self) {
        self.finished_at(Instant::now())
    }

    fn finished_at(&self, now: Instant) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            st.phase = Phase::Idle { since: now };
            drop(st);
            self.changed.notify_one();
        }
    }

    /// When the current phase ends, if it has a limit.
    pub fn deadline(&self, limits: &ConnLimits) -> Option<(Instant, Expiry)> {
        match self.lock().phase {
            Phase::Busy => None,
            Phase::Head { since } => {
                since.checked_add(limits.read_header_timeout).map(|t| (t, Expiry::Header))
            }
            Phase::Idle { since } => since.checked_add(limits.idle_timeout).map(|t| (t, Expiry::Idle)),
        }
    }

    /// Resolves when a deadline may have moved earlier (a phase changed).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// Marks a request as in flight on its connection until dropped (also when the handler's
/// future is dropped because the connection went away).
pub struct InFlight(Arc<ConnWatch>);

impl InFlight {
    pub fn start(watch: &Arc<ConnWatch>, version: http::Version) -> Self {
        watch.request_started(version);
        Self(Arc::clone(watch))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A connection's byte stream, reporting reads and writes to its [`ConnWatch`] and failing
/// writes that make no progress for the write timeout.
pub struct Watched<S> {
    inner: S,
    watch: Arc<ConnWatch>,
    write_timeout: Option<Duration>,
    /// Armed while a write is pending.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, watch: Arc<ConnWatch>, write_timeout: Option<Duration>) -> Self {
        Self { inner, watch, write_timeout, write_stall: None }
    }

    /// `Pending` while the write timeout has not passed; an error once it has.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(limit) = self.write_timeout else { return Poll::Pending };
        let sleep = self.write_stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response write made no progress within http_write_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
        progressed: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.poll_stalled(cx),
            Poll::Ready(Ok(v)) => {
                self.write_stall = None;
                if progressed(&v) {
                    self.watch.on_write();
                }
                Poll::Ready(Ok(v))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            if buf.filled().len() > before {
                this.watch.on_read();
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, r, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, r, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.after_write(cx, r, |_| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.after_write(cx, r, |_| false)
    }
}

/// Whether a failed `accept` concerns only the connection being accepted (the peer gave up),
/// so the next `accept` may be tried at once.
pub fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// The pause after a failed `accept` (`EMFILE`, `ENFILE`, `ENOBUFS`...): doubles from
/// [`ACCEPT_BACKOFF_MIN`] up to [`ACCEPT_BACKOFF_MAX`], so a server out of file descriptors
/// does not spin.
pub fn accept_backoff(previous: Option<Duration>) -> Duration {
    match previous {
        None => ACCEPT_BACKOFF_MIN,
        Some(d) => (d * 2).min(ACCEPT_BACKOFF_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            write_timeout: None,
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }

    #[test]
    fn accept_backoff_doubles_up_to_a_second() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = accept_backoff(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, vec![5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    #[tokio::test]
    async fn a_stalled_write_fails_after_the_write_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(64);
        let watch = Arc::new(ConnWatch::new());
        let mut io = Watched::new(near, Arc::clone(&watch), Some(Duration::from_millis(200)));
        // The peer reads nothing: the write stalls once the 64-byte pipe is full.
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(10), io.write_all(&[0u8; 1024]))
            .await
            .expect("the write timeout ends the write")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Without a write timeout a stalled write just waits; progress is activity.
        let (near, mut far2) = tokio::io::duplex(64);
        let mut io = Watched::new(near, Arc::clone(&watch), None);
        let write = io.write_all(&[0u8; 128]);
        tokio::pin!(write);
        tokio::select! {
            biased;
            r = write.as_mut() => panic!("a stalled write finished: {r:?}"),
            _ = std::future::ready(()) => {}
        }
        let mut sink = [0u8; 128];
        let (read, written) = tokio::join!(far2.read_exact(&mut sink), write);
        read.unwrap();
        written.unwrap();
        drop(far.read(&mut sink).await);
    }

    #[test]
    fn phases_follow_requests() {
        let limits = limits();
        let base = Instant::now();
        let t = |secs: u64| base + Duration::from_secs(secs);
        let start = t(0);
        let w = ConnWatch::started_at(start);
        let header_deadline = Some((start + limits.read_header_timeout, Expiry::Header));
        assert_eq!(w.deadline(&limits), header_deadline);
        w.read_at(t(1));
        assert_eq!(w.deadline(&limits), header_deadline, "reads do not extend the header deadline");
        w.request_started(http::Version::HTTP_11);
        assert_eq!(w.deadline(&limits), None, "no connection deadline while a request is handled");
        w.finished_at(t(60));
        assert_eq!(w.deadline(&limits), Some((t(60) + limits.idle_timeout, Expiry::Idle)));
        w.wrote_at(t(61));
        assert_eq!(
            w.deadline(&limits),
            Some((t(61) + limits.idle_timeout, Expiry::Idle)),
            "writing a response is activity"
        );
        w.read_at(t(200));
        assert_eq!(
            w.deadline(&limits),
            Some((t(200) + limits.read_header_timeout, Expiry::Header)),
            "the next request's first byte starts the header deadline"
        );
    }

    #[test]
    fn h2_frames_between_requests_do_not_keep_a_connection() {
        let limits = limits();
        let base = Instant::now();
        let t = |secs: u64| base + Duration::from_secs(secs);
        let w = ConnWatch::started_at(t(0));
        w.request_started(http::Version::HTTP_2);
        w.request_started(http::Version::HTTP_2);
        w.finished_at(t(0));
        assert_eq!(w.deadline(&limits), None, "a stream is still in flight");
        w.finished_at(t(1));
        w.read_at(t(30));
        w.wrote_at(t(31));
        assert_eq!(w.deadline(&limits), Some((t(1) + limits.idle_timeout, Expiry::Idle)));
    }
}
