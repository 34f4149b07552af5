//! Automatic HTTPS against a real ACME server, Pebble, on loopback: a
//! certificate obtained by each challenge type and verified by a client
//! trusting only Pebble's root, reused from the cache at restart without
//! a new order, renewed under an open HTTP/2 stream, kept in service
//! while Pebble is down at renewal time and renewed once it is back, and a
//! failed validation reported with the CA's reason.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use crate::common::child::{free_addr, tail};
use crate::common::https::h3_client;
use crate::common::pebble::{Pebble, Validation};
use crate::common::remote::readyz;
use crate::common::*;
use http::{StatusCode, Version};
use ssehub::acme::Reading;
use ssehub::outbound::{tls_connector, Alpn, Endpoint, SpkiPin, Trust};
use ssehub::server::tls::Fingerprints;

/// The certificate's names (Pebble's DNS answers 127.0.0.1 for any name).
const DOMAINS: [&str; 2] = ["hub.test", "www.hub.test"];
/// Bound on an issuance or a renewal.
const ISSUANCE: Duration = Duration::from_secs(90);

/// A Pebble validating on the ports the hub will take, and the hub's data
/// directory (kept across restarts).
struct Setup {
    pebble: Pebble,
    listen: SocketAddr,
    tls_listen: SocketAddr,
    data: tempfile::TempDir,
}

impl Setup {
    fn new(certificate_lifetime: Option<Duration>) -> Setup {
        Self::validating_http_on(None, certificate_lifetime)
    }

    /// [`Setup::new`], Pebble validating HTTP-01 on `http_port` if given
    /// instead of the hub's plain port.
    fn validating_http_on(http_port: Option<u16>, certificate_lifetime: Option<Duration>) -> Setup {
        let (listen, tls_listen) = (free_addr(), free_addr());
        let pebble = Pebble::start(&Validation {
            http_port: http_port.unwrap_or(listen.port()),
            tls_port: tls_listen.port(),
            certificate_lifetime,
        });
        Setup {
            pebble,
            listen,
            tls_listen,
            data: tempfile::tempdir().unwrap(),
        }
    }

    /// A hub obtaining its certificate from Pebble by `challenge`.
    async fn hub(&self, challenge: &str) -> TestHub {
        TestHub::start(|o| {
            o.server.listen = Some(self.listen.to_string());
            o.server.tls_listen = Some(self.tls_listen.to_string());
            o.keys.data_dir = Some(self.data.path().to_path_buf());
            o.acme.acme_domain = Some(DOMAINS.map(String::from).to_vec());
            o.acme.acme_email = Some("ops@hub.test".into());
            o.acme.acme_directory = Some(self.pebble.directory.clone());
            o.acme.acme_ca_cert = Some(self.pebble.ca_cert.clone());
            o.acme.acme_challenge = Some(challenge.into());
        })
        .await
    }

    /// A client trusting only Pebble's root, reaching the hub by name.
    async fn client(&self) -> reqwest::Client {
        let root = self.pebble.root().await;
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .tls_built_in_root_certs(false)
            .pool_max_idle_per_host(0);
        for domain in DOMAINS {
            builder = builder.resolve(domain, self.tls_listen);
        }
        builder.build().unwrap()
    }

    fn url(&self, domain: &str, path: &str) -> String {
        format!("https://{domain}:{}{path}", self.tls_listen.port())
    }
}

/// The certificate the hub serves, once it has one.
async fn served(hub: &TestHub, unlike: Option<&Fingerprints>, pebble: &Pebble) -> Fingerprints {
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    let deadline = tokio::time::Instant::now() + ISSUANCE;
    loop {
        if let Some(f) = tls.fingerprints().filter(|f| Some(f) != unlike) {
            return f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {} certificate within {ISSUANCE:?}; status {:?}; pebble: {}",
            if unlike.is_some() { "new" } else { "" },
            acme_reading(hub),
            tail(&pebble.output(), 3000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ACME status once `done` holds (bounded by [`ISSUANCE`]).
async fn wait_for(hub: &TestHub, done: impl Fn(&Reading) -> bool) -> Reading {
    let deadline = tokio::time::Instant::now() + ISSUANCE;
    loop {
        let reading = acme_reading(hub);
        if done(&reading) {
            return reading;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reading:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn acme_reading(hub: &TestHub) -> Reading {
    let acme = hub.running.as_ref().unwrap().hub.acme.as_ref().unwrap();
    acme.status.reading()
}

/// Whether a TLS handshake with the hub succeeds for a client accepting
/// only the public key `spki` (whatever the chain and the dates).
async fn serves_key(addr: SocketAddr, spki: &str) -> Result<(), String> {
    let pin: SpkiPin = spki.parse().unwrap();
    let connector = tls_connector(&Trust::Pin(pin), Alpn::Http2).unwrap();
    let url = url::Url::parse(&format!("https://{addr}/")).unwrap();
    Endpoint::new(&url)
        .unwrap()
        .connect(Some(&connector))
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Checks an HTTPS request by each name over HTTP/2 and over HTTP/3,
/// verified against Pebble's root.
async fn assert_verified(setup: &Setup) {
    let client = setup.client().await;
    let root = setup.pebble.root().await;
    for domain in DOMAINS {
        let response = client
            .get(setup.url(domain, "/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{domain}: {e:?}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
        let mut h3 = h3_client(setup.tls_listen, &root, domain).await;
        let request = http::Request::get(setup.url(domain, "/healthz"))
            .body(())
            .unwrap();
        let mut stream = h3.send_request(request).await.unwrap();
        stream.finish().await.unwrap();
        let response = stream.recv_response().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{domain} over HTTP/3");
    }
}

#[tokio::test]
async fn tls_alpn_01_obtains_a_certificate_verified_against_pebbles_root() {
    let setup = Setup::new(None);
    let hub = setup.hub("tls-alpn-01").await;
    served(&hub, None, &setup.pebble).await;
    assert_verified(&setup).await;
    let reading = acme_reading(&hub);
    assert_eq!((reading.obtained, reading.failures), (1, 0));
    assert_eq!(reading.failing, None);
    // The cache holds the account and the certificate, owner-only.
    let cache = ssehub::acme::Cache::new(
        setup.data.path(),
        &url::Url::parse(&setup.pebble.directory).unwrap(),
    );
    let certificate = cache.certificate();
    let account = certificate.with_file_name("account.json");
    for file in [
        &certificate,
        &account,
        &certificate.parent().unwrap().to_path_buf(),
    ] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is private: {mode:o}", file.display());
    }
}

#[tokio::test]
async fn http_01_obtains_a_certificate_verified_against_pebbles_root() {
    let setup = Setup::new(None);
    let hub = setup.hub("http-01").await;
    served(&hub, None, &setup.pebble).await;
    assert_verified(&setup).await;
    // Only the CA's current tokens are answered.
    let response = reqwest::get(format!(
        "http://{}/.well-known/acme-challenge/unknown",
        setup.listen
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restart_serves_the_cached_certificate_without_a_new_order() {
    let mut setup = Setup::new(None);
    let mut hub = setup.hub("tls-alpn-01").await;
    let first = served(&hub, None, &setup.pebble).await;
    hub.shutdown().await;
    // With the CA gone, a new order could only fail.
    setup.pebble.kill();
    let hub = setup.hub("tls-alpn-01").await;
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(
        tls.fingerprints(),
        Some(first.clone()),
        "served from the start"
    );
    serves_key(setup.tls_listen, &first.spki_sha256)
        .await
        .unwrap();
    // The renewal task has looked at the certificate: the next order is
    // years away (Pebble's certificates last 5 years by default).
    let reading = wait_for(&hub, |r| r.next_attempt.is_some()).await;
    let year = Duration::from_secs(365 * 86_400);
    assert!(
        reading.next_attempt.unwrap() > SystemTime::now() + year,
        "{reading:?}"
    );
    assert_eq!((reading.obtained, reading.failures), (0, 0), "{reading:?}");
    assert_eq!(readyz(&hub.base).await, (StatusCode::OK, "ok\n".into()));
}

#[tokio::test]
async fn a_short_lived_certificate_renews_under_an_open_http2_stream() {
    let setup = Setup::new(Some(Duration::from_secs(24)));
    let hub = setup.hub("tls-alpn-01").await;
    let first = served(&hub, None, &setup.pebble).await;
    let client = setup.client().await;
    let response = client
        .get(setup.url(DOMAINS[0], "/.well-known/mercure?topic=urn:acme"))
        .bearer_auth(token(&[], &["urn:acme"], None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let mut stream = SseClient::new(response);
    assert_eq!(stream.status, StatusCode::OK);

    let renewed = served(&hub, Some(&first), &setup.pebble).await;
    let id = hub
        .publish_ok(&[("topic", "urn:acme"), ("data", "after renewal")])
        .await;
    let event = stream.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("after renewal", id.as_str()),
        "the stream opened before the renewal still receives updates"
    );
    serves_key(setup.tls_listen, &renewed.spki_sha256)
        .await
        .unwrap();
    assert!(
        serves_key(setup.tls_listen, &first.spki_sha256)
            .await
            .is_err(),
        "new connections no longer get the old certificate"
    );
    assert_verified(&setup).await;
    assert!(acme_reading(&hub).obtained >= 2);
}

#[tokio::test]
async fn pebble_down_at_renewal_keeps_the_current_certificate_says_so_and_recovers() {
    let mut setup = Setup::new(Some(Duration::from_secs(30)));
    let hub = setup.hub("http-01").await;
    let first = served(&hub, None, &setup.pebble).await;
    setup.pebble.kill();
    // The renewal fails, and is retried (a 30 s certificate: after 1 s).
    let reading = wait_for(&hub, |r| r.failures >= 2).await;
    assert!(reading.failing.is_some(), "{reading:?}");
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.fingerprints(), Some(first.clone()));
    serves_key(setup.tls_listen, &first.spki_sha256)
        .await
        .expect("the current certificate is still served");
    let (status, body) = readyz(&hub.base).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("ok\nwarning: "), "{body}");
    assert!(
        body.contains("renewal failing") || body.contains("expired"),
        "{body}"
    );
    let metrics_addr = hub.running.as_ref().unwrap().metrics_addr.unwrap();
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nssehub_acme_failing 1\n"), "{metrics}");
    assert!(
        !metrics.contains("\nssehub_acme_failures_total 0\n"),
        "{metrics}"
    );

    // Back, but having forgotten everything (as a reset CA would): the
    // account is created anew and the certificate renewed.
    setup.pebble.restart();
    served(&hub, Some(&first), &setup.pebble).await;
    assert_verified(&setup).await;
    let reading = wait_for(&hub, |r| r.failing.is_none()).await;
    assert!(reading.obtained >= 2, "{reading:?}");
    assert_eq!(readyz(&hub.base).await, (StatusCode::OK, "ok\n".into()));
}

#[tokio::test]
async fn a_failed_validation_is_reported_with_the_cas_reason() {
    // Pebble checks HTTP-01 on a port where nothing listens.
    let setup = Setup::validating_http_on(Some(free_addr().port()), None);
    let hub = setup.hub("http-01").await;
    let reading = wait_for(&hub, |r| r.failing.is_some()).await;
    // The CA's problem document, naming what it tried.
    let failing = reading.failing.unwrap();
    assert!(
        failing.contains("/.well-known/acme-challenge/")
            && failing.contains("urn:ietf:params:acme:error:"),
        "{failing}"
    );
    let tls = hub.running.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.fingerprints(), None);
    let (_, body) = readyz(&hub.base).await;
    assert!(
        body.starts_with("ok\nwarning: no certificate obtained yet (last attempt: "),
        "{body}"
    );
}
