//! Finding a request's token, verifying it, and reading what it grants, the
//! same way for publishing, subscribing and the subscriptions API.
//!
//! Where a token may come from depends on the generation: the
//! `Authorization: Bearer` header always; the `authorization` query
//! parameter only for 0.x (1.0 forbids tokens in URLs, RFC 9700); the 1.0
//! cookie (`--access-token-cookie`) when 1.0 is accepted and the 0.x one
//! (`--cookie-name`) when 0.x is. The header wins over a cookie.

use http::{header, HeaderMap};

use super::error::ApiError;
use super::request::Query;
use crate::hub::Hub;
use crate::proto::claims::{Claims, SelectorSet, TokenPolicy};
use crate::proto::generation::Generation;
use crate::proto::selector::Matcher;

/// Which key verifies the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A publisher's token.
    Publisher,
    /// A subscriber's token (also for the subscriptions API).
    Subscriber,
}

/// Where a token came from; a cookie needs a CSRF check before publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The `authorization` query parameter (0.x only).
    Query,
    /// One of the token cookies.
    Cookie,
}

/// The request's token, verified and read; `None` when it carries none.
/// `request` is the generation of the request itself when it has one (a
/// subscription with `match=` is 1.0), `base` the hub URL (the audience).
pub(super) async fn authenticate(
    hub: &Hub,
    headers: &HeaderMap,
    query: &Query,
    base: &url::Url,
    role: Role,
    request: Option<Generation>,
) -> Result<Option<(Claims, TokenSource)>, ApiError> {
    let config = &hub.config;
    let protocol = config.protocol.protocol;
    let mut cookies = Vec::new();
    if protocol.allows(Generation::V1) {
        cookies.push(config.protocol.access_token_cookie.as_str());
    }
    if protocol.allows(Generation::Legacy) {
        cookies.push(config.access.cookie_name.as_str());
    }
    let query_allowed = protocol.allows(Generation::Legacy) && request != Some(Generation::V1);
    let Some((token, source)) = find_token(headers, query, query_allowed, &cookies)? else {
        return Ok(None);
    };
    Ok(Some((verify(hub, &token, base, role).await?, source)))
}

/// The token in the request's `Authorization: Bearer` header only (no
/// cookie, no query parameter), verified and read; `None` when it has none.
pub(super) async fn authenticate_header(
    hub: &Hub,
    headers: &HeaderMap,
    base: &url::Url,
    role: Role,
) -> Result<Option<Claims>, ApiError> {
    match find_token(headers, &Query::default(), false, &[])? {
        Some((token, _)) => Ok(Some(verify(hub, &token, base, role).await?)),
        None => Ok(None),
    }
}

/// Verifies `token` with the key of `role` and reads what it grants.
async fn verify(hub: &Hub, token: &str, base: &url::Url, role: Role) -> Result<Claims, ApiError> {
    let verifier = match role {
        Role::Publisher => &hub.publisher,
        Role::Subscriber => &hub.subscriber,
    };
    let verified = verifier.verify(token).await?;
    let policy = TokenPolicy {
        protocol: hub.config.protocol.protocol,
        issuer: &hub.config.protocol.issuer,
        audience: base.as_str(),
    };
    Ok(Claims::from_token(
        verified.header.typ.as_deref(),
        &verified.payload,
        &policy,
    )?)
}

/// Compiles a token's grants; a URL pattern that does not compile makes the
/// token invalid (it cannot be evaluated, and skipping it would change what
/// the token grants).
pub(super) fn grants(
    hub: &Hub,
    matchers: &[Matcher],
    base: &url::Url,
) -> Result<SelectorSet, ApiError> {
    SelectorSet::compile(&hub.selectors, matchers, base)
        .map_err(|e| ApiError::InvalidToken(format!("invalid token: {e}")))
}

/// The request's token: the `Authorization` header, else the
/// `authorization` query parameter (if `query_allowed`), else the first of
/// `cookies` present.
fn find_token(
    headers: &HeaderMap,
    query: &Query,
    query_allowed: bool,
    cookies: &[&str],
) -> Result<Option<(String, TokenSource)>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::InvalidRequest(
                    "the Authorization header must be \"Bearer <token>\"".into(),
                )
            })?;
        return Ok(Some((token.to_string(), TokenSource::Header)));
    }
    if let Some(token) = query.first("authorization") {
        if !query_allowed {
            return Err(ApiError::InvalidRequest(
                "a token in the URL (authorization query parameter) is Mercure 0.x only: send it in the Authorization header or the access token cookie".into(),
            ));
        }
        return Ok(Some((token.to_string(), TokenSource::Query)));
    }
    let pairs: Vec<(&str, &str)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect();
    Ok(cookies.iter().find_map(|wanted| {
        pairs
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| (value.trim_matches('"').to_string(), TokenSource::Cookie))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_precedence() {
        let q = Query::parse(Some("authorization=q&topic=a"));
        let cookies = ["__Secure-mercure_access_token", "mercureAuthorization"];
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x=1; mercureAuthorization=c0; __Secure-mercure_access_token=c1"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            find_token(&h, &Query::default(), true, &cookies).unwrap(),
            Some(("c1".into(), TokenSource::Cookie))
        );
        assert_eq!(
            find_token(&h, &Query::default(), true, &cookies[1..]).unwrap(),
            Some(("c0".into(), TokenSource::Cookie))
        );
        assert_eq!(
            find_token(&h, &q, true, &cookies).unwrap().unwrap().1,
            TokenSource::Query
        );
        assert!(matches!(
            find_token(&h, &q, false, &cookies),
            Err(ApiError::InvalidRequest(_))
        ));
        h.insert(header::AUTHORIZATION, "Bearer h".parse().unwrap());
        assert_eq!(
            find_token(&h, &q, false, &cookies).unwrap(),
            Some(("h".into(), TokenSource::Header))
        );
        for bad in ["Basic h", "Bearer ", "Bearer"] {
            h.insert(header::AUTHORIZATION, bad.parse().unwrap());
            assert!(
                matches!(
                    find_token(&h, &q, true, &cookies),
                    Err(ApiError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
