//! Keys and tokens seen from outside the hub: key pairs made with the
//! `openssl` command, and the JSON inside a compact JWT.

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
