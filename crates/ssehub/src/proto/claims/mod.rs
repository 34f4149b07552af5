//! What a verified token grants, in either Mercure generation, and the
//! authorization rules built on it.
//!
//! A token is read in the generation its header says: `typ: at+jwt` (or
//! `application/at+jwt`) is a Mercure 1.0 access token, checked for `iss`,
//! `aud` and `exp` and read from `authorization_details`
//! ([`details`]); any other token is a Mercure 0.x token read from its
//! `mercure` claim ([`legacy`]). Both become the same [`Claims`]: lists of
//! topic matchers the bearer may publish to and receive private updates of,
//! and payloads for its subscriptions, so the rules below and the fan-out
//! never ask which generation granted what.

mod details;
mod legacy;

use std::sync::Arc;

use serde_json::Value;

pub use details::{AccessToken, DETAIL_TYPE, MAX_DETAILS, MAX_MATCHERS};
pub use legacy::{MercureClaim, CLAIM, NAMESPACED_CLAIM};

use super::generation::{Generation, Protocol};
use super::selector::{Matcher, PatternError, Selector, SelectorCache};

/// Why a token's claims cannot be used (answered 401 `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The `mercure` claim is not an object of lists of strings.
    #[error("malformed \"mercure\" claim: {0}")]
    Mercure(#[source] serde_json::Error),
    /// `exp` is not a non-negative number.
    #[error("malformed \"exp\" claim")]
    Exp,
    /// A 1.0 access token without `exp`.
    #[error("an at+jwt access token must carry \"exp\"")]
    MissingExp,
    /// `iss` is not the configured issuer.
    #[error("\"iss\" {found:?} is not the trusted issuer {expected:?} (--jwt-issuer)")]
    Issuer {
        /// What the token says, if anything.
        found: Option<String>,
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not name this hub.
    #[error("\"aud\" must be or contain this hub's resource identifier {expected:?} (--hub-url)")]
    Audience {
        /// This hub's resource identifier.
        expected: String,
    },
    /// `authorization_details` is malformed.
    #[error("malformed authorization_details: {0}")]
    Details(String),
    /// A URL pattern of the token does not compile.
    #[error("invalid matcher in the token: {0}")]
    Pattern(#[from] PatternError),
    /// A token of a generation the hub does not accept.
    #[error("{0}")]
    Generation(String),
}

/// What a 1.0 token is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy<'a> {
    /// The generations accepted.
    pub protocol: Protocol,
    /// The trusted issuer (`iss`).
    pub issuer: &'a str,
    /// This hub's resource identifier, which `aud` must name.
    pub audience: &'a str,
}

/// What a verified token grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// The token's generation; `None` for a subscriber without a token.
    pub generation: Option<Generation>,
    /// Matchers of the topics the bearer may publish to.
    pub publish: Vec<Matcher>,
    /// Matchers of the private topics the bearer may receive.
    pub subscribe: Vec<Matcher>,
    /// Payloads for subscriptions, each with the matchers a subscription's
    /// own matcher must match for it to apply; the first that does wins.
    pub payloads: Vec<(Vec<Matcher>, Value)>,
    /// Expiry as seconds since the Unix epoch.
    pub exp: Option<u64>,
    /// The token's subject (`sub`), if it names one: what limits per
    /// subject count.
    pub subject: Option<String>,
    /// Whether the token carries [`ADMIN_CLAIM`] `{"admin": true}`: it may
    /// read the hub's live figures (the browser UI's dashboard).
    pub admin: bool,
}

/// The claim of ssehub's own grants, in tokens of either generation:
/// `"ssehub": {"admin": true}` lets the bearer read the hub's live figures.
pub const ADMIN_CLAIM: &str = "ssehub";

/// The value of [`ADMIN_CLAIM`] granting administration.
pub fn admin_claim() -> Value {
    serde_json::json!({ "admin": true })
}

/// Whether a payload's [`ADMIN_CLAIM`] grants administration (only the
/// boolean `true` does).
fn read_admin(payload: &Value) -> bool {
    payload.get(ADMIN_CLAIM).and_then(|c| c.get("admin")) == Some(&Value::Bool(true))
}

impl Claims {
    /// Reads a verified token's header type and payload.
    pub fn from_token(
        typ: Option<&str>,
        payload: &Value,
        policy: &TokenPolicy<'_>,
    ) -> Result<Claims, ClaimsError> {
        let generation = if typ.is_some_and(is_access_token_type) {
            Generation::V1
        } else {
            Generation::Legacy
        };
        if !policy.protocol.allows(generation) {
            return Err(ClaimsError::Generation(
                policy.protocol.refuse(generation, "this token"),
            ));
        }
        let exp = read_exp(payload)?;
        match generation {
            Generation::Legacy => {
                let claim = MercureClaim::read(payload)?;
                let selectors = |list: Option<Vec<String>>| {
                    list.unwrap_or_default()
                        .into_iter()
                        .map(Matcher::selector)
                        .collect()
                };
                Ok(Claims {
                    generation: Some(generation),
                    publish: selectors(claim.publish),
                    subscribe: selectors(claim.subscribe),
                    payloads: claim
                        .payload
                        .map(|p| (vec![Matcher::selector("*")], p))
                        .into_iter()
                        .collect(),
                    exp,
                    subject: read_subject(payload),
                    admin: read_admin(payload),
                })
            }
            Generation::V1 => {
                check_access_token(payload, exp, policy)?;
                let grants = details::read(payload)?;
                Ok(Claims {
                    generation: Some(generation),
                    publish: grants.publish,
                    subscribe: grants.subscribe,
                    payloads: grants.payloads,
                    exp,
                    subject: read_subject(payload),
                    admin: read_admin(payload),
                })
            }
        }
    }

    /// The payload of the subscription `subscription`: that of the first
    /// entry one of whose matchers matches the subscription's own matcher
    /// text taken as a topic.
    pub fn payload_for(
        &self,
        subscription: &Matcher,
        cache: &SelectorCache,
        base: &url::Url,
    ) -> Option<Value> {
        self.payloads
            .iter()
            .find(|(matchers, _)| {
                matchers.iter().any(|m| {
                    cache
                        .get(m, base)
                        .is_ok_and(|s| s.matches(&subscription.text))
                })
            })
            .map(|(_, payload)| payload.clone())
    }
}

/// RFC 9068: `at+jwt`, with or without `application/`, any case.
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.trim();
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("at+jwt")
}

fn read_exp(payload: &Value) -> Result<Option<u64>, ClaimsError> {
    match payload.get("exp") {
        None | Some(Value::Null) => Ok(None),
        // A NumericDate may be fractional (RFC 7519); whole seconds are
        // kept, so a token never lives longer than it says.
        Some(v) => match v.as_f64() {
            Some(exp) if exp >= 0.0 => Ok(Some(whole_seconds(exp))),
            _ => Err(ClaimsError::Exp),
        },
    }
}

/// The subject, when `sub` is a non-empty string (anything else names none).
fn read_subject(payload: &Value) -> Option<String> {
    payload
        .get("sub")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The checks RFC 9068 asks of a resource server: `exp` present (its value
/// is checked with the signature), `iss` the trusted issuer, `aud` this hub.
fn check_access_token(
    payload: &Value,
    exp: Option<u64>,
    policy: &TokenPolicy<'_>,
) -> Result<(), ClaimsError> {
    if exp.is_none() {
        return Err(ClaimsError::MissingExp);
    }
    let iss = payload.get("iss").and_then(Value::as_str);
    if iss != Some(policy.issuer) {
        return Err(ClaimsError::Issuer {
            found: iss.map(String::from),
            expected: policy.issuer.to_string(),
        });
    }
    let names_us = match payload.get("aud") {
        Some(Value::String(aud)) => aud == policy.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(policy.audience)),
        _ => false,
    };
    if !names_us {
        return Err(ClaimsError::Audience {
            expected: policy.audience.to_string(),
        });
    }
    Ok(())
}

/// The whole seconds of a non-negative NumericDate, rounded down; a date
/// beyond `u64` saturates (it is then simply far away).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole_seconds(date: f64) -> u64 {
    // `as` from a float saturates at the bounds and truncates toward zero,
    // which is the rounding wanted here.
    date as u64
}

/// A compiled list of matchers from a token or a subscribe request.
#[derive(Debug, Clone, Default)]
pub struct SelectorSet(Vec<Arc<Selector>>);

impl SelectorSet {
    /// Compiles the matchers through the shared cache; `base` is the hub
    /// URL relative URL patterns resolve against.
    pub fn compile(
        cache: &SelectorCache,
        matchers: &[Matcher],
        base: &url::Url,
    ) -> Result<SelectorSet, PatternError> {
        matchers
            .iter()
            .map(|m| cache.get(m, base))
            .collect::<Result<_, _>>()
            .map(SelectorSet)
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
    pub fn selectors(&self) -> &[Arc<Selector>] {
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

/// The indexes of the `subscribed` selectors through which a subscriber
/// receives an update, in order: those matching a topic of the update it may
/// receive, that is any topic of a public update, and for a private one only
/// a topic `allowed` (its token's grants) also matches. A selector matching
/// only a topic the token does not grant (an alternate topic naming another
/// user, say) is left out, even when another topic authorizes the update.
pub fn receiving_selectors<'a>(
    subscribed: &'a SelectorSet,
    allowed: &'a SelectorSet,
    topics: &'a [String],
    private: bool,
) -> impl Iterator<Item = usize> + 'a {
    subscribed.0.iter().enumerate().filter_map(move |(i, s)| {
        topics
            .iter()
            .any(|t| s.matches(t) && (!private || allowed.matches(t)))
            .then_some(i)
    })
}

#[cfg(test)]
mod tests;
