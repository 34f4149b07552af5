//! Resuming by time (`since=`) and by count (`rewind=`), in both protocol
//! generations, on the memory, disk and Redis stores: what is replayed,
//! the `Last-Event-ID` the response reports, the cursor winning, evicted
//! and future times, refused values, and publishes racing the replay.

use std::time::{Duration, UNIX_EPOCH};

use crate::common::redis::Redis;
use crate::common::*;
use crate::mercure_v1::query_method;
use crate::redis_store::hub_on;
use crate::subscribe::{ids, publish_n, race_publishers, SHORT};
use reqwest::StatusCode;

/// Milliseconds since the Unix epoch, between two pauses, so that what is
/// published before and after falls in different milliseconds.
async fn instant_between() -> u64 {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let at = ssehub::clock::unix_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    at
}

/// `unix_ms` as RFC 3339 (UTC, milliseconds), percent-encoded for a query.
fn rfc3339(unix_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms);
    let text = humantime::format_rfc3339_millis(time).to_string();
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Opens `query` anonymously; asserts 200 and that the response reports
/// `reported` as its cursor, in both headers.
async fn open_reporting(hub: &TestHub, query: &str, reported: &str) -> SseClient {
    open_with(hub, query, &[], reported).await
}

/// [`open_reporting`] with request headers.
async fn open_with(
    hub: &TestHub,
    query: &str,
    headers: &[(&str, &str)],
    reported: &str,
) -> SseClient {
    let sub = hub.subscribe(query, headers).await;
    assert_eq!(sub.status, StatusCode::OK, "{query}");
    assert_eq!(sub.headers["last-event-id"], reported, "{query}");
    assert_eq!(sub.headers["mercure-last-event-id"], reported, "{query}");
    sub
}

/// Asserts that `sub` replays exactly `want`, then nothing.
async fn assert_replays(sub: &mut SseClient, want: &[String]) {
    assert_eq!(ids(&sub.take(want.len()).await), want);
    sub.assert_silent(SHORT).await;
}

/// `since=` as Unix milliseconds (0.x `topic=`) and as RFC 3339 (1.0
/// `match=`): the updates from that time on, the response naming the one
/// before; a time before everything replays it all as `earliest`; a time
/// in the future replays nothing and goes live.
async fn check_since(hub: &TestHub) {
    let start = instant_between().await;
    let old = publish_n(hub, "urn:s", 3).await;
    let between = instant_between().await;
    let new = publish_n(hub, "urn:s", 3).await;
    let elsewhere = publish_n(hub, "urn:elsewhere", 1).await;
    for query in [
        format!("topic=urn:s&since={between}"),
        format!("match=urn:s&since={}", rfc3339(between)),
    ] {
        let mut sub = open_reporting(hub, &query, &old[2]).await;
        assert_replays(&mut sub, &new).await;
    }
    let all = [old, new].concat();
    for query in [
        format!("match=urn:s&since={start}"),
        format!("topic=urn:s&since={}", rfc3339(start)),
    ] {
        let mut sub = open_reporting(hub, &query, "earliest").await;
        assert_replays(&mut sub, &all).await;
    }
    let future = instant_between().await + 3_600_000;
    let mut sub = open_reporting(hub, &format!("topic=urn:s&since={future}"), &elsewhere[0]).await;
    sub.assert_silent(SHORT).await;
    let live = publish_n(hub, "urn:s", 1).await;
    assert_replays(&mut sub, &live).await;
}

#[tokio::test]
async fn since_on_the_memory_and_disk_stores() {
    for store in ["memory", "disk"] {
        let hub = TestHub::anonymous_on(store).await;
        check_since(&hub).await;
    }
}

#[tokio::test]
async fn since_on_the_redis_store() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| o.access.anonymous = Some(true)).await;
    check_since(&hub).await;
}

/// The disk log finds times again after a restart, from its records.
#[tokio::test]
async fn since_across_a_disk_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf| {
        TestHub::start(move |o| {
            o.access.anonymous = Some(true);
            o.keys.data_dir = Some(dir);
        })
    };
    let mut hub = start(dir.path().to_path_buf()).await;
    let old = publish_n(&hub, "urn:s", 3).await;
    let between = instant_between().await;
    let new = publish_n(&hub, "urn:s", 3).await;
    hub.shutdown().await;
    let hub = start(dir.path().to_path_buf()).await;
    let mut sub = open_reporting(&hub, &format!("topic=urn:s&since={between}"), &old[2]).await;
    assert_replays(&mut sub, &new).await;
}

/// A time whose updates left the history is answered like an evicted
/// cursor: everything retained, reported as `earliest`.
#[tokio::test]
async fn an_evicted_time_replays_what_is_retained_as_earliest() {
    for store in ["memory", "disk"] {
        let hub = TestHub::start(|o| {
            o.access.anonymous = Some(true);
            o.history.store = Some(store.into());
            o.history.history_size = Some(3);
        })
        .await;
        publish_n(&hub, "urn:s", 1).await;
        let after_first = instant_between().await;
        let rest = publish_n(&hub, "urn:s", 4).await;
        let mut sub = open_reporting(
            &hub,
            &format!("topic=urn:s&since={after_first}"),
            "earliest",
        )
        .await;
        assert_replays(&mut sub, &rest[1..]).await;
    }
}

/// On Redis, a time whose update before it expired (`--history-ttl`) is
/// answered the same way, even before the expired entries are trimmed.
#[tokio::test]
async fn an_evicted_time_on_redis_replays_what_is_retained_as_earliest() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| {
        o.access.anonymous = Some(true);
        o.history.history_ttl = Some("1s".parse().unwrap());
    })
    .await;
    publish_n(&hub, "urn:s", 1).await;
    let after_first = instant_between().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let query = format!("topic=urn:s&since={after_first}");
    let mut sub = open_reporting(&hub, &query, "earliest").await;
    sub.assert_silent(SHORT).await;
    let rest = publish_n(&hub, "urn:s", 2).await;
    let mut sub = open_reporting(&hub, &query, "earliest").await;
    assert_replays(&mut sub, &rest).await;
}

/// Publishes `(topic, private)` updates in order; returns their ids.
async fn publish_mix(hub: &TestHub, updates: &[(&str, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    for (topic, private) in updates {
        let mut form = vec![("topic", *topic), ("data", "x")];
        if *private {
            form.push(("private", "on"));
        }
        out.push(hub.publish_ok(&form).await);
    }
    out
}

/// `rewind=N` counts only the updates the stream receives: its matchers'
/// topics, private ones only when the token grants them; in both
/// generations; N beyond the history replays it all as `earliest`;
/// `rewind=0` starts after the newest update.
async fn check_rewind(hub: &TestHub) {
    let sent = publish_mix(
        hub,
        &[
            ("urn:a", false), // 0
            ("urn:b", false), // 1
            ("urn:a", true),  // 2
            ("urn:a", false), // 3
            ("urn:b", false), // 4
            ("urn:a", true),  // 5
            ("urn:a", false), // 6
            ("urn:b", false), // 7
        ],
    )
    .await;
    let pick = |i: &[usize]| i.iter().map(|&i| sent[i].clone()).collect::<Vec<_>>();
    // Anonymous: the private updates are neither sent nor counted.
    for query in ["topic=urn:a&rewind=2", "match=urn:a&rewind=2"] {
        let mut sub = open_reporting(hub, query, &sent[2]).await;
        assert_replays(&mut sub, &pick(&[3, 6])).await;
    }
    let granted = format!("Bearer {}", token(&[], &["urn:a"], None));
    let mut sub = open_with(
        hub,
        "topic=urn:a&rewind=2",
        &[("authorization", &granted)],
        &sent[4],
    )
    .await;
    assert_replays(&mut sub, &pick(&[5, 6])).await;
    let mut sub = open_reporting(hub, "match=urn:b&match=urn:a&rewind=4", &sent[2]).await;
    assert_replays(&mut sub, &pick(&[3, 4, 6, 7])).await;
    for query in ["topic=urn:a&rewind=100", "match=urn:a&rewind=100"] {
        let mut sub = open_reporting(hub, query, "earliest").await;
        assert_replays(&mut sub, &pick(&[0, 3, 6])).await;
    }
    let mut sub = open_reporting(hub, "topic=urn:a&rewind=0", &sent[7]).await;
    sub.assert_silent(SHORT).await;
    let live = publish_n(hub, "urn:a", 1).await;
    assert_replays(&mut sub, &live).await;
}

#[tokio::test]
async fn rewind_counts_what_the_stream_receives_on_memory_and_disk() {
    for store in ["memory", "disk"] {
        let hub = TestHub::anonymous_on(store).await;
        check_rewind(&hub).await;
    }
}

#[tokio::test]
async fn rewind_counts_what_the_stream_receives_on_redis() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| o.access.anonymous = Some(true)).await;
    check_rewind(&hub).await;
}

/// A cursor, header or query parameter, wins over `since` and `rewind`;
/// with `QUERY`, they may come in the body.
#[tokio::test]
async fn the_cursor_wins_and_query_bodies_carry_them() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    let sent = publish_n(&hub, "urn:s", 4).await;
    let since = instant_between().await;
    let mut header = open_with(
        &hub,
        "topic=urn:s&rewind=1",
        &[("last-event-id", &sent[1])],
        &sent[1],
    )
    .await;
    assert_replays(&mut header, &sent[2..]).await;
    let mut query = open_reporting(
        &hub,
        &format!("match=urn:s&since={since}&last_event_id={}", sent[0]),
        &sent[0],
    )
    .await;
    assert_replays(&mut query, &sent[1..]).await;
    let mut body = query_method(&hub, "match=urn%3As", "rewind=2", &[]).await;
    assert_eq!(body.status, StatusCode::OK);
    assert_eq!(body.headers["last-event-id"], sent[1].as_str());
    assert_replays(&mut body, &sent[2..]).await;
}

#[tokio::test]
async fn bad_values_are_refused_with_what_is_wrong() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    for (query, says) in [
        ("topic=urn:s&since=yesterday", "RFC 3339"),
        ("topic=urn:s&since=2026-12-02", "RFC 3339"),
        ("match=urn:s&since=-5", "before 1970"),
        ("topic=urn:s&rewind=-1", "not negative"),
        ("match=urn:s&rewind=ten", "from 0 to 10000"),
        ("topic=urn:s&rewind=10001", "at most 10000"),
        ("topic=urn:s&since=5&rewind=5", "cannot be combined"),
    ] {
        let res = hub
            .http
            .get(format!("{}?{query}", hub.url()))
            .header("last-event-id", "earliest")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{query}: {body}");
    }
    hub.assert_no_subscriber_left("after refused requests")
        .await;
}

/// Publishers run while subscribers start from a time or a count: each
/// sees a contiguous run of the log's order up to its end, with no gap
/// and no duplicate between the replay and live updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_racing_the_replay_leave_no_gap_and_no_duplicate() {
    const PUBLISHERS: usize = 3;
    const EACH: usize = 100;
    let hub = std::sync::Arc::new(TestHub::start(|o| o.access.anonymous = Some(true)).await);
    let mut reference = hub.subscribe("topic=urn:race", &[]).await;
    publish_n(&hub, "urn:race", 20).await;
    let publishers = race_publishers(&hub, PUBLISHERS, EACH);
    let mut resumed = Vec::new();
    for i in 0..6 {
        let query = match i % 2 {
            0 => "topic=urn:race&rewind=10".to_string(),
            _ => format!("match=urn:race&since={}", ssehub::clock::unix_ms() - 5),
        };
        resumed.push(hub.subscribe(&query, &[]).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for p in publishers {
        p.await.unwrap();
    }
    let total = 20 + PUBLISHERS * EACH;
    let order = ids(&reference.take(total).await);
    for sub in &mut resumed {
        assert_eq!(sub.status, StatusCode::OK);
        let first = sub.next().await.last_event_id;
        let at = order.iter().position(|id| *id == first).unwrap();
        let rest = ids(&sub.take(total - at - 1).await);
        assert_eq!([vec![first], rest].concat(), &order[at..]);
        sub.assert_silent(SHORT).await;
    }
}
