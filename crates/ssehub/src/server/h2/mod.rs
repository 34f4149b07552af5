//! The hub's HTTP/2 server (RFC 9113, with HPACK, RFC 7541): one task per
//! connection serves all of its streams, and buffers are held only while
//! they hold something, so that an idle connection costs its protocol
//! state and little else (docs/architecture.md, "HTTP/2").
//!
//! - [`frame`]: frames parsed and checked, and written;
//! - [`hpack`]: header blocks decoded (the client's dynamic table) and
//!   encoded (statically: nothing kept per connection);
//! - [`request`]: a request's fields checked and turned into a request;
//! - [`conn`]: the connection, its flow control and its limits;
//! - [`stream`] and [`send`]: each stream's handler and body, and the
//!   frames written for them; [`body`]: a request's body as it arrives;
//! - [`wake`]: which streams were woken.

mod body;
mod conn;
pub(super) mod frame;
mod hpack;
mod request;
mod send;
mod stream;
mod wake;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use body::RequestBody;
pub(crate) use conn::Connection;
use frame::Reason;

/// A response, as a handler's future resolves to it.
pub(crate) type ResponseFuture =
    Pin<Box<dyn Future<Output = http::Response<axum::body::Body>> + Send>>;

/// What answers each request of a connection.
#[derive(Clone)]
pub(crate) struct Handler(
    pub(crate) Arc<dyn Fn(http::Request<RequestBody>) -> ResponseFuture + Send + Sync>,
);

/// The settings of the hub's HTTP/2 connections.
pub(crate) struct Config {
    /// Streams a client may hold open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub(crate) max_concurrent_streams: u32,
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
    pub(crate) stream_window: u32,
    /// The connection's receive window.
    pub(crate) connection_window: u32,
    /// Largest header list (SETTINGS_MAX_HEADER_LIST_SIZE): a request past it is answered 431.
    pub(crate) max_header_list_size: u32,
    /// Interval of the PINGs that find clients gone.
    pub(crate) keepalive_interval: Duration,
    /// How long a PING may stay unanswered.
    pub(crate) keepalive_timeout: Duration,
    /// Streams a client may reset before their response, beyond those that
    /// were answered, before the connection is closed (rapid reset,
    /// CVE-2023-44487).
    pub(crate) max_early_resets: usize,
    /// Streams this side may reset for a client's errors before the
    /// connection is closed (CVE-2025-8671).
    pub(crate) max_error_resets: usize,
    /// Called for each request answered 431.
    pub(crate) on_headers_too_large: Box<dyn Fn() + Send + Sync>,
}

/// Why a connection ended other than by a close.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The transport failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol: a GOAWAY with `reason` was queued.
    #[error("{why} ({reason})")]
    Protocol {
        /// The GOAWAY's error code.
        reason: Reason,
        /// What the client did.
        why: &'static str,
    },
    /// The client did not answer a PING in time.
    #[error("no answer to a PING in time")]
    KeepaliveTimeout,
}

impl Error {
    fn protocol(reason: Reason, why: &'static str) -> Error {
        Error::Protocol { reason, why }
    }
}
