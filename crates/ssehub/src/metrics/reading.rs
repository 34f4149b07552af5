//! Readings of the counters for a live view (the browser dashboard): what
//! they say now, and what two readings a moment apart say about the time
//! between them (rates, and latency quantiles from the histograms' bucket
//! deltas, as Prometheus's `histogram_quantile` computes them).

use std::time::Instant;

use serde::Serialize;

use super::{Family, Gauge, Label, Metrics, Stage};

/// The counters and gauges of a hub at one instant.
#[derive(Debug, Clone)]
pub struct Reading {
    at: Instant,
    /// Open connections, by transport (`h1`, `h2`, `h3`).
    pub connections: Vec<(&'static str, i64)>,
    /// Open subscription streams, by transport.
    pub subscriptions: Vec<(&'static str, i64)>,
    /// Updates appended to the log so far.
    pub updates: u64,
    /// Events written to subscribers so far.
    pub deliveries: u64,
    /// Subscribers disconnected for reading too slowly so far.
    pub slow_subscribers: u64,
    /// Refusals and disconnections by a limit so far, by limit (only those
    /// hit at least once).
    pub limits_hit: Vec<(&'static str, u64)>,
    /// Requests refused for their token so far.
    pub auth_failures: u64,
    publish: Vec<u64>,
    delivery: Vec<u64>,
}

/// What happened between two readings.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Updates appended per second.
    pub publishes_per_s: f64,
    /// Events written to subscribers per second.
    pub deliveries_per_s: f64,
    /// Median time to a stored publish, in milliseconds (`None`: no publish).
    pub publish_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub publish_p99_ms: Option<f64>,
    /// Median time from dispatch to write of a sampled delivery, in
    /// milliseconds (`None`: no sampled delivery).
    pub delivery_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub delivery_p99_ms: Option<f64>,
}

impl Metrics {
    /// The counters now.
    pub fn reading(&self) -> Reading {
        let gauges = |family: &Family<_, Gauge>| -> Vec<(&'static str, i64)> {
            family
                .iter()
                .map(|(l, g)| (Label::value(l), g.get()))
                .collect()
        };
        Reading {
            at: Instant::now(),
            connections: gauges(&self.connections),
            subscriptions: gauges(&self.subscriptions),
            updates: self.updates_total.get(),
            deliveries: self.events_written.get(),
            slow_subscribers: self.slow_subscribers.get(),
            limits_hit: self
                .limits_hit
                .iter()
                .map(|(l, c)| (l.value(), c.get()))
                .filter(|(_, n)| *n > 0)
                .collect(),
            auth_failures: self.auth_failures.iter().map(|(_, c)| c.get()).sum(),
            publish: self.publish_duration.get(Stage::Durable).cumulative(),
            delivery: self.delivery_duration.cumulative(),
        }
    }
}

impl Reading {
    /// What happened since `earlier`, per second of the time between them.
    pub fn since(&self, earlier: &Reading) -> Interval {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64();
        let rate = |now: u64, then: u64| {
            if seconds > 0.0 {
                now.saturating_sub(then) as f64 / seconds
            } else {
                0.0
            }
        };
        let bounds = super::LATENCY_BUCKETS.as_slice();
        let publish = delta(&self.publish, &earlier.publish);
        let delivery = delta(&self.delivery, &earlier.delivery);
        let ms = |cumulative: &[u64], q: f64| quantile(bounds, cumulative, q).map(|s| s * 1000.0);
        Interval {
            publishes_per_s: rate(self.updates, earlier.updates),
            deliveries_per_s: rate(self.deliveries, earlier.deliveries),
            publish_p50_ms: ms(&publish, 0.5),
            publish_p99_ms: ms(&publish, 0.99),
            delivery_p50_ms: ms(&delivery, 0.5),
            delivery_p99_ms: ms(&delivery, 0.99),
        }
    }
}

/// Bucket by bucket, `now - then` (cumulative counts stay cumulative).
fn delta(now: &[u64], then: &[u64]) -> Vec<u64> {
    now.iter()
        .zip(then)
        .map(|(n, t)| n.saturating_sub(*t))
        .collect()
}

/// The `q` quantile (0 < q ≤ 1), in seconds, of the observations counted
/// in `cumulative` ([`Histogram::cumulative`](super::Histogram::cumulative)'s shape: one cumulative count
/// per bound, then the total), interpolated linearly inside its bucket;
/// past the last bound, the last bound. `None` when nothing was observed.
pub fn quantile(bounds: &[f64], cumulative: &[u64], q: f64) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let bucket = cumulative.iter().position(|&c| c as f64 >= rank)?;
    let Some(&upper) = bounds.get(bucket) else {
        return bounds.last().copied();
    };
    let (lower, below) = match bucket.checked_sub(1) {
        Some(i) => (bounds[i], cumulative[i]),
        None => (0.0, 0),
    };
    let inside = (cumulative[bucket] - below) as f64;
    Some(lower + (upper - lower) * (rank - below as f64) / inside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let bounds = [0.001, 0.01, 0.1];
        assert_eq!(quantile(&bounds, &[0, 0, 0, 0], 0.5), None);
        // 10 observations, all between 1 ms and 10 ms.
        let q = quantile(&bounds, &[0, 10, 10, 10], 0.5).unwrap();
        assert!((q - 0.0055).abs() < 1e-9, "{q}");
        // 99 fast, 1 slow beyond the last bound.
        assert_eq!(quantile(&bounds, &[99, 99, 99, 100], 0.99), Some(0.001));
        assert_eq!(quantile(&bounds, &[99, 99, 99, 100], 1.0), Some(0.1));
    }

    #[test]
    fn an_interval_counts_only_what_happened_in_it() {
        let m = Metrics::default();
        m.updates_total.add(5);
        m.publish_duration
            .get(Stage::Durable)
            .observe(Duration::from_secs(5));
        let before = m.reading();
        m.updates_total.add(3);
        for _ in 0..4 {
            m.publish_duration
                .get(Stage::Durable)
                .observe(Duration::from_micros(700));
        }
        std::thread::sleep(Duration::from_millis(10));
        let after = m.reading();
        let i = after.since(&before);
        assert!(
            i.publishes_per_s > 0.0 && i.publishes_per_s <= 300.0,
            "{i:?}"
        );
        let p99 = i.publish_p99_ms.unwrap();
        assert!((0.5..=1.0).contains(&p99), "{p99}");
        assert_eq!(i.delivery_p50_ms, None);
        assert_eq!(after.updates, 8);
    }
}
