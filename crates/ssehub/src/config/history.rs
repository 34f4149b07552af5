//! Where history is kept and how much of it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration};

/// Where history is kept and how much of it.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct HistoryOptions {
    /// Where history is kept: `disk` (durable, under the data dir), `memory`, or a Redis URL shared by a cluster of nodes (`redis://[user:pass@]HOST:PORT[/DB]`, `rediss://` for TLS)
    #[arg(long, env = "SSEHUB_STORE", value_name = "STORE")]
    pub store: Option<String>,
    /// Number of updates kept for replay
    #[arg(long, env = "SSEHUB_HISTORY_SIZE", value_name = "N")]
    pub history_size: Option<usize>,
    /// Bytes of history kept (not used by a Redis store)
    #[arg(long, env = "SSEHUB_HISTORY_BYTES", value_name = "BYTES")]
    pub history_bytes: Option<u64>,
    /// Age after which history is dropped; 0 keeps it forever
    #[arg(long, env = "SSEHUB_HISTORY_TTL", value_name = "DURATION")]
    pub history_ttl: Option<HumanDuration>,
}

layer!(HistoryOptions {
    store,
    history_size,
    history_bytes,
    history_ttl
});

/// How a Redis store is reached and named.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct RedisOptions {
    /// Name of the Redis stream (and prefix of every key, as a hash tag) with a Redis store
    #[arg(long, env = "SSEHUB_REDIS_STREAM", value_name = "NAME")]
    pub redis_stream: Option<String>,
    /// PEM CA certificate(s) that a rediss:// store's certificate must chain to [default: the system's roots]
    #[arg(long, env = "SSEHUB_REDIS_CA_CERT", value_name = "FILE")]
    pub redis_ca_cert: Option<PathBuf>,
    /// The Redis store is a Redis Cluster; its URL names one seed node
    #[arg(long, env = "SSEHUB_REDIS_CLUSTER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub redis_cluster: Option<bool>,
}

layer!(RedisOptions {
    redis_stream,
    redis_ca_cert,
    redis_cluster
});

/// Where history is kept and how much of it.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Where history is kept.
    pub store: Store,
    /// History length kept for replay.
    pub size: usize,
    /// History bytes kept (disk and memory stores).
    pub bytes: u64,
    /// History age kept, if limited.
    pub ttl: Option<Duration>,
}

/// Where the hub keeps its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Durable segment files under the data directory.
    Disk,
    /// In memory only: lost at restart.
    Memory,
    /// A Redis stream shared by every node of a cluster.
    Redis(RedisStore),
}

/// A Redis store: where Redis is and which stream the nodes share.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisStore {
    /// `redis://` or `rediss://` URL, possibly with credentials.
    pub url: String,
    /// Stream name; every key the hub uses is `{name}` or `{name}:...`.
    pub stream: String,
    /// CA certificates trusted for `rediss://`, instead of the system's.
    pub ca_cert: Option<PathBuf>,
    /// Whether `url` is a seed node of a Redis Cluster.
    pub cluster: bool,
}

impl RedisStore {
    /// The URL with any password replaced by `***`, for logs and banners.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.redacted_url())
            .field("stream", &self.stream)
            .field("ca_cert", &self.ca_cert)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Hides the password of `scheme://user:password@host`. The host starts
/// after the last `@`, so a password holding an (unescaped) `@` or `/` is
/// hidden whole.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

impl Store {
    /// Parses `--store`; `redis` (`--redis-stream`, `--redis-ca-cert`,
    /// `--redis-cluster`) is used by a Redis store.
    fn parse(store: &str, redis: RedisOptions) -> Result<Store, ConfigError> {
        let trimmed = store.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            redis::IntoConnectionInfo::into_connection_info(trimmed).map_err(|e| {
                ConfigError::BadRedisUrl {
                    url: redact(trimmed),
                    message: format!("{e}; expected redis://[user:pass@]HOST:PORT[/DB]"),
                }
            })?;
            let stream: String = defaults::REDIS_STREAM.or(redis.redis_stream);
            if stream.is_empty() || stream.len() > 200 || stream.contains(['{', '}']) {
                return Err(ConfigError::BadStreamName(stream));
            }
            if redis.redis_ca_cert.is_some() && !lower.starts_with("rediss://") {
                return Err(ConfigError::Invalid(
                    "redis-ca-cert",
                    "only applies to a rediss:// (TLS) store",
                ));
            }
            return Ok(Store::Redis(RedisStore {
                url: trimmed.to_string(),
                stream,
                ca_cert: redis.redis_ca_cert,
                cluster: defaults::REDIS_CLUSTER.or(redis.redis_cluster),
            }));
        }
        match lower.as_str() {
            "disk" => Ok(Store::Disk),
            "memory" => Ok(Store::Memory),
            _ => Err(ConfigError::UnknownStore(redact(trimmed))),
        }
    }
}

impl HistoryOptions {
    /// Applies the defaults and checks the store and the bounds.
    pub(super) fn resolve(self, redis: RedisOptions) -> Result<HistoryConfig, ConfigError> {
        let store: String = defaults::STORE.or(self.store);
        Ok(HistoryConfig {
            store: Store::parse(&store, redis)?,
            size: defaults::HISTORY_SIZE.at_least_one(self.history_size)?,
            bytes: defaults::HISTORY_BYTES.at_least_one(self.history_bytes)?,
            ttl: Some(defaults::HISTORY_TTL.or(self.history_ttl).0).filter(|d| !d.is_zero()),
        })
    }
}
