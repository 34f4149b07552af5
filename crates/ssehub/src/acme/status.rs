//! How obtaining and renewing the certificate goes, for `/readyz` and the
//! metrics.

use std::time::SystemTime;

use parking_lot::Mutex;

/// The state of the certificate and of the attempts to renew it.
#[derive(Debug, Default)]
pub struct Status(Mutex<Reading>);

/// A copy of the [`Status`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// When the served certificate expires, if one is served.
    pub expires: Option<SystemTime>,
    /// When the next order is due (or the next retry after a failure).
    pub next_attempt: Option<SystemTime>,
    /// The last attempt's error while attempts fail; `None` once one
    /// succeeds.
    pub failing: Option<String>,
    /// Certificates obtained since start-up.
    pub obtained: u64,
    /// Failed attempts since start-up.
    pub failures: u64,
}

impl Status {
    /// Records the certificate served and when the next order is due.
    pub(super) fn serving(&self, expires: Option<SystemTime>, next_attempt: SystemTime) {
        let mut reading = self.0.lock();
        reading.expires = expires;
        reading.next_attempt = Some(next_attempt);
    }

    /// Records a certificate obtained.
    pub(super) fn obtained(&self) {
        let mut reading = self.0.lock();
        reading.obtained += 1;
        reading.failing = None;
    }

    /// Records a failed attempt and when the next one is.
    pub(super) fn failed(&self, error: String, next_attempt: SystemTime) {
        let mut reading = self.0.lock();
        reading.failures += 1;
        reading.failing = Some(error);
        reading.next_attempt = Some(next_attempt);
    }

    /// The state now.
    pub fn reading(&self) -> Reading {
        self.0.lock().clone()
    }

    /// What an operator should hear about, if anything: no certificate
    /// yet, an expired one, or failing renewals.
    pub fn warning(&self, now: SystemTime) -> Option<String> {
        let reading = self.reading();
        let failing = reading
            .failing
            .as_deref()
            .map(|e| format!(" (last attempt: {e})"))
            .unwrap_or_default();
        match reading.expires {
            None => Some(format!("no certificate obtained yet{failing}")),
            Some(expires) if expires <= now => Some(format!(
                "the certificate expired at {}{failing}",
                humantime::format_rfc3339_seconds(expires)
            )),
            Some(expires) => reading.failing.as_ref().map(|e| {
                format!(
                    "certificate renewal failing: {e}; the current one expires at {}",
                    humantime::format_rfc3339_seconds(expires)
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn warns_until_a_certificate_is_served_and_while_renewals_fail() {
        let status = Status::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(status.warning(now).unwrap().contains("no certificate"));
        status.failed("connection refused".into(), now);
        assert!(status
            .warning(now)
            .unwrap()
            .contains("(last attempt: connection refused)"));
        status.obtained();
        status.serving(Some(now + Duration::from_secs(60)), now);
        assert_eq!(status.warning(now), None);
        status.failed("down".into(), now);
        let warning = status.warning(now).unwrap();
        assert!(
            warning.starts_with("certificate renewal failing: down"),
            "{warning}"
        );
        let expired = status.warning(now + Duration::from_secs(61)).unwrap();
        assert!(expired.contains("expired"), "{expired}");
        let reading = status.reading();
        assert_eq!((reading.obtained, reading.failures), (1, 2));
    }
}
