//! Limits on connections and request heads: connections open at once, in
//! total and per client address, checked at accept; the minimal HTTP/1.1
//! answers written when a connection or a request head is refused; and
//! accept failures, logged once per episode.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::LimitsConfig;
use crate::limits::{ClientKey, Counts, Gate, Held, Pass, RETRY_AFTER_HELD};
use crate::metrics::{Limit, Metrics};

/// Refused connections answered at once; beyond, they are closed at
/// accept, since each answer holds a file for up to [`ANSWER_TIME`].
const ANSWERS_AT_ONCE: usize = 64;
/// Longest an answer may take: writing it, then reading what the client
/// still sends until it closes.
const ANSWER_TIME: Duration = Duration::from_secs(2);
/// Most bytes read and dropped after an answer before closing anyway.
const DRAIN_BYTES: usize = 64 << 10;

/// Who may connect: a place among `--max-connections` and, if limited,
/// one of the client address's `--max-connections-per-ip`.
pub(super) struct Admission {
    total: Arc<Gate>,
    per_ip: Option<(Arc<Counts<ClientKey>>, usize)>,
    answering: Arc<Gate>,
}

/// A connection's places, given back when it is dropped, however the
/// connection ended.
pub(super) struct Admitted {
    _total: Pass,
    _per_ip: Option<Held<ClientKey>>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `--max-connections`.
    Total,
    /// `--max-connections-per-ip`.
    PerIp,
}

impl Admission {
    /// No connection yet.
    pub(super) fn new(limits: &LimitsConfig) -> Admission {
        Admission {
            total: Gate::new(limits.max_connections),
            per_ip: limits
                .max_connections_per_ip
                .map(|max| (Counts::new(), max)),
            answering: Gate::new(ANSWERS_AT_ONCE),
        }
    }

    /// Places for a connection from `peer`, unless a limit is reached (a
    /// refusal is counted in `metrics`).
    pub(super) fn admit(&self, peer: IpAddr, metrics: &Metrics) -> Result<Admitted, Refusal> {
        let admitted = self.places(peer);
        if let Err(refusal) = admitted {
            metrics.limits_hit.get(refusal.limit()).inc();
        }
        admitted
    }

    fn places(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let total = self.total.enter().ok_or(Refusal::Total)?;
        let per_ip = match &self.per_ip {
            Some((counts, max)) => Some(
                counts
                    .acquire(ClientKey::from(peer), *max)
                    .ok_or(Refusal::PerIp)?,
            ),
            None => None,
        };
        Ok(Admitted {
            _total: total,
            _per_ip: per_ip,
        })
    }

    /// A place to answer a refused connection in, unless too many are
    /// being answered.
    pub(super) fn answering(&self) -> Option<Pass> {
        self.answering.enter()
    }
}

impl Refusal {
    /// The limit, for the metrics.
    pub(super) fn limit(self) -> Limit {
        match self {
            Refusal::Total => Limit::Connections,
            Refusal::PerIp => Limit::ConnectionsPerIp,
        }
    }

    /// The answer: 503 when the hub is full, 429 when the client is.
    pub(super) fn response(self) -> Vec<u8> {
        match self {
            Refusal::Total => closing_response(
                "503 Service Unavailable",
                Some(RETRY_AFTER_HELD),
                "the hub holds as many connections as it may (--max-connections): try again later\n",
            ),
            Refusal::PerIp => closing_response(
                "429 Too Many Requests",
                Some(RETRY_AFTER_HELD),
                "too many connections from your address (--max-connections-per-ip): close some first\n",
            ),
        }
    }
}

/// The answer to a request head larger than `--max-header-bytes`.
pub(super) fn head_too_large() -> Vec<u8> {
    closing_response(
        "431 Request Header Fields Too Large",
        None,
        "request head larger than the hub accepts (--max-header-bytes)\n",
    )
}

/// A complete HTTP/1.1 response with a text body, closing the connection.
pub(super) fn closing_response(status: &str, retry_after: Option<u64>, body: &str) -> Vec<u8> {
    let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{retry}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes `response` and closes: the write side first, then what the
/// client still sends is read and dropped (bounded) until it closes too,
/// so that closing with unread bytes does not reset the connection and
/// destroy the answer before the client read it. Its buffer is on the
/// heap: a connection task that may answer this way is not made larger for
/// its whole life by a buffer it rarely needs.
pub(super) async fn answer<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, response: &[u8]) {
    let answered = async {
        io.write_all(response).await?;
        io.shutdown().await?;
        let mut sink = vec![0u8; 2048];
        let mut left = DRAIN_BYTES;
        while left > 0 {
            match io.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(ANSWER_TIME, answered).await;
}

/// `EMFILE` and `ENFILE`: the process's or the system's files are all open.
const OUT_OF_FILES: [i32; 2] = [24, 23];

/// An accept failure episode is over at the first accept this long after
/// its last failure: hovering at the file limit (an accept works as one
/// connection closes, the next fails) stays one episode.
const QUIET: Duration = Duration::from_secs(1);

/// Accept failures (out of files, typically), logged once per episode: the
/// first failure, then nothing until accepting works again, which says how
/// long the episode lasted and how many accepts failed.
#[derive(Debug, Default)]
pub(super) struct AcceptFailures {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    since: Instant,
    last: Instant,
    failed: u64,
}

impl AcceptFailures {
    /// Counts a failed accept.
    pub(super) fn failed(&mut self, e: &io::Error, metrics: &Metrics) {
        if e.raw_os_error().is_some_and(|n| OUT_OF_FILES.contains(&n)) {
            metrics.limits_hit.get(Limit::FileDescriptors).inc();
        }
        let now = Instant::now();
        match &mut self.episode {
            Some(episode) => {
                episode.failed += 1;
                episode.last = now;
            }
            None => {
                tracing::warn!(
                    "accept failed: {e}; retrying every 100 ms, silently until it works again"
                );
                self.episode = Some(Episode {
                    since: now,
                    last: now,
                    failed: 1,
                });
            }
        }
    }

    /// Notes an accept: it ends the episode, if one is under way and no
    /// accept failed for [`QUIET`].
    pub(super) fn accepted(&mut self) {
        if self.episode.is_some() {
            self.accepted_at(Instant::now());
        }
    }

    fn accepted_at(&mut self, now: Instant) {
        let Some(episode) = &self.episode else {
            return;
        };
        if now.saturating_duration_since(episode.last) < QUIET {
            return;
        }
        tracing::info!(
            "accepting connections again after {:.1?} ({} failed accepts)",
            episode.last.saturating_duration_since(episode.since),
            episode.failed
        );
        self.episode = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, per_ip: Option<usize>) -> LimitsConfig {
        let mut limits = crate::config::Options::default().resolve().unwrap().limits;
        limits.max_connections = max;
        limits.max_connections_per_ip = per_ip;
        limits
    }

    #[test]
    fn admission_counts_in_total_and_per_address() {
        let admission = Admission::new(&config(3, Some(2)));
        let metrics = Metrics::default();
        let admit = |ip: &str| admission.admit(ip.parse().unwrap(), &metrics);
        let a1 = admit("192.0.2.1").unwrap();
        let _a2 = admit("192.0.2.1").unwrap();
        assert_eq!(admit("192.0.2.1").err(), Some(Refusal::PerIp));
        let _b1 = admit("2001:db8::1").expect("the refusal gave its total place back");
        assert_eq!(admit("2001:db8::2").err(), Some(Refusal::Total));
        drop(a1);
        let _b2 = admit("2001:db8::2").unwrap();
        assert_eq!(
            admit("2001:db8::3").err(),
            Some(Refusal::Total),
            "the total is checked first"
        );
        let hits = |limit| metrics.limits_hit.get(limit).get();
        assert_eq!(
            (hits(Limit::Connections), hits(Limit::ConnectionsPerIp)),
            (2, 1)
        );
    }

    #[test]
    fn failures_are_counted_per_attempt_and_logged_per_episode() {
        let metrics = Metrics::default();
        let mut failures = AcceptFailures::default();
        let emfile = io::Error::from_raw_os_error(24);
        failures.failed(&emfile, &metrics);
        failures.failed(&emfile, &metrics);
        failures.accepted();
        failures.failed(&io::Error::other("something else"), &metrics);
        let episode = failures.episode.as_ref().unwrap();
        assert_eq!(episode.failed, 3, "an accept between failures: one episode");
        assert_eq!(metrics.limits_hit.get(Limit::FileDescriptors).get(), 2);
        failures.accepted_at(Instant::now() + QUIET);
        assert!(failures.episode.is_none());
    }

    #[test]
    fn answers_are_complete_responses() {
        let text = String::from_utf8(Refusal::PerIp.response()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nRetry-After: 10\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        let text = String::from_utf8(head_too_large()).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(!text.contains("Retry-After"), "{text}");
    }
}
