//! Who may publish and subscribe: token keys, tokenless access, origins and
//! the token cookie.

use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration, List};
use crate::auth::{parse_algorithm, Signer};
use crate::jwks;

/// The keys tokens are verified (and `ssehub token` signs) with, and the
/// data directory where a generated secret is kept. These are all that
/// `ssehub token` reads.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct KeyOptions {
    /// Directory for history and generated secrets
    #[arg(long, env = "SSEHUB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Key verifying publisher tokens: a secret, a PEM public key, or @FILE [default: generated secret in the data dir]
    #[arg(
        long,
        env = "SSEHUB_PUBLISHER_JWT_KEY",
        value_name = "KEY",
        allow_hyphen_values = true
    )]
    pub publisher_jwt_key: Option<String>,
    /// Algorithm of publisher tokens
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG", value_name = "ALG")]
    pub publisher_jwt_alg: Option<String>,
    /// Key verifying subscriber tokens [default: the publisher key]
    #[arg(
        long,
        env = "SSEHUB_SUBSCRIBER_JWT_KEY",
        value_name = "KEY",
        allow_hyphen_values = true
    )]
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

/// JWK sets verifying tokens instead of the configured keys: where they
/// are, how often they are read, which of their keys are used.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct JwksOptions {
    /// JWK set verifying publisher tokens instead of --publisher-jwt-key, keys chosen by kid and read again periodically: https://URL or file:///PATH
    #[arg(long, env = "SSEHUB_PUBLISHER_JWKS_URL", value_name = "URL")]
    pub publisher_jwks_url: Option<String>,
    /// JWK set verifying subscriber tokens instead of --subscriber-jwt-key [default: --subscriber-jwt-key if set, else the publisher's keys]
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWKS_URL", value_name = "URL")]
    pub subscriber_jwks_url: Option<String>,
    /// PEM CA certificate(s) trusted for https:// JWKS URLs, besides the system's roots
    #[arg(long, env = "SSEHUB_JWKS_CA_CERT", value_name = "FILE")]
    pub jwks_ca_cert: Option<PathBuf>,
    /// Interval between reads of the JWK sets; 0 reads them only at start and for unknown kids
    #[arg(long, env = "SSEHUB_JWKS_REFRESH", value_name = "DURATION")]
    pub jwks_refresh: Option<HumanDuration>,
    /// Shortest interval between two reads of a JWK set caused by tokens with an unknown kid
    #[arg(long, env = "SSEHUB_JWKS_MIN_REFRESH", value_name = "DURATION")]
    pub jwks_min_refresh: Option<HumanDuration>,
    /// Token algorithms accepted with JWKS keys, comma-separated (HMAC never is)
    #[arg(long, env = "SSEHUB_JWT_ALGORITHMS", value_name = "LIST")]
    pub jwt_algorithms: Option<List>,
}

layer!(JwksOptions {
    publisher_jwks_url,
    subscriber_jwks_url,
    jwks_ca_cert,
    jwks_refresh,
    jwks_min_refresh,
    jwt_algorithms
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
    /// The JWK sets used instead of keys, if any.
    pub jwks: JwksConfig,
}

/// JWK sets verifying tokens instead of configured keys.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// JWK set of publisher tokens.
    pub publisher_url: Option<String>,
    /// JWK set of subscriber tokens (else the subscriber key, else the
    /// publisher's keys).
    pub subscriber_url: Option<String>,
    /// How the sets are read and which keys are used.
    pub settings: jwks::Settings,
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

    /// The data directory and the token keys, `jwks` among them, defaults
    /// applied and algorithms checked.
    pub(super) fn resolve(self, jwks: JwksOptions) -> Result<(PathBuf, JwtConfig), ConfigError> {
        let roles = [
            (
                "publisher",
                &jwks.publisher_jwks_url,
                &self.publisher_jwt_key,
                &self.publisher_jwt_alg,
            ),
            (
                "subscriber",
                &jwks.subscriber_jwks_url,
                &self.subscriber_jwt_key,
                &self.subscriber_jwt_alg,
            ),
        ];
        for (role, url, key, alg) in roles {
            let setting = match (url, key, alg) {
                (Some(_), Some(_), _) => "jwt-key",
                (Some(_), None, Some(_)) => "jwt-alg",
                _ => continue,
            };
            return Err(ConfigError::JwksAndKey { role, setting });
        }
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
            jwks: jwks.resolve()?,
        };
        Ok((defaults::DATA_DIR.or(self.data_dir), jwt))
    }
}

impl JwksOptions {
    /// Applies the defaults and checks the allowlist.
    fn resolve(self) -> Result<JwksConfig, ConfigError> {
        let used = self.publisher_jwks_url.is_some() || self.subscriber_jwks_url.is_some();
        if self.jwks_ca_cert.is_some() && !used {
            return Err(ConfigError::Invalid(
                "jwks-ca-cert",
                "only applies with --publisher-jwks-url or --subscriber-jwks-url",
            ));
        }
        let algorithms = defaults::JWT_ALGORITHMS
            .or(self.jwt_algorithms)
            .0
            .iter()
            .map(|name| parse_algorithm(name))
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(ConfigError::Invalid(
                "jwt-algorithms",
                "must name at least one algorithm",
            ));
        }
        if algorithms.iter().any(|&alg| Signer::is_symmetric(alg)) {
            return Err(ConfigError::Invalid(
                "jwt-algorithms",
                "HS256, HS384 and HS512 are not accepted with a JWKS: a secret published in a key set is no secret",
            ));
        }
        Ok(JwksConfig {
            publisher_url: self.publisher_jwks_url,
            subscriber_url: self.subscriber_jwks_url,
            settings: jwks::Settings {
                algorithms,
                refresh: defaults::JWKS_REFRESH.or(self.jwks_refresh).0,
                min_refresh: defaults::JWKS_MIN_REFRESH.or(self.jwks_min_refresh).0,
                ca_cert: self.jwks_ca_cert,
            },
        })
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
