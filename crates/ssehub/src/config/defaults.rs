//! The default of every setting that has one, written once, as it would be
//! given on the command line: `--help` shows it ([`show`]) and
//! [`Options::resolve`](super::Options::resolve) parses it with the flag's
//! own parser, so the two cannot disagree.
//!
//! Settings whose default is a behaviour rather than a value (a generated
//! certificate or secret, the publisher's key, no origins) describe it in
//! their help text instead.

use std::str::FromStr;

use clap::Arg;

use super::ConfigError;

/// A setting with a default value.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Its long flag, without `--`; also its name in error messages.
    pub flag: &'static str,
    /// Its default, as written after the flag.
    pub default: &'static str,
}

impl Setting {
    /// `given`, else the default.
    pub(super) fn or<T: FromStr>(&self, given: Option<T>) -> T {
        given.unwrap_or_else(|| {
            self.default
                .parse()
                .unwrap_or_else(|_| panic!("the default of --{} parses", self.flag))
        })
    }

    /// [`Setting::or`] for a count that must not be zero.
    pub(super) fn at_least_one<T>(&self, given: Option<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialEq + From<u8>,
    {
        let value = self.or(given);
        if value == T::from(0) {
            return Err(ConfigError::Invalid(self.flag, "must be at least 1"));
        }
        Ok(value)
    }
}

/// `--listen`.
pub const LISTEN: Setting = Setting {
    flag: "listen",
    default: "127.0.0.1:8080",
};
/// `--tls-listen`.
pub const TLS_LISTEN: Setting = Setting {
    flag: "tls-listen",
    default: "127.0.0.1:8443",
};
/// `--http3`.
pub const HTTP3: Setting = Setting {
    flag: "http3",
    default: "true",
};
/// `--shutdown-timeout`.
pub const SHUTDOWN_TIMEOUT: Setting = Setting {
    flag: "shutdown-timeout",
    default: "5s",
};
/// `--drain-delay`: shutdown begins at once.
pub const DRAIN_DELAY: Setting = Setting {
    flag: "drain-delay",
    default: "0s",
};
/// `--acme-directory`: Let's Encrypt's production server.
pub const ACME_DIRECTORY: Setting = Setting {
    flag: "acme-directory",
    default: "https://acme-v02.api.letsencrypt.org/directory",
};
/// `--acme-challenge`.
pub const ACME_CHALLENGE: Setting = Setting {
    flag: "acme-challenge",
    default: "tls-alpn-01",
};
/// `--log-format`.
pub const LOG_FORMAT: Setting = Setting {
    flag: "log-format",
    default: "text",
};
/// `--metrics-listen`: loopback only, so metrics are never public by
/// accident.
pub const METRICS_LISTEN: Setting = Setting {
    flag: "metrics-listen",
    default: "127.0.0.1:9464",
};
/// `--ui`: served when every listener is on loopback.
pub const UI: Setting = Setting {
    flag: "ui",
    default: "auto",
};
/// `--data-dir`, relative to the working directory.
pub const DATA_DIR: Setting = Setting {
    flag: "data-dir",
    default: "ssehub-data",
};
/// `--publisher-jwt-alg`.
pub const PUBLISHER_JWT_ALG: Setting = Setting {
    flag: "publisher-jwt-alg",
    default: "HS256",
};
/// `--jwks-refresh`.
pub const JWKS_REFRESH: Setting = Setting {
    flag: "jwks-refresh",
    default: "5m",
};
/// `--jwks-min-refresh`.
pub const JWKS_MIN_REFRESH: Setting = Setting {
    flag: "jwks-min-refresh",
    default: "10s",
};
/// `--jwt-algorithms`: every asymmetric algorithm supported.
pub const JWT_ALGORITHMS: Setting = Setting {
    flag: "jwt-algorithms",
    default: "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA",
};
/// `--anonymous`.
pub const ANONYMOUS: Setting = Setting {
    flag: "anonymous",
    default: "false",
};
/// `--cookie-name`.
pub const COOKIE_NAME: Setting = Setting {
    flag: "cookie-name",
    default: "mercureAuthorization",
};
/// `--protocol`.
pub const PROTOCOL: Setting = Setting {
    flag: "protocol",
    default: "both",
};
/// `--jwt-issuer`: the issuer `ssehub token` writes into 1.0 tokens.
pub const JWT_ISSUER: Setting = Setting {
    flag: "jwt-issuer",
    default: "ssehub",
};
/// `--access-token-cookie`: Mercure 1.0's recommended name.
pub const ACCESS_TOKEN_COOKIE: Setting = Setting {
    flag: "access-token-cookie",
    default: "__Secure-mercure_access_token",
};
/// `--heartbeat`.
pub const HEARTBEAT: Setting = Setting {
    flag: "heartbeat",
    default: "15s",
};
/// `--subscriptions`.
pub const SUBSCRIPTIONS: Setting = Setting {
    flag: "subscriptions",
    default: "false",
};
/// `--compression`: see docs/benchmarks.md, "Issue 17: compressed streams".
pub const COMPRESSION: Setting = Setting {
    flag: "compression",
    default: "on",
};
/// `--store`.
pub const STORE: Setting = Setting {
    flag: "store",
    default: "disk",
};
/// `--history-size`.
pub const HISTORY_SIZE: Setting = Setting {
    flag: "history-size",
    default: "100000",
};
/// `--history-bytes`: 1 GiB.
pub const HISTORY_BYTES: Setting = Setting {
    flag: "history-bytes",
    default: "1073741824",
};
/// `--history-ttl`: history is kept whatever its age.
pub const HISTORY_TTL: Setting = Setting {
    flag: "history-ttl",
    default: "0",
};
/// `--redis-stream`.
pub const REDIS_STREAM: Setting = Setting {
    flag: "redis-stream",
    default: "ssehub",
};
/// `--redis-cluster`.
pub const REDIS_CLUSTER: Setting = Setting {
    flag: "redis-cluster",
    default: "false",
};
/// `--max-concurrent-streams`.
pub const MAX_CONCURRENT_STREAMS: Setting = Setting {
    flag: "max-concurrent-streams",
    default: "1000",
};
/// `--max-body`: 1 MiB.
pub const MAX_BODY: Setting = Setting {
    flag: "max-body",
    default: "1048576",
};
/// `--queue-size`.
pub const QUEUE_SIZE: Setting = Setting {
    flag: "queue-size",
    default: "1024",
};

/// `--max-connections`: from the open-file limit.
pub const MAX_CONNECTIONS: Setting = Setting {
    flag: "max-connections",
    default: "auto",
};
/// `--max-connections-per-ip`: none, since behind a proxy every client
/// shares the proxy's address.
pub const MAX_CONNECTIONS_PER_IP: Setting = Setting {
    flag: "max-connections-per-ip",
    default: "0",
};
/// `--max-publish-rate`: none, since publishers hold tokens the operator
/// signed, and one backend may rightly publish thousands of updates a second.
pub const MAX_PUBLISH_RATE: Setting = Setting {
    flag: "max-publish-rate",
    default: "0",
};
/// `--max-topics`.
pub const MAX_TOPICS: Setting = Setting {
    flag: "max-topics",
    default: "1000",
};
/// `--max-subscriptions-per-subject`: none, since one subject may be
/// shared by every visitor of a site.
pub const MAX_SUBSCRIPTIONS_PER_SUBJECT: Setting = Setting {
    flag: "max-subscriptions-per-subject",
    default: "0",
};
/// `--max-header-bytes`: 64 KiB, room for a subscription to 1,000 topic URLs.
pub const MAX_HEADER_BYTES: Setting = Setting {
    flag: "max-header-bytes",
    default: "65536",
};
/// `--max-headers`.
pub const MAX_HEADERS: Setting = Setting {
    flag: "max-headers",
    default: "100",
};
/// `--header-timeout`.
pub const HEADER_TIMEOUT: Setting = Setting {
    flag: "header-timeout",
    default: "10s",
};
/// `--body-timeout`.
pub const BODY_TIMEOUT: Setting = Setting {
    flag: "body-timeout",
    default: "30s",
};
/// `--max-stream-duration`.
pub const MAX_STREAM_DURATION: Setting = Setting {
    flag: "max-stream-duration",
    default: "1h",
};

/// Every setting with a default value.
pub const ALL: [Setting; 42] = [
    LISTEN,
    TLS_LISTEN,
    HTTP3,
    SHUTDOWN_TIMEOUT,
    DRAIN_DELAY,
    METRICS_LISTEN,
    UI,
    LOG_FORMAT,
    ACME_DIRECTORY,
    ACME_CHALLENGE,
    DATA_DIR,
    PUBLISHER_JWT_ALG,
    JWKS_REFRESH,
    JWKS_MIN_REFRESH,
    JWT_ALGORITHMS,
    ANONYMOUS,
    COOKIE_NAME,
    PROTOCOL,
    JWT_ISSUER,
    ACCESS_TOKEN_COOKIE,
    HEARTBEAT,
    SUBSCRIPTIONS,
    COMPRESSION,
    STORE,
    HISTORY_SIZE,
    HISTORY_BYTES,
    HISTORY_TTL,
    REDIS_STREAM,
    REDIS_CLUSTER,
    MAX_CONCURRENT_STREAMS,
    MAX_BODY,
    QUEUE_SIZE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_PUBLISH_RATE,
    MAX_TOPICS,
    MAX_SUBSCRIPTIONS_PER_SUBJECT,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    HEADER_TIMEOUT,
    BODY_TIMEOUT,
    MAX_STREAM_DURATION,
];

/// Ends the help of `arg` with `[default: VALUE]` when it is a setting of
/// [`ALL`]; other arguments are returned unchanged.
pub fn show(arg: Arg) -> Arg {
    let Some(setting) = ALL.iter().find(|s| arg.get_long() == Some(s.flag)) else {
        return arg;
    };
    // An option of another command with the same name and a default of
    // its own (`ssehub token --protocol`) shows that one.
    if !arg.get_default_values().is_empty() {
        return arg;
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [default: {}]", setting.default))
}
