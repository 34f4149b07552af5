//! The HTTP API: routes, CORS, and the handlers.

mod acme_challenge;
mod client;
mod error;
mod health;
mod identity;
mod limits;
mod metadata;
mod publish;
mod request;
mod subscribe;
mod subscriptions;
mod token;
mod ui;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use client::ClientAddr;
pub use error::ApiError;
pub use identity::Secure;
pub use publish::parse_updates;

use crate::hub::Hub;
use crate::metrics::{AuthFailure, Limit};
use crate::proto::generation::Generation;
use crate::subscriptions::SUBSCRIPTIONS_PATH;

pub use crate::proto::HUB_PATH;

/// The safe method carrying subscribe parameters in a form body (RFC 10008).
const QUERY_METHOD: &str = "QUERY";

/// The hub's routes as a service; `alt_svc` is the UDP port of HTTP/3, if
/// served, advertised on every response; `secure` tells the handlers the
/// connection is TLS (the hub URL they derive is then `https`).
pub fn router(hub: Arc<Hub>, alt_svc: Option<u16>, secure: bool) -> Router {
    let mut router = Router::new()
        .route(HUB_PATH, any(hub_endpoint))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready));
    if hub.config.protocol.protocol.allows(Generation::V1) {
        router = router.route(metadata::PATH, get(metadata::metadata));
    }
    if hub.acme.is_some() && !secure {
        router = router.route(acme_challenge::PATH, get(acme_challenge::respond));
    }
    if hub.config.stream.subscriptions {
        router = router
            .route(SUBSCRIPTIONS_PATH, get(subscriptions::all))
            .route(
                &format!("{SUBSCRIPTIONS_PATH}/{{first}}"),
                get(subscriptions::one_segment),
            )
            .route(
                &format!("{SUBSCRIPTIONS_PATH}/{{first}}/{{second}}"),
                get(subscriptions::two_segments),
            )
            .route(
                &format!("{SUBSCRIPTIONS_PATH}/{{match_type}}/{{match}}/{{subscriber}}"),
                get(subscriptions::three_segments),
            );
    }
    router = ui::routes(router, hub.config.server.ui)
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            metadata::point_to_metadata,
        ))
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            count_auth_failures,
        ))
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            drop_unused_body,
        ));
    if let Some(cors) = cors(&hub.config.access.cors_origins) {
        router = router.layer(cors);
    }
    if let Some(port) = alt_svc {
        let value =
            HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")).expect("a valid header");
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::ALT_SVC,
            value,
        ));
    }
    if secure {
        router = router.layer(Extension(Secure));
    }
    router.with_state(hub)
}

/// `/.well-known/mercure`: subscribe with GET, HEAD or QUERY; publish with
/// POST. (CORS preflights are answered by the CORS layer.)
async fn hub_endpoint(hub: State<Arc<Hub>>, req: Request) -> Result<Response, ApiError> {
    match req.method().as_str() {
        "GET" | "HEAD" | QUERY_METHOD => subscribe::subscribe(hub, req).await,
        "POST" => Ok(publish::publish(hub, req).await),
        _ => Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD, POST, QUERY")],
            "use GET, HEAD or QUERY to subscribe and POST to publish\n",
        )
            .into_response()),
    }
}

/// Reads a request body of at most `--max-body` bytes, sent within
/// `--body-timeout`.
async fn read_body(hub: &Hub, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limits = &hub.config.limits;
    let read = tokio::time::timeout(
        limits.body_timeout,
        read_limited(headers, body, limits.max_body),
    )
    .await
    .unwrap_or(Err(ApiError::BodyTimeout(limits.body_timeout)));
    match &read {
        Err(ApiError::TooLarge(_)) => hub.metrics.limits_hit.get(Limit::Body).inc(),
        Err(ApiError::BodyTimeout(_)) => hub.metrics.limits_hit.get(Limit::BodyTimeout).inc(),
        _ => {}
    }
    read
}

/// Reads and drops, before routing, the body of a request to any path but
/// the hub's endpoint (the only one that reads bodies): a body the hub has no
/// use for is still checked, so one that contradicts its `content-length` is
/// an error on its HTTP/2 stream (RFC 9113, 8.1.1) rather than answered, and
/// one over `--max-body` is 413.
async fn drop_unused_body(
    State(hub): State<Arc<Hub>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.uri().path() == HUB_PATH {
        return Ok(next.run(req).await);
    }
    let (parts, body) = req.into_parts();
    read_body(&hub, &parts.headers, body).await?;
    Ok(next.run(Request::from_parts(parts, Body::empty())).await)
}

/// Counts the requests refused for their token, by reason (the error
/// marks its response).
async fn count_auth_failures(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if let Some(failure) = res.extensions().get::<AuthFailure>() {
        hub.metrics.auth_failures.get(*failure).inc();
    }
    res
}

/// Reads a request body of at most `limit` bytes.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            ApiError::TooLarge(limit)
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    Ok(body.to_bytes())
}

/// CORS: listed origins with credentials (cookies), and with `*` any other
/// origin too, but without credentials, so no other site can read a
/// visitor's cookie-authenticated stream.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let listed: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| *o != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allow = if origins.iter().any(|o| o == "*") {
        // The request's origin is echoed rather than `*`, so that a listed
        // origin can still be given credentials.
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(listed.clone())
    };
    let credentials =
        AllowCredentials::predicate(move |origin, _| listed.iter().any(|o| o == origin));
    let last_event_id = HeaderName::from_static("last-event-id");
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_credentials(credentials)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::OPTIONS,
                Method::from_bytes(QUERY_METHOD.as_bytes()).expect("a valid method"),
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CACHE_CONTROL,
                header::CONTENT_TYPE,
                last_event_id.clone(),
            ])
            .expose_headers([
                last_event_id,
                HeaderName::from_static("mercure-last-event-id"),
                header::LINK,
                header::WWW_AUTHENTICATE,
            ])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}
