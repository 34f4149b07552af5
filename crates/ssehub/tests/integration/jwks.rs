//! Keys from a JWK set that rotate without a restart: a set served over
//! HTTPS by a server started here (with a private CA) and changed mid-test,
//! and a set in a file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::common::child_hub::ChildHub;
use crate::common::keys::{key_pair, p256_jwk, private_ca, rsa_jwk, RSA_2048};
use crate::common::remote::{client, post_form, READY};
use crate::common::TestHub;

/// What the hub logs, once, when a set can no longer be read.
const DOWN: &str = "cannot be used, keeping the keys read before";
/// What it logs, once, when the set can be read again.
const BACK: &str = "can be used again";

/// A token of `alg` naming `kid`, signed with `key`, whose claim is
/// `mercure`.
fn token(alg: Algorithm, kid: &str, key: &EncodingKey, mercure: &Value) -> String {
    let header = Header {
        kid: Some(kid.to_string()),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, &json!({ "mercure": mercure }), key).unwrap()
}

/// A key of the test, and the tokens it signs.
struct TestKey {
    jwk: Value,
    kid: &'static str,
    alg: Algorithm,
    signing: EncodingKey,
}

impl TestKey {
    /// A 2048-bit RSA key (RS256), made with openssl in `dir`.
    fn rsa(dir: &Path, kid: &'static str) -> TestKey {
        let (private, _) = key_pair(dir, kid, &RSA_2048);
        TestKey {
            jwk: rsa_jwk(&private, kid),
            kid,
            alg: Algorithm::RS256,
            signing: EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap(),
        }
    }

    /// A P-256 key (ES256).
    fn p256(kid: &'static str) -> TestKey {
        let (private, jwk) = p256_jwk(kid);
        TestKey {
            jwk,
            kid,
            alg: Algorithm::ES256,
            signing: EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
        }
    }

    /// A token that may publish anywhere, the 0.x claim shape.
    fn publisher(&self) -> String {
        token(
            self.alg,
            self.kid,
            &self.signing,
            &json!({"publish": ["*"]}),
        )
    }

    /// A token that may receive every private update.
    fn subscriber(&self) -> String {
        token(
            self.alg,
            self.kid,
            &self.signing,
            &json!({"subscribe": ["*"]}),
        )
    }
}

/// Publishes one update to the hub at `url` with `token`: status and body.
async fn publish(url: &str, token: &str) -> (StatusCode, String) {
    post_form(
        &client(),
        url,
        Some(token),
        &[("topic", "t"), ("data", "x")],
    )
    .await
    .unwrap()
}

/// Asserts a publish with `token` is answered 401 with a body containing
/// `why`.
async fn assert_refused(url: &str, token: &str, why: &str) {
    let (status, body) = publish(url, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains(why), "{why:?} in {body:?}");
}

/// Asserts a publish with `token` succeeds.
async fn assert_published(url: &str, token: &str) {
    let (status, body) = publish(url, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_served_over_https_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = private_ca(dir.path());
    let a = TestKey::rsa(dir.path(), "a");
    let b = TestKey::p256("b");
    let c = TestKey::p256("c");
    let mut server = JwksServer::start(Path::new(&cert), Path::new(&key)).await;
    server.set(&[&a.jwk]);
    // Read again only for unknown kids (every time), never periodically.
    let hub = ChildHub::start(
        dir.path(),
        &[
            "--publisher-jwks-url",
            &server.url(),
            "--jwks-ca-cert",
            &ca,
            "--jwks-refresh",
            "1h",
            "--jwks-min-refresh",
            "0",
            "--jwt-algorithms",
            "RS256,ES256",
        ],
        &[],
    )
    .await;
    let url = hub.url();
    assert_published(&url, &a.publisher()).await;

    // Refused: an algorithm outside the allowlist, an HMAC token signed
    // with the RSA public key (algorithm confusion), a key of another type.
    let rs512 = token(
        Algorithm::RS512,
        "a",
        &a.signing,
        &json!({"publish": ["*"]}),
    );
    assert_refused(&url, &rs512, "RS512 is not accepted").await;
    let public_pem = std::fs::read(dir.path().join("a.pub.pem")).unwrap();
    let confused = token(
        Algorithm::HS256,
        "a",
        &EncodingKey::from_secret(&public_pem),
        &json!({"publish": ["*"]}),
    );
    assert_refused(&url, &confused, "HS256 is not accepted").await;
    let b_as_a = token(
        Algorithm::ES256,
        "a",
        &b.signing,
        &json!({"publish": ["*"]}),
    );
    assert_refused(&url, &b_as_a, "does not verify ES256 tokens").await;

    // b is added: its first token has the set read again.
    server.set(&[&a.jwk, &b.jwk]);
    assert_published(&url, &b.publisher()).await;
    // Subscriber tokens are verified with the same set.
    let res = client()
        .get(format!("{url}?topic=t"))
        .bearer_auth(b.subscriber())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);

    // a is removed: a known kid does not make the hub read the set, so a
    // still works until something does (here, a token of an unknown kid).
    server.set(&[&b.jwk]);
    assert_published(&url, &a.publisher()).await;
    assert_refused(&url, &c.publisher(), "no key \"c\" in the JWKS").await;
    assert_refused(&url, &a.publisher(), "no key \"a\" in the JWKS").await;
    assert_published(&url, &b.publisher()).await;

    // The server stops: the cached keys keep working, and the failed reads
    // are logged once.
    server.stop().await;
    for _ in 0..3 {
        assert_refused(&url, &c.publisher(), "no key \"c\"").await;
        assert_published(&url, &b.publisher()).await;
    }
    server.restart().await;
    assert_refused(&url, &c.publisher(), "no key \"c\"").await;
    let log = hub.wait_stderr(BACK, READY);
    assert_eq!(log.matches(DOWN).count(), 1, "{log}");
    assert_eq!(log.matches(BACK).count(), 1, "{log}");
    assert_published(&url, &b.publisher()).await;
}

#[tokio::test]
async fn a_jwks_file_is_read_again_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let write = |keys: &[&Value]| {
        // Renamed into place: a read never sees half a file.
        let partial = dir.path().join("jwks.json.new");
        std::fs::write(&partial, json!({ "keys": keys }).to_string()).unwrap();
        std::fs::rename(&partial, &path).unwrap();
    };
    let a = TestKey::p256("a");
    let b = TestKey::p256("b");
    write(&[&a.jwk]);
    let file_url = url::Url::from_file_path(&path).unwrap().to_string();
    let hub = TestHub::start(|o| {
        o.keys.publisher_jwt_key = None;
        o.jwks.publisher_jwks_url = Some(file_url);
        o.jwks.jwks_refresh = Some("50ms".parse().unwrap());
        o.jwks.jwks_min_refresh = Some("1h".parse().unwrap());
    })
    .await;
    let url = hub.url();
    assert_published(&url, &a.publisher()).await;
    write(&[&b.jwk]);
    // a's kid is known, so only the periodic read drops it. Bounded: 200
    // publishes 50 ms apart.
    for attempt in 0.. {
        let (status, body) = publish(&url, &a.publisher()).await;
        if status == StatusCode::UNAUTHORIZED {
            assert!(body.contains("no key \"a\""), "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(attempt < 200, "a still accepted after 200 refresh periods");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_published(&url, &b.publisher()).await;
}

#[tokio::test]
async fn start_up_fails_when_the_jwks_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let [_, cert, key] = private_ca(dir.path());
    let server = JwksServer::start(Path::new(&cert), Path::new(&key)).await;
    server.set(&[&TestKey::p256("a").jwk]);
    let start = |url: String| {
        let mut options = ssehub::config::Options::default();
        options.server.listen = Some("127.0.0.1:0".into());
        options.server.tls_listen = Some("none".into());
        options.server.metrics_listen = Some("none".into());
        options.keys.data_dir = Some(dir.path().to_path_buf());
        options.jwks.publisher_jwks_url = Some(url);
        async move {
            let config = options.resolve().unwrap();
            match ssehub::server::start(config).await {
                Ok(_) => panic!("started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    // The server's certificate is not signed by a root this hub trusts.
    let err = start(server.url()).await;
    assert!(err.contains(&server.url()) && err.contains("TLS"), "{err}");
    let err = start(server.url().replace("https", "http")).await;
    assert!(err.contains("plain http:// is refused"), "{err}");
    let missing = format!("file://{}/none.json", dir.path().display());
    let err = start(missing.clone()).await;
    assert!(err.contains(&missing), "{err}");
}

/// An HTTPS server answering `GET /jwks.json` with a set that the test
/// changes at will; it can be stopped and started again on its address.
struct JwksServer {
    addr: SocketAddr,
    tls: TlsAcceptor,
    document: Arc<Mutex<String>>,
    task: Option<JoinHandle<()>>,
}

impl JwksServer {
    /// Serves on a free port of 127.0.0.1 with the certificate `cert` and
    /// its key `key`; the set is empty until [`JwksServer::set`].
    async fn start(cert: &Path, key: &Path) -> JwksServer {
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = JwksServer {
            addr: listener.local_addr().unwrap(),
            tls: TlsAcceptor::from(Arc::new(config)),
            document: Arc::new(Mutex::new(json!({"keys": []}).to_string())),
            task: None,
        };
        server.serve(listener);
        server
    }

    /// The set's URL.
    fn url(&self) -> String {
        format!("https://{}/jwks.json", self.addr)
    }

    /// Serves the set of `keys` from now on.
    fn set(&self, keys: &[&Value]) {
        *self.document.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    /// Closes the listener and every connection.
    async fn stop(&mut self) {
        let task = self.task.take().expect("serving");
        task.abort();
        let _ = task.await;
    }

    /// Serves again on the same address.
    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tls, document) = (self.tls.clone(), self.document.clone());
        self.task = Some(tokio::spawn(async move {
            // Aborted with this task.
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, document) = (tls.clone(), document.clone());
                connections.spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let body = document.lock().unwrap().clone();
                        async move {
                            let status = if req.uri().path() == "/jwks.json" {
                                StatusCode::OK
                            } else {
                                StatusCode::NOT_FOUND
                            };
                            let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
                            *res.status_mut() = status;
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }
}
