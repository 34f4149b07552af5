//! OAuth 2.0 protected resource metadata (RFC 9728), which tells a 1.0
//! client the hub's resource identifier (the audience of its tokens) and
//! how to present a token, and the `resource_metadata` parameter pointing
//! to it from every Bearer challenge.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue};
use serde_json::json;

use super::error::ApiError;
use super::identity::hub_url;
use crate::hub::Hub;
use crate::proto::claims::DETAIL_TYPE;
use crate::proto::generation::Generation;

/// Where the document is served: RFC 9728's well-known prefix, then the
/// hub's path.
pub(super) const PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The metadata document.
pub(super) async fn metadata(
    State(hub): State<Arc<Hub>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let resource = hub_url(&hub, &parts)?;
    let mut doc = json!({
        "resource": resource.as_str(),
        "authorization_details_types_supported": [DETAIL_TYPE],
        "bearer_methods_supported": ["header"],
        "mercure_cookie": hub.config.protocol.access_token_cookie,
        "mercure_matcher_types_supported": ["exact", "urlpattern"],
    });
    if hub.config.stream.subscriptions {
        doc["mercure_subscriptions"] = json!(true);
    }
    Ok(Json(doc).into_response())
}

/// Adds `resource_metadata="..."` to the Bearer challenge of a refused
/// request, when the hub speaks 1.0.
pub(super) async fn point_to_metadata(
    State(hub): State<Arc<Hub>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let url = hub_url(&hub, &parts).ok();
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if !hub.config.protocol.protocol.allows(Generation::V1) {
        return res;
    }
    let Some(mut url) = url else {
        return res;
    };
    url.set_path(PATH);
    let Some(challenge) = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
    else {
        return res;
    };
    let value = format!("{challenge}, resource_metadata=\"{url}\"");
    if let Ok(value) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    res
}
