//! The HTTP(S) listener with limits: hyper's HTTP/1.1 connection driven by our own accept
//! loop (axum's `serve` sets no timer, so a client that never finishes its headers was kept
//! for ever; 500 of them took every file descriptor).
//!
//! - Connections: at most `http.max_connections` open, `http.max_connections_per_address`
//!   from one address (IPv6: one /64); further ones are closed at accept (counted).
//! - Timeouts: the TLS handshake and each request's headers within `http.header_timeout_s`
//!   (hyper's header-read timeout, which also bounds the keep-alive wait between requests);
//!   a request, its body included, handled within `http.request_timeout_s` (408); a
//!   connection on which no byte moved either way for `http.idle_timeout_s` is closed (the
//!   live stream sends a keep-alive comment every 15 s, so it stays open).
//! - `Host`: a browser request (no bearer token) whose `Host` is not a name of this server
//!   ([`crate::state::auth::host_ok`]) is refused with 421 (DNS rebinding); `/health` is exempt.
//! - Each request carries the peer address (`axum::extract::ConnectInfo<SocketAddr>`), used
//!   by the sign-in back-off.
//!
//! Defaults (`[http]`): `max_connections` 1,024, `max_connections_per_address` 128,
//! `header_timeout_s` 10, `request_timeout_s` 30, `idle_timeout_s` 60. The open-file limit must
//! cover `http.max_connections + 3 x broker.max_connections + 256` (three descriptors per MQTT
//! connection at the gate): the server warns at start when `/proc/self/limits` is lower, and the
//! systemd unit sets `LimitNOFILE`.

use crate::app::App;
use crate::base::metrics::inc;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// The timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub request: Duration,
    pub idle: Duration,
}

impl Timeouts {
    pub fn of(c: &crate::config::HttpConfig) -> Timeouts {
        Timeouts {
            header: Duration::from_secs(c.header_timeout_s),
            request: Duration::from_secs(c.request_timeout_s),
            idle: Duration::from_secs(c.idle_timeout_s),
        }
    }
}

/// A stream that records when a byte last moved either way.
struct Watched<S> {
    inner: S,
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<axum::body::Body> {
    let mut r = Response::new(axum::body::Body::from(
        serde_json::json!({"error": text}).to_string(),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Whether a request may go on to the router (the `Host` check).
fn host_allowed(app: &App, req: &Request<Incoming>) -> bool {
    if req.uri().path() == "/health" {
        return true;
    }
    let h = req.headers();
    if h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return true; // a page cannot hold the token: not a rebinding vector
    }
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    crate::state::auth::host_ok(
        host,
        &app.config.http.allowed_hosts,
        &app.config.http.allowed_origins,
    )
}

/// Serves `router` on `listener` (HTTPS when `tls` is set) until `stop`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let timeouts = Timeouts::of(&app.config.http);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (sock, peer) = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait for descriptors to come back.
                    tracing::warn!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match app.security.http_conns.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(e) => {
                inc(&app.metrics.http_connections_refused_total, 1);
                tracing::debug!(%peer, "http: connection refused: {e}");
                drop(sock);
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let (app, router, acceptor, stop) =
            (app.clone(), router.clone(), acceptor.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(sock, peer, router, app, timeouts, stop).await,
                Some(a) => match tokio::time::timeout(timeouts.header, a.accept(sock)).await {
                    Ok(Ok(s)) => connection(s, peer, router, app, timeouts, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "https: TLS handshake failed: {e}"),
                    Err(_) => {
                        inc(&app.metrics.http_timeouts_total, 1);
                        tracing::debug!(%peer, "https: TLS handshake timed out");
                    }
                },
            }
        });
    }
}

async fn connection<S>(
    io: S,
    peer: SocketAddr,
    router: Router,
    app: Arc<App>,
    t: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let last_ms = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let io = Watched {
        inner: io,
        start,
        last_ms: last_ms.clone(),
    };
    let svc_app = app.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (router, app) = (router.clone(), svc_app.clone());
        async move {
            if !host_allowed(&app, &req) {
                return Ok::<_, std::convert::Infallible>(plain(
                    StatusCode::MISDIRECTED_REQUEST,
                    "unknown host: add it to http.allowed_hosts",
                ));
            }
            req.extensions_mut().insert(ConnectInfo(peer));
            match tokio::time::timeout(t.request, router.oneshot(req)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    inc(&app.metrics.http_timeouts_total, 1);
                    Ok(plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "request not completed in time",
                    ))
                }
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(t.header)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut check = tokio::time::interval(Duration::from_secs(1).min(t.idle));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle_ms = t.idle.as_millis() as u64;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        inc(&app.metrics.http_timeouts_total, 1);
                    }
                    tracing::debug!(%peer, "http connection: {e}");
                }
                return;
            }
            _ = check.tick() => {
                let quiet = (start.elapsed().as_millis() as u64)
                    .saturating_sub(last_ms.load(Ordering::Relaxed));
                if quiet >= idle_ms {
                    inc(&app.metrics.http_timeouts_total, 1);
                    tracing::debug!(%peer, "http connection idle for {quiet} ms: closed");
                    return;
                }
            }
            _ = crate::base::stop::stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
                return;
            }
        }
    }
}
