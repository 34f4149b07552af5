//! Subscriber authorization (tokens, private updates, expiry) and CORS.

use std::time::Duration;

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use ssehub::auth::Signer;
use ssehub::proto::claims::MercureClaim;

const CANON: &str = "https://example.com/books/1";
const ALT: &str = "https://example.com/alt/1";
const OTHER_SECRET: &str = "other-secret-other-secret-other-secret";

/// How a subscriber presents its token.
#[derive(Debug, Clone, Copy)]
enum Via {
    Header,
    Query,
    Cookie(&'static str),
}

/// A subscriber token for `subscribe`, signed with the test secret.
fn sub_token(subscribe: &[&str]) -> String {
    token(&[], subscribe, None)
}

/// Subscribes to `topics`, presenting `token` (if any) as `via` says, with
/// extra headers.
async fn open(
    hub: &TestHub,
    topics: &[&str],
    token: Option<&str>,
    via: Via,
    headers: &[(&str, &str)],
) -> SseClient {
    let mut query = topic_query(topics);
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(token) = token {
        match via {
            Via::Header => all.push(("authorization".into(), format!("Bearer {token}"))),
            Via::Query => {
                query = format!(
                    "{query}&{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("authorization", token)
                        .finish()
                )
            }
            Via::Cookie(name) => all.push(("cookie".into(), format!("theme=dark; {name}={token}"))),
        }
    }
    let h: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hub.subscribe(&query, &h).await
}

async fn open_ok(hub: &TestHub, topics: &[&str], token: Option<&str>, via: Via) -> SseClient {
    let sub = open(hub, topics, token, via, &[]).await;
    assert_eq!(sub.status, StatusCode::OK, "subscribing via {via:?}");
    sub
}

/// Reads the rest of an error response.
async fn error_body(hub: &TestHub, query: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = hub.http.get(format!("{}?{query}", hub.url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The first event a subscriber sees, given that a private update `priv` and
/// then a public marker `pub` were published: `priv` if it may see it.
async fn saw_private(sub: &mut SseClient) -> bool {
    let first = sub.next().await;
    match first.last_event_id.as_str() {
        "priv" => {
            assert_eq!(first.data, "secret");
            assert_eq!(sub.next().await.last_event_id, "pub");
            true
        }
        "pub" => false,
        other => panic!("unexpected event {other:?}"),
    }
}

async fn publish_private_then_public(hub: &TestHub) {
    hub.publish_ok(&[
        ("topic", CANON),
        ("topic", ALT),
        ("data", "secret"),
        ("private", "on"),
        ("id", "priv"),
    ])
    .await;
    hub.publish_ok(&[("topic", CANON), ("data", "public"), ("id", "pub")])
        .await;
}

/// Who may see a private update on CANON with alternate ALT, live and on
/// replay, with tokens given `via`.
async fn check_private_routing(hub: &TestHub, via: Via) {
    let cases: [(&str, Option<&[&str]>, bool); 6] = [
        ("canonical topic", Some(&[CANON]), true),
        ("alternate topic only", Some(&[ALT]), true),
        ("template", Some(&["https://example.com/alt/{id}"]), true),
        ("everything", Some(&["*"]), true),
        (
            "non-matching",
            Some(&["https://example.com/books/2"]),
            false,
        ),
        ("no token", None, false),
    ];
    let tokens: Vec<Option<String>> = cases.iter().map(|c| c.1.map(sub_token)).collect();

    let mut live = Vec::new();
    for tok in &tokens {
        live.push(open_ok(hub, &[CANON], tok.as_deref(), via).await);
    }
    publish_private_then_public(hub).await;
    for ((name, _, want), sub) in cases.iter().zip(&mut live) {
        assert_eq!(saw_private(sub).await, *want, "live, {name}, via {via:?}");
    }

    for ((name, _, want), tok) in cases.iter().zip(&tokens) {
        let mut sub = open(
            hub,
            &[CANON],
            tok.as_deref(),
            via,
            &[("last-event-id", "earliest")],
        )
        .await;
        assert_eq!(sub.status, StatusCode::OK);
        assert_eq!(
            saw_private(&mut sub).await,
            *want,
            "replay, {name}, via {via:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Anonymous or not

#[tokio::test]
async fn no_token_is_401_unless_anonymous() {
    let hub = TestHub::default().await;
    let (status, body) = error_body(&hub, &topic_query(&[CANON]), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("requires a token"), "{body}");
    assert!(body.contains("--anonymous"), "{body}");

    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let mut sub = open_ok(&hub, &[CANON], None, Via::Header).await;
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    publish_private_then_public(&hub).await;
    assert!(!saw_private(&mut sub).await, "anonymous sees only public");
}

#[tokio::test]
async fn private_updates_with_header_tokens() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    check_private_routing(&hub, Via::Header).await;
}

#[tokio::test]
async fn private_updates_with_query_tokens() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    check_private_routing(&hub, Via::Query).await;
}

#[tokio::test]
async fn private_updates_with_cookie_tokens() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    check_private_routing(&hub, Via::Cookie("mercureAuthorization")).await;
}

#[tokio::test]
async fn private_updates_with_custom_cookie_tokens() {
    let hub = TestHub::start(|o| {
        o.access.anonymous = Some(true);
        o.access.cookie_name = Some("hubToken".into());
    })
    .await;
    check_private_routing(&hub, Via::Cookie("hubToken")).await;

    // The default cookie name is not read any more: a token there is no token.
    let mut sub = open_ok(
        &hub,
        &[CANON],
        Some(&sub_token(&["*"])),
        Via::Cookie("mercureAuthorization"),
    )
    .await;
    hub.publish_ok(&[("topic", CANON), ("private", "on"), ("id", "p2")])
        .await;
    let marker = hub.publish_ok(&[("topic", CANON)]).await;
    assert_eq!(sub.next().await.last_event_id, marker);
}

#[tokio::test]
async fn invalid_tokens_are_401_even_when_anonymous() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let forged = Signer::new(OTHER_SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign(
            &MercureClaim {
                subscribe: Some(vec!["*".into()]),
                ..Default::default()
            },
            None,
        );
    for via in [Via::Header, Via::Query, Via::Cookie("mercureAuthorization")] {
        for bad in [forged.as_str(), "garbage"] {
            let sub = open(&hub, &[CANON], Some(bad), via, &[]).await;
            assert_eq!(sub.status, StatusCode::UNAUTHORIZED, "{bad} via {via:?}");
            assert!(sub.headers.contains_key("www-authenticate"));
        }
    }
    let (status, body) = error_body(
        &hub,
        &topic_query(&[CANON]),
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid token"), "{body}");
    let (status, body) = error_body(
        &hub,
        &topic_query(&[CANON]),
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    // A token presented the wrong way is a malformed request (RFC 6750).
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Bearer"), "{body}");
}

#[tokio::test]
async fn separate_subscriber_key() {
    let hub = TestHub::start(|o| o.keys.subscriber_jwt_key = Some(OTHER_SECRET.into())).await;
    let with_publisher_key = sub_token(&["*"]);
    let sub = open(&hub, &[CANON], Some(&with_publisher_key), Via::Header, &[]).await;
    assert_eq!(sub.status, StatusCode::UNAUTHORIZED);

    let with_subscriber_key = Signer::new(OTHER_SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign(
            &MercureClaim {
                subscribe: Some(vec![CANON.into()]),
                ..Default::default()
            },
            None,
        );
    let mut sub = open_ok(&hub, &[CANON], Some(&with_subscriber_key), Via::Header).await;
    // Publishing still uses the publisher key, and the claim is honoured.
    publish_private_then_public(&hub).await;
    assert!(saw_private(&mut sub).await);
    let (status, _) = hub.publish(&with_subscriber_key, &[("topic", CANON)]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the subscriber key cannot publish"
    );
}

// ---------------------------------------------------------------------------
// Claims

#[tokio::test]
async fn expiring_token_ends_the_stream() {
    let hub = TestHub::default().await;
    let expiring = token(&[], &[CANON], Some(2));
    let mut sub = open_ok(&hub, &[CANON], Some(&expiring), Via::Header).await;
    // Usable until then.
    let id = hub
        .publish_ok(&[("topic", CANON), ("data", "before")])
        .await;
    assert_eq!(sub.next().await.last_event_id, id);
    assert!(sub.is_open());
    // `exp` is whole seconds, at least 1 s from now; the server ends the stream.
    sub.assert_ends_within(Duration::from_secs(4)).await;

    // A token without `exp` is not cut off.
    let mut forever = open_ok(&hub, &[CANON], Some(&sub_token(&[])), Via::Header).await;
    let id = hub.publish_ok(&[("topic", CANON)]).await;
    assert_eq!(forever.next().await.last_event_id, id);
    assert!(forever.is_open());
}

#[tokio::test]
async fn mercure_payload_is_accepted() {
    let hub = TestHub::default().await;
    let claim = MercureClaim {
        subscribe: Some(vec![CANON.into()]),
        payload: Some(json!({"user": "https://example.com/users/1", "n": [1, 2]})),
        ..Default::default()
    };
    let t = Signer::new(SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign(&claim, None);
    let mut sub = open_ok(&hub, &[CANON], Some(&t), Via::Header).await;
    publish_private_then_public(&hub).await;
    assert!(saw_private(&mut sub).await);
}

// ---------------------------------------------------------------------------
// CORS

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_preflight_and_subscribe() {
    let hub =
        TestHub::start(|o| o.access.cors_origins = Some("https://app.example".parse().unwrap()))
            .await;
    let preflight = |origin: &'static str| {
        hub.http
            .request(Method::OPTIONS, format!("{}?topic=x", hub.url()))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization,last-event-id,cache-control",
            )
            .send()
    };
    let res = preflight("https://app.example").await.unwrap();
    assert!(
        matches!(res.status(), StatusCode::OK | StatusCode::NO_CONTENT),
        "{}",
        res.status()
    );
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        header(&res, "access-control-allow-credentials"),
        Some("true")
    );
    let allowed = header(&res, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "last-event-id", "cache-control"] {
        assert!(
            allowed.split(',').any(|a| a.trim() == h),
            "{h} not in {allowed:?}"
        );
    }
    let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("GET"), "{methods:?}");

    let res = preflight("https://evil.example").await.unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), None);

    let t = format!("Bearer {}", sub_token(&[]));
    let from = |origin| [("origin", origin), ("authorization", t.as_str())];
    let sub = hub.subscribe("topic=x", &from("https://app.example")).await;
    assert_eq!(sub.status, StatusCode::OK);
    assert_eq!(
        sub.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(sub.headers["access-control-allow-credentials"], "true");
    let exposed = sub.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.split(',').any(|h| h.trim() == "last-event-id"),
        "{exposed:?}"
    );

    let sub = hub
        .subscribe("topic=x", &from("https://evil.example"))
        .await;
    assert_eq!(sub.status, StatusCode::OK);
    assert!(!sub.headers.contains_key("access-control-allow-origin"));

    // Errors carry the CORS headers too, so the page can read them.
    let sub = hub
        .subscribe("topic=x", &[("origin", "https://app.example")])
        .await;
    assert_eq!(sub.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        sub.headers["access-control-allow-origin"],
        "https://app.example"
    );
}

// ---------------------------------------------------------------------------
// HEAD and subscribe errors

#[tokio::test]
async fn head_answers_headers_only() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        hub.http.head(format!("{}?topic=x", hub.url())).send(),
    )
    .await
    .expect("HEAD answered")
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), Some("text/event-stream"));
    let body = tokio::time::timeout(Duration::from_secs(5), res.bytes())
        .await
        .expect("HEAD body ends at once")
        .unwrap();
    assert!(body.is_empty());

    let res = hub.http.head(hub.url()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let hub = TestHub::default().await;
    let res = hub
        .http
        .head(format!("{}?topic=x", hub.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn subscribe_request_errors() {
    let hub = TestHub::default().await;
    let auth = format!("Bearer {}", sub_token(&[]));
    let (status, body) = error_body(&hub, "", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("topic"), "{body}");

    let topics: Vec<String> = (0..1001)
        .map(|i| format!("https://example.com/t/{i}"))
        .collect();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (status, body) = error_body(&hub, &topic_query(&refs), &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("too many topics"), "{body}");
    assert!(body.contains("1000"), "{body}");

    let mut sub = hub.subscribe_topics(&refs[..1000], &[]).await;
    let id = hub
        .publish_ok(&[("topic", "https://example.com/t/999")])
        .await;
    assert_eq!(sub.next().await.last_event_id, id);
}

#[tokio::test]
async fn far_future_exp_is_answered() {
    let hub = TestHub::default().await;
    let far = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"mercure": {"subscribe": [CANON]}, "exp": u64::MAX}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        hub.http
            .get(format!("{}?{}", hub.url(), topic_query(&[CANON])))
            .bearer_auth(&far)
            .send(),
    )
    .await
    .expect("an answer within 5s")
    .map(|res| res.status());
    // Whatever the answer, a closed request leaves no subscriber behind.
    hub.assert_no_subscriber_left("with no client connected")
        .await;
    let status = answer.expect("an HTTP response, not a dropped connection");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fractional_exp_is_a_numeric_date() {
    let hub = TestHub::default().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let signed = |exp: f64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"mercure": {"subscribe": [CANON]}, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    // An expired one must still be refused, whatever its form.
    let past = open(&hub, &[CANON], Some(&signed(now - 60.5)), Via::Header, &[]).await;
    assert_eq!(past.status, StatusCode::UNAUTHORIZED);
    let mut sub = open_ok(&hub, &[CANON], Some(&signed(now + 3600.5)), Via::Header).await;
    let id = hub.publish_ok(&[("topic", CANON)]).await;
    assert_eq!(sub.next().await.last_event_id, id);
}

#[tokio::test]
async fn cors_wildcard_allows_any_origin_but_credentials_only_to_listed_ones() {
    let hub = TestHub::start(|o| {
        o.access.cors_origins = Some("*,https://app.example".parse().unwrap());
    })
    .await;
    for (origin, credentials) in [
        ("https://one.example", None),
        ("http://localhost:3000", None),
        ("https://app.example", Some("true")),
    ] {
        let res = hub
            .http
            .request(Method::OPTIONS, hub.url())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        assert_eq!(header(&res, "access-control-allow-origin"), Some(origin));
        assert_eq!(
            header(&res, "access-control-allow-credentials"),
            credentials,
            "a cookie-authenticated stream is readable by listed origins only: {origin}"
        );
        let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains("POST"), "{methods:?}");
        let res = hub
            .http
            .get(format!("{}?topic=a", hub.url()))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&res, "access-control-allow-credentials"),
            credentials,
            "{origin}"
        );
        let exposed = header(&res, "access-control-expose-headers").unwrap_or_default();
        assert!(exposed.contains("mercure-last-event-id"), "{exposed:?}");
        assert!(exposed.contains("last-event-id"), "{exposed:?}");
    }
}
