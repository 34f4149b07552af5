//! `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: the
//! active subscriptions, as JSON-LD, filtered by the token's `mercure.subscribe`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::request::{find_token, Query};
use crate::hub::Hub;
use crate::proto::claims::{Claims, SelectorSet};

/// Lists every active subscription the token may see.
pub(super) async fn all(State(hub): State<Arc<Hub>>, req: Request) -> Result<Response, ApiError> {
    list(&hub, req, None, None).await
}

/// Lists the active subscriptions to one topic.
pub(super) async fn by_topic(
    State(hub): State<Arc<Hub>>,
    Path(topic): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    list(&hub, req, Some(&topic), None).await
}

/// Describes one subscription.
pub(super) async fn one(
    State(hub): State<Arc<Hub>>,
    Path((topic, subscriber)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    list(&hub, req, Some(&topic), Some(&subscriber)).await
}

async fn list(
    hub: &Hub,
    req: Request,
    topic: Option<&str>,
    subscriber: Option<&str>,
) -> Result<Response, ApiError> {
    let query = Query::parse(req.uri().query());
    let Some((token, _)) = find_token(req.headers(), &query, &hub.config.access.cookie_name)?
    else {
        return Err(ApiError::Unauthorized(
            "the subscriptions API requires a subscriber token".into(),
        ));
    };
    let claims = Claims::from_payload(&hub.subscriber.verify(&token).await?.payload)?;
    let allowed = SelectorSet::compile(
        &hub.selectors,
        claims.mercure.subscribe.as_deref().unwrap_or_default(),
    );
    let path = req.uri().path().to_string();
    if !allowed.matches(&path) {
        return Err(ApiError::Forbidden(format!(
            "the token's mercure.subscribe claim does not cover {path}"
        )));
    }
    let Some(events) = &hub.subscription_events else {
        return Err(ApiError::NotFound("the subscriptions API is off".into()));
    };
    let field = |doc: &Value, name: &str| doc[name].as_str().unwrap_or_default().to_string();
    let mut docs: Vec<Value> = events
        .documents()
        .await?
        .into_iter()
        .filter(|d| subscriber.is_none_or(|id| field(d, "subscriber") == id))
        .filter(|d| topic.is_none_or(|want| field(d, "topic") == want))
        .filter(|d| allowed.matches(&field(d, "id")))
        .collect();
    docs.sort_by_key(|d| field(d, "id"));
    let last_event_id = hub
        .log
        .last_id()
        .unwrap_or_else(|| crate::subscribe::EARLIEST.to_string());
    if subscriber.is_some() {
        let mut doc = docs
            .pop()
            .ok_or_else(|| ApiError::NotFound("no such active subscription".into()))?;
        doc["@context"] = json!("https://mercure.rocks/");
        doc["lastEventID"] = json!(last_event_id);
        return Ok(Json(doc).into_response());
    }
    Ok(Json(json!({
        "@context": "https://mercure.rocks/",
        "id": path,
        "type": "Subscriptions",
        "lastEventID": last_event_id,
        "subscriptions": docs,
    }))
    .into_response())
}
