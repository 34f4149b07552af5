//! The metrics listener: plain HTTP/1.1 on its own address (loopback by
//! default, so metrics are never public by accident), serving only
//! `GET /metrics` in Prometheus's text format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::drain::{serve_until_stopped, stopped};
use crate::hub::Hub;
use crate::metrics::{expose, process, Scraped, CONTENT_TYPE};

/// The only path served.
const PATH: &str = "/metrics";
/// Time a scraper has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the store's figures (Redis's `XLEN`); past it they are
/// left out of the scrape.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the metrics listener.
pub(super) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))
}

/// Serves `listener` until `stop`.
pub(super) fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => drop(tokio::spawn(connection(stream, hub.clone(), stop.clone()))),
                    Err(e) => {
                        tracing::debug!("metrics listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = stopped(&mut stop) => return,
            }
        }
    })
}

async fn connection(stream: TcpStream, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let service = service_fn(move |req| {
        let hub = hub.clone();
        async move { Ok::<_, Infallible>(answer(&hub, &req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let result = serve_until_stopped(conn, &mut stop).await;
    if let Err(e) = result {
        tracing::debug!("metrics connection ended: {e}");
    }
}

async fn answer(hub: &Hub, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == PATH {
            (StatusCode::OK, CONTENT_TYPE, scrape(hub).await)
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                format!("only GET {PATH} is served here\n"),
            )
        };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// Every metric, with the figures read now from the store and `/proc`.
async fn scrape(hub: &Hub) -> String {
    let (holding, redis) = hub.store_figures(STORE_TIMEOUT).await;
    let scraped = Scraped {
        history_events: holding.events,
        history_bytes: holding.bytes,
        redis,
        process: process::read(),
        acme: hub.acme.as_ref().map(|acme| acme.status.reading()),
    };
    expose(&hub.metrics, &scraped)
}
