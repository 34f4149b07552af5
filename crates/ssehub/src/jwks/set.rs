//! The usable keys of one JWK set document, and which of them verifies a
//! token of a given `kid` and `alg`. Pure: no I/O, nothing of the crate.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// Why no key of the set verifies a token (answered with 401).
#[derive(Debug, thiserror::Error)]
pub enum NoKey {
    /// The token's algorithm is not in the allowlist.
    #[error("algorithm {0:?} is not accepted (--jwt-algorithms)")]
    NotAllowed(Algorithm),
    /// No key of the set has the token's `kid`.
    #[error("no key {0:?} in the JWKS")]
    UnknownKid(String),
    /// The key named by the token cannot verify its algorithm.
    #[error("the JWKS key {kid:?} does not verify {alg:?} tokens")]
    WrongKey {
        /// The token's `kid`.
        kid: String,
        /// The token's `alg`.
        alg: Algorithm,
    },
    /// The token names no `kid`, and not exactly one key fits its algorithm.
    #[error("the token has no kid, and the JWKS holds {fitting} keys for {alg:?} (one is needed)")]
    NoKid {
        /// The token's `alg`.
        alg: Algorithm,
        /// How many keys fit it.
        fitting: usize,
    },
}

/// Why a key of a set is never used.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("not a JWK: {0}")]
    Malformed(serde_json::Error),
    #[error("a symmetric (oct) key: a secret published in a key set is no secret")]
    Symmetric,
    #[error("not meant for signatures (use or key_ops)")]
    NotForSignatures,
    #[error("its alg {0} is not accepted")]
    NotAllowed(String),
    #[error("curve {0:?} is not supported")]
    Curve(EllipticCurve),
    #[error("no accepted algorithm fits it")]
    NoAlgorithm,
    #[error("{0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// The kind of a public key, which decides the algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Kind {
    fn verifies(self, alg: Algorithm) -> bool {
        match self {
            Kind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Kind::P256 => alg == Algorithm::ES256,
            Kind::P384 => alg == Algorithm::ES384,
            Kind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// A public key of the set that may verify tokens.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    kind: Kind,
    /// The key's own `alg`, if it declares one.
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

impl Key {
    /// Whether this key verifies `alg` tokens (the allowlist aside).
    fn fits(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// The key of `jwk`, if it is one this hub uses with `allowed`.
    fn usable(jwk: Value, allowed: &[Algorithm]) -> Result<Key, Unusable> {
        let jwk: Jwk = serde_json::from_value(jwk).map_err(Unusable::Malformed)?;
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
            || common
                .key_operations
                .as_ref()
                .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return Err(Unusable::NotForSignatures);
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Kind::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Kind::P256,
                EllipticCurve::P384 => Kind::P384,
                ref other => return Err(Unusable::Curve(other.clone())),
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => Kind::Ed25519,
                ref other => return Err(Unusable::Curve(other.clone())),
            },
            AlgorithmParameters::OctetKey(_) => return Err(Unusable::Symmetric),
        };
        let alg = match common.key_algorithm {
            None => None,
            Some(named) => match Algorithm::from_str(&named.to_string()) {
                Ok(alg) if allowed.contains(&alg) => Some(alg),
                _ => return Err(Unusable::NotAllowed(named.to_string())),
            },
        };
        let key = Key {
            kid: common.key_id.clone(),
            kind,
            alg,
            decoding: DecodingKey::from_jwk(&jwk).map_err(Unusable::Invalid)?,
        };
        if !allowed.iter().any(|&alg| key.fits(alg)) {
            return Err(Unusable::NoAlgorithm);
        }
        Ok(key)
    }
}

/// The usable keys of one JWK set document.
#[derive(Clone)]
pub(super) struct KeySet {
    keys: Vec<Key>,
    /// What was left out and why, one line per key.
    skipped: Vec<String>,
}

impl KeySet {
    /// The keys of `document` usable with the `allowed` algorithms; an
    /// error only if `document` is not a JWK set at all.
    pub(super) fn parse(document: &[u8], allowed: &[Algorithm]) -> serde_json::Result<KeySet> {
        /// A set whose keys are read one by one, so that one key this hub
        /// cannot read does not make it drop the others.
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document = serde_json::from_slice(document)?;
        let mut set = KeySet {
            keys: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, jwk) in document.keys.into_iter().enumerate() {
            let name = match jwk.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("{kid:?}"),
                None => format!("#{i}"),
            };
            match Key::usable(jwk, allowed) {
                Ok(key) => set.keys.push(key),
                Err(why) => set.skipped.push(format!("key {name}: {why}")),
            }
        }
        Ok(set)
    }

    /// Whether no key is usable.
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys (`-` for a key without one).
    pub(super) fn kids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect()
    }

    /// Why the other keys are not used.
    pub(super) fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The key that verifies a token with `kid` (if it names one) and
    /// `alg`, the allowlist aside. Without a `kid`, the only key fitting
    /// `alg`.
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&DecodingKey, NoKey> {
        let Some(kid) = kid else {
            let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
            return match (fitting.next(), fitting.count()) {
                (Some(key), 0) => Ok(&key.decoding),
                (first, others) => Err(NoKey::NoKid {
                    alg,
                    fitting: usize::from(first.is_some()) + others,
                }),
            };
        };
        let mut named = self
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        if named.peek().is_none() {
            return Err(NoKey::UnknownKid(kid.to_string()));
        }
        named
            .find(|k| k.fits(alg))
            .map(|k| &k.decoding)
            .ok_or_else(|| NoKey::WrongKey {
                kid: kid.to_string(),
                alg,
            })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    use super::*;

    /// The default allowlist.
    pub(crate) const ASYMMETRIC: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// A P-256 key pair: its private key (PKCS#8 PEM) and its public JWK
    /// with `kid` and the extra members of `more`.
    pub(crate) fn p256(kid: &str, more: Value) -> (String, Value) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..]),
        });
        if let Value::Object(more) = more {
            jwk.as_object_mut().unwrap().extend(more);
        }
        (pair.serialize_pem(), jwk)
    }

    fn set(keys: &[Value], allowed: &[Algorithm]) -> KeySet {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes(), allowed).unwrap()
    }

    fn rsa(kid: &str) -> Value {
        // A 2048-bit modulus is not checked until a signature is verified.
        let n = URL_SAFE_NO_PAD.encode([0xc5; 256]);
        json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"})
    }

    #[test]
    fn keys_are_found_by_kid_and_must_fit_the_algorithm() {
        let (_, b) = p256("b", json!({}));
        let keys = set(&[rsa("a"), b], &ASYMMETRIC);
        assert_eq!(keys.kids(), ["a", "b"]);
        assert!(keys.find(Some("a"), Algorithm::RS256).is_ok());
        assert!(keys.find(Some("a"), Algorithm::PS512).is_ok());
        assert!(keys.find(Some("b"), Algorithm::ES256).is_ok());
        // Algorithm confusion: an RSA key never verifies HMAC or ECDSA.
        for alg in [Algorithm::HS256, Algorithm::ES256] {
            assert!(matches!(
                keys.find(Some("a"), alg),
                Err(NoKey::WrongKey { .. })
            ));
        }
        assert!(matches!(
            keys.find(Some("b"), Algorithm::ES384),
            Err(NoKey::WrongKey { .. })
        ));
        assert!(matches!(
            keys.find(Some("c"), Algorithm::RS256),
            Err(NoKey::UnknownKid(kid)) if kid == "c"
        ));
    }

    #[test]
    fn without_kid_only_a_single_fitting_key() {
        let (_, b) = p256("b", json!({}));
        let keys = set(&[rsa("a"), b], &ASYMMETRIC);
        assert!(keys.find(None, Algorithm::ES256).is_ok());
        assert!(matches!(
            keys.find(None, Algorithm::EdDSA),
            Err(NoKey::NoKid { fitting: 0, .. })
        ));
        let keys = set(&[rsa("a"), rsa("a2")], &ASYMMETRIC);
        assert!(matches!(
            keys.find(None, Algorithm::RS256),
            Err(NoKey::NoKid { fitting: 2, .. })
        ));
    }

    #[test]
    fn a_declared_alg_binds_the_key() {
        let mut a = rsa("a");
        a["alg"] = json!("PS256");
        let keys = set(&[a.clone()], &ASYMMETRIC);
        assert!(keys.find(Some("a"), Algorithm::PS256).is_ok());
        assert!(keys.find(Some("a"), Algorithm::RS256).is_err());
        // A key whose alg is not accepted is never used.
        let keys = set(&[a], &[Algorithm::RS256]);
        assert!(keys.is_empty());
        assert!(
            keys.skipped()[0].contains("PS256 is not accepted"),
            "{:?}",
            keys.skipped()
        );
    }

    #[test]
    fn unusable_keys_are_skipped_and_the_others_kept() {
        let (_, enc) = p256("enc", json!({"use": "enc"}));
        let (_, sign_only) = p256("ops", json!({"key_ops": ["sign"]}));
        let (_, verify) = p256("verify", json!({"use": "sig", "key_ops": ["verify"]}));
        let secret = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let p521 = json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"});
        let unknown_alg =
            json!({"kty": "RSA", "kid": "es512", "alg": "ES512", "n": "AA", "e": "AQAB"});
        let oaep = json!({"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB"});
        let keys = set(
            &[
                enc,
                sign_only,
                secret,
                p521,
                unknown_alg,
                oaep,
                json!(7),
                rsa("rsa"),
                verify,
            ],
            &ASYMMETRIC,
        );
        assert_eq!(keys.kids(), ["rsa", "verify"]);
        let skipped = keys.skipped().join("\n");
        for why in [
            "key \"enc\": not meant for signatures",
            "key \"ops\": not meant for signatures",
            "key \"hmac\": a symmetric (oct) key",
            "key \"p521\": curve P521 is not supported",
            "key \"es512\": not a JWK",
            "key \"oaep\": its alg RSA_OAEP is not accepted",
            "key #6: not a JWK",
        ] {
            assert!(skipped.contains(why), "{why:?} in {skipped}");
        }
        // Even with HMAC in the allowlist, a secret is never a key.
        assert!(set(
            &[json!({"kty": "oct", "k": "c2VjcmV0"})],
            &[Algorithm::HS256]
        )
        .is_empty());
        // ECDSA keys are of no use when only RSA is accepted.
        let (_, b) = p256("b", json!({}));
        assert!(set(&[b], &[Algorithm::RS256]).is_empty());
    }

    #[test]
    fn a_document_that_is_no_set_is_an_error() {
        for document in ["", "[]", "{\"keys\": 1}", "{}"] {
            assert!(
                KeySet::parse(document.as_bytes(), &ASYMMETRIC).is_err(),
                "{document:?}"
            );
        }
    }
}
