//! `GET /.well-known/mercure`: the subscribe request read from HTTP (topics,
//! token, cursor) and answered with the stream of [`crate::subscribe`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

use super::error::ApiError;
use super::request::{find_token, Query};
use crate::hub::Hub;
use crate::proto::claims::Claims;
use crate::subscribe::{self, Start};

/// Most topic selectors one subscription may carry.
pub const MAX_TOPICS: usize = 1000;

/// Query parameters carrying the cursor, the first present wins; the
/// `Last-Event-ID` header (what `EventSource` sends when it reconnects) wins
/// over all of them. `lastEventID`: Mercure 0.x; `Last-Event-ID`: Symfony
/// Mercure's Twig helper; `lastEventId`: the event-source-polyfill's
/// default; `last_event_id`: Mercure 1.0.
const CURSOR_PARAMETERS: [&str; 4] = [
    "lastEventID",
    "Last-Event-ID",
    "lastEventId",
    "last_event_id",
];

/// Handles a subscribe request (GET or HEAD).
pub(super) async fn subscribe(
    State(hub): State<Arc<Hub>>,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(req.uri().query());
    let topics: Vec<String> = query.all("topic").map(String::from).collect();
    if topics.is_empty() {
        return Err(ApiError::BadRequest(
            "missing \"topic\" query parameter: subscribe to at least one topic selector".into(),
        ));
    }
    if topics.len() > MAX_TOPICS {
        return Err(ApiError::BadRequest(format!(
            "too many topics: at most {MAX_TOPICS} per subscription"
        )));
    }
    let claims = authenticate(&hub, req.headers(), &query).await?;

    let mut res = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no");
    if req.method() == Method::HEAD {
        return Ok(res.body(Body::empty()).expect("valid response"));
    }

    let cursor = req
        .headers()
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| {
            CURSOR_PARAMETERS
                .iter()
                .find_map(|name| query.first(name))
                .map(String::from)
        });

    // Everything that can fail happens before registering, so a refused
    // request never leaves a subscriber behind.
    let start = Start::resolve(hub.log.as_ref(), cursor).await?;
    if let Start::After { reported, .. } = &start {
        let value = HeaderValue::from_bytes(reported.as_bytes()).map_err(|_| {
            ApiError::BadRequest("invalid Last-Event-ID: control characters".into())
        })?;
        res = res
            .header("last-event-id", value.clone())
            .header("mercure-last-event-id", value);
    }
    let body = subscribe::subscribe(&hub, topics, &claims, &start)?;
    Ok(res.body(Body::new(body)).expect("valid response"))
}

/// Verifies the subscriber token; none is fine only with `--anonymous`.
async fn authenticate(
    hub: &Hub,
    headers: &http::HeaderMap,
    query: &Query,
) -> Result<Claims, ApiError> {
    match find_token(headers, query, &hub.config.access.cookie_name)? {
        Some((token, _)) => Ok(Claims::from_payload(
            &hub.subscriber.verify(&token).await?.payload,
        )?),
        None if hub.config.access.anonymous => Ok(Claims::default()),
        None => Err(ApiError::Unauthorized(
            "subscribing requires a token (Authorization header, authorization query parameter or cookie), or a hub started with --anonymous".into(),
        )),
    }
}
