//! Subscribing: selectors, framing on the wire, replay, privacy, expiry.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn delivers_exact_topic_with_framing() {
    let hub = TestHub::default().await;
    let mut sub = hub
        .subscribe_topics(&["https://example.com/books/1"], &[])
        .await;
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    assert_eq!(sub.headers["cache-control"], "no-cache");
    assert_eq!(sub.headers["x-accel-buffering"], "no");
    let id = hub
        .publish_ok(&[
            ("topic", "https://example.com/books/1"),
            ("data", "a\r\nb\rc\nd"),
            ("type", "upd"),
            ("retry", "1500"),
        ])
        .await;
    let e = sub.next().await;
    assert_eq!(
        (
            e.event_type.as_str(),
            e.data.as_str(),
            e.last_event_id.as_str()
        ),
        ("upd", "a\nb\nc\nd", id.as_str())
    );
}
