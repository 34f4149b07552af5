//! Reading a JWK set document from where it is published: a `file://` path,
//! or an `https://` URL fetched over HTTP/1.1 on rustls (`crate::outbound`),
//! trusting the system's roots and an optional extra CA file. Plain
//! `http://` is refused: whoever can alter the document in transit could
//! substitute their own keys. A document is at most [`MAX_BYTES`] long and
//! read within [`TIMEOUT`]; redirects are not followed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tokio::io::AsyncReadExt;
use tokio_rustls::TlsConnector;
use url::Url;

use crate::outbound::{target, tls_connector, Alpn, ConnectError, Endpoint, Trust};

/// Largest JWK set document read, in bytes.
pub const MAX_BYTES: usize = 1 << 20;
/// Longest wait for a whole document, from connecting to its last byte.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a JWKS location cannot be used at all (a configuration error).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Not a URL.
    #[error("not a URL: {0}")]
    Url(#[from] url::ParseError),
    /// A scheme other than `https` and `file`.
    #[error("unsupported scheme {0:?}: use https:// or file:///PATH (plain http:// is refused, since whoever can alter the keys in transit could sign tokens)")]
    Scheme(String),
    /// A `file:` URL that names no local absolute path.
    #[error("a file URL names an absolute local path: file:///PATH")]
    FilePath,
    /// An `https:` URL without a host, or with credentials.
    #[error("an https URL is https://HOST[:PORT]/PATH, without credentials")]
    Https,
    /// The extra CA file cannot be used.
    #[error("cannot use the CA file {path}: {error}")]
    Ca {
        /// The configured file.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
    },
}

/// Why a document could not be read this time (the source may come back).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The file could not be read.
    #[error("{0}")]
    File(std::io::Error),
    /// No TCP connection.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed (an untrusted certificate, for one).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// An answer other than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// A document longer than [`MAX_BYTES`].
    #[error("the document is larger than {MAX_BYTES} bytes")]
    TooLarge,
    /// Nothing complete within [`TIMEOUT`].
    #[error("no complete answer within {TIMEOUT:?}")]
    Timeout,
}

/// Where a JWK set is read from.
pub struct Source {
    /// The URL as configured, for messages.
    url: String,
    location: Location,
}

enum Location {
    File(PathBuf),
    Https(Https),
}

/// An `https://` location, resolved once.
struct Https {
    endpoint: Endpoint,
    /// Path and query.
    target: String,
    tls: TlsConnector,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Source").field(&self.url).finish()
    }
}

impl Source {
    /// Parses `url` (`https://...` or `file:///...`); an `https` source
    /// trusts the system's roots and the certificates of `ca_cert`.
    pub fn parse(url: &str, ca_cert: Option<&Path>) -> Result<Source, SourceError> {
        let parsed = Url::parse(url.trim())?;
        let location = match parsed.scheme() {
            "file" => Location::File(parsed.to_file_path().map_err(|()| SourceError::FilePath)?),
            "https" => Location::Https(Https::new(&parsed, ca_cert)?),
            other => return Err(SourceError::Scheme(other.to_string())),
        };
        Ok(Source {
            url: url.trim().to_string(),
            location,
        })
    }

    /// Reads the whole document.
    pub async fn fetch(&self) -> Result<Vec<u8>, FetchError> {
        let read = async {
            match &self.location {
                Location::File(path) => read_file(path).await,
                Location::Https(https) => https.get().await,
            }
        };
        tokio::time::timeout(TIMEOUT, read)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

/// At most [`MAX_BYTES`] of the file at `path`.
async fn read_file(path: &Path) -> Result<Vec<u8>, FetchError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(FetchError::File)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(FetchError::File)?;
    if bytes.len() > MAX_BYTES {
        return Err(FetchError::TooLarge);
    }
    Ok(bytes)
}

impl Https {
    fn new(url: &Url, ca_cert: Option<&Path>) -> Result<Https, SourceError> {
        let trust = Trust::Roots(ca_cert.map(Path::to_path_buf));
        Ok(Https {
            endpoint: Endpoint::new(url).map_err(|_| SourceError::Https)?,
            target: target(url).to_string(),
            tls: tls_connector(&trust, Alpn::Http1).map_err(|e| SourceError::Ca {
                path: e.path,
                error: e.error,
            })?,
        })
    }

    /// `GET`s the document over a connection of its own (documents are
    /// read every few minutes: nothing is gained by keeping one open).
    async fn get(&self) -> Result<Vec<u8>, FetchError> {
        let mut connection = self.endpoint.connect(Some(&self.tls)).await?;
        let request = Request::get(self.target.as_str())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .header(
                header::USER_AGENT,
                concat!("ssehub/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = connection.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Http(e.to_string())
                }
            })?;
        Ok(body.to_bytes().to_vec())
    }
}

impl From<ConnectError> for FetchError {
    fn from(e: ConnectError) -> FetchError {
        match e {
            ConnectError::Connect(e) => FetchError::Connect(e),
            ConnectError::Tls(e) => FetchError::Tls(e),
            ConnectError::Http(e) => FetchError::Http(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_and_file_urls() {
        let refused = |url| Source::parse(url, None).unwrap_err().to_string();
        assert!(refused("http://example.com/jwks.json").contains("plain http:// is refused"));
        assert!(refused("ftp://example.com/jwks.json").contains("\"ftp\""));
        assert!(refused("file://host/jwks.json").contains("file:///PATH"));
        assert!(refused("https://user:pw@example.com/jwks.json").contains("credentials"));
        assert!(refused("jwks.json").contains("not a URL"));
        let https = Source::parse("https://[::1]:8443/k/jwks.json?v=2", None).unwrap();
        let Location::Https(h) = &https.location else {
            panic!("an https source")
        };
        assert_eq!(h.target, "/k/jwks.json?v=2");
        let Location::Https(h) = Source::parse("https://idp.example", None).unwrap().location
        else {
            panic!("an https source")
        };
        assert_eq!(h.target, "/");
    }

    #[test]
    fn the_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let url = "https://127.0.0.1/jwks.json";
        let err = Source::parse(url, Some(&path)).unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
        std::fs::write(&path, "not PEM").unwrap();
        let err = Source::parse(url, Some(&path)).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[tokio::test]
    async fn files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let url = Url::from_file_path(&path).unwrap().to_string();
        let source = Source::parse(&url, None).unwrap();
        assert!(matches!(source.fetch().await, Err(FetchError::File(_))));
        std::fs::write(&path, vec![b' '; MAX_BYTES]).unwrap();
        assert_eq!(source.fetch().await.unwrap().len(), MAX_BYTES);
        std::fs::write(&path, vec![b' '; MAX_BYTES + 1]).unwrap();
        assert!(matches!(source.fetch().await, Err(FetchError::TooLarge)));
    }
}
