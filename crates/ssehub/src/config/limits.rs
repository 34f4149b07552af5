//! What one client, one token subject or the whole hub may hold open, send,
//! or leave unread.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::defaults::{self, Setting};
use super::{ConfigError, HumanDuration};
use crate::limits::Rate;

/// What one client, one token subject or the whole hub may hold open,
/// send, or leave unread.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct LimitOptions {
    /// HTTP/2 (and HTTP/3) streams one connection may hold open
    #[arg(long, env = "SSEHUB_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// Largest accepted publish body in bytes
    #[arg(long, env = "SSEHUB_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Updates queued per subscriber before a slow one is disconnected
    #[arg(long, env = "SSEHUB_QUEUE_SIZE", value_name = "N")]
    pub queue_size: Option<usize>,
    /// Connections open at once, all listeners together (503 beyond); auto: the open-file limit less 5% (at least 64) kept for the hub's own files
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS", value_name = "N|auto")]
    pub max_connections: Option<ConnectionCap>,
    /// Connections open at once from one client address, an IPv6 client's /64 (429 beyond); 0: no limit (behind a proxy every client has the proxy's address)
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Publish requests per second per token subject (`sub`), or per client address for a token without one (429 beyond); 0: no limit
    #[arg(long, env = "SSEHUB_MAX_PUBLISH_RATE", value_name = "N")]
    pub max_publish_rate: Option<u32>,
    /// Publish requests accepted at once, after a pause, before --max-publish-rate applies; by default the rate (one second's worth)
    #[arg(long, env = "SSEHUB_PUBLISH_BURST", value_name = "N")]
    pub publish_burst: Option<u32>,
    /// Topic matchers one subscription may carry (400 beyond)
    #[arg(long, env = "SSEHUB_MAX_TOPICS", value_name = "N")]
    pub max_topics: Option<usize>,
    /// Streams open at once per token subject (`sub`; tokens without one are not counted) (429 beyond); 0: no limit
    #[arg(long, env = "SSEHUB_MAX_SUBSCRIPTIONS_PER_SUBJECT", value_name = "N")]
    pub max_subscriptions_per_subject: Option<usize>,
    /// Largest request head (request line and headers; HTTP/2 and HTTP/3: header list) in bytes (431 beyond)
    #[arg(long, env = "SSEHUB_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most header fields in an HTTP/1.1 request (431 beyond)
    #[arg(long, env = "SSEHUB_MAX_HEADERS", value_name = "N")]
    pub max_headers: Option<usize>,
    /// Time a client has to send an HTTP/1.1 request's headers; slower connections are closed
    #[arg(long, env = "SSEHUB_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<HumanDuration>,
    /// Time a client has to send a request's body once its headers are in (408 beyond)
    #[arg(long, env = "SSEHUB_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<HumanDuration>,
    /// Age at which a stream ends so that its client reconnects (with its Last-Event-ID), each stream's within ±10%; 0: never
    #[arg(long, env = "SSEHUB_MAX_STREAM_DURATION", value_name = "DURATION")]
    pub max_stream_duration: Option<HumanDuration>,
}

layer!(LimitOptions {
    max_concurrent_streams,
    max_body,
    queue_size,
    max_connections,
    max_connections_per_ip,
    max_publish_rate,
    publish_burst,
    max_topics,
    max_subscriptions_per_subject,
    max_header_bytes,
    max_headers,
    header_timeout,
    body_timeout,
    max_stream_duration
});

/// What one client, one token subject or the whole hub may hold open,
/// send, or leave unread.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// HTTP/2 and HTTP/3 concurrent streams per connection.
    pub max_concurrent_streams: u32,
    /// Largest publish body in bytes.
    pub max_body: usize,
    /// Per-subscriber queue bound.
    pub queue_size: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once per client address, if limited.
    pub max_connections_per_ip: Option<usize>,
    /// Publish requests per sender, if limited.
    pub publish_rate: Option<Rate>,
    /// Topic matchers per subscription.
    pub max_topics: usize,
    /// Streams open at once per token subject, if limited.
    pub max_subscriptions_per_subject: Option<usize>,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Most header fields of an HTTP/1.1 request.
    pub max_headers: usize,
    /// Time to send a request head.
    pub header_timeout: Duration,
    /// Time to send a request body.
    pub body_timeout: Duration,
    /// Age at which streams end, if they do.
    pub max_stream_duration: Option<Duration>,
}

/// `--max-connections`: a number, or `auto` (from the open-file limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCap {
    /// The open-file limit less a reserve.
    Auto,
    /// This many.
    At(usize),
}

impl FromStr for ConnectionCap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(ConnectionCap::Auto);
        }
        s.trim()
            .parse()
            .map(ConnectionCap::At)
            .map_err(|_| format!("{s:?} is neither a number nor auto"))
    }
}

impl<'de> Deserialize<'de> for ConnectionCap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ConnectionCap::At(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl LimitOptions {
    /// Applies the defaults and checks the values.
    pub(super) fn resolve(self) -> Result<LimitsConfig, ConfigError> {
        Ok(LimitsConfig {
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS
                .at_least_one(self.max_concurrent_streams)?,
            max_body: within(
                &defaults::MAX_BODY,
                self.max_body,
                1..=MAX_BODY_LIMIT,
                "must be between 1 and 1073741824 (1 GiB)",
            )?,
            queue_size: defaults::QUEUE_SIZE.at_least_one(self.queue_size)?,
            max_connections: match defaults::MAX_CONNECTIONS.or(self.max_connections) {
                ConnectionCap::Auto => auto_connections(open_file_limit()),
                ConnectionCap::At(0) => {
                    return Err(ConfigError::Invalid(
                        "max-connections",
                        "must be at least 1",
                    ))
                }
                ConnectionCap::At(n) => n,
            },
            max_connections_per_ip: unless_zero(
                defaults::MAX_CONNECTIONS_PER_IP.or(self.max_connections_per_ip),
            ),
            publish_rate: publish_rate(
                defaults::MAX_PUBLISH_RATE.or(self.max_publish_rate),
                self.publish_burst,
            )?,
            max_topics: defaults::MAX_TOPICS.at_least_one(self.max_topics)?,
            max_subscriptions_per_subject: unless_zero(
                defaults::MAX_SUBSCRIPTIONS_PER_SUBJECT.or(self.max_subscriptions_per_subject),
            ),
            max_header_bytes: within(
                &defaults::MAX_HEADER_BYTES,
                self.max_header_bytes,
                8192..=1 << 20,
                "must be between 8192 and 1048576 (1 MiB)",
            )?,
            max_headers: within(
                &defaults::MAX_HEADERS,
                self.max_headers,
                1..=1000,
                "must be between 1 and 1000",
            )?,
            header_timeout: positive(&defaults::HEADER_TIMEOUT, self.header_timeout)?,
            body_timeout: positive(&defaults::BODY_TIMEOUT, self.body_timeout)?,
            max_stream_duration: Some(defaults::MAX_STREAM_DURATION.or(self.max_stream_duration).0)
                .filter(|d| !d.is_zero()),
        })
    }
}

/// The largest `--max-body`: a record of the disk log stores its lengths in
/// 32 bits, and one update larger than this is not what a push hub is for.
const MAX_BODY_LIMIT: usize = 1 << 30;

/// `given`, else the default, refused outside `range`.
fn within(
    setting: &Setting,
    given: Option<usize>,
    range: RangeInclusive<usize>,
    why: &'static str,
) -> Result<usize, ConfigError> {
    let value = setting.or(given);
    if !range.contains(&value) {
        return Err(ConfigError::Invalid(setting.flag, why));
    }
    Ok(value)
}

/// `given`, else the default: a duration that must be more than zero.
fn positive(setting: &Setting, given: Option<HumanDuration>) -> Result<Duration, ConfigError> {
    match setting.or(given).0 {
        d if d.is_zero() => Err(ConfigError::Invalid(setting.flag, "must be more than 0")),
        d => Ok(d),
    }
}

/// A limit where 0 means none.
fn unless_zero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// The publish rate, if limited; the burst defaults to one second's worth.
fn publish_rate(per_second: u32, burst: Option<u32>) -> Result<Option<Rate>, ConfigError> {
    let Some(per_second) = NonZeroU32::new(per_second) else {
        if burst.is_some() {
            return Err(ConfigError::Invalid(
                "publish-burst",
                "only applies with --max-publish-rate",
            ));
        }
        return Ok(None);
    };
    let burst = match burst {
        None => per_second,
        Some(burst) => NonZeroU32::new(burst)
            .ok_or(ConfigError::Invalid("publish-burst", "must be at least 1"))?,
    };
    Ok(Some(Rate { per_second, burst }))
}

/// Files kept for the hub itself under `--max-connections auto`: 5% of the
/// open-file limit, at least this many (listeners, log segments, Redis,
/// certificate and key files, the runtime's own).
const RESERVED_FILES: u64 = 64;

/// Connections when none was configured: the open-file limit less what the
/// hub needs besides connections; 10,000 where the limit is not known.
fn auto_connections(open_files: Option<u64>) -> usize {
    let Some(files) = open_files else {
        return 10_000;
    };
    let reserve = (files / 20).max(RESERVED_FILES);
    usize::try_from(files.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The soft open-file limit of this process (`ulimit -n`), as Linux reports
/// it; `None` elsewhere, or when unlimited.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_connection_limit() {
        assert_eq!(auto_connections(Some(20_000)), 19_000);
        assert_eq!(auto_connections(Some(1024)), 960);
        assert_eq!(auto_connections(Some(10)), 1);
        assert_eq!(auto_connections(None), 10_000);
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
        assert_eq!("AUTO".parse(), Ok(ConnectionCap::Auto));
        assert_eq!(" 5".parse(), Ok(ConnectionCap::At(5)));
        assert!("many".parse::<ConnectionCap>().is_err());
    }

    #[test]
    fn limits_resolve_and_are_checked() {
        let c = LimitOptions::default().resolve().unwrap();
        assert_eq!(
            (c.max_connections_per_ip, c.publish_rate, c.max_topics),
            (None, None, 1000)
        );
        assert_eq!(
            (c.max_header_bytes, c.max_headers, c.header_timeout),
            (65536, 100, Duration::from_secs(10))
        );
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.max_stream_duration, Some(Duration::from_secs(3600)));
        let rate = |rate, burst| LimitOptions {
            max_publish_rate: Some(rate),
            publish_burst: burst,
            ..LimitOptions::default()
        };
        let r = rate(5, None).resolve().unwrap().publish_rate.unwrap();
        assert_eq!((r.per_second.get(), r.burst.get()), (5, 5));
        let r = rate(5, Some(20)).resolve().unwrap().publish_rate.unwrap();
        assert_eq!(r.burst.get(), 20);
        for (bad, flag) in [
            (rate(0, Some(3)), "publish-burst"),
            (rate(1, Some(0)), "publish-burst"),
            (
                LimitOptions {
                    max_header_bytes: Some(4096),
                    ..LimitOptions::default()
                },
                "max-header-bytes",
            ),
            (
                LimitOptions {
                    header_timeout: Some(HumanDuration(Duration::ZERO)),
                    ..LimitOptions::default()
                },
                "header-timeout",
            ),
            (
                LimitOptions {
                    body_timeout: Some(HumanDuration(Duration::ZERO)),
                    ..LimitOptions::default()
                },
                "body-timeout",
            ),
            (
                LimitOptions {
                    max_connections: Some(ConnectionCap::At(0)),
                    ..LimitOptions::default()
                },
                "max-connections",
            ),
        ] {
            let err = bad.resolve().unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
        let off = LimitOptions {
            max_stream_duration: Some(HumanDuration(Duration::ZERO)),
            ..LimitOptions::default()
        };
        assert_eq!(off.resolve().unwrap().max_stream_duration, None);
    }
}
