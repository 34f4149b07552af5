//! Configuration: defaults, then a TOML file, then environment, then flags.
//!
//! [`Options`] is the one place every setting is declared, in groups (where
//! the hub listens, its keys, who may connect, history, limits...): clap
//! reads it from flags and `SSEHUB_*` variables, serde reads the same
//! struct from a flat TOML table, and [`Options::resolve`] applies the
//! [`defaults`] into a [`Config`] grouped the same way.

/// Implements [`Layer`] for a struct whose fields are all [`Layer`]s
/// (optional settings, or groups of them), listed after its name.
macro_rules! layer {
    ($group:ident { $($field:ident),+ $(,)? }) => {
        impl $crate::config::Layer for $group {
            fn or(self, lower: Self) -> Self {
                $group {
                    $($field: $crate::config::Layer::or(self.$field, lower.$field)),+
                }
            }
        }
    };
}

mod access;
mod acme;
pub mod defaults;
mod error;
mod file;
mod history;
mod limits;
mod log;
mod protocol;
mod server;
mod stream;
mod values;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::access::{
    AccessConfig, AccessOptions, JwksConfig, JwksOptions, JwtConfig, KeyOptions,
};
pub use self::acme::{AcmeConfig, AcmeOptions, ChallengeKind};
pub use self::error::ConfigError;
pub use self::history::{HistoryConfig, HistoryOptions, RedisOptions, RedisStore, Store};
pub use self::limits::{ConnectionCap, LimitOptions, LimitsConfig};
pub use self::log::{LogConfig, LogFormat, LogOptions};
pub use self::protocol::{ProtocolConfig, ProtocolOptions};
pub use self::server::{ServerConfig, ServerOptions, TlsConfig, TlsOptions};
pub use self::stream::{StreamConfig, StreamOptions};
pub use self::values::{HumanDuration, List};

/// Every `serve` setting, all optional so that sources can be layered.
///
/// Each group is flattened: flags, variables and TOML keys are the
/// settings' own names (`--history-size`, `SSEHUB_HISTORY_SIZE`,
/// `history_size`), whatever group holds them. Serde cannot refuse unknown
/// keys through flattened groups, so a file is read with
/// [`Options::layered`], which does.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct Options {
    /// Listeners, draining and shutdown.
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerOptions,
    /// The log format.
    #[command(flatten)]
    #[serde(flatten)]
    pub log: LogOptions,
    /// The HTTPS certificate.
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsOptions,
    /// The HTTPS certificate obtained from an ACME CA.
    #[command(flatten)]
    #[serde(flatten)]
    pub acme: AcmeOptions,
    /// Token keys and the data directory.
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyOptions,
    /// JWK sets used instead of token keys.
    #[command(flatten)]
    #[serde(flatten)]
    pub jwks: JwksOptions,
    /// Tokenless access, origins, the token cookie.
    #[command(flatten)]
    #[serde(flatten)]
    pub access: AccessOptions,
    /// Protocol generations and the hub's identity.
    #[command(flatten)]
    #[serde(flatten)]
    pub protocol: ProtocolOptions,
    /// Heartbeats and subscription events.
    #[command(flatten)]
    #[serde(flatten)]
    pub stream: StreamOptions,
    /// The store and its bounds.
    #[command(flatten)]
    #[serde(flatten)]
    pub history: HistoryOptions,
    /// A Redis store's stream, CA and cluster mode.
    #[command(flatten)]
    #[serde(flatten)]
    pub redis: RedisOptions,
    /// Per-client limits.
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitOptions,
}

/// A layer of settings: whatever it leaves unset comes from the layer below.
trait Layer {
    /// Fills every unset setting of `self` from `lower`.
    fn or(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn or(self, lower: Self) -> Self {
        Option::or(self, lower)
    }
}

layer!(Options {
    server,
    log,
    tls,
    acme,
    keys,
    jwks,
    access,
    protocol,
    stream,
    history,
    redis,
    limits
});

/// The resolved configuration of a running hub.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory: disk history, its lock, the generated secret and
    /// certificate.
    pub data_dir: PathBuf,
    /// Listeners, draining and shutdown.
    pub server: ServerConfig,
    /// The log format.
    pub log: LogConfig,
    /// The HTTPS certificate, if configured.
    pub tls: TlsConfig,
    /// The certificate obtained from an ACME CA, if configured.
    pub acme: Option<AcmeConfig>,
    /// Token keys and algorithms.
    pub jwt: JwtConfig,
    /// Tokenless access, origins, the token cookie.
    pub access: AccessConfig,
    /// Protocol generations and the hub's identity.
    pub protocol: ProtocolConfig,
    /// Heartbeats and subscription events.
    pub stream: StreamConfig,
    /// The store and its bounds.
    pub history: HistoryConfig,
    /// Per-client limits.
    pub limits: LimitsConfig,
}

impl Options {
    /// Layers `self` (flags and `SSEHUB_*` variables, already merged by clap)
    /// over Mercure's variable names, then over the TOML file if one is given.
    pub fn layered(mut self, config_file: Option<&Path>) -> Result<Options, ConfigError> {
        self.keys = self.keys.or(KeyOptions::from_mercure_env());
        if let Some(path) = config_file {
            self = self.or(file::read(path)?);
        }
        Ok(self)
    }

    /// Applies defaults and checks values.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let server = self.server.resolve()?;
        let (data_dir, jwt) = self.keys.resolve(self.jwks)?;
        let tls = self.tls.resolve();
        let acme = self.acme.resolve()?;
        if acme.is_some() {
            if tls.cert.is_some() || tls.key.is_some() {
                return Err(ConfigError::Unusable {
                    flag: "acme-domain",
                    why: "--tls-cert and --tls-key give the certificate already: keep one way"
                        .into(),
                });
            }
            if server.tls_listen.is_none() {
                return Err(ConfigError::Unusable {
                    flag: "acme-domain",
                    why: "the certificate is for the HTTPS listener, and --tls-listen is none"
                        .into(),
                });
            }
        }
        Ok(Config {
            data_dir,
            server,
            log: self.log.resolve()?,
            tls,
            acme,
            jwt,
            access: self.access.resolve(),
            protocol: self.protocol.resolve()?,
            stream: self.stream.resolve()?,
            history: self.history.resolve(self.redis)?,
            limits: self.limits.resolve()?,
        })
    }
}

impl KeyOptions {
    /// What `ssehub token` signs with, the data directory and the token
    /// keys: these settings layered like [`Options::layered`] (the file may
    /// hold any setting; only these are read, so no JWK set) and resolved.
    pub fn resolve_alone(
        self,
        config_file: Option<&Path>,
    ) -> Result<(PathBuf, JwtConfig), ConfigError> {
        Options {
            keys: self,
            ..Options::default()
        }
        .layered(config_file)?
        .keys
        .resolve(JwksOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::Algorithm;

    use super::*;

    /// A TOML file holding `text`, in a directory removed on drop.
    fn toml_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// The configuration resolved from a TOML file holding `text` alone.
    fn resolve_toml(text: &str) -> Result<Config, ConfigError> {
        let (_dir, path) = toml_file(text);
        Options::default().layered(Some(&path)).unwrap().resolve()
    }

    #[test]
    fn toml_rejects_unknown_keys_by_name() {
        let (_dir, path) = toml_file("listen = \"127.0.0.1:1\"\nlisen = 3\n");
        let err = Options::default()
            .layered(Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn toml_keys_are_the_settings_names() {
        let c = resolve_toml(
            r#"
listen = "127.0.0.1:1"
tls_listen = "none"
http3 = false
shutdown_timeout = "1s"
drain_delay = "2s"
log_format = "json"
metrics_listen = "127.0.0.1:2"
ui = "off"
tls_cert = "c.pem"
tls_key = "k.pem"
data_dir = "d"
publisher_jwt_key = "p"
publisher_jwt_alg = "HS384"
subscriber_jwt_key = "s"
subscriber_jwt_alg = "HS512"
anonymous = true
cors_origins = "https://a"
publish_origins = ["https://b"]
cookie_name = "c"
protocol = "1"
hub_url = "https://hub.example/.well-known/mercure"
jwt_issuer = "https://app.example"
access_token_cookie = "t"
heartbeat = "2s"
subscriptions = true
compression = "off"
store = "rediss://h:1"
history_size = 3
history_bytes = 4
history_ttl = "5s"
redis_stream = "r"
redis_ca_cert = "ca.pem"
redis_cluster = true
max_concurrent_streams = 6
max_body = 7
queue_size = 8
max_connections = 9
max_connections_per_ip = 10
max_publish_rate = 11
publish_burst = 12
max_topics = 13
max_subscriptions_per_subject = 14
max_header_bytes = 16384
max_headers = 15
header_timeout = "16s"
body_timeout = "18s"
max_stream_duration = "17m"
"#,
        )
        .unwrap();
        assert_eq!(
            format!("{c:?}"),
            "Config { data_dir: \"d\", \
             server: ServerConfig { listen: 127.0.0.1:1, tls_listen: None, http3: false, shutdown_timeout: 1s, drain_delay: 2s, metrics_listen: Some(127.0.0.1:2), ui: false }, \
             log: LogConfig { format: Json }, \
             tls: TlsConfig { cert: Some(\"c.pem\"), key: Some(\"k.pem\") }, acme: None, \
             jwt: JwtConfig { publisher_key: Some(\"p\"), publisher_alg: HS384, subscriber_key: Some(\"s\"), subscriber_alg: HS512, \
             jwks: JwksConfig { publisher_url: None, subscriber_url: None, settings: Settings { \
             algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA], refresh: 300s, min_refresh: 10s, ca_cert: None } } }, \
             access: AccessConfig { anonymous: true, cors_origins: [\"https://a\"], publish_origins: [\"https://b\"], cookie_name: \"c\" }, \
             protocol: ProtocolConfig { protocol: V1, hub_url: Some(Url { scheme: \"https\", cannot_be_a_base: false, username: \"\", password: None, host: Some(Domain(\"hub.example\")), port: None, path: \"/.well-known/mercure\", query: None, fragment: None }), issuer: \"https://app.example\", access_token_cookie: \"t\" }, \
             stream: StreamConfig { heartbeat: 2s, subscriptions: true, compression: false }, \
             history: HistoryConfig { store: Redis(RedisStore { url: \"rediss://h:1\", stream: \"r\", ca_cert: Some(\"ca.pem\"), cluster: true }), size: 3, bytes: 4, ttl: Some(5s) }, \
             limits: LimitsConfig { max_concurrent_streams: 6, max_body: 7, queue_size: 8, \
             max_connections: 9, max_connections_per_ip: Some(10), \
             publish_rate: Some(Rate { per_second: 11, burst: 12 }), max_topics: 13, \
             max_subscriptions_per_subject: Some(14), max_header_bytes: 16384, max_headers: 15, \
             header_timeout: 16s, body_timeout: 18s, max_stream_duration: Some(1020s) } }"
        );
    }

    #[test]
    fn acme_settings_from_toml_and_what_they_exclude() {
        let acme = r#"
acme_domain = ["hub.example.com", "www.hub.example.com"]
acme_email = "ops@example.com"
acme_directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
acme_ca_cert = "ca.pem"
acme_challenge = "http-01"
"#;
        let c = resolve_toml(acme).unwrap();
        assert_eq!(
            format!("{:?}", c.acme),
            "Some(AcmeConfig { domains: [\"hub.example.com\", \"www.hub.example.com\"], \
             email: Some(\"ops@example.com\"), directory: Url { scheme: \"https\", cannot_be_a_base: false, \
             username: \"\", password: None, host: Some(Domain(\"acme-staging-v02.api.letsencrypt.org\")), \
             port: None, path: \"/directory\", query: None, fragment: None }, \
             ca_cert: Some(\"ca.pem\"), challenge: Http01 })"
        );
        for (extra, excluded) in [
            ("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", "--tls-cert"),
            ("tls_listen = \"none\"\n", "--tls-listen is none"),
        ] {
            let err = resolve_toml(&format!("{acme}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("acme-domain") && err.contains(excluded),
                "{err}"
            );
        }
    }

    #[test]
    fn jwks_settings_from_toml() {
        let c = resolve_toml(
            r#"
publisher_jwks_url = "https://idp.example/jwks.json"
subscriber_jwks_url = "file:///etc/ssehub/jwks.json"
jwks_ca_cert = "ca.pem"
jwks_refresh = "1m"
jwks_min_refresh = "0"
jwt_algorithms = ["ES256", "eddsa"]
"#,
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", c.jwt.jwks),
            "JwksConfig { publisher_url: Some(\"https://idp.example/jwks.json\"), \
             subscriber_url: Some(\"file:///etc/ssehub/jwks.json\"), settings: Settings { \
             algorithms: [ES256, EdDSA], refresh: 60s, min_refresh: 0ns, ca_cert: Some(\"ca.pem\") } }"
        );
    }

    #[test]
    fn a_jwks_url_excludes_a_key_for_the_same_tokens() {
        let refused = |adjust: fn(&mut Options)| {
            let mut o = Options::default();
            adjust(&mut o);
            o.resolve().unwrap_err().to_string()
        };
        let err = refused(|o| {
            o.jwks.publisher_jwks_url = Some("https://idp.example/jwks.json".into());
            o.keys.publisher_jwt_key = Some("secret".into());
        });
        assert!(
            err.contains("--publisher-jwks-url and --publisher-jwt-key both say how publisher tokens are verified"),
            "{err}"
        );
        let err = refused(|o| {
            o.jwks.subscriber_jwks_url = Some("https://idp.example/jwks.json".into());
            o.keys.subscriber_jwt_alg = Some("RS256".into());
        });
        assert!(err.contains("--subscriber-jwt-alg"), "{err}");
        let err = refused(|o| {
            o.jwks.publisher_jwks_url = Some("https://idp.example/jwks.json".into());
            o.jwks.jwt_algorithms = Some("RS256,HS256".parse().unwrap());
        });
        assert!(
            err.contains("HS256, HS384 and HS512 are not accepted"),
            "{err}"
        );
        let err = refused(|o| o.jwks.jwt_algorithms = Some("".parse().unwrap()));
        assert!(err.contains("at least one"), "{err}");
        let err = refused(|o| o.jwks.jwks_ca_cert = Some("ca.pem".into()));
        assert!(err.contains("jwks-ca-cert: only applies"), "{err}");
        // A JWKS for one kind of token, a key for the other: fine.
        let mut o = Options::default();
        o.jwks.publisher_jwks_url = Some("https://idp.example/jwks.json".into());
        o.keys.subscriber_jwt_key = Some("secret".into());
        assert!(o.resolve().is_ok());
    }

    #[test]
    fn token_settings_read_a_shared_file_and_ignore_the_rest() {
        let (_dir, path) = toml_file(
            "listen = \"not an address\"\npublisher_jwt_alg = \"HS384\"\ndata_dir = \"d\"\n",
        );
        let flags = KeyOptions {
            publisher_jwt_key: Some("k".into()),
            ..KeyOptions::default()
        };
        // The file's bad `listen` is not read.
        let (data_dir, jwt) = flags.clone().resolve_alone(Some(&path)).unwrap();
        assert_eq!(jwt.publisher_key.as_deref(), Some("k"));
        assert_eq!(jwt.publisher_alg, Algorithm::HS384);
        assert_eq!(data_dir, Path::new("d"));
        std::fs::write(&path, "publisher_jwt_alg = \"HS384\"\nlisen = 3\n").unwrap();
        let err = flags.resolve_alone(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn layers_and_defaults() {
        let (_dir, path) = toml_file("listen = \"127.0.0.1:9\"\nheartbeat = \"2s\"\ncors_origins = [\"https://a\"]\nanonymous = true\n");
        let mut flags = Options::default();
        flags.server.listen = Some("127.0.0.1:7".into());
        let c = flags.layered(Some(&path)).unwrap().resolve().unwrap();
        assert_eq!(c.server.listen.port(), 7);
        assert_eq!(c.stream.heartbeat, Duration::from_secs(2));
        assert_eq!(c.access.cors_origins, ["https://a"]);
        assert!(c.access.anonymous);
        assert_eq!(c.access.cookie_name, "mercureAuthorization");
        assert_eq!(c.limits.max_body, 1 << 20);
    }

    #[test]
    fn redis_store_from_toml_with_defaults_and_checks() {
        let c = resolve_toml("store = \"redis://u:p@ss@127.0.0.1:6390/2\"\n").unwrap();
        let Store::Redis(redis) = &c.history.store else {
            panic!("a Redis store: {:?}", c.history.store)
        };
        assert_eq!(redis.url, "redis://u:p@ss@127.0.0.1:6390/2");
        assert_eq!(redis.stream, "ssehub");
        assert!(!redis.cluster);
        assert_eq!(redis.redacted_url(), "redis://u:***@127.0.0.1:6390/2");
        let c = resolve_toml(
            "store = \"rediss://h:1\"\nredis_stream = \"orders\"\nredis_cluster = true\n",
        );
        let Store::Redis(redis) = c.unwrap().history.store else {
            panic!("a Redis store")
        };
        assert_eq!((redis.stream.as_str(), redis.cluster), ("orders", true));
        let refused = |store: &str, stream: Option<&str>, ca: Option<&str>| {
            let mut o = Options::default();
            o.history.store = Some(store.into());
            o.redis.redis_stream = stream.map(Into::into);
            o.redis.redis_ca_cert = ca.map(Into::into);
            o.resolve().unwrap_err().to_string()
        };
        let err = refused("redis://:secret@", None, None);
        assert!(!err.contains("secret"), "{err}");
        assert!(refused("redis://h:1", Some("a{b}"), None).contains("a{b}"));
        assert!(refused("redis://h:1", None, Some("ca.pem")).contains("rediss://"));
        assert!(refused("postgres://h", None, None).contains("postgres://h"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut o = Options::default();
        o.server.listen = Some("localhost".into());
        assert!(o
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("\"localhost\""));
        let mut o = Options::default();
        o.keys.publisher_jwt_alg = Some("none".into());
        assert!(o
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("unsupported JWT algorithm"));
        assert_eq!("a, b,c".parse::<List>().unwrap().0, ["a", "b", "c"]);
    }
}
