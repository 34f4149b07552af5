//! One client per way of reaching the hub's TLS port (HTTP/1.1 and HTTP/2
//! over TLS, HTTP/3 over QUIC), all trusting the hub's certificate and
//! sending the same [`Req`]s, so that a test runs once per protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{Method, StatusCode, Version};
use ssehub::proto::sse::{ParsedEvent, Parser};

use super::{publisher_token, topic_query, TestHub};

/// A hub in this process with its TLS (and QUIC) port on, allowing CORS
/// from `https://app.example`.
pub(crate) async fn tls_hub() -> TestHub {
    tls_hub_with(|_| {}).await
}

/// [`tls_hub`] with `adjust` applied to its options too.
pub(crate) async fn tls_hub_with(adjust: impl FnOnce(&mut ssehub::config::Options)) -> TestHub {
    TestHub::start(|o| {
        o.server.tls_listen = Some("127.0.0.1:0".into());
        o.access.cors_origins = Some("https://app.example".parse().unwrap());
        adjust(o);
    })
    .await
}

/// The TLS address of a hub of [`tls_hub`].
pub(crate) fn tls_addr(hub: &TestHub) -> SocketAddr {
    hub.running.as_ref().unwrap().tls_addr.expect("TLS enabled")
}

/// The PEM certificate of a hub of [`tls_hub`].
pub(crate) fn cert_pem(hub: &TestHub) -> Vec<u8> {
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    std::fs::read(&tls.files().cert).unwrap()
}

/// A request as every transport sends it.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    pub(crate) headers: Vec<(&'a str, String)>,
    pub(crate) body: Option<Bytes>,
}

impl Req<'_> {
    /// `GET path_and_query` without headers.
    pub(crate) fn get(path_and_query: &str) -> Req<'static> {
        Req {
            method: Method::GET,
            path_and_query: path_and_query.to_string(),
            headers: vec![],
            body: None,
        }
    }
}

/// A response: status, headers, and a body read chunk by chunk.
pub(crate) struct Res {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: http::HeaderMap,
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    parser: Parser,
}

impl Res {
    /// The next event of the body, read as an SSE stream; panics if none
    /// comes within 5 s.
    pub(crate) async fn next_event(&mut self) -> ParsedEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let chunk = tokio::time::timeout_at(deadline, self.chunks.recv())
                .await
                .expect("an event within 5 s")
                .expect("stream still open");
            if let Some(e) = self.parser.feed(&chunk).into_iter().next() {
                return e;
            }
        }
    }

    /// The `retry:` value the stream set last, if any.
    pub(crate) fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    /// The answer `res` of reqwest, its body read chunk by chunk.
    pub(crate) fn from_reqwest(mut res: reqwest::Response) -> Res {
        let (tx, chunks) = tokio::sync::mpsc::channel(1024);
        let (status, version, headers) = (res.status(), res.version(), res.headers().clone());
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = res.chunk().await {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        Res {
            status,
            version,
            headers,
            chunks,
            parser: Parser::new(),
        }
    }

    /// The next chunk of the body as it came, `None` once it ended (or
    /// failed); panics if none comes within 5 s.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        tokio::time::timeout(Duration::from_secs(5), self.chunks.recv())
            .await
            .expect("a chunk or the end within 5 s")
    }

    /// The whole body as text.
    pub(crate) async fn text(mut self) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunks.recv().await {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).unwrap()
    }
}

/// The three ways a client reaches the hub over TLS.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Proto {
    H1,
    H2,
    H3,
}

impl Proto {
    /// The HTTP version responses come in.
    pub(crate) fn version(self) -> Version {
        match self {
            Proto::H1 => Version::HTTP_11,
            Proto::H2 => Version::HTTP_2,
            Proto::H3 => Version::HTTP_3,
        }
    }
}

/// One client per protocol, trusting the hub's certificate.
pub(crate) struct Client {
    addr: SocketAddr,
    http: Option<reqwest::Client>,
    h3: Option<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>>,
}

impl Client {
    /// A client of the TLS port of `hub`, a hub of [`tls_hub`].
    pub(crate) async fn new(proto: Proto, hub: &TestHub) -> Client {
        Client::connect(proto, tls_addr(hub), &cert_pem(hub)).await
    }

    /// A client of the TLS port `addr` whose certificate is `pem`.
    pub(crate) async fn connect(proto: Proto, addr: SocketAddr, pem: &[u8]) -> Client {
        match proto {
            Proto::H1 | Proto::H2 => {
                let cert = reqwest::Certificate::from_pem(pem).unwrap();
                let builder = reqwest::Client::builder()
                    .add_root_certificate(cert)
                    .resolve("localhost", addr);
                let builder = if matches!(proto, Proto::H1) {
                    builder.http1_only()
                } else {
                    builder
                };
                Client {
                    addr,
                    http: Some(builder.build().unwrap()),
                    h3: None,
                }
            }
            Proto::H3 => Client {
                addr,
                http: None,
                h3: Some(h3_client(addr, pem, "localhost").await),
            },
        }
    }

    /// Sends `req`; its answer once its head came.
    pub(crate) async fn send(&mut self, req: Req<'_>) -> Res {
        if let Some(http) = &self.http {
            let url = format!(
                "https://localhost:{}{}",
                self.addr.port(),
                req.path_and_query
            );
            let mut r = http.request(req.method, url);
            for (k, v) in &req.headers {
                r = r.header(*k, v);
            }
            if let Some(body) = req.body {
                r = r.body(body);
            }
            return Res::from_reqwest(r.send().await.unwrap());
        }
        let (tx, chunks) = tokio::sync::mpsc::channel(1024);
        let send = self.h3.as_mut().unwrap();
        let mut builder = http::Request::builder().method(req.method).uri(format!(
            "https://localhost:{}{}",
            self.addr.port(),
            req.path_and_query
        ));
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        let mut stream = send.send_request(builder.body(()).unwrap()).await.unwrap();
        if let Some(body) = req.body {
            stream.send_data(body).await.unwrap();
        }
        stream.finish().await.unwrap();
        let res = stream.recv_response().await.unwrap();
        tokio::spawn(async move {
            while let Ok(Some(mut chunk)) = stream.recv_data().await {
                if tx
                    .send(chunk.copy_to_bytes(chunk.remaining()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Res {
            status: res.status(),
            version: res.version(),
            headers: res.headers().clone(),
            chunks,
            parser: Parser::new(),
        }
    }
}

/// A QUIC client endpoint on 127.0.0.1 trusting exactly `pem`, offering
/// `h3`.
pub(crate) fn quic_endpoint(pem: &[u8]) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pem).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

/// An HTTP/3 connection to `addr` as `server_name` on `endpoint`; its
/// driver runs in a task of its own.
pub(crate) async fn h3_connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
    let conn = endpoint.connect(addr, server_name).unwrap().await.unwrap();
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let _keep = endpoint;
        std::future::poll_fn(|cx| driver.poll_close(cx)).await
    });
    send
}

/// An HTTP/3 connection to `addr` as `server_name`, trusting exactly
/// `pem`.
pub(crate) async fn h3_client(
    addr: SocketAddr,
    pem: &[u8],
    server_name: &str,
) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
    h3_connect(&quic_endpoint(pem), addr, server_name).await
}

/// A publish request of `topics` with the `extra` fields, as a form, with
/// a publisher token.
pub(crate) fn publish_req<'a>(topics: &[&str], extra: &[(&str, &str)]) -> Req<'a> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for t in topics {
        form.append_pair("topic", t);
    }
    form.extend_pairs(extra);
    publish_body("application/x-www-form-urlencoded", form.finish())
}

/// A publish request with `body` of `content_type` and a publisher token.
pub(crate) fn publish_body<'a>(content_type: &str, body: impl Into<Bytes>) -> Req<'a> {
    Req {
        method: Method::POST,
        path_and_query: "/.well-known/mercure".into(),
        headers: vec![
            ("authorization", format!("Bearer {}", publisher_token())),
            ("content-type", content_type.into()),
        ],
        body: Some(body.into()),
    }
}

/// A subscribe request of `topics` with `token` and a `Last-Event-ID`, if
/// given.
pub(crate) fn subscribe_req<'a>(
    topics: &[&str],
    token: Option<String>,
    last_event_id: Option<&str>,
) -> Req<'a> {
    let mut headers = vec![];
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    if let Some(id) = last_event_id {
        headers.push(("last-event-id", id.to_string()));
    }
    Req {
        method: Method::GET,
        path_and_query: format!("/.well-known/mercure?{}", topic_query(topics)),
        headers,
        body: None,
    }
}
