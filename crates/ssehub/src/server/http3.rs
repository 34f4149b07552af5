//! HTTP/3 over QUIC: the same routes as HTTP/1.1 and HTTP/2, on the UDP port
//! of the TLS listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::{Buf, Bytes};
use h3::server::RequestResolver;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::watch;
use tower::ServiceExt;

use super::drain::{stopped, Done};
use super::limits::{Admission, Admitted};
use super::tls::Tls;
use super::{CONNECTION_WINDOW, STREAM_WINDOW};
use crate::http::ClientAddr;
use crate::hub::Hub;
use crate::metrics::{Metrics, OpenConnection, Protocol};

/// QUIC keep-alive: idle streams survive NATs and the idle timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// A peer silent for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Unidirectional streams a client may open at once: HTTP/3 uses three
/// (control, QPACK encoder and decoder), a few more leave room for
/// extensions and greasing (quinn's default is 100).
const MAX_UNI_STREAMS: u32 = 16;
/// Bytes of responses a connection may hold until the client acknowledges
/// them, across its streams (quinn's default is 10 MB): a client that
/// stops acknowledging holds no more.
const SEND_WINDOW: u64 = 1 << 20;

type H3Conn = h3_quinn::Connection;

/// Binds the QUIC endpoint on `addr` (UDP) with the hub's certificate.
/// A client may open `max_streams` requests at once (as over HTTP/2) and
/// send as much as over HTTP/2 before the hub reads it, per stream and per
/// connection: quinn's default would let every stream fill its own window,
/// with no bound per connection.
pub fn endpoint(addr: SocketAddr, tls: &Tls, max_streams: u32) -> anyhow::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls.quic_config())?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(max_streams.into())
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .send_window(SEND_WINDOW)
        .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into()?));
    server.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(server, addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on UDP {addr} for HTTP/3 (--http3): {e}"))?;
    Ok(endpoint)
}

/// Everything a QUIC connection task needs.
#[derive(Clone)]
pub(super) struct Serving {
    /// The hub's routes.
    pub(super) router: axum::Router,
    /// Where open connections are counted.
    pub(super) metrics: Arc<Metrics>,
    /// Set at shutdown.
    pub(super) stop: watch::Receiver<bool>,
    /// Held until the connection ends.
    pub(super) done: Done,
    /// The connection limits (a connection over them is refused before
    /// its handshake).
    pub(super) admission: Arc<Admission>,
    /// The hub (its limits and metrics).
    pub(super) hub: Arc<Hub>,
}

/// Accepts QUIC connections until `stop`, within the connection limits.
pub(super) async fn serve(endpoint: quinn::Endpoint, serving: Serving) {
    let mut stop = serving.stop.clone();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let ip = incoming.remote_address().ip();
                    match serving.admission.admit(ip, &serving.hub.metrics) {
                        Ok(admitted) => {
                            tokio::spawn(connection(incoming, serving.clone(), admitted));
                        }
                        Err(_) => incoming.refuse(),
                    }
                }
                None => return,
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Serves one QUIC connection: `_admitted`, its places among the
/// connection limits, is held until it ends.
async fn connection(incoming: quinn::Incoming, serving: Serving, _admitted: Admitted) {
    let max_header_bytes =
        u64::try_from(serving.hub.config.limits.max_header_bytes).unwrap_or(u64::MAX);
    let Serving {
        router,
        metrics,
        mut stop,
        done,
        ..
    } = serving;
    let peer = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => return tracing::debug!(%peer, "QUIC handshake failed: {e}"),
    };
    let mut h3 = match h3::server::builder()
        .max_field_section_size(max_header_bytes)
        .build::<H3Conn, Bytes>(H3Conn::new(conn))
        .await
    {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(%peer, "HTTP/3 setup failed: {e}"),
    };
    let _open = OpenConnection::new(&metrics, Protocol::H3);
    let mut draining = false;
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    tokio::spawn(request(resolver, router.clone(), peer, done.clone()));
                }
                Ok(None) => return,
                Err(e) => return tracing::debug!(%peer, "HTTP/3 connection ended: {e}"),
            },
            _ = stopped(&mut stop), if !draining => {
                // GOAWAY: finish what is open, take nothing new.
                draining = true;
                let _ = h3.shutdown(0).await;
            }
        }
    }
}

async fn request(
    resolver: RequestResolver<H3Conn, Bytes>,
    router: axum::Router,
    peer: SocketAddr,
    _done: Done,
) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(resolved) => resolved,
        Err(e) => return tracing::debug!("bad HTTP/3 request: {e}"),
    };
    let (mut send, recv) = stream.split();
    let body = futures_util::stream::unfold(recv, |mut recv| async move {
        match recv.recv_data().await {
            Ok(Some(mut chunk)) => Some((
                Ok(Frame::data(chunk.copy_to_bytes(chunk.remaining()))),
                recv,
            )),
            Ok(None) => None,
            Err(e) => Some((Err(e), recv)),
        }
    });
    let mut req = req.map(|()| axum::body::Body::new(StreamBody::new(body)));
    req.extensions_mut().insert(ClientAddr(peer.ip()));
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = match router.oneshot(req).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    };
    let (parts, mut body) = response.into_parts();
    if let Err(e) = send
        .send_response(http::Response::from_parts(parts, ()))
        .await
    {
        return tracing::debug!("HTTP/3 response failed: {e}");
    }
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(Frame::into_data) else {
            return;
        };
        if let Ok(data) = data {
            if send.send_data(data).await.is_err() {
                // The client went away; dropping the body unsubscribes.
                return;
            }
        }
    }
    let _ = send.finish().await;
}
