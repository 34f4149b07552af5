//! The Redis store against a real `redis-server`: the id index follows the
//! stream's trimming exactly, age retention, `rediss://` with a private CA,
//! and a Redis Cluster reached through a node that does not own the slot.
//! (Several hub nodes sharing one stream: the `cluster` tests.)

use std::time::Duration;

use crate::common::child::free_addr;
use crate::common::keys::private_ca;
use crate::common::redis::Redis;
use crate::common::remote::publish_batch_ok;
use crate::common::{publisher_token, TestHub};
use redis::aio::MultiplexedConnection;
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// A hub on the Redis store at `url`, with `adjust` applied, once ready.
pub(crate) async fn hub_on(
    url: &str,
    adjust: impl FnOnce(&mut ssehub::config::Options),
) -> TestHub {
    let hub = TestHub::start(|o| {
        o.history.store = Some(url.to_string());
        adjust(o);
    })
    .await;
    assert_eq!(
        readiness(&hub).await,
        StatusCode::OK,
        "the hub never got ready"
    );
    hub
}

/// `/readyz` once it answers 200, or its last answer after [`WAIT`].
async fn readiness(hub: &TestHub) -> StatusCode {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = hub
            .http
            .get(format!("{}/readyz", hub.base))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `ids` as one JSON array (one atomic append) on topic `t`.
async fn publish_batch(hub: &TestHub, ids: impl Iterator<Item = String>) {
    let batch: Vec<_> = ids
        .map(|id| json!({"topic": "t", "id": id, "data": "x"}))
        .collect();
    publish_batch_ok(&hub.http, &hub.url(), &batch).await;
}

async fn lengths(conn: &mut MultiplexedConnection) -> (u64, u64, u64) {
    redis::pipe()
        .cmd("XLEN")
        .arg("{ssehub}")
        .cmd("HLEN")
        .arg("{ssehub}:ids")
        .cmd("LLEN")
        .arg("{ssehub}:ids:order")
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_id_index_follows_trimming_exactly() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| o.history.history_size = Some(100)).await;
    for batch in 0..20 {
        publish_batch(&hub, (0..50).map(|i| format!("e-{}", batch * 50 + i))).await;
    }
    let mut conn = redis.connection().await;
    let (stream, index, order) = lengths(&mut conn).await;
    assert!(
        (100..1000).contains(&stream),
        "MAXLEN ~ 100 keeps at least 100 and trims: {stream}"
    );
    assert_eq!(
        (index, order),
        (stream, stream),
        "the index is as long as the stream"
    );

    // The oldest retained update, as Redis holds it.
    let oldest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("{ssehub}")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let oldest_id = oldest[0]
        .1
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(oldest_id, format!("e-{}", 1000 - stream));

    // A trimmed id replays everything retained, announced as "earliest".
    let mut all = hub.resume(&["t"], "e-0").await;
    assert_eq!(all.headers["last-event-id"], "earliest");
    assert_eq!(all.next().await.last_event_id, oldest_id);
    // A retained id resumes right after it.
    let mut tail = hub.resume(&["t"], "e-997").await;
    assert_eq!(tail.headers["last-event-id"], "e-997");
    let ids: Vec<String> = tail
        .take(2)
        .await
        .into_iter()
        .map(|e| e.last_event_id)
        .collect();
    assert_eq!(ids, ["e-998", "e-999"]);
}

#[tokio::test]
async fn age_retention_trims_and_reads_skip_expired_updates() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| {
        o.history.history_ttl = Some("1s".parse().unwrap());
    })
    .await;
    publish_batch(&hub, (0..10).map(|i| format!("old-{i}"))).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Expired but not yet trimmed (no append since): not replayed.
    let mut before = hub.resume(&["t"], "earliest").await;
    before.assert_silent(Duration::from_millis(300)).await;
    hub.publish_ok(&[("topic", "t"), ("id", "new"), ("data", "x")])
        .await;
    let mut conn = redis.connection().await;
    assert_eq!(lengths(&mut conn).await, (1, 1, 1), "trimmed at the append");
    let mut after = hub.resume(&["t"], "earliest").await;
    assert_eq!(after.next().await.last_event_id, "new");
}

#[tokio::test]
async fn rediss_verifies_the_server_against_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    let [ca, cert, key] = private_ca(certs.path());
    let tls_port = free_addr().port().to_string();
    let _redis = Redis::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let hub = hub_on(&url, |o| o.redis.redis_ca_cert = Some(ca.clone().into())).await;
    let mut sub = hub.subscribe_topics(&["t"], &[]).await;
    let id = hub
        .publish_ok(&[("topic", "t"), ("data", "over TLS")])
        .await;
    let event = sub.next().await;
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        (id.as_str(), "over TLS")
    );

    // Without the CA, the system roots do not know this server: not ready,
    // and publishing is refused, naming Redis.
    let untrusting = TestHub::start(|o| o.history.store = Some(url.clone())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = untrusting
        .http
        .get(format!("{}/readyz", untrusting.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let why = res.text().await.unwrap();
    assert!(why.contains("certificate"), "{why}");
    let (status, body) = untrusting
        .publish(&publisher_token(), &[("topic", "t"), ("data", "x")])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("Redis"), "{body}");
}

/// Runs `redis-cli` with `args`; panics with its output if it fails.
fn redis_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools) must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "redis-cli {args:?}: {text}");
    text
}

#[tokio::test]
async fn a_redis_cluster_is_reached_through_any_seed_node() {
    let nodes: Vec<Redis> = (0..3)
        .map(|_| {
            Redis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addrs.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(&create);
    let port = |i: usize| nodes[i].addr().port().to_string();
    let deadline = std::time::Instant::now() + WAIT;
    while !redis_cli(&["-p", &port(0), "cluster", "info"]).contains("cluster_state:ok") {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster never formed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The slot of the hash tag, and a seed node that does not own it.
    let slot: u16 = redis_cli(&["-p", &port(0), "cluster", "keyslot", "{ssehub}"])
        .trim()
        .parse()
        .unwrap();
    let owner = (0..3)
        .find(|&i| {
            redis_cli(&["-p", &port(i), "cluster", "nodes"])
                .lines()
                .any(|l| l.contains("myself") && owns(l, slot))
        })
        .expect("one node owns the slot");
    let seed = (owner + 1) % 3;

    let seed_url = format!("redis://{}", addrs[seed]);
    let a = hub_on(&seed_url, |o| o.redis.redis_cluster = Some(true)).await;
    let b = hub_on(&seed_url, |o| o.redis.redis_cluster = Some(true)).await;
    let mut sub = b.subscribe_topics(&["t"], &[]).await;
    let first = a.publish_ok(&[("topic", "t"), ("data", "1")]).await;
    let second = a.publish_ok(&[("topic", "t"), ("data", "2")]).await;
    let got: Vec<String> = sub
        .take(2)
        .await
        .into_iter()
        .map(|e| e.last_event_id)
        .collect();
    assert_eq!(
        got,
        [first.clone(), second.clone()],
        "published on a, received on b"
    );
    let mut resumed = b.resume(&["t"], &first).await;
    assert_eq!(resumed.next().await.last_event_id, second);

    // Every key landed on the slot owner.
    let keys = redis_cli(&["-p", &port(owner), "keys", "*"]);
    assert!(keys.lines().any(|k| k == "{ssehub}"), "{keys}");
    assert!(keys.lines().all(|k| k.starts_with("{ssehub}")), "{keys}");
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
    })
}

#[tokio::test]
async fn a_reused_id_resolves_to_its_earliest_update() {
    let redis = Redis::start();
    let hub = hub_on(&redis.url(), |o| o.access.anonymous = Some(true)).await;
    crate::subscribe::check_reused_id_resumes_after_its_earliest_update(&hub).await;
}
