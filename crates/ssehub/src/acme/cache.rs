//! Where the account and the certificate are kept: a directory of the data
//! directory per CA (an account belongs to one CA, and a staging
//! certificate must not be served after a switch to production).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use url::Url;

use super::AcmeError;

/// The cache directory of one CA.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `DATA_DIR/acme/HOST-HASH` for the CA whose directory is `directory`.
    pub fn new(data_dir: &Path, directory: &Url) -> Cache {
        let host = directory.host_str().unwrap_or("ca");
        let hash = ring::digest::digest(&ring::digest::SHA256, directory.as_str().as_bytes());
        let name = format!("{host}-{}", hex::encode(&hash.as_ref()[..4]));
        Cache {
            dir: data_dir.join("acme").join(name),
        }
    }

    /// The certificate chain and its private key, in one PEM file (so the
    /// two are always replaced together), readable by the owner only.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    /// The account's credentials (its private key and URL), owner only.
    pub(super) fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// Creates the directory (owner only) if it is missing.
    pub(super) fn create(&self) -> Result<(), AcmeError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| AcmeError::Cache {
                path: self.dir.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_per_ca() {
        let url = |s: &str| Url::parse(s).unwrap();
        let production = Cache::new(
            Path::new("/d"),
            &url("https://acme-v02.api.letsencrypt.org/directory"),
        );
        let staging = Cache::new(
            Path::new("/d"),
            &url("https://acme-staging-v02.api.letsencrypt.org/directory"),
        );
        assert_ne!(production.certificate(), staging.certificate());
        let path = production.certificate();
        let path = path.to_str().unwrap();
        assert!(
            path.starts_with("/d/acme/acme-v02.api.letsencrypt.org-"),
            "{path}"
        );
    }
}
