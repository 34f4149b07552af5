//! Automatic HTTPS: the hub obtains the certificate of its TLS listener
//! from an ACME certificate authority (RFC 8555; Let's Encrypt by
//! default) and renews it well before it expires.
//!
//! [`client`] speaks HTTP to the CA over [`crate::outbound`]; [`account`]
//! keeps the account key in the data directory; [`issue`] places one
//! order and answers its challenges through [`Challenges`], which the TLS
//! listener (TLS-ALPN-01, RFC 8737) and the plain listener (HTTP-01) read;
//! [`renew`] decides when to order, writes the certificate to the cache
//! and reloads it into the listeners, retrying with backoff; [`Status`]
//! tells `/readyz` and the metrics how that goes.

mod account;
mod cache;
mod challenges;
mod client;
mod issue;
mod renew;
mod status;

pub use cache::Cache;
pub use challenges::{Challenges, ACME_TLS_ALPN};
pub use renew::spawn;
pub use status::{Reading, Status};

use rustls::pki_types::CertificateDer;

/// Where the certificates obtained are served: the TLS listener, which
/// implements this (so this module needs nothing of the server's).
pub trait Serving: Send + Sync {
    /// The leaf certificate served now, if any.
    fn certificate(&self) -> Option<CertificateDer<'static>>;
    /// Reads the certificate and key from the cache again and serves them
    /// to new connections; open ones keep theirs.
    fn reload(&self) -> Result<(), InstallError>;
}

/// Why a certificate written to the cache cannot be served (the listener's
/// own error, as text).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InstallError(pub String);

/// A hub's ACME state, shared by the renewal task, the listeners, the
/// health probe and the metrics.
#[derive(Debug, Default)]
pub struct Acme {
    /// The challenge responses offered while an order is validated.
    pub challenges: Challenges,
    /// How obtaining and renewing the certificate goes.
    pub status: Status,
}

/// Why an attempt to obtain a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA refused a request, answered with a problem, or could not
    /// be reached.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The CA offers no challenge of the configured type for a name.
    #[error("the CA offers no {kind} challenge for {domain}")]
    NoChallenge {
        /// The name.
        domain: String,
        /// The configured challenge type.
        kind: &'static str,
    },
    /// An authorization can no longer become valid.
    #[error("the authorization of {domain} is {status}")]
    Authorization {
        /// The name.
        domain: String,
        /// Its status, as the CA gave it.
        status: String,
    },
    /// The order did not become ready: a challenge failed.
    #[error("the order is {status}{detail}")]
    Order {
        /// The order's status.
        status: String,
        /// The CA's explanation, if it gave one (": ..." ).
        detail: String,
    },
    /// The challenge certificate could not be made.
    #[error("cannot make the TLS-ALPN-01 certificate: {0}")]
    ChallengeCertificate(String),
    /// The account or certificate cache could not be read or written.
    #[error("cannot access {path}: {source}")]
    Cache {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cached account cannot be read.
    #[error("unreadable ACME account {path}: {source}")]
    Account {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// The extra CA file for the directory cannot be used.
    #[error(transparent)]
    Ca(#[from] crate::outbound::CaError),
    /// The new certificate lacks a name, or two thirds of its lifetime
    /// have passed already (it is served all the same).
    #[error(
        "the CA's certificate is already due for renewal: it lacks a name, or is too short-lived"
    )]
    AlreadyDue,
    /// The new certificate cannot be served.
    #[error("the new certificate cannot be served: {0}")]
    Install(#[from] InstallError),
}

impl AcmeError {
    /// Whether the CA no longer knows the cached account (deactivated,
    /// or a test CA that was reset): a new one is then created.
    fn is_unknown_account(&self) -> bool {
        const UNKNOWN: &str = "urn:ietf:params:acme:error:accountDoesNotExist";
        matches!(
            self,
            AcmeError::Protocol(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref() == Some(UNKNOWN)
        )
    }
}
