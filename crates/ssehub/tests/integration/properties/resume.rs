//! Resume: whatever the interleaving of publishes, reads, and reconnects
//! with `Last-Event-ID` (some racing publishes), each subscriber receives
//! every update of its topics published after it first connected, once
//! and in publish order: no gap, no duplicate.
//!
//! A subscriber first connects with the id of the last update published
//! so far as its `Last-Event-ID`, so what it should receive starts at a
//! known place; each reconnect sends the id of the last event it read.
//! Reads take only events already published (they must come); at the end
//! a public fence update closes every stream's expected list.

use std::cell::Cell;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

use super::{check, ids_until, publish, runtime, WAIT};
use crate::common::redis::Redis;
use crate::common::remote::publish_batch_ok;
use crate::common::{heavy, publisher_token, SseClient, TestHub};
use crate::redis_store::hub_on;

/// Topics of a case: `https://example.com/NAMESPACE/tN`.
const TOPICS: usize = 3;

/// What a subscriber asks for.
#[derive(Debug, Clone, Copy)]
enum Selection {
    /// The topics whose bit is set (exact selectors).
    Exact(u8),
    /// Every topic of the case, through one URI template.
    Template,
    /// `*`.
    Every,
}

impl Selection {
    fn matches(self, topic: usize) -> bool {
        match self {
            Selection::Exact(mask) => mask & (1 << topic) != 0,
            Selection::Template | Selection::Every => true,
        }
    }

    fn selectors(self, ns: &str) -> Vec<String> {
        match self {
            Selection::Exact(mask) => (0..TOPICS)
                .filter(|t| mask & (1 << t) != 0)
                .map(|t| topic_url(ns, t))
                .collect(),
            Selection::Template => vec![format!("https://example.com/{ns}/{{topic}}")],
            Selection::Every => vec!["*".into()],
        }
    }
}

fn topic_url(ns: &str, topic: usize) -> String {
    format!("https://example.com/{ns}/t{topic}")
}

#[derive(Debug, Clone)]
enum Op {
    /// Publishes `count` updates on `topic` in one request (a JSON array
    /// when more than one).
    Publish { topic: usize, count: usize },
    /// Reads up to `count` of the events subscriber `sub` is owed.
    Read { sub: usize, count: usize },
    /// Closes subscriber `sub`'s stream (if open) and connects again on
    /// node `node`, while the updates on `racing` topics are published one
    /// by one.
    Reconnect {
        sub: usize,
        node: usize,
        racing: Vec<usize>,
    },
}

#[derive(Debug, Clone)]
struct Case {
    subscribers: Vec<Selection>,
    ops: Vec<Op>,
}

fn selection() -> impl Strategy<Value = Selection> {
    prop_oneof![
        4 => (1u8..(1 << TOPICS)).prop_map(Selection::Exact),
        1 => Just(Selection::Template),
        1 => Just(Selection::Every),
    ]
}

fn op(subscribers: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..TOPICS, 1..=3usize).prop_map(|(topic, count)| Op::Publish { topic, count }),
        2 => (0..subscribers, 1..=4usize).prop_map(|(sub, count)| Op::Read { sub, count }),
        2 => (0..subscribers, 0..2usize, vec(0..TOPICS, 0..=4))
            .prop_map(|(sub, node, racing)| Op::Reconnect { sub, node, racing }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    vec(selection(), 1..=3).prop_flat_map(|subscribers| {
        let n = subscribers.len();
        (Just(subscribers), vec(op(n), 1..=24))
            .prop_map(|(subscribers, ops)| Case { subscribers, ops })
    })
}

/// One subscriber while a case runs.
struct Client {
    selection: Selection,
    stream: Option<SseClient>,
    /// Index in the published list of the first update it is owed
    /// (`None` until it first connects).
    since: Option<usize>,
    /// Ids received so far, over every connection.
    received: Vec<String>,
    /// The `Last-Event-ID` of its next connection.
    cursor: String,
}

/// A running case: its namespace and what was published, in order.
struct Run<'a> {
    nodes: &'a [TestHub],
    ns: String,
    /// Ids and topics, in publish (log) order.
    published: Vec<(String, usize)>,
}

impl Run<'_> {
    fn node(&self, i: usize) -> &TestHub {
        &self.nodes[i % self.nodes.len()]
    }

    fn next_id(&self, offset: usize) -> String {
        format!("{}-e{}", self.ns, self.published.len() + offset)
    }

    /// Publishes `count` updates on `topic` in one request, on the first node.
    async fn publish(&mut self, topic: usize, count: usize) {
        let hub = self.node(0);
        let url = topic_url(&self.ns, topic);
        let ids: Vec<String> = (0..count).map(|i| self.next_id(i)).collect();
        if count == 1 {
            let form = [("topic", url.as_str()), ("id", &ids[0]), ("data", "x")];
            publish(&hub.http, &hub.url(), &publisher_token(), &form).await;
        } else {
            let batch: Vec<_> = ids
                .iter()
                .map(|id| json!({"topic": url, "id": id, "data": "x"}))
                .collect();
            publish_batch_ok(&hub.http, &hub.url(), &batch).await;
        }
        self.published.extend(ids.into_iter().map(|id| (id, topic)));
    }

    /// The ids `client` is owed in all, in order.
    fn owed(&self, client: &Client) -> Vec<String> {
        let since = client.since.unwrap_or(self.published.len());
        self.published[since..]
            .iter()
            .filter(|(_, topic)| client.selection.matches(*topic))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Opens `client`'s stream on node `node` from its cursor.
    async fn connect(&self, client: &Client, node: usize, fence: &str) -> SseClient {
        let hub = self.node(node);
        let mut selectors = client.selection.selectors(&self.ns);
        selectors.push(fence.to_string());
        let selectors: Vec<&str> = selectors.iter().map(String::as_str).collect();
        let sub = hub.resume(&selectors, &client.cursor).await;
        assert_eq!(sub.status, reqwest::StatusCode::OK);
        sub
    }

    async fn read(&self, client: &mut Client, count: usize) {
        let owed = self.owed(client);
        let Some(stream) = client.stream.as_mut() else {
            return;
        };
        let count = count.min(owed.len() - client.received.len());
        for _ in 0..count {
            let event = stream
                .next_event(WAIT)
                .await
                .unwrap_or_else(|why| panic!("owed {owed:?}, got {:?}: {why:?}", client.received));
            client.cursor.clone_from(&event.last_event_id);
            client.received.push(event.last_event_id);
        }
    }
}

/// Runs [`case`]s on `nodes` (publishing on the first, reconnecting on
/// any), driven by `rt`.
fn check_on(name: &str, rt: &tokio::runtime::Runtime, nodes: &[TestHub], default_cases: u32) {
    let count = Cell::new(0u32);
    check(name, default_cases, case(), |case| {
        count.set(count.get() + 1);
        rt.block_on(run(nodes, &case, count.get()));
        Ok(())
    });
}

async fn run(nodes: &[TestHub], case: &Case, n: u32) {
    let mut run = Run {
        nodes,
        ns: format!("r{n}"),
        published: Vec::new(),
    };
    let fence = format!("urn:{}:fence", run.ns);
    let start = format!("{}-start", run.ns);
    let hub = run.node(0);
    publish(
        &hub.http,
        &hub.url(),
        &publisher_token(),
        &[("topic", &format!("urn:{}:start", run.ns)), ("id", &start)],
    )
    .await;
    let mut clients: Vec<Client> = case
        .subscribers
        .iter()
        .map(|&selection| Client {
            selection,
            stream: None,
            since: None,
            received: Vec::new(),
            cursor: start.clone(),
        })
        .collect();

    for op in &case.ops {
        match op {
            Op::Publish { topic, count } => run.publish(*topic, *count).await,
            Op::Read { sub, count } => run.read(&mut clients[*sub], *count).await,
            Op::Reconnect { sub, node, racing } => {
                let client = &mut clients[*sub];
                client.stream = None;
                if client.since.is_none() {
                    client.since = Some(run.published.len());
                    if let Some((id, _)) = run.published.last() {
                        client.cursor.clone_from(id);
                    }
                }
                // The racing publishes go to `run` only once both are done.
                let mut racing_run = Run {
                    nodes,
                    ns: run.ns.clone(),
                    published: run.published.clone(),
                };
                let (stream, ()) = tokio::join!(run.connect(client, *node, &fence), async {
                    for topic in racing {
                        racing_run.publish(*topic, 1).await;
                    }
                });
                run.published = racing_run.published;
                client.stream = Some(stream);
            }
        }
    }

    let fence_id = format!("{}-fence", run.ns);
    let hub = run.node(0);
    publish(
        &hub.http,
        &hub.url(),
        &publisher_token(),
        &[("topic", &fence), ("id", &fence_id)],
    )
    .await;
    for (i, client) in clients.iter_mut().enumerate() {
        let owed = run.owed(client);
        if let Some(stream) = client.stream.as_mut() {
            let rest = ids_until(stream, &fence_id, &format!("subscriber {i}")).await;
            client.received.extend(rest);
            assert_eq!(
                client.received, owed,
                "subscriber {i} ({:?}): received, then owed",
                client.selection
            );
        }
    }
}

/// 48 cases by default (about 5 s here; `PROPTEST_CASES=N` runs N).
#[test]
fn reconnecting_subscribers_miss_nothing_and_get_nothing_twice() {
    let rt = runtime();
    let mut hub = rt.block_on(TestHub::default());
    check_on("resume on one node", &rt, std::slice::from_ref(&hub), 48);
    rt.block_on(hub.shutdown());
}

/// 24 cases by default (about 4 s here; `PROPTEST_CASES=N` runs N): publishing on one node,
/// reconnecting on either; takes a heavy-test permit.
#[test]
fn reconnecting_across_two_nodes_on_redis_misses_nothing() {
    let rt = runtime();
    let _permit = rt.block_on(heavy());
    let redis = Redis::start();
    let mut nodes = rt.block_on(async {
        [
            hub_on(&redis.url(), |_| {}).await,
            hub_on(&redis.url(), |_| {}).await,
        ]
    });
    check_on("resume on two nodes", &rt, &nodes, 24);
    rt.block_on(async {
        for node in &mut nodes {
            node.shutdown().await;
        }
    });
}
