//! Publishing: `POST /.well-known/mercure` over the wire, its answers, its
//! errors, and every way a publisher may authenticate.

use std::path::Path;
use std::time::Duration;

use crate::common::keys::{key_pair, RSA_2048};
use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use ssehub::auth::Signer;
use ssehub::proto::claims::MercureClaim;
use ssehub::proto::sse::ParsedEvent;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// A complete answer: status, headers and body text.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map_or("", |v| v.to_str().unwrap())
    }

    /// Asserts the status and that the message names what is wrong.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, words: &[&str]) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.content_type().starts_with("text/plain"),
            "error content type {:?}",
            self.content_type()
        );
        let lower = self.body.to_lowercase();
        for word in words {
            assert!(
                lower.contains(&word.to_lowercase()),
                "error message {:?} should mention {word:?}",
                self.body
            );
        }
    }
}

/// POSTs `body` to the hub with a content type, an optional bearer token and
/// extra headers.
async fn post(
    hub: &TestHub,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    post_to(hub, &hub.url(), content_type, body, bearer, headers).await
}

async fn post_to(
    hub: &TestHub,
    url: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = hub.http.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .expect("an answer within 10s")
        .unwrap();
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn post_form(hub: &TestHub, pairs: &[(&str, &str)]) -> Answer {
    post_form_as(hub, form(pairs), Some(&publisher_token())).await
}

/// POSTs a form `body` with a bearer token if given.
async fn post_form_as(
    hub: &TestHub,
    body: impl Into<reqwest::Body>,
    bearer: Option<&str>,
) -> Answer {
    post(hub, Some(FORM), body, bearer, &[]).await
}

async fn post_json(hub: &TestHub, body: &Value) -> Answer {
    post(
        hub,
        Some(JSON),
        body.to_string(),
        Some(&publisher_token()),
        &[],
    )
    .await
}

/// An HS256 token over an arbitrary payload, signed with `key`.
fn sign_hs256(payload: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        payload,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claim(publish: &[&str]) -> MercureClaim {
    MercureClaim {
        publish: Some(publish.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// A subscription on `*` replaying the whole history.
async fn replay_all(hub: &TestHub) -> SseClient {
    let sub = hub.resume(&["*"], "earliest").await;
    assert_eq!(sub.status, StatusCode::OK);
    sub
}

/// The first `n` events replayed on `topic` (within 5 s), and the `retry:`
/// value seen.
async fn replay_with_retry(
    hub: &TestHub,
    topic: &str,
    n: usize,
) -> (Vec<ParsedEvent>, Option<u64>) {
    let mut sub = hub.resume(&[topic], "earliest").await;
    assert_eq!(sub.status, StatusCode::OK);
    let events = sub.take_within(n, Duration::from_secs(5)).await;
    (events, sub.retry())
}

// ---------------------------------------------------------------------------
// Form publishing and ids

#[tokio::test]
async fn form_publish_answers_a_generated_id_that_subscribers_see() {
    let hub = TestHub::default().await;
    let mut sub = hub.subscribe_topics(&["https://example.com/a"], &[]).await;
    let a = post_form(&hub, &[("topic", "https://example.com/a"), ("data", "one")]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.content_type().starts_with("text/plain"),
        "{}",
        a.content_type()
    );
    assert!(a.body.starts_with("urn:uuid:"), "generated id {:?}", a.body);
    assert!(
        uuid::Uuid::parse_str(&a.body["urn:uuid:".len()..]).is_ok(),
        "{:?}",
        a.body
    );
    let e = sub.next().await;
    assert_eq!(
        (e.data.as_str(), e.last_event_id.as_str()),
        ("one", &*a.body)
    );

    let b = post_form(&hub, &[("topic", "https://example.com/a"), ("data", "two")]).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_ne!(a.body, b.body, "each update gets its own id");
    assert_eq!(sub.next().await.last_event_id, b.body);
}

#[tokio::test]
async fn form_publish_keeps_a_given_id() {
    let hub = TestHub::default().await;
    let mut sub = hub.subscribe_topics(&["https://example.com/a"], &[]).await;
    let a = post_form(
        &hub,
        &[
            ("topic", "https://example.com/a"),
            ("id", "my-id-1"),
            ("data", "x"),
        ],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "my-id-1"));
    let e = sub.next().await;
    assert_eq!(e.last_event_id, "my-id-1");
    assert_eq!(e.data, "x");
}

#[tokio::test]
async fn alternate_topics_reach_exact_and_template_subscribers() {
    let hub = TestHub::default().await;
    let a = "https://example.com/a/1";
    let b = "https://example.com/b/1";
    let mut on_b = hub.subscribe_topics(&[b], &[]).await;
    let mut on_b_template = hub
        .subscribe_topics(&["https://example.com/b/{id}"], &[])
        .await;
    let mut on_both = hub.subscribe_topics(&[a, b], &[]).await;
    let mut elsewhere = hub
        .subscribe_topics(&["https://example.com/c/1"], &[])
        .await;

    let id = hub
        .publish_ok(&[("topic", a), ("topic", b), ("data", "alt")])
        .await;
    for sub in [&mut on_b, &mut on_b_template, &mut on_both] {
        let e = sub.next().await;
        assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("alt", &*id));
    }
    // The update matched two selectors of `on_both`: it is delivered once,
    // so the next event it sees is the marker.
    let marker = hub
        .publish_ok(&[("topic", a), ("topic", "https://example.com/c/1")])
        .await;
    assert_eq!(on_both.next().await.last_event_id, marker);
    assert_eq!(elsewhere.next().await.last_event_id, marker);
}

// ---------------------------------------------------------------------------
// JSON publishing

#[tokio::test]
async fn json_publish_with_every_field() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/j";
    let mut sub = hub.subscribe_topics(&[topic], &[]).await;
    let a = post_json(
        &hub,
        &json!({"topic": topic, "data": "hello", "id": "json-1", "type": "greeting", "retry": 2500}),
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "json-1"));
    assert!(
        a.content_type().starts_with("text/plain"),
        "{}",
        a.content_type()
    );
    let e = sub.next().await;
    assert_eq!(fields(&e), ("greeting", "hello", "json-1"));
    let (events, retry) = replay_with_retry(&hub, topic, 1).await;
    assert_eq!(events[0].last_event_id, "json-1");
    assert_eq!(retry, Some(2500), "retry given as a JSON number is sent");
}

#[tokio::test]
async fn json_topic_array_and_non_string_data() {
    let hub = TestHub::default().await;
    let a = "https://example.com/a";
    let b = "https://example.com/b";
    let mut on_b = hub.subscribe_topics(&[b], &[]).await;
    for (data, want) in [
        (json!({"k": [1, 2], "s": "x"}), r#"{"k":[1,2],"s":"x"}"#),
        (json!(42), "42"),
        (json!(true), "true"),
        (json!([1, "two"]), r#"[1,"two"]"#),
        (json!("plain"), "plain"),
    ] {
        let r = post_json(&hub, &json!({"topic": [a, b], "data": data})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.starts_with("urn:uuid:"), "{}", r.body);
        let e = on_b.next().await;
        assert_eq!(
            (e.data.as_str(), e.last_event_id.as_str()),
            (want, &*r.body)
        );
    }
}

#[tokio::test]
async fn json_private_flag_is_honoured() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/p";
    let mut allowed = hub.subscribe_topics(&[topic], &[topic]).await;
    let mut public_only = hub.subscribe_topics(&[topic], &[]).await;
    let private = post_json(
        &hub,
        &json!({"topic": topic, "data": "secret", "private": true}),
    )
    .await;
    assert_eq!(private.status, StatusCode::OK, "{}", private.body);
    let public = post_json(
        &hub,
        &json!({"topic": topic, "data": "open", "private": false}),
    )
    .await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.body);
    let got: Vec<String> = allowed.take(2).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["secret", "open"]);
    assert_eq!(
        public_only.next().await.data,
        "open",
        "the private update is skipped"
    );
}

#[tokio::test]
async fn json_array_publishes_in_order_and_answers_the_ids() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/batch";
    let mut sub = hub.subscribe_topics(&[topic], &[]).await;
    let r = post_json(
        &hub,
        &json!([
            {"topic": topic, "data": "1"},
            {"topic": [topic, "https://example.com/other"], "data": "2", "id": "batch-2"},
            {"topic": topic, "data": "3", "type": "third"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.content_type().starts_with("application/json"),
        "{}",
        r.content_type()
    );
    let ids: Vec<String> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[1], "batch-2");
    assert!(ids[0].starts_with("urn:uuid:") && ids[2].starts_with("urn:uuid:"));
    let events = sub.take(3).await;
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
        .collect();
    assert_eq!(seen, [("1", &*ids[0]), ("2", &*ids[1]), ("3", &*ids[2])]);
    assert_eq!(events[2].event_type, "third");

    // A one-element array is still a batch: the answer is a JSON array.
    let r = post_json(&hub, &json!([{"topic": topic, "id": "solo"}])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"));
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&r.body).unwrap(),
        ["solo"]
    );
    assert_eq!(sub.next().await.last_event_id, "solo");
}

// ---------------------------------------------------------------------------
// Errors, each with a message saying what is wrong

#[tokio::test]
async fn malformed_updates_are_400_with_a_reason() {
    let hub = TestHub::default().await;
    let t = ("topic", "https://example.com/a");
    post_form(&hub, &[("data", "no topic")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["missing", "topic"]);
    // Bytes that are not UTF-8 once percent-decoded, in a topic, the data,
    // an id or a type: refused, never stored with U+FFFD in their place.
    for body in [
        "topic=https://example.com/%FF&data=x",
        "topic=https://example.com/a&data=%C3%28",
        "topic=https://example.com/a&data=x&id=%80",
        "topic=https://example.com/a&data=x&type=a%FEb",
    ] {
        post_form_as(&hub, body, Some(&publisher_token()))
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["not UTF-8"]);
    }
    for bad in ["abc", "-1"] {
        post_form(&hub, &[t, ("retry", bad)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["retry", bad]);
    }
    for bad in ["a\rb", "a\nb", "a\0b"] {
        post_form(&hub, &[t, ("id", bad)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["\"id\"", "control"]);
    }
    for bad in ["a\rb", "a\nb"] {
        post_form(&hub, &[t, ("type", bad)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["\"type\"", "control"]);
    }
    post_form(&hub, &[t, ("id", "#frag")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["id", "#frag", "reserved"]);
    post_form(&hub, &[t, ("id", "")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["\"id\"", "empty"]);
    post_form(&hub, &[t, ("id", "earliest")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["\"earliest\"", "cursor"]);
    post_form(&hub, &[t, ("topic", "")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["empty", "topic"]);
    let many: Vec<String> = (0..1001)
        .map(|i| format!("https://example.com/{i}"))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|t| ("topic", t.as_str())).collect();
    post_form(&hub, &pairs)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["too many topics"]);

    // The same rules apply to JSON bodies.
    post_json(&hub, &json!({"topic": [], "data": "x"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["topic"]);
    post_json(
        &hub,
        &json!({"topic": "https://example.com/a", "retry": -1}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, &["retry"]);
    post_json(
        &hub,
        &json!({"topic": "https://example.com/a", "id": "x\ny"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, &["\"id\""]);

    let token = publisher_token();
    post(&hub, Some(JSON), "{\"topic\": ", Some(&token), &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["json"]);
    post_json(&hub, &json!({"topic": "https://example.com/a", "topik": 1}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["unknown field", "topik"]);
    post_json(&hub, &json!([]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["empty"]);

    // None of these published anything.
    let marker = hub
        .publish_ok(&[("topic", "https://example.com/a"), ("id", "marker")])
        .await;
    assert_eq!(replay_all(&hub).await.next().await.last_event_id, marker);
}

#[tokio::test]
async fn publisher_tokens_are_checked_401() {
    let hub = TestHub::default().await;
    let body = form(&[("topic", "https://example.com/a")]);

    let none = post_form_as(&hub, body.clone(), None).await;
    none.assert_error(StatusCode::UNAUTHORIZED, &["requires a token"]);
    assert!(
        none.headers
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
        "{:?}",
        none.headers
    );

    let other_key = sign_hs256(
        &json!({"mercure": {"publish": ["*"]}}),
        b"another-secret-another-secret-another",
    );
    post_form_as(&hub, body.clone(), Some(&other_key))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token", "signature"]);

    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(br#"{"mercure":{"publish":["*"]}}"#);
    let alg_none = format!("{header}.{payload}.");
    post_form_as(&hub, body.clone(), Some(&alg_none))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);

    let expired = sign_hs256(
        &json!({"mercure": {"publish": ["*"]}, "exp": now_secs() - 60}),
        SECRET.as_bytes(),
    );
    post_form_as(&hub, body.clone(), Some(&expired))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token", "expired"]);

    let not_yet = sign_hs256(
        &json!({"mercure": {"publish": ["*"]}, "nbf": now_secs() + 3600}),
        SECRET.as_bytes(),
    );
    post_form_as(&hub, body.clone(), Some(&not_yet))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);

    post(
        &hub,
        Some(FORM),
        body.clone(),
        None,
        &[("authorization", &format!("Basic {}", publisher_token()))],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, &["bearer"]);

    // Control: the same request with a good token, and one expiring later, pass.
    let fresh = sign_hs256(
        &json!({"mercure": {"publish": ["*"]}, "exp": now_secs() + 60}),
        SECRET.as_bytes(),
    );
    assert_eq!(
        post_form_as(&hub, body, Some(&fresh)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn publish_claim_must_cover_every_topic_403() {
    let hub = TestHub::default().await;
    let limited = token(&["https://example.com/a/{id}"], &[], None);
    let ok = post_form_as(
        &hub,
        form(&[("topic", "https://example.com/a/1")]),
        Some(&limited),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    post_form_as(
        &hub,
        form(&[
            ("topic", "https://example.com/a/1"),
            ("topic", "https://example.com/b/1"),
        ]),
        Some(&limited),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, &["mercure.publish", "every topic"]);
    // A token without any publish claim may not publish at all.
    post_form_as(
        &hub,
        form(&[("topic", "https://example.com/a/1")]),
        Some(&token(&[], &["*"], None)),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, &["mercure.publish"]);
}

#[tokio::test]
async fn hub_topics_are_reserved_400() {
    let hub = TestHub::default().await;
    for topic in [
        "/.well-known/mercure/subscriptions/x",
        "https://h/.well-known/mercure",
        "https://h/.well-known/mercure/subscriptions/t/s",
        // The same, disguised: percent-encoded, with dot segments, relative
        // to the hub URL.
        "/.well-known/%6Dercure/subscriptions/x",
        "https://h/a/../.well-known/mercure/subscriptions/t/s",
        "https://h/.well-known/mercure%2Fsubscriptions%2Ft%2Fs",
        "mercure/subscriptions/x",
    ] {
        post_form(&hub, &[("topic", topic), ("data", "spoof")])
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["reserved", topic]);
        // Also as an alternate topic.
        post_form(
            &hub,
            &[("topic", "https://example.com/a"), ("topic", topic)],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["reserved"]);
    }
}

#[tokio::test]
async fn oversized_body_is_413_with_content_length() {
    let hub = TestHub::start(|o| o.limits.max_body = Some(1024)).await;
    let token = publisher_token();
    let small = form(&[
        ("topic", "https://example.com/a"),
        ("data", &"x".repeat(900)),
    ]);
    assert!(small.len() <= 1024);
    let r = post_form_as(&hub, small, Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let big = form(&[
        ("topic", "https://example.com/a"),
        ("data", &"x".repeat(2000)),
    ]);
    post_form_as(&hub, big, Some(&token))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["1024", "max-body"]);
}

#[tokio::test]
async fn oversized_chunked_body_is_413() {
    let hub = TestHub::start(|o| o.limits.max_body = Some(1024)).await;
    let token = publisher_token();
    let chunks = |n: usize| {
        let mut parts = vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
            "topic=https%3A%2F%2Fexample.com%2Fa&data=",
        ))];
        parts.extend((0..n).map(|_| Ok(bytes::Bytes::from(vec![b'x'; 256]))));
        reqwest::Body::wrap_stream(futures_util::stream::iter(parts))
    };
    // Control: a chunked body under the limit is read and published.
    let r = post_form_as(&hub, chunks(2), Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    post_form_as(&hub, chunks(16), Some(&token))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["1024"]);
}

#[tokio::test]
async fn other_content_types_are_415() {
    let hub = TestHub::default().await;
    let token = publisher_token();
    for ct in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        post(
            &hub,
            Some(ct),
            "topic=https://example.com/a",
            Some(&token),
            &[],
        )
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &["content-type", ct]);
    }
    // Parameters and case do not matter for the accepted types.
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded",
    ] {
        let r = post(
            &hub,
            Some(ct),
            "topic=https://example.com/a",
            Some(&token),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{ct}: {}", r.body);
    }
    let r = post(
        &hub,
        Some("application/json; charset=utf-8"),
        r#"{"topic":"https://example.com/a"}"#,
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_failed_batch_publishes_nothing() {
    let hub = TestHub::default().await;
    let t = "https://example.com/batch";
    let cases = [
        (
            json!([{"topic": t, "id": "fail-1"}, {"topic": t, "retry": "abc"}, {"topic": t, "id": "fail-3"}]),
            StatusCode::BAD_REQUEST,
            "retry",
        ),
        (
            json!([{"topic": t, "id": "fail-4"}, {"topic": "https://h/.well-known/mercure"}, {"topic": t, "id": "fail-6"}]),
            StatusCode::BAD_REQUEST,
            "reserved",
        ),
        (
            json!([{"topic": t, "id": "fail-7"}, {"topic": t, "bogus": 1}, {"topic": t, "id": "fail-9"}]),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            json!([{"topic": t, "id": "fail-10"}, {"data": "no topic"}]),
            StatusCode::BAD_REQUEST,
            "topic",
        ),
    ];
    for (body, status, word) in &cases {
        post_json(&hub, body).await.assert_error(*status, &[word]);
    }
    // A later publish is the very first event in the history.
    let marker = hub
        .publish_ok(&[("topic", t), ("id", "after-failures")])
        .await;
    let mut sub = replay_all(&hub).await;
    let first = sub.next().await;
    assert_eq!(first.last_event_id, marker, "a failed batch left {first:?}");
    // And a failed id is unknown to the history: resuming from it replays all.
    let sub = hub.resume(&["*"], "fail-1").await;
    assert_eq!(sub.headers["last-event-id"], "earliest");
}

#[tokio::test]
async fn an_accepted_id_can_be_resumed_from() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/ctl";
    let odd = "a\u{1}b";
    let r = post_form(&hub, &[("topic", topic), ("id", odd)]).await;
    if r.status == StatusCode::BAD_REQUEST {
        // Refusing such an id up front is a fine answer too.
        assert!(r.body.contains("id"), "{}", r.body);
        return;
    }
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, odd));
    let next = hub.publish_ok(&[("topic", topic), ("id", "next")]).await;
    let query = format!(
        "{}&{}",
        topic_query(&[topic]),
        form(&[("lastEventID", odd)])
    );
    let t = format!("Bearer {}", token(&[], &[], None));
    let mut sub = hub.subscribe(&query, &[("authorization", &t)]).await;
    let status = sub.status;
    if status == StatusCode::OK {
        assert_eq!(sub.next().await.last_event_id, next);
    }
    drop(sub);
    // Whatever the answer, a closed request leaves no subscriber behind.
    hub.assert_no_subscriber_left(&format!("after a {status} answer"))
        .await;
    assert_eq!(status, StatusCode::OK, "resuming from an id the hub issued");
}

// ---------------------------------------------------------------------------
// Ways to authenticate a publisher

#[tokio::test]
async fn namespaced_claim_publishes() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/ns";
    let mut sub = hub.subscribe_topics(&[topic], &[]).await;
    let ns = sign_hs256(
        &json!({"https://mercure.rocks/": {"publish": [topic]}}),
        SECRET.as_bytes(),
    );
    let r = post_form_as(&hub, form(&[("topic", topic), ("data", "ns")]), Some(&ns)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sub.next().await.last_event_id, r.body);
    // The namespaced claim is read, not ignored: its limits apply.
    post_form_as(
        &hub,
        form(&[("topic", "https://example.com/elsewhere")]),
        Some(&ns),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, &["mercure.publish"]);
}

#[tokio::test]
async fn cookie_publishing_needs_an_allowed_origin() {
    let hub = TestHub::start(|o| {
        o.access.publish_origins = Some("https://app.example".parse().unwrap());
    })
    .await;
    let body = || form(&[("topic", "https://example.com/a")]);
    let cookie = format!("other=1; mercureAuthorization={}", publisher_token());
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = vec![("cookie", cookie.clone())];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let send = |headers: Vec<(&'static str, String)>| {
        let hub = &hub;
        let body = body();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(hub, Some(FORM), body, None, &h).await
        }
    };

    send(with(&[]))
        .await
        .assert_error(StatusCode::FORBIDDEN, &["origin", "referer"]);
    send(with(&[("origin", "https://evil.example")]))
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            &["https://evil.example", "publish-origins"],
        );
    send(with(&[("referer", "https://evil.example/page")]))
        .await
        .assert_error(StatusCode::FORBIDDEN, &["https://evil.example"]);
    // A listed origin in the Referer does not excuse an unlisted Origin.
    send(with(&[
        ("origin", "https://evil.example"),
        ("referer", "https://app.example/page"),
    ]))
    .await
    .assert_error(StatusCode::FORBIDDEN, &["evil.example"]);

    let r = send(with(&[("origin", "https://app.example")])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(with(&[("referer", "https://app.example/some/page?x=1")])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A bad cookie token is refused before the origin is even considered.
    let bad = vec![
        ("cookie", "mercureAuthorization=not.a.jwt".to_string()),
        ("origin", "https://app.example".to_string()),
    ];
    send(bad)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);
}

#[tokio::test]
async fn custom_cookie_name_is_used_for_publishing() {
    let hub = TestHub::start(|o| {
        o.access.publish_origins = Some("https://app.example".parse().unwrap());
        o.access.cookie_name = Some("hubToken".into());
    })
    .await;
    let body = form(&[("topic", "https://example.com/a")]);
    let token = publisher_token();
    let ok_cookie = format!("hubToken={token}");
    let r = post(
        &hub,
        Some(FORM),
        body.clone(),
        None,
        &[("cookie", &ok_cookie), ("origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    post(
        &hub,
        Some(FORM),
        body.clone(),
        None,
        &[("cookie", &ok_cookie)],
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, &["origin"]);
    // The default name is no longer read.
    let default_cookie = format!("mercureAuthorization={token}");
    post(
        &hub,
        Some(FORM),
        body,
        None,
        &[
            ("cookie", &default_cookie),
            ("origin", "https://app.example"),
        ],
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, &["requires a token"]);
}

#[tokio::test]
async fn authorization_query_parameter_publishes() {
    let hub = TestHub::default().await;
    let topic = "https://example.com/q";
    let mut sub = hub.subscribe_topics(&[topic], &[]).await;
    let url = format!(
        "{}?{}",
        hub.url(),
        form(&[("authorization", &publisher_token())])
    );
    let r = post_to(
        &hub,
        &url,
        Some(FORM),
        form(&[("topic", topic), ("data", "q")]),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sub.next().await.last_event_id, r.body);
    let bad = format!("{}?authorization=nope", hub.url());
    post_to(&hub, &bad, Some(FORM), form(&[("topic", topic)]), None, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);
}

// ---------------------------------------------------------------------------
// Asymmetric keys

/// Makes a key pair with `openssl genpkey GENPKEY`: the private key's PEM,
/// the public key's path and its PEM.
fn pem_key_pair(dir: &Path, name: &str, genpkey: &[&str]) -> (String, String, String) {
    let (private, public) = key_pair(dir, name, genpkey);
    let private_pem = std::fs::read_to_string(&private).unwrap();
    assert!(private_pem.contains("BEGIN PRIVATE KEY"), "PKCS#8 expected");
    let public_pem = std::fs::read_to_string(&public).unwrap();
    (
        private_pem,
        public.to_str().unwrap().to_string(),
        public_pem,
    )
}

/// A hub verifying publishers' tokens with `alg` and `key` (PEM text, or
/// `@` and a file).
async fn hub_verifying(alg: &str, key: String) -> TestHub {
    TestHub::start(|o| {
        o.keys.publisher_jwt_alg = Some(alg.into());
        o.keys.publisher_jwt_key = Some(key);
    })
    .await
}

/// A token signed with `key` by `alg` that may publish anywhere.
fn publisher_signed(key: &str, alg: Algorithm) -> String {
    Signer::new(key, alg).unwrap().sign(&claim(&["*"]), None)
}

/// Publishes with a token signed by `alg` with `private`; asserts 200 and
/// returns the id.
async fn publish_signed_ok(hub: &TestHub, private: &str, alg: Algorithm) -> String {
    let r = publish_with(hub, &publisher_signed(private, alg)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Algorithm confusion: a token signed by HS256 with the public key as the
/// secret is refused.
async fn assert_refuses_public_key_as_secret(hub: &TestHub, public_pem: &str) {
    publish_with(hub, &publisher_signed(public_pem, Algorithm::HS256))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);
}

async fn publish_with(hub: &TestHub, token: &str) -> Answer {
    post_form_as(
        hub,
        form(&[("topic", "https://example.com/k")]),
        Some(token),
    )
    .await
}

#[tokio::test]
async fn rs256_public_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public_path, public_pem) = pem_key_pair(dir.path(), "rsa", &RSA_2048);
    let hub = hub_verifying("RS256", format!("@{public_path}")).await;
    publish_signed_ok(&hub, &private, Algorithm::RS256).await;

    // Algorithm confusion: the public key used as an HMAC secret.
    assert_refuses_public_key_as_secret(&hub, &public_pem).await;
    let confused_file_bytes = sign_hs256(
        &json!({"mercure": {"publish": ["*"]}}),
        &std::fs::read(&public_path).unwrap(),
    );
    publish_with(&hub, &confused_file_bytes)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);
    // The test secret means nothing to this hub.
    publish_with(&hub, &publisher_token())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, &["invalid token"]);
}

#[tokio::test]
async fn es256_public_key_pem_text() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _, public_pem) = pem_key_pair(
        dir.path(),
        "ec",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let hub = hub_verifying("ES256", public_pem.clone()).await;
    let topic = "https://example.com/k";
    let mut sub = hub
        .subscribe(
            &topic_query(&[topic]),
            &[(
                "authorization",
                &format!(
                    "Bearer {}",
                    Signer::new(&private, Algorithm::ES256)
                        .unwrap()
                        .sign(&MercureClaim::default(), None)
                ),
            )],
        )
        .await;
    assert_eq!(
        sub.status,
        StatusCode::OK,
        "subscriber key defaults to the publisher key"
    );
    let id = publish_signed_ok(&hub, &private, Algorithm::ES256).await;
    assert_eq!(sub.next().await.last_event_id, id);

    assert_refuses_public_key_as_secret(&hub, &public_pem).await;
}
