//! ssehub: a Server-Sent Events push hub speaking the Mercure protocol.
//!
//! Publishers POST updates to topics; subscribers hold one SSE stream on many
//! topics. Every update is appended to a log before it is acknowledged, and
//! fan-out reads that log, so replay and live delivery share one order.

pub mod acme;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fanout;
pub mod files;
pub mod history;
pub mod http;
pub mod hub;
pub mod jwks;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod proto;
pub mod server;
pub mod subscribe;
pub mod subscriptions;
