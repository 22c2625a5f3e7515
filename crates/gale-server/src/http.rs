//! The HTTP/1.1 server under the application: the accept loop, TLS, and the
//! limits that keep slow or idle clients from holding the server.
//!
//! - At most [`HttpLimits::max_connections`] connections are open at once:
//!   the loop does not accept another until one closes (the rest wait in the
//!   kernel's backlog).
//! - A connection must send a whole request head within
//!   [`HttpLimits::header_timeout`] of its first byte (or of opening, or of
//!   its TLS handshake starting), or it is closed.
//! - A kept-alive connection with no request for
//!   [`HttpLimits::idle_timeout`] is closed.
//! - A request not answered within [`HttpLimits::request_timeout`] gets a
//!   408 (the time covers reading its body and the handler).
//!
//! Each request carries the peer's address ([`axum::extract::ConnectInfo`])
//! and the address it came in on ([`LocalAddr`]) as extensions.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::error::ApiError;

/// How long requests in flight may finish after a shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Timeouts and the connection cap of the webserver.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The address a request came in on (the listener's).
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub SocketAddr);

/// Where a connection is: its deadline follows from it.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's first byte (`fresh`: the connection's first).
    Idle { since: Instant, fresh: bool },
    /// Reading a request head that has begun.
    Head { since: Instant },
    /// Requests being answered (their bodies not yet all sent).
    Busy { requests: usize },
}

struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    limits: HttpLimits,
}

impl Activity {
    fn new(limits: HttpLimits) -> Activity {
        Activity {
            phase: Mutex::new(Phase::Idle {
                since: Instant::now(),
                fresh: true,
            }),
            changed: Notify::new(),
            limits,
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = f(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn read_some(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.update(|p| match p {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            _ => Phase::Busy { requests: 1 },
        });
    }

    fn request_done(&self) {
        self.update(|p| match p {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                since: Instant::now(),
                fresh: false,
            },
        });
    }

    fn deadline(&self) -> Option<Instant> {
        let l = self.limits;
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Idle { since, fresh: true } => Some(since + l.header_timeout),
            Phase::Idle { since, .. } => Some(since + l.idle_timeout),
            Phase::Head { since } => Some(since + l.header_timeout),
            Phase::Busy { .. } => None,
        }
    }

    /// Ends when the connection's deadline passes.
    async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A stream that tells its connection's [`Activity`] when bytes arrive.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Marks its request done when dropped (with the response body, once sent).
struct Done(Arc<Activity>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// Serves `app` on `listener` until `cancel`, then lets requests in flight
/// finish for up to 5 s.
pub async fn serve(
    app: Router,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let tls = tls.map(|config| {
        // HTTP/1.1 only: the limits above are enforced on it.
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            _ = cancel.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            app: app.clone(),
            peer,
            local,
            limits,
            cancel: cancel.clone(),
            _slot: slot,
        };
        match tls.clone() {
            None => {
                tokio::spawn(conn.serve(tcp));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake = acceptor.accept(tcp);
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(conn.limits.header_timeout, handshake).await
                    {
                        conn.serve(stream).await;
                    }
                });
            }
        }
    }
    drop(listener);
    // Every connection holds a slot: all of them back means all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), async {
        slots.acquire_many(all).await.map(|p| p.forget())
    })
    .await;
    Ok(())
}

/// One accepted connection.
struct Conn {
    app: Router,
    peer: SocketAddr,
    local: SocketAddr,
    limits: HttpLimits,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new(self.limits));
        let io = Watched {
            inner: io,
            activity: activity.clone(),
        };
        let (app, peer, local) = (self.app.clone(), self.peer, self.local);
        let request_timeout = self.limits.request_timeout;
        let on_request = activity.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                on_request.request_started();
                let done = Done(on_request.clone());
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(LocalAddr(local));
                let answer = app.clone().oneshot(req);
                async move {
                    let res = match tokio::time::timeout(request_timeout, answer).await {
                        Ok(Ok(res)) => res,
                        Ok(Err(never)) => match never {},
                        Err(_) => ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the request was not answered within {} s",
                                request_timeout.as_secs_f64()
                            ),
                        )
                        .into_response(),
                    };
                    // The request is done when its body has been sent (or
                    // dropped): the closure owns `done` until then.
                    Ok::<_, std::convert::Infallible>(res.map(|body| {
                        axum::body::Body::new(body.map_frame(move |frame| {
                            let _ = &done;
                            frame
                        }))
                    }))
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The head's deadline is kept above (from its first byte); hyper's
        // own would start when the connection goes idle.
        builder.timer(TokioTimer::new()).header_read_timeout(None);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = activity.expired() => {}
            _ = self.cancel.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
            }
        }
    }
}
