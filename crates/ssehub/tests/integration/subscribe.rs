//! Subscribing: selectors, framing on the wire, replay, races, back-pressure,
//! heartbeats, shutdown and the subscriptions API.

use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;

/// How long a stream must stay silent to count as having nothing more.
pub(crate) const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn delivers_exact_topic_with_framing() {
    let hub = TestHub::default().await;
    let mut sub = hub
        .subscribe_topics(&["https://example.com/books/1"], &[])
        .await;
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    assert_eq!(sub.headers["cache-control"], "no-cache");
    assert_eq!(sub.headers["x-accel-buffering"], "no");
    assert!(
        !sub.headers.contains_key("last-event-id"),
        "no cursor sent, no cursor header"
    );
    let id = hub
        .publish_ok(&[
            ("topic", "https://example.com/books/1"),
            ("data", "a\r\nb\rc\nd"),
            ("type", "upd"),
            ("retry", "1500"),
        ])
        .await;
    let e = sub.next().await;
    assert_eq!(fields(&e), ("upd", "a\nb\nc\nd", id.as_str()));
    assert!(sub.comments() >= 1, "an open comment is flushed first");
}

#[tokio::test]
async fn each_selector_form_matches_what_it_should() {
    let hub = TestHub::default().await;
    let mut any = hub.subscribe_topics(&["*"], &[]).await;
    let mut tpl = hub
        .subscribe_topics(&["https://example.com/books/{id}"], &[])
        .await;
    let mut path = hub
        .subscribe_topics(&["https://example.com/files{/path*}"], &[])
        .await;
    let mut many = hub.subscribe_topics(&["urn:a", "urn:b"], &[]).await;
    for topic in [
        "https://example.com/books/1",
        "https://example.com/books/1/reviews",
        "https://example.com/files/a/b/c",
        "urn:a",
        "urn:b",
        "urn:c",
    ] {
        hub.publish_ok(&[("topic", topic), ("data", topic)]).await;
    }
    let data = |events: Vec<ssehub::proto::sse::ParsedEvent>| {
        events.into_iter().map(|e| e.data).collect::<Vec<_>>()
    };
    assert_eq!(data(any.take(6).await).len(), 6);
    assert_eq!(data(tpl.take(1).await), ["https://example.com/books/1"]);
    assert_eq!(
        data(path.take(1).await),
        ["https://example.com/files/a/b/c"]
    );
    assert_eq!(
        data(many.take(2).await),
        ["urn:a", "urn:b"],
        "one stream carries several topics"
    );
    for sub in [&mut tpl, &mut path, &mut many] {
        sub.assert_silent(SHORT).await;
    }
}

#[tokio::test]
async fn alternate_topic_matches_once() {
    let hub = TestHub::default().await;
    let mut sub = hub
        .subscribe_topics(&["urn:canonical", "urn:alt"], &[])
        .await;
    hub.publish_ok(&[
        ("topic", "urn:canonical"),
        ("topic", "urn:alt"),
        ("data", "x"),
    ])
    .await;
    assert_eq!(sub.next().await.data, "x");
    sub.assert_silent(SHORT).await;
}

/// `publishers` tasks each publishing `each` updates to `urn:race` at once
/// (data `P-I`), racing whatever the test does meanwhile.
pub(crate) fn race_publishers(
    hub: &std::sync::Arc<TestHub>,
    publishers: usize,
    each: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..publishers)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    hub.publish_ok(&[("topic", "urn:race"), ("data", &format!("{p}-{i}"))])
                        .await;
                }
            })
        })
        .collect()
}

/// Publishes `n` updates to `topic`; returns their ids in order.
pub(crate) async fn publish_n(hub: &TestHub, topic: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            hub.publish_ok(&[("topic", topic), ("data", &i.to_string())])
                .await,
        );
    }
    ids
}

/// The ids of `events`, in order.
pub(crate) fn ids(events: &[ssehub::proto::sse::ParsedEvent]) -> Vec<String> {
    events.iter().map(|e| e.last_event_id.clone()).collect()
}

#[tokio::test]
async fn replays_from_each_cursor_form() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let sent = publish_n(&hub, "urn:t", 5).await;
    hub.publish_ok(&[("topic", "urn:other"), ("data", "elsewhere")])
        .await;
    let after_second = &sent[2..];
    let q = topic_query(&["urn:t"]);

    let mut header = hub.subscribe(&q, &[("last-event-id", &sent[1])]).await;
    let mut camel = hub
        .subscribe(&format!("{q}&lastEventID={}", sent[1]), &[])
        .await;
    let mut snake = hub
        .subscribe(&format!("{q}&last_event_id={}", sent[1]), &[])
        .await;
    let mut symfony = hub
        .subscribe(&format!("{q}&Last-Event-ID={}", sent[1]), &[])
        .await;
    let mut polyfill = hub
        .subscribe(&format!("{q}&lastEventId={}", sent[1]), &[])
        .await;
    let mut wins = hub
        .subscribe(
            &format!("{q}&lastEventID={}", sent[0]),
            &[("last-event-id", &sent[1])],
        )
        .await;
    let mut first_parameter_wins = hub
        .subscribe(
            &format!(
                "{q}&last_event_id={}&lastEventId={}&lastEventID={}",
                sent[0], sent[0], sent[1]
            ),
            &[],
        )
        .await;
    for sub in [
        &mut header,
        &mut camel,
        &mut snake,
        &mut symfony,
        &mut polyfill,
        &mut wins,
        &mut first_parameter_wins,
    ] {
        assert_eq!(sub.headers["last-event-id"], sent[1].as_str());
        assert_eq!(sub.headers["mercure-last-event-id"], sent[1].as_str());
        assert_eq!(ids(&sub.take(3).await), after_second);
        sub.assert_silent(SHORT).await;
    }

    let mut earliest = hub.subscribe(&q, &[("last-event-id", "earliest")]).await;
    assert_eq!(earliest.headers["last-event-id"], "earliest");
    assert_eq!(ids(&earliest.take(5).await), sent);

    let mut unknown = hub
        .subscribe(&q, &[("last-event-id", "urn:never-published")])
        .await;
    assert_eq!(
        unknown.headers["last-event-id"], "earliest",
        "unknown id is reported as earliest"
    );
    assert_eq!(
        ids(&unknown.take(5).await),
        sent,
        "and everything retained is replayed"
    );

    let mut newest = hub.subscribe(&q, &[("last-event-id", &sent[4])]).await;
    newest.assert_silent(SHORT).await;
    let live = hub.publish_ok(&[("topic", "urn:t")]).await;
    assert_eq!(
        newest.next().await.last_event_id,
        live,
        "replay continues live"
    );
}

/// A reused id resolves to the earliest update that carried it.
pub(crate) async fn check_reused_id_resumes_after_its_earliest_update(hub: &TestHub) {
    let dup = |data: &'static str| [("topic", "urn:t"), ("id", "dup"), ("data", data)];
    hub.publish_ok(&dup("first")).await;
    let between = publish_n(hub, "urn:t", 1).await;
    hub.publish_ok(&dup("again")).await;
    let after = publish_n(hub, "urn:t", 1).await;
    let mut sub = hub
        .subscribe(&topic_query(&["urn:t"]), &[("last-event-id", "dup")])
        .await;
    assert_eq!(sub.headers["last-event-id"], "dup");
    let replayed = sub.take(3).await;
    assert_eq!(
        ids(&replayed),
        [between[0].as_str(), "dup", after[0].as_str()]
    );
    assert_eq!(replayed[1].data, "again");
}

#[tokio::test]
async fn a_reused_id_resolves_to_its_earliest_update_on_disk_and_in_memory() {
    for store in ["disk", "memory"] {
        let hub = TestHub::anonymous_on(store).await;
        check_reused_id_resumes_after_its_earliest_update(&hub).await;
    }
}

#[tokio::test]
async fn evicted_id_is_reported_as_earliest() {
    let hub = TestHub::start(|o| {
        o.access.anonymous = Some(true);
        o.history.history_size = Some(3);
    })
    .await;
    let sent = publish_n(&hub, "urn:t", 5).await;
    let mut sub = hub
        .subscribe(&topic_query(&["urn:t"]), &[("last-event-id", &sent[0])])
        .await;
    assert_eq!(sub.headers["last-event-id"], "earliest");
    assert_eq!(ids(&sub.take(3).await), &sent[2..]);
}

/// Publishers run while a subscriber replays: it must see exactly the log's
/// order after its cursor, with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_racing_publishes_has_no_gap_and_no_duplicate() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 150;
    let hub = std::sync::Arc::new(TestHub::start(|o| o.access.anonymous = Some(true)).await);
    let q = topic_query(&["urn:race"]);
    let mut reference = hub.subscribe(&q, &[]).await;
    let first = publish_n(&hub, "urn:race", 20).await;

    let publishers = race_publishers(&hub, PUBLISHERS, EACH);
    // Several subscribers resume from the same cursor while publishing goes on.
    let mut resumed = Vec::new();
    for _ in 0..5 {
        resumed.push(hub.subscribe(&q, &[("last-event-id", &first[9])]).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for p in publishers {
        p.await.unwrap();
    }
    let total = 20 + PUBLISHERS * EACH;
    let order = ids(&reference.take(total).await);
    for sub in &mut resumed {
        assert_eq!(ids(&sub.take(total - 10).await), &order[10..]);
        sub.assert_silent(SHORT).await;
    }
}

#[tokio::test]
async fn heartbeats_keep_idle_streams_alive() {
    let hub = TestHub::start(|o| o.stream.heartbeat = Some("100ms".parse().unwrap())).await;
    let mut sub = hub.subscribe_topics(&["urn:idle"], &[]).await;
    sub.assert_silent(Duration::from_millis(550)).await;
    assert!(
        sub.comments() >= 3,
        "open comment plus heartbeats, saw {}",
        sub.comments()
    );
    assert!(sub.is_open());
}

/// A subscriber that stops reading is disconnected once its queue is full;
/// the others keep receiving everything and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_dropped_without_slowing_others() {
    let hub = TestHub::start(|o| o.limits.queue_size = Some(8)).await;
    let stalled = hub.subscribe_topics(&["urn:flood"], &[]).await;
    let mut healthy = hub.subscribe_topics(&["urn:flood"], &[]).await;
    let fanout = &hub.running.as_ref().unwrap().hub.fanout;
    assert_eq!(fanout.len(), 2);
    let payload = "x".repeat(64 * 1024);
    // Enough bytes to fill the stalled socket's kernel buffers and its queue.
    let mut published = 0;
    while fanout.len() == 2 {
        assert!(published < 2000, "the stalled subscriber was never dropped");
        hub.publish_ok(&[("topic", "urn:flood"), ("data", &payload)])
            .await;
        published += 1;
        let e = healthy.next().await;
        assert_eq!(e.data.len(), payload.len());
    }
    assert_eq!(fanout.len(), 1, "only the stalled subscriber was dropped");
    let mut stalled = stalled;
    stalled.assert_ends_within(Duration::from_secs(30)).await;
    assert!(healthy.is_open());
}

#[tokio::test]
async fn shutdown_ends_streams_promptly() {
    let mut hub = TestHub::start(|o| o.server.shutdown_timeout = Some("2s".parse().unwrap())).await;
    let mut sub = hub.subscribe_topics(&["urn:x"], &[]).await;
    let started = std::time::Instant::now();
    hub.shutdown().await;
    sub.assert_ends_within(Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        reqwest::get(format!("{}/healthz", hub.base)).await.is_err(),
        "no longer accepting"
    );
}

/// GETs `url` with a bearer token if given.
async fn get(hub: &TestHub, url: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut req = hub.http.get(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// The next event's data as JSON.
async fn next_json(sub: &mut SseClient) -> serde_json::Value {
    serde_json::from_str(&sub.next().await.data).unwrap()
}

#[tokio::test]
async fn subscriptions_api_reports_and_announces() {
    let hub = TestHub::start(|o| o.stream.subscriptions = Some(true)).await;
    let watch_all = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let mut watcher = hub.subscribe_topics(&[watch_all], &[watch_all]).await;

    let own = next_json(&mut watcher).await;
    assert_eq!(
        own["topic"], watch_all,
        "the watcher sees its own subscription first"
    );
    let mut sub = hub.subscribe_topics(&["https://example.com/a"], &[]).await;
    let doc = next_json(&mut watcher).await;
    assert_eq!(doc["type"], "Subscription");
    assert_eq!(doc["topic"], "https://example.com/a");
    assert_eq!(doc["active"], true);
    let subscriber = doc["subscriber"].as_str().unwrap().to_string();
    assert!(doc["id"]
        .as_str()
        .unwrap()
        .starts_with("/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa/"));

    let list_token = token(
        &[],
        &["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
        None,
    );
    let list_url = format!("{}/.well-known/mercure/subscriptions", hub.base);
    let list: serde_json::Value = get(&hub, &list_url, Some(&list_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["type"], "Subscriptions");
    let topics: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["topic"].as_str().unwrap())
        .collect();
    assert!(topics.contains(&"https://example.com/a"), "{list}");

    let one_url = format!("{}{}", hub.base, doc["id"].as_str().unwrap());
    let one = get(&hub, &one_url, Some(&list_token)).await;
    assert_eq!(one.status(), StatusCode::OK);
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(one["subscriber"], subscriber.as_str());

    let denied = get(&hub, &one_url, Some(&token(&[], &["urn:else"], None))).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let anonymous = get(&hub, &one_url, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    sub.assert_silent(Duration::from_millis(50)).await;
    drop(sub);
    let inactive = next_json(&mut watcher).await;
    assert_eq!(inactive["active"], false);
    assert_eq!(inactive["subscriber"], subscriber.as_str());
    let gone = get(&hub, &one_url, Some(&list_token)).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn subscription_events_are_private() {
    let hub = TestHub::start(|o| {
        o.stream.subscriptions = Some(true);
        o.access.anonymous = Some(true);
    })
    .await;
    let mut nosy = hub.subscribe(&topic_query(&["*"]), &[]).await;
    let _sub = hub.subscribe_topics(&["urn:a"], &[]).await;
    nosy.assert_silent(SHORT).await;
}

/// Reads a whole HTTP/1.1 response to `request` from a raw socket (the hub
/// closes the connection after an error).
async fn raw_exchange(hub: &TestHub, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .expect("the hub closes the connection after an error")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn refused_subscription_has_one_framing_header() {
    let hub = TestHub::default().await;
    // No token and no --anonymous: 401, answered on the streaming path.
    let response = raw_exchange(
        &hub,
        "GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let named = |name: &str| {
        head.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(name))
            .collect::<Vec<_>>()
    };
    let lengths = named("content-length:");
    assert_eq!(lengths.len(), 1, "one content-length in {head:?}");
    assert_eq!(lengths[0][15..].trim(), body.len().to_string());
    assert_eq!(named("connection:").len(), 1, "{head:?}");
    assert!(named("transfer-encoding:").is_empty(), "{head:?}");
    assert!(!body.is_empty(), "the error says what is wrong");
}
