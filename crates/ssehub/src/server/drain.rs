//! Shutdown bookkeeping shared by every transport: the stop signal that
//! accept loops and connections watch, and the completion handle each
//! connection task holds until it ends.

use std::future::Future;
use std::pin::Pin;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::{mpsc, watch};

/// Signals that every connection task ended: each holds a clone, and the
/// drain waits until the last one is dropped.
pub(crate) type Done = mpsc::Sender<()>;

/// Resolves once the stop signal is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// A connection that can be asked to finish: hyper's, and the hub's own
/// HTTP/2 connections.
pub(crate) trait Graceful: Future {
    /// Answers what is in flight, takes no new request.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// Drives a connection to its end; once the stop signal is set, it is
/// asked to finish gracefully (answers in flight complete, no new request
/// is read) and driven until it has.
pub(crate) async fn serve_until_stopped<C: Graceful>(
    conn: C,
    stop: &mut watch::Receiver<bool>,
) -> C::Output {
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
