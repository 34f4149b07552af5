//! The HTTP client instant-acme speaks to the CA with: one connection per
//! request over [`crate::outbound`] (the CA is asked a few dozen times per
//! certificate), trusting the system's roots and `--acme-ca-cert`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use tokio_rustls::TlsConnector;
use url::Url;

use crate::outbound::{target, tls_connector, Alpn, CaError, Endpoint, Trust};

/// Longest wait for one exchange with the CA, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a certificate chain is a few KiB).
const MAX_BYTES: usize = 1 << 20;

/// Why one exchange with the CA failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("{0}")]
    Connect(#[from] crate::outbound::ConnectError),
    #[error("reading the answer: {0}")]
    Body(String),
    #[error("no answer within {TIMEOUT:?}")]
    Timeout,
}

/// A client of the CA.
pub(super) struct Client {
    tls: TlsConnector,
}

impl Client {
    /// A client trusting the system's roots and the certificates of
    /// `ca_cert`.
    pub(super) fn new(ca_cert: Option<&Path>) -> Result<Client, CaError> {
        let trust = Trust::Roots(ca_cert.map(Path::to_path_buf));
        Ok(Client {
            tls: tls_connector(&trust, Alpn::Http1)?,
        })
    }
}

impl HttpClient for Client {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            match tokio::time::timeout(TIMEOUT, exchange(request, tls)).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Other(Box::new(ExchangeError::Timeout))),
            }
        })
    }
}

/// Sends `request` (whose URI is absolute) on a new connection and reads
/// the whole answer.
async fn exchange(
    request: Request<BodyWrapper<Bytes>>,
    tls: TlsConnector,
) -> Result<Response<Full<Bytes>>, ExchangeError> {
    let (mut parts, body) = request.into_parts();
    let url = Url::parse(&parts.uri.to_string()).map_err(|e| ExchangeError::Url(e.to_string()))?;
    let endpoint = Endpoint::new(&url).map_err(|e| ExchangeError::Url(e.to_string()))?;
    parts.uri = target(&url)
        .parse()
        .map_err(|e: http::uri::InvalidUri| ExchangeError::Url(e.to_string()))?;
    let body = body
        .collect()
        .await
        .map_err(|e| ExchangeError::Body(e.to_string()))?
        .to_bytes();
    let mut connection = endpoint.connect(Some(&tls)).await?;
    let response = connection
        .send(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BYTES)
        .collect()
        .await
        .map_err(|e| ExchangeError::Body(e.to_string()))?
        .to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
