//! Metrics: the `/metrics` listener read directly after known traffic, and
//! a real Prometheus scraping a hub and asked with PromQL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;

use crate::common::prometheus::Prometheus;
use crate::common::*;

/// The hub's metrics address.
fn metrics_addr(hub: &TestHub) -> SocketAddr {
    hub.running.as_ref().unwrap().metrics_addr.unwrap()
}

/// The samples of `GET /metrics`: each series (name and labels, as
/// written) with its value.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let res = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    res.text()
        .await
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Waits (bounded) until every `(series, value)` of `want` is scraped.
async fn wait_for(addr: SocketAddr, want: &[(&str, f64)]) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = scrape(addr).await;
        if want.iter().all(|(s, v)| got.get(*s) == Some(v)) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "want {want:?}, got {:?}",
            want.iter()
                .map(|(s, _)| (s, got.get(*s)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token signed with another key: refused as `invalid_token`.
fn forged_token() -> String {
    sign(
        "not-the-hub-secret-not-the-hub-secret",
        &["*"],
        &["*"],
        None,
    )
}

/// Publishes with a forged token and without one: two 401s.
async fn refused_publishes(hub: &TestHub) {
    let (status, _) = hub.publish(&forged_token(), &[("topic", "a")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let res = hub
        .http
        .post(hub.url())
        .form(&[("topic", "a")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_count_the_traffic_sent() {
    let mut hub = TestHub::default().await;
    let addr = metrics_addr(&hub);
    for (method, path) in [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")] {
        let res = hub
            .http
            .request(method.parse().unwrap(), format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }

    let mut h1 = vec![
        hub.subscribe_topics(&["a"], &[]).await,
        hub.subscribe_topics(&["a", "b"], &[]).await,
    ];
    let h2_client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2_client
        .get(format!("{}?topic=a", hub.url()))
        .bearer_auth(token(&[], &[], None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let mut h2 = SseClient::new(res);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            hub.publish_ok(&[("topic", "a"), ("data", &i.to_string())])
                .await,
        );
    }
    for client in h1.iter_mut().chain([&mut h2]) {
        let got: Vec<String> = client
            .take(4)
            .await
            .into_iter()
            .map(|e| e.last_event_id)
            .collect();
        assert_eq!(got, ids);
    }
    refused_publishes(&hub).await;
    let forged = format!("Bearer {}", forged_token());
    let refused = hub
        .subscribe("topic=a", &[("authorization", &forged)])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let m = wait_for(
        addr,
        &[
            ("ssehub_events_written_total", 12.0),
            (
                "ssehub_publish_duration_seconds_count{stage=\"dispatched\"}",
                4.0,
            ),
        ],
    )
    .await;
    // The first event is timed at each of its 3 deliveries; later ones in
    // 16, or when a second passed since the last timed one.
    let timed = m["ssehub_delivery_duration_seconds_count"];
    assert!(
        (3.0..=12.0).contains(&timed) && timed % 3.0 == 0.0,
        "{timed}"
    );
    for (series, want) in [
        ("mercure_subscribers_connected", 3.0),
        ("mercure_subscribers_total", 3.0),
        ("mercure_updates_total", 4.0),
        ("ssehub_subscriptions{protocol=\"h1\"}", 2.0),
        ("ssehub_subscriptions{protocol=\"h2\"}", 1.0),
        ("ssehub_subscriptions{protocol=\"h3\"}", 0.0),
        ("ssehub_connections{protocol=\"h2\"}", 1.0),
        ("ssehub_publishes_total{status=\"200\"}", 4.0),
        ("ssehub_publishes_total{status=\"401\"}", 2.0),
        (
            "ssehub_publish_duration_seconds_count{stage=\"durable\"}",
            4.0,
        ),
        ("ssehub_auth_failures_total{reason=\"invalid_token\"}", 2.0),
        ("ssehub_auth_failures_total{reason=\"missing_token\"}", 1.0),
        ("ssehub_replayed_events_total", 0.0),
        ("ssehub_history_events", 4.0),
        ("ssehub_slow_subscribers_total", 0.0),
    ] {
        assert_eq!(m.get(series), Some(&want), "{series}");
    }
    assert!(m["ssehub_connections{protocol=\"h1\"}"] >= 2.0);
    assert!(m["ssehub_history_bytes"] > 0.0);
    assert!(m["process_resident_memory_bytes"] > 0.0);
    assert!(m["process_open_fds"] > 0.0);
    assert!(m["process_start_time_seconds"] > 1.5e9);
    // Every delivery is an open comment plus four frames of at least "id:".
    assert!(m["ssehub_bytes_written_total"] > 3.0 * 4.0 * 4.0);
    assert!(!m.contains_key("ssehub_redis_up"), "not a Redis store");

    // A subscriber resuming from the start gets the history replayed.
    let mut resumed = hub.resume(&["a"], "earliest").await;
    resumed.take(4).await;
    wait_for(addr, &[("ssehub_replayed_events_total", 4.0)]).await;

    // Every stream ends when its client goes away.
    drop((h1, h2, resumed));
    wait_for(
        addr,
        &[
            ("mercure_subscribers_connected", 0.0),
            ("ssehub_subscriptions{protocol=\"h1\"}", 0.0),
            ("ssehub_subscriptions{protocol=\"h2\"}", 0.0),
            (
                "ssehub_subscription_ends_total{reason=\"client_closed\"}",
                4.0,
            ),
            ("mercure_subscribers_total", 4.0),
        ],
    )
    .await;
    hub.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the metrics listener stops with the hub"
    );
}

#[tokio::test]
async fn an_expired_token_ends_the_stream_with_its_reason() {
    let hub = TestHub::default().await;
    let addr = metrics_addr(&hub);
    let short = token(&[], &["*"], Some(1));
    let mut stream = hub
        .subscribe("topic=a", &[("authorization", &format!("Bearer {short}"))])
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    stream.assert_ends_within(Duration::from_secs(5)).await;
    wait_for(
        addr,
        &[
            (
                "ssehub_subscription_ends_total{reason=\"token_expired\"}",
                1.0,
            ),
            ("mercure_subscribers_connected", 0.0),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_metrics_listener_can_be_turned_off() {
    let hub = TestHub::start(|o| o.server.metrics_listen = Some("none".into())).await;
    assert_eq!(hub.running.as_ref().unwrap().metrics_addr, None);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn prometheus_scrapes_the_counts_of_the_traffic_sent() {
    const PUBLISHES: usize = 7;
    const SUBSCRIBERS: usize = 3;
    let hub = TestHub::default().await;
    let addr = metrics_addr(&hub);
    let prometheus = Prometheus::scraping(addr).await;

    let mut streams = Vec::new();
    for _ in 0..SUBSCRIBERS {
        streams.push(hub.subscribe_topics(&["t"], &[]).await);
    }
    for i in 0..PUBLISHES {
        hub.publish_ok(&[("topic", "t"), ("data", &i.to_string())])
            .await;
    }
    for stream in &mut streams {
        stream.take(PUBLISHES).await;
    }
    for _ in 0..2 {
        refused_publishes(&hub).await;
    }
    let deliveries = (PUBLISHES * SUBSCRIBERS) as f64;
    // The hub has counted everything; then Prometheus scrapes it.
    wait_for(
        addr,
        &[
            ("ssehub_events_written_total", deliveries),
            (
                "ssehub_publish_duration_seconds_count{stage=\"dispatched\"}",
                PUBLISHES as f64,
            ),
        ],
    )
    .await;
    prometheus
        .wait_scrape_after("mercure_updates_total", unix_now())
        .await;

    for (promql, want) in [
        ("mercure_updates_total", PUBLISHES as f64),
        ("mercure_subscribers_connected", SUBSCRIBERS as f64),
        ("mercure_subscribers_total", SUBSCRIBERS as f64),
        ("ssehub_subscriptions{protocol=\"h1\"}", SUBSCRIBERS as f64),
        ("ssehub_publishes_total{status=\"200\"}", PUBLISHES as f64),
        ("ssehub_publishes_total{status=\"401\"}", 4.0),
        ("ssehub_auth_failures_total{reason=\"invalid_token\"}", 2.0),
        ("ssehub_auth_failures_total{reason=\"missing_token\"}", 2.0),
        ("sum(ssehub_auth_failures_total)", 4.0),
        ("ssehub_events_written_total", deliveries),
        (
            "ssehub_publish_duration_seconds_count{stage=\"durable\"}",
            PUBLISHES as f64,
        ),
        (
            "ssehub_publish_duration_seconds_bucket{stage=\"durable\",le=\"+Inf\"}",
            PUBLISHES as f64,
        ),
        ("ssehub_history_events", PUBLISHES as f64),
        ("up{job=\"ssehub\"}", 1.0),
    ] {
        assert_eq!(prometheus.value(promql).await, want, "{promql}");
    }
    let timed = prometheus
        .value("ssehub_delivery_duration_seconds_count")
        .await;
    let per_event = SUBSCRIBERS as f64;
    assert!(
        (per_event..=deliveries).contains(&timed) && timed % per_event == 0.0,
        "the first event, maybe more, timed at every delivery: {timed}"
    );
    // Prometheus computes from the buckets: every publish was stored within 10 s.
    let p99 = prometheus
        .value(
            "histogram_quantile(0.99, ssehub_publish_duration_seconds_bucket{stage=\"durable\"})",
        )
        .await;
    assert!(p99 > 0.0 && p99 <= 10.0, "p99 {p99}");
    assert!(prometheus.value("process_resident_memory_bytes").await > 0.0);
}
