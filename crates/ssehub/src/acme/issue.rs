//! One order: a certificate for every configured name, each name proven
//! by the configured challenge, a new P-256 key and its CSR, and the chain
//! the CA signs.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
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
    // Validation usually takes a few seconds: polled every 0.5 s at first,
    // then less and less often (unless the CA says when with Retry-After).
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .backoff(1.25)
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order {
            status: format!("{status:?}").to_lowercase(),
            detail: why_invalid(&mut order).await,
        });
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&retries).await?;
    Ok(format!("{key}{chain}"))
}

/// The CA's explanation of a failed order: its own error, else those of
/// the challenges that failed (": NAME: PROBLEM; ..."), else nothing.
async fn why_invalid(order: &mut Order) -> String {
    if let Some(problem) = &order.state().error {
        return format!(": {problem}");
    }
    let mut problems = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        let domain = authorization.identifier().to_string();
        let failed = authorization
            .challenges
            .iter()
            .filter_map(|c| c.error.as_ref());
        problems.extend(failed.map(|problem| format!("{domain}: {problem}")));
    }
    if problems.is_empty() {
        String::new()
    } else {
        format!(": {}", problems.join("; "))
    }
}
