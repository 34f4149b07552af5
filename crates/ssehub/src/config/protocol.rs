//! Which Mercure generations the hub speaks, and what 1.0 access tokens
//! are checked against: the trusted issuer and this hub's URL (their
//! audience).

use serde::Deserialize;

use super::{defaults, ConfigError};
use crate::proto::generation::Protocol;

/// The protocol generations and the identity of the hub.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct ProtocolOptions {
    /// Mercure generations accepted: 0 (0.x), 1 (1.0) or both
    #[arg(long, env = "SSEHUB_PROTOCOL", value_name = "0|1|both")]
    pub protocol: Option<String>,
    /// Public URL of the hub (https://host/.well-known/mercure): the audience of 1.0 tokens and the base of relative URL patterns [default: derived from each request's Host]
    #[arg(long, env = "SSEHUB_HUB_URL", value_name = "URL")]
    pub hub_url: Option<String>,
    /// Issuer (`iss`) of trusted 1.0 access tokens, bound to the configured keys
    #[arg(long, env = "SSEHUB_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Name of the cookie carrying a 1.0 access token
    #[arg(long, env = "SSEHUB_ACCESS_TOKEN_COOKIE", value_name = "NAME")]
    pub access_token_cookie: Option<String>,
}

layer!(ProtocolOptions {
    protocol,
    hub_url,
    jwt_issuer,
    access_token_cookie
});

/// The protocol generations and the identity of the hub.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// Generations accepted.
    pub protocol: Protocol,
    /// The hub's public URL, if pinned; else derived from each request.
    pub hub_url: Option<url::Url>,
    /// The trusted issuer of 1.0 tokens.
    pub issuer: String,
    /// The 1.0 token cookie.
    pub access_token_cookie: String,
}

impl ProtocolOptions {
    /// Applies the defaults and checks the values.
    pub(super) fn resolve(self) -> Result<ProtocolConfig, ConfigError> {
        let protocol = defaults::PROTOCOL
            .or(self.protocol)
            .parse()
            .map_err(|why| ConfigError::Unusable {
                flag: defaults::PROTOCOL.flag,
                why,
            })?;
        let hub_url = self
            .hub_url
            .map(|u| parse_hub_url(&u))
            .transpose()
            .map_err(|why| ConfigError::Unusable {
                flag: "hub-url",
                why,
            })?;
        Ok(ProtocolConfig {
            protocol,
            hub_url,
            issuer: defaults::JWT_ISSUER.or(self.jwt_issuer),
            access_token_cookie: defaults::ACCESS_TOKEN_COOKIE.or(self.access_token_cookie),
        })
    }
}

/// An absolute http(s) URL whose path is the hub's, `/.well-known/mercure`.
fn parse_hub_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL with a host"
        ));
    }
    if url.path() != crate::proto::HUB_PATH {
        return Err(format!(
            "{text:?} must end with {} (the hub is served there)",
            crate::proto::HUB_PATH
        ));
    }
    Ok(url)
}
