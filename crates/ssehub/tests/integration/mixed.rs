//! Both Mercure generations on one hub: updates and private updates across
//! them, subscription events and the subscriptions API in each shape, and
//! what `--protocol 0` and `--protocol 1` refuse.

use crate::common::v1::{self, access_token, claims, detail};
use crate::common::*;
use crate::mercure_v1::{
    assert_invalid_token, bearer, challenge, open, open_ok, publish_v1, CANON,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An alternate topic of the private update of [`privacy_crosses_generations`].
const ALT: &str = "https://example.com/alt/1";
/// The topic of the other private update there.
const NEWS: &str = "https://example.com/news";

/// A 0.x subscriber token for `subscribe` (selectors).
fn legacy_subscriber(subscribe: &[&str]) -> String {
    token(&[], subscribe, None)
}

#[tokio::test]
async fn updates_cross_generations() {
    let hub = TestHub::default().await;
    let mut v1_sub = open_ok(
        &hub,
        &[("match", CANON)],
        &[bearer(&access_token(&claims(&hub.url(), &[])))],
    )
    .await;
    let mut legacy_sub = open_ok(
        &hub,
        &[("topic", CANON)],
        &[bearer(&legacy_subscriber(&[]))],
    )
    .await;
    // A 0.x token with a 1.0 request, a 1.0 token with a 0.x request.
    let mut v1_request_legacy_token = open_ok(
        &hub,
        &[("match", CANON)],
        &[bearer(&legacy_subscriber(&[]))],
    )
    .await;
    let mut legacy_request_v1_token = open_ok(
        &hub,
        &[("topic", CANON)],
        &[bearer(&access_token(&claims(&hub.url(), &[])))],
    )
    .await;

    let from_legacy = hub.publish_ok(&[("topic", CANON), ("data", "0.x")]).await;
    let from_v1 = publish_v1(&hub, &[("topic", CANON), ("data", "1.0")]).await;
    for sub in [
        &mut v1_sub,
        &mut legacy_sub,
        &mut v1_request_legacy_token,
        &mut legacy_request_v1_token,
    ] {
        let events = sub.take(2).await;
        assert_eq!(fields(&events[0]), ("message", "0.x", from_legacy.as_str()));
        assert_eq!(fields(&events[1]), ("message", "1.0", from_v1.as_str()));
    }
}

/// One subscriber of [`privacy_crosses_generations`].
struct Case {
    name: &'static str,
    query: Vec<(&'static str, &'static str)>,
    token: String,
    /// The topic of the private update it is about.
    topic: &'static str,
    /// Whether it may receive it.
    sees: bool,
}

/// Whether `sub`'s first event is the private update on `topic` (then
/// followed by the public one), given that both were published in that
/// order with ids `priv-TOPIC` and `pub-TOPIC`.
async fn saw_private(sub: &mut SseClient, topic: &str) -> bool {
    let (private, public) = (format!("priv-{topic}"), format!("pub-{topic}"));
    let first = sub.next().await.last_event_id;
    if first == private {
        assert_eq!(sub.next().await.last_event_id, public);
        true
    } else {
        assert_eq!(first, public, "unexpected event");
        false
    }
}

#[tokio::test]
async fn privacy_crosses_generations() {
    let hub = TestHub::default().await;
    let aud = hub.url();
    let v1_grant = |kind, text| v1::subscriber(&aud, &[(kind, text)]);
    let cases = vec![
        Case {
            name: "1.0 subscriber, 1.0 pattern granting the alternate",
            query: vec![("match", CANON)],
            token: v1_grant("urlpattern", "https://example.com/alt/:id"),
            topic: CANON,
            sees: true,
        },
        Case {
            name: "1.0 subscriber, 1.0 grant matching nothing",
            query: vec![("match", CANON)],
            token: v1_grant("exact", "https://example.com/books/2"),
            topic: CANON,
            sees: false,
        },
        Case {
            name: "1.0 subscriber, 0.x template granting the alternate",
            query: vec![("match", CANON)],
            token: legacy_subscriber(&["https://example.com/alt/{id}"]),
            topic: CANON,
            sees: true,
        },
        Case {
            name: "0.x subscriber, 1.0 pattern granting the alternate",
            query: vec![("topic", CANON)],
            token: v1_grant("urlpattern", "https://example.com/alt/:id"),
            topic: CANON,
            sees: true,
        },
        Case {
            name: "0.x subscriber, 0.x template",
            query: vec![("topic", NEWS)],
            token: legacy_subscriber(&["https://example.com/{id}"]),
            topic: NEWS,
            sees: true,
        },
        Case {
            name: "1.0 subscriber, 1.0 exact grant of a template's text",
            query: vec![("match", NEWS)],
            token: v1_grant("exact", "https://example.com/{id}"),
            topic: NEWS,
            sees: false,
        },
        Case {
            name: "0.x subscriber, 0.x grant matching nothing",
            query: vec![("topic", NEWS)],
            token: legacy_subscriber(&["https://example.com/other"]),
            topic: NEWS,
            sees: false,
        },
    ];
    let mut live = Vec::new();
    for case in &cases {
        live.push(open_ok(&hub, &case.query, &[bearer(&case.token)]).await);
    }
    // Published by a 1.0 publisher, each private update then a public one.
    for (topics, name) in [(&[CANON, ALT][..], CANON), (&[NEWS][..], NEWS)] {
        let mut private: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
        let id = format!("priv-{name}");
        private.extend([("private", "on"), ("id", id.as_str())]);
        publish_v1(&hub, &private).await;
        publish_v1(&hub, &[("topic", name), ("id", &format!("pub-{name}"))]).await;
    }
    for (case, sub) in cases.iter().zip(&mut live) {
        assert_eq!(
            saw_private(sub, case.topic).await,
            case.sees,
            "live: {}",
            case.name
        );
    }
    for case in &cases {
        let mut query = case.query.clone();
        query.push(("last_event_id", "earliest"));
        let mut replay = open_ok(&hub, &query, &[bearer(&case.token)]).await;
        assert_eq!(replay.headers["mercure-last-event-id"], "earliest");
        assert_eq!(
            saw_private(&mut replay, case.topic).await,
            case.sees,
            "replay: {}",
            case.name
        );
    }
}

// ---------------------------------------------------------------------------
// Subscription events and the subscriptions API

/// The pattern a 1.0 watcher of exact subscriptions subscribes to.
const WATCH_EXACT: &str = "/.well-known/mercure/subscriptions/exact/:topic/:subscriber";
/// The selector a 0.x watcher of 0.x subscriptions subscribes to.
const WATCH_LEGACY: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";

/// `segments` under the subscriptions API, each percent-encoded whole:
/// everything but `A-Z a-z 0-9 - . _ ~` (RFC 6570 simple expansion).
fn subscriptions_path(segments: &[&str]) -> String {
    let mut path = String::from("/.well-known/mercure/subscriptions");
    for segment in segments {
        path.push('/');
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                path.push(char::from(b));
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
    }
    path
}

/// The next event, which must be a subscription event: its type and JSON.
async fn next_doc(sub: &mut SseClient) -> (String, Value) {
    let event = sub.next().await;
    let doc = serde_json::from_str(&event.data)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", event.data));
    (event.event_type, doc)
}

/// GETs `path` on the hub with `token` as bearer.
async fn get(hub: &TestHub, path: &str, token: &str) -> reqwest::Response {
    hub.http
        .get(format!("{}{path}", hub.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// GETs `path`, which must answer 200 with JSON: the response's `Link`
/// header ("" if none) and its body.
async fn get_json(hub: &TestHub, path: &str, token: &str) -> (String, Value) {
    let res = get(hub, path, token).await;
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "GET {path}"
    );
    let link = res
        .headers()
        .get("link")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    (link, res.json().await.unwrap())
}

/// The `field` of every document of a collection.
fn listed<'a>(collection: &'a Value, field: &str) -> Vec<&'a str> {
    collection["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[field].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn subscription_events_and_api_in_each_shape() {
    let hub = TestHub::start(|o| o.stream.subscriptions = Some(true)).await;
    let aud = hub.url();
    let v1_watch_token = v1::subscriber(&aud, &[("urlpattern", WATCH_EXACT)]);
    let mut v1_watcher = open_ok(
        &hub,
        &[("match_urlpattern", WATCH_EXACT)],
        &[bearer(&v1_watch_token)],
    )
    .await;
    let legacy_watch_token = legacy_subscriber(&[WATCH_LEGACY]);
    let mut legacy_watcher = open_ok(
        &hub,
        &[("topic", WATCH_LEGACY)],
        &[bearer(&legacy_watch_token)],
    )
    .await;
    let (kind, own) = next_doc(&mut legacy_watcher).await;
    assert_eq!(
        (kind.as_str(), &own["topic"]),
        ("message", &json!(WATCH_LEGACY))
    );

    // A 0.x subscription: seen by the 0.x watcher in JSON-LD.
    let legacy_topic = "https://example.com/b";
    let legacy_sub = open_ok(
        &hub,
        &[("topic", legacy_topic)],
        &[bearer(&legacy_subscriber(&[]))],
    )
    .await;
    let (kind, doc) = next_doc(&mut legacy_watcher).await;
    assert_eq!(kind, "message", "0.x subscription events have no type");
    let legacy_id = doc["subscriber"].as_str().unwrap().to_string();
    let legacy_path = subscriptions_path(&[legacy_topic, &legacy_id]);
    assert_eq!(
        doc,
        json!({
            "@context": "https://mercure.rocks/",
            "id": legacy_path,
            "type": "Subscription",
            "topic": legacy_topic,
            "subscriber": legacy_id,
            "active": true,
            "payload": null,
        })
    );

    // A 1.0 subscription whose token carries a payload: seen by the 1.0
    // watcher in plain JSON with the event type `mercure`.
    let topic = "https://example.com/a";
    let payload = json!({"user": "https://example.com/users/1"});
    let mut with_payload = detail(&["subscribe"], &[("exact", topic)]);
    with_payload["payload"] = payload.clone();
    let default_payload = json!({"user": "default"});
    let mut by_default = detail(&["subscribe"], &[("exact", "*")]);
    by_default["payload"] = default_payload.clone();
    let sub_token = access_token(&claims(
        &aud,
        &[
            detail(
                &["subscribe"],
                &[("exact", "urn:first-detail-without-payload")],
            ),
            with_payload,
            by_default,
        ],
    ));
    let sub = open_ok(&hub, &[("match", topic)], &[bearer(&sub_token)]).await;
    let (kind, doc) = next_doc(&mut v1_watcher).await;
    assert_eq!(kind, "mercure");
    let subscriber = doc["subscriber"].as_str().unwrap().to_string();
    let doc_path = subscriptions_path(&["exact", topic, &subscriber]);
    let active = json!({
        "id": doc_path,
        "type": "subscription",
        "match_type": "exact",
        "match": topic,
        "subscriber": subscriber,
        "active": true,
        "payload": payload,
    });
    assert_eq!(doc, active);

    // The 1.0 API, with a 1.0 token granting it.
    let api_token = access_token(&claims(
        &aud,
        &[detail(
            &["subscribe"],
            &[
                ("exact", "/.well-known/mercure/subscriptions"),
                ("urlpattern", "/.well-known/mercure/subscriptions/*"),
            ],
        )],
    ));
    let (link, all) = get_json(&hub, "/.well-known/mercure/subscriptions", &api_token).await;
    assert_eq!(all["type"], "subscriptions");
    assert_eq!(all["id"], "/.well-known/mercure/subscriptions");
    assert!(all.get("@context").is_none(), "{all}");
    let ids = listed(&all, "id");
    assert!(ids.contains(&doc_path.as_str()), "{all}");
    assert!(
        listed(&all, "type").iter().all(|t| *t == "subscription"),
        "1.0 only: {all}"
    );
    assert!(
        !listed(&all, "subscriber").contains(&legacy_id.as_str()),
        "{all}"
    );
    let prefix = format!("<{aud}>; rel=\"mercure\"; last-event-id=\"");
    let cursor = link
        .strip_prefix(&prefix)
        .and_then(|rest| {
            rest.strip_suffix("\"; type=\"mercure\"; content-type=\"application/json\"")
        })
        .unwrap_or_else(|| panic!("Link: {link:?}"));
    // (A URL pattern subscription, which the watcher of exact ones ignores.)
    let resumed = open_ok(
        &hub,
        &[
            ("match_urlpattern", "https://example.com/x/:id"),
            ("last_event_id", cursor),
        ],
        &[bearer(&api_token)],
    )
    .await;
    assert_eq!(
        resumed.headers["mercure-last-event-id"], cursor,
        "the Link's cursor is an event the hub knows"
    );
    drop(resumed);

    let collection_path = subscriptions_path(&["exact", topic]);
    let (link, collection) = get_json(&hub, &collection_path, &api_token).await;
    assert!(link.contains("rel=\"mercure\""), "{link:?}");
    assert_eq!(collection["type"], "subscriptions");
    assert_eq!(collection["id"], collection_path);
    assert_eq!(collection["subscriptions"], json!([active]));
    let (link, one) = get_json(&hub, &doc_path, &api_token).await;
    assert!(link.contains("rel=\"mercure\""), "{link:?}");
    assert_eq!(one, active);

    // The same token's `*` detail gives its payload to other subscriptions.
    let pattern = "https://example.com/bar/:id";
    let by_pattern = open_ok(
        &hub,
        &[("match_urlpattern", pattern)],
        &[bearer(&sub_token)],
    )
    .await;
    let (_, collection) = get_json(
        &hub,
        &subscriptions_path(&["urlpattern", pattern]),
        &api_token,
    )
    .await;
    assert_eq!(listed(&collection, "match"), [pattern]);
    assert_eq!(collection["subscriptions"][0]["payload"], default_payload);
    assert_eq!(collection["subscriptions"][0]["match_type"], "urlpattern");
    drop(by_pattern);

    let unknown = get(
        &hub,
        &format!("{collection_path}/no-such-subscriber"),
        &api_token,
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let not_granted = v1::subscriber(&aud, &[("exact", "urn:else")]);
    for path in ["/.well-known/mercure/subscriptions", &doc_path] {
        let denied = get(&hub, path, &not_granted).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{path}");
        let c = challenge(denied.headers());
        assert!(c.contains("error=\"insufficient_scope\""), "{path}: {c:?}");
    }

    // The 0.x API, with a 0.x token: 0.x subscriptions only, in JSON-LD.
    let (_, all) = get_json(
        &hub,
        "/.well-known/mercure/subscriptions",
        &legacy_watch_token,
    )
    .await;
    assert_eq!(all["type"], "Subscriptions");
    assert_eq!(all["@context"], "https://mercure.rocks/");
    assert!(all["lastEventID"].is_string(), "{all}");
    let subscribers = listed(&all, "subscriber");
    assert!(subscribers.contains(&legacy_id.as_str()), "{all}");
    assert!(!subscribers.contains(&subscriber.as_str()), "{all}");
    let (_, one) = get_json(&hub, &legacy_path, &legacy_watch_token).await;
    assert_eq!(one["type"], "Subscription");
    assert_eq!(one["subscriber"], legacy_id.as_str());

    // Disconnections.
    drop(sub);
    let (kind, doc) = next_doc(&mut v1_watcher).await;
    assert_eq!(kind, "mercure");
    let mut inactive = active.clone();
    inactive["active"] = json!(false);
    assert_eq!(doc, inactive);
    let gone = get(&hub, &doc_path, &api_token).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    drop(legacy_sub);
    let (kind, doc) = next_doc(&mut legacy_watcher).await;
    assert_eq!(kind, "message");
    assert_eq!(
        (&doc["subscriber"], &doc["active"]),
        (&json!(legacy_id), &json!(false))
    );
}

// ---------------------------------------------------------------------------
// One generation only

#[tokio::test]
async fn protocol_1_refuses_0_x() {
    let hub = TestHub::start(|o| o.protocol.protocol = Some("1".into())).await;
    let aud = hub.url();
    let v1_token = v1::subscriber(&aud, &[("exact", "*")]);
    let legacy = legacy_subscriber(&["*"]);

    open_ok(&hub, &[("match", CANON)], &[bearer(&v1_token)]).await;
    let sub = open(&hub, &[("topic", CANON)], &[bearer(&v1_token)]).await;
    assert_eq!(sub.status, StatusCode::BAD_REQUEST, "topic=");
    let sub = open(&hub, &[("match", CANON)], &[bearer(&legacy)]).await;
    assert_invalid_token(&sub, "a 0.x token");
    let (status, _) = hub.publish(&publisher_token(), &[("topic", CANON)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a 0.x publisher token");

    for token in [&legacy, &v1_token] {
        let sub = open(
            &hub,
            &[("match", CANON)],
            &[("cookie", format!("mercureAuthorization={token}"))],
        )
        .await;
        assert_eq!(
            sub.status,
            StatusCode::UNAUTHORIZED,
            "the 0.x cookie is not read"
        );
        let bare = challenge(&sub.headers);
        assert!(bare.starts_with("Bearer "), "{bare:?}");
        assert!(!bare.contains("error="), "a missing token: {bare:?}");
    }
    let sub = open(&hub, &[("match", CANON), ("authorization", &v1_token)], &[]).await;
    assert_eq!(sub.status, StatusCode::BAD_REQUEST, "no token in the URL");
    assert!(challenge(&sub.headers).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn protocol_0_refuses_1_0() {
    let hub = TestHub::start(|o| o.protocol.protocol = Some("0".into())).await;
    let aud = hub.url();
    let legacy = legacy_subscriber(&["*"]);
    let v1_token = v1::subscriber(&aud, &[("exact", "*")]);

    open_ok(&hub, &[("topic", CANON)], &[bearer(&legacy)]).await;
    for matcher in ["match", "match_exact", "match_urlpattern"] {
        let sub = open(&hub, &[(matcher, CANON)], &[bearer(&legacy)]).await;
        assert_eq!(sub.status, StatusCode::BAD_REQUEST, "{matcher}=");
    }
    let sub = open(&hub, &[("topic", CANON)], &[bearer(&v1_token)]).await;
    assert_invalid_token(&sub, "an at+jwt token");
    let (status, _) = hub.publish(&v1::publisher(&aud), &[("topic", CANON)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a 1.0 publisher token");
    // The 0.x token in the URL is still fine.
    open_ok(&hub, &[("topic", CANON), ("authorization", &legacy)], &[]).await;
}
