//! `POST /.well-known/mercure`: authorize, validate, append, answer the id;
//! each request counted by status, timed, and logged in one line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::identity::hub_url;
use super::limits::check_publish_rate;
use super::read_body;
use super::request::Query;
use super::token::{authenticate, grants, Role, TokenSource};
use super::HUB_PATH;
use crate::hub::Hub;
use crate::metrics::{PublishStatus, Stage};
use crate::proto::claims::{can_publish, Claims, SelectorSet};
use crate::proto::event::Event;
use crate::proto::generation::Generation;
use crate::proto::update::{Update, UpdateRequest};

/// Handles a publish request: stores it, then counts, times and logs it.
pub(super) async fn publish(State(hub): State<Arc<Hub>>, req: Request) -> Response {
    let received = Instant::now();
    let stored = store(&hub, req, received).await;
    let latency = received.elapsed();
    let (response, events) = match stored {
        Ok(published) => (published.response(), Some(published.events)),
        Err(e) => (e.into_response(), None),
    };
    let status = response.status().as_u16();
    hub.metrics.publishes.get(PublishStatus::of(status)).inc();
    match events {
        Some(events) => {
            hub.metrics
                .publish_duration
                .get(Stage::Durable)
                .observe(latency);
            log_published(&events, latency);
        }
        None => tracing::info!(
            target: "ssehub::publish",
            status,
            latency_ms = millis(latency),
            "publish refused"
        ),
    }
    response
}

/// What a stored publish request answers.
struct Published {
    events: Vec<Arc<Event>>,
    /// A JSON array was sent: the answer is the array of ids.
    batch: bool,
}

impl Published {
    fn response(&self) -> Response {
        let ids: Vec<&str> = self.events.iter().map(|e| e.update.id.as_str()).collect();
        if self.batch {
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&ids).expect("strings serialize"),
            )
                .into_response()
        } else {
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                ids[0].to_string(),
            )
                .into_response()
        }
    }
}

/// The one line logged per stored publish: its first update's id, how
/// many updates and topics, and how long it took.
fn log_published(events: &[Arc<Event>], latency: Duration) {
    let topics: usize = events.iter().map(|e| e.update.topics.len()).sum();
    tracing::info!(
        target: "ssehub::publish",
        status = 200,
        id = events.first().map_or("", |e| e.update.id.as_str()),
        updates = events.len(),
        topics,
        latency_ms = millis(latency),
        "published"
    );
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    let micros = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    f64::from(micros) / 1000.0
}

/// Authorizes, validates and appends the request's updates; the last one
/// carries `received`, which ends the publish latency when it is dispatched.
async fn store(hub: &Hub, req: Request, received: Instant) -> Result<Published, ApiError> {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let base = hub_url(hub, &parts)?;
    let token = authenticate(hub, &parts.headers, &query, &base, Role::Publisher, None).await?;
    let Some((claims, source)) = token else {
        return Err(ApiError::MissingToken(
            "publishing requires a token: send \"Authorization: Bearer <JWT>\" (see `ssehub token`)".into(),
        ));
    };
    check_publish_rate(hub, &claims, &parts.extensions)?;
    if source == TokenSource::Cookie {
        check_origin(&parts.headers, &hub.config.access.publish_origins)?;
    }
    let publish = grants(hub, &claims.publish, &base)?;

    let body = read_body(hub, &parts.headers, body).await?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (requests, batch) = parse_updates(content_type, &body)?;
    let mut updates = requests
        .into_iter()
        .map(|r| authorize(&publish, &claims, &base, r.validate(|| hub.log.new_id())?))
        .collect::<Result<Vec<Update>, ApiError>>()?;
    if let Some(last) = updates.last_mut() {
        last.received = Some(received);
    }
    let events = hub.publish(updates).await?;
    Ok(Published { events, batch })
}

/// A cookie is sent by the browser on its own, so a cookie-authenticated
/// publish must come from a page of an allowed origin (CSRF protection).
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            let (scheme, rest) = referer.split_once("://")?;
            let host = rest.split(['/', '?', '#']).next()?;
            Some(format!("{scheme}://{host}"))
        });
    match origin {
        Some(o) if allowed.iter().any(|a| a == "*" || *a == o) => Ok(()),
        Some(o) => Err(ApiError::Forbidden(format!(
            "origin {o:?} may not publish with a cookie (allow it with --publish-origins)"
        ))),
        None => Err(ApiError::Forbidden(
            "a publish authenticated by cookie must carry an Origin or Referer header".into(),
        )),
    }
}

/// Refuses topics reserved for the hub (whatever the token) and topics the
/// token may not publish to; `base` is the hub URL.
fn authorize(
    publish: &SelectorSet,
    claims: &Claims,
    base: &url::Url,
    update: Update,
) -> Result<Update, ApiError> {
    if let Some(t) = update.topics.iter().find(|t| is_reserved(t, base)) {
        return Err(ApiError::BadRequest(format!(
            "topic {t:?} is reserved for the hub: topics under {HUB_PATH} are its own"
        )));
    }
    if !can_publish(publish, &update.topics) {
        let grant = match claims.generation {
            Some(Generation::V1) => "authorization_details do not grant \"publish\"",
            _ => "mercure.publish claim does not cover",
        };
        return Err(ApiError::InsufficientScope(format!(
            "the token's {grant} on every topic of the update"
        )));
    }
    Ok(update)
}

/// Whether `topic` names something under the hub's path, read in both ways
/// a subscriber's matcher may read it, and reserved if either says so:
///
/// - as text, normalised as a client would: resolved against the hub URL
///   (a relative topic), query and fragment cut, percent-decoded, and dot
///   segments removed; so neither `/.well-known/%6Dercure/x` nor
///   `/a/../.well-known/mercure/x` gets past;
/// - as a URL resolved against the hub URL `base` by the WHATWG parser, as
///   URL patterns read topics, then percent-decoded with its dot segments
///   removed: there `\` is `/` (`https://h/.well-known\mercure\x`), and
///   `http:h/path` names the host `h` when the hub's scheme is not `http`.
///
/// The host is not compared: every host's path is reserved.
fn is_reserved(topic: &str, base: &url::Url) -> bool {
    under_hub_path(&textual_path(topic))
        || base.join(topic).is_ok_and(|url| under_hub_path(url.path()))
}

/// The absolute path `topic` names read as text: relative to the hub
/// URL's directory, `/.well-known/`, when it has neither scheme nor `/`.
fn textual_path(topic: &str) -> String {
    let path = topic.split(['?', '#']).next().unwrap_or_default();
    let path = match path.split_once("://") {
        Some((_, authority_and_path)) => authority_and_path
            .find('/')
            .map_or("/", |i| &authority_and_path[i..]),
        None => path,
    };
    match path.strip_prefix("//") {
        // Scheme-relative: `//host/path`.
        Some(rest) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None if path.starts_with('/') => path.to_string(),
        // Relative to the hub URL's directory, `/.well-known/`.
        None => format!("/.well-known/{path}"),
    }
}

/// Whether an absolute `path`, percent-decoded and without dot segments,
/// is the hub's path or under it.
fn under_hub_path(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let normal = remove_dot_segments(&decoded);
    normal == HUB_PATH
        || normal
            .strip_prefix(HUB_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// RFC 3986 section 5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    kept.pop();
                }
                if last {
                    kept.push("");
                }
            }
            other => kept.push(other),
        }
    }
    format!("/{}", kept.join("/"))
}

/// Decodes a publish request's body, sent with `content_type` (empty when
/// the request has none), into its update requests, not yet validated
/// ([`UpdateRequest::validate`]): one for a form or a JSON object, one per
/// element of a JSON array, which the `bool` tells (the answer is then the
/// array of ids). A malformed body is `BadRequest`, a type other than a form
/// or JSON `UnsupportedMediaType`.
pub fn parse_updates(
    content_type: &str,
    body: &[u8],
) -> Result<(Vec<UpdateRequest>, bool), ApiError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" | "" => Ok((vec![parse_form(body)?], false)),
        "application/json" => parse_json(body),
        _ => Err(ApiError::UnsupportedMediaType(content_type.to_string())),
    }
}

/// A form body's update; a name or value that is not UTF-8 once
/// percent-decoded is refused (400), never stored with U+FFFD in its place.
fn parse_form(body: &[u8]) -> Result<UpdateRequest, ApiError> {
    let mut r = UpdateRequest::default();
    for (key, value) in Query::parse_strict(body).map_err(ApiError::BadRequest)?.0 {
        match key.as_str() {
            "topic" => r.topics.push(value),
            "data" => r.data = value,
            "private" => r.private = true,
            "id" => r.id = Some(value),
            "type" => r.event_type = Some(value),
            "retry" => r.retry = Some(value),
            _ => {}
        }
    }
    Ok(r)
}

/// One update in a JSON body; `topic` may be a string or a list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpdate {
    topic: OneOrMany,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    private: bool,
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    retry: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<JsonUpdate> for UpdateRequest {
    fn from(j: JsonUpdate) -> Self {
        UpdateRequest {
            topics: match j.topic {
                OneOrMany::One(t) => vec![t],
                OneOrMany::Many(t) => t,
            },
            // A non-string `data` is sent as its JSON text.
            data: match j.data {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
            },
            private: j.private,
            id: j.id,
            event_type: j.event_type,
            retry: j.retry.map(|r| match r {
                Value::String(s) => s,
                other => other.to_string(),
            }),
        }
    }
}

fn parse_json(body: &[u8]) -> Result<(Vec<UpdateRequest>, bool), ApiError> {
    let bad = |e: serde_json::Error| ApiError::BadRequest(format!("invalid JSON update: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(bad)?;
    match value {
        Value::Array(items) if items.is_empty() => Err(ApiError::BadRequest(
            "empty JSON array: nothing to publish".into(),
        )),
        Value::Array(items) => {
            let updates = items
                .into_iter()
                .map(|v| serde_json::from_value::<JsonUpdate>(v).map(UpdateRequest::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            Ok((updates, true))
        }
        v => Ok((
            vec![serde_json::from_value::<JsonUpdate>(v).map_err(bad)?.into()],
            false,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_topics() {
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        let is_reserved = |topic| is_reserved(topic, &base);
        assert!(is_reserved("/.well-known/mercure/subscriptions/a/b"));
        assert!(is_reserved("https://hub.example/.well-known/mercure"));
        assert!(!is_reserved("https://hub.example/.well-known/mercurex"));
        assert!(!is_reserved("https://example.com/books/1"));
        for disguised in [
            "/.well-known/%6Dercure/subscriptions/x",
            "/.well-known/mercure%2Fsubscriptions%2Fx",
            "https://hub.example/a/../.well-known/mercure/x",
            "/.well-known/./mercure",
            "https://hub.example/.well-known/mercure/x?y#z",
            "//hub.example/.well-known/mercure/subscriptions",
            "mercure/subscriptions/x",
            "./mercure",
            "../.well-known/mercure/x",
            // Read as WHATWG URLs, as URL patterns read topics.
            "https://hub.example/.well-known\\mercure\\subscriptions\\x",
            "/.well-known\\mercure",
            "http:hub.example/.well-known/mercure/x",
            "/%2E%77ell-known/mercure/subscriptions/x",
            "https://hub.example/x/%2e%2E/.well-known/mercure",
        ] {
            assert!(is_reserved(disguised), "{disguised}");
        }
        for other in [
            "/.well-known/mercurex/y",
            "/.well-known/mercure-sub",
            "https://hub.example/books/.well-known/mercure/../x",
            "urn:uuid:0190a3f0-0000-7000-8000-000000000000",
            "books/1",
            // Decoded once, as every reader does: `%25` is a `%`.
            "/.well-known/%256Dercure/subscriptions/x",
            "urn:.well-known/mercure",
        ] {
            assert!(!is_reserved(other), "{other}");
        }
    }

    #[test]
    fn json_forms() {
        let (one, batch) = parse_json(br#"{"topic":"a","data":{"x":1},"retry":5}"#).unwrap();
        assert!(!batch);
        assert_eq!(one[0].data, r#"{"x":1}"#);
        assert_eq!(one[0].retry.as_deref(), Some("5"));
        let (many, batch) =
            parse_json(br#"[{"topic":["a","b"]},{"topic":"c","private":true}]"#).unwrap();
        assert!(batch);
        assert_eq!(many[0].topics, ["a", "b"]);
        assert!(many[1].private);
        assert!(parse_json(br#"{"topik":"a"}"#).is_err());
        assert!(parse_json(b"[]").is_err());
    }
}
