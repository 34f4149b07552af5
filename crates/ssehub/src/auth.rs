//! JSON Web Tokens: loading keys, verifying tokens, signing new ones.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::proto::claims::{Claims, ClaimsError, MercureClaim};

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

/// Whether `alg` is RS* or PS* (verified with an RSA key).
pub(crate) fn is_rsa(alg: Algorithm) -> bool {
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

/// Verifies tokens signed with one key and one algorithm.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
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
        // Only the configured algorithm is accepted; `none` never parses as one.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(Verifier { key, validation })
    }

    /// Verifies a compact JWS and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)?;
        Ok(Claims::from_payload(&data.claims)?)
    }
}

/// Signs tokens (the `token` command and the start-up banner).
pub struct Signer {
    key: EncodingKey,
    alg: Algorithm,
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
        Ok(Signer { key, alg })
    }

    /// Whether the algorithm is symmetric (the verifying key can also sign).
    pub fn is_symmetric(alg: Algorithm) -> bool {
        is_hmac(alg)
    }

    /// Signs a token granting `claim`, expiring after `ttl` if given.
    pub fn sign(&self, claim: &MercureClaim, ttl: Option<Duration>) -> String {
        let mut payload = serde_json::json!({ "mercure": claim });
        if let Some(ttl) = ttl {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            payload["exp"] = Value::from((now + ttl).as_secs());
        }
        jsonwebtoken::encode(&Header::new(self.alg), &payload, &self.key)
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

    #[test]
    fn round_trip_and_wrong_key() {
        let token = Signer::new("secret", Algorithm::HS256)
            .unwrap()
            .sign(&claim(), None);
        let ok = Verifier::new("secret", Algorithm::HS256).unwrap();
        assert_eq!(ok.verify(&token).unwrap().mercure, claim());
        assert!(Verifier::new("other", Algorithm::HS256)
            .unwrap()
            .verify(&token)
            .is_err());
        assert!(Verifier::new("secret", Algorithm::HS512)
            .unwrap()
            .verify(&token)
            .is_err());
    }

    #[test]
    fn refuses_alg_none_and_expired() {
        use base64_url as b64;
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(br#"{"mercure":{"publish":["*"]}}"#);
        let v = Verifier::new("secret", Algorithm::HS256).unwrap();
        assert!(v.verify(&format!("{header}.{body}.")).is_err());
        let signer = Signer::new("secret", Algorithm::HS256).unwrap();
        let mut expired = serde_json::json!({"mercure": claim(), "exp": 1});
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &signer.key).unwrap();
        assert!(v.verify(&t).is_err());
        expired["exp"] = Value::from(u32::MAX);
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &signer.key).unwrap();
        assert_eq!(v.verify(&t).unwrap().exp, Some(u64::from(u32::MAX)));
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
