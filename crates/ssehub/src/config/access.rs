//! Who may publish and subscribe: token keys, tokenless access, origins and
//! the token cookie.

use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::{defaults, ConfigError, List};
use crate::auth::parse_algorithm;

/// The keys tokens are verified (and `ssehub token` signs) with, and the
/// data directory where a generated secret is kept. These are all that
/// `ssehub token` reads.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct KeyOptions {
    /// Directory for history and generated secrets
    #[arg(long, env = "SSEHUB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Key verifying publisher tokens: a secret, a PEM public key, or @FILE [default: generated secret in the data dir]
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_KEY", value_name = "KEY")]
    pub publisher_jwt_key: Option<String>,
    /// Algorithm of publisher tokens
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG", value_name = "ALG")]
    pub publisher_jwt_alg: Option<String>,
    /// Key verifying subscriber tokens [default: the publisher key]
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_KEY", value_name = "KEY")]
    pub subscriber_jwt_key: Option<String>,
    /// Algorithm of subscriber tokens [default: the publisher algorithm]
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_ALG", value_name = "ALG")]
    pub subscriber_jwt_alg: Option<String>,
}

layer!(KeyOptions {
    data_dir,
    publisher_jwt_key,
    publisher_jwt_alg,
    subscriber_jwt_key,
    subscriber_jwt_alg
});

/// Who may subscribe without a token, from which origins, and where a
/// token may come from.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct AccessOptions {
    /// Let subscribers without a token receive public updates
    #[arg(long, env = "SSEHUB_ANONYMOUS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub anonymous: Option<bool>,
    /// Origins allowed by CORS with credentials, comma-separated; `*` adds any other origin, without credentials [default: none]
    #[arg(long, env = "SSEHUB_CORS_ORIGINS", value_name = "LIST")]
    pub cors_origins: Option<List>,
    /// Origins allowed to publish with a cookie-borne token, comma-separated [default: none]
    #[arg(long, env = "SSEHUB_PUBLISH_ORIGINS", value_name = "LIST")]
    pub publish_origins: Option<List>,
    /// Name of the cookie carrying a token
    #[arg(long, env = "SSEHUB_COOKIE_NAME", value_name = "NAME")]
    pub cookie_name: Option<String>,
}

layer!(AccessOptions {
    anonymous,
    cors_origins,
    publish_origins,
    cookie_name
});

/// The keys and algorithms of tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Publisher key as configured, or `None` to use the generated secret.
    pub publisher_key: Option<String>,
    /// Publisher token algorithm.
    pub publisher_alg: Algorithm,
    /// Subscriber key as configured, or `None` to use the publisher key.
    pub subscriber_key: Option<String>,
    /// Subscriber token algorithm.
    pub subscriber_alg: Algorithm,
}

/// Who may subscribe without a token, from which origins, and where a
/// token may come from.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Whether subscribers without a token get public updates.
    pub anonymous: bool,
    /// CORS allowlist (`*` allows any origin).
    pub cors_origins: Vec<String>,
    /// Origins allowed to publish with a cookie.
    pub publish_origins: Vec<String>,
    /// Cookie carrying a token.
    pub cookie_name: String,
}

/// Sets one field of [`KeyOptions`] from an environment variable's value.
type Setter = fn(&mut KeyOptions, String);

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

impl KeyOptions {
    /// The settings given by Mercure's variable names.
    pub(super) fn from_mercure_env() -> KeyOptions {
        let mut keys = KeyOptions::default();
        for (name, set) in MERCURE_ALIASES {
            if let Ok(value) = std::env::var(name) {
                set(&mut keys, value);
            }
        }
        keys
    }

    /// The data directory and the token keys, defaults applied and
    /// algorithms checked.
    pub(super) fn resolve(self) -> Result<(PathBuf, JwtConfig), ConfigError> {
        let publisher_alg =
            parse_algorithm(&defaults::PUBLISHER_JWT_ALG.or(self.publisher_jwt_alg))?;
        let subscriber_alg = match &self.subscriber_jwt_alg {
            Some(alg) => parse_algorithm(alg)?,
            None => publisher_alg,
        };
        let jwt = JwtConfig {
            publisher_key: self.publisher_jwt_key,
            publisher_alg,
            subscriber_key: self.subscriber_jwt_key,
            subscriber_alg,
        };
        Ok((defaults::DATA_DIR.or(self.data_dir), jwt))
    }
}

impl AccessOptions {
    /// Applies the defaults.
    pub(super) fn resolve(self) -> AccessConfig {
        AccessConfig {
            anonymous: defaults::ANONYMOUS.or(self.anonymous),
            cors_origins: self.cors_origins.unwrap_or_default().0,
            publish_origins: self.publish_origins.unwrap_or_default().0,
            cookie_name: defaults::COOKIE_NAME.or(self.cookie_name),
        }
    }
}
