//! The renewal task: orders a certificate when none covering every name is
//! served, and again once two thirds of the served one's lifetime have
//! passed (30 days before expiry for Let's Encrypt's 90 days), writes it
//! to the cache and reloads it into the listeners (new handshakes get it,
//! open connections keep theirs). A failed attempt is retried with
//! exponential backoff while the current certificate keeps being served.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::Account;
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use x509_parser::extensions::GeneralName;

use super::cache::Cache;
use super::{account, issue, Acme, AcmeError, Serving};
use crate::config::AcmeConfig;

/// Longest sleep before the schedule is looked at again (the clock may
/// jump, a machine may sleep).
const RECHECK: Duration = Duration::from_secs(3600);
/// The lifetime assumed while no certificate is served (Let's Encrypt's).
const USUAL_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Bounds of the first retry delay after a failure.
const FIRST_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Longest retry delay.
const LONGEST_RETRY: Duration = Duration::from_secs(3600);

/// Starts the renewal task; it ends when `stop` turns true.
pub fn spawn(
    config: AcmeConfig,
    cache: Cache,
    tls: Arc<dyn Serving>,
    acme: Arc<Acme>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(config, cache, tls, acme, stop))
}

/// A retry after a failed attempt.
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: SystemTime,
    delay: Duration,
}

async fn run(
    config: AcmeConfig,
    cache: Cache,
    tls: Arc<dyn Serving>,
    acme: Arc<Acme>,
    mut stop: watch::Receiver<bool>,
) {
    let mut account = None;
    let mut retry: Option<Retry> = None;
    loop {
        let served = Served::of(tls.certificate().as_ref(), &config.domains);
        let next = retry.map_or(served.due, |r| r.at);
        acme.status.serving(served.expires, next);
        let now = SystemTime::now();
        if let Ok(wait) = next.duration_since(now) {
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait.min(RECHECK)) => continue,
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
        let attempt = attempt(&config, &cache, tls.as_ref(), &acme, &mut account);
        let result = tokio::select! {
            result = attempt => result,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match result {
            Ok(()) => {
                retry = None;
                acme.status.obtained();
                let expires = Served::of(tls.certificate().as_ref(), &config.domains).expires;
                tracing::info!(
                    "certificate for {} obtained from {}, valid until {}",
                    config.domains.join(", "),
                    config.directory,
                    expires.map_or("?".into(), |t| humantime::format_rfc3339_seconds(t)
                        .to_string()),
                );
            }
            Err(e) => {
                let delay = backoff(retry.map(|r| r.delay), served.lifetime);
                let at = SystemTime::now() + delay;
                retry = Some(Retry { at, delay });
                acme.status.failed(e.to_string(), at);
                let delay = humantime::format_duration(delay);
                match served.expires {
                    Some(_) => tracing::warn!(
                        "certificate renewal failed, keeping the current certificate, retrying in {delay}: {e}"
                    ),
                    None => tracing::error!(
                        "cannot obtain a certificate for {}, retrying in {delay}: {e}",
                        config.domains.join(", ")
                    ),
                }
            }
        }
    }
}

/// Orders a certificate, caches it and serves it.
async fn attempt(
    config: &AcmeConfig,
    cache: &Cache,
    tls: &dyn Serving,
    acme: &Acme,
    account: &mut Option<Account>,
) -> Result<(), AcmeError> {
    let cached = match account {
        Some(cached) => cached,
        None => account.insert(account::load_or_create(config, cache).await?),
    };
    let pem = match issue::order(cached, config, &acme.challenges).await {
        Err(e) if e.is_unknown_account() => {
            // Created anew at the next attempt.
            *account = None;
            account::forget(cache)?;
            return Err(e);
        }
        result => result?,
    };
    cache.create()?;
    let path = cache.certificate();
    crate::files::replace_private(&path, pem.as_bytes())
        .map_err(|source| AcmeError::Cache { path, source })?;
    tls.reload()?;
    // A certificate due at once (a name missing, or most of its life
    // already gone) would be ordered again and again: backed off instead.
    if Served::of(tls.certificate().as_ref(), &config.domains).due <= SystemTime::now() {
        return Err(AcmeError::AlreadyDue);
    }
    Ok(())
}

/// The delay before the next retry: from 1/64 of the certificate's
/// lifetime (within [`FIRST_RETRY`]), doubling up to 1/8 of it (at most
/// [`LONGEST_RETRY`]), so that a short-lived certificate is retried often
/// enough to be renewed before it expires.
fn backoff(previous: Option<Duration>, lifetime: Duration) -> Duration {
    let first = (lifetime / 64).clamp(FIRST_RETRY.0, FIRST_RETRY.1);
    let longest = (lifetime / 8).clamp(first, LONGEST_RETRY);
    previous.map_or(first, |d| (d * 2).clamp(first, longest))
}

/// What the served certificate means for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Served {
    /// When it expires, if one is served.
    expires: Option<SystemTime>,
    /// When the next order is due.
    due: SystemTime,
    /// Its lifetime (or [`USUAL_LIFETIME`]).
    lifetime: Duration,
}

impl Served {
    /// The schedule of `certificate`: due at once when there is none,
    /// when it cannot be read, or when it lacks one of `domains`.
    fn of(certificate: Option<&CertificateDer<'_>>, domains: &[String]) -> Served {
        let now_due = Served {
            expires: None,
            due: SystemTime::UNIX_EPOCH,
            lifetime: USUAL_LIFETIME,
        };
        let Some(Ok((_, parsed))) = certificate.map(|c| x509_parser::parse_x509_certificate(c))
        else {
            return now_due;
        };
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = u64::try_from(t.timestamp()).unwrap_or(0);
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
        };
        let validity = parsed.validity();
        let (from, until) = (time(validity.not_before), time(validity.not_after));
        let lifetime = until.duration_since(from).unwrap_or_default();
        let names: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let covered = domains.iter().all(|d| names.contains(d));
        Served {
            expires: Some(until),
            due: if covered {
                from + lifetime / 3 * 2
            } else {
                SystemTime::UNIX_EPOCH
            },
            lifetime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `names` valid for the first 90 days of 2030.
    fn certificate(names: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn renews_after_two_thirds_of_the_lifetime_or_at_once() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000); // 2030-01-01
        let day = Duration::from_secs(86_400);
        let domains = ["a.example".to_string(), "b.example".to_string()];
        let cert = certificate(&["a.example", "b.example"]);
        let served = Served::of(Some(&cert), &domains);
        assert_eq!(served.expires, Some(start + 90 * day));
        assert_eq!(served.due, start + 60 * day);
        assert_eq!(served.lifetime, 90 * day);
        let partial = certificate(&["a.example"]);
        assert_eq!(
            Served::of(Some(&partial), &domains).due,
            SystemTime::UNIX_EPOCH,
            "a name is missing: due now"
        );
        let none = Served::of(None, &domains);
        assert_eq!((none.expires, none.due), (None, SystemTime::UNIX_EPOCH));
    }

    #[test]
    fn backoff_doubles_within_bounds_scaled_to_the_lifetime() {
        let lifetime = Duration::from_secs(90 * 86_400);
        let mut delays = vec![backoff(None, lifetime)];
        for _ in 0..8 {
            delays.push(backoff(delays.last().copied(), lifetime));
        }
        let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        let short = Duration::from_secs(40);
        assert_eq!(backoff(None, short), Duration::from_secs(1));
        assert_eq!(
            backoff(Some(Duration::from_secs(4)), short),
            Duration::from_secs(5)
        );
    }
}
