//! An HTTP/3 client (quinn and h3) trusting one certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

/// Connects over QUIC to `addr` as `server_name`, trusting only the first
/// certificate of `pem`; the connection is driven by a task of its own.
pub(crate) async fn h3_client(
    addr: SocketAddr,
    pem: &[u8],
    server_name: &str,
) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
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
    let conn = endpoint.connect(addr, server_name).unwrap().await.unwrap();
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _keep = endpoint;
        std::future::poll_fn(|cx| driver.poll_close(cx)).await
    });
    send
}
