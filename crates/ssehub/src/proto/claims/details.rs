//! Mercure 1.0 grants: the RFC 9396 `authorization_details` claim of an
//! RFC 9068 access token. Each Mercure detail names actions (`publish`,
//! `subscribe`; others are ignored), topic matchers with their type, and
//! for `subscribe` an optional payload. One malformed Mercure detail makes
//! the whole token invalid: acting on the rest would silently change what
//! it grants. Details of other types are left alone.

use serde_json::{json, Value};

use super::ClaimsError;
use crate::proto::selector::{MatchType, Matcher, MAX_PATTERN_LEN};
use crate::proto::text::{describe, forbidden_char};

/// The type of a Mercure authorization detail.
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";
/// Most Mercure details one token may carry.
pub const MAX_DETAILS: usize = 64;
/// Most topic matchers one detail may carry.
pub const MAX_MATCHERS: usize = 256;

/// A 1.0 access token to mint (`ssehub token --protocol 1`, the start-up
/// banner): every claim RFC 9068 asks issuers to set, and one Mercure
/// detail per action granted.
#[derive(Debug, Clone)]
pub struct AccessToken<'a> {
    /// `iss`: the issuer the hub trusts.
    pub issuer: &'a str,
    /// `aud`: the hub's URL.
    pub audience: &'a str,
    /// `sub` and `client_id`.
    pub subject: &'a str,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: u64,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Topics the bearer may publish to.
    pub publish: &'a [Matcher],
    /// Private topics the bearer may receive.
    pub subscribe: &'a [Matcher],
}

impl AccessToken<'_> {
    /// The token's claims.
    pub fn claims(&self) -> Value {
        let detail = |action: &str, matchers: &[Matcher]| {
            let topics: Vec<Value> = matchers
                .iter()
                .map(|m| json!({"match": m.text, "match_type": m.kind.name().unwrap_or("exact")}))
                .collect();
            json!({"type": DETAIL_TYPE, "actions": [action], "topics": topics})
        };
        let mut details = Vec::new();
        if !self.publish.is_empty() {
            details.push(detail("publish", self.publish));
        }
        if !self.subscribe.is_empty() {
            details.push(detail("subscribe", self.subscribe));
        }
        json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "client_id": self.subject,
            "iat": self.issued_at,
            "exp": self.expires_at,
            "jti": format!("urn:uuid:{}", uuid::Uuid::now_v7()),
            "authorization_details": details,
        })
    }
}

/// What the details of one token grant.
#[derive(Debug, Default)]
pub(super) struct Grants {
    /// Matchers of the topics the bearer may publish to.
    pub(super) publish: Vec<Matcher>,
    /// Matchers of the private topics the bearer may receive.
    pub(super) subscribe: Vec<Matcher>,
    /// The payload of each `subscribe` detail that has one, in order.
    pub(super) payloads: Vec<(Vec<Matcher>, Value)>,
}

/// Reads the `authorization_details` claim (absent: grants nothing).
pub(super) fn read(payload: &Value) -> Result<Grants, ClaimsError> {
    let bad = |why: String| ClaimsError::Details(why);
    let mut grants = Grants::default();
    let details = match payload.get("authorization_details") {
        None | Some(Value::Null) => return Ok(grants),
        Some(Value::Array(details)) => details,
        Some(_) => return Err(bad("authorization_details is not an array".into())),
    };
    let mercure: Vec<&Value> = details
        .iter()
        .filter(|d| d.get("type").and_then(Value::as_str) == Some(DETAIL_TYPE))
        .collect();
    if let Some(i) = details.iter().position(|d| !d.is_object()) {
        return Err(bad(format!("authorization_details[{i}] is not an object")));
    }
    if mercure.len() > MAX_DETAILS {
        return Err(bad(format!(
            "{} Mercure authorization details, at most {MAX_DETAILS}",
            mercure.len()
        )));
    }
    for (i, detail) in mercure.into_iter().enumerate() {
        let detail =
            Detail::read(detail).map_err(|why| bad(format!("Mercure detail {i}: {why}")))?;
        if detail.publish {
            grants.publish.extend(detail.topics.iter().cloned());
        }
        if detail.subscribe {
            grants.subscribe.extend(detail.topics.iter().cloned());
            if let Some(payload) = detail.payload {
                grants.payloads.push((detail.topics, payload));
            }
        }
    }
    Ok(grants)
}

/// One Mercure detail, checked.
struct Detail {
    publish: bool,
    subscribe: bool,
    topics: Vec<Matcher>,
    payload: Option<Value>,
}

impl Detail {
    fn read(detail: &Value) -> Result<Detail, String> {
        let actions = match detail.get("actions") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => return Err("\"actions\" must be a non-empty array".into()),
        };
        let actions: Vec<&str> = actions
            .iter()
            .map(|a| a.as_str().ok_or("an action is not a string"))
            .collect::<Result<_, _>>()?;
        let topics = match detail.get("topics") {
            Some(Value::Array(t)) if !t.is_empty() => t,
            _ => return Err("\"topics\" must be a non-empty array".into()),
        };
        if topics.len() > MAX_MATCHERS {
            return Err(format!(
                "{} topic matchers, at most {MAX_MATCHERS}",
                topics.len()
            ));
        }
        let payload = match detail.get("payload") {
            None => None,
            Some(p @ Value::Object(_)) => Some(p.clone()),
            Some(_) => return Err("\"payload\" must be an object".into()),
        };
        Ok(Detail {
            publish: actions.contains(&"publish"),
            subscribe: actions.contains(&"subscribe"),
            topics: topics.iter().map(matcher).collect::<Result<_, _>>()?,
            payload,
        })
    }
}

/// A topic matcher object: `{"match": "...", "match_type": "exact"}`.
fn matcher(entry: &Value) -> Result<Matcher, String> {
    let Some(text) = entry.get("match").and_then(Value::as_str) else {
        return Err("a topic matcher must be an object with a string \"match\"".into());
    };
    let kind = match entry.get("match_type") {
        None => MatchType::Exact,
        Some(Value::String(name)) => MatchType::from_name(name)
            .ok_or_else(|| format!("unsupported match_type {name:?} (exact, urlpattern)"))?,
        Some(_) => return Err("\"match_type\" must be a string".into()),
    };
    if text.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "a matcher is {} bytes long, at most {MAX_PATTERN_LEN}",
            text.len()
        ));
    }
    if let Some(c) = forbidden_char(text) {
        return Err(format!("matcher {text:?} contains {}", describe(c)));
    }
    Ok(Matcher::new(kind, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(actions: Value, topics: Value) -> Value {
        let mut detail = json!({ "type": DETAIL_TYPE });
        detail["actions"] = actions;
        detail["topics"] = topics;
        detail
    }

    #[test]
    fn minted_tokens_read_back() {
        let publish = [Matcher::new(MatchType::Exact, "*")];
        let subscribe = [Matcher::new(MatchType::UrlPattern, "https://a/:id")];
        let claims = AccessToken {
            issuer: "ssehub",
            audience: "https://hub/.well-known/mercure",
            subject: "cli",
            issued_at: 1,
            expires_at: 2,
            publish: &publish,
            subscribe: &subscribe,
        }
        .claims();
        assert_eq!(claims["exp"], 2);
        let grants = read(&claims).unwrap();
        assert_eq!(grants.publish, publish);
        assert_eq!(grants.subscribe, subscribe);
    }

    #[test]
    fn grants_by_action() {
        let grants = read(&json!({"authorization_details": [
            detail(json!(["publish"]), json!([{"match": "*"}])),
            {"type": DETAIL_TYPE, "actions": ["subscribe", "future"],
             "topics": [{"match": "https://a/:id", "match_type": "urlpattern"}],
             "payload": {"x": 1}},
            {"type": "https://other.example/detail", "anything": true},
            detail(json!(["future"]), json!([{"match": "https://b"}])),
        ]}))
        .unwrap();
        assert_eq!(grants.publish, [Matcher::new(MatchType::Exact, "*")]);
        assert_eq!(
            grants.subscribe,
            [Matcher::new(MatchType::UrlPattern, "https://a/:id")]
        );
        assert_eq!(grants.payloads.len(), 1);
        assert_eq!(grants.payloads[0].1, json!({"x": 1}));
        assert!(read(&json!({})).unwrap().subscribe.is_empty());
    }

    #[test]
    fn one_bad_detail_invalidates_the_token() {
        for bad in [
            json!("not an array"),
            json!([detail(json!([]), json!([{"match": "a"}]))]),
            json!([detail(json!("publish"), json!([{"match": "a"}]))]),
            json!([detail(json!([1]), json!([{"match": "a"}]))]),
            json!([detail(json!(["publish"]), json!([]))]),
            json!([detail(json!(["publish"]), json!(["a"]))]),
            json!([detail(json!(["publish"]), json!([{"match": 1}]))]),
            json!([detail(
                json!(["publish"]),
                json!([{"match": "a", "match_type": "uritemplate"}])
            )]),
            json!([detail(
                json!(["publish"]),
                json!([{"match": "a", "match_type": "URLPattern"}])
            )]),
            json!([detail(json!(["publish"]), json!([{"match": "a\u{200b}"}]))]),
            json!([{"type": DETAIL_TYPE, "actions": ["subscribe"],
                    "topics": [{"match": "a"}], "payload": "text"}]),
            json!([detail(json!(["publish"]), json!([{"match": "ok"}])), 5]),
        ] {
            assert!(
                read(&json!({ "authorization_details": bad })).is_err(),
                "{bad}"
            );
        }
        let many: Vec<Value> = (0..=MAX_DETAILS)
            .map(|_| detail(json!(["publish"]), json!([{"match": "a"}])))
            .collect();
        assert!(read(&json!({ "authorization_details": many })).is_err());
    }
}
