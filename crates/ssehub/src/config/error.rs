//! What stops start-up when the configuration is unusable.

use std::path::PathBuf;

use crate::auth::KeyError;

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
    /// A JWKS URL and a key (or algorithm) for the same tokens.
    #[error("--{role}-jwks-url and --{role}-{setting} both say how {role} tokens are verified: keep one (with a JWKS, the keys come from the set and --jwt-algorithms lists the accepted algorithms)")]
    JwksAndKey {
        /// `publisher` or `subscriber`.
        role: &'static str,
        /// The other setting, without its role: `jwt-key` or `jwt-alg`.
        setting: &'static str,
    },
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
    /// A setting's value is unusable, for the reason given.
    #[error("invalid --{flag}: {why}")]
    Unusable {
        /// The flag, without `--`.
        flag: &'static str,
        /// What is wrong.
        why: String,
    },
}
