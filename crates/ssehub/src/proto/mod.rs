//! Pure protocol logic, with no I/O: SSE framing, topic selectors, the update
//! model and the authorization rules.

pub mod claims;
pub mod event;
pub mod generation;
pub mod selector;
pub mod sse;
pub mod text;
pub mod update;
