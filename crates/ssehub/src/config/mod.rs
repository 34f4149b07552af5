//! Configuration: defaults, then a TOML file, then environment, then flags.
//!
//! [`Options`] is the one place every setting is declared: clap reads it from
//! flags and `SSEHUB_*` variables, serde reads the same struct from TOML, and
//! [`Options::resolve`] applies the defaults into a [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::auth::{parse_algorithm, KeyError};

/// Every `serve` setting, all optional so that sources can be layered.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address of the plain HTTP listener (HTTP/1.1 and h2c) [default: 127.0.0.1:8080]
    #[arg(long, env = "SSEHUB_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN; HTTP/3 on the same UDP port); `none` disables it [default: 127.0.0.1:8443]
    #[arg(long, env = "SSEHUB_TLS_LISTEN", value_name = "ADDR")]
    pub tls_listen: Option<String>,
    /// PEM certificate chain for HTTPS [default: a self-signed certificate generated in the data dir]
    #[arg(long, env = "SSEHUB_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "SSEHUB_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTP/3 over QUIC on the UDP port of --tls-listen [default: true]
    #[arg(long, env = "SSEHUB_HTTP3", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub http3: Option<bool>,
    /// HTTP/2 (and HTTP/3) streams one connection may hold open [default: 1000]
    #[arg(long, env = "SSEHUB_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// Directory for history and generated secrets [default: ./ssehub-data]
    #[arg(long, env = "SSEHUB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Key verifying publisher tokens: a secret, a PEM public key, or @FILE [default: generated secret in the data dir]
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_KEY", value_name = "KEY")]
    pub publisher_jwt_key: Option<String>,
    /// Algorithm of publisher tokens [default: HS256]
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG", value_name = "ALG")]
    pub publisher_jwt_alg: Option<String>,
    /// Key verifying subscriber tokens [default: the publisher key]
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_KEY", value_name = "KEY")]
    pub subscriber_jwt_key: Option<String>,
    /// Algorithm of subscriber tokens [default: the publisher algorithm]
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_ALG", value_name = "ALG")]
    pub subscriber_jwt_alg: Option<String>,
    /// Let subscribers without a token receive public updates
    #[arg(long, env = "SSEHUB_ANONYMOUS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub anonymous: Option<bool>,
    /// Origins allowed by CORS, comma-separated, or `*` [default: none]
    #[arg(long, env = "SSEHUB_CORS_ORIGINS", value_name = "LIST")]
    pub cors_origins: Option<List>,
    /// Origins allowed to publish with a cookie-borne token, comma-separated [default: none]
    #[arg(long, env = "SSEHUB_PUBLISH_ORIGINS", value_name = "LIST")]
    pub publish_origins: Option<List>,
    /// Name of the cookie carrying a token [default: mercureAuthorization]
    #[arg(long, env = "SSEHUB_COOKIE_NAME", value_name = "NAME")]
    pub cookie_name: Option<String>,
    /// Interval of heartbeat comments on idle streams; 0 disables [default: 15s]
    #[arg(long, env = "SSEHUB_HEARTBEAT", value_name = "DURATION")]
    pub heartbeat: Option<HumanDuration>,
    /// Where history is kept: `disk` (durable, under the data dir), `memory`, or a Redis URL shared by a cluster of nodes (`redis://[user:pass@]HOST:PORT[/DB]`, `rediss://` for TLS) [default: disk]
    #[arg(long, env = "SSEHUB_STORE", value_name = "STORE")]
    pub store: Option<String>,
    /// Name of the Redis stream (and prefix of every key, as a hash tag) with a Redis store [default: ssehub]
    #[arg(long, env = "SSEHUB_REDIS_STREAM", value_name = "NAME")]
    pub redis_stream: Option<String>,
    /// PEM CA certificate(s) that a rediss:// store's certificate must chain to [default: the system's roots]
    #[arg(long, env = "SSEHUB_REDIS_CA_CERT", value_name = "FILE")]
    pub redis_ca_cert: Option<PathBuf>,
    /// The Redis store is a Redis Cluster; its URL names one seed node [default: false]
    #[arg(long, env = "SSEHUB_REDIS_CLUSTER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub redis_cluster: Option<bool>,
    /// Number of updates kept for replay [default: 100000]
    #[arg(long, env = "SSEHUB_HISTORY_SIZE", value_name = "N")]
    pub history_size: Option<usize>,
    /// Bytes of history kept on disk [default: 1073741824]
    #[arg(long, env = "SSEHUB_HISTORY_BYTES", value_name = "BYTES")]
    pub history_bytes: Option<u64>,
    /// Age after which history is dropped; 0 keeps it forever [default: 0]
    #[arg(long, env = "SSEHUB_HISTORY_TTL", value_name = "DURATION")]
    pub history_ttl: Option<HumanDuration>,
    /// Largest accepted publish body in bytes [default: 1048576]
    #[arg(long, env = "SSEHUB_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Enable the subscriptions API and subscription events
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub subscriptions: Option<bool>,
    /// Updates queued per subscriber before a slow one is disconnected [default: 1024]
    #[arg(long, env = "SSEHUB_QUEUE_SIZE", value_name = "N")]
    pub queue_size: Option<usize>,
    /// Longest wait for streams to close at shutdown [default: 5s]
    #[arg(long, env = "SSEHUB_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,
}

/// Sets one field of [`Options`] from an environment variable's value.
type Setter = fn(&mut Options, String);

/// Mercure's own variable names, accepted so ssehub drops into a Mercure deployment.
const MERCURE_ALIASES: [(&str, Setter); 4] = [
    ("MERCURE_PUBLISHER_JWT_KEY", |o, v| {
        o.publisher_jwt_key = Some(v)
    }),
    ("MERCURE_PUBLISHER_JWT_ALG", |o, v| {
        o.publisher_jwt_alg = Some(v)
    }),
    ("MERCURE_SUBSCRIBER_JWT_KEY", |o, v| {
        o.subscriber_jwt_key = Some(v)
    }),
    ("MERCURE_SUBSCRIBER_JWT_ALG", |o, v| {
        o.subscriber_jwt_alg = Some(v)
    }),
];

/// A comma-separated list (a TOML array is accepted too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl FromStr for List {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(List(
            s.split([',', ' '])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect(),
        ))
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(s) => s.parse().unwrap_or_default(),
            Raw::Many(v) => List(v),
        })
    }
}

/// A duration written like `15s`, `500ms` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file is malformed or has an unknown key.
    #[error("invalid config file {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said, naming the key.
        message: String,
    },
    /// A listen address does not parse.
    #[error("invalid listen address {0:?}: expected IP:PORT, for example 127.0.0.1:8080 (or none for --tls-listen)")]
    BadAddress(String),
    /// A key or algorithm is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `--store` names no known store.
    #[error("unknown store {0:?}: expected \"disk\", \"memory\" or a redis:// or rediss:// URL")]
    UnknownStore(String),
    /// A `redis://` store URL does not parse.
    #[error("invalid Redis URL {url:?}: {message}")]
    BadRedisUrl {
        /// The URL, with any password hidden.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// `--redis-stream` is not a usable key name.
    #[error("invalid redis-stream {0:?}: use 1 to 200 characters without '{{' or '}}' (the name becomes the keys' hash tag)")]
    BadStreamName(String),
    /// Some numeric setting is out of range.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, &'static str),
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
    /// Parses `--store`; `stream`, `ca_cert` and `cluster` are
    /// `--redis-stream`, `--redis-ca-cert` and `--redis-cluster`, used by a
    /// Redis store.
    fn parse(
        store: &str,
        stream: Option<String>,
        ca_cert: Option<PathBuf>,
        cluster: Option<bool>,
    ) -> Result<Store, ConfigError> {
        let trimmed = store.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            redis::IntoConnectionInfo::into_connection_info(trimmed).map_err(|e| {
                ConfigError::BadRedisUrl {
                    url: redact(trimmed),
                    message: format!("{e}; expected redis://[user:pass@]HOST:PORT[/DB]"),
                }
            })?;
            let stream = stream.unwrap_or_else(|| "ssehub".into());
            if stream.is_empty() || stream.len() > 200 || stream.contains(['{', '}']) {
                return Err(ConfigError::BadStreamName(stream));
            }
            if ca_cert.is_some() && !lower.starts_with("rediss://") {
                return Err(ConfigError::Invalid(
                    "redis-ca-cert",
                    "only applies to a rediss:// (TLS) store",
                ));
            }
            return Ok(Store::Redis(RedisStore {
                url: trimmed.to_string(),
                stream,
                ca_cert,
                cluster: cluster.unwrap_or(false),
            }));
        }
        match lower.as_str() {
            "disk" => Ok(Store::Disk),
            "memory" => Ok(Store::Memory),
            _ => Err(ConfigError::UnknownStore(redact(trimmed))),
        }
    }
}

/// The resolved configuration of a running hub.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain HTTP listener address.
    pub listen: SocketAddr,
    /// HTTPS listener address, if enabled.
    pub tls_listen: Option<SocketAddr>,
    /// Configured certificate, if any (else generated).
    pub tls_cert: Option<PathBuf>,
    /// Configured private key, if any.
    pub tls_key: Option<PathBuf>,
    /// Whether HTTP/3 is served with TLS.
    pub http3: bool,
    /// HTTP/2 and HTTP/3 concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Publisher key as configured, or `None` to use the generated secret.
    pub publisher_jwt_key: Option<String>,
    /// Publisher token algorithm.
    pub publisher_jwt_alg: Algorithm,
    /// Subscriber key as configured, or `None` to use the publisher key.
    pub subscriber_jwt_key: Option<String>,
    /// Subscriber token algorithm.
    pub subscriber_jwt_alg: Algorithm,
    /// Whether subscribers without a token get public updates.
    pub anonymous: bool,
    /// CORS allowlist (`*` allows any origin).
    pub cors_origins: Vec<String>,
    /// Origins allowed to publish with a cookie.
    pub publish_origins: Vec<String>,
    /// Cookie carrying a token.
    pub cookie_name: String,
    /// Heartbeat interval; zero disables heartbeats.
    pub heartbeat: Duration,
    /// Where history is kept.
    pub store: Store,
    /// History length kept for replay.
    pub history_size: usize,
    /// History bytes kept (disk store).
    pub history_bytes: u64,
    /// History age kept, if limited.
    pub history_ttl: Option<Duration>,
    /// Largest publish body in bytes.
    pub max_body: usize,
    /// Whether the subscriptions API is on.
    pub subscriptions: bool,
    /// Per-subscriber queue bound.
    pub queue_size: usize,
    /// Bound on graceful shutdown.
    pub shutdown_timeout: Duration,
}

impl Options {
    /// Layers `self` (flags and `SSEHUB_*` variables, already merged by clap)
    /// over Mercure's variable names, then over the TOML file if one is given.
    pub fn layered(mut self, config_file: Option<&Path>) -> Result<Options, ConfigError> {
        let mut mercure = Options::default();
        for (name, set) in MERCURE_ALIASES {
            if let Ok(value) = std::env::var(name) {
                set(&mut mercure, value);
            }
        }
        self = self.or(mercure);
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
            let file: Options = toml::from_str(&text).map_err(|e| ConfigError::Toml {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
            self = self.or(file);
        }
        Ok(self)
    }

    /// Fills every unset field of `self` from `lower`.
    fn or(self, lower: Options) -> Options {
        Options {
            listen: self.listen.or(lower.listen),
            tls_listen: self.tls_listen.or(lower.tls_listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            http3: self.http3.or(lower.http3),
            max_concurrent_streams: self.max_concurrent_streams.or(lower.max_concurrent_streams),
            data_dir: self.data_dir.or(lower.data_dir),
            publisher_jwt_key: self.publisher_jwt_key.or(lower.publisher_jwt_key),
            publisher_jwt_alg: self.publisher_jwt_alg.or(lower.publisher_jwt_alg),
            subscriber_jwt_key: self.subscriber_jwt_key.or(lower.subscriber_jwt_key),
            subscriber_jwt_alg: self.subscriber_jwt_alg.or(lower.subscriber_jwt_alg),
            anonymous: self.anonymous.or(lower.anonymous),
            cors_origins: self.cors_origins.or(lower.cors_origins),
            publish_origins: self.publish_origins.or(lower.publish_origins),
            cookie_name: self.cookie_name.or(lower.cookie_name),
            heartbeat: self.heartbeat.or(lower.heartbeat),
            store: self.store.or(lower.store),
            redis_stream: self.redis_stream.or(lower.redis_stream),
            redis_ca_cert: self.redis_ca_cert.or(lower.redis_ca_cert),
            redis_cluster: self.redis_cluster.or(lower.redis_cluster),
            history_size: self.history_size.or(lower.history_size),
            history_bytes: self.history_bytes.or(lower.history_bytes),
            history_ttl: self.history_ttl.or(lower.history_ttl),
            max_body: self.max_body.or(lower.max_body),
            subscriptions: self.subscriptions.or(lower.subscriptions),
            queue_size: self.queue_size.or(lower.queue_size),
            shutdown_timeout: self.shutdown_timeout.or(lower.shutdown_timeout),
        }
    }

    /// Applies defaults and checks values.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen
            .parse()
            .map_err(|_| ConfigError::BadAddress(listen.clone()))?;
        let tls_listen = match self.tls_listen.as_deref().unwrap_or("127.0.0.1:8443") {
            "none" => None,
            addr => Some(
                addr.parse()
                    .map_err(|_| ConfigError::BadAddress(addr.to_string()))?,
            ),
        };
        let publisher_jwt_alg =
            parse_algorithm(self.publisher_jwt_alg.as_deref().unwrap_or("HS256"))?;
        let subscriber_jwt_alg = match &self.subscriber_jwt_alg {
            Some(a) => parse_algorithm(a)?,
            None => publisher_jwt_alg,
        };
        let positive = |v: Option<usize>, default: usize, name| match v.unwrap_or(default) {
            0 => Err(ConfigError::Invalid(name, "must be at least 1")),
            n => Ok(n),
        };
        Ok(Config {
            listen,
            tls_listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            http3: self.http3.unwrap_or(true),
            max_concurrent_streams: match self.max_concurrent_streams.unwrap_or(1000) {
                0 => {
                    return Err(ConfigError::Invalid(
                        "max-concurrent-streams",
                        "must be at least 1",
                    ))
                }
                n => n,
            },
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("ssehub-data")),
            publisher_jwt_key: self.publisher_jwt_key,
            publisher_jwt_alg,
            subscriber_jwt_key: self.subscriber_jwt_key,
            subscriber_jwt_alg,
            anonymous: self.anonymous.unwrap_or(false),
            cors_origins: self.cors_origins.unwrap_or_default().0,
            publish_origins: self.publish_origins.unwrap_or_default().0,
            cookie_name: self
                .cookie_name
                .unwrap_or_else(|| "mercureAuthorization".into()),
            heartbeat: self.heartbeat.map_or(Duration::from_secs(15), |d| d.0),
            store: Store::parse(
                self.store.as_deref().unwrap_or("disk"),
                self.redis_stream,
                self.redis_ca_cert,
                self.redis_cluster,
            )?,
            history_size: positive(self.history_size, 100_000, "history-size")?,
            history_bytes: match self.history_bytes.unwrap_or(1 << 30) {
                0 => return Err(ConfigError::Invalid("history-bytes", "must be at least 1")),
                n => n,
            },
            history_ttl: self.history_ttl.map(|d| d.0).filter(|d| !d.is_zero()),
            max_body: positive(self.max_body, 1 << 20, "max-body")?,
            subscriptions: self.subscriptions.unwrap_or(false),
            queue_size: positive(self.queue_size, 1024, "queue-size")?,
            shutdown_timeout: self
                .shutdown_timeout
                .map_or(Duration::from_secs(5), |d| d.0),
        })
    }
}

impl Config {
    /// The defaults, with an explicit data directory (used by tests and embedders).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let options = Options {
            data_dir: Some(data_dir.into()),
            ..Options::default()
        };
        options.resolve().expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_rejects_unknown_keys_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap();
        let err = Options::default()
            .layered(Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn layers_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\nheartbeat = \"2s\"\ncors_origins = [\"https://a\"]\nanonymous = true\n",
        )
        .unwrap();
        let flags = Options {
            listen: Some("127.0.0.1:7".into()),
            ..Default::default()
        };
        let c = flags.layered(Some(&path)).unwrap().resolve().unwrap();
        assert_eq!(c.listen.port(), 7);
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.cors_origins, ["https://a"]);
        assert!(c.anonymous);
        assert_eq!(c.cookie_name, "mercureAuthorization");
        assert_eq!(c.max_body, 1 << 20);
    }

    #[test]
    fn redis_store_from_toml_with_defaults_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "store = \"redis://u:p@ss@127.0.0.1:6390/2\"\n").unwrap();
        let c = Options::default()
            .layered(Some(&path))
            .unwrap()
            .resolve()
            .unwrap();
        let Store::Redis(redis) = &c.store else {
            panic!("a Redis store: {:?}", c.store)
        };
        assert_eq!(redis.url, "redis://u:p@ss@127.0.0.1:6390/2");
        assert_eq!(redis.stream, "ssehub");
        assert!(!redis.cluster);
        assert_eq!(redis.redacted_url(), "redis://u:***@127.0.0.1:6390/2");
        std::fs::write(
            &path,
            "store = \"rediss://h:1\"\nredis_stream = \"orders\"\nredis_cluster = true\n",
        )
        .unwrap();
        let c = Options::default().layered(Some(&path)).unwrap().resolve();
        let Store::Redis(redis) = c.unwrap().store else {
            panic!("a Redis store")
        };
        assert_eq!((redis.stream.as_str(), redis.cluster), ("orders", true));
        let refused = |store: &str, stream: Option<&str>, ca: Option<&str>| {
            Options {
                store: Some(store.into()),
                redis_stream: stream.map(Into::into),
                redis_ca_cert: ca.map(Into::into),
                ..Default::default()
            }
            .resolve()
            .unwrap_err()
            .to_string()
        };
        let err = refused("redis://:secret@", None, None);
        assert!(!err.contains("secret"), "{err}");
        assert!(refused("redis://h:1", Some("a{b}"), None).contains("a{b}"));
        assert!(refused("redis://h:1", None, Some("ca.pem")).contains("rediss://"));
        assert!(refused("postgres://h", None, None).contains("postgres://h"));
    }

    #[test]
    fn bad_values_are_named() {
        let o = Options {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(o
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("\"localhost\""));
        let o = Options {
            publisher_jwt_alg: Some("none".into()),
            ..Default::default()
        };
        assert!(o
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("unsupported JWT algorithm"));
        assert_eq!("a, b,c".parse::<List>().unwrap().0, ["a", "b", "c"]);
    }
}
