//! The hub's `ssehub_matched=1` extension: each event of the stream that
//! asked for it ends with one `matched:` line per selector of that stream
//! through which it receives the event, replayed and live, in both
//! generations; private updates name only selectors that authorize them;
//! every other stream keeps the shared frame, byte for byte.

use std::time::Duration;

use reqwest::StatusCode;
use ssehub::proto::sse::{encode_event, EventFields};

use crate::common::v1;
use crate::common::*;
use crate::mercure_v1::{bearer, query};

const BOOKS: &str = "https://example.com/books/{id}";
const BOOK_1: &str = "https://example.com/books/1";
const BOOK_2: &str = "https://example.com/books/2";
const ALICE: &str = "https://example.com/users/alice/inbox";
const BOB: &str = "https://example.com/users/bob/inbox";
const ANY_INBOX: &str = "https://example.com/users/{user}/inbox";

/// How long a test waits for one frame.
const WAIT: Duration = Duration::from_secs(5);

/// An event stream read as raw text, one frame (up to its blank line) at a
/// time, comments (the open comment, heartbeats) skipped.
struct RawFrames {
    res: reqwest::Response,
    text: String,
}

impl RawFrames {
    /// Opens `query` with `headers`, which must be answered 200.
    async fn open(hub: &TestHub, query: &str, headers: &[(&str, String)]) -> RawFrames {
        let mut req = hub.http.get(format!("{}?{query}", hub.url()));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "subscribing with {query}");
        RawFrames {
            res,
            text: String::new(),
        }
    }

    /// The first frame, which must be `comment`.
    async fn opens_with(mut self, comment: &str) -> RawFrames {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.text.contains("\n\n") {
            self.read(deadline).await;
        }
        assert!(self.text.starts_with(comment), "{:?}", self.text);
        self.text.drain(..comment.len());
        self
    }

    /// Reads one chunk of the body.
    async fn read(&mut self, deadline: tokio::time::Instant) {
        let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
            .await
            .expect("a frame within 5 s")
            .unwrap()
            .expect("the stream goes on");
        self.text.push_str(std::str::from_utf8(&chunk).unwrap());
    }

    /// The next event frame, its blank line included.
    async fn next(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let frame: String = self.text.drain(..end + 2).collect();
                if !frame.starts_with(':') {
                    return frame;
                }
            }
            self.read(deadline).await;
        }
    }
}

/// The shared frame of an update with `id` and `data` (no type, no retry).
fn shared(id: &str, data: &str) -> String {
    let frame = encode_event(&EventFields {
        id,
        event_type: None,
        retry: None,
        data,
    });
    String::from_utf8(frame.to_vec()).unwrap()
}

/// The shared frame followed by `matched` lines for `selectors`.
fn named(id: &str, data: &str, selectors: &[&str]) -> String {
    let mut frame = shared(id, data);
    frame.pop();
    for selector in selectors {
        frame.push_str(&format!("matched: {selector}\n"));
    }
    frame.push('\n');
    frame
}

/// `Authorization` with a 0.x token receiving the private updates of `allowed`.
fn legacy_bearer(allowed: &[&str]) -> (&'static str, String) {
    bearer(&token(&[], allowed, None))
}

#[tokio::test]
async fn topics_and_templates_are_named_replayed_and_live_and_other_streams_are_untouched() {
    let hub = TestHub::default().await;
    hub.publish_ok(&[("topic", BOOK_1), ("data", "one"), ("id", "e1")])
        .await;
    let selectors = [BOOKS, BOOK_1, "urn:other"];
    let auth = legacy_bearer(&[]);
    let earliest = ("last-event-id", "earliest".to_string());
    let opted = RawFrames::open(
        &hub,
        &format!("{}&ssehub_matched=1", topic_query(&selectors)),
        &[auth.clone(), earliest.clone()],
    )
    .await;
    let mut plain = RawFrames::open(&hub, &topic_query(&selectors), &[auth, earliest])
        .await
        .opens_with(":\n\n")
        .await;
    let mut opted = opted.opens_with(":ssehub_matched\n\n").await;

    assert_eq!(opted.next().await, named("e1", "one", &[BOOKS, BOOK_1]));
    hub.publish_ok(&[("topic", BOOK_2), ("data", "two"), ("id", "e2")])
        .await;
    hub.publish_ok(&[
        ("topic", "urn:other"),
        ("topic", BOOK_1),
        ("data", "three"),
        ("id", "e3"),
    ])
    .await;
    assert_eq!(opted.next().await, named("e2", "two", &[BOOKS]));
    assert_eq!(
        opted.next().await,
        named("e3", "three", &[BOOKS, BOOK_1, "urn:other"]),
        "every selector matching a topic, alternate ones included, in request order"
    );
    for (id, data) in [("e1", "one"), ("e2", "two"), ("e3", "three")] {
        assert_eq!(plain.next().await, shared(id, data), "the shared frame");
    }
}

#[tokio::test]
async fn mercure_1_matchers_are_named_as_sent() {
    let hub = TestHub::default().await;
    let pattern = "https://example.com/books/:id";
    let auth = bearer(&v1::subscriber(&hub.url(), &[("exact", "*")]));
    let mut opted = RawFrames::open(
        &hub,
        &query(&[
            ("match", "urn:a"),
            ("match_urlpattern", pattern),
            ("match_exact", BOOK_1),
            ("ssehub_matched", "1"),
        ]),
        &[auth],
    )
    .await;
    hub.publish_ok(&[("topic", BOOK_2), ("data", "two"), ("id", "e1")])
        .await;
    hub.publish_ok(&[("topic", "urn:a"), ("data", "a"), ("id", "e2")])
        .await;
    hub.publish_ok(&[("topic", BOOK_1), ("data", "one"), ("id", "e3")])
        .await;
    assert_eq!(opted.next().await, named("e1", "two", &[pattern]));
    assert_eq!(opted.next().await, named("e2", "a", &["urn:a"]));
    assert_eq!(opted.next().await, named("e3", "one", &[pattern, BOOK_1]));
}

#[tokio::test]
async fn a_private_update_names_only_the_selectors_that_authorize_it() {
    let hub = TestHub::default().await;
    // Alice's message to Bob goes to both inboxes; Bob's token grants his.
    let message = |id| {
        [
            ("topic", ALICE),
            ("topic", BOB),
            ("private", "on"),
            ("data", "hi"),
            ("id", id),
        ]
    };
    hub.publish_ok(&message("p1")).await;
    let bob = legacy_bearer(&["https://example.com/users/bob/{any}"]);
    let earliest = ("last-event-id", "earliest".to_string());
    let all = [ALICE, BOB, ANY_INBOX];
    let mut legacy = RawFrames::open(
        &hub,
        &format!("{}&ssehub_matched=1", topic_query(&all)),
        &[bob.clone(), earliest.clone()],
    )
    .await;
    // Received through Bob's inbox, but this stream did not ask for it.
    let mut only_alice = RawFrames::open(
        &hub,
        &format!("{}&ssehub_matched=1", topic_query(&[ALICE])),
        &[bob, earliest.clone()],
    )
    .await;
    let v1_bob = bearer(&v1::subscriber(
        &hub.url(),
        &[("urlpattern", "https://example.com/users/bob/*")],
    ));
    let mut v1 = RawFrames::open(
        &hub,
        &query(&[
            ("match", ALICE),
            ("match_urlpattern", "https://example.com/users/:user/inbox"),
            ("ssehub_matched", "1"),
        ]),
        &[v1_bob, earliest],
    )
    .await;

    hub.publish_ok(&message("p2")).await;
    for id in ["p1", "p2"] {
        assert_eq!(legacy.next().await, named(id, "hi", &[BOB, ANY_INBOX]));
        assert_eq!(only_alice.next().await, named(id, "hi", &[]));
        assert_eq!(
            v1.next().await,
            named(id, "hi", &["https://example.com/users/:user/inbox"])
        );
    }
}

#[tokio::test]
async fn other_values_and_line_breaks_are_refused() {
    let hub = TestHub::start(|o| o.access.anonymous = Some(true)).await;
    for refused in [
        "topic=urn%3Aa&ssehub_matched=yes",
        "topic=urn%3Aa&ssehub_matched=",
        "topic=urn%3Aa%0Amatched%3A+x&ssehub_matched=1",
        "match=urn%3Aa%0D&ssehub_matched=1",
    ] {
        let sub = hub.subscribe(refused, &[]).await;
        assert_eq!(sub.status, StatusCode::BAD_REQUEST, "{refused}");
    }
}
