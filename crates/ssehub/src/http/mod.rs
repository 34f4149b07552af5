//! The HTTP API: routes, CORS, and the handlers.

mod error;
mod publish;
mod request;
mod subscribe;
mod subscriptions;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;
pub use subscribe::MAX_TOPICS;

use crate::hub::Hub;
use crate::subscriptions::SUBSCRIPTIONS_PATH;

/// The hub's routes as a service; `alt_svc` is the UDP port of HTTP/3, if
/// served, advertised on every response.
pub fn router(hub: Arc<Hub>, alt_svc: Option<u16>) -> Router {
    let mut router = Router::new()
        .route(
            "/.well-known/mercure",
            get(subscribe::subscribe)
                .head(subscribe::subscribe)
                .post(publish::publish),
        )
        .route("/healthz", get(health));
    if hub.config.stream.subscriptions {
        router = router
            .route(SUBSCRIPTIONS_PATH, get(subscriptions::all))
            .route(
                &format!("{SUBSCRIPTIONS_PATH}/{{topic}}"),
                get(subscriptions::by_topic),
            )
            .route(
                &format!("{SUBSCRIPTIONS_PATH}/{{topic}}/{{subscriber}}"),
                get(subscriptions::one),
            );
    }
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
    router.with_state(hub)
}

/// `GET /healthz`: 200 when the hub can take publishes, else 503 and why
/// (a load balancer then sends clients to another node).
async fn health(State(hub): State<Arc<Hub>>) -> (StatusCode, String) {
    match hub.log.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
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
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CACHE_CONTROL,
                header::CONTENT_TYPE,
                last_event_id.clone(),
            ])
            .expose_headers([
                last_event_id,
                HeaderName::from_static("mercure-last-event-id"),
            ])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}
