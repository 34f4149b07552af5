//! `/healthz` (the process serves HTTP) and `/readyz` (the hub should be
//! sent new clients): what each answers while the hub runs, while its store
//! is unreachable, and while it drains, in this process (the hub's own
//! drain and shutdown) and as the binary (SIGTERM and `--drain-delay`).

use reqwest::StatusCode;

use crate::common::child::free_addr;
use crate::common::child_hub::ChildHub;
use crate::common::remote::{open_stream, probe, readyz, READY};
use crate::common::{publisher_token, token, TestHub, SECRET};

/// The body `/readyz` gives while the hub drains.
const DRAINING: &str = "not ready: draining: the hub is shutting down\n";

/// Asserts `/healthz` answers 200 `ok`.
async fn assert_alive(base: &str) {
    let (status, cache, body) = probe(base, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(cache, "no-store");
}

#[tokio::test]
async fn readyz_turns_503_when_shutdown_begins_while_healthz_stays_200() {
    let mut hub = TestHub::start(|o| o.server.shutdown_timeout = Some("1h".parse().unwrap())).await;
    assert_alive(&hub.base).await;
    assert_eq!(readyz(&hub.base).await, (StatusCode::OK, "ok\n".into()));
    let mut stream = hub.subscribe_topics(&["t"], &["t"]).await;

    // What the server does first when it stops; its listeners are still
    // open, so the probes are answered.
    hub.running.as_ref().unwrap().hub.shutdown();
    assert_eq!(
        readyz(&hub.base).await,
        (StatusCode::SERVICE_UNAVAILABLE, DRAINING.into())
    );
    assert_alive(&hub.base).await;
    stream.assert_ends_within(READY).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_draining_hub_serves_as_before_but_is_not_ready() {
    let mut hub = TestHub::default().await;
    let mut before = hub.subscribe_topics(&["t"], &["t"]).await;
    hub.running.as_ref().unwrap().hub.drain();
    assert_eq!(
        readyz(&hub.base).await,
        (StatusCode::SERVICE_UNAVAILABLE, DRAINING.into())
    );
    assert_alive(&hub.base).await;
    // Streams open before and after, and publishes, work as usual.
    let mut after = hub.subscribe_topics(&["t"], &["t"]).await;
    let id = hub
        .publish_ok(&[("topic", "t"), ("data", "while draining")])
        .await;
    for stream in [&mut before, &mut after] {
        let event = stream.next().await;
        assert_eq!(
            (event.last_event_id.as_str(), event.data.as_str()),
            (id.as_str(), "while draining")
        );
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn readyz_names_every_failing_check() {
    // Nothing listens there: the Redis store is unreachable.
    let redis = format!("redis://{}", free_addr());
    let mut hub = TestHub::start(|o| o.history.store = Some(redis.clone())).await;
    let unreachable = format!("not ready: Redis at {redis} is unreachable");
    let (status, body) = readyz(&hub.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.starts_with(&unreachable), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert_alive(&hub.base).await;

    hub.running.as_ref().unwrap().hub.drain();
    let (status, body) = readyz(&hub.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(format!("{}\n", lines[0]), DRAINING);
    assert!(lines[1].starts_with(&unreachable), "{body}");
    hub.shutdown().await;
}

#[tokio::test]
async fn sigterm_drains_for_the_drain_delay_and_a_second_one_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = ChildHub::start(
        dir.path(),
        &[
            "--publisher-jwt-key",
            SECRET,
            "--tls-listen",
            "none",
            "--drain-delay",
            "1h",
        ],
        &[],
    )
    .await;
    let subscriber = token(&[], &["t"], None);
    let mut before = open_stream(&hub.url(), &["t"], Some(&subscriber), None).await;

    hub.terminate();
    let body = hub.wait_ready(StatusCode::SERVICE_UNAVAILABLE, READY).await;
    assert_eq!(body, DRAINING);
    hub.wait_stderr("draining: /readyz answers 503, shutdown in 1h", READY);
    assert_eq!(
        hub.get("/healthz").await,
        Some((StatusCode::OK, "ok\n".into()))
    );
    // Still serving everything: new streams, publishes, delivery.
    let mut after = open_stream(&hub.url(), &["t"], Some(&subscriber), None).await;
    let id = hub
        .publish_ok(&publisher_token(), &[("topic", "t"), ("data", "draining")])
        .await;
    for stream in [&mut before, &mut after] {
        assert_eq!(stream.next().await.last_event_id, id);
    }
    assert!(hub.try_exit().is_none(), "still running while draining");

    // The second SIGTERM ends the delay: streams end, the process exits.
    let status = hub.stop(READY);
    assert!(status.success(), "{status}\n{}", hub.stderr());
    for stream in [&mut before, &mut after] {
        stream.assert_ends_within(READY).await;
    }
    let log = hub.stderr();
    assert!(log.contains("second signal: draining cut short"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}
