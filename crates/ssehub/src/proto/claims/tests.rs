use serde_json::json;

use super::*;
use crate::proto::selector::MatchType;

const ISSUER: &str = "https://app.example";
const HUB: &str = "https://hub.example/.well-known/mercure";

fn policy(protocol: Protocol) -> TokenPolicy<'static> {
    TokenPolicy {
        protocol,
        issuer: ISSUER,
        audience: HUB,
    }
}

fn base() -> url::Url {
    url::Url::parse(HUB).unwrap()
}

fn set(cache: &SelectorCache, matchers: &[Matcher]) -> SelectorSet {
    SelectorSet::compile(cache, matchers, &base()).unwrap()
}

fn selectors(s: &[&str]) -> Vec<Matcher> {
    s.iter().map(|x| Matcher::selector(*x)).collect()
}

fn access_token(extra: Value) -> Value {
    let mut payload = json!({"iss": ISSUER, "aud": HUB, "exp": 4_102_444_800u64, "sub": "u1"});
    let Value::Object(extra) = extra else {
        panic!("claims are an object")
    };
    for (k, v) in extra {
        payload[k] = v;
    }
    payload
}

#[test]
fn legacy_tokens_read_the_mercure_claim() {
    let c = Claims::from_token(
        None,
        &json!({"mercure": {"publish": ["*"], "subscribe": ["https://a/{x}"], "payload": {"u": 1}}, "exp": 5}),
        &policy(Protocol::Both),
    )
    .unwrap();
    assert_eq!(c.generation, Some(Generation::Legacy));
    assert_eq!(c.publish, selectors(&["*"]));
    assert_eq!(c.subscribe, selectors(&["https://a/{x}"]));
    assert_eq!(c.exp, Some(5));
    let cache = SelectorCache::new(16);
    assert_eq!(
        c.payload_for(&Matcher::selector("anything"), &cache, &base()),
        Some(json!({"u": 1}))
    );
    // A JWT typ is not an access token; neither needs iss or aud.
    let c = Claims::from_token(Some("JWT"), &json!({}), &policy(Protocol::Legacy)).unwrap();
    assert_eq!(c.generation, Some(Generation::Legacy));
    assert!(Claims::from_token(None, &json!({}), &policy(Protocol::V1)).is_err());
}

#[test]
fn access_tokens_are_checked_and_read_from_details() {
    let details = json!({"authorization_details": [{
        "type": DETAIL_TYPE, "actions": ["subscribe"],
        "topics": [{"match": "https://a/:id", "match_type": "urlpattern"}],
        "payload": {"p": 1}
    }]});
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let c = Claims::from_token(
            Some(typ),
            &access_token(details.clone()),
            &policy(Protocol::Both),
        )
        .unwrap();
        assert_eq!(c.generation, Some(Generation::V1), "{typ}");
        assert_eq!(
            c.subscribe,
            [Matcher::new(MatchType::UrlPattern, "https://a/:id")]
        );
    }
    let v1 = |payload: Value| Claims::from_token(Some("at+jwt"), &payload, &policy(Protocol::Both));
    let mut no_exp = access_token(json!({}));
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(matches!(v1(no_exp), Err(ClaimsError::MissingExp)));
    assert!(matches!(
        v1(access_token(json!({"iss": "https://evil.example"}))),
        Err(ClaimsError::Issuer { .. })
    ));
    let mut no_iss = access_token(json!({}));
    no_iss.as_object_mut().unwrap().remove("iss");
    assert!(matches!(
        v1(no_iss),
        Err(ClaimsError::Issuer { found: None, .. })
    ));
    assert!(matches!(
        v1(access_token(
            json!({"aud": "https://other.example/.well-known/mercure"})
        )),
        Err(ClaimsError::Audience { .. })
    ));
    assert!(v1(access_token(json!({"aud": ["x", HUB]}))).is_ok());
    assert!(matches!(
        v1(access_token(json!({"aud": ["x"]}))),
        Err(ClaimsError::Audience { .. })
    ));
    // The mercure claim of an access token grants nothing.
    let c = v1(access_token(json!({"mercure": {"publish": ["*"]}}))).unwrap();
    assert!(c.publish.is_empty());
    assert!(matches!(
        Claims::from_token(
            Some("at+jwt"),
            &access_token(json!({})),
            &policy(Protocol::Legacy)
        ),
        Err(ClaimsError::Generation(_))
    ));
}

#[test]
fn the_first_matching_subscribe_detail_gives_the_payload() {
    let c = Claims::from_token(
        Some("at+jwt"),
        &access_token(json!({"authorization_details": [
            {"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "https://example.com/foo"}], "payload": {"n": 1}},
            {"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}], "payload": {"n": 2}},
            {"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"n": 3}},
        ]})),
        &policy(Protocol::Both),
    )
    .unwrap();
    let cache = SelectorCache::new(16);
    let payload = |kind, text| c.payload_for(&Matcher::new(kind, text), &cache, &base());
    assert_eq!(
        payload(MatchType::Exact, "https://example.com/foo"),
        Some(json!({"n": 1}))
    );
    // The subscription's own pattern, taken as a topic, matches the detail's pattern.
    assert_eq!(
        payload(MatchType::UrlPattern, "https://example.com/bar/:id"),
        Some(json!({"n": 2}))
    );
    assert_eq!(
        payload(MatchType::Exact, "https://example.com/zzz"),
        Some(json!({"n": 3}))
    );
}

#[test]
fn publish_needs_every_topic() {
    let cache = SelectorCache::new(16);
    let p = set(&cache, &selectors(&["https://a/{id}"]));
    let topics = |t: &[&str]| t.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(can_publish(&p, &topics(&["https://a/1", "https://a/2"])));
    assert!(!can_publish(&p, &topics(&["https://a/1", "https://b/2"])));
    assert!(!can_publish(
        &SelectorSet::default(),
        &topics(&["https://a/1"])
    ));
    let v1 = set(
        &cache,
        &[Matcher::new(MatchType::UrlPattern, "https://a/:id")],
    );
    assert!(can_publish(&v1, &topics(&["https://a/1", "https://a/2"])));
    assert!(!can_publish(&v1, &topics(&["https://a/1/x"])));
}

#[test]
fn private_needs_a_covering_token() {
    let cache = SelectorCache::new(16);
    let subscribed = set(&cache, &selectors(&["*"]));
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
        &set(&cache, &selectors(&["https://alt/{x}"])),
        &topics,
        true
    ));
    assert!(can_receive(
        &subscribed,
        &set(&cache, &[Matcher::new(MatchType::Exact, "https://alt/1")]),
        &topics,
        true
    ));
    assert!(!can_receive(
        &set(&cache, &selectors(&["https://b"])),
        &set(&cache, &selectors(&["*"])),
        &topics,
        true
    ));
}

#[test]
fn only_selectors_matching_an_authorized_topic_receive() {
    let cache = SelectorCache::new(16);
    // Bob's message to Alice, published to both inboxes; Bob's stream asks
    // for both inboxes and a template, his token grants only his own.
    let subscribed = set(
        &cache,
        &selectors(&[
            "/users/alice/inbox",
            "/users/bob/inbox",
            "/users/{u}/inbox",
            "/x",
        ]),
    );
    let bob = set(&cache, &selectors(&["/users/bob/{any}"]));
    let topics = vec![
        "/users/alice/inbox".to_string(),
        "/users/bob/inbox".to_string(),
    ];
    let through = |allowed: &SelectorSet, private| -> Vec<usize> {
        receiving_selectors(&subscribed, allowed, &topics, private).collect()
    };
    assert_eq!(through(&bob, false), [0, 1, 2], "public: every match");
    assert_eq!(through(&bob, true), [1, 2], "private: not Alice's inbox");
    assert!(through(&SelectorSet::default(), true).is_empty());
    let alice_only = set(&cache, &selectors(&["/users/alice/inbox"]));
    assert!(
        receiving_selectors(&alice_only, &bob, &topics, true)
            .next()
            .is_none(),
        "received through Bob's topic, but not through this selector"
    );
    assert!(can_receive(&alice_only, &bob, &topics, true));
}

#[test]
fn the_subject_is_read_in_both_generations() {
    let legacy = |payload| Claims::from_token(None, &payload, &policy(Protocol::Both)).unwrap();
    assert_eq!(
        legacy(json!({"sub": "user-1"})).subject.as_deref(),
        Some("user-1")
    );
    for none in [json!({}), json!({"sub": ""}), json!({"sub": 7})] {
        assert_eq!(legacy(none).subject, None);
    }
    let v1 = Claims::from_token(
        Some("at+jwt"),
        &access_token(json!({})),
        &policy(Protocol::Both),
    );
    assert_eq!(v1.unwrap().subject.as_deref(), Some("u1"));
}

#[test]
fn the_admin_claim_is_read_in_both_generations() {
    let legacy = |payload| Claims::from_token(None, &payload, &policy(Protocol::Both)).unwrap();
    assert!(legacy(json!({ ADMIN_CLAIM: admin_claim() })).admin);
    for not in [
        json!({}),
        json!({"ssehub": {"admin": "true"}}),
        json!({"ssehub": {"admin": false}}),
        json!({"ssehub": true}),
        json!({"mercure": {"publish": ["*"]}}),
    ] {
        assert!(!legacy(not.clone()).admin, "{not}");
    }
    let v1 = Claims::from_token(
        Some("at+jwt"),
        &access_token(json!({"ssehub": {"admin": true}})),
        &policy(Protocol::Both),
    );
    assert!(v1.unwrap().admin);
}
