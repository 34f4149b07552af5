//! Test harness: a real hub in this process on a loopback port
//! ([`TestHub`]), tokens signed with the test secret, and an SSE client
//! speaking HTTP over TCP ([`SseClient`]); in the submodules, child
//! processes ([`child`]: the `ssehub` binary, [`child_hub`]: a hub it
//! serves, [`redis`]: `redis-server`), a hub reached by its URL
//! ([`remote`]), clients of its TLS port and HTTP/3 ([`https`]), raw
//! HTTP/2 frames over TLS ([`h2_frames`]), keys made outside the hub
//! ([`keys`]), Mercure 1.0 access tokens ([`v1`]), the repository's files
//! with the programs that check them ([`tool`]), and a Prometheus scraping
//! a hub ([`prometheus`]).

pub(crate) mod child;
pub(crate) mod child_hub;
pub(crate) mod h2_frames;
pub(crate) mod https;
pub(crate) mod keys;
pub(crate) mod pebble;
pub(crate) mod prometheus;
pub(crate) mod redis;
pub(crate) mod remote;
pub(crate) mod tool;
pub(crate) mod v1;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use ssehub::auth::Signer;
use ssehub::config::Options;
use ssehub::proto::claims::MercureClaim;
use ssehub::proto::sse::{ParsedEvent, Parser};
use ssehub::server::RunningHub;

/// The HMAC secret every test hub uses.
pub(crate) const SECRET: &str = "test-secret-test-secret-test-secret";

/// A hub running in this process on 127.0.0.1 with a free port.
pub(crate) struct TestHub {
    pub(crate) running: Option<RunningHub>,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestHub {
    /// Starts a hub with the test secret and `adjust` applied to the options.
    pub(crate) async fn start(adjust: impl FnOnce(&mut Options)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::default();
        options.server.listen = Some("127.0.0.1:0".into());
        options.server.tls_listen = Some("none".into());
        options.server.metrics_listen = Some("127.0.0.1:0".into());
        options.keys.data_dir = Some(dir.path().to_path_buf());
        options.keys.publisher_jwt_key = Some(SECRET.into());
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
    pub(crate) async fn default() -> TestHub {
        Self::start(|_| {}).await
    }

    /// Starts a hub that lets anonymous clients subscribe, on `store`
    /// (`memory`, `disk` or a Redis URL).
    pub(crate) async fn anonymous_on(store: &str) -> TestHub {
        Self::start(|o| {
            o.access.anonymous = Some(true);
            o.history.store = Some(store.into());
        })
        .await
    }

    /// The hub URL.
    pub(crate) fn url(&self) -> String {
        format!("{}/.well-known/mercure", self.base)
    }

    /// Stops the hub (streams end).
    pub(crate) async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// POSTs a form with a bearer token; returns status and body.
    pub(crate) async fn publish(&self, token: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        remote::post_form(&self.http, &self.url(), Some(token), form)
            .await
            .unwrap()
    }

    /// Publishes and asserts 200; returns the id.
    pub(crate) async fn publish_ok(&self, form: &[(&str, &str)]) -> String {
        let (status, body) = self.publish(&publisher_token(), form).await;
        assert_eq!(status, StatusCode::OK, "publish failed: {body}");
        body
    }

    /// Waits (bounded) until no subscriber is registered in the hub's
    /// fan-out; panics naming `context` otherwise.
    pub(crate) async fn assert_no_subscriber_left(&self, context: &str) {
        let fanout = &self.running.as_ref().unwrap().hub.fanout;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !fanout.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} subscriber(s) still registered {context}",
                fanout.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a subscription with a raw query string (`topic=...&...`) and extra headers.
    pub(crate) async fn subscribe(&self, query: &str, headers: &[(&str, &str)]) -> SseClient {
        let mut req = self.http.get(format!("{}?{}", self.url(), query));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        SseClient::new(req.send().await.unwrap())
    }

    /// Subscribes to `topics` with a subscriber token for every topic,
    /// sending `Last-Event-ID: last_event_id` (`earliest` replays it all).
    pub(crate) async fn resume(&self, topics: &[&str], last_event_id: &str) -> SseClient {
        let token = token(&[], &["*"], None);
        self.subscribe(
            &topic_query(topics),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("last-event-id", last_event_id),
            ],
        )
        .await
    }

    /// Opens a subscription to `topics` with a subscriber token for `allowed`.
    pub(crate) async fn subscribe_topics(&self, topics: &[&str], allowed: &[&str]) -> SseClient {
        let query = topic_query(topics);
        let token = token(&[], allowed, None);
        let client = self
            .subscribe(&query, &[("authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(client.status, StatusCode::OK);
        client
    }
}

/// How many heavy tests run at once, whatever the number of test threads.
const HEAVY_AT_ONCE: usize = 2;

/// One permit per heavy test running.
static HEAVY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HEAVY_AT_ONCE);

/// Waits for a turn to run a heavy test, one that keeps several child
/// processes busy (`redis-server` and hub nodes under load, a hub killed
/// and restarted twenty times): many at once would starve each other and
/// the other tests of this process of the machine's cores. Hold the permit
/// for the whole test.
pub(crate) async fn heavy() -> tokio::sync::SemaphorePermit<'static> {
    HEAVY.acquire().await.expect("never closed")
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The seed of `test`'s random choices: `$VAR` if set, else the clock;
/// printed so that a failure can be replayed.
pub(crate) fn seed(var: &str, test: &str) -> u64 {
    let seed = match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var} is a u64")),
        Err(_) => {
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            u64::try_from(since_epoch.as_nanos()).expect("nanoseconds fit a u64 until 2554")
        }
    };
    println!("{test}: seed {seed} (replay with {var}={seed})");
    seed
}

/// `topic=a&topic=b` with encoding.
pub(crate) fn topic_query(topics: &[&str]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(topics.iter().map(|t| ("topic", *t)))
        .finish()
}

/// A token signed with the test secret.
pub(crate) fn token(publish: &[&str], subscribe: &[&str], exp_in_secs: Option<u64>) -> String {
    sign(
        SECRET,
        publish,
        subscribe,
        exp_in_secs.map(Duration::from_secs),
    )
}

/// A token signed with `key` (HS256).
pub(crate) fn sign(
    key: &str,
    publish: &[&str],
    subscribe: &[&str],
    ttl: Option<Duration>,
) -> String {
    let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
    let claim = MercureClaim {
        publish: list(publish),
        subscribe: list(subscribe),
        payload: None,
    };
    Signer::new(key, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign(&claim, ttl)
}

/// A token that may publish anywhere.
pub(crate) fn publisher_token() -> String {
    token(&["*"], &[], None)
}

/// An admin token (`"ssehub": {"admin": true}`) signed with the test
/// secret, for the UI's stats.
pub(crate) fn admin_token() -> String {
    Signer::new(SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign_expiring(
            serde_json::json!({"ssehub": {"admin": true}}),
            Some(Duration::from_secs(600)),
        )
}

/// The next event of the UI's stats stream, as JSON.
pub(crate) async fn next_stats(stream: &mut SseClient) -> serde_json::Value {
    let event = stream.next().await;
    assert_eq!(event.event_type, "stats");
    serde_json::from_str(&event.data).unwrap()
}

/// An event's type, data and last event id, to compare in one assertion.
pub(crate) fn fields(e: &ParsedEvent) -> (&str, &str, &str) {
    (&e.event_type, &e.data, &e.last_event_id)
}

/// Why no event came.
#[derive(Debug)]
pub(crate) enum NoEvent {
    /// Nothing complete arrived in time.
    Timeout,
    /// The response ended (now or before).
    Ended,
    /// Reading the response failed.
    Failed(String),
}

/// A streaming SSE client over a real HTTP response, read with the crate's
/// WHATWG parser. Events a chunk completes beyond the one asked for are kept
/// for the next call.
pub(crate) struct SseClient {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    res: Option<reqwest::Response>,
    parser: Parser,
    pending: VecDeque<ParsedEvent>,
    wait: Duration,
}

impl SseClient {
    /// Reads the body of `res`, whatever its status; [`SseClient::next`]
    /// waits 5 s.
    pub(crate) fn new(res: reqwest::Response) -> SseClient {
        SseClient {
            status: res.status(),
            headers: res.headers().clone(),
            res: Some(res),
            parser: Parser::new(),
            pending: VecDeque::new(),
            wait: Duration::from_secs(5),
        }
    }

    /// Makes [`SseClient::next`] wait `wait` instead.
    pub(crate) fn waiting(mut self, wait: Duration) -> SseClient {
        self.wait = wait;
        self
    }

    /// Reads one chunk into the pending events.
    async fn read_chunk(&mut self, deadline: tokio::time::Instant) -> Result<(), NoEvent> {
        let res = self.res.as_mut().ok_or(NoEvent::Ended)?;
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Err(_) => Err(NoEvent::Timeout),
            Ok(Ok(Some(chunk))) => {
                self.pending.extend(self.parser.feed(&chunk));
                Ok(())
            }
            Ok(Ok(None)) => {
                self.res = None;
                Err(NoEvent::Ended)
            }
            Ok(Err(e)) => {
                self.res = None;
                Err(NoEvent::Failed(e.to_string()))
            }
        }
    }

    /// The next event, or why none came within `wait`.
    pub(crate) async fn next_event(&mut self, wait: Duration) -> Result<ParsedEvent, NoEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            self.read_chunk(deadline).await?;
        }
    }

    /// The next event, or `None` if the stream ended or nothing came in `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<ParsedEvent> {
        self.next_event(wait).await.ok()
    }

    /// The next event; panics if none comes within the client's wait (5 s
    /// unless set by [`SseClient::waiting`]) or the stream ends or fails.
    pub(crate) async fn next(&mut self) -> ParsedEvent {
        let wait = self.wait;
        match self.next_event(wait).await {
            Ok(event) => event,
            Err(NoEvent::Timeout) => panic!("no event within {wait:?}"),
            Err(NoEvent::Ended) => panic!("stream ended before an event"),
            Err(NoEvent::Failed(e)) => panic!("stream failed: {e}"),
        }
    }

    /// The next `n` events, each within the client's wait.
    pub(crate) async fn take(&mut self, n: usize) -> Vec<ParsedEvent> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// The next `n` events, all within `wait`; panics otherwise.
    pub(crate) async fn take_within(&mut self, n: usize, wait: Duration) -> Vec<ParsedEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Ok(event) => out.push(event),
                Err(why) => panic!("{} of {n} events within {wait:?}: {why:?}", out.len()),
            }
        }
        out
    }

    /// Every event until `wait` passes without one, or the stream ends.
    pub(crate) async fn drain(&mut self, wait: Duration) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        while let Some(event) = self.next_within(wait).await {
            out.push(event);
        }
        out
    }

    /// Asserts nothing arrives for `wait`.
    pub(crate) async fn assert_silent(&mut self, wait: Duration) {
        if let Some(e) = self.next_within(wait).await {
            panic!("unexpected event {e:?}");
        }
    }

    /// Reads until the response ends, keeping the events; `Ok` if it ended
    /// cleanly within `wait`.
    pub(crate) async fn end_within(&mut self, wait: Duration) -> Result<(), NoEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.read_chunk(deadline).await {
                Ok(()) => {}
                Err(NoEvent::Ended) => return Ok(()),
                Err(why) => return Err(why),
            }
        }
    }

    /// Waits until the server ends the stream, cleanly or not; panics after `wait`.
    pub(crate) async fn assert_ends_within(&mut self, wait: Duration) {
        if let Err(NoEvent::Timeout) = self.end_within(wait).await {
            panic!("stream still open after {wait:?}");
        }
    }

    /// Heartbeat and open comments seen so far.
    pub(crate) fn comments(&self) -> u64 {
        self.parser.comments()
    }

    /// The last `retry:` value seen, if any.
    pub(crate) fn retry(&self) -> Option<u64> {
        self.parser.retry()
    }

    /// Whether the response is still open.
    pub(crate) fn is_open(&self) -> bool {
        self.res.is_some()
    }
}
