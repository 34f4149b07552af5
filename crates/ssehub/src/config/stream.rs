//! What subscribers' streams carry besides updates.

use std::time::Duration;

use serde::Deserialize;

use super::{defaults, HumanDuration};

/// What subscribers' streams carry besides updates.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct StreamOptions {
    /// Interval of heartbeat comments on idle streams; 0 disables
    #[arg(long, env = "SSEHUB_HEARTBEAT", value_name = "DURATION")]
    pub heartbeat: Option<HumanDuration>,
    /// Enable the subscriptions API and subscription events
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub subscriptions: Option<bool>,
}

layer!(StreamOptions {
    heartbeat,
    subscriptions
});

/// What subscribers' streams carry besides updates.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Heartbeat interval; zero disables heartbeats.
    pub heartbeat: Duration,
    /// Whether the subscriptions API is on.
    pub subscriptions: bool,
}

impl StreamOptions {
    /// Applies the defaults.
    pub(super) fn resolve(self) -> StreamConfig {
        StreamConfig {
            heartbeat: defaults::HEARTBEAT.or(self.heartbeat).0,
            subscriptions: defaults::SUBSCRIPTIONS.or(self.subscriptions),
        }
    }
}
