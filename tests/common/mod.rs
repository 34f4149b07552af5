//! Test harness: a real hub on a loopback port, a publisher and an SSE client
//! speaking HTTP over TCP.
#![allow(dead_code, unreachable_pub)]

pub mod child;

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use ssehub::auth::Signer;
use ssehub::config::Options;
use ssehub::proto::claims::MercureClaim;
use ssehub::proto::sse::{ParsedEvent, Parser};
use ssehub::server::RunningHub;

/// The HMAC secret every test hub uses.
pub const SECRET: &str = "test-secret-test-secret-test-secret";

/// A hub running in this process on 127.0.0.1 with a free port.
pub struct TestHub {
    pub running: Option<RunningHub>,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestHub {
    /// Starts a hub with the test secret and `adjust` applied to the options.
    pub async fn start(adjust: impl FnOnce(&mut Options)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options {
            listen: Some("127.0.0.1:0".into()),
            tls_listen: Some("none".into()),
            data_dir: Some(dir.path().to_path_buf()),
            publisher_jwt_key: Some(SECRET.into()),
            ..Options::default()
        };
        adjust(&mut options);
        let running = ssehub::server::start(options.resolve().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        TestHub {
            running: Some(running),
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Starts a hub with default options.
    pub async fn default() -> TestHub {
        Self::start(|_| {}).await
    }

    /// The hub URL.
    pub fn url(&self) -> String {
        format!("{}/.well-known/mercure", self.base)
    }

    /// Stops the hub (streams end).
    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// POSTs a form with a bearer token; returns status and body.
    pub async fn publish(&self, token: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let res = self
            .http
            .post(self.url())
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// Publishes and asserts 200; returns the id.
    pub async fn publish_ok(&self, form: &[(&str, &str)]) -> String {
        let (status, body) = self.publish(&publisher_token(), form).await;
        assert_eq!(status, StatusCode::OK, "publish failed: {body}");
        body
    }

    /// Opens a subscription with a raw query string (`topic=...&...`) and extra headers.
    pub async fn subscribe(&self, query: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut req = self.http.get(format!("{}?{}", self.url(), query));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        SseClient {
            status: res.status(),
            headers: res.headers().clone(),
            res: Some(res),
            parser: Parser::new(),
            pending: Vec::new(),
        }
    }

    /// Opens a subscription to `topics` with a subscriber token for `allowed`.
    pub async fn subscribe_topics(&self, topics: &[&str], allowed: &[&str]) -> SseClient {
        let query = topic_query(topics);
        let token = token(&[], allowed, None);
        let client = self
            .subscribe(&query, &[("authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(client.status, StatusCode::OK);
        client
    }
}

/// `topic=a&topic=b` with encoding.
pub fn topic_query(topics: &[&str]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(topics.iter().map(|t| ("topic", *t)))
        .finish()
}

/// A token signed with the test secret.
pub fn token(publish: &[&str], subscribe: &[&str], exp_in_secs: Option<u64>) -> String {
    let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
    let claim = MercureClaim {
        publish: list(publish),
        subscribe: list(subscribe),
        payload: None,
    };
    Signer::new(SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign(&claim, exp_in_secs.map(Duration::from_secs))
}

/// A token that may publish anywhere.
pub fn publisher_token() -> String {
    token(&["*"], &[], None)
}

/// A streaming SSE client over a real HTTP response.
pub struct SseClient {
    pub status: StatusCode,
    pub headers: HeaderMap,
    res: Option<reqwest::Response>,
    parser: Parser,
    pending: Vec<ParsedEvent>,
}

impl SseClient {
    /// The next event, or `None` if the stream ended or nothing came in `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<ParsedEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !self.pending.is_empty() {
                return Some(self.pending.remove(0));
            }
            let res = self.res.as_mut()?;
            match tokio::time::timeout_at(deadline, res.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => self.pending.extend(self.parser.feed(&chunk)),
                Ok(_) => {
                    self.res = None;
                    return None;
                }
            }
        }
    }

    /// The next event; panics after 5 s.
    pub async fn next(&mut self) -> ParsedEvent {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("an event within 5s")
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<ParsedEvent> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn assert_silent(&mut self, wait: Duration) {
        if let Some(e) = self.next_within(wait).await {
            panic!("unexpected event {e:?}");
        }
    }

    /// Waits until the server ends the stream; panics after `wait`.
    pub async fn assert_ends_within(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while self.res.is_some() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "stream still open after {wait:?}");
            self.next_within(left).await;
        }
    }

    /// Heartbeat and open comments seen so far.
    pub fn comments(&self) -> u64 {
        self.parser.comments()
    }

    /// Whether the response is still open.
    pub fn is_open(&self) -> bool {
        self.res.is_some()
    }
}
