//! Subscriptions over HTTP/2 on TLS: many streams share one connection, as
//! browsers do; and the churn's short-lived ones, a connection each.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::args::H2Open;
use crate::decode::Body;
use crate::tracking::{Role, Shared, Tracker};
use crate::wire::{H2Spec, Spec, OPEN_TIMEOUT};

/// Opens one connection per `streams` subscriptions and every stream on it.
pub(crate) fn spawn_all(shared: &Arc<Shared>, h2: &H2Spec, pace: &Arc<Semaphore>) {
    let tls = Arc::new(client_config(&h2.ca_pem));
    let count = shared.spec.count;
    for (group, first) in (0..count).step_by(h2.streams.max(1)).enumerate() {
        let streams = first..(first + h2.streams).min(count);
        tokio::spawn(connection(
            shared.clone(),
            h2.clone(),
            tls.clone(),
            group,
            streams,
            pace.clone(),
        ));
    }
}

/// TLS settings trusting `ca_pem` and offering HTTP/2 only.
pub(crate) fn client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()).flatten() {
        roots.add(cert).expect("a valid CA certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

async fn connection(
    shared: Arc<Shared>,
    h2: H2Spec,
    tls: Arc<rustls::ClientConfig>,
    group: usize,
    streams: std::ops::Range<usize>,
    pace: Arc<Semaphore>,
) {
    pace.acquire().await.expect("pacer never closes").forget();
    let spec = &shared.spec;
    let source = spec.sources[(spec.first + group) % spec.sources.len()];
    let sender = match handshake(spec.addr, source, &h2.server_name, tls).await {
        Ok((sender, conn)) => {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    eprintln!("worker: HTTP/2 connection ended: {e}");
                }
            });
            sender
        }
        Err(e) => {
            shared
                .counters
                .failed
                .fetch_add(streams.len() as u64, Ordering::Relaxed);
            return eprintln!("worker: HTTP/2 connection failed: {e}");
        }
    };
    for i in streams {
        let (opened, answered) = tokio::sync::oneshot::channel();
        tokio::spawn(stream(shared.clone(), sender.clone(), i, opened));
        if h2.open == H2Open::OneByOne {
            // Answered or failed: either way the next one may go.
            let _ = answered.await;
        }
    }
}

type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;
type Connection = hyper::client::conn::http2::Connection<
    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Empty<Bytes>,
    TokioExecutor,
>;

/// Opens a TLS connection from `source` and speaks HTTP/2 on it; the
/// connection does its work while the caller polls it.
async fn handshake(
    addr: SocketAddr,
    source: std::net::Ipv4Addr,
    name: &str,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<(Sender, Connection)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(name.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(
        hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(tls))
            .await?,
    )
}

/// Subscription `i` on the connection of `sender`; says on `opened` when it
/// was answered (or failed).
async fn stream(
    shared: Arc<Shared>,
    mut sender: Sender,
    i: usize,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let spec = &shared.spec;
    let result = async {
        let body = open(&mut sender, spec, &spec.paths[i]).await;
        let _ = opened.send(());
        let body = body?;
        shared.counters.connected.fetch_add(1, Ordering::Relaxed);
        read(&shared, body, &mut Tracker::default()).await
    };
    if let Err(e) = result.await {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        eprintln!("worker: HTTP/2 stream {} failed: {e}", spec.first + i);
    }
}

/// One short-lived subscription of the churn, on a connection of its own:
/// opens it (within [`OPEN_TIMEOUT`]), reads for `hold`, then drops the
/// connection. `Ok` when it was held for its whole time.
pub(crate) async fn visit(
    shared: &Shared,
    tls: Arc<rustls::ClientConfig>,
    source: std::net::Ipv4Addr,
    path: &str,
    hold: Duration,
) -> anyhow::Result<()> {
    let spec = &shared.spec;
    let name = &spec.h2.as_ref().context("no HTTP/2 spec")?.server_name;
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    let late = || anyhow::anyhow!("not answered within {OPEN_TIMEOUT:?}");
    let (mut sender, conn) =
        tokio::time::timeout_at(deadline, handshake(spec.addr, source, name, tls))
            .await
            .map_err(|_| late())??;
    let session = async {
        let body = tokio::time::timeout_at(deadline, open(&mut sender, spec, path))
            .await
            .map_err(|_| late())??;
        shared.churn.opened.fetch_add(1, Ordering::Relaxed);
        let mut tracker = Tracker::new(Role::Churn);
        match tokio::time::timeout(hold, read(shared, body, &mut tracker)).await {
            Err(_held) => Ok(()),
            Ok(r) => r,
        }
    };
    // The connection does its work only while polled.
    tokio::select! {
        r = conn => anyhow::bail!("connection ended: {r:?}"),
        r = session => r,
    }
}

/// Asks for `path` on the connection of `sender`; an answer other than 200
/// is an error.
async fn open(sender: &mut Sender, spec: &Spec, path: &str) -> anyhow::Result<(Body, Incoming)> {
    let mut req = http::Request::get(format!("https://{}{path}", spec.host));
    for h in &spec.headers {
        if let Some((k, v)) = h.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    sender.ready().await?;
    let res = sender.send_request(req.body(Empty::new())?).await?;
    anyhow::ensure!(res.status() == 200, "status {}", res.status());
    let encoding = res
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().map(str::to_ascii_lowercase))
        .transpose()?;
    Ok((Body::new(encoding.as_deref())?, res.into_body()))
}

/// Reads a response body into `tracker` until it fails or ends (the end of
/// a stream is an error: it should last).
async fn read(
    shared: &Shared,
    (mut decoded, mut body): (Body, Incoming),
    tracker: &mut Tracker,
) -> anyhow::Result<()> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            decoded.feed(shared, tracker, &data)?;
        }
    }
    anyhow::bail!("the stream ended")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll};

    use hyper::body::Frame;
    use hyper::service::service_fn;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::wire::Spec;

    /// How long the test server holds each request before answering it.
    const HOLD: Duration = Duration::from_millis(300);

    /// A body that never ends, as an SSE stream.
    struct Endless;

    impl hyper::body::Body for Endless {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    /// Requests held unanswered: now, and the most at once.
    #[derive(Default)]
    struct Held {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// An HTTP/2 server on TLS (loopback) that answers each request after
    /// [`HOLD`]; returns its address, its certificate and what it held.
    async fn server() -> (SocketAddr, String, Arc<Held>) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key_pair.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Held::default());
        let counts = held.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = acceptor.accept(tcp).await.unwrap();
                let counts = counts.clone();
                let service = service_fn(move |_req| {
                    let counts = counts.clone();
                    async move {
                        let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
                        counts.most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(HOLD).await;
                        counts.now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(http::Response::new(Endless))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service),
                );
            }
        });
        (addr, key.cert.pem(), held)
    }

    /// The most requests the server held at once while one connection
    /// opened `streams` streams as `open` says (all of them answered).
    async fn most_held(open: H2Open, streams: usize) -> usize {
        let (addr, ca_pem, held) = server().await;
        let h2 = H2Spec {
            streams,
            server_name: "localhost".into(),
            ca_pem,
            open,
        };
        let shared = Arc::new(Shared::new(Spec {
            first: 0,
            count: streams,
            addr,
            host: "localhost".into(),
            paths: (0..streams).map(|i| format!("/s{i}")).collect(),
            headers: vec![],
            sources: vec!["127.0.0.1".parse().unwrap()],
            connect_rate: 1,
            stalled: 0,
            h2: Some(h2.clone()),
            churn: None,
        }));
        let tls = Arc::new(client_config(&h2.ca_pem));
        let pace = Arc::new(Semaphore::new(1));
        tokio::spawn(connection(shared.clone(), h2, tls, 0, 0..streams, pace));
        for _ in 0..200 {
            if shared.counters.connected.load(Ordering::SeqCst) == streams as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            shared.counters.connected.load(Ordering::SeqCst),
            streams as u64
        );
        assert_eq!(shared.counters.failed.load(Ordering::SeqCst), 0);
        held.most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn streams_open_together_or_each_after_the_last_was_answered() {
        assert_eq!(most_held(H2Open::Together, 4).await, 4);
        assert_eq!(most_held(H2Open::OneByOne, 4).await, 1);
    }
}
