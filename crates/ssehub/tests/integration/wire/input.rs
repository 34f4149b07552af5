//! Hostile input, the same over HTTP/1.1 and HTTP/2 on TLS and over
//! HTTP/3: JSON nested deep or grown huge, numbers out of range, thousands
//! of selectors and matchers, bytes that are not UTF-8, control, line
//! separator and format characters, disguised reserved topics, and line
//! breaks aimed at the SSE framing, in publish bodies, subscribe queries
//! and tokens. Each request is refused with its status and a message
//! naming what is wrong, or served with exactly what was sent; nothing
//! refused is stored; no stream receives a field or an event nobody
//! published; streams open through it all go on.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::https::{
    publish_body, publish_req, subscribe_req, tls_addr, tls_hub_with, Client, Proto, Req, Res,
};
use crate::common::{now_secs, token, topic_query, v1, SECRET};

/// The topic the open streams listen on.
const TOPIC: &str = "urn:wire:input";
/// `--max-topics` of the hub: thousands of selectors may be served.
const MAX_TOPICS: usize = 5000;
/// Deeper than any JSON reader of the hub goes (serde_json stops at 128).
const DEEP: usize = 100_000;

/// A request and what it must be answered: its status, and words the
/// answer's text holds (any case).
struct Case {
    what: String,
    req: Req<'static>,
    status: StatusCode,
    words: Vec<String>,
}

impl Case {
    fn new(what: impl Into<String>, req: Req<'static>, status: StatusCode, words: &[&str]) -> Case {
        Case {
            what: what.into(),
            req,
            status,
            words: words.iter().map(|w| w.to_string()).collect(),
        }
    }
}

/// A JSON publish of `body`, written as is.
fn json_publish(body: impl Into<Bytes>) -> Req<'static> {
    publish_body("application/json", body)
}

/// A form publish of `body`, written as is.
fn form_publish(body: impl Into<Bytes>) -> Req<'static> {
    publish_body("application/x-www-form-urlencoded", body)
}

/// A subscription with `query` (written as is) and `token`.
fn subscription(query: &str, token: &str) -> Req<'static> {
    Req {
        method: Method::GET,
        path_and_query: format!("/.well-known/mercure?{query}"),
        headers: vec![("authorization", format!("Bearer {token}"))],
        body: None,
    }
}

/// `text` in base64url, as a JWT's parts are.
fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// A token of `header` and `payload`, JSON written as is, signed (HS256)
/// with the test secret.
fn signed(header: &str, payload: &str) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// A token of `header` (JSON written as is) with an empty payload and a
/// signature that is not one.
fn forged_header(header: &str) -> String {
    format!("{}.{}.{}", b64(header), b64("{}"), b64("forged"))
}

/// A 0.x token with `payload` written as is.
fn signed_payload(payload: &str) -> String {
    signed(r#"{"alg":"HS256","typ":"JWT"}"#, payload)
}

/// A 0.x subscriber token for [`TOPIC`] with `dates` (JSON members written
/// as is) added.
fn dated(dates: &str) -> String {
    signed_payload(&format!(
        r#"{{"mercure":{{"subscribe":["{TOPIC}"]}},{dates}}}"#
    ))
}

/// `open` nested `depth` deep around `inner`, closed again.
fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    [open.repeat(depth), inner.to_string(), close.repeat(depth)].concat()
}

/// The requests the hub refuses, for a hub whose URL is `hub_url`.
fn refused(hub_url: &str) -> Vec<Case> {
    use StatusCode as S;
    let now = now_secs();
    let subscriber = token(&[], &["*"], None);
    let texts: Vec<String> = (0..300).map(|i| format!("urn:m/{i}")).collect();
    let many_matchers: Vec<(&str, &str)> = texts.iter().map(|t| ("exact", t.as_str())).collect();
    let mut cases = vec![
        Case::new(
            "JSON data nested deep",
            json_publish(format!(
                r#"{{"topic":"{TOPIC}","data":{}}}"#,
                nested("[", "", "]", DEEP)
            )),
            S::BAD_REQUEST,
            &["invalid JSON", "recursion limit"],
        ),
        Case::new(
            "a JSON batch nested deep",
            json_publish(nested("[", "", "]", DEEP)),
            S::BAD_REQUEST,
            &["invalid JSON", "recursion limit"],
        ),
        Case::new(
            "a JSON boolean given as a number",
            json_publish(format!(r#"{{"topic":"{TOPIC}","private":1}}"#)),
            S::BAD_REQUEST,
            &["invalid JSON", "boolean"],
        ),
        Case::new(
            "a form field of bytes that are not UTF-8",
            form_publish(&b"topic=urn%3Awire%3Ainput&data=\xff\xfe"[..]),
            S::BAD_REQUEST,
            &["not UTF-8"],
        ),
        Case::new(
            "a JSON string of bytes that are not UTF-8",
            json_publish(&b"{\"topic\":\"urn:wire:input\",\"data\":\"\xff\"}"[..]),
            S::BAD_REQUEST,
            &["invalid JSON"],
        ),
        Case::new(
            "a lone surrogate in a JSON id",
            json_publish(format!(r#"{{"topic":"{TOPIC}","id":"a\ud800"}}"#)),
            S::BAD_REQUEST,
            &["invalid JSON"],
        ),
        Case::new(
            "5,001 selectors",
            subscription(
                &(0..=MAX_TOPICS)
                    .map(|i| format!("topic={i}"))
                    .collect::<Vec<_>>()
                    .join("&"),
                &subscriber,
            ),
            S::BAD_REQUEST,
            &["too many topics", "5000"],
        ),
        Case::new(
            "a 1.0 token with 300 matchers",
            subscription(
                &format!("match={TOPIC}"),
                &v1::subscriber(hub_url, &many_matchers),
            ),
            S::UNAUTHORIZED,
            &["at most 256"],
        ),
        Case::new(
            "token claims nested deep",
            subscription(
                &topic_query(&[TOPIC]),
                &signed_payload(&format!(r#"{{"x":{}}}"#, nested("[", "", "]", 10_000))),
            ),
            S::UNAUTHORIZED,
            &["invalid token"],
        ),
        Case::new(
            "a forged token whose header nests a key deep",
            subscription(
                &topic_query(&[TOPIC]),
                &forged_header(&format!(
                    r#"{{"alg":"HS256","jwk":{}}}"#,
                    nested(r#"{"x":"#, "1", "}", 1000)
                )),
            ),
            S::UNAUTHORIZED,
            &["invalid token"],
        ),
        Case::new(
            "a token with a carriage return in the query",
            Req {
                headers: vec![],
                ..subscription(
                    &format!("{}&authorization=a%0Db", topic_query(&[TOPIC])),
                    "",
                )
            },
            S::UNAUTHORIZED,
            &["invalid token"],
        ),
        Case::new(
            "a publisher token expired a fraction of a second ago",
            Req {
                headers: vec![(
                    "authorization",
                    format!(
                        "Bearer {}",
                        signed_payload(&format!(
                            r#"{{"mercure":{{"publish":["*"]}},"exp":{}.5}}"#,
                            now - 60
                        ))
                    ),
                )],
                ..publish_req(&[TOPIC], &[("data", "late")])
            },
            S::UNAUTHORIZED,
            &["expired"],
        ),
    ];
    for (dates, words) in [
        (format!(r#""nbf":{}.5"#, now + 3600), "invalid token"),
        (r#""nbf":1e300"#.to_string(), "nbf"),
        (r#""nbf":"soon""#.to_string(), "nbf"),
        (r#""exp":-1"#.to_string(), "exp"),
        (r#""exp":"never""#.to_string(), "exp"),
    ] {
        cases.push(Case::new(
            format!("a token with {dates}"),
            subscription(&topic_query(&[TOPIC]), &dated(&dates)),
            S::UNAUTHORIZED,
            &[words],
        ));
    }
    for retry in [
        "99999999999999999999",
        "-1",
        "1.5",
        "1e3",
        " 5",
        "0x10",
        "5\nid: x",
    ] {
        cases.push(Case::new(
            format!("a form retry of {retry:?}"),
            publish_req(&[TOPIC], &[("retry", retry)]),
            S::BAD_REQUEST,
            &["retry"],
        ));
    }
    for retry in ["99999999999999999999", "-1", "1.5", "1e3"] {
        cases.push(Case::new(
            format!("a JSON retry of {retry}"),
            json_publish(format!(r#"{{"topic":"{TOPIC}","retry":{retry}}}"#)),
            S::BAD_REQUEST,
            &["retry"],
        ));
    }
    for (c, name) in [
        ('\0', "U+0000"),
        ('\r', "U+000D"),
        ('\n', "U+000A"),
        ('\u{85}', "U+0085"),
        ('\u{2028}', "U+2028"),
        ('\u{2029}', "U+2029"),
        ('\u{200b}', "U+200B"),
        ('\u{202e}', "U+202E"),
    ] {
        let value = format!("a{c}id: forged");
        for field in ["topic", "id", "type"] {
            let quoted = format!("\"{field}\"");
            let mut json = json!({ "topic": TOPIC });
            json[field] = Value::from(value.as_str());
            cases.push(Case::new(
                format!("{name} in a JSON {field}"),
                json_publish(json.to_string()),
                S::BAD_REQUEST,
                &[&quoted, name],
            ));
            let topic = if field == "topic" { &value } else { TOPIC };
            let mut form = vec![("topic", topic)];
            if field != "topic" {
                form.push((field, &value));
            }
            cases.push(Case::new(
                format!("{name} in a form {field}"),
                publish_req(&[], &form),
                S::BAD_REQUEST,
                &[&quoted, name],
            ));
        }
        for matcher in ["topic", "match", "match_urlpattern"] {
            let query = format!("{matcher}=urn%3Aa{}&ssehub_matched=1", encode(c));
            cases.push(Case::new(
                format!("{name} in a subscription's {matcher}"),
                subscription(&query, &subscriber),
                S::BAD_REQUEST,
                &[matcher, name],
            ));
        }
    }
    for topic in [
        "/%2E%77ell-known/mercure/subscriptions/x",
        "https://localhost/.well-known/%6d%65rcure/subscriptions/x",
        "https://localhost/a/%2e%2E/.well-known/mercure",
        "https://localhost/.well-known\\mercure\\subscriptions\\x",
        "/.well-known\\mercure",
        "http:localhost/.well-known/mercure/subscriptions/x",
    ] {
        cases.push(Case::new(
            format!("the reserved topic {topic:?}"),
            publish_req(&[TOPIC, topic], &[("data", "spoof")]),
            S::BAD_REQUEST,
            &["reserved"],
        ));
    }
    cases
}

/// `c` percent-encoded as UTF-8.
fn encode(c: char) -> String {
    let mut buf = [0; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

/// Data published as is: line breaks of every kind aimed at the framing,
/// separators SSE does not break lines at, a megabyte less a little, and
/// JSON made text; with the data each must reach subscribers as.
fn accepted_data() -> Vec<(Req<'static>, String)> {
    let mut out: Vec<(Req<'static>, String)> = [
        "a\n\nid: forged\nevent: evil\nretry: 1\ndata: b",
        "x\r\nid: forged\r\n\r\nevent: evil",
        "x\rretry: 1\r\ry",
        ": a comment\nid: forged",
        "a\u{2028}b\u{2029}c\u{85}d\0e",
        "",
    ]
    .into_iter()
    .map(|data| {
        let seen = data.replace("\r\n", "\n").replace('\r', "\n");
        (publish_req(&[TOPIC], &[("data", data)]), seen)
    })
    .collect();
    let big = "y".repeat(900 << 10);
    out.push((publish_req(&[TOPIC], &[("data", &big)]), big));
    let wide = Value::from(vec![0; 100_000]);
    let deep: Value = serde_json::from_str(&nested("[", "", "]", 100)).unwrap();
    for data in [wide, deep] {
        let body = json!({ "topic": TOPIC, "data": data });
        out.push((json_publish(body.to_string()), data.to_string()));
    }
    out
}

/// The streams the hub serves although they ask for much: thousands of
/// selectors, dates out of range, thousands of matchers in a token. Each
/// token grants [`TOPIC`] last.
fn served_streams() -> Vec<(String, Req<'static>)> {
    let grant_last = token(&[], &[TOPIC], None);
    let mut topics: Vec<String> = (1..MAX_TOPICS).map(|i| i.to_string()).collect();
    topics.push(TOPIC.to_string());
    let many_topics = topics.iter().map(String::as_str).collect::<Vec<_>>();
    let matchers: Vec<String> = (0..4000)
        .map(|i| format!("p/{i}"))
        .chain([TOPIC.to_string()])
        .collect();
    let matchers = serde_json::to_string(&matchers).unwrap();
    let mut out = vec![
        (
            "5,000 selectors".to_string(),
            subscription(&topic_query(&many_topics), &grant_last),
        ),
        (
            "a token with 4,001 matchers".to_string(),
            subscription(
                &topic_query(&[TOPIC]),
                &signed_payload(&format!(r#"{{"mercure":{{"subscribe":{matchers}}}}}"#)),
            ),
        ),
    ];
    for dates in [
        r#""exp":1e300"#,
        r#""exp":1e20"#,
        r#""iat":1e300,"exp":1e300"#,
        r#""iat":-1"#,
        r#""nbf":-1.5"#,
    ] {
        out.push((
            format!("a token with {dates}"),
            subscription(&topic_query(&[TOPIC]), &dated(dates)),
        ));
    }
    out
}

/// Reads `res`'s body whole as text.
async fn text(res: Res) -> (StatusCode, String) {
    (res.status, res.text().await)
}

async fn hostile_input(proto: Proto) {
    let hub = tls_hub_with(|o| o.limits.max_topics = Some(MAX_TOPICS)).await;
    let hub_url = format!(
        "https://localhost:{}/.well-known/mercure",
        tls_addr(&hub).port()
    );
    let mut client = Client::new(proto, &hub).await;
    let everything = || Some(token(&[], &["*"], None));
    let mut open = client
        .send(subscribe_req(&[TOPIC], everything(), None))
        .await;
    assert_eq!(open.status, StatusCode::OK);

    for case in refused(&hub_url) {
        let res = client.send(case.req).await;
        assert_eq!(res.status, case.status, "{proto:?}, {}", case.what);
        let body = res.text().await;
        for word in &case.words {
            assert!(
                body.to_lowercase().contains(&word.to_lowercase()),
                "{proto:?}, {}: {body:?} should mention {word:?}",
                case.what
            );
        }
    }

    let mut served = Vec::new();
    for (what, req) in served_streams() {
        let res = client.send(req).await;
        assert_eq!(res.status, StatusCode::OK, "{proto:?}, {what}");
        served.push((what, res));
    }

    let mut stored = Vec::new();
    for (req, seen) in accepted_data() {
        let (status, id) = text(client.send(req).await).await;
        assert_eq!(status, StatusCode::OK, "{proto:?}: {id}");
        let event = open.next_event().await;
        assert_eq!(
            (event.event_type.as_str(), event.last_event_id.as_str()),
            ("message", id.as_str()),
            "{proto:?}: one event, with no field but its own"
        );
        assert!(event.data == seen, "{proto:?}: data as sent, {id}");
        stored.push(id);
    }
    // A private update: only streams whose token grants it receive it.
    let marker = client
        .send(publish_req(
            &[TOPIC],
            &[("data", "marker"), ("private", "on")],
        ))
        .await
        .text()
        .await;
    stored.push(marker.clone());
    assert_eq!(open.next_event().await.last_event_id, marker);
    assert_eq!(open.retry(), None, "{proto:?}: no retry forged");
    for (what, stream) in &mut served {
        let mut received = Vec::new();
        while received.len() < stored.len() {
            received.push(stream.next_event().await.last_event_id);
        }
        assert_eq!(received, stored, "{proto:?}, {what}");
    }
    // Decoded once, as every reader does: a topic of its own.
    let double = "/.well-known/%256Dercure/subscriptions/x";
    let (status, id) = text(client.send(publish_req(&[double], &[])).await).await;
    assert_eq!(status, StatusCode::OK, "{proto:?}: {id}");
    stored.push(id);
    // Nothing refused was stored.
    let mut replay = client
        .send(subscribe_req(&["*"], everything(), Some("earliest")))
        .await;
    let mut replayed = Vec::new();
    while replayed.len() < stored.len() {
        replayed.push(replay.next_event().await.last_event_id);
    }
    assert_eq!(replayed, stored, "{proto:?}");
}

#[tokio::test]
async fn hostile_input_over_http1_on_tls() {
    hostile_input(Proto::H1).await;
}

#[tokio::test]
async fn hostile_input_over_http2() {
    hostile_input(Proto::H2).await;
}

#[tokio::test]
async fn hostile_input_over_http3() {
    hostile_input(Proto::H3).await;
}

#[tokio::test]
async fn line_breaks_in_a_subscription_payload_stay_inside_its_json() {
    let hub = crate::common::TestHub::start(|o| o.stream.subscriptions = Some(true)).await;
    let events = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let watching = format!("{}&ssehub_matched=1", topic_query(&[events]));
    let bearer = format!("Bearer {}", token(&[], &[events], None));
    let mut watcher = hub
        .subscribe(&watching, &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(watcher.next().await.event_type, "message", "its own");

    let note = "a\n\nevent: forged\nid: forged\r\rretry: 1\r\ndata: x\u{2028}y";
    let payload = json!({ "mercure": { "subscribe": [TOPIC], "payload": { "note": note } } });
    let bearer = format!("Bearer {}", signed_payload(&payload.to_string()));
    let subscriber = hub
        .subscribe(
            &topic_query(&[TOPIC]),
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(subscriber.status, StatusCode::OK);
    drop(subscriber);
    // One event as the subscription starts, one as it ends, each with its
    // own fields only and the payload whole inside its JSON.
    for active in [true, false] {
        let event = watcher.next().await;
        assert_eq!(event.event_type, "message");
        assert!(event.last_event_id.starts_with("urn:uuid:"), "{event:?}");
        let doc: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(
            (&doc["active"], &doc["payload"]["note"]),
            (&json!(active), &json!(note))
        );
    }
    assert_eq!(watcher.retry(), None, "no retry forged");
}
