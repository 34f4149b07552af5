//! The log of accepted updates: the one source of both replay and live fan-out.
//!
//! A backend assigns each appended update a sequence number, keeps an index
//! from event id to sequence number (finding an id never scans), serves pages
//! of events after a sequence number, and feeds every appended event, in
//! sequence order, to the hub's tail channel (see [`Tailed`]).

pub mod disk;
mod memory;
mod open;
pub mod redis;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::proto::event::Event;
use crate::proto::update::Update;

pub use disk::{DiskLog, Retention};
pub use memory::MemoryLog;
pub use open::{open, Cluster, Store};
pub use redis::RedisLog;

/// What the log's tail carries, in log order.
#[derive(Debug)]
pub enum Tailed {
    /// An appended event.
    Event(Arc<Event>),
    /// Events between the previous item and the next one are lost to this
    /// node: a log shared by several nodes trimmed them before this node
    /// could read them. Its subscribers must then resume from the history.
    Lost,
}

/// Receives every appended event in sequence order (the log's tail).
pub type Tail = mpsc::UnboundedReceiver<Tailed>;

/// Receives the subscription documents a cluster's directory asks this node
/// to publish as subscription events: those of a node that died (marked
/// inactive), or this node's own after its lease lapsed.
pub type Announcements = mpsc::UnboundedReceiver<Vec<Value>>;

/// Why the log could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The backend cannot take writes right now (answered with 503).
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
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

    /// The id of the newest event, if any.
    fn last_id(&self) -> Option<String>;

    /// Whether the store can take writes now; the reason when it cannot.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
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
