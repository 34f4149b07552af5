//! The `mercure` JWT claim and the authorization rules built on it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::selector::{Selector, SelectorCache};

/// The claim name used by Mercure hubs.
pub const CLAIM: &str = "mercure";
/// The namespaced claim name, accepted as well.
pub const NAMESPACED_CLAIM: &str = "https://mercure.rocks/";

/// What a token grants, read from its `mercure` claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MercureClaim {
    /// Selectors the bearer may publish to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Selectors of private updates the bearer may receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
    /// Application data attached to the bearer's subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Why a token's claims cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The `mercure` claim is not an object of lists of strings.
    #[error("malformed \"mercure\" claim: {0}")]
    Mercure(#[source] serde_json::Error),
    /// `exp` is not a non-negative number.
    #[error("malformed \"exp\" claim")]
    Exp,
}

/// The claims of a verified token that the hub uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// The `mercure` (or namespaced) claim; empty when absent.
    pub mercure: MercureClaim,
    /// Expiry as seconds since the Unix epoch.
    pub exp: Option<u64>,
}

impl Claims {
    /// Extracts the claims from a decoded JWT payload.
    pub fn from_payload(payload: &Value) -> Result<Claims, ClaimsError> {
        let claim = payload.get(CLAIM).or_else(|| payload.get(NAMESPACED_CLAIM));
        let mercure = match claim {
            None | Some(Value::Null) => MercureClaim::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(ClaimsError::Mercure)?,
        };
        let exp = match payload.get("exp") {
            None | Some(Value::Null) => None,
            // A NumericDate may be fractional (RFC 7519); whole seconds are
            // kept, so a token never lives longer than it says.
            Some(v) => match v.as_f64() {
                Some(exp) if exp >= 0.0 => Some(whole_seconds(exp)),
                _ => return Err(ClaimsError::Exp),
            },
        };
        Ok(Claims { mercure, exp })
    }
}

/// The whole seconds of a non-negative NumericDate, rounded down; a date
/// beyond `u64` saturates (it is then simply far away).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole_seconds(date: f64) -> u64 {
    // `as` from a float saturates at the bounds and truncates toward zero,
    // which is the rounding wanted here.
    date as u64
}

/// A compiled list of selectors from a claim or a query.
#[derive(Debug, Clone, Default)]
pub struct SelectorSet(Vec<std::sync::Arc<Selector>>);

impl SelectorSet {
    /// Compiles the selectors through the shared cache.
    pub fn compile(cache: &SelectorCache, selectors: &[String]) -> SelectorSet {
        SelectorSet(selectors.iter().map(|s| cache.get(s)).collect())
    }

    /// Whether any selector matches any of `topics`.
    pub fn matches_any(&self, topics: &[String]) -> bool {
        topics.iter().any(|t| self.matches(t))
    }

    /// Whether any selector matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.0.iter().any(|s| s.matches(topic))
    }

    /// The compiled selectors.
    pub fn selectors(&self) -> &[std::sync::Arc<Selector>] {
        &self.0
    }
}

/// Whether a publisher allowed `publish` may publish an update to all of `topics`.
pub fn can_publish(publish: &SelectorSet, topics: &[String]) -> bool {
    topics.iter().all(|t| publish.matches(t))
}

/// Whether a subscriber (its topic selectors, its token's `subscribe` selectors)
/// receives an update: a topic must match a subscribed selector and, for a
/// private update, some topic (canonical or alternate) must match the token.
pub fn can_receive(
    subscribed: &SelectorSet,
    allowed: &SelectorSet,
    topics: &[String],
    private: bool,
) -> bool {
    subscribed.matches_any(topics) && (!private || allowed.matches_any(topics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(cache: &SelectorCache, s: &[&str]) -> SelectorSet {
        SelectorSet::compile(cache, &s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn reads_both_claim_names() {
        let a = Claims::from_payload(&json!({"mercure": {"publish": ["*"]}, "exp": 5})).unwrap();
        assert_eq!(a.mercure.publish, Some(vec!["*".to_string()]));
        assert_eq!(a.exp, Some(5));
        let b =
            Claims::from_payload(&json!({"https://mercure.rocks/": {"subscribe": ["x"]}})).unwrap();
        assert_eq!(b.mercure.subscribe, Some(vec!["x".to_string()]));
        assert!(Claims::from_payload(&json!({"mercure": {"publish": "notalist"}})).is_err());
    }

    #[test]
    fn publish_needs_every_topic() {
        let cache = SelectorCache::new(16);
        let p = set(&cache, &["https://a/{id}"]);
        let topics = |t: &[&str]| t.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(can_publish(&p, &topics(&["https://a/1", "https://a/2"])));
        assert!(!can_publish(&p, &topics(&["https://a/1", "https://b/2"])));
        assert!(!can_publish(
            &SelectorSet::default(),
            &topics(&["https://a/1"])
        ));
    }

    #[test]
    fn private_needs_a_covering_token() {
        let cache = SelectorCache::new(16);
        let subscribed = set(&cache, &["*"]);
        let topics = vec!["https://a/1".to_string(), "https://alt/1".to_string()];
        assert!(can_receive(
            &subscribed,
            &SelectorSet::default(),
            &topics,
            false
        ));
        assert!(!can_receive(
            &subscribed,
            &SelectorSet::default(),
            &topics,
            true
        ));
        assert!(can_receive(
            &subscribed,
            &set(&cache, &["https://alt/{x}"]),
            &topics,
            true
        ));
        assert!(!can_receive(
            &set(&cache, &["https://b"]),
            &set(&cache, &["*"]),
            &topics,
            true
        ));
    }
}
