//! Keys and tokens seen from outside the hub: key pairs made with the
//! `openssl` command or rcgen, a private CA, public keys as JWKs, and the
//! JSON inside a compact JWT.

use std::path::{Path, PathBuf};

use base64::Engine;

/// `openssl genpkey` arguments for a 2048-bit RSA key.
pub(crate) const RSA_2048: [&str; 4] = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

/// Runs `openssl ARGS`; panics with its stderr if it fails.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a key pair with `openssl genpkey GENPKEY` in `dir`: the paths of
/// the private key `NAME.pem` and of the public key `NAME.pub.pem` (PEM).
pub(crate) fn key_pair(dir: &Path, name: &str, genpkey: &[&str]) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend(["-out", private.to_str().unwrap()]);
    openssl(&args);
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (private, public)
}

/// Writes a CA and a certificate for 127.0.0.1 signed by it into `dir`;
/// returns the paths of the CA, the certificate and its key.
pub(crate) fn private_ca(dir: &Path) -> [String; 3] {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_string()
    })
}

/// Base64url without padding, as JWKs and JWTs write bytes.
fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK, with `kid`, of the RSA private key at `private` (a
/// PKCS#8 PEM file, as [`key_pair`] writes).
pub(crate) fn rsa_jwk(private: &Path, kid: &str) -> serde_json::Value {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(private).unwrap();
    let pair = ring::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    serde_json::json!({"kty": "RSA", "kid": kid, "n": b64url(&public.n), "e": b64url(&public.e)})
}

/// A new P-256 key pair: its private key (PKCS#8 PEM) and its public JWK
/// with `kid`.
pub(crate) fn p256_jwk(kid: &str) -> (String, serde_json::Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    // The uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key_raw();
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": b64url(&point[1..33]), "y": b64url(&point[33..]),
    });
    (pair.serialize_pem(), jwk)
}

/// The JSON header of a compact JWT.
pub(crate) fn jwt_header(token: &str) -> serde_json::Value {
    jwt_part(token, 0)
}

/// The JSON payload of a compact JWT.
pub(crate) fn jwt_payload(token: &str) -> serde_json::Value {
    jwt_part(token, 1)
}

/// Part `i` of a compact JWT, decoded as JSON.
fn jwt_part(token: &str, i: usize) -> serde_json::Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token:?}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[i])
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}
