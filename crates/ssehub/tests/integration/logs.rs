//! What the hub logs: `--log-format text` and `json` lines, and no secret
//! in any of them. The binary runs as a child with every log target at
//! `trace` (so `debug` too, the hub's and its HTTP libraries'), and is sent
//! tokens everywhere a token can go (the `Authorization` header, the
//! `authorization` query parameter, the 0.x and 1.0 cookies), valid or
//! not, to publish, subscribe and the subscriptions API, over HTTP/1.1 and
//! HTTP/2; once it stopped, no token, nor its signature, appears in what it
//! wrote. In JSON, even the error that stops start-up is an object.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::child::{command, Proc};
use crate::common::child_hub::ChildHub;
use crate::common::remote::READY;
use crate::common::v1::{self, access_token, detail};
use crate::common::{now_secs, sign, SECRET};

/// The origin allowed to publish with a cookie.
const APP: &str = "https://app.example";
/// The 0.x and 1.0 token cookies (their default names).
const COOKIE_0X: &str = "mercureAuthorization";
const COOKIE_V1: &str = "__Secure-mercure_access_token";
/// The subscriptions API.
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";

/// Where a request carries its token.
#[derive(Debug, Clone, Copy)]
enum Place {
    Header,
    Query,
    Cookie(&'static str),
}

/// What a request does.
#[derive(Debug, Clone, Copy)]
enum Action {
    Publish,
    /// Subscribe with a 0.x `topic=` query.
    Subscribe,
    /// Subscribe with a 1.0 `match=` query.
    SubscribeV1,
    Subscriptions,
}

/// One request of the scenario and the status it must get.
#[derive(Debug)]
struct Case {
    action: Action,
    place: Place,
    token: String,
    /// Sends `Origin: APP` (what a cookie-borne publish needs).
    from_app: bool,
    expect: StatusCode,
}

/// The tokens of the scenario; each is also a secret to look for.
struct Tokens {
    /// Every token sent, valid or not.
    all: Vec<String>,
    /// 0.x tokens are told apart by their expiry.
    next_ttl: u64,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            all: Vec::new(),
            next_ttl: 3600,
        }
    }

    fn keep(&mut self, token: String) -> String {
        self.all.push(token.clone());
        token
    }

    /// A valid 0.x token that may publish and subscribe everywhere, unlike
    /// any other of the scenario.
    fn valid(&mut self) -> String {
        self.next_ttl += 1;
        let ttl = std::time::Duration::from_secs(self.next_ttl);
        self.keep(sign(SECRET, &["*"], &["*"], Some(ttl)))
    }

    /// A 0.x token signed with another key.
    fn wrong_key(&mut self) -> String {
        self.next_ttl += 1;
        let ttl = std::time::Duration::from_secs(self.next_ttl);
        self.keep(sign(
            "another-key-another-key-another-key",
            &["*"],
            &["*"],
            Some(ttl),
        ))
    }

    /// A 0.x token that expired an hour ago.
    fn expired(&mut self) -> String {
        let claims =
            json!({"mercure": {"publish": ["*"], "subscribe": ["*"]}, "exp": now_secs() - 3600});
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        self.keep(token)
    }

    /// A valid 1.0 access token for the hub at `aud`, granting `actions`
    /// on every topic.
    fn v1(&mut self, aud: &str, actions: &[&str]) -> String {
        let mut claims = v1::claims(aud, &[detail(actions, &[("exact", "*")])]);
        claims["sub"] = json!(format!("logs-test-{}", self.all.len()));
        self.keep(access_token(&claims))
    }

    /// Not a JWT at all.
    fn garbage(&mut self) -> String {
        let n = self.all.len();
        self.keep(format!("garbage-token-{n}-{}", now_secs()))
    }
}

/// Every request of the scenario against the hub at `url`.
fn cases(url: &str, tokens: &mut Tokens) -> Vec<Case> {
    use Action::*;
    use Place::*;
    let case = |action, place, token, from_app, expect| Case {
        action,
        place,
        token,
        from_app,
        expect,
    };
    let ok = StatusCode::OK;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let mut cases = Vec::new();
    for action in [Publish, Subscribe, Subscriptions] {
        // Valid, in each place (a cookie-borne publish from the allowed
        // origin), then refused.
        for place in [Header, Query, Cookie(COOKIE_0X)] {
            cases.push(case(action, place, tokens.valid(), true, ok));
            cases.push(case(action, place, tokens.wrong_key(), true, unauthorized));
            cases.push(case(action, place, tokens.expired(), true, unauthorized));
            cases.push(case(action, place, tokens.garbage(), true, unauthorized));
        }
        let v1_actions: &[&str] = match action {
            Publish => &["publish"],
            _ => &["subscribe"],
        };
        cases.push(case(
            action,
            Cookie(COOKIE_V1),
            tokens.v1(url, v1_actions),
            true,
            ok,
        ));
        cases.push(case(
            action,
            Cookie(COOKIE_V1),
            tokens.garbage(),
            true,
            unauthorized,
        ));
    }
    // A cookie-borne publish from no allowed origin: refused, the token
    // being valid.
    cases.push(case(
        Publish,
        Cookie(COOKIE_0X),
        tokens.valid(),
        false,
        StatusCode::FORBIDDEN,
    ));
    // 1.0 subscriptions: a token in the URL is refused; the header and the
    // cookie are fine.
    let v1_token = tokens.v1(url, &["subscribe"]);
    cases.push(case(
        SubscribeV1,
        Query,
        v1_token,
        true,
        StatusCode::BAD_REQUEST,
    ));
    cases.push(case(
        SubscribeV1,
        Header,
        tokens.v1(url, &["subscribe"]),
        true,
        ok,
    ));
    cases.push(case(
        SubscribeV1,
        Cookie(COOKIE_V1),
        tokens.v1(url, &["subscribe"]),
        true,
        ok,
    ));
    cases.push(case(
        SubscribeV1,
        Header,
        tokens.wrong_key(),
        true,
        unauthorized,
    ));
    cases
}

impl Case {
    /// The request, sent by `http` to the hub at `base`.
    fn request(&self, http: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        let (method, path, mut query) = match self.action {
            Action::Publish => (Method::POST, "/.well-known/mercure", vec![]),
            Action::Subscribe => (
                Method::GET,
                "/.well-known/mercure",
                vec![("topic", "urn:logs")],
            ),
            Action::SubscribeV1 => (
                Method::GET,
                "/.well-known/mercure",
                vec![("match", "urn:logs")],
            ),
            Action::Subscriptions => (Method::GET, SUBSCRIPTIONS, vec![]),
        };
        if let Place::Query = self.place {
            query.push(("authorization", &self.token));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let mut req = http.request(method, format!("{base}{path}?{query}"));
        match self.place {
            Place::Header => req = req.bearer_auth(&self.token),
            Place::Cookie(name) => {
                req = req.header("cookie", format!("theme=dark; {name}={}", self.token))
            }
            Place::Query => {}
        }
        if self.from_app {
            req = req.header("origin", APP);
        }
        if let Action::Publish = self.action {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body("topic=urn%3Alogs&data=logged");
        }
        req
    }
}

/// Starts the hub with `--log-format format`, logging everything; sends
/// every case over HTTP/1.1 and HTTP/2 (keeping the streams open until a
/// last update was published to them); stops it with SIGTERM. Returns what
/// it wrote to stderr, having checked that no token sent appears in
/// anything it wrote.
async fn run_scenario(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = ChildHub::start(
        dir.path(),
        &[
            "--publisher-jwt-key",
            SECRET,
            "--tls-listen",
            "none",
            "--subscriptions",
            "--publish-origins",
            APP,
            "--log-format",
            format,
        ],
        &[("SSEHUB_LOG", "trace")],
    )
    .await;
    let mut tokens = Tokens::new();
    let cases = cases(&hub.url(), &mut tokens);
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut open = Vec::new();
    let mut wrong = Vec::new();
    for (protocol, http) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        for case in &cases {
            let res = tokio::time::timeout(READY, case.request(http, &hub.base()).send())
                .await
                .unwrap_or_else(|_| panic!("no answer within {READY:?} to {case:?}"))
                .unwrap_or_else(|e| panic!("{case:?}: {e}"));
            if res.status() != case.expect {
                wrong.push(format!("{protocol} {case:?}: {}", res.status()));
            }
            open.push(res);
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected statuses:\n{}",
        wrong.join("\n")
    );
    let publisher = tokens.valid();
    hub.publish_ok(&publisher, &[("topic", "urn:logs"), ("data", "last")])
        .await;
    drop(open);
    let status = hub.stop(READY);
    assert!(status.success(), "{status}\n{}", hub.stderr());
    // The start-up banner: no token in it, the key being configured.
    assert_no_secret(&hub.stdout(), &tokens.all);
    let log = hub.stderr();
    assert!(
        log.lines().count() > 100,
        "hardly any log at trace level:\n{log}"
    );
    assert_no_secret(&log, &tokens.all);
    log
}

/// Asserts no token, nor the signature of a JWT, appears in `log`.
fn assert_no_secret(log: &str, tokens: &[String]) {
    let mut leaked = BTreeSet::new();
    for token in tokens {
        let signature = token.rsplit('.').next().filter(|s| s.len() >= 16);
        for secret in [Some(token.as_str()), signature].into_iter().flatten() {
            if log.contains(secret) {
                leaked.insert(secret.to_string());
            }
        }
    }
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| leaked.iter().any(|s| line.contains(s.as_str())))
        .take(5)
        .collect();
    assert!(
        leaked.is_empty(),
        "{} secret(s) in the log, e.g. in:\n{}",
        leaked.len(),
        lines.join("\n")
    );
}

#[tokio::test]
async fn text_logs_hold_no_token() {
    let log = run_scenario("text").await;
    assert!(!log.contains('\u{1b}'), "no color codes off a terminal");
    assert!(
        log.lines()
            .any(|line| line.contains(" TRACE ") && line.contains(" ssehub::server::h2::")),
        "HTTP/2 frame lines are logged"
    );
    assert!(log.contains(" INFO ssehub::cli: shutting down"), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_hold_no_token() {
    let log = run_scenario("json").await;
    let mut targets = BTreeSet::new();
    let mut shutting_down = false;
    for line in log.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let text = |field: &str| {
            value[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field}: {line}"))
                .to_string()
        };
        let timestamp = text("timestamp");
        assert!(
            timestamp.len() > 20 && timestamp.ends_with('Z'),
            "an RFC 3339 UTC timestamp: {line}"
        );
        let level = text("level");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level.as_str()),
            "{line}"
        );
        let target = text("target");
        if target.starts_with("ssehub") {
            // The hub's own events always say something.
            assert!(!text("message").is_empty(), "{line}");
        }
        if target == "ssehub::cli" && text("message").starts_with("shutting down") {
            shutting_down = true;
        }
        targets.insert(target);
    }
    assert!(shutting_down, "the shutdown line:\n{log}");
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("ssehub::server::h2::")),
        "HTTP/2 frame lines are logged: {targets:?}"
    );
}

#[test]
fn a_fatal_error_is_a_json_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut proc = Proc::spawn(command(
        dir.path(),
        &["serve", "--listen", &addr, "--log-format", "json"],
    ));
    let status = proc
        .wait_exit(READY)
        .unwrap_or_else(|| panic!("still running:\n{}", proc.stderr()));
    assert!(!status.success());
    let log = proc.stderr();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let last = lines.last().unwrap_or_else(|| panic!("no log line"));
    assert_eq!(last["level"], "ERROR", "{log}");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("cannot listen on {addr}")),
        "{log}"
    );
}
