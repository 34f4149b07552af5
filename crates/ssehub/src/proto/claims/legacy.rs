//! Mercure 0.x tokens: the `mercure` claim (or its namespaced spelling)
//! with lists of topic selectors and one payload for every subscription.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ClaimsError;

/// The claim name used by Mercure 0.x hubs.
pub const CLAIM: &str = "mercure";
/// The namespaced claim name, accepted as well.
pub const NAMESPACED_CLAIM: &str = "https://mercure.rocks/";

/// What a 0.x token grants, read from its `mercure` claim.
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

impl MercureClaim {
    /// The claim of a decoded JWT payload; empty when absent.
    pub(super) fn read(payload: &Value) -> Result<MercureClaim, ClaimsError> {
        match payload.get(CLAIM).or_else(|| payload.get(NAMESPACED_CLAIM)) {
            None | Some(Value::Null) => Ok(MercureClaim::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(ClaimsError::Mercure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_claim_names() {
        let a = MercureClaim::read(&json!({"mercure": {"publish": ["*"]}})).unwrap();
        assert_eq!(a.publish, Some(vec!["*".to_string()]));
        let b =
            MercureClaim::read(&json!({"https://mercure.rocks/": {"subscribe": ["x"]}})).unwrap();
        assert_eq!(b.subscribe, Some(vec!["x".to_string()]));
        assert!(MercureClaim::read(&json!({"mercure": {"publish": "notalist"}})).is_err());
        assert_eq!(
            MercureClaim::read(&json!({})).unwrap(),
            MercureClaim::default()
        );
    }
}
