//! Opening the configured store: the log, its tail and, for a store that
//! several nodes share, the cluster's nodes and directory of subscriptions.

use std::sync::Arc;

use super::disk::DiskLog;
use super::log::{Cluster, Log, Nodes, Retention};
use super::memory::MemoryLog;
use super::redis::RedisLog;
use super::tail::Tail;
use crate::config::{self, Config};

/// An opened store.
pub struct Store {
    /// The log.
    pub log: Arc<dyn Log>,
    /// Every appended event, in order, for the fan-out.
    pub tail: Tail,
    /// The live nodes, when the store is shared by several nodes; this node
    /// is announced among them for as long as this is held.
    pub nodes: Option<Arc<dyn Nodes>>,
    /// The cluster's directory of subscriptions, when the store is shared by
    /// several nodes and the subscriptions API is on.
    pub cluster: Option<Cluster>,
}

/// Opens the store `config` names.
pub fn open(config: &Config) -> anyhow::Result<Store> {
    let retention = Retention {
        max_count: config.history.size,
        max_bytes: config.history.bytes,
        max_age: config.history.ttl,
    };
    let (log, tail): (Arc<dyn Log>, _) = match &config.history.store {
        config::Store::Redis(store) => {
            let (log, tail) = RedisLog::open(store, retention)?;
            let (nodes, cluster) = log.presence(config.stream.subscriptions);
            return Ok(Store {
                log: Arc::new(log),
                tail,
                nodes: Some(nodes),
                cluster,
            });
        }
        config::Store::Memory => {
            let (log, tail) = MemoryLog::new(retention);
            (Arc::new(log), tail)
        }
        config::Store::Disk => {
            let (log, tail) = DiskLog::open(&config.data_dir, retention)?;
            (Arc::new(log), tail)
        }
    };
    Ok(Store {
        log,
        tail,
        nodes: None,
        cluster: None,
    })
}
