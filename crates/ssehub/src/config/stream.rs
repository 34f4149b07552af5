//! What subscribers' streams carry, and what one client may hold or send.

use std::time::Duration;

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration};

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

/// What one client may hold open, send, or leave unread.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct LimitOptions {
    /// HTTP/2 (and HTTP/3) streams one connection may hold open
    #[arg(long, env = "SSEHUB_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// Largest accepted publish body in bytes
    #[arg(long, env = "SSEHUB_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Updates queued per subscriber before a slow one is disconnected
    #[arg(long, env = "SSEHUB_QUEUE_SIZE", value_name = "N")]
    pub queue_size: Option<usize>,
}

layer!(LimitOptions {
    max_concurrent_streams,
    max_body,
    queue_size
});

/// What subscribers' streams carry besides updates.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Heartbeat interval; zero disables heartbeats.
    pub heartbeat: Duration,
    /// Whether the subscriptions API is on.
    pub subscriptions: bool,
}

/// What one client may hold open, send, or leave unread.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// HTTP/2 and HTTP/3 concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Largest publish body in bytes.
    pub max_body: usize,
    /// Per-subscriber queue bound.
    pub queue_size: usize,
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

impl LimitOptions {
    /// Applies the defaults; every limit is at least 1.
    pub(super) fn resolve(self) -> Result<LimitsConfig, ConfigError> {
        Ok(LimitsConfig {
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS
                .at_least_one(self.max_concurrent_streams)?,
            max_body: at_most_a_gibibyte(defaults::MAX_BODY.at_least_one(self.max_body)?)?,
            queue_size: defaults::QUEUE_SIZE.at_least_one(self.queue_size)?,
        })
    }
}

/// The largest `--max-body`: a record of the disk log stores its lengths in
/// 32 bits, and one update larger than this is not what a push hub is for.
const MAX_BODY_LIMIT: usize = 1 << 30;

fn at_most_a_gibibyte(max_body: usize) -> Result<usize, ConfigError> {
    if max_body > MAX_BODY_LIMIT {
        return Err(ConfigError::Invalid(
            "max-body",
            "must be at most 1073741824 (1 GiB)",
        ));
    }
    Ok(max_body)
}
