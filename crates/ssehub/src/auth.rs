//! JSON Web Tokens: loading keys, verifying tokens, signing new ones.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::jwks::{Jwks, JwksError, NoKey};
use crate::proto::claims::{ClaimsError, MercureClaim};

/// Why a key could not be loaded (a configuration error, stops start-up).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The algorithm name is not supported.
    #[error("unsupported JWT algorithm {0:?} (use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA)")]
    UnknownAlgorithm(String),
    /// A key file could not be read.
    #[error("cannot read key file {path}")]
    Unreadable {
        /// The file named in the configuration.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key is not a valid key for the algorithm.
    #[error("invalid {alg:?} key: {source}")]
    Invalid {
        /// The configured algorithm.
        alg: Algorithm,
        /// What the JWT library said.
        source: jsonwebtoken::errors::Error,
    },
    /// An asymmetric algorithm without a configured public key.
    #[error("--{0}-jwt-alg {1:?} needs --{0}-jwt-key: a PEM public key or @FILE (only HMAC secrets are generated)")]
    Missing(&'static str, Algorithm),
    /// An empty secret would make tokens forgeable.
    #[error("the JWT key is empty")]
    Empty,
    /// A JWK set cannot be used at start-up.
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

/// Why a presented token was refused (answered with 401).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signature, algorithm, expiry or form of the token is wrong.
    #[error("invalid token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The token is valid but its claims cannot be used.
    #[error("invalid token: {0}")]
    Claims(#[from] ClaimsError),
    /// No key of the JWK set verifies the token.
    #[error("invalid token: {0}")]
    Key(#[from] NoKey),
    /// `exp` or `nbf` in a form the JWT library leaves unchecked says the
    /// token is not valid now, or `nbf` is not a number.
    #[error("invalid token: {0}")]
    Date(&'static str),
}

/// Parses an algorithm name such as `HS256`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    // Case-insensitive: upper case, except EdDSA's own spelling.
    let upper = name.trim().to_ascii_uppercase();
    let alg: Algorithm = match upper.as_str() {
        "EDDSA" => Algorithm::EdDSA,
        _ => upper
            .parse()
            .map_err(|_| KeyError::UnknownAlgorithm(name.to_string()))?,
    };
    match alg {
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => Ok(alg),
        a if is_hmac(a) || is_rsa(a) => Ok(a),
        _ => Err(KeyError::UnknownAlgorithm(name.to_string())),
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}

/// Resolves a configured key to its bytes: `@PATH` reads a file, and so does a
/// non-PEM value for an asymmetric algorithm; anything else is the key itself.
pub fn key_material(key: &str, alg: Algorithm) -> Result<Vec<u8>, KeyError> {
    let path = match key.strip_prefix('@') {
        Some(path) => Some(path),
        None if !is_hmac(alg) && !key.contains("-----BEGIN") => Some(key),
        None => None,
    };
    let bytes = match path {
        Some(path) => std::fs::read(path).map_err(|source| KeyError::Unreadable {
            path: path.to_string(),
            source,
        })?,
        None => key.as_bytes().to_vec(),
    };
    if bytes.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(bytes)
}

/// A verified token: its header and its payload, for the claims code to
/// interpret.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The JOSE header (`alg`, `kid`, ...).
    pub header: Header,
    /// The payload, a JSON object whose `exp` and `nbf` (when present)
    /// have been checked.
    pub payload: Value,
}

/// Verifies tokens: with one configured key and one algorithm, or with the
/// keys of a JWK set, chosen by `kid`, for the allowed algorithms.
#[derive(Clone)]
pub struct Verifier {
    keys: VerifierKeys,
}

#[derive(Clone)]
enum VerifierKeys {
    /// A configured key; only its algorithm is accepted.
    Static {
        key: DecodingKey,
        validation: Box<Validation>,
    },
    /// The keys of a JWK set.
    Jwks(Jwks),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.keys {
            VerifierKeys::Static { validation, .. } => f
                .debug_struct("Verifier")
                .field("algorithms", &validation.algorithms)
                .finish_non_exhaustive(),
            VerifierKeys::Jwks(jwks) => f.debug_tuple("Verifier").field(jwks).finish(),
        }
    }
}

/// What every token must pass besides its signature, `alg` being its only
/// accepted algorithm: `exp` and `nbf` when present, with no leeway; no
/// claim required. `none` never parses as an algorithm.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}

impl Verifier {
    /// Builds a verifier from a configured key (secret, PEM or `@file`).
    pub fn new(key: &str, alg: Algorithm) -> Result<Verifier, KeyError> {
        let bytes = key_material(key, alg)?;
        let invalid = |source| KeyError::Invalid { alg, source };
        let key = if is_hmac(alg) {
            DecodingKey::from_secret(&bytes)
        } else if is_rsa(alg) {
            DecodingKey::from_rsa_pem(&bytes).map_err(invalid)?
        } else if alg == Algorithm::EdDSA {
            DecodingKey::from_ed_pem(&bytes).map_err(invalid)?
        } else {
            DecodingKey::from_ec_pem(&bytes).map_err(invalid)?
        };
        Ok(Verifier {
            keys: VerifierKeys::Static {
                key,
                validation: Box::new(validation(alg)),
            },
        })
    }

    /// A verifier using the keys of `jwks`.
    pub fn with_jwks(jwks: Jwks) -> Verifier {
        Verifier {
            keys: VerifierKeys::Jwks(jwks),
        }
    }

    /// Verifies a compact JWS: its signature, algorithm, `exp` and `nbf`.
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let data = match &self.keys {
            VerifierKeys::Static { key, validation } => {
                jsonwebtoken::decode::<Value>(token, key, validation)?
            }
            VerifierKeys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token)?;
                let key = jwks.key_for(&header).await?;
                jsonwebtoken::decode::<Value>(token, &key, &validation(header.alg))?
            }
        };
        check_dates(&data.claims)?;
        Ok(Verified {
            header: data.header,
            payload: data.claims,
        })
    }
}

/// Checks `exp` and `nbf` the way the JWT library checks them when it can
/// read them, in the forms it skips as if the claim were absent: it reads
/// numbers from 0 to `u64::MAX` (rounding fractions), and skips a number
/// beyond (`"nbf": 1e300` would make a token valid from the start), a
/// negative one and any other type. Compared to the current whole second,
/// as the library does. An `exp` that is not a non-negative number is
/// refused when the claims are read; an `nbf` that is not a number is
/// refused here.
fn check_dates(payload: &Value) -> Result<(), TokenError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // Whole seconds since 1970 are far below 2^53: the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let now = now as f64;
    let date = |claim| match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(date) => date.as_f64().map(Some).ok_or(claim),
    };
    match date("exp") {
        Ok(Some(exp)) if exp < now => return Err(TokenError::Date("expired (exp)")),
        _ => {}
    }
    match date("nbf") {
        Ok(Some(nbf)) if nbf > now => Err(TokenError::Date("not valid yet (nbf)")),
        Ok(_) => Ok(()),
        Err(_) => Err(TokenError::Date("malformed \"nbf\" claim")),
    }
}

/// Signs tokens (the `token` command and the start-up banner).
pub struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    /// The key id written in each token's header, if any.
    kid: Option<String>,
}

impl Signer {
    /// A signer from an HMAC secret or a PEM private key (`@file` allowed).
    pub fn new(key: &str, alg: Algorithm) -> Result<Signer, KeyError> {
        let bytes = key_material(key, alg)?;
        let invalid = |source| KeyError::Invalid { alg, source };
        let key = if is_hmac(alg) {
            EncodingKey::from_secret(&bytes)
        } else if is_rsa(alg) {
            EncodingKey::from_rsa_pem(&bytes).map_err(invalid)?
        } else if alg == Algorithm::EdDSA {
            EncodingKey::from_ed_pem(&bytes).map_err(invalid)?
        } else {
            EncodingKey::from_ec_pem(&bytes).map_err(invalid)?
        };
        Ok(Signer {
            key,
            alg,
            kid: None,
        })
    }

    /// This signer, naming its key `kid` in every token's header (so a hub
    /// verifying with a JWK set of several keys picks this one).
    pub fn with_kid(self, kid: Option<String>) -> Signer {
        Signer { kid, ..self }
    }

    /// Whether the algorithm is symmetric (the verifying key can also sign).
    pub fn is_symmetric(alg: Algorithm) -> bool {
        is_hmac(alg)
    }

    /// Signs a token granting `claim`, expiring after `ttl` if given.
    pub fn sign(&self, claim: &MercureClaim, ttl: Option<Duration>) -> String {
        self.sign_expiring(serde_json::json!({ "mercure": claim }), ttl)
    }

    /// Signs a 0.x token with these claims, adding `exp` when `ttl` is
    /// given.
    pub fn sign_expiring(&self, mut payload: Value, ttl: Option<Duration>) -> String {
        if let Some(ttl) = ttl {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            payload["exp"] = Value::from((now + ttl).as_secs());
        }
        self.sign_json("JWT", &payload)
    }

    /// Signs `claims` with the header type `typ` (`at+jwt` for a 1.0
    /// access token).
    pub fn sign_json(&self, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.typ = Some(typ.to_string());
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, &self.key)
            .expect("encoding a JSON object with a loaded key cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> MercureClaim {
        MercureClaim {
            publish: Some(vec!["*".into()]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn dates_in_every_numeric_form_are_checked() {
        let signer = Signer::new("secret", Algorithm::HS256).unwrap();
        let verifier = Verifier::new("secret", Algorithm::HS256).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let verify = |claims: Value| {
            let token = signer.sign_json("JWT", &claims);
            let verifier = verifier.clone();
            async move { verifier.verify(&token).await.map(|_| ()) }
        };
        for refused in [
            serde_json::json!({"exp": now - 60.5}),
            serde_json::json!({"exp": -1}),
            serde_json::json!({"nbf": now + 3600.5}),
            serde_json::json!({"nbf": 1e300}),
            serde_json::json!({"nbf": "soon"}),
        ] {
            assert!(verify(refused.clone()).await.is_err(), "{refused}");
        }
        for accepted in [
            serde_json::json!({"exp": now + 60.5, "nbf": now - 60.5}),
            serde_json::json!({"exp": 1e300, "iat": 1e300}),
            serde_json::json!({"nbf": -1}),
        ] {
            assert!(verify(accepted.clone()).await.is_ok(), "{accepted}");
        }
    }

    #[tokio::test]
    async fn round_trip_and_wrong_key() {
        let token = Signer::new("secret", Algorithm::HS256)
            .unwrap()
            .sign(&claim(), None);
        let ok = Verifier::new("secret", Algorithm::HS256).unwrap();
        let verified = ok.verify(&token).await.unwrap();
        assert_eq!(verified.header.alg, Algorithm::HS256);
        assert_eq!(
            verified.payload["mercure"],
            serde_json::to_value(claim()).unwrap()
        );
        for other in [
            Verifier::new("other", Algorithm::HS256).unwrap(),
            Verifier::new("secret", Algorithm::HS512).unwrap(),
        ] {
            assert!(other.verify(&token).await.is_err());
        }
    }

    /// Tokens with the header `header` and the payloads `{"exp": 1}`
    /// (expired), `{"nbf": u32::MAX}` (not yet valid) and
    /// `{"exp": u32::MAX}` (valid), signed with `key`.
    fn timed_tokens(header: &Header, key: &EncodingKey) -> [String; 3] {
        let far = Value::from(u32::MAX);
        [
            serde_json::json!({"mercure": claim(), "exp": 1}),
            serde_json::json!({"mercure": claim(), "nbf": far}),
            serde_json::json!({"mercure": claim(), "exp": far}),
        ]
        .map(|payload| jsonwebtoken::encode(header, &payload, key).unwrap())
    }

    /// An unsigned token (`alg: none`) with `kid`.
    fn unsigned(kid: &str) -> String {
        use base64_url as b64;
        let header = b64(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#).as_bytes());
        let body = b64(br#"{"mercure":{"publish":["*"]}}"#);
        format!("{header}.{body}.")
    }

    #[tokio::test]
    async fn refuses_alg_none_and_expired() {
        let v = Verifier::new("secret", Algorithm::HS256).unwrap();
        assert!(v.verify(&unsigned("a")).await.is_err());
        let signer = Signer::new("secret", Algorithm::HS256).unwrap();
        let [expired, early, valid] = timed_tokens(&Header::new(Algorithm::HS256), &signer.key);
        assert!(v.verify(&expired).await.is_err());
        assert!(v.verify(&early).await.is_err());
        assert_eq!(
            v.verify(&valid).await.unwrap().payload["exp"],
            u64::from(u32::MAX)
        );
    }

    #[tokio::test]
    async fn jwks_tokens_are_checked_like_the_others() {
        let (private, jwk) = crate::jwks::tests::p256("a", serde_json::json!({}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
        let settings = crate::jwks::Settings {
            algorithms: vec![Algorithm::ES256],
            refresh: Duration::ZERO,
            min_refresh: Duration::ZERO,
            ca_cert: None,
        };
        let url = url::Url::from_file_path(&path).unwrap();
        let v = Verifier::with_jwks(Jwks::load(url.as_str(), &settings).await.unwrap());
        assert!(v.verify(&unsigned("a")).await.is_err());
        let header = Header {
            kid: Some("a".into()),
            ..Header::new(Algorithm::ES256)
        };
        let key = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
        let [expired, early, valid] = timed_tokens(&header, &key);
        assert!(v.verify(&expired).await.is_err());
        assert!(v.verify(&early).await.is_err());
        let verified = v.verify(&valid).await.unwrap();
        assert_eq!(verified.header.kid.as_deref(), Some("a"));
        assert_eq!(verified.payload["exp"], u64::from(u32::MAX));
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn unreadable_key_file_is_named() {
        let err = Verifier::new("@/nonexistent/key.pem", Algorithm::RS256).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
        assert!(parse_algorithm("none").is_err());
        assert_eq!(parse_algorithm("rs512").unwrap(), Algorithm::RS512);
        assert_eq!(parse_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
        assert_eq!(parse_algorithm("eddsa").unwrap(), Algorithm::EdDSA);
    }
}
