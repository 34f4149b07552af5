//! What subscribers' streams carry besides updates.

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
    /// Compress streams for clients that ask (`Accept-Encoding`: zstd or gzip), each update compressed once for every subscriber: `on` or `off`
    #[arg(long, env = "SSEHUB_COMPRESSION", value_name = "on|off")]
    pub compression: Option<String>,
}

layer!(StreamOptions {
    heartbeat,
    subscriptions,
    compression
});

/// What subscribers' streams carry besides updates.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Heartbeat interval; zero disables heartbeats.
    pub heartbeat: Duration,
    /// Whether the subscriptions API is on.
    pub subscriptions: bool,
    /// Whether streams are compressed for clients that ask.
    pub compression: bool,
}

impl StreamOptions {
    /// Applies the defaults and checks the values.
    pub(super) fn resolve(self) -> Result<StreamConfig, ConfigError> {
        let compression = match defaults::COMPRESSION.or::<String>(self.compression).trim() {
            "on" => true,
            "off" => false,
            other => {
                return Err(ConfigError::Unusable {
                    flag: defaults::COMPRESSION.flag,
                    why: format!("unknown value {other:?}: use on or off"),
                })
            }
        };
        Ok(StreamConfig {
            heartbeat: defaults::HEARTBEAT.or(self.heartbeat).0,
            subscriptions: defaults::SUBSCRIPTIONS.or(self.subscriptions),
            compression,
        })
    }
}
