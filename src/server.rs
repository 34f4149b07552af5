//! The listener: one accept loop that sets every connection setting
//! explicitly, and a graceful drain at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Store};
use crate::history::{DiskLog, Log, MemoryLog, Retention, Tail};
use crate::hub::{Hub, Keys};

/// Time a client has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 streams one connection may hold: many topics, many tabs.
const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// HTTP/2 PING interval, to notice peers that vanished.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may stay unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A hub serving on a bound address.
pub struct RunningHub {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The hub's shared state.
    pub hub: Arc<Hub>,
    /// The keys the hub verifies with.
    pub keys: Keys,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Loads keys, opens the log, binds the listener and starts serving.
pub async fn start(config: Config) -> anyhow::Result<RunningHub> {
    let keys = Keys::load(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (log, tail) = open_log(&config)?;
    let hub = Hub::start(config, &keys, log, tail)?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, hub.clone(), stopped));
    Ok(RunningHub {
        addr,
        hub,
        keys,
        stop,
        task,
    })
}

/// Opens the configured history store.
fn open_log(config: &Config) -> anyhow::Result<(Arc<dyn Log>, Tail)> {
    Ok(match config.store {
        Store::Memory => {
            let (log, tail) = MemoryLog::new(config.history_size);
            (Arc::new(log), tail)
        }
        Store::Disk => {
            let retention = Retention {
                max_count: config.history_size,
                max_bytes: config.history_bytes,
                max_age: config.history_ttl,
            };
            let (log, tail) = DiskLog::open(&config.data_dir, retention)?;
            (Arc::new(log), tail)
        }
    })
}

impl RunningHub {
    /// Stops accepting, ends every stream, and waits (bounded by the
    /// configured shutdown timeout) for connections to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    builder
}

async fn serve(listener: TcpListener, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let builder = Arc::new(connection_builder());
    let service = TowerToHyperService::new(crate::http::router(hub.clone()));
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let service = service.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    hub.shutdown();
    if tokio::time::timeout(hub.config.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some connections were still open after {:?}",
            hub.config.shutdown_timeout
        );
    }
}
