//! The ACME account: created at the CA on first use, its credentials (a
//! P-256 key and the account URL) kept in the cache, owner-only, and
//! reused from then on.

use instant_acme::{Account, AccountCredentials, NewAccount};

use super::cache::Cache;
use super::client::Client;
use super::AcmeError;
use crate::config::AcmeConfig;

/// The cached account, or a new one registered with the CA (agreeing to
/// its terms of service, as running with `--acme-domain` means).
pub(super) async fn load_or_create(
    config: &AcmeConfig,
    cache: &Cache,
) -> Result<Account, AcmeError> {
    let path = cache.account();
    let client = || Client::new(config.ca_cert.as_deref()).map(Box::new);
    match std::fs::read(&path) {
        Ok(json) => {
            let credentials: AccountCredentials =
                serde_json::from_slice(&json).map_err(|source| AcmeError::Account {
                    path: path.clone(),
                    source,
                })?;
            Ok(Account::builder_with_http(client()?)
                .from_credentials(credentials)
                .await?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (account, credentials) = Account::builder_with_http(client()?)
                .create(
                    &NewAccount {
                        contact: &contacts,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    config.directory.to_string(),
                    None,
                )
                .await?;
            let json = serde_json::to_vec(&credentials).map_err(|source| AcmeError::Account {
                path: path.clone(),
                source,
            })?;
            cache.create()?;
            crate::files::replace_private(&path, &json)
                .map_err(|source| AcmeError::Cache { path, source })?;
            tracing::info!(
                "ACME account {} created at {}",
                account.id(),
                config.directory
            );
            Ok(account)
        }
        Err(source) => Err(AcmeError::Cache { path, source }),
    }
}

/// Removes the cached account, which the CA no longer knows.
pub(super) fn forget(cache: &Cache) -> Result<(), AcmeError> {
    let path = cache.account();
    tracing::warn!(
        "the CA no longer knows the ACME account of {}: a new one will be created",
        path.display()
    );
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(AcmeError::Cache { path, source: e })
        }
        _ => Ok(()),
    }
}
