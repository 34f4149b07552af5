//! Outbound HTTP: one connection to the host of a URL, over TCP or rustls,
//! driven by hyper's client (HTTP/1.1, or HTTP/2 when TLS negotiates it),
//! and what such a TLS client trusts: the system's roots and an extra CA
//! file, or a pinned SPKI hash. JWK sets are read with it (`jwks::fetch`),
//! and `ssehub publish` and `ssehub subscribe` speak to hubs with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use url::{Host, Position, Url};

/// Where requests for a URL go: its host and port, over TCP or TLS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or address to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// `HOST[:PORT]`, for the `Host` header and HTTP/2's `:authority`.
    authority: String,
    /// The name the certificate must hold, for `https`.
    tls: Option<ServerName<'static>>,
}

/// Why a URL names no endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Neither `http` nor `https`.
    #[error("unsupported scheme {0:?}: use http:// or https://")]
    Scheme(String),
    /// No host, or one that is not a valid name.
    #[error("the URL names no valid host")]
    Host,
    /// A user name or password in the URL.
    #[error("credentials in the URL are not supported")]
    Credentials,
}

impl Endpoint {
    /// The endpoint of an `http://` or `https://` URL.
    pub fn new(url: &Url) -> Result<Endpoint, EndpointError> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(EndpointError::Scheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointError::Credentials);
        }
        let (host, server_name) = match url.host().ok_or(EndpointError::Host)? {
            Host::Domain(name) => (
                name.to_string(),
                ServerName::try_from(name.to_string()).map_err(|_| EndpointError::Host)?,
            ),
            Host::Ipv4(ip) => (ip.to_string(), ServerName::IpAddress(ip.into())),
            Host::Ipv6(ip) => (ip.to_string(), ServerName::IpAddress(ip.into())),
        };
        Ok(Endpoint {
            host,
            port: url.port_or_known_default().ok_or(EndpointError::Host)?,
            authority: url[Position::BeforeHost..Position::AfterPort].to_string(),
            tls: tls.then_some(server_name),
        })
    }

    /// Whether it is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection: TCP, then for `https` a TLS handshake with
    /// `tls` (which must be given for `https`), then HTTP/2 if ALPN chose
    /// it, HTTP/1.1 otherwise.
    pub async fn connect(&self, tls: Option<&TlsConnector>) -> Result<Connection, ConnectError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(ConnectError::Connect)?;
        // Requests are small and latency matters, as on the hub's side.
        let _ = tcp.set_nodelay(true);
        let (Some(name), Some(tls)) = (&self.tls, tls) else {
            return Connection::handshake(tcp, false, self).await;
        };
        let stream = tls
            .connect(name.clone(), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Connection::handshake(stream, h2, self).await
    }
}

/// The request target of `url`: its path and query.
pub fn target(url: &Url) -> &str {
    &url[Position::BeforePath..Position::AfterQuery]
}

/// Why no response came.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed (an untrusted certificate, for one).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

/// One open connection; dropping it closes it (and ends a response body
/// still being read).
pub struct Connection {
    sender: Sender,
    /// `http` or `https`, and the authority, for HTTP/2's pseudo-headers.
    scheme: &'static str,
    authority: String,
    /// Drives the connection; aborted when dropped.
    _driver: JoinSet<()>,
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = match self.sender {
            Sender::Http1(_) => "HTTP/1.1",
            Sender::Http2(_) => "HTTP/2",
        };
        write!(f, "Connection({version} {})", self.authority)
    }
}

impl Connection {
    async fn handshake<I>(io: I, h2: bool, endpoint: &Endpoint) -> Result<Connection, ConnectError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let mut driver = JoinSet::new();
        let sender = if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            driver.spawn(async move {
                let _ = connection.await;
            });
            Sender::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            driver.spawn(async move {
                let _ = connection.await;
            });
            Sender::Http1(sender)
        };
        Ok(Connection {
            sender,
            scheme: if endpoint.is_tls() { "https" } else { "http" },
            authority: endpoint.authority.clone(),
            _driver: driver,
        })
    }

    /// Sends `request`, whose URI is a request target (path and query):
    /// the `Host` header (HTTP/1.1) or the absolute URI (HTTP/2) is added
    /// here. The response's body is read while this connection lives.
    pub async fn send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ConnectError> {
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                if let Ok(host) = HeaderValue::from_str(&self.authority) {
                    request.headers_mut().insert(header::HOST, host);
                }
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                if let Ok(uri) = Uri::builder()
                    .scheme(self.scheme)
                    .authority(self.authority.as_str())
                    .path_and_query(target)
                    .build()
                {
                    *request.uri_mut() = uri;
                }
                *request.version_mut() = http::Version::HTTP_2;
                sender.send_request(request).await?
            }
        };
        Ok(response)
    }
}

/// What a TLS client trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's roots, and the certificates of a PEM file if given.
    Roots(Option<PathBuf>),
    /// Only a certificate whose public key has this hash, whoever signed it
    /// and whatever names it holds (a self-signed hub's).
    Pin(SpkiPin),
}

/// The extra CA file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the CA file {path}: {error}")]
pub struct CaError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub error: String,
}

/// Which HTTP versions a TLS client offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` alone.
    Http1,
    /// `h2`, then `http/1.1`.
    Http2,
}

/// A TLS connector trusting `trust` and offering `alpn`.
pub fn tls_connector(trust: &Trust, alpn: Alpn) -> Result<TlsConnector, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions");
    let mut config = match trust {
        Trust::Roots(ca_cert) => builder
            .with_root_certificates(roots(ca_cert.as_deref())?)
            .with_no_client_auth(),
        Trust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                provider,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The system's roots and `ca_cert`'s certificates.
fn roots(ca_cert: Option<&Path>) -> Result<rustls::RootCertStore, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the server's own CA may
    // be the extra one, and an untrusted server fails the handshake anyway.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_cert {
        let bad = |error: String| CaError {
            path: path.to_path_buf(),
            error,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(roots)
}

/// The SHA-256 hash of a certificate's SubjectPublicKeyInfo (as HPKP and
/// Chromium's `--ignore-certificate-errors-spki-list` use it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// The hash of the certificate `der`'s public key.
    pub fn of(der: &[u8]) -> Result<SpkiPin, x509_parser::nom::Err<x509_parser::error::X509Error>> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)?;
        let digest =
            ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
        let mut hash = [0; 32];
        hash.copy_from_slice(digest.as_ref());
        Ok(SpkiPin(hash))
    }

    /// The hash in standard base64, as `ssehub serve` prints it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256/{}", self.base64())
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a pin could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not an SPKI hash: give sha256/BASE64 or the BASE64 that `ssehub serve` prints after \"SPKI SHA-256 (base64)\"")]
pub struct PinError;

impl FromStr for SpkiPin {
    type Err = PinError;

    /// `sha256/BASE64`, `sha256//BASE64` (curl's `--pinnedpubkey`) or
    /// `BASE64`: 32 bytes in standard base64.
    fn from_str(s: &str) -> Result<SpkiPin, PinError> {
        let s = s.trim();
        let b64 = s
            .strip_prefix("sha256//")
            .or_else(|| s.strip_prefix("sha256/"))
            .unwrap_or(s);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| PinError)?;
        <[u8; 32]>::try_from(bytes)
            .map(SpkiPin)
            .map_err(|_| PinError)
    }
}

/// Accepts a server whose certificate carries the pinned public key; the
/// handshake's signatures are still checked, so only the key's holder passes.
#[derive(Debug)]
struct PinVerifier {
    pin: SpkiPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = SpkiPin::of(end_entity).map_err(|e| {
            rustls::Error::General(format!("cannot read the server's certificate: {e}"))
        })?;
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's public key is {got}, not the pinned {}",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_urls() {
        let url = Url::parse("https://[::1]:8443/k/jwks.json?v=2").unwrap();
        let e = Endpoint::new(&url).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str(), target(&url)),
            ("::1", 8443, "[::1]:8443", "/k/jwks.json?v=2")
        );
        assert!(e.is_tls());
        let url = Url::parse("http://hub.example").unwrap();
        let e = Endpoint::new(&url).unwrap();
        assert_eq!((e.port, target(&url), e.is_tls()), (80, "/", false));
        let refused = |u: &str| Endpoint::new(&Url::parse(u).unwrap()).unwrap_err();
        assert!(matches!(refused("ftp://a/"), EndpointError::Scheme(_)));
        assert!(matches!(
            refused("https://u:p@a/"),
            EndpointError::Credentials
        ));
    }

    #[test]
    fn pins_are_read_with_or_without_their_prefix() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let pin: SpkiPin = format!("sha256/{b64}").parse().unwrap();
        assert_eq!(pin, b64.parse().unwrap());
        assert_eq!(pin, format!("sha256//{b64}").parse().unwrap());
        assert_eq!(pin.to_string(), format!("sha256/{b64}"));
        assert!("sha256/AAAA".parse::<SpkiPin>().is_err());
        assert!("not base64!".parse::<SpkiPin>().is_err());
    }
}
