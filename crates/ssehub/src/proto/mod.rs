//! Pure protocol logic, with no I/O: SSE framing, topic selectors, the update
//! model and the authorization rules.

pub mod claims;
pub mod compress;
pub mod event;
pub mod generation;
pub mod selector;
pub mod sse;
pub mod text;
pub mod update;

/// The hub's path (Mercure's well-known URI): subscribe and publish there;
/// everything under it is the hub's own (subscription events, the
/// subscriptions API), and no publisher may use it as a topic.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The browser UI's path (Mercure's path for its debugging UI).
pub const UI_PATH: &str = "/.well-known/mercure/ui";
