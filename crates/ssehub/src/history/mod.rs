//! The log of accepted updates: the one source of both replay and live fan-out.
//!
//! A backend assigns each appended update a sequence number, keeps an index
//! from event id to sequence number (finding an id never scans), serves pages
//! of events after a sequence number, and feeds every appended event, in
//! sequence order, to the hub's tail channel (see [`Tailed`]).

pub mod disk;
mod memory;
pub mod redis;

use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::fanout::Fanout;
use crate::proto::event::Event;
use crate::proto::update::Update;
use crate::subscriptions::Directory;

pub use disk::{DiskLog, Retention};
pub use memory::MemoryLog;
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

    /// The directory of subscriptions shared by the nodes of a cluster, for
    /// stores that several nodes share: `local` is this node's fan-out, and
    /// `announce` takes subscription documents to publish as subscription
    /// events (those of a node that died, marked inactive).
    fn directory(
        &self,
        local: Weak<Fanout>,
        announce: mpsc::UnboundedSender<Vec<Value>>,
    ) -> Option<Arc<dyn Directory>> {
        let _ = (local, announce);
        None
    }
}
