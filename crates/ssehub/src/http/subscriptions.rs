//! The subscriptions API: the active subscriptions the token may see.
//!
//! 0.x subscriptions (made with `topic=`) are listed in 0.x's JSON-LD shape
//! on `/subscriptions/{topic}[/{subscriber}]`, 1.0 ones (made with
//! `match*=`) in 1.0's plain JSON on
//! `/subscriptions/{match_type}/{match}[/{subscriber}]`, with the cursor in
//! a `Link: rel="mercure"` header. A two-segment path whose first segment
//! is a 1.0 matcher type (`exact`, `urlpattern`) is the 1.0 collection,
//! otherwise a 0.x subscription. `/subscriptions` itself answers in the
//! generation of the token presented.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header;
use serde_json::{json, Value};

use super::error::ApiError;
use super::identity::hub_url;
use super::request::Query;
use super::token::{authenticate, grants, Role};
use crate::hub::Hub;
use crate::proto::generation::Generation;
use crate::proto::selector::MatchType;
use crate::subscriptions::is_v1;

/// Which subscriptions a request asks for.
enum View {
    /// 0.x: all, those of a topic, or one.
    Legacy {
        topic: Option<String>,
        subscriber: Option<String>,
    },
    /// 1.0: all, those of a matcher, or one.
    V1 {
        matcher: Option<(String, String)>,
        subscriber: Option<String>,
    },
}

/// `/subscriptions`.
pub(super) async fn all(State(hub): State<Arc<Hub>>, req: Request) -> Result<Response, ApiError> {
    list(&hub, req, None).await
}

/// `/subscriptions/{topic}`: a 0.x collection.
pub(super) async fn one_segment(
    State(hub): State<Arc<Hub>>,
    Path(topic): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let view = View::Legacy {
        topic: Some(topic),
        subscriber: None,
    };
    list(&hub, req, Some(view)).await
}

/// `/subscriptions/{match_type}/{match}` (1.0) or `/{topic}/{subscriber}` (0.x).
pub(super) async fn two_segments(
    State(hub): State<Arc<Hub>>,
    Path((first, second)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let view = if MatchType::from_name(&first).is_some() {
        View::V1 {
            matcher: Some((first, second)),
            subscriber: None,
        }
    } else {
        View::Legacy {
            topic: Some(first),
            subscriber: Some(second),
        }
    };
    list(&hub, req, Some(view)).await
}

/// `/subscriptions/{match_type}/{match}/{subscriber}`: one 1.0 subscription.
pub(super) async fn three_segments(
    State(hub): State<Arc<Hub>>,
    Path((match_type, matcher, subscriber)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let view = View::V1 {
        matcher: Some((match_type, matcher)),
        subscriber: Some(subscriber),
    };
    list(&hub, req, Some(view)).await
}

async fn list(hub: &Hub, req: Request, view: Option<View>) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let base = hub_url(hub, &parts)?;
    let Some((claims, _)) =
        authenticate(hub, &parts.headers, &query, &base, Role::Subscriber, None).await?
    else {
        return Err(ApiError::MissingToken(
            "the subscriptions API requires a subscriber token".into(),
        ));
    };
    let allowed = grants(hub, &claims.subscribe, &base)?;
    let path = parts.uri.path().to_string();
    if !allowed.matches(&path) {
        return Err(ApiError::InsufficientScope(format!(
            "the token does not grant subscribing to {path}"
        )));
    }
    let Some(events) = &hub.subscription_events else {
        return Err(ApiError::NotFound("the subscriptions API is off".into()));
    };
    let view = view.unwrap_or(match claims.generation {
        Some(Generation::V1) => View::V1 {
            matcher: None,
            subscriber: None,
        },
        _ => View::Legacy {
            topic: None,
            subscriber: None,
        },
    });
    let field = |doc: &Value, name: &str| doc[name].as_str().unwrap_or_default().to_string();
    let wanted = |doc: &Value| match &view {
        View::Legacy { topic, subscriber } => {
            !is_v1(doc)
                && topic.as_ref().is_none_or(|t| field(doc, "topic") == *t)
                && subscriber
                    .as_ref()
                    .is_none_or(|s| field(doc, "subscriber") == *s)
        }
        View::V1 {
            matcher,
            subscriber,
        } => {
            is_v1(doc)
                && matcher.as_ref().is_none_or(|(kind, text)| {
                    field(doc, "match_type") == *kind && field(doc, "match") == *text
                })
                && subscriber
                    .as_ref()
                    .is_none_or(|s| field(doc, "subscriber") == *s)
        }
    };
    let mut docs: Vec<Value> = events
        .documents()
        .await?
        .into_iter()
        .filter(|d| wanted(d) && allowed.matches(&field(d, "id")))
        .collect();
    docs.sort_by_key(|d| field(d, "id"));
    let last_event_id = hub
        .log
        .last_id()
        .unwrap_or_else(|| crate::subscribe::EARLIEST.to_string());
    let single = matches!(
        view,
        View::Legacy {
            subscriber: Some(_),
            ..
        } | View::V1 {
            subscriber: Some(_),
            ..
        }
    );
    let mut doc = if single {
        docs.pop()
            .ok_or_else(|| ApiError::NotFound("no such active subscription".into()))?
    } else {
        json!({ "id": path, "subscriptions": docs })
    };
    if let View::V1 { .. } = view {
        if !single {
            doc["type"] = json!("subscriptions");
        }
        let link = format!(
            "<{base}>; rel=\"mercure\"; last-event-id=\"{}\"; type=\"mercure\"; content-type=\"application/json\"",
            last_event_id.replace(['"', '\\'], "")
        );
        return Ok(([(header::LINK, link)], Json(doc)).into_response());
    }
    doc["@context"] = json!("https://mercure.rocks/");
    doc["lastEventID"] = json!(last_event_id);
    if !single {
        doc["type"] = json!("Subscriptions");
    }
    Ok(Json(doc).into_response())
}
