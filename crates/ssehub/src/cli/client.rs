//! What `ssehub publish` and `ssehub subscribe` share: the hub's URL, the
//! token and what HTTPS trusts (`--hub`, `--token`, `--ca-cert`,
//! `--pin-spki`), one request to the hub, and errors that say what to do
//! next.

use std::path::PathBuf;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio_rustls::TlsConnector;
use url::Url;

use crate::outbound::{
    self, tls_connector, Alpn, ConnectError, Connection, Endpoint, SpkiPin, Trust,
};
use crate::proto::HUB_PATH;

/// The quick start's hub, where `ssehub serve` listens by default.
const DEFAULT_HUB: &str = "http://127.0.0.1:8080/.well-known/mercure";

/// Longest part of an error answer shown.
const MAX_MESSAGE: usize = 4096;

/// The options naming the hub and how to reach it.
#[derive(Debug, clap::Args)]
pub(super) struct HubArgs {
    /// The hub's URL, or just its origin (then /.well-known/mercure is added).
    #[arg(long, env = "SSEHUB_HUB_URL", value_name = "URL", default_value = DEFAULT_HUB)]
    hub: String,
    /// The JWT sent as `Authorization: Bearer` (mint one with `ssehub token`).
    #[arg(long, env = "SSEHUB_TOKEN", value_name = "JWT", hide_env_values = true)]
    token: Option<String>,
    /// HTTPS: also trust the certificates of this PEM file (a self-signed hub's DATA_DIR/tls/cert.pem).
    #[arg(long, value_name = "FILE", conflicts_with = "pin_spki")]
    ca_cert: Option<PathBuf>,
    /// HTTPS: trust only a certificate with this public key hash, as `ssehub serve` prints it ("SPKI SHA-256").
    #[arg(long, value_name = "sha256/BASE64")]
    pin_spki: Option<SpkiPin>,
}

/// What the request was for, to say what to do when it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// `ssehub publish`.
    Publish,
    /// `ssehub subscribe`.
    Subscribe,
}

/// Why a request got no useful answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum HubError {
    /// No TCP connection, or the exchange broke.
    #[error("cannot reach the hub at {url}: {cause}: check --hub (or SSEHUB_HUB_URL) and that the hub runs there")]
    Unreachable {
        /// The hub URL.
        url: Url,
        /// What failed.
        cause: ConnectError,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {url} failed: {cause}: {advice}")]
    Tls {
        /// The hub URL.
        url: Url,
        /// What failed.
        cause: ConnectError,
        /// What to do next.
        advice: &'static str,
    },
    /// A success, but not an event stream.
    #[error("the hub at {url} answered with Content-Type {content_type:?}, not an event stream: check --hub (the hub's URL ends in /.well-known/mercure)")]
    NotAStream {
        /// The hub URL.
        url: Url,
        /// What it answered.
        content_type: String,
    },
    /// No answer in time.
    #[error(
        "the hub at {0} did not answer within {1:?}: check that it runs and is not overloaded"
    )]
    Timeout(Url, std::time::Duration),
    /// An answer other than the expected one.
    #[error("the hub answered {status}{}: {advice}", if message.is_empty() { String::new() } else { format!(" \"{message}\"") })]
    Refused {
        /// Its status.
        status: StatusCode,
        /// The start of its body.
        message: String,
        /// What to do next.
        advice: String,
    },
}

impl HubError {
    /// Whether trying again cannot succeed: after 400, 401, 403, 404 or
    /// 405, a failed TLS handshake, or an answer that is no event stream,
    /// whose cause is in the request or the options.
    pub(super) fn is_permanent(&self) -> bool {
        matches!(self, HubError::Refused { status, .. } if matches!(
            *status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
        )) || matches!(self, HubError::Tls { .. } | HubError::NotAStream { .. })
    }
}

/// A hub to send requests to.
pub(super) struct Hub {
    url: Url,
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
    /// Whether TLS trusts a pinned key (rather than certificate authorities).
    pinned: bool,
    token: Option<String>,
}

impl HubArgs {
    /// The hub these options name.
    pub(super) fn hub(self) -> anyhow::Result<Hub> {
        let url = hub_url(&self.hub)?;
        let endpoint = Endpoint::new(&url).map_err(|e| {
            anyhow::anyhow!("cannot use --hub {url}: {e}: give http(s)://HOST[:PORT][/PATH]")
        })?;
        let pinned = self.pin_spki.is_some();
        let tls = if endpoint.is_tls() {
            let trust = match self.pin_spki {
                Some(pin) => Trust::Pin(pin),
                None => Trust::Roots(self.ca_cert),
            };
            Some(tls_connector(&trust, Alpn::Http2).map_err(|e| {
                anyhow::anyhow!("{e}: give a PEM file holding the hub's certificate")
            })?)
        } else {
            if self.ca_cert.is_some() || self.pin_spki.is_some() {
                anyhow::bail!("--ca-cert and --pin-spki are for https:// hubs, and --hub is {url}: use the hub's https:// URL or drop them");
            }
            None
        };
        let token = self.token.map(|t| t.trim().to_string());
        if let Some(token) = &token {
            if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                anyhow::bail!("the token holds characters a header cannot carry: pass the JWT as `ssehub token` printed it");
            }
        }
        Ok(Hub {
            url,
            endpoint,
            tls,
            pinned,
            token,
        })
    }
}

/// `given` as a hub URL: an origin alone gets the hub path.
fn hub_url(given: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(given.trim()).map_err(|e| {
        anyhow::anyhow!("--hub {given:?} is not a URL ({e}): give e.g. {DEFAULT_HUB}")
    })?;
    if url.path() == "/" || url.path().is_empty() {
        url.set_path(HUB_PATH);
    }
    url.set_fragment(None);
    Ok(url)
}

impl Hub {
    /// The hub URL.
    pub(super) fn url(&self) -> &Url {
        &self.url
    }

    /// Sends one request to the hub URL with `query` (none: the URL's
    /// own), the token and `headers`; the connection and the response if
    /// its status is a success, within `timeout`.
    pub(super) async fn send(
        &self,
        method: Method,
        query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
        action: Action,
        timeout: std::time::Duration,
    ) -> Result<(Connection, Response<Incoming>), HubError> {
        let exchange = async {
            let mut url = self.url.clone();
            if query.is_some() {
                url.set_query(query);
            }
            let unreachable = |cause: ConnectError| match cause {
                ConnectError::Tls(_) => HubError::Tls {
                    url: self.url.clone(),
                    cause,
                    advice: if self.pinned {
                        "check --pin-spki against the SPKI SHA-256 that `ssehub serve` prints for its certificate"
                    } else {
                        "for a self-signed hub, pass --ca-cert DATA_DIR/tls/cert.pem or --pin-spki with the SPKI SHA-256 that `ssehub serve` prints"
                    },
                },
                cause => HubError::Unreachable {
                    url: self.url.clone(),
                    cause,
                },
            };
            let mut connection = self
                .endpoint
                .connect(self.tls.as_ref())
                .await
                .map_err(unreachable)?;
            let mut request = Request::new(Full::new(body));
            *request.method_mut() = method;
            *request.uri_mut() = outbound::target(&url)
                .parse()
                .expect("a URL's path and query form a request target");
            *request.headers_mut() = headers;
            let user_agent = concat!("ssehub/", env!("CARGO_PKG_VERSION"));
            request
                .headers_mut()
                .insert(header::USER_AGENT, HeaderValue::from_static(user_agent));
            if let Some(token) = &self.token {
                let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                    .expect("checked when the hub was made");
                request.headers_mut().insert(header::AUTHORIZATION, bearer);
            }
            let response = connection.send(request).await.map_err(unreachable)?;
            if !response.status().is_success() {
                return Err(refused(response, action).await);
            }
            Ok((connection, response))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HubError::Timeout(self.url.clone(), timeout))?
    }
}

/// The error for an answer with an error status: its status, the start of
/// its body, and what to do.
async fn refused(response: Response<Incoming>, action: Action) -> HubError {
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_MESSAGE)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_string();
    HubError::Refused {
        status,
        message,
        advice: advice(status, action).to_string(),
    }
}

/// What to do after `status`.
fn advice(status: StatusCode, action: Action) -> &'static str {
    match (status, action) {
        (StatusCode::UNAUTHORIZED, Action::Publish) => {
            "the token was refused or is missing: mint one with `ssehub token --publish '*'` and pass it with --token or SSEHUB_TOKEN"
        }
        (StatusCode::UNAUTHORIZED, Action::Subscribe) => {
            "the token was refused or is missing: mint one with `ssehub token --subscribe '*'` and pass it with --token or SSEHUB_TOKEN"
        }
        (StatusCode::FORBIDDEN, Action::Publish) => {
            "the token does not allow publishing to these topics: mint one whose --publish selectors match them"
        }
        (StatusCode::FORBIDDEN, Action::Subscribe) => {
            "the token does not allow this subscription: mint one whose --subscribe selectors match the topics"
        }
        (StatusCode::BAD_REQUEST, _) => "fix the request as the hub says",
        (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _) => {
            "no hub at this URL: check --hub (the hub's URL ends in /.well-known/mercure)"
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the update is larger than the hub accepts (its --max-body): send less data"
        }
        (StatusCode::TOO_MANY_REQUESTS, _) => "the hub limits this client: try again later",
        (s, _) if s.is_server_error() => {
            "the hub could not serve the request: try again later, and see the hub's log"
        }
        _ => "check --hub: it should be a Mercure hub's URL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_gets_the_hub_path() {
        let url = |s| hub_url(s).unwrap().to_string();
        assert_eq!(
            url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/mercure"
        );
        assert_eq!(
            url("https://hub.example/"),
            "https://hub.example/.well-known/mercure"
        );
        assert_eq!(
            url("https://hub.example/mercure?x=1#f"),
            "https://hub.example/mercure?x=1"
        );
        assert!(hub_url("127.0.0.1:8080")
            .unwrap_err()
            .to_string()
            .contains("not a URL"));
    }

    #[test]
    fn refusals_of_the_request_are_permanent() {
        let refused = |status| HubError::Refused {
            status,
            message: String::new(),
            advice: advice(status, Action::Subscribe).into(),
        };
        assert!(refused(StatusCode::UNAUTHORIZED).is_permanent());
        assert!(refused(StatusCode::BAD_REQUEST).is_permanent());
        assert!(!refused(StatusCode::SERVICE_UNAVAILABLE).is_permanent());
        assert!(!refused(StatusCode::TOO_MANY_REQUESTS).is_permanent());
        assert!(refused(StatusCode::UNAUTHORIZED)
            .to_string()
            .contains("ssehub token --subscribe"));
    }
}
