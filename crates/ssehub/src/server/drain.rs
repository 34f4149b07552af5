//! Shutdown bookkeeping shared by every transport: the stop signal that
//! accept loops and connections watch, and the completion handle each
//! connection task holds until it ends.

use tokio::sync::{mpsc, watch};

/// Signals that every connection task ended: each holds a clone, and the
/// drain waits until the last one is dropped.
pub(crate) type Done = mpsc::Sender<()>;

/// Resolves once the stop signal is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
