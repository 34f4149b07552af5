//! Mercure 1.0 on the wire: `match`, `match_exact` and `match_urlpattern`
//! subscriptions, the `QUERY` method, the `last_event_id` cursor, `at+jwt`
//! access tokens and where they may come from, RFC 6750 challenges, the
//! RFC 9728 metadata document, publishing, and `ssehub token --protocol 1`.
//! (Traffic mixing both generations is in `mixed.rs`.)

use std::time::Duration;

use crate::common::child::{command, Proc};
use crate::common::keys::{jwt_header, jwt_payload};
use crate::common::v1::{self, access_token, claims, detail};
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A topic on another origin than the hub's.
pub(crate) const CANON: &str = "https://example.com/books/1";
/// The topic of the marker that ends a batch of updates.
const END: &str = "urn:end";
/// Where the metadata document is served.
const METADATA: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";
/// The cookie a 1.0 subscriber's token may come in.
const ACCESS_COOKIE: &str = "__Secure-mercure_access_token";

/// `("authorization", "Bearer TOKEN")`.
pub(crate) fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A form-encoded query string of `pairs`.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Subscribes with `pairs` as the query string and `headers`, whatever
/// the answer.
pub(crate) async fn open(
    hub: &TestHub,
    pairs: &[(&str, &str)],
    headers: &[(&str, String)],
) -> SseClient {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    hub.subscribe(&query(pairs), &headers).await
}

/// [`open`], which must be answered 200 with an event stream.
pub(crate) async fn open_ok(
    hub: &TestHub,
    pairs: &[(&str, &str)],
    headers: &[(&str, String)],
) -> SseClient {
    let sub = open(hub, pairs, headers).await;
    assert_eq!(sub.status, StatusCode::OK, "subscribing with {pairs:?}");
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    sub
}

/// The `WWW-Authenticate` challenge of a response ("" if none).
pub(crate) fn challenge(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get("www-authenticate")
        .map_or("", |v| v.to_str().unwrap())
}

/// Asserts a 401 whose challenge says `error="invalid_token"`.
pub(crate) fn assert_invalid_token(sub: &SseClient, what: &str) {
    assert_eq!(sub.status, StatusCode::UNAUTHORIZED, "{what}");
    let challenge = challenge(&sub.headers);
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge:?}"
    );
}

/// POSTs a publish form with `token` as bearer, if any.
pub(crate) async fn post(
    hub: &TestHub,
    token: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = hub
        .http
        .post(hub.url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query(form));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// Publishes `form` with a 1.0 publisher token; asserts 200 and returns
/// the id.
pub(crate) async fn publish_v1(hub: &TestHub, form: &[(&str, &str)]) -> String {
    let res = post(hub, Some(&v1::publisher(&hub.url())), form).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "publishing {form:?}: {body}");
    body
}

/// Publishes the public marker on [`END`] (data `end`).
async fn publish_end(hub: &TestHub) {
    publish_v1(hub, &[("topic", END), ("data", "end")]).await;
}

/// The data of every event before the marker of [`publish_end`].
async fn until_end(sub: &mut SseClient) -> Vec<String> {
    let mut data = Vec::new();
    loop {
        let event = sub.next().await;
        if event.data == "end" {
            return data;
        }
        assert!(data.len() < 100, "no end marker after {data:?}");
        data.push(event.data);
    }
}

/// The ids of `events`.
fn ids(events: &[ssehub::proto::sse::ParsedEvent]) -> Vec<String> {
    events.iter().map(|e| e.last_event_id.clone()).collect()
}

// ---------------------------------------------------------------------------
// Matchers

#[tokio::test]
async fn each_matcher_type_selects_what_it_should() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let shelf = "https://example.com/shelves/{x}";
    let on_hub = format!("{}/books/2", hub.base);
    let with_end = |pairs: &[(&'static str, &'static str)]| {
        let mut all = pairs.to_vec();
        all.push(("match", END));
        all
    };
    let mut exact = open_ok(&hub, &with_end(&[("match", CANON)]), &[]).await;
    let mut literal = open_ok(&hub, &with_end(&[("match_exact", shelf)]), &[]).await;
    let mut absolute = open_ok(
        &hub,
        &with_end(&[("match_urlpattern", "https://example.com/books/:id")]),
        &[],
    )
    .await;
    let mut relative = open_ok(&hub, &with_end(&[("match_urlpattern", "/books/:id")]), &[]).await;
    let mut several = open_ok(
        &hub,
        &with_end(&[
            ("match", "urn:a"),
            ("match_urlpattern", "https://example.com/books/:id"),
        ]),
        &[],
    )
    .await;
    let mut everything = open_ok(&hub, &[("match", "*")], &[]).await;
    let mut every_url = open_ok(&hub, &[("match_urlpattern", "*")], &[]).await;

    let topics = [
        CANON,
        shelf,
        "https://example.com/shelves/1",
        "https://example.com/books/1/reviews",
        "https://other.example/books/1",
        "/books/1",
        on_hub.as_str(),
        "urn:a",
    ];
    for topic in topics {
        publish_v1(&hub, &[("topic", topic), ("data", topic)]).await;
    }
    publish_v1(
        &hub,
        &[("topic", "urn:a"), ("topic", CANON), ("data", "both")],
    )
    .await;
    publish_end(&hub).await;

    assert_eq!(until_end(&mut exact).await, [CANON, "both"]);
    assert_eq!(
        until_end(&mut literal).await,
        [shelf],
        "match_exact compares byte for byte: {{x}} is not a template"
    );
    assert_eq!(until_end(&mut absolute).await, [CANON, "both"]);
    assert_eq!(
        until_end(&mut relative).await,
        ["/books/1", on_hub.as_str()],
        "a relative pattern and a relative topic both resolve against the hub URL"
    );
    assert_eq!(
        until_end(&mut several).await,
        [CANON, "urn:a", "both"],
        "one stream, several matchers, an update matching two of them once"
    );
    let mut all: Vec<&str> = topics.to_vec();
    all.extend(["both", "end"]);
    for sub in [&mut everything, &mut every_url] {
        let data: Vec<String> = sub
            .take(all.len())
            .await
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert_eq!(data, all);
    }
}

#[tokio::test]
async fn malformed_matchers_are_400() {
    let hub = TestHub::default().await;
    let auth = bearer(&v1::subscriber(&hub.url(), &[("exact", "*")]));
    for raw in [
        "match_foo=x",
        "MATCH=x",
        "Match_exact=x",
        "matchx=x",
        "match=urn%3Aa&match_uritemplate=x",
        "match=a%E2%80%8Bb",
        "match=a%E2%80%AEb",
        "match=a%0Ab",
        "match=a%7Fb",
        "match=a%C2%85b",
        "match_urlpattern=a%E2%80%8Bb",
        "match_urlpattern=https%3A%2F%2Fexample.com%2F%28a",
        "match=%FF",
        "match=urn%3Aa&x=%FF",
        "",
    ] {
        let sub = hub.subscribe(raw, &[(auth.0, auth.1.as_str())]).await;
        assert_eq!(sub.status, StatusCode::BAD_REQUEST, "{raw:?}");
    }
    // The same matchers, well formed, are accepted.
    for raw in [
        "match=urn%3Aa&foo=x",
        "match_exact=a%20b",
        "match_urlpattern=https%3A%2F%2Fexample.com%2F%3Aid",
    ] {
        let sub = hub.subscribe(raw, &[(auth.0, auth.1.as_str())]).await;
        assert_eq!(sub.status, StatusCode::OK, "{raw:?}");
    }
}

// ---------------------------------------------------------------------------
// QUERY and the cursor

/// Subscribes with the `QUERY` method: `raw_query` in the URL and
/// `raw_body` as a form body.
pub(crate) async fn query_method(
    hub: &TestHub,
    raw_query: &str,
    raw_body: &str,
    headers: &[(&str, &str)],
) -> SseClient {
    let mut req = hub
        .http
        .request(
            Method::from_bytes(b"QUERY").unwrap(),
            format!("{}?{raw_query}", hub.url()),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(raw_body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    SseClient::new(req.send().await.unwrap())
}

#[tokio::test]
async fn query_method_merges_the_body_after_the_query_string() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let mut sent = Vec::new();
    for topic in ["urn:a", "urn:b", "urn:a", "urn:b"] {
        sent.push(publish_v1(&hub, &[("topic", topic), ("data", topic)]).await);
    }
    let (a1, b1, a2) = (&sent[0], &sent[1], &sent[2]);

    let mut merged = query_method(
        &hub,
        &format!("match=urn%3Aa&last_event_id={a1}"),
        &format!("match=urn%3Ab&last_event_id={b1}"),
        &[],
    )
    .await;
    assert_eq!(merged.status, StatusCode::OK);
    assert_eq!(merged.headers["content-type"], "text/event-stream");
    assert_eq!(
        merged.headers["mercure-last-event-id"],
        a1.as_str(),
        "the query string's cursor wins over the body's"
    );
    assert_eq!(ids(&merged.take(3).await), &sent[1..]);

    let mut header = query_method(
        &hub,
        &format!("match=urn%3Aa&last_event_id={a1}"),
        &format!("match=urn%3Ab&last_event_id={b1}"),
        &[("last-event-id", a2)],
    )
    .await;
    assert_eq!(header.status, StatusCode::OK);
    assert_eq!(
        header.headers["mercure-last-event-id"],
        a2.as_str(),
        "the Last-Event-ID header wins over both"
    );
    assert_eq!(header.headers["last-event-id"], a2.as_str());
    assert_eq!(ids(&header.take(1).await), &sent[3..]);

    let mut body_only =
        query_method(&hub, "", &format!("match=urn%3Aa&last_event_id={b1}"), &[]).await;
    assert_eq!(body_only.status, StatusCode::OK);
    assert_eq!(body_only.headers["mercure-last-event-id"], b1.as_str());
    assert_eq!(ids(&body_only.take(1).await), [a2.as_str()]);

    // Live: each stream gets what its merged matchers select.
    let b3 = publish_v1(&hub, &[("topic", "urn:b")]).await;
    let a3 = publish_v1(&hub, &[("topic", "urn:a")]).await;
    assert_eq!(ids(&merged.take(2).await), [b3.as_str(), a3.as_str()]);
    assert_eq!(ids(&header.take(2).await), [b3.as_str(), a3.as_str()]);
    assert_eq!(ids(&body_only.take(1).await), [a3.as_str()]);

    for (raw_body, what) in [
        ("match_foo=x", "an unknown matcher in the body"),
        ("match=%FF", "a body that is not UTF-8"),
        ("match=a%0Ab", "a control character in the body"),
    ] {
        let refused = query_method(&hub, "match=urn%3Aa", raw_body, &[]).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{what}");
    }
}

#[tokio::test]
async fn query_method_is_allowed_by_cors() {
    let hub =
        TestHub::start(|o| o.access.cors_origins = Some("https://app.example".parse().unwrap()))
            .await;
    let res = hub
        .http
        .request(Method::OPTIONS, hub.url())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "QUERY")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let allowed = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        allowed.split(',').any(|m| m.trim() == "QUERY"),
        "{allowed:?}"
    );
}

#[tokio::test]
async fn last_event_id_replays_after_the_cursor() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;

    // An empty cursor on an empty hub: nothing to resume after yet.
    let mut from_now_empty = open_ok(&hub, &[("match", "urn:t"), ("last_event_id", "")], &[]).await;
    assert_eq!(from_now_empty.headers["mercure-last-event-id"], "earliest");
    assert_eq!(from_now_empty.headers["last-event-id"], "earliest");

    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(publish_v1(&hub, &[("topic", "urn:t"), ("data", &i.to_string())]).await);
    }
    assert_eq!(ids(&from_now_empty.take(4).await), sent);

    let mut after = open_ok(
        &hub,
        &[("match", "urn:t"), ("last_event_id", &sent[1])],
        &[],
    )
    .await;
    assert_eq!(after.headers["mercure-last-event-id"], sent[1].as_str());
    assert_eq!(after.headers["last-event-id"], sent[1].as_str());
    assert_eq!(ids(&after.take(2).await), &sent[2..]);

    let mut unknown = open_ok(
        &hub,
        &[("match", "urn:t"), ("last_event_id", "urn:never-published")],
        &[],
    )
    .await;
    assert_eq!(unknown.headers["mercure-last-event-id"], "earliest");
    assert_eq!(ids(&unknown.take(4).await), sent, "everything is replayed");

    let mut from_now = open_ok(&hub, &[("match", "urn:t"), ("last_event_id", "")], &[]).await;
    assert_eq!(
        from_now.headers["mercure-last-event-id"],
        sent[3].as_str(),
        "an empty cursor is the newest event at subscribe time"
    );
    let live = publish_v1(&hub, &[("topic", "urn:t")]).await;
    assert_eq!(
        ids(&from_now.take(1).await),
        [live.as_str()],
        "nothing older is replayed"
    );
    for sub in [&mut after, &mut unknown] {
        assert_eq!(ids(&sub.take(1).await), [live.as_str()]);
    }
}

// ---------------------------------------------------------------------------
// Access tokens

/// Publishes a private update on [`CANON`] then a public one; whether the
/// subscriber's first event is the private one.
async fn sees_private(hub: &TestHub, sub: &mut SseClient) -> bool {
    publish_v1(
        hub,
        &[("topic", CANON), ("data", "secret"), ("private", "on")],
    )
    .await;
    publish_v1(hub, &[("topic", CANON), ("data", "public")]).await;
    match sub.next().await.data.as_str() {
        "secret" => {
            assert_eq!(sub.next().await.data, "public");
            true
        }
        "public" => false,
        other => panic!("unexpected event {other:?}"),
    }
}

/// `claims` signed with HS256 and `key`, with `typ` in the header.
fn signed(typ: Option<&str>, key: &str, claims: &Value) -> String {
    let header = jsonwebtoken::Header {
        typ: typ.map(String::from),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// A token whose payload is `claims` with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"})),
        b64(claims)
    )
}

#[tokio::test]
async fn access_tokens_are_checked_for_exp_iss_aud_and_details() {
    let hub = TestHub::default().await;
    let aud = hub.url();
    let grant = [detail(&["subscribe"], &[("exact", CANON)])];
    let valid = claims(&aud, &grant);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = valid.clone();
        change(&mut c);
        c
    };
    let remove = |key: &'static str| {
        move |c: &mut Value| {
            c.as_object_mut().unwrap().remove(key);
        }
    };

    let accepted = [
        ("aud string", valid.clone()),
        (
            "aud array",
            with(&|c| c["aud"] = json!(["https://other.example/.well-known/mercure", aud])),
        ),
        (
            "a detail of another type beside",
            with(&|c| {
                c["authorization_details"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "https://other.example/detail", "topics": 5}))
            }),
        ),
        (
            "an unknown action beside",
            with(&|c| c["authorization_details"][0]["actions"] = json!(["subscribe", "future"])),
        ),
    ];
    for (what, claims) in &accepted {
        let mut sub = open_ok(&hub, &[("match", CANON)], &[bearer(&access_token(claims))]).await;
        assert!(sees_private(&hub, &mut sub).await, "{what}");
    }
    for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
        let token = signed(Some(typ), SECRET, &valid);
        let mut sub = open_ok(&hub, &[("match", CANON)], &[bearer(&token)]).await;
        assert!(sees_private(&hub, &mut sub).await, "typ {typ}");
    }
    // Any other type is a 0.x token, whose grants are in the mercure claim.
    for typ in [Some("JWT"), None] {
        let token = signed(typ, SECRET, &valid);
        let mut sub = open_ok(&hub, &[("match", CANON)], &[bearer(&token)]).await;
        assert!(!sees_private(&hub, &mut sub).await, "typ {typ:?}");
    }

    let refused = [
        ("no exp", with(&remove("exp"))),
        ("expired", with(&|c| c["exp"] = json!(now_secs() - 600))),
        (
            "another iss",
            with(&|c| c["iss"] = json!("https://other.example")),
        ),
        ("no iss", with(&remove("iss"))),
        (
            "another aud",
            with(&|c| c["aud"] = json!("https://other.example/.well-known/mercure")),
        ),
        (
            "aud array without this hub",
            with(&|c| c["aud"] = json!(["https://other.example/.well-known/mercure"])),
        ),
        ("no aud", with(&remove("aud"))),
        (
            "unknown match_type",
            with(&|c| {
                c["authorization_details"][0]["topics"][0]["match_type"] = json!("uritemplate")
            }),
        ),
        (
            "a topic that is not an object",
            with(&|c| c["authorization_details"][0]["topics"] = json!([CANON])),
        ),
        (
            "actions not an array",
            with(&|c| c["authorization_details"][0]["actions"] = json!("subscribe")),
        ),
        (
            "authorization_details not an array",
            with(&|c| c["authorization_details"] = json!({"type": v1::DETAIL_TYPE})),
        ),
        (
            "a matcher with a format character",
            with(&|c| c["authorization_details"][0]["topics"][0]["match"] = json!("urn:a\u{200b}")),
        ),
    ];
    for (what, claims) in &refused {
        let sub = open(&hub, &[("match", CANON)], &[bearer(&access_token(claims))]).await;
        assert_invalid_token(&sub, what);
    }
    let sub = open(&hub, &[("match", CANON)], &[bearer(&unsigned(&valid))]).await;
    assert_invalid_token(&sub, "alg none");
    let forged = signed(Some("at+jwt"), "another-secret-another-secret-000", &valid);
    let sub = open(&hub, &[("match", CANON)], &[bearer(&forged)]).await;
    assert_invalid_token(&sub, "signed with another key");
}

#[tokio::test]
async fn challenges_say_what_is_missing() {
    let hub = TestHub::default().await;
    let metadata = format!("resource_metadata=\"{}{METADATA}\"", hub.base);

    // No token: a bare challenge pointing to the metadata.
    let sub = open(&hub, &[("match", CANON)], &[]).await;
    assert_eq!(sub.status, StatusCode::UNAUTHORIZED);
    let bare = challenge(&sub.headers);
    assert!(bare.starts_with("Bearer "), "{bare:?}");
    assert!(bare.contains(&metadata), "{bare:?}");
    assert!(!bare.contains("error="), "no token, no error: {bare:?}");
    let res = post(&hub, None, &[("topic", CANON)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let bare = challenge(res.headers());
    assert!(
        bare.contains(&metadata) && !bare.contains("error="),
        "{bare:?}"
    );

    // A valid token that does not grant publishing.
    let subscribe_only = v1::subscriber(&hub.url(), &[("exact", "*")]);
    let elsewhere = access_token(&claims(
        &hub.url(),
        &[detail(
            &["publish"],
            &[("urlpattern", "https://example.com/other/:id")],
        )],
    ));
    for (what, token) in [
        ("subscribe only", &subscribe_only),
        ("elsewhere", &elsewhere),
    ] {
        let res = post(&hub, Some(token), &[("topic", CANON)]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        let c = challenge(res.headers());
        assert!(c.contains("error=\"insufficient_scope\""), "{what}: {c:?}");
        assert!(c.contains(&metadata), "{what}: {c:?}");
    }
    let res = post(
        &hub,
        Some(&elsewhere),
        &[("topic", "https://example.com/other/1")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "the pattern grants this one");

    // A bad token.
    let res = post(&hub, Some("garbage"), &[("topic", CANON)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(res.headers()).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn a_pinned_hub_url_is_the_only_audience() {
    let forged_host = "http://evil.example/.well-known/mercure";
    let for_forged_host = v1::subscriber(forged_host, &[("exact", "*")]);
    let with_forged_host = [bearer(&for_forged_host), ("host", "evil.example".into())];

    // Unpinned, the audience is derived from the request's Host.
    let hub = TestHub::default().await;
    open_ok(&hub, &[("match", CANON)], &with_forged_host).await;
    let sub = open(&hub, &[("match", CANON)], &[bearer(&for_forged_host)]).await;
    assert_invalid_token(&sub, "aud is another Host than the request's");
    let https = hub.url().replacen("http://", "https://", 1);
    let behind_proxy = [
        bearer(&v1::subscriber(&https, &[("exact", "*")])),
        ("x-forwarded-proto", "https".into()),
    ];
    open_ok(&hub, &[("match", CANON)], &behind_proxy).await;
    let sub = open(&hub, &[("match", CANON)], &behind_proxy[..1]).await;
    assert_invalid_token(&sub, "an https aud without X-Forwarded-Proto");

    // Pinned, it is the pinned URL whatever the Host.
    let pinned = "https://hub.example/.well-known/mercure";
    let hub = TestHub::start(|o| o.protocol.hub_url = Some(pinned.into())).await;
    let for_pinned = v1::subscriber(pinned, &[("exact", "*")]);
    let for_derived = v1::subscriber(&hub.url(), &[("exact", "*")]);

    let mut sub = open_ok(&hub, &[("match", CANON)], &[bearer(&for_pinned)]).await;
    let res = post(
        &hub,
        Some(&v1::publisher(pinned)),
        &[("topic", CANON), ("data", "secret"), ("private", "on")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sub.next().await.data, "secret");
    open_ok(
        &hub,
        &[("match", CANON)],
        &[bearer(&for_pinned), ("host", "evil.example".into())],
    )
    .await;
    let sub = open(&hub, &[("match", CANON)], &[bearer(&for_derived)]).await;
    assert_invalid_token(&sub, "aud is the URL the request reached");
    let sub = open(&hub, &[("match", CANON)], &with_forged_host).await;
    assert_invalid_token(&sub, "aud follows a forged Host");

    let res = post(&hub, Some(&v1::publisher(pinned)), &[("topic", CANON)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(&hub, Some(&v1::publisher(&hub.url())), &[("topic", CANON)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let sub = open(&hub, &[("match", CANON)], &[]).await;
    let bare = challenge(&sub.headers);
    assert!(
        bare.contains(&format!(
            "resource_metadata=\"https://hub.example{METADATA}\""
        )),
        "{bare:?}"
    );
}

#[tokio::test]
async fn where_a_1_0_token_may_come_from() {
    let hub = TestHub::default().await;
    let token = v1::subscriber(&hub.url(), &[("exact", CANON)]);
    let cookie = |t: &str| ("cookie", format!("theme=dark; {ACCESS_COOKIE}={t}"));

    let mut from_cookie = open_ok(&hub, &[("match", CANON)], &[cookie(&token)]).await;
    assert!(sees_private(&hub, &mut from_cookie).await, "the 1.0 cookie");

    let in_url = open(&hub, &[("match", CANON), ("authorization", &token)], &[]).await;
    assert_eq!(
        in_url.status,
        StatusCode::BAD_REQUEST,
        "no token in a 1.0 URL"
    );
    let c = challenge(&in_url.headers);
    assert!(c.contains("error=\"invalid_request\""), "{c:?}");

    let mut header_wins = open_ok(
        &hub,
        &[("match", CANON)],
        &[bearer(&token), cookie("garbage")],
    )
    .await;
    assert!(
        sees_private(&hub, &mut header_wins).await,
        "the header's token"
    );
    let sub = open(
        &hub,
        &[("match", CANON)],
        &[bearer("garbage"), cookie(&token)],
    )
    .await;
    assert_invalid_token(&sub, "the header's token is the one checked");
}

// ---------------------------------------------------------------------------
// Metadata

#[tokio::test]
async fn metadata_describes_the_resource() {
    for subscriptions in [false, true] {
        let hub = TestHub::start(|o| o.stream.subscriptions = Some(subscriptions)).await;
        let res = hub
            .http
            .get(format!("{}{METADATA}", hub.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = res.json().await.unwrap();
        let mut expected = json!({
            "resource": hub.url(),
            "authorization_details_types_supported": [v1::DETAIL_TYPE],
            "bearer_methods_supported": ["header"],
            "mercure_cookie": ACCESS_COOKIE,
            "mercure_matcher_types_supported": ["exact", "urlpattern"],
        });
        if subscriptions {
            expected["mercure_subscriptions"] = json!(true);
        }
        assert_eq!(doc, expected);
    }

    let pinned = "https://hub.example/.well-known/mercure";
    let hub = TestHub::start(|o| o.protocol.hub_url = Some(pinned.into())).await;
    let doc: Value = hub
        .http
        .get(format!("{}{METADATA}", hub.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], pinned);

    let hub = TestHub::start(|o| o.protocol.protocol = Some("0".into())).await;
    let res = hub
        .http
        .get(format!("{}{METADATA}", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "no metadata for 0.x only"
    );
    let sub = open(&hub, &[("topic", CANON)], &[]).await;
    assert_eq!(sub.status, StatusCode::UNAUTHORIZED);
    let bare = challenge(&sub.headers);
    assert!(bare.starts_with("Bearer "), "{bare:?}");
    assert!(!bare.contains("resource_metadata"), "{bare:?}");
}

// ---------------------------------------------------------------------------
// Publishing

#[tokio::test]
async fn publishing_answers_the_id_and_refuses_reserved_values() {
    let hub = TestHub::default().await;
    let token = v1::publisher(&hub.url());
    let mut sub = open_ok(
        &hub,
        &[("match", CANON)],
        &[bearer(&access_token(&claims(&hub.url(), &[])))],
    )
    .await;

    let res = post(
        &hub,
        Some(&token),
        &[("topic", CANON), ("data", "x"), ("future_field", "ignored")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let id = res.text().await.unwrap();
    let e = sub.next().await;
    assert_eq!(fields(&e), ("message", "x", id.as_str()));

    for (field, value) in [
        ("topic", "*"),
        ("type", "mercure"),
        ("topic", "/.well-known/%6Dercure/x"),
        ("topic", "/.well-known/mercure/subscriptions/exact/a/b"),
        (
            "topic",
            "https://any.host/.well-known/mercure/subscriptions/x",
        ),
        ("topic", "https://example.com/a\u{200b}b"),
        ("retry", "1.5"),
        ("retry", "-1"),
        ("id", "earliest"),
        ("id", "#x"),
        ("id", "a\u{202e}b"),
        ("type", "a\u{7}b"),
    ] {
        let mut form = vec![(field, value)];
        if field != "topic" {
            form.push(("topic", CANON));
        }
        let res = post(&hub, Some(&token), &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}={value:?}");
    }

    let topics: Vec<String> = (0..1001).map(|i| format!("urn:t:{i}")).collect();
    let form: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", t.as_str())).collect();
    let res = post(&hub, Some(&token), &form).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = post(&hub, Some(&token), &form[..1000]).await;
    assert_eq!(res.status(), StatusCode::OK, "1000 topics are allowed");

    // Nothing refused reached the subscriber.
    let marker = publish_v1(&hub, &[("topic", CANON)]).await;
    assert_eq!(sub.next().await.last_event_id, marker);
}

// ---------------------------------------------------------------------------
// ssehub token --protocol 1

/// Runs `ssehub token ARGS…` with the test secret; returns the token.
fn cli_token(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut all = vec!["token", "--publisher-jwt-key", SECRET];
    all.extend_from_slice(&["--data-dir", data.to_str().unwrap()]);
    all.extend_from_slice(args);
    let mut proc = Proc::spawn(command(dir.path(), &all));
    let status = proc
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("ssehub token still running:\n{}", proc.stderr()));
    assert!(status.success(), "{all:?}: {}", proc.stderr());
    let out = proc.stdout();
    assert_eq!(out.lines().count(), 1, "only the token on stdout: {out:?}");
    out.trim().to_string()
}

#[tokio::test]
async fn token_command_prints_access_tokens_the_hub_accepts() {
    let hub = TestHub::default().await;
    let url = hub.url();
    let before = now_secs();
    let publisher = cli_token(&["--protocol", "1", "--publish", "*", "--audience", &url]);
    assert_eq!(jwt_header(&publisher)["typ"], "at+jwt");
    let claims = jwt_payload(&publisher);
    assert_eq!(claims["aud"], url.as_str());
    assert_eq!(claims["iss"], v1::ISSUER);
    let exp = claims["exp"].as_u64().expect("a numeric exp");
    assert!(
        (before + 3600..=now_secs() + 3600).contains(&exp),
        "an hour to live by default: {exp}"
    );

    let subscriber = cli_token(&[
        "--protocol",
        "1",
        "--subscribe-pattern",
        "https://example.com/books/:id",
        "--audience",
        &url,
    ]);
    let mut sub = open_ok(&hub, &[("match", CANON)], &[bearer(&subscriber)]).await;
    let res = post(
        &hub,
        Some(&publisher),
        &[("topic", CANON), ("data", "secret"), ("private", "on")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.text().await.unwrap();
    assert_eq!(
        fields(&sub.next().await),
        ("message", "secret", id.as_str())
    );

    let res = post(&hub, Some(&subscriber), &[("topic", CANON)]).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a subscriber may not publish"
    );
    let elsewhere = cli_token(&[
        "--protocol",
        "1",
        "--publish",
        "*",
        "--audience",
        "https://other.example/.well-known/mercure",
    ]);
    let res = post(&hub, Some(&elsewhere), &[("topic", CANON)]).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "minted for another hub"
    );
}
