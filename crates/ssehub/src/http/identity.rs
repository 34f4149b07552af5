//! The hub's identity as a request sees it: its URL, which is the audience
//! of 1.0 access tokens and the base of relative URL patterns and topics.
//!
//! `--hub-url` pins it. Otherwise it is derived from each request, as the
//! Mercure hub does: `https` when the connection is TLS (or a proxy says so
//! with `X-Forwarded-Proto: https`), the `Host` (HTTP/1.1) or `:authority`
//! (HTTP/2, HTTP/3), and the hub's path. Derivation lets one hub answer to
//! several names without configuration; pinning it keeps a token minted
//! for another hub sharing the same keys from being replayed here with a
//! forged `Host`, so production deployments should set it.

use http::request::Parts;
use http::{header, uri::Authority};

use super::error::ApiError;
use super::HUB_PATH;
use crate::hub::Hub;

/// Set by the server on requests of a TLS listener (HTTPS, HTTP/3).
#[derive(Debug, Clone, Copy)]
pub struct Secure;

/// The hub URL for this request.
pub(super) fn hub_url(hub: &Hub, parts: &Parts) -> Result<url::Url, ApiError> {
    if let Some(url) = &hub.config.protocol.hub_url {
        return Ok(url.clone());
    }
    let forwarded_https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let scheme = if parts.extensions.get::<Secure>().is_some() || forwarded_https {
        "https"
    } else {
        "http"
    };
    let host = parts
        .uri
        .authority()
        .map(Authority::as_str)
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .unwrap_or("localhost");
    let bad_host = || ApiError::BadRequest(format!("invalid Host {host:?}"));
    let authority: Authority = host.parse().map_err(|_| bad_host())?;
    if authority.as_str().contains('@') {
        return Err(bad_host());
    }
    url::Url::parse(&format!("{scheme}://{authority}{HUB_PATH}")).map_err(|_| bad_host())
}
