//! Opening the configured store: the log, its tail and, for a store that
//! several nodes share, the cluster's directory of subscriptions.

use std::sync::Arc;

use super::disk::DiskLog;
use super::log::{Announcements, Directory, Log, Retention};
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
    /// The cluster's directory of subscriptions, when the store is shared by
    /// several nodes and the subscriptions API is on.
    pub cluster: Option<Cluster>,
}

/// What a store shared by several nodes adds for the subscriptions API.
pub struct Cluster {
    /// Where every node records and lists subscriptions.
    pub directory: Arc<dyn Directory>,
    /// Subscription documents to publish as subscription events.
    pub announcements: Announcements,
}

/// Opens the store `config` names.
pub fn open(config: &Config) -> anyhow::Result<Store> {
    let retention = Retention {
        max_count: config.history.size,
        max_bytes: config.history.bytes,
        max_age: config.history.ttl,
    };
    let (log, tail, cluster): (Arc<dyn Log>, _, _) = match &config.history.store {
        config::Store::Redis(store) => {
            let (log, tail) = RedisLog::open(store, retention)?;
            let cluster = config.stream.subscriptions.then(|| {
                let (directory, announcements) = log.directory();
                Cluster {
                    directory,
                    announcements,
                }
            });
            (Arc::new(log), tail, cluster)
        }
        config::Store::Memory => {
            let (log, tail) = MemoryLog::new(retention);
            (Arc::new(log), tail, None)
        }
        config::Store::Disk => {
            let (log, tail) = DiskLog::open(&config.data_dir, retention)?;
            (Arc::new(log), tail, None)
        }
    };
    Ok(Store { log, tail, cluster })
}
