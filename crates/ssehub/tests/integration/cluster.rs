//! Several `ssehub` nodes sharing one log in Redis Streams (issue #6): each
//! test starts a real `redis-server` (Debian package; the tests fail, never
//! skip, without it) on a free loopback port with persistence on, and real
//! `ssehub serve --store redis://...` children on loopback ports, spoken to
//! over TCP.
//!
//! - fan-out: updates published on any node reach matching subscribers on
//!   every node exactly once, all in one order;
//! - `kill -9` of a node during publishing: its subscribers resume on the
//!   others with `Last-Event-ID` and miss nothing;
//! - Redis stopped and restarted during publishing: every acknowledged update
//!   is delivered once and in order, refused publishes got 503, `/readyz`
//!   reports the outage, subscribers stay connected;
//! - private updates and publisher authorization across nodes;
//! - the subscriptions API lists the whole cluster, and a dead node's entries
//!   expire;
//! - a node that could not follow the stream while it was trimmed past its
//!   position ends its streams, and its subscribers resume from the history.
//! - without the subscriptions API, every node lists the live nodes (the
//!   UI's stats), a stopped node drops out within its lease, and no
//!   subscription document is written.
//!
//! `CLUSTER_SEED=N cargo test --test integration cluster::` replays the
//! random choices (which node, which topic) of a printed seed.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::child::tail;
use crate::common::child_hub::ChildHub;
use crate::common::redis::Redis;
use crate::common::remote::{client, open_stream, post_form, publish_batch_ok, READY};
use crate::common::{
    admin_token, heavy, next_stats, publisher_token, sign, token, NoEvent, SseClient, SECRET,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

/// Bound on receiving everything up to the end marker once publishing is over.
const DELIVERY: Duration = Duration::from_secs(40);

/// Topic every subscriber of the load tests also asks for: the start and
/// end markers go there.
const CONTROL: &str = "urn:ssehub:cluster-test:control";

/// Data of the marker published before the load.
const START: &str = "start-marker";

/// Data of the marker published after the load: subscribers read until it.
const END: &str = "end-marker";

/// The seed of `test`'s random choices, printed so a failure can be replayed.
fn seed(test: &str) -> u64 {
    crate::common::seed("CLUSTER_SEED", test)
}

// ---------------------------------------------------------------------------
// Nodes

/// One `ssehub serve` child on the Redis store; killed (SIGKILL) on drop.
/// Its [`ChildHub`] methods are reached through it.
struct Node {
    name: String,
    hub: ChildHub,
    _dir: tempfile::TempDir,
}

impl Deref for Node {
    type Target = ChildHub;

    fn deref(&self) -> &ChildHub {
        &self.hub
    }
}

impl DerefMut for Node {
    fn deref_mut(&mut self) -> &mut ChildHub {
        &mut self.hub
    }
}

impl Node {
    /// Starts a node on a free port and waits until `/readyz` answers 200.
    async fn start(name: &str, redis_url: &str, stream: &str, extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--store",
            redis_url,
            "--redis-stream",
            stream,
            "--tls-listen",
            "none",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--publisher-jwt-key",
            SECRET,
            "--heartbeat",
            "1s",
        ];
        args.extend_from_slice(extra);
        let hub = ChildHub::listening(dir.path(), &args, &[]).await;
        hub.wait_ready(StatusCode::OK, READY).await;
        Node {
            name: name.to_string(),
            hub,
            _dir: dir,
        }
    }

    /// Publishes `form` with a publisher token; asserts 200 and returns the id.
    async fn publish_ok(&self, form: &[(&str, &str)]) -> String {
        self.hub.publish_ok(&publisher_token(), form).await
    }
}

/// A Redis server and nodes sharing one stream on it.
struct Cluster {
    nodes: Vec<Node>,
    redis: Redis,
}

impl Cluster {
    /// Starts Redis and `n` nodes with `extra` flags.
    async fn start(test: &str, n: usize, extra: &[&str]) -> Cluster {
        let redis = Redis::start();
        let stream = format!("ssehub-{test}");
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = ["A", "B", "C", "D", "E", "F"][i].to_string();
            nodes.push(Node::start(&name, &redis.url(), &stream, extra).await);
        }
        Cluster { nodes, redis }
    }

    /// The tail of every node's stderr and of Redis' log, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "--- node {} ({}) stderr:\n{}\n",
                node.name,
                node.addr,
                tail(&node.stderr(), 3000)
            ));
        }
        out.push_str(&format!(
            "--- redis log:\n{}\n",
            tail(&self.redis.log(), 2000)
        ));
        out
    }
}

// ---------------------------------------------------------------------------
// Subscribers of the load tests

/// What a subscriber received: `(id, data)` in order, up to (without) the
/// end marker.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<(String, String)>,
    /// Node URL and `Last-Event-ID` of every reconnection.
    reconnects: Vec<(String, String)>,
    /// Why it stopped before the end marker, if it did.
    error: Option<String>,
}

/// Where a subscriber goes when its stream breaks: the other nodes' URLs,
/// tried in turn.
#[derive(Debug, Clone)]
struct Resume {
    urls: Vec<String>,
    topics: Vec<String>,
    token: String,
    /// Send the id as the `lastEventID` query parameter, not the header.
    query: bool,
}

/// A subscribe request to `topics` on the node at `url` resuming after
/// `last`, sent as `Last-Event-ID` or (with `query`) as `lastEventID=`.
fn resume_request(
    url: &str,
    topics: &[String],
    token: &str,
    last: &str,
    query: bool,
) -> reqwest::RequestBuilder {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(topics.iter().map(|t| ("topic", t)));
    if query {
        q.append_pair("lastEventID", last);
    }
    // No overall timeout: the stream stays open; reads are bounded instead.
    let req = reqwest::Client::new()
        .get(format!("{url}?{}", q.finish()))
        .bearer_auth(token);
    if query {
        req
    } else {
        req.header("last-event-id", last)
    }
}

/// Reads `stream` until the end marker or `deadline`; on a broken stream,
/// reconnects with `Last-Event-ID` as `resume` says (or stops with an error
/// if it is `None`). `seen` holds what was read before (at least the start
/// marker).
async fn collect(
    mut stream: SseClient,
    mut seen: Seen,
    resume: Option<Resume>,
    deadline: Instant,
) -> Seen {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match stream.next_event(left).await {
            Ok(event) if event.data == END => return seen,
            Ok(event) => {
                seen.events.push((event.last_event_id, event.data));
                continue;
            }
            Err(why) => why,
        };
        let resume = match (&why, &resume) {
            (NoEvent::Ended | NoEvent::Failed(_), Some(resume)) if seen.reconnects.len() < 3 => {
                resume
            }
            _ => {
                seen.error = Some(format!(
                    "stopped after {} events: {why:?}",
                    seen.events.len()
                ));
                return seen;
            }
        };
        let url = &resume.urls[seen.reconnects.len() % resume.urls.len()];
        let last = seen.events.last().expect("the start marker").0.clone();
        let req = resume_request(url, &resume.topics, &resume.token, &last, resume.query);
        let res = match tokio::time::timeout(READY, req.send()).await {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => {
                seen.error = Some(format!("reconnecting to {url}: {e}"));
                return seen;
            }
            Err(_) => {
                seen.error = Some(format!("reconnecting to {url}: no answer in {READY:?}"));
                return seen;
            }
        };
        let echoed = res
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if res.status() != StatusCode::OK || echoed.as_deref() != Some(last.as_str()) {
            seen.error = Some(format!(
                "reconnecting to {url} with Last-Event-ID {last}: status {}, Last-Event-ID header {echoed:?}",
                res.status()
            ));
            return seen;
        }
        seen.reconnects.push((url.clone(), last));
        stream = SseClient::new(res);
    }
}

/// Opens one subscriber per `(url, topics)`, publishes the start marker on
/// `node`, checks every subscriber receives it first (so all are
/// registered), and returns the streams with what they read.
async fn open_all(
    node: &Node,
    specs: &[(String, Vec<String>)],
    token: &str,
) -> Vec<(SseClient, Seen)> {
    let mut streams = Vec::new();
    for (url, topics) in specs {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        streams.push(open_stream(url, &topics, Some(token), None).await);
    }
    let start = node
        .publish_ok(&[("topic", CONTROL), ("data", START)])
        .await;
    let mut out = Vec::new();
    for ((url, topics), mut stream) in specs.iter().zip(streams) {
        let event = stream.next_event(READY).await.unwrap_or_else(|why| {
            panic!(
                "subscriber on {url} to {topics:?}: no start marker: {why:?}\nstderr of {}:\n{}",
                node.name,
                tail(&node.stderr(), 3000)
            )
        });
        assert_eq!(
            (event.last_event_id.as_str(), event.data.as_str()),
            (start.as_str(), START),
            "subscriber on {url} to {topics:?}: first event"
        );
        let seen = Seen {
            events: vec![(start.clone(), START.to_string())],
            ..Seen::default()
        };
        out.push((stream, seen));
    }
    out
}

/// Publishes the end marker on `node`; what each of `readers` saw.
async fn end_and_collect(node: &Node, readers: Vec<tokio::task::JoinHandle<Seen>>) -> Vec<Seen> {
    node.publish_ok(&[("topic", CONTROL), ("data", END)]).await;
    let mut seen = Vec::new();
    for task in readers {
        seen.push(task.await.unwrap());
    }
    seen
}

/// Where `needle`'s ids sit in `haystack`: panics unless each occurs once
/// and in the same order as in `needle`.
fn assert_subsequence(needle: &[String], haystack: &[(String, String)], what: &str) {
    let index: HashMap<&str, usize> = haystack
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    let mut previous: Option<(usize, &str)> = None;
    for id in needle {
        let Some(&at) = index.get(id.as_str()) else {
            panic!("{what}: acknowledged {id} was never delivered");
        };
        if let Some((before, before_id)) = previous {
            assert!(
                before < at,
                "{what}: {before_id} acknowledged before {id} but delivered after it ({before} vs {at})"
            );
        }
        previous = Some((at, id));
    }
}

/// Panics unless `seq` has no id twice.
fn assert_no_duplicate(seq: &[(String, String)], what: &str) {
    let mut ids = HashSet::new();
    for (i, (id, data)) in seq.iter().enumerate() {
        assert!(
            ids.insert(id.as_str()),
            "{what}: {id} ({data}) delivered twice, again at position {i}"
        );
    }
}

/// Panics with the first difference unless `got == want`.
fn assert_same_sequence(got: &[(String, String)], want: &[(String, String)], what: &str) {
    if got == want {
        return;
    }
    let got_ids: HashSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    let want_ids: HashSet<&str> = want.iter().map(|(id, _)| id.as_str()).collect();
    let missing: Vec<&&str> = want_ids.difference(&got_ids).take(10).collect();
    let extra: Vec<&&str> = got_ids.difference(&want_ids).take(10).collect();
    let first = (0..got.len().max(want.len()))
        .find(|&i| got.get(i) != want.get(i))
        .unwrap();
    panic!(
        "{what}: {} events, expected {}; first difference at {first}: got {:?}, expected {:?}; missing (up to 10) {missing:?}; unexpected (up to 10) {extra:?}",
        got.len(),
        want.len(),
        got.get(first),
        want.get(first)
    );
}

// ---------------------------------------------------------------------------
// 1. Fan-out across nodes, one order

const BOOKS_TEMPLATE: &str = "https://example.com/books/{id}";
const AUTHORS_TEMPLATE: &str = "https://example.com/authors{/id}";

/// The topics the fan-out test publishes to.
const TOPICS: [&str; 5] = [
    "https://example.com/books/1",
    "https://example.com/books/2",
    "https://example.com/books/3",
    "https://example.com/authors/1",
    "https://example.com/authors/2",
];

/// One acknowledged publish.
#[derive(Debug, Clone)]
struct Acked {
    id: String,
    topics: Vec<String>,
    data: String,
}

/// Three nodes, nine subscribers (three per node: `*`, a URI template, exact
/// topics or another template), four concurrent publishers sending 320
/// updates (a fifth with an alternate topic) each to a random node: every
/// subscriber receives exactly the updates one of whose topics it selects,
/// each once, with its id and data, and all in the order of the `*`
/// subscribers, which is the same on every node and keeps each publisher's
/// acknowledgement order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_reach_every_node_once_in_one_order() {
    let _heavy = heavy().await;
    let seed = seed("updates_reach_every_node_once_in_one_order");
    let cluster = Cluster::start("fanout", 3, &[]).await;
    let nodes = &cluster.nodes;

    // (node, selectors, topics of TOPICS it selects)
    let plan: Vec<(usize, Vec<&str>, Vec<&str>)> = vec![
        (0, vec!["*"], TOPICS.to_vec()),
        (0, vec![BOOKS_TEMPLATE], TOPICS[..3].to_vec()),
        (0, vec![TOPICS[3]], vec![TOPICS[3]]),
        (1, vec!["*"], TOPICS.to_vec()),
        (1, vec![BOOKS_TEMPLATE], TOPICS[..3].to_vec()),
        (1, vec![TOPICS[1], TOPICS[4]], vec![TOPICS[1], TOPICS[4]]),
        (2, vec!["*"], TOPICS.to_vec()),
        (
            2,
            vec![AUTHORS_TEMPLATE, TOPICS[2]],
            vec![TOPICS[2], TOPICS[3], TOPICS[4]],
        ),
        (2, vec![TOPICS[0]], vec![TOPICS[0]]),
    ];
    let specs: Vec<(String, Vec<String>)> = plan
        .iter()
        .map(|(n, selectors, _)| {
            let mut topics: Vec<String> = selectors.iter().map(|s| s.to_string()).collect();
            if !selectors.contains(&"*") {
                topics.push(CONTROL.to_string());
            }
            (nodes[*n].url(), topics)
        })
        .collect();
    let sub_token = token(&[], &["*"], None);
    let streams = open_all(&nodes[0], &specs, &sub_token).await;
    let deadline = Instant::now() + DELIVERY;
    let readers: Vec<_> = streams
        .into_iter()
        .map(|(stream, seen)| tokio::spawn(collect(stream, seen, None, deadline)))
        .collect();

    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 80;
    let urls: Vec<String> = nodes.iter().map(|node| node.url()).collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let urls = urls.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(p as u64));
                let http = client();
                let token = publisher_token();
                let mut acked = Vec::new();
                let mut failed = Vec::new();
                for n in 0..PER_PUBLISHER {
                    let url = &urls[rng.gen_range(0..urls.len())];
                    let mut topics = vec![TOPICS[rng.gen_range(0..TOPICS.len())].to_string()];
                    if rng.gen_range(0..5) == 0 {
                        topics.push(TOPICS[rng.gen_range(0..TOPICS.len())].to_string());
                    }
                    let data = format!("p{p}-{n}");
                    let mut form: Vec<(&str, &str)> =
                        topics.iter().map(|t| ("topic", t.as_str())).collect();
                    form.push(("data", &data));
                    match post_form(&http, url, Some(&token), &form).await {
                        Ok((StatusCode::OK, id)) => acked.push(Acked { id, topics, data }),
                        other => failed.push(format!("{url} {data}: {other:?}")),
                    }
                }
                (acked, failed)
            })
        })
        .collect();
    let mut acked_by: Vec<Vec<Acked>> = Vec::new();
    for task in publishers {
        let (acked, failed) = task.await.unwrap();
        assert!(
            failed.is_empty(),
            "publishes failed: {failed:?}\n{}",
            cluster.logs()
        );
        acked_by.push(acked);
    }
    let end_node = &nodes[StdRng::seed_from_u64(seed).gen_range(0..nodes.len())];
    let seen = end_and_collect(end_node, readers).await;
    let by_id: HashMap<&str, &Acked> = acked_by
        .iter()
        .flatten()
        .map(|a| (a.id.as_str(), a))
        .collect();
    let total: usize = acked_by.iter().map(Vec::len).sum();
    assert_eq!(by_id.len(), total, "an id was acknowledged twice");

    let strip = |s: &Seen| s.events[1..].to_vec();
    // The order every subscriber must agree with: the first `*` subscriber's.
    let global = strip(&seen[0]);
    for (i, ((n, selectors, wants), s)) in plan.iter().zip(&seen).enumerate() {
        let what = format!("subscriber {i} on node {} to {selectors:?}", nodes[*n].name);
        if let Some(error) = &s.error {
            panic!("{what}: {error}\n{}", cluster.logs());
        }
        let got = strip(s);
        assert_no_duplicate(&got, &what);
        let expected: Vec<(String, String)> = global
            .iter()
            .filter(|(id, _)| {
                by_id
                    .get(id.as_str())
                    .is_some_and(|a| a.topics.iter().any(|t| wants.contains(&t.as_str())))
            })
            .cloned()
            .collect();
        assert_same_sequence(&got, &expected, &what);
    }
    // The shared order holds exactly the acknowledged updates, with their
    // data, each publisher's in acknowledgement order.
    assert_no_duplicate(&global, "the * subscriber");
    assert_eq!(global.len(), total, "the * subscriber's count");
    for (id, data) in &global {
        let acked = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} ({data}) was never acknowledged"));
        assert_eq!(data, &acked.data, "data of {id}");
    }
    for (p, acked) in acked_by.iter().enumerate() {
        let ids: Vec<String> = acked.iter().map(|a| a.id.clone()).collect();
        assert_subsequence(&ids, &global, &format!("publisher {p}"));
    }
    println!(
        "{total} updates from {PUBLISHERS} publishers over 3 nodes reached 9 subscribers in one order"
    );
}

// ---------------------------------------------------------------------------
// Publishers that run until told to stop

/// The outcome of one publish attempt.
#[derive(Debug, Clone)]
enum Outcome {
    Acked(String),
    Refused(StatusCode, String),
    Transport(String),
}

/// One publisher's attempts, in order: (data, outcome).
type Attempts = Vec<(String, Outcome)>;

/// A publisher of [`spawn_publisher`].
#[derive(Debug, Clone)]
struct Publisher {
    /// Prefix of its data, `{name}-{n}`.
    name: String,
    /// Node URLs it picks from at random.
    urls: Vec<String>,
    seed: u64,
    /// Attempts at most.
    max: usize,
    /// Stop at the first transport error (its node died).
    stop_on_error: bool,
    /// Give each update the id `urn:test:{name}-{n}` instead of letting the
    /// hub generate one.
    own_ids: bool,
}

/// Publishes `{name}-{n}` to [`FEED`] on a random node until `stop` is
/// set, `max` attempts were made, or (with `stop_on_error`) a request fails
/// at the transport level. Counts acknowledgements in `acked`. Pauses
/// briefly after a failure.
fn spawn_publisher(
    publisher: Publisher,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Attempts> {
    tokio::spawn(async move {
        let Publisher {
            name,
            urls,
            seed,
            max,
            stop_on_error,
            own_ids,
        } = publisher;
        let mut rng = StdRng::seed_from_u64(seed);
        let http = client();
        let token = publisher_token();
        let mut attempts = Vec::new();
        for n in 0..max {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let url = &urls[rng.gen_range(0..urls.len())];
            let data = format!("{name}-{n}");
            let id = format!("urn:test:{data}");
            let mut form = vec![("topic", FEED), ("data", data.as_str())];
            if own_ids {
                form.push(("id", id.as_str()));
            }
            let outcome = match post_form(&http, url, Some(&token), &form).await {
                Ok((StatusCode::OK, got)) => {
                    acked.fetch_add(1, Ordering::SeqCst);
                    if own_ids {
                        assert_eq!(got, id, "the hub keeps the publisher's id");
                    }
                    Outcome::Acked(got)
                }
                Ok((status, body)) => Outcome::Refused(status, body),
                Err(e) => Outcome::Transport(format!("{url}: {e}")),
            };
            let failed = !matches!(outcome, Outcome::Acked(_));
            let transport = matches!(outcome, Outcome::Transport(_));
            attempts.push((data, outcome));
            if transport && stop_on_error {
                break;
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        attempts
    })
}

/// The acknowledged ids of `attempts`, in order.
fn acked_ids(attempts: &Attempts) -> Vec<String> {
    attempts
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Acked(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// The attempts of every publisher, once each has ended (within
/// [`DELIVERY`]).
async fn join_publishers(publishers: Vec<tokio::task::JoinHandle<Attempts>>) -> Vec<Attempts> {
    let mut attempts = Vec::new();
    for task in publishers {
        attempts.push(
            tokio::time::timeout(DELIVERY, task)
                .await
                .expect("publishers end")
                .unwrap(),
        );
    }
    attempts
}

/// The data of every acknowledged update of `attempts`, by id.
fn acked_data(attempts: &[Attempts]) -> HashMap<String, String> {
    attempts
        .iter()
        .flatten()
        .filter_map(|(data, o)| match o {
            Outcome::Acked(id) => Some((id.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

/// Waits until `counter` reaches `n`; panics after `wait`.
async fn wait_count(counter: &AtomicUsize, n: usize, wait: Duration, what: &str) {
    let deadline = Instant::now() + wait;
    while counter.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} within {wait:?}",
            counter.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The topic of the kill and restart tests.
const FEED: &str = "https://example.com/feed";

// ---------------------------------------------------------------------------
// 2. kill -9 of a node

/// Three nodes; two witnesses on B and C, three subscribers on A (exact
/// topic, template, `*`); three publishers on B and C and one on A. After
/// 60 acknowledged updates A is killed with SIGKILL while publishing goes
/// on; A's subscribers reconnect to B and C with `Last-Event-ID` and end
/// with exactly the witnesses' sequence, which holds every acknowledged
/// update once, each publisher's in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_of_a_killed_node_resume_on_the_others() {
    let _heavy = heavy().await;
    let seed = seed("subscribers_of_a_killed_node_resume_on_the_others");
    let mut cluster = Cluster::start("kill", 3, &[]).await;
    let sub_token = token(&[], &["*"], None);
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.url()).collect();
    let survivors = vec![urls[1].clone(), urls[2].clone()];

    let selectors: [&[&str]; 3] = [
        &[FEED, CONTROL],
        &["https://example.com/{name}", CONTROL],
        &["*"],
    ];
    let mut specs: Vec<(String, Vec<String>)> = vec![
        (urls[1].clone(), vec![FEED.into(), CONTROL.into()]),
        (urls[2].clone(), vec![FEED.into(), CONTROL.into()]),
    ];
    for s in selectors {
        specs.push((urls[0].clone(), s.iter().map(|t| t.to_string()).collect()));
    }
    let streams = open_all(&cluster.nodes[1], &specs, &sub_token).await;
    let deadline = Instant::now() + DELIVERY;
    let readers: Vec<_> = streams
        .into_iter()
        .zip(&specs)
        .enumerate()
        .map(|(i, ((stream, seen), (_, topics)))| {
            // A's subscribers go to B and C in turn, starting at different
            // ones; the second sends its id as `lastEventID=`.
            let resume = (i >= 2).then(|| Resume {
                urls: if i % 2 == 0 {
                    survivors.clone()
                } else {
                    vec![survivors[1].clone(), survivors[0].clone()]
                },
                topics: topics.clone(),
                token: sub_token.clone(),
                query: i == 3,
            });
            tokio::spawn(collect(stream, seen, resume, deadline))
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    // p1 gives its own ids, the others let the hub generate them.
    let mut publishers = Vec::new();
    for p in 0..3 {
        let publisher = Publisher {
            name: format!("p{p}"),
            urls: survivors.clone(),
            seed: seed.wrapping_add(p),
            max: 100,
            stop_on_error: false,
            own_ids: p == 1,
        };
        publishers.push(spawn_publisher(publisher, stop.clone(), acked.clone()));
    }
    let on_a = Publisher {
        name: "on-a".into(),
        urls: vec![urls[0].clone()],
        seed,
        max: 100,
        stop_on_error: true,
        own_ids: false,
    };
    publishers.push(spawn_publisher(on_a, stop.clone(), acked.clone()));

    wait_count(&acked, 60, READY, "acknowledged before the kill").await;
    cluster.nodes[0].kill_9();
    let acked_at_kill = acked.load(Ordering::SeqCst);

    let attempts = join_publishers(publishers).await;
    let total = acked.load(Ordering::SeqCst);
    assert!(
        total > acked_at_kill,
        "nothing was acknowledged after the kill ({total} in all)"
    );
    for (p, a) in attempts[..3].iter().enumerate() {
        let failures: Vec<_> = a
            .iter()
            .filter(|(_, o)| !matches!(o, Outcome::Acked(_)))
            .collect();
        assert!(
            failures.is_empty(),
            "publisher {p} on the surviving nodes failed: {failures:?}\n{}",
            cluster.logs()
        );
    }
    let seen = end_and_collect(&cluster.nodes[2], readers).await;
    for (i, (s, (url, topics))) in seen.iter().zip(&specs).enumerate() {
        if let Some(error) = &s.error {
            panic!(
                "subscriber {i} (first on {url}, to {topics:?}): {error}\n{}",
                cluster.logs()
            );
        }
    }
    let witness = &seen[0].events;
    assert_no_duplicate(witness, "the witness on B");
    assert_same_sequence(&seen[1].events, witness, "the witness on C");
    for (i, s) in seen.iter().enumerate().skip(2) {
        let what = format!("subscriber {i} of the killed node A to {:?}", specs[i].1);
        assert_eq!(
            s.reconnects.len(),
            1,
            "{what}: reconnections {:?}",
            s.reconnects
        );
        assert_same_sequence(&s.events, witness, &what);
    }

    // Every acknowledged update, each publisher's in order; anything else
    // is the publish A was killed in the middle of.
    for (p, a) in attempts.iter().enumerate() {
        assert_subsequence(&acked_ids(a), witness, &format!("publisher {p}"));
    }
    let acked_data = acked_data(&attempts);
    let unacked_on_a: Vec<&String> = attempts[3]
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Acked(_)))
        .map(|(data, _)| data)
        .collect();
    for (id, data) in &witness[1..] {
        match acked_data.get(id) {
            Some(d) => assert_eq!(d, data, "data of {id}"),
            None => assert!(
                unacked_on_a.contains(&data),
                "{id} ({data}) delivered but neither acknowledged nor in flight on A at the kill"
            ),
        }
    }
    // Resume on B or C from chosen ids, whichever node logged them: a
    // publisher's own id and a generated one, each as the header and as
    // the query parameter. The replay is the witness's sequence after it.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let (own, generated): (Vec<usize>, Vec<usize>) =
        (1..witness.len()).partition(|&i| witness[i].0.starts_with("urn:test:"));
    assert!(!own.is_empty() && !generated.is_empty());
    for (kind, positions) in [("own", &own), ("generated", &generated)] {
        for query in [false, true] {
            let at = positions[rng.gen_range(0..positions.len())];
            let id = &witness[at].0;
            let node = &cluster.nodes[rng.gen_range(1..3)];
            let what = format!(
                "resuming on {} after the {kind} id {id} (position {at}) via {}",
                node.name,
                if query {
                    "lastEventID="
                } else {
                    "Last-Event-ID"
                }
            );
            let topics = [FEED.to_string(), CONTROL.to_string()];
            let res = resume_request(&node.url(), &topics, &sub_token, id, query)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(res.status(), StatusCode::OK, "{what}");
            assert_eq!(res.headers()["last-event-id"], id.as_str(), "{what}");
            let replay = collect(
                SseClient::new(res),
                Seen::default(),
                None,
                Instant::now() + READY,
            )
            .await;
            if let Some(error) = &replay.error {
                panic!("{what}: {error}\n{}", cluster.logs());
            }
            assert_same_sequence(&replay.events, &witness[at + 1..], &what);
        }
    }

    // An id no node ever logged: the whole history, and the answer says so.
    let res = resume_request(
        &cluster.nodes[2].url(),
        &[FEED.to_string(), CONTROL.to_string()],
        &sub_token,
        "urn:test:never-published",
        false,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["last-event-id"], "earliest", "unknown id");
    let replay = collect(
        SseClient::new(res),
        Seen::default(),
        None,
        Instant::now() + READY,
    )
    .await;
    assert_eq!(replay.error, None, "replay from an unknown id");
    assert_same_sequence(&replay.events, witness, "replay from an unknown id");

    let on_a_error = attempts[3].iter().find_map(|(_, o)| match o {
        Outcome::Transport(e) => Some(e.as_str()),
        _ => None,
    });
    println!(
        "{total} acknowledged ({acked_at_kill} before the kill), {} delivered; the publisher on A stopped with {on_a_error:?}; A's 3 subscribers resumed on {:?}",
        witness.len() - 1,
        seen[2..]
            .iter()
            .map(|s| s.reconnects[0].0.clone())
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// 3. Redis restarted during publishing

/// Three nodes, one subscriber on each; three publishers to random nodes
/// throughout. Redis is stopped twice (SIGTERM, then SIGKILL) and started
/// again on the same port and directory. While it is down `/readyz` is 503
/// and publish is 503 naming Redis; afterwards `/readyz` is 200 and
/// publishing works. In the end every subscriber is still on its first
/// connection and received every acknowledged update exactly once, each
/// publisher's in order, all in the same sequence; every refused publish
/// was refused with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_a_redis_restart() {
    let _heavy = heavy().await;
    let seed = seed("acknowledged_updates_survive_a_redis_restart");
    let mut cluster = Cluster::start("redis-restart", 3, &[]).await;
    let sub_token = token(&[], &["*"], None);
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.url()).collect();
    let specs: Vec<(String, Vec<String>)> = urls
        .iter()
        .map(|u| (u.clone(), vec![FEED.to_string(), CONTROL.to_string()]))
        .collect();
    let streams = open_all(&cluster.nodes[0], &specs, &sub_token).await;
    let deadline = Instant::now() + DELIVERY + Duration::from_secs(20);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|(stream, seen)| tokio::spawn(collect(stream, seen, None, deadline)))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let publisher = Publisher {
                name: format!("p{p}"),
                urls: urls.clone(),
                seed: seed.wrapping_add(p),
                max: 100_000,
                stop_on_error: false,
                own_ids: p == 1,
            };
            spawn_publisher(publisher, stop.clone(), acked.clone())
        })
        .collect();

    let token = publisher_token();
    let http = client();
    for (round, how) in ["SIGTERM", "SIGKILL"].into_iter().enumerate() {
        let before = acked.load(Ordering::SeqCst);
        wait_count(&acked, before + 40, READY, "acknowledged while Redis is up").await;
        match how {
            "SIGTERM" => cluster.redis.stop(),
            _ => cluster.redis.kill_9(),
        }
        // Every node notices, and refuses publishes with a 503 naming Redis.
        for node in &cluster.nodes {
            node.wait_ready(StatusCode::SERVICE_UNAVAILABLE, READY)
                .await;
            let data = format!("while-down-{round}-{}", node.name);
            let (status, body) = post_form(
                &http,
                &node.url(),
                Some(&token),
                &[("topic", FEED), ("data", &data)],
            )
            .await
            .unwrap_or_else(|e| panic!("publish on {} with Redis down: {e}", node.name));
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "publish on {} with Redis down ({how}): {body}",
                node.name
            );
            assert!(
                body.to_ascii_lowercase().contains("redis"),
                "the 503 names Redis: {body:?}"
            );
        }
        cluster.redis.restart();
        for node in &cluster.nodes {
            let body = node
                .wait_ready(StatusCode::OK, Duration::from_secs(20))
                .await;
            assert_eq!(body.trim(), "ok", "node {}", node.name);
        }
        let before = acked.load(Ordering::SeqCst);
        wait_count(
            &acked,
            before + 40,
            READY,
            &format!("acknowledged after the restart ({how})"),
        )
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let attempts = join_publishers(publishers).await;
    let seen = end_and_collect(&cluster.nodes[1], readers).await;

    // Every refusal is a 503; no request went unanswered.
    let mut refused: HashMap<&str, &str> = HashMap::new();
    for (p, a) in attempts.iter().enumerate() {
        for (data, outcome) in a {
            match outcome {
                Outcome::Acked(_) => {}
                Outcome::Refused(StatusCode::SERVICE_UNAVAILABLE, body) => {
                    assert!(
                        body.to_ascii_lowercase().contains("redis"),
                        "publisher {p}: the 503 for {data} names Redis: {body:?}"
                    );
                    refused.insert(data, body);
                }
                other => panic!(
                    "publisher {p}: {data} got {other:?} (only 200 or 503 expected)\n{}",
                    cluster.logs()
                ),
            }
        }
    }
    assert!(
        !refused.is_empty(),
        "no publisher got a 503 in two Redis outages: the outage was not exercised"
    );
    let acked_data = acked_data(&attempts);

    for (i, s) in seen.iter().enumerate() {
        let what = format!("subscriber on node {}", cluster.nodes[i].name);
        if let Some(error) = &s.error {
            panic!(
                "{what} (it must stay connected through the outages): {error}\n{}",
                cluster.logs()
            );
        }
        assert_no_duplicate(&s.events, &what);
        for (p, a) in attempts.iter().enumerate() {
            assert_subsequence(&acked_ids(a), &s.events, &format!("{what}, publisher {p}"));
        }
        assert_same_sequence(&s.events, &seen[0].events, &what);
    }
    // Delivered without a 200: only an update whose XADD Redis applied while
    // the reply was lost, and then it was answered 503.
    let mut delivered_unacked = Vec::new();
    for (id, data) in &seen[0].events[1..] {
        match acked_data.get(id) {
            Some(d) => assert_eq!(d, data, "data of {id}"),
            None => {
                let body = refused
                    .get(data.as_str())
                    .unwrap_or_else(|| panic!("{id} ({data}) delivered but never published"));
                delivered_unacked.push(format!("{data}: {}", body.trim()));
            }
        }
    }
    println!(
        "{} acknowledged, {} refused with 503 ({} of them delivered anyway: {delivered_unacked:?}), through a SIGTERM and a SIGKILL of Redis",
        acked_data.len(),
        refused.len(),
        delivered_unacked.len()
    );
}

/// Keys of about 2 KB written before the restart of
/// [`a_node_is_not_ready_while_redis_loads_its_data`]: Redis loads each
/// with a delay, and answers clients between two keys.
const LOADING_KEYS: usize = 100;

/// Redis restarted on data it takes seconds to load (`--key-load-delay`,
/// 40 ms a key, and clients answered between two keys): meanwhile it
/// answers `TIME` but `-LOADING` to reading the stream. The node stays not
/// ready until Redis has loaded: it reports losing Redis once (at the
/// stop) and following the stream again once (after the load), where it
/// used to turn ready at every attempt during the load and lose Redis
/// again at once (found by the soak, `bench/soak.sh --cluster`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_not_ready_while_redis_loads_its_data() {
    let _heavy = heavy().await;
    let redis = Redis::start_with(&[
        "--key-load-delay",
        "40000",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let stream = "ssehub-redis-loading";
    let node = Node::start("A", &redis.url(), stream, &[]).await;
    let mut cluster = Cluster {
        nodes: vec![node],
        redis,
    };
    // The keys go into the append-only file's base (an RDB file), whose
    // keys are the ones loaded with the delay.
    let mut conn = cluster.redis.connection().await;
    let value = "v".repeat(2000);
    for k in 0..LOADING_KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("filler-{k}"))
            .arg(&value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: redis::Value = redis::cmd("BGREWRITEAOF")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut rewritten = false;
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            rewritten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rewritten, "the append-only file was not rewritten");
    drop(conn);

    cluster.redis.stop();
    cluster.nodes[0]
        .wait_ready(StatusCode::SERVICE_UNAVAILABLE, READY)
        .await;
    // Returns once Redis answers PING, that is once it has loaded.
    cluster.redis.restart();
    let log = cluster.redis.log();
    let loaded = log
        .lines()
        .filter_map(|l| {
            l.split("keys loaded: ")
                .nth(1)?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .max();
    assert!(
        loaded >= Some(LOADING_KEYS),
        "Redis did not load the keys from its file:\n{}",
        tail(&log, 2000)
    );
    cluster.nodes[0]
        .wait_ready(StatusCode::OK, Duration::from_secs(20))
        .await;
    let stderr = cluster.nodes[0].stderr();
    let count = |what: &str| stderr.lines().filter(|l| l.contains(what)).count();
    assert_eq!(
        (count("lost Redis"), count("following Redis stream")),
        (1, 2),
        "one loss (the stop), and following again only once Redis had loaded\n{}",
        cluster.logs()
    );
}

// ---------------------------------------------------------------------------
// 4. Private updates and authorization

const SECRET_TOPIC: &str = "https://example.com/secret/1";
const SECRET_ALT: &str = "https://example.com/secret-alt/1";
const BEFORE_TOPIC: &str = "https://example.com/public/0";

/// The first event of a subscriber that may or may not see the private
/// update (data `secret`) published before the public one (data `public`):
/// whether it saw it.
async fn saw_private(sub: &mut SseClient, what: &str) -> bool {
    let first = sub
        .next_event(READY)
        .await
        .unwrap_or_else(|why| panic!("{what}: no event: {why:?}"));
    match first.data.as_str() {
        "secret" => {
            let second = sub
                .next_event(READY)
                .await
                .unwrap_or_else(|why| panic!("{what}: no public update: {why:?}"));
            assert_eq!(second.data, "public", "{what}");
            true
        }
        "public" => false,
        other => panic!("{what}: unexpected event {other:?}"),
    }
}

/// Three anonymous-friendly nodes. A private update published on A reaches
/// the subscribers of B and A whose token covers its canonical or
/// alternate topic, and neither a subscriber with a token for another topic
/// nor an anonymous one on C, live and on replay from any node. Publishing
/// without a token, with a token signed by another key, with a token for
/// other topics or with a subscribe-only token is refused on every node,
/// and nothing refused reaches anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_updates_and_authorization_across_nodes() {
    let _heavy = heavy().await;
    let cluster = Cluster::start("private", 3, &["--anonymous"]).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    // A position to replay from, on a topic the live subscribers do not
    // select: a node whose tail had not read it yet when a subscriber
    // without `Last-Event-ID` arrived still fans it out to that subscriber,
    // which is not what this test is about.
    let before = a
        .publish_ok(&[("topic", BEFORE_TOPIC), ("data", "before")])
        .await;

    let canonical = token(&[], &[SECRET_TOPIC], None);
    let alternate = token(&[], &["https://example.com/secret-alt/{id}"], None);
    let everything = token(&[], &["*"], None);
    let other = token(&[], &["https://example.com/secret/2"], None);
    // (label, node, token, may see the private update)
    let cases: Vec<(&str, &Node, Option<&str>, bool)> = vec![
        ("canonical-topic token on B", b, Some(&canonical), true),
        (
            "alternate-topic template token on B",
            b,
            Some(&alternate),
            true,
        ),
        ("* token on A", a, Some(&everything), true),
        ("other-topic token on C", c, Some(&other), false),
        ("anonymous on C", c, None, false),
        ("other-topic token on B", b, Some(&other), false),
    ];
    let mut live = Vec::new();
    for (label, node, tok, _) in &cases {
        let sub = open_stream(&node.url(), &[SECRET_TOPIC], *tok, None).await;
        live.push((label, sub));
    }
    a.publish_ok(&[
        ("topic", SECRET_TOPIC),
        ("topic", SECRET_ALT),
        ("data", "secret"),
        ("private", "on"),
    ])
    .await;
    a.publish_ok(&[("topic", SECRET_TOPIC), ("data", "public")])
        .await;
    for ((label, _, _, want), (_, sub)) in cases.iter().zip(&mut live) {
        assert_eq!(
            saw_private(sub, &format!("live, {label}")).await,
            *want,
            "live, {label}"
        );
    }

    // Replay after `before`, on every node, with every kind of token.
    for node in &cluster.nodes {
        for (label, _, tok, want) in &cases {
            let mut sub = open_stream(&node.url(), &[SECRET_TOPIC], *tok, Some(&before)).await;
            let what = format!("replay on {}, {label}", node.name);
            assert_eq!(saw_private(&mut sub, &what).await, *want, "{what}");
        }
    }

    // Refused on every node.
    let wrong_key = sign("another-secret-another-secret-another-0", &["*"], &[], None);
    let other_topic = token(&["https://example.com/secret/2"], &[], None);
    let subscribe_only = token(&[], &["*"], None);
    let refusals: [(&str, Option<&str>, &[StatusCode]); 4] = [
        ("no token", None, &[StatusCode::UNAUTHORIZED]),
        (
            "token signed with another key",
            Some(&wrong_key),
            &[StatusCode::UNAUTHORIZED],
        ),
        (
            "token for another topic",
            Some(&other_topic),
            &[StatusCode::FORBIDDEN],
        ),
        (
            "subscribe-only token",
            Some(&subscribe_only),
            &[StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN],
        ),
    ];
    let http = client();
    for node in &cluster.nodes {
        for (label, tok, statuses) in &refusals {
            for private in [false, true] {
                let data = format!("refused {label} on {}", node.name);
                let mut form = vec![("topic", SECRET_TOPIC), ("data", data.as_str())];
                if private {
                    form.push(("private", "on"));
                }
                let (status, body) = post_form(&http, &node.url(), *tok, &form)
                    .await
                    .unwrap_or_else(|e| panic!("publish on {}: {e}", node.name));
                assert!(
                    statuses.contains(&status),
                    "publish with {label} on node {} (private: {private}): {status} {body}",
                    node.name
                );
            }
        }
    }
    // Nothing refused was logged: the next event of every live subscriber
    // is the next accepted update.
    c.publish_ok(&[("topic", SECRET_TOPIC), ("data", "after")])
        .await;
    for (label, sub) in &mut live {
        let event = sub
            .next_event(READY)
            .await
            .unwrap_or_else(|why| panic!("{label}: {why:?}"));
        assert_eq!(
            event.data, "after",
            "{label}: a refused publish was delivered"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Subscriptions API across the cluster

const WATCH_ALL: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";

/// `GET /.well-known/mercure/subscriptions` on `node` with a token for all of them.
async fn list_subscriptions(node: &Node) -> Vec<Value> {
    let res = client()
        .get(format!("{}/.well-known/mercure/subscriptions", node.base()))
        .bearer_auth(token(&[], &[WATCH_ALL], None))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "listing on {}: {e:?}\nstderr:\n{}",
                node.name,
                tail(&node.stderr(), 4000)
            )
        });
    assert_eq!(res.status(), StatusCode::OK, "listing on {}", node.name);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["type"], "Subscriptions");
    list["subscriptions"].as_array().unwrap().clone()
}

/// Subscriber ids listed on `node` for `topic`.
async fn listed(node: &Node, topic: &str) -> Vec<String> {
    list_subscriptions(node)
        .await
        .iter()
        .filter(|s| s["topic"] == topic)
        .map(|s| s["subscriber"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `node`'s listing until `topic` has `want` subscribers; the listing
/// then, or a panic after `wait`.
async fn wait_listed(node: &Node, topic: &str, want: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let got = listed(node, topic).await;
        if got.len() == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "listing on {}: {} subscription(s) to {topic} after {wait:?}, expected {want}\n{}",
            node.name,
            got.len(),
            tail(&node.stderr(), 3000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A stream of subscription events; events read but not yet asked for
/// are kept, since events of different nodes may come in any order.
struct Watcher {
    stream: SseClient,
    unclaimed: Vec<Value>,
}

impl Watcher {
    /// Watches every subscription event through `node`, once its own
    /// subscription was announced.
    async fn open(node: &Node) -> Watcher {
        let mut watcher = Watcher {
            stream: open_stream(
                &node.url(),
                &[WATCH_ALL],
                Some(&token(&[], &[WATCH_ALL], None)),
                None,
            )
            .await,
            unclaimed: Vec::new(),
        };
        watcher.wait(WATCH_ALL, true).await;
        watcher
    }

    /// The first subscription event for `topic` with `active` not claimed
    /// before; panics if none comes within [`READY`].
    async fn wait(&mut self, topic: &str, active: bool) -> Value {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(i) = self
                .unclaimed
                .iter()
                .position(|d| d["topic"] == topic && d["active"] == active)
            {
                return self.unclaimed.remove(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.stream.next_event(left).await.unwrap_or_else(|why| {
                panic!(
                    "no subscription event for {topic} active={active}: {why:?}; unclaimed: {:?}",
                    self.unclaimed
                )
            });
            let doc: Value = serde_json::from_str(&event.data)
                .unwrap_or_else(|e| panic!("subscription event {:?}: {e}", event.data));
            assert_eq!(doc["type"], "Subscription", "{doc}");
            self.unclaimed.push(doc);
        }
    }
}

/// Three nodes with the subscriptions API. A watcher on C sees subscribe and
/// unsubscribe events of A and B; subscriptions on A and B are listed by
/// every node; after `kill -9` of A, its entries leave every listing within
/// the expiry (at most 20 s), and are announced inactive, while B's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_are_listed_cluster_wide_and_expire_with_their_node() {
    let _heavy = heavy().await;
    let mut cluster = Cluster::start("subscriptions", 3, &["--subscriptions"]).await;
    let on_a = "https://example.com/watched/a";
    let on_b = "https://example.com/watched/b";
    let leaving = "https://example.com/watched/leaving";
    let (a, b, c) = (0, 1, 2);

    let mut watcher = Watcher::open(&cluster.nodes[c]).await;

    let sub_token = token(&[], &["https://example.com/watched/{x}"], None);
    let _sub_a = open_stream(&cluster.nodes[a].url(), &[on_a], Some(&sub_token), None).await;
    let _sub_b = open_stream(&cluster.nodes[b].url(), &[on_b], Some(&sub_token), None).await;
    let sub_leaving =
        open_stream(&cluster.nodes[b].url(), &[leaving], Some(&sub_token), None).await;
    let doc_a = watcher.wait(on_a, true).await;
    let doc_b = watcher.wait(on_b, true).await;
    watcher.wait(leaving, true).await;
    let id_a = doc_a["subscriber"].as_str().unwrap().to_string();
    let id_b = doc_b["subscriber"].as_str().unwrap().to_string();

    for node in &cluster.nodes {
        assert_eq!(wait_listed(node, on_a, 1, READY).await, [id_a.as_str()]);
        assert_eq!(wait_listed(node, on_b, 1, READY).await, [id_b.as_str()]);
        wait_listed(node, leaving, 1, READY).await;
    }
    let one_url = format!(
        "{}{}",
        cluster.nodes[c].base(),
        doc_a["id"].as_str().unwrap()
    );
    let list_token = token(&[], &[WATCH_ALL], None);
    let one = client()
        .get(&one_url)
        .bearer_auth(&list_token)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK, "A's subscription read on C");
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["subscriber"], id_a.as_str());

    // Leaving normally: gone everywhere, and announced.
    drop(sub_leaving);
    watcher.wait(leaving, false).await;
    for node in &cluster.nodes {
        wait_listed(node, leaving, 0, READY).await;
    }

    // A dies: its subscription expires on the survivors; B's stays.
    cluster.nodes[a].kill_9();
    let killed = Instant::now();
    wait_listed(&cluster.nodes[b], on_a, 0, Duration::from_secs(25)).await;
    let expired_after = killed.elapsed();
    wait_listed(&cluster.nodes[c], on_a, 0, READY).await;
    assert!(
        expired_after <= Duration::from_secs(20),
        "A's subscription listed {expired_after:?} after A died"
    );
    for node in &cluster.nodes[1..] {
        assert_eq!(listed(node, on_b).await, [id_b.as_str()], "B's stays");
        assert_eq!(
            listed(node, WATCH_ALL).await.len(),
            1,
            "the watcher's stays"
        );
    }
    let gone = client()
        .get(&one_url)
        .bearer_auth(&list_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "A's subscription read on C after expiry"
    );
    // Its end is announced, as a normal unsubscribe would be, and B's
    // subscription is not announced inactive.
    let ended = watcher.wait(on_a, false).await;
    assert_eq!(ended["subscriber"], id_a.as_str());
    assert!(
        !watcher
            .unclaimed
            .iter()
            .any(|d| d["topic"] == on_b && d["active"] == false),
        "B's subscription announced inactive: {:?}",
        watcher.unclaimed
    );
    println!("A's subscription left the listing {expired_after:?} after kill -9");
}

/// A node that cannot refresh its lease for longer than the expiry but did
/// not die (here SIGSTOP for as long as it takes, as a long pause or a
/// partition from Redis would do): its subscriptions leave the listings
/// meanwhile; once it runs again, its subscriber, still connected, receives
/// updates published elsewhere, is listed again, and is announced active
/// again after the inactive event the other node published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_node_is_listed_and_announced_again_when_it_resumes() {
    let _heavy = heavy().await;
    let cluster = Cluster::start("paused", 2, &["--subscriptions"]).await;
    let [a, b] = [&cluster.nodes[0], &cluster.nodes[1]];
    let topic = "https://example.com/paused/a";
    let mut watcher = Watcher::open(b).await;
    let mut sub = open_stream(&a.url(), &[topic], Some(&token(&[], &[topic], None)), None).await;
    let id = wait_listed(b, topic, 1, READY).await;
    watcher.wait(topic, true).await;

    a.signal("-STOP");
    let paused = Instant::now();
    wait_listed(b, topic, 0, Duration::from_secs(25)).await;
    println!(
        "A's subscription left the listing {:?} into the pause",
        paused.elapsed()
    );
    // B claims A at its next refresh and announces the subscription
    // inactive; A resumes only then (had it renewed first, B would have left
    // it alone and nobody would announce anything).
    let gone = watcher.wait(topic, false).await;
    a.signal("-CONT");

    b.publish_ok(&[("topic", topic), ("data", "after the pause")])
        .await;
    let event = sub.next_event(READY).await.unwrap_or_else(|why| {
        panic!(
            "A's subscriber after the pause: {why:?}\n{}",
            cluster.logs()
        )
    });
    assert_eq!(event.data, "after the pause");
    let resumed = Instant::now();
    // A refreshes its lease every few seconds: two periods and a margin.
    let listed_again = wait_listed(b, topic, 1, Duration::from_secs(15)).await;
    assert_eq!(listed_again, id, "the same subscription");
    println!("listed again {:?} after the pause ended", resumed.elapsed());
    // A finds itself claimed and announces its subscription again.
    let back = watcher.wait(topic, true).await;
    assert_eq!(
        gone["id"], back["id"],
        "the same subscription, announced again"
    );
}

// ---------------------------------------------------------------------------
// 6. A node that fell behind the trimmed stream

/// Node A stops reading the stream (SIGSTOP: its tail's `XREAD` is answered
/// with the next entry, which stays unread in its socket) while B publishes
/// well past `--history-size`, so the stream is trimmed past A's position;
/// then every connection to Redis is cut (`CLIENT KILL`) and A runs again.
/// A dispatches the entry it had, finds its connection broken, reconnects,
/// sees the stream lost entries after its position, and ends its
/// subscriber's stream after that entry; resuming with the last id received
/// (no longer retained) replays the whole retained history as `earliest`,
/// then live updates. B, which kept up, keeps its subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_trimmed_stream_ends_its_streams_for_a_resume() {
    let _heavy = heavy().await;
    const PUBLISHED: usize = 300;
    let cluster = Cluster::start("trimmed", 2, &["--history-size", "20"]).await;
    let [a, b] = [&cluster.nodes[0], &cluster.nodes[1]];
    let topic = "https://example.com/trimmed";
    let sub_token = token(&[], &[topic], None);
    let mut on_a = open_stream(&a.url(), &[topic], Some(&sub_token), None).await;
    let mut on_b = open_stream(&b.url(), &[topic], Some(&sub_token), None).await;
    b.publish_ok(&[("topic", topic), ("data", "0")]).await;
    for sub in [&mut on_a, &mut on_b] {
        assert_eq!(sub.next().await.data, "0", "{}", cluster.logs());
    }

    // A's tail is back in its blocking XREAD once it has read "0".
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.signal("-STOP");
    // One update alone (A's blocked XREAD is answered with it), then the
    // rest in requests of 10, fewer than the history, each read by B before
    // the next (B keeps up with the trimming, A never reads them).
    b.publish_ok(&[("topic", topic), ("data", "1")]).await;
    assert_eq!(on_b.next().await.data, "1");
    for first in (2..PUBLISHED).step_by(10) {
        let numbers = first..(first + 10).min(PUBLISHED);
        publish_numbers(b, topic, numbers.clone()).await;
        let seen = on_b.take_within(numbers.len(), READY).await;
        assert_eq!(seen.last().unwrap().data, (numbers.end - 1).to_string());
    }
    let mut redis = cluster.redis.connection().await;
    // The retained entries: the last `length` published.
    let length = stream_length(&mut redis, "trimmed").await;
    assert!(length < PUBLISHED - 2, "the stream was trimmed: {length}");
    // Every connection of both nodes (not this one): B's resume where they
    // were, A's once it runs again.
    let killed: usize = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed} connections");
    a.signal("-CONT");

    // A delivers what it had read, then ends the stream.
    let mut got = Vec::new();
    let ended = loop {
        match on_a.next_event(READY).await {
            Ok(event) => got.push((event.last_event_id, event.data)),
            Err(why) => break why,
        }
    };
    let data: Vec<&str> = got.iter().map(|(_, d)| d.as_str()).collect();
    assert!(
        matches!(ended, NoEvent::Ended | NoEvent::Failed(_)),
        "A's subscriber: stream not ended ({ended:?}) after {data:?}\n{}",
        cluster.logs()
    );
    assert_eq!(data, ["1"], "A's subscriber before its stream ended");
    a.wait_stderr("was trimmed past this node's position", READY);

    // Resuming with the trimmed id replays everything retained.
    let last = got[0].0.clone();
    let mut resumed = open_stream(&a.url(), &[topic], Some(&sub_token), Some(&last)).await;
    assert_eq!(resumed.headers["last-event-id"], "earliest");
    let retained = resumed.take_within(length, READY).await;
    let want: Vec<String> = (PUBLISHED - length..PUBLISHED)
        .map(|i| i.to_string())
        .collect();
    let replayed: Vec<&str> = retained.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(replayed, want, "replay of the retained history");

    // Both nodes follow the stream again; B's subscriber was never ended.
    b.publish_ok(&[("topic", topic), ("data", "after")]).await;
    for (sub, what) in [(&mut resumed, "A's resumed"), (&mut on_b, "B's")] {
        let event = sub
            .next_event(READY)
            .await
            .unwrap_or_else(|why| panic!("{what} subscriber: {why:?}\n{}", cluster.logs()));
        assert_eq!(event.data, "after", "{what} subscriber");
    }
}

/// A node that stays connected but reads a publish request carrying more
/// updates than the history after the stream already trimmed most of them
/// (one script appends and trims): the entry numbers it reads skip, so it
/// ends its subscriber's stream after what came before, and that subscriber
/// resumes from the retained history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_larger_than_the_history_ends_streams_for_a_resume() {
    let _heavy = heavy().await;
    const BATCH: usize = 300;
    let cluster = Cluster::start("big-batch", 1, &["--history-size", "20"]).await;
    let node = &cluster.nodes[0];
    let topic = "https://example.com/big-batch";
    let sub_token = token(&[], &[topic], None);
    let mut sub = open_stream(&node.url(), &[topic], Some(&sub_token), None).await;
    let first = node
        .publish_ok(&[("topic", topic), ("data", "first")])
        .await;
    assert_eq!(sub.next().await.data, "first", "{}", cluster.logs());

    publish_numbers(node, topic, 0..BATCH).await;

    let ended = sub.next_event(READY).await;
    assert!(
        matches!(ended, Err(NoEvent::Ended | NoEvent::Failed(_))),
        "the stream ends instead of skipping the trimmed updates: {ended:?}\n{}",
        cluster.logs()
    );
    node.wait_stderr("was trimmed past this node's position", READY);

    let mut redis = cluster.redis.connection().await;
    let length = stream_length(&mut redis, "big-batch").await;
    assert!(length < BATCH, "the stream was trimmed: {length}");
    let mut resumed = open_stream(&node.url(), &[topic], Some(&sub_token), Some(&first)).await;
    assert_eq!(resumed.headers["last-event-id"], "earliest");
    let replayed: Vec<String> = resumed
        .take_within(length, READY)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    let want: Vec<String> = (BATCH - length..BATCH).map(|i| i.to_string()).collect();
    assert_eq!(replayed, want, "replay of the retained history");
}

/// Entries in the stream of the cluster started for `test`.
async fn stream_length(redis: &mut redis::aio::MultiplexedConnection, test: &str) -> usize {
    redis::cmd("XLEN")
        .arg(format!("{{ssehub-{test}}}"))
        .query_async(redis)
        .await
        .unwrap()
}

/// Publishes `numbers` (as data) to `topic` on `node` in one request (a JSON
/// array, appended atomically); asserts 200.
async fn publish_numbers(node: &Node, topic: &str, numbers: std::ops::Range<usize>) {
    let batch: Vec<Value> = numbers
        .map(|i| serde_json::json!({"topic": topic, "data": i.to_string()}))
        .collect();
    publish_batch_ok(&client(), &node.url(), &batch).await;
}

// ---------------------------------------------------------------------------
// 7. The live nodes, without the subscriptions API

/// The UI's stats stream of `node`, read with an admin token.
async fn stats(node: &Node) -> SseClient {
    // No overall timeout: the stream stays open; reads are bounded instead.
    let res = reqwest::Client::new()
        .get(format!("{}/.well-known/mercure/ui/stats", node.base()))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "stats of node {}", node.name);
    SseClient::new(res).waiting(READY)
}

/// The live nodes of the next stats event of `stream`.
async fn next_nodes(stream: &mut SseClient) -> Vec<Value> {
    let stats = next_stats(stream).await;
    stats["redis"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no redis.nodes in {stats}"))
        .clone()
}

/// The ids of `nodes`, sorted.
fn ids(nodes: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The members of the set of nodes in Redis, sorted.
async fn members(redis: &mut redis::aio::MultiplexedConnection, set: &str) -> Vec<String> {
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(set)
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap();
    members.sort();
    members
}

/// Two nodes without `--subscriptions`: the stats of each list both nodes,
/// itself marked, with leases of at most 15 s, and no subscription document
/// is written. A dead node that left documents (written here by hand, as a
/// node with the subscriptions API would) is left to a node that can
/// announce them. Once B stops, it leaves A's list within its lease, and A
/// removes it from the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_nodes_are_listed_without_the_subscriptions_api() {
    let _heavy = heavy().await;
    let mut cluster = Cluster::start("nodes", 2, &[]).await;
    let set = "{ssehub-nodes}:nodes";
    let mut redis = cluster.redis.connection().await;
    let documents = "{ssehub-nodes}:subscriptions:0123456789abcdef";
    redis::pipe()
        .zadd(set, "0123456789abcdef", 1)
        .hset(
            documents,
            "urn:uuid:x",
            r#"{"id":"urn:uuid:x","active":true}"#,
        )
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    // Each node's own id, once it lists itself (bounded: it announces
    // itself as it starts).
    let mut own = Vec::new();
    for node in &cluster.nodes {
        let mut stream = stats(node).await;
        let mut id = None;
        for _ in 0..10 {
            let nodes = next_nodes(&mut stream).await;
            let this: Vec<_> = nodes.iter().filter(|n| n["this"] == true).collect();
            assert!(this.len() <= 1, "{nodes:?}");
            if let Some(this) = this.first() {
                id = Some(this["id"].as_str().unwrap().to_string());
                break;
            }
        }
        own.push(id.unwrap_or_else(|| panic!("node {} never listed itself", node.name)));
    }
    let (id_a, id_b) = (own[0].clone(), own[1].clone());
    assert_ne!(id_a, id_b);
    let mut both = own.clone();
    both.sort();

    let mut on_a = stats(&cluster.nodes[0]).await;
    let nodes = next_nodes(&mut on_a).await;
    assert_eq!(ids(&nodes), both, "A lists both, not the dead one");
    for node in &nodes {
        assert_eq!(node["this"], node["id"] == id_a.as_str(), "{nodes:?}");
        let expires = node["expires_in_ms"].as_u64().unwrap();
        let renewed = node["renewed_ms_ago"].as_u64().unwrap();
        assert!(expires <= 15_000 && renewed <= 15_000, "{nodes:?}");
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{ssehub-nodes}:subscriptions:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(keys, [documents], "no node wrote documents");

    cluster.nodes[1].stop(Duration::from_secs(10));
    // B renewed its lease at most 15 s before it stopped (bounded wait).
    let mut listed = Vec::new();
    for _ in 0..30 {
        listed = ids(&next_nodes(&mut on_a).await);
        if listed == [id_a.as_str()] {
            break;
        }
        assert_eq!(listed, both, "only B may leave");
    }
    assert_eq!(
        listed,
        [id_a.as_str()],
        "B still listed\n{}",
        cluster.logs()
    );

    // A claims B at its next refresh (every 5 s); the dead node with
    // documents stays, for a node that can announce them.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut left = members(&mut redis, set).await;
    while left.contains(&id_b) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = members(&mut redis, set).await;
    }
    let mut want = vec![id_a.clone(), "0123456789abcdef".to_string()];
    want.sort();
    assert_eq!(left, want, "B removed, the node with documents kept");
    let kept: u64 = redis::cmd("HLEN")
        .arg(documents)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(kept, 1, "its documents kept");

    // Once its documents are gone (they expire), A removes it too.
    let () = redis::cmd("DEL")
        .arg(documents)
        .query_async(&mut redis)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while left.len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = members(&mut redis, set).await;
    }
    assert_eq!(left, [id_a.as_str()], "only A is left in the set");
}
