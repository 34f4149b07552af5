//! HTTPS: the hub's features over HTTP/1.1 and HTTP/2 on TLS and over
//! HTTP/3, certificate reload without dropping streams, and plain HTTP sent
//! to the TLS port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::common::http3::h3_client;
use crate::common::*;
use bytes::{Buf, Bytes};
use http::{Method, StatusCode, Version};
use ssehub::proto::sse::{ParsedEvent, Parser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tls_hub() -> TestHub {
    TestHub::start(|o| {
        o.server.tls_listen = Some("127.0.0.1:0".into());
        o.access.cors_origins = Some("https://app.example".parse().unwrap());
    })
    .await
}

fn tls_addr(hub: &TestHub) -> SocketAddr {
    hub.running.as_ref().unwrap().tls_addr.expect("TLS enabled")
}

fn cert_pem(hub: &TestHub) -> Vec<u8> {
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    std::fs::read(&tls.files().cert).unwrap()
}

/// A request as every transport sends it.
struct Req<'a> {
    method: Method,
    path_and_query: String,
    headers: Vec<(&'a str, String)>,
    body: Option<String>,
}

/// A response: status, headers, and a body read chunk by chunk.
struct Res {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    parser: Parser,
}

impl Res {
    async fn next_event(&mut self) -> ParsedEvent {
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

    async fn text(mut self) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunks.recv().await {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).unwrap()
    }
}

/// The three ways a client reaches the hub over TLS.
#[derive(Clone, Copy, Debug)]
enum Proto {
    H1,
    H2,
    H3,
}

/// One client per protocol, trusting the hub's certificate.
struct Client {
    addr: SocketAddr,
    http: Option<reqwest::Client>,
    h3: Option<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>>,
}

impl Client {
    async fn new(proto: Proto, hub: &TestHub) -> Client {
        let addr = tls_addr(hub);
        let pem = cert_pem(hub);
        match proto {
            Proto::H1 | Proto::H2 => {
                let cert = reqwest::Certificate::from_pem(&pem).unwrap();
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
                h3: Some(h3_client(addr, &pem, "localhost").await),
            },
        }
    }

    async fn send(&mut self, req: Req<'_>) -> Res {
        let (tx, chunks) = tokio::sync::mpsc::channel(1024);
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
            let mut res = r.send().await.unwrap();
            let (status, version, headers) = (res.status(), res.version(), res.headers().clone());
            tokio::spawn(async move {
                while let Ok(Some(chunk)) = res.chunk().await {
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
            });
            return Res {
                status,
                version,
                headers,
                chunks,
                parser: Parser::new(),
            };
        }
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
            stream.send_data(Bytes::from(body)).await.unwrap();
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

fn publish_req<'a>(topics: &[&str], extra: &[(&str, &str)]) -> Req<'a> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for t in topics {
        form.append_pair("topic", t);
    }
    form.extend_pairs(extra);
    Req {
        method: Method::POST,
        path_and_query: "/.well-known/mercure".into(),
        headers: vec![
            ("authorization", format!("Bearer {}", publisher_token())),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        body: Some(form.finish()),
    }
}

fn subscribe_req<'a>(
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

/// Subscribe, publish (public and private), authorization, replay and CORS,
/// the same way over each protocol.
async fn exercise(proto: Proto) {
    let hub = tls_hub().await;
    let mut client = Client::new(proto, &hub).await;
    let want = match proto {
        Proto::H1 => Version::HTTP_11,
        Proto::H2 => Version::HTTP_2,
        Proto::H3 => Version::HTTP_3,
    };

    // A subscriber of `urn:t/{id}` allowed to receive private updates on `allowed`.
    let subscriber =
        |allowed| subscribe_req(&["urn:t/{id}"], Some(token(&[], &[allowed], None)), None);
    let mut sub = client.send(subscriber("urn:t/secret")).await;
    assert_eq!(
        (sub.status, sub.version),
        (StatusCode::OK, want),
        "{proto:?}"
    );
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    if !matches!(proto, Proto::H3) {
        assert!(
            sub.headers["alt-svc"]
                .to_str()
                .unwrap()
                .starts_with("h3=\":"),
            "Alt-Svc advertises HTTP/3"
        );
    }
    let mut nobody = client.send(subscriber("urn:other")).await;

    let public = client
        .send(publish_req(
            &["urn:t/1"],
            &[("data", "one\ntwo"), ("type", "greet")],
        ))
        .await;
    assert_eq!(public.status, StatusCode::OK);
    let public_id = public.text().await;
    let private = client
        .send(publish_req(
            &["urn:t/secret"],
            &[("data", "hush"), ("private", "on")],
        ))
        .await;
    let private_id = private.text().await;
    let refused = client
        .send(Req {
            headers: vec![],
            ..publish_req(&["urn:t/1"], &[])
        })
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let e = sub.next_event().await;
    assert_eq!(fields(&e), ("greet", "one\ntwo", public_id.as_str()));
    assert_eq!(sub.next_event().await.last_event_id, private_id);
    assert_eq!(nobody.next_event().await.last_event_id, public_id);

    let mut replay = client
        .send(subscribe_req(
            &["urn:t/{id}"],
            Some(token(&[], &[], None)),
            Some(&public_id),
        ))
        .await;
    assert_eq!(replay.headers["last-event-id"], public_id.as_str());
    let last = client
        .send(publish_req(&["urn:t/2"], &[("data", "three")]))
        .await
        .text()
        .await;
    assert_eq!(
        replay.next_event().await.last_event_id,
        last,
        "private one skipped, live one delivered"
    );

    let preflight = client
        .send(Req {
            method: Method::OPTIONS,
            path_and_query: "/.well-known/mercure".into(),
            headers: vec![
                ("origin", "https://app.example".into()),
                ("access-control-request-method", "GET".into()),
                ("access-control-request-headers", "last-event-id".into()),
            ],
            body: None,
        })
        .await;
    assert!(preflight.status.is_success());
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn features_over_http1_on_tls() {
    exercise(Proto::H1).await;
}

#[tokio::test]
async fn features_over_http2_on_tls() {
    exercise(Proto::H2).await;
}

#[tokio::test]
async fn features_over_http3() {
    exercise(Proto::H3).await;
}

#[tokio::test]
async fn fifty_streams_over_one_http2_client() {
    let hub = tls_hub().await;
    let mut client = Client::new(Proto::H2, &hub).await;
    let mut subs = Vec::new();
    for i in 0..50 {
        subs.push(
            client
                .send(subscribe_req(
                    &[&format!("urn:s/{i}")],
                    Some(token(&[], &[], None)),
                    None,
                ))
                .await,
        );
    }
    for i in 0..50 {
        client
            .send(publish_req(
                &[&format!("urn:s/{i}")],
                &[("data", &i.to_string())],
            ))
            .await;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        assert_eq!(sub.next_event().await.data, i.to_string());
    }
}

/// A client config trusting exactly `pem`.
fn trusting(pem: &[u8], addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn certificate_reload_keeps_open_streams() {
    let hub = tls_hub().await;
    let running = hub.running.as_ref().unwrap();
    let tls = running.tls.as_ref().unwrap();
    let addr = tls_addr(&hub);
    let old_pem = cert_pem(&hub);
    let before = tls.fingerprints().unwrap();
    let mut stream = Client::new(Proto::H2, &hub).await;
    let mut sub = stream
        .send(subscribe_req(&["urn:r"], Some(token(&[], &[], None)), None))
        .await;

    // Replace the files, as certbot would, and reload.
    let files = tls.files().clone();
    std::fs::remove_file(&files.cert).unwrap();
    std::fs::remove_file(&files.key).unwrap();
    ssehub::server::tls::CertFiles::resolve(
        None,
        None,
        Path::new(files.cert.parent().unwrap().parent().unwrap()),
    )
    .unwrap();
    let after = tls.reload().unwrap();
    assert_ne!(after, before);

    let id = hub
        .publish_ok(&[("topic", "urn:r"), ("data", "still here")])
        .await;
    assert_eq!(
        sub.next_event().await.last_event_id,
        id,
        "the open stream survived the reload"
    );
    let url = format!("https://localhost:{}/healthz", addr.port());
    assert!(
        trusting(&cert_pem(&hub), addr)
            .get(&url)
            .send()
            .await
            .is_ok(),
        "new connections get the new certificate"
    );
    assert!(
        trusting(&old_pem, addr).get(&url).send().await.is_err(),
        "and no longer the old one"
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_told_to_use_https() {
    let hub = tls_hub().await;
    let mut tcp = tokio::net::TcpStream::connect(tls_addr(&hub))
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("https://"), "{answer}");
}

#[tokio::test]
async fn only_tls_responses_advertise_http3() {
    let hub = tls_hub().await;
    let plain = reqwest::get(format!("{}/healthz", hub.base)).await.unwrap();
    assert!(
        plain.headers().get("alt-svc").is_none(),
        "a plain-port Alt-Svc would point at the wrong origin"
    );
    let mut tls = Client::new(Proto::H2, &hub).await;
    let res = tls
        .send(Req {
            method: Method::GET,
            path_and_query: "/healthz".into(),
            headers: vec![],
            body: None,
        })
        .await;
    let port = tls_addr(&hub).port();
    assert_eq!(
        res.headers["alt-svc"],
        format!("h3=\":{port}\"; ma=86400").as_str()
    );
}

#[tokio::test]
async fn plain_port_speaks_http2_with_prior_knowledge() {
    let hub = tls_hub().await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let token = token(&[], &[], None);
    let res = h2c
        .get(format!("{}?{}", hub.url(), topic_query(&["urn:h2c"])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (res.status(), res.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
    let id = hub
        .publish_ok(&[("topic", "urn:h2c"), ("data", "prior knowledge")])
        .await;
    let event = SseClient::new(res).next().await;
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("prior knowledge", id.as_str())
    );
}
