//! Automatic HTTPS: the domain names whose certificate the hub obtains and
//! renews from an ACME certificate authority, and how.

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

use super::{defaults, ConfigError};

/// Certificates obtained from an ACME CA (Let's Encrypt by default).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct AcmeOptions {
    /// Obtain and renew the HTTPS certificate for this domain name from an ACME CA (repeat it, or separate names with commas, for more names on one certificate); replaces --tls-cert
    #[arg(long, env = "SSEHUB_ACME_DOMAIN", value_name = "NAME", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub acme_domain: Option<Vec<String>>,
    /// Contact address of the ACME account, for the CA's expiry and policy notices
    #[arg(long, env = "SSEHUB_ACME_EMAIL", value_name = "ADDRESS")]
    pub acme_email: Option<String>,
    /// ACME directory URL of the CA (Let's Encrypt's staging server: https://acme-staging-v02.api.letsencrypt.org/directory)
    #[arg(long, env = "SSEHUB_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
    /// PEM CA certificate(s) trusted for the ACME directory's https:// URL besides the system's roots (a private ACME server)
    #[arg(long, env = "SSEHUB_ACME_CA_CERT", value_name = "FILE")]
    pub acme_ca_cert: Option<PathBuf>,
    /// How the CA checks that the hub answers for the names: tls-alpn-01 on --tls-listen (port 443 seen from the CA) or http-01 on --listen (port 80 seen from the CA)
    #[arg(long, env = "SSEHUB_ACME_CHALLENGE", value_name = "TYPE")]
    pub acme_challenge: Option<String>,
}

layer!(AcmeOptions {
    acme_domain,
    acme_email,
    acme_directory,
    acme_ca_cert,
    acme_challenge
});

/// How the CA validates the hub's control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A certificate for the name, offered on the TLS port to a client
    /// asking for ALPN `acme-tls/1` (RFC 8737).
    TlsAlpn01,
    /// A file under `/.well-known/acme-challenge/` on the plain port.
    Http01,
}

impl FromStr for ChallengeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ChallengeKind, String> {
        match s.trim() {
            "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
            "http-01" => Ok(ChallengeKind::Http01),
            other => Err(format!(
                "unknown challenge {other:?}: use tls-alpn-01 or http-01"
            )),
        }
    }
}

/// Where and how the hub obtains its certificate.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The names of the certificate, lowercase, the first one its subject.
    pub domains: Vec<String>,
    /// The account's contact address, if any (without `mailto:`).
    pub email: Option<String>,
    /// The CA's directory.
    pub directory: Url,
    /// An extra CA file trusted for the directory.
    pub ca_cert: Option<PathBuf>,
    /// The challenge answered.
    pub challenge: ChallengeKind,
}

impl AcmeOptions {
    /// Checks every value; `None` when no domain is given (the other
    /// settings then have no effect).
    pub(super) fn resolve(self) -> Result<Option<AcmeConfig>, ConfigError> {
        let unusable = |flag, why: String| ConfigError::Unusable { flag, why };
        let directory: String = defaults::ACME_DIRECTORY.or(self.acme_directory);
        let directory = Url::parse(&directory)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                unusable(
                    "acme-directory",
                    format!("{directory:?} is not an http(s) URL"),
                )
            })?;
        let challenge = defaults::ACME_CHALLENGE
            .or::<String>(self.acme_challenge)
            .parse()
            .map_err(|why| unusable("acme-challenge", why))?;
        let email = self
            .acme_email
            .map(|e| e.trim().trim_start_matches("mailto:").to_string())
            .filter(|e| !e.is_empty());
        if let Some(email) = email.as_deref().filter(|e| !e.contains('@')) {
            return Err(unusable(
                "acme-email",
                format!("{email:?} is not an e-mail address"),
            ));
        }
        let domains: Vec<String> = self
            .acme_domain
            .unwrap_or_default()
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if let Some(bad) = domains.iter().find(|d| !is_dns_name(d)) {
            return Err(unusable(
                "acme-domain",
                format!("{bad:?} is not a domain name (wildcards and IP addresses cannot be validated by these challenges)"),
            ));
        }
        let mut unique = domains.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != domains.len() {
            return Err(unusable("acme-domain", "a name is given twice".into()));
        }
        if domains.is_empty() {
            return Ok(None);
        }
        Ok(Some(AcmeConfig {
            domains,
            email,
            directory,
            ca_cert: self.acme_ca_cert,
            challenge,
        }))
    }
}

/// Whether `name` is a DNS name of at least two labels, each of 1 to 63
/// letters, digits and inner hyphens.
fn is_dns_name(name: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(label)
        && !name
            .split('.')
            .next_back()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        domains: &[&str],
        adjust: impl FnOnce(&mut AcmeOptions),
    ) -> Result<Option<AcmeConfig>, ConfigError> {
        let mut options = AcmeOptions {
            acme_domain: Some(domains.iter().map(|d| d.to_string()).collect()),
            ..AcmeOptions::default()
        };
        adjust(&mut options);
        options.resolve()
    }

    #[test]
    fn names_are_checked_and_defaults_applied() {
        let config = resolve(&["Hub.Example.com.", "b.example"], |_| {})
            .unwrap()
            .unwrap();
        assert_eq!(config.domains, ["hub.example.com", "b.example"]);
        assert_eq!(config.directory.as_str(), defaults::ACME_DIRECTORY.default);
        assert_eq!(config.challenge, ChallengeKind::TlsAlpn01);
        for bad in [
            "*.example.com",
            "127.0.0.1",
            "localhost",
            "a_b.example",
            "-a.example",
        ] {
            let err = resolve(&[bad], |_| {}).unwrap_err().to_string();
            assert!(err.contains("acme-domain"), "{bad}: {err}");
        }
        assert!(resolve(&["a.example", "A.example"], |_| {}).is_err());
        assert!(resolve(&[], |_| {}).unwrap().is_none());
    }

    #[test]
    fn other_settings_are_checked_and_need_a_domain_to_count() {
        assert!(resolve(&[], |o| o.acme_email = Some("a@b.example".into()))
            .unwrap()
            .is_none());
        assert!(resolve(&[], |o| o.acme_challenge = Some("dns-01".into())).is_err());
        let config = resolve(&["a.example"], |o| {
            o.acme_email = Some("mailto:ops@a.example".into());
            o.acme_challenge = Some("http-01".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!(config.email.as_deref(), Some("ops@a.example"));
        assert_eq!(config.challenge, ChallengeKind::Http01);
        assert!(resolve(&["a.example"], |o| o.acme_email = Some("ops".into())).is_err());
        assert!(resolve(&["a.example"], |o| o.acme_challenge = Some("dns-01".into())).is_err());
        assert!(resolve(&["a.example"], |o| o.acme_directory =
            Some("ftp://x".into()))
        .is_err());
    }
}
