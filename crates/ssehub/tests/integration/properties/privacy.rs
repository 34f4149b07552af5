//! Privacy: no private update reaches a subscriber whose token does not
//! allow it, and every update a subscriber is entitled to reaches it, live
//! or replayed, on one node and on two nodes sharing a Redis stream.
//!
//! Each case draws updates (a canonical topic, alternates, private or not,
//! published with a token of either generation on either node) and
//! subscribers (0.x `topic=` selectors or 1.0 `match=` / `match_urlpattern=`
//! matchers; an anonymous, a 0.x `mercure` claim or a 1.0 `at+jwt` token
//! with its own matchers; connected before the updates or replaying them
//! after with `Last-Event-ID`). Topics and matchers are drawn from
//! [`Shape`]s whose matching this file computes itself, so the expected
//! deliveries do not come from the hub's matchers: each subscriber must
//! receive exactly the updates the rule allows, in publish order, before a
//! public fence update that every subscriber asks for.

use std::cell::Cell;

use proptest::collection::vec;
use proptest::prelude::*;

use super::{check, ids_until, publish, runtime};
use crate::common::redis::Redis;
use crate::common::v1::{self, access_token, claims};
use crate::common::{heavy, publisher_token, token, SseClient, TestHub};
use crate::redis_store::hub_on;

/// The hosts, kinds and numbers of the eight topics of a case: a topic is
/// `https://HOST/NAMESPACE/KIND/NUMBER`.
const HOSTS: [&str; 2] = ["example.com", "other.example"];
const KINDS: [&str; 2] = ["books", "users"];
const NUMBERS: [&str; 2] = ["1", "2"];

/// One of the eight topics of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Topic {
    host: usize,
    kind: usize,
    number: usize,
}

impl Topic {
    fn url(self, ns: &str) -> String {
        format!(
            "https://{}/{ns}/{}/{}",
            HOSTS[self.host], KINDS[self.kind], NUMBERS[self.number]
        )
    }
}

/// What a matcher selects among the topics of a case, whatever its syntax.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `*`.
    Every,
    /// One topic; in 1.0, `pattern` writes it as a URL pattern without
    /// wildcards instead of an exact matcher.
    Exact { topic: Topic, pattern: bool },
    /// Every number of one host and kind.
    Kind { host: usize, kind: usize },
    /// Every kind of one host and number.
    Number { host: usize, number: usize },
    /// Every topic of one host.
    Host { host: usize },
}

impl Shape {
    /// The reference matcher.
    fn matches(self, t: Topic) -> bool {
        match self {
            Shape::Every => true,
            Shape::Exact { topic, .. } => topic == t,
            Shape::Kind { host, kind } => t.host == host && t.kind == kind,
            Shape::Number { host, number } => t.host == host && t.number == number,
            Shape::Host { host } => t.host == host,
        }
    }

    /// The 0.x selector: `*`, the topic itself, or an RFC 6570 template.
    fn selector(self, ns: &str) -> String {
        match self {
            Shape::Every => "*".into(),
            Shape::Exact { topic, .. } => topic.url(ns),
            Shape::Kind { host, kind } => {
                format!("https://{}/{ns}/{}/{{id}}", HOSTS[host], KINDS[kind])
            }
            Shape::Number { host, number } => {
                format!("https://{}/{ns}/{{kind}}/{}", HOSTS[host], NUMBERS[number])
            }
            Shape::Host { host } => format!("https://{}/{ns}/{{kind}}/{{id}}", HOSTS[host]),
        }
    }

    /// The 1.0 matcher: its type (`exact`, `urlpattern`) and text.
    fn matcher(self, ns: &str) -> (&'static str, String) {
        match self {
            Shape::Every => ("exact", "*".into()),
            Shape::Exact { topic, pattern } => {
                (if pattern { "urlpattern" } else { "exact" }, topic.url(ns))
            }
            Shape::Kind { host, kind } => (
                "urlpattern",
                format!("https://{}/{ns}/{}/:id", HOSTS[host], KINDS[kind]),
            ),
            Shape::Number { host, number } => (
                "urlpattern",
                format!("https://{}/{ns}/:kind/{}", HOSTS[host], NUMBERS[number]),
            ),
            Shape::Host { host } => ("urlpattern", format!("https://{}/{ns}/*", HOSTS[host])),
        }
    }
}

/// The token a subscriber presents.
#[derive(Debug, Clone)]
enum Grant {
    /// No token (the hubs allow anonymous subscribers).
    Anonymous,
    /// A 0.x token whose `mercure.subscribe` holds these selectors.
    Legacy(Vec<Shape>),
    /// A 1.0 access token with one `subscribe` detail of these matchers
    /// (none: no detail at all).
    V1(Vec<Shape>),
}

impl Grant {
    fn shapes(&self) -> &[Shape] {
        match self {
            Grant::Anonymous => &[],
            Grant::Legacy(shapes) | Grant::V1(shapes) => shapes,
        }
    }

    /// The bearer token for the hub at `aud`, if any.
    fn token(&self, ns: &str, aud: &str) -> Option<String> {
        match self {
            Grant::Anonymous => None,
            Grant::Legacy(shapes) => {
                let selectors: Vec<String> = shapes.iter().map(|s| s.selector(ns)).collect();
                let selectors: Vec<&str> = selectors.iter().map(String::as_str).collect();
                Some(token(&[], &selectors, None))
            }
            Grant::V1(shapes) if shapes.is_empty() => Some(access_token(&claims(aud, &[]))),
            Grant::V1(shapes) => {
                let matchers: Vec<(&str, String)> = shapes.iter().map(|s| s.matcher(ns)).collect();
                let matchers: Vec<(&str, &str)> =
                    matchers.iter().map(|(k, m)| (*k, m.as_str())).collect();
                Some(v1::subscriber(aud, &matchers))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Subscriber {
    /// A 1.0 request (`match=`, `match_urlpattern=`) rather than `topic=`.
    v1_request: bool,
    topics: Vec<Shape>,
    grant: Grant,
    /// Which node it connects to (modulo the number of nodes).
    node: usize,
    /// Connects after the updates and replays them from the start marker.
    replays: bool,
}

impl Subscriber {
    /// The reference rule: some topic of the update matches a subscribed
    /// matcher and, if the update is private, some topic (not necessarily
    /// the same) matches a matcher of the token.
    fn entitled(&self, update: &Update) -> bool {
        let any = |shapes: &[Shape]| {
            update
                .topics
                .iter()
                .any(|t| shapes.iter().any(|s| s.matches(*t)))
        };
        any(&self.topics) && (!update.private || any(self.grant.shapes()))
    }

    /// The query string: its matchers, and the case's fence topic.
    fn query(&self, ns: &str, fence: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for shape in &self.topics {
            if self.v1_request {
                let (kind, text) = shape.matcher(ns);
                let param = if kind == "exact" {
                    "match"
                } else {
                    "match_urlpattern"
                };
                query.append_pair(param, &text);
            } else {
                query.append_pair("topic", &shape.selector(ns));
            }
        }
        query.append_pair(if self.v1_request { "match" } else { "topic" }, fence);
        query.finish()
    }
}

#[derive(Debug, Clone)]
struct Update {
    /// The canonical topic first, then the alternates; no repeats.
    topics: Vec<Topic>,
    private: bool,
    /// Published with a 1.0 access token rather than a 0.x token.
    v1_publisher: bool,
    /// Which node it is published on (modulo the number of nodes).
    node: usize,
}

#[derive(Debug, Clone)]
struct Case {
    updates: Vec<Update>,
    subscribers: Vec<Subscriber>,
    fence_node: usize,
}

fn topic() -> impl Strategy<Value = Topic> {
    (0..2usize, 0..2usize, 0..2usize).prop_map(|(host, kind, number)| Topic { host, kind, number })
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        1 => Just(Shape::Every),
        4 => (topic(), any::<bool>()).prop_map(|(topic, pattern)| Shape::Exact { topic, pattern }),
        2 => (0..2usize, 0..2usize).prop_map(|(host, kind)| Shape::Kind { host, kind }),
        2 => (0..2usize, 0..2usize).prop_map(|(host, number)| Shape::Number { host, number }),
        1 => (0..2usize).prop_map(|host| Shape::Host { host }),
    ]
}

fn grant() -> impl Strategy<Value = Grant> {
    prop_oneof![
        1 => Just(Grant::Anonymous),
        2 => vec(shape(), 0..=3).prop_map(Grant::Legacy),
        2 => vec(shape(), 0..=3).prop_map(Grant::V1),
    ]
}

fn subscriber() -> impl Strategy<Value = Subscriber> {
    (
        any::<bool>(),
        vec(shape(), 1..=3),
        grant(),
        0..2usize,
        any::<bool>(),
    )
        .prop_map(|(v1_request, topics, grant, node, replays)| Subscriber {
            v1_request,
            topics,
            grant,
            node,
            replays,
        })
}

fn update() -> impl Strategy<Value = Update> {
    (
        vec(topic(), 1..=3),
        prop::bool::weighted(0.7),
        any::<bool>(),
        0..2usize,
    )
        .prop_map(|(mut topics, private, v1_publisher, node)| {
            let mut seen = Vec::new();
            topics.retain(|t| {
                let new = !seen.contains(t);
                seen.push(*t);
                new
            });
            Update {
                topics,
                private,
                v1_publisher,
                node,
            }
        })
}

fn case() -> impl Strategy<Value = Case> {
    (vec(update(), 1..=6), vec(subscriber(), 1..=5), 0..2usize).prop_map(
        |(updates, subscribers, fence_node)| Case {
            updates,
            subscribers,
            fence_node,
        },
    )
}

/// The hubs a case runs on, and a fresh namespace per case (cases share
/// the hubs, and a shrinking run repeats cases).
struct Hubs<'a> {
    nodes: &'a [TestHub],
    cases: Cell<u32>,
}

impl Hubs<'_> {
    fn node(&self, i: usize) -> &TestHub {
        &self.nodes[i % self.nodes.len()]
    }

    /// Publishes `form` on node `node` with a token of the chosen generation.
    async fn publish(&self, node: usize, v1_publisher: bool, form: &[(&str, &str)]) -> String {
        let hub = self.node(node);
        let token = if v1_publisher {
            v1::publisher(&hub.url())
        } else {
            publisher_token()
        };
        publish(&hub.http, &hub.url(), &token, form).await
    }

    /// Opens `sub`'s stream from the case's start marker `start`: a
    /// subscriber connected before the updates replays nothing, but the
    /// marker, which `*` matches, may still be dispatched after it
    /// connected, and is then skipped.
    async fn open(&self, sub: &Subscriber, ns: &str, fence: &str, start: &str) -> SseClient {
        let hub = self.node(sub.node);
        let mut headers = vec![("last-event-id", start.to_string())];
        if let Some(token) = sub.grant.token(ns, &hub.url()) {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let client = hub.subscribe(&sub.query(ns, fence), &headers).await;
        assert_eq!(
            client.status,
            reqwest::StatusCode::OK,
            "subscribing {sub:?}"
        );
        client
    }

    /// Runs one case: every subscriber receives exactly what it is
    /// entitled to, in publish order.
    async fn run(&self, case: &Case) {
        let n = self.cases.get();
        self.cases.set(n + 1);
        let ns = format!("p{n}");
        let fence = format!("urn:{ns}:fence");
        let start = format!("{ns}-start");
        let start_topic = format!("urn:{ns}:start");
        self.publish(0, false, &[("topic", &start_topic), ("id", &start)])
            .await;

        let mut live = Vec::new();
        for sub in case.subscribers.iter().filter(|s| !s.replays) {
            live.push((sub, self.open(sub, &ns, &fence, &start).await));
        }
        for (i, update) in case.updates.iter().enumerate() {
            let urls: Vec<String> = update.topics.iter().map(|t| t.url(&ns)).collect();
            let id = format!("{ns}-u{i}");
            let mut form: Vec<(&str, &str)> = urls.iter().map(|u| ("topic", u.as_str())).collect();
            form.push(("id", &id));
            form.push(("data", "x"));
            if update.private {
                form.push(("private", "on"));
            }
            self.publish(update.node, update.v1_publisher, &form).await;
        }
        let mut streams = live;
        for sub in case.subscribers.iter().filter(|s| s.replays) {
            streams.push((sub, self.open(sub, &ns, &fence, &start).await));
        }
        let fence_id = format!("{ns}-fence");
        self.publish(
            case.fence_node,
            false,
            &[("topic", &fence), ("id", &fence_id)],
        )
        .await;

        for (sub, stream) in &mut streams {
            let got = ids_until(stream, &fence_id, &format!("{sub:?}")).await;
            let want: Vec<String> = case
                .updates
                .iter()
                .enumerate()
                .filter(|(_, u)| sub.entitled(u))
                .map(|(i, _)| format!("{ns}-u{i}"))
                .collect();
            assert_eq!(got, want, "subscriber {sub:?}");
        }
    }
}

/// Runs [`case`]s on `nodes`, driven by `rt`.
fn check_on(name: &str, rt: &tokio::runtime::Runtime, nodes: &[TestHub], default_cases: u32) {
    let hubs = Hubs {
        nodes,
        cases: Cell::new(0),
    };
    check(name, default_cases, case(), |case| {
        rt.block_on(hubs.run(&case));
        Ok(())
    });
}

/// 64 cases by default (about 10 s here; `PROPTEST_CASES=N` runs N).
#[test]
fn private_updates_reach_exactly_the_entitled_on_one_node() {
    let rt = runtime();
    let mut hub = rt.block_on(TestHub::start(|o| o.access.anonymous = Some(true)));
    check_on("privacy on one node", &rt, std::slice::from_ref(&hub), 64);
    rt.block_on(hub.shutdown());
}

/// 32 cases by default (about 5 s here; `PROPTEST_CASES=N` runs N); takes a heavy-test permit.
#[test]
fn private_updates_reach_exactly_the_entitled_on_two_nodes_on_redis() {
    let rt = runtime();
    let _permit = rt.block_on(heavy());
    let redis = Redis::start();
    let mut nodes = rt.block_on(async {
        let anonymous = |o: &mut ssehub::config::Options| o.access.anonymous = Some(true);
        [
            hub_on(&redis.url(), anonymous).await,
            hub_on(&redis.url(), anonymous).await,
        ]
    });
    check_on("privacy on two nodes", &rt, &nodes, 32);
    rt.block_on(async {
        for node in &mut nodes {
            node.shutdown().await;
        }
    });
}
