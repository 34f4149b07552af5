//! The limits at the wire: the limited client gets its status and
//! `Retry-After`, the others keep working, streams already open keep
//! receiving, and once the limited clients leave everything they held is
//! given back (places, map entries, open files).
//!
//! Clients of one test come from different loopback addresses (127.0.0.1,
//! 127.0.0.2, ...) where a limit counts per address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use ssehub::auth::Signer;
use ssehub::config::{ConnectionCap, HumanDuration};
use ssehub::metrics::Limit;
use ssehub::server::RunningHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::common::child_hub::ChildHub;
use crate::common::remote::READY;
use crate::common::{publisher_token, topic_query, SseClient, TestHub, SECRET};

/// Bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(10);

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn running(hub: &TestHub) -> &RunningHub {
    hub.running.as_ref().unwrap()
}

/// How many times `limit` refused or ended something in `hub`.
fn hits(hub: &TestHub, limit: Limit) -> u64 {
    running(hub).hub.metrics.limits_hit.get(limit).get()
}

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(addr: SocketAddr, from: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// An HTTP client whose connections come from `from`.
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .timeout(READY)
        .build()
        .unwrap()
}

/// An HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// Parses everything the hub sent.
    fn parse(bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        Answer {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// The value of the header `name` (any case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Sends `request` (possibly nothing) and reads until the hub closes (or
/// resets: hyper closes with the rest of a refused head unread).
async fn exchange(tcp: &mut TcpStream, request: &[u8]) -> Answer {
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Err(_) => panic!("the hub did not close the connection after {out:?}"),
            Ok(Ok(0) | Err(_)) => return Answer::parse(&out),
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads one response of a kept-alive connection (its body is small and
/// has a length).
async fn read_response(tcp: &mut TcpStream) -> Answer {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = std::str::from_utf8(&out).ok().and_then(|text| {
            let (head, body) = text.split_once("\r\n\r\n")?;
            let answer = Answer::parse(text.as_bytes());
            let length: usize = answer.header("content-length")?.parse().ok()?;
            (body.len() >= length).then(|| Answer {
                head: head.to_string(),
                ..answer
            })
        });
        if let Some(answer) = answer {
            return answer;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("a whole response in time")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {out:?}");
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the hub closes `tcp` (a read returns end of file or a
/// reset); panics after [`WAIT`].
async fn assert_closed_by_hub(tcp: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut sink)).await {
            Err(_) => panic!("the hub kept the connection open for {WAIT:?}"),
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// A kept-alive connection from `from` that was admitted: `GET /healthz`
/// answered 200 on it (it holds its place until dropped).
async fn admitted_from(addr: SocketAddr, from: Ipv4Addr) -> Result<TcpStream, Answer> {
    let mut tcp = connect_from(addr, from).await;
    tcp.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let answer = read_response(&mut tcp).await;
    match answer.status {
        200 => Ok(tcp),
        _ => Err(answer),
    }
}

/// Waits until exactly `places` connections from `from` are admitted and
/// the next one is refused with `refused`: what the limits count is back
/// to what it was before (places are given back as the hub notices each
/// closed connection, so this is retried).
async fn assert_places(addr: SocketAddr, from: Ipv4Addr, places: usize, refused: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut held = Vec::new();
        for _ in 0..places {
            match admitted_from(addr, from).await {
                Ok(tcp) => held.push(tcp),
                Err(_) => break,
            }
        }
        if held.len() == places {
            let mut one_more = connect_from(addr, from).await;
            let answer = exchange(&mut one_more, HEALTHZ.as_bytes()).await;
            assert_eq!(answer.status, refused, "{answer:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {places} places came back within {WAIT:?}",
            held.len()
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stream to `topics` (no token: the hubs here are anonymous) on a
/// connection from `from`.
async fn stream_from(hub: &TestHub, from: Ipv4Addr, topics: &[&str]) -> SseClient {
    let res = client_from(from)
        .get(format!("{}?{}", hub.url(), topic_query(topics)))
        .send()
        .await
        .unwrap();
    let client = SseClient::new(res);
    assert_eq!(client.status, StatusCode::OK);
    client
}

/// Publishes `data` to `topic` over a raw connection from `from` that
/// closes after the answer; retried while the hub is full.
async fn publish_from(addr: SocketAddr, from: Ipv4Addr, topic: &str, data: &str) -> String {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("topic", topic), ("data", data)])
        .finish();
    let request = format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        publisher_token(),
        body.len()
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = exchange(&mut connect_from(addr, from).await, request.as_bytes()).await;
        match answer.status {
            200 => return answer.body,
            503 | 429 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => panic!("publish refused: {answer:?}"),
        }
    }
}

fn anonymous(o: &mut ssehub::config::Options) {
    o.access.anonymous = Some(true);
}

#[tokio::test]
async fn over_the_total_connections_are_answered_503_and_open_streams_go_on() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.max_connections = Some(ConnectionCap::At(3));
        o.limits.header_timeout = Some(HumanDuration(Duration::from_secs(60)));
    })
    .await;
    let addr = running(&hub).addr;
    let mut first = stream_from(&hub, loopback(1), &["urn:t"]).await;
    let mut second = stream_from(&hub, loopback(2), &["urn:t"]).await;
    // The third place, held by a client that has sent nothing yet.
    let idle = connect_from(addr, loopback(3)).await;

    // Refused whether or not the client sent its request first.
    for request in [&b""[..], HEALTHZ.as_bytes()] {
        let answer = exchange(&mut connect_from(addr, loopback(4)).await, request).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.header("retry-after"), Some("10"));
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(answer.body.contains("--max-connections"), "{answer:?}");
    }
    assert_eq!(hits(&hub, Limit::Connections), 2);

    drop(idle);
    let id = publish_from(addr, loopback(5), "urn:t", "still here").await;
    for stream in [&mut first, &mut second] {
        let event = stream.next().await;
        assert_eq!(
            (event.data.as_str(), event.last_event_id),
            ("still here", id.clone())
        );
    }
    drop((first, second));
    assert_places(addr, loopback(6), 3, 503).await;
}

#[tokio::test]
async fn over_the_limit_of_one_address_are_answered_429_and_others_go_on() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.max_connections_per_ip = Some(2);
    })
    .await;
    let addr = running(&hub).addr;
    let mut first = stream_from(&hub, loopback(1), &["urn:t"]).await;
    let mut second = stream_from(&hub, loopback(1), &["urn:t"]).await;

    let answer = exchange(
        &mut connect_from(addr, loopback(1)).await,
        HEALTHZ.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("10"));
    assert!(
        answer.body.contains("--max-connections-per-ip"),
        "{answer:?}"
    );
    assert_eq!(hits(&hub, Limit::ConnectionsPerIp), 1);

    // Another address is not affected.
    let mut other = stream_from(&hub, loopback(2), &["urn:t"]).await;
    let id = publish_from(addr, loopback(3), "urn:t", "to all").await;
    for stream in [&mut first, &mut second, &mut other] {
        assert_eq!(stream.next().await.last_event_id, id);
    }
    drop((first, second));
    assert_places(addr, loopback(1), 2, 429).await;
}

#[tokio::test]
async fn over_the_limit_tls_connections_are_closed_at_accept() {
    let hub = TestHub::start(|o| {
        o.server.tls_listen = Some("127.0.0.1:0".into());
        o.server.http3 = Some(false);
        o.limits.max_connections = Some(ConnectionCap::At(1));
    })
    .await;
    let running = running(&hub);
    let _held = admitted_from(running.addr, loopback(1)).await.unwrap();
    let mut tls = TcpStream::connect(running.tls_addr.unwrap()).await.unwrap();
    // The start of a ClientHello: nothing can be answered before a handshake.
    let _ = tls.write_all(&[0x16, 0x03, 0x01]).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "closed at once");
    assert!(got.is_empty(), "no answer: {got:?}");
    assert_eq!(hits(&hub, Limit::Connections), 1);
}

#[tokio::test]
async fn slow_request_heads_are_closed_after_the_header_timeout() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.header_timeout = Some(HumanDuration(Duration::from_millis(500)));
    })
    .await;
    let addr = running(&hub).addr;
    let mut stream = stream_from(&hub, loopback(1), &["urn:t"]).await;

    // A first request whose head never ends.
    let mut slow = connect_from(addr, loopback(2)).await;
    slow.write_all(b"GET /.well-known/mercure?topic=urn:t HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A client that sends nothing at all.
    let mut silent = connect_from(addr, loopback(2)).await;
    // A kept-alive connection whose second head never ends.
    let mut kept = admitted_from(addr, loopback(3)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    for tcp in [&mut slow, &mut silent, &mut kept] {
        assert_closed_by_hub(tcp).await;
    }
    assert_eq!(
        hits(&hub, Limit::HeaderTimeout),
        2,
        "first heads are counted"
    );

    // The stream, whose head came in time, is untouched.
    let id = publish_from(addr, loopback(4), "urn:t", "after").await;
    assert_eq!(stream.next().await.last_event_id, id);
}

#[tokio::test]
async fn slow_request_bodies_are_answered_408_after_the_body_timeout() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.body_timeout = Some(HumanDuration(Duration::from_millis(500)));
    })
    .await;
    let addr = running(&hub).addr;
    let mut stream = stream_from(&hub, loopback(1), &["urn:t"]).await;

    // Bodies promised and never finished, where the hub reads them before
    // checking a token (a QUERY subscription) and where it drops them.
    let query = "QUERY /.well-known/mercure HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 1000\r\n\r\ntopic=urn:t";
    let post = "POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx";
    for (i, request) in [query, post].into_iter().enumerate() {
        let mut slow = connect_from(addr, loopback(2)).await;
        let answer = exchange(&mut slow, request.as_bytes()).await;
        assert_eq!(answer.status, 408, "{}", answer.head);
        assert!(answer.body.contains("--body-timeout"), "{}", answer.body);
        assert_eq!(hits(&hub, Limit::BodyTimeout), i as u64 + 1);
    }

    // The stream is untouched, and a body sent in time is read.
    let id = publish_from(addr, loopback(4), "urn:t", "after").await;
    assert_eq!(stream.next().await.last_event_id, id);
}

#[tokio::test]
async fn oversized_request_heads_are_answered_431() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.max_header_bytes = Some(16 << 10);
        o.limits.max_headers = Some(10);
    })
    .await;
    let addr = running(&hub).addr;
    let mut stream = stream_from(&hub, loopback(1), &["urn:t"]).await;
    let big = format!(
        "GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20 << 10)
    );
    let unfinished = &big[..big.len() - 4];
    let many: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    for request in [big.as_str(), unfinished, many.as_str()] {
        let answer = exchange(
            &mut connect_from(addr, loopback(2)).await,
            request.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 431, "{answer:?}");
    }
    // The next request of a kept-alive connection is read by hyper, which
    // holds its read buffer to the limit (a read may take it up to twice
    // as far, so this head is three times the limit).
    let mut kept = admitted_from(addr, loopback(3)).await.unwrap();
    let huge = big.replace(&"x".repeat(20 << 10), &"x".repeat(48 << 10));
    let answer = exchange(&mut kept, huge.as_bytes()).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(hits(&hub, Limit::Headers), 4);

    let (status, _) = hub
        .publish(&publisher_token(), &[("topic", "urn:t"), ("data", "d")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stream.next().await.data, "d");
}

/// A 0.x token signed with the test secret granting `grant` (`publish`
/// or `subscribe`) on every topic, with the subject `sub` if given.
fn token_of(subject: Option<&str>, grant: &str) -> String {
    let mut claims = json!({ "mercure": { grant: ["*"] } });
    if let Some(subject) = subject {
        claims["sub"] = json!(subject);
    }
    Signer::new(SECRET, jsonwebtoken::Algorithm::HS256)
        .unwrap()
        .sign_json("JWT", &claims)
}

async fn publish_with(http: &reqwest::Client, hub: &TestHub, token: &str) -> reqwest::Response {
    http.post(hub.url())
        .bearer_auth(token)
        .form(&[("topic", "urn:t"), ("data", "d")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn publishing_too_fast_is_answered_429_until_the_bucket_refills() {
    let hub = TestHub::start(|o| {
        o.limits.max_publish_rate = Some(1);
        o.limits.publish_burst = Some(2);
    })
    .await;
    let alice = token_of(Some("alice"), "publish");
    let bob = token_of(Some("bob"), "publish");
    let http = &hub.http;
    for _ in 0..2 {
        assert_eq!(publish_with(http, &hub, &alice).await.status(), 200);
    }
    let refused = publish_with(http, &hub, &alice).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1);
    assert!(refused.text().await.unwrap().contains("--max-publish-rate"));
    // Another subject has its own bucket.
    assert_eq!(publish_with(http, &hub, &bob).await.status(), 200);

    // Without a subject, the client's address is counted.
    let anonymous = token_of(None, "publish");
    let from_1 = client_from(loopback(1));
    for _ in 0..2 {
        assert_eq!(publish_with(&from_1, &hub, &anonymous).await.status(), 200);
    }
    assert_eq!(publish_with(&from_1, &hub, &anonymous).await.status(), 429);
    let from_2 = client_from(loopback(2));
    assert_eq!(publish_with(&from_2, &hub, &anonymous).await.status(), 200);
    assert_eq!(hits(&hub, Limit::PublishRate), 2);

    // Once the bucket refills, alice publishes again.
    let deadline = Instant::now() + WAIT;
    loop {
        let res = publish_with(http, &hub, &alice).await;
        if res.status() == StatusCode::OK {
            break;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "still refused after {WAIT:?}");
        tokio::time::sleep(Duration::from_secs(retry)).await;
    }
}

#[tokio::test]
async fn too_many_topics_in_one_subscription_are_refused_400() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.max_topics = Some(3);
    })
    .await;
    let refused = hub
        .subscribe(&topic_query(&["a", "b", "c", "d"]), &[])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let body = hub
        .http
        .get(format!(
            "{}?{}",
            hub.url(),
            topic_query(&["a", "b", "c", "d"])
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("at most 3") && body.contains("--max-topics"),
        "{body}"
    );
    assert_eq!(hits(&hub, Limit::TopicsPerSubscription), 2);
    let accepted = hub.subscribe(&topic_query(&["a", "b", "c"]), &[]).await;
    assert_eq!(accepted.status, StatusCode::OK);
}

#[tokio::test]
async fn streams_per_subject_are_limited_and_given_back() {
    let hub = TestHub::start(|o| o.limits.max_subscriptions_per_subject = Some(2)).await;
    let subscriber = |subject| token_of(subject, "subscribe");
    let (alice, bob, nobody) = (
        subscriber(Some("alice")),
        subscriber(Some("bob")),
        subscriber(None),
    );
    let open = |token: String| {
        let hub = &hub;
        async move {
            hub.subscribe(
                &topic_query(&["urn:t"]),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
        }
    };
    let mut first = open(alice.clone()).await;
    let second = open(alice.clone()).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    let refused = open(alice.clone()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "10");
    assert_eq!(hits(&hub, Limit::SubscriptionsPerSubject), 1);
    // Other subjects, and tokens without one, are not affected.
    let others = [
        open(bob).await,
        open(nobody.clone()).await,
        open(nobody).await,
    ];
    assert!(others.iter().all(|s| s.status == StatusCode::OK));

    let id = hub.publish_ok(&[("topic", "urn:t"), ("data", "d")]).await;
    assert_eq!(first.next().await.last_event_id, id);

    drop(second);
    let deadline = Instant::now() + WAIT;
    let third = loop {
        let again = open(alice.clone()).await;
        if again.status == StatusCode::OK {
            break again;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop((first, third, others));
    let counts = &running(&hub).hub.limits.subscriptions;
    let deadline = Instant::now() + WAIT;
    while counts.keys() > 0 {
        assert!(Instant::now() < deadline, "subjects still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn streams_end_at_their_maximum_age_and_resume_without_a_gap() {
    let hub = TestHub::start(|o| {
        anonymous(o);
        o.limits.max_stream_duration = Some(HumanDuration(Duration::from_secs(1)));
    })
    .await;
    let first = hub.publish_ok(&[("topic", "urn:t"), ("data", "1")]).await;
    let mut stream = hub
        .subscribe(&topic_query(&["urn:t"]), &[("last-event-id", "earliest")])
        .await;
    assert_eq!(stream.next().await.last_event_id, first);
    stream
        .end_within(WAIT)
        .await
        .expect("the stream ends cleanly at its age");
    assert_eq!(hits(&hub, Limit::StreamDuration), 1);

    let missed = hub.publish_ok(&[("topic", "urn:t"), ("data", "2")]).await;
    let mut resumed = hub
        .subscribe(&topic_query(&["urn:t"]), &[("last-event-id", &first)])
        .await;
    let event = resumed.next().await;
    assert_eq!((event.data.as_str(), event.last_event_id), ("2", missed));
}

#[tokio::test]
async fn at_shutdown_streams_end_with_a_random_retry() {
    let mut hub = TestHub::start(anonymous).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(hub.subscribe(&topic_query(&["urn:t"]), &[]).await);
    }
    hub.shutdown().await;
    for stream in &mut streams {
        stream.end_within(WAIT).await.expect("ended cleanly");
        let retry = stream.retry().expect("a retry before the end");
        assert!((500..=5000).contains(&retry), "{retry}");
    }
}

/// Open files of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Open files of `pid` once two counts 100 ms apart agree.
async fn settled_open_files(pid: u32) -> usize {
    let mut last = open_files(pid);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = open_files(pid);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// `rounds` clients from `from` refused 429 by the per-address limit while
/// one stream from that address holds its only place.
async fn refusals(addr: SocketAddr, from: Ipv4Addr, rounds: usize) {
    for _ in 0..rounds {
        let answer = exchange(&mut connect_from(addr, from).await, b"").await;
        assert_eq!(answer.status, 429, "{answer:?}");
    }
}

#[tokio::test]
async fn refusals_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let hub = ChildHub::start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--max-connections-per-ip",
            "1",
            "--anonymous",
        ],
        &[],
    )
    .await;
    let from = loopback(5);
    let mut held = connect_from(hub.addr, from).await;
    held.write_all(b"GET /.well-known/mercure?topic=x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    held.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Warm up the allocator's pools, then refuse 10 times as many: a leak
    // of even 400 bytes per refused connection would show as 2 MiB.
    refusals(hub.addr, from, 500).await;
    let before = hub.rss_kib();
    refusals(hub.addr, from, 5000).await;
    let after = hub.rss_kib();
    assert!(
        after < before + 2048,
        "RSS grew from {before} KiB to {after} KiB over 5000 refused connections"
    );
    drop(held);
}

#[tokio::test]
async fn refused_and_slow_clients_leave_no_file_open() {
    let dir = tempfile::tempdir().unwrap();
    let hub = ChildHub::start(
        dir.path(),
        &[
            "--store",
            "memory",
            "--max-connections",
            "4",
            "--header-timeout",
            "1s",
        ],
        &[],
    )
    .await;
    let baseline = settled_open_files(hub.pid()).await;

    // Four clients too slow to send their request hold every place.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut tcp = connect_from(hub.addr, loopback(1)).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        slow.push(tcp);
    }
    for _ in 0..20 {
        let answer = exchange(&mut connect_from(hub.addr, loopback(2)).await, b"").await;
        assert_eq!(answer.status, 503, "{answer:?}");
    }
    for tcp in &mut slow {
        assert_closed_by_hub(tcp).await;
    }
    drop(slow);

    let deadline = Instant::now() + WAIT;
    loop {
        let open = open_files(hub.pid());
        if open <= baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} files open, {baseline} before"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_places(hub.addr, loopback(3), 4, 503).await;
}

#[tokio::test]
async fn running_out_of_files_is_logged_once_per_episode() {
    let dir = tempfile::tempdir().unwrap();
    let hub = ChildHub::start(dir.path(), &["--store", "memory"], &[]).await;
    let pid = hub.pid();
    // Room for four more files, then accepting fails.
    let room = settled_open_files(pid).await + 4;
    let limited = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={room}:{room}"))
        .status()
        .expect("running prlimit");
    assert!(limited.success());

    let mut clients = Vec::new();
    for _ in 0..12 {
        clients.push(connect_from(hub.addr, loopback(1)).await);
    }
    hub.wait_stderr("accept failed", WAIT);
    // Let the accept loop fail a few more times, silently.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
    // The episode is over at the first accept a second after the last
    // failure: connect until it is.
    let deadline = Instant::now() + WAIT;
    let stderr = loop {
        hub.wait_ready(StatusCode::OK, WAIT).await;
        let stderr = hub.stderr();
        if stderr.contains("accepting connections again") {
            break stderr;
        }
        assert!(
            Instant::now() < deadline,
            "no end of the episode:\n{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stderr.matches("accept failed").count(), 1, "{stderr}");
    let failed: u64 = stderr
        .split("accepting connections again after ")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of failed accepts in {stderr}"));
    assert!(failed > 1, "{stderr}");
}
