//! `ssehub token`: a token signed with the configured key, in the 0.x shape
//! (the `mercure` claim) or as a 1.0 access token (`at+jwt` with
//! `authorization_details`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::Signer;
use crate::config::{defaults, HumanDuration, JwtConfig, KeyOptions};
use crate::keys::{KeySource, Keys};
use crate::proto::claims::{admin_claim, AccessToken, MercureClaim, ADMIN_CLAIM, CLAIM};
use crate::proto::selector::{MatchType, Matcher};

/// The options of `ssehub token`.
#[derive(Debug, clap::Args)]
pub(super) struct TokenArgs {
    /// Topic the token may publish to (repeatable): a 0.x selector, or a 1.0 exact topic.
    #[arg(long = "publish", value_name = "SEL")]
    publish: Vec<String>,
    /// Topic of private updates the token may receive (repeatable): a 0.x selector, or a 1.0 exact topic.
    #[arg(long = "subscribe", value_name = "SEL")]
    subscribe: Vec<String>,
    /// 1.0 only: URL pattern the token may publish to (repeatable).
    #[arg(long = "publish-pattern", value_name = "PATTERN")]
    publish_pattern: Vec<String>,
    /// 1.0 only: URL pattern of private updates the token may receive (repeatable).
    #[arg(long = "subscribe-pattern", value_name = "PATTERN")]
    subscribe_pattern: Vec<String>,
    /// Token shape: 0 (the `mercure` claim) or 1 (an at+jwt access token with authorization_details).
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = ["0", "1"])]
    protocol: String,
    /// 1.0: the issuer (`iss`) [default: the hub's default --jwt-issuer].
    #[arg(long, value_name = "ISS")]
    issuer: Option<String>,
    /// 1.0: the hub URL the token is for (`aud`) [default: the quick start's hub URL].
    #[arg(long, value_name = "URL")]
    audience: Option<String>,
    /// 1.0: who the token is for (`sub`, `client_id`).
    #[arg(long, value_name = "SUB", default_value = "ssehub-cli")]
    subject: String,
    /// Also grant reading the hub's live figures (the browser UI's dashboard): adds the claim "ssehub": {"admin": true}
    #[arg(long)]
    admin: bool,
    /// Lifetime of the token, e.g. `1h` [default: no expiry for 0.x, 1h for 1.0].
    #[arg(long, value_name = "DURATION")]
    exp: Option<HumanDuration>,
    /// Private key (PEM or @FILE) for RS*/PS*/ES* algorithms, whose configured key only verifies.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    signing_key: Option<String>,
    /// Key id (`kid`) written in the token's header, naming the key of a JWK set that verifies it (--publisher-jwks-url with several keys).
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// TOML file with settings.
    #[arg(long, env = "SSEHUB_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    keys: KeyOptions,
}

impl TokenArgs {
    /// The signed token.
    pub(super) fn run(self) -> anyhow::Result<String> {
        let (data_dir, jwt) = self.keys.resolve_alone(self.config.as_deref())?;
        let v1 = self.protocol == "1";
        if !v1 && (!self.publish_pattern.is_empty() || !self.subscribe_pattern.is_empty()) {
            anyhow::bail!("URL patterns are Mercure 1.0: add --protocol 1");
        }
        let matchers = |exact: Vec<String>, patterns: Vec<String>| -> Vec<Matcher> {
            let kind = if v1 {
                MatchType::Exact
            } else {
                MatchType::Selector
            };
            let exact = exact.into_iter().map(|t| Matcher::new(kind, t));
            let patterns = patterns
                .into_iter()
                .map(|p| Matcher::new(MatchType::UrlPattern, p));
            exact.chain(patterns).collect()
        };
        let grant = Grant {
            publish: matchers(self.publish, self.publish_pattern),
            subscribe: matchers(self.subscribe, self.subscribe_pattern),
            v1: v1.then(|| AccessTokenFields {
                issuer: self
                    .issuer
                    .unwrap_or_else(|| defaults::JWT_ISSUER.default.to_string()),
                audience: self.audience.unwrap_or_else(|| {
                    format!(
                        "http://{}{}",
                        defaults::LISTEN.default,
                        crate::proto::HUB_PATH
                    )
                }),
                subject: self.subject,
            }),
            ttl: self.exp.map(|d| d.0),
            admin: self.admin,
        };
        let signer = signer(&data_dir, &jwt, &grant, self.signing_key.as_deref())?;
        Ok(grant.sign(&signer.with_kid(self.kid)))
    }
}

/// What `ssehub token` grants.
pub(super) struct Grant {
    pub(super) publish: Vec<Matcher>,
    pub(super) subscribe: Vec<Matcher>,
    /// The claims of a 1.0 access token; `None` for a 0.x token.
    pub(super) v1: Option<AccessTokenFields>,
    pub(super) ttl: Option<Duration>,
    /// Whether the token carries the admin claim.
    pub(super) admin: bool,
}

/// What a 1.0 access token says besides its grants.
pub(super) struct AccessTokenFields {
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) subject: String,
}

/// A 1.0 access token lives an hour unless told otherwise (`exp` is required).
const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);

impl Grant {
    /// The signed token.
    pub(super) fn sign(&self, signer: &Signer) -> String {
        let Some(v1) = &self.v1 else {
            let texts =
                |m: &[Matcher]| (!m.is_empty()).then(|| m.iter().map(|m| m.text.clone()).collect());
            let claim = MercureClaim {
                publish: texts(&self.publish),
                subscribe: texts(&self.subscribe),
                payload: None,
            };
            let mut claims = serde_json::json!({ CLAIM: claim });
            self.add_admin(&mut claims);
            return signer.sign_expiring(claims, self.ttl);
        };
        let now = crate::clock::unix_ms() / 1000;
        let ttl = self.ttl.unwrap_or(DEFAULT_ACCESS_TOKEN_TTL).as_secs();
        let mut claims = AccessToken {
            issuer: &v1.issuer,
            audience: &v1.audience,
            subject: &v1.subject,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            publish: &self.publish,
            subscribe: &self.subscribe,
        }
        .claims();
        self.add_admin(&mut claims);
        signer.sign_json("at+jwt", &claims)
    }

    /// Adds the admin claim to `claims` if the grant has it.
    fn add_admin(&self, claims: &mut serde_json::Value) {
        if self.admin {
            claims[ADMIN_CLAIM] = admin_claim();
        }
    }
}

/// The signer with the key matching what `grant` grants: the subscriber
/// key for a subscribe-only token, the publisher key otherwise.
fn signer(
    data_dir: &Path,
    jwt: &JwtConfig,
    grant: &Grant,
    signing_key: Option<&str>,
) -> anyhow::Result<Signer> {
    // The admin claim is verified with the publisher key.
    let subscribe_only = !grant.admin && grant.publish.is_empty() && !grant.subscribe.is_empty();
    let alg = if subscribe_only {
        jwt.subscriber_alg
    } else {
        jwt.publisher_alg
    };
    Ok(match signing_key {
        Some(private) => Signer::new(private, alg)?,
        None if !Signer::is_symmetric(alg) => {
            anyhow::bail!("{alg:?} keys only verify: pass the private key with --signing-key")
        }
        None => {
            let keys = Keys::load(data_dir, jwt)?;
            let source = if subscribe_only {
                keys.subscriber
            } else {
                keys.publisher
            };
            match source {
                KeySource::Key(key) => Signer::new(&key, alg)?,
                KeySource::Jwks(url) => {
                    anyhow::bail!("tokens are verified with the JWKS at {url}: sign them with its issuer's key (--signing-key, and --kid naming it)")
                }
            }
        }
    })
}
