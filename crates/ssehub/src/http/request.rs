//! Reading what a request carries: query pairs and the token.

use http::{header, HeaderMap};

use super::error::ApiError;

/// The decoded query string, in order, repeated keys kept.
#[derive(Debug, Default)]
pub(super) struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub(super) fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Every value of `key`.
    pub(super) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`.
    pub(super) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a token came from; a cookie needs a CSRF check before publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The `authorization` query parameter.
    Query,
    /// The configured cookie.
    Cookie,
}

/// The request's token: the `Authorization` header, else the `authorization`
/// query parameter, else the cookie.
pub(super) fn find_token(
    headers: &HeaderMap,
    query: &Query,
    cookie_name: &str,
) -> Result<Option<(String, TokenSource)>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into())
            })?;
        return Ok(Some((token.trim().to_string(), TokenSource::Header)));
    }
    if let Some(token) = query.first("authorization") {
        return Ok(Some((token.to_string(), TokenSource::Query)));
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| (value.trim_matches('"').to_string(), TokenSource::Cookie));
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_precedence() {
        let q = Query::parse(Some("authorization=q&topic=a&topic=b"));
        assert_eq!(q.all("topic").collect::<Vec<_>>(), ["a", "b"]);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x=1; mercureAuthorization=c".parse().unwrap(),
        );
        assert_eq!(
            find_token(&h, &Query::default(), "mercureAuthorization").unwrap(),
            Some(("c".into(), TokenSource::Cookie))
        );
        assert_eq!(
            find_token(&h, &q, "mercureAuthorization")
                .unwrap()
                .unwrap()
                .1,
            TokenSource::Query
        );
        h.insert(header::AUTHORIZATION, "Bearer h".parse().unwrap());
        assert_eq!(
            find_token(&h, &q, "mercureAuthorization").unwrap(),
            Some(("h".into(), TokenSource::Header))
        );
        h.insert(header::AUTHORIZATION, "Basic h".parse().unwrap());
        assert!(find_token(&h, &q, "mercureAuthorization").is_err());
    }
}
