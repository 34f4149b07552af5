//! The Prometheus text format (version 0.0.4) of every metric: Mercure's
//! names where Mercure has one, `ssehub_` names for the rest, the standard
//! `process_` names for the process.

use std::fmt::{Display, Write};
use std::time::{Duration, SystemTime};

use super::process::Stats;
use super::{Family, Histogram, Label, Metrics};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What is read at each scrape rather than counted: the store's size, the
/// Redis link, the process's own figures. `None` leaves a metric out.
#[derive(Debug, Default)]
pub struct Scraped {
    /// Events the history holds.
    pub history_events: Option<u64>,
    /// Bytes the history holds.
    pub history_bytes: Option<u64>,
    /// The Redis link, when the store is Redis.
    pub redis: Option<RedisLink>,
    /// The process, when `/proc` could be read.
    pub process: Option<Stats>,
    /// The ACME certificate, when the hub obtains its own.
    pub acme: Option<crate::acme::Reading>,
}

/// The state of the link to Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisLink {
    /// Whether the node follows the stream now.
    pub up: bool,
    /// How far behind the stream the node's tail is.
    pub lag: Duration,
}

/// Every metric of `m` and `scraped`, in the text format.
pub fn expose(m: &Metrics, scraped: &Scraped) -> String {
    let mut out = Text(String::with_capacity(16 << 10));
    out.one(
        "mercure_subscribers_connected",
        "gauge",
        "Open subscription streams (the sum of ssehub_subscriptions).",
        m.subscriptions.iter().map(|(_, g)| g.get()).sum::<i64>(),
    );
    out.one(
        "mercure_subscribers_total",
        "counter",
        "Subscription streams ever opened.",
        m.subscriptions_total.get(),
    );
    out.one(
        "mercure_updates_total",
        "counter",
        "Updates stored by publish requests to this node.",
        m.updates_total.get(),
    );
    out.family(
        "ssehub_connections",
        "gauge",
        "Open client connections, by transport (an HTTP/2 or HTTP/3 connection counts once).",
        &m.connections,
        |g| g.get(),
    );
    out.family(
        "ssehub_subscriptions",
        "gauge",
        "Open subscription streams, by transport.",
        &m.subscriptions,
        |g| g.get(),
    );
    out.family(
        "ssehub_publishes_total",
        "counter",
        "Publish requests answered, by HTTP status.",
        &m.publishes,
        |c| c.get(),
    );
    out.histograms(
        "ssehub_publish_duration_seconds",
        "Time from a publish request's arrival until its updates are stored (stage=durable) and until they are offered to every matching subscriber (stage=dispatched).",
        &m.publish_duration,
    );
    out.histogram(
        "ssehub_delivery_duration_seconds",
        "Time from an event's dispatch until a subscriber's connection writes it.",
        &m.delivery_duration,
    );
    out.one(
        "ssehub_events_written_total",
        "counter",
        "Events written to subscribers, live and replayed.",
        m.events_written.get(),
    );
    out.one(
        "ssehub_replayed_events_total",
        "counter",
        "Events replayed from the history to resuming subscribers.",
        m.replayed_events.get(),
    );
    out.one(
        "ssehub_bytes_written_total",
        "counter",
        "Bytes of SSE (events, comments, heartbeats) written to subscribers.",
        m.bytes_written.get(),
    );
    out.one(
        "ssehub_slow_subscribers_total",
        "counter",
        "Subscribers disconnected because their queue was full.",
        m.slow_subscribers.get(),
    );
    out.family(
        "ssehub_subscription_ends_total",
        "counter",
        "Subscription streams ended, by why.",
        &m.subscription_ends,
        |c| c.get(),
    );
    out.family(
        "ssehub_auth_failures_total",
        "counter",
        "Requests refused for their token, by reason.",
        &m.auth_failures,
        |c| c.get(),
    );
    out.family(
        "ssehub_limits_hit_total",
        "counter",
        "Requests refused and streams ended by a limit, by limit.",
        &m.limits_hit,
        |c| c.get(),
    );
    if let Some(events) = scraped.history_events {
        out.one(
            "ssehub_history_events",
            "gauge",
            "Events the history holds.",
            events,
        );
    }
    if let Some(bytes) = scraped.history_bytes {
        out.one(
            "ssehub_history_bytes",
            "gauge",
            "Bytes the history holds.",
            bytes,
        );
    }
    if let Some(redis) = scraped.redis {
        out.one(
            "ssehub_redis_up",
            "gauge",
            "1 while this node follows the Redis stream, else 0.",
            u8::from(redis.up),
        );
        out.one(
            "ssehub_redis_lag_seconds",
            "gauge",
            "Age, on Redis's clock, of the newest entry this node's tail read when it read it; 0 once the tail waits for new entries.",
            redis.lag.as_secs_f64(),
        );
    }
    if let Some(acme) = &scraped.acme {
        out.acme(acme);
    }
    if let Some(p) = &scraped.process {
        out.process(p);
    }
    out.0
}

/// Seconds since the Unix epoch.
fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The exposition being written.
struct Text(String);

impl Text {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A metric without labels.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A metric with one sample per value of its label.
    fn family<L: Label, M, V: Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        family: &Family<L, M>,
        value: impl Fn(&M) -> V,
    ) {
        self.header(name, kind, help);
        for (label, member) in family.iter() {
            self.sample(name, &[(L::NAME, label.value())], value(member));
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        self.buckets(name, None, h);
    }

    fn histograms<L: Label>(&mut self, name: &str, help: &str, family: &Family<L, Histogram>) {
        self.header(name, "histogram", help);
        for (label, h) in family.iter() {
            self.buckets(name, Some((L::NAME, label.value())), h);
        }
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram.
    fn buckets(&mut self, name: &str, label: Option<(&str, &str)>, h: &Histogram) {
        let counts = h.cumulative();
        let total = counts.last().copied().unwrap_or(0);
        let bucket = format!("{name}_bucket");
        let bounds = h.bounds().iter().map(ToString::to_string);
        for (le, count) in bounds.chain(["+Inf".to_string()]).zip(&counts) {
            let mut labels: Vec<(&str, &str)> = label.into_iter().collect();
            labels.push(("le", &le));
            self.sample(&bucket, &labels, count);
        }
        let labels: Vec<(&str, &str)> = label.into_iter().collect();
        self.sample(&format!("{name}_sum"), &labels, h.sum_seconds());
        self.sample(&format!("{name}_count"), &labels, total);
    }

    fn acme(&mut self, acme: &crate::acme::Reading) {
        if let Some(expires) = acme.expires {
            self.one(
                "ssehub_acme_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the certificate obtained from the ACME CA expires (Unix time).",
                unix_seconds(expires),
            );
        }
        if let Some(next) = acme.next_attempt {
            self.one(
                "ssehub_acme_next_attempt_timestamp_seconds",
                "gauge",
                "When the next order (a renewal, or a retry) is due (Unix time).",
                unix_seconds(next),
            );
        }
        self.one(
            "ssehub_acme_failing",
            "gauge",
            "1 while attempts to obtain or renew the certificate fail, else 0.",
            u8::from(acme.failing.is_some()),
        );
        self.one(
            "ssehub_acme_certificates_obtained_total",
            "counter",
            "Certificates obtained from the ACME CA since start-up.",
            acme.obtained,
        );
        self.one(
            "ssehub_acme_failures_total",
            "counter",
            "Failed attempts to obtain or renew the certificate since start-up.",
            acme.failures,
        );
    }

    fn process(&mut self, p: &Stats) {
        self.one(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            p.cpu_seconds,
        );
        self.one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes,
        );
        self.one(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        );
        self.one(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            p.open_fds,
        );
        if let Some(max) = p.max_fds {
            self.one(
                "process_max_fds",
                "gauge",
                "Most file descriptors the process may open.",
                max,
            );
        }
        self.one(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{AuthFailure, Protocol, Stage};

    /// The sample lines of `text` for `name` (with labels), each with its value.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .collect()
    }

    #[test]
    fn every_metric_has_help_type_and_its_samples() {
        let m = Metrics::default();
        m.subscriptions.get(Protocol::H1).inc();
        m.subscriptions.get(Protocol::H2).inc();
        m.auth_failures.get(AuthFailure::InvalidToken).inc();
        let durable = m.publish_duration.get(Stage::Durable);
        durable.observe(Duration::from_millis(250));
        durable.observe(Duration::from_secs(20));
        let text = expose(&m, &Scraped::default());
        assert_eq!(
            samples(&text, "mercure_subscribers_connected"),
            [("mercure_subscribers_connected", "2")]
        );
        assert!(text.contains("ssehub_auth_failures_total{reason=\"invalid_token\"} 1\n"));
        assert!(text.contains("ssehub_auth_failures_total{reason=\"missing_token\"} 0\n"));
        let buckets = samples(&text, "ssehub_publish_duration_seconds_bucket");
        assert_eq!(
            buckets.len(),
            2 * (crate::metrics::LATENCY_BUCKETS.len() + 1)
        );
        assert!(buckets.contains(&(
            "ssehub_publish_duration_seconds_bucket{stage=\"durable\",le=\"0.1\"}",
            "0"
        )));
        assert!(buckets.contains(&(
            "ssehub_publish_duration_seconds_bucket{stage=\"durable\",le=\"0.25\"}",
            "1"
        )));
        assert!(buckets.contains(&(
            "ssehub_publish_duration_seconds_bucket{stage=\"durable\",le=\"10\"}",
            "1"
        )));
        assert!(buckets.contains(&(
            "ssehub_publish_duration_seconds_bucket{stage=\"durable\",le=\"+Inf\"}",
            "2"
        )));
        assert!(text.contains("ssehub_publish_duration_seconds_count{stage=\"durable\"} 2\n"));
        assert!(text.contains("ssehub_publish_duration_seconds_sum{stage=\"durable\"} 20.25\n"));
        // Every sample's metric has exactly one HELP and one TYPE line before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
            } else if !line.starts_with("# HELP ") {
                let series = line.split([' ', '{']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| series.strip_suffix(s))
                    .filter(|b| declared.last() == Some(b))
                    .unwrap_or(series);
                assert_eq!(declared.last(), Some(&base), "{line}");
            }
        }
        assert!(!text.contains("ssehub_history_events"), "unknown: left out");
        assert!(!text.contains("ssehub_redis_up"), "not Redis: left out");
    }

    #[test]
    fn scraped_figures_appear_when_known() {
        let scraped = Scraped {
            history_events: Some(7),
            history_bytes: Some(700),
            redis: Some(RedisLink {
                up: false,
                lag: Duration::from_millis(1500),
            }),
            process: None,
            acme: Some(crate::acme::Reading {
                expires: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000)),
                next_attempt: None,
                failing: Some("down".into()),
                obtained: 2,
                failures: 3,
            }),
        };
        let text = expose(&Metrics::default(), &scraped);
        for line in [
            "ssehub_acme_certificate_expiry_timestamp_seconds 1000\n",
            "ssehub_acme_failing 1\n",
            "ssehub_acme_certificates_obtained_total 2\n",
            "ssehub_acme_failures_total 3\n",
            "ssehub_history_events 7\n",
            "ssehub_history_bytes 700\n",
            "ssehub_redis_up 0\n",
            "ssehub_redis_lag_seconds 1.5\n",
        ] {
            assert!(text.contains(line), "{line}");
        }
    }
}
