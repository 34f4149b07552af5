//! The listeners: plain TCP (HTTP/1.1 and h2c), TLS (HTTP/2 and HTTP/1.1 by
//! ALPN) and QUIC (HTTP/3), every connection setting explicit, and one drain
//! at shutdown.

mod drain;
mod h2;
mod http1_stream;
pub mod http3;
mod limits;
mod metrics;
mod preface;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::acme::{self, Acme, ACME_TLS_ALPN};
use crate::config::Config;
use crate::http::ClientAddr;
use crate::hub::Hub;
use crate::keys::Keys;
use crate::metrics::{Limit, Metrics, OpenConnection, Protocol};
use drain::{serve_until_stopped, stopped, Done};
use http1_stream::{HeadLimits, Prefixed, Sniffed};
use limits::{AcceptFailures, Admission, Admitted, Refusal};
use preface::Preface;
use tls::{CertFiles, Tls};

/// Time a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 PING interval, to notice peers that vanished.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may stay unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 (and HTTP/3) receive windows: publish bodies are small; streams
/// mostly send.
const STREAM_WINDOW: u32 = 256 << 10;
const CONNECTION_WINDOW: u32 = 1 << 20;
/// HTTP/2 streams a client may reset before their response started, beyond
/// the streams answered, on one connection, before the connection is
/// closed (GOAWAY `ENHANCE_YOUR_CALM`): the rapid reset attack
/// (CVE-2023-44487) opens and resets streams faster than they are served.
const MAX_EARLY_RESETS: usize = 20;
/// HTTP/2 streams the hub may reset for a client's errors on one
/// connection before closing it: a client cannot make it reset streams
/// without end (CVE-2025-8671).
const MAX_ERROR_RESETS: usize = 1024;
/// hyper's own limit of HTTP/1.1 header fields: set only when another is
/// configured, since hyper then allocates the headers of every request.
const HYPER_MAX_HEADERS: usize = 100;

/// A hub serving on its bound addresses.
pub struct RunningHub {
    /// The plain HTTP address (useful with port 0).
    pub addr: SocketAddr,
    /// The HTTPS address (TCP, and UDP for HTTP/3), if enabled.
    pub tls_addr: Option<SocketAddr>,
    /// The TLS state, if enabled.
    pub tls: Option<Arc<Tls>>,
    /// The metrics address (useful with port 0), if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The hub's shared state.
    pub hub: Arc<Hub>,
    /// The keys the hub verifies with.
    pub keys: Keys,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics_task: Option<JoinHandle<()>>,
    acme_task: Option<JoinHandle<()>>,
}

/// Loads keys and certificates, opens the log, binds every listener and
/// starts serving.
pub async fn start(config: Config) -> anyhow::Result<RunningHub> {
    let keys = Keys::load(&config.data_dir, &config.jwt)?;
    let (publisher, subscriber) = keys.verifiers(&config.jwt).await?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let mut listeners = vec![(listener, None)];
    let (mut tls, mut tls_addr, mut quic) = (None, None, None);
    let acme = config.acme.as_ref().map(|acme_config| {
        let cache = acme::Cache::new(&config.data_dir, &acme_config.directory);
        (acme_config.clone(), cache, Arc::new(Acme::default()))
    });
    if let Some(tls_listen) = config.server.tls_listen {
        let state = match &acme {
            Some((_, cache, acme)) => {
                let files = CertFiles {
                    cert: cache.certificate(),
                    key: cache.certificate(),
                    generated: false,
                };
                Arc::new(Tls::with_acme(files, acme.clone()))
            }
            None => Arc::new(Tls::load(CertFiles::resolve(
                config.tls.cert.as_deref(),
                config.tls.key.as_deref(),
                &config.data_dir,
            )?)?),
        };
        let listener = TcpListener::bind(tls_listen)
            .await
            .with_context(|| format!("cannot listen on {tls_listen} (--tls-listen)"))?;
        let bound = listener.local_addr()?;
        if config.server.http3 {
            quic = Some(http3::endpoint(
                bound,
                &state,
                config.limits.max_concurrent_streams,
            )?);
        }
        listeners.push((listener, Some(TlsAcceptor::from(state.tcp_config()))));
        tls_addr = Some(bound);
        tls = Some(state);
    }
    let metrics_listener = match config.server.metrics_listen {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let store = crate::history::open(&config)?;
    let alt_svc = quic.as_ref().and(tls_addr).map(|a| a.port());
    let acme_state = acme.as_ref().map(|(_, _, state)| state.clone());
    let hub = Hub::start(config, publisher, subscriber, store, acme_state);
    let (stop, stopped) = watch::channel(false);
    // The configuration refuses ACME without a TLS listener.
    let acme_task = acme.zip(tls.clone()).map(|((config, cache, state), tls)| {
        acme::spawn(config, cache, tls, state, stopped.clone())
    });
    let metrics_task =
        metrics_listener.map(|listener| metrics::serve(listener, hub.clone(), stopped.clone()));
    let task = tokio::spawn(serve(listeners, quic, hub.clone(), alt_svc, stopped));
    Ok(RunningHub {
        addr,
        tls_addr,
        tls,
        metrics_addr,
        hub,
        keys,
        stop,
        task,
        metrics_task,
        acme_task,
    })
}

impl RunningHub {
    /// Stops accepting, ends every stream, waits (bounded by the configured
    /// shutdown timeout) for connections to finish, and closes the log.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for task in self.metrics_task.into_iter().chain(self.acme_task) {
            let _ = task.await;
        }
        // Tasks may still hold the hub for a moment (a subscription event
        // being published): the log is closed now, so its directory is free
        // when this returns.
        self.hub.log.close().await;
    }
}

/// The settings of each protocol. The protocol of a connection is known
/// before it is served (ALPN, or the sniffed HTTP/2 preface): HTTP/1.1 by
/// hyper, HTTP/2 by the hub's own server (`h2`).
struct Builders {
    http1: http1::Builder,
    http2: Arc<h2::Config>,
}

fn connection_builders(hub: &Hub) -> Builders {
    let config = &hub.config;
    let limits = &config.limits;
    // Past the first request of a connection (read by `http1_stream`),
    // hyper holds the heads to the limits: 431 beyond the size (its read
    // buffer) or the count, the connection closed after the timeout.
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    let metrics = hub.metrics.clone();
    let http2 = Arc::new(h2::Config {
        max_concurrent_streams: limits.max_concurrent_streams,
        stream_window: STREAM_WINDOW,
        connection_window: CONNECTION_WINDOW,
        max_header_list_size: u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
        keepalive_interval: KEEPALIVE_INTERVAL,
        keepalive_timeout: KEEPALIVE_TIMEOUT,
        max_early_resets: MAX_EARLY_RESETS,
        max_error_resets: MAX_ERROR_RESETS,
        on_headers_too_large: Box::new(move || metrics.limits_hit.get(Limit::Headers).inc()),
    });
    Builders { http1, http2 }
}

/// Everything a connection task needs.
#[derive(Clone)]
struct Serving {
    builders: Arc<Builders>,
    router: axum::Router,
    hub: Arc<Hub>,
    admission: Arc<Admission>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    done: Done,
}

/// Serves every listener until `stop`. Responses on the TLS and QUIC ports
/// advertise HTTP/3 (`alt_svc`); the plain port does not, since `Alt-Svc`
/// there would point clients (or a proxy's clients) at the wrong origin.
async fn serve(
    listeners: Vec<(TcpListener, Option<TlsAcceptor>)>,
    quic: Option<quinn::Endpoint>,
    hub: Arc<Hub>,
    alt_svc: Option<u16>,
    mut stop: watch::Receiver<bool>,
) {
    let (done, mut all_done) = mpsc::channel(1);
    let builders = Arc::new(connection_builders(&hub));
    let admission = Arc::new(Admission::new(&hub.config.limits));
    for (listener, tls) in listeners {
        let router = crate::http::router(
            hub.clone(),
            alt_svc.filter(|_| tls.is_some()),
            tls.is_some(),
        );
        let serving = Serving {
            builders: builders.clone(),
            router,
            hub: hub.clone(),
            admission: admission.clone(),
            metrics: hub.metrics.clone(),
            stop: stop.clone(),
            done: done.clone(),
        };
        tokio::spawn(accept_loop(listener, tls, serving));
    }
    if let Some(endpoint) = quic {
        let router = crate::http::router(hub.clone(), alt_svc, true);
        let serving = http3::Serving {
            router,
            metrics: hub.metrics.clone(),
            stop: stop.clone(),
            done: done.clone(),
            admission,
            hub: hub.clone(),
        };
        tokio::spawn(http3::serve(endpoint, serving));
    }
    drop(done);
    stopped(&mut stop).await;
    // Ending every stream lets connections finish their responses.
    hub.shutdown();
    if tokio::time::timeout(hub.config.server.shutdown_timeout, all_done.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections were still open after {:?}",
            hub.config.server.shutdown_timeout
        );
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, serving: Serving) {
    let mut stop = serving.stop.clone();
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failures.accepted();
                    match serving.admission.admit(peer.ip(), &serving.hub.metrics) {
                        Ok(admitted) => {
                            let _ = stream.set_nodelay(true);
                            let serving = serving.clone();
                            // Two task types: a plain connection's task is
                            // not sized for the TLS states.
                            match &tls {
                                None => tokio::spawn(serve_http(stream, peer, serving, admitted)),
                                Some(acceptor) => tokio::spawn(serve_tls(
                                    stream,
                                    peer,
                                    acceptor.clone(),
                                    serving,
                                    admitted,
                                )),
                            };
                        }
                        Err(refusal) => turn_away(stream, refusal, tls.is_none(), &serving),
                    }
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    failures.failed(&e, &serving.hub.metrics);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// A connection over a limit is answered on the plain port (unless many
/// refusals are being answered already), and closed at once on the TLS
/// port: nothing can be answered there before a handshake, which is what a
/// flood would make the hub pay for. Open connections are not touched.
fn turn_away(stream: TcpStream, refusal: Refusal, plain: bool, serving: &Serving) {
    let Some(answering) = serving.admission.answering().filter(|_| plain) else {
        return;
    };
    tokio::spawn(async move {
        limits::answer(stream, &refusal.response()).await;
        drop(answering);
    });
}

/// Serves a connection to the TLS port: the handshake, then HTTP/2 or
/// HTTP/1.1 as ALPN chose. Every phase is boxed, so that this task stays
/// small and each phase's state is allocated only while it runs; so is the
/// TLS stream, once, so that the phases it passes through hold a pointer
/// each rather than room for its whole state.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    serving: Serving,
    admitted: Admitted,
) {
    let Some(stream) = Box::pin(handshake(stream, peer, acceptor)).await else {
        return;
    };
    match stream.get_ref().1.alpn_protocol() {
        // The CA validating a TLS-ALPN-01 challenge: the handshake was all.
        Some(ACME_TLS_ALPN) => {}
        Some(b"h2") => Box::pin(serve_http2(stream, peer, serving, admitted)).await,
        _ => Box::pin(serve_http(stream, peer, serving, admitted)).await,
    }
}

/// The TLS handshake (within [`HANDSHAKE_TIMEOUT`]), its stream boxed; plain
/// HTTP is answered with a clear error, and other failures are logged.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
) -> Option<Box<tokio_rustls::server::TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        // 0x16 starts a TLS handshake record.
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            refuse_plain_http(stream).await;
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Serves a TLS connection that chose HTTP/2, once it sent the HTTP/2
/// preface (within `--header-timeout`); anything else is answered with a
/// GOAWAY and closed (see `preface`). `_admitted` goes with it to the end.
async fn serve_http2<I>(io: I, peer: SocketAddr, serving: Serving, _admitted: Admitted)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = serving.hub.metrics.clone();
    match preface::read(io, serving.hub.config.limits.header_timeout).await {
        // Boxed, as in `serve_http`.
        Ok(Preface::Valid(io)) => Box::pin(serve_protocol(io, peer, serving)).await,
        Ok(Preface::Invalid(io)) => {
            tracing::debug!(%peer, "not an HTTP/2 connection preface after ALPN h2");
            limits::answer(io, &preface::refusal()).await;
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            metrics.limits_hit.get(Limit::HeaderTimeout).inc();
            tracing::debug!(%peer, "no HTTP/2 preface within --header-timeout");
        }
        Err(e) => tracing::debug!(%peer, "no HTTP/2 preface: {e}"),
    }
}

/// Answers plain HTTP sent to the TLS port with a clear error.
async fn refuse_plain_http(mut stream: TcpStream) {
    let response = limits::closing_response(
        "400 Bad Request",
        None,
        "This port speaks HTTPS: use https:// (plain HTTP is served on --listen).\n",
    );
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.write_all(&response)).await;
    let _ = stream.shutdown().await;
}

/// Serves a connection; `admitted` (its places among the connection
/// limits) goes with it to the end, whichever task that is in.
async fn serve_http<I>(io: I, peer: SocketAddr, serving: Serving, admitted: Admitted)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &serving.hub.config.limits;
    let head = HeadLimits {
        timeout: config.header_timeout,
        max_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
    };
    let hit = |limit| serving.hub.metrics.limits_hit.get(limit).inc();
    match http1_stream::sniff(io, head).await {
        Ok(Sniffed::Stream(io, mut request)) => {
            mark_peer(&mut request, peer);
            // Counted open for as long as the stream, whose task holds it.
            let open = OpenConnection::new(&serving.metrics, Protocol::H1);
            let done = (serving.done, admitted, open);
            http1_stream::serve_stream(io, request, serving.router, done).await
        }
        // Boxed: the connection state of HTTP/2 or hyper is allocated only for those connections.
        Ok(Sniffed::Other(io)) => Box::pin(serve_protocol(io, peer, serving)).await,
        Ok(Sniffed::TooLarge(io)) => {
            hit(Limit::Headers);
            limits::answer(io, &limits::head_too_large()).await;
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            hit(Limit::HeaderTimeout);
            tracing::debug!(%peer, "no request head within --header-timeout");
        }
        Err(e) => tracing::debug!(%peer, "no request: {e}"),
    }
}

/// Serves a connection whose protocol is known: HTTP/2 by the hub's own
/// server, HTTP/1.1 by hyper.
async fn serve_protocol<I>(io: Prefixed<I>, peer: SocketAddr, serving: Serving)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Serving {
        builders,
        router,
        hub,
        metrics,
        mut stop,
        done: _done,
        ..
    } = serving;
    let http2 = io.is_http2();
    let protocol = if http2 { Protocol::H2 } else { Protocol::H1 };
    let _open = OpenConnection::new(&metrics, protocol);
    if http2 {
        let conn = h2::Connection::new(io, http2_handler(router, peer), builders.http2.clone());
        // Boxed: a connection's state is sized for its own protocol.
        if let Err(e) = Box::pin(serve_until_stopped(conn, &mut stop)).await {
            tracing::debug!(%peer, "HTTP/2 connection ended: {e}");
        }
        return;
    }
    let service = TowerToHyperService::new(router.map_request(
        move |mut req: http::Request<hyper::body::Incoming>| {
            mark_peer(&mut req, peer);
            req
        },
    ));
    let conn = builders.http1.serve_connection(TokioIo::new(io), service);
    if let Err(e) = Box::pin(serve_until_stopped(conn, &mut stop)).await {
        // A request head too large or with too many fields (hyper answered
        // 431). Its header timeouts are not counted: on a kept-alive
        // connection they mostly close idle clients between two requests,
        // not slow ones (a first request's head is read by `http1_stream`,
        // which counts its timeouts).
        if e.is_parse_too_large() {
            hub.metrics.limits_hit.get(Limit::Headers).inc();
        }
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Marks `req` as sent by `peer` (for the routes and the limits).
fn mark_peer<B>(req: &mut http::Request<B>, peer: SocketAddr) {
    req.extensions_mut().insert(ClientAddr(peer.ip()));
    req.extensions_mut().insert(ConnectInfo(peer));
}

/// Each request of an HTTP/2 connection from `peer`, answered by `router`.
fn http2_handler(router: axum::Router, peer: SocketAddr) -> h2::Handler {
    h2::Handler(Arc::new(move |mut req: http::Request<h2::RequestBody>| {
        mark_peer(&mut req, peer);
        let response = router.clone().oneshot(req);
        Box::pin(async move {
            match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    }))
}
