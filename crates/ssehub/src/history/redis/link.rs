//! Connections to Redis, one server or a Redis Cluster.
//!
//! [`Link`] is the connection every command of a node shares, opened on first
//! use and again after it broke: while Redis is down every command fails fast
//! with a clear error instead of waiting, and the first command after Redis
//! is back reconnects. The tail opens its own connection with [`Connector`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::config::RedisStore;
use crate::history::log::LogError;

/// Longest wait for a TCP (and TLS) connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a command's reply. An append with `appendfsync always`
/// waits for Redis's fsync, well under this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens connections to one Redis server or to a Redis Cluster.
#[derive(Clone)]
pub(super) enum Connector {
    /// One server (or a proxy in front of several).
    Single(Box<Client>),
    /// A Redis Cluster, discovered from the store URL as a seed node.
    Cluster(Box<ClusterClient>),
}

impl Connector {
    /// A connector for `store`, trusting its CA file if one is configured.
    pub(super) fn new(store: &RedisStore) -> anyhow::Result<Connector> {
        let refused = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("cannot use Redis at {}: {e}", store.redacted_url())
        };
        let certs = match &store.ca_cert {
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(
                    std::fs::read(path)
                        .map_err(|e| refused(&format!("{}: {e}", path.display())))?,
                ),
            }),
            None => None,
        };
        let url = store.url.as_str();
        Ok(match (store.cluster, certs) {
            (false, None) => {
                Connector::Single(Box::new(Client::open(url).map_err(|e| refused(&e))?))
            }
            (false, Some(certs)) => Connector::Single(Box::new(
                Client::build_with_tls(url, certs).map_err(|e| refused(&e))?,
            )),
            (true, certs) => {
                let mut builder = ClusterClient::builder([url]);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                Connector::Cluster(Box::new(builder.build().map_err(|e| refused(&e))?))
            }
        })
    }

    /// Opens a connection whose replies may take up to `reply`.
    pub(super) async fn connect(&self, reply: Duration) -> Result<Conn, RedisError> {
        Ok(match self {
            Connector::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(reply));
                Conn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Connector::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(reply);
                Conn::Cluster(client.get_async_connection_with_config(config).await?)
            }
        })
    }
}

/// A connection to one server or to a cluster; cheap to clone (clones share
/// the connection).
#[derive(Clone)]
pub(super) enum Conn {
    /// To one server.
    Single(MultiplexedConnection),
    /// To a cluster, routing each command to the node owning its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The shared connection, or why there is none.
enum Slot {
    /// Not connected: the next command connects.
    Empty,
    Open(Conn),
    /// The last attempt failed at this instant. Commands that were already
    /// waiting for it fail with its error instead of each making an attempt
    /// of its own (while Redis hangs, they would queue one connect timeout
    /// after another); later commands try again.
    Failed(Instant, Arc<RedisError>),
}

/// One connection shared by every command of this node.
pub(super) struct Link {
    connector: Connector,
    /// Where Redis is, password hidden, for error messages.
    name: String,
    conn: Mutex<Slot>,
}

impl Link {
    /// A link through `connector`, not connected yet.
    pub(super) fn new(connector: Connector, name: String) -> Link {
        Link {
            connector,
            name,
            conn: Mutex::new(Slot::Empty),
        }
    }

    async fn connection(&self) -> Result<Conn, Arc<RedisError>> {
        let arrived = Instant::now();
        let mut slot = self.conn.lock().await;
        match &*slot {
            Slot::Open(conn) => return Ok(conn.clone()),
            Slot::Failed(at, error) if *at >= arrived => return Err(error.clone()),
            _ => {}
        }
        match self.connector.connect(REPLY_TIMEOUT).await {
            Ok(conn) => {
                *slot = Slot::Open(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let error = Arc::new(e);
                *slot = Slot::Failed(Instant::now(), error.clone());
                Err(error)
            }
        }
    }

    /// Drops the connection; the next command opens a new one.
    pub(super) async fn forget(&self) {
        *self.conn.lock().await = Slot::Empty;
    }

    /// Runs `op` on the connection; a broken connection is dropped so the
    /// next call reconnects.
    pub(super) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, LogError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let failed = |source| LogError::Redis {
            at: self.name.clone(),
            what,
            source,
        };
        let conn = self.connection().await.map_err(failed)?;
        op(conn).await.map_err(|e| {
            if is_broken(&e) {
                if let Ok(mut slot) = self.conn.try_lock() {
                    *slot = Slot::Empty;
                }
            }
            failed(Arc::new(e))
        })
    }
}

/// Redis's clock, in milliseconds since the epoch (the nodes' own clocks
/// may disagree; Redis's is the one they share).
pub(super) async fn now_ms(conn: &mut Conn) -> Result<u64, RedisError> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}

/// Whether `e` means the connection itself is unusable.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
