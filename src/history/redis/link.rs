//! A shared connection for commands, opened on first use and again after it
//! broke: while Redis is down every command fails fast with a clear error
//! instead of waiting, and the first command after Redis is back reconnects.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::Mutex;

use crate::history::LogError;

/// Longest wait for a TCP (and TLS) connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a command's reply. An append with `appendfsync always`
/// waits for Redis's fsync, well under this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection settings; `reply` is the longest wait for a reply, if any.
pub(super) fn connection_config(reply: Option<Duration>) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(reply)
}

/// One multiplexed connection shared by every command of this node.
pub(super) struct Link {
    client: Client,
    /// Where Redis is, password hidden, for error messages.
    name: String,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Link {
    /// A link to `client`, not connected yet.
    pub(super) fn new(client: Client, name: String) -> Link {
        Link {
            client,
            name,
            conn: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config(Some(REPLY_TIMEOUT)))
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection; the next command opens a new one.
    pub(super) async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs `op` on the connection; a broken connection is dropped so the
    /// next call reconnects.
    pub(super) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, LogError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let result = match self.connection().await {
            Ok(conn) => op(conn).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            if is_broken(&e) {
                if let Ok(mut slot) = self.conn.try_lock() {
                    *slot = None;
                }
            }
            LogError::Unavailable(format!("Redis at {} failed to {what}: {e}", self.name))
        })
    }
}

/// Whether `e` means the connection itself is unusable.
pub(super) fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
