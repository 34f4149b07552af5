//! Mercure 1.0 access tokens as an authorization server would mint them:
//! a `typ: at+jwt` header, HS256 with the test secret, and the claims a
//! test chooses, most often [`claims`] with some [`detail`]s.

use serde_json::{json, Value};

use super::{now_secs, SECRET};

/// The issuer a hub trusts by default (`--jwt-issuer`).
pub(crate) const ISSUER: &str = "ssehub";

/// The type of a Mercure authorization detail.
pub(crate) const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// Signs `claims` as a 1.0 access token: `typ: at+jwt`, HS256, the test
/// secret.
pub(crate) fn access_token(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The claims of a valid access token for the hub at `aud` (its URL)
/// granting `details`: the trusted issuer, an hour to live.
pub(crate) fn claims(aud: &str, details: &[Value]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": aud,
        "sub": "integration-test",
        "exp": now_secs() + 3600,
        "authorization_details": details,
    })
}

/// A Mercure authorization detail: `actions` on `topics`, each
/// `(match_type, match)`.
pub(crate) fn detail(actions: &[&str], topics: &[(&str, &str)]) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(kind, text)| json!({"match": text, "match_type": kind}))
        .collect();
    json!({"type": DETAIL_TYPE, "actions": actions, "topics": topics})
}

/// A valid token for the hub at `aud` that may receive the private
/// updates of `topics` (`(match_type, match)`).
pub(crate) fn subscriber(aud: &str, topics: &[(&str, &str)]) -> String {
    access_token(&claims(aud, &[detail(&["subscribe"], topics)]))
}

/// A valid token for the hub at `aud` that may publish to every topic.
pub(crate) fn publisher(aud: &str) -> String {
    access_token(&claims(aud, &[detail(&["publish"], &[("exact", "*")])]))
}
