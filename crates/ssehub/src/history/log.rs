//! What every store provides: the [`Log`] trait, its errors, the retention
//! rule, and, for a store shared by several nodes, the cluster's nodes and
//! its directory of subscriptions.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::proto::event::Event;
use crate::proto::update::Update;

/// How much history to keep, the same rule for every store; whichever limit
/// is hit first applies. A store keeps the newest update whatever its size.
///
/// - disk: all three, exactly (retention moves the first retained position
///   and deletes whole segments before it);
/// - memory: all three, the bytes being those of the encoded frames;
/// - Redis: the count (`XADD MAXLEN ~`, so a few more may stay) and the age
///   (`XTRIM MINID` at each append, and skipped by reads in between), not
///   the bytes: Redis's own `maxmemory` bounds those.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Most updates kept.
    pub max_count: usize,
    /// Most bytes of history kept.
    pub max_bytes: u64,
    /// Oldest update kept, if limited by age.
    pub max_age: Option<Duration>,
}

/// Receives the subscription documents a cluster's directory asks this node
/// to publish as subscription events: those of a node that died (marked
/// inactive), or this node's own after its lease lapsed.
pub type Announcements = mpsc::Receiver<Vec<Value>>;

/// What a store shared by several nodes adds for the subscriptions API.
pub struct Cluster {
    /// Where every node records and lists subscriptions.
    pub directory: Arc<dyn Directory>,
    /// Subscription documents to publish as subscription events; they must
    /// be drained, or the directory stops renewing this node's lease.
    pub announcements: Announcements,
}

/// Why the log could not serve a request (each is answered with 503).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// Reading or writing the history's files failed.
    #[error("the history store is unavailable: {what}: {source}")]
    Io {
        /// What was being done, e.g. "could not write the history, update not stored".
        what: &'static str,
        /// The error of the operating system (shared by every request of a
        /// failed group commit).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The disk holding the history is full; writes succeed again once
    /// space is freed.
    #[error("the history store is unavailable: {what}: {source}")]
    Full {
        /// What was being done.
        what: &'static str,
        /// The error of the operating system ("No space left on device").
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Redis failed to carry out a command, or could not be reached.
    #[error("the history store is unavailable: Redis at {at} failed to {what}: {source}")]
    Redis {
        /// Where Redis is, password hidden.
        at: String,
        /// What was asked of it, e.g. "append".
        what: &'static str,
        /// Redis's error, or the connection's.
        #[source]
        source: Arc<::redis::RedisError>,
    },
    /// The thread writing the history has stopped (the hub is shutting down,
    /// or it failed).
    #[error("the history store is unavailable: the history writer has stopped")]
    WriterStopped,
    /// Stored history could not be decoded: a record failed its checksum, or
    /// a shared store holds entries this version cannot read.
    #[error("the history store is unavailable: {0}")]
    Corrupt(String),
}

impl LogError {
    /// An I/O failure while doing `what`: [`LogError::Full`] when the disk
    /// is full, [`LogError::Io`] otherwise.
    pub fn io(what: &'static str, source: std::io::Error) -> LogError {
        let source = Arc::new(source);
        match source.kind() {
            std::io::ErrorKind::StorageFull => LogError::Full { what, source },
            _ => LogError::Io { what, source },
        }
    }
}

/// Why a store cannot take writes right now (`/readyz` answers 503).
#[derive(Debug, thiserror::Error)]
#[error("{store} is unreachable: {problem}")]
pub struct NotReady {
    /// The store, e.g. "Redis at 127.0.0.1:6379".
    pub store: String,
    /// The last error seen.
    pub problem: String,
}

/// How much a store holds, for metrics; `None` where it cannot tell
/// cheaply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// Events retained.
    pub events: Option<u64>,
    /// Bytes they take in the store.
    pub bytes: Option<u64>,
}

/// An append-only, bounded log of updates.
pub trait Log: Send + Sync + 'static {
    /// Appends updates in order; returns once they are stored (durably, for
    /// durable backends), with their assigned positions.
    fn append(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>>;

    /// The position of the event with this id, if it is still retained.
    fn position<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, LogError>>;

    /// Up to `limit` events after position `after` (from the oldest retained
    /// event when `None`), in order.
    fn read_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>>;

    /// Up to `limit` retained events just before position `before` (before
    /// the end of the log when `None`), in order, the last one being the
    /// newest before it: a page of history read backward. A page may hold
    /// fewer than `limit` (the disk log's stops at the start of a segment);
    /// it is empty only when no retained event comes before `before`.
    fn read_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, LogError>>;

    /// The newest retained event appended before `unix_ms` (milliseconds
    /// since the Unix epoch, on the store's clock: the hub's, or Redis's),
    /// found from the append times without scanning; `None` when there is
    /// none (the log is empty, or every event before that time has left
    /// the history).
    fn before_time(&self, unix_ms: u64) -> BoxFuture<'_, Result<Option<Arc<Event>>, LogError>>;

    /// The id of the newest event, if any.
    fn last_id(&self) -> Option<String>;

    /// A new event id, for an update published without one; ids generated
    /// by a log sort in generation order, also across restarts.
    fn new_id(&self) -> String;

    /// Stops taking appends once those already made are stored, and lets
    /// go of what the store holds exclusively (the disk log's directory
    /// lock), so another hub may open it at once. Appends after this fail
    /// with [`LogError::WriterStopped`]. Default: nothing to do.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Whether the store can take writes now; the reason when it cannot.
    fn readiness(&self) -> Result<(), NotReady> {
        Ok(())
    }

    /// How much the store holds (read at each metrics scrape, so cheap: no
    /// scan). Default: unknown.
    fn holding(&self) -> BoxFuture<'_, Holding> {
        Box::pin(std::future::ready(Holding::default()))
    }

    /// For a store shared by several nodes, how far this node's feed lags
    /// behind it. Default: none (the store is this node's own).
    fn lag(&self) -> Option<Duration> {
        None
    }
}

/// The directory of subscriptions shared by the nodes of a cluster, for the
/// subscriptions API: each node records its own subscriptions' documents
/// (JSON-LD, each with its `id` and `active`), and lists everyone's.
pub trait Directory: Send + Sync + 'static {
    /// Records documents of this node's subscriptions: added when `active`
    /// is true, removed when it is false.
    fn record(&self, documents: Vec<Value>);

    /// The document of every active subscription on every live node.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Value>, LogError>>;
}

/// A node of a cluster holding a live lease, as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its id in the cluster: random, chosen each time the node starts.
    pub id: String,
    /// Whether it is the node answering.
    pub this: bool,
    /// How long ago it last renewed its lease.
    pub renewed: Duration,
    /// How long its lease runs unless renewed; once it lapses the node is
    /// no longer listed.
    pub expires_in: Duration,
}

/// The live nodes of a cluster: every node announces itself with a lease
/// that it renews while it runs.
pub trait Nodes: Send + Sync + 'static {
    /// Every node whose lease has not lapsed (this one too, once it has
    /// announced itself), ordered by id; durations on the store's clock.
    fn live(&self) -> BoxFuture<'_, Result<Vec<Node>, LogError>>;
}
