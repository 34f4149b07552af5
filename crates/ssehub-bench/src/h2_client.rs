//! Subscriptions over HTTP/2 on TLS: many streams share one connection, as
//! browsers do.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use ssehub::proto::sse::Parser;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use crate::tracking::{Shared, Tracker};
use crate::wire::H2Spec;

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

fn client_config(ca_pem: &str) -> rustls::ClientConfig {
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
        Ok(sender) => sender,
        Err(e) => {
            shared
                .counters
                .failed
                .fetch_add(streams.len() as u64, Ordering::Relaxed);
            return eprintln!("worker: HTTP/2 connection failed: {e}");
        }
    };
    for i in streams {
        tokio::spawn(stream(shared.clone(), sender.clone(), i));
    }
}

type Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn handshake(
    addr: SocketAddr,
    source: std::net::Ipv4Addr,
    name: &str,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Sender> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(name.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(TokioIo::new(tls))
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("worker: HTTP/2 connection ended: {e}");
        }
    });
    Ok(sender)
}

async fn stream(shared: Arc<Shared>, mut sender: Sender, i: usize) {
    let spec = &shared.spec;
    let mut req = http::Request::get(format!("https://{}{}", spec.host, spec.paths[i]));
    for h in &spec.headers {
        if let Some((k, v)) = h.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    let result = async {
        sender.ready().await?;
        let res = sender.send_request(req.body(Empty::new())?).await?;
        anyhow::ensure!(res.status() == 200, "status {}", res.status());
        shared.counters.connected.fetch_add(1, Ordering::Relaxed);
        let mut body = res.into_body();
        let (mut parser, mut tracker) = (Parser::new(), Tracker::default());
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                tracker.feed(&shared, &mut parser, &data);
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = result.await {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        eprintln!("worker: HTTP/2 stream {} failed: {e}", spec.first + i);
    }
}
