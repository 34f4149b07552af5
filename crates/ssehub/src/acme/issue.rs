//! One order: a certificate for every configured name, each name proven
//! by the configured challenge, a new P-256 key and its CSR, and the chain
//! the CA signs.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::challenges::Challenges;
use super::AcmeError;
use crate::config::{AcmeConfig, ChallengeKind};

/// Longest wait for the CA to validate the challenges, and then to sign.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Orders a certificate: returns its private key and chain, as PEM.
/// Whatever happens, the challenge responses are withdrawn at the end.
pub(super) async fn order(
    account: &Account,
    config: &AcmeConfig,
    challenges: &Challenges,
) -> Result<String, AcmeError> {
    let result = order_answering(account, config, challenges).await;
    challenges.withdraw_all();
    result
}

async fn order_answering(
    account: &Account,
    config: &AcmeConfig,
    challenges: &Challenges,
) -> Result<String, AcmeError> {
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let (kind, name) = match config.challenge {
        ChallengeKind::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        ChallengeKind::Http01 => (ChallengeType::Http01, "http-01"),
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        let domain = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(AcmeError::Authorization {
                    domain,
                    status: format!("{status:?}").to_lowercase(),
                })
            }
        }
        let mut challenge =
            authorization
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::NoChallenge {
                    domain: domain.clone(),
                    kind: name,
                })?;
        let key_authorization = challenge.key_authorization();
        match config.challenge {
            ChallengeKind::TlsAlpn01 => {
                challenges.offer_tls_alpn01(&domain, key_authorization.digest().as_ref())?;
            }
            ChallengeKind::Http01 => {
                challenges.offer_http01(&challenge.token, key_authorization.as_str());
            }
        }
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map(|problem| format!(": {problem}"))
            .unwrap_or_default();
        return Err(AcmeError::Order {
            status: format!("{status:?}").to_lowercase(),
            detail,
        });
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&retries).await?;
    Ok(format!("{key}{chain}"))
}
