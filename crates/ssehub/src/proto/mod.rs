//! Pure protocol logic, with no I/O: SSE framing, topic selectors, the update
//! model and the authorization rules.

pub mod claims;
pub mod event;
pub mod selector;
pub mod sse;
pub mod update;
