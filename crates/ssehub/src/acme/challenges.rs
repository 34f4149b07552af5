//! The challenge responses offered while the CA validates an order: a
//! self-signed certificate carrying the key authorization's digest, served
//! to a TLS client asking for ALPN `acme-tls/1` (TLS-ALPN-01, RFC 8737),
//! and the key authorization served on the plain port (HTTP-01).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::AcmeError;

/// The ALPN protocol of TLS-ALPN-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The responses being offered, by token (HTTP-01) and by name
/// (TLS-ALPN-01).
#[derive(Debug, Default)]
pub struct Challenges {
    http: RwLock<HashMap<String, String>>,
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The key authorization of an HTTP-01 `token` being validated.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.http.read().get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate of `name` being validated.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn
            .read()
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Serves `key_authorization` at `/.well-known/acme-challenge/TOKEN`.
    pub(super) fn offer_http01(&self, token: &str, key_authorization: &str) {
        self.http
            .write()
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Serves a certificate for `name` carrying `digest` (the SHA-256 of
    /// the key authorization) to `acme-tls/1` clients.
    pub(super) fn offer_tls_alpn01(&self, name: &str, digest: &[u8]) -> Result<(), AcmeError> {
        let certificate = validation_certificate(name, digest)
            .map_err(|e| AcmeError::ChallengeCertificate(e.to_string()))?;
        self.tls_alpn
            .write()
            .insert(name.to_string(), Arc::new(certificate));
        Ok(())
    }

    /// Stops serving every response (an order is over).
    pub(super) fn withdraw_all(&self) {
        self.http.write().clear();
        self.tls_alpn.write().clear();
    }
}

/// A self-signed certificate for `name` with the critical `acmeIdentifier`
/// extension holding `digest`, and its key.
fn validation_certificate(
    name: &str,
    digest: &[u8],
) -> Result<CertifiedKey, Box<dyn std::error::Error>> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = default_provider().key_provider.load_private_key(private)?;
    Ok(CertifiedKey::new(vec![certificate.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_and_withdraws() {
        let challenges = Challenges::default();
        challenges.offer_http01("tok", "tok.thumb");
        challenges
            .offer_tls_alpn01("hub.example", &[7; 32])
            .unwrap();
        assert_eq!(challenges.http01("tok").as_deref(), Some("tok.thumb"));
        assert!(challenges.http01("other").is_none());
        let certified = challenges.tls_alpn01("HUB.example").unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&certified.cert[0]).unwrap();
        let extension = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(extension.critical);
        // An OCTET STRING of 32 bytes: the digest.
        assert_eq!(extension.value, [&[4u8, 32][..], &[7; 32]].concat());
        challenges.withdraw_all();
        assert!(challenges.http01("tok").is_none());
        assert!(challenges.tls_alpn01("hub.example").is_none());
    }
}
