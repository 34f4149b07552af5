//! HTTPS: the hub's features over HTTP/1.1 and HTTP/2 on TLS and over
//! HTTP/3, certificate reload without dropping streams, and plain HTTP sent
//! to the TLS port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::common::https::{
    cert_pem, publish_req, subscribe_req, tls_addr, tls_hub, Client, Proto, Req,
};
use crate::common::*;
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Subscribe, publish (public and private), authorization, replay and CORS,
/// the same way over each protocol.
async fn exercise(proto: Proto) {
    let hub = tls_hub().await;
    let mut client = Client::new(proto, &hub).await;
    let want = proto.version();

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
    let res = tls.send(Req::get("/healthz")).await;
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
