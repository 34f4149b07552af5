//! Subscribing over HTTP: the request read in either generation (0.x
//! `topic=`, 1.0 `match=`, `match_exact=`, `match_urlpattern=`; the cursor,
//! `since=` and `rewind=`), from the query string and, with the `QUERY`
//! method, a form body too; the token checked; and the answer streamed by
//! [`crate::subscribe`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::error::ApiError;
use super::identity::hub_url;
use super::limits::{check_topics, hold_subscription, holding};
use super::request::Query;
use super::token::{authenticate, grants, Role};
use super::{read_body, QUERY_METHOD};
use crate::fanout::{Registration, Subscription};
use crate::hub::Hub;
use crate::metrics::Protocol;
use crate::proto::claims::{Claims, SelectorSet};
use crate::proto::compress::{Coding, Encoder};
use crate::proto::generation::Generation;
use crate::proto::selector::{MatchType, Matcher};
use crate::proto::text::{describe, forbidden_char};
use crate::subscribe::{self, Framing, Peer, Resume, Start};

/// Query parameters carrying the cursor, the first present wins; the
/// `Last-Event-ID` header (what `EventSource` sends when it reconnects) wins
/// over all of them. `lastEventID`: Mercure 0.x; `Last-Event-ID`: Symfony
/// Mercure's Twig helper; `lastEventId`: the event-source-polyfill's
/// default; `last_event_id`: Mercure 1.0. With `QUERY`, the query string's
/// come before the body's.
const CURSOR_PARAMETERS: [&str; 4] = [
    "lastEventID",
    "Last-Event-ID",
    "lastEventId",
    "last_event_id",
];

/// The hub's own subscribe parameter asking for the updates appended since
/// a time (RFC 3339 or Unix milliseconds), in both generations; a cursor
/// wins over it.
const SINCE_PARAMETER: &str = "since";

/// The hub's own subscribe parameter asking for the last N updates the
/// stream receives, in both generations; a cursor wins over it.
const REWIND_PARAMETER: &str = "rewind";

/// The hub's own subscribe parameter asking that each event name the
/// stream's matchers it matched (`matched:` lines), outside the `match`
/// namespace the 1.0 validation reserves.
const MATCHED_PARAMETER: &str = "ssehub_matched";

/// What a subscribe request asks for.
struct Wanted {
    /// Its matchers, in order.
    matchers: Vec<Matcher>,
    /// 1.0 when it has a `match` parameter, else 0.x.
    generation: Generation,
}

/// Handles a subscribe request (GET, HEAD or QUERY).
pub(super) async fn subscribe(
    State(hub): State<Arc<Hub>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let raw = parts.uri.query().unwrap_or_default().as_bytes();
    let mut query = Query::parse_strict(raw).map_err(ApiError::BadRequest)?;
    if parts.method.as_str() == QUERY_METHOD {
        let body = read_body(&hub, &parts.headers, body).await?;
        query.extend(Query::parse_strict(&body).map_err(ApiError::BadRequest)?);
    }
    let wanted = read_matchers(&hub, &query)?;
    let framing = read_framing(&query)?;
    let base = hub_url(&hub, &parts)?;
    let token = authenticate(
        &hub,
        &parts.headers,
        &query,
        &base,
        Role::Subscriber,
        Some(wanted.generation),
    )
    .await?;
    let claims = match token {
        Some((claims, _)) => claims,
        None if hub.config.access.anonymous => Claims::default(),
        None => {
            return Err(ApiError::MissingToken(
                "subscribing requires a token (Authorization header or cookie), or a hub started with --anonymous".into(),
            ))
        }
    };
    let subscribed = SelectorSet::compile(&hub.selectors, &wanted.matchers, &base)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let allowed = grants(&hub, &claims.subscribe, &base)?;

    let mut res = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no");
    let coding = negotiate(&hub, &parts.headers, framing);
    if hub.config.stream.compression {
        res = res.header(header::VARY, "accept-encoding");
    }
    if let Some(coding) = coding {
        res = res.header(header::CONTENT_ENCODING, coding.name());
    }
    if parts.method == Method::HEAD {
        return Ok(res.body(Body::empty()).expect("valid response"));
    }
    let held = hold_subscription(&hub, &claims)?;

    let cursor = parts
        .headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| {
            CURSOR_PARAMETERS
                .iter()
                .find_map(|name| query.first(name))
                .map(String::from)
        });
    let resume = Resume::read(
        cursor,
        query.first(SINCE_PARAMETER),
        query.first(REWIND_PARAMETER),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let subscriptions = wanted
        .matchers
        .into_iter()
        .map(|matcher| Subscription {
            payload: claims.payload_for(&matcher, &hub.selectors, &base),
            matcher,
        })
        .collect();
    let registration = Registration {
        subscriptions,
        subscribed,
        allowed,
    };

    // Everything that can fail happens before registering, so a refused
    // request never leaves a subscriber behind.
    let start = Start::resolve(hub.log.as_ref(), resume, |e| registration.wants(e)).await?;
    if let Start::After { reported, .. } = &start {
        let value = HeaderValue::from_bytes(reported.as_bytes()).map_err(|_| {
            ApiError::BadRequest("invalid Last-Event-ID: control characters".into())
        })?;
        res = res
            .header("last-event-id", value.clone())
            .header("mercure-last-event-id", value);
    }
    let peer = Peer {
        protocol: match parts.version {
            Version::HTTP_2 => Protocol::H2,
            Version::HTTP_3 => Protocol::H3,
            _ => Protocol::H1,
        },
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    };
    let framing = match framing {
        Framing::Shared(_) => Framing::Shared(coding.map(Encoder::new)),
        Framing::Matched => Framing::Matched,
    };
    let body = subscribe::subscribe(&hub, registration, claims.exp, &start, peer, framing)?;
    Ok(res.body(holding(body, held)).expect("valid response"))
}

/// The coding the stream is compressed with: none when compression is off,
/// when the client names no coding the hub has, or for a stream whose
/// events carry its own `matched:` lines (only shared bytes are compressed).
fn negotiate(hub: &Hub, headers: &HeaderMap, framing: Framing) -> Option<Coding> {
    if !hub.config.stream.compression || framing == Framing::Matched {
        return None;
    }
    Coding::negotiate(
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

/// How the stream writes events: `ssehub_matched=1` adds `matched:` lines;
/// another value is refused, so a typo is not silently ignored.
fn read_framing(query: &Query) -> Result<Framing, ApiError> {
    match query.first(MATCHED_PARAMETER) {
        None => Ok(Framing::Shared(None)),
        Some("1") => Ok(Framing::Matched),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid {MATCHED_PARAMETER} {other:?}: the only value is 1"
        ))),
    }
}

/// The matchers of the request. Every name in the `match` namespace (any
/// case) must be a matcher type the hub knows; values may not carry control
/// or format characters; each generation must be accepted by the hub.
fn read_matchers(hub: &Hub, query: &Query) -> Result<Wanted, ApiError> {
    let mut matchers = Vec::new();
    for (name, value) in &query.0 {
        let kind = match name.as_str() {
            "topic" => MatchType::Selector,
            "match" | "match_exact" => MatchType::Exact,
            "match_urlpattern" => MatchType::UrlPattern,
            other if other.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("match")) => {
                return Err(ApiError::BadRequest(format!(
                    "unknown matcher parameter {other:?}: use match, match_exact or match_urlpattern"
                )))
            }
            _ => continue,
        };
        if let Some(c) = forbidden_char(value) {
            return Err(ApiError::BadRequest(format!(
                "invalid {name} {value:?}: it contains {}, a control, line separator or invisible format character",
                describe(c)
            )));
        }
        matchers.push(Matcher::new(kind, value.clone()));
    }
    let has = |legacy: bool| {
        matchers
            .iter()
            .any(|m| (m.kind == MatchType::Selector) == legacy)
    };
    let protocol = hub.config.protocol.protocol;
    for (generation, what) in [
        (Generation::Legacy, "the topic parameter"),
        (Generation::V1, "the match parameter"),
    ] {
        if has(generation == Generation::Legacy) && !protocol.allows(generation) {
            return Err(ApiError::BadRequest(protocol.refuse(generation, what)));
        }
    }
    if matchers.is_empty() {
        return Err(ApiError::BadRequest(
            "no topic to subscribe to: add match=TOPIC or match_urlpattern=PATTERN (Mercure 1.0), or topic=SELECTOR (0.x)".into(),
        ));
    }
    check_topics(hub, matchers.len())?;
    let generation = if has(false) {
        Generation::V1
    } else {
        Generation::Legacy
    };
    Ok(Wanted {
        matchers,
        generation,
    })
}
