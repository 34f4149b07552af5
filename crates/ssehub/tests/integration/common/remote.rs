//! A hub reached by its URL: a client with a bound, publishing a form
//! or a JSON batch with a token, and opening an event stream.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;

use super::{publisher_token, topic_query, SseClient};

/// Bound on a start, a request, an expected event and an exit of the tests
/// that run hubs as child processes.
pub(crate) const READY: Duration = Duration::from_secs(10);

/// A client whose requests fail after `timeout`.
pub(crate) fn client_with(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// A client whose requests fail after [`READY`].
pub(crate) fn client() -> reqwest::Client {
    client_with(READY)
}

/// The hub URL of a hub listening on `addr`.
pub(crate) fn hub_url(addr: SocketAddr) -> String {
    format!("http://{addr}/.well-known/mercure")
}

/// POSTs a Mercure form to `url`, with `token` as bearer if given: the
/// status and body, or the transport error.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    form: &[(&str, &str)],
) -> Result<(StatusCode, String), reqwest::Error> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    let status = res.status();
    Ok((status, res.text().await?))
}

/// Publishes `batch` to `url` in one request (a JSON array, appended
/// atomically) with a publisher token; asserts 200.
pub(crate) async fn publish_batch_ok(
    http: &reqwest::Client,
    url: &str,
    batch: &[serde_json::Value],
) {
    let res = http
        .post(url)
        .bearer_auth(publisher_token())
        .json(batch)
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
}

/// Subscribes on the hub at `url` to `topics` (none: `url` carries the
/// query), with `token` as bearer and a `Last-Event-ID` if given; asserts
/// the answer comes within [`READY`] and is a 200 event stream. Each event
/// must then come within [`READY`].
pub(crate) async fn open_stream(
    url: &str,
    topics: &[&str],
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> SseClient {
    let url = if topics.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{}", topic_query(topics))
    };
    // No overall timeout: the stream stays open; reads are bounded instead.
    let mut req = reqwest::Client::new().get(&url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = tokio::time::timeout(READY, req.send())
        .await
        .unwrap_or_else(|_| panic!("subscribing to {url}: no answer within {READY:?}"))
        .unwrap_or_else(|e| panic!("subscribing to {url}: {e}"));
    assert_eq!(res.status(), StatusCode::OK, "subscribing to {url}");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    SseClient::new(res).waiting(READY)
}

/// `GET base/path`: status, `Cache-Control` and body.
pub(crate) async fn probe(base: &str, path: &str) -> (StatusCode, String, String) {
    let res = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status();
    let cache = res.headers()["cache-control"].to_str().unwrap().to_string();
    (status, cache, res.text().await.unwrap())
}

/// `/readyz`: status and body.
pub(crate) async fn readyz(base: &str) -> (StatusCode, String) {
    let (status, cache, body) = probe(base, "/readyz").await;
    assert_eq!(cache, "no-store");
    (status, body)
}
