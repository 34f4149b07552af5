//! TLS: the certificate (given, or generated for localhost), what a browser
//! flag or a pin needs to trust it, and reloading it without dropping streams.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::acme::{Acme, ACME_TLS_ALPN};

/// ALPN protocols of the TLS port, best first.
const ALPN_TCP: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// ALPN protocol of the QUIC port.
const ALPN_QUIC: &[u8] = b"h3";

/// Why TLS could not be set up (stops start-up) or a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM holds no usable certificate or key.
    #[error("invalid {what} in {path}: {message}")]
    Invalid {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Only one of `--tls-cert` and `--tls-key` was given.
    #[error("--tls-cert and --tls-key go together: give both, or neither to use a generated certificate")]
    HalfConfigured,
    /// Generating a certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

/// What identifies a certificate to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    /// SHA-256 of the certificate, colon-separated hex (as browsers show it).
    pub sha256: String,
    /// Base64 SHA-256 of the SubjectPublicKeyInfo: for Chromium's
    /// `--ignore-certificate-errors-spki-list` and for key pinning.
    pub spki_sha256: String,
}

/// Where the certificate and key live.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Whether ssehub generated them (self-signed for localhost).
    pub generated: bool,
}

impl CertFiles {
    /// The configured files, or a self-signed pair generated once under
    /// `data_dir/tls` for `localhost`, `127.0.0.1` and `::1`.
    pub fn resolve(
        cert: Option<&Path>,
        key: Option<&Path>,
        data_dir: &Path,
    ) -> Result<CertFiles, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(CertFiles {
                cert: cert.into(),
                key: key.into(),
                generated: false,
            }),
            (None, None) => generate_if_missing(&data_dir.join("tls")),
            _ => Err(TlsError::HalfConfigured),
        }
    }
}

fn generate_if_missing(dir: &Path) -> Result<CertFiles, TlsError> {
    let files = CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        generated: true,
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // A pair cut short by a crash (a key without its certificate: each file
    // is written whole, one after the other) is made anew.
    for leftover in [&files.key, &files.cert] {
        match std::fs::remove_file(leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(leftover)(e)),
            _ => {}
        }
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    crate::files::create_private(&files.key, generated.key_pair.serialize_pem().as_bytes())
        .map_err(io(&files.key))?;
    crate::files::create(&files.cert, generated.cert.pem().as_bytes(), 0o644)
        .map_err(io(&files.cert))?;
    Ok(files)
}

/// Serves the current certificate; swapped in place on reload, so new
/// handshakes get the new one and open connections are untouched. With
/// ACME, a client asking for ALPN `acme-tls/1` (the CA validating a
/// TLS-ALPN-01 challenge) gets the challenge certificate of its SNI name.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    acme: Option<Arc<Acme>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(acme) = &self.acme {
            let mut alpn = hello.alpn().into_iter().flatten();
            if alpn.any(|protocol| protocol == ACME_TLS_ALPN) {
                return acme.challenges.tls_alpn01(hello.server_name()?);
            }
        }
        self.current.read().clone()
    }
}

/// The hub's TLS state: configurations for TCP and QUIC sharing one
/// reloadable certificate.
pub struct Tls {
    files: CertFiles,
    resolver: Arc<Resolver>,
    fingerprints: RwLock<Option<Fingerprints>>,
}

impl Tls {
    /// Loads the certificate and key.
    pub fn load(files: CertFiles) -> Result<Tls, TlsError> {
        let (key, fingerprints) = load_certified(&files)?;
        Ok(Tls {
            files,
            resolver: Arc::new(Resolver {
                current: RwLock::new(Some(key)),
                acme: None,
            }),
            fingerprints: RwLock::new(Some(fingerprints)),
        })
    }

    /// The TLS state of a hub whose certificate `acme` obtains into
    /// `files`: the certificate cached there is served if it is usable;
    /// until one is, handshakes fail (except ACME's own).
    pub fn with_acme(files: CertFiles, acme: Arc<Acme>) -> Tls {
        let loaded = match load_certified(&files) {
            Ok((key, fingerprints)) => Some((key, fingerprints)),
            Err(_) if !files.cert.exists() => None,
            Err(e) => {
                tracing::warn!(
                    "the cached certificate cannot be served, a new one will be obtained: {e:#}"
                );
                None
            }
        };
        let (key, fingerprints) = loaded.unzip();
        Tls {
            files,
            resolver: Arc::new(Resolver {
                current: RwLock::new(key),
                acme: Some(acme),
            }),
            fingerprints: RwLock::new(fingerprints),
        }
    }

    /// Reads the files again and serves the new certificate from the next
    /// handshake on; on error the current one stays.
    pub fn reload(&self) -> Result<Fingerprints, TlsError> {
        let (key, fingerprints) = load_certified(&self.files)?;
        *self.resolver.current.write() = Some(key);
        *self.fingerprints.write() = Some(fingerprints.clone());
        Ok(fingerprints)
    }

    /// The current certificate's fingerprints (none before ACME obtained
    /// the first one).
    pub fn fingerprints(&self) -> Option<Fingerprints> {
        self.fingerprints.read().clone()
    }

    /// The certificate served now (the leaf of the chain).
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        let current = self.resolver.current.read();
        current.as_ref().and_then(|key| key.cert.first().cloned())
    }

    /// The certificate files.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    fn config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// The TLS configuration of the TCP port (ALPN `h2`, `http/1.1`, and
    /// `acme-tls/1` with ACME).
    pub fn tcp_config(&self) -> Arc<rustls::ServerConfig> {
        let mut alpn = ALPN_TCP.to_vec();
        if self.resolver.acme.is_some() {
            alpn.push(ACME_TLS_ALPN);
        }
        Arc::new(self.config(&alpn))
    }

    /// The TLS configuration of the QUIC port (ALPN `h3`).
    pub fn quic_config(&self) -> rustls::ServerConfig {
        self.config(&[ALPN_QUIC])
    }
}

impl crate::acme::Serving for Tls {
    fn certificate(&self) -> Option<CertificateDer<'static>> {
        Tls::certificate(self)
    }

    fn reload(&self) -> Result<(), crate::acme::InstallError> {
        Tls::reload(self)
            .map(drop)
            .map_err(|e| crate::acme::InstallError(e.to_string()))
    }
}

fn load_certified(files: &CertFiles) -> Result<(Arc<CertifiedKey>, Fingerprints), TlsError> {
    let invalid = |what, path: &Path, message: String| TlsError::Invalid {
        what,
        path: path.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("certificate", &files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("certificate", &files.cert, e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| invalid("certificate", &files.cert, "no CERTIFICATE block".into()))?;
    let fingerprints =
        fingerprints_of(leaf).map_err(|e| invalid("certificate", &files.cert, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| invalid("private key", &files.key, e.to_string()))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid("private key", &files.key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            "private key",
            &files.key,
            format!("it does not match the certificate: {e}"),
        )
    })?;
    Ok((Arc::new(certified), fingerprints))
}

/// The certificate's SHA-256 fingerprint and SPKI hash.
fn fingerprints_of(
    der: &CertificateDer<'_>,
) -> Result<Fingerprints, x509_parser::nom::Err<x509_parser::error::X509Error>> {
    use ring::digest::{digest, SHA256};
    let spki = crate::outbound::SpkiPin::of(der)?;
    let whole = digest(&SHA256, der);
    let sha256 = whole
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(Fingerprints {
        sha256,
        spki_sha256: spki.base64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn generates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::resolve(None, None, dir.path()).unwrap();
        assert!(files.generated);
        let tls = Tls::load(files.clone()).unwrap();
        let first = tls.fingerprints().unwrap();
        assert_eq!(first.sha256.len(), 32 * 3 - 1);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&first.spki_sha256)
                .unwrap()
                .len(),
            32
        );
        let again = CertFiles::resolve(None, None, dir.path()).unwrap();
        assert_eq!(
            Tls::load(again).unwrap().fingerprints().unwrap(),
            first,
            "reused, not regenerated"
        );
        std::fs::remove_file(&files.cert).unwrap();
        std::fs::remove_file(&files.key).unwrap();
        generate_if_missing(&dir.path().join("tls")).unwrap();
        assert_ne!(
            tls.reload().unwrap(),
            first,
            "a replaced certificate is picked up"
        );
        assert!(CertFiles::resolve(Some(Path::new("a")), None, dir.path()).is_err());
    }
}
