//! The Redis log: every node of a cluster appends to one Redis stream and
//! follows it, so an update published on any node reaches subscribers on
//! every node, and any node can resume any client.
//!
//! Keys (all share the hash tag `{NAME}`, so they live in one Redis Cluster
//! slot and the append script may touch them together):
//! - `{NAME}`: the stream; one entry per update (see [`entry`]);
//! - `{NAME}:ids`: hash from event id to stream id, for resuming without a scan;
//! - `{NAME}:ids:order`: the index's entries oldest first, so the append
//!   script drops exactly the ids whose entries the stream trimmed;
//! - `{NAME}:count`: entries ever appended; each entry carries its number
//!   (field `n`), so a node whose next entry skips a number knows the
//!   stream was trimmed past what it had read;
//! - `{NAME}:nodes`: the live nodes, each with its lease, and
//!   `{NAME}:subscriptions:NODE`: the cluster's directory of subscriptions
//!   (see [`presence`]).

mod entry;
mod link;
mod presence;
mod tail;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;
use redis::{Script, Value};

use super::ids::IdGenerator;
use super::log::{Cluster, Holding, Log, LogError, Nodes, NotReady, Retention};
use super::tail::{tail, Tail};
use crate::config::RedisStore;
use crate::proto::event::Event;
use crate::proto::update::Update;
use link::{Connector, Link};

/// The names of the keys the log uses for stream `name`.
#[derive(Debug, Clone)]
struct Keys {
    /// The stream.
    stream: String,
    /// Event id to stream id.
    index: String,
    /// The index's entries, oldest first.
    order: String,
    /// The count of entries ever appended.
    count: String,
}

impl Keys {
    /// The keys of stream `name`, all with the hash tag `{name}`.
    fn new(name: &str) -> Keys {
        Keys {
            stream: format!("{{{name}}}"),
            index: format!("{{{name}}}:ids"),
            order: format!("{{{name}}}:ids:order"),
            count: format!("{{{name}}}:count"),
        }
    }
}

/// What the tail reports about the connection, read by `/readyz`.
pub(super) struct State {
    ready: AtomicBool,
    problem: Mutex<String>,
    last_id: Mutex<Option<String>>,
    /// The tail's lag behind the stream, in milliseconds of Redis's clock.
    lag_ms: AtomicU64,
}

impl State {
    fn new() -> State {
        State {
            ready: AtomicBool::new(false),
            problem: Mutex::new("not connected to Redis yet".into()),
            last_id: Mutex::new(None),
            lag_ms: AtomicU64::new(0),
        }
    }

    /// Marks the node ready; true if it was not.
    fn set_ready(&self) -> bool {
        !self.ready.swap(true, Ordering::SeqCst)
    }

    /// Marks the node not ready because of `problem`; true if it was ready.
    fn set_unready(&self, problem: &str) -> bool {
        *self.problem.lock() = problem.to_string();
        self.ready.swap(false, Ordering::SeqCst)
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records how far behind the stream the tail is.
    fn lagging(&self, ms: u64) {
        self.lag_ms.store(ms, Ordering::Relaxed);
    }

    /// Records the id of the newest event followed.
    fn saw(&self, id: &str) {
        *self.last_id.lock() = Some(id.to_string());
    }
}

/// A log in a Redis stream shared by every node.
pub struct RedisLog {
    link: Arc<Link>,
    keys: Keys,
    retention: Retention,
    append: Script,
    state: Arc<State>,
    name: String,
    stream: String,
    ids: IdGenerator,
}

impl RedisLog {
    /// Connects lazily to `store` and starts following its stream; the node
    /// reports not ready until the first connection succeeds.
    pub fn open(store: &RedisStore, retention: Retention) -> anyhow::Result<(RedisLog, Tail)> {
        let connector = Connector::new(store)?;
        let keys = Keys::new(&store.stream);
        let state = Arc::new(State::new());
        let (tx, rx) = tail();
        let name = store.redacted_url();
        let link = Arc::new(Link::new(connector.clone(), name.clone()));
        tokio::spawn(tail::run(
            connector,
            keys.stream.clone(),
            tx,
            state.clone(),
            link.clone(),
        ));
        let log = RedisLog {
            stream: store.stream.clone(),
            link,
            keys,
            retention,
            append: Script::new(include_str!("append.lua")),
            state,
            name,
            ids: IdGenerator::default(),
        };
        Ok((log, rx))
    }

    /// Announces this node in the cluster, kept in this log's Redis, for as
    /// long as what this returns is held: the live nodes and, with
    /// `subscriptions`, the cluster's directory of subscriptions with the
    /// subscription documents it asks this node to announce.
    pub fn presence(&self, subscriptions: bool) -> (Arc<dyn Nodes>, Option<Cluster>) {
        let (presence, announcements) =
            presence::Presence::start(self.link.clone(), &self.stream, subscriptions);
        let presence = Arc::new(presence);
        let cluster = announcements.map(|announcements| Cluster {
            directory: presence.clone(),
            announcements,
        });
        (presence, cluster)
    }
}

impl Log for RedisLog {
    fn append(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        async move {
            if updates.is_empty() {
                return Ok(Vec::new());
            }
            let mut call = self.append.prepare_invoke();
            call.key(&self.keys.stream)
                .key(&self.keys.index)
                .key(&self.keys.order)
                .key(&self.keys.count)
                .arg(self.retention.max_count)
                .arg(self.retention.max_age.map_or(String::new(), min_id))
                .arg(updates.len());
            for update in &updates {
                let fields = entry::fields(update);
                call.arg(&update.id).arg(fields.len() * 2);
                for (name, value) in fields {
                    call.arg(name).arg(value);
                }
            }
            let ids: Vec<String> = self
                .link
                .run("append the update", |mut conn| async move {
                    call.invoke_async(&mut conn).await
                })
                .await?;
            updates
                .into_iter()
                .zip(ids)
                .map(|(update, id)| {
                    let seq = entry::position(&id).ok_or_else(|| {
                        LogError::Corrupt(format!("Redis returned an unusable stream id {id}"))
                    })?;
                    Ok(Arc::new(Event::new(seq, update)))
                })
                .collect()
        }
        .boxed()
    }

    fn position<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, LogError>> {
        async move {
            let stream_id: Option<String> = self
                .link
                .run("look up the event id", |mut conn| async move {
                    redis::cmd("HGET")
                        .arg(&self.keys.index)
                        .arg(id)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            Ok(stream_id.as_deref().and_then(entry::position))
        }
        .boxed()
    }

    fn read_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        async move {
            // Inclusive lower bound: after the cursor, and not expired.
            let start = self.unexpired(after.map(|p| p + 1));
            let start = start.map_or("-".to_string(), entry::stream_id);
            self.range("XRANGE", start, "+".into(), limit).await
        }
        .boxed()
    }

    fn read_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>> {
        async move {
            // Inclusive upper bound: the position just before `before`.
            let end = match before {
                Some(0) => return Ok(Vec::new()),
                Some(p) => entry::stream_id(p - 1),
                None => "+".into(),
            };
            let start = self
                .unexpired(None)
                .map_or("-".to_string(), entry::stream_id);
            let mut page = self.range("XREVRANGE", end, start, limit).await?;
            page.reverse();
            Ok(page)
        }
        .boxed()
    }

    fn before_time(&self, unix_ms: u64) -> BoxFuture<'_, Result<Option<Arc<Event>>, LogError>> {
        // Stream ids are the milliseconds of Redis's clock: the newest
        // entry before `unix_ms-0`.
        let before = unix_ms
            .checked_shl(entry::SEQ_BITS)
            .filter(|p| p >> entry::SEQ_BITS == unix_ms);
        async move { Ok(self.read_before(before, 1).await?.pop()) }.boxed()
    }

    fn last_id(&self) -> Option<String> {
        self.state.last_id.lock().clone()
    }

    fn new_id(&self) -> String {
        self.ids.next()
    }

    fn holding(&self) -> BoxFuture<'_, Holding> {
        async move {
            let events: Option<u64> = self
                .link
                .run("measure the stream", |mut conn| async move {
                    redis::cmd("XLEN")
                        .arg(&self.keys.stream)
                        .query_async(&mut conn)
                        .await
                })
                .await
                .ok();
            // Redis's own memory accounting (MEMORY USAGE) samples the
            // stream: not cheap enough for every scrape.
            Holding {
                events,
                bytes: None,
            }
        }
        .boxed()
    }

    fn lag(&self) -> Option<Duration> {
        Some(Duration::from_millis(
            self.state.lag_ms.load(Ordering::Relaxed),
        ))
    }

    fn readiness(&self) -> Result<(), NotReady> {
        if self.state.is_ready() {
            return Ok(());
        }
        Err(NotReady {
            store: format!("Redis at {}", self.name),
            problem: self.state.problem.lock().clone(),
        })
    }
}

impl RedisLog {
    /// The first position reads may return, at or after `from` (the
    /// start of the stream when `None`): entries older than the age limit
    /// are skipped even while the stream still holds them.
    fn unexpired(&self, from: Option<u64>) -> Option<u64> {
        let floor = self
            .retention
            .max_age
            .and_then(|age| entry::position(&min_id(age)));
        match (from, floor) {
            (Some(f), Some(m)) => Some(f.max(m)),
            (f, m) => f.or(m),
        }
    }

    /// The entries `command` (`XRANGE` or `XREVRANGE`) returns from `from`
    /// to `to`, at most `limit`, in the order it returns them.
    async fn range(
        &self,
        command: &'static str,
        from: String,
        to: String,
        limit: usize,
    ) -> Result<Vec<Arc<Event>>, LogError> {
        let reply: Value = self
            .link
            .run("read the history", |mut conn| async move {
                redis::cmd(command)
                    .arg(&self.keys.stream)
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let entries = entry::decode_entries(reply)
            .map_err(|e| LogError::Corrupt(format!("the stream at {} holds {e}", self.name)))?;
        Ok(entries
            .into_iter()
            .map(|(seq, update)| Arc::new(Event::new(seq, update)))
            .collect())
    }
}

/// The oldest stream id kept when entries older than `age` are dropped.
fn min_id(age: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-0", now.saturating_sub(age).as_millis())
}
