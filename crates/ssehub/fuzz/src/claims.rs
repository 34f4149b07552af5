//! Token claims of both generations (`proto::claims::Claims::from_token`):
//! the 0.x `mercure` claim and 1.0 `authorization_details`.
//!
//! Input: a byte choosing the header's `typ`, then the JSON payload.
//! Properties:
//!
//! * reading never panics, whatever the JSON;
//! * `--protocol both` reads a token as the one generation accepting it
//!   does, and the other refuses it as of another generation;
//! * a 0.x token grants 0.x selectors only (its payload for every
//!   subscription); a 1.0 token carries `exp` and grants `exact` and
//!   `urlpattern` matchers only, within the documented bounds;
//! * the grants compile (a 0.x selector always; a URL pattern may be
//!   refused, never panic), and finding a subscription's payload never
//!   panics and gives one of the token's payloads.

use serde_json::Value;
use ssehub::proto::claims::{
    Claims, ClaimsError, SelectorSet, TokenPolicy, MAX_DETAILS, MAX_MATCHERS,
};
use ssehub::proto::generation::{Generation, Protocol};
use ssehub::proto::selector::{MatchType, Matcher, SelectorCache, MAX_PATTERN_LEN};

use super::input::Input;

/// Header `typ` values tried, picked by the first byte.
pub(crate) const TYPES: &[Option<&str>] = &[
    None,
    Some("JWT"),
    Some("at+jwt"),
    Some("application/at+jwt"),
    Some(" AT+JWT "),
    Some("application/jwt"),
];

/// The trusted issuer of 1.0 tokens.
pub(crate) const ISSUER: &str = "https://issuer.example";

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let typ = TYPES[usize::from(input.byte()) % TYPES.len()];
    if let Ok(payload) = serde_json::from_slice::<Value>(input.rest()) {
        read(typ, &payload);
    }
}

/// Reads a token's claims under every `--protocol`, checking them.
pub(crate) fn read(typ: Option<&str>, payload: &Value) {
    let base = super::hub_url();
    let read_as = |protocol| {
        let policy = TokenPolicy {
            protocol,
            issuer: ISSUER,
            audience: base.as_str(),
        };
        Claims::from_token(typ, payload, &policy)
    };
    let both = read_as(Protocol::Both);
    let (legacy, v1) = (read_as(Protocol::Legacy), read_as(Protocol::V1));
    let alone = match (legacy, v1) {
        (Err(ClaimsError::Generation(_)), alone) | (alone, Err(ClaimsError::Generation(_))) => {
            alone
        }
        (legacy, v1) => panic!("0.x and 1.0 both read a token: {legacy:?}, {v1:?}"),
    };
    match (&both, &alone) {
        (Ok(both), Ok(alone)) => assert_eq!(both, alone),
        (Err(both), Err(alone)) => assert_eq!(both.to_string(), alone.to_string()),
        _ => panic!("--protocol both reads {both:?}, its generation alone {alone:?}"),
    }
    if let Ok(claims) = both {
        check_grants(&claims, &base);
    }
}

/// What claims grant is what their generation may grant, and compiles.
fn check_grants(claims: &Claims, base: &url::Url) {
    let matchers = || {
        let payloads = claims.payloads.iter().flat_map(|(m, _)| m);
        claims
            .publish
            .iter()
            .chain(&claims.subscribe)
            .chain(payloads)
    };
    let cache = SelectorCache::new(16);
    match claims.generation {
        Some(Generation::Legacy) => {
            assert!(
                matchers().all(|m| m.kind == MatchType::Selector),
                "{claims:?}"
            );
            assert!(claims.payloads.len() <= 1, "{claims:?}");
            SelectorSet::compile(&cache, &claims.publish, base).expect("selectors compile");
            SelectorSet::compile(&cache, &claims.subscribe, base).expect("selectors compile");
        }
        Some(Generation::V1) => {
            assert!(claims.exp.is_some(), "a 1.0 token without exp: {claims:?}");
            assert!(
                matchers().all(|m| m.kind != MatchType::Selector),
                "{claims:?}"
            );
            assert!(
                matchers().all(|m| m.text.len() <= MAX_PATTERN_LEN),
                "{claims:?}"
            );
            let most = MAX_DETAILS * MAX_MATCHERS;
            assert!(claims.publish.len() <= most && claims.subscribe.len() <= most);
            // A URL pattern may be refused (the token is then invalid).
            let _ = SelectorSet::compile(&cache, &claims.publish, base);
            let _ = SelectorSet::compile(&cache, &claims.subscribe, base);
        }
        None => panic!("a token read without its generation: {claims:?}"),
    }
    assert!(claims.subject.as_ref().is_none_or(|s| !s.is_empty()));
    for subscription in matchers().chain([&Matcher::selector("*")]) {
        if let Some(payload) = claims.payload_for(subscription, &cache, base) {
            assert!(
                claims.payloads.iter().any(|(_, p)| *p == payload),
                "{payload} is not one of {claims:?}"
            );
        }
    }
}
